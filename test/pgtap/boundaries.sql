-- pgTAP: boundaries and checks that a plausible one-character bug would slip
-- past (issue 16, items 16-20).  Each block names the bug it guards against;
-- every such bug, planted, makes at least one test of its block fail.
BEGIN;
SET search_path = carbon, public;
SELECT plan(39);

-- Shared set-up: a published metro methodology without a daily cap (100 g
-- per ride = 10 points at the default 100 points/kg), two sources that may
-- both report metro rides, and a few accounts in 620700.
SELECT define_methodology('BM', 1, 'metro ride', 'I', 'metro', 'per_unit', '{"g_per_unit": 100}');
SELECT submit_methodology('BM', 1);
SELECT approve_methodology('BM', 1, 'reviewer');
SELECT publish_methodology('BM', 1, now() - interval '1 day');
SELECT register_source('bnd-metro-a', ARRAY['metro']);
SELECT register_source('bnd-metro-b', ARRAY['metro']);
SELECT open_account('personal', '620700', 'bnd-rider') AS rider \gset
SELECT open_account('personal', '620700', 'bnd-alice') AS alice \gset
SELECT open_account('personal', '620700', 'bnd-bob') AS bob \gset
SELECT open_account('merchant', '620700', 'bnd-shop') AS shop \gset

-- ---------------------------------------------------------------------------
-- Item 20 — bulk de-duplication keyed on event_id alone, ignoring the source.
-- The same event id from two different sources is two events; the same
-- (source, event_id) twice is one.  Runs before any issuance cap exists, so
-- process_inbox() takes its set-based path (with caps it goes one by one).
-- ---------------------------------------------------------------------------
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('bnd-metro-a', 'ride-1', :rider, 'BM', 1, now()),
       ('bnd-metro-b', 'ride-1', :rider, 'BM', 1, now()),
       ('bnd-metro-a', 'ride-1', :rider, 'BM', 1, now());
SELECT is((SELECT format('%s/%s/%s/%s', accepted, capped, rejected, duplicate) FROM process_inbox()),
          '2/0/0/1', 'inbox: one event id from two sources is two events, the repeat from one source a duplicate');
SELECT is(ARRAY(SELECT source || ':' || status FROM behavior WHERE event_id = 'ride-1' ORDER BY source),
          ARRAY['bnd-metro-a:accepted', 'bnd-metro-b:accepted'], 'inbox: both sources'' events are recorded');
SELECT is(balance(:rider, 'RED'), 200::bigint, 'inbox: both events are credited, the duplicate is not');
-- the single path agrees
SELECT is((SELECT status FROM record_behavior('bnd-metro-a', 'ride-2', :rider, 'BM', 1, now())), 'accepted',
          'record_behavior: an event id from source a');
SELECT is((SELECT status FROM record_behavior('bnd-metro-b', 'ride-2', :rider, 'BM', 1, now())), 'accepted',
          'record_behavior: the same event id from source b is not a duplicate');

-- ---------------------------------------------------------------------------
-- Item 17 — seal chain not linked (the previous seal's hash left out of the
-- SHA-256 input).  verify_integrity() recomputes with the same code and
-- would not notice, so this is a known-answer check: each seal's hash is
-- recomputed here from the formula, with PostgreSQL's built-in sha256() and
-- the canonical text written out below, not with the extension's code:
--   hash = SHA-256( prev_hash || line_1 || '\n' || ... || line_n || '\n' )
-- over the seal's members (ids in (prev_max_id, max_id] or carried, minus
-- gaps) in id order, where an entry's line is
--   id|kind|created_at in µs since the epoch|reverses or ''|memo quoted as %L|postings
-- and postings are "seq:account:asset_id:amount:at in µs" joined by ',' in
-- seq order; the first seal's prev_hash is 32 zero bytes and every later one
-- is the previous seal's hash.
-- ---------------------------------------------------------------------------
CREATE TEMP VIEW bnd_seal_check AS
  WITH member AS (
    SELECT s.id AS seal_id, e.id, e.kind, e.created_at, e.reverses, e.memo
    FROM carbon.seal s
    JOIN carbon.entry e ON ((e.id > s.prev_max_id AND e.id <= s.max_id) OR e.id = ANY (s.carried))
                       AND e.id <> ALL (s.gaps)),
  line AS (
    SELECT m.seal_id, m.id,
           m.id::text || '|' || m.kind || '|' || (extract(epoch FROM m.created_at) * 1000000)::bigint::text
             || '|' || coalesce(m.reverses::text, '') || '|' || quote_nullable(m.memo) || '|'
             || coalesce((SELECT string_agg(concat_ws(':', p.seq, p.account, p.asset_id, p.amount,
                                                      (extract(epoch FROM p.at) * 1000000)::bigint),
                                            ',' ORDER BY p.seq)
                          FROM carbon.posting p WHERE p.entry_id = m.id), '') AS line
    FROM member m)
  SELECT s.id, s.prev_hash, s.hash, s.entries,
         lag(s.hash) OVER (ORDER BY s.id) AS previous_hash,
         row_number() OVER (ORDER BY s.id) AS n,
         (SELECT count(*) FROM line l WHERE l.seal_id = s.id) AS members,
         sha256(s.prev_hash || convert_to((SELECT string_agg(l.line || E'\n', '' ORDER BY l.id)
                                          FROM line l WHERE l.seal_id = s.id), getdatabaseencoding()))
           AS recomputed
  FROM carbon.seal s;

-- the aggregate itself, on literal lines
SELECT is((SELECT carbon._sha256_chain('\x0102'::bytea, l ORDER BY n)
           FROM (VALUES (2, 'b|é'), (1, 'a')) v(n, l)),
          sha256('\x0102'::bytea || convert_to(E'a\nb|é\n', getdatabaseencoding())),
          'the chain aggregate is SHA-256 over prev || each line || newline, in order');
-- three seals over entries with a quoted non-ASCII memo, a NULL memo, a reversal
SELECT issue(:alice, 'POINT', 500, 'opening balance: alice''s 积分') AS opening \gset
SELECT transfer(:alice, :shop, 'POINT', 70) AS paid \gset
SELECT ok(seal() IS NOT NULL, 'first seal');
SELECT transfer(:alice, :shop, 'POINT', 30, 'coffee') AS coffee \gset
SELECT reverse_entry(:coffee, 'refund "coffee"') AS refund \gset
SELECT ok(seal() IS NOT NULL, 'second seal');
SELECT issue(:bob, 'CNY', 1234) AS deposit \gset
SELECT ok(seal() IS NOT NULL, 'third seal');
SELECT is((SELECT prev_hash FROM bnd_seal_check WHERE n = 1), decode(repeat('00', 32), 'hex'),
          'the first seal chains to 32 zero bytes');
SELECT is(ARRAY(SELECT id FROM bnd_seal_check WHERE n > 1 AND prev_hash IS DISTINCT FROM previous_hash),
          '{}'::bigint[], 'every later seal''s prev_hash is the previous seal''s hash');
SELECT is(ARRAY(SELECT id FROM bnd_seal_check WHERE members = 0 OR members <> entries),
          '{}'::bigint[], 'every seal counts its members');
SELECT is(ARRAY(SELECT id FROM bnd_seal_check WHERE hash IS DISTINCT FROM recomputed),
          '{}'::bigint[], 'every seal''s hash recomputes from prev_hash and the canonical lines (known answer)');
SELECT is((SELECT count(*) FROM bnd_seal_check WHERE hash = recomputed AND n > 1), 2::bigint,
          'and that covers the chained seals');
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'seals_intact'), true,
          'verify_integrity agrees');

-- ---------------------------------------------------------------------------
-- Item 18 — expiry boundary: `expires_at <= as_of` written `<`.  A lot is
-- expired AT its expires_at: expire_lots(expires_at) takes it, balance()
-- stops counting it and transfer() cannot spend it at that instant.  Rolled
-- back afterwards (expire_lots of a future instant would take every lot).
-- ---------------------------------------------------------------------------
SAVEPOINT expiry;
SELECT set_setting('points_validity', '3 days');
SELECT open_account('personal', '620700', 'bnd-carol') AS carol \gset
SELECT issue(:carol, 'POINT', 30) AS carol_points \gset
SELECT expires_at AS carol_expiry FROM lot WHERE account = :carol \gset
SELECT is((SELECT lots FROM expire_lots(:'carol_expiry'::timestamptz - interval '1 microsecond')), 0::bigint,
          'expiry: nothing expires a microsecond before expires_at');
SELECT is((SELECT format('%s/%s', lots, points) FROM expire_lots(:'carol_expiry')), '1/30',
          'expiry: expire_lots(expires_at) takes the lot expiring at that very instant');
SELECT is((SELECT count(*) FROM lot WHERE account = :carol), 0::bigint, 'expiry: the lot is gone');
SELECT is(balance(:carol, 'POINT'), 0::bigint, 'expiry: and its points left the balance');
-- a lot whose expires_at is now(), the instant balance() and transfer() look at
SELECT open_account('personal', '620700', 'bnd-dave') AS dave \gset
SELECT issue(:dave, 'POINT', 20) AS dave_points \gset
UPDATE lot SET expires_at = now() WHERE account = :dave;   -- as superuser: no trigger on lots
SELECT is(balance(:dave, 'POINT'), 0::bigint, 'expiry: a lot expiring now() is not counted by balance()');
SELECT throws_ok(format('SELECT carbon.transfer(%s, %s, %L, 20)', :dave, :shop, 'POINT'), 'CL001', NULL,
                 'expiry: nor spent by transfer()');
SELECT is((SELECT format('%s/%s', lots, points) FROM expire_lots(now())), '1/20',
          'expiry: expire_lots(now()) takes it');
SELECT is(balance(:dave, 'POINT'), 0::bigint, 'expiry: balance() unchanged by the sweep: it agreed before');
SELECT is(ARRAY(SELECT check_name FROM verify_integrity() WHERE NOT ok), '{}'::text[],
          'expiry: verify_integrity clean after the expiries');
ROLLBACK TO SAVEPOINT expiry;

-- ---------------------------------------------------------------------------
-- Item 19 — lots_match_balances computed with an inner join: a balance with
-- no lots at all, or lots with no balance at all, would be missed.  Tampered
-- as superuser (lots have no trigger), each case rolled back.
-- ---------------------------------------------------------------------------
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'lots_match_balances'), true,
          'lots: every balance is held in lots before tampering');
SAVEPOINT lots;
DELETE FROM lot WHERE account = :alice;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'lots_match_balances'), false,
          'lots: a balance whose lots were all deleted is reported');
SELECT matches((SELECT detail FROM verify_integrity() WHERE check_name = 'lots_match_balances'),
               format('account %s asset 1: balance \d+, lots 0', :alice), 'lots: naming the account');
ROLLBACK TO SAVEPOINT lots;
SAVEPOINT lots;
SELECT open_account('personal', '620700', 'bnd-erin') AS erin \gset
INSERT INTO lot (account, asset_id, expires_at, original, remaining, entry_id)
VALUES (:erin, 1, now() + interval '1 year', 5, 5, :opening);
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'lots_match_balances'), false,
          'lots: a lot of an account that has no balance at all is reported');
SELECT matches((SELECT detail FROM verify_integrity() WHERE check_name = 'lots_match_balances'),
               format('account %s asset 1: balance 0, lots 5', :erin), 'lots: naming the account');
ROLLBACK TO SAVEPOINT lots;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'lots_match_balances'), true,
          'lots: clean again after the rollbacks');

-- ---------------------------------------------------------------------------
-- Item 16 — issuance cap boundary: `issued + amount <= cap` written `<`.  A
-- cap of 50 takes exactly 50, by issue() and by a behaviour filling the last
-- room; one more is refused.  Last in the file: from here on caps exist,
-- which sends process_inbox() down its one-by-one path.
-- ---------------------------------------------------------------------------
SELECT open_account('personal', '320100', 'bnd-frank') AS frank \gset
SELECT extract(year FROM now() AT TIME ZONE (SELECT value FROM settings WHERE name = 'timezone'))::int AS year \gset
SELECT set_issuance_cap('CNY', 'personal', '320100', :year, 50);
SELECT set_issuance_cap('POINT', 'personal', '320100', :year, 50);
SELECT lives_ok(format($$SELECT carbon.issue(%s, 'CNY', 30)$$, :frank), 'cap: issue 30 of 50');
SELECT lives_ok(format($$SELECT carbon.issue(%s, 'CNY', 20)$$, :frank), 'cap: issue the last 20 of 50');
SELECT throws_ok(format($$SELECT carbon.issue(%s, 'CNY', 1)$$, :frank), 'CL004', NULL, 'cap: one more is refused');
SELECT is(balance(:frank, 'CNY'), 50::bigint, 'cap: exactly the cap was issued');
SELECT lives_ok(format($$SELECT carbon.issue(%s, 'POINT', 40)$$, :frank), 'cap: issue 40 points of 50');
SELECT is((SELECT status || '/' || points FROM record_behavior('bnd-metro-a', 'cap-1', :frank, 'BM', 1, now())),
          'accepted/10', 'cap: a behaviour whose 10 points fill the last room is accepted');
SELECT is((SELECT status || '/' || reason FROM record_behavior('bnd-metro-a', 'cap-2', :frank, 'BM', 0.1, now())),
          'rejected/cap', 'cap: a behaviour of 1 point more is rejected for the cap');
SELECT throws_ok(format($$SELECT carbon.issue(%s, 'POINT', 1)$$, :frank), 'CL004', NULL,
                 'cap: issuing 1 point more is refused');
SELECT is(ARRAY(SELECT asset || ':' || issued || '/' || cap FROM issuance_cap
                 WHERE tier = 'personal' AND region = '320100' ORDER BY asset),
          ARRAY['CNY:50/50', 'POINT:50/50'], 'cap: both caps are exactly full');

SELECT * FROM finish();
ROLLBACK;
