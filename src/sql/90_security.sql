-- ---------------------------------------------------------------------------
-- Privileges and row-level security (api.md §7).
--
-- Nobody but the extension owner writes a ledger table: every write goes
-- through a SECURITY DEFINER function.  Functions are not executable by
-- PUBLIC unless they only read the type or the caller's own rows.
-- ---------------------------------------------------------------------------

GRANT USAGE ON SCHEMA carbon TO PUBLIC;   -- the co2e type and its operators are for everyone
REVOKE ALL ON ALL TABLES IN SCHEMA carbon FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA carbon FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Functions: the one place where EXECUTE is decided.  Nothing is executable
-- by PUBLIC but the co2e type's own functions (I/O, operators, aggregates,
-- grams/kg/tonnes), as in any type extension; every other function is
-- granted below to the roles that may call it.  test/pgtap/privileges.sql
-- lists every function of the schema with its roles, so a new function
-- without a decision here fails the tests.
-- ---------------------------------------------------------------------------
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

-- Row-level security: members of the acting roles see the acting account's
-- rows only, and nothing without act_as(); admins and auditors see all.
-- (carbon._account_rls is reused below for the citizens' side tables.)
CREATE FUNCTION carbon._account_rls(tables text[], account_column text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('ALTER TABLE carbon.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY read_all ON carbon.%I FOR SELECT TO carbon_admin, carbon_auditor USING (true)', t);
    IF account_column IS NOT NULL THEN
      EXECUTE format('CREATE POLICY acting_account ON carbon.%I FOR SELECT TO carbon_app, carbon_merchant, '
                     'carbon_trader USING (%I = carbon.acting_account())', t, account_column);
    END IF;
  END LOOP;
END $$;
SELECT carbon._account_rls(ARRAY['account'], 'id');
SELECT carbon._account_rls(ARRAY['posting', 'balance'], 'account');
SELECT carbon._account_rls(ARRAY['entry', 'account_status_log', 'request'], NULL);
CREATE POLICY acting_account ON carbon.entry FOR SELECT
  TO carbon_app, carbon_merchant, carbon_trader
  USING (EXISTS (SELECT 1 FROM carbon.posting p
                 WHERE p.entry_id = entry.id AND p.account = carbon.acting_account()));

-- Citizens' side (api.md §3, §4).
REVOKE ALL ON ALL TABLES IN SCHEMA carbon FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA carbon TO carbon_admin;
GRANT SELECT, DELETE ON carbon.behavior_inbox, carbon.inbox_queue TO carbon_admin;

-- Scenario operators (and the admin) INSERT or COPY into the inbox, every
-- column but seq, received_at and inserted_by (the database sets them: an
-- admin could name an operator as the inserting role, until the
-- twenty-first session), and see their own rows and rejects.  The inbox
-- is a view whose trigger writes the queue (50_points_tables.sql): nobody
-- but its owner writes the queue itself.
GRANT INSERT (source, event_id, account, methodology, activity, occurred_at, attrs)
  ON carbon.behavior_inbox TO carbon_operator, carbon_admin;
GRANT SELECT ON carbon.behavior_inbox, carbon.inbox_queue, carbon.inbox_rejects TO carbon_operator;
GRANT SELECT ON carbon.methodology, carbon.source, carbon.settings TO carbon_operator, carbon_app,
  carbon_verifier, carbon_merchant, carbon_trader;

-- Auditors read everything but the HMAC key.
GRANT SELECT ON carbon.setting, carbon.settings, carbon.methodology, carbon.source, carbon.behavior,
  carbon.behavior_inbox, carbon.inbox_queue, carbon.inbox_rejects, carbon.behavior_batch, carbon.daily_usage, carbon.points_carry, carbon.lot, carbon.issuance_cap
TO carbon_auditor;

-- Views: auditors and admins read them all; apps their own statement.
GRANT SELECT ON carbon.v_account_statement, carbon.v_points_expiring, carbon.v_reduction_monthly,
  carbon.v_supply, carbon.v_supply_detail TO carbon_auditor, carbon_admin;
GRANT SELECT ON carbon.v_account_statement TO carbon_app, carbon_merchant, carbon_trader;
GRANT SELECT ON carbon.lot, carbon.behavior TO carbon_app, carbon_merchant, carbon_trader;

SELECT carbon._account_rls(ARRAY['lot', 'behavior'], 'account');
SELECT carbon._account_rls(ARRAY['points_carry', 'daily_usage'], NULL);
SELECT carbon._account_rls(ARRAY['account_binding'], NULL);

-- The inbox: operators see and insert only their own rows; the admin (and
-- the scheduled job) all of them.
SELECT carbon._account_rls(ARRAY['inbox_queue', 'inbox_rejects'], NULL);
CREATE POLICY own_rows ON carbon.inbox_queue FOR SELECT TO carbon_operator USING (inserted_by = CURRENT_USER);
CREATE POLICY admin_rows ON carbon.inbox_queue FOR ALL TO carbon_admin USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON carbon.inbox_rejects FOR SELECT TO carbon_operator USING (inserted_by = CURRENT_USER);

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
-- the public calendar working_days() reads, for every role that may call it
GRANT SELECT ON carbon.holiday TO carbon_merchant, carbon_operator, carbon_clerk;
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
  carbon.v_supply, carbon.v_supply_detail, carbon.v_reduction_monthly, carbon.v_points_expiring, carbon.v_projects,
  carbon.v_issuances, carbon.v_retirements
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

-- Install-time helpers go: nothing but the API stays behind.
DROP FUNCTION carbon._account_rls(text[], text);

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
