# B7: transfers of points, 4 clients, random citizens (10,000) paying random
# merchants (100), vs pgbench tpcb-like (scale 10) with 4 clients, same time.
# B9 (so far): issuance at 1, 2, 4, 8 clients — every call posts against
# the same issuance account, the would-be hot row — vs tpcb-like.

ledger_bench_setup() {
  [ -n "${LEDGER_BENCH_READY:-}" ] && return
  log "B7/B9: 10,000 citizens, 100 merchants, pgbench scale 10"
  psql -X -q -d bench >/dev/null <<'SQL'
SELECT count(carbon.open_account('personal', '620700', 'bench-citizen-' || i)) FROM generate_series(1, 10000) i;
SELECT count(carbon.open_account('merchant', '620700', 'bench-merchant-' || i)) FROM generate_series(1, 100) i;
SELECT count(carbon.issue(id, 'POINT', 100000000)) FROM carbon.account WHERE tier = 'personal' AND kind = 'participant';
SQL
  "$PGBIN/pgbench" -i -s 10 -q bench >/dev/null 2>&1
  psql -X -q -d bench -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
  cat >"$CL_TMP/transfer.sql" <<'SQL'
\set c random(1, 10000)
\set m random(10001, 10100)
SELECT carbon.transfer(:c, :m, 'POINT', 1);
SQL
  cat >"$CL_TMP/issue.sql" <<'SQL'
\set c random(1, 10000)
SELECT carbon.issue(:c, 'POINT', 1);
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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

b7() {
  ledger_bench_setup
  local seconds=${BENCH_SECONDS:-15} repeat=${BENCH_REPEAT:-3}
  local ours=() base=()
  for _ in $(seq "$repeat"); do
    base+=("$(pgbench_tps 4 "$seconds" -b tpcb-like)")
    ours+=("$(pgbench_tps 4 "$seconds" -f "$CL_TMP/transfer.sql")")
  done
  local mo mb
  mo=$(median "${ours[@]}"); mb=$(median "${base[@]}")
  bench_row B7 "transfer of points, 4 clients" "$(printf '%.0f' "$mo") tps" "tpcb-like $(printf '%.0f' "$mb") tps" \
    "$(ratio "$mo" "$mb")" "≥ 1.0"
  local bad
  bad=$(psql -X -t -A -d bench -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  [ "$bad" = 0 ] || { echo "B7: verify_integrity() found $bad broken checks" >&2; return 1; }
}

b9() {
  ledger_bench_setup
  local seconds=${BENCH_SECONDS:-10}
  for c in 1 2 4 8; do
    local mb mo
    mb=$(pgbench_tps "$c" "$seconds" -b tpcb-like)
    mo=$(pgbench_tps "$c" "$seconds" -f "$CL_TMP/issue.sql")
    bench_row B9 "issuance (one issuer account), $c client(s)" "$(printf '%.0f' "$mo") tps" \
      "tpcb-like $(printf '%.0f' "$mb") tps" "$(ratio "$mo" "$mb")" "tracks pgbench"
  done
}
