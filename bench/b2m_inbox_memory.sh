# B2m: memory at scale (quality.md, issue 17 item 6): process_inbox over
# 1 M events spread over 100 k accounts × BENCH_SCALE (BENCH_SCALE=10: 10 M
# events over 1 M accounts) in one call; the backend's peak private memory
# (RssAnon, sampled every 50 ms) must stay under 256 MB: what a call holds
# is bounded by its flush threshold, not by the number of accounts.
b2m() {
  local scale=${BENCH_SCALE:-1}
  local accounts=$((${B2M_ACCOUNTS:-100000} * scale)) rows=$((${B2M_ROWS:-1000000} * scale))
  log "B2m: $rows events over $accounts accounts in one process_inbox call"
  "$PGBIN/createdb" bench_mem
  psql -X -q -d bench_mem -c 'CREATE EXTENSION carbon_ledger' >/dev/null
  psql -X -q -d bench_mem >/dev/null <<SQL
SELECT count(carbon.open_account('personal', '620700', 'mem-' || i)) FROM generate_series(1, $accounts) i;
SELECT carbon.define_methodology('BENCH-METRO', 1, 'metro', 'I', 'metro', 'distance_substitution',
  '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 100000000, "max_activity": 200}');
SELECT carbon.submit_methodology('BENCH-METRO', 1), carbon.approve_methodology('BENCH-METRO', 1, 'bench'),
       carbon.publish_methodology('BENCH-METRO', 1, now() - interval '1 day');
SELECT carbon.register_source('bench-metro', ARRAY['metro']);
SQL
  local first
  first=$(psql -X -t -A -d bench_mem -c "SELECT min(id) FROM carbon.account WHERE kind = 'participant'")
  # every account gets rows/accounts events, spread through the inbox
  psql -X -q -d bench_mem -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
    SELECT 'bench-metro', 'm-' || i, $first + i % $accounts, 'BENCH-METRO', 1 + i % 30, now() - interval '1 hour'
    FROM generate_series(1, $rows) i"
  psql -X -q -d bench_mem -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
  psql -X -q -d bench_mem -c "SELECT pg_backend_pid()" -c "SELECT * FROM carbon.process_inbox()" -t -A \
    >"$CL_TMP/b2m.out" 2>&1 &
  local runner=$! pid="" peak=0 kb t0 t1
  t0=$(now_ms)
  while kill -0 "$runner" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(head -n 1 "$CL_TMP/b2m.out" 2>/dev/null)
    if [ -n "$pid" ] && kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ]; then
      [ "$kb" -gt "$peak" ] && peak=$kb
    fi
    sleep 0.05
  done
  wait "$runner"
  t1=$(now_ms)
  local counts
  counts=$(tail -n 1 "$CL_TMP/b2m.out")
  [ "$counts" = "$rows|0|0|0" ] || { echo "B2m: process_inbox returned '$counts', not $rows accepted" >&2; return 1; }
  bench_integrity B2m bench_mem || return 1
  bench_row B2m "process_inbox, $((rows / 1000)) k events over $((accounts / 1000)) k accounts in one call: peak private memory (RssAnon)" \
    "$((peak / 1024)) MB" "—" "—" "< 256 MB at 10 M events / 1 M accounts"
  bench_row B2m "… its speed" "$(awk -v n="$rows" -v ms="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ms / 1000) }') events/s" "—" "—" "—"
  "$PGBIN/dropdb" bench_mem
}
