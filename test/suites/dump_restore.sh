#!/usr/bin/env bash
# R6: pg_dump → pg_restore into a new database keeps the whole ledger: every
# ledger table equal row for row, verify_integrity() clean, the HMAC key and
# the sequences carried over (lookups and new entries keep working).
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi
}
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PGBIN/dropdb" --if-exists r6_src >/dev/null 2>&1; "$PGBIN/dropdb" --if-exists r6_dst >/dev/null 2>&1
"$PGBIN/createdb" r6_src
q r6_src >/dev/null <<'SQL' || { echo "not ok - setting up the source ledger"; echo "dump_restore: 0 passed, 1 failed"; exit 1; }
CREATE EXTENSION carbon_ledger;
SET search_path = carbon, public;
SELECT define_asset('RAINBOW', 'currency', '彩虹元');
INSERT INTO allowed_flow (from_tier, to_tier, asset, allowed, note) VALUES ('personal', 'personal', 'RAINBOW', true, 'tourism');
SELECT open_account('personal', '620700', 'citizen-' || i, 'citizen ' || i) FROM generate_series(1, 40) i;
SELECT open_account('merchant', '620700', 'shop-' || i) FROM generate_series(1, 4) i;
SELECT open_account('government', '320100', 'bureau');
SELECT issue(id, 'POINT', 1000 + id) FROM account WHERE tier = 'personal' AND kind = 'participant';
SELECT issue(id, 'RAINBOW', 50) FROM account WHERE tier = 'personal' AND kind = 'participant' AND id % 2 = 0;
SELECT transfer(id, 41 + id % 4, 'POINT', 10 + id, 'coffee', 'req-' || id) FROM account WHERE tier = 'personal' AND kind = 'participant';
SELECT transfer(id, 45, 'POINT', 5, 'donation') FROM account WHERE tier = 'personal' AND kind = 'participant' AND id % 3 = 0;
SELECT transfer(2, 3, 'RAINBOW', 7);
SELECT seal();
SELECT set_account_status(7, 'frozen', 'dispute');
SELECT reverse_entry(50, 'wrong shop');
SELECT transfer(id, 41, 'POINT', 1) FROM account WHERE tier = 'personal' AND kind = 'participant' AND id BETWEEN 10 AND 15;
SELECT seal();
SQL
"$PGBIN/pg_dump" -Fc -f "$work/ledger.dump" r6_src
"$PGBIN/createdb" r6_dst
"$PGBIN/pg_restore" -d r6_dst --exit-on-error "$work/ledger.dump" >"$work/restore.log" 2>&1
rc=$?
check "pg_restore exits cleanly" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$work/restore.log"

# built-in assets are made by CREATE EXTENSION, so their created_at is new
a=$(q r6_src -c "SELECT string_agg(concat_ws(',', id, code, kind, name, builtin), '|' ORDER BY id) FROM carbon.asset")
b=$(q r6_dst -c "SELECT string_agg(concat_ws(',', id, code, kind, name, builtin), '|' ORDER BY id) FROM carbon.asset")
check "assets restored" test "$a" = "$b"
for t in account account_status_log ref_secret entry posting balance request allowed_flow seal; do
  a=$(q r6_src -c "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) || count(*) FROM carbon.$t t")
  b=$(q r6_dst -c "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) || count(*) FROM carbon.$t t")
  check "table $t restored identically" test "$a" = "$b"
done
bad=$(q r6_dst -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
check "verify_integrity() clean after restore" test "$bad" = 0
check "external references still resolve (HMAC key restored)" \
  test "$(q r6_dst -c "SELECT carbon.account_id('personal', 'citizen-12')")" = "$(q r6_src -c "SELECT carbon.account_id('personal', 'citizen-12')")"
check "the restored ledger keeps working" \
  q r6_dst -c "SELECT carbon.transfer(12, 42, 'POINT', 3); SELECT carbon.seal();" -o /dev/null
check "new entries continue the id sequence" \
  test "$(q r6_dst -c "SELECT max(id) FROM carbon.entry")" -gt "$(q r6_src -c "SELECT max(id) FROM carbon.entry")"
bad=$(q r6_dst -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
check "verify_integrity() clean after new entries and a seal" test "$bad" = 0
check "request ids survive: a retry after restore moves nothing" \
  test "$(q r6_dst -c "SELECT carbon.transfer(11, 44, 'POINT', 21, 'coffee', 'req-11')")" = "$(q r6_src -c "SELECT result FROM carbon.request WHERE request_id = 'req-11'")"

# A restore is a superuser's COPY: it may load postings without the API, but
# an unbalanced entry is still refused (CL009), and a superuser's plain
# INSERT is not a restore (42501; issue 16: a SECURITY DEFINER function that
# inserted postings must not skip the checks).
copy_err=$(printf '%s\t1\t12\t1\t500\t2026-01-01 00:00:00+00\n\\.\n' -5 |
  psql -X -q -d r6_dst -v ON_ERROR_STOP=1 -c "INSERT INTO carbon.entry (id, kind) VALUES (-5, 'forged')" \
       -c "COPY carbon.posting FROM STDIN" 2>&1)
check "a restore's COPY of an unbalanced entry is refused (CL009)" grep -q "is unbalanced" <<<"$copy_err"
ins_err=$(q r6_dst -c "BEGIN" -c "INSERT INTO carbon.entry (id, kind) VALUES (-6, 'forged')" \
  -c "INSERT INTO carbon.posting VALUES (-6, 1, 12, 1, 5, now()), (-6, 2, 13, 1, -5, now())" 2>&1)
check "a superuser's INSERT of a balanced entry is not a restore (refused)" \
  grep -q "postings are written only by carbon_ledger's functions" <<<"$ins_err"

"$PGBIN/dropdb" r6_src; "$PGBIN/dropdb" r6_dst
echo "dump_restore: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
