# B7: transfers of points, 4 clients, random citizens (10,000) paying random
# merchants (100), vs pgbench tpcb-like (scale 10) with 4 clients, same time;
# and redemptions: random citizens redeeming one of 100 offers.
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
SELECT count(carbon.create_offer(id, 'bench offer ' || id, 1 + id % 5, 1000000000,
                                 tstzrange(now() - interval '1 day', now() + interval '10 years')))
FROM carbon.account WHERE tier = 'merchant' AND kind = 'participant';
SQL
  "$PGBIN/pgbench" -i -s 10 -q bench >/dev/null 2>&1
  psql -X -q -d bench -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
  cat >"$CL_TMP/transfer.sql" <<'SQL'
\set c random(1, 10000)
\set m random(10001, 10100)
SELECT carbon.transfer(:c, :m, 'POINT', 1);
SQL
  cat >"$CL_TMP/redeem.sql" <<'SQL'
\set c random(1, 10000)
\set o random(1, 100)
SELECT carbon.redeem(:c, :o);
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


# profile_tx SCRIPT-ARGS... → "CPU_US WAL_BYTES WAL_RECORDS" per transaction:
# one client, synchronous_commit = off (what a transaction costs, not what
# it waits for); CPU from the backend's /proc/PID/schedstat over the middle
# of the run, WAL from pg_current_wal_lsn() and pg_stat_wal around it.
profile_tx() {
  local seconds=${BENCH_PROFILE_SECONDS:-8} out pid t0 t1 c0 c1 l0 l1 r0 r1 n
  out=$(mktemp)
  l0=$(psql -X -t -A -d bench -c "SELECT pg_current_wal_lsn()")
  r0=$(psql -X -t -A -d bench -c "SELECT wal_records FROM pg_stat_wal")
  PGOPTIONS='-c synchronous_commit=off' "$PGBIN/pgbench" -n -c 1 -T "$seconds" "$@" bench >"$out" 2>&1 &
  local pb=$!
  sleep 1
  pid=$(psql -X -t -A -d bench -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1")
  if [ -n "$pid" ] && [ -r "/proc/$pid/schedstat" ]; then
    t0=$(date +%s%N); c0=$(awk '{print $1}' "/proc/$pid/schedstat")
    sleep $((seconds - 2))
    t1=$(date +%s%N); c1=$(awk '{print $1}' "/proc/$pid/schedstat" 2>/dev/null || echo "$c0")
  fi
  wait "$pb"
  psql -X -q -d bench -c "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1 || true
  l1=$(psql -X -t -A -d bench -c "SELECT pg_current_wal_lsn()")
  r1=$(psql -X -t -A -d bench -c "SELECT wal_records FROM pg_stat_wal")
  n=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$out")
  local tps
  tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out" | head -1)
  rm -f "$out"
  local bytes
  bytes=$(psql -X -t -A -d bench -c "SELECT pg_wal_lsn_diff('$l1', '$l0')")
  awk -v dc=$((${c1:-0} - ${c0:-0})) -v dt=$((${t1:-1} - ${t0:-0})) -v tps="${tps:-0}" -v b="$bytes" \
      -v r=$((r1 - r0)) -v n="${n:-0}" \
    'BEGIN { if (n == 0 || tps == 0) { print "n/a n/a n/a"; exit }
             printf "%.0f %.0f %.1f\n", (dc / dt) / tps * 1e6, b / n, r / n }'
}

# vs_tpcb ID LABEL SCRIPT GOAL CLIENTS MODE: SCRIPT against tpcb-like at
# CLIENTS clients, alternating, BENCH_REPEAT times, in durability MODE
# (default: synchronous_commit = on; async: synchronous_commit = off);
# the medians and their ratio.  (1 and 2 clients: one run each.)
vs_tpcb() {
  local id=$1 label=$2 script=$3 goal=$4 clients=${5:-4} mode=${6:-default}
  local seconds=${BENCH_SECONDS:-10} repeat=${BENCH_REPEAT:-3}
  local ours=() base=() opts=""
  [ "$mode" = async ] && opts='-c synchronous_commit=off'
  [ "$clients" -lt 4 ] && repeat=1 && seconds=${BENCH_SMALL_SECONDS:-10}
  for _ in $(seq "$repeat"); do
    base+=("$(PGOPTIONS=$opts pgbench_tps "$clients" "$seconds" -b tpcb-like)")
    ours+=("$(PGOPTIONS=$opts pgbench_tps "$clients" "$seconds" -f "$script")")
  done
  local mo mb
  mo=$(median "${ours[@]}"); mb=$(median "${base[@]}")
  bench_row "$id" "$(vs_label "$label" "$clients" "$mode")" "$(printf '%.0f' "$mo") tps" \
    "tpcb-like $(printf '%.0f' "$mb") tps" "$(ratio "$mo" "$mb")" "$goal"
  bench_integrity "$id"
}

vs_label() { # LABEL CLIENTS MODE → the row's workload column
  local what="$1, $2 client"
  [ "$2" -eq 1 ] || what="${what}s"
  [ "$3" = async ] && what="$what, synchronous_commit = off"
  echo "$what"
}

# The 4-client rows of B1, B5 and B7 share one tpcb-like baseline.  Each
# workload is queued (vs_tpcb_queue ID LABEL SCRIPT GOAL: its two rows keep
# their place in the table) and vs_tpcb_run runs them all: per durability
# mode BENCH_REPEAT rounds of tpcb-like then every queued script, each row
# the median of its runs over the median of tpcb-like's.  The same
# alternating comparison as a vs_tpcb per workload, with a quarter of the
# baseline's runs (quality.md: make bench in under 15 minutes).
VS_QUEUE=()
vs_tpcb_queue() {
  local k=${#VS_QUEUE[@]}
  VS_QUEUE+=("$1|$2|$3|$4")
  BENCH_ROWS+=("@vs $k default" "@vs $k async")
}

vs_tpcb_run() {
  [ "${#VS_QUEUE[@]}" -gt 0 ] || return 0
  local seconds=${BENCH_SECONDS:-10} repeat=${BENCH_REPEAT:-3}
  local mode opts k id label script goal mb mo
  for mode in default async; do
    opts=""
    [ "$mode" = async ] && opts='-c synchronous_commit=off'
    local base=() ours=()
    log "4 clients, $mode durability: $repeat rounds of tpcb-like and ${#VS_QUEUE[@]} workloads, ${seconds} s each"
    for _ in $(seq "$repeat"); do
      base+=("$(PGOPTIONS=$opts pgbench_tps 4 "$seconds" -b tpcb-like)")
      for k in "${!VS_QUEUE[@]}"; do
        IFS='|' read -r id label script goal <<<"${VS_QUEUE[k]}"
        ours[k]="${ours[k]:-} $(PGOPTIONS=$opts pgbench_tps 4 "$seconds" -f "$script")"
      done
    done
    mb=$(median "${base[@]}")
    for k in "${!VS_QUEUE[@]}"; do
      IFS='|' read -r id label script goal <<<"${VS_QUEUE[k]}"
      # shellcheck disable=SC2086  # one word per run
      mo=$(median ${ours[k]})
      bench_row_fill "@vs $k $mode" \
        "$id|$(vs_label "$label" 4 "$mode")|$(printf '%.0f' "$mo") tps|tpcb-like $(printf '%.0f' "$mb") tps|$(ratio "$mo" "$mb")|$goal"
    done
  done
  bench_integrity "B1/B5/B7"
  VS_QUEUE=()
}

# cost_rows ID LABEL SCRIPT: what a transaction of SCRIPT and of tpcb-like
# cost (CPU, WAL), side by side.  Queued like the 4-client rows (the row
# keeps its place) and measured by vs_tpcb_run after them: on tables their
# runs have warmed, each page already written once since the checkpoint
# (measured first after the set-up's CHECKPOINT, tpcb-like's row paid its
# full-page images: 3,681 WAL bytes a transaction instead of about 600).
COST_QUEUE=()
cost_rows() {
  local k=${#COST_QUEUE[@]}
  COST_QUEUE+=("$1|$2|$3")
  BENCH_ROWS+=("@cost $k")
}

cost_rows_run() {
  [ "${#COST_QUEUE[@]}" -gt 0 ] || return 0
  local k id label script oc ob orr bc bb br
  log "costs per transaction (1 client, synchronous_commit = off)"
  # tpcb-like's cost once: every workload's row compares with it
  read -r bc bb br <<<"$(profile_tx -b tpcb-like)"
  for k in "${!COST_QUEUE[@]}"; do
    IFS='|' read -r id label script <<<"${COST_QUEUE[k]}"
    read -r oc ob orr <<<"$(profile_tx -f "$script")"
    bench_row_fill "@cost $k" \
      "$id|$label: cost per transaction (1 client, synchronous_commit = off)|$oc µs CPU, $ob B / $orr WAL records|tpcb-like $bc µs, $bb B / $br records|$(ratio "$oc" "$bc") CPU|—"
  done
  COST_QUEUE=()
}

# The machine: cores, and tpcb-like at 1 client with fsync on (its flush
# latency: what a commit waits for here).
machine_line() {
  [ -n "${BENCH_MACHINE:-}" ] && return
  local one
  one=$(pgbench_tps 1 "${BENCH_SMALL_SECONDS:-10}" -b tpcb-like)
  BENCH_MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), PostgreSQL $(pg_config --version | awk '{print $2}'); tpcb-like at 1 client, fsync on: $(printf '%.0f' "$one") tps"
  export BENCH_MACHINE
}

b7() {
  ledger_bench_setup
  machine_line
  vs_tpcb_queue B7 "transfer of points" "$CL_TMP/transfer.sql" "≥ 1.0"
  vs_tpcb B7 "transfer of points" "$CL_TMP/transfer.sql" "—" 1 default
  vs_tpcb B7 "transfer of points" "$CL_TMP/transfer.sql" "—" 2 default
  cost_rows B7 "transfer" "$CL_TMP/transfer.sql"
  # the mall (issue 18): one redemption per transaction, random citizens, 100 offers
  vs_tpcb_queue B7 "redeem" "$CL_TMP/redeem.sql" "≥ 1.0"
  cost_rows B7 "redeem" "$CL_TMP/redeem.sql"
}

b1() {
  ledger_bench_setup
  machine_line
  vs_tpcb_queue B1 "record_behavior" "$CL_TMP/behavior.sql" "≥ 0.8"
  cost_rows B1 "record_behavior" "$CL_TMP/behavior.sql"
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
  bench_integrity B9
}
