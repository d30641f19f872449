-- The points mall (权益联盟; api.md §4 merchants, issue 18): a citizen's day
-- at the mall — offers, redemptions earliest-expiring lots first, a refund
-- that gives back the same lots (an expired one goes to the expired sink),
-- the merchant's settlement, and the reports.
SET search_path = carbon, public;
\set SHOW_CONTEXT never

SELECT open_account('personal', '620702', 'mall-li', '李梅') AS li,
       open_account('personal', '620702', 'mall-wang', '王强') AS wang,
       open_account('merchant', '620702', 'mall-tea', '丹霞茶社 Danxia tea house') AS tea \gset

-- Li's points come in two lots: 300 that expire in a few seconds, 1,000
-- that last; Wang has 500.  (Expiry is at a local midnight, so the short
-- lot is made by moving its expiry: a test shortcut, as superuser.)
SELECT issue(:li, 'POINT', 300, 'short-lived') > 0 AS issued;
UPDATE lot SET expires_at = now() + interval '4 seconds' WHERE account = :li;
SELECT issue(:li, 'POINT', 1000) > 0 AS issued, issue(:wang, 'POINT', 500) > 0 AS issued;

-- The tea house lists a cup of tea: 200 points, 3 in stock, two per citizen.
SELECT create_offer(:tea, '一杯红茶 a cup of black tea', 200, 3,
                    tstzrange(now() - interval '1 hour', now() + interval '30 days'), 2) AS cup \gset
SELECT merchant_name, title, points_cost, stock, per_account_limit FROM v_offers WHERE offer = :cup;

-- Li takes two: 400 points, the 300 short-lived ones first.
SELECT redeem(:li, :cup, 2, 'li-cup-1') AS li_redemption \gset
SELECT redeem(:li, :cup, 2, 'li-cup-1') = :li_redemption AS same_redemption_on_retry;
SELECT balance(:li) AS li, balance(:tea) AS tea, (SELECT stock FROM offer WHERE id = :cup) AS stock;
SELECT quantity, unit_points, lot_amounts,
       lot_expiries[1] < now() + interval '1 minute' AS first_piece_short_lived
FROM redemption WHERE entry_id = :li_redemption;
SELECT account = :tea AS at_tea, remaining, expires_at < now() + interval '1 minute' AS short_lived
FROM lot WHERE account IN (:tea) ORDER BY expires_at;

-- A third cup is past Li's limit; Wang takes the last one.
SELECT redeem(:li, :cup);                                          -- CL001: limit
SELECT redeem(:wang, :cup) AS wang_redemption \gset
SELECT redeem(:wang, :cup);                                        -- CL001: out of stock
SELECT count(*) AS offers_open FROM v_offers WHERE offer = :cup;   -- sold out: off the catalogue

-- The tea house pauses the offer, restocks it and resumes it.
SELECT set_offer_status(:cup, 'paused');
SELECT redeem(:wang, :cup);                                        -- CL007: paused
SELECT restock_offer(:cup, 5) AS stock;
SELECT set_offer_status(:cup, 'active');

-- The short-lived lot expires.  Li returns one cup: 200 points come back,
-- the latest-expiring pieces first — 100 that last go back to Li with
-- their expiry, 100 that expired meanwhile go to the expired sink.
SELECT pg_sleep(4.5);
SELECT refund_redemption(:li_redemption, 1, 'li-refund-1') > 0 AS refunded;
SELECT refund_redemption(:li_redemption, 1, 'li-refund-1') > 0 AS same_refund_on_retry;
SELECT quantity, points, expired_points FROM refund WHERE redemption = :li_redemption;
SELECT refund_redemption(:li_redemption, 2);                       -- CL001: one left
SELECT balance(:li) AS li, balance(:tea) AS tea, (SELECT stock FROM offer WHERE id = :cup) AS stock,
       (SELECT refunded FROM redemption WHERE entry_id = :li_redemption) AS refunded;

-- The tea house settles: what it still holds of its redemptions (Wang's
-- 200; the rest of Li's had expired) goes to the redeemed sink.
SELECT settle_merchant(:tea) > 0 AS settled;
SELECT settle_merchant(:tea) IS NULL AS nothing_left_to_settle;
SELECT balance(:tea) AS tea;
SELECT refund_redemption(:wang_redemption);                        -- CL007: settled

-- Supply stays exact: per tier, what was issued is held, redeemed, expired
-- or moved to another tier.
SELECT asset, tier, issued, outstanding, redeemed, expired, moved_out,
       outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out AS identity
FROM v_supply_detail WHERE asset = 'POINT' AND region = '620702' ORDER BY tier;

-- Reports: redemptions per month and offer, the merchant's statement.
SELECT merchant = :tea AS tea, offer = :cup AS cup, redemptions, points FROM v_redemptions
WHERE merchant = :tea;
SELECT merchant = :tea AS tea, points_redeemed, points_refunded, points_settled FROM v_merchant_statement
WHERE merchant = :tea;
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok;

-- A closed offer stays closed.
SELECT set_offer_status(:cup, 'closed');
SELECT set_offer_status(:cup, 'active');                           -- CL007

-- Exchange (Zhangye §11): points into 彩虹元 (counted in fen) at 3 points
-- a fen.  10 points give 3 fen and a third of a fen is carried; three
-- exchanges of 10 give exactly 10 fen, nothing lost to rounding.
SELECT define_asset('RAINBOW', 'currency', '彩虹元 Zhangye tourism currency');   -- as in ledger.sql: a no-op
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 3, now());
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 2, now() + interval '1 day');   -- a later rate: not used today
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 2, now() - interval '1 day');   -- dated back: no exchange since (today's rate still rules)
SELECT i, exchange(:li, 'POINT', 10, 'RAINBOW', 'li-rainbow-' || i) > 0 AS exchanged FROM generate_series(1, 3) i;
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 2, now() - interval '1 hour');  -- 22023: exchanges were made since
SELECT amount, received, numerator || '/' || denominator AS rate FROM exchange WHERE account = :li ORDER BY entry_id;
SELECT carry_num, carry_den FROM exchange_carry WHERE account = :li;
SELECT balance(:li, 'POINT') AS li_points, balance(:li, 'RAINBOW') AS li_rainbow_fen;
SELECT exchange(:li, 'RAINBOW', 5, 'POINT');                        -- CL007: no rate that way
SELECT set_exchange_rate('RAINBOW', 'POINT', 3, 1, now());
SELECT exchange(:li, 'RAINBOW', 5, 'POINT') > 0 AS exchanged_back;
SELECT balance(:li, 'POINT') AS li_points, balance(:li, 'RAINBOW') AS li_rainbow_fen;
-- a daily limit per account and source asset
SELECT set_setting('exchange_daily_limit', '40');
SELECT exchange(:li, 'POINT', 20, 'RAINBOW');                       -- CL001: 30 already today
SELECT exchange(:li, 'POINT', 10, 'RAINBOW') > 0 AS within_the_limit;
SELECT set_setting('exchange_daily_limit', '0');
SELECT asset, tier, issued, outstanding, moved_out,
       outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out AS identity
FROM v_supply_detail WHERE region = '620702' AND asset IN ('POINT', 'RAINBOW') ORDER BY asset, tier;

-- A donation to a public-welfare account (government tier), with its receipt.
SELECT open_account('government', '620702', 'mall-welfare', '张掖市生态公益基金 eco fund') AS fund \gset
SELECT donate(:wang, :fund, 100, 'wang-gift') AS gift \gset
SELECT donate(:wang, :fund, 100, 'wang-gift') = :gift AS same_gift_on_retry;
SELECT amount, receipt ~ '^JZ[0-9]{8}-[0-9]+$' AS receipt_numbered FROM donation WHERE entry_id = :gift;
SELECT balance(:wang) AS wang, balance(:fund) AS fund;
SELECT donate(:wang, :tea, 10);                                     -- 22023: a shop is not a welfare account
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok;
