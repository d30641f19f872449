-- pgTAP: what the direct write paths keep per backend between calls
-- (append.c, catalog.c): the extension's relations by name, each index's
-- IndexInfo, the scan keys' procedures and the attribute numbers of the
-- columns they read.  Each is dropped when its relation changes, inside the
-- transaction that changes it as well as after: an index a DBA adds to a
-- table gets every row written after it (amcheck's heapallindexed check
-- proves it), a partial index gets exactly the rows of its predicate, a
-- dropped index is no longer written, a column dropped and added again is
-- read at its new place, and a table dropped and created again (DROP and
-- CREATE EXTENSION) is written under its new OID; and a row found where it
-- was last time is the row of the key asked for.
BEGIN;
SET search_path = carbon, public;
SELECT plan(20);
CREATE EXTENSION IF NOT EXISTS amcheck;

CREATE FUNCTION pg_temp.setup() RETURNS TABLE (seller bigint, buyer bigint) LANGUAGE plpgsql AS $$
DECLARE
  s bigint;
  b bigint;
  v bigint;
  p bigint;
  r bigint;
BEGIN
  s := carbon.open_account('enterprise', '620702', 'KC-seller-' || txid_current(), 'seller');
  b := carbon.open_account('enterprise', '620100', 'KC-buyer-' || txid_current(), 'buyer');
  v := carbon.open_account('verifier', '620100', 'KC-verifier-' || txid_current(), 'verifier');
  PERFORM carbon.define_methodology('KC-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
  PERFORM carbon.submit_methodology('KC-FOREST', 1), carbon.approve_methodology('KC-FOREST', 1, 'panel'),
          carbon.publish_methodology('KC-FOREST', 1, now() - interval '1 day');
  p := carbon.register_project(s, 'KCFOREST', 'KC forest', 'KC-FOREST', '620702', 'additional');
  PERFORM carbon.publicize_project(p, current_date - 30), carbon.approve_project(p);
  r := carbon.submit_monitoring(p, '[2025-01-01,2025-12-31]', carbon.co2e_grams(500000000));
  PERFORM carbon.verify_monitoring(r, v, carbon.co2e_grams(500000000), 'ok');
  PERFORM count(*) FROM carbon.issue_units(r);
  PERFORM carbon.deposit_cash(b, 50000, 'buyer');
  PERFORM carbon.set_reference_price('CER-I', 60.00);
  RETURN QUERY SELECT s, b;
END $$;
SELECT seller, buyer FROM pg_temp.setup() \gset

-- a trade writes orders, trades, entries, postings, blocks, history and the books
SELECT place_order(:seller, 'sell', 5, 60.00);
SELECT place_order(:buyer, 'buy', 2, 60.00);

-- a DBA's index on tables the direct paths write, in the same transaction
CREATE INDEX kc_trade_price ON carbon.trade (price, tonnes);
CREATE INDEX kc_posting_amount ON carbon.posting (amount) WHERE amount > 0;
CREATE INDEX kc_block_last ON carbon.unit_block (last);
SELECT place_order(:buyer, 'buy', 2, 60.00);
SELECT place_order(:seller, 'sell', 4, 60.00);
SELECT place_order(:buyer, 'buy', 3, 60.00);
SELECT lives_ok($$SELECT bt_index_check('carbon.kc_trade_price', true)$$,
                'an index added to trade holds every trade written after it (heapallindexed)');
SELECT lives_ok($$SELECT bt_index_check('carbon.kc_posting_amount', true)$$,
                'a partial index added to posting holds the rows of its predicate');
SELECT lives_ok($$SELECT bt_index_check('carbon.kc_block_last', true)$$,
                'an index added to unit_block holds the blocks written and changed after it');
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT is((SELECT count(*) FROM carbon.posting WHERE amount > 0)::int,
          (SELECT count(*) FROM (SELECT amount FROM carbon.posting) p WHERE amount > 0)::int,
          '... read through it, the same postings as the table holds');
RESET enable_seqscan;
RESET enable_bitmapscan;

-- dropped again: the next writes no longer reach for them
DROP INDEX carbon.kc_trade_price, carbon.kc_posting_amount, carbon.kc_block_last;
SELECT lives_ok($$SELECT carbon.place_order($$ || :seller || $$, 'sell', 1, 60.00)$$,
                'indexes dropped: the next order is written without them');
SELECT is((SELECT count(*) FROM carbon.trade)::int, 4, '... and trades');

-- a column the book reads, dropped and added again: read at its new place
ALTER TABLE carbon.market_order RENAME COLUMN retire_purpose TO kc_old_purpose;
ALTER TABLE carbon.market_order ADD COLUMN retire_purpose text;
UPDATE carbon.market_order SET retire_purpose = kc_old_purpose;
ALTER TABLE carbon.market_order DROP COLUMN kc_old_purpose;
SELECT place_order(:seller, 'sell', 3, 61.00);
SELECT is((SELECT o.status FROM place_order(:buyer, 'buy', 3, 61.00) o), 'filled',
          'a column of market_order moved to a new attribute number: the book is read right, the buy fills');
SELECT is((SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok)::int, 0, '... and verify_integrity() is clean');

-- where a row was found by its key (row_tids.c).  CLUSTER writes every row
-- at a new TID, where a TID kept for a key may now hold another row: a
-- lookup must check the key of what it finds there.  Accounts: X's TID
-- kept by a deposit, then the table clustered by region, which puts
-- another account where X was (checked below).  X is active and Y frozen,
-- so that reading one for the other shows.
SELECT open_account('enterprise', '620702', 'KC-X-' || txid_current(), 'x') AS x,
       open_account('enterprise', '620100', 'KC-Y-' || txid_current(), 'y') AS y \gset
SELECT deposit_cash(:x, 100, 'x'), deposit_cash(:y, 200, 'y');
SELECT set_account_status(:y, 'frozen', 'kc');
CREATE TEMP TABLE kc_where AS SELECT ctid AS was FROM carbon.account WHERE id = :x;
CLUSTER carbon.account USING account_region_idx;
SELECT count(*) > 0 FROM carbon.account;   -- the new pages in shared buffers
SELECT isnt((SELECT id FROM carbon.account a, kc_where w WHERE a.ctid = w.was), :x::bigint,
            'CLUSTER put another row at the TID X had');
SELECT lives_ok(format('SELECT carbon.deposit_cash(%s, 10, %L)', :x, 'x'),
                'X, whose old TID holds another account now, is found: its deposit goes through');
SELECT throws_ok(format('SELECT carbon.deposit_cash(%s, 10, %L)', :y, 'y'), 'CL002', NULL,
                 '... and Y is found frozen');
-- balances: the same for rows updated in this transaction (their old
-- versions kept beside them)
CLUSTER carbon.balance USING balance_pkey;
SELECT count(*) > 0 FROM carbon.balance;
SELECT withdraw_cash(:x, 1, 'x');
SELECT is(ARRAY[balance(:x, 'CNY'), balance(:y, 'CNY')], ARRAY[10900::bigint, 20000::bigint],
          'balances at new TIDs: each deposit and withdrawal reached its own row');
SELECT is((SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok)::int, 0,
          '... every balance is the sum of its postings');

-- what a definer may write (append.c, table_plain: kept per table and user
-- until the table or a role changes): deposit_cash owned by a role that may
-- write the tables writes straight in; INSERT on posting revoked from it in
-- the same transaction, the next deposit goes by SQL and is refused, as
-- INSERT would be; granted again, it goes through
CREATE ROLE kc_definer NOLOGIN BYPASSRLS;
GRANT USAGE ON SCHEMA carbon TO kc_definer;
GRANT ALL ON ALL TABLES IN SCHEMA carbon TO kc_definer;
GRANT ALL ON ALL SEQUENCES IN SCHEMA carbon TO kc_definer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA carbon TO kc_definer;
ALTER FUNCTION carbon.deposit_cash(bigint, numeric, text, text) OWNER TO kc_definer;
SELECT lives_ok(format('SELECT deposit_cash(%s, 5, %L)', :x, 'definer kc_definer'),
                'a deposit whose definer may write the tables');
REVOKE INSERT ON carbon.posting FROM kc_definer;
SELECT throws_ok(format('SELECT deposit_cash(%s, 5, %L)', :x, 'revoked'), '42501', NULL,
                 '... refused once INSERT on posting is revoked from the definer (asked again, not kept)');
GRANT INSERT ON carbon.posting TO kc_definer;
SELECT lives_ok(format('SELECT deposit_cash(%s, 5, %L)', :x, 'granted again'), '... and written once granted again');
SELECT is(balance(:x, 'CNY'), 11900::bigint, '... the two deposits, and not the one refused');

-- the extension dropped and created again in the same transaction: new OIDs
DROP EXTENSION carbon_ledger CASCADE;
CREATE EXTENSION carbon_ledger;
SELECT seller AS seller2, buyer AS buyer2 FROM pg_temp.setup() \gset
SELECT place_order(:seller2, 'sell', 2, 60.00);
SELECT is((SELECT o.status FROM place_order(:buyer2, 'buy', 2, 60.00) o), 'filled',
          'after DROP and CREATE EXTENSION an order is written to the new tables and fills');
SELECT is((SELECT count(*) FROM carbon.trade)::int, 1, '... one trade in the new trade table');
SELECT is((SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok)::int, 0, '... verify_integrity() clean');

SELECT * FROM finish();
ROLLBACK;
