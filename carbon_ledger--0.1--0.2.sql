-- carbon_ledger 0.1 → 0.2: ALTER EXTENSION carbon_ledger UPDATE TO '0.2'.
-- Every change made to src/sql/ since 0.1, as steps on a populated ledger
-- (test/suites/upgrade.sh checks the result equals a fresh 0.2 install).

\echo Use "ALTER EXTENSION carbon_ledger UPDATE TO '0.2'" to load this file. \quit

-- Who may act for whom: accounts bound to logins (issue 16).
CREATE TABLE carbon.account_binding (
  account   bigint NOT NULL REFERENCES carbon.account,
  login     name NOT NULL,
  bound_by  name NOT NULL DEFAULT session_user,
  bound_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, login)
);
CREATE INDEX account_binding_login_idx ON carbon.account_binding (login);
COMMENT ON TABLE carbon.account_binding IS
  '账户绑定 accounts bound to a login role, which may then act for them with carbon.act_as()';
SELECT pg_catalog.pg_extension_config_dump('carbon.account_binding', '');

CREATE FUNCTION carbon.bind_account(account bigint, login name) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF account IS NULL OR login IS NULL THEN
    RAISE EXCEPTION 'account and login must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = bind_account.account AND a.kind = 'participant') THEN
    RAISE EXCEPTION 'account % does not exist', account USING ERRCODE = '22023',
      DETAIL = 'Only participant accounts are bound to logins.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
    RAISE EXCEPTION 'role "%" does not exist', login USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.account_binding AS b (account, login)
  VALUES (bind_account.account, bind_account.login)
  ON CONFLICT ON CONSTRAINT account_binding_pkey DO NOTHING;
END $$;
COMMENT ON FUNCTION carbon.bind_account(bigint, name) IS
  '绑定账户 let a login act for an account (a merchant''s till for its shop, a trader''s desk for its firm)';

CREATE FUNCTION carbon.unbind_account(account bigint, login name) RETURNS boolean
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
  WITH gone AS (DELETE FROM carbon.account_binding b
                WHERE b.account = unbind_account.account AND b.login = unbind_account.login RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM gone)
$$;
COMMENT ON FUNCTION carbon.unbind_account(bigint, name) IS
  '解绑账户 the login may no longer act for the account; true when a binding was removed';

-- Inbox provenance (api.md §4): the database records the inserting role and
-- judges each row as that role's report; rows that cannot be recorded at
-- all are kept with their reason.  Rows already in the inbox when 0.1 is
-- updated get the updating role (they are processed as 0.1 would have).
ALTER TABLE carbon.behavior_inbox ADD COLUMN inserted_by name NOT NULL DEFAULT CURRENT_USER;
COMMENT ON COLUMN carbon.behavior_inbox.inserted_by IS
  '提交角色 the role that inserted the row (set by the database); the row is judged as that role''s report';
-- Inbox rows that cannot be recorded at all (no source or event id, or one
-- too long for its key): kept with their reason, never dropped silently.
CREATE TABLE carbon.inbox_rejects (
  seq          bigint PRIMARY KEY,
  source       text,
  event_id     text,
  account      bigint,
  methodology  text,
  activity     numeric,
  occurred_at  timestamptz,
  attrs        jsonb,
  inserted_by  name,
  received_at  timestamptz,
  reason       text NOT NULL,
  rejected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_rejects_inserted_by_idx ON carbon.inbox_rejects (inserted_by, seq);
COMMENT ON TABLE carbon.inbox_rejects IS
  '无法受理的收件箱记录 inbox rows that cannot be recorded (no usable source or event id, or a source their role may not report for), as they came, with the reason';

SELECT pg_catalog.pg_extension_config_dump('carbon.inbox_rejects', '');
REVOKE INSERT ON carbon.behavior_inbox FROM carbon_operator;
GRANT INSERT (source, event_id, account, methodology, activity, occurred_at, attrs)
  ON carbon.behavior_inbox TO carbon_operator;
GRANT SELECT ON carbon.behavior_inbox, carbon.inbox_rejects TO carbon_operator;
GRANT SELECT ON carbon.inbox_rejects TO carbon_auditor;
ALTER TABLE carbon.behavior_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE carbon.inbox_rejects ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON carbon.behavior_inbox FOR SELECT TO carbon_admin, carbon_auditor USING (true);
CREATE POLICY read_all ON carbon.inbox_rejects FOR SELECT TO carbon_admin, carbon_auditor USING (true);
CREATE POLICY own_rows ON carbon.behavior_inbox FOR ALL TO carbon_operator
  USING (inserted_by = CURRENT_USER) WITH CHECK (inserted_by = CURRENT_USER);
CREATE POLICY admin_rows ON carbon.behavior_inbox FOR ALL TO carbon_admin USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON carbon.inbox_rejects FOR SELECT TO carbon_operator USING (inserted_by = CURRENT_USER);

-- Reversing a behaviour's entry marks its behaviours reversed (api.md §7):
-- a status more, the entry named by each single event, bulk entries linked
-- to the behaviours they credit.
ALTER TABLE carbon.behavior DROP CONSTRAINT behavior_status_check;
ALTER TABLE carbon.behavior ADD CONSTRAINT behavior_status_check
  CHECK (status IN ('accepted', 'capped', 'rejected', 'reversed'));
COMMENT ON TABLE carbon.behavior IS
  '低碳行为 reported low-carbon behaviour: accepted, capped or rejected (with the reason), reversed when its entry is; duplicates are answered, not stored';
COMMENT ON COLUMN carbon.behavior.entry_id IS
  '入账分录 the entry that credited this event alone (record_behavior); NULL for bulk credits (see carbon.behavior_batch) and events that credit nothing';
CREATE TABLE carbon.behavior_batch (
  entry_id        bigint PRIMARY KEY,
  first_behavior  bigint NOT NULL,
  last_behavior   bigint NOT NULL CHECK (last_behavior >= first_behavior)
);
COMMENT ON TABLE carbon.behavior_batch IS
  '批量入账范围 the behaviours a bulk entry credits: its accounts'' behaviours with ids in the range and no entry of their own';
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_batch', '');
GRANT SELECT ON carbon.behavior_batch TO carbon_auditor;

-- ---------------------------------------------------------------------------
-- What every call reads (settings, assets, the flow matrix, whether a cap
-- exists) is cached in each backend (catalog.c).  A change to one of these
-- tables invalidates the copies when it commits.
-- ---------------------------------------------------------------------------
CREATE FUNCTION carbon._catalog_changed() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_catalog_changed' LANGUAGE C;
CREATE TRIGGER setting_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.setting
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER asset_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.asset
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER allowed_flow_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.allowed_flow
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
-- only whether a cap exists is cached: the running count (UPDATE) is not
CREATE TRIGGER issuance_cap_cached AFTER INSERT OR DELETE OR TRUNCATE ON carbon.issuance_cap
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER methodology_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.methodology
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER source_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.source
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();

-- v_supply in numeric: a segment's issuance may pass the bigint range
-- (the column types change, so the view is made anew).
DROP VIEW carbon.v_supply;
-- Supply per asset, tier and region, from the segment's accounts.  The
-- amounts are numeric: a segment's striped issuance rows may together pass
-- the bigint range, and no view may fail on data the ledger accepted.
CREATE VIEW carbon.v_supply WITH (security_invoker = true) AS
  SELECT s.code AS asset, a.tier, a.region,
         coalesce(-sum(b.amount) FILTER (WHERE a.kind = 'issuance'), 0) AS issued,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'participant'), 0) AS outstanding,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'redeemed'), 0) AS redeemed,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'expired'), 0) AS expired,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'retired'), 0) AS retired,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'cancelled'), 0) AS cancelled,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'escrow'), 0) AS escrow,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'clearing'), 0) AS moved_out
  FROM carbon.balance b
  JOIN carbon.account a ON a.id = b.account
  JOIN carbon.asset s ON s.id = b.asset_id
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_supply IS
  '供应量 per asset, tier and region: issued, outstanding (held by participants), redeemed, expired, retired, cancelled; '
  'escrow and moved_out (net moved to other tiers or regions) close the identity '
  'outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out';

-- verify_integrity() checks that no closed account holds value; the lot
-- assets by code, not by id.
/*
 * verify_integrity(): one row per check.  Read-only; run it as often as you
 * like (it reads the whole ledger).
 */
CREATE OR REPLACE FUNCTION carbon.verify_integrity() RETURNS TABLE (check_name text, ok boolean, detail text)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
#variable_conflict use_column
DECLARE
  n bigint;
  d text;
  sl carbon.seal;
  expected_prev bytea := decode(repeat('00', 32), 'hex');
  recomputed bytea;
  members bigint[];
  bad_seals text[] := '{}';
  last_seal carbon.seal;
  sealed_total bigint := 0;
BEGIN
  -- 1. every entry balances per asset
  SELECT count(*), string_agg(format('entry %s asset %s sums to %s', entry_id, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT entry_id, asset_id, sum(amount) AS total FROM carbon.posting
          GROUP BY entry_id, asset_id HAVING sum(amount) <> 0 ORDER BY entry_id LIMIT 20) u;
  check_name := 'entries_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry sums to zero per asset' ELSE d END;
  RETURN NEXT;

  -- 2. ... and per segment (asset, tier, region): the tiers balance on their own
  SELECT count(*), string_agg(format('entry %s asset %s segment %s/%s sums to %s',
                                     entry_id, asset_id, tier, region, total), '; ')
    INTO n, d
    FROM (SELECT p.entry_id, p.asset_id, a.tier, a.region, sum(p.amount) AS total
          FROM carbon.posting p JOIN carbon.account a ON a.id = p.account
          GROUP BY 1, 2, 3, 4 HAVING sum(p.amount) <> 0 ORDER BY 1 LIMIT 20) u;
  check_name := 'segments_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry balances within each tier and region' ELSE d END;
  RETURN NEXT;

  -- 3. every posting belongs to an entry and an account; every entry has postings
  SELECT count(*) INTO n FROM carbon.posting p
   WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = p.entry_id)
      OR NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = p.account)
      OR NOT EXISTS (SELECT 1 FROM carbon.asset s WHERE s.id = p.asset_id);
  SELECT n + count(*) INTO n FROM carbon.entry e
   WHERE NOT EXISTS (SELECT 1 FROM carbon.posting p WHERE p.entry_id = e.id);
  check_name := 'postings_complete'; ok := n = 0;
  detail := format('%s orphan postings or empty entries', n);
  RETURN NEXT;

  -- 4. balances = Σ postings, for every account and asset
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, postings %s',
                                     account, asset_id, b, p), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, p.account) AS account, coalesce(b.asset_id, p.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(p.total, 0) AS p
          FROM (SELECT account, asset_id, sum(amount) AS total FROM carbon.balance GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(amount) AS total FROM carbon.posting GROUP BY 1, 2) p
            ON p.account = b.account AND p.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(p.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'balances_match_postings'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every balance equals the sum of its postings' ELSE d END;
  RETURN NEXT;

  -- 5. no participant holds less than nothing; issuance never positive, sinks never negative
  SELECT count(*), string_agg(format('%s account %s asset %s: %s', kind, account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT a.kind, b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          GROUP BY 1, 2, 3
          HAVING (a.kind IN ('participant', 'expired', 'redeemed', 'retired', 'cancelled', 'escrow')
                  AND sum(b.amount) < 0)
              OR (a.kind = 'issuance' AND sum(b.amount) > 0)
          ORDER BY 2 LIMIT 20) u;
  check_name := 'balance_signs'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'participants, escrow and sinks >= 0; issuance <= 0' ELSE d END;
  RETURN NEXT;

  -- 6. supply per asset, tier and region: outstanding + escrow =
  --    issued - redeemed - expired - retired - cancelled - net moved out (clearing)
  SELECT count(*), string_agg(format('%s %s/%s off by %s', asset, tier, region, off), '; ')
    INTO n, d
    FROM (SELECT s.code AS asset, a.tier, a.region, sum(b.amount) AS off
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          JOIN carbon.asset s ON s.id = b.asset_id
          GROUP BY 1, 2, 3 HAVING sum(b.amount) <> 0 ORDER BY 1, 2, 3 LIMIT 20) u;
  check_name := 'supply'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN 'outstanding = issued - redeemed - expired - retired - cancelled - moved out, per asset, tier and region'
                 ELSE d END;
  RETURN NEXT;

  -- 7. lots = balances, for every participant and lot asset (POINT, RED)
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, lots %s', account, asset_id, b, l), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, l.account) AS account, coalesce(b.asset_id, l.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(l.total, 0) AS l
          FROM (SELECT x.account, x.asset_id, sum(x.amount) AS total FROM carbon.balance x
                JOIN carbon.account a ON a.id = x.account
                WHERE a.kind = 'participant'
                  AND x.asset_id IN (SELECT id FROM carbon.asset WHERE code IN ('POINT', 'RED'))
                GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(remaining) AS total FROM carbon.lot GROUP BY 1, 2) l
            ON l.account = b.account AND l.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(l.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'lots_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every POINT and RED balance is held in lots' ELSE d END;
  RETURN NEXT;

  -- 8. a closed account holds nothing (api.md §7: it never receives value)
  SELECT count(*), string_agg(format('account %s asset %s holds %s', account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          WHERE a.status = 'closed'
          GROUP BY 1, 2 HAVING sum(b.amount) <> 0 ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'closed_accounts_empty'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'no closed account holds value' ELSE d END;
  RETURN NEXT;

  -- 9. seals: each hash recomputes from the rows and links to the one before
  FOR sl IN SELECT * FROM carbon.seal ORDER BY id LOOP
    members := carbon._seal_members(sl);
    SELECT carbon._sha256_chain(sl.prev_hash, t.line ORDER BY t.id) INTO recomputed
      FROM carbon._entry_text(members) t;
    IF sl.prev_hash <> expected_prev OR recomputed IS DISTINCT FROM sl.hash
       OR cardinality(members) <> sl.entries THEN
      bad_seals := bad_seals || format('seal %s', sl.id);
    END IF;
    expected_prev := sl.hash;
    sealed_total := sealed_total + sl.entries;
    last_seal := sl;
  END LOOP;
  -- ... and no entry appeared inside the sealed range afterwards
  IF last_seal.id IS NOT NULL THEN
    SELECT count(*) INTO n FROM carbon.entry
     WHERE id <= last_seal.max_id AND id <> ALL (last_seal.gaps);
    IF n <> sealed_total THEN
      bad_seals := bad_seals || format('%s entries inside the sealed range, %s sealed', n, sealed_total);
    END IF;
  END IF;
  check_name := 'seals_intact'; ok := cardinality(bad_seals) = 0;
  detail := CASE WHEN cardinality(bad_seals) = 0
                 THEN format('%s seals, %s entries sealed', (SELECT count(*) FROM carbon.seal), sealed_total)
                 ELSE 'tampered: ' || array_to_string(bad_seals, ', ') END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION carbon.verify_integrity() IS
  '完整性校验 every check of the ledger: balanced entries and segments, balances = postings, signs, supply, lots, closed accounts empty, seals';

-- The tier list once, in C; v_points_expiring finds POINT by its code.
CREATE OR REPLACE FUNCTION carbon._valid_tier(text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_valid_tier' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE VIEW carbon.v_points_expiring WITH (security_invoker = true) AS
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


-- co2e times or divided by a plain integer literal (was ambiguous).
-- integer (int4) operands, the type of a plain literal such as 2: without
-- them `reduction * 2` would be ambiguous between bigint and numeric
CREATE FUNCTION carbon.co2e_mul_int4(carbon.co2e, integer) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.int4_mul_co2e(integer, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_int4(carbon.co2e, integer) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = integer,
  FUNCTION = carbon.co2e_mul_int4, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = integer, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.int4_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = integer,
  FUNCTION = carbon.co2e_div_int4);

-- Least privilege: EXECUTE decided for every function in one place; the
-- install-time helper _account_rls is gone; sequences readable by the
-- roles that read everything (pg_dump).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA carbon FROM PUBLIC;
DO $co2e$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'carbon'::regnamespace AND NOT p.prosecdef
             AND (p.proname LIKE 'co2e\_%' OR p.proname IN ('int4_mul_co2e', 'int8_mul_co2e', 'numeric_mul_co2e', 'grams', 'kg', 'tonnes')
                  OR (p.prokind = 'a' AND p.proargtypes[0] = 'carbon.co2e'::regtype))
  LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
  END LOOP;
END
$co2e$;

-- carbon_admin: runs the system.
GRANT EXECUTE ON FUNCTION
  carbon.open_account(text, text, text, text), carbon.account_id(text, text),
  carbon.set_account_status(bigint, text, text), carbon.balance(bigint, text),
  carbon.balance_at(bigint, text, timestamptz), carbon.act_as(bigint), carbon.acting_account(),
  carbon.bind_account(bigint, name), carbon.unbind_account(bigint, name),
  carbon.define_asset(text, text, text),
  carbon.transfer(bigint, bigint, text, bigint, text, text),
  carbon.issue(bigint, text, bigint, text, text), carbon.reverse_entry(bigint, text),
  carbon.seal(), carbon.verify_integrity(),
  carbon.set_setting(text, text),
  carbon.define_methodology(text, int, text, text, text, text, jsonb),
  carbon.submit_methodology(text, int), carbon.approve_methodology(text, int, text),
  carbon.publish_methodology(text, int, timestamptz), carbon.suspend_methodology(text, int),
  carbon.retire_methodology(text, int), carbon.calc_reduction(text, numeric, jsonb, timestamptz),
  carbon.register_source(text, text[], name),
  carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb),
  carbon.process_inbox(int), carbon.expire_lots(timestamptz),
  carbon.set_issuance_cap(text, text, text, int, bigint),
  carbon._valid_tier(text)                    -- CHECK of carbon.allowed_flow, which the admin edits
TO carbon_admin;

-- carbon_auditor: reads everything (but the HMAC key), writes nothing.
GRANT EXECUTE ON FUNCTION
  carbon.balance(bigint, text), carbon.balance_at(bigint, text, timestamptz),
  carbon.verify_integrity(), carbon.account_id(text, text), carbon.acting_account(),
  carbon.calc_reduction(text, numeric, jsonb, timestamptz)
TO carbon_auditor;

-- Scenario operators report behaviour (for their own sources only: checked
-- per source against its operator_role) and COPY into the inbox.
GRANT EXECUTE ON FUNCTION
  carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb),
  carbon.process_inbox(int), carbon.calc_reduction(text, numeric, jsonb, timestamptz)
TO carbon_operator;

GRANT EXECUTE ON FUNCTION carbon.calc_reduction(text, numeric, jsonb, timestamptz) TO carbon_verifier;

-- carbon_app (citizen app backend), carbon_merchant, carbon_trader: act for
-- one account per transaction (act_as; who may act for whom is checked
-- there) and read or move only its value.
GRANT EXECUTE ON FUNCTION
  carbon.open_account(text, text, text, text), carbon.account_id(text, text),
  carbon.calc_reduction(text, numeric, jsonb, timestamptz)
TO carbon_app;
GRANT EXECUTE ON FUNCTION
  carbon.balance(bigint, text), carbon.balance_at(bigint, text, timestamptz),
  carbon.act_as(bigint), carbon.acting_account(),
  carbon.transfer(bigint, bigint, text, bigint, text, text)
TO carbon_app, carbon_merchant, carbon_trader;

-- ---------------------------------------------------------------------------
-- Tables and views.
-- ---------------------------------------------------------------------------
GRANT SELECT ON ALL TABLES IN SCHEMA carbon TO carbon_admin;
GRANT INSERT, UPDATE, DELETE ON carbon.allowed_flow TO carbon_admin;
-- sequences are readable by those who read everything, so that they can
-- pg_dump what they may read (pg_dump reads every sequence of a table)
GRANT SELECT ON ALL SEQUENCES IN SCHEMA carbon TO carbon_admin, carbon_auditor;

GRANT SELECT ON carbon.asset, carbon.account, carbon.account_status_log, carbon.entry,
  carbon.posting, carbon.balance, carbon.request, carbon.allowed_flow, carbon.seal,
  carbon.account_binding
TO carbon_auditor;
GRANT SELECT ON carbon.asset, carbon.allowed_flow TO carbon_app, carbon_merchant, carbon_trader,
  carbon_operator, carbon_verifier;
GRANT SELECT ON carbon.account, carbon.entry, carbon.posting, carbon.balance
  TO carbon_app, carbon_merchant, carbon_trader;


GRANT SELECT ON carbon.v_supply TO carbon_auditor, carbon_admin;
GRANT SELECT ON carbon.account_binding TO carbon_admin, carbon_auditor;
ALTER TABLE carbon.account_binding ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON carbon.account_binding FOR SELECT TO carbon_admin, carbon_auditor USING (true);
-- ---------------------------------------------------------------------------
-- The points mall (issue 18): offers, redemptions, refunds, settlements.
-- ---------------------------------------------------------------------------

CREATE SEQUENCE carbon.offer_id_seq;
CREATE TABLE carbon.offer (
  id                 bigint PRIMARY KEY DEFAULT nextval('carbon.offer_id_seq'),
  merchant           bigint NOT NULL REFERENCES carbon.account (id),
  title              text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  points_cost        bigint NOT NULL CHECK (points_cost > 0),
  stock              int NOT NULL CHECK (stock >= 0),
  valid              tstzrange NOT NULL CHECK (NOT isempty(valid)),
  per_account_limit  int CHECK (per_account_limit > 0),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'closed')),
  created_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 10);   -- few rows, each updated at every redemption: room for HOT updates, index scans
ALTER SEQUENCE carbon.offer_id_seq OWNED BY carbon.offer.id;
CREATE INDEX offer_merchant_idx ON carbon.offer (merchant);
COMMENT ON TABLE carbon.offer IS
  '商城权益 offers of the points mall: a merchant''s item, its price in points, stock, validity and per-account limit';

-- A redemption is named by its entry; it keeps the lot pieces it took
-- (expiry and amount, earliest first) so that a refund gives back the same.
-- Written by redeem() only, which has checked the offer and both accounts:
-- no foreign keys, whose checks would cost three queries per redemption.
CREATE TABLE carbon.redemption (
  entry_id      bigint PRIMARY KEY,
  offer         bigint NOT NULL,
  account       bigint NOT NULL,
  merchant      bigint NOT NULL,
  quantity      int NOT NULL CHECK (quantity > 0),
  unit_points   bigint NOT NULL CHECK (unit_points > 0),
  refunded      int NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= quantity),
  settled_by    bigint,
  at            timestamptz NOT NULL DEFAULT now(),
  lot_expiries  timestamptz[] NOT NULL,
  lot_amounts   bigint[] NOT NULL
                CHECK (cardinality(lot_amounts) = cardinality(lot_expiries))
);
CREATE INDEX redemption_offer_account_idx ON carbon.redemption (offer, account);
CREATE INDEX redemption_account_idx ON carbon.redemption (account);
CREATE INDEX redemption_unsettled_idx ON carbon.redemption (merchant, at) WHERE settled_by IS NULL;
COMMENT ON TABLE carbon.redemption IS
  '积分兑换 redemptions: who took which offer, how many, at what price in points, what was refunded and settled';

CREATE SEQUENCE carbon.refund_id_seq;
CREATE TABLE carbon.refund (
  id              bigint PRIMARY KEY DEFAULT nextval('carbon.refund_id_seq'),
  redemption      bigint NOT NULL REFERENCES carbon.redemption (entry_id),
  quantity        int NOT NULL CHECK (quantity > 0),
  points          bigint NOT NULL CHECK (points >= 0),
  expired_points  bigint NOT NULL CHECK (expired_points >= 0),
  entry_id        bigint,
  at              timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.refund_id_seq OWNED BY carbon.refund.id;
CREATE INDEX refund_redemption_idx ON carbon.refund (redemption);
COMMENT ON TABLE carbon.refund IS
  '退还 refunds of redemptions: points given back with their original expiry, and what had expired meanwhile';

CREATE SEQUENCE carbon.settlement_id_seq;
CREATE TABLE carbon.settlement (
  id        bigint PRIMARY KEY DEFAULT nextval('carbon.settlement_id_seq'),
  merchant  bigint NOT NULL REFERENCES carbon.account (id),
  up_to     timestamptz NOT NULL,
  points    bigint NOT NULL CHECK (points >= 0),
  entry_id  bigint,
  at        timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.settlement_id_seq OWNED BY carbon.settlement.id;
ALTER TABLE carbon.redemption ADD FOREIGN KEY (settled_by) REFERENCES carbon.settlement (id);
CREATE INDEX settlement_merchant_idx ON carbon.settlement (merchant, at);
COMMENT ON TABLE carbon.settlement IS
  '商户结算 merchant settlements: points collected by redemptions moved into the redeemed sink';

SELECT pg_catalog.pg_extension_config_dump('carbon.offer', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.offer_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.redemption', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.refund', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.refund_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.settlement', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.settlement_id_seq', '');

CREATE FUNCTION carbon.create_offer(merchant bigint, title text, points_cost bigint, stock int,
                                    valid tstzrange, per_account_limit int DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_create_offer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.create_offer(bigint, text, bigint, int, tstzrange, int) IS
  '上架权益 a merchant''s offer: price in points, stock, validity, optional per-account limit; returns its id';

CREATE FUNCTION carbon.set_offer_status(offer bigint, status text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_set_offer_status'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_offer_status(bigint, text) IS
  '权益状态 pause (paused), resume (active) or close (closed, final) an offer';

CREATE FUNCTION carbon.restock_offer(offer bigint, quantity int)
  RETURNS int AS 'MODULE_PATHNAME', 'ledger_restock_offer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.restock_offer(bigint, int) IS
  '补货 add stock to an offer; returns the new stock';

CREATE FUNCTION carbon.redeem(account bigint, offer bigint, quantity int DEFAULT 1, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_redeem'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.redeem(bigint, bigint, int, text) IS
  '积分兑换 redeem an offer with points (earliest-expiring lots first); returns the entry id, which names the redemption';

CREATE FUNCTION carbon.refund_redemption(redemption bigint, quantity int DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_refund_redemption'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.refund_redemption(bigint, int, text) IS
  '退还 refund a redemption in full (NULL quantity) or in part: the same lots with their expiry, stock back; '
  'returns the entry id, NULL when all that would return had expired';

CREATE FUNCTION carbon.settle_merchant(merchant bigint, up_to timestamptz DEFAULT now())
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_settle_merchant'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.settle_merchant(bigint, timestamptz) IS
  '商户结算 move what a merchant collected by redemptions up to a time into the redeemed sink; '
  'returns the entry id, NULL when nothing to settle';

-- The catalogue the citizen app shows: offers open now (owner's rights:
-- every reader sees the whole catalogue, not the offer table's rows).
CREATE VIEW carbon.v_offers AS
  SELECT o.id AS offer, o.merchant, a.display_name AS merchant_name, o.title, o.points_cost, o.stock,
         lower(o.valid) AS valid_from, upper(o.valid) AS valid_until, o.per_account_limit
  FROM carbon.offer o
  JOIN carbon.account a ON a.id = o.merchant
  WHERE o.status = 'active' AND o.valid @> now() AND o.stock > 0;
COMMENT ON VIEW carbon.v_offers IS
  '权益目录 the mall''s catalogue: offers open now, with stock left';

CREATE VIEW carbon.v_redemptions WITH (security_invoker = true) AS
  SELECT date_trunc('month', r.at AT TIME ZONE tz.value)::date AS month, r.merchant, r.offer,
         count(*) AS redemptions,
         sum((r.quantity - r.refunded)::bigint * r.unit_points)::bigint AS points
  FROM carbon.redemption r
  CROSS JOIN (SELECT value FROM carbon.settings WHERE name = 'timezone') tz
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_redemptions IS
  '兑换统计 redemptions per month (local), merchant and offer; points net of refunds';

CREATE VIEW carbon.v_merchant_statement WITH (security_invoker = true) AS
  WITH tz AS (SELECT value FROM carbon.settings WHERE name = 'timezone'),
  m AS (SELECT date_trunc('month', r.at AT TIME ZONE tz.value)::date AS month, r.merchant,
               r.quantity::bigint * r.unit_points AS redeemed, 0::bigint AS refunded, 0::bigint AS settled
        FROM carbon.redemption r CROSS JOIN tz
        UNION ALL
        SELECT date_trunc('month', f.at AT TIME ZONE tz.value)::date, r.merchant, 0, f.points + f.expired_points, 0
        FROM carbon.refund f JOIN carbon.redemption r ON r.entry_id = f.redemption CROSS JOIN tz
        UNION ALL
        SELECT date_trunc('month', s.at AT TIME ZONE tz.value)::date, s.merchant, 0, 0, s.points
        FROM carbon.settlement s CROSS JOIN tz)
  SELECT month, merchant, sum(redeemed)::bigint AS points_redeemed, sum(refunded)::bigint AS points_refunded,
         sum(settled)::bigint AS points_settled
  FROM m
  GROUP BY 1, 2;
COMMENT ON VIEW carbon.v_merchant_statement IS
  '商户结算单 per merchant and month (local): points redeemed, refunded (expired pieces included) and settled';

REVOKE EXECUTE ON FUNCTION carbon.create_offer(bigint, text, bigint, int, tstzrange, int),
  carbon.set_offer_status(bigint, text), carbon.restock_offer(bigint, int),
  carbon.redeem(bigint, bigint, int, text), carbon.refund_redemption(bigint, int, text),
  carbon.settle_merchant(bigint, timestamptz) FROM PUBLIC;
REVOKE ALL ON carbon.offer, carbon.redemption, carbon.refund, carbon.settlement, carbon.v_offers,
  carbon.v_redemptions, carbon.v_merchant_statement FROM PUBLIC;
GRANT SELECT ON carbon.offer, carbon.redemption, carbon.refund, carbon.settlement TO carbon_admin;
GRANT SELECT ON carbon.offer_id_seq, carbon.refund_id_seq, carbon.settlement_id_seq TO carbon_admin, carbon_auditor;
-- The points mall (api.md §4, §7): merchants manage their own offers and
-- refund their own redemptions (acting for their bound account); the app
-- redeems for its acting citizen; the admin settles.
GRANT EXECUTE ON FUNCTION
  carbon.create_offer(bigint, text, bigint, int, tstzrange, int), carbon.set_offer_status(bigint, text),
  carbon.restock_offer(bigint, int), carbon.refund_redemption(bigint, int, text)
TO carbon_admin, carbon_merchant;
GRANT EXECUTE ON FUNCTION carbon.redeem(bigint, bigint, int, text) TO carbon_admin, carbon_app;
GRANT EXECUTE ON FUNCTION carbon.settle_merchant(bigint, timestamptz) TO carbon_admin;
GRANT SELECT ON carbon.offer, carbon.redemption, carbon.refund, carbon.settlement TO carbon_auditor, carbon_merchant;
GRANT SELECT ON carbon.redemption, carbon.refund TO carbon_app;
GRANT SELECT ON carbon.v_offers TO carbon_admin, carbon_auditor, carbon_app, carbon_merchant;
GRANT SELECT ON carbon.v_redemptions, carbon.v_merchant_statement TO carbon_admin, carbon_auditor, carbon_merchant;
SELECT carbon._account_rls(ARRAY['offer'], 'merchant');
SELECT carbon._account_rls(ARRAY['redemption'], 'account');
SELECT carbon._account_rls(ARRAY['refund', 'settlement'], NULL);
CREATE POLICY merchant_own ON carbon.redemption FOR SELECT TO carbon_merchant
  USING (merchant = carbon.acting_account());
CREATE POLICY acting_account ON carbon.refund FOR SELECT TO carbon_app, carbon_merchant
  USING (EXISTS (SELECT 1 FROM carbon.redemption r WHERE r.entry_id = refund.redemption
                 AND carbon.acting_account() IN (r.account, r.merchant)));
CREATE POLICY merchant_own ON carbon.settlement FOR SELECT TO carbon_merchant
  USING (merchant = carbon.acting_account());

-- ---------------------------------------------------------------------------
-- Exchange and donations (issue 18): dated rates, the exchange with its
-- carried remainder, the daily limit setting, donation receipts.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE VIEW carbon.settings AS
  SELECT d.name, coalesce(s.value, d.default_value) AS value, d.default_value,
         s.name IS NULL AS is_default, d.description
  FROM (VALUES
    ('points_per_kg',     '100',              '每千克减排量折算积分 points per kg CO2e'),
    ('points_validity',   'end_of_next_year', '积分有效期 end_of_next_year, or an interval such as 1 year'),
    ('acceptance_window', '7 days',           '行为受理时限 how old an event may be when reported'),
    ('timezone',          'Asia/Shanghai',    '本地时区 local time zone for days, months and expiry'),
    ('exchange_daily_limit', '0',             '每日兑换上限 most of one asset an account may exchange per local day (0: no limit)')
  ) AS d(name, default_value, description)
  LEFT JOIN carbon.setting s USING (name);

CREATE OR REPLACE FUNCTION carbon.set_setting(name text, value text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  n numeric;
  iv interval;
BEGIN
  IF name IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'name and value must not be null' USING ERRCODE = '22004';
  END IF;
  CASE name
    WHEN 'points_per_kg' THEN
      IF value !~ '^[0-9]{1,9}$' OR value::bigint = 0 THEN
        RAISE EXCEPTION 'points_per_kg must be a positive whole number, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'points_validity' THEN
      IF value <> 'end_of_next_year' THEN
        BEGIN
          iv := value::interval;
        EXCEPTION WHEN OTHERS THEN
          RAISE EXCEPTION 'points_validity must be end_of_next_year or an interval, not "%"', value
            USING ERRCODE = '22023';
        END;
        IF iv <= interval '0' OR iv > interval '100 years' THEN
          RAISE EXCEPTION 'points_validity must be a positive interval of at most 100 years' USING ERRCODE = '22023';
        END IF;
      END IF;
    WHEN 'acceptance_window' THEN
      BEGIN
        iv := value::interval;
      EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'acceptance_window must be an interval, not "%"', value USING ERRCODE = '22023';
      END;
      IF iv < interval '0' OR iv > interval '100 years' THEN
        RAISE EXCEPTION 'acceptance_window must be between 0 and 100 years' USING ERRCODE = '22023';
      END IF;
    WHEN 'timezone' THEN
      IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE pg_timezone_names.name = value) THEN
        RAISE EXCEPTION 'unknown time zone "%"', value USING ERRCODE = '22023',
          HINT = 'Use a name from pg_timezone_names, such as Asia/Shanghai.';
      END IF;
    WHEN 'exchange_daily_limit' THEN
      IF value !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'exchange_daily_limit must be a whole number (0: no limit), not "%"', value
          USING ERRCODE = '22023';
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown setting "%"', name USING ERRCODE = '22023',
        HINT = 'The settings are listed in carbon.settings.';
  END CASE;
  INSERT INTO carbon.setting AS s (name, value) VALUES (set_setting.name, set_setting.value)
  ON CONFLICT ON CONSTRAINT setting_pkey
  DO UPDATE SET value = excluded.value, changed_by = session_user, changed_at = now();
END $$;


CREATE TABLE carbon.exchange_rate (
  from_asset   text NOT NULL REFERENCES carbon.asset (code),
  to_asset     text NOT NULL REFERENCES carbon.asset (code),
  valid_from   timestamptz NOT NULL,
  numerator    bigint NOT NULL CHECK (numerator > 0),
  denominator  bigint NOT NULL CHECK (denominator > 0),
  set_by       name NOT NULL DEFAULT session_user,
  set_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (from_asset, to_asset, valid_from),
  CHECK (from_asset <> to_asset)
);
COMMENT ON TABLE carbon.exchange_rate IS
  '兑换比例 exchange rates, dated: amount × numerator / denominator, in force from valid_from until the next';

-- The sub-unit remainder of each account's exchanges, per pair: a fraction
-- of one unit of to_asset (0 ≤ carry_num < carry_den), so that nothing is
-- lost to rounding over many exchanges.
CREATE TABLE carbon.exchange_carry (
  account    bigint NOT NULL REFERENCES carbon.account (id),
  from_asset text NOT NULL,
  to_asset   text NOT NULL,
  carry_num  bigint NOT NULL CHECK (carry_num >= 0),
  carry_den  bigint NOT NULL CHECK (carry_den > 0 AND carry_num < carry_den),
  PRIMARY KEY (account, from_asset, to_asset)
);
COMMENT ON TABLE carbon.exchange_carry IS
  '兑换余数 the fraction of a unit each account is owed per exchange pair, carried to its next exchange';

CREATE TABLE carbon.exchange (
  entry_id     bigint PRIMARY KEY,
  account      bigint NOT NULL REFERENCES carbon.account (id),
  from_asset   text NOT NULL,
  amount       bigint NOT NULL CHECK (amount > 0),
  to_asset     text NOT NULL,
  received     bigint NOT NULL CHECK (received >= 0),
  numerator    bigint NOT NULL,
  denominator  bigint NOT NULL,
  local_day    date NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exchange_account_day_idx ON carbon.exchange (account, from_asset, local_day);
COMMENT ON TABLE carbon.exchange IS '兑换记录 exchanges: what went out, what came in, at which rate';

CREATE TABLE carbon.donation (
  entry_id   bigint PRIMARY KEY,
  account    bigint NOT NULL REFERENCES carbon.account (id),
  recipient  bigint NOT NULL REFERENCES carbon.account (id),
  amount     bigint NOT NULL CHECK (amount > 0),
  receipt    text NOT NULL UNIQUE,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX donation_account_idx ON carbon.donation (account);
COMMENT ON TABLE carbon.donation IS
  '积分捐赠 donations of points, each with its receipt number (捐赠证书) the donor can show';

SELECT pg_catalog.pg_extension_config_dump('carbon.exchange_rate', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.exchange_carry', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.exchange', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.donation', '');

CREATE FUNCTION carbon.set_exchange_rate(from_asset text, to_asset text, numerator bigint, denominator bigint,
                                         valid_from timestamptz)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF from_asset IS NULL OR to_asset IS NULL OR numerator IS NULL OR denominator IS NULL OR valid_from IS NULL THEN
    RAISE EXCEPTION 'no argument of set_exchange_rate may be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.asset a WHERE a.code = set_exchange_rate.from_asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', from_asset USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.asset a WHERE a.code = set_exchange_rate.to_asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', to_asset USING ERRCODE = '22023';
  END IF;
  IF from_asset = to_asset THEN
    RAISE EXCEPTION 'an exchange rate is between two different assets' USING ERRCODE = '22023';
  END IF;
  IF numerator <= 0 OR denominator <= 0 THEN
    RAISE EXCEPTION 'a rate''s numerator and denominator are positive' USING ERRCODE = '22023';
  END IF;
  -- a rate applies from valid_from only: never to exchanges already made
  -- (a rate dated back is fine while no exchange of the pair came since)
  IF valid_from <= now() AND EXISTS (SELECT 1 FROM carbon.exchange x
                                     WHERE x.from_asset = set_exchange_rate.from_asset
                                       AND x.to_asset = set_exchange_rate.to_asset
                                       AND x.at >= set_exchange_rate.valid_from) THEN
    RAISE EXCEPTION 'exchanges of % into % were made since the new rate''s valid_from: it would apply to them',
      from_asset, to_asset USING ERRCODE = '22023',
      HINT = 'Exchanges already made keep the rate they were made at: date the new rate after the last of them.';
  END IF;
  INSERT INTO carbon.exchange_rate AS r (from_asset, to_asset, valid_from, numerator, denominator)
  VALUES (set_exchange_rate.from_asset, set_exchange_rate.to_asset, set_exchange_rate.valid_from,
          set_exchange_rate.numerator, set_exchange_rate.denominator)
  ON CONFLICT ON CONSTRAINT exchange_rate_pkey
  DO UPDATE SET numerator = excluded.numerator, denominator = excluded.denominator,
                set_by = session_user, set_at = now();
END $$;
COMMENT ON FUNCTION carbon.set_exchange_rate(text, text, bigint, bigint, timestamptz) IS
  '设置兑换比例 a rate from_asset → to_asset, amount × numerator / denominator, in force from valid_from';

CREATE FUNCTION carbon.exchange(account bigint, from_asset text, amount bigint, to_asset text,
                                request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_exchange'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.exchange(bigint, text, bigint, text, text) IS
  '兑换 exchange an amount of one asset for another at the rate in force, floor(amount × n / d) with the '
  'remainder carried; returns the entry id';

CREATE FUNCTION carbon.donate(account bigint, recipient bigint, amount bigint, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_donate'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.donate(bigint, bigint, bigint, text) IS
  '积分捐赠 donate points to a government or public-welfare account where allowed_flow allows it; '
  'returns the entry id, which names the receipt in carbon.donation';

REVOKE EXECUTE ON FUNCTION carbon.set_exchange_rate(text, text, bigint, bigint, timestamptz),
  carbon.exchange(bigint, text, bigint, text, text), carbon.donate(bigint, bigint, bigint, text) FROM PUBLIC;
GRANT SELECT ON carbon.exchange_rate, carbon.exchange_carry, carbon.exchange, carbon.donation TO carbon_admin;
-- Exchange and donation (api.md §4): the app exchanges and donates for its
-- acting citizen; the admin sets the rates; rates are public to the roles
-- that read the catalogue.
GRANT EXECUTE ON FUNCTION carbon.set_exchange_rate(text, text, bigint, bigint, timestamptz) TO carbon_admin;
GRANT EXECUTE ON FUNCTION carbon.exchange(bigint, text, bigint, text, text), carbon.donate(bigint, bigint, bigint, text)
TO carbon_admin, carbon_app;
GRANT SELECT ON carbon.exchange_rate TO carbon_auditor, carbon_app, carbon_merchant, carbon_trader;
GRANT SELECT ON carbon.exchange, carbon.exchange_carry, carbon.donation TO carbon_auditor;
GRANT SELECT ON carbon.exchange, carbon.donation TO carbon_app;
SELECT carbon._account_rls(ARRAY['exchange', 'donation'], 'account');
SELECT carbon._account_rls(ARRAY['exchange_carry'], NULL);

-- >>> the reports' monthly summary of behaviours (issue 21, B8)
-- Credited behaviours (accepted or capped) per local month, region,
-- scenario, methodology and account: written by the engine as it records
-- them and by reversals, read by the reports instead of the behaviours
-- (B8); verify_integrity() checks it against them.  One row per account:
-- no two callers write the same row.
CREATE TABLE carbon.behavior_monthly (
  month        date NOT NULL,
  region       text NOT NULL,
  scenario     text NOT NULL,
  methodology  text NOT NULL,
  account      bigint NOT NULL,
  events       bigint NOT NULL CHECK (events >= 0),
  grams        bigint NOT NULL,
  points       bigint NOT NULL,
  PRIMARY KEY (month, region, scenario, methodology, account)
) WITH (fillfactor = 90);
CREATE INDEX behavior_monthly_account_idx ON carbon.behavior_monthly (account, month);
COMMENT ON TABLE carbon.behavior_monthly IS
  '月度行为汇总 credited behaviours per local month, region, scenario, methodology and account (events, grams CO2e, points), kept as behaviours are recorded and reversed';
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_monthly', '');
GRANT SELECT ON carbon.behavior_monthly TO carbon_admin;
-- what the behaviours recorded so far add up to
INSERT INTO carbon.behavior_monthly (month, region, scenario, methodology, account, events, grams, points)
SELECT date_trunc('month', b.local_day::timestamp)::date, a.region, b.scenario, b.methodology, b.account, count(*),
       sum(carbon.grams(b.reduction))::bigint, sum(b.points)::bigint
FROM carbon.behavior b JOIN carbon.account a ON a.id = b.account
WHERE b.status IN ('accepted', 'capped')
GROUP BY 1, 2, 3, 4, 5;
CREATE OR REPLACE VIEW carbon.v_reduction_monthly WITH (security_invoker = true) AS
  -- from the monthly summary (one row per account: participants = rows)
  SELECT s.month, s.region, s.scenario, s.methodology,
         sum(s.events)::bigint AS events, count(*) AS participants,
         carbon.co2e_grams(sum(s.grams)::bigint) AS reduction
  FROM carbon.behavior_monthly s
  WHERE s.events > 0
  GROUP BY 1, 2, 3, 4;
-- <<< the reports' monthly summary of behaviours

-- ---------------------------------------------------------------------------
-- Projects and certified units (issue 19), the market (issue 20), the books
-- of carbon units (issue 21): new
-- settings, buffer_pct in methodologies, verify_integrity() checks serial
-- blocks; then the units and market parts of the install script, the same
-- text as in src/sql (the upgrade suite compares the result).
-- ---------------------------------------------------------------------------

CREATE OR REPLACE VIEW carbon.settings AS
  SELECT d.name, coalesce(s.value, d.default_value) AS value, d.default_value,
         s.name IS NULL AS is_default, d.description
  FROM (VALUES
    ('points_per_kg',     '100',              '每千克减排量折算积分 points per kg CO2e'),
    ('points_validity',   'end_of_next_year', '积分有效期 end_of_next_year, or an interval such as 1 year'),
    ('acceptance_window', '7 days',           '行为受理时限 how old an event may be when reported'),
    ('timezone',          'Asia/Shanghai',    '本地时区 local time zone for days, months and expiry'),
    ('exchange_daily_limit', '0',             '每日兑换上限 most of one asset an account may exchange per local day (0: no limit)'),
    ('trade_fee_bps',     '0',                '交易手续费 market fee on each side of a trade, in basis points of its value (0 to 1000)'),
    ('gtc_max_days',      '90',               '长期委托最长有效期 days a GTC order rests at most before it is cancelled (1 to 3650)')
  ) AS d(name, default_value, description)
  LEFT JOIN carbon.setting s USING (name);
COMMENT ON VIEW carbon.settings IS '设置 every setting, its value and its default';

CREATE OR REPLACE FUNCTION carbon.set_setting(name text, value text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  n numeric;
  iv interval;
BEGIN
  IF name IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'name and value must not be null' USING ERRCODE = '22004';
  END IF;
  CASE name
    WHEN 'points_per_kg' THEN
      IF value !~ '^[0-9]{1,9}$' OR value::bigint = 0 THEN
        RAISE EXCEPTION 'points_per_kg must be a positive whole number, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'points_validity' THEN
      IF value <> 'end_of_next_year' THEN
        BEGIN
          iv := value::interval;
        EXCEPTION WHEN OTHERS THEN
          RAISE EXCEPTION 'points_validity must be end_of_next_year or an interval, not "%"', value
            USING ERRCODE = '22023';
        END;
        IF iv <= interval '0' OR iv > interval '100 years' THEN
          RAISE EXCEPTION 'points_validity must be a positive interval of at most 100 years' USING ERRCODE = '22023';
        END IF;
      END IF;
    WHEN 'acceptance_window' THEN
      BEGIN
        iv := value::interval;
      EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'acceptance_window must be an interval, not "%"', value USING ERRCODE = '22023';
      END;
      IF iv < interval '0' OR iv > interval '100 years' THEN
        RAISE EXCEPTION 'acceptance_window must be between 0 and 100 years' USING ERRCODE = '22023';
      END IF;
    WHEN 'timezone' THEN
      IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE pg_timezone_names.name = value) THEN
        RAISE EXCEPTION 'unknown time zone "%"', value USING ERRCODE = '22023',
          HINT = 'Use a name from pg_timezone_names, such as Asia/Shanghai.';
      END IF;
    WHEN 'exchange_daily_limit' THEN
      IF value !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'exchange_daily_limit must be a whole number (0: no limit), not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'trade_fee_bps' THEN
      IF value !~ '^[0-9]{1,4}$' OR value::int > 1000 THEN
        RAISE EXCEPTION 'trade_fee_bps must be a whole number of basis points from 0 to 1000, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'gtc_max_days' THEN
      IF value !~ '^[0-9]{1,4}$' OR value::int NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'gtc_max_days must be a whole number of days from 1 to 3650, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown setting "%"', name USING ERRCODE = '22023',
        HINT = 'The settings are listed in carbon.settings.';
  END CASE;
  INSERT INTO carbon.setting AS s (name, value) VALUES (set_setting.name, set_setting.value)
  ON CONFLICT ON CONSTRAINT setting_pkey
  DO UPDATE SET value = excluded.value, changed_by = session_user, changed_at = now();
END $$;

CREATE OR REPLACE FUNCTION carbon._check_params(formula text, params jsonb) RETURNS void
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  required text[];
  k text;
  v jsonb;
  n numeric;
BEGIN
  required := CASE formula
    WHEN 'distance_substitution' THEN ARRAY['baseline_g_per_pkm', 'project_g_per_pkm']
    WHEN 'per_unit' THEN ARRAY['g_per_unit']
    WHEN 'personal_baseline' THEN ARRAY['baseline', 'g_per_unit']
    WHEN 'flat' THEN ARRAY['g_per_event'] END;
  IF required IS NULL THEN
    RAISE EXCEPTION 'unknown formula "%"', formula USING ERRCODE = '22023',
      HINT = 'Formulas are distance_substitution, per_unit, personal_baseline and flat.';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  FOREACH k IN ARRAY required LOOP
    IF NOT params ? k THEN
      RAISE EXCEPTION 'parameter "%" is missing', k USING ERRCODE = '22023',
        DETAIL = format('Formula %s needs %s.', formula, array_to_string(required, ', '));
    END IF;
  END LOOP;
  FOREACH k IN ARRAY required || ARRAY['daily_cap_g', 'max_activity'] LOOP
    v := params -> k;
    CONTINUE WHEN v IS NULL;
    IF jsonb_typeof(v) <> 'number' THEN
      RAISE EXCEPTION 'parameter "%" must be a number', k USING ERRCODE = '22023';
    END IF;
    n := v::text::numeric;
    IF n < 0 THEN
      RAISE EXCEPTION 'parameter "%" must not be negative', k USING ERRCODE = '22023';
    END IF;
    IF length(replace(trim(leading '0' FROM replace(n::text, '.', '')), '-', '')) > 18 THEN
      RAISE EXCEPTION 'parameter "%" has more than 18 significant digits', k USING ERRCODE = '22023';
    END IF;
    IF k = 'daily_cap_g' AND n <> trunc(n) THEN
      RAISE EXCEPTION 'parameter "daily_cap_g" must be a whole number of grams' USING ERRCODE = '22023';
    END IF;
  END LOOP;
  -- buffer_pct: the share of a forestry issuance set aside for the buffer pool
  IF params ? 'buffer_pct' AND (jsonb_typeof(params -> 'buffer_pct') <> 'number'
       OR (params ->> 'buffer_pct')::numeric NOT IN (SELECT generate_series(0, 50))) THEN
    RAISE EXCEPTION 'parameter "buffer_pct" must be a whole number from 0 to 50' USING ERRCODE = '22023';
  END IF;
  IF formula = 'distance_substitution'
     AND (params ->> 'baseline_g_per_pkm')::numeric < (params ->> 'project_g_per_pkm')::numeric THEN
    RAISE EXCEPTION 'parameter "project_g_per_pkm" exceeds "baseline_g_per_pkm"' USING ERRCODE = '22023',
      DETAIL = 'The project must emit less than the baseline it replaces.';
  END IF;
END $$;

/*
 * verify_integrity(): one row per check.  Read-only; run it as often as you
 * like (it reads the whole ledger).
 */
CREATE OR REPLACE FUNCTION carbon.verify_integrity() RETURNS TABLE (check_name text, ok boolean, detail text)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
#variable_conflict use_column
DECLARE
  n bigint;
  d text;
  sl carbon.seal;
  expected_prev bytea := decode(repeat('00', 32), 'hex');
  recomputed bytea;
  members bigint[];
  bad_seals text[] := '{}';
  last_seal carbon.seal;
  sealed_total bigint := 0;
  recomputed_total numeric;
BEGIN
  -- 1. every entry balances per asset
  SELECT count(*), string_agg(format('entry %s asset %s sums to %s', entry_id, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT entry_id, asset_id, sum(amount) AS total FROM carbon.posting
          GROUP BY entry_id, asset_id HAVING sum(amount) <> 0 ORDER BY entry_id LIMIT 20) u;
  check_name := 'entries_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry sums to zero per asset' ELSE d END;
  RETURN NEXT;

  -- 2. ... and per segment (asset, tier, region): the tiers balance on their own
  SELECT count(*), string_agg(format('entry %s asset %s segment %s/%s sums to %s',
                                     entry_id, asset_id, tier, region, total), '; ')
    INTO n, d
    FROM (SELECT p.entry_id, p.asset_id, a.tier, a.region, sum(p.amount) AS total
          FROM carbon.posting p JOIN carbon.account a ON a.id = p.account
          GROUP BY 1, 2, 3, 4 HAVING sum(p.amount) <> 0 ORDER BY 1 LIMIT 20) u;
  check_name := 'segments_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry balances within each tier and region' ELSE d END;
  RETURN NEXT;

  -- 3. every posting belongs to an entry and an account; every entry has postings
  SELECT count(*) INTO n FROM carbon.posting p
   WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = p.entry_id)
      OR NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = p.account)
      OR NOT EXISTS (SELECT 1 FROM carbon.asset s WHERE s.id = p.asset_id);
  SELECT n + count(*) INTO n FROM carbon.entry e
   WHERE NOT EXISTS (SELECT 1 FROM carbon.posting p WHERE p.entry_id = e.id);
  check_name := 'postings_complete'; ok := n = 0;
  detail := format('%s orphan postings or empty entries', n);
  RETURN NEXT;

  -- 4. balances = Σ postings, for every account and asset
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, postings %s',
                                     account, asset_id, b, p), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, p.account) AS account, coalesce(b.asset_id, p.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(p.total, 0) AS p
          FROM (SELECT account, asset_id, sum(amount) AS total FROM carbon.balance GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(amount) AS total FROM carbon.posting GROUP BY 1, 2) p
            ON p.account = b.account AND p.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(p.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'balances_match_postings'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every balance equals the sum of its postings' ELSE d END;
  RETURN NEXT;

  -- 5. no participant holds less than nothing; issuance never positive, sinks never negative
  SELECT count(*), string_agg(format('%s account %s asset %s: %s', kind, account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT a.kind, b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          GROUP BY 1, 2, 3
          HAVING (a.kind IN ('participant', 'expired', 'redeemed', 'retired', 'cancelled', 'escrow')
                  AND sum(b.amount) < 0)
              OR (a.kind = 'issuance' AND sum(b.amount) > 0)
          ORDER BY 2 LIMIT 20) u;
  check_name := 'balance_signs'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'participants, escrow and sinks >= 0; issuance <= 0' ELSE d END;
  RETURN NEXT;

  -- 6. supply per asset, tier and region: outstanding + escrow =
  --    issued - redeemed - expired - retired - cancelled - net moved out (clearing)
  SELECT count(*), string_agg(format('%s %s/%s off by %s', asset, tier, region, off), '; ')
    INTO n, d
    FROM (SELECT s.code AS asset, a.tier, a.region, sum(b.amount) AS off
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          JOIN carbon.asset s ON s.id = b.asset_id
          GROUP BY 1, 2, 3 HAVING sum(b.amount) <> 0 ORDER BY 1, 2, 3 LIMIT 20) u;
  check_name := 'supply'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN 'outstanding = issued - redeemed - expired - retired - cancelled - moved out, per asset, tier and region'
                 ELSE d END;
  RETURN NEXT;

  -- 7. lots = balances, for every participant and lot asset (POINT, RED)
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, lots %s', account, asset_id, b, l), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, l.account) AS account, coalesce(b.asset_id, l.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(l.total, 0) AS l
          FROM (SELECT x.account, x.asset_id, sum(x.amount) AS total FROM carbon.balance x
                JOIN carbon.account a ON a.id = x.account
                WHERE a.kind = 'participant'
                  AND x.asset_id IN (SELECT id FROM carbon.asset WHERE code IN ('POINT', 'RED'))
                GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(remaining) AS total FROM carbon.lot GROUP BY 1, 2) l
            ON l.account = b.account AND l.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(l.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'lots_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every POINT and RED balance is held in lots' ELSE d END;
  RETURN NEXT;

  -- 8. a closed account holds nothing (api.md §7: it never receives value)
  SELECT count(*), string_agg(format('account %s asset %s holds %s', account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          WHERE a.status = 'closed'
          GROUP BY 1, 2 HAVING sum(b.amount) <> 0 ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'closed_accounts_empty'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'no closed account holds value' ELSE d END;
  RETURN NEXT;

  -- 9. serial blocks = CER balances: every participant's held blocks, and
  --    the retired and cancelled blocks of each segment its sinks
  SELECT count(*), string_agg(format('account %s: CER balance %s, blocks %s', account, b, u), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, u.account) AS account, coalesce(b.total, 0) AS b, coalesce(u.total, 0) AS u
          FROM (SELECT x.account, sum(x.amount) AS total FROM carbon.balance x
                JOIN carbon.account a ON a.id = x.account
                WHERE a.kind IN ('participant', 'escrow', 'retired', 'cancelled')
                  AND x.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')
                GROUP BY 1) b
          FULL JOIN (SELECT CASE WHEN k.state = 'held' THEN k.account ELSE s.id END AS account,
                            sum(k.last - k.first + 1) AS total
                     FROM carbon.unit_block k
                     JOIN carbon.account h ON h.id = k.account
                     LEFT JOIN carbon.account s ON k.state <> 'held' AND s.kind = k.state AND s.tier = h.tier
                       AND s.region = h.region AND s.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')
                     GROUP BY 1) u
            ON u.account = b.account
          WHERE coalesce(b.total, 0) <> coalesce(u.total, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'units_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every CER balance (held, in escrow, retired, cancelled) is its serial blocks' ELSE d END;
  RETURN NEXT;

  -- 10. serials: the blocks of each issuance cover exactly its range (no
  --     overlap: exclusion constraints), and CER issued = serials issued
  SELECT count(*), string_agg(format('issuance %s: %s serials in blocks of %s', id, want, got), '; ')
    INTO n, d
    FROM (SELECT i.id, i.last - i.first + 1 AS want,
                 coalesce((SELECT sum(k.last - k.first + 1) FROM carbon.unit_block k
                           WHERE k.project * 4294967296 + k.first
                                 BETWEEN i.project * 4294967296 + i.first AND i.project * 4294967296 + i.last
                             AND k.issuance = i.id AND k.first >= i.first AND k.last <= i.last), 0) AS got
          FROM carbon.unit_issuance i) x
   WHERE want <> got;
  SELECT n + count(*) INTO n FROM carbon.unit_block k
   WHERE NOT EXISTS (SELECT 1 FROM carbon.unit_issuance i
                     WHERE i.id = k.issuance AND k.first >= i.first AND k.last <= i.last);
  SELECT coalesce(sum(last - first + 1), 0) INTO recomputed_total FROM carbon.unit_issuance;
  IF recomputed_total <> coalesce((SELECT -sum(b.amount) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                                   WHERE a.kind = 'issuance'
                                     AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')), 0) THEN
    n := n + 1;
    d := coalesce(d || '; ', '') || format('%s serials issued, CER issuance accounts say otherwise', recomputed_total);
  END IF;
  check_name := 'serials_cover_issuances'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN format('%s serials issued, each in exactly one block', recomputed_total)
                 ELSE d END;
  RETURN NEXT;

  -- 10a. the reports' monthly summary of behaviours (B8) is the behaviours
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('%s %s %s %s account %s: summary %s events, %s g, %s points; behaviours %s, %s g, %s points',
                        k.month, k.region, k.scenario, k.methodology, k.account, s.events, s.grams, s.points,
                        b.events, b.grams, b.points) AS msg
          FROM (SELECT month, region, scenario, methodology, account FROM carbon.behavior_monthly
                UNION
                SELECT date_trunc('month', b.local_day::timestamp)::date, a.region, b.scenario, b.methodology, b.account
                FROM carbon.behavior b JOIN carbon.account a ON a.id = b.account
                WHERE b.status IN ('accepted', 'capped')) k
          LEFT JOIN carbon.behavior_monthly s USING (month, region, scenario, methodology, account)
          LEFT JOIN (SELECT date_trunc('month', b.local_day::timestamp)::date AS month, a.region, b.scenario,
                            b.methodology, b.account, count(*) AS events, sum(carbon.grams(b.reduction)) AS grams,
                            sum(b.points) AS points
                     FROM carbon.behavior b JOIN carbon.account a ON a.id = b.account
                     WHERE b.status IN ('accepted', 'capped') GROUP BY 1, 2, 3, 4, 5) b
            USING (month, region, scenario, methodology, account)
          WHERE coalesce(s.events, 0) <> coalesce(b.events, 0) OR coalesce(s.grams, 0) <> coalesce(b.grams, 0)
             OR coalesce(s.points, 0) <> coalesce(b.points, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'behavior_summary_matches'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'the monthly summary the reports read is the credited behaviours' ELSE d END;
  RETURN NEXT;

  -- 10a'. what members earned while in their groups is the behaviours of those days
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('group %s %s account %s: kept %s events, %s g, %s points; behaviours %s, %s g, %s points',
                        k.group_id, k.month, k.account, c.events, c.grams, c.points, b.events, b.grams, b.points) AS msg
          FROM (SELECT group_id, month, account FROM carbon.group_credit
                UNION
                SELECT m.group_id, date_trunc('month', b.local_day::timestamp)::date, b.account
                FROM carbon.behavior b JOIN carbon.group_member m ON m.account = b.account
                 AND b.local_day >= m.since AND (m.until IS NULL OR b.local_day <= m.until)
                WHERE b.status IN ('accepted', 'capped')) k
          LEFT JOIN carbon.group_credit c USING (group_id, month, account)
          LEFT JOIN (SELECT m.group_id, date_trunc('month', b.local_day::timestamp)::date AS month, b.account,
                            count(*) AS events, sum(carbon.grams(b.reduction)) AS grams, sum(b.points) AS points
                     FROM carbon.behavior b JOIN carbon.group_member m ON m.account = b.account
                      AND b.local_day >= m.since AND (m.until IS NULL OR b.local_day <= m.until)
                     WHERE b.status IN ('accepted', 'capped') GROUP BY 1, 2, 3) b
            USING (group_id, month, account)
          WHERE coalesce(c.events, 0) <> coalesce(b.events, 0) OR coalesce(c.grams, 0) <> coalesce(b.grams, 0)
             OR coalesce(c.points, 0) <> coalesce(b.points, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'group_credit_matches'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'what members earned while in their groups is their behaviours of those days' ELSE d END;
  RETURN NEXT;

  -- 10b. the books of carbon units (80_accounting.sql): each book-keeping
  --      account's pool holds its serial blocks (held and in escrow) at the
  --      cost its 1489 lines leave, and every booking balances
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('account %s: books %s t at %s fen, blocks %s t, 1489 lines %s fen',
                        a.id, coalesce(c.tonnes, 0), coalesce(c.cost, 0), coalesce(k.tonnes, 0),
                        coalesce(l.net, 0)) AS msg
          FROM carbon.account a
          LEFT JOIN carbon.unit_cost c ON c.account = a.id
          LEFT JOIN (SELECT account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                     WHERE state IN ('held', 'escrow') GROUP BY 1) k ON k.account = a.id
          LEFT JOIN (SELECT account, sum(dr_1489 - cr_1489) AS net FROM carbon.accounting_voucher
                     GROUP BY 1) l ON l.account = a.id
          WHERE a.kind = 'participant' AND a.tier IN ('enterprise', 'government')
            AND (coalesce(c.tonnes, 0) <> coalesce(k.tonnes, 0) OR coalesce(c.cost, 0) <> coalesce(l.net, 0))
          UNION ALL
          SELECT format('voucher %s of account %s: debits %s, credits %s', id, account,
                        dr_1489 + dr_1002 + dr_6711, cr_1489 + cr_1002 + cr_6301)
          FROM carbon.accounting_voucher WHERE dr_1489 + dr_1002 + dr_6711 <> cr_1489 + cr_1002 + cr_6301
          ORDER BY 1 LIMIT 20) x;
  check_name := 'books_match_units'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN 'the books of carbon units hold every unit at the cost of its 1489 lines, and balance'
                 ELSE d END;
  RETURN NEXT;

  -- 11. seals: each hash recomputes from the rows and links to the one before
  FOR sl IN SELECT * FROM carbon.seal ORDER BY id LOOP
    members := carbon._seal_members(sl);
    SELECT carbon._sha256_chain(sl.prev_hash, t.line ORDER BY t.id) INTO recomputed
      FROM carbon._entry_text(members) t;
    IF sl.prev_hash <> expected_prev OR recomputed IS DISTINCT FROM sl.hash
       OR cardinality(members) <> sl.entries THEN
      bad_seals := bad_seals || format('seal %s', sl.id);
    END IF;
    expected_prev := sl.hash;
    sealed_total := sealed_total + sl.entries;
    last_seal := sl;
  END LOOP;
  -- ... and no entry appeared inside the sealed range afterwards
  IF last_seal.id IS NOT NULL THEN
    SELECT count(*) INTO n FROM carbon.entry
     WHERE id <= last_seal.max_id AND id <> ALL (last_seal.gaps);
    IF n <> sealed_total THEN
      bad_seals := bad_seals || format('%s entries inside the sealed range, %s sealed', n, sealed_total);
    END IF;
  END IF;
  check_name := 'seals_intact'; ok := cardinality(bad_seals) = 0;
  detail := CASE WHEN cardinality(bad_seals) = 0
                 THEN format('%s seals, %s entries sealed', (SELECT count(*) FROM carbon.seal), sealed_total)
                 ELSE 'tampered: ' || array_to_string(bad_seals, ', ') END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION carbon.verify_integrity() IS
  '完整性校验 every check of the ledger: balanced entries and segments, balances = postings, signs, supply, lots, closed accounts empty, serial blocks = unit balances, serials cover issuances, behaviour summary, group credits, books of carbon units, seals';

-- ---------------------------------------------------------------------------
-- Projects and certified units (api.md §5; domain.md flows 3 and 5).
--
-- A project is registered against a published methodology, publicised for
-- at least 7 working days, approved; its monitoring reports (periods that
-- never overlap) are verified by an independent verifier and issued once,
-- in whole tonnes, as serial blocks REGION-VINTAGE-PROJECTCODE-FIRST-LAST.
-- The lifecycle is PL/pgSQL here; everything that moves units is C
-- (units.c): serial blocks are a holdings module of the journal, beside
-- lots, so that the CER balance of every account is the sum of its blocks.
-- ---------------------------------------------------------------------------

CREATE TABLE carbon.holiday (
  day   date PRIMARY KEY,
  name  text
);
COMMENT ON TABLE carbon.holiday IS
  '法定节假日 public holidays: not counted as working days of a project''s publicity (公示)';

CREATE SEQUENCE carbon.project_id_seq;
CREATE TABLE carbon.project (
  id                   bigint PRIMARY KEY DEFAULT nextval('carbon.project_id_seq'),
  owner                bigint NOT NULL REFERENCES carbon.account (id),
  code                 text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9]([A-Za-z0-9_-]{0,30}[A-Za-z0-9])?$'),
  title                text NOT NULL CHECK (title <> ''),
  methodology          text NOT NULL,
  methodology_version  int NOT NULL,
  class                text NOT NULL CHECK (class IN ('I', 'II')),
  region               text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  additionality        text NOT NULL CHECK (additionality <> ''),
  pooled               boolean NOT NULL DEFAULT false,
  status               text NOT NULL DEFAULT 'registered'
                       CHECK (status IN ('registered', 'publicized', 'approved')),
  publicity_starts     date,
  registered_at        timestamptz NOT NULL DEFAULT now(),
  approved_at          timestamptz,
  next_serial          bigint NOT NULL DEFAULT 1 CHECK (next_serial BETWEEN 1 AND 1000000000),
  debt_tonnes          bigint NOT NULL DEFAULT 0 CHECK (debt_tonnes >= 0),
  FOREIGN KEY (methodology, methodology_version) REFERENCES carbon.methodology (code, version)
);
ALTER SEQUENCE carbon.project_id_seq OWNED BY carbon.project.id;
CREATE INDEX project_owner_idx ON carbon.project (owner);
COMMENT ON TABLE carbon.project IS
  '减排项目 reduction projects: registered → publicized (公示) → approved (备案); next_serial numbers its units, debt_tonnes is what a recall left owing';

CREATE SEQUENCE carbon.monitoring_report_id_seq;
CREATE TABLE carbon.monitoring_report (
  id             bigint PRIMARY KEY DEFAULT nextval('carbon.monitoring_report_id_seq'),
  project        bigint NOT NULL REFERENCES carbon.project (id),
  period         daterange NOT NULL CHECK (NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)),
  claimed        carbon.co2e NOT NULL CHECK (carbon.grams(claimed) > 0),
  evidence       jsonb NOT NULL DEFAULT '{}',
  status         text NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'verified', 'issued')),
  submitted_at   timestamptz NOT NULL DEFAULT now(),
  verifier       bigint REFERENCES carbon.account (id),
  verified       carbon.co2e CHECK (carbon.grams(verified) >= 0 AND carbon.grams(verified) <= carbon.grams(claimed)),
  opinion        text,
  verified_at    timestamptz,
  issued_tonnes  bigint,
  remainder      carbon.co2e,
  issued_at      timestamptz,
  -- the periods of one project never overlap (23P01), whoever inserts
  CONSTRAINT monitoring_period_excl
    EXCLUDE USING gist (int8range(project, project, '[]') WITH &&, period WITH &&)
);
ALTER SEQUENCE carbon.monitoring_report_id_seq OWNED BY carbon.monitoring_report.id;
COMMENT ON TABLE carbon.monitoring_report IS
  '监测报告 monitoring reports: submitted → verified (核查) → issued (签发, once); remainder is the part under a whole tonne, recorded and not issued';

-- An issuance: one serial range per block issued for a report (the
-- owner's, the buffer pool's, a recall debt repaid).  No serial is ever
-- issued twice: the exclusion constraint, not only the numbering.
CREATE SEQUENCE carbon.unit_issuance_id_seq;
CREATE TABLE carbon.unit_issuance (
  id                   bigint PRIMARY KEY DEFAULT nextval('carbon.unit_issuance_id_seq'),
  report               bigint NOT NULL REFERENCES carbon.monitoring_report (id),
  project              bigint NOT NULL REFERENCES carbon.project (id),
  region               text NOT NULL,
  vintage              int NOT NULL,
  first                bigint NOT NULL CHECK (first >= 1),
  last                 bigint NOT NULL CHECK (last >= first AND last <= 999999999),
  block                text NOT NULL CHECK (block IN ('owner', 'buffer', 'debt')),
  account              bigint NOT NULL,
  class                text NOT NULL CHECK (class IN ('I', 'II')),
  methodology          text NOT NULL,
  methodology_version  int NOT NULL,
  factors              jsonb NOT NULL,
  entry_id             bigint NOT NULL,
  issued_at            timestamptz NOT NULL DEFAULT now(),
  recalled_at          timestamptz,
  recall_reason        text,
  CONSTRAINT unit_issuance_serial_excl
    EXCLUDE USING gist (int8range(project, project, '[]') WITH &&, int8range(first, last, '[]') WITH &&)
);
ALTER SEQUENCE carbon.unit_issuance_id_seq OWNED BY carbon.unit_issuance.id;
CREATE INDEX unit_issuance_report_idx ON carbon.unit_issuance (report);
COMMENT ON TABLE carbon.unit_issuance IS
  '签发 issued serial ranges, with the methodology version, class and factors used; never overlapping';

-- Value domains of the serial blocks and the market.  A table's CHECK
-- constraint is parsed again by every statement that writes the table
-- (ExecConstraints reads it from the catalog's text each time); a domain's
-- check is planned once per backend (the type cache).  So the single-column
-- rules of the tables every order writes are domains: the same rules, and a
-- value that breaks one fails with 23514 naming the domain.  The views show
-- these columns as their base types (text, bigint).
CREATE DOMAIN carbon.positive_amount AS bigint CHECK (VALUE > 0);
COMMENT ON DOMAIN carbon.positive_amount IS 'a price (fen per tonne) or a quantity (tonnes) greater than 0';
CREATE DOMAIN carbon.nonnegative_amount AS bigint CHECK (VALUE >= 0);
COMMENT ON DOMAIN carbon.nonnegative_amount IS 'fen or tonnes, 0 or more';
CREATE DOMAIN carbon.order_side AS text CHECK (VALUE IN ('buy', 'sell'));
CREATE DOMAIN carbon.time_in_force AS text CHECK (VALUE IN ('GTC', 'DAY', 'IOC', 'FOK'));
CREATE DOMAIN carbon.order_status AS text
  CHECK (VALUE IN ('open', 'partially_filled', 'filled', 'cancelled', 'rejected'));
CREATE DOMAIN carbon.block_state AS text CHECK (VALUE IN ('held', 'escrow', 'retired', 'cancelled'));
CREATE DOMAIN carbon.unit_event_kind AS text
  CHECK (VALUE IN ('issuance', 'split', 'transfer', 'retirement', 'cancellation', 'recall', 'escrow', 'release', 'trade'));
CREATE DOMAIN carbon.instrument_code AS text CHECK (VALUE ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$');
CREATE DOMAIN carbon.basis_points AS int CHECK (VALUE BETWEEN 0 AND 10000);
CREATE DOMAIN carbon.tradable_class AS text CHECK (VALUE = 'I');

-- Holdings: every issued serial is in exactly one block, held by an
-- account or retired or cancelled by it (final states).  Blocks split as
-- units move; a unique key and a check after every write keep any serial in
-- one block (below).
-- CACHE: a batch's blocks draw their ids from a backend's own run of 32
-- (1,500 instructions a value fewer, 1 % of a B4 order); nothing orders
-- blocks by id (the holding order is vintage, since, project, first)
CREATE SEQUENCE carbon.unit_block_id_seq CACHE 32;
CREATE TABLE carbon.unit_block (
  id           bigint PRIMARY KEY DEFAULT nextval('carbon.unit_block_id_seq'),
  issuance     bigint NOT NULL,
  project      bigint NOT NULL,
  vintage      int NOT NULL,
  class        text NOT NULL,
  first        bigint NOT NULL,
  last         bigint NOT NULL CHECK (last >= first),
  account      bigint NOT NULL,
  state        carbon.block_state NOT NULL DEFAULT 'held',
  entry_id     bigint NOT NULL,   -- the entry that last moved it (a retirement's names its certificate)
  since        timestamptz NOT NULL DEFAULT now(),
  escrow_order bigint,            -- the sell order the block is escrowed for (state escrow)
  CHECK ((state = 'escrow') = (escrow_order IS NOT NULL)),
  CHECK (project BETWEEN 1 AND 2147483647 AND first >= 1 AND last < 4294967296)
);
ALTER SEQUENCE carbon.unit_block_id_seq OWNED BY carbon.unit_block.id;
-- No two blocks share a serial.  Each block is keyed by its first serial
-- (one key across projects: project × 2^32 + serial; serials stay below
-- 10^9, project.next_serial), unique; after every statement that writes
-- blocks, the trigger below (invariants.c) checks that each new block's
-- neighbours by that key end before it and begin after it (two probes of
-- this index, with a dirty snapshot: a neighbour another transaction is
-- writing is waited for, as an exclusion constraint does).  An
-- exclusion constraint over the range (GiST) did the same at a quarter of
-- B4's time: wide ranges (what is left of a large holding) overlap in its
-- pages, so every check read several of them.
CREATE UNIQUE INDEX unit_block_serial_key ON carbon.unit_block ((project * 4294967296 + first));
CREATE FUNCTION carbon._unit_block_no_overlap() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_unit_block_no_overlap' LANGUAGE C;
CREATE TRIGGER unit_block_no_overlap AFTER INSERT ON carbon.unit_block
  REFERENCING NEW TABLE AS new_blocks FOR EACH STATEMENT EXECUTE FUNCTION carbon._unit_block_no_overlap();
-- a holder's blocks in the order they leave it: oldest vintage, then first
-- in, first out (units.c, piece_cmp)
CREATE INDEX unit_block_held_idx ON carbon.unit_block (account, vintage, since, project, first) WHERE state = 'held';
-- the units a holder may not trade (class II): few or none, so that the
-- market counts class I units as the CER balance less these (units.c)
CREATE INDEX unit_block_untradable_idx ON carbon.unit_block (account) WHERE state = 'held' AND class <> 'I';
-- no index on issuance: an issuance's blocks are found by their first
-- serial within its range (unit_block_serial_key; LEDGER_BLOCK_OF_ISSUANCE
-- in src/ledger.h), and every block the market writes had an entry here
CREATE INDEX unit_block_escrow_idx ON carbon.unit_block (escrow_order, vintage, project, first) WHERE state = 'escrow';
COMMENT ON TABLE carbon.unit_block IS
  '序列号块 serial blocks: who holds (or has in escrow for a sell order, or retired, or cancelled) which serials';

-- History of every block: issuance, split, transfer, retirement,
-- cancellation, recall; escrow for a sell order, its release, a trade
-- (append-only).
CREATE SEQUENCE carbon.unit_event_id_seq;
CREATE TABLE carbon.unit_event (
  id            bigint NOT NULL DEFAULT nextval('carbon.unit_event_id_seq'),
  issuance      bigint NOT NULL,
  project       bigint NOT NULL,
  first         bigint NOT NULL,
  last          bigint NOT NULL,
  event         carbon.unit_event_kind NOT NULL,
  from_account  bigint,
  to_account    bigint,
  entry_id      bigint,
  at            timestamptz NOT NULL DEFAULT now(),
  reference     text,
  -- one index, a serial's events (serial_history): two events a trade, and
  -- a second index on id alone cost each an entry more; id comes from the
  -- sequence and only the extension writes events, never changing one, so
  -- it is unique all the same
  PRIMARY KEY (project, first, id)
);
ALTER SEQUENCE carbon.unit_event_id_seq OWNED BY carbon.unit_event.id;
COMMENT ON TABLE carbon.unit_event IS
  '序列号流转 every event that touched a serial block';

-- Retirements (注销抵消): the certificate id is the SHA-256 of the
-- canonical content rebuilt from the row (units.c), so an altered row no
-- longer verifies.  A recall flags, and does not change, the content.
CREATE TABLE carbon.retirement (
  certificate    text PRIMARY KEY CHECK (certificate ~ '^[0-9a-f]{64}$'),
  account        bigint NOT NULL,
  tonnes         bigint NOT NULL CHECK (tonnes > 0),
  purpose        text NOT NULL CHECK (purpose IN ('event_neutrality', 'entity_neutrality',
                   'eco_damage_compensation', 'voluntary', 'compliance_offset')),
  beneficiary    text NOT NULL CHECK (beneficiary <> ''),
  jurisdiction   text NOT NULL CHECK (jurisdiction ~ '^[0-9]{6}$'),
  reference      text,
  serials        text[] NOT NULL,
  entry_id       bigint NOT NULL,
  retired_at     timestamptz NOT NULL,
  recalled_at    timestamptz,
  recall_reason  text
);
CREATE INDEX retirement_account_idx ON carbon.retirement (account);
CREATE INDEX retirement_entry_idx ON carbon.retirement (entry_id);   -- a buy that retires: one per fill
COMMENT ON TABLE carbon.retirement IS
  '注销证明 retirement certificates: who retired how many tonnes, for whom, why, and which serials';

-- The text of a serial range.
CREATE FUNCTION carbon.serial_text(region text, vintage int, code text, first bigint, last bigint)
  RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  -- text || text only (immutable), so that the planner inlines it
  RETURN region || '-' || vintage::text || '-' || code || '-' || lpad(first::text, 9, '0') || '-' || lpad(last::text, 9, '0');
COMMENT ON FUNCTION carbon.serial_text(text, int, text, bigint, bigint) IS
  '序列号 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST (9-digit numbers)';

-- ---- the lifecycle (PL/pgSQL: bookkeeping, no value moves) ----

-- The acting check of the value functions, for PL/pgSQL callers.
CREATE FUNCTION carbon._require_acting(account bigint) RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_require_acting' LANGUAGE C VOLATILE STRICT;

-- Working days from `starts` to `until` inclusive: weekends and carbon.holiday excluded.
-- Counted, not enumerated: whole weeks have 5, the days left over are
-- looked at one by one, and the holidays on weekdays are subtracted.
CREATE FUNCTION carbon.working_days(starts date, until date) RETURNS int
  LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  n bigint;
  weeks bigint;
  first_dow int;
  extra int := 0;
BEGIN
  IF NOT isfinite(starts) OR NOT isfinite(until) THEN
    RAISE EXCEPTION 'working days are counted between finite dates' USING ERRCODE = '22023';
  END IF;
  IF until < starts THEN
    RETURN 0;
  END IF;
  n := (until - starts)::bigint + 1;
  weeks := n / 7;
  first_dow := extract(isodow FROM starts)::int;   -- the leftover days start on the same weekday
  FOR k IN 0 .. (n % 7)::int - 1 LOOP
    IF (first_dow - 1 + k) % 7 < 5 THEN
      extra := extra + 1;
    END IF;
  END LOOP;
  RETURN (weeks * 5 + extra - (SELECT count(*) FROM carbon.holiday h
                               WHERE h.day BETWEEN starts AND until AND extract(isodow FROM h.day) < 6))::int;
END $$;
COMMENT ON FUNCTION carbon.working_days(date, date) IS
  '工作日 working days from starts to until inclusive, weekends and carbon.holiday excluded';

CREATE FUNCTION carbon._local_today() RETURNS date
  LANGUAGE sql STABLE SET search_path = pg_catalog, carbon, pg_temp
  RETURN (now() AT TIME ZONE (SELECT value FROM carbon.settings WHERE name = 'timezone'))::date;

CREATE FUNCTION carbon._project(p bigint) RETURNS carbon.project
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  r carbon.project;
BEGIN
  IF p IS NULL THEN
    RAISE EXCEPTION 'project must not be null' USING ERRCODE = '22004';
  END IF;
  SELECT * INTO r FROM carbon.project WHERE id = p FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'project % does not exist', p USING ERRCODE = '22023';
  END IF;
  RETURN r;
END $$;

CREATE FUNCTION carbon.register_project(owner bigint, code text, title text, methodology text,
                                        region text, additionality text) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  o carbon.account;
  m carbon.methodology;
  id bigint;
BEGIN
  IF owner IS NULL OR code IS NULL OR title IS NULL OR methodology IS NULL OR region IS NULL
     OR additionality IS NULL THEN
    RAISE EXCEPTION 'no argument of register_project may be null' USING ERRCODE = '22004';
  END IF;
  IF code !~ '^[A-Za-z0-9]([A-Za-z0-9_-]{0,30}[A-Za-z0-9])?$' THEN
    RAISE EXCEPTION 'invalid project code "%"', code USING ERRCODE = '22023',
      HINT = 'A project code is 1 to 32 letters, digits, underscores or dashes, beginning and ending with a letter or digit (it is part of every serial).';
  END IF;
  IF region !~ '^[0-9]{6}$' THEN
    RAISE EXCEPTION 'invalid region "%"', region USING ERRCODE = '22023',
      HINT = 'A region is a 6-digit administrative division code, e.g. 620700.';
  END IF;
  IF title = '' OR additionality = '' THEN
    RAISE EXCEPTION 'a project needs a title and its additionality argument' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO o FROM carbon.account a WHERE a.id = owner;
  IF NOT FOUND OR o.kind <> 'participant' THEN
    RAISE EXCEPTION 'account % is not a participant account', owner USING ERRCODE = '22023';
  END IF;
  -- a verifier may own a project (api.md: verifying its own is CL008);
  -- a merchant may not (it holds points, not units)
  IF o.tier NOT IN ('personal', 'enterprise', 'government', 'platform', 'verifier') THEN
    RAISE EXCEPTION 'a % account cannot own a project', o.tier USING ERRCODE = '22023',
      HINT = 'Project owners are enterprise, government, platform (pooling), verifier or personal accounts.';
  END IF;
  PERFORM carbon._require_acting(owner);
  IF o.status <> 'active' THEN
    RAISE EXCEPTION 'account % is %', owner, o.status USING ERRCODE = 'CL002';
  END IF;
  SELECT * INTO m FROM carbon.methodology x
   WHERE x.code = register_project.methodology AND x.status = 'published' AND x.effective_from <= now()
   ORDER BY x.effective_from DESC, x.version DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'methodology "%" is not in force', methodology USING ERRCODE = 'CL006',
      HINT = 'A project is registered against a published methodology.';
  END IF;
  INSERT INTO carbon.project (owner, code, title, methodology, methodology_version, class, region,
                              additionality, pooled)
  VALUES (owner, code, title, m.code, m.version, m.class, region, additionality, o.tier = 'platform')
  RETURNING project.id INTO id;
  RETURN id;
EXCEPTION WHEN unique_violation THEN
  RAISE EXCEPTION 'project code "%" is taken', code USING ERRCODE = '23505';
END $$;
COMMENT ON FUNCTION carbon.register_project(bigint, text, text, text, text, text) IS
  '项目登记 register a reduction project against the methodology in force; returns its id';

CREATE FUNCTION carbon.publicize_project(project bigint, starts date) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
BEGIN
  IF starts IS NULL THEN
    RAISE EXCEPTION 'starts must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT isfinite(starts) THEN
    RAISE EXCEPTION 'publicity starts on a date, not %', starts USING ERRCODE = '22023';
  END IF;
  p := carbon._project(project);
  IF p.status <> 'registered' THEN
    RAISE EXCEPTION 'project % is %, not registered', p.code, p.status USING ERRCODE = 'CL007',
      HINT = 'Publicity (公示) follows registration, once.';
  END IF;
  UPDATE carbon.project SET status = 'publicized', publicity_starts = starts WHERE id = p.id;
END $$;
COMMENT ON FUNCTION carbon.publicize_project(bigint, date) IS
  '项目公示 start the publicity period of a registered project';

CREATE FUNCTION carbon.approve_project(project bigint) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
  today date := carbon._local_today();
  days int;
BEGIN
  p := carbon._project(project);
  IF p.status <> 'publicized' THEN
    RAISE EXCEPTION 'project % is %, not publicized', p.code, p.status USING ERRCODE = 'CL007',
      HINT = 'A project is approved after at least 7 working days of publicity.';
  END IF;
  days := CASE WHEN p.publicity_starts > today THEN 0 ELSE carbon.working_days(p.publicity_starts, today) END;
  IF days < 7 THEN
    RAISE EXCEPTION 'project % has had % working days of publicity, 7 are needed', p.code, days
      USING ERRCODE = 'CL007',
      DETAIL = format('Publicity started %s; weekends and carbon.holiday days do not count.', p.publicity_starts);
  END IF;
  UPDATE carbon.project SET status = 'approved', approved_at = now() WHERE id = p.id;
END $$;
COMMENT ON FUNCTION carbon.approve_project(bigint) IS
  '项目备案 approve a project after at least 7 working days of publicity';

CREATE FUNCTION carbon.submit_monitoring(project bigint, period daterange, claimed carbon.co2e,
                                         evidence jsonb DEFAULT '{}') RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
  id bigint;
BEGIN
  IF period IS NULL OR claimed IS NULL THEN
    RAISE EXCEPTION 'period and claimed must not be null' USING ERRCODE = '22004';
  END IF;
  -- a bound of -infinity is not an unbounded range (lower_inf is false for
  -- it); a year before 1000 makes a vintage that no serial carries: units
  -- issued for it could never be named, retired or recalled by serial
  IF isempty(period) OR lower_inf(period) OR upper_inf(period)
     OR NOT isfinite(lower(period)) OR NOT isfinite(upper(period)) THEN
    RAISE EXCEPTION 'a monitoring period is a finite, non-empty date range' USING ERRCODE = '22023';
  END IF;
  IF lower(period) < date '1000-01-01' THEN
    RAISE EXCEPTION 'a monitoring period starts in the year 1000 or later' USING ERRCODE = '22023',
      DETAIL = format('The period %s starts before it; a serial''s vintage has four digits.', period);
  END IF;
  IF upper(period) > carbon._local_today() + 1 THEN
    RAISE EXCEPTION 'a monitoring period cannot end in the future' USING ERRCODE = '22023',
      DETAIL = format('The period %s ends after today.', period);
  END IF;
  IF carbon.grams(claimed) <= 0 THEN
    RAISE EXCEPTION 'the claimed reduction must be positive' USING ERRCODE = '22023';
  END IF;
  IF evidence IS NULL OR jsonb_typeof(evidence) <> 'object' THEN
    RAISE EXCEPTION 'evidence must be a JSON object' USING ERRCODE = '22023';
  END IF;
  p := carbon._project(project);
  PERFORM carbon._require_acting(p.owner);
  IF p.status <> 'approved' THEN
    RAISE EXCEPTION 'project % is %, not approved', p.code, p.status USING ERRCODE = 'CL007';
  END IF;
  BEGIN
    INSERT INTO carbon.monitoring_report (project, period, claimed, evidence)
    VALUES (p.id, period, claimed, evidence) RETURNING monitoring_report.id INTO id;
  EXCEPTION WHEN exclusion_violation THEN
    RAISE EXCEPTION 'the period % overlaps an earlier monitoring report of project %', period, p.code
      USING ERRCODE = '23P01',
      DETAIL = (SELECT format('Report %s covers %s.', r.id, r.period) FROM carbon.monitoring_report r
                WHERE r.project = p.id AND r.period && submit_monitoring.period ORDER BY r.id LIMIT 1);
  END;
  RETURN id;
END $$;
COMMENT ON FUNCTION carbon.submit_monitoring(bigint, daterange, carbon.co2e, jsonb) IS
  '提交监测报告 submit a monitoring report for a period that overlaps no earlier report of the project';

CREATE FUNCTION carbon.verify_monitoring(report bigint, verifier bigint, verified carbon.co2e, opinion text)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  r carbon.monitoring_report;
  p carbon.project;
  v carbon.account;
  o carbon.account;
BEGIN
  IF report IS NULL OR verifier IS NULL OR verified IS NULL OR opinion IS NULL THEN
    RAISE EXCEPTION 'no argument of verify_monitoring may be null' USING ERRCODE = '22004';
  END IF;
  IF opinion = '' THEN
    RAISE EXCEPTION 'a verification states its opinion' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO r FROM carbon.monitoring_report m WHERE m.id = report FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'monitoring report % does not exist', report USING ERRCODE = '22023';
  END IF;
  IF carbon.grams(verified) < 0 OR carbon.grams(verified) > carbon.grams(r.claimed) THEN
    RAISE EXCEPTION 'the verified reduction % is not between 0 and the claimed %', verified, r.claimed
      USING ERRCODE = '22023';
  END IF;
  PERFORM carbon._require_acting(verifier);
  SELECT * INTO p FROM carbon.project x WHERE x.id = r.project;
  SELECT * INTO o FROM carbon.account a WHERE a.id = p.owner;
  SELECT * INTO v FROM carbon.account a WHERE a.id = verifier;
  IF NOT FOUND OR v.kind <> 'participant' OR v.tier <> 'verifier' OR v.status <> 'active' THEN
    RAISE EXCEPTION 'account % is not an active verifier', verifier USING ERRCODE = 'CL008',
      HINT = 'Monitoring is verified by an active account of the verifier tier.';
  END IF;
  IF v.id = o.id OR v.ref_hash = o.ref_hash THEN
    RAISE EXCEPTION 'verifier % may not verify project % of its own', verifier, p.code USING ERRCODE = 'CL008',
      DETAIL = 'The verifier and the project''s owner are the same legal person.';
  END IF;
  IF r.status <> 'submitted' THEN
    RAISE EXCEPTION 'monitoring report % is %, not submitted', report, r.status USING ERRCODE = 'CL007';
  END IF;
  UPDATE carbon.monitoring_report m
     SET status = 'verified', verifier = v.id, verified = verify_monitoring.verified,
         opinion = verify_monitoring.opinion, verified_at = now()
   WHERE m.id = r.id;
END $$;
COMMENT ON FUNCTION carbon.verify_monitoring(bigint, bigint, carbon.co2e, text) IS
  '核查 verify a monitoring report: an active verifier that is not the owner; verified ≤ claimed';

-- ---- units (C: units.c) ----

CREATE FUNCTION carbon.issue_units(report bigint) RETURNS TABLE (serial text, tonnes bigint)
  AS 'MODULE_PATHNAME', 'ledger_issue_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.issue_units(bigint) IS
  '签发 issue a verified report''s whole tonnes as serial blocks (buffer share and recall debt first)';

CREATE FUNCTION carbon.transfer_units(from_account bigint, to_account bigint, tonnes bigint,
                                      memo text DEFAULT NULL, request_id text DEFAULT NULL) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_transfer_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.transfer_units(bigint, bigint, bigint, text, text) IS
  '转让 transfer certified units, oldest vintage first, splitting blocks; returns the entry id';

CREATE FUNCTION carbon.retire_units(account bigint, tonnes bigint, purpose text, beneficiary text,
                                    reference text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS TABLE (certificate text, serials text[])
  AS 'MODULE_PATHNAME', 'ledger_retire_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.retire_units(bigint, bigint, text, text, text, text) IS
  '注销抵消 retire units (oldest vintage first) for a beneficiary; returns the certificate (SHA-256) and serials';

CREATE FUNCTION carbon.retire_serials(account bigint, serials text, purpose text, beneficiary text,
                                      reference text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS TABLE (certificate text, serials text[])
  AS 'MODULE_PATHNAME', 'ledger_retire_serials'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.retire_serials(bigint, text, text, text, text, text) IS
  '按序列号注销 retire a named serial range the account holds in full';

CREATE FUNCTION carbon.cancel_units(account bigint, tonnes bigint, reason text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_cancel_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.cancel_units(bigint, bigint, text) IS
  '行政注销 cancel units administratively (oldest vintage first); returns the entry id';

CREATE FUNCTION carbon.recall_issuance(serial text, reason text)
  RETURNS TABLE (serials text[], cancelled bigint, flagged bigint)
  AS 'MODULE_PATHNAME', 'ledger_recall_issuance'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.recall_issuance(text, text) IS
  '撤销签发 recall the issuance containing a serial: held units cancelled, retired ones flagged, the buffer drawn, the rest owed';

CREATE FUNCTION carbon.verify_certificate(certificate text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_verify_certificate'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.verify_certificate(text) IS
  '验证注销证明 true when the certificate exists and its content still hashes to its id; never an error';

CREATE FUNCTION carbon.certificate(certificate text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ledger_certificate'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.certificate(text) IS
  '注销证明 a certificate''s canonical content, whether it verifies, and any recall flag (NULL if unknown)';

CREATE FUNCTION carbon.tradable_units(account bigint) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_tradable_units'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.tradable_units(bigint) IS
  '可交易 the class I tonnes an account holds: the only units that may reach the market';

CREATE FUNCTION carbon.parse_serial(serial text)
  RETURNS TABLE (region text, vintage int, project_code text, first bigint, last bigint)
  AS 'MODULE_PATHNAME', 'ledger_parse_serial'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION carbon.parse_serial(text) IS
  '解析序列号 the parts of REGION-VINTAGE-PROJECTCODE-FIRST-LAST (22P02 when malformed)';

-- ---- views ----

CREATE VIEW carbon.v_projects WITH (security_invoker = true) AS
  SELECT p.id AS project, p.code, p.status, p.owner, p.region,
         -- from the public registry of issuances (monitoring reports are their owner's and verifiers')
         coalesce((SELECT sum(i.last - i.first + 1) FROM carbon.unit_issuance i WHERE i.project = p.id), 0)::bigint
           AS issued_tonnes
  FROM carbon.project p;
COMMENT ON VIEW carbon.v_projects IS '减排项目 projects: status, owner, region and tonnes issued';
COMMENT ON COLUMN carbon.v_projects.issued_tonnes IS '已签发 tonnes issued to the project (owner, buffer and debt blocks)';

CREATE VIEW carbon.v_issuances WITH (security_invoker = true) AS
  SELECT carbon.serial_text(i.region, i.vintage, p.code, i.first, i.last) AS serial, i.project, i.vintage,
         (i.last - i.first + 1) AS tonnes, i.issued_at
  FROM carbon.unit_issuance i JOIN carbon.project p ON p.id = i.project;
COMMENT ON VIEW carbon.v_issuances IS '签发 every serial block issued: project, vintage, tonnes';

CREATE VIEW carbon.v_retirements WITH (security_invoker = true) AS
  SELECT certificate, account, tonnes, purpose, beneficiary, reference, retired_at
  FROM carbon.retirement;
COMMENT ON VIEW carbon.v_retirements IS '注销抵消 retirements and their certificates';

CREATE VIEW carbon.v_serial_history WITH (security_invoker = true) AS
  SELECT carbon.serial_text(i.region, i.vintage, p.code, e.first, e.last) AS serial_block, e.event::text AS event,
         e.from_account, e.to_account, (e.last - e.first + 1) AS tonnes, e.at, e.reference
  FROM carbon.unit_event e
  JOIN carbon.unit_issuance i ON i.id = e.issuance
  JOIN carbon.project p ON p.id = e.project;
CREATE FUNCTION carbon.serial_history(serial text)
  RETURNS TABLE (serial_block text, event text, from_account bigint, to_account bigint, tonnes bigint,
                 at timestamptz, reference text)
  LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp
BEGIN ATOMIC
  SELECT carbon.serial_text(i.region, i.vintage, p.code, e.first, e.last), e.event,
         e.from_account, e.to_account, (e.last - e.first + 1), e.at, e.reference
  FROM carbon.parse_serial(serial) s
  JOIN carbon.project p ON p.code = s.project_code
  JOIN carbon.unit_event e ON e.project = p.id AND e.first <= s.last AND e.last >= s.first
  JOIN carbon.unit_issuance i ON i.id = e.issuance
  WHERE i.region = s.region AND i.vintage = s.vintage
  ORDER BY e.id;
END;
COMMENT ON FUNCTION carbon.serial_history(text) IS
  '序列号追溯 every event of the blocks that contain a serial (or overlap a range), in order';

COMMENT ON VIEW carbon.v_serial_history IS
  '序列号流转 every issuance, split, transfer, trade, escrow and release, retirement, cancellation and recall of every block (carbon.serial_history(serial) follows one serial)';

SELECT pg_catalog.pg_extension_config_dump('carbon.holiday', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.project', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.project_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.monitoring_report', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.monitoring_report_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_issuance', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_issuance_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_block', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_block_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_event', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.retirement', '');


-- ---------------------------------------------------------------------------
-- The voluntary reduction market (api.md §6; domain.md flow 4): cash
-- deposits and withdrawals, a price–time priority order book per
-- instrument, matching in C (market.c) with delivery versus payment, escrow
-- of cash and units while orders rest, the daily close.  Prices are fen per
-- tonne in the tables, numeric yuan in arguments and views.
-- ---------------------------------------------------------------------------

CREATE TABLE carbon.instrument (
  code             carbon.instrument_code PRIMARY KEY,
  asset_id         smallint NOT NULL REFERENCES carbon.asset (id),
  class            carbon.tradable_class NOT NULL,
  reference_price  carbon.positive_amount,
  band_bps         carbon.basis_points NOT NULL DEFAULT 1000,
  reference_set_at timestamptz,
  book_version     bigint NOT NULL DEFAULT 0   -- bumped by every change of the book (its lock)
) WITH (fillfactor = 50);
COMMENT ON TABLE carbon.instrument IS
  '交易品种 instruments: CER-I is class I certified units; reference price (fen per tonne) and the ±band around it (a row is created on first use, so that a dump carries it whole)';

CREATE SEQUENCE carbon.market_order_id_seq;
CREATE TABLE carbon.market_order (
  id              bigint PRIMARY KEY DEFAULT nextval('carbon.market_order_id_seq'),
  instrument      text NOT NULL,
  account         bigint NOT NULL,
  side            carbon.order_side NOT NULL,
  price           carbon.positive_amount,              -- fen per tonne; NULL: a market order
  tonnes          carbon.positive_amount NOT NULL,
  filled          carbon.nonnegative_amount NOT NULL DEFAULT 0 CHECK (filled <= tonnes),
  turnover        carbon.nonnegative_amount NOT NULL DEFAULT 0,   -- fen traded
  fees            carbon.nonnegative_amount NOT NULL DEFAULT 0,
  tif             carbon.time_in_force NOT NULL,
  status          carbon.order_status NOT NULL,
  escrow          carbon.nonnegative_amount NOT NULL DEFAULT 0,       -- fen (buy) or tonnes (sell) still held
  retire_for      text,
  retire_purpose  text,
  trade_day       date NOT NULL,
  expires_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz,
  end_reason      text,
  CHECK ((status IN ('open', 'partially_filled')) = (ended_at IS NULL)),
  CHECK (status IN ('open', 'partially_filled') OR escrow = 0)
) WITH (fillfactor = 70);
ALTER SEQUENCE carbon.market_order_id_seq OWNED BY carbon.market_order.id;
-- the book: resting orders of each side in price–time priority (ended_at IS NULL
-- is status open or partially_filled, by the CHECK above; a predicate on status
-- would make every fill that changes it a non-heap-only update, with an entry
-- in each index)
CREATE INDEX market_order_bids_idx ON carbon.market_order (instrument, price DESC, id)
  WHERE side = 'buy' AND ended_at IS NULL;
CREATE INDEX market_order_asks_idx ON carbon.market_order (instrument, price, id)
  WHERE side = 'sell' AND ended_at IS NULL;
CREATE INDEX market_order_account_idx ON carbon.market_order (account);
COMMENT ON TABLE carbon.market_order IS
  '委托 orders: status open → partially_filled → filled, or cancelled (by its owner, at expiry, by self-trade prevention, unfilled IOC/market), or rejected (FOK, market with nothing to match); escrow is what is still held for it';

CREATE SEQUENCE carbon.trade_id_seq;
CREATE TABLE carbon.trade (
  id          bigint NOT NULL DEFAULT nextval('carbon.trade_id_seq'),
  instrument  text NOT NULL,
  buy_order   bigint NOT NULL,
  sell_order  bigint NOT NULL,
  buyer       bigint NOT NULL,
  seller      bigint NOT NULL,
  price       carbon.positive_amount NOT NULL,
  tonnes      carbon.positive_amount NOT NULL,
  buyer_fee   carbon.nonnegative_amount NOT NULL,
  seller_fee  carbon.nonnegative_amount NOT NULL,
  aggressor   carbon.order_side NOT NULL,
  trade_day   date NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  entry_id    bigint NOT NULL,
  serials     text[] NOT NULL,
  -- one index, the market's days (v_market_daily), for both: a second
  -- index on id alone cost every trade an entry more; id comes from the
  -- sequence and only the extension writes trades, never changing one, so
  -- it is unique all the same
  PRIMARY KEY (instrument, trade_day, id)
);
ALTER SEQUENCE carbon.trade_id_seq OWNED BY carbon.trade.id;
CREATE INDEX trade_buy_order_idx ON carbon.trade (buy_order);
CREATE INDEX trade_sell_order_idx ON carbon.trade (sell_order);
COMMENT ON TABLE carbon.trade IS
  '成交 trades: price (fen per tonne) of the resting order, tonnes, fees; units and cash settled in the same entry (delivery versus payment)';

-- The market's days: one row per closed day (close_market_day is idempotent).
CREATE TABLE carbon.market_day (
  instrument   text NOT NULL,
  day          date NOT NULL,
  closed_at    timestamptz NOT NULL DEFAULT now(),
  reference    bigint,
  expired      bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (instrument, day)
);
COMMENT ON TABLE carbon.market_day IS '闭市 closed market days: the reference price set and the orders expired';

-- ---- functions (C: market.c) ----

CREATE FUNCTION carbon.deposit_cash(account bigint, amount numeric, reference text, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_deposit_cash'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.deposit_cash(bigint, numeric, text, text) IS
  '入金 cash in (yuan, 2 decimals) from the cash gateway; returns the entry id';

CREATE FUNCTION carbon.withdraw_cash(account bigint, amount numeric, reference text, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_withdraw_cash'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.withdraw_cash(bigint, numeric, text, text) IS
  '出金 cash out (yuan) to the cash gateway; what is held in escrow cannot be withdrawn';

CREATE FUNCTION carbon.place_order(account bigint, side text, tonnes bigint, price numeric DEFAULT NULL,
                                   tif text DEFAULT 'GTC', instrument text DEFAULT 'CER-I',
                                   request_id text DEFAULT NULL, retire_for text DEFAULT NULL,
                                   retire_purpose text DEFAULT 'voluntary')
  RETURNS TABLE (order_id bigint, status text, filled bigint, avg_price numeric)
  AS 'MODULE_PATHNAME', 'ledger_place_order'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.place_order(bigint, text, bigint, numeric, text, text, text, text, text) IS
  '委托 place a limit (price) or market (NULL) order: escrow, price–time matching, delivery versus payment';

CREATE FUNCTION carbon.cancel_order(order_id bigint) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_cancel_order'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.cancel_order(bigint) IS
  '撤单 cancel a resting order and release its escrow; false when it had already ended';

CREATE FUNCTION carbon.set_reference_price(instrument text, price numeric) RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_set_reference_price'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_reference_price(text, numeric) IS
  '基准价 set an instrument''s reference price (yuan per tonne): orders must lie within ±10 % of it';

CREATE FUNCTION carbon.close_market_day(day date) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_close_market_day'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.close_market_day(date) IS
  '闭市 close a trading day: DAY orders of that day and GTC orders past gtc_max_days end, escrow released; the reference price becomes the last trade (else unchanged); idempotent; returns the orders ended';

-- ---- views ----

-- owner's rights: the depth and daily figures name nobody, every reader sees the whole market
CREATE VIEW carbon.v_order_book AS
  SELECT o.instrument, o.side::text AS side, round(o.price / 100.0, 2) AS price,
         sum(o.tonnes - o.filled)::bigint AS tonnes, count(*) AS orders
  FROM carbon.market_order o
  WHERE o.ended_at IS NULL
  GROUP BY o.instrument, o.side, o.price;
COMMENT ON VIEW carbon.v_order_book IS '盘口 the book: tonnes and orders resting at each price (yuan per tonne) per side';

CREATE VIEW carbon.v_market_daily AS
  SELECT t.trade_day AS day, t.instrument,
         round((array_agg(t.price ORDER BY t.id))[1] / 100.0, 2) AS open,
         round(max(t.price) / 100.0, 2) AS high,
         round(min(t.price) / 100.0, 2) AS low,
         round((array_agg(t.price ORDER BY t.id DESC))[1] / 100.0, 2) AS close,
         sum(t.tonnes)::bigint AS volume,
         round(sum(t.price::numeric * t.tonnes) / 100, 2) AS turnover,
         round(sum(t.price::numeric * t.tonnes) / sum(t.tonnes) / 100, 2) AS vwap
  FROM carbon.trade t
  GROUP BY t.trade_day, t.instrument;
COMMENT ON VIEW carbon.v_market_daily IS
  '日行情 per trading day (local) and instrument: open, high, low, close (yuan per tonne), volume (t), turnover (yuan), VWAP';

SELECT pg_catalog.pg_extension_config_dump('carbon.instrument', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_order', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_order_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.trade', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.trade_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_day', '');


-- ---- Accounting for carbon units (财会〔2019〕22号, api.md §7; docs/accounting.md) ----
--
-- Enterprise and government accounts keep books of the certified units they
-- hold: a purchase debits 1489 碳排放权资产 at cost, a sale credits it at
-- the weighted-average cost of the tonnes sold (the difference to 6301 or
-- 6711), units obtained free are not booked, units that leave without
-- payment (retired, cancelled, recalled, given away) go to 6711 at
-- weighted-average cost.  The lines are written by the ledger as the units
-- move (src/accounting.c), never recomputed: the books are as append-only as
-- the journal, and verify_integrity() checks them against the serial blocks.

CREATE TABLE carbon.accounting_subject (
  code     text PRIMARY KEY,
  name     text NOT NULL,
  name_en  text NOT NULL
);
INSERT INTO carbon.accounting_subject VALUES
  ('1002', '银行存款', 'bank deposits'),
  ('1489', '碳排放权资产', 'carbon emission rights assets'),
  ('6301', '营业外收入', 'non-operating income'),
  ('6711', '营业外支出', 'non-operating expenses');
COMMENT ON TABLE carbon.accounting_subject IS
  '会计科目 the accounting subjects of 财会〔2019〕22号 that the books of carbon units use';

-- The units an account holds, at book cost: what a sale or retirement
-- takes its weighted-average cost from.
CREATE TABLE carbon.unit_cost (
  account  bigint PRIMARY KEY,                    -- carbon.account (no foreign key: written per trade)
  tonnes   bigint NOT NULL CHECK (tonnes >= 0),
  cost     bigint NOT NULL CHECK (cost >= 0)      -- fen
) WITH (fillfactor = 10);
-- Updated on every trade: room for HOT updates, and few rows a page.
-- PostgreSQL prunes a page whose free space is below the share fillfactor
-- leaves at a read after an update, which here is nearly every read, and
-- each prune walks every row of the page: at fillfactor 50 that was 67 rows,
-- about a prune every other order (1 % of a B5 order's instructions).
COMMENT ON TABLE carbon.unit_cost IS
  '碳排放权资产账面 the certified units an enterprise or government account holds (in escrow included) and their book cost in fen';

-- CACHE: the vouchers' ids come from a backend's own run of 32 (1,500
-- instructions a value fewer, two a trade); they rise within a
-- transaction, and vouchers of different transactions differ in `at`
CREATE SEQUENCE carbon.accounting_voucher_id_seq CACHE 32;
-- One voucher (记账凭证) per booking: an account's side of one trade or
-- move, its lines in one row, one column per subject and side a booking can
-- use (debits first, as 借 comes before 贷).  A purchase is Dr 1489 /
-- Cr 1002, a sale Dr 1002 / Cr 1489 with Cr 6301 or Dr 6711, units leaving
-- Dr 6711 / Cr 1489.  A voucher balances by its own CHECK.  One row and
-- one index entry a booking, instead of one per line, took 15 % off the
-- market's CPU an order (B4: 3.5 lines an order, 1.4 vouchers).
-- v_accounting_journal shows the lines.
CREATE TABLE carbon.accounting_voucher (
  id        bigint NOT NULL DEFAULT nextval('carbon.accounting_voucher_id_seq'),
  account   bigint NOT NULL,              -- carbon.account (no foreign keys: written per trade)
  entry_id  bigint NOT NULL,
  at        timestamptz NOT NULL,
  memo      text NOT NULL,
  dr_1489   bigint NOT NULL DEFAULT 0 CHECK (dr_1489 >= 0),   -- fen: 碳排放权资产 debit (bought at cost)
  dr_1002   bigint NOT NULL DEFAULT 0 CHECK (dr_1002 >= 0),   -- 银行存款 debit (a sale's proceeds)
  dr_6711   bigint NOT NULL DEFAULT 0 CHECK (dr_6711 >= 0),   -- 营业外支出 debit (a loss; units leaving)
  cr_1489   bigint NOT NULL DEFAULT 0 CHECK (cr_1489 >= 0),   -- 碳排放权资产 credit (book cost out)
  cr_1002   bigint NOT NULL DEFAULT 0 CHECK (cr_1002 >= 0),   -- 银行存款 credit (a purchase's cost)
  cr_6301   bigint NOT NULL DEFAULT 0 CHECK (cr_6301 >= 0),   -- 营业外收入 credit (a gain)
  CONSTRAINT accounting_voucher_balances CHECK (dr_1489 + dr_1002 + dr_6711 = cr_1489 + cr_1002 + cr_6301),
  CONSTRAINT accounting_voucher_books CHECK (dr_1489 + dr_1002 + dr_6711 > 0),
  -- one index, an account's books by time (id comes from the sequence and
  -- vouchers are append-only, so it is unique all the same)
  PRIMARY KEY (account, at, id)
);
ALTER SEQUENCE carbon.accounting_voucher_id_seq OWNED BY carbon.accounting_voucher.id;
COMMENT ON TABLE carbon.accounting_voucher IS
  '记账凭证 vouchers of the books of carbon units, one per account and trade or move, in fen, each balanced, written as the units move (append-only); v_accounting_journal shows their lines';
CREATE TRIGGER accounting_voucher_append_only BEFORE UPDATE OR DELETE ON carbon.accounting_voucher
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER accounting_voucher_no_truncate BEFORE TRUNCATE ON carbon.accounting_voucher
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();

SELECT pg_catalog.pg_extension_config_dump('carbon.unit_cost', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_voucher', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_voucher_id_seq', '');

-- A voucher's lines: one per subject and side it uses.
CREATE VIEW carbon.v_accounting_journal WITH (security_invoker = true) AS
  SELECT v.account, v.at, l.subject_code, s.name AS subject_name,
         (l.debit / 100.0)::numeric(20, 2) AS debit, (l.credit / 100.0)::numeric(20, 2) AS credit, v.memo
  FROM carbon.accounting_voucher v
  CROSS JOIN LATERAL (VALUES ('1489', v.dr_1489, 0::bigint), ('1002', v.dr_1002, 0), ('6711', v.dr_6711, 0),
                             ('1489', 0, v.cr_1489), ('1002', 0, v.cr_1002), ('6301', 0, v.cr_6301))
               AS l (subject_code, debit, credit)
  JOIN carbon.accounting_subject s ON s.code = l.subject_code
  WHERE l.debit <> 0 OR l.credit <> 0;
COMMENT ON VIEW carbon.v_accounting_journal IS
  '会计分录 the journal of the books of carbon units (财会〔2019〕22号) of enterprise and government accounts, in yuan';
COMMENT ON COLUMN carbon.v_accounting_journal.account IS '账户 the enterprise or government account whose books these are';
COMMENT ON COLUMN carbon.v_accounting_journal.at IS '记账时间 when the units moved (the ledger entry''s time)';
COMMENT ON COLUMN carbon.v_accounting_journal.subject_code IS '科目代码 subject code: 1489, 1002, 6301 or 6711';
COMMENT ON COLUMN carbon.v_accounting_journal.subject_name IS '科目名称 subject name';
COMMENT ON COLUMN carbon.v_accounting_journal.debit IS '借方 debit in yuan (0.00 on a credit line)';
COMMENT ON COLUMN carbon.v_accounting_journal.credit IS '贷方 credit in yuan (0.00 on a debit line)';
COMMENT ON COLUMN carbon.v_accounting_journal.memo IS '摘要 what happened: purchase, sale, retirement, cancellation, recall, transfer';

CREATE VIEW carbon.v_trial_balance WITH (security_invoker = true) AS
  SELECT v.account, l.subject_code, s.name AS subject_name,
         (sum(l.debit) / 100.0)::numeric(20, 2) AS debit, (sum(l.credit) / 100.0)::numeric(20, 2) AS credit,
         ((sum(l.debit) - sum(l.credit)) / 100.0)::numeric(20, 2) AS balance
  FROM carbon.accounting_voucher v
  CROSS JOIN LATERAL (VALUES ('1489', v.dr_1489, 0::bigint), ('1002', v.dr_1002, 0), ('6711', v.dr_6711, 0),
                             ('1489', 0, v.cr_1489), ('1002', 0, v.cr_1002), ('6301', 0, v.cr_6301))
               AS l (subject_code, debit, credit)
  JOIN carbon.accounting_subject s ON s.code = l.subject_code
  WHERE l.debit <> 0 OR l.credit <> 0
  GROUP BY v.account, l.subject_code, s.name;
COMMENT ON VIEW carbon.v_trial_balance IS
  '试算平衡表 per account and subject: total debits, total credits and balance (debit − credit), in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.account IS '账户 the enterprise or government account';
COMMENT ON COLUMN carbon.v_trial_balance.subject_code IS '科目代码 subject code';
COMMENT ON COLUMN carbon.v_trial_balance.subject_name IS '科目名称 subject name';
COMMENT ON COLUMN carbon.v_trial_balance.debit IS '借方发生额 total debits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.credit IS '贷方发生额 total credits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.balance IS '余额 debit − credit in yuan (1489: the book cost of the units held)';

-- ---- County clerks (分级分类管理, issue 21; docs/reports.md) ----
--
-- A clerk of a county (or a city, or a province) reads the accounts,
-- behaviours, balances, points, projects, issuances and retirements of its
-- own region codes and nobody else's, and through them the reporting views
-- (security_invoker: row-level security applies to whoever reads them).
-- carbon_admin binds a login to a region prefix: '620702' is Ganzhou
-- district, '6207' every county of Zhangye, '62' Gansu.  A member of
-- carbon_clerk without a binding sees no rows.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'carbon_clerk') THEN
    CREATE ROLE carbon_clerk NOLOGIN;
  END IF;
END
$roles$;

CREATE TABLE carbon.region_scope (
  login          name PRIMARY KEY,
  region_prefix  text NOT NULL CHECK (region_prefix ~ '^[0-9]{2,6}$'),
  bound_by       name NOT NULL DEFAULT session_user,
  bound_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carbon.region_scope IS
  '辖区绑定 the region prefix each county clerk''s login reads (carbon_clerk): 620702 a district, 6207 a city''s counties';
SELECT pg_catalog.pg_extension_config_dump('carbon.region_scope', '');

-- The calling login's prefix, or NULL.  Plain SQL without SET, so that the
-- planner inlines it into the policies below and reads it once per query.
CREATE FUNCTION carbon.clerk_region() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN (SELECT s.region_prefix FROM carbon.region_scope s WHERE s.login = current_user);
COMMENT ON FUNCTION carbon.clerk_region() IS
  '辖区 the region prefix bound to the calling login (carbon_clerk), or NULL';

-- Is a region code in the calling clerk's scope?
CREATE FUNCTION carbon.in_clerk_region(region text) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN starts_with(region, carbon.clerk_region());
COMMENT ON FUNCTION carbon.in_clerk_region(text) IS
  '是否辖区内 whether a region code lies in the calling clerk''s scope (false without a binding)';

-- Is the reader kept to a clerk's scope?  A member of carbon_clerk is,
-- unless it is also a superuser, carbon_admin or carbon_auditor (who read
-- everything, as their row-level policies let them): owner's-rights views
-- (v_gep_carbon) filter on it, so that an unbound clerk, or a clerk after
-- SET ROLE carbon_clerk, sees no rows rather than every row.
CREATE FUNCTION carbon.clerk_scoped() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN pg_has_role(current_user, 'carbon_clerk', 'USAGE')
     AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false)
     AND NOT pg_has_role(current_user, 'carbon_admin', 'USAGE')
     AND NOT pg_has_role(current_user, 'carbon_auditor', 'USAGE');
COMMENT ON FUNCTION carbon.clerk_scoped() IS
  '是否受辖区限制 whether the calling login reads as a county clerk, kept to its bound prefix (no binding: nothing)';


CREATE FUNCTION carbon.bind_region(login name, region_prefix text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF login IS NULL OR region_prefix IS NULL THEN
    RAISE EXCEPTION 'login and region prefix must not be null' USING ERRCODE = '22004';
  END IF;
  IF region_prefix !~ '^[0-9]{2,6}$' THEN
    RAISE EXCEPTION 'region prefix "%" is not 2 to 6 digits of a region code', region_prefix
      USING ERRCODE = '22023', HINT = 'Use 620702 for one county, 6207 for a city''s counties, 62 for a province.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
    RAISE EXCEPTION 'role "%" does not exist', login USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.region_scope AS s (login, region_prefix) VALUES (bind_region.login, bind_region.region_prefix)
  ON CONFLICT ON CONSTRAINT region_scope_pkey
  DO UPDATE SET region_prefix = excluded.region_prefix, bound_by = session_user, bound_at = now();
END $$;
COMMENT ON FUNCTION carbon.bind_region(name, text) IS
  '绑定辖区 let a county clerk''s login (a member of carbon_clerk) read the rows of one region prefix';

CREATE FUNCTION carbon.unbind_region(login name) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  DELETE FROM carbon.region_scope s WHERE s.login = unbind_region.login;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION carbon.unbind_region(name) IS
  '解除辖区 the login reads no region''s rows any more; true if it had a binding';

-- ---- Groups and rankings (试点示范, 低碳社区; issue 21; docs/reports.md) ----
--
-- Communities, schools, parks and enterprises' staff are groups of
-- accounts.  Membership is dated: a behaviour counts for a group when its
-- local day falls within the member's time in it, so a citizen who moves
-- counts for the old community before and the new one after.  The views add
-- up reductions and points per group and month and rank the groups of a
-- kind; a citizen's app reads its own rank in its groups, and nobody else's
-- identity (v_my_group_rank).

CREATE SEQUENCE carbon.account_group_id_seq;
CREATE TABLE carbon.account_group (
  id          bigint PRIMARY KEY DEFAULT nextval('carbon.account_group_id_seq'),
  kind        text NOT NULL CHECK (kind IN ('community', 'school', 'park', 'enterprise_staff')),
  name        text NOT NULL CHECK (name <> '' AND length(name) <= 200),
  region      text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, region, name)
);
ALTER SEQUENCE carbon.account_group_id_seq OWNED BY carbon.account_group.id;
COMMENT ON TABLE carbon.account_group IS
  '群体 groups of accounts: low-carbon communities, schools, parks, an enterprise''s staff';

CREATE TABLE carbon.group_member (
  group_id  bigint NOT NULL REFERENCES carbon.account_group (id),
  account   bigint NOT NULL REFERENCES carbon.account (id),
  since     date NOT NULL,
  until     date,                              -- last day in the group; NULL: still a member
  CHECK (until IS NULL OR until >= since),
  -- no account is twice in one group on the same day
  CONSTRAINT group_member_no_overlap EXCLUDE USING gist (int8range(group_id, group_id, '[]') WITH &&, int8range(account, account, '[]') WITH &&,
                      daterange(since, until, '[]') WITH &&)
);
CREATE INDEX group_member_account_idx ON carbon.group_member (account);
CREATE INDEX group_member_group_idx ON carbon.group_member (group_id, account) INCLUDE (since, until);
COMMENT ON TABLE carbon.group_member IS
  '群体成员 who belongs to which group, from which local day to which (inclusive)';

-- What each member earned while in each of its groups, per local month:
-- kept by the behaviour engine as it records (one statement per batch, the
-- account's rows under its remainder lock), by reversals, and by
-- join_group / leave_group for the days they add or take away.  The group
-- views read it; verify_integrity() checks it against the behaviours.
CREATE TABLE carbon.group_credit (
  group_id  bigint NOT NULL,
  month     date NOT NULL,
  account   bigint NOT NULL,
  events    bigint NOT NULL CHECK (events >= 0),
  grams     bigint NOT NULL,
  points    bigint NOT NULL,
  PRIMARY KEY (group_id, month, account) INCLUDE (events, grams, points)   -- index-only reads of a group's month
) WITH (fillfactor = 90);
COMMENT ON TABLE carbon.group_credit IS
  '成员月度贡献 credited behaviours (events, grams CO2e, points) of each member while in each of its groups, per local month';

-- Add (sign 1) or take away (sign -1) an account's credited behaviours of
-- days [first_day, last_day] (NULL: on) to what it earned in a group.  (An
-- upsert cannot take away: its candidate row is checked before the conflict.)
CREATE FUNCTION carbon._group_credit_add(group_id bigint, account bigint, first_day date, last_day date, sign int)
  RETURNS void LANGUAGE sql VOLATILE SET search_path = pg_catalog, carbon, pg_temp
BEGIN ATOMIC
  INSERT INTO carbon.group_credit AS c (group_id, month, account, events, grams, points)
  SELECT _group_credit_add.group_id, date_trunc('month', b.local_day::timestamp)::date, b.account,
         count(*), sum(carbon.grams(b.reduction))::bigint, sum(b.points)::bigint
  FROM carbon.behavior b
  WHERE sign = 1 AND b.account = _group_credit_add.account AND b.status IN ('accepted', 'capped')
    AND b.local_day >= first_day AND (last_day IS NULL OR b.local_day <= last_day)
  GROUP BY 1, 2, 3
  ON CONFLICT ON CONSTRAINT group_credit_pkey
  DO UPDATE SET events = c.events + excluded.events, grams = c.grams + excluded.grams,
                points = c.points + excluded.points;
  UPDATE carbon.group_credit c SET events = c.events - s.n, grams = c.grams - s.g, points = c.points - s.p
  FROM (SELECT date_trunc('month', b.local_day::timestamp)::date AS month, count(*) AS n,
               sum(carbon.grams(b.reduction))::bigint AS g, sum(b.points)::bigint AS p
        FROM carbon.behavior b
        WHERE sign = -1 AND b.account = _group_credit_add.account AND b.status IN ('accepted', 'capped')
          AND b.local_day >= first_day AND (last_day IS NULL OR b.local_day <= last_day)
        GROUP BY 1) s
  WHERE c.group_id = _group_credit_add.group_id AND c.account = _group_credit_add.account AND c.month = s.month;
END;

SELECT pg_catalog.pg_extension_config_dump('carbon.account_group', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.account_group_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.group_member', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.group_credit', '');

CREATE FUNCTION carbon.create_group(kind text, name text, region text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  new_id bigint;
BEGIN
  IF kind IS NULL OR name IS NULL OR region IS NULL THEN
    RAISE EXCEPTION 'kind, name and region must not be null' USING ERRCODE = '22004';
  END IF;
  IF kind NOT IN ('community', 'school', 'park', 'enterprise_staff') THEN
    RAISE EXCEPTION 'unknown group kind "%"', kind USING ERRCODE = '22023',
      HINT = 'Groups are community, school, park or enterprise_staff.';
  END IF;
  IF name = '' OR length(name) > 200 THEN
    RAISE EXCEPTION 'a group''s name is 1 to 200 characters' USING ERRCODE = '22023';
  END IF;
  IF region !~ '^[0-9]{6}$' THEN
    RAISE EXCEPTION 'region "%" is not a 6-digit region code', region USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.account_group (kind, name, region) VALUES (kind, name, region) RETURNING id INTO new_id;
  RETURN new_id;
END $$;
COMMENT ON FUNCTION carbon.create_group(text, text, text) IS
  '创建群体 a community, school, park or enterprise''s staff; returns its id (23505 if that name exists in the region)';

CREATE FUNCTION carbon.join_group(group_id bigint, account bigint, since date DEFAULT NULL) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF group_id IS NULL OR account IS NULL THEN
    RAISE EXCEPTION 'group and account must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.account_group g WHERE g.id = join_group.group_id) THEN
    RAISE EXCEPTION 'group % does not exist', group_id USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = join_group.account AND a.kind = 'participant') THEN
    RAISE EXCEPTION 'account % does not exist', account USING ERRCODE = '22023',
      DETAIL = 'Only participant accounts belong to groups.';
  END IF;
  IF EXISTS (SELECT 1 FROM carbon.group_member m
             WHERE m.group_id = join_group.group_id AND m.account = join_group.account
               AND (m.until IS NULL OR m.until >= coalesce(join_group.since, carbon._local_today()))) THEN
    RAISE EXCEPTION 'account % is already in group % on or after %', account, group_id,
      coalesce(join_group.since, carbon._local_today())
      USING ERRCODE = '23P01', HINT = 'End the membership with carbon.leave_group() first.';
  END IF;
  -- the account's remainder row first, as the behaviour engine takes it: a
  -- behaviour recorded meanwhile is counted once, here or by the engine
  PERFORM 1 FROM carbon.points_carry c WHERE c.account = join_group.account FOR UPDATE;
  -- (the exclusion constraint also refuses overlapping rows written any other way)
  INSERT INTO carbon.group_member (group_id, account, since)
  VALUES (join_group.group_id, join_group.account, coalesce(join_group.since, carbon._local_today()));
  PERFORM carbon._group_credit_add(join_group.group_id, join_group.account,
                                   coalesce(join_group.since, carbon._local_today()), NULL, 1);
END $$;
COMMENT ON FUNCTION carbon.join_group(bigint, bigint, date) IS
  '加入群体 the account belongs to the group from `since` (default: today, local); 23P01 if it already does then';

CREATE FUNCTION carbon.leave_group(group_id bigint, account bigint, until date DEFAULT NULL) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  last_day date := coalesce(leave_group.until, carbon._local_today());
BEGIN
  IF group_id IS NULL OR account IS NULL THEN
    RAISE EXCEPTION 'group and account must not be null' USING ERRCODE = '22004';
  END IF;
  PERFORM 1 FROM carbon.points_carry c WHERE c.account = leave_group.account FOR UPDATE;
  UPDATE carbon.group_member m SET until = last_day
   WHERE m.group_id = leave_group.group_id AND m.account = leave_group.account AND m.until IS NULL
     AND m.since <= last_day;
  IF FOUND THEN
    -- the days after it left no longer count for the group
    PERFORM carbon._group_credit_add(leave_group.group_id, leave_group.account, last_day + 1, NULL, -1);
    RETURN true;
  END IF;
  IF EXISTS (SELECT 1 FROM carbon.group_member m WHERE m.group_id = leave_group.group_id
               AND m.account = leave_group.account AND m.until IS NULL) THEN
    RAISE EXCEPTION 'account % joined group % after %', account, group_id, last_day USING ERRCODE = '22023';
  END IF;
  RETURN false;   -- not a member: nothing to end
END $$;
COMMENT ON FUNCTION carbon.leave_group(bigint, bigint, date) IS
  '退出群体 the account''s membership ends on `until` (default: today, local), inclusive; false if it was not a member';

-- What each member earned while in its groups, per month (the table, with
-- the events that count: a month whose behaviours were all reversed is gone).
CREATE VIEW carbon.v_group_credit WITH (security_invoker = true) AS
  SELECT c.group_id, c.month, c.account, c.events, c.grams, c.points
  FROM carbon.group_credit c
  WHERE c.events > 0;
COMMENT ON VIEW carbon.v_group_credit IS
  '成员月度贡献 what each member earned while in each of its groups, per local month: credited behaviours, grams CO2e, points';
COMMENT ON COLUMN carbon.v_group_credit.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_group_credit.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_group_credit.account IS '账户 the member';
COMMENT ON COLUMN carbon.v_group_credit.events IS '行为数 its credited behaviours that month while in the group';
COMMENT ON COLUMN carbon.v_group_credit.grams IS '减排量 their reduction in grams CO2e';
COMMENT ON COLUMN carbon.v_group_credit.points IS '积分 the points they earned';

-- Reductions and points of each group per month, and the group's rank
-- among the groups of its kind in its region (Ganzhou's communities among
-- themselves), that month.
CREATE VIEW carbon.v_group_monthly WITH (security_invoker = true) AS
  -- per group (LATERAL): a filter on region and month reaches the index of
  -- group_credit as (group, month), whatever the planner thinks of the rest
  SELECT x.month, g.id AS group_id, g.kind, g.name, g.region,
         (SELECT count(DISTINCT m.account) FROM carbon.group_member m
          WHERE m.group_id = g.id AND m.since < (x.month + interval '1 month')::date
            AND (m.until IS NULL OR m.until >= x.month)) AS members,
         x.active_members, x.events, carbon.co2e_grams(x.grams) AS reduction, x.points,
         rank() OVER (PARTITION BY x.month, g.kind, g.region ORDER BY x.grams DESC) AS rank_in_kind
  FROM carbon.account_group g
  CROSS JOIN LATERAL (SELECT c.month, count(*) AS active_members, sum(c.events)::bigint AS events,
                             sum(c.grams)::bigint AS grams, sum(c.points)::bigint AS points
                      FROM carbon.group_credit c
                      WHERE c.group_id = g.id AND c.events > 0
                      GROUP BY c.month) x;
COMMENT ON VIEW carbon.v_group_monthly IS
  '群体月度减排排名 per group and month (local): members, active members, credited behaviours, reduction, points, and the rank by reduction among the groups of its kind in its region';
COMMENT ON COLUMN carbon.v_group_monthly.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_group_monthly.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_group_monthly.kind IS '类别 community, school, park or enterprise_staff';
COMMENT ON COLUMN carbon.v_group_monthly.name IS '名称 the group''s name';
COMMENT ON COLUMN carbon.v_group_monthly.region IS '行政区划 the group''s region code';
COMMENT ON COLUMN carbon.v_group_monthly.members IS '成员数 accounts that were members on some day of the month';
COMMENT ON COLUMN carbon.v_group_monthly.active_members IS '活跃成员 members with a credited behaviour in the month while in the group';
COMMENT ON COLUMN carbon.v_group_monthly.events IS '行为数 credited behaviours (accepted or capped) of members while in the group';
COMMENT ON COLUMN carbon.v_group_monthly.reduction IS '减排量 their reduction (co2e)';
COMMENT ON COLUMN carbon.v_group_monthly.points IS '积分 the points they earned';
COMMENT ON COLUMN carbon.v_group_monthly.rank_in_kind IS '排名 rank by reduction among the groups of the same kind and region that month (1: the most)';

-- A citizen's rank in each of its groups, per month: the acting account's
-- rows only, and no other member's identity.  Owner's rights (it ranks
-- members the reader may not see), filtered by carbon.acting_account().
CREATE VIEW carbon.v_my_group_rank WITH (security_barrier = true) AS
  WITH ranked AS (
    SELECT c.group_id, c.month, c.account, c.grams, c.points,
           rank() OVER (PARTITION BY c.group_id, c.month ORDER BY c.grams DESC) AS my_rank,
           count(*) OVER (PARTITION BY c.group_id, c.month) AS ranked_members
    FROM carbon.group_credit c
    WHERE c.events > 0
      AND c.group_id IN (SELECT mine.group_id FROM carbon.group_member mine
                         WHERE mine.account = carbon.acting_account()))
  SELECT r.month, r.group_id, g.kind, g.name AS group_name, carbon.co2e_grams(r.grams) AS reduction, r.points,
         r.my_rank, r.ranked_members
  FROM ranked r
  JOIN carbon.account_group g ON g.id = r.group_id
  WHERE r.account = carbon.acting_account();
COMMENT ON VIEW carbon.v_my_group_rank IS
  '我的群体排名 the acting account''s reduction, points and rank in each of its groups per month (local), among the members with credited behaviours; no other member is named';
COMMENT ON COLUMN carbon.v_my_group_rank.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_my_group_rank.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_my_group_rank.kind IS '类别 community, school, park or enterprise_staff';
COMMENT ON COLUMN carbon.v_my_group_rank.group_name IS '名称 the group''s name';
COMMENT ON COLUMN carbon.v_my_group_rank.reduction IS '减排量 the acting account''s reduction in the month while in the group (co2e)';
COMMENT ON COLUMN carbon.v_my_group_rank.points IS '积分 the points it earned then';
COMMENT ON COLUMN carbon.v_my_group_rank.my_rank IS '我的排名 its rank by reduction among the group''s members with credited behaviours that month (1: the most)';
COMMENT ON COLUMN carbon.v_my_group_rank.ranked_members IS '参与排名人数 how many members were ranked';

-- ---- Eco-product value beside carbon (生态产品价值核算, Zhangye §3; issue 21; docs/reports.md) ----
--
-- The city's GEP accounting results are imported per region and year with
-- COPY (carbon_admin), and set beside the certified units issued for the
-- same region and vintage and the units retired there that year.  A GEP
-- row for a city (620700) or province (620000) covers every county code
-- under it: its region code with the trailing pairs of zeros dropped is the
-- prefix matched.

CREATE TABLE carbon.gep (
  region        text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  year          int NOT NULL CHECK (year BETWEEN 1990 AND 2200),
  provisioning  bigint NOT NULL CHECK (provisioning BETWEEN 0 AND 1000000000000000),   -- 物质供给 yuan
  regulating    bigint NOT NULL CHECK (regulating BETWEEN 0 AND 1000000000000000),     -- 调节服务 yuan
  cultural      bigint NOT NULL CHECK (cultural BETWEEN 0 AND 1000000000000000),       -- 文化服务 yuan
  source        text NOT NULL CHECK (source <> ''),          -- the accounting report it comes from
  imported_at   timestamptz NOT NULL DEFAULT now(),
  imported_by   name NOT NULL DEFAULT session_user,
  PRIMARY KEY (region, year)
);
COMMENT ON TABLE carbon.gep IS
  '生态产品总值 GEP per region and year in whole yuan (each part at most 10^15): provisioning (物质供给), regulating (调节服务) and cultural (文化服务) services, with the report they come from; imported with COPY carbon.gep (region, year, provisioning, regulating, cultural, source) FROM ...';
SELECT pg_catalog.pg_extension_config_dump('carbon.gep', '');

-- The prefix of the region codes a region covers: 620700 → 6207, 620000 → 62.
CREATE FUNCTION carbon.region_prefix(region text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN CASE WHEN region ~ '^[0-9]{2}0000$' THEN left(region, 2)
              WHEN region ~ '^[0-9]{4}00$' THEN left(region, 4)
              ELSE region END;
COMMENT ON FUNCTION carbon.region_prefix(text) IS
  '区划前缀 the prefix of the region codes a region covers: 620700 (a city) → 6207, 620000 (a province) → 62, a county → itself';

-- Owner's rights: the figures are whole for every reader (public aggregates);
-- a county clerk bound to a prefix reads the rows of that prefix only.
CREATE VIEW carbon.v_gep_carbon AS
  SELECT g.region, g.year, g.provisioning + g.regulating + g.cultural AS gep_yuan,
         g.provisioning, g.regulating, g.cultural,
         coalesce((SELECT sum(i.last - i.first + 1) FROM carbon.unit_issuance i
                   WHERE starts_with(i.region, carbon.region_prefix(g.region)) AND i.vintage = g.year), 0)::bigint
           AS certified_tonnes,
         coalesce((SELECT sum(r.tonnes) FROM carbon.retirement r
                   WHERE starts_with(r.jurisdiction, carbon.region_prefix(g.region))
                     AND r.recalled_at IS NULL
                     AND extract(year FROM r.retired_at AT TIME ZONE
                                 (SELECT value FROM carbon.settings WHERE name = 'timezone')) = g.year), 0)::bigint
           AS retired_tonnes,
         g.source
  FROM carbon.gep g
  WHERE NOT carbon.clerk_scoped() OR starts_with(carbon.region_prefix(g.region), carbon.clerk_region());
COMMENT ON VIEW carbon.v_gep_carbon IS
  '生态产品价值与碳普惠 GEP per region and year beside the certified units issued for that region and vintage and the units retired there that year (local); a city''s or province''s row covers its counties; a county clerk reads the rows of its own prefix';
COMMENT ON COLUMN carbon.v_gep_carbon.region IS '行政区划 the region code of the GEP accounting';
COMMENT ON COLUMN carbon.v_gep_carbon.year IS '年度 the year accounted (and the vintage of the units)';
COMMENT ON COLUMN carbon.v_gep_carbon.gep_yuan IS '生态产品总值 GEP in yuan: provisioning + regulating + cultural';
COMMENT ON COLUMN carbon.v_gep_carbon.provisioning IS '物质供给 provisioning services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.regulating IS '调节服务 regulating services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.cultural IS '文化服务 cultural services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.certified_tonnes IS '核证减排量 tonnes of certified units issued for projects of the region with that vintage';
COMMENT ON COLUMN carbon.v_gep_carbon.retired_tonnes IS '注销量 tonnes retired in the region that year (local time), recalled ones left out';
COMMENT ON COLUMN carbon.v_gep_carbon.source IS '来源 the GEP accounting report the figures come from';

-- ---------------------------------------------------------------------------
-- Column comments of the views, in Chinese and English (issue 21): the views
-- are BI's contract (test/pgtap/views.sql).  Runs after every view exists;
-- the accounting views (80) and v_projects.issued_tonnes (70) carry theirs.
-- ---------------------------------------------------------------------------

-- carbon.settings
COMMENT ON COLUMN carbon.settings.name IS '设置名 the setting''s name (for carbon.set_setting)';
COMMENT ON COLUMN carbon.settings.value IS '当前值 the value in force: the operator''s, else the default';
COMMENT ON COLUMN carbon.settings.default_value IS '默认值 the built-in default';
COMMENT ON COLUMN carbon.settings.is_default IS '是否默认 true when nobody changed the setting';
COMMENT ON COLUMN carbon.settings.description IS '说明 what the setting does';

-- carbon.v_account_statement
COMMENT ON COLUMN carbon.v_account_statement.account IS '账户 the account posted to';
COMMENT ON COLUMN carbon.v_account_statement.entry_id IS '分录号 the ledger entry (carbon.entry) of the posting';
COMMENT ON COLUMN carbon.v_account_statement.at IS '记账时间 when the entry was posted';
COMMENT ON COLUMN carbon.v_account_statement.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_account_statement.amount IS
  '金额 signed amount in the asset''s minor unit (points, grams CO2e, tonnes, fen); positive credits the account';
COMMENT ON COLUMN carbon.v_account_statement.balance_after IS
  '变动后余额 the account''s balance of the asset after this posting, in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_account_statement.kind IS
  '业务类型 kind of entry: behavior, transfer, redemption, exchange, expiry, trade, reversal, …';
COMMENT ON COLUMN carbon.v_account_statement.memo IS '摘要 the entry''s memo';

-- carbon.v_points_expiring
COMMENT ON COLUMN carbon.v_points_expiring.month IS
  '到期月份 first day of the local month in which the points expire (midnight of 1 January counts for December)';
COMMENT ON COLUMN carbon.v_points_expiring.region IS '行政区划 region: 6-digit administrative division code of the holders';
COMMENT ON COLUMN carbon.v_points_expiring.tier IS '体系层级 tier of the holders: personal, enterprise, government, …';
COMMENT ON COLUMN carbon.v_points_expiring.points IS '积分 points still held that expire that month';

-- carbon.v_reduction_monthly
COMMENT ON COLUMN carbon.v_reduction_monthly.month IS '月份 first day of the local month of the behaviours';
COMMENT ON COLUMN carbon.v_reduction_monthly.region IS '行政区划 region: 6-digit administrative division code of the participants';
COMMENT ON COLUMN carbon.v_reduction_monthly.scenario IS '应用场景 scenario (metro, bike, recycling, …)';
COMMENT ON COLUMN carbon.v_reduction_monthly.methodology IS '方法学 methodology code';
COMMENT ON COLUMN carbon.v_reduction_monthly.events IS '行为数 behaviours credited (accepted or capped)';
COMMENT ON COLUMN carbon.v_reduction_monthly.participants IS '参与人数 distinct accounts credited';
COMMENT ON COLUMN carbon.v_reduction_monthly.reduction IS '减排量 reduction credited, exact co2e (grams CO2e)';

-- carbon.v_supply (amounts in the asset's minor unit)
COMMENT ON COLUMN carbon.v_supply.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_supply.tier IS '体系层级 tier: personal, enterprise, government, merchant, verifier, platform';
COMMENT ON COLUMN carbon.v_supply.region IS '行政区划 region: 6-digit administrative division code';
COMMENT ON COLUMN carbon.v_supply.issued IS
  '已发行 issued into the tier and region, net of what went back (reversals, cash withdrawals), cumulative, in the asset''s minor unit (points, grams CO2e, tonnes, fen)';
COMMENT ON COLUMN carbon.v_supply.outstanding IS
  '流通量 held now by the participants (merchants'' unsettled points included), in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.redeemed IS '已兑换 left the tier by redemption once the merchant settled (carbon.settle_merchant), cumulative, in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.expired IS '已过期 left the tier by expiry, cumulative, in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.retired IS '已注销抵消 left the tier by retirement, cumulative, in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.cancelled IS '已行政注销 left the tier by cancellation, cumulative, in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.escrow IS '冻结托管 held in escrow now (open market orders), in the asset''s minor unit';
COMMENT ON COLUMN carbon.v_supply.moved_out IS
  '净转出 net amount moved to other tiers or regions through clearing, in the asset''s minor unit';

-- carbon.v_offers
COMMENT ON COLUMN carbon.v_offers.offer IS '权益 the offer''s id (for carbon.redeem)';
COMMENT ON COLUMN carbon.v_offers.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_offers.merchant_name IS '商户名称 the merchant''s display name';
COMMENT ON COLUMN carbon.v_offers.title IS '权益名称 what the citizen gets (parking discount, voucher, …)';
COMMENT ON COLUMN carbon.v_offers.points_cost IS '所需积分 price of one item, in points';
COMMENT ON COLUMN carbon.v_offers.stock IS '库存 items left';
COMMENT ON COLUMN carbon.v_offers.valid_from IS '开始时间 start of the validity (NULL: no start)';
COMMENT ON COLUMN carbon.v_offers.valid_until IS '结束时间 end of the validity (NULL: no end)';
COMMENT ON COLUMN carbon.v_offers.per_account_limit IS '每人限兑 most items one account may redeem (NULL: no limit)';

-- carbon.v_redemptions
COMMENT ON COLUMN carbon.v_redemptions.month IS '月份 first day of the local month of the redemptions';
COMMENT ON COLUMN carbon.v_redemptions.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_redemptions.offer IS '权益 the offer''s id';
COMMENT ON COLUMN carbon.v_redemptions.redemptions IS '兑换次数 number of redemptions (refunded ones included)';
COMMENT ON COLUMN carbon.v_redemptions.points IS '兑换积分 points spent, net of refunds';

-- carbon.v_merchant_statement
COMMENT ON COLUMN carbon.v_merchant_statement.month IS '月份 first day of the local month';
COMMENT ON COLUMN carbon.v_merchant_statement.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_merchant_statement.points_redeemed IS '兑换积分 points collected by redemptions';
COMMENT ON COLUMN carbon.v_merchant_statement.points_refunded IS '退还积分 points refunded (pieces expired meanwhile included)';
COMMENT ON COLUMN carbon.v_merchant_statement.points_settled IS '结算积分 points settled into the redeemed sink';

-- carbon.v_projects (issued_tonnes: 70_units.sql)
COMMENT ON COLUMN carbon.v_projects.project IS '项目 the project''s id';
COMMENT ON COLUMN carbon.v_projects.code IS '项目代码 the project''s code, part of its serials';
COMMENT ON COLUMN carbon.v_projects.status IS '状态 status: registered, publicized (公示) or approved (备案)';
COMMENT ON COLUMN carbon.v_projects.owner IS '业主 the owner''s account';
COMMENT ON COLUMN carbon.v_projects.region IS '行政区划 region: 6-digit administrative division code';

-- carbon.v_issuances
COMMENT ON COLUMN carbon.v_issuances.serial IS '序列号 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST';
COMMENT ON COLUMN carbon.v_issuances.project IS '项目 the project''s id';
COMMENT ON COLUMN carbon.v_issuances.vintage IS '年份 vintage: the year in which the monitoring period ended';
COMMENT ON COLUMN carbon.v_issuances.tonnes IS '吨数 tonnes CO2e in the range';
COMMENT ON COLUMN carbon.v_issuances.issued_at IS '签发时间 when the range was issued';

-- carbon.v_retirements
COMMENT ON COLUMN carbon.v_retirements.certificate IS '注销证明 certificate id: SHA-256 (hex) of its content (carbon.verify_certificate)';
COMMENT ON COLUMN carbon.v_retirements.account IS '账户 the account that retired the units';
COMMENT ON COLUMN carbon.v_retirements.tonnes IS '吨数 tonnes CO2e retired';
COMMENT ON COLUMN carbon.v_retirements.purpose IS
  '用途 purpose: event_neutrality, entity_neutrality, eco_damage_compensation, voluntary, compliance_offset';
COMMENT ON COLUMN carbon.v_retirements.beneficiary IS '受益方 on whose behalf the units were retired';
COMMENT ON COLUMN carbon.v_retirements.reference IS '参考编号 reference, e.g. the case number of an ecological damage compensation';
COMMENT ON COLUMN carbon.v_retirements.retired_at IS '注销时间 when the units were retired';

-- carbon.v_serial_history
COMMENT ON COLUMN carbon.v_serial_history.serial_block IS '序列号块 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST the event touched';
COMMENT ON COLUMN carbon.v_serial_history.event IS
  '事件 issuance, split, transfer, trade, escrow, release, retirement, cancellation or recall';
COMMENT ON COLUMN carbon.v_serial_history.from_account IS '转出账户 the account the block left (NULL: none)';
COMMENT ON COLUMN carbon.v_serial_history.to_account IS '转入账户 the account the block went to (NULL: none)';
COMMENT ON COLUMN carbon.v_serial_history.tonnes IS '吨数 tonnes CO2e in the block';
COMMENT ON COLUMN carbon.v_serial_history.at IS '时间 when it happened';
COMMENT ON COLUMN carbon.v_serial_history.reference IS '参考 reference or reason given with the event';

-- carbon.v_order_book
COMMENT ON COLUMN carbon.v_order_book.instrument IS '交易品种 instrument code (CER-I: class I certified units)';
COMMENT ON COLUMN carbon.v_order_book.side IS '买卖方向 side: buy or sell';
COMMENT ON COLUMN carbon.v_order_book.price IS '价格 limit price in yuan per tonne';
COMMENT ON COLUMN carbon.v_order_book.tonnes IS '挂单量 unfilled tonnes resting at that price';
COMMENT ON COLUMN carbon.v_order_book.orders IS '委托笔数 number of orders resting at that price';

-- carbon.v_market_daily
COMMENT ON COLUMN carbon.v_market_daily.day IS '交易日 the trading day (local)';
COMMENT ON COLUMN carbon.v_market_daily.instrument IS '交易品种 instrument code (CER-I: class I certified units)';
COMMENT ON COLUMN carbon.v_market_daily.open IS '开盘价 price of the day''s first trade, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.high IS '最高价 highest trade price, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.low IS '最低价 lowest trade price, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.close IS '收盘价 price of the day''s last trade, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.volume IS '成交量 tonnes traded';
COMMENT ON COLUMN carbon.v_market_daily.turnover IS '成交额 value traded, in yuan';
COMMENT ON COLUMN carbon.v_market_daily.vwap IS '成交均价 volume-weighted average price, yuan per tonne (4 decimals)';


REVOKE EXECUTE ON FUNCTION carbon.serial_text(text, int, text, bigint, bigint),
  carbon._unit_block_no_overlap(),
  carbon._require_acting(bigint),
  carbon.working_days(date, date),
  carbon._local_today(),
  carbon._project(bigint),
  carbon.register_project(bigint, text, text, text, text, text),
  carbon.publicize_project(bigint, date),
  carbon.approve_project(bigint),
  carbon.submit_monitoring(bigint, daterange, carbon.co2e, jsonb),
  carbon.verify_monitoring(bigint, bigint, carbon.co2e, text),
  carbon.issue_units(bigint),
  carbon.transfer_units(bigint, bigint, bigint, text, text),
  carbon.retire_units(bigint, bigint, text, text, text, text),
  carbon.retire_serials(bigint, text, text, text, text, text),
  carbon.cancel_units(bigint, bigint, text),
  carbon.recall_issuance(text, text),
  carbon.verify_certificate(text),
  carbon.certificate(text),
  carbon.tradable_units(bigint),
  carbon.parse_serial(text),
  carbon.serial_history(text),
  carbon.deposit_cash(bigint, numeric, text, text),
  carbon.withdraw_cash(bigint, numeric, text, text),
  carbon.place_order(bigint, text, bigint, numeric, text, text, text, text, text),
  carbon.cancel_order(bigint),
  carbon.set_reference_price(text, numeric),
  carbon.close_market_day(date),
  carbon.clerk_region(),
  carbon.in_clerk_region(text),
  carbon.bind_region(name, text),
  carbon.unbind_region(name),
  carbon._group_credit_add(bigint, bigint, date, date, int),
  carbon.create_group(text, text, text),
  carbon.join_group(bigint, bigint, date),
  carbon.leave_group(bigint, bigint, date),
  carbon.region_prefix(text) FROM PUBLIC;
REVOKE ALL ON carbon.holiday, carbon.project, carbon.monitoring_report, carbon.unit_issuance, carbon.unit_block, carbon.unit_event, carbon.retirement, carbon.v_projects, carbon.v_issuances, carbon.v_retirements, carbon.v_serial_history, carbon.instrument, carbon.market_order, carbon.trade, carbon.market_day, carbon.v_order_book, carbon.v_market_daily, carbon.accounting_subject, carbon.unit_cost, carbon.accounting_voucher, carbon.v_accounting_journal, carbon.v_trial_balance, carbon.region_scope, carbon.account_group, carbon.group_member, carbon.group_credit, carbon.v_group_credit, carbon.v_group_monthly, carbon.v_my_group_rank, carbon.gep, carbon.v_gep_carbon FROM PUBLIC;
GRANT SELECT ON carbon.holiday, carbon.project, carbon.monitoring_report, carbon.unit_issuance, carbon.unit_block, carbon.unit_event, carbon.retirement, carbon.v_projects, carbon.v_issuances, carbon.v_retirements, carbon.v_serial_history, carbon.instrument, carbon.market_order, carbon.trade, carbon.market_day, carbon.v_order_book, carbon.v_market_daily, carbon.accounting_subject, carbon.unit_cost, carbon.accounting_voucher, carbon.v_accounting_journal, carbon.v_trial_balance, carbon.region_scope, carbon.account_group, carbon.group_member, carbon.group_credit, carbon.v_group_credit, carbon.v_group_monthly, carbon.v_my_group_rank, carbon.gep, carbon.v_gep_carbon TO carbon_admin;
GRANT SELECT ON carbon.project_id_seq, carbon.monitoring_report_id_seq, carbon.unit_issuance_id_seq, carbon.unit_block_id_seq, carbon.unit_event_id_seq, carbon.market_order_id_seq, carbon.trade_id_seq, carbon.accounting_voucher_id_seq, carbon.account_group_id_seq TO carbon_admin, carbon_auditor;

-- Projects and certified units (api.md §5): the administrator runs the
-- lifecycle and recalls; owners submit monitoring and verifiers verify,
-- each acting for its bound account (carbon_trader, carbon_verifier);
-- holders transfer and retire their own units.  The project registry and
-- issuances are public to the roles that read the catalogue; blocks and
-- retirements to their holder.
GRANT EXECUTE ON FUNCTION
  carbon.register_project(bigint, text, text, text, text, text), carbon.publicize_project(bigint, date),
  carbon.approve_project(bigint), carbon.issue_units(bigint), carbon.cancel_units(bigint, bigint, text),
  carbon.recall_issuance(text, text)
TO carbon_admin;
GRANT EXECUTE ON FUNCTION carbon.submit_monitoring(bigint, daterange, carbon.co2e, jsonb)
TO carbon_admin, carbon_trader;
GRANT EXECUTE ON FUNCTION carbon.verify_monitoring(bigint, bigint, carbon.co2e, text), carbon.act_as(bigint),
  carbon.acting_account()
TO carbon_admin, carbon_verifier;
GRANT EXECUTE ON FUNCTION
  carbon.transfer_units(bigint, bigint, bigint, text, text),
  carbon.retire_units(bigint, bigint, text, text, text, text),
  carbon.retire_serials(bigint, text, text, text, text, text), carbon.tradable_units(bigint)
TO carbon_admin, carbon_app, carbon_trader;
GRANT EXECUTE ON FUNCTION carbon.tradable_units(bigint) TO carbon_auditor;
GRANT EXECUTE ON FUNCTION carbon.working_days(date, date), carbon.parse_serial(text),
  carbon.serial_text(text, int, text, bigint, bigint), carbon.verify_certificate(text), carbon.certificate(text)
TO carbon_admin, carbon_auditor, carbon_app, carbon_trader, carbon_verifier, carbon_merchant, carbon_operator, carbon_clerk;
GRANT EXECUTE ON FUNCTION carbon.serial_history(text) TO carbon_admin, carbon_auditor, carbon_verifier;
GRANT SELECT ON carbon.holiday, carbon.project, carbon.monitoring_report, carbon.unit_issuance, carbon.unit_block,
  carbon.unit_event, carbon.retirement, carbon.v_projects, carbon.v_issuances, carbon.v_retirements,
  carbon.v_serial_history
TO carbon_admin, carbon_auditor;
GRANT INSERT, UPDATE, DELETE ON carbon.holiday TO carbon_admin;
GRANT SELECT ON carbon.holiday, carbon.project, carbon.unit_issuance, carbon.v_projects, carbon.v_issuances
TO carbon_app, carbon_trader, carbon_verifier;
GRANT SELECT ON carbon.monitoring_report TO carbon_trader, carbon_verifier;
GRANT SELECT ON carbon.unit_block, carbon.retirement, carbon.v_retirements TO carbon_app, carbon_trader;
SELECT carbon._account_rls(ARRAY['unit_block', 'retirement'], 'account');
-- a verifier sees every report (to take one on); an owner its own projects' reports
ALTER TABLE carbon.monitoring_report ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON carbon.monitoring_report FOR SELECT TO carbon_admin, carbon_auditor, carbon_verifier
  USING (true);
CREATE POLICY owner_reports ON carbon.monitoring_report FOR SELECT TO carbon_trader
  USING (EXISTS (SELECT 1 FROM carbon.project p WHERE p.id = monitoring_report.project
                 AND p.owner = carbon.acting_account()));

-- The market (api.md §6, §7): traders and apps place and cancel orders and
-- move cash for their acting account; the admin sets reference prices and
-- closes the day; the book and daily figures are public to those roles.
GRANT EXECUTE ON FUNCTION
  carbon.deposit_cash(bigint, numeric, text, text), carbon.withdraw_cash(bigint, numeric, text, text),
  carbon.place_order(bigint, text, bigint, numeric, text, text, text, text, text), carbon.cancel_order(bigint)
TO carbon_admin, carbon_trader, carbon_app;
GRANT EXECUTE ON FUNCTION carbon.set_reference_price(text, numeric), carbon.close_market_day(date) TO carbon_admin;
GRANT SELECT ON carbon.instrument, carbon.market_order, carbon.trade, carbon.market_day, carbon.v_order_book,
  carbon.v_market_daily TO carbon_admin, carbon_auditor;
GRANT SELECT ON carbon.instrument, carbon.market_day, carbon.v_order_book, carbon.v_market_daily
TO carbon_app, carbon_trader;
GRANT SELECT ON carbon.market_order, carbon.trade TO carbon_app, carbon_trader;
SELECT carbon._account_rls(ARRAY['market_order'], 'account');
SELECT carbon._account_rls(ARRAY['trade'], NULL);
CREATE POLICY acting_account ON carbon.trade FOR SELECT TO carbon_app, carbon_trader
  USING (carbon.acting_account() IN (buyer, seller));

-- The books of carbon units (80_accounting.sql): auditors and admins read
-- every account's; an enterprise's app (carbon_trader) its acting account's.
GRANT SELECT ON carbon.accounting_subject TO carbon_admin, carbon_auditor, carbon_trader, carbon_app;
GRANT SELECT ON carbon.unit_cost, carbon.accounting_voucher, carbon.v_accounting_journal, carbon.v_trial_balance
TO carbon_admin, carbon_auditor, carbon_trader;
SELECT carbon._account_rls(ARRAY['unit_cost', 'accounting_voucher'], 'account');

-- County clerks (82_regions.sql): read the rows of their bound region
-- prefix, and the reporting views over them.  The project registry and
-- issuances, public to the other roles, get row-level security for them.
REVOKE EXECUTE ON FUNCTION carbon.bind_region(name, text), carbon.unbind_region(name),
  carbon.clerk_region(), carbon.in_clerk_region(text), carbon.clerk_scoped() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carbon.bind_region(name, text), carbon.unbind_region(name) TO carbon_admin;
GRANT EXECUTE ON FUNCTION carbon.clerk_region(), carbon.in_clerk_region(text), carbon.clerk_scoped()
TO carbon_clerk, carbon_admin, carbon_auditor;
GRANT SELECT ON carbon.region_scope TO carbon_admin, carbon_auditor, carbon_clerk;
GRANT SELECT ON carbon.asset, carbon.settings, carbon.account, carbon.balance, carbon.behavior, carbon.lot,
  carbon.project, carbon.monitoring_report, carbon.unit_issuance, carbon.retirement,
  carbon.v_supply, carbon.v_reduction_monthly, carbon.v_points_expiring, carbon.v_projects, carbon.v_issuances,
  carbon.v_retirements
TO carbon_clerk;
ALTER TABLE carbon.region_scope ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON carbon.region_scope FOR SELECT TO carbon_admin, carbon_auditor USING (true);
CREATE POLICY own_scope ON carbon.region_scope FOR SELECT TO carbon_clerk USING (login = current_user);
CREATE POLICY county ON carbon.account FOR SELECT TO carbon_clerk USING (carbon.in_clerk_region(region));
-- the reports' monthly summary of behaviours (v_reduction_monthly reads it)
GRANT SELECT ON carbon.behavior_monthly TO carbon_auditor, carbon_clerk;
ALTER TABLE carbon.behavior_monthly ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON carbon.behavior_monthly FOR SELECT TO carbon_admin, carbon_auditor USING (true);
CREATE POLICY county ON carbon.behavior_monthly FOR SELECT TO carbon_clerk USING (carbon.in_clerk_region(region));
CREATE POLICY county ON carbon.balance FOR SELECT TO carbon_clerk
  USING (EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = balance.account AND carbon.in_clerk_region(a.region)));
CREATE POLICY county ON carbon.behavior FOR SELECT TO carbon_clerk
  USING (EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = behavior.account AND carbon.in_clerk_region(a.region)));
CREATE POLICY county ON carbon.lot FOR SELECT TO carbon_clerk
  USING (EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = lot.account AND carbon.in_clerk_region(a.region)));
CREATE POLICY county ON carbon.retirement FOR SELECT TO carbon_clerk
  USING (EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = retirement.account AND carbon.in_clerk_region(a.region)));
ALTER TABLE carbon.project ENABLE ROW LEVEL SECURITY;
CREATE POLICY registry ON carbon.project FOR SELECT
  TO carbon_admin, carbon_auditor, carbon_app, carbon_trader, carbon_verifier USING (true);
CREATE POLICY county ON carbon.project FOR SELECT TO carbon_clerk USING (carbon.in_clerk_region(region));
ALTER TABLE carbon.unit_issuance ENABLE ROW LEVEL SECURITY;
CREATE POLICY registry ON carbon.unit_issuance FOR SELECT
  TO carbon_admin, carbon_auditor, carbon_app, carbon_trader, carbon_verifier USING (true);
CREATE POLICY county ON carbon.unit_issuance FOR SELECT TO carbon_clerk USING (carbon.in_clerk_region(region));
CREATE POLICY county ON carbon.monitoring_report FOR SELECT TO carbon_clerk
  USING (EXISTS (SELECT 1 FROM carbon.project p WHERE p.id = monitoring_report.project
                 AND carbon.in_clerk_region(p.region)));

-- Groups and rankings (83_groups.sql): the admin keeps the groups; auditors
-- read them; a citizen's app reads its acting account's rank only (an
-- owner's-rights view that names nobody else).
GRANT EXECUTE ON FUNCTION carbon.create_group(text, text, text), carbon.join_group(bigint, bigint, date),
  carbon.leave_group(bigint, bigint, date)
TO carbon_admin;
GRANT SELECT ON carbon.account_group, carbon.group_member, carbon.group_credit, carbon.v_group_monthly, carbon.v_group_credit
TO carbon_admin, carbon_auditor;
GRANT SELECT ON carbon.v_my_group_rank TO carbon_app, carbon_auditor, carbon_admin;

-- GEP (84_gep.sql): imported by the admin with COPY, read beside carbon by
-- auditors and clerks.
-- (imported_by and imported_at are the database's: no grant on them)
GRANT SELECT, DELETE ON carbon.gep TO carbon_admin;
GRANT INSERT (region, year, provisioning, regulating, cultural, source) ON carbon.gep TO carbon_admin;
-- (no row-level security on carbon.gep: COPY refuses tables that have it;
-- v_gep_carbon itself keeps a clerk to its prefix)
GRANT SELECT ON carbon.gep TO carbon_auditor;
GRANT SELECT ON carbon.v_gep_carbon TO carbon_auditor, carbon_clerk;
GRANT SELECT ON carbon.v_gep_carbon TO carbon_admin;
GRANT EXECUTE ON FUNCTION carbon.region_prefix(text) TO carbon_admin, carbon_auditor, carbon_clerk;

DROP FUNCTION carbon._account_rls(text[], text);

-- A region's accounts by index alone, and its system accounts apart
-- (20_ledger_tables.sql); v_supply from the system accounts alone
-- (60_views.sql).
DROP INDEX carbon.account_region_idx;
CREATE INDEX account_region_idx ON carbon.account (region, tier, id);
CREATE INDEX account_system_region_idx ON carbon.account (region) WHERE kind <> 'participant';
-- (v_supply itself is made anew further down, beside v_supply_detail.)

-- seal() takes a lock of the extension's own class: a pg_advisory_lock() of
-- hashtext('carbon_ledger.seal'), open to any login, held it up before.
-- seal()'s turn, a lock no pg_advisory_lock() call can take first (catalog.c)
CREATE FUNCTION carbon._seal_lock() RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_seal_lock' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION carbon._seal_lock() FROM PUBLIC;

CREATE OR REPLACE FUNCTION carbon.seal() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  last      carbon.seal;
  prev_max  bigint := 0;
  prev_hash bytea := decode(repeat('00', 32), 'hex');
  carried   bigint[] := '{}';
  new_max   bigint;
  members   bigint[];
  gaps      bigint[];
  digest    bytea;
  sealed    bigint;
BEGIN
  PERFORM carbon._seal_lock();   -- a lock of the extension's own class: no pg_advisory_lock() can hold it
  SELECT * INTO last FROM carbon.seal ORDER BY id DESC LIMIT 1;
  IF FOUND THEN
    prev_max := last.max_id;
    prev_hash := last.hash;
    carried := last.gaps;
    -- once every transaction that was running at the last seal has ended,
    -- a gap still missing was rolled back: stop carrying it
    IF pg_snapshot_xmin(pg_current_snapshot()) >= last.snapshot_xmax THEN
      carried := ARRAY(SELECT g FROM unnest(last.gaps) g
                       WHERE EXISTS (SELECT 1 FROM carbon.entry WHERE id = g));
    END IF;
  END IF;

  SELECT max(id) INTO new_max FROM carbon.entry WHERE id > prev_max;
  new_max := greatest(coalesce(new_max, prev_max), prev_max);
  members := ARRAY(SELECT id FROM carbon.entry
                   WHERE (id > prev_max AND id <= new_max) OR id = ANY (carried)
                   ORDER BY id);
  IF cardinality(members) = 0 THEN
    RETURN NULL;
  END IF;
  gaps := ARRAY(SELECT g FROM (SELECT generate_series(prev_max + 1, new_max) g
                               UNION SELECT unnest(carried)) c
                WHERE g <> ALL (members) ORDER BY g);

  SELECT carbon._sha256_chain(prev_hash, t.line ORDER BY t.id) INTO digest
  FROM carbon._entry_text(members) t;

  INSERT INTO carbon.seal (prev_max_id, max_id, carried, gaps, entries, prev_hash, hash, snapshot_xmax)
  VALUES (prev_max, new_max, carried, gaps, cardinality(members), prev_hash, digest,
          pg_snapshot_xmax(pg_current_snapshot()))
  RETURNING id INTO sealed;
  RETURN sealed;
END $$;

-- the public calendar working_days() reads, for every role that may call it
-- (merchants, operators and clerks were refused: 42501 on carbon.holiday)
GRANT SELECT ON carbon.holiday TO carbon_merchant, carbon_operator, carbon_clerk;

-- The admin inserts inbox rows as operators do: every column but
-- inserted_by, which the database sets (it could name an operator there).
REVOKE INSERT ON carbon.behavior_inbox FROM carbon_admin;
GRANT INSERT (source, event_id, account, methodology, activity, occurred_at, attrs)
  ON carbon.behavior_inbox TO carbon_admin;

-- The inbox becomes a view over a queue table, so that operators can COPY
-- into it: COPY FROM refuses a table under row-level security to all but
-- its owner.  The view reads the queue under its row-level security as the
-- reader; its trigger writes the queue as the queue's owner, setting seq,
-- received_at and inserted_by itself.  Rows waiting in the inbox stay.
ALTER TABLE carbon.behavior_inbox RENAME TO inbox_queue;
COMMENT ON TABLE carbon.inbox_queue IS
  '行为收件箱队列 the rows of carbon.behavior_inbox waiting for carbon.process_inbox()';
DROP POLICY own_rows ON carbon.inbox_queue;
CREATE POLICY own_rows ON carbon.inbox_queue FOR SELECT TO carbon_operator USING (inserted_by = CURRENT_USER);
REVOKE INSERT ON carbon.inbox_queue FROM carbon_operator, carbon_admin;
REVOKE INSERT (source, event_id, account, methodology, activity, occurred_at, attrs)
  ON carbon.inbox_queue FROM carbon_operator, carbon_admin;
REVOKE USAGE ON SEQUENCE carbon.behavior_inbox_seq FROM carbon_operator, carbon_admin;
CREATE VIEW carbon.behavior_inbox WITH (security_invoker = true) AS
  SELECT source, event_id, account, methodology, activity, occurred_at, attrs
  FROM carbon.inbox_queue;
ALTER VIEW carbon.behavior_inbox ALTER COLUMN attrs SET DEFAULT '{}';
CREATE FUNCTION carbon._inbox_enqueue() RETURNS trigger
  AS 'MODULE_PATHNAME', 'inbox_enqueue' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION carbon._inbox_enqueue() FROM PUBLIC;
CREATE TRIGGER enqueue INSTEAD OF INSERT ON carbon.behavior_inbox
  FOR EACH ROW EXECUTE FUNCTION carbon._inbox_enqueue();
COMMENT ON VIEW carbon.behavior_inbox IS
  '批量行为收件箱 bulk intake: COPY behaviours here, then call carbon.process_inbox()';
COMMENT ON COLUMN carbon.behavior_inbox.source IS '来源 the reporting source (carbon.register_source)';
COMMENT ON COLUMN carbon.behavior_inbox.event_id IS '事件号 the source''s own id of the event: one record per (source, event_id)';
COMMENT ON COLUMN carbon.behavior_inbox.account IS '账户 the citizen''s account';
COMMENT ON COLUMN carbon.behavior_inbox.methodology IS '方法学 methodology code, or code@version';
COMMENT ON COLUMN carbon.behavior_inbox.activity IS '活动量 activity in the methodology''s unit (km, kg, trips …)';
COMMENT ON COLUMN carbon.behavior_inbox.occurred_at IS '发生时间 when the behaviour happened';
COMMENT ON COLUMN carbon.behavior_inbox.attrs IS '属性 further facts of the event (JSON)';
GRANT SELECT, DELETE ON carbon.behavior_inbox TO carbon_admin;
GRANT INSERT (source, event_id, account, methodology, activity, occurred_at, attrs)
  ON carbon.behavior_inbox TO carbon_operator, carbon_admin;
GRANT SELECT ON carbon.behavior_inbox TO carbon_operator, carbon_auditor;

-- v_supply is exactly api.md's nine columns; escrow and moved_out, which
-- close the per-segment identity, move to the new v_supply_detail (same
-- rows; v_supply reads it).  A view's columns cannot be dropped: both are
-- made anew.  Money (CNY, partner currencies) shows in yuan with 2
-- decimals there and in v_account_statement, as api.md has money in views
-- (it showed fen); v_account_statement's amount becomes numeric.
DROP VIEW carbon.v_supply;
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
COMMENT ON COLUMN carbon.v_supply_detail.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_supply_detail.tier IS '体系层级 tier: personal, enterprise, government, merchant, verifier, platform';
COMMENT ON COLUMN carbon.v_supply_detail.region IS '行政区划 region: 6-digit administrative division code';
COMMENT ON COLUMN carbon.v_supply_detail.issued IS
  '已发行 issued into the tier and region, net of what went back (reversals, cash withdrawals), cumulative, in the asset''s unit (points, grams CO2e, tonnes; money in yuan with 2 decimals)';
COMMENT ON COLUMN carbon.v_supply_detail.outstanding IS
  '流通量 held now by the participants (merchants'' unsettled points included), in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.redeemed IS '已兑换 left the tier by redemption once the merchant settled (carbon.settle_merchant), cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.expired IS '已过期 left the tier by expiry, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.retired IS '已注销抵消 left the tier by retirement, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.cancelled IS '已行政注销 left the tier by cancellation, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.escrow IS '冻结托管 held in escrow now (open market orders), in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.moved_out IS
  '净转出 net amount moved to other tiers or regions through clearing, in the asset''s unit';

DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT attname, col_description('carbon.v_supply_detail'::regclass, attnum) AS comment
           FROM pg_attribute WHERE attrelid = 'carbon.v_supply'::regclass AND attnum > 0
  LOOP
    EXECUTE format('COMMENT ON COLUMN carbon.v_supply.%I IS %L', c.attname, c.comment);
  END LOOP;
END $$;
GRANT SELECT ON carbon.v_supply, carbon.v_supply_detail TO carbon_auditor, carbon_admin, carbon_clerk;
DROP VIEW carbon.v_account_statement;
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
COMMENT ON COLUMN carbon.v_account_statement.account IS '账户 the account posted to';
COMMENT ON COLUMN carbon.v_account_statement.entry_id IS '分录号 the ledger entry (carbon.entry) of the posting';
COMMENT ON COLUMN carbon.v_account_statement.at IS '记账时间 when the entry was posted';
COMMENT ON COLUMN carbon.v_account_statement.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_account_statement.amount IS
  '金额 signed amount in the asset''s unit (points, grams CO2e, tonnes; money in yuan with 2 decimals); positive credits the account';
COMMENT ON COLUMN carbon.v_account_statement.balance_after IS
  '变动后余额 the account''s balance of the asset after this posting, in the asset''s unit (money in yuan)';
COMMENT ON COLUMN carbon.v_account_statement.kind IS
  '业务类型 kind of entry: behavior, transfer, redemption, exchange, expiry, trade, reversal, …';
COMMENT ON COLUMN carbon.v_account_statement.memo IS '摘要 the entry''s memo';
GRANT SELECT ON carbon.v_account_statement TO carbon_auditor, carbon_admin, carbon_app, carbon_merchant, carbon_trader;

-- Seeded allowed flows are defaults, editable by carbon_admin (api.md §2):
-- an admin's change of a default makes it the admin's own row (seeded =
-- false), which a dump keeps (the extension's rows are not dumped: a
-- restore seeds them again, and the admin's row for the same tiers and
-- asset takes precedence).  Deleting a default leaves the admin's row that
-- refuses the flow, so that a restore does not bring the default back.
-- Nobody writes seeded rows.
CREATE OR REPLACE FUNCTION carbon._allowed_flow_guard() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF (TG_OP = 'INSERT' AND NEW.seeded) OR (TG_OP = 'UPDATE' AND NEW.seeded AND NOT OLD.seeded) THEN
    RAISE EXCEPTION 'only the extension writes seeded default flows'
      USING ERRCODE = '42501',
            HINT = 'Insert or update a row with seeded = false; it takes precedence over the default.';
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.seeded
     AND (NEW.from_tier, NEW.to_tier, NEW.asset) IS DISTINCT FROM (OLD.from_tier, OLD.to_tier, OLD.asset) THEN
    RAISE EXCEPTION 'a default flow''s tiers and asset cannot be changed'
      USING ERRCODE = '42501',
            HINT = 'Change whether it is allowed, or insert a row for other tiers or another asset.';
  END IF;
  IF TG_OP <> 'DELETE' AND NOT EXISTS (SELECT 1 FROM carbon.asset WHERE code = NEW.asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', NEW.asset USING ERRCODE = '22023';
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.seeded THEN
    IF EXISTS (SELECT 1 FROM carbon.allowed_flow f
               WHERE (f.from_tier, f.to_tier, f.asset) = (OLD.from_tier, OLD.to_tier, OLD.asset) AND NOT f.seeded) THEN
      -- the admin's own row for the flow is the one that counts (and the
      -- one a statement naming the flow changes as well)
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NULL END;
    END IF;
    IF TG_OP = 'UPDATE' THEN
      NEW.seeded := false;      -- the default becomes the admin's row, as edited
      RETURN NEW;
    END IF;
    -- what stays of a deleted default is the admin's refusal of the flow
    INSERT INTO carbon.allowed_flow (from_tier, to_tier, asset, allowed, seeded, note)
    VALUES (OLD.from_tier, OLD.to_tier, OLD.asset, false, false, 'default removed');
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

-- Append-only for everyone (api.md §7): the ledger's append-only guards fire
-- in every session, a superuser's with session_replication_role = replica
-- too (red-team, twenty-second session: that one setting silenced them and
-- let a superuser rewrite postings without a trace in the DDL).  The INSERT
-- checks (_posting_check, _unit_block_no_overlap) keep the default: a
-- logical-replication subscriber applies an entry's rows one at a time.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgrelid::regclass AS rel, tg.tgname
           FROM pg_catalog.pg_trigger tg
           WHERE tg.tgfoid = 'carbon._append_only()'::pg_catalog.regprocedure AND NOT tg.tgisinternal
  LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
  END LOOP;
END $$;
