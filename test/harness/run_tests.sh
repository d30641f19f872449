#!/usr/bin/env bash
# `make test`: set up, then every suite against one throwaway cluster:
# static checks, pg_regress (sql/ + expected/), pgTAP (test/pgtap/, through
# pg_prove), isolation specs (test/isolation/).  Ends with `N passed, N failed`.
source "$(dirname "$0")/lib.sh"

PASSED=0
FAILED=0
FAILED_SUITES=()
tally() { # suite passed failed
  PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3))
  [ "$3" -eq 0 ] || FAILED_SUITES+=("$1")
  log "$1: $2 passed, $3 failed"
  [ "$3" -eq 0 ] || server_crashes
}

# A failing suite shows what the shared cluster's log says of crashed
# backends (the log goes with the cluster at the end).
server_crashes() {
  local logf="$CL_TMP/server.log"
  [ -f "$logf" ] || return 0
  if grep -qE 'terminated by signal|PANIC|TRAP:|out of memory' "$logf"; then
    log "server.log: crashes and what ran"
    grep -E -B3 -A4 'terminated by signal|PANIC|TRAP:|out of memory' "$logf" | tail -n 60
  fi
  for core in "$CL_TMP"/data/core*; do
    [ -f "$core" ] || continue
    log "stack of $(basename "$core")"
    if command -v gdb >/dev/null; then
      gdb -batch -ex 'bt 40' "$PGBIN/postgres" "$core" 2>/dev/null | grep -E '^#' | head -n 40
    fi
    mv "$core" "$core.seen"
  done
  return 0
}

ensure_deps
build_install

# Static check: cppcheck over src/ (one test).
if (cd "$ROOT" && make -s lint); then tally cppcheck 1 0; else tally cppcheck 0 1; fi

# pg_cron runs its jobs in background workers of this cluster (test/suites/pg_cron.sh)
start_cluster off "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
  "cron.use_background_workers = on"

# run_installcheck NAME OUTPUTDIR COUNT MAKE-ARGS... — PGXS's `make
# installcheck` (REGRESS or ISOLATION) against the cluster, exactly as a user
# runs it on their own server; tallies the ok / FAILED lines.
run_installcheck() {
  local name=$1 outputdir=$2 count=$3
  shift 3
  log "$name (make installcheck $*)"
  rm -rf "$outputdir/results" "$outputdir/regression.diffs" "$outputdir/regression.out"
  set +e
  make -C "$ROOT" -s installcheck "$@" 2>&1 | tee "$CL_TMP/$name.log"
  set -e
  local ok bad
  ok=$(grep -cE '\.\.\. ok' "$CL_TMP/$name.log" || true)
  bad=$(grep -cE '\.\.\. FAILED' "$CL_TMP/$name.log" || true)
  [ $((ok + bad)) -eq "$count" ] || bad=$((bad + count - ok - bad))
  tally "$name" "$ok" "$bad"
  [ "$bad" -eq 0 ] || cat "$outputdir/regression.diffs" 2>/dev/null || true
}

# pg_regress: behaviour as readable transcripts (sql/, expected/).
n_regress=$(ls "$ROOT"/sql/*.sql | wc -l)
run_installcheck pg_regress "$ROOT" "$n_regress" ISOLATION=

# pgTAP: refusals and invariants, each file in its own fresh database.
log "pgTAP"
tap_pass=0; tap_fail=0
for t in "$ROOT"/test/pgtap/*.sql; do
  db=tap_$(basename "$t" .sql)
  "$PGBIN/createdb" "$db"
  psql -X -q -d "$db" -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION carbon_ledger' >/dev/null
  set +e
  pg_prove -d "$db" "$t" >"$CL_TMP/prove.log" 2>&1
  rc=$?
  set -e
  cat "$CL_TMP/prove.log"
  # "Failed X/Y subtests" counts against the plan (Y), so tests that never
  # ran because the file died count as failed.
  if grep -qE 'Failed [0-9]+/[0-9]+ subtests' "$CL_TMP/prove.log"; then
    failed=$(sed -nE 's/.*Failed ([0-9]+)\/([0-9]+) subtests.*/\1/p' "$CL_TMP/prove.log" | head -1)
    total=$(sed -nE 's/.*Failed ([0-9]+)\/([0-9]+) subtests.*/\2/p' "$CL_TMP/prove.log" | head -1)
  else
    failed=0
    total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$CL_TMP/prove.log")
    total=${total:-0}
  fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; total=$((total + 1)); fi
  tap_pass=$((tap_pass + total - failed)); tap_fail=$((tap_fail + failed))
  "$PGBIN/dropdb" "$db"
done
tally pgTAP "$tap_pass" "$tap_fail"

# Isolation specs: races between sessions (test/isolation/).
n_specs=$(ls "$ROOT"/test/isolation/specs/*.spec | wc -l)
run_installcheck isolation "$ROOT/test/isolation/output_iso" "$n_specs" REGRESS=

# Script suites (test/suites/*.sh): each runs against this cluster (or
# starts its own) and ends with its own "N passed, N failed" line.
for extra in "$ROOT"/test/suites/*.sh; do
  [ -e "$extra" ] || continue
  name=$(basename "$extra" .sh)
  log "$name"
  set +e
  bash "$extra" >"$CL_TMP/suite.log" 2>&1
  rc=$?
  set -e
  cat "$CL_TMP/suite.log"
  line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$CL_TMP/suite.log" | tail -n 1)
  p=$(sed -nE 's/.*\b([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.*\b([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$line")
  p=${p:-0}; f=${f:-1}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  tally "$name" "$p" "$f"
done

stop_cluster

if [ ${#FAILED_SUITES[@]} -gt 0 ]; then log "failing suites: ${FAILED_SUITES[*]}"; fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
