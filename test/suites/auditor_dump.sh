#!/usr/bin/env bash
# Issue 16 item 15: a login of carbon_auditor, or of carbon_admin, can
# pg_dump the ledger it may read (once "permission denied for sequence
# account_id_seq": the sequences are now granted SELECT to both roles).
#
# The commands (what each flag is for):
#   auditor: pg_dump -a -U <login> --enable-row-security -n carbon -T carbon.ref_secret <db>
#   admin:   pg_dump -a -U <login> --enable-row-security -n carbon <db>
# --enable-row-security  needed: the ledger tables have row-level security
#     (the roles see every row through their read_all policies), and without
#     it pg_dump sets row_security = off, which fails for a role that is not
#     the owner ("query would be affected by row-level security policy for
#     table account").
# -T carbon.ref_secret   needed for the auditor only: it may not read the
#     HMAC key ("permission denied for table ref_secret"); the admin may.
# -n carbon              not needed for privileges: every table of the
#     schema is a member of the extension AND one of its configuration
#     tables (pg_extension_config_dump), and pg_dump dumps a configuration
#     table's data when the extension is dumped (a whole-database dump) or
#     when its schema or the table itself is asked for (-n carbon / -t), the
#     extension's own rows filtered out (asset WHERE NOT builtin,
#     allowed_flow WHERE NOT seeded).  With -n carbon the dump is only the
#     ledger, whatever else the database holds.  A member table that is not a
#     configuration table would not be dumped at all.
# -a                     not needed for privileges either (a schema-and-data
#     dump works too); the ledger's rows are what an auditor takes away.
# The sequences' values come along as setval() calls: pg_dump reads every
# configuration sequence, hence the SELECT grant on them.
# The ledger dumped has rows in every table (the market's too: orders that
# traded, one resting, one expired at the close, one cancelled; trades, one
# of them retiring; a closed market day), restored identically.
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
DB=auditor_dump; DST=auditor_dump_restored
AUDITOR=cl_dump_auditor; ADMIN=cl_dump_admin
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi
}
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }

# the logins are the cluster's: dropped with the databases, before and after
drop_all() {
  "$PGBIN/dropdb" --if-exists "$DB" >/dev/null 2>&1; "$PGBIN/dropdb" --if-exists "$DST" >/dev/null 2>&1
  psql -X -q -d postgres -c "DROP ROLE IF EXISTS $AUDITOR" -c "DROP ROLE IF EXISTS $ADMIN" >/dev/null 2>&1
}
drop_all
work=$(mktemp -d)
trap 'drop_all; rm -rf "$work"' EXIT

"$PGBIN/createdb" "$DB"
q "$DB" >/dev/null <<SQL || { echo "not ok - setting up the ledger and the logins"; echo "auditor_dump: 0 passed, 1 failed"; exit 1; }
CREATE EXTENSION carbon_ledger;
CREATE ROLE $AUDITOR LOGIN IN ROLE carbon_auditor;
CREATE ROLE $ADMIN LOGIN IN ROLE carbon_admin;
SET search_path = carbon, public;
SELECT define_asset('RAINBOW', 'currency', '彩虹元');
INSERT INTO allowed_flow (from_tier, to_tier, asset, allowed, note) VALUES ('personal', 'personal', 'RAINBOW', true, 'tourism');
SELECT open_account('personal', '620700', 'citizen-' || i, 'citizen ' || i) FROM generate_series(1, 10) i;
SELECT open_account('merchant', '620700', 'shop-' || i) FROM generate_series(1, 2) i;
SELECT issue(id, 'POINT', 1000 + id) FROM account WHERE tier = 'personal' AND kind = 'participant';
SELECT issue(id, 'RAINBOW', 50) FROM account WHERE tier = 'personal' AND kind = 'participant' AND id % 2 = 0;
SELECT transfer(id, 11 + id % 2, 'POINT', 10 + id, 'coffee', 'req-' || id) FROM account WHERE tier = 'personal' AND kind = 'participant';
SELECT transfer(2, 3, 'RAINBOW', 7);
SELECT bind_account(11, '$ADMIN');
SELECT seal();
SELECT set_account_status(7, 'frozen', 'dispute');
SELECT reverse_entry(12, 'wrong shop');
SELECT seal();
-- the citizens' side: behaviours with points, lots, daily usage and
-- remainders; a rejected inbox row and two still waiting; a cap, a setting
SELECT set_setting('points_per_kg', '100');
SELECT define_methodology('CN-METRO', 1, 'metro ride', 'I', 'metro', 'distance_substitution',
                          '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 5000}');
SELECT submit_methodology('CN-METRO', 1), approve_methodology('CN-METRO', 1, 'panel'),
       publish_methodology('CN-METRO', 1, now() - interval '30 days');
SELECT register_source('zy-metro', ARRAY['metro']);
-- a bulk call before any cap: its entry is linked to its behaviours (behavior_batch)
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
  SELECT 'zy-metro', 'bulk-' || i, i, 'CN-METRO', 1.5, now() - interval '2 hours' FROM generate_series(1, 3) i;
SELECT process_inbox();
SELECT set_issuance_cap('POINT', 'personal', '620700', extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int, 100000000);
SELECT record_behavior('zy-metro', 'ride-' || i, i, 'CN-METRO', 3.3 * i, now() - interval '1 hour') FROM generate_series(1, 8) i;
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('zy-metro', NULL, 9, 'CN-METRO', 2, now() - interval '1 hour');
SELECT process_inbox();
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('zy-metro', 'inbox-1', 9, 'CN-METRO', 2, now() - interval '1 hour'),
       ('zy-metro', 'inbox-2', 10, 'CN-METRO', 4, now() - interval '1 hour');
-- the mall: an offer, redemptions, a refund, a settlement
SELECT create_offer(11, 'tea', 100, 10, tstzrange(now() - interval '1 hour', now() + interval '1 day'));
SELECT redeem(1, 1, 2), redeem(2, 1);
SELECT refund_redemption((SELECT min(entry_id) FROM redemption), 1);
SELECT settle_merchant(11);
-- exchange and a donation
SELECT open_account('government', '620700', 'fund', 'eco fund');
SELECT set_exchange_rate('POINT', 'RAINBOW', 1, 3, now());
SELECT exchange(3, 'POINT', 10, 'RAINBOW');
SELECT donate(4, (SELECT max(id) FROM account WHERE tier = 'government'), 5);
-- projects and certified units: a holiday, a forestry project (10 % to the
-- buffer pool) from registration to issuance, units sold to the fund, retired
-- oldest first and by a named range (certificates), a monitoring report
-- still waiting for its verifier
INSERT INTO holiday VALUES ('2026-10-01', '国庆节');
SELECT open_account('enterprise', '620700', 'farm', 'forest farm') AS farm,
       open_account('verifier', '620100', 'verifier', 'verification body') AS verifier,
       account_id('government', 'fund') AS fund \gset
SELECT define_methodology('CN-FOREST', 1, 'forest carbon sink', 'I', 'forestry', 'per_unit',
                          '{"g_per_unit": 1, "buffer_pct": 10}');
SELECT submit_methodology('CN-FOREST', 1), approve_methodology('CN-FOREST', 1, 'panel'),
       publish_methodology('CN-FOREST', 1, now() - interval '30 days');
SELECT register_project(:farm, 'FOREST01', 'reforestation', 'CN-FOREST', '620700', 'no revenue without carbon')
  AS project \gset
SELECT publicize_project(:project, current_date - 30), approve_project(:project);
SELECT submit_monitoring(:project, '[2024-01-01,2024-12-31]', '100.5 t', '{"plots": 3}') AS report \gset
SELECT submit_monitoring(:project, '[2025-01-01,2025-06-30]', '20 t');
SELECT verify_monitoring(:report, :verifier, '100.5 t', 'reasonable assurance');
SELECT * FROM issue_units(:report);
SELECT transfer_units(:farm, :fund, 30, 'sale 1');
SELECT * FROM retire_units(:fund, 5, 'voluntary', 'eco fund 2026', NULL, 'fund-ret-1');
SELECT * FROM retire_serials(:farm, '620700-2024-FOREST01-000000091-000000100', 'entity_neutrality', 'forest farm 2024');
-- the market: cash for the fund, a fee, a reference price; the farm offers
-- units, the fund buys some (a buy that retires them for an event: a
-- certificate), a bid of the fund rests, a DAY bid expires at the close, an
-- offer is cancelled
SELECT deposit_cash(:fund, 5000, 'treasury 2026-17', 'fund-dep-1');
SELECT set_setting('trade_fee_bps', '10');
SELECT set_reference_price('CER-I', 60.00);
SELECT * FROM place_order(:farm, 'sell', 20, 61.00, 'GTC', 'CER-I', 'farm-ask-1');
SELECT * FROM place_order(:fund, 'buy', 5, 61.00, 'IOC');
SELECT * FROM place_order(:fund, 'buy', 3, 61.00, 'IOC', 'CER-I', NULL, '2026 festival', 'event_neutrality');
SELECT * FROM place_order(:fund, 'buy', 4, 58.00, 'GTC');
SELECT * FROM place_order(:fund, 'buy', 2, 57.00, 'DAY');
SELECT order_id AS offer FROM place_order(:farm, 'sell', 5, 65.00) \gset
SELECT cancel_order(:offer);
SELECT close_market_day((now() AT TIME ZONE 'Asia/Shanghai')::date);
-- reports (issue 21): a clerk's region (the books of the farm and the fund
-- are written by the trades above), a community of two citizens with
-- behaviours, a GEP row
SELECT bind_region('$AUDITOR', '620700');
SELECT create_group('community', '东街社区', '620700') AS grp \gset
SELECT join_group(:grp, 1, (now() AT TIME ZONE 'Asia/Shanghai')::date - 7),
       join_group(:grp, 2, (now() AT TIME ZONE 'Asia/Shanghai')::date - 7);
INSERT INTO gep (region, year, provisioning, regulating, cultural, source) VALUES ('620700', 2025, 1000, 2000, 300, 'GEP 2025');
SELECT seal();
SQL
# every table but ref_secret has rows (what the row counts below compare)
check "the ledger to dump has rows in every table" \
  test "$(q "$DB" -c "SELECT count(*) >= 20 AND bool_and((xpath('/row/n/text()', query_to_xml(
      format('SELECT count(*) AS n FROM carbon.%I', c.relname), false, true, '')))[1]::text::int > 0)
    FROM pg_class c WHERE c.relnamespace = 'carbon'::regnamespace AND c.relkind = 'r' AND c.relname <> 'ref_secret'")" = t

# dump LOGIN FILE pg_dump-args...: the dump's exit status; stderr in FILE.err
dump() { local login=$1 file=$2; shift 2
  "$PGBIN/pg_dump" -U "$login" "$@" -f "$file" "$DB" 2>"$file.err"; }
# rows of table T in dump FILE
dump_rows() { awk -v t="COPY carbon.$2 " 'index($0, t) == 1 { on = 1; next } on && $0 == "\\." { exit } on { n++ } END { print n + 0 }' "$1"; }
# FILE holds every row of every table (but those named after it) that
# pg_dump takes of a configuration table of carbon_ledger, as the superuser
# counts them; FILE.diff says which differ
all_rows() { local file=$1 t cond want got ok=0; shift
  while IFS='|' read -r t cond; do
    [[ " $* " == *" $t "* ]] && continue
    want=$(q "$DB" -c "SELECT count(*) FROM carbon.$t $cond")
    got=$(dump_rows "$file" "$t")
    [ "$want" = "$got" ] || { echo "$t: dump $got rows, table $want" >>"$file.diff"; ok=1; }
  done < <(q "$DB" -c "SELECT c.relname, x.cond FROM pg_extension e, unnest(e.extconfig, e.extcondition) x(oid, cond)
                       JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'carbon_ledger' AND c.relkind = 'r' ORDER BY 1")
  return $ok
}
show() { sed 's/^/#   /' "$@" 2>/dev/null; }

# --- the auditor -------------------------------------------------------------
aud=$work/auditor.sql
dump "$AUDITOR" "$aud" -a --enable-row-security -n carbon -T carbon.ref_secret
rc=$?
check "the auditor's pg_dump -a --enable-row-security -n carbon -T carbon.ref_secret exits 0" test "$rc" -eq 0
[ "$rc" -eq 0 ] || show "$aud.err"
check "the auditor's dump has the postings, all of them" \
  test "$(dump_rows "$aud" posting)" -gt 0 -a "$(dump_rows "$aud" posting)" = "$(q "$DB" -c 'SELECT count(*) FROM carbon.posting')"
check "the auditor's dump has every row of every ledger table it may read (all but ref_secret)" all_rows "$aud" ref_secret
show "$aud.diff"
check "the auditor's dump has no HMAC key" bash -c '! grep -q "carbon\.ref_secret" "$1"' _ "$aud"
check "the auditor's dump carries the sequences (entry_id_seq at the last entry)" \
  grep -qF "setval('carbon.entry_id_seq', $(q "$DB" -c 'SELECT max(id) FROM carbon.entry'), true)" "$aud"

# restored by a superuser into a fresh database, it is the same ledger
"$PGBIN/createdb" "$DST"
check "the auditor's dump restores into a fresh database by a superuser, after CREATE EXTENSION" \
  q "$DST" -c 'CREATE EXTENSION carbon_ledger' -f "$aud" -o /dev/null
for t in entry posting balance seal project monitoring_report unit_issuance unit_block unit_event retirement holiday \
         instrument market_order trade market_day unit_cost accounting_voucher behavior_monthly account_group group_member \
         group_credit gep region_scope; do
  a=$(q "$DB" -c "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) || count(*) FROM carbon.$t t")
  b=$(q "$DST" -c "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) || count(*) FROM carbon.$t t")
  check "table $t restored from the auditor's dump identically" test "$a" = "$b"
done
check "verify_integrity() clean on the ledger restored from the auditor's dump" \
  test "$(q "$DST" -c 'SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok')" = 0
check "the retirement certificates verify in the ledger restored from the auditor's dump (the market's too)" \
  test "$(q "$DST" -c 'SELECT count(*) = 3 AND bool_and(carbon.verify_certificate(certificate)) FROM carbon.retirement')" = t
book="SELECT coalesce(string_agg(b::text, '|' ORDER BY b::text), '') FROM carbon.v_order_book b"
check "the restored market is the market: the same book (two orders resting) and daily figures, escrow = the resting orders" \
  test "$(q "$DST" -c "$book")" = "$(q "$DB" -c "$book")" -a \
       "$(q "$DST" -c "SELECT string_agg(d::text, '|') FROM carbon.v_market_daily d")" = \
       "$(q "$DB" -c "SELECT string_agg(d::text, '|') FROM carbon.v_market_daily d")" -a \
       "$(q "$DST" -c "SELECT (SELECT count(*) FROM carbon.market_order WHERE status IN ('open', 'partially_filled')) = 2
                          AND (SELECT sum(b.amount) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                               WHERE a.kind = 'escrow' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CNY'))
                              = (SELECT sum(escrow) FROM carbon.market_order WHERE side = 'buy')
                          AND (SELECT sum(b.amount) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                               WHERE a.kind = 'escrow' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER'))
                              = (SELECT sum(escrow) FROM carbon.market_order WHERE side = 'sell')
                          AND (SELECT sum(escrow) FROM carbon.market_order WHERE side = 'sell')
                              = (SELECT sum(last - first + 1) FROM carbon.unit_block WHERE state = 'escrow')")" = t
# (the account by its id: the auditor's dump has no HMAC key, so account_id()
# of the restored ledger knows no external reference)
check "the restored market goes on: its next order takes the next id, a trade against a restored order settles" \
  test "$(q "$DST" -c "SELECT o.order_id = (SELECT max(id) FROM carbon.market_order WHERE id < o.order_id) + 1
                          AND o.status = 'filled'
                          AND (SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok) = 0
                          FROM carbon.place_order($(q "$DB" -c "SELECT carbon.account_id('enterprise', 'farm')"),
                                                  'sell', 4, 58.00, 'IOC') o")" = t

# the negatives: what the flags above are for
dump "$AUDITOR" "$work/aud_key.sql" -a --enable-row-security -n carbon
rc=$?
check "the auditor's dump without -T carbon.ref_secret fails (it may not read the key)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "permission denied for table ref_secret" "$2"' _ "$rc" "$work/aud_key.sql.err"
dump "$AUDITOR" "$work/aud_rls.sql" -a -n carbon -T carbon.ref_secret
rc=$?
check "the auditor's dump without --enable-row-security fails (row-level security)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "query would be affected by row-level security policy" "$2"' _ "$rc" "$work/aud_rls.sql.err"

# --- the admin ---------------------------------------------------------------
adm=$work/admin.sql
dump "$ADMIN" "$adm" -a --enable-row-security -n carbon
rc=$?
check "the admin's pg_dump -a --enable-row-security -n carbon exits 0" test "$rc" -eq 0
[ "$rc" -eq 0 ] || show "$adm.err"
check "the admin's dump has the postings, all of them" \
  test "$(dump_rows "$adm" posting)" -gt 0 -a "$(dump_rows "$adm" posting)" = "$(q "$DB" -c 'SELECT count(*) FROM carbon.posting')"
check "the admin's dump has every row of every ledger table, the HMAC key too" all_rows "$adm"
show "$adm.diff"
dump "$ADMIN" "$work/adm_rls.sql" -a -n carbon
rc=$?
check "the admin's dump without --enable-row-security fails (row-level security)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "query would be affected by row-level security policy" "$2"' _ "$rc" "$work/adm_rls.sql.err"

# --- the sequence grant is what item 15 needed --------------------------------
q "$DB" -c "REVOKE SELECT ON SEQUENCE carbon.account_id_seq FROM carbon_auditor"
dump "$AUDITOR" "$work/aud_seq.sql" -a --enable-row-security -n carbon -T carbon.ref_secret
rc=$?
check "without SELECT on the sequences the auditor's dump fails as issue 16 reported" \
  bash -c '[ "$1" -ne 0 ] && grep -q "permission denied for sequence account_id_seq" "$2"' _ "$rc" "$work/aud_seq.sql.err"

echo "auditor_dump: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
