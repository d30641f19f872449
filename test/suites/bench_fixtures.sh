#!/usr/bin/env bash
# The ledger `make bench` writes straight into the tables for B8 (bench/
# b8_data.sql and bench/b8_views.sh), at a small scale: 200,000 postings
# over 20,000 accounts.  make bench times the views on 10 M postings and
# leaves verify_integrity() out (1-2 minutes there); this suite checks what
# the load makes:
#  1. it loads, and verify_integrity() is clean on it;
#  2. the indexes it set aside during the load are all back, as a fresh
#     install defines them (the views read the extension's own indexes);
#  3. every view of B8 answers on it.
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
log() { echo "# $*"; }
CL_TMP=$(mktemp -d)
trap 'rm -rf "$CL_TMP"' EXIT
export CL_TMP PGBIN ROOT
source "$ROOT/bench/lib.sh"
source "$ROOT/bench/b8_views.sh"
BENCH_ROWS=()

for db in b8 b8_fresh; do "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1; done
BENCH_B8_POSTINGS=200000
check "B8's ledger loads (200,000 postings)" b8_setup
q() { psql -X -q -t -A -d "$@"; }
check "verify_integrity() is clean on it" test "$(q b8 -c 'SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok')" = 0
check "... and it holds what was asked (200,000 postings, 20,000 citizens)" \
  test "$(q b8 -c "SELECT (SELECT count(*) >= 200000 FROM carbon.posting) AND (SELECT count(*) = 20000 FROM carbon.account WHERE tier = 'personal' AND kind = 'participant')")" = t
"$PGBIN/createdb" b8_fresh
q b8_fresh -c 'CREATE EXTENSION carbon_ledger' >/dev/null
indexes="SELECT string_agg(d, E'\n' ORDER BY d)
         FROM (SELECT pg_get_indexdef(x.indexrelid) || coalesce(' / ' || pg_get_constraintdef(c.oid), '') AS d
               FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
               LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = t.oid
               WHERE t.relnamespace = 'carbon'::regnamespace) i"
check "the indexes set aside for the load are back, as a fresh install has them" \
  test "$(q b8 -c "$indexes")" = "$(q b8_fresh -c "$indexes")"
check "no table of the load is left behind" test "$(q b8 -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'b8%'")" = 0
B8_REUSE=1 B8_KEEP=1 b8 >/dev/null 2>&1
check "every view of B8 answers on it (20 rows timed)" test "$(printf '%s\n' "${BENCH_ROWS[@]}" | grep -c '^B8|.* ms|')" = 20
for db in b8 b8_fresh; do "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1; done
echo "bench_fixtures: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
