-- ---------------------------------------------------------------------------
-- The voluntary reduction market (api.md §6; domain.md flow 4): cash
-- deposits and withdrawals, a price–time priority order book per
-- instrument, matching in C (market.c) with delivery versus payment, escrow
-- of cash and units while orders rest, the daily close.  Prices are fen per
-- tonne in the tables, numeric yuan in arguments and views.
-- ---------------------------------------------------------------------------

CREATE TABLE carbon.instrument (
  code             carbon.instrument_code PRIMARY KEY,
  asset_id         smallint NOT NULL REFERENCES carbon.asset (id),
  class            carbon.tradable_class NOT NULL,
  reference_price  carbon.positive_amount,
  band_bps         carbon.basis_points NOT NULL DEFAULT 1000,
  reference_set_at timestamptz,
  book_version     bigint NOT NULL DEFAULT 0   -- bumped by every change of the book (its lock)
) WITH (fillfactor = 50);
COMMENT ON TABLE carbon.instrument IS
  '交易品种 instruments: CER-I is class I certified units; reference price (fen per tonne) and the ±band around it (a row is created on first use, so that a dump carries it whole)';

CREATE SEQUENCE carbon.market_order_id_seq;
CREATE TABLE carbon.market_order (
  id              bigint PRIMARY KEY DEFAULT nextval('carbon.market_order_id_seq'),
  instrument      text NOT NULL,
  account         bigint NOT NULL,
  side            carbon.order_side NOT NULL,
  price           carbon.positive_amount,              -- fen per tonne; NULL: a market order
  tonnes          carbon.positive_amount NOT NULL,
  filled          carbon.nonnegative_amount NOT NULL DEFAULT 0 CHECK (filled <= tonnes),
  turnover        carbon.nonnegative_amount NOT NULL DEFAULT 0,   -- fen traded
  fees            carbon.nonnegative_amount NOT NULL DEFAULT 0,
  tif             carbon.time_in_force NOT NULL,
  status          carbon.order_status NOT NULL,
  escrow          carbon.nonnegative_amount NOT NULL DEFAULT 0,       -- fen (buy) or tonnes (sell) still held
  retire_for      text,
  retire_purpose  text,
  trade_day       date NOT NULL,
  expires_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz,
  end_reason      text,
  CHECK ((status IN ('open', 'partially_filled')) = (ended_at IS NULL)),
  CHECK (status IN ('open', 'partially_filled') OR escrow = 0)
) WITH (fillfactor = 70);
ALTER SEQUENCE carbon.market_order_id_seq OWNED BY carbon.market_order.id;
-- the book: resting orders of each side in price–time priority (ended_at IS NULL
-- is status open or partially_filled, by the CHECK above; a predicate on status
-- would make every fill that changes it a non-heap-only update, with an entry
-- in each index)
CREATE INDEX market_order_bids_idx ON carbon.market_order (instrument, price DESC, id)
  WHERE side = 'buy' AND ended_at IS NULL;
CREATE INDEX market_order_asks_idx ON carbon.market_order (instrument, price, id)
  WHERE side = 'sell' AND ended_at IS NULL;
CREATE INDEX market_order_account_idx ON carbon.market_order (account);
COMMENT ON TABLE carbon.market_order IS
  '委托 orders: status open → partially_filled → filled, or cancelled (by its owner, at expiry, by self-trade prevention, unfilled IOC/market), or rejected (FOK, market with nothing to match); escrow is what is still held for it';

CREATE SEQUENCE carbon.trade_id_seq;
CREATE TABLE carbon.trade (
  id          bigint NOT NULL DEFAULT nextval('carbon.trade_id_seq'),
  instrument  text NOT NULL,
  buy_order   bigint NOT NULL,
  sell_order  bigint NOT NULL,
  buyer       bigint NOT NULL,
  seller      bigint NOT NULL,
  price       carbon.positive_amount NOT NULL,
  tonnes      carbon.positive_amount NOT NULL,
  buyer_fee   carbon.nonnegative_amount NOT NULL,
  seller_fee  carbon.nonnegative_amount NOT NULL,
  aggressor   carbon.order_side NOT NULL,
  trade_day   date NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  entry_id    bigint NOT NULL,
  serials     text[] NOT NULL,
  -- one index, the market's days (v_market_daily), for both: a second
  -- index on id alone cost every trade an entry more; id comes from the
  -- sequence and only the extension writes trades, never changing one, so
  -- it is unique all the same
  PRIMARY KEY (instrument, trade_day, id)
);
ALTER SEQUENCE carbon.trade_id_seq OWNED BY carbon.trade.id;
CREATE INDEX trade_buy_order_idx ON carbon.trade (buy_order);
CREATE INDEX trade_sell_order_idx ON carbon.trade (sell_order);
COMMENT ON TABLE carbon.trade IS
  '成交 trades: price (fen per tonne) of the resting order, tonnes, fees; units and cash settled in the same entry (delivery versus payment)';

-- The market's days: one row per closed day (close_market_day is idempotent).
CREATE TABLE carbon.market_day (
  instrument   text NOT NULL,
  day          date NOT NULL,
  closed_at    timestamptz NOT NULL DEFAULT now(),
  reference    bigint,
  expired      bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (instrument, day)
);
COMMENT ON TABLE carbon.market_day IS '闭市 closed market days: the reference price set and the orders expired';

-- ---- functions (C: market.c) ----

CREATE FUNCTION carbon.deposit_cash(account bigint, amount numeric, reference text, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_deposit_cash'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.deposit_cash(bigint, numeric, text, text) IS
  '入金 cash in (yuan, 2 decimals) from the cash gateway; returns the entry id';

CREATE FUNCTION carbon.withdraw_cash(account bigint, amount numeric, reference text, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_withdraw_cash'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.withdraw_cash(bigint, numeric, text, text) IS
  '出金 cash out (yuan) to the cash gateway; what is held in escrow cannot be withdrawn';

CREATE FUNCTION carbon.place_order(account bigint, side text, tonnes bigint, price numeric DEFAULT NULL,
                                   tif text DEFAULT 'GTC', instrument text DEFAULT 'CER-I',
                                   request_id text DEFAULT NULL, retire_for text DEFAULT NULL,
                                   retire_purpose text DEFAULT 'voluntary')
  RETURNS TABLE (order_id bigint, status text, filled bigint, avg_price numeric)
  AS 'MODULE_PATHNAME', 'ledger_place_order'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.place_order(bigint, text, bigint, numeric, text, text, text, text, text) IS
  '委托 place a limit (price) or market (NULL) order: escrow, price–time matching, delivery versus payment';

CREATE FUNCTION carbon.cancel_order(order_id bigint) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_cancel_order'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.cancel_order(bigint) IS
  '撤单 cancel a resting order and release its escrow; false when it had already ended';

CREATE FUNCTION carbon.set_reference_price(instrument text, price numeric) RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_set_reference_price'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_reference_price(text, numeric) IS
  '基准价 set an instrument''s reference price (yuan per tonne): orders must lie within ±10 % of it';

CREATE FUNCTION carbon.close_market_day(day date) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_close_market_day'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.close_market_day(date) IS
  '闭市 close a trading day: DAY orders of that day and GTC orders past gtc_max_days end, escrow released; the reference price becomes the last trade (else unchanged); idempotent; returns the orders ended';

-- ---- views ----

-- owner's rights: the depth and daily figures name nobody, every reader sees the whole market
CREATE VIEW carbon.v_order_book AS
  SELECT o.instrument, o.side::text AS side, round(o.price / 100.0, 2) AS price,
         sum(o.tonnes - o.filled)::bigint AS tonnes, count(*) AS orders
  FROM carbon.market_order o
  WHERE o.ended_at IS NULL
  GROUP BY o.instrument, o.side, o.price;
COMMENT ON VIEW carbon.v_order_book IS '盘口 the book: tonnes and orders resting at each price (yuan per tonne) per side';

CREATE VIEW carbon.v_market_daily AS
  SELECT t.trade_day AS day, t.instrument,
         round((array_agg(t.price ORDER BY t.id))[1] / 100.0, 2) AS open,
         round(max(t.price) / 100.0, 2) AS high,
         round(min(t.price) / 100.0, 2) AS low,
         round((array_agg(t.price ORDER BY t.id DESC))[1] / 100.0, 2) AS close,
         sum(t.tonnes)::bigint AS volume,
         round(sum(t.price::numeric * t.tonnes) / 100, 2) AS turnover,
         round(sum(t.price::numeric * t.tonnes) / sum(t.tonnes) / 100, 2) AS vwap
  FROM carbon.trade t
  GROUP BY t.trade_day, t.instrument;
COMMENT ON VIEW carbon.v_market_daily IS
  '日行情 per trading day (local) and instrument: open, high, low, close (yuan per tonne), volume (t), turnover (yuan), VWAP';

SELECT pg_catalog.pg_extension_config_dump('carbon.instrument', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_order', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_order_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.trade', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.trade_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.market_day', '');
