-- ---------------------------------------------------------------------------
-- The points mall (权益联盟, api.md §4 merchants): offers, redemptions,
-- refunds, merchant settlement.  Tables and views here; the functions that
-- move points are C (mall.c).
-- ---------------------------------------------------------------------------

CREATE SEQUENCE carbon.offer_id_seq;
CREATE TABLE carbon.offer (
  id                 bigint PRIMARY KEY DEFAULT nextval('carbon.offer_id_seq'),
  merchant           bigint NOT NULL REFERENCES carbon.account (id),
  title              text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  points_cost        bigint NOT NULL CHECK (points_cost > 0),
  stock              int NOT NULL CHECK (stock >= 0),
  valid              tstzrange NOT NULL CHECK (NOT isempty(valid)),
  per_account_limit  int CHECK (per_account_limit > 0),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'closed')),
  created_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 10);   -- few rows, each updated at every redemption: room for HOT updates, index scans
ALTER SEQUENCE carbon.offer_id_seq OWNED BY carbon.offer.id;
CREATE INDEX offer_merchant_idx ON carbon.offer (merchant);
COMMENT ON TABLE carbon.offer IS
  '商城权益 offers of the points mall: a merchant''s item, its price in points, stock, validity and per-account limit';

-- A redemption is named by its entry; it keeps the lot pieces it took
-- (expiry and amount, earliest first) so that a refund gives back the same.
-- Written by redeem() only, which has checked the offer and both accounts:
-- no foreign keys, whose checks would cost three queries per redemption.
CREATE TABLE carbon.redemption (
  entry_id      bigint PRIMARY KEY,
  offer         bigint NOT NULL,
  account       bigint NOT NULL,
  merchant      bigint NOT NULL,
  quantity      int NOT NULL CHECK (quantity > 0),
  unit_points   bigint NOT NULL CHECK (unit_points > 0),
  refunded      int NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= quantity),
  settled_by    bigint,
  at            timestamptz NOT NULL DEFAULT now(),
  lot_expiries  timestamptz[] NOT NULL,
  lot_amounts   bigint[] NOT NULL
                CHECK (cardinality(lot_amounts) = cardinality(lot_expiries))
);
CREATE INDEX redemption_offer_account_idx ON carbon.redemption (offer, account);
CREATE INDEX redemption_account_idx ON carbon.redemption (account);
CREATE INDEX redemption_unsettled_idx ON carbon.redemption (merchant, at) WHERE settled_by IS NULL;
COMMENT ON TABLE carbon.redemption IS
  '积分兑换 redemptions: who took which offer, how many, at what price in points, what was refunded and settled';

CREATE SEQUENCE carbon.refund_id_seq;
CREATE TABLE carbon.refund (
  id              bigint PRIMARY KEY DEFAULT nextval('carbon.refund_id_seq'),
  redemption      bigint NOT NULL REFERENCES carbon.redemption (entry_id),
  quantity        int NOT NULL CHECK (quantity > 0),
  points          bigint NOT NULL CHECK (points >= 0),
  expired_points  bigint NOT NULL CHECK (expired_points >= 0),
  entry_id        bigint,
  at              timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.refund_id_seq OWNED BY carbon.refund.id;
CREATE INDEX refund_redemption_idx ON carbon.refund (redemption);
COMMENT ON TABLE carbon.refund IS
  '退还 refunds of redemptions: points given back with their original expiry, and what had expired meanwhile';

CREATE SEQUENCE carbon.settlement_id_seq;
CREATE TABLE carbon.settlement (
  id        bigint PRIMARY KEY DEFAULT nextval('carbon.settlement_id_seq'),
  merchant  bigint NOT NULL REFERENCES carbon.account (id),
  up_to     timestamptz NOT NULL,
  points    bigint NOT NULL CHECK (points >= 0),
  entry_id  bigint,
  at        timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.settlement_id_seq OWNED BY carbon.settlement.id;
ALTER TABLE carbon.redemption ADD FOREIGN KEY (settled_by) REFERENCES carbon.settlement (id);
CREATE INDEX settlement_merchant_idx ON carbon.settlement (merchant, at);
COMMENT ON TABLE carbon.settlement IS
  '商户结算 merchant settlements: points collected by redemptions moved into the redeemed sink';

SELECT pg_catalog.pg_extension_config_dump('carbon.offer', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.offer_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.redemption', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.refund', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.refund_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.settlement', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.settlement_id_seq', '');

CREATE FUNCTION carbon.create_offer(merchant bigint, title text, points_cost bigint, stock int,
                                    valid tstzrange, per_account_limit int DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_create_offer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.create_offer(bigint, text, bigint, int, tstzrange, int) IS
  '上架权益 a merchant''s offer: price in points, stock, validity, optional per-account limit; returns its id';

CREATE FUNCTION carbon.set_offer_status(offer bigint, status text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_set_offer_status'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_offer_status(bigint, text) IS
  '权益状态 pause (paused), resume (active) or close (closed, final) an offer';

CREATE FUNCTION carbon.restock_offer(offer bigint, quantity int)
  RETURNS int AS 'MODULE_PATHNAME', 'ledger_restock_offer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.restock_offer(bigint, int) IS
  '补货 add stock to an offer; returns the new stock';

CREATE FUNCTION carbon.redeem(account bigint, offer bigint, quantity int DEFAULT 1, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_redeem'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.redeem(bigint, bigint, int, text) IS
  '积分兑换 redeem an offer with points (earliest-expiring lots first); returns the entry id, which names the redemption';

CREATE FUNCTION carbon.refund_redemption(redemption bigint, quantity int DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_refund_redemption'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.refund_redemption(bigint, int, text) IS
  '退还 refund a redemption in full (NULL quantity) or in part: the same lots with their expiry, stock back; '
  'returns the entry id, NULL when all that would return had expired';

CREATE FUNCTION carbon.settle_merchant(merchant bigint, up_to timestamptz DEFAULT now())
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_settle_merchant'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.settle_merchant(bigint, timestamptz) IS
  '商户结算 move what a merchant collected by redemptions up to a time into the redeemed sink; '
  'returns the entry id, NULL when nothing to settle';

-- The catalogue the citizen app shows: offers open now (owner's rights:
-- every reader sees the whole catalogue, not the offer table's rows).
CREATE VIEW carbon.v_offers AS
  SELECT o.id AS offer, o.merchant, a.display_name AS merchant_name, o.title, o.points_cost, o.stock,
         lower(o.valid) AS valid_from, upper(o.valid) AS valid_until, o.per_account_limit
  FROM carbon.offer o
  JOIN carbon.account a ON a.id = o.merchant
  WHERE o.status = 'active' AND o.valid @> now() AND o.stock > 0;
COMMENT ON VIEW carbon.v_offers IS
  '权益目录 the mall''s catalogue: offers open now, with stock left';

CREATE VIEW carbon.v_redemptions WITH (security_invoker = true) AS
  SELECT date_trunc('month', r.at AT TIME ZONE tz.value)::date AS month, r.merchant, r.offer,
         count(*) AS redemptions,
         sum((r.quantity - r.refunded)::bigint * r.unit_points)::bigint AS points
  FROM carbon.redemption r
  CROSS JOIN (SELECT value FROM carbon.settings WHERE name = 'timezone') tz
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_redemptions IS
  '兑换统计 redemptions per month (local), merchant and offer; points net of refunds';

CREATE VIEW carbon.v_merchant_statement WITH (security_invoker = true) AS
  WITH tz AS (SELECT value FROM carbon.settings WHERE name = 'timezone'),
  m AS (SELECT date_trunc('month', r.at AT TIME ZONE tz.value)::date AS month, r.merchant,
               r.quantity::bigint * r.unit_points AS redeemed, 0::bigint AS refunded, 0::bigint AS settled
        FROM carbon.redemption r CROSS JOIN tz
        UNION ALL
        SELECT date_trunc('month', f.at AT TIME ZONE tz.value)::date, r.merchant, 0, f.points + f.expired_points, 0
        FROM carbon.refund f JOIN carbon.redemption r ON r.entry_id = f.redemption CROSS JOIN tz
        UNION ALL
        SELECT date_trunc('month', s.at AT TIME ZONE tz.value)::date, s.merchant, 0, 0, s.points
        FROM carbon.settlement s CROSS JOIN tz)
  SELECT month, merchant, sum(redeemed)::bigint AS points_redeemed, sum(refunded)::bigint AS points_refunded,
         sum(settled)::bigint AS points_settled
  FROM m
  GROUP BY 1, 2;
COMMENT ON VIEW carbon.v_merchant_statement IS
  '商户结算单 per merchant and month (local): points redeemed, refunded (expired pieces included) and settled';
