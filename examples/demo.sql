-- carbon_ledger demo: the city simulation grows here issue by issue.
-- For now: the exact co2e type at work on figures from domain.md.
\pset footer off
SET search_path = carbon, public;

\echo '== co2e: exact masses of CO2-equivalent'
SELECT input, input::co2e AS parsed, grams(input::co2e) AS grams
FROM (VALUES ('12.5 kg'), ('-3t'), ('1500 g'), ('0.000001 Mt'), ('2.5 tCO2e')) t(input);

\echo '== Shenzhen metro: 46.7 g/pkm avoided; 10 000 riders x 12 km'
SELECT co2e_grams(467) * 12::bigint * 10000::bigint / 10::bigint AS reduction;

\echo '== Beijing MaaS: a 22 km trip, 5.98 kg by car vs 1.35 kg by metro'
SELECT '5.98 kg'::co2e - '1.35 kg'::co2e AS avoided_per_trip,
       ('5.98 kg'::co2e - '1.35 kg'::co2e) * 250::bigint AS avoided_per_year_250_trips;

\echo '== Aggregates over a month of 100 000 simulated metro trips (exact, parallel-safe)'
SELECT count(*) AS trips, sum(r) AS total, avg(r) AS mean, min(r), max(r), tonnes(sum(r)) AS tonnes
FROM (SELECT co2e_grams(467 * (1 + (i % 30))/10) AS r FROM generate_series(1, 100000) i) s;

\echo '== Refusals are clear and exact'
\set ON_ERROR_STOP 0
SELECT '0.5 g'::co2e;
SELECT '12 lb'::co2e;
SELECT co2e_grams(9223372036854775807) + '1 g'::co2e;

\set ON_ERROR_STOP 1
\echo
\echo '== A day in Zhangye (张掖): accounts, methodologies, behaviours, points, a coffee, a seal'
SELECT set_setting('timezone', 'Asia/Shanghai');
-- citizens, a merchant of the rights alliance, the ecology bureau
SELECT count(open_account('personal', '620700', 'ZY-CITIZEN-' || i, '市民 ' || i)) AS citizens
FROM generate_series(1, 200) i;
SELECT open_account('merchant', '620700', '91620700MA0000COFE', '甘州咖啡 Ganzhou Coffee') AS cafe \gset
SELECT open_account('government', '620700', '11620700ECOLOGY', '张掖市生态环境局') AS bureau \gset

-- methodologies from the sourced figures of domain.md (demo data, not in the extension)
SELECT define_methodology('ZY-METRO', 1, '公共交通（地铁）', 'I', 'metro', 'distance_substitution',
         '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 3000, "max_activity": 80}'),
       define_methodology('ZY-BUS', 1, '纯电公交', 'I', 'bus', 'distance_substitution',
         '{"baseline_g_per_pkm": 73.6, "project_g_per_pkm": 26.9, "daily_cap_g": 2000}'),
       define_methodology('ZY-CYCLE', 1, '共享单车骑行', 'I', 'cycling', 'distance_substitution',
         '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 0, "daily_cap_g": 2000, "max_activity": 40}'),
       define_methodology('ZY-RECYCLE', 1, '再生资源回收（每千克）', 'II', 'recycling', 'per_unit',
         '{"g_per_unit": 1520, "max_activity": 50}');
SELECT m AS published FROM unnest(ARRAY['ZY-METRO', 'ZY-BUS', 'ZY-CYCLE', 'ZY-RECYCLE']) m,
  LATERAL (SELECT submit_methodology(m, 1), approve_methodology(m, 1, '市生态环境局专家组'),
                  publish_methodology(m, 1, now() - interval '30 days')) x;
SELECT register_source('zy-metro-co', ARRAY['metro', 'bus']),
       register_source('zy-bike-share', ARRAY['cycling']),
       register_source('zy-recycling', ARRAY['recycling']);

-- the operators' overnight files, COPYed into the inbox (here: generated)
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
SELECT CASE s WHEN 0 THEN 'zy-metro-co' WHEN 1 THEN 'zy-metro-co' WHEN 2 THEN 'zy-bike-share' ELSE 'zy-recycling' END,
       'evt-' || i, 1 + (i * 7) % 200,
       CASE s WHEN 0 THEN 'ZY-METRO' WHEN 1 THEN 'ZY-BUS' WHEN 2 THEN 'ZY-CYCLE' ELSE 'ZY-RECYCLE' END,
       CASE s WHEN 3 THEN (1 + i % 9) * 0.5 ELSE 2 + (i * 13) % 25 END,
       now() - interval '1 day' + (i % 600) * interval '1 minute'
FROM generate_series(1, 3000) i, LATERAL (SELECT i % 4 AS s) k;
-- a few duplicates and bad rows, as real files have
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('zy-metro-co', 'evt-4', 29, 'ZY-METRO', 6, now() - interval '1 day'),
       ('zy-bike-share', 'evt-x1', 5, 'ZY-CYCLE', 400, now() - interval '2 hours'),
       ('zy-bike-share', 'evt-x2', 5, 'ZY-METRO', 10, now() - interval '2 hours');
\echo '-- process_inbox(): accepted, capped by the daily caps, rejected, duplicate'
SELECT * FROM process_inbox();
SELECT reason, count(*) FROM behavior WHERE status <> 'accepted' GROUP BY reason ORDER BY reason;

\echo '-- the rights alliance (权益联盟): the cafe lists a coffee; a citizen redeems it in the app'
SELECT create_offer(:cafe, '美式咖啡 an americano', 100, 50,
                    tstzrange(now() - interval '1 day', now() + interval '90 days'), 3) AS coffee \gset
SELECT merchant_name, title, points_cost, stock FROM v_offers;
BEGIN;
SELECT act_as(1);
SELECT balance(1) AS points_before;
SELECT redeem(1, :coffee, 1, 'app-req-0001') AS redemption \gset
SELECT redeem(1, :coffee, 1, 'app-req-0001') = :redemption AS retried_same_redemption;
SELECT balance(1) AS points_after;
COMMIT;
\set ON_ERROR_STOP 0
SELECT transfer(2, 3, 'POINT', 10);                 -- refused: points are not a currency between citizens
\set ON_ERROR_STOP 1
SELECT redeem(4, :coffee, 2) > 0 AS redeemed;
SELECT refund_redemption(:redemption) > 0 AS refunded;      -- the coffee was cold: the same lots come back
SELECT settle_merchant(:cafe) > 0 AS settled;               -- the cafe is settled for the rest
SELECT points_redeemed, points_refunded, points_settled FROM v_merchant_statement;
SELECT donate(2, :bureau, 20, 'gift-0001') AS gift \gset
SELECT receipt, amount FROM donation WHERE entry_id = :gift;

\echo '-- exchange: Zhangye points into 彩虹元 (fen), Nanjing points into a neighbouring city''s'
SELECT define_asset('RAINBOW', 'currency', '彩虹元 Zhangye rainbow yuan (fen)');
SELECT define_asset('ZJ_POINT', 'points', '镇江碳积分 Zhenjiang points');
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 10, now());      -- 10 points a fen
SELECT set_exchange_rate('POINT', 'ZJ_POINT', 4, 5, now());      -- 5 Nanjing points for 4 of Zhenjiang's
SELECT open_account('personal', '320100', 'NJ-CITIZEN-1', '南京市民') AS nanjing \gset
SELECT issue(:nanjing, 'POINT', 1000) > 0 AS issued;
SELECT exchange(5, 'POINT', 95, 'RAINBOW') > 0 AS exchanged, balance(5, 'RAINBOW') AS rainbow_fen,
       (SELECT carry_num || '/' || carry_den FROM exchange_carry WHERE account = 5) AS carried;
SELECT exchange(:nanjing, 'POINT', 500, 'ZJ_POINT') > 0 AS exchanged, balance(:nanjing, 'ZJ_POINT') AS zhenjiang_points;

\echo '-- projects and certified units: a Qilian forest carbon sink, from registration to a carbon-neutral festival'
SELECT open_account('enterprise', '620700', '91620700MA00QILIAN', '祁连山林场 Qilian forest farm') AS farm,
       open_account('verifier', '620100', '91620100MA00VERIFY', '陇原核查 Longyuan verification') AS verifier,
       open_account('enterprise', '620700', '91620700MA00HOTEL', '丹霞酒店 Danxia hotel') AS hotel \gset
SELECT define_methodology('ZY-FOREST', 1, '林业碳汇 forest carbon sink', 'I', 'forestry', 'per_unit',
                          '{"g_per_unit": 1, "buffer_pct": 10}');
SELECT submit_methodology('ZY-FOREST', 1), approve_methodology('ZY-FOREST', 1, '市生态环境局专家组'),
       publish_methodology('ZY-FOREST', 1, now() - interval '1 year');
INSERT INTO holiday VALUES ('2026-10-01', '国庆节'), ('2026-10-02', '国庆节'), ('2026-10-05', '国庆节'),
  ('2026-10-06', '国庆节'), ('2026-10-07', '国庆节') ON CONFLICT DO NOTHING;
SELECT register_project(:farm, 'QLFOREST01', '祁连山退耕还林碳汇', 'ZY-FOREST', '620700',
                        '无碳收益则无法融资 no financing without carbon revenue') AS project \gset
SELECT publicize_project(:project, current_date - 21), approve_project(:project);
SELECT submit_monitoring(:project, '[2025-01-01,2025-12-31]', '1234.5 t', '{"plots": 12}') AS report \gset
SELECT verify_monitoring(:report, :verifier, '1200.4 t', '合理保证 reasonable assurance');
SELECT * FROM issue_units(:report);
SELECT transfer_units(:farm, :hotel, 200, '碳汇购买合同 2026-001') > 0 AS sold;
SELECT left(certificate, 16) || '…' AS certificate, serials
FROM retire_units(:hotel, 150, 'event_neutrality', '2026 丹霞旅游节 Danxia tourism festival');
SELECT verify_certificate(certificate) AS verifies FROM v_retirements;
SELECT serial_block, event, tonnes, reference FROM serial_history('620700-2025-QLFOREST01-000000200-000000200');
SELECT code, status, issued_tonnes FROM v_projects;

\echo '-- reports for the bureau and BI'
SELECT scenario, methodology, events, participants, reduction, tonnes(reduction) AS tonnes
FROM v_reduction_monthly ORDER BY scenario;
SELECT asset, tier, issued, outstanding, expired, moved_out FROM v_supply_detail
WHERE region = '620700' ORDER BY asset, tier;
SELECT * FROM v_points_expiring ORDER BY month, tier;

\echo '-- two years on: unspent points expire into the expired sink'
SELECT * FROM expire_lots(now() + interval '26 months');
SELECT asset, tier, issued, outstanding, expired FROM v_supply WHERE region = '620700' ORDER BY asset, tier;

\echo '-- seal the day and let the auditor check everything'
SELECT seal() AS seal_id;
SELECT * FROM verify_integrity();
