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
}

ensure_deps
build_install

# Static check: cppcheck over src/ (one test).
if (cd "$ROOT" && make -s lint); then tally cppcheck 1 0; else tally cppcheck 0 1; fi

start_cluster off

# pg_regress: behaviour as readable transcripts.
log "pg_regress"
mapfile -t regress < <(cd "$ROOT/sql" && ls *.sql | sed 's/\.sql$//')
rm -rf "$ROOT/results" "$ROOT/regression.diffs" "$ROOT/regression.out"
set +e
"$PGXS_DIR/src/test/regress/pg_regress" --inputdir="$ROOT" --outputdir="$ROOT" \
  --bindir="$PGBIN" --dbname=carbon_regress --load-extension=carbon_ledger \
  "${regress[@]}" 2>&1 | tee "$CL_TMP/regress.log"
set -e
ok=$(grep -cE '\.\.\. ok' "$CL_TMP/regress.log" || true)
bad=$(grep -cE '\.\.\. FAILED' "$CL_TMP/regress.log" || true)
[ $((ok + bad)) -eq ${#regress[@]} ] || bad=$((bad + ${#regress[@]} - ok - bad))
tally pg_regress "$ok" "$bad"
[ "$bad" -eq 0 ] || cat "$ROOT/regression.diffs" 2>/dev/null || true

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

# Isolation specs: races between sessions.
log "isolation"
mapfile -t specs < <(cd "$ROOT/test/isolation/specs" && ls *.spec | sed 's/\.spec$//')
iso_out="$ROOT/test/isolation/output_iso"
rm -rf "$iso_out"; mkdir -p "$iso_out"
set +e
"$PGXS_DIR/src/test/isolation/pg_isolation_regress" --inputdir="$ROOT/test/isolation" \
  --outputdir="$iso_out" --bindir="$PGBIN" --dbname=carbon_isolation \
  --load-extension=carbon_ledger "${specs[@]}" 2>&1 | tee "$CL_TMP/iso.log"
set -e
ok=$(grep -cE '\.\.\. ok' "$CL_TMP/iso.log" || true)
bad=$(grep -cE '\.\.\. FAILED' "$CL_TMP/iso.log" || true)
[ $((ok + bad)) -eq ${#specs[@]} ] || bad=$((bad + ${#specs[@]} - ok - bad))
tally isolation "$ok" "$bad"
[ "$bad" -eq 0 ] || cat "$iso_out/regression.diffs" 2>/dev/null || true

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
