# B6: sum(co2e) and avg(co2e) over 10 M rows vs sum(bigint) over the same rows.
b6() {
  local rows=$((10000000 * ${BENCH_SCALE:-1}))
  local repeat=${BENCH_REPEAT:-5}
  log "B6: loading $rows rows"
  psql -X -q -d bench <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS b6;
CREATE UNLOGGED TABLE b6 (g bigint, c carbon.co2e);
INSERT INTO b6 SELECT v, carbon.co2e_grams(v)
  FROM (SELECT (i::bigint * 7919) % 100000000 - 50000000 AS v FROM generate_series(1, $rows) i) s;
VACUUM ANALYZE b6;
SQL
  local q_co2e='SELECT carbon.sum(c), carbon.avg(c) FROM b6'
  local q_base='SELECT sum(g) FROM b6'
  # warm the cache, and check the two give the same total
  psql -X -q -d bench -tAc "SELECT (SELECT carbon.grams(carbon.sum(c)) FROM b6) = (SELECT sum(g) FROM b6)" | grep -qx t \
    || { echo "B6: co2e and bigint sums differ" >&2; return 1; }
  local tc=() tb=()
  for _ in $(seq "$repeat"); do
    tb+=("$(time_sql bench "$q_base")")
    tc+=("$(time_sql bench "$q_co2e")")
  done
  local mc mb
  mc=$(median "${tc[@]}"); mb=$(median "${tb[@]}")
  bench_row B6 "sum+avg(co2e), $((rows / 1000000)) M rows" "${mc} ms" "sum(bigint) ${mb} ms" \
    "$(ratio "$mc" "$mb")" "≤ 1.15"
  psql -X -q -d bench -c 'DROP TABLE b6'
}
