-- pgTAP: carbon.co2e refusals (SQLSTATE and message) and invariants.
BEGIN;
SET search_path = carbon, public;
SELECT plan(34);

-- 22P02 for bad text, with a hint that names the accepted units.
SELECT throws_ok($$SELECT '12.5'::carbon.co2e$$, '22P02', NULL, 'missing unit is 22P02');
SELECT throws_ok($$SELECT 'abc'::carbon.co2e$$, '22P02', NULL, 'garbage is 22P02');
SELECT throws_ok($$SELECT '3 lb'::carbon.co2e$$, '22P02', NULL, 'unknown unit is 22P02');
SELECT throws_ok($$SELECT '1.5 g'::carbon.co2e$$, '22P02', NULL, 'fraction of a gram is 22P02');
SELECT throws_ok($$SELECT '0.0000001 t'::carbon.co2e$$, '22P02', NULL, 'sub-gram tonnes is 22P02');
SELECT throws_ok($$SELECT '1e6 g'::carbon.co2e$$, '22P02', NULL, 'exponent notation is 22P02');
SELECT throws_ok($$SELECT '1,5 kg'::carbon.co2e$$, '22P02', NULL, 'decimal comma is 22P02');
SELECT throws_ok($$SELECT '--1 g'::carbon.co2e$$, '22P02', NULL, 'double sign is 22P02');
SELECT throws_ok($$SELECT '1 kg kg'::carbon.co2e$$, '22P02', NULL, 'two units is 22P02');
SELECT throws_ok($$SELECT '.'::carbon.co2e$$, '22P02', NULL, 'lone point is 22P02');
SELECT throws_ok($$SELECT '. kg'::carbon.co2e$$, '22P02', NULL, 'point without digits is 22P02');

CREATE FUNCTION pg_temp.hint_of(txt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE h text;
BEGIN
  PERFORM txt::carbon.co2e;
  RETURN NULL;
EXCEPTION WHEN invalid_text_representation THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN h;
END $f$;
SELECT alike(pg_temp.hint_of('12.5'), '%g, kg, t, kt, Mt%', 'the hint names the accepted units');

-- 22003 for values out of range, never a wrap.
SELECT throws_ok($$SELECT '9223372036854775808 g'::carbon.co2e$$, '22003', NULL, 'above max is 22003');
SELECT throws_ok($$SELECT '-9223372036854775809 g'::carbon.co2e$$, '22003', NULL, 'below min is 22003');
SELECT throws_ok($$SELECT '99999999999999999999999 t'::carbon.co2e$$, '22003', NULL, 'huge is 22003');
SELECT throws_ok($$SELECT carbon.co2e_grams(9223372036854775807) + '1 g'$$, '22003', NULL, '+ overflow');
SELECT throws_ok($$SELECT carbon.co2e_grams(-9223372036854775807) - '2 g'$$, '22003', NULL, '- overflow');
SELECT throws_ok($$SELECT -carbon.co2e_grams(-9223372036854775808)$$, '22003', NULL, 'unary - overflow');
SELECT throws_ok($$SELECT carbon.co2e_grams(4611686018427387904) * 2::bigint$$, '22003', NULL, '* bigint overflow');
SELECT throws_ok($$SELECT carbon.co2e_grams(4611686018427387904) * 2.5$$, '22003', NULL, '* numeric overflow');
SELECT throws_ok($$SELECT '1 g'::carbon.co2e * 'Infinity'::numeric$$, '22003', NULL, '* infinity');
SELECT throws_ok($$SELECT carbon.co2e_grams(-9223372036854775808) / (-1)::bigint$$, '22003', NULL, '/ -1 overflow');
SELECT throws_ok($$SELECT carbon.co2e_grams(9223372036854775807) / 0.5$$, '22003', NULL, '/ numeric overflow');
SELECT throws_ok($$SELECT carbon.sum(v) FROM (VALUES (carbon.co2e_grams(9223372036854775807)), ('1 g'::carbon.co2e)) t(v)$$,
                 '22003', NULL, 'sum overflow');
SELECT throws_ok($$SELECT carbon.sum(v) FROM (VALUES (carbon.co2e_grams(-9223372036854775808)), ('-1 g'::carbon.co2e)) t(v)$$,
                 '22003', NULL, 'sum underflow');
SELECT throws_ok($$SELECT '1 g'::carbon.co2e / 0::bigint$$, '22012', NULL, 'division by zero');
SELECT throws_ok($$SELECT '1 g'::carbon.co2e / '0 g'::carbon.co2e$$, '22012', NULL, 'ratio by zero');

-- Invariants.
SELECT is(carbon.co2e_grams(-9223372036854775808)::text, '-9223372036854.775808 t', 'min prints exactly');
SELECT is(carbon.co2e_grams(9223372036854775807)::text::carbon.co2e,
          carbon.co2e_grams(9223372036854775807), 'max round-trips');
SELECT is(carbon.kg('12.5 kg'), 12.5, 'kg() is exact');
SELECT is(carbon.tonnes('1 g'), 0.000001, 'tonnes() is exact');
SELECT is((SELECT count(*) FROM generate_series(-20000, 20000) g
            WHERE carbon.co2e_grams(g * 999)::text::carbon.co2e <> carbon.co2e_grams(g * 999)), 0::bigint,
          '40001 values round-trip through text');
SELECT ok((SELECT bool_and(provolatile = 'i' AND proparallel = 's') FROM pg_proc
            WHERE pronamespace = 'carbon'::regnamespace AND proname LIKE 'co2e%'),
          'co2e functions are IMMUTABLE PARALLEL SAFE');
SELECT is((SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.pronamespace = 'carbon'::regnamespace AND a.aggcombinefn <> 0 AND p.proparallel = 's'),
          4::bigint, 'sum, avg, min, max have combine functions and are parallel safe');

SELECT * FROM finish();
ROLLBACK;
