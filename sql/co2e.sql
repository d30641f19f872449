-- carbon.co2e: the documented examples of api.md §1, boundaries, operators.
SET search_path = carbon, public;

-- Input: every unit, case-insensitive, signs and spaces.
SELECT v, v::co2e AS co2e, grams(v::co2e)
FROM (VALUES ('12.5 kg'), ('-3t'), ('1500 g'), ('0.000001 Mt'), ('1 kt'),
             ('2 gCO2e'), ('2.5 kgCO2e'), ('0.75 tCO2e'), ('7 G'), ('7 KG'),
             ('1 mt'), ('+4 kg'), ('  42   g  '), ('.5 kg'), ('5. kg'),
             ('1.2000 kg'), ('000012 g'), ('-0 g'), ('0.001 kg'), ('1.000000 t')) AS t(v);

-- Output: t from 1,000,000 g, kg from 1,000 g, else g; exact, zeros trimmed.
SELECT g, co2e_grams(g) AS co2e
FROM (VALUES (1500000), (1234567), (1234), (999), (0), (-2500), (1000), (-1000000),
             (1000001), (-999), (1), (-1)) AS t(g);

-- Text round trip is exact for the extremes and for a spread of values.
SELECT co2e_grams(9223372036854775807) AS max, co2e_grams(-9223372036854775808) AS min;
SELECT '9223372036854.775807 t'::co2e = co2e_grams(9223372036854775807) AS max_in,
       '-9223372036854.775808 t'::co2e = co2e_grams(-9223372036854775808) AS min_in,
       '9223372036854775807 g'::co2e = '9223372.036854775807 Mt'::co2e AS max_mt,
       '9223372036854775.807 kg'::co2e = '9223372036.854775807 kt'::co2e AS max_kt;
SELECT count(*) AS values_checked,
       count(*) FILTER (WHERE co2e_out(co2e_grams(g))::text::co2e = co2e_grams(g)) AS round_trips
FROM (SELECT (s * 7919 - 5000000)::bigint * (10::bigint ^ (s % 12)::bigint)::bigint AS g
      FROM generate_series(1, 2000) s) t;

-- Smallest and largest magnitude of every unit.
SELECT '1 g'::co2e, '9223372036854775807 g'::co2e,
       '0.001 kg'::co2e, '9223372036854775.807 kg'::co2e,
       '0.000001 t'::co2e, '9223372036854.775807 t'::co2e,
       '0.000000001 kt'::co2e, '9223372036.854775807 kt'::co2e,
       '0.000000000001 Mt'::co2e, '9223372.036854775807 Mt'::co2e;

-- Refusals: bad text is 22P02 naming the units, out of range is 22003.
SELECT '12.5'::co2e;
SELECT '12.5 lb'::co2e;
SELECT 'kg'::co2e;
SELECT '0.5 g'::co2e;
SELECT '0.0001 kg'::co2e;
SELECT '1e3 g'::co2e;
SELECT '- 3 t'::co2e;
SELECT ''::co2e;
SELECT '9223372036854775808 g'::co2e;
SELECT '-9223372036854775809 g'::co2e;
SELECT '9223372036854.775808 t'::co2e;
SELECT '10000000 Mt'::co2e;

-- Comparison operators.
SELECT '1 kg'::co2e = '1000 g' AS eq, '1 kg'::co2e <> '1 g' AS ne,
       '1 kg'::co2e < '1 t' AS lt, '1 t'::co2e <= '1000 kg' AS le,
       '-1 g'::co2e > '-2 g' AS gt, '2 g'::co2e >= '3 g' AS ge;

-- Arithmetic: results truncate toward zero; overflow is 22003.
SELECT '1 kg'::co2e + '500 g' AS plus, '1 kg'::co2e - '1.5 kg' AS minus,
       -'2.5 kg'::co2e AS negate, '1.5 kg'::co2e * 3::bigint AS times_int,
       3::bigint * '1.5 kg'::co2e AS int_times,
       '10 g'::co2e * 0.15 AS times_num, 0.15 * '10 g'::co2e AS num_times,
       '-10 g'::co2e * 0.15 AS neg_times_num,
       '10 g'::co2e / 3::bigint AS div_int, '-10 g'::co2e / 3::bigint AS neg_div_int,
       '10 g'::co2e / 4.0 AS div_num, '-10 g'::co2e / 4.0 AS neg_div_num,
       '1 t'::co2e / '250 kg'::co2e AS ratio;
SELECT '1 kg'::co2e * 0.0009999;   -- 0.9999 g truncates to 0
SELECT co2e_grams(9223372036854775807) + '1 g';
SELECT co2e_grams(-9223372036854775808) - '1 g';
SELECT -co2e_grams(-9223372036854775808);
SELECT co2e_grams(9223372036854775807) * 2::bigint;
SELECT co2e_grams(9223372036854775807) * 1.5;
SELECT co2e_grams(-9223372036854775808) / (-1)::bigint;
SELECT '1 g'::co2e / 0::bigint;
SELECT '1 g'::co2e / 0.0;
SELECT '1 g'::co2e / '0 g'::co2e;
SELECT '1 g'::co2e * 'NaN'::numeric;

-- Helpers.
SELECT grams('12.5 kg'), kg('12.5 kg'), tonnes('12.5 kg'), kg('-2500 g'), tonnes('1.234567 t'),
       co2e_grams(1234);

-- Aggregates: exact, NULL on no rows, overflow 22003 at the end only.
SELECT sum(v), avg(v), min(v), max(v), count(v)
FROM (VALUES ('1 kg'::co2e), ('2.5 kg'), (NULL), ('-500 g'), ('1 g')) t(v);
SELECT sum(v), avg(v), min(v), max(v) FROM (SELECT NULL::co2e WHERE false) t(v);
SELECT avg(v) FROM (VALUES ('-1 g'::co2e), ('-2 g')) t(v);   -- -1.5 truncates to -1
-- Partial sums that pass the int64 limit are fine when the total fits.
SELECT sum(v) FROM (VALUES (co2e_grams(9223372036854775807)), ('1 g'), ('-2 g')) t(v);
SELECT sum(v) FROM (VALUES (co2e_grams(9223372036854775807)), ('1 g')) t(v);
-- Moving-window sums use the inverse transition.
SELECT i, sum(co2e_grams(i)) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM generate_series(1, 4) i;

-- Indexes, ORDER BY, DISTINCT, GROUP BY.
CREATE TABLE readings (id int, v co2e);
INSERT INTO readings SELECT i, co2e_grams((i % 7) * 1000 - 3000) FROM generate_series(1, 70) i;
CREATE INDEX ON readings USING btree (v);
CREATE INDEX ON readings USING hash (v);
SELECT DISTINCT v FROM readings ORDER BY v;
SELECT v, count(*) FROM readings GROUP BY v ORDER BY v DESC;
SET enable_seqscan = off;
SELECT count(*) FROM readings WHERE v = '2 kg';
SELECT count(*) FROM readings WHERE v > '1 kg';
RESET enable_seqscan;
DROP TABLE readings;

-- A plain integer literal multiplies and divides without a cast.
SELECT '1.5 kg'::co2e * 2 AS times_two, 3 * '250 g'::co2e AS three_times, '1 kg'::co2e / 3 AS a_third;
SELECT '1 kg'::co2e / 0;
SELECT co2e_grams(9223372036854775807) * 2;
