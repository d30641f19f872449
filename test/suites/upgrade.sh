#!/usr/bin/env bash
# Upgrades (issue 15): a city installs 0.1, fills its ledger, and later runs
# ALTER EXTENSION carbon_ledger UPDATE without dumping anything.
#  1. every shipped version installs, and the upgrade path from each to the
#     current one exists;
#  2. a populated 0.1 ledger (accounts, behaviours, lots, transfers, freezes,
#     reversals, seals) updates in place: verify_integrity() all ok, the seals
#     still verify, every balance and lot unchanged, the new functions work;
#  3. the upgraded schema equals a fresh install of the current version,
#     object for object (test/upgrade/fingerprint.sql): a change to src/sql/
#     without its step in the upgrade script fails here.
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi
}
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

current=$(sed -nE 's/^EXTVERSION *= *([0-9.]+).*/\1/p' "$ROOT/Makefile")
check "carbon_ledger.control's default_version is the Makefile's EXTVERSION ($current)" \
  grep -q "^default_version = '$current'" "$ROOT/carbon_ledger.control"
mapfile -t shipped < <(cd "$ROOT" && ls carbon_ledger--*.sql | grep -vE -- '--.*--' \
                         | sed -E 's/carbon_ledger--(.*)\.sql/\1/' | grep -vx "$current")
check "at least one earlier version is shipped (${shipped[*]:-none})" test "${#shipped[@]}" -ge 1

for db in up_fresh up_old; do "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1; done
"$PGBIN/createdb" up_fresh
check "a fresh install is version $current" \
  test "$(q up_fresh -c "CREATE EXTENSION carbon_ledger" -c "SELECT extversion FROM pg_extension WHERE extname = 'carbon_ledger'")" = "$current"
q up_fresh -f "$ROOT/test/upgrade/fingerprint.sql" >"$work/fresh.txt"

for v in "${shipped[@]}"; do
  check "an update path leads from $v to $current" \
    test -n "$(q up_fresh -c "SELECT path FROM pg_extension_update_paths('carbon_ledger')
                                WHERE source = '$v' AND target = '$current' AND path IS NOT NULL")"
done

# A populated 0.1 ledger.
"$PGBIN/createdb" up_old
q up_old -o /dev/null <<'SQL'
CREATE EXTENSION carbon_ledger VERSION '0.1';
SET search_path = carbon, public;
SELECT open_account('personal', '620700', 'citizen-' || i, 'citizen ' || i) FROM generate_series(1, 30) i;
SELECT open_account('merchant', '620700', 'shop-' || i) FROM generate_series(1, 3) i;
SELECT open_account('government', '620700', 'bureau');
SELECT set_setting('points_validity', '1 year');
SELECT define_methodology('UP-BIKE', 1, 'bike', 'I', 'cycling', 'distance_substitution',
                          '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 0, "daily_cap_g": 4000}');
SELECT submit_methodology('UP-BIKE', 1), approve_methodology('UP-BIKE', 1, 'reviewer'),
       publish_methodology('UP-BIKE', 1, now() - interval '30 days');
SELECT register_source('up-bikes', ARRAY['cycling']);
SELECT count(*) FROM generate_series(1, 30) i, generate_series(0, 3) d,
  LATERAL record_behavior('up-bikes', 'ev-' || i || '-' || d, i, 'UP-BIKE', 3 + i % 9,
                          now() - make_interval(days => d)) r;
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
  SELECT 'up-bikes', 'bulk-' || i, 1 + i % 30, 'UP-BIKE', 2, now() - interval '1 hour'
  FROM generate_series(1, 200) i;
SELECT * FROM process_inbox();
SELECT issue(i, 'POINT', 500, 'welcome') FROM generate_series(1, 30) i;
SELECT issue(34, 'CNY', 100000, 'budget');
SELECT transfer(i, 31 + i % 3, 'POINT', 20 + i, 'coffee', 'req-' || i) FROM generate_series(1, 30) i;
SELECT transfer(34, i, 'CNY', 100 * i) FROM generate_series(1, 10) i;
SELECT seal();
SELECT set_account_status(5, 'frozen', 'dispute');
SELECT reverse_entry((SELECT max(id) FROM entry WHERE kind = 'transfer'), 'wrong shop');
SELECT transfer(i, 34, 'POINT', 3, 'donation') FROM generate_series(10, 20) i;
SELECT seal();
SQL
check "version 0.1 installs and fills (accounts, behaviours, inbox, lots, transfers, seals)" test $? -eq 0
snapshot() {
  q up_old -c "SELECT string_agg(concat_ws(':', account, asset_id, s), ',' ORDER BY account, asset_id)
                 FROM (SELECT account, asset_id, sum(amount) s FROM carbon.balance GROUP BY 1, 2) b" \
           -c "SELECT string_agg(concat_ws(':', account, asset_id, expires_at, remaining), ',' ORDER BY id) FROM carbon.lot" \
           -c "SELECT count(*) || ' entries ' || count(*) FILTER (WHERE kind = 'behavior') FROM carbon.entry" \
           -c "SELECT count(*) || ' behaviours' FROM carbon.behavior" \
           -c "SELECT string_agg(encode(hash, 'hex'), ',' ORDER BY id) FROM carbon.seal"
}
before=$(snapshot)
check "the 0.1 ledger holds balances, lots and seals" test "$(grep -c . <<<"$before")" -eq 5

q up_old -c "ALTER EXTENSION carbon_ledger UPDATE" >"$work/update.log" 2>&1
rc=$?
check "ALTER EXTENSION carbon_ledger UPDATE succeeds" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$work/update.log"
check "the extension is now version $current" \
  test "$(q up_old -c "SELECT extversion FROM pg_extension WHERE extname = 'carbon_ledger'")" = "$current"
# verify_clean: every check of verify_integrity() ok (and there are checks)
verify_clean() {
  local r
  r=$(q up_old -c "SELECT count(*) > 0 AND bool_and(ok) FROM carbon.verify_integrity()") || return 1
  [ "$r" = t ] || { q up_old -c "SELECT check_name, detail FROM carbon.verify_integrity() WHERE NOT ok"; return 1; }
}
check "verify_integrity() all ok after the update" verify_clean
check "every seal still verifies" \
  test "$(q up_old -c "SELECT ok FROM carbon.verify_integrity() WHERE check_name = 'seals_intact'")" = t
after=$(snapshot)
check "balances, lots, entries, behaviours and seals unchanged by the update" \
  test -n "$before" -a "$before" = "$after"
[ "$before" = "$after" ] || diff <(echo "$before") <(echo "$after") | head -20

# The upgraded ledger keeps working, with what 0.2 added.
check "the upgraded ledger moves value and seals" \
  q up_old -o /dev/null -c "SELECT carbon.transfer(2, 31, 'POINT', 1, 'after update', 'req-after')" -c "SELECT carbon.seal()"
check "behaviours recorded after the update" \
  test "$(q up_old <<<"SELECT carbon.open_account('personal', '620700', 'after-citizen') AS a \\gset
             SELECT status FROM carbon.record_behavior('up-bikes', 'after-1', :a, 'UP-BIKE', 2, now());")" = accepted
[ -f "$ROOT/test/upgrade/new_in_$current.sql" ] &&
  check "the functions new in $current work on the upgraded ledger (test/upgrade/new_in_$current.sql)" \
    q up_old -o "$work/new.out" -f "$ROOT/test/upgrade/new_in_$current.sql"
check "verify_integrity() all ok after using the upgraded ledger" verify_clean

# The upgraded schema is the fresh one.
q up_old -f "$ROOT/test/upgrade/fingerprint.sql" >"$work/upgraded.txt"
check "the fingerprint lists the schema ($(wc -l <"$work/fresh.txt") lines)" test "$(wc -l <"$work/fresh.txt")" -gt 200
if diff "$work/fresh.txt" "$work/upgraded.txt" >"$work/schema.diff"; then
  check "the upgraded schema equals a fresh install of $current" true
else
  check "the upgraded schema equals a fresh install of $current (< fresh, > upgraded)" false
  head -60 "$work/schema.diff"
fi

for db in up_fresh up_old; do "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1; done
echo "upgrade: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
