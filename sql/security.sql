-- Roles, act_as and row-level security (api.md §7).
SET search_path = carbon, public;
\set SHOW_CONTEXT never
\set ON_ERROR_ROLLBACK on

-- The roles exist and cannot log in.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'carbon\_%' ORDER BY rolname;

SELECT open_account('personal', '620700', 'SEC-CITIZEN-A') AS a \gset
SELECT open_account('personal', '620700', 'SEC-CITIZEN-B') AS b \gset
SELECT open_account('merchant', '620700', 'SEC-MERCHANT') AS m \gset
SELECT issue(:a, 'POINT', 100) > 0 AS issued_a, issue(:b, 'POINT', 200) > 0 AS issued_b;

CREATE ROLE sec_app LOGIN IN ROLE carbon_app;
CREATE ROLE sec_auditor LOGIN IN ROLE carbon_auditor;
CREATE ROLE sec_nobody LOGIN;
GRANT USAGE ON SCHEMA carbon TO sec_nobody;

-- Without act_as the app sees no account's rows and may move nothing.
BEGIN;
SET LOCAL ROLE sec_app;
SELECT count(*) AS accounts, (SELECT count(*) FROM posting) AS postings,
       (SELECT count(*) FROM balance) AS balances, (SELECT count(*) FROM entry) AS entries FROM account;
SELECT balance(:a);
ROLLBACK;

-- Acting for citizen A: A's rows and nothing else.
BEGIN;
SET LOCAL ROLE sec_app;
SELECT act_as(:a);
SELECT acting_account() = :a AS acting_a;
SELECT count(*) AS accounts, bool_and(id = :a) AS only_a FROM account;
SELECT count(*) AS postings, bool_and(account = :a) AS only_a FROM posting;
SELECT balance(:a) AS a_balance;
\set VERBOSITY sqlstate
SELECT balance(:b);                                 -- 42501: another citizen
SELECT transfer(:b, :m, 'POINT', 1);                -- 42501: not the acting account
\set VERBOSITY default
SELECT transfer(:a, :m, 'POINT', 10) > 0 AS a_paid;
COMMIT;

-- Nothing carries over to the next transaction on the same connection.
BEGIN;
SET LOCAL ROLE sec_app;
SELECT acting_account() IS NULL AS no_one, (SELECT count(*) FROM account) AS accounts;
ROLLBACK;

-- Setting a GUC by hand does not impersonate anyone.
BEGIN;
SET LOCAL ROLE sec_app;
SET LOCAL carbon.acting_account = '1';
SELECT count(*) AS accounts FROM account;
ROLLBACK;

-- The app cannot write ledger tables directly.
BEGIN;
SET LOCAL ROLE sec_app;
SELECT act_as(:a);
INSERT INTO posting VALUES (999999, 1, :a, 1, 1000000, now());
ROLLBACK;
BEGIN;
SET LOCAL ROLE sec_app;
UPDATE balance SET amount = 1000000 WHERE account = :a;
ROLLBACK;

-- The auditor reads everything and writes nothing.
BEGIN;
SET LOCAL ROLE sec_auditor;
SELECT count(*) >= 3 AS sees_all_accounts FROM account;
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok;
SELECT balance(:b) AS b_balance;
SELECT transfer(:b, :m, 'POINT', 1);                -- 42501: no EXECUTE
ROLLBACK;
BEGIN;
SET LOCAL ROLE sec_auditor;
DELETE FROM posting;
ROLLBACK;
BEGIN;
SET LOCAL ROLE sec_auditor;
SELECT * FROM ref_secret;                           -- 42501: the HMAC key is not for auditors
ROLLBACK;

-- A role with no carbon_* membership can use the type, not the ledger.
BEGIN;
SET LOCAL ROLE sec_nobody;
SELECT '1.5 t'::co2e AS type_is_public;
SELECT count(*) FROM account;
ROLLBACK;
BEGIN;
SET LOCAL ROLE sec_nobody;
SELECT open_account('personal', '620700', 'intruder');
ROLLBACK;

-- search_path hijack: a look-alike function in a schema searched first does
-- not change what the SECURITY DEFINER functions call.
CREATE SCHEMA hijack;
CREATE FUNCTION hijack.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE TABLE hijack.allowed_flow (from_tier text, to_tier text, asset text, allowed boolean, seeded boolean);
INSERT INTO hijack.allowed_flow VALUES ('personal', 'personal', 'POINT', true, false);
GRANT USAGE ON SCHEMA hijack TO PUBLIC;
SET search_path = hijack, carbon, public;
SELECT transfer(:a, :m, 'POINT', 1) AS entry \gset
SELECT created_at > '2001-01-01' AS real_clock FROM carbon.entry WHERE id = :entry;
SELECT carbon.transfer(:a, :b, 'POINT', 1);          -- still CL003: the look-alike table is ignored
RESET search_path;
SET search_path = carbon, public;
DROP SCHEMA hijack CASCADE;

-- Every SECURITY DEFINER function pins its search_path.
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'carbon'::regnamespace AND p.prosecdef
  AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, carbon, pg_temp'], false);

DROP ROLE sec_app, sec_auditor;
REVOKE USAGE ON SCHEMA carbon FROM sec_nobody;
DROP ROLE sec_nobody;
