# B2: COPY events into behavior_inbox + process_inbox(), vs COPY of the same
# file into a plain unindexed table.  Events per second, ratio.
b2() {
  local rows=$((${B2_ROWS:-200000} * ${BENCH_SCALE:-1}))
  log "B2: $rows events"
  ledger_bench_setup
  local file="$CL_TMP/b2.csv"
  psql -X -q -d bench -c "COPY (SELECT 'bench-metro', 'b2-' || i, 1 + i % 10000, 'BENCH-METRO', 1 + i % 30,
                                       now() - interval '1 hour', '{}'
                                FROM generate_series(1, $rows) i) TO STDOUT WITH (FORMAT csv)" >"$file"
  psql -X -q -d bench -c "CREATE UNLOGGED TABLE IF NOT EXISTS b2_plain (source text, event_id text, account bigint,
                          methodology text, activity numeric, occurred_at timestamptz, attrs jsonb)" -c "TRUNCATE b2_plain"
  local t0 t1 t2 t3
  t0=$(now_ms)
  psql -X -q -d bench -c "\\copy b2_plain FROM '$file' WITH (FORMAT csv)"
  t1=$(now_ms)
  psql -X -q -d bench -c "\\copy carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs) FROM '$file' WITH (FORMAT csv)"
  psql -X -q -d bench -c "SELECT * FROM carbon.process_inbox()" >/dev/null
  t2=$(now_ms)
  local base_eps ours_eps
  base_eps=$(awk -v n="$rows" -v ms="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
  ours_eps=$(awk -v n="$rows" -v ms="$((t2 - t1))" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
  bench_row B2 "COPY + process_inbox, $((rows / 1000)) k events" "$ours_eps events/s" "COPY $base_eps rows/s" \
    "$(ratio "$ours_eps" "$base_eps")" "≥ 0.25"
  # the ledger stays clean after the bulk load and after expiring all of it
  local bad
  bad=$(psql -X -t -A -d bench -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  [ "$bad" = 0 ] || { echo "B2: verify_integrity() found $bad broken checks" >&2; return 1; }
  if [ -n "${B2_EXPIRE:-}" ]; then
    psql -X -q -d bench -c "SELECT * FROM carbon.expire_lots(now() + interval '3 years')"
    bad=$(psql -X -t -A -d bench -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
    [ "$bad" = 0 ] || { echo "B2: verify_integrity() found $bad broken checks after expiry" >&2; return 1; }
    log "B2: verify_integrity() clean after $rows bulk events and their expiry"
  fi
  psql -X -q -d bench -c "DROP TABLE b2_plain"
}
