-- pgTAP: the points mall's refusals, each with its SQLSTATE (api.md §4
-- merchants, issue 18), in api.md's order of checks, and who may do what
-- (R5: a merchant's till manages, refunds and reads its own shop only).
BEGIN;
SET search_path = carbon, public;
SELECT plan(62);

SELECT open_account('personal', '620700', 'M-li') AS li \gset
SELECT open_account('personal', '620700', 'M-poor') AS poor \gset
SELECT open_account('personal', '620700', 'M-frozen') AS frozen \gset
SELECT open_account('merchant', '620700', 'M-tea') AS tea \gset
SELECT open_account('merchant', '620700', 'M-rival') AS rival \gset
SELECT open_account('merchant', '620700', 'M-shut') AS shut \gset
SELECT open_account('enterprise', '620700', 'M-firm') AS firm \gset
SELECT issue(:li, 'POINT', 10000) \gset
SELECT issue(:frozen, 'POINT', 10000) \gset
SELECT issue(:poor, 'POINT', 50) \gset
SELECT set_account_status(:frozen, 'frozen', 'test');
SELECT set_account_status(:shut, 'frozen', 'test');
CREATE ROLE m_till LOGIN IN ROLE carbon_merchant;
CREATE ROLE m_rival_till LOGIN IN ROLE carbon_merchant;
CREATE ROLE m_app LOGIN IN ROLE carbon_app;
SELECT bind_account(:tea, 'm_till');
SELECT bind_account(:rival, 'm_rival_till');

\set open 'tstzrange(now() - interval ''1 hour'', now() + interval ''30 days'')'
SELECT create_offer(:tea, 'tea', 100, 5, :open, 2) AS cup \gset
SELECT create_offer(:tea, 'one left', 100, 1, :open) AS last \gset
SELECT create_offer(:tea, 'later', 100, 5, tstzrange(now() + interval '1 day', now() + interval '2 days')) AS later \gset
SELECT create_offer(:tea, 'gone', 100, 5, tstzrange(now() - interval '2 days', now() - interval '1 day')) AS gone \gset
SELECT create_offer(:rival, 'rival cake', 100, 5, :open) AS cake \gset

-- create_offer: arguments, then the merchant's status.
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, 5, %s)', :li, 'x', :'open'), '22023', NULL,
                 'an offer belongs to a merchant account');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, 5, %s)', :firm, 'x', :'open'), '22023', NULL,
                 '... not an enterprise');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 0, 5, %s)', :tea, 'x', :'open'), '22023', NULL,
                 'a price of zero points');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, -1, %s)', :tea, 'x', :'open'), '22023', NULL,
                 'a negative stock');
SELECT throws_ok(format($$SELECT create_offer(%s, 'x', 100, 5, 'empty'::tstzrange)$$, :tea), '22023', NULL,
                 'an empty validity');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, 5, %s, 0)', :tea, 'x', :'open'), '22023', NULL,
                 'a per-account limit of zero');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, 5, %s)', :tea, '', :'open'), '22023', NULL,
                 'an empty title');
SELECT throws_ok(format('SELECT create_offer(%s, %L, 100, 5, %s)', :shut, 'x', :'open'), 'CL002', NULL,
                 'a frozen merchant lists nothing');

-- set_offer_status and restock_offer.
SELECT throws_ok(format('SELECT set_offer_status(%s, %L)', :cup, 'sold'), '22023', NULL, 'an unknown status');
SELECT throws_ok('SELECT set_offer_status(987654321, ''paused'')', '22023', NULL, 'an unknown offer');
SELECT throws_ok(format('SELECT restock_offer(%s, 0)', :cup), '22023', NULL, 'restocking nothing');

-- redeem, in api.md's order: arguments, account status, lifecycle, flow, stock and balance.
SELECT throws_ok(format('SELECT redeem(%s, %s, 0)', :li, :cup), '22023', NULL, 'a quantity of zero');
SELECT throws_ok(format('SELECT redeem(%s, 987654321)', :li), '22023', NULL, 'an unknown offer');
SELECT throws_ok(format('SELECT redeem(987654321, %s)', :cup), '22023', NULL, 'an unknown account');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :tea, :cup), '22023', NULL, 'a merchant redeeming its own offer');
SELECT throws_ok(format('SELECT redeem(%s, %s, 1, %L)', :li, :cup, ''), '22023', NULL, 'an empty request_id');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :frozen, :cup), 'CL002', NULL, 'a frozen citizen redeems nothing');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :frozen, :later), 'CL002', NULL,
                 '... the account''s status is checked before the offer''s');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :li, :later), 'CL007', NULL, 'an offer not yet valid');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :li, :gone), 'CL007', NULL, 'an offer past its validity');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :firm, :cup), 'CL001', NULL,
                 'an enterprise with no points (enterprise → merchant is an allowed flow)');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :poor, :cup), 'CL001', NULL, 'too few points');
SELECT is(balance(:poor), 50::bigint, '... and nothing moved');
SELECT lives_ok(format('SELECT redeem(%s, %s)', :li, :last), 'the last item');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :li, :last), 'CL001', NULL, 'out of stock');
SELECT is((SELECT stock FROM offer WHERE id = :last), 0, '... the stock is zero, never below');
SELECT lives_ok(format('SELECT redeem(%s, %s, 2)', :li, :cup), 'two cups, the per-account limit');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :li, :cup), 'CL001', NULL, 'a third is past the limit');
SELECT set_offer_status(:cup, 'paused');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :poor, :cup), 'CL007', NULL, 'a paused offer');
SELECT set_offer_status(:cup, 'closed');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :poor, :cup), 'CL007', NULL, 'a closed offer');
SELECT throws_ok(format('SELECT set_offer_status(%s, %L)', :cup, 'active'), 'CL007', NULL, 'closed is final');
SELECT throws_ok(format('SELECT restock_offer(%s, 5)', :cup), 'CL007', NULL, 'a closed offer takes no stock');

-- refunds.
SELECT max(entry_id) AS two_cups FROM redemption WHERE offer = :cup \gset
SELECT throws_ok('SELECT refund_redemption(987654321)', '22023', NULL, 'an unknown redemption');
SELECT throws_ok(format('SELECT refund_redemption(%s, 3)', :two_cups), 'CL001', NULL,
                 'refunding more than was redeemed');
SELECT throws_ok(format('SELECT refund_redemption(%s, 0)', :two_cups), '22023', NULL, 'refunding zero');
SELECT lives_ok(format('SELECT refund_redemption(%s, 1)', :two_cups), 'refunding one of two');
SELECT lives_ok(format('SELECT redeem(%s, %s)', :li, :cake), 'a cake from the rival shop');
SELECT max(entry_id) AS cake_redemption FROM redemption WHERE offer = :cake \gset

-- R5: the till manages, refunds and reads its own shop only.
SET LOCAL ROLE m_till;
SELECT act_as(:tea);
SELECT throws_ok(format('SELECT carbon.set_offer_status(%s, %L)', :cake, 'paused'), '42501', NULL,
                 'a till cannot pause another shop''s offer');
SELECT throws_ok(format('SELECT carbon.refund_redemption(%s)', :cake_redemption), '42501', NULL,
                 'a till cannot refund another shop''s customer');
SELECT throws_ok(format('SELECT carbon.redeem(%s, %s)', :li, :cake), '42501', NULL,
                 'a till cannot redeem for a citizen');
SELECT is((SELECT count(*) FROM carbon.redemption WHERE merchant <> :tea), 0::bigint,
          'a till sees no other shop''s redemptions');
SELECT is((SELECT count(*) FROM carbon.offer WHERE merchant <> :tea), 0::bigint,
          'a till sees no other shop''s offer rows');
RESET ROLE;
SET LOCAL ROLE m_app;
SELECT act_as(:poor);
SELECT throws_ok(format('SELECT carbon.redeem(%s, %s)', :li, :cake), '42501', NULL,
                 'the app redeems for its acting citizen only');
SELECT throws_ok(format('SELECT carbon.settle_merchant(%s)', :tea), '42501', NULL, 'the app does not settle');
SELECT is((SELECT count(*) FROM carbon.v_offers), 1::bigint, 'the app reads the whole catalogue (open offers)');
RESET ROLE;

-- a shop redeeming its own offer pays itself: said so (it was "account N does not exist")
SELECT throws_ok(format('SELECT carbon.redeem(%s, %s)', :tea, :cup), '22023',
                 format('account %s cannot pay itself', :tea), 'a merchant cannot redeem its own offer');

-- A redemption's entry is not reversed (its record would stay refundable:
-- the points came back twice); refund_redemption undoes it, once.
SELECT create_offer(:tea, 'mistake', 10, 5, :open) AS oops \gset
SELECT redeem(:li, :oops) AS undone \gset
SELECT throws_ok(format('SELECT reverse_entry(%s, %L)', :undone, 'by mistake'), 'CL007', NULL,
                 'reverse_entry refuses a redemption''s entry');
SELECT balance(:li, 'POINT') AS li_before \gset
SELECT ok(refund_redemption(:undone) > 0, '... which refund_redemption undoes');
SELECT is(balance(:li, 'POINT') - :li_before, 10::bigint,
          '... giving the points back once');

-- A merchant's collected points that expired early (expire_lots with an
-- as_of ahead of now: a job run ahead, or a test moving time on) are in
-- the expired sink: a refund gives back only what did not expire, and the
-- settlement settles only that (both failed with CL001 until the
-- twenty-second session, on every later call).
SELECT open_account('personal', '620700', 'M-early') AS early \gset
SELECT open_account('merchant', '620700', 'M-bakery') AS bakery \gset
SELECT set_setting('points_validity', '30 days');
SELECT issue(:early, 'POINT', 100) \gset
SELECT set_setting('points_validity', 'end_of_next_year');
SELECT issue(:early, 'POINT', 100) \gset
SELECT create_offer(:bakery, 'bread', 50, 10, :open) AS bread \gset
SELECT redeem(:early, :bread, 2) AS short_lived \gset
SELECT redeem(:early, :bread, 2) AS long_lived \gset
SELECT cmp_ok((SELECT points FROM expire_lots(now() + interval '60 days')), '>=', 100::bigint,
              'expire_lots ahead of time expires the bakery''s 30-day points');
SELECT is(refund_redemption(:short_lived, 1), NULL, 'a refund of expired points moves nothing (NULL)');
SELECT is((SELECT expired_points FROM refund WHERE redemption = :short_lived), 50::bigint,
          '... and records them as expired');
SELECT ok(refund_redemption(:long_lived, 1) > 0, 'a refund of points that did not expire gives them back');
SELECT is(balance(:early, 'POINT'), 50::bigint, '... to the citizen');
SELECT ok(settle_merchant(:bakery) IS NOT NULL, 'settle_merchant settles');
SELECT is((SELECT points FROM settlement WHERE merchant = :bakery), 50::bigint,
          '... the 50 points that did not expire, not the expired ones');
SELECT is(balance(:bakery, 'POINT'), 0::bigint, 'the bakery holds nothing after it');
SELECT is_empty($$SELECT check_name FROM verify_integrity() WHERE NOT ok$$, 'verify_integrity() is clean');

-- A redemption is the system's move, not a transfer: the flow matrix does
-- not govern it (api.md §2; it was checked until the twenty-second
-- session), but a merchant does not redeem (its collected points leave it
-- by settlement).
SELECT open_account('government', '620700', 'M-school') AS school \gset
SELECT issue(:school, 'POINT', 500) \gset
SELECT create_offer(:bakery, 'cake', 100, 10, :open) AS cake2 \gset
SELECT ok(redeem(:school, :cake2) > 0, 'a government account redeems (government -> merchant is no transfer flow)');
INSERT INTO allowed_flow (from_tier, to_tier, asset, allowed, note)
  VALUES ('personal', 'merchant', 'POINT', false, 'test: no citizen transfers to shops');
SELECT throws_ok(format('SELECT transfer(%s, %s, %L, 10)', :li, :tea, 'POINT'), 'CL003', NULL,
                 'with personal -> merchant points switched off, a transfer is refused');
SELECT ok(redeem(:li, :cake2) > 0, '... a redemption is not');
SELECT throws_ok(format('SELECT redeem(%s, %s)', :tea, :cake2), '22023', NULL,
                 'a merchant does not redeem at another merchant');

SELECT * FROM finish();
ROLLBACK;
