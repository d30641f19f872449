#!/usr/bin/env bash
# R3 conservation ("bank" test): 4 clients move value at random between
# participants for CONSERVATION_SECONDS (default 8) — points to merchants and
# the bureau, merchants settling with the platform, CNY between anyone, CER
# among the tiers that may hold it — and use the mall: redemptions of the
# merchants' offers, refunds, settlements into the redeemed sink, exchanges
# of points into 彩虹元 and back; many refused (flow, balance, stock,
# nothing to refund), many concurrent on the same accounts.  Per asset, what
# participants, the redeemed sinks and the clearing accounts hold in total
# never changes, and verify_integrity() stays clean.
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
SELECT carbon.create_offer(id, 'offer of ' || id, 1 + id % 7, 1000000,
                           tstzrange(now() - interval '1 hour', now() + interval '1 day'))
FROM carbon.account WHERE tier = 'merchant' AND kind = 'participant' ORDER BY id;
SELECT carbon.define_asset('RAINBOW', 'currency', '彩虹元');
SELECT carbon.set_exchange_rate('POINT', 'RAINBOW', 1, 3, now()), carbon.set_exchange_rate('RAINBOW', 'POINT', 3, 1, now());
SQL
totals() { q -c "SELECT string_agg(s.code || '=' || coalesce(t.total, 0), ' ' ORDER BY s.code)
                 FROM carbon.asset s LEFT JOIN
                      (SELECT b.asset_id, sum(b.amount) AS total FROM carbon.balance b
                       JOIN carbon.account a ON a.id = b.account
                       WHERE a.kind IN ('participant', 'redeemed', 'clearing') GROUP BY 1) t ON t.asset_id = s.id"; }
before=$(totals)

client() {
  local n=$1 end=$((SECONDS + SECONDS_TO_RUN)) batches=0
  while [ $SECONDS -lt $end ]; do
    local args=() k
    for k in 1 2 3 4 5 6 7 8 9 10; do
      local from=$((1 + RANDOM % 30)) to=$((1 + RANDOM % 30))
      local asset
      asset=$(echo POINT CNY CER | cut -d' ' -f$((1 + RANDOM % 3)))
      # each -c is its own transaction; a refusal ends that call only
      case $((RANDOM % 10)) in
        0|1) args+=(-c "SELECT carbon.redeem($from, 1 + $RANDOM % 6, 1 + $RANDOM % 3)") ;;
        2) args+=(-c "SELECT carbon.refund_redemption((SELECT entry_id FROM carbon.redemption
                                                       ORDER BY random() LIMIT 1), 1)") ;;
        3) args+=(-c "SELECT carbon.settle_merchant((SELECT merchant FROM carbon.offer WHERE id = 1 + $RANDOM % 6))") ;;
        4) args+=(-c "SELECT carbon.exchange($from, 'POINT', 1 + $RANDOM % 50, 'RAINBOW')") ;;
        5) args+=(-c "SELECT carbon.exchange($from, 'RAINBOW', 1 + $RANDOM % 5, 'POINT')") ;;
        *) args+=(-c "SELECT carbon.transfer($from, $to, '$asset', 1 + $RANDOM % 500)") ;;
      esac
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
mall=$(q -c "SELECT (SELECT count(*) FROM carbon.redemption) || ' redemptions, ' ||
                    (SELECT count(*) FROM carbon.refund) || ' refunds, ' ||
                    (SELECT count(*) FROM carbon.settlement WHERE entry_id IS NOT NULL) || ' settlements, ' ||
                    (SELECT count(*) FROM carbon.exchange) || ' exchanges'")
echo "# the mall: $mall"
check "redemptions, refunds, settlements and exchanges were committed" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.redemption) > 20 AND (SELECT count(*) FROM carbon.refund) > 5
                  AND (SELECT count(*) FROM carbon.settlement WHERE entry_id IS NOT NULL) > 5
                  AND (SELECT count(*) FROM carbon.exchange) > 20")" = t
check "no offer's stock below zero, no redemption refunded past its quantity" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.offer WHERE stock < 0)
                     + (SELECT count(*) FROM carbon.redemption WHERE refunded > quantity)")" = 0
check "per-asset totals held by participants, redeemed sinks and clearing unchanged" test "$before" = "$after"
check "verify_integrity() clean" test "$(q -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
check "no participant balance below zero" \
  test "$(q -c "SELECT count(*) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                WHERE a.kind = 'participant' AND b.amount < 0")" = 0
"$PGBIN/dropdb" bank
echo "conservation: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
