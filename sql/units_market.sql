-- The voluntary reduction market (api.md §6, issue 20): a scripted book with
-- known fills, prices and fees — escrow at entry, price–time priority, the
-- resting order's price, partial fills, delivery versus payment, self-trade
-- prevention, IOC / FOK / market orders, a buy that retires what it buys,
-- cancellation, the daily close.
SET search_path = carbon, public;
\set SHOW_CONTEXT never

SELECT open_account('enterprise', '620702', 'mkt-farm', '甘州林场 farm') AS farm,
       open_account('enterprise', '620702', 'mkt-orchard', '临泽果园 orchard') AS orchard,
       open_account('enterprise', '620100', 'mkt-steel', '兰州钢厂 steel works') AS steel,
       open_account('government', '620700', 'mkt-bureau', '张掖生态环境局 bureau') AS bureau,
       open_account('verifier', '620100', 'mkt-verifier', '核查机构 verifier') AS verifier \gset

-- Class I units for the farm and the orchard (a forestry project each), class II for the steel works.
SELECT define_methodology('MKT-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}'),
       define_methodology('MKT-EFF', 1, 'efficiency', 'II', 'efficiency', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology(m, 1), approve_methodology(m, 1, 'panel'), publish_methodology(m, 1, now() - interval '1 day')
FROM unnest(ARRAY['MKT-FOREST', 'MKT-EFF']) m;
CREATE TEMP TABLE issued AS
SELECT o.owner, (SELECT array_agg(serial) FROM issue_units(r)) AS serials
FROM (VALUES (:farm, 'MKTFARM', 'MKT-FOREST', 500), (:orchard, 'MKTORCH', 'MKT-FOREST', 300),
             (:steel, 'MKTSTEEL', 'MKT-EFF', 200)) AS o(owner, code, m, t),
     LATERAL (SELECT register_project(o.owner, o.code, o.code, o.m, '620702', 'additional') AS p) p,
     LATERAL (SELECT publicize_project(p.p, carbon._local_today() - 30), approve_project(p.p)) a,
     LATERAL (SELECT submit_monitoring(p.p, '[2025-01-01,2025-12-31]', carbon.co2e_grams(o.t * 1000000)) AS r) r,
     LATERAL (SELECT verify_monitoring(r.r, :verifier, carbon.co2e_grams(o.t * 1000000), 'ok')) v;
SELECT a.display_name, serials FROM issued JOIN account a ON a.id = issued.owner ORDER BY a.id;

-- Cash: the steel works and the bureau deposit; a fee of 10 bp on each side.
SELECT deposit_cash(:steel, 100000.00, 'ICBC 2026-0001', 'steel-dep-1') AS dep \gset
SELECT deposit_cash(:steel, 100000.00, 'ICBC 2026-0001', 'steel-dep-1') = :dep AS same_deposit_on_retry;
SELECT deposit_cash(:bureau, 20000, 'treasury 2026-17') > 0 AS deposited;
SELECT deposit_cash(:steel, 10.001, 'x');                                              -- 22023: a tenth of a fen
SELECT withdraw_cash(:bureau, 5000.50, 'to treasury') > 0 AS withdrew;
SELECT withdraw_cash(:bureau, 20000, 'too much');                                      -- CL001, the amounts in yuan
SELECT balance(:steel, 'CNY') AS steel_fen, balance(:bureau, 'CNY') AS bureau_fen;
SELECT set_setting('trade_fee_bps', '10');
SELECT set_reference_price('CER-I', 60.00);

-- Refusals raise and leave nothing behind.
SELECT * FROM place_order(:farm, 'sell', 10, 67.00);                                   -- CL005: band 54 to 66
SELECT * FROM place_order(:farm, 'sell', 10, 60.005);                                  -- CL005: tick
SELECT * FROM place_order(:farm, 'hold', 10, 60);                                      -- 22023: side
SELECT * FROM place_order(:farm, 'sell', 0, 60);                                       -- 22023: tonnes
SELECT * FROM place_order(:farm, 'sell', 10, 60, 'GTD');                               -- 22023: tif
SELECT * FROM place_order(:steel, 'sell', 10, 60);                                     -- CL001: class II only
SELECT * FROM place_order(:bureau, 'buy', 1000, 60);                                   -- CL001: cash
SELECT count(*) AS orders FROM market_order;

-- The book: the farm offers 100 t at 61 and 100 t at 62, the orchard 50 t at 61
-- (after the farm's 61: time priority), the bureau bids 40 t at 58.
SELECT order_id AS farm61, status FROM place_order(:farm, 'sell', 100, 61.00, 'GTC', 'CER-I', 'farm-1') \gset
SELECT order_id AS farm62, status FROM place_order(:farm, 'sell', 100, 62.00) \gset
SELECT order_id AS orch61, status FROM place_order(:orchard, 'sell', 50, 61.00) \gset
SELECT order_id AS bid58, status FROM place_order(:bureau, 'buy', 40, 58.00, 'DAY') \gset
SELECT * FROM v_order_book ORDER BY side, price;
SELECT balance(:farm, 'CER') AS farm_free, tradable_units(:farm) AS farm_tradable,
       balance(:bureau, 'CNY') AS bureau_free_fen;

-- The steel works buys 130 t at up to 62: 100 t from the farm at 61, then
-- 30 t from the orchard at 61 (price, then time); it pays the resting price.
SELECT status, filled, avg_price FROM place_order(:steel, 'buy', 130, 62.00, 'GTC', 'CER-I', 'steel-1');
SELECT status, filled, avg_price FROM place_order(:steel, 'buy', 130, 62.00, 'GTC', 'CER-I', 'steel-1');  -- replay
SELECT buy_order IS NOT NULL AS ok, seller = :farm AS from_farm, price, tonnes, buyer_fee, seller_fee, serials
FROM trade ORDER BY id;
SELECT id = :farm61 AS farm61, status, filled, escrow FROM market_order WHERE id IN (:farm61, :orch61) ORDER BY id;
-- Delivery versus payment: 6,100 + 1,830 yuan less 0.1 % fees each side.
SELECT balance(:steel, 'CER') AS steel_cer, balance(:steel, 'CNY') AS steel_fen,
       balance(:farm, 'CNY') AS farm_fen, balance(:orchard, 'CNY') AS orchard_fen;

-- Below the band: refused, whatever the book.
SELECT * FROM place_order(:orchard, 'sell', 50, 53.00);                               -- CL005
-- IOC: the orchard sells 60 t at 58 or better, now: 40 t to the bureau, the rest cancelled.
SELECT status, filled, avg_price FROM place_order(:orchard, 'sell', 60, 58.00, 'IOC');
SELECT status, filled FROM market_order WHERE id = :bid58;
-- FOK: 1,000 t cannot fill at once: rejected, nothing moves.
SELECT status, filled FROM place_order(:steel, 'buy', 1000, 62.00, 'FOK');
-- A market buy takes the book up to the band (66): the orchard's 20 t at 61, the farm's 100 t at 62.
SELECT status, filled, avg_price FROM place_order(:steel, 'buy', 150, NULL);
-- A market sell with nobody bidding: rejected.
SELECT status, filled FROM place_order(:farm, 'sell', 5, NULL);

-- Self-trade prevention: the farm's own resting bid goes when the farm sells into it.
SELECT deposit_cash(:farm, 1000, 'farm cash') > 0 AS deposited;
SELECT order_id AS farmbid FROM place_order(:farm, 'buy', 10, 59.00) \gset
SELECT order_id AS bureaubid FROM place_order(:bureau, 'buy', 5, 58.50) \gset
SELECT status, filled, avg_price FROM place_order(:farm, 'sell', 5, 58.00);
SELECT id = :farmbid AS farm_bid, status, end_reason FROM market_order WHERE id IN (:farmbid, :bureaubid) ORDER BY id;

-- A carbon-neutral event buys and retires in one step.
SELECT order_id AS ask FROM place_order(:orchard, 'sell', 20, 60.00) \gset
SELECT status, filled FROM place_order(:bureau, 'buy', 12, 60.00, 'IOC', 'CER-I', NULL,
                                       '2026 张掖马拉松 Zhangye marathon', 'event_neutrality');
SELECT account = :bureau AS bureau, tonnes, purpose, beneficiary, verify_certificate(certificate) AS verifies
FROM v_retirements ORDER BY 1, 2;
SELECT balance(:bureau, 'CER') AS bureau_held_cer;

-- Cancel: true once, false the second time; the escrow comes back.
SELECT cancel_order(:ask) AS cancelled, cancel_order(:ask) AS again;
SELECT cancel_order(:farm62) AS farm62_cancelled;                                     -- false: the market buy filled it
SELECT balance(:orchard, 'CER') = tradable_units(:orchard) AS orchard_units_back;

-- The day closes: DAY orders end, the reference becomes the last trade.
SELECT order_id AS dayorder FROM place_order(:bureau, 'buy', 1, 55.00, 'DAY') \gset
SELECT close_market_day(carbon._local_today()) AS ended;
SELECT close_market_day(carbon._local_today()) AS ended_again;
SELECT status, end_reason FROM market_order WHERE id = :dayorder;
SELECT round(reference_price / 100.0, 2) AS reference FROM instrument;
SELECT open, high, low, close, volume, turnover, vwap FROM v_market_daily;
SELECT * FROM v_order_book ORDER BY side, price;

-- A recall reaches units on offer: the sell order holding them ends, and the
-- units, back with the seller, are cancelled with the rest of the issuance.
SELECT order_id AS farmask FROM place_order(:farm, 'sell', 30, 61.00) \gset
SELECT cancelled, flagged FROM recall_issuance('620702-2025-MKTFARM-000000001-000000001', 'plots double-counted');
SELECT status, end_reason, escrow FROM market_order WHERE id = :farmask;
SELECT balance(:farm, 'CER') AS farm_cer, tradable_units(:farm) AS farm_tradable;

-- Several orders in one statement, alone in its transaction: the first takes
-- the book's short lock, the second holds the book to the end of the
-- transaction (docs/market.md).  The trades come back numbered in the order
-- they were matched, the first order's as the others'.
SELECT count(*) FROM generate_series(1, 3) g, LATERAL place_order(:orchard, 'sell', 2, 60.50 + g / 10.0) o;
SELECT max(id) AS before_buys FROM market_order \gset
SELECT string_agg(o.status || ':' || o.filled, ' ' ORDER BY o.order_id) AS buys
FROM generate_series(1, 3) g, LATERAL place_order(:steel, 'buy', 2 + g / 3, 60.80, 'IOC') o;
SELECT dense_rank() OVER (ORDER BY t.buy_order) AS buy, round(t.price / 100.0, 2) AS price, t.tonnes
FROM trade t WHERE t.buy_order > :before_buys ORDER BY t.id;

-- Alone in its transaction, an order's walk for orders in flight is also its
-- first read of the book (docs/market.md): a resting order past its expiry
-- (a GTC order past gtc_max_days, aged here by hand) is passed over and
-- ended, its escrow released, and the buy fills from the next one.
SELECT order_id AS stale FROM place_order(:orchard, 'sell', 3, 60.00) \gset
SELECT order_id AS fresh FROM place_order(:orchard, 'sell', 3, 60.10) \gset
UPDATE market_order SET expires_at = now() - interval '1 day' WHERE id = :stale;
SELECT status, filled, avg_price FROM place_order(:steel, 'buy', 3, 60.50);
SELECT id = :stale AS stale, status, end_reason, escrow FROM market_order WHERE id IN (:stale, :fresh) ORDER BY id;

-- Which units a seller delivers: oldest vintage first, then first in, first
-- out (when it got them), then serial.  The mill buys 5 t from the orchard
-- and then 5 t more, lower serials of the same block.  An offer it cancels
-- returns its units to their place; its sale of 4 t delivers the first
-- 5 t bought (what is left of them, then the returned ones), not the lower
-- serials it bought last.
SELECT open_account('enterprise', '620702', 'mkt-mill', '高台面粉厂 mill') AS mill \gset
SELECT deposit_cash(:mill, 1000, 'mill') > 0 AS deposited;
SELECT status FROM place_order(:orchard, 'sell', 5, 59.00);
SELECT status FROM place_order(:mill, 'buy', 5, 59.00);
SELECT status FROM place_order(:orchard, 'sell', 5, 59.00);
SELECT status FROM place_order(:mill, 'buy', 5, 59.00);
SELECT serials AS bought FROM trade WHERE buyer = :mill ORDER BY id;
SELECT order_id AS millask FROM place_order(:mill, 'sell', 3, 65.00) \gset
SELECT cancel_order(:millask) AS cancelled;
SELECT status FROM place_order(:bureau, 'buy', 4, 59.00);
SELECT status, filled FROM place_order(:mill, 'sell', 4, 59.00);
SELECT serials AS sold FROM trade WHERE seller = :mill;
SELECT carbon.serial_text('620702', b.vintage, 'MKTORCH', b.first, b.last) AS mill_holds
FROM unit_block b WHERE b.account = :mill AND b.state = 'held' ORDER BY b.first;

-- Every order ended once; escrow is empty for ended orders; the ledger checks out.
SELECT status, count(*), sum(escrow) AS escrow FROM market_order GROUP BY status ORDER BY status;
SELECT s.code AS asset, sum(b.amount) AS in_escrow FROM balance b JOIN account a ON a.id = b.account
JOIN asset s ON s.id = b.asset_id WHERE a.kind = 'escrow' GROUP BY s.code ORDER BY s.code;
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok;
DELETE FROM setting WHERE name = 'trade_fee_bps';   -- back to the default

-- The book's lock keeps to its key in a session whose plan was built on a
-- young table (one page in its statistics, as autovacuum leaves it): every
-- order leaves a dead version of the instrument's row behind, so a plan
-- that scanned the table would read more pages with every order.
ANALYZE carbon.instrument;
DISCARD PLANS;
BEGIN;
SELECT status FROM place_order(:bureau, 'buy', 1, 55.00);   -- the lock's plan is built here
ROLLBACK;
BEGIN;
SELECT seq_scan AS scans_before FROM pg_stat_xact_user_tables WHERE relid = 'carbon.instrument'::regclass \gset
SELECT status FROM place_order(:bureau, 'buy', 1, 55.00);
SELECT seq_scan - :scans_before AS instrument_scanned FROM pg_stat_xact_user_tables
WHERE relid = 'carbon.instrument'::regclass;
ROLLBACK;
