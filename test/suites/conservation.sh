#!/usr/bin/env bash
# R3 conservation ("bank" test): 4 clients move value at random between
# participants for CONSERVATION_SECONDS (default 8) — points to merchants and
# the bureau, merchants settling with the platform, CNY between anyone, CER
# among the tiers that may hold it — many refused (flow, balance), many
# concurrent on the same accounts.  Per asset, what participants hold in
# total never changes, and verify_integrity() stays clean.
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
SECONDS_TO_RUN=${CONSERVATION_SECONDS:-8}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d bank "$@"; }

"$PGBIN/dropdb" --if-exists bank >/dev/null 2>&1
"$PGBIN/createdb" bank
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.open_account(t, CASE WHEN i % 2 = 0 THEN '620700' ELSE '320100' END, t || '-' || i)
FROM unnest(ARRAY['personal', 'enterprise', 'government', 'merchant', 'platform']) t, generate_series(1, 6) i;
SELECT carbon.issue(id, a, 100000) FROM carbon.account, unnest(ARRAY['POINT', 'CNY', 'CER']) a
WHERE kind = 'participant';
SQL
totals() { q -c "SELECT string_agg(s.code || '=' || t.total, ' ' ORDER BY s.code)
                 FROM (SELECT b.asset_id, sum(b.amount) AS total FROM carbon.balance b
                       JOIN carbon.account a ON a.id = b.account WHERE a.kind = 'participant' GROUP BY 1) t
                 JOIN carbon.asset s ON s.id = t.asset_id"; }
before=$(totals)

client() {
  local n=$1 end=$((SECONDS + SECONDS_TO_RUN)) batches=0
  while [ $SECONDS -lt $end ]; do
    local args=() k
    for k in 1 2 3 4 5 6 7 8 9 10; do
      local from=$((1 + RANDOM % 30)) to=$((1 + RANDOM % 30))
      local asset
      asset=$(echo POINT CNY CER | cut -d' ' -f$((1 + RANDOM % 3)))
      # each -c is its own transaction; a refusal ends that transfer only
      args+=(-c "SELECT carbon.transfer($from, $to, '$asset', 1 + $RANDOM % 500)")
    done
    psql -X -q -t -A -v ON_ERROR_STOP=0 -d bank "${args[@]}" >/dev/null 2>&1
    batches=$((batches + 1))
  done
  echo "$batches"
}
pids=()
for n in 1 2 3 4; do client "$n" >"/tmp/bank.$$.$n" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
batches=$(cat /tmp/bank.$$.* | awk '{s += $1} END {print s}')
rm -f /tmp/bank.$$.*

after=$(totals)
moved=$(q -c "SELECT count(*) FROM carbon.entry WHERE kind = 'transfer'")
echo "# $batches batches of 10 random transfers, $moved transfers committed; totals before: $before; after: $after"
check "random transfers were committed" test "$moved" -gt 100
check "per-asset totals held by participants unchanged" test "$before" = "$after"
check "verify_integrity() clean" test "$(q -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
check "no participant balance below zero" \
  test "$(q -c "SELECT count(*) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                WHERE a.kind = 'participant' AND b.amount < 0")" = 0
"$PGBIN/dropdb" bank
echo "conservation: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
