#!/usr/bin/env bash
# The last items of an offer under load (issue 18 item 2): 4 pgbench clients
# redeem one offer of 300 items for 200 random citizens until it is sold
# out.  Refusals (CL001: out of stock or past the limit) are expected and
# caught; every other error fails.  After: the stock is exactly zero (never
# negative), the redemptions add up to 300 items, the merchant holds exactly
# their points, every citizen paid exactly for what they got, and
# verify_integrity() is clean.  MALL_STOCK_SECONDS (default 6).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
SECONDS_TO_RUN=${MALL_STOCK_SECONDS:-6}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d mall "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PGBIN/dropdb" --if-exists mall >/dev/null 2>&1
"$PGBIN/createdb" mall
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT count(carbon.open_account('personal', '620700', 'mall-' || i)) FROM generate_series(1, 200) i;
SELECT carbon.open_account('merchant', '620700', 'mall-shop');
SELECT count(carbon.issue(i, 'POINT', 100000)) FROM generate_series(1, 200) i;
SELECT carbon.create_offer(201, 'the last cups', 70, 300, tstzrange(now() - interval '1 hour', now() + interval '1 day'), 5);
SQL
cat >"$work/redeem.sql" <<'SQL'
\set a random(1, 200)
\set n random(1, 3)
DO $$ BEGIN PERFORM carbon.redeem(:a, 1, :n); EXCEPTION WHEN SQLSTATE 'CL001' THEN NULL; END $$;
SQL
"$PGBIN/pgbench" -n -c 4 -j 2 -T "$SECONDS_TO_RUN" --max-tries=1 -f "$work/redeem.sql" mall >"$work/pgbench.out" 2>&1
rc=$?
grep -E "processed|failed" "$work/pgbench.out" || true

check "no client failed (only CL001 refusals, caught)" test "$rc" -eq 0
check "the offer sold out: stock exactly 0" test "$(q -c 'SELECT stock FROM carbon.offer WHERE id = 1')" = 0
check "the redemptions add up to the 300 items" test "$(q -c 'SELECT sum(quantity) FROM carbon.redemption')" = 300
check "no citizen past the limit of 5" test "$(q -c 'SELECT count(*) FROM (SELECT account FROM carbon.redemption GROUP BY 1 HAVING sum(quantity) > 5) x')" = 0
check "the shop holds exactly 300 × 70 points" test "$(q -c 'SELECT carbon.balance(201)')" = 21000
check "every citizen paid for exactly what they got" test "$(q -c "SELECT count(*) FROM generate_series(1, 200) i
  WHERE carbon.balance(i) <> 100000 - 70 * (SELECT coalesce(sum(quantity), 0) FROM carbon.redemption WHERE account = i)")" = 0
check "verify_integrity() is clean" test "$(q -c 'SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok')" = 0
"$PGBIN/dropdb" mall
echo "mall_stock: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
