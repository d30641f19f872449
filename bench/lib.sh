# bench/lib.sh — timing and reporting helpers for `make bench`.
# Every workload is measured beside its baseline in the same run; we report
# medians of alternating repetitions, never one run.

BENCH_ROWS=()
BENCH_T0=$(date +%s)
BENCH_TIMES=()

# minutes:seconds since `make bench` began
bench_elapsed() { local s=$(( $(date +%s) - BENCH_T0 )); printf '%d:%02d' $((s / 60)) $((s % 60)); }
log() { printf '\033[1m== [%s] %s\033[0m\n' "$(bench_elapsed)" "$*" >&2; }

# bench_timed NAME: run workload NAME, keeping how long it took (setup included)
bench_timed() {
  local t0=$(date +%s)
  "$1" || return 1
  BENCH_TIMES+=("$1 $(( $(date +%s) - t0 )) s")
}

# now_ms: wall clock in milliseconds
now_ms() { date +%s%3N; }

# time_sql DB SQL → elapsed ms of one psql run of SQL
time_sql() {
  local t0 t1
  t0=$(now_ms)
  psql -X -q -d "$1" -c "$2" >/dev/null
  t1=$(now_ms)
  echo $((t1 - t0))
}

# ratio A B → A / B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# bench_row ID WORKLOAD VALUE BASELINE RATIO GOAL
bench_row() { BENCH_ROWS+=("$1|$2|$3|$4|$5|$6"); }

# bench_row_fill PLACEHOLDER ROW: a row measured later takes the place its
# workload kept for it in the table (the queued rows of B1, B5 and B7)
bench_row_fill() {
  local r
  for r in "${!BENCH_ROWS[@]}"; do
    [ "${BENCH_ROWS[r]}" = "$1" ] && BENCH_ROWS[r]=$2
  done
  return 0
}

# bench_integrity WHAT [DB]: verify_integrity() of DB (bench) is clean
bench_integrity() {
  local bad
  bad=$(psql -X -t -A -d "${2:-bench}" -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  [ "$bad" = 0 ] || { echo "$1: verify_integrity() found $bad broken checks" >&2; return 1; }
}

bench_print() {
  local out=$ROOT/bench/results/latest.md
  mkdir -p "$(dirname "$out")"
  {
    echo "| id | workload | measured | baseline | ratio | goal |"
    echo "|---|---|---|---|---|---|"
    for r in "${BENCH_ROWS[@]}"; do echo "| ${r//|/ | } |"; done
    echo
    echo "Measured $(date -u +%Y-%m-%d); machine: ${BENCH_MACHINE:-$(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}')}. BENCH_SCALE=${BENCH_SCALE:-1}; B1, B5, B7 at 4 clients: medians of ${BENCH_REPEAT:-3} rounds, each a ${BENCH_SECONDS:-10} s run of tpcb-like then of each workload, in both durability modes (default: fsync and synchronous_commit on; and synchronous_commit = off); at 1 and 2 clients one ${BENCH_SMALL_SECONDS:-10} s run each; costs per transaction from one ${BENCH_PROFILE_SECONDS:-8} s run at 1 client (CPU: the backend's schedstat); B6: median of ${BENCH_REPEAT:-5}; B9: one ${BENCH_SECONDS:-10} s run per client count."
    echo
    echo "The run took $(bench_elapsed) (minutes:seconds; each workload with its setup: ${BENCH_TIMES[*]:-})."
  } >"$out"
  printf '%-4s %-62s %-34s %-34s %-8s %s\n' id workload measured baseline ratio goal
  for r in "${BENCH_ROWS[@]}"; do
    IFS='|' read -r a b c d e f <<<"$r"
    printf '%-4s %-62s %-34s %-34s %-8s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
  done
  echo "machine: ${BENCH_MACHINE:-$(nproc) cores}"
  echo "took $(bench_elapsed): ${BENCH_TIMES[*]:-}"
  echo "(written to bench/results/latest.md)"
}
