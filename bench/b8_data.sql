-- B8's ledger: :accounts citizens in 20 counties, :behaviors credited
-- behaviours over eleven months of 2026 (each an entry of two postings:
-- the county's issuance account to the citizen, and a lot), and
-- :redemptions redemptions at 1,000 merchants (two postings each).  Written
-- straight into the tables by the superuser, triggers off (the API would
-- take an hour to write 10 M postings on two cores): balances and lots are
-- computed to match the postings, so the API works on the result.
\set ON_ERROR_STOP 1
SET search_path = carbon, public;
SET session_replication_role = replica;     -- no triggers: a bulk load
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';

-- The big tables' indexes other than their primary keys are built once,
-- after the load (bench/b8_views.sh), instead of row by row, as pg_restore
-- does: their definitions are kept here and rebuilt from them, so the
-- views read the extension's own indexes.
CREATE TABLE public.b8_rebuild AS
  SELECT c.oid::regclass::text AS tbl, i.relname::text AS idx, con.conname::text AS con,
         CASE WHEN con.conname IS NOT NULL
              THEN format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.oid::regclass, con.conname, pg_get_constraintdef(con.oid))
              ELSE pg_get_indexdef(x.indexrelid) END AS def
  FROM pg_index x
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_class i ON i.oid = x.indexrelid
  LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = c.oid
  WHERE c.relnamespace = 'carbon'::regnamespace AND NOT x.indisprimary
    AND c.relname IN ('behavior', 'posting', 'behavior_monthly', 'lot', 'group_member', 'group_credit');
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM public.b8_rebuild LOOP
    IF r.con IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.con);
    ELSE
      EXECUTE format('DROP INDEX carbon.%I', r.idx);
    END IF;
  END LOOP;
END $$;

CREATE TEMP TABLE county (n int PRIMARY KEY, code text);
INSERT INTO county SELECT row_number() OVER () - 1, c FROM unnest(ARRAY[
  '620702', '620721', '620722', '620723', '620724', '620725', '320102', '320104', '320105', '320106',
  '320111', '320113', '320114', '320115', '320116', '320117', '320118', '110101', '110102', '440103']) c;

SELECT id AS point FROM asset WHERE code = 'POINT' \gset
SELECT coalesce(max(id), 0) AS a0 FROM account \gset

-- citizens, then merchants, then each county's issuance account for points
INSERT INTO account (id, kind, tier, region, asset_id, ref_hash, status, opened_at)
SELECT :a0 + g, 'participant', 'personal', (SELECT code FROM county WHERE n = g % 20), NULL,
       decode(md5('b8-citizen-' || g), 'hex'), 'active', '2025-12-01'
FROM generate_series(1, :accounts) g;
INSERT INTO account (id, kind, tier, region, asset_id, ref_hash, display_name, status, opened_at)
SELECT :a0 + :accounts + g, 'participant', 'merchant', (SELECT code FROM county WHERE n = g % 20), NULL,
       decode(md5('b8-merchant-' || g), 'hex'), 'shop ' || g, 'active', '2025-12-01'
FROM generate_series(1, 1000) g;
INSERT INTO account (id, kind, tier, region, asset_id, status, opened_at)
SELECT :a0 + :accounts + 1000 + 1 + c.n, 'issuance', 'personal', c.code, :point, 'active', '2025-12-01'
FROM county c
ON CONFLICT DO NOTHING;
-- the clearing accounts of points between the citizens' and the merchants' segments
INSERT INTO account (id, kind, tier, region, asset_id, status, opened_at)
SELECT :a0 + :accounts + 1100 + t.k * 20 + c.n, 'clearing', t.tier, c.code, :point, 'active', '2025-12-01'
FROM county c CROSS JOIN (VALUES (0, 'personal'), (1, 'merchant')) t(k, tier);
SELECT setval('account_id_seq', (SELECT max(id) FROM account));

-- (the methodology B8-METRO and the source b8-metro are defined through the API beforehand)
SELECT coalesce(max(id), 0) AS e0 FROM entry \gset
-- the behaviours: account g % accounts, a day of 2026 up to 30 November
CREATE TEMP TABLE b8_behavior AS
SELECT g, :a0 + 1 + (hashint4(g) & 2147483647) % :accounts AS account,
       '2026-01-01'::date + (hashint4(g + 7) & 2147483647) % 334 AS day,
       10 + (hashint4(g + 13) & 2147483647) % 91 AS points
FROM generate_series(1, :behaviors) g;
INSERT INTO entry (id, kind, memo, created_at)
SELECT :e0 + g, 'behavior', NULL, day + time '08:00' FROM b8_behavior;
INSERT INTO behavior (source, event_id, account, methodology, version, scenario, activity, occurred_at, local_day,
                      attrs, status, reduction, points, entry_id, recorded_at)
SELECT 'b8-metro', g::text, account, 'B8-METRO', 1, 'transport', points, day + time '08:00', day, '{}',
       'accepted', (points * 10 || ' g')::co2e, points, :e0 + g, day + time '08:00'
FROM b8_behavior;
INSERT INTO posting (entry_id, seq, account, asset_id, amount, at)
SELECT :e0 + g, 1, :a0 + :accounts + 1000 + 1 + ((account - :a0) % 20), :point, -points, day + time '08:00'
FROM b8_behavior
UNION ALL
SELECT :e0 + g, 2, account, :point, points, day + time '08:00' FROM b8_behavior;

INSERT INTO behavior_monthly (month, region, scenario, methodology, account, events, grams, points)
SELECT date_trunc('month', b.day::timestamp)::date, a.region, 'transport', 'B8-METRO', b.account, count(*),
       sum(b.points * 10), sum(b.points)
FROM b8_behavior b JOIN account a ON a.id = b.account GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5;                          -- its primary key's order

-- redemptions: 2,000 offers of 1,000 merchants, bought by citizens who earned enough
INSERT INTO offer (merchant, title, points_cost, stock, valid, per_account_limit, status, created_at)
SELECT :a0 + :accounts + 1 + (g % 1000), 'offer ' || g, 20, 1000000000, tstzrange('2026-01-01', '2027-01-01'),
       NULL, 'active', '2026-01-01'
FROM generate_series(1, 2000) g;
SELECT min(id) AS o0 FROM offer WHERE title = 'offer 1' \gset
SELECT coalesce(max(id), 0) AS e1 FROM entry \gset
CREATE TEMP TABLE b8_redemption AS
SELECT r, b.account, greatest(b.day, '2026-01-02'::date) AS day, (r % 2000) AS o
FROM generate_series(1, :redemptions) r
JOIN b8_behavior b ON b.g = r * (:behaviors / :redemptions);   -- a citizen who earned points that day
INSERT INTO entry (id, kind, memo, created_at)
SELECT :e1 + r, 'redemption', 'offer ' || (o + 1), day + time '18:00' FROM b8_redemption;
INSERT INTO redemption (entry_id, offer, account, merchant, quantity, unit_points, refunded, at, lot_expiries,
                        lot_amounts)
SELECT :e1 + r, :o0 + o, account, :a0 + :accounts + 1 + ((o + 1) % 1000), 1, 10, 0, day + time '18:00',
       ARRAY['2028-01-01 00:00+08'::timestamptz], ARRAY[10::bigint]
FROM b8_redemption;
-- citizen → its segment's clearing → the merchant's segment's clearing → merchant
INSERT INTO posting (entry_id, seq, account, asset_id, amount, at)
SELECT :e1 + r, 1, account, :point, -10, day + time '18:00' FROM b8_redemption
UNION ALL
SELECT :e1 + r, 2, :a0 + :accounts + 1100 + ((account - :a0) % 20), :point, 10, day + time '18:00' FROM b8_redemption
UNION ALL
SELECT :e1 + r, 3, :a0 + :accounts + 1100 + 20 + (((o + 1) % 1000) + 1) % 20, :point, -10, day + time '18:00'
FROM b8_redemption
UNION ALL
SELECT :e1 + r, 4, :a0 + :accounts + 1 + ((o + 1) % 1000), :point, 10, day + time '18:00' FROM b8_redemption;
SELECT setval('entry_id_seq', (SELECT max(id) FROM entry));

-- balances and lots as the postings leave them (points expire at the end of 2027)
INSERT INTO balance (account, asset_id, stripe, amount)
SELECT account, asset_id, 0, sum(amount) FROM posting
WHERE entry_id > :e0 GROUP BY account, asset_id;
INSERT INTO lot (account, asset_id, expires_at, original, remaining, entry_id, created_at)
SELECT p.account, p.asset_id, '2028-01-01 00:00+08', sum(p.amount) FILTER (WHERE p.amount > 0),
       sum(p.amount), max(p.entry_id), '2026-01-01'
FROM posting p JOIN account a ON a.id = p.account
WHERE p.entry_id > :e0 AND a.kind = 'participant' AND a.tier = 'personal'
GROUP BY p.account, p.asset_id
HAVING sum(p.amount) > 0;
INSERT INTO lot (account, asset_id, expires_at, original, remaining, entry_id, created_at)
SELECT p.account, p.asset_id, '2028-01-01 00:00+08', sum(p.amount), sum(p.amount), max(p.entry_id), '2026-01-01'
FROM posting p JOIN account a ON a.id = p.account
WHERE p.entry_id > :e0 AND a.kind = 'participant' AND a.tier = 'merchant'
GROUP BY p.account, p.asset_id;
RESET session_replication_role;
