-- carbon_ledger demo: the city simulation grows here issue by issue.
-- For now: the exact co2e type at work on figures from domain.md.
\pset footer off
SET search_path = carbon, public;

\echo '== co2e: exact masses of CO2-equivalent'
SELECT input, input::co2e AS parsed, grams(input::co2e) AS grams
FROM (VALUES ('12.5 kg'), ('-3t'), ('1500 g'), ('0.000001 Mt'), ('2.5 tCO2e')) t(input);

\echo '== Shenzhen metro: 46.7 g/pkm avoided; 10 000 riders x 12 km'
SELECT co2e_grams(467) * 12::bigint * 10000::bigint / 10::bigint AS reduction;

\echo '== Beijing MaaS: a 22 km trip, 5.98 kg by car vs 1.35 kg by metro'
SELECT '5.98 kg'::co2e - '1.35 kg'::co2e AS avoided_per_trip,
       ('5.98 kg'::co2e - '1.35 kg'::co2e) * 250::bigint AS avoided_per_year_250_trips;

\echo '== Aggregates over a month of 100 000 simulated metro trips (exact, parallel-safe)'
SELECT count(*) AS trips, sum(r) AS total, avg(r) AS mean, min(r), max(r), tonnes(sum(r)) AS tonnes
FROM (SELECT co2e_grams(467 * (1 + (i % 30))/10) AS r FROM generate_series(1, 100000) i) s;

\echo '== Refusals are clear and exact'
\set ON_ERROR_STOP 0
SELECT '0.5 g'::co2e;
SELECT '12 lb'::co2e;
SELECT co2e_grams(9223372036854775807) + '1 g'::co2e;
