-- pgTAP: county clerks (分级分类管理, issue 21; src/sql/82_regions.sql and
-- "County clerks" in src/sql/90_security.sql).  Two counties of Zhangye,
-- Ganzhou 620702 and Linze 620723, and Nanjing 320100 elsewhere, each with
-- accounts, points, behaviours, a project with an issuance and a
-- retirement.  A clerk bound to 620702 or 620723 sees exactly its county's
-- rows in the eight tables and six reporting views (the superuser's rows
-- filtered by region prefix), a clerk bound to 6207 both counties and not
-- Nanjing, an unbound clerk nothing; re-binding and unbinding; bind_region's
-- refusals with their SQLSTATEs; what a clerk may not write, call or read
-- (42501); the project registry and issuances still public to carbon_app,
-- carbon_trader, carbon_verifier, carbon_auditor and carbon_admin; and a
-- login in carbon_clerk and carbon_auditor sees everything (permissive
-- policies OR together).
BEGIN;
SET search_path = carbon, public;
SELECT plan(124);

-- ---- setup ----
SELECT carbon._local_today() AS today \gset
SELECT open_account('personal',   '620702', 'RG-gz-p', 'a citizen of Ganzhou') AS gz_p \gset
SELECT open_account('enterprise', '620702', 'RG-gz-e', 'a farm in Ganzhou') AS gz_e \gset
SELECT open_account('personal',   '620723', 'RG-lz-p', 'a citizen of Linze') AS lz_p \gset
SELECT open_account('enterprise', '620723', 'RG-lz-e', 'a farm in Linze') AS lz_e \gset
SELECT open_account('personal',   '320100', 'RG-nj-p', 'a citizen of Nanjing') AS nj_p \gset
SELECT open_account('enterprise', '320100', 'RG-nj-e', 'a factory in Nanjing') AS nj_e \gset
SELECT open_account('verifier',   '110100', 'RG-ver', 'a verifier in Beijing') AS ver \gset

-- behaviours: 500 g a bus ride, 50 points at the default 100 points per kg
SELECT define_methodology('RG-BUS', 1, 'bus rides', 'I', 'bus', 'flat', '{"g_per_event": 500}');
SELECT submit_methodology('RG-BUS', 1), approve_methodology('RG-BUS', 1, 'panel'),
       publish_methodology('RG-BUS', 1, now() - interval '1 year');
SELECT register_source('rg-bus', ARRAY['bus']);
SELECT define_methodology('RG-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('RG-FOREST', 1), approve_methodology('RG-FOREST', 1, 'panel'),
       publish_methodology('RG-FOREST', 1, now() - interval '1 year');
SELECT status FROM record_behavior('rg-bus', 'gz-1', :gz_p, 'RG-BUS', 1, now());
SELECT status FROM record_behavior('rg-bus', 'gz-2', :gz_p, 'RG-BUS', 1, now() - interval '1 minute');
SELECT status FROM record_behavior('rg-bus', 'lz-1', :lz_p, 'RG-BUS', 1, now());
SELECT status FROM record_behavior('rg-bus', 'nj-1', :nj_p, 'RG-BUS', 1, now());
SELECT issue(:gz_p, 'POINT', 100), issue(:lz_p, 'POINT', 200), issue(:nj_p, 'POINT', 300);

-- a project in each place, 10, 20 and 30 t issued; 2, 3 and 4 t retired
SELECT register_project(:gz_e, 'RGGZ', 'Ganzhou forest', 'RG-FOREST', '620702', 'additional') AS p_gz \gset
SELECT register_project(:lz_e, 'RGLZ', 'Linze forest', 'RG-FOREST', '620723', 'additional') AS p_lz \gset
SELECT register_project(:nj_e, 'RGNJ', 'Nanjing forest', 'RG-FOREST', '320100', 'additional') AS p_nj \gset
SELECT publicize_project(p, :'today'::date - 30), approve_project(p) FROM unnest(ARRAY[:p_gz, :p_lz, :p_nj]) p;
SELECT submit_monitoring(:p_gz, '[2025-01-01,2025-12-31]', '10 t') AS r_gz \gset
SELECT submit_monitoring(:p_lz, '[2025-01-01,2025-12-31]', '20 t') AS r_lz \gset
SELECT submit_monitoring(:p_nj, '[2025-01-01,2025-12-31]', '30 t') AS r_nj \gset
SELECT verify_monitoring(r, :ver, c, 'ok')
  FROM (VALUES (:r_gz, '10 t'::co2e), (:r_lz, '20 t'), (:r_nj, '30 t')) v(r, c);
SELECT count(*) FROM issue_units(:r_gz);
SELECT count(*) FROM issue_units(:r_lz);
SELECT count(*) FROM issue_units(:r_nj);
SELECT certificate FROM retire_units(:gz_e, 2, 'voluntary', 'a school in Ganzhou');
SELECT certificate FROM retire_units(:lz_e, 3, 'voluntary', 'a school in Linze');
SELECT certificate FROM retire_units(:nj_e, 4, 'voluntary', 'a school in Nanjing');

-- The relations a clerk reads, and the region code of each row (as the
-- superuser computes it, for the expected rows).
CREATE TEMP TABLE rel (ord int, name text PRIMARY KEY, region_of text NOT NULL);
INSERT INTO rel VALUES
  (1,  'account',             't.region'),
  (2,  'balance',             '(SELECT a.region FROM carbon.account a WHERE a.id = t.account)'),
  (3,  'behavior',            '(SELECT a.region FROM carbon.account a WHERE a.id = t.account)'),
  (4,  'lot',                 '(SELECT a.region FROM carbon.account a WHERE a.id = t.account)'),
  (5,  'project',             't.region'),
  (6,  'unit_issuance',       't.region'),
  (7,  'monitoring_report',   '(SELECT p.region FROM carbon.project p WHERE p.id = t.project)'),
  (8,  'retirement',          '(SELECT a.region FROM carbon.account a WHERE a.id = t.account)'),
  (9,  'v_supply',            't.region'),
  (10, 'v_reduction_monthly', 't.region'),
  (11, 'v_points_expiring',   't.region'),
  (12, 'v_projects',          't.region'),
  (13, 'v_issuances',         '(SELECT p.region FROM carbon.project p WHERE p.id = t.project)'),
  (14, 'v_retirements',       '(SELECT a.region FROM carbon.account a WHERE a.id = t.account)'),
  (15, 'v_supply_detail',     't.region');
GRANT SELECT ON rel TO PUBLIC;   -- read under SET ROLE below

-- Every row of a query as text, as the current role sees it; an error is a
-- row 'ERROR sqlstate: message' (so that a refusal fails one test and the
-- rest still run).
CREATE FUNCTION pg_temp.rows(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('SELECT t::text FROM (%s) t', q);
EXCEPTION WHEN OTHERS THEN
  RETURN NEXT format('ERROR %s: %s', SQLSTATE, SQLERRM);
END $$;
-- the rows of a relation, all those visible or those of a region prefix
CREATE FUNCTION pg_temp.seen(rel_name text, prefix text DEFAULT NULL) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  r_of text := (SELECT region_of FROM pg_temp.rel WHERE name = rel_name);
BEGIN
  RETURN QUERY SELECT pg_temp.rows(format('SELECT * FROM carbon.%I t', rel_name)
                                   || CASE WHEN prefix IS NULL THEN ''
                                           ELSE format(' WHERE starts_with(%s, %L)', r_of, prefix) END);
END $$;

-- what the superuser sees of each prefix ('' is everything)
CREATE TEMP TABLE expected AS
  SELECT p.prefix, r.name, s.row
  FROM rel r CROSS JOIN (VALUES ('620702'), ('620723'), ('6207'), ('')) p(prefix),
       LATERAL pg_temp.seen(r.name, p.prefix) s(row);
GRANT SELECT ON expected TO PUBLIC;
CREATE TEMP TABLE expected_vp AS
  SELECT pg_temp.rows('SELECT project, code, status, owner, region FROM carbon.v_projects') AS row;
GRANT SELECT ON expected_vp TO PUBLIC;

-- the relations where the current role sees rows (counted), or an error
CREATE FUNCTION pg_temp.nonempty() RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  r record;
  n bigint;
  res text[] := '{}';
BEGIN
  FOR r IN SELECT name FROM pg_temp.rel ORDER BY ord LOOP
    BEGIN
      EXECUTE format('SELECT count(*) FROM carbon.%I', r.name) INTO n;
      IF n > 0 THEN res := res || format('%s: %s rows', r.name, n); END IF;
    EXCEPTION WHEN OTHERS THEN
      res := res || format('%s: ERROR %s: %s', r.name, SQLSTATE, SQLERRM);
    END;
  END LOOP;
  RETURN res;
END $$;
-- the relations where the current role does not see exactly the rows of a prefix
CREATE FUNCTION pg_temp.mismatches(prefix text) RETURNS text[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg(r.name ORDER BY r.ord), '{}') FROM pg_temp.rel r
  WHERE EXISTS ((SELECT pg_temp.seen(r.name) EXCEPT ALL
                 SELECT e.row FROM pg_temp.expected e WHERE e.name = r.name AND e.prefix = mismatches.prefix)
                UNION ALL
                (SELECT e.row FROM pg_temp.expected e WHERE e.name = r.name AND e.prefix = mismatches.prefix
                 EXCEPT ALL SELECT pg_temp.seen(r.name)))
$$;

SELECT is((SELECT array_agg(r.name ORDER BY r.ord) FROM rel r
            WHERE NOT (EXISTS (SELECT 1 FROM expected e WHERE e.name = r.name AND e.prefix = '620702')
                       AND EXISTS (SELECT 1 FROM expected e WHERE e.name = r.name AND e.prefix = '620723')
                       AND (SELECT count(*) FROM expected e WHERE e.name = r.name AND e.prefix = '')
                         > (SELECT count(*) FROM expected e WHERE e.name = r.name AND e.prefix = '6207')
                       AND NOT EXISTS (SELECT 1 FROM expected e WHERE e.name = r.name AND e.row LIKE 'ERROR%'))),
          NULL, 'setup: every relation has rows of Ganzhou, of Linze and of elsewhere (the superuser reads them all)');

CREATE ROLE tap_rg_gz LOGIN IN ROLE carbon_clerk;
CREATE ROLE tap_rg_lz LOGIN IN ROLE carbon_clerk;
CREATE ROLE tap_rg_city LOGIN IN ROLE carbon_clerk;
CREATE ROLE tap_rg_none LOGIN IN ROLE carbon_clerk;
CREATE ROLE tap_rg_both LOGIN IN ROLE carbon_clerk, carbon_auditor;
CREATE ROLE tap_rg_admin LOGIN IN ROLE carbon_admin;
CREATE ROLE tap_rg_auditor LOGIN IN ROLE carbon_auditor;
CREATE ROLE tap_rg_app LOGIN IN ROLE carbon_app;
CREATE ROLE tap_rg_trader LOGIN IN ROLE carbon_trader;
CREATE ROLE tap_rg_verifier LOGIN IN ROLE carbon_verifier;

-- ---- bind_region: who, and its refusals ----
SET LOCAL ROLE tap_rg_admin;
SELECT lives_ok($$SELECT carbon.bind_region('tap_rg_gz', '620702')$$, 'carbon_admin binds a clerk to Ganzhou (620702)');
SELECT lives_ok($$SELECT carbon.bind_region('tap_rg_lz', '620723')$$, 'carbon_admin binds a clerk to Linze (620723)');
RESET ROLE;
SELECT bind_region('tap_rg_city', '6207'), bind_region('tap_rg_both', '620702');
SELECT is((SELECT array_agg(login || '=' || region_prefix ORDER BY login) FROM region_scope),
          ARRAY['tap_rg_both=620702', 'tap_rg_city=6207', 'tap_rg_gz=620702', 'tap_rg_lz=620723'],
          'carbon.region_scope holds one prefix per bound login');
SET LOCAL ROLE tap_rg_auditor;
SELECT throws_ok($$SELECT carbon.bind_region('tap_rg_none', '62')$$, '42501', NULL, 'carbon_auditor cannot bind_region');
RESET ROLE;
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', '6')$$, '22023', NULL, 'bind_region: a 1-digit prefix');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', '6207021')$$, '22023', NULL, 'bind_region: a 7-digit prefix');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', '62O7')$$, '22023', NULL, 'bind_region: a letter O for a zero');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', '')$$, '22023', NULL, 'bind_region: an empty prefix');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', ' 6207')$$, '22023', NULL, 'bind_region: a leading space');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', E'620702\n')$$, '22023', NULL, 'bind_region: a trailing newline');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', '%')$$, '22023', NULL, 'bind_region: a LIKE wildcard');
SELECT throws_ok($$SELECT bind_region('tap_rg_gz', NULL)$$, '22004', NULL, 'bind_region: a NULL prefix');
SELECT throws_ok($$SELECT bind_region(NULL, '6207')$$, '22004', NULL, 'bind_region: a NULL login');
SELECT throws_ok($$SELECT bind_region(NULL, 'x')$$, '22004', NULL, 'bind_region: a NULL login before a bad prefix');
SELECT throws_ok($$SELECT bind_region('tap_rg_no_such_role', '6207')$$, '22023', NULL,
                 'bind_region: a role that does not exist');
SELECT is((SELECT region_prefix FROM region_scope WHERE login = 'tap_rg_gz'), '620702',
          '... and the refused calls left the Ganzhou binding as it was');

-- ---- the clerk of Ganzhou ----
SET LOCAL ROLE tap_rg_gz;
SELECT is(carbon.clerk_region(), '620702', 'clerk_region() is the Ganzhou clerk''s prefix');
SELECT is((SELECT array_agg(login || '=' || region_prefix) FROM carbon.region_scope), ARRAY['tap_rg_gz=620702'],
          'a clerk reads its own binding in carbon.region_scope, not the other clerks''');
SELECT bag_eq(format('SELECT pg_temp.seen(%L)', name),
              format('SELECT row FROM pg_temp.expected WHERE name = %L AND prefix = %L', name, '620702'),
              format('clerk of Ganzhou: %s shows exactly Ganzhou''s rows, none of Linze''s or Nanjing''s', name))
  FROM (SELECT name FROM rel ORDER BY ord) r;
SELECT is((SELECT string_agg(asset || ':' || issued || '/' || outstanding || '/' || retired, ' ' ORDER BY asset)
             FROM carbon.v_supply),
          'CER:10/8/2 POINT:200/200/0 RED:1000/1000/0',
          'clerk of Ganzhou: v_supply is Ganzhou''s (10 t issued, 2 retired; 100 + 2 rides x 50 points)');

-- ---- refusals: a clerk reads, never writes or moves value ----
SELECT throws_ok($$INSERT INTO carbon.account (tier, region, ref_hash) VALUES ('personal', '620702', '\x00')$$,
                 '42501', NULL, 'a clerk cannot INSERT into carbon.account');
SELECT throws_ok(format('UPDATE carbon.account SET display_name = %L WHERE id = %s', 'x', :gz_p),
                 '42501', NULL, 'a clerk cannot UPDATE carbon.account, even in its county');
SELECT throws_ok(format('DELETE FROM carbon.account WHERE id = %s', :gz_p),
                 '42501', NULL, 'a clerk cannot DELETE from carbon.account');
SELECT throws_ok($$INSERT INTO carbon.behavior DEFAULT VALUES$$, '42501', NULL, 'a clerk cannot INSERT into carbon.behavior');
SELECT throws_ok(format($$UPDATE carbon.project SET title = 'x' WHERE id = %s$$, :p_gz),
                 '42501', NULL, 'a clerk cannot UPDATE carbon.project');
SELECT throws_ok($$DELETE FROM carbon.retirement$$, '42501', NULL, 'a clerk cannot DELETE from carbon.retirement');
SELECT throws_ok($$TRUNCATE carbon.lot$$, '42501', NULL, 'a clerk cannot TRUNCATE carbon.lot');
SELECT throws_ok($$UPDATE carbon.region_scope SET region_prefix = '62'$$, '42501', NULL,
                 'a clerk cannot widen its own binding in carbon.region_scope');
SELECT throws_ok($$INSERT INTO carbon.region_scope (login, region_prefix) VALUES ('tap_rg_none', '62')$$, '42501', NULL,
                 'a clerk cannot INSERT a binding');
SELECT throws_ok($$DELETE FROM carbon.region_scope$$, '42501', NULL, 'a clerk cannot DELETE a binding');
SELECT throws_ok($$SELECT carbon.bind_region('tap_rg_gz', '62')$$, '42501', NULL, 'a clerk cannot call bind_region');
SELECT throws_ok($$SELECT carbon.unbind_region('tap_rg_lz')$$, '42501', NULL, 'a clerk cannot call unbind_region');
SELECT throws_ok(format($$SELECT carbon.transfer(%s, %s, 'POINT', 1, 'x')$$, :gz_p, :lz_p),
                 '42501', NULL, 'a clerk cannot call carbon.transfer');
SELECT throws_ok(format($$SELECT carbon.issue(%s, 'POINT', 1)$$, :gz_p), '42501', NULL, 'a clerk cannot call carbon.issue');
SELECT throws_ok(format($$SELECT carbon.retire_units(%s, 1, 'voluntary', 'x')$$, :gz_e),
                 '42501', NULL, 'a clerk cannot call carbon.retire_units');
SELECT throws_ok(format($$SELECT * FROM carbon.record_behavior('rg-bus', 'clerk-1', %s, 'RG-BUS', 1, now())$$, :gz_p),
                 '42501', NULL, 'a clerk cannot call carbon.record_behavior');
SELECT throws_ok(format($$SELECT carbon.set_account_status(%s, 'frozen', 'x')$$, :gz_p),
                 '42501', NULL, 'a clerk cannot freeze an account');
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :gz_p), '42501', NULL, 'a clerk cannot act_as an account');
SELECT throws_ok(format($$SELECT carbon.balance(%s, 'POINT')$$, :lz_p), '42501', NULL,
                 'a clerk cannot call carbon.balance() (SECURITY DEFINER, past row-level security)');
SELECT throws_ok($$SELECT * FROM carbon.posting$$, '42501', NULL, 'a clerk cannot read carbon.posting');
SELECT throws_ok($$SELECT * FROM carbon.entry$$, '42501', NULL, 'a clerk cannot read carbon.entry');
SELECT throws_ok($$SELECT * FROM carbon.unit_block$$, '42501', NULL, 'a clerk cannot read carbon.unit_block');
SELECT throws_ok($$SELECT * FROM carbon.v_account_statement$$, '42501', NULL,
                 'a clerk cannot read carbon.v_account_statement');
RESET ROLE;

-- ---- the clerk of Linze ----
SET LOCAL ROLE tap_rg_lz;
SELECT bag_eq(format('SELECT pg_temp.seen(%L)', name),
              format('SELECT row FROM pg_temp.expected WHERE name = %L AND prefix = %L', name, '620723'),
              format('clerk of Linze: %s shows exactly Linze''s rows, none of Ganzhou''s or Nanjing''s', name))
  FROM (SELECT name FROM rel ORDER BY ord) r;
SELECT is((SELECT string_agg(tonnes || ' t for ' || beneficiary, ', ') FROM carbon.v_retirements),
          '3 t for a school in Linze', 'clerk of Linze: v_retirements is Linze''s one retirement');
RESET ROLE;

-- ---- the clerk of Zhangye's counties (6207) ----
SET LOCAL ROLE tap_rg_city;
SELECT bag_eq(format('SELECT pg_temp.seen(%L)', name),
              format('SELECT row FROM pg_temp.expected WHERE name = %L AND prefix = %L', name, '6207'),
              format('clerk of 6207: %s shows the rows of both counties, none of Nanjing''s', name))
  FROM (SELECT name FROM rel ORDER BY ord) r;
SELECT is((SELECT string_agg(region || ' ' || asset || ':' || issued, ', ' ORDER BY region, asset) FROM carbon.v_supply),
          '620702 CER:10, 620702 POINT:200, 620702 RED:1000, 620723 CER:20, 620723 POINT:250, 620723 RED:500',
          'clerk of 6207: v_supply has Ganzhou and Linze, not Nanjing');
RESET ROLE;

-- ---- a clerk without a binding ----
SET LOCAL ROLE tap_rg_none;
SELECT is(carbon.clerk_region(), NULL, 'an unbound clerk has no clerk_region()');
SELECT is(pg_temp.nonempty(), '{}'::text[], 'an unbound clerk sees no row in any of the fourteen relations');
SELECT is((SELECT count(*) FROM carbon.region_scope), 0::bigint, '... nor any binding');
RESET ROLE;

-- ---- re-binding and unbinding ----
SELECT lives_ok($$SELECT bind_region('tap_rg_gz', '620723')$$, 'bind_region again moves the Ganzhou clerk to Linze');
SELECT is((SELECT array_agg(region_prefix) FROM region_scope WHERE login = 'tap_rg_gz'), ARRAY['620723'],
          '... one binding for the login, with the new prefix');
SET LOCAL ROLE tap_rg_gz;
SELECT bag_eq($$SELECT pg_temp.seen('account')$$,
              $$SELECT row FROM pg_temp.expected WHERE name = 'account' AND prefix = '620723'$$,
              're-bound: the clerk now sees Linze''s accounts, not Ganzhou''s');
SELECT bag_eq($$SELECT pg_temp.seen('project')$$,
              $$SELECT row FROM pg_temp.expected WHERE name = 'project' AND prefix = '620723'$$,
              're-bound: ... Linze''s projects');
SELECT bag_eq($$SELECT pg_temp.seen('v_supply')$$,
              $$SELECT row FROM pg_temp.expected WHERE name = 'v_supply' AND prefix = '620723'$$,
              're-bound: ... Linze''s supply');
SELECT bag_eq($$SELECT pg_temp.seen('v_retirements')$$,
              $$SELECT row FROM pg_temp.expected WHERE name = 'v_retirements' AND prefix = '620723'$$,
              're-bound: ... Linze''s retirements');
RESET ROLE;
SET LOCAL ROLE tap_rg_admin;
SELECT is(carbon.unbind_region('tap_rg_gz'), true, 'unbind_region of a bound login is true');
SELECT is(carbon.unbind_region('tap_rg_gz'), false, 'unbind_region again is false');
RESET ROLE;
SET LOCAL ROLE tap_rg_gz;
SELECT is(carbon.clerk_region(), NULL, 'unbound: the clerk has no clerk_region()');
SELECT is(pg_temp.nonempty(), '{}'::text[], 'unbound: the clerk sees no row in any of the fourteen relations');
RESET ROLE;
SELECT is((SELECT array_agg(login ORDER BY login) FROM region_scope), ARRAY['tap_rg_both', 'tap_rg_city', 'tap_rg_lz']::name[],
          'unbind_region removed that binding only');

-- ---- the other roles: the registry and issuances are public to them ----
SET LOCAL ROLE tap_rg_app;
SELECT bag_eq($$SELECT pg_temp.seen('project')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'project' AND prefix = ''$$,
              'carbon_app still sees every project');
SELECT bag_eq($$SELECT pg_temp.seen('unit_issuance')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'unit_issuance' AND prefix = ''$$,
              'carbon_app still sees every issuance');
SELECT bag_eq($$SELECT pg_temp.seen('v_issuances')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'v_issuances' AND prefix = ''$$,
              'carbon_app still sees every issuance in v_issuances');
SELECT bag_eq($$SELECT pg_temp.rows('SELECT project, code, status, owner, region FROM carbon.v_projects')$$,
              $$SELECT row FROM pg_temp.expected_vp$$,
              'carbon_app sees every project in v_projects');
-- v_projects' issued_tonnes reads carbon.monitoring_report, which carbon_app
-- may not read (since b7bf918, before the region change)
SELECT lives_ok($$SELECT * FROM carbon.v_projects$$, 'carbon_app reads every column of v_projects (SELECT is granted to it)');
RESET ROLE;
SET LOCAL ROLE tap_rg_trader;
SELECT bag_eq($$SELECT pg_temp.seen('project')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'project' AND prefix = ''$$,
              'carbon_trader still sees every project');
SELECT bag_eq($$SELECT pg_temp.seen('unit_issuance')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'unit_issuance' AND prefix = ''$$,
              'carbon_trader still sees every issuance');
SELECT bag_eq($$SELECT pg_temp.seen('v_issuances')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'v_issuances' AND prefix = ''$$,
              'carbon_trader still sees every issuance in v_issuances');
SELECT bag_eq($$SELECT pg_temp.rows('SELECT project, code, status, owner, region FROM carbon.v_projects')$$,
              $$SELECT row FROM pg_temp.expected_vp$$, 'carbon_trader still sees every project in v_projects');
RESET ROLE;
SET LOCAL ROLE tap_rg_verifier;
SELECT bag_eq($$SELECT pg_temp.seen('project')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'project' AND prefix = ''$$,
              'carbon_verifier still sees every project');
SELECT bag_eq($$SELECT pg_temp.seen('unit_issuance')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'unit_issuance' AND prefix = ''$$,
              'carbon_verifier still sees every issuance');
SELECT bag_eq($$SELECT pg_temp.seen('v_issuances')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'v_issuances' AND prefix = ''$$,
              'carbon_verifier still sees every issuance in v_issuances');
SELECT bag_eq($$SELECT pg_temp.seen('v_projects')$$, $$SELECT row FROM pg_temp.expected WHERE name = 'v_projects' AND prefix = ''$$,
              'carbon_verifier still sees every project in v_projects');
SELECT bag_eq($$SELECT pg_temp.seen('monitoring_report')$$,
              $$SELECT row FROM pg_temp.expected WHERE name = 'monitoring_report' AND prefix = ''$$,
              'carbon_verifier still sees every monitoring report');
RESET ROLE;
SET LOCAL ROLE tap_rg_auditor;
SELECT is(pg_temp.mismatches(''), '{}'::text[], 'carbon_auditor still sees every row of the fourteen relations');
SELECT is((SELECT count(*) FROM carbon.region_scope), 3::bigint, 'carbon_auditor reads every binding');
RESET ROLE;
SET LOCAL ROLE tap_rg_admin;
SELECT is(pg_temp.mismatches(''), '{}'::text[], 'carbon_admin still sees every row of the fourteen relations');
RESET ROLE;

-- ---- a login in carbon_clerk and carbon_auditor: the auditor's read_all
-- policies and the clerk's county policies are permissive and OR together,
-- so it sees everything, as an auditor does ----
SET LOCAL ROLE tap_rg_both;
SELECT is(carbon.clerk_region(), '620702', 'a clerk who is also an auditor has its clerk_region()');
SELECT is(pg_temp.mismatches(''), '{}'::text[],
          '... and sees every row of the fourteen relations (auditor OR clerk), not Ganzhou''s only');
SELECT is((SELECT count(*) FROM carbon.region_scope), 3::bigint, '... and every binding');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
