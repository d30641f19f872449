-- pgTAP: the holes found by trying the core from outside (issue 16), each
-- with the refusal or behaviour it must have now.  Each block failed before
-- its fix.
BEGIN;
SET search_path = carbon, public;
SELECT plan(95);

SELECT open_account('personal', '620700', 'H-citizen') AS citizen \gset
SELECT open_account('personal', '620700', 'H-other') AS other \gset
SELECT open_account('merchant', '620700', 'H-shop') AS shop \gset
SELECT open_account('merchant', '620700', 'H-rival') AS rival \gset
SELECT open_account('enterprise', '620700', 'H-firm') AS firm \gset
SELECT issue(:citizen, 'POINT', 1000) \gset
SELECT issue(:firm, 'CNY', 100000) \gset
CREATE ROLE h_till LOGIN IN ROLE carbon_merchant;
CREATE ROLE h_desk LOGIN IN ROLE carbon_trader;
CREATE ROLE h_app LOGIN IN ROLE carbon_app;
CREATE ROLE h_app_shop LOGIN IN ROLE carbon_app, carbon_merchant;

-- 3. act_as is undone by ROLLBACK TO SAVEPOINT, like SET LOCAL.
SAVEPOINT s1;
SELECT act_as(:citizen);
ROLLBACK TO SAVEPOINT s1;
SELECT is(acting_account(), NULL, 'ROLLBACK TO SAVEPOINT undoes act_as');
SELECT act_as(:citizen);
SAVEPOINT s2;
SELECT act_as(:other);
ROLLBACK TO SAVEPOINT s2;
SELECT is(acting_account(), :'citizen'::bigint, '... back to the account acted for before the savepoint');
SAVEPOINT s3;
SAVEPOINT s4;
SELECT act_as(:other);
RELEASE SAVEPOINT s4;
SELECT is(acting_account(), :'other'::bigint, 'a released savepoint keeps its act_as');
ROLLBACK TO SAVEPOINT s3;
SELECT is(acting_account(), :'citizen'::bigint, '... until the enclosing savepoint rolls back');
SAVEPOINT s5;
SELECT act_as(:other);
RELEASE SAVEPOINT s5;
SELECT is(acting_account(), :'other'::bigint, 'act_as in a released savepoint stays');

-- 1. Who may act for whom (api.md §7).  A merchant's till acted for any
--    citizen and moved their points.
SET LOCAL ROLE h_till;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :citizen), '42501', NULL,
                 'a merchant login cannot act for a citizen');
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :shop), '42501', NULL,
                 'a merchant login cannot act for a shop not bound to it');
RESET ROLE;
SELECT lives_ok(format('SELECT bind_account(%s, %L)', :shop, 'h_till'), 'the admin binds the shop to its till');
SELECT lives_ok(format('SELECT bind_account(%s, %L)', :shop, 'h_till'), 'binding twice is harmless');
SELECT throws_ok(format('SELECT bind_account(%s, %L)', :shop, 'no_such_login'), '22023', NULL,
                 'binding to an unknown role');
SELECT throws_ok($$SELECT bind_account(987654321, 'h_till')$$, '22023', NULL, 'binding an unknown account');
SET LOCAL ROLE h_till;
SELECT lives_ok(format('SELECT carbon.act_as(%s)', :shop), 'the till acts for its own shop');
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :rival), '42501', NULL, '... and for no other shop');
SELECT throws_ok(format($$SELECT carbon.transfer(%s, %s, 'POINT', 100)$$, :citizen, :shop), '42501', NULL,
                 'the till cannot move a citizen''s points');
SELECT throws_ok(format($$SELECT carbon.balance(%s)$$, :citizen), '42501', NULL,
                 'the till cannot read a citizen''s balance');
SELECT is((SELECT count(*) FROM carbon.behavior WHERE account = :citizen), 0::bigint,
          'the till sees no citizen''s trips');
RESET ROLE;
SET LOCAL ROLE h_desk;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :firm), '42501', NULL,
                 'a trader login cannot act for a firm not bound to it');
RESET ROLE;
SELECT bind_account(:firm, 'h_desk');
SET LOCAL ROLE h_desk;
SELECT lives_ok(format('SELECT carbon.act_as(%s)', :firm), 'a trader acts for the firm bound to it');
RESET ROLE;
SET LOCAL ROLE h_app;
SELECT lives_ok(format('SELECT carbon.act_as(%s)', :citizen), 'the citizen app acts for a personal account');
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :firm), '42501', NULL,
                 'the citizen app cannot act for an enterprise account');
RESET ROLE;
SET LOCAL ROLE h_app_shop;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :citizen), '42501', NULL,
                 'a login that is also a merchant acts only for bound accounts, personal ones included');
RESET ROLE;
SELECT is(unbind_account(:shop, 'h_till'), true, 'the admin unbinds the till');
SELECT is(unbind_account(:shop, 'h_till'), false, 'unbinding again removes nothing');
SET LOCAL ROLE h_till;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :shop), '42501', NULL, 'an unbound till acts for nobody');
RESET ROLE;

-- 2, 11. The inbox judges each row as the role that inserted it; operators
--    see and process only their own rows; rows without an identity are kept.
SELECT define_methodology('H-METRO', 1, 'metro', 'I', 'metro', 'distance_substitution',
                          '{"baseline_g_per_pkm": 100, "project_g_per_pkm": 10}');
SELECT define_methodology('H-BIKE', 1, 'bike', 'I', 'cycling', 'distance_substitution',
                          '{"baseline_g_per_pkm": 100, "project_g_per_pkm": 0}');
SELECT submit_methodology(c, 1), approve_methodology(c, 1, 'r'), publish_methodology(c, 1, now() - interval '1 day')
  FROM unnest(ARRAY['H-METRO', 'H-BIKE']) c;
CREATE ROLE h_metro_op LOGIN IN ROLE carbon_operator;
CREATE ROLE h_bike_op LOGIN IN ROLE carbon_operator;
SELECT register_source('h-metroco', ARRAY['metro'], 'h_metro_op');
SELECT register_source('h-bikeco', ARRAY['cycling'], 'h_bike_op');
SET LOCAL ROLE h_metro_op;
INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at) VALUES
  ('h-metroco', 'm-1', :citizen, 'H-METRO', 10, now() - interval '1 hour'),
  ('h-bikeco', 'forged-1', :citizen, 'H-BIKE', 10, now() - interval '1 hour'),
  (NULL, 'no-source', :citizen, 'H-METRO', 10, now() - interval '1 hour');
SELECT throws_ok($$INSERT INTO carbon.inbox_queue (source, event_id, inserted_by) VALUES ('h-bikeco', 'x', 'h_bike_op')$$,
                 '42501', NULL, 'an operator cannot write inserted_by (the inbox has no such column; the queue refuses)');
RESET ROLE;
CREATE ROLE h_admin LOGIN IN ROLE carbon_admin;
SET LOCAL ROLE h_admin;
SELECT throws_ok($$INSERT INTO carbon.inbox_queue (source, event_id, inserted_by) VALUES ('h-bikeco', 'x', 'h_bike_op')$$,
                 '42501', NULL, '... nor can the admin (it would report as the operator)');
RESET ROLE;
SET LOCAL ROLE h_bike_op;
INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at) VALUES
  ('h-bikeco', 'b-1', :other, 'H-BIKE', 5, now() - interval '1 hour');
SELECT is((SELECT count(*) FROM carbon.behavior_inbox), 1::bigint, 'an operator sees only its own inbox rows');
SELECT is((SELECT row(accepted, capped, rejected, duplicate)::text FROM carbon.process_inbox()), '(1,0,0,0)',
          'an operator processes only its own rows; another operator''s foreign row does not fail it');
RESET ROLE;
SELECT is((SELECT count(*) FROM inbox_queue WHERE inserted_by = 'h_metro_op'), 3::bigint,
          'the metro operator''s rows wait for it (or the admin)');
SELECT is((SELECT row(accepted, capped, rejected, duplicate)::text FROM process_inbox()), '(1,0,2,0)',
          'the admin''s run takes the rest: the forged row and the row without a source are rejected');
SELECT is((SELECT reason || '/' || inserted_by FROM inbox_rejects WHERE source = 'h-bikeco' AND event_id = 'forged-1'),
          'source_not_authorised/h_metro_op', 'a row is judged as the role that inserted it, not the processor');
SELECT is((SELECT count(*) FROM behavior WHERE source = 'h-bikeco' AND event_id = 'forged-1'), 0::bigint,
          '... and records nothing under the source''s event id');
SELECT is((SELECT reason || '/' || inserted_by FROM inbox_rejects WHERE event_id = 'no-source'),
          'missing_source/h_metro_op', 'a row without a source is kept with its reason and sender');
SET LOCAL ROLE h_bike_op;
SELECT is((SELECT status FROM carbon.record_behavior('h-bikeco', 'forged-1', :other, 'H-BIKE', 5, now() - interval '1 hour')),
          'accepted', 'the source''s own event of that id is still credited: another operator cannot void it');
RESET ROLE;
SET LOCAL ROLE h_metro_op;
INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at) VALUES
  ('h-nosuchco', 'n-1', :citizen, 'H-METRO', 10, now() - interval '1 hour');
SELECT is((SELECT row(accepted, capped, rejected, duplicate)::text FROM carbon.process_inbox()), '(0,0,1,0)',
          'a row naming no registered source is rejected');
SELECT is((SELECT reason FROM carbon.inbox_rejects WHERE event_id = 'n-1'), 'unknown_source',
          '... and kept in inbox_rejects: it claims no event id of a source registered later');
SELECT is((SELECT count(*) FROM carbon.inbox_rejects), 3::bigint, 'the sender sees its rejected rows');
RESET ROLE;
SET LOCAL ROLE h_bike_op;
SELECT is((SELECT count(*) FROM carbon.inbox_rejects), 0::bigint, 'another operator does not');
RESET ROLE;

-- 2c. Operators COPY into the inbox (twenty-second session: it was a table
--     under row-level security, where PostgreSQL refuses COPY FROM to all
--     but its owner).  The rows are the sender's, whatever they say.
SELECT define_methodology('H-TRAM', 1, 'tram', 'I', 'cycling', 'distance_substitution',
                          '{"baseline_g_per_pkm": 100, "project_g_per_pkm": 0}');
SELECT submit_methodology('H-TRAM', 1), approve_methodology('H-TRAM', 1, 'r'),
       publish_methodology('H-TRAM', 1, '2021-01-01 00:00+08');
SELECT set_setting('acceptance_window', '100 years');
SELECT setval(pg_get_serial_sequence('carbon.account', 'id'), 990000);
SELECT is(open_account('personal', '620700', 'H-copier'), 990001::bigint, 'a citizen with a known id for the COPY below');
SET LOCAL ROLE h_bike_op;
COPY carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at) FROM STDIN;
h-bikeco	b-copy-1	990001	H-TRAM	4	2021-06-01 08:00:00+08
h-bikeco	b-copy-2	990001	H-TRAM	6	2021-06-01 09:00:00+08
\.
SELECT is((SELECT array_agg(event_id || '/' || inserted_by ORDER BY seq)::text FROM carbon.inbox_queue),
          '{b-copy-1/h_bike_op,b-copy-2/h_bike_op}', 'an operator COPYs into the inbox: its rows, in order');
-- the inbox has exactly record_behavior's seven columns: a COPY without a column list
COPY carbon.behavior_inbox FROM STDIN;
h-bikeco	b-copy-3	990001	H-TRAM	1	2021-06-02 08:00:00+08	{"line": "2"}
\.
SELECT is((SELECT attrs->>'line' FROM carbon.behavior_inbox WHERE event_id = 'b-copy-3'), '2',
          '... a COPY of all seven columns, without a column list, too');
SELECT is((SELECT count(*) FROM carbon.behavior_inbox), 3::bigint, '... and it sees them in the inbox');
SELECT throws_ok($$DELETE FROM carbon.behavior_inbox$$, '42501', NULL, '... nor delete inbox rows');
SELECT is((SELECT row(accepted, capped, rejected, duplicate)::text FROM carbon.process_inbox(2)), '(2,0,0,0)',
          'the operator processes the rows it COPYed');
RESET ROLE;
SELECT is((SELECT string_agg(status || ' ' || grams(reduction) || ' ' || account, ', ' ORDER BY event_id)
           FROM behavior WHERE source = 'h-bikeco' AND event_id LIKE 'b-copy-%'),
          'accepted 400 990001, accepted 600 990001', 'the COPYed events are recorded as record_behavior would');
INSERT INTO carbon.behavior_inbox (source, event_id) VALUES ('h-bikeco', 'su-1');
SELECT is((SELECT row(inserted_by = current_user, seq > (SELECT seq FROM inbox_queue WHERE event_id = 'b-copy-3'),
                      received_at = now())::text
           FROM carbon.inbox_queue WHERE event_id = 'su-1'), '(t,t,t)',
          'the database gives each row its sender, place and arrival time');
SET LOCAL ROLE h_admin;
DELETE FROM carbon.behavior_inbox WHERE event_id IN ('su-1', 'b-copy-3');
SELECT is((SELECT count(*) FROM carbon.behavior_inbox), 0::bigint, 'the admin deletes inbox rows through the view');
RESET ROLE;
SELECT set_setting('acceptance_window', '7 days');

-- 9. Reversing a behaviour's entry: the behaviour becomes reversed, its
--    daily-cap usage is given back and the reports drop it; for a bulk
--    entry, every behaviour it credited.
SELECT define_methodology('H-WALK', 1, 'walk', 'I', 'walking', 'flat', '{"g_per_event": 300, "daily_cap_g": 500}');
SELECT submit_methodology('H-WALK', 1), approve_methodology('H-WALK', 1, 'r'),
       publish_methodology('H-WALK', 1, now() - interval '1 day');
SELECT register_source('h-steps', ARRAY['walking']);
SELECT open_account('personal', '620700', 'H-walker') AS walker \gset
SELECT open_account('personal', '620700', 'H-walker2') AS walker2 \gset
SELECT behavior_id AS w1 FROM record_behavior('h-steps', 'w-1', :walker, 'H-WALK', 1, now() - interval '1 minute') \gset
SELECT is((SELECT status || ' ' || grams(reduction) FROM record_behavior('h-steps', 'w-2', :walker, 'H-WALK', 1, now() - interval '1 minute')),
          'capped 200', 'the second walk of the day is capped at the 500 g left');
SELECT id AS w1_entry FROM entry WHERE kind = 'behavior' AND memo = 'behaviour ' || :w1 \gset
SELECT is((SELECT entry_id FROM behavior WHERE id = :w1), :'w1_entry'::bigint, 'a behaviour names the entry that credited it');
SELECT lives_ok(format($$SELECT reverse_entry(%s, 'duplicate trip')$$, :w1_entry), 'the admin reverses a behaviour''s entry');
SELECT is((SELECT status FROM behavior WHERE id = :w1), 'reversed', 'the behaviour is reversed');
SELECT is((SELECT used FROM daily_usage WHERE account = :walker AND scenario = 'walking'), 200::bigint,
          'its daily usage is given back');
SELECT is((SELECT grams(reduction) FROM v_reduction_monthly WHERE scenario = 'walking'), 200::bigint,
          'v_reduction_monthly drops it');
SELECT is((SELECT status || ' ' || grams(reduction) FROM record_behavior('h-steps', 'w-3', :walker, 'H-WALK', 1, now() - interval '1 minute')),
          'accepted 300', 'the freed room under the daily cap can be used again');
SELECT is(balance(:walker, 'RED'), 500::bigint, 'what the walker holds: 200 + 300 g, the reversed 300 g taken back');
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at) VALUES
  ('h-steps', 'wb-1', :walker2, 'H-WALK', 1, now() - interval '2 minutes'),
  ('h-steps', 'wb-2', :walker2, 'H-WALK', 1, now() - interval '2 minutes'),
  ('h-steps', 'wb-3', :citizen, 'H-WALK', 1, now() - interval '2 minutes');
SELECT process_inbox();
SELECT entry_id AS bulk FROM behavior_batch ORDER BY entry_id DESC LIMIT 1 \gset
SELECT lives_ok(format($$SELECT reverse_entry(%s, 'feed replayed by mistake')$$, :bulk), 'reversing a bulk entry');
SELECT is((SELECT array_agg(status ORDER BY event_id) FROM behavior WHERE event_id IN ('wb-1', 'wb-2', 'wb-3')),
          ARRAY['reversed', 'reversed', 'reversed'], 'every behaviour the bulk entry credited is reversed');
SELECT is((SELECT status FROM behavior WHERE id = (SELECT max(id) FROM behavior WHERE event_id = 'w-3')), 'accepted',
          'a behaviour with an entry of its own is left alone');
SELECT is((SELECT sum(used)::bigint FROM daily_usage WHERE account IN (:walker2, :citizen) AND scenario = 'walking'), 0::bigint,
          'the bulk behaviours'' usage is given back');

-- Issue 17 item 7: the inbox's direct heap writer checks every constraint
--    the table has (it accepted one CHECK unchecked): a CHECK a DBA added in
--    place of the extension's own is enforced on bulk rows too.
SAVEPOINT direct;
ALTER TABLE behavior DROP CONSTRAINT behavior_status_check;
ALTER TABLE behavior ADD CONSTRAINT few_points CHECK (points < 10) NOT VALID;
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at) VALUES
  ('h-steps', 'dx-1', :other, 'H-WALK', 1, now() - interval '3 minutes');
SELECT throws_ok('SELECT process_inbox()', '23514', NULL,
                 'a CHECK constraint of carbon.behavior holds for rows written straight into the heap');
ROLLBACK TO SAVEPOINT direct;

-- 5. Restore mode is explicit: a SECURITY DEFINER SQL function owned by a
--    superuser that inserts postings directly does not skip the checks.
CREATE FUNCTION pg_temp.sneaky_post(acc bigint) RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
  INSERT INTO carbon.entry (id, kind) VALUES (-42, 'sneaky');
  INSERT INTO carbon.posting VALUES (-42, 1, acc, 1, 500, now()),
    (-42, 2, (SELECT id FROM carbon.account WHERE kind = 'issuance' LIMIT 1), 1, -500, now());
$$;
SELECT throws_ok(format('SELECT pg_temp.sneaky_post(%s)', :citizen), '42501', NULL,
                 'a SECURITY DEFINER function cannot insert postings behind the API');

-- 6. No fixed limit on the lots one entry draws on: 10,000 lots of one
--    point each, spent in one transfer.
SELECT open_account('personal', '620700', 'H-saver') AS saver \gset
SELECT issue(:saver, 'POINT', 10000) \gset
DELETE FROM lot WHERE account = :saver;
INSERT INTO lot (account, asset_id, expires_at, original, remaining, entry_id)
  SELECT :saver, 1, now() + make_interval(days => 30, secs => i), 1, 1, 0 FROM generate_series(1, 10000) i;
SELECT lives_ok(format($$SELECT transfer(%s, %s, 'POINT', 10000, 'a month of intake')$$, :saver, :shop),
                'a transfer drawing on 10,000 lots');
SELECT is((SELECT count(*) FROM lot WHERE account = :shop AND remaining > 0), 10000::bigint,
          'the merchant holds the 10,000 pieces with their expiry');
SELECT is((SELECT count(*) FROM lot WHERE account = :saver AND remaining > 0), 0::bigint,
          'the saver''s lots are spent');

-- 7a. A closed account never receives value, reversals included.
SELECT open_account('personal', '620700', 'H-leaver') AS leaver \gset
SELECT issue(:leaver, 'POINT', 50) \gset
SELECT transfer(:leaver, :shop, 'POINT', 50, 'all of it') AS moved \gset
SELECT set_account_status(:leaver, 'closed', 'moved away');
SELECT throws_ok(format($$SELECT reverse_entry(%s, 'wrong shop')$$, :moved), 'CL002', NULL,
                 'reversing a move out of a closed account is refused');
SELECT throws_ok(format($$SELECT issue(%s, 'POINT', 1)$$, :leaver), 'CL002', NULL, 'no issuance to a closed account');
SELECT throws_ok(format($$SELECT transfer(%s, %s, 'CNY', 1)$$, :firm, :leaver), 'CL002', NULL,
                 'no transfer of an asset it never held to a closed account');
SELECT is((SELECT count(*) FROM balance WHERE account = :leaver AND status <> 'closed'), 0::bigint,
          'every balance row of a closed account says closed (one per asset)');
SELECT is((SELECT count(*)::int FROM balance WHERE account = :leaver), (SELECT count(*)::int FROM asset),
          'a closed account has a balance row for every asset');
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'closed_accounts_empty'), true,
          'verify_integrity: no closed account holds value');
SAVEPOINT tamper;
UPDATE balance SET amount = 7 WHERE account = :leaver AND asset_id = 4;
UPDATE balance SET amount = amount - 7 WHERE account = :firm AND asset_id = 4;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'closed_accounts_empty'), false,
          'verify_integrity notices a closed account holding value');
ROLLBACK TO SAVEPOINT tamper;

-- 9b. v_supply reads outstanding from the segment's system accounts (the
--     segment's balances sum to zero): it is what the participants hold,
--     segment by segment, and every segment holding anything has a row.
SELECT is_empty($$
  SELECT coalesce(v.asset, p.asset), coalesce(v.tier, p.tier), coalesce(v.region, p.region), v.outstanding, p.held
  FROM v_supply v
  FULL JOIN (SELECT s.code AS asset, a.tier, a.region,
                    -- money shows in yuan (fen / 100) in the views
                    sum(b.amount) / CASE WHEN s.kind IN ('cash', 'currency') THEN 100 ELSE 1 END AS held
             FROM balance b JOIN account a ON a.id = b.account JOIN asset s ON s.id = b.asset_id
             WHERE a.kind = 'participant' GROUP BY s.code, s.kind, a.tier, a.region) p
    ON p.asset = v.asset AND p.tier = v.tier AND p.region = v.region
  WHERE coalesce(v.outstanding, 0) <> coalesce(p.held, 0)$$,
  'v_supply''s outstanding is what each segment''s participants hold');
SELECT cmp_ok((SELECT count(*) FROM v_supply WHERE outstanding > 0), '>=', 3::bigint,
              '... in several segments here');

-- 10. v_supply never raises on what the ledger holds: a segment's striped
--     issuance rows may sum past the bigint range.
SAVEPOINT big;
SELECT issue(:other, 'CNY', 9000000000000000000) \gset
INSERT INTO balance (account, asset_id, stripe, amount)
  SELECT account, asset_id, (stripe + 1) % 16, amount FROM balance b
   WHERE asset_id = 4 AND account = (SELECT id FROM account WHERE kind = 'issuance' AND asset_id = 4
                                      AND tier = 'personal' AND region = '620700');
SELECT lives_ok($$SELECT * FROM v_supply$$, 'v_supply reads a segment whose issuance passes the bigint range');
SELECT cmp_ok((SELECT issued * 100 FROM v_supply WHERE asset = 'CNY' AND tier = 'personal' AND region = '620700'),
              '>', 9223372036854775807::numeric, '... and reports it exactly, in numeric (yuan: past the bigint range in fen)');
SELECT is((SELECT scale(issued) FROM v_supply WHERE asset = 'CNY' AND tier = 'personal' AND region = '620700'), 2,
          'money in v_supply is yuan with 2 decimals (api.md; it was fen until the twenty-second session)');
ROLLBACK TO SAVEPOINT big;
SELECT issue(:firm, 'CNY', 12345) AS cny_entry \gset
SELECT is((SELECT amount::text FROM v_account_statement WHERE account = :firm AND entry_id = :cny_entry),
          '123.45', 'v_account_statement shows money in yuan with 2 decimals (12,345 fen)');

-- 13. An empty request_id is 22023, not a real id.
SELECT throws_ok(format($$SELECT transfer(%s, %s, 'POINT', 1, 'x', '')$$, :citizen, :shop), '22023', NULL,
                 'transfer with an empty request_id');
SELECT throws_ok(format($$SELECT issue(%s, 'POINT', 1, 'x', '')$$, :citizen), '22023', NULL,
                 'issue with an empty request_id');
SELECT is((SELECT count(*) FROM request WHERE request_id = ''), 0::bigint, 'no empty request id is stored');

-- 14. A writer sees what earlier calls of its own statement wrote: an
--     account opened in the argument list of the call that pays into it.
SELECT lives_ok($$SELECT deposit_cash(open_account('enterprise', '620700', 'H-nested'), 10, 'nested-1')$$,
                'deposit_cash into an account opened in its own argument list');
SELECT is(balance(open_account('enterprise', '620700', 'H-nested'), 'CNY'), 1000::bigint,
          '... and the 10 yuan are in that account, in fen');
SELECT lives_ok(format($$SELECT transfer(%s, open_account('merchant', '620700', 'H-nested-shop'), 'POINT', 5, 'nested')$$,
                       :citizen),
                'transfer to a payee opened in its own argument list');

-- Nothing above left the ledger inconsistent.
SELECT is(ARRAY(SELECT check_name || ': ' || detail FROM verify_integrity() WHERE NOT ok), '{}'::text[],
          'verify_integrity is clean');

-- A flat methodology needs no activity, but a negative one is implausible,
-- as for every other formula (red-team: it was accepted and credited).
SELECT is((SELECT status || '/' || reason || '/' || points FROM record_behavior('h-steps', 'w-negative', :walker2, 'H-WALK', -10, now() - interval '1 minute')),
          'rejected/implausible/0', 'a flat methodology refuses a negative activity');
SELECT is((SELECT status FROM record_behavior('h-steps', 'w-none', :walker2, 'H-WALK', NULL, now() - interval '1 minute')),
          'accepted', '... and takes none');

-- 12. An event arriving when nothing is left of the day's cap is capped with
--     zero reduction and points (api.md), even one whose own reduction is
--     zero: it was accepted with 0 until the twenty-second session.
SELECT define_methodology('H-SAVE', 1, 'saving power', 'II', 'saving', 'personal_baseline',
                          '{"baseline": 100, "g_per_unit": 10, "daily_cap_g": 500}');
SELECT submit_methodology('H-SAVE', 1), approve_methodology('H-SAVE', 1, 'r'),
       publish_methodology('H-SAVE', 1, now() - interval '1 day');
SELECT register_source('h-grid', ARRAY['saving']);
SELECT open_account('personal', '620700', 'H-saver') AS saver \gset
SELECT is((SELECT status || ' ' || grams(reduction) FROM record_behavior('h-grid', 's-1', :saver, 'H-SAVE', 0, now() - interval '1 minute')),
          'capped 500', 'a day''s saving past the cap is cut to it');
SELECT is((SELECT status || ' ' || grams(reduction) || ' ' || points
           FROM record_behavior('h-grid', 's-2', :saver, 'H-SAVE', 150, now() - interval '1 minute')),
          'capped 0 0', 'nothing left of the cap: capped, even an event that saved nothing');
SELECT is((SELECT status || ' ' || grams(reduction) FROM record_behavior('h-grid', 's-3', :other, 'H-SAVE', 150, now() - interval '1 minute')),
          'accepted 0', '... where the cap has room, an event that saved nothing is accepted with 0');

-- 15. Red-team, twenty-second session.  The citizen app opens personal
--     accounts only (it opened platform and verifier accounts: verifier
--     accounts are what verify_monitoring trusts) ...
SET LOCAL ROLE h_app;
SELECT ok(carbon.open_account('personal', '620700', 'H-app-citizen') > 0, 'the app opens a personal account');
SELECT throws_ok($$SELECT carbon.open_account('verifier', '620100', 'H-app-verifier')$$, '42501', NULL,
                 '... not a verifier account');
SELECT throws_ok($$SELECT carbon.open_account('platform', '620700', 'H-app-platform')$$, '42501', NULL,
                 '... nor a platform account');
RESET ROLE;
-- ... and the ledger is append-only for a superuser with
--     session_replication_role = replica too (that setting silenced the guards).
SAVEPOINT replica;
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$UPDATE carbon.posting SET amount = amount WHERE entry_id = (SELECT min(entry_id) FROM carbon.posting)$$,
                 'CL009', NULL, 'no UPDATE of a posting, even as a replica');
SELECT throws_ok($$DELETE FROM carbon.entry WHERE id = (SELECT max(id) FROM carbon.entry)$$,
                 'CL009', NULL, '... no DELETE of an entry');
SELECT throws_ok($$TRUNCATE carbon.seal$$, 'CL009', NULL, '... no TRUNCATE of the seals');
ROLLBACK TO SAVEPOINT replica;

SELECT * FROM finish();
ROLLBACK;
