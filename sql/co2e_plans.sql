-- carbon.co2e in plans: parallel aggregates, hash and merge joins, binary COPY.
SET search_path = carbon, public;

CREATE TABLE emissions (id int, v co2e);
INSERT INTO emissions
  SELECT i, co2e_grams((i::bigint * 2654435761) % 100000000 - 50000000)
  FROM generate_series(1, 200000) i;
ANALYZE emissions;

-- Serial result, for comparison.
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_result AS SELECT sum(v) s, avg(v) a, min(v) mn, max(v) mx FROM emissions;

-- Force a parallel plan: the plan must show a partial aggregate under Gather.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT sum(v), avg(v), min(v), max(v) FROM emissions;

-- ... that really launches workers ...
DO $$
DECLARE
  line text;
  launched int := 0;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(v), avg(v) FROM carbon.emissions' LOOP
    IF line ~ 'Workers Launched: \d+' THEN
      launched := substring(line FROM 'Workers Launched: (\d+)')::int;
    END IF;
  END LOOP;
  IF launched < 1 THEN
    RAISE EXCEPTION 'parallel sum launched no worker';
  END IF;
  RAISE NOTICE 'parallel workers launched: at least one';
END $$;

-- ... and gives exactly the serial result.
SELECT p.s = r.s AS same_sum, p.a = r.a AS same_avg, p.mn = r.mn AS same_min, p.mx = r.mx AS same_max,
       grams(p.s) = (SELECT sum(grams(v)) FROM emissions) AS sum_matches_bigint
FROM (SELECT sum(v) s, avg(v) a, min(v) mn, max(v) mx FROM emissions) p, serial_result r;
RESET ALL;
SET search_path = carbon, public;

-- Hash join and merge join over co2e give the same rows.
CREATE TABLE thresholds AS SELECT DISTINCT v FROM emissions WHERE id % 50 = 0;
ANALYZE thresholds;
SET max_parallel_workers_per_gather = 0;
SET enable_mergejoin = off; SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM emissions e JOIN thresholds t ON e.v = t.v;
CREATE TEMP TABLE hash_rows AS SELECT e.id FROM emissions e JOIN thresholds t ON e.v = t.v;
RESET enable_mergejoin; SET enable_hashjoin = off; SET enable_sort = on;
EXPLAIN (COSTS OFF) SELECT count(*) FROM emissions e JOIN thresholds t ON e.v = t.v;
CREATE TEMP TABLE merge_rows AS SELECT e.id FROM emissions e JOIN thresholds t ON e.v = t.v;
RESET ALL;
SET search_path = carbon, public;
SELECT (SELECT count(*) FROM hash_rows) AS hash_rows,
       (SELECT count(*) FROM merge_rows) AS merge_rows,
       NOT EXISTS (SELECT id FROM hash_rows EXCEPT SELECT id FROM merge_rows) AS same_rows;

-- Binary COPY round trip keeps every value, including the extremes.
INSERT INTO emissions VALUES (-1, co2e_grams(9223372036854775807)),
                             (-2, co2e_grams(-9223372036854775808)), (-3, '0 g');
\set copyfile '/tmp/carbon_ledger_co2e_copy.bin'
COPY emissions TO :'copyfile' WITH (FORMAT binary);
CREATE TABLE emissions_copy (LIKE emissions);
COPY emissions_copy FROM :'copyfile' WITH (FORMAT binary);
SELECT count(*) AS copied,
       NOT EXISTS (SELECT * FROM emissions EXCEPT SELECT * FROM emissions_copy) AS identical
FROM emissions_copy;
SELECT v FROM emissions_copy WHERE id < 0 ORDER BY id;
-- The wire format is the int64 in network byte order.
SELECT co2e_send('1.5 t') AS wire, co2e_send('-1 g') AS wire_negative;
DROP TABLE emissions, emissions_copy, thresholds;
