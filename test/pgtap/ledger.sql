-- pgTAP: every refusal of the ledger core, with its SQLSTATE, and that a
-- refused call leaves nothing behind (R5 so far).
BEGIN;
SET search_path = carbon, public;
SELECT plan(76);

SELECT open_account('personal', '620700', 'T-A') AS a \gset
SELECT open_account('personal', '620700', 'T-B') AS b \gset
SELECT open_account('merchant', '620700', 'T-M') AS m \gset
SELECT open_account('government', '320100', 'T-G') AS g \gset
SELECT open_account('enterprise', '620700', 'T-E') AS e \gset
-- one identifier, whatever its spelling: case, blanks and full-width forms
SELECT open_account('personal', '620700', '11010519491231002x') AS idcard \gset
SELECT is(ARRAY[open_account('personal', '620700', ' 11010519491231002X '),
                open_account('personal', '620700', '１１０１０５１９４９１２３１００２Ｘ'),
                account_id('personal', '11010519491231002X')],
          ARRAY[:idcard, :idcard, :idcard]::bigint[],
          'open_account: an ID number in lower case, with blanks or in full-width forms is one account');
SELECT isnt(open_account('personal', '620700', '11010519491231002Y'), :idcard::bigint,
            '... and another number another account');
SELECT throws_ok($$SELECT open_account('personal', '620700', '　 ')$$, '22023', NULL,
                 'open_account: an external_ref of blanks only is empty');
SELECT issue(:a, 'POINT', 1000) AS first_entry \gset
SELECT issue(:e, 'CNY', 50000) \gset

-- A fingerprint of everything a refused call could have written.
CREATE TEMP VIEW written AS
  SELECT (SELECT count(*) FROM entry) AS entries, (SELECT count(*) FROM posting) AS postings,
         (SELECT coalesce(sum(amount), 0) FROM balance) AS balances, (SELECT count(*) FROM request) AS requests,
         (SELECT count(*) FROM account) AS accounts;
CREATE TEMP TABLE before AS SELECT * FROM written;

-- Arguments: 22023 / 22004.
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 0)', :a, :m, 'POINT'), '22023', NULL, 'zero amount');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, -5)', :a, :m, 'POINT'), '22023', NULL, 'negative amount');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :a, 'POINT'), '22023', NULL, 'to the same account');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :m, 'GOLD'), '22023', NULL, 'unknown asset');
SELECT throws_ok(format('SELECT transfer(%s, 987654321, %L, 1)', :a, 'POINT'), '22023', NULL, 'unknown account');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, (SELECT id FROM account WHERE kind = 'issuance' LIMIT 1), 'POINT'),
                 '22023', NULL, 'system accounts are not transfer targets');
SELECT throws_ok(format('SELECT transfer(NULL, %s, %L, 1)', :m, 'POINT'), '22004', NULL, 'null account');
SELECT throws_ok(format('SELECT transfer(%s, %s, NULL, 1)', :a, :m), '22004', NULL, 'null asset');
SELECT throws_ok($$SELECT open_account('citizen', '620700', 'x')$$, '22023', NULL, 'unknown tier');
SELECT throws_ok($$SELECT open_account('personal', '6207001', 'x')$$, '22023', NULL, 'region of 7 digits');
SELECT throws_ok($$SELECT open_account('personal', '62O700', 'x')$$, '22023', NULL, 'region with a letter');
SELECT throws_ok($$SELECT open_account('personal', '620700', '')$$, '22023', NULL, 'empty external_ref');
SELECT throws_ok($$SELECT open_account(NULL, '620700', 'x')$$, '22004', NULL, 'null tier');
SELECT throws_ok($$SELECT account_id('nobody', 'x')$$, '22023', NULL, 'account_id with unknown tier');
SELECT throws_ok(format('SELECT set_account_status(%s, %L, %L)', :a, 'sleeping', 'x'), '22023', NULL, 'unknown status');
SELECT throws_ok(format('SELECT set_account_status(%s, %L, %L)', :a, 'frozen', ''), '22023', NULL, 'status change without reason');
SELECT throws_ok(format('SELECT balance(%s, %L)', :a, 'GOLD'), '22023', NULL, 'balance of unknown asset');
SELECT throws_ok($$SELECT balance(987654321)$$, '22023', NULL, 'balance of unknown account');
SELECT throws_ok($$SELECT define_asset('X', 'currency', 'x')$$, '22023', NULL, 'asset code too short');
SELECT throws_ok($$SELECT define_asset('RAIN', 'gold', 'x')$$, '22023', NULL, 'unknown asset kind');
SELECT throws_ok($$SELECT issue(1, 'POINT', 0)$$, '22023', NULL, 'issuing nothing');
SELECT throws_ok($$SELECT reverse_entry(987654321, 'x')$$, '22023', NULL, 'reversing an unknown entry');

-- Flow matrix: CL003.
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :b, 'POINT'), 'CL003', NULL, 'personal → personal points');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :m, :a, 'POINT'), 'CL003', NULL, 'merchant → personal points');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :g, 'RED'), 'CL003', NULL, 'personal → government RED');
SELECT lives_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :m, 'POINT'), 'personal → merchant points');
SELECT lives_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :g, 'POINT'), 'personal → government points (donation)');
SELECT lives_ok(format('SELECT transfer(%s, %s, %L, 100)', :e, :a, 'CNY'), 'CNY between any participants');
-- carbon_admin edits the matrix, defaults included (api.md §2): an edited
-- default becomes the admin's row, a deleted one the admin's refusal
-- (both refused with 42501 until the twenty-second session).
CREATE ROLE t_flow_admin IN ROLE carbon_admin;
SAVEPOINT flows;
SET LOCAL ROLE t_flow_admin;
SELECT lives_ok($$UPDATE carbon.allowed_flow SET allowed = false
                  WHERE from_tier = 'personal' AND to_tier = 'merchant' AND asset = 'POINT'$$,
                'the admin switches a default off');
SELECT throws_ok(format('SELECT carbon.transfer(%s, %s, %L, 1)', :a, :m, 'POINT'), 'CL003', NULL,
                 '... and personal → merchant points are refused');
SELECT is((SELECT string_agg(allowed || '/' || seeded, ',') FROM carbon.allowed_flow
           WHERE from_tier = 'personal' AND to_tier = 'merchant' AND asset = 'POINT'), 'false/false',
          '... one row for the flow: the admin''s (a dump keeps it)');
SELECT lives_ok($$DELETE FROM carbon.allowed_flow WHERE from_tier = 'personal' AND to_tier = 'government' AND asset = 'POINT'$$,
                'the admin deletes a default');
SELECT throws_ok(format('SELECT carbon.transfer(%s, %s, %L, 1)', :a, :g, 'POINT'), 'CL003', NULL,
                 '... and the flow is refused');
SELECT is((SELECT string_agg(allowed || '/' || seeded, ',') FROM carbon.allowed_flow
           WHERE from_tier = 'personal' AND to_tier = 'government' AND asset = 'POINT'), 'false/false',
          '... what stays is the admin''s refusal, which a restore keeps over the default');
SELECT throws_ok($$INSERT INTO carbon.allowed_flow (from_tier, to_tier, asset, seeded) VALUES ('personal', 'personal', 'POINT', true)$$,
                 '42501', NULL, 'only the extension writes seeded defaults');
SELECT throws_ok($$UPDATE carbon.allowed_flow SET to_tier = 'verifier'
                   WHERE from_tier = 'enterprise' AND to_tier = 'merchant' AND asset = 'POINT'$$,
                 '42501', NULL, 'a default''s tiers cannot be changed');
RESET ROLE;
ROLLBACK TO SAVEPOINT flows;
DROP TABLE before; CREATE TEMP TABLE before AS SELECT * FROM written;

-- Balance: CL001.
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1000000)', :a, :m, 'POINT'), 'CL001', NULL, 'more than the balance');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :b, :m, 'POINT'), 'CL001', NULL, 'from an empty account');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :g, 'CER'), 'CL001', NULL, 'an asset never held');

-- Order of checks: status before flow before balance.
SELECT set_account_status(:b, 'frozen', 'test');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1000000)', :b, :a, 'POINT'), 'CL002', NULL,
                 'frozen is reported before flow and balance');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1000000)', :a, :b, 'POINT'), 'CL002', NULL,
                 'a frozen receiver is reported before flow and balance');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1000000)', :m, :a, 'POINT'), 'CL003', NULL,
                 'flow is reported before balance');
SELECT set_account_status(:b, 'active', 'test');

-- Status: CL002; closing: CL007.
SELECT set_account_status(:m, 'frozen', 'audit');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :a, :m, 'POINT'), 'CL002', NULL, 'paying a frozen account');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 1)', :m, (SELECT id FROM account WHERE tier = 'platform' LIMIT 1), 'POINT'),
                 NULL, NULL, 'a frozen merchant cannot settle');
SELECT set_account_status(:m, 'active', 'audit done');
SELECT throws_ok(format('SELECT set_account_status(%s, %L, %L)', :a, 'closed', 'x'), 'CL007', NULL, 'closing with a balance');

-- Nothing half-written by any refusal above.
SELECT results_eq('SELECT * FROM written', 'SELECT * FROM before', 'refused calls wrote nothing');

-- Retry safety: same request id → same result; different arguments → 23505.
SELECT is(transfer(:a, :m, 'POINT', 7, NULL, 'rq'), transfer(:a, :m, 'POINT', 7, NULL, 'rq'), 'a retry returns the first entry');
-- the largest amount: short of it (CL001), not the receiver's balance overflowing (22003) first
SELECT throws_ok(format($$SELECT transfer(%s, %s, 'POINT', 9223372036854775807)$$, :a, :m), 'CL001', NULL,
                 'a transfer of the largest amount is short of points (CL001), though it would overflow the receiver');
SELECT is((SELECT count(*) FROM entry WHERE memo IS NULL AND kind = 'transfer'
            AND id = (SELECT result FROM request WHERE request_id = 'rq')), 1::bigint, 'one entry for two calls');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 8, NULL, %L)', :a, :m, 'POINT', 'rq'), '23505', NULL,
                 'same request id, other amount');
SELECT lives_ok(format('SELECT transfer(%s, %s, %L, 7, NULL, %L)', :e, :a, 'CNY', 'rq'),
                 'request ids are per account');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 7, NULL, %L)', :a, :m, 'POINT', repeat('r', 201)), '22023', NULL,
                 'a request id longer than 200 bytes');

-- Append-only, for the owner too (CL009).
SELECT throws_ok('UPDATE posting SET amount = amount', 'CL009', NULL, 'UPDATE posting');
SELECT throws_ok('DELETE FROM posting', 'CL009', NULL, 'DELETE posting');
SELECT throws_ok('TRUNCATE posting', 'CL009', NULL, 'TRUNCATE posting');
SELECT throws_ok('UPDATE entry SET memo = $$x$$', 'CL009', NULL, 'UPDATE entry');
SELECT throws_ok('DELETE FROM entry', 'CL009', NULL, 'DELETE entry');
SELECT throws_ok('TRUNCATE entry CASCADE', 'CL009', NULL, 'TRUNCATE entry');

-- Postings come only from the API or a restore (a superuser's COPY, as
-- pg_restore sends): a superuser's INSERT is refused, balanced or not
-- (42501).  A restore's unbalanced COPY is CL009: test/suites/dump_restore.sh.
SAVEPOINT forged;
INSERT INTO entry (id, kind) VALUES (-1, 'forged');
SELECT throws_ok(format('INSERT INTO posting VALUES (-1, 1, %s, 1, 500, now())', :a), '42501', NULL,
                 'a superuser''s INSERT of an unbalanced entry');
SELECT throws_ok(format('INSERT INTO posting VALUES (-1, 1, %s, 1, 500, now()), (-1, 2, %s, 1, -500, now())', :a, :m),
                 '42501', NULL, 'a superuser''s INSERT of a balanced entry');
ROLLBACK TO SAVEPOINT forged;

-- An entry goes straight into entry and posting (journal.c), checked as the
-- posting trigger checks it; with a DBA's INSERT trigger on posting, its
-- postings go in by one INSERT, and the trigger checks them whole.
SELECT transfer(:a, :m, 'POINT', 7) AS direct_entry \gset
SELECT results_eq(format('SELECT count(*) >= 2, sum(p.amount)::bigint, min(p.seq)::int, max(p.seq) = count(*),
                                 bool_and(p.at = e.created_at AND e.created_at = now())
                          FROM posting p JOIN entry e ON e.id = p.entry_id WHERE e.id = %s', :direct_entry),
                  $$VALUES (true, 0::bigint, 1, true, true)$$,
                  'an entry written straight in: its postings balance, numbered from 1, at the entry''s time, now()');
CREATE TEMP TABLE posting_seen (entry_id bigint, n bigint);
CREATE FUNCTION pg_temp.audit_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO posting_seen SELECT entry_id, count(*) FROM new_rows GROUP BY entry_id;
  RETURN NULL;
END $$;
CREATE TRIGGER dba_posting_audit AFTER INSERT ON posting REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.audit_posting();
SELECT balance(:m, 'POINT') AS m_before \gset
SELECT transfer(:a, :m, 'POINT', 5) AS sql_entry \gset
SELECT results_eq('SELECT entry_id, n FROM posting_seen',
                  format('SELECT %s::bigint, count(*) FROM posting WHERE entry_id = %s', :sql_entry, :sql_entry),
                  'with a DBA''s trigger on posting, an entry''s postings go in by one INSERT the trigger sees whole ...');
SELECT is(balance(:m, 'POINT'), (:m_before + 5)::bigint, '... the balances follow ...');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 100000000)', :a, :m, 'POINT'), 'CL001', NULL,
                 '... and an overdraft is still refused (CL001)');
DROP TRIGGER dba_posting_audit ON posting;

-- Balances change straight in the heap (append.c, ledger_balances_add); with
-- a DBA's UPDATE trigger on balance they change by SQL, and it sees each one.
CREATE TEMP TABLE balance_seen (account bigint, delta bigint);
CREATE FUNCTION pg_temp.audit_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO balance_seen VALUES (NEW.account, NEW.amount - OLD.amount);
  RETURN NULL;
END $$;
CREATE TRIGGER dba_balance_audit AFTER UPDATE ON balance FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_balance();
SELECT balance(:a, 'POINT') AS a_before, balance(:m, 'POINT') AS m_before \gset
SELECT transfer(:a, :m, 'POINT', 3) > 0 AS paid \gset
SELECT results_eq(format('SELECT account, delta FROM balance_seen WHERE account IN (%s, %s) ORDER BY 1', :a, :m),
                  format('SELECT * FROM (VALUES (%s::bigint, -3::bigint), (%s, 3)) v ORDER BY 1', :a, :m),
                  'with a DBA''s UPDATE trigger on balance, a transfer''s balances change by SQL: it sees each ...');
SELECT is(ARRAY[balance(:a, 'POINT'), balance(:m, 'POINT')], ARRAY[:a_before - 3, :m_before + 3]::bigint[],
          '... and they are right');
DROP TRIGGER dba_balance_audit ON balance;

-- Tamper evidence: a superuser edits a sealed row behind the triggers' back.
SELECT ok(seal() IS NOT NULL, 'seal');
SELECT is(ARRAY(SELECT check_name || ': ' || detail FROM verify_integrity() WHERE NOT ok), '{}'::text[], 'verify_integrity is clean');
ALTER TABLE posting DISABLE TRIGGER posting_append_only;
UPDATE posting SET amount = amount + 1 WHERE entry_id = :first_entry AND amount > 0;
UPDATE posting SET amount = amount - 1 WHERE entry_id = :first_entry AND amount < 0;
ALTER TABLE posting ENABLE TRIGGER posting_append_only;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'seals_intact'), false,
          'a balanced edit of a sealed entry breaks its seal');
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'balances_match_postings'), false,
          'and balances no longer match postings');
ALTER TABLE entry DISABLE TRIGGER entry_append_only;
ALTER TABLE posting DISABLE TRIGGER posting_append_only;
DELETE FROM posting WHERE entry_id = :first_entry;
DELETE FROM entry WHERE id = :first_entry;
ALTER TABLE entry ENABLE TRIGGER entry_append_only;
ALTER TABLE posting ENABLE TRIGGER posting_append_only;
SELECT alike((SELECT detail FROM verify_integrity() WHERE check_name = 'seals_intact'), 'tampered:%',
            'a deleted sealed entry is reported');

-- The extension can be dropped and created again; the roles stay.
DROP VIEW written;
DROP EXTENSION carbon_ledger;
SELECT is((SELECT count(*) FROM pg_roles WHERE rolname LIKE 'carbon\_%'), 8::bigint, 'roles outlive the extension (api.md''s seven and carbon_clerk)');
CREATE EXTENSION carbon_ledger;
SELECT is((SELECT count(*) FILTER (WHERE NOT ok) FROM carbon.verify_integrity()), 0::bigint, 'a fresh ledger verifies');

SELECT * FROM finish();
ROLLBACK;
