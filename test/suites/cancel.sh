#!/usr/bin/env bash
# Long calls can be cancelled (issue 16 item 12): a process_inbox() over
# 200,000 rows and an expire_lots() over about 400,000 lots are each
# cancelled with pg_cancel_backend() shortly after they start; each must
# stop within a second with SQLSTATE 57014, leaving nothing half-written
# (the inbox, lots, balances and journal exactly as before, and
# verify_integrity() clean).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d cancel "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ms() { date +%s%3N; }

"$PGBIN/dropdb" --if-exists cancel >/dev/null 2>&1
"$PGBIN/createdb" cancel
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.set_setting('points_validity', '1 day');
SELECT carbon.define_methodology('CX-BIKE', 1, 'bike', 'I', 'cycling', 'distance_substitution',
                                 '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 0}');
SELECT carbon.submit_methodology('CX-BIKE', 1), carbon.approve_methodology('CX-BIKE', 1, 'r'),
       carbon.publish_methodology('CX-BIKE', 1, now() - interval '30 days');
SELECT carbon.register_source('cx-bikes', ARRAY['cycling']);
-- 200,000 citizens (written directly: opening them one by one would take minutes)
INSERT INTO carbon.account (tier, region, ref_hash)
  SELECT 'personal', '620700', decode(md5('cx-' || i), 'hex') FROM generate_series(1, 200000) i;
SQL
fingerprint() {
  q -c "SELECT (SELECT count(*) FROM carbon.behavior_inbox) || ' inbox, '
            || (SELECT count(*) FROM carbon.behavior) || ' behaviours, '
            || (SELECT count(*) || '/' || coalesce(sum(remaining), 0) FROM carbon.lot) || ' lots, '
            || (SELECT coalesce(sum(amount), 0) FROM carbon.balance WHERE amount > 0) || ' held, '
            || (SELECT count(*) FROM carbon.entry) || ' entries, '
            || (SELECT count(*) FROM carbon.posting) || ' postings'"
}
# cancel_after MS SQL: runs SQL, cancels it after MS ms; prints "<elapsed ms after the cancel> <sqlstate>"
cancel_after() {
  local delay=$1 sql=$2 pid t0
  ( psql -X -q -t -A -d cancel -v VERBOSITY=verbose -c "SELECT pg_backend_pid()" -c "$sql" \
      >"$work/out" 2>"$work/err"; echo $? >"$work/rc" ) &
  local runner=$!
  for _ in $(seq 1 100); do pid=$(head -n 1 "$work/out" 2>/dev/null); [ -n "$pid" ] && break; sleep 0.05; done
  sleep "$(awk "BEGIN { print $delay / 1000 }")"
  t0=$(ms)
  q -c "SELECT pg_cancel_backend($pid)" >/dev/null
  wait "$runner"
  echo "$(( $(ms) - t0 )) $(sed -nE 's/^ERROR: +([0-9A-Z]{5}):.*/\1/p' "$work/err" | head -n 1)"
}

# 1. process_inbox over 200,000 rows
q -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
      SELECT 'cx-bikes', 'ev-' || i, i, 'CX-BIKE', 3, now() - interval '1 hour' FROM generate_series(1, 200000) i"
before=$(fingerprint)
read -r took code <<<"$(cancel_after 700 "SELECT * FROM carbon.process_inbox()")"
echo "# process_inbox cancelled: stopped ${took} ms after the cancel, SQLSTATE ${code:-none}"
check "process_inbox stops with 57014 (query canceled)" test "$code" = 57014
check "process_inbox stops within a second of the cancel ($took ms)" test "$took" -lt 1000
check "nothing of the cancelled process_inbox remains ($before)" test "$(fingerprint)" = "$before"

# 2. expire_lots over the lots of those rows, once they are in
q -o /dev/null -c "SELECT * FROM carbon.process_inbox()"
before=$(fingerprint)
check "the inbox was processed into lots (${before})" test "$(q -c "SELECT count(*) FROM carbon.lot")" -ge 350000
read -r took code <<<"$(cancel_after 300 "SELECT * FROM carbon.expire_lots(now() + interval '3 days')")"
echo "# expire_lots cancelled: stopped ${took} ms after the cancel, SQLSTATE ${code:-none}"
check "expire_lots stops with 57014 (query canceled)" test "$code" = 57014
check "expire_lots stops within a second of the cancel ($took ms)" test "$took" -lt 1000
check "nothing of the cancelled expire_lots remains" test "$(fingerprint)" = "$before"
check "verify_integrity() clean" \
  test "$(q -c "SELECT count(*) > 0 AND bool_and(ok) FROM carbon.verify_integrity()")" = t

"$PGBIN/dropdb" cancel
echo "cancel: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
