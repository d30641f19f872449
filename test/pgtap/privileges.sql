-- pgTAP: least privilege for functions (issue 16 item 4).  Every function of
-- schema carbon with the roles that may EXECUTE it, decided in one place
-- (src/sql/90_security.sql).  A new function without a decision, or a grant
-- that changes, fails here: add it to this list on purpose.
BEGIN;
-- functions print schema-qualified: carbon is not on the search_path here
SET search_path = public;
SELECT plan(7);

-- who may execute each function: PUBLIC, or the carbon_* roles granted it
CREATE TEMP VIEW fn_roles AS
  SELECT p.oid::regprocedure::text AS fn,
         coalesce((SELECT string_agg(g, ' ' ORDER BY g)
                     FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS g
                             FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                            WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner) x), '') AS roles
  FROM pg_proc p WHERE p.pronamespace = 'carbon'::regnamespace;

CREATE TEMP TABLE expected (fn text, roles text);
INSERT INTO expected VALUES
  ('carbon._allowed_flow_guard()', ''),
  ('carbon._append_only()', ''),
  ('carbon._catalog_changed()', ''),
  ('carbon._check_params(text,jsonb)', ''),
  ('carbon._entry_text(bigint[])', ''),
  ('carbon._group_credit_add(bigint,bigint,date,date,integer)', ''),
  ('carbon._inbox_enqueue()', ''),
  ('carbon._methodology(text,integer)', ''),
  ('carbon._methodology_frozen()', ''),
  ('carbon._methodology_step(text,integer,text[],text,text,timestamp with time zone)', ''),
  ('carbon._posting_check()', ''),
  ('carbon._seal_lock()', ''),
  ('carbon._seal_members(carbon.seal)', ''),
  ('carbon._sha256_chain(bytea,text)', ''),
  ('carbon._sha256_chain_final(internal)', ''),
  ('carbon._sha256_chain_step(internal,bytea,text)', ''),
  ('carbon._unit_block_no_overlap()', ''),
  ('carbon._valid_tier(text)', 'carbon_admin'),
  ('carbon.account_id(text,text)', 'carbon_admin carbon_app carbon_auditor'),
  ('carbon.act_as(bigint)', 'carbon_admin carbon_app carbon_merchant carbon_trader carbon_verifier'),
  ('carbon.acting_account()', 'carbon_admin carbon_app carbon_auditor carbon_merchant carbon_trader carbon_verifier'),
  ('carbon.approve_methodology(text,integer,text)', 'carbon_admin'),
  ('carbon.avg(carbon.co2e)', 'PUBLIC'),
  ('carbon.balance(bigint,text)', 'carbon_admin carbon_app carbon_auditor carbon_merchant carbon_trader'),
  ('carbon.balance_at(bigint,text,timestamp with time zone)', 'carbon_admin carbon_app carbon_auditor carbon_merchant carbon_trader'),
  ('carbon.bind_account(bigint,name)', 'carbon_admin'),
  ('carbon.bind_region(name,text)', 'carbon_admin'),
  ('carbon.create_group(text,text,text)', 'carbon_admin'),
  ('carbon.join_group(bigint,bigint,date)', 'carbon_admin'),
  ('carbon.leave_group(bigint,bigint,date)', 'carbon_admin'),
  ('carbon.region_prefix(text)', 'carbon_admin carbon_auditor carbon_clerk'),
  ('carbon.clerk_region()', 'carbon_admin carbon_auditor carbon_clerk'),
  ('carbon.clerk_scoped()', 'carbon_admin carbon_auditor carbon_clerk'),
  ('carbon.in_clerk_region(text)', 'carbon_admin carbon_auditor carbon_clerk'),
  ('carbon.calc_reduction(text,numeric,jsonb,timestamp with time zone)', 'carbon_admin carbon_app carbon_auditor carbon_operator carbon_verifier'),
  ('carbon.co2e_accum(internal,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_accum_inv(internal,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_agg_deserialize(bytea,internal)', 'PUBLIC'),
  ('carbon.co2e_agg_serialize(internal)', 'PUBLIC'),
  ('carbon.co2e_avg_final(internal)', 'PUBLIC'),
  ('carbon.co2e_cmp(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_combine(internal,internal)', 'PUBLIC'),
  ('carbon.co2e_div_co2e(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_div_int4(carbon.co2e,integer)', 'PUBLIC'),
  ('carbon.co2e_div_int8(carbon.co2e,bigint)', 'PUBLIC'),
  ('carbon.co2e_div_numeric(carbon.co2e,numeric)', 'PUBLIC'),
  ('carbon.co2e_eq(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_ge(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_grams(bigint)', 'PUBLIC'),
  ('carbon.co2e_gt(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_hash(carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_hash_extended(carbon.co2e,bigint)', 'PUBLIC'),
  ('carbon.co2e_in(cstring)', 'PUBLIC'),
  ('carbon.co2e_larger(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_le(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_lt(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_mi(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_mul_int4(carbon.co2e,integer)', 'PUBLIC'),
  ('carbon.co2e_mul_int8(carbon.co2e,bigint)', 'PUBLIC'),
  ('carbon.co2e_mul_numeric(carbon.co2e,numeric)', 'PUBLIC'),
  ('carbon.co2e_ne(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_out(carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_pl(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_recv(internal)', 'PUBLIC'),
  ('carbon.co2e_send(carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_smaller(carbon.co2e,carbon.co2e)', 'PUBLIC'),
  ('carbon.co2e_sortsupport(internal)', 'PUBLIC'),
  ('carbon.co2e_sum_final(internal)', 'PUBLIC'),
  ('carbon.co2e_um(carbon.co2e)', 'PUBLIC'),
  ('carbon.define_asset(text,text,text)', 'carbon_admin'),
  ('carbon.define_methodology(text,integer,text,text,text,text,jsonb)', 'carbon_admin'),
  ('carbon.expire_lots(timestamp with time zone)', 'carbon_admin'),
  ('carbon.grams(carbon.co2e)', 'PUBLIC'),
  ('carbon.int4_mul_co2e(integer,carbon.co2e)', 'PUBLIC'),
  ('carbon.int8_mul_co2e(bigint,carbon.co2e)', 'PUBLIC'),
  ('carbon.issue(bigint,text,bigint,text,text)', 'carbon_admin'),
  ('carbon.kg(carbon.co2e)', 'PUBLIC'),
  ('carbon.max(carbon.co2e)', 'PUBLIC'),
  ('carbon.min(carbon.co2e)', 'PUBLIC'),
  ('carbon.numeric_mul_co2e(numeric,carbon.co2e)', 'PUBLIC'),
  ('carbon.open_account(text,text,text,text)', 'carbon_admin carbon_app'),
  ('carbon.process_inbox(integer)', 'carbon_admin carbon_operator'),
  ('carbon.publish_methodology(text,integer,timestamp with time zone)', 'carbon_admin'),
  ('carbon.record_behavior(text,text,bigint,text,numeric,timestamp with time zone,jsonb)', 'carbon_admin carbon_operator'),
  ('carbon.register_source(text,text[],name)', 'carbon_admin'),
  ('carbon.retire_methodology(text,integer)', 'carbon_admin'),
  ('carbon.reverse_entry(bigint,text)', 'carbon_admin'),
  ('carbon.seal()', 'carbon_admin'),
  ('carbon.set_account_status(bigint,text,text)', 'carbon_admin'),
  ('carbon.set_issuance_cap(text,text,text,integer,bigint)', 'carbon_admin'),
  ('carbon.set_setting(text,text)', 'carbon_admin'),
  ('carbon.submit_methodology(text,integer)', 'carbon_admin'),
  ('carbon.sum(carbon.co2e)', 'PUBLIC'),
  ('carbon.suspend_methodology(text,integer)', 'carbon_admin'),
  ('carbon.tonnes(carbon.co2e)', 'PUBLIC'),
  ('carbon.create_offer(bigint,text,bigint,integer,tstzrange,integer)', 'carbon_admin carbon_merchant'),
  ('carbon.set_offer_status(bigint,text)', 'carbon_admin carbon_merchant'),
  ('carbon.restock_offer(bigint,integer)', 'carbon_admin carbon_merchant'),
  ('carbon.redeem(bigint,bigint,integer,text)', 'carbon_admin carbon_app'),
  ('carbon.refund_redemption(bigint,integer,text)', 'carbon_admin carbon_merchant'),
  ('carbon.settle_merchant(bigint,timestamp with time zone)', 'carbon_admin'),
  ('carbon.set_exchange_rate(text,text,bigint,bigint,timestamp with time zone)', 'carbon_admin'),
  ('carbon.exchange(bigint,text,bigint,text,text)', 'carbon_admin carbon_app'),
  ('carbon.donate(bigint,bigint,bigint,text)', 'carbon_admin carbon_app'),
  ('carbon.transfer(bigint,bigint,text,bigint,text,text)', 'carbon_admin carbon_app carbon_merchant carbon_trader'),
  ('carbon.unbind_account(bigint,name)', 'carbon_admin'),
  ('carbon.unbind_region(name)', 'carbon_admin'),
  ('carbon.verify_integrity()', 'carbon_admin carbon_auditor'),
  -- projects and certified units (api.md §5): the administrator runs the
  -- lifecycle; owners (traders) submit, verifiers verify, holders move and retire
  ('carbon._local_today()', ''),
  ('carbon._project(bigint)', ''),
  ('carbon._require_acting(bigint)', ''),
  ('carbon.register_project(bigint,text,text,text,text,text)', 'carbon_admin'),
  ('carbon.publicize_project(bigint,date)', 'carbon_admin'),
  ('carbon.approve_project(bigint)', 'carbon_admin'),
  ('carbon.submit_monitoring(bigint,daterange,carbon.co2e,jsonb)', 'carbon_admin carbon_trader'),
  ('carbon.verify_monitoring(bigint,bigint,carbon.co2e,text)', 'carbon_admin carbon_verifier'),
  ('carbon.issue_units(bigint)', 'carbon_admin'),
  ('carbon.cancel_units(bigint,bigint,text)', 'carbon_admin'),
  ('carbon.recall_issuance(text,text)', 'carbon_admin'),
  ('carbon.transfer_units(bigint,bigint,bigint,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.retire_units(bigint,bigint,text,text,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.retire_serials(bigint,text,text,text,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.tradable_units(bigint)', 'carbon_admin carbon_app carbon_auditor carbon_trader'),
  ('carbon.serial_history(text)', 'carbon_admin carbon_auditor carbon_verifier'),
  ('carbon.working_days(date,date)', 'carbon_admin carbon_app carbon_auditor carbon_clerk carbon_merchant carbon_operator carbon_trader carbon_verifier'),
  ('carbon.parse_serial(text)', 'carbon_admin carbon_app carbon_auditor carbon_clerk carbon_merchant carbon_operator carbon_trader carbon_verifier'),
  ('carbon.serial_text(text,integer,text,bigint,bigint)', 'carbon_admin carbon_app carbon_auditor carbon_clerk carbon_merchant carbon_operator carbon_trader carbon_verifier'),
  ('carbon.verify_certificate(text)', 'carbon_admin carbon_app carbon_auditor carbon_clerk carbon_merchant carbon_operator carbon_trader carbon_verifier'),
  ('carbon.certificate(text)', 'carbon_admin carbon_app carbon_auditor carbon_clerk carbon_merchant carbon_operator carbon_trader carbon_verifier'),
  -- the market (api.md §6): traders and apps move cash and place and cancel
  -- orders for their acting account; the administrator sets the reference
  -- price and closes the day
  ('carbon.deposit_cash(bigint,numeric,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.withdraw_cash(bigint,numeric,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.place_order(bigint,text,bigint,numeric,text,text,text,text,text)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.cancel_order(bigint)', 'carbon_admin carbon_app carbon_trader'),
  ('carbon.set_reference_price(text,numeric)', 'carbon_admin'),
  ('carbon.close_market_day(date)', 'carbon_admin');

SELECT set_eq('SELECT fn FROM fn_roles', 'SELECT fn FROM expected',
              'every function of schema carbon has a decision in this list (and no listed function is missing)');
SELECT set_eq('SELECT fn, roles FROM fn_roles', 'SELECT fn, roles FROM expected',
              'each function is executable by exactly the roles listed');
SELECT is_empty($$SELECT fn FROM fn_roles WHERE roles LIKE '%PUBLIC%'
                    AND fn !~ '^carbon\.(co2e_|int4_mul_co2e|int8_mul_co2e|numeric_mul_co2e|grams|kg|tonnes)'
                    AND fn !~ '^carbon\.(sum|avg|min|max)\(carbon\.co2e\)$'$$,
                'PUBLIC executes only the co2e type''s own functions');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                   WHERE p.pronamespace = 'carbon'::regnamespace AND p.prosecdef
                     AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, carbon, pg_temp%', false)$$,
                'every SECURITY DEFINER function pins search_path = pg_catalog, carbon, pg_temp');
SELECT hasnt_function('carbon', '_account_rls', 'install-time helpers are dropped after the install');

-- A BI login with no carbon role adds two co2e values.
CREATE ROLE tap_bi LOGIN;
SET ROLE tap_bi;
SET search_path = public, carbon;
SELECT is(('1.5 kg'::co2e + '500 g'::co2e)::text || ' ' || (sum(x) / 2)::text, '2 kg 1 kg',
          'a login without any carbon role adds and sums co2e values')
  FROM (VALUES ('1.5 kg'::co2e), ('500 g')) v(x);
RESET ROLE;
SET search_path = public;

-- Every role that may call working_days() can: it reads the public calendar
-- (merchants, operators and clerks were refused on carbon.holiday).
CREATE FUNCTION pg_temp.working_days_as(r name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', r);
  PERFORM carbon.working_days('2026-09-28', '2026-10-09');
  RESET ROLE;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RESET ROLE;
  RETURN r || ': ' || SQLSTATE;
END $$;
SELECT is((SELECT string_agg(pg_temp.working_days_as(r), ', ')
           FROM unnest(ARRAY['carbon_admin', 'carbon_app', 'carbon_auditor', 'carbon_clerk', 'carbon_merchant',
                             'carbon_operator', 'carbon_trader', 'carbon_verifier']::name[]) r),
          NULL, 'every role granted working_days() can call it');

SELECT * FROM finish();
ROLLBACK;
