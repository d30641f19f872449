-- pgTAP: exchange and donation refusals with their SQLSTATEs (api.md §4,
-- issue 18), dated rates, the carried remainder over many exchanges, and
-- who may call them.
BEGIN;
SET search_path = carbon, public;
SELECT plan(26);

SELECT define_asset('RAINBOW', 'currency', '彩虹元');
SELECT define_asset('NJ_PT', 'points', 'a neighbouring city''s points');
SELECT open_account('personal', '620700', 'X-li') AS li \gset
SELECT open_account('personal', '620700', 'X-frozen') AS frozen \gset
SELECT open_account('personal', '620700', 'X-other') AS other \gset
SELECT open_account('government', '620700', 'X-fund') AS fund \gset
SELECT open_account('merchant', '620700', 'X-shop') AS shop \gset
SELECT issue(:li, 'POINT', 100000) \gset
SELECT issue(:frozen, 'POINT', 1000) \gset
SELECT set_account_status(:frozen, 'frozen', 'test');
CREATE ROLE x_app LOGIN IN ROLE carbon_app;

-- rates
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'NOPE', 1, 1, now())$$, '22023', NULL, 'an unknown asset');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'POINT', 1, 1, now())$$, '22023', NULL, 'a rate to itself');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'RAINBOW', 0, 1, now())$$, '22023', NULL, 'a zero numerator');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'RAINBOW', 1, -3, now())$$, '22023', NULL, 'a negative denominator');
SELECT lives_ok($$SELECT set_exchange_rate('POINT', 'NJ_PT', 2, 3, now() - interval '1 day')$$,
                'a rate dated back, while the pair has no exchange since (refused until the twenty-second session)');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 3, NULL)$$, '22004', NULL, 'no date');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 10, 'RAINBOW')$$, :li), 'CL007', NULL, 'no rate in force yet');
SELECT set_exchange_rate('POINT', 'RAINBOW', 7, 11, now());
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 1000, now() + interval '1 day');
SELECT set_exchange_rate('POINT', 'NJ_PT', 2, 3, now());

-- exchange, in order: arguments, status, rate, limit and balance
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 0, 'RAINBOW')$$, :li), '22023', NULL, 'an amount of zero');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 10, 'POINT')$$, :li), '22023', NULL, 'an asset for itself');
SELECT throws_ok(format($$SELECT exchange(%s, 'GOLD', 10, 'POINT')$$, :li), '22023', NULL, 'an unknown asset');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 10, 'RAINBOW', '')$$, :li), '22023', NULL, 'an empty request_id');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 10, 'RAINBOW')$$, :frozen), 'CL002', NULL, 'a frozen account');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 10, 'RAINBOW')$$, :other), 'CL001', NULL, 'too few points');

-- 1,000 exchanges of 13 points at 7/11: exactly floor(13000 × 7 / 11), nothing lost
SELECT count(exchange(:li, 'POINT', 13, 'RAINBOW')) FROM generate_series(1, 1000);
SELECT is(balance(:li, 'RAINBOW'), (13000 * 7 / 11)::bigint, '1,000 exchanges give exactly floor(13,000 × 7 / 11)');
SELECT is((SELECT carry_num || '/' || carry_den FROM exchange_carry WHERE account = :li AND to_asset = 'RAINBOW'),
          ((13000 * 7) % 11) || '/11', '... and carry the rest, exactly');
SELECT is((SELECT count(*) FROM exchange WHERE account = :li AND denominator = 1000), 0::bigint,
          'the rate that starts tomorrow was never used');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 3, now() - interval '1 hour')$$, '22023', NULL,
                 'a rate dated back over exchanges already made');
SELECT throws_ok($$SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 3, now())$$, '22023', NULL,
                 '... or one replacing the rate they were made at');
SELECT lives_ok(format($$SELECT exchange(%s, 'POINT', 30, 'NJ_PT')$$, :li), 'points into another city''s points');
SELECT is(balance(:li, 'NJ_PT'), 20::bigint, '... 30 × 2/3 = 20');
SELECT set_setting('exchange_daily_limit', '13030');
SELECT throws_ok(format($$SELECT exchange(%s, 'POINT', 1, 'RAINBOW')$$, :li), 'CL001', NULL,
                 'the daily limit per account and source asset');

-- donations
SELECT throws_ok(format('SELECT donate(%s, %s, 10)', :li, :shop), '22023', NULL, 'a shop is not a welfare account');
SELECT throws_ok(format('SELECT donate(%s, %s, 10)', :li, :li), '22023', NULL, 'a donation to oneself');
SELECT throws_ok(format('SELECT donate(%s, %s, 10)', :frozen, :fund), 'CL002', NULL, 'a frozen donor');
SELECT throws_ok(format('SELECT donate(%s, %s, 10)', :other, :fund), 'CL001', NULL, 'too few points to donate');

-- the app exchanges for its acting citizen only
SET LOCAL ROLE x_app;
SELECT act_as(:other);
SELECT throws_ok(format($$SELECT carbon.exchange(%s, 'POINT', 10, 'RAINBOW')$$, :li), '42501', NULL,
                 'the app exchanges for its acting citizen only');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
