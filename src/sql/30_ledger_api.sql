-- ---------------------------------------------------------------------------
-- Ledger API (api.md §2, §4 transfer, §7).  Every write is a SECURITY
-- DEFINER function with a pinned search_path; the C is in accounts.c,
-- entries.c, invariants.c and carbon_ledger.c.
-- ---------------------------------------------------------------------------

-- Triggers: the posting invariants, and append-only journal tables.
CREATE FUNCTION carbon._posting_check() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_posting_check' LANGUAGE C;
CREATE TRIGGER posting_check AFTER INSERT ON carbon.posting
  REFERENCING NEW TABLE AS new_postings
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._posting_check();

CREATE FUNCTION carbon._append_only() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_append_only' LANGUAGE C;
CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON carbon.entry
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER entry_no_truncate BEFORE TRUNCATE ON carbon.entry
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON carbon.posting
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON carbon.posting
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER seal_append_only BEFORE UPDATE OR DELETE ON carbon.seal
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER seal_no_truncate BEFORE TRUNCATE ON carbon.seal
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER status_log_append_only BEFORE UPDATE OR DELETE ON carbon.account_status_log
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER status_log_no_truncate BEFORE TRUNCATE ON carbon.account_status_log
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();

-- Seeded allowed flows are defaults, editable by carbon_admin (api.md §2):
-- an admin's change of a default makes it the admin's own row (seeded =
-- false), which a dump keeps (the extension's rows are not dumped: a
-- restore seeds them again, and the admin's row for the same tiers and
-- asset takes precedence).  Deleting a default leaves the admin's row that
-- refuses the flow, so that a restore does not bring the default back.
-- Nobody writes seeded rows.
CREATE FUNCTION carbon._allowed_flow_guard() RETURNS trigger
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
CREATE TRIGGER allowed_flow_guard BEFORE INSERT OR UPDATE OR DELETE ON carbon.allowed_flow
  FOR EACH ROW EXECUTE FUNCTION carbon._allowed_flow_guard();

-- Accounts.
CREATE FUNCTION carbon.open_account(tier text, region text, external_ref text, display_name text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_open_account'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.open_account(text, text, text, text) IS
  '开立碳账户 open an account (idempotent on tier and external reference, which is stored only as a keyed hash)';

CREATE FUNCTION carbon.account_id(tier text, external_ref text)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_account_id'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.account_id(text, text) IS '按外部标识查账户 the account of an external reference, or NULL';

CREATE FUNCTION carbon.set_account_status(account bigint, status text, reason text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_set_account_status'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_account_status(bigint, text, text) IS
  '冻结/解冻/注销账户 active, frozen or closed (closing needs zero balances and is final)';

CREATE FUNCTION carbon.balance(account bigint, asset text DEFAULT 'POINT')
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_balance'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.balance(bigint, text) IS '可用余额 what the account can spend now';

CREATE FUNCTION carbon.balance_at(account bigint, asset text, at timestamptz)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_balance_at'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.balance_at(bigint, text, timestamptz) IS '历史余额 the balance as it stood at a time';

CREATE FUNCTION carbon.act_as(account bigint)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_act_as'
  LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.act_as(bigint) IS
  '代表账户操作 the app acts for this account until the end of the current transaction';

CREATE FUNCTION carbon.acting_account()
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_acting_account_sql'
  LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION carbon.acting_account() IS 'the account set by act_as() in this transaction, or NULL';

-- Assets.
CREATE FUNCTION carbon.define_asset(code text, kind text, name text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_define_asset'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.define_asset(text, text, text) IS
  '定义合作方资产 a partner currency (kind currency) or another city''s points (kind points)';

-- Moving value.
CREATE FUNCTION carbon.transfer(from_account bigint, to_account bigint, asset text, amount bigint,
                                memo text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_transfer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.transfer(bigint, bigint, text, bigint, text, text) IS
  '转账 move value between participants, subject to carbon.allowed_flow; returns the entry id';

CREATE FUNCTION carbon.issue(account bigint, asset text, amount bigint,
                             memo text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_issue'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.issue(bigint, text, bigint, text, text) IS
  '签发 administrative issuance from the segment''s issuance account; returns the entry id';

CREATE FUNCTION carbon.reverse_entry(entry bigint, memo text)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_reverse_entry'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.reverse_entry(bigint, text) IS
  '冲正 post the exact negation of an entry (at most once); ledger rows are never changed';
