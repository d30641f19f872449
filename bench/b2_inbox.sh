# B2: COPY events into behavior_inbox + process_inbox(), vs COPY of the same
# file into a plain unindexed table (quality.md), and vs the cost of storing
# the events at all: COPY into a table shaped like carbon.behavior with its
# indexes.  Events per second, ratios; and the backend's peak private memory
# during process_inbox (quality.md: under 256 MB at 10 M events).
b2() {
  local rows=$((${B2_ROWS:-200000} * ${BENCH_SCALE:-1}))
  log "B2: $rows events"
  ledger_bench_setup
  local file="$CL_TMP/b2.csv"
  psql -X -q -d bench -c "COPY (SELECT 'bench-metro', 'b2-' || i, 1 + i % 10000, 'BENCH-METRO', 1 + i % 30,
                                       now() - interval '1 hour', '{}'
                                FROM generate_series(1, $rows) i) TO STDOUT WITH (FORMAT csv)" >"$file"
  # a plain, logged, unindexed table (quality.md's baseline)
  psql -X -q -d bench -c "CREATE TABLE IF NOT EXISTS b2_plain (source text, event_id text, account bigint,
                          methodology text, activity numeric, occurred_at timestamptz, attrs jsonb)" -c "TRUNCATE b2_plain"
  # storing alone: a table shaped like carbon.behavior, with its constraints and indexes
  psql -X -q -d bench -c "DROP TABLE IF EXISTS b2_store" \
    -c "CREATE TABLE b2_store (LIKE carbon.behavior INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)" \
    -c "ALTER TABLE b2_store ALTER status SET DEFAULT 'accepted', ALTER reduction SET DEFAULT '0 g',
        ALTER points SET DEFAULT 0, ALTER id SET DEFAULT nextval('carbon.behavior_id_seq')"
  local t0 t1 t2 t3 t4
  t0=$(now_ms)
  psql -X -q -d bench -c "\\copy b2_plain FROM '$file' WITH (FORMAT csv)"
  t1=$(now_ms)
  psql -X -q -d bench -c "\\copy b2_store (source, event_id, account, methodology, activity, occurred_at, attrs) FROM '$file' WITH (FORMAT csv)"
  t2=$(now_ms)
  psql -X -q -d bench -c "\\copy carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs) FROM '$file' WITH (FORMAT csv)"
  # process_inbox in a session whose private memory is sampled as it runs
  psql -X -q -d bench -c "SELECT pg_backend_pid()" -c "SELECT * FROM carbon.process_inbox()" -t -A \
    >"$CL_TMP/b2.out" 2>&1 &
  local runner=$! pid="" peak=0 kb
  while kill -0 "$runner" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(head -n 1 "$CL_TMP/b2.out" 2>/dev/null)
    if [ -n "$pid" ] && kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ]; then
      [ "$kb" -gt "$peak" ] && peak=$kb
    fi
    sleep 0.05
  done
  wait "$runner"
  t3=$(now_ms)
  local base_eps store_eps ours_eps
  base_eps=$(awk -v n="$rows" -v ms="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
  store_eps=$(awk -v n="$rows" -v ms="$((t2 - t1))" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
  ours_eps=$(awk -v n="$rows" -v ms="$((t3 - t2))" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
  bench_row B2 "COPY + process_inbox, $((rows / 1000)) k events" "$ours_eps events/s" "COPY $base_eps rows/s" \
    "$(ratio "$ours_eps" "$base_eps")" "≥ 0.25"
  bench_row B2 "… against storing them alone (COPY into a table shaped like carbon.behavior, with its indexes)" \
    "$ours_eps events/s" "COPY $store_eps rows/s" "$(ratio "$ours_eps" "$store_eps")" "≥ 0.8"
  bench_row B2 "… peak private memory of the backend (RssAnon) in process_inbox, $((rows / 1000)) k events over 10 k accounts" \
    "$((peak / 1024)) MB" "—" "—" "< 256 MB at 10 M events"
  psql -X -q -d bench -c "DROP TABLE b2_store"
  # the ledger stays clean after the bulk load and after expiring all of it
  bench_integrity B2 || return 1
  if [ -n "${B2_EXPIRE:-}" ]; then
    psql -X -q -d bench -c "SELECT * FROM carbon.expire_lots(now() + interval '3 years')"
    bench_integrity "B2 after expiry" || return 1
    log "B2: verify_integrity() clean after $rows bulk events and their expiry"
  fi
  psql -X -q -d bench -c "DROP TABLE b2_plain"
}
