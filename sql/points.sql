-- The citizens' side: settings, methodologies, behaviours, points, lots (api.md §3, §4).
SET search_path = carbon, public;
\set SHOW_CONTEXT never

-- Settings: defaults, and validated changes.
SELECT name, value, is_default FROM settings ORDER BY name;
SELECT set_setting('points_per_kg', '100');
SELECT set_setting('points_per_kg', 'many');             -- 22023
SELECT set_setting('timezone', 'Mars/Olympus');          -- 22023
SELECT set_setting('color', 'green');                    -- 22023
-- behaviours below happen around noon yesterday, local time: "an hour ago"
-- would fall on another local day when the transcript runs just after midnight
SELECT ((carbon._local_today() - 1) + time '12:00') AT TIME ZONE (SELECT value FROM carbon.settings WHERE name = 'timezone')
  AS noon \gset

-- Methodologies from domain.md's sourced figures (demo data, not seeded by the
-- extension): Shenzhen metro and bus against the Beijing car baseline
-- (272 g/pkm; metro 61 g/pkm), walking and cycling with project factor 0,
-- recycling per kg, and a flat one.
SELECT define_methodology('CN-METRO', 1, '地铁出行 metro ride', 'I', 'metro', 'distance_substitution',
                          '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 5000, "max_activity": 100}');
SELECT define_methodology('CN-BUS', 1, '纯电公交 electric bus', 'I', 'bus', 'distance_substitution',
                          '{"baseline_g_per_pkm": 73.6, "project_g_per_pkm": 26.9}');
SELECT define_methodology('CN-CYCLE', 1, '骑行 cycling', 'I', 'cycling', 'distance_substitution',
                          '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 0, "max_activity": 60}');
SELECT define_methodology('ZY-RECYCLE', 1, '再生资源回收 recycling', 'II', 'recycling', 'per_unit',
                          '{"g_per_unit": 1520.5}');
SELECT define_methodology('ZY-POWER', 1, '节约用电 saving electricity', 'II', 'household', 'personal_baseline',
                          '{"baseline": 300, "g_per_unit": 581}');
SELECT define_methodology('ZY-EPAPER', 1, '电子票据 e-receipt', 'II', 'paperless', 'flat', '{"g_per_event": 4.7}');
SELECT code, version, class, formula, status FROM methodology ORDER BY code;

-- Nothing is in force before it is published.
SELECT calc_reduction('CN-METRO', 10);                   -- CL006
SELECT m, submit_methodology(m, 1), approve_methodology(m, 1, '专家评审组 expert panel'),
       publish_methodology(m, 1, now() - interval '30 days')
FROM unnest(ARRAY['CN-METRO', 'CN-BUS', 'CN-CYCLE', 'ZY-RECYCLE', 'ZY-POWER', 'ZY-EPAPER']) m;
SELECT code, status, reviewer FROM methodology ORDER BY code;

-- The four formulas, exact and rounded down to the gram.
SELECT calc_reduction('CN-METRO', 22) AS metro_22km,            -- 22 × 211 = 4642 g
       calc_reduction('CN-BUS', 10.5) AS bus_10_5km,            -- 10.5 × 46.7 = 490.35 → 490 g
       calc_reduction('CN-CYCLE', 3.333) AS cycle_3_333km,      -- 3.333 × 272 = 906.576 → 906 g
       calc_reduction('ZY-RECYCLE', 2.5) AS recycle_2_5kg,      -- 2.5 × 1520.5 = 3801.25 → 3801 g
       calc_reduction('ZY-POWER', 250) AS power_250kwh,         -- (300 − 250) × 581 = 29050 g
       calc_reduction('ZY-POWER', 250, '{"own_baseline": 280}') AS power_own_baseline,  -- 30 × 581
       calc_reduction('ZY-POWER', 350) AS power_above_baseline, -- max(0, …) = 0
       calc_reduction('ZY-EPAPER', NULL) AS epaper;             -- 4.7 → 4 g
SELECT calc_reduction('CN-CYCLE', 61);                    -- above max_activity: 22023
SELECT calc_reduction('NO-SUCH', 1);                      -- CL006

-- A published version is frozen; a new version takes over from its date.
SELECT define_methodology('CN-BUS', 1, 'x', 'I', 'bus', 'distance_substitution',
                          '{"baseline_g_per_pkm": 80, "project_g_per_pkm": 20}');   -- CL007
SELECT define_methodology('CN-BUS', 2, '纯电公交 v2', 'I', 'bus', 'distance_substitution',
                          '{"baseline_g_per_pkm": 80, "project_g_per_pkm": 20}');
SELECT submit_methodology('CN-BUS', 2), approve_methodology('CN-BUS', 2, 'panel'),
       publish_methodology('CN-BUS', 2, now() - interval '1 day');
SELECT calc_reduction('CN-BUS', 10, '{}', now() - interval '2 days') AS v1_era,
       calc_reduction('CN-BUS', 10) AS v2_era;
SELECT suspend_methodology('CN-BUS', 2);
SELECT calc_reduction('CN-BUS', 10) AS back_to_v1;
SELECT publish_methodology('CN-BUS', 2, now() - interval '1 day');

-- Sources and behaviours.
SELECT register_source('zy-metro', ARRAY['metro', 'bus']);
SELECT register_source('zy-recycling-station-7', ARRAY['recycling']);
SELECT register_source('zy-bikes', ARRAY['cycling']);
SELECT open_account('personal', '620700', 'PTS-CITIZEN-1', '王芳') AS wang \gset
SELECT open_account('personal', '620700', 'PTS-CITIZEN-2', '赵磊') AS zhao \gset
SELECT open_account('merchant', '620700', 'PTS-SHOP', '张掖书店') AS shop \gset

SELECT status, reduction, points, reason
FROM record_behavior('zy-metro', 'ride-1', :wang, 'CN-METRO', 22, :'noon'::timestamptz - interval '2 hours');
-- the same event again: a duplicate with the original figures, nothing credited
SELECT status, reduction, points, reason
FROM record_behavior('zy-metro', 'ride-1', :wang, 'CN-METRO', 22, :'noon'::timestamptz - interval '2 hours');
-- the daily cap (5 kg for metro) cuts the next ride, then nothing is left
SELECT status, reduction, points, reason
FROM record_behavior('zy-metro', 'ride-2', :wang, 'CN-METRO', 22, :'noon'::timestamptz - interval '1 hour');
SELECT status, reduction, points, reason
FROM record_behavior('zy-metro', 'ride-3', :wang, 'CN-METRO', 5, :'noon'::timestamptz - interval '30 minutes');
-- rejections are results, not errors
SELECT e, r.status, r.reason
FROM (VALUES ('bad-1', 'zy-metro', 'ZY-RECYCLE', 1.0, :'noon'::timestamptz - interval '1 hour'),
             ('bad-2', 'zy-metro', 'CN-METRO', 101, :'noon'::timestamptz - interval '1 hour'),
             ('bad-3', 'zy-metro', 'CN-METRO', -1, :'noon'::timestamptz - interval '1 hour'),
             ('bad-4', 'zy-metro', 'CN-METRO', 5, now() + interval '1 day'),
             ('bad-5', 'zy-metro', 'CN-METRO', 5, now() - interval '8 days'),
             ('bad-6', 'zy-metro', 'NO-SUCH', 5, :'noon'::timestamptz - interval '1 hour'),
             ('bad-7', 'nobody', 'CN-METRO', 5, :'noon'::timestamptz - interval '1 hour')) v(e, src, meth, act, at),
     LATERAL record_behavior(v.src, v.e, :zhao, v.meth, v.act, v.at) r
ORDER BY e;
SELECT status, reason FROM record_behavior('zy-metro', 'bad-8', 99999999, 'CN-METRO', 5, now());
SELECT set_account_status(:zhao, 'frozen', 'test');
SELECT status, reason FROM record_behavior('zy-metro', 'bad-9', :zhao, 'CN-METRO', 5, now());
SELECT set_account_status(:zhao, 'active', 'test done');
SELECT status, reason FROM record_behavior('zy-metro', 'old-ver', :zhao, 'CN-BUS', 10, now() - interval '2 days') AS v1;

-- The sub-point remainder is carried: 37 rides of 0.9 km (244 g, 24.4 points
-- each) pay out exactly what their sum is worth, never losing the tenths.
SELECT milli AS carry_before FROM points_carry WHERE account = :zhao \gset
SELECT sum(r.points) AS points, sum(grams(r.reduction)) AS grams,
       sum(r.points) = floor((:carry_before + sum(grams(r.reduction)) * 100) / 1000) AS nothing_lost
FROM generate_series(1, 37) i,
     LATERAL record_behavior('zy-bikes', 'bike-' || i, :zhao, 'CN-CYCLE', 0.9, :'noon'::timestamptz - interval '1 hour') r;
SELECT milli FROM points_carry WHERE account = :zhao;

SELECT balance(:wang) AS wang_points, balance(:wang, 'RED') AS wang_red,
       balance(:zhao) AS zhao_points, balance(:zhao, 'RED') AS zhao_red;

-- Lots: spending takes the earliest-expiring lot first; the receiver keeps its expiry.
SELECT set_setting('points_validity', '30 days');
SELECT status, points FROM record_behavior('zy-recycling-station-7', 'bin-1', :wang, 'ZY-RECYCLE', 3, :'noon'::timestamptz - interval '1 hour');
SELECT count(*) AS lots, array_agg(remaining ORDER BY expires_at) AS remaining
FROM lot WHERE account = :wang AND asset_id = 1;
SELECT transfer(:wang, :shop, 'POINT', 500, 'book') > 0 AS paid;
SELECT array_agg(remaining ORDER BY expires_at) AS wang_left FROM lot WHERE account = :wang AND asset_id = 1;
SELECT l.remaining,
       EXISTS (SELECT 1 FROM lot w WHERE w.account = :wang AND w.asset_id = 1 AND w.expires_at = l.expires_at) AS expiry_kept
FROM lot l WHERE l.account = :shop ORDER BY l.expires_at;
SELECT set_setting('points_validity', 'end_of_next_year');

-- Expiry: idempotent, one row of totals, and spending skips nothing.
SELECT * FROM expire_lots(now() + interval '31 days');
SELECT * FROM expire_lots(now() + interval '31 days');
SELECT * FROM expire_lots(now() - interval '1 year');
SELECT balance(:wang) AS wang_points, balance(:shop) AS shop_points;

-- Bulk: the inbox gives what record_behavior gives.
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('zy-bikes', 'inbox-1', :zhao, 'CN-CYCLE', 2, :'noon'::timestamptz - interval '1 hour'),
       ('zy-bikes', 'inbox-2', :zhao, 'CN-CYCLE', 2, :'noon'::timestamptz - interval '1 hour'),
       ('zy-bikes', 'inbox-1', :zhao, 'CN-CYCLE', 2, :'noon'::timestamptz - interval '1 hour'),
       ('zy-bikes', 'inbox-3', :zhao, 'CN-CYCLE', 200, :'noon'::timestamptz - interval '1 hour'),
       ('zy-metro', 'inbox-4', :zhao, 'CN-METRO', 30, :'noon'::timestamptz - interval '1 hour');
SELECT * FROM process_inbox(2);
SELECT * FROM process_inbox();
SELECT * FROM process_inbox();
SELECT event_id, status, reduction, points, reason FROM behavior WHERE event_id LIKE 'inbox-%' ORDER BY event_id;

-- Issuance caps: room runs out, behaviour is rejected with reason cap.
SELECT set_issuance_cap('POINT', 'personal', '620700', extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int,
                        (SELECT coalesce(-sum(b.amount), 0) FROM balance b JOIN account a ON a.id = b.account
                         WHERE a.kind = 'issuance' AND a.asset_id = 1 AND a.tier = 'personal' AND a.region = '620700')::bigint + 10);
SELECT status, points, reason FROM record_behavior('zy-bikes', 'cap-1', :wang, 'CN-CYCLE', 0.3, now()) AS fits;
SELECT status, points, reason FROM record_behavior('zy-bikes', 'cap-2', :wang, 'CN-CYCLE', 1, now()) AS too_much;
SELECT issue(:wang, 'POINT', 100);                       -- CL004
SELECT cap - issued AS room FROM issuance_cap;

-- Reports.
SELECT scenario, methodology, events, participants, reduction FROM v_reduction_monthly ORDER BY scenario, methodology;
SELECT asset, tier, issued, outstanding, expired, moved_out FROM v_supply_detail
WHERE asset IN ('POINT', 'RED') AND region = '620700' ORDER BY asset, tier;
SELECT kind, asset, amount, balance_after FROM v_account_statement WHERE account = :shop ORDER BY entry_id;
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok;
-- (lift the cap again for the tests that follow in this database)
SELECT set_issuance_cap('POINT', 'personal', '620700', extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int,
                        9223372036854775807);
