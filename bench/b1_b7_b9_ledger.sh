# B7: transfers of points, 4 clients, random citizens (10,000) paying random
# merchants (100), vs pgbench tpcb-like (scale 10) with 4 clients, same time.
# B1: one record_behavior per transaction, 4 clients, vs tpcb-like.
# B9: B1 at 1, 2, 4, 8 clients — every event posts against the same
# issuance accounts, the would-be hot rows — vs tpcb-like at each count.

# The daily cap is set far above what a run reaches: every event is
# accepted and posts (a capped event posts nothing and would flatter the
# later runs, B9 most).
ledger_bench_setup() {
  [ -n "${LEDGER_BENCH_READY:-}" ] && return
  log "B7/B9: 10,000 citizens, 100 merchants, pgbench scale 10"
  psql -X -q -d bench >/dev/null <<'SQL'
SELECT count(carbon.open_account('personal', '620700', 'bench-citizen-' || i)) FROM generate_series(1, 10000) i;
SELECT count(carbon.open_account('merchant', '620700', 'bench-merchant-' || i)) FROM generate_series(1, 100) i;
SELECT count(carbon.issue(id, 'POINT', 100000000)) FROM carbon.account WHERE tier = 'personal' AND kind = 'participant';
SELECT carbon.define_methodology('BENCH-METRO', 1, 'metro', 'I', 'metro', 'distance_substitution',
  '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 100000000, "max_activity": 200}');
SELECT carbon.submit_methodology('BENCH-METRO', 1), carbon.approve_methodology('BENCH-METRO', 1, 'bench'),
       carbon.publish_methodology('BENCH-METRO', 1, now() - interval '1 day');
SELECT carbon.register_source('bench-metro', ARRAY['metro']);
SQL
  "$PGBIN/pgbench" -i -s 10 -q bench >/dev/null 2>&1
  psql -X -q -d bench -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
  cat >"$CL_TMP/transfer.sql" <<'SQL'
\set c random(1, 10000)
\set m random(10001, 10100)
SELECT carbon.transfer(:c, :m, 'POINT', 1);
SQL
  cat >"$CL_TMP/behavior.sql" <<'SQL'
\set c random(1, 10000)
\set km random(1, 30)
SELECT status FROM carbon.record_behavior('bench-metro', gen_random_uuid()::text, :c, 'BENCH-METRO', :km, now());
SQL
  LEDGER_BENCH_READY=1
}

# tps CLIENTS SECONDS SCRIPT-ARGS... → transactions per second (no failures allowed)
pgbench_tps() {
  local clients=$1 seconds=$2; shift 2
  local out
  out=$("$PGBIN/pgbench" -n -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$seconds" "$@" bench 2>&1)
  if grep -qE 'number of failed transactions: [1-9]' <<<"$out" || ! grep -q '^tps' <<<"$out"; then
    echo "$out" >&2; echo 0; return
  fi
  sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out" | head -1
}


# vs_tpcb ID LABEL SCRIPT GOAL: SCRIPT at 4 clients against tpcb-like,
# alternating, BENCH_REPEAT times; the medians and their ratio.
vs_tpcb() {
  local id=$1 label=$2 script=$3 goal=$4
  local seconds=${BENCH_SECONDS:-15} repeat=${BENCH_REPEAT:-3}
  local ours=() base=()
  for _ in $(seq "$repeat"); do
    base+=("$(pgbench_tps 4 "$seconds" -b tpcb-like)")
    ours+=("$(pgbench_tps 4 "$seconds" -f "$script")")
  done
  local mo mb
  mo=$(median "${ours[@]}"); mb=$(median "${base[@]}")
  bench_row "$id" "$label" "$(printf '%.0f' "$mo") tps" "tpcb-like $(printf '%.0f' "$mb") tps" \
    "$(ratio "$mo" "$mb")" "$goal"
  local bad
  bad=$(psql -X -t -A -d bench -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  [ "$bad" = 0 ] || { echo "$id: verify_integrity() found $bad broken checks" >&2; return 1; }
}

b7() {
  ledger_bench_setup
  vs_tpcb B7 "transfer of points, 4 clients" "$CL_TMP/transfer.sql" "≥ 1.0"
}

b1() {
  ledger_bench_setup
  vs_tpcb B1 "record_behavior, 4 clients" "$CL_TMP/behavior.sql" "≥ 0.8"
}

b9() {
  ledger_bench_setup
  local seconds=${BENCH_SECONDS:-10}
  for c in 1 2 4 8; do
    local mb mo
    mb=$(pgbench_tps "$c" "$seconds" -b tpcb-like)
    mo=$(pgbench_tps "$c" "$seconds" -f "$CL_TMP/behavior.sql")
    bench_row B9 "record_behavior, $c client(s)" "$(printf '%.0f' "$mo") tps" \
      "tpcb-like $(printf '%.0f' "$mb") tps" "$(ratio "$mo" "$mb")" "tracks pgbench"
  done
  local bad
  bad=$(psql -X -t -A -d bench -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  [ "$bad" = 0 ] || { echo "B9: verify_integrity() found $bad broken checks" >&2; return 1; }
}
