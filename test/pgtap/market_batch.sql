-- pgTAP: a statement's orders are one batch (issue 20: "many orders per
-- transaction post their entries in batches"; market.c).  The same script
-- of orders, placed one statement per order and then all in one statement,
-- gives the same outcome to the fen and to the serial: every order's
-- status, fill and average price, every trade (its orders, price, tonnes and
-- serials), every balance and every account's blocks; the one statement
-- posts one entry.  What the batch must not change: a PL/pgSQL function
-- that places an order reads it in its next statement; a cursor's fetch
-- writes what it placed; a call that fails undoes the whole statement; a
-- request id replayed within the statement returns its order.  And what it
-- must refuse: orders written inside a savepoint of the statement that then
-- rolls back are gone although their calls reported them, so the
-- transaction may not go on placing orders (25P02) until the statement's
-- own savepoint rolls back too.
BEGIN;
SET search_path = carbon, public;
SELECT plan(52);

-- ---- setup: two sellers of class I units from two projects, two buyers with cash ----
SELECT open_account('enterprise', '620702', 'MB-farm', 'farm') AS farm \gset
SELECT open_account('enterprise', '620702', 'MB-orchard', 'orchard') AS orchard \gset
SELECT open_account('enterprise', '620100', 'MB-steel', 'steel works') AS steel \gset
SELECT open_account('government', '620700', 'MB-bureau', 'bureau') AS bureau \gset
SELECT open_account('verifier', '620100', 'MB-verifier', 'verifier') AS ver \gset
SELECT define_methodology('MB-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('MB-FOREST', 1), approve_methodology('MB-FOREST', 1, 'panel'),
       publish_methodology('MB-FOREST', 1, now() - interval '1 day');
SELECT count(*) AS issued FROM
  (VALUES (:farm, 'MBFARM', 400), (:orchard, 'MBORCH', 300)) AS o(owner, code, t),
  LATERAL (SELECT register_project(o.owner, o.code, o.code, 'MB-FOREST', '620702', 'additional') AS p) p,
  LATERAL (SELECT publicize_project(p.p, current_date - 30), approve_project(p.p)) a,
  LATERAL (SELECT submit_monitoring(p.p, '[2025-01-01,2025-12-31]', carbon.co2e_grams(o.t * 1000000)) AS r) r,
  LATERAL (SELECT verify_monitoring(r.r, :ver, carbon.co2e_grams(o.t * 1000000), 'ok')) v,
  LATERAL (SELECT count(*) FROM issue_units(r.r)) i;
SELECT deposit_cash(:steel, 50000, 'steel'), deposit_cash(:bureau, 30000, 'bureau'),
       deposit_cash(:farm, 500, 'farm'), deposit_cash(:orchard, 500, 'orchard');
SELECT set_setting('trade_fee_bps', '15');
SELECT set_reference_price('CER-I', 60.00);
-- statistics of a young market (as autovacuum leaves them): the plans below are built on them
ANALYZE carbon.market_order, carbon.unit_block, carbon.unit_cost, carbon.account, carbon.trade, carbon.instrument;
DISCARD PLANS;

-- the script: sellers rest and cross, buyers sweep several levels, a seller
-- buys back what it sold, IOC and FOK orders, a market order, self-trades
CREATE TEMP TABLE script (seq int PRIMARY KEY, who bigint, side text, tonnes bigint, price numeric, tif text);
INSERT INTO script VALUES
  (1, :farm, 'sell', 50, 61.00, 'GTC'), (2, :orchard, 'sell', 40, 60.50, 'GTC'),
  (3, :farm, 'sell', 30, 62.00, 'DAY'), (4, :steel, 'buy', 70, 61.50, 'GTC'),
  (5, :bureau, 'buy', 25, 59.00, 'GTC'), (6, :orchard, 'sell', 60, 58.50, 'GTC'),
  (7, :steel, 'buy', 45, 62.00, 'IOC'), (8, :farm, 'buy', 10, 60.00, 'GTC'),
  (9, :steel, 'sell', 20, 59.50, 'GTC'), (10, :bureau, 'buy', 100, 63.00, 'FOK'),
  (11, :bureau, 'buy', 15, 62.50, 'FOK'), (12, :orchard, 'sell', 35, 60.00, 'GTC'),
  (13, :farm, 'sell', 5, 59.00, 'GTC'), (14, :steel, 'buy', 30, NULL, 'IOC'),
  (15, :farm, 'sell', 80, 61.00, 'GTC'), (16, :bureau, 'buy', 60, 61.00, 'GTC'),
  (17, :orchard, 'buy', 5, 60.50, 'GTC'), (18, :steel, 'sell', 10, 58.00, 'IOC'),
  (19, :farm, 'buy', 12, 61.50, 'GTC'), (20, :orchard, 'sell', 25, 61.50, 'GTC');

-- what a run leaves, as text: outcomes by seq, trades by the seqs of their
-- orders, balances and blocks by account
CREATE TEMP TABLE placed (seq int, order_id bigint, status text, filled bigint, avg_price numeric);
CREATE TEMP VIEW outcome AS
  SELECT string_agg(seq || ':' || status || '/' || filled || '/' || coalesce(avg_price::text, '-'), ' ' ORDER BY seq) AS o
  FROM placed;
CREATE TEMP VIEW trades_seen AS
  SELECT string_agg(b.seq || '>' || s.seq || ' ' || t.tonnes || '@' || t.price || ' ' || t.serials::text, '; '
                    ORDER BY t.id) AS t
  FROM trade t JOIN placed b ON b.order_id = t.buy_order JOIN placed s ON s.order_id = t.sell_order;
CREATE TEMP VIEW holdings AS
  SELECT (SELECT string_agg(account || ':' || asset_id || '=' || amount, ' ' ORDER BY account, asset_id)
          FROM balance WHERE account IN (SELECT id FROM account WHERE id IN (:farm, :orchard, :steel, :bureau))) AS balances,
         (SELECT string_agg(account || ':' || state || ':' || first || '-' || last, ' ' ORDER BY project, first)
          FROM unit_block WHERE account IN (SELECT id FROM account WHERE id IN (:farm, :orchard, :steel, :bureau))) AS blocks;

-- the history of the serials since `after` (an event id): what moved where
CREATE TEMP TABLE history_since (after bigint);
CREATE TEMP VIEW history_seen AS
  SELECT string_agg(e.event || ' ' || e.first || '-' || e.last || ' ' || coalesce(e.from_account, 0) || '>'
                    || coalesce(e.to_account, 0) || CASE WHEN e.event = 'split' THEN ' ' || e.reference ELSE '' END,
                    '; ' ORDER BY e.id) AS h
  FROM unit_event e WHERE e.id > (SELECT after FROM history_since);
INSERT INTO history_since SELECT coalesce(max(id), 0) FROM unit_event;

-- ---- run A: one statement per order ----
SAVEPOINT one_by_one;
DO $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM script ORDER BY seq LOOP
    INSERT INTO placed SELECT s.seq, o.* FROM carbon.place_order(s.who, s.side, s.tonnes, s.price, s.tif) o;
  END LOOP;
END $$;
SELECT o AS a_outcome FROM outcome \gset
SELECT t AS a_trades FROM trades_seen \gset
SELECT balances AS a_balances, blocks AS a_blocks FROM holdings \gset
SELECT h AS a_history FROM history_seen \gset
SELECT count(DISTINCT entry_id) AS a_entries FROM trade WHERE buy_order IN (SELECT order_id FROM placed) \gset
SELECT ok(:a_entries > 1, 'one by one: an entry per statement that traded (' || :a_entries || ')');
ROLLBACK TO SAVEPOINT one_by_one;

-- ---- run B: the whole script in one statement ----
INSERT INTO placed SELECT s.seq, o.* FROM (SELECT * FROM script ORDER BY seq) s,
  LATERAL carbon.place_order(s.who, s.side, s.tonnes, s.price, s.tif) o;
SELECT is((SELECT o FROM outcome), :'a_outcome', 'one statement: every order ends as it did one by one');
SELECT is((SELECT t FROM trades_seen), :'a_trades', 'the same trades: orders, price, tonnes and serials');
SELECT is((SELECT balances FROM holdings), :'a_balances', 'the same balances, cash and units');
SELECT is((SELECT blocks FROM holdings), :'a_blocks', 'the same serial blocks, held and in escrow');
SELECT is((SELECT h FROM history_seen), :'a_history',
          'the same history: every split and move, in order (units taken on within the statement included)');
SELECT ok(length(:'a_trades') > 200 AND :'a_outcome' LIKE '%cancelled%' AND :'a_outcome' LIKE '%rejected%'
          AND :'a_outcome' LIKE '%partially_filled%',
          'the script trades, rests, cancels and rejects (the comparison means something)');
SELECT is((SELECT count(DISTINCT entry_id) FROM trade WHERE buy_order IN (SELECT order_id FROM placed))::int, 1,
          'the statement posted one entry');
SELECT is((SELECT count(*) FROM market_order WHERE id IN (SELECT order_id FROM placed))::int, 20,
          'every order of the statement is written');
SELECT is((SELECT count(*) FROM verify_integrity() WHERE NOT ok)::int, 0, 'verify_integrity() clean after the batch');
SELECT is((SELECT sum(escrow) FROM market_order WHERE status IN ('open', 'partially_filled') AND side = 'sell'),
          (SELECT sum(last - first + 1) FROM unit_block WHERE state = 'escrow')::numeric,
          'the sells at rest hold in escrow exactly the escrowed blocks');

-- ---- a seller of many small blocks: a statement reads its oldest, then pages of the rest ----
-- frag holds 20 blocks of 1 t from the farm; within one statement it buys
-- 5 t of the orchard's (a later project: newer than all of them) and sells
-- 23 t, so the take passes the blocks read first and must read the rest
-- and put them before what it bought.
SELECT open_account('enterprise', '620702', 'MB-frag', 'fragments') AS frag \gset
SELECT count(transfer_units(:farm, :frag, 1)) FROM generate_series(1, 20);
SELECT deposit_cash(:frag, 5000, 'frag');
CREATE TEMP TABLE script2 (seq int PRIMARY KEY, who bigint, side text, tonnes bigint, price numeric);
INSERT INTO script2 VALUES (1, :orchard, 'sell', 5, 60.00), (2, :frag, 'buy', 5, 60.00),
                           (3, :frag, 'sell', 23, 64.00), (4, :bureau, 'buy', 23, 64.00);
CREATE TEMP TABLE entry_since AS SELECT coalesce(max(id), 0) AS entry_id FROM entry;
CREATE TEMP VIEW frag_seen AS
  SELECT (SELECT string_agg(t.tonnes || '@' || t.price || ' ' || t.serials::text, '; ' ORDER BY t.id)
          FROM trade t WHERE t.entry_id > (SELECT max(entry_id) FROM entry_since)) AS trades,
         (SELECT string_agg(account || ':' || state || ':' || project || ':' || first || '-' || last, ' '
                            ORDER BY project, first)
          FROM unit_block WHERE account IN (:frag, :bureau, :orchard)) AS blocks,
         (SELECT h FROM history_seen) AS history;
UPDATE history_since SET after = (SELECT coalesce(max(id), 0) FROM unit_event);
SAVEPOINT frag_one_by_one;
DO $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM script2 ORDER BY seq LOOP
    PERFORM carbon.place_order(s.who, s.side, s.tonnes, s.price);
  END LOOP;
END $$;
SELECT trades AS f_trades, blocks AS f_blocks, history AS f_history FROM frag_seen \gset
ROLLBACK TO SAVEPOINT frag_one_by_one;
SELECT count(*) FROM (SELECT * FROM script2 ORDER BY seq) s, LATERAL carbon.place_order(s.who, s.side, s.tonnes, s.price) o;
SELECT ok((SELECT count(*) FROM unit_event WHERE id > (SELECT after FROM history_since) AND from_account = :frag
           AND event IN ('escrow', 'trade')) >= 17,
          'many small blocks: the sell took more than its first page and the next');
SELECT is((SELECT trades FROM frag_seen), :'f_trades', '... the same trades and serials as one statement per order');
SELECT is((SELECT blocks FROM frag_seen), :'f_blocks', '... the same blocks');
SELECT is((SELECT history FROM frag_seen), :'f_history', '... the same history');
SELECT is((SELECT count(*) FROM verify_integrity() WHERE NOT ok)::int, 0, '... and verify_integrity() clean');

-- ---- one order of a seller of many small blocks: its blocks are read a page at a time ----
-- pages holds 40 blocks of 1 t; one sell of 37 t against a resting buy
-- reads its oldest block, then pages of 16 (units.c, pools_load), and
-- delivers the 37 oldest in order.
SELECT open_account('enterprise', '620702', 'MB-pages', 'pages') AS pages \gset
SELECT count(transfer_units(:farm, :pages, 1)) FROM generate_series(1, 40);
SELECT array_agg(first ORDER BY first) AS pages_firsts FROM unit_block WHERE account = :pages \gset
SELECT place_order(:bureau, 'buy', 37, 60.00);
SELECT place_order(:pages, 'sell', 37, 60.00);
SELECT is((SELECT array_length(serials, 1) FROM trade WHERE seller = :pages), 37,
          'one order took 37 blocks: the oldest read first, then pages of 16');
SELECT is((SELECT array_agg(first ORDER BY first) FROM unit_block WHERE account = :pages),
          (:'pages_firsts'::bigint[])[38:40],
          '... the oldest 37, in order: the 3 newest are left');
-- the same with a rule on unit_block: every page after the first is read by
-- SQL (the next page's query), and the same 37 oldest leave
SELECT open_account('enterprise', '620702', 'MB-pages-sql', 'pages by SQL') AS pages_sql \gset
SELECT count(transfer_units(:farm, :pages_sql, 1)) FROM generate_series(1, 40);
SELECT array_agg(first ORDER BY first) AS pages_sql_firsts FROM unit_block WHERE account = :pages_sql \gset
CREATE RULE dba_blocks_noted AS ON INSERT TO unit_block DO ALSO NOTHING;
SELECT place_order(:bureau, 'buy', 37, 60.00);
SELECT place_order(:pages_sql, 'sell', 37, 60.00);
DROP RULE dba_blocks_noted ON unit_block;
SELECT is((SELECT array_length(serials, 1) FROM trade WHERE seller = :pages_sql), 37,
          'with a rule on unit_block, one order took 37 blocks, its pages read by SQL');
SELECT is((SELECT array_agg(first ORDER BY first) FROM unit_block WHERE account = :pages_sql),
          (:'pages_sql_firsts'::bigint[])[38:40],
          '... the oldest 37, in order: the 3 newest are left');
SELECT is((SELECT count(*) FROM verify_integrity() WHERE NOT ok)::int, 0, '... and verify_integrity() clean');

-- ---- what callers see ----
CREATE FUNCTION pg_temp.place_and_read(who bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  placed_id bigint;
BEGIN
  SELECT order_id INTO placed_id FROM carbon.place_order(who, 'buy', 3, 55.00);
  RETURN (SELECT status || '/' || escrow FROM carbon.market_order m WHERE m.id = placed_id);
END $$;
SELECT is(pg_temp.place_and_read(:steel), 'open/16524',
          'a function reads the order it placed in its next statement (3 t × 55.00 + the largest fee in escrow)');

DECLARE fetched CURSOR FOR SELECT * FROM carbon.place_order(:bureau, 'buy', 2, 55.50);
MOVE ALL IN fetched;
SELECT is((SELECT count(*) FROM market_order WHERE account = :bureau AND price = 5550)::int, 1,
          'a cursor''s fetch writes the order it placed');
CLOSE fetched;

SELECT sum(amount) AS cash_before FROM balance WHERE account = :steel AND asset_id = (SELECT id FROM asset WHERE code = 'CNY') \gset
SELECT count(*) AS orders_before FROM market_order \gset
SELECT throws_ok(format('SELECT * FROM (VALUES (1, 5), (2, 900000)) v(k, t), '
                        'LATERAL carbon.place_order(%s, %L, v.t, 57.00) ORDER BY k', :steel, 'buy'),
                 'CL001', NULL, 'a call that fails in the middle of the statement: it raises ...');
SELECT ok((SELECT count(*) FROM market_order) = :orders_before
          AND (SELECT sum(amount) FROM balance WHERE account = :steel
               AND asset_id = (SELECT id FROM asset WHERE code = 'CNY')) = :cash_before,
          '... and nothing of the statement is left, not even the orders before it');

SELECT is((SELECT count(DISTINCT order_id) FROM (VALUES ('mb-r1'), ('mb-r1')) v(r),
           LATERAL carbon.place_order(:bureau, 'buy', 1, 56.00, 'GTC', 'CER-I', v.r))::int, 1,
          'a request id twice in one statement: one order, returned twice');

SELECT o.order_id AS cid, c AS cancelled
FROM carbon.place_order(:bureau, 'buy', 2, 55.25) o, LATERAL carbon.cancel_order(o.order_id) c \gset
SELECT is(:'cancelled' || '/' || (SELECT status || '/' || escrow FROM market_order WHERE id = :cid), 't/cancelled/0',
          'cancel_order of an order placed earlier in the same statement cancels it and releases its escrow');

-- ---- a savepoint inside the statement that rolls back what it wrote ----
CREATE FUNCTION pg_temp.write_then_fail(who bigint) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM carbon.tradable_units(who);   -- a function in C: writes the statement's orders first
    RAISE EXCEPTION 'rolled back';
  EXCEPTION WHEN raise_exception THEN
    RETURN 1;
  END;
END $$;
SAVEPOINT around_lost;
SELECT o.order_id AS lost_order, pg_temp.write_then_fail(:farm) AS f FROM carbon.place_order(:bureau, 'buy', 4, 56.50) o \gset
SELECT is((SELECT count(*) FROM market_order WHERE id = :lost_order)::int, 0,
          'an order written inside a savepoint that rolled back is gone although its call returned it ...');
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 1, 56.00)', :bureau, 'buy'), '25P02', NULL,
                 '... so the transaction places no more orders');
ROLLBACK TO SAVEPOINT around_lost;
SELECT lives_ok(format('SELECT * FROM carbon.place_order(%s, %L, 1, 56.00)', :bureau, 'buy'),
                'once the statement''s own savepoint rolls back too, orders are placed again');

-- ---- what a DBA adds to the tables the market writes straight into (src/append.c) ----
-- a CHECK constraint and a domain constraint are checked on the rows written directly
ALTER TABLE carbon.market_order ADD CONSTRAINT dba_no_eight CHECK (tonnes <> 8) NOT VALID;
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 8, 56.00)', :bureau, 'buy'), '23514',
                 'new row for relation "market_order" violates check constraint "dba_no_eight"',
                 'a CHECK constraint a DBA adds to market_order refuses the order row written directly');
ALTER TABLE carbon.market_order DROP CONSTRAINT dba_no_eight;
SELECT lives_ok(format('SELECT * FROM carbon.place_order(%s, %L, 8, 56.00)', :bureau, 'buy'),
                '... and once dropped, refuses no more (what the session kept of the table is thrown away)');
-- a partial unique index a DBA adds is kept up, its predicate checked, on the rows written directly
CREATE UNIQUE INDEX dba_one_nine ON carbon.market_order (account) WHERE tonnes = 9;
SELECT lives_ok(format('SELECT * FROM carbon.place_order(%s, %L, 9, 56.00)', :bureau, 'buy'),
                'a partial unique index a DBA adds takes a first order under its predicate ...');
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 9, 56.00)', :bureau, 'buy'), '23505', NULL,
                 '... and refuses a second, written directly');
DROP INDEX carbon.dba_one_nine;
ALTER DOMAIN carbon.positive_amount ADD CONSTRAINT dba_no_seven CHECK (VALUE <> 7) NOT VALID;
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 7, 56.00)', :bureau, 'buy'), '23514',
                 'value for domain positive_amount violates check constraint "dba_no_seven"',
                 '... and so does a domain''s constraint');
ALTER DOMAIN carbon.positive_amount DROP CONSTRAINT dba_no_seven;
-- a column with a default gets it; an INSERT trigger fires for every row (they go in by SQL)
ALTER TABLE carbon.accounting_voucher ADD COLUMN dba_note text DEFAULT 'dba';
CREATE TEMP TABLE trade_audit (trade bigint, tonnes bigint);
CREATE FUNCTION pg_temp.audit_trade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trade_audit VALUES (NEW.id, NEW.tonnes);
  RETURN NULL;
END $$;
CREATE TRIGGER dba_audit AFTER INSERT ON carbon.trade FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_trade();
SELECT coalesce(max(id), 0) AS trades_before FROM carbon.trade \gset
SELECT coalesce(max(id), 0) AS lines_before FROM carbon.accounting_voucher \gset
SELECT count(*) FROM (VALUES (:farm, 'sell', 3, 57.00), (:orchard, 'sell', 2, 57.00), (:steel, 'buy', 5, 57.00)) v(a, s, t, p),
  LATERAL carbon.place_order(v.a, v.s, v.t, v.p) o;
SELECT results_eq(format('SELECT id, tonnes::bigint FROM carbon.trade WHERE id > %s ORDER BY id', :trades_before),
                  'SELECT trade, tonnes FROM trade_audit ORDER BY trade',
                  'a DBA''s INSERT trigger on trade sees every trade the statement wrote');
SELECT ok((SELECT count(*) >= 2 FROM trade_audit), '... and the statement traded');
SELECT is((SELECT array_agg(DISTINCT coalesce(dba_note, 'none')) FROM carbon.accounting_voucher WHERE id > :lines_before),
          ARRAY['dba'], 'a column a DBA adds to accounting_voucher gets its default on the lines written directly');
SELECT is((SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok)::int, 0, '... and verify_integrity() stays clean');

-- ---- the serial blocks the market writes straight into unit_block (src/append.c, units.c) ----
SELECT open_account('enterprise', '620702', 'MB-grove', 'grove') AS grove \gset
SELECT count(*) FROM (SELECT register_project(:grove, 'MBGROVE', 'MBGROVE', 'MB-FOREST', '620702', 'additional') AS p) p,
  LATERAL (SELECT publicize_project(p.p, current_date - 30), approve_project(p.p)) a,
  LATERAL (SELECT submit_monitoring(p.p, '[2025-01-01,2025-12-31]', carbon.co2e_grams(100 * 1000000)) AS r) r,
  LATERAL (SELECT verify_monitoring(r.r, :ver, carbon.co2e_grams(100 * 1000000), 'ok')) v,
  LATERAL (SELECT count(*) FROM issue_units(r.r)) i;
SELECT id AS grove_block, project AS grove_project FROM carbon.unit_block WHERE account = :grove \gset
-- a block slipped in past the check (its trigger disabled for the insert)
CREATE FUNCTION pg_temp.forge(block bigint, f bigint, l bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  ALTER TABLE carbon.unit_block DISABLE TRIGGER unit_block_no_overlap;
  INSERT INTO carbon.unit_block (issuance, project, vintage, class, first, last, account, state, entry_id, since)
    SELECT b.issuance, b.project, b.vintage, b.class, f, l, b.account, b.state, b.entry_id, b.since
    FROM carbon.unit_block b WHERE b.id = block;
  ALTER TABLE carbon.unit_block ENABLE TRIGGER unit_block_no_overlap;
END $$;
-- serials 97-98 of the grove's 1-100
SELECT pg_temp.forge(:grove_block, 97, 98);
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 5, 57.00)', :grove, 'sell'), '23P01', NULL,
                 'a sell whose escrowed block (96-100) would overlap another block is refused: the check runs on the blocks written directly');
DELETE FROM carbon.unit_block WHERE project = :grove_project AND first = 97;
-- one that begins below the 5 t and reaches into them (90-96): the check of a
-- block carved from the top of another reads from where that one begins
-- (invariants.c, block_carved), so it finds this one too
SELECT pg_temp.forge(:grove_block, 90, 96);
SELECT throws_ok(format('SELECT * FROM carbon.place_order(%s, %L, 5, 57.00)', :grove, 'sell'), '23P01', NULL,
                 '... and one whose block (96-100) overlaps a block that begins below it (90-96)');
DELETE FROM carbon.unit_block WHERE project = :grove_project AND first = 90;
SELECT is((SELECT status FROM carbon.place_order(:grove, 'sell', 5, 57.00)), 'open', 'without it, the sell rests ...');
SELECT results_eq(format('SELECT id = %s, state::text, first, last FROM carbon.unit_block WHERE project = %s ORDER BY first',
                         :grove_block, :grove_project),
                  $$VALUES (true, 'held'::text, 1::bigint, 95::bigint), (false, 'escrow', 96, 100)$$,
                  '... its 5 t in escrow taken from the top of the block, which keeps its row with the rest');
SELECT is((SELECT array_agg(event::text ORDER BY id) FROM carbon.unit_event WHERE project = :grove_project),
          ARRAY['issuance', 'escrow'], '... and its history: no split, as no serial of what is left moved');
-- a DBA's UPDATE trigger on unit_block: the block shrinks by SQL, and the trigger sees it
CREATE TEMP TABLE block_shrunk (id bigint, old_last bigint, new_last bigint);
CREATE FUNCTION pg_temp.audit_shrink() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO block_shrunk VALUES (OLD.id, OLD.last, NEW.last);
  RETURN NULL;
END $$;
CREATE TRIGGER dba_block_shrink AFTER UPDATE ON carbon.unit_block FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_shrink();
SELECT is((SELECT status FROM carbon.place_order(:grove, 'sell', 5, 57.00)), 'open',
          'with a DBA''s UPDATE trigger on unit_block, a sell of part of a block rests ...');
SELECT results_eq('SELECT id, old_last, new_last FROM block_shrunk',
                  format('VALUES (%s::bigint, 95::bigint, 90::bigint)', :grove_block),
                  '... and the trigger sees the block shrink by the 5 t');
DROP TRIGGER dba_block_shrink ON carbon.unit_block;
-- a DBA's DELETE trigger on unit_block: the blocks go by SQL, and the trigger sees them go
CREATE TEMP TABLE block_gone (id bigint);
CREATE FUNCTION pg_temp.audit_block() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO block_gone VALUES (OLD.id);
  RETURN NULL;
END $$;
CREATE TRIGGER dba_block_audit AFTER DELETE ON carbon.unit_block FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_block();
SELECT is((SELECT status FROM carbon.place_order(:grove, 'sell', 90, 57.00)), 'open',
          'with a DBA''s DELETE trigger on unit_block, a sell of all that is left rests ...');
SELECT is((SELECT array_agg(id) FROM block_gone), ARRAY[:grove_block]::bigint[],
          '... and the trigger sees the block it took whole go');
SELECT is((SELECT sum(last - first + 1) FROM carbon.unit_block WHERE project = :grove_project AND state = 'escrow')::int,
          100, '... and the grove''s 100 t are all in escrow');
DROP TRIGGER dba_block_audit ON carbon.unit_block;

-- ---- plans built while the tables were small keep to their indexes (ledger_run_keyed) ----
-- every statement above ran in this one session, its plans built on a nearly empty book:
-- a book that grew since is still read, and its rows and blocks written, through their indexes
SELECT count(*) FROM generate_series(1, 100) g, LATERAL carbon.place_order(:steel, 'buy', 1, 54.00 + (g % 50) / 100.0) o;
SELECT count(*) FROM generate_series(1, 20) g, LATERAL carbon.place_order(:orchard, 'sell', 1, 65.00 + g / 100.0) o;
SELECT coalesce(sum(seq_scan), 0) AS seq_before FROM pg_stat_xact_user_tables
WHERE schemaname = 'carbon' AND relname IN ('market_order', 'unit_block', 'unit_cost', 'instrument') \gset
SELECT is((SELECT sum(filled)::int FROM carbon.place_order(:farm, 'sell', 3, 54.00)), 3,
          'a sell sweeping the grown book fills ...');
SELECT is((SELECT sum(filled)::int FROM carbon.place_order(:bureau, 'buy', 3, 65.50)), 3,
          '... and so does a buy sweeping the sells at rest, their units in escrow ...');
SELECT is((SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables
           WHERE schemaname = 'carbon' AND relname IN ('market_order', 'unit_block', 'unit_cost', 'instrument')),
          :seq_before::numeric,
          '... without scanning the book, the blocks, the books'' costs or the instrument''s row versions whole, in a session whose plans were built on a young market');

SELECT * FROM finish();
ROLLBACK;
