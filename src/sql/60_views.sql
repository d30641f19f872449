-- ---------------------------------------------------------------------------
-- Reporting views (api.md §7), 中英文注释.  security_invoker: row-level
-- security applies to the reader (an app sees its acting account only).
-- ---------------------------------------------------------------------------

-- Money (CNY, partner currencies: kept in fen) in yuan with 2 decimals, as
-- api.md has money in views; other assets in their unit (points, grams,
-- tonnes).
CREATE VIEW carbon.v_account_statement WITH (security_invoker = true) AS
  SELECT t.account, t.entry_id, t.at, t.asset,
         round(t.amount::numeric / t.per_unit, t.places) AS amount,
         round(t.balance_after / t.per_unit, t.places) AS balance_after,
         t.kind, t.memo
  FROM (SELECT p.account, p.entry_id, p.at, s.code AS asset, p.amount,
               sum(p.amount) OVER (PARTITION BY p.account, p.asset_id ORDER BY p.entry_id, p.seq) AS balance_after,
               e.kind, e.memo,
               CASE WHEN s.kind IN ('cash', 'currency') THEN 100 ELSE 1 END AS per_unit,
               CASE WHEN s.kind IN ('cash', 'currency') THEN 2 ELSE 0 END AS places
        FROM carbon.posting p
        JOIN carbon.entry e ON e.id = p.entry_id
        JOIN carbon.asset s ON s.id = p.asset_id) t;
COMMENT ON VIEW carbon.v_account_statement IS
  '账户流水 account statement: every posting with the balance after it (filter by account)';

-- Summed per holder's region, tier and expiry first, the local month then
-- worked out once per expiry instead of once per lot (B8: a county's
-- 50,000 lots, a handful of expiries).  A lot expiring at local midnight of
-- 1 January counts for December.
CREATE VIEW carbon.v_points_expiring WITH (security_invoker = true) AS
  SELECT date_trunc('month', (e.expires_at AT TIME ZONE tz.value) - interval '1 microsecond')::date AS month,
         e.region, e.tier, sum(e.points)::bigint AS points
  FROM (SELECT a.region, a.tier, l.expires_at, sum(l.remaining) AS points
        FROM carbon.lot l
        JOIN carbon.account a ON a.id = l.account
        WHERE l.asset_id = (SELECT id FROM carbon.asset WHERE code = 'POINT') AND l.remaining > 0
        GROUP BY 1, 2, 3) e
  CROSS JOIN (SELECT value FROM carbon.settings WHERE name = 'timezone') tz
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_points_expiring IS
  '即将过期积分 points still held, by the month (local) in which they expire, region and tier';

CREATE VIEW carbon.v_reduction_monthly WITH (security_invoker = true) AS
  -- from the monthly summary (one row per account: participants = rows)
  SELECT s.month, s.region, s.scenario, s.methodology,
         sum(s.events)::bigint AS events, count(*) AS participants,
         carbon.co2e_grams(sum(s.grams)::bigint) AS reduction
  FROM carbon.behavior_monthly s
  WHERE s.events > 0
  GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW carbon.v_reduction_monthly IS
  '月度减排量 reductions credited per month (local), region, scenario and methodology';

-- Supply per asset, tier and region, from the segment's system accounts
-- alone.  Every entry balances within each segment (asset, tier, region):
-- the posting check refuses any that does not, and verify_integrity()
-- proves it of the stored ledger ('segments_balanced' of the postings,
-- 'supply' of the balances: each segment's balances sum to zero).  So
-- what a segment's participants hold is exactly what its system accounts
-- do not, and the view reads a few dozen balance rows per segment instead
-- of one per holder (B8, a county of 50,000 citizens: 1.3 ms against 130).
-- A segment whose only rows are participants' zero balances (rows that
-- carry a frozen or closed account's status, nothing moved) has no row
-- here.  The amounts are numeric: a segment's striped issuance rows may
-- together pass the bigint range, and no view may fail on data the ledger
-- accepted.
CREATE VIEW carbon.v_supply_detail WITH (security_invoker = true) AS
  SELECT t.asset, t.tier, t.region,
         round(t.issued / t.per_unit, t.places) AS issued,
         round(t.outstanding / t.per_unit, t.places) AS outstanding,
         round(t.redeemed / t.per_unit, t.places) AS redeemed,
         round(t.expired / t.per_unit, t.places) AS expired,
         round(t.retired / t.per_unit, t.places) AS retired,
         round(t.cancelled / t.per_unit, t.places) AS cancelled,
         round(t.escrow / t.per_unit, t.places) AS escrow,
         round(t.moved_out / t.per_unit, t.places) AS moved_out
  FROM (SELECT s.code AS asset, a.tier, a.region,
               -- money (kept in fen) in yuan with 2 decimals, as api.md has money in views
               CASE WHEN s.kind IN ('cash', 'currency') THEN 100 ELSE 1 END AS per_unit,
               CASE WHEN s.kind IN ('cash', 'currency') THEN 2 ELSE 0 END AS places,
               coalesce(-sum(b.amount) FILTER (WHERE a.kind = 'issuance'), 0) AS issued,
               coalesce(-sum(b.amount), 0) AS outstanding,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'redeemed'), 0) AS redeemed,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'expired'), 0) AS expired,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'retired'), 0) AS retired,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'cancelled'), 0) AS cancelled,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'escrow'), 0) AS escrow,
               coalesce(sum(b.amount) FILTER (WHERE a.kind = 'clearing'), 0) AS moved_out
        FROM carbon.balance b
        JOIN carbon.account a ON a.id = b.account
        JOIN carbon.asset s ON s.id = b.asset_id
        WHERE a.kind <> 'participant'
        GROUP BY s.code, s.kind, a.tier, a.region) t;
COMMENT ON VIEW carbon.v_supply_detail IS
  '供应量 per asset, tier and region: issued, outstanding (held by participants), redeemed, expired, retired, cancelled; '
  'escrow and moved_out (net moved to other tiers or regions) close the identity '
  'outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out '
  '(outstanding is read from it: the segment''s balances sum to zero, which verify_integrity() checks as ''supply'')';
-- api.md's v_supply: exactly its nine columns (the detail view's first nine;
-- BI tools and tests that read `SELECT *` get the contract's shape).
CREATE VIEW carbon.v_supply WITH (security_invoker = true) AS
  SELECT asset, tier, region, issued, outstanding, redeemed, expired, retired, cancelled
  FROM carbon.v_supply_detail;
COMMENT ON VIEW carbon.v_supply IS
  '供应量 per asset, tier and region: issued, outstanding (held by participants), redeemed, expired, retired, cancelled '
  '(api.md; carbon.v_supply_detail adds escrow and moved_out, which close the identity '
  'outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out)';
