-- ---------------------------------------------------------------------------
-- Who may act for whom (api.md §7).  A carbon_app member acts for personal
-- accounts; every other account, and any account at all for members of
-- carbon_merchant and carbon_trader, only once carbon_admin has bound it to
-- the caller's login role here.  act_as() (carbon_ledger.c) reads this table.
-- ---------------------------------------------------------------------------
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
