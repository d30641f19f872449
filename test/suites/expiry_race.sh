#!/usr/bin/env bash
# Transfers beside the expiry job (issue 16 item 8): 2 pgbench clients issue
# and spend points over 400 citizens and 10 shops, each transaction touching
# a citizen's and a shop's balance and lots, while expire_lots(now() + 2
# days) runs in a loop and expires everything it can reach.  No transfer may
# lose a deadlock (pgbench counts deadlock failures separately), none may
# fail at all, and the ledger stays consistent.  EXPIRY_RACE_SECONDS
# (default 8).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
SECONDS_TO_RUN=${EXPIRY_RACE_SECONDS:-8}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d race "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PGBIN/dropdb" --if-exists race >/dev/null 2>&1
"$PGBIN/createdb" race
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.set_setting('points_validity', '1 day');
SELECT count(carbon.open_account('personal', '620700', 'race-' || i)) FROM generate_series(1, 400) i;
SELECT count(carbon.open_account('merchant', '620700', 'race-shop-' || i)) FROM generate_series(1, 10) i;
SELECT count(carbon.issue(i, 'POINT', 1000)) FROM generate_series(1, 400) i;
SELECT count(carbon.transfer(i, 401 + i % 10, 'POINT', 100)) FROM generate_series(1, 400) i;
SQL
cat >"$work/spend.sql" <<'SQL'
\set a random(1, 400)
\set m random(401, 410)
BEGIN;
SELECT carbon.issue(:a, 'POINT', 20);
SELECT carbon.transfer(:a, :m, 'POINT', 20);
COMMIT;
SQL

end=$((SECONDS + SECONDS_TO_RUN))
( n=0; while [ $SECONDS -lt $end ]; do
    q -c "SELECT carbon.expire_lots(now() + interval '2 days')" >/dev/null 2>>"$work/expire.err" && n=$((n + 1))
  done; echo "$n" >"$work/expire.runs" ) &
expirer=$!
"$PGBIN/pgbench" -n -c 2 -j 2 -T "$SECONDS_TO_RUN" --max-tries=1 --failures-detailed -f "$work/spend.sql" race \
  >"$work/pgbench.out" 2>&1
rc=$?
wait "$expirer"
cat "$work/pgbench.out" | grep -E "processed|failed|deadlock|serialization|aborted" || true
runs=$(cat "$work/expire.runs" 2>/dev/null || echo 0)
echo "# expire_lots ran $runs times"

check "pgbench ran to the end (no client aborted by an error)" test "$rc" -eq 0
done_tx=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$work/pgbench.out")
check "transactions went through (${done_tx:-0})" test "${done_tx:-0}" -gt 100
deadlocks=$(sed -nE 's/^number of deadlock failures: ([0-9]+).*/\1/p' "$work/pgbench.out")
check "no transfer lost a deadlock (${deadlocks:-?})" test "${deadlocks:-1}" -eq 0
failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$work/pgbench.out")
check "no transaction failed (${failed:-?})" test "${failed:-1}" -eq 0
check "the expiry job ran again and again ($runs)" test "$runs" -ge 3
check "the expiry job itself never failed" bash -c "! grep -q ERROR '$work/expire.err'"
grep ERROR "$work/expire.err" | head -5
echo "# runs that left a busy account to the next: $(grep -c 'left for the next run' "$work/expire.err")"
q -o /dev/null -c "SELECT carbon.expire_lots(now() + interval '2 days')"
check "verify_integrity() clean afterwards" \
  test "$(q -c "SELECT count(*) > 0 AND bool_and(ok) FROM carbon.verify_integrity()")" = t
check "everything expirable was expired by a last run" \
  test "$(q -c "SELECT count(*) FROM carbon.lot WHERE expires_at <= now() + interval '2 days'")" = 0

"$PGBIN/dropdb" race
echo "expiry_race: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
