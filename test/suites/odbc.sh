#!/usr/bin/env bash
# Issue 21 item 7: a real BI-style client.  Spreadsheets and BI tools reach
# the reporting views over ODBC; here Debian's unixODBC (`isql`, package
# unixodbc) with the psqlODBC Unicode driver (package odbc-postgresql) reads
# them as two logins: odbc_auditor (member of carbon_auditor) reads every
# v_ view of schema carbon, odbc_app (member of carbon_app) its acting
# account's statement, the views api.md makes public to the app (the mall's
# catalogue, the project registry, the market), its citizen's rank in its
# groups, and nothing else.
#
# The DSNs live in a temporary directory (ODBCSYSINI / ODBCINI point there):
# no system file is read or written.  The driver library is taken from
# odbc-postgresql's file list (dpkg -L), the server from PGHOST / PGPORT
# (a socket directory or a host name: psqlODBC hands Servername to libpq).
#
# What isql does, found out for this suite (unixODBC 2.3.11, psqlODBC 13.02):
# - it exits 0 even when a statement fails: errors are read from its output
#   (with -v: "[SQLSTATE]ERROR: ..." on stdout, "[ISQL]ERROR: ..." on stderr);
# - each input line is one statement, executed in autocommit mode; a BEGIN
#   line opens a transaction that the following lines share until COMMIT
#   (but psqlODBC commits after any SET statement, so none is used here);
# - it cuts every value to 300 characters unless given -L.
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
export PGCLIENTENCODING=UTF8
DB=odbc_bi
AUDITOR=odbc_auditor; APP=odbc_app
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi
}
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }
finish() { echo "odbc: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

work=$(mktemp -d)
drop_all() {
  q postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP ROLE IF EXISTS $AUDITOR" \
    -c "DROP ROLE IF EXISTS $APP" >/dev/null 2>&1
}
trap 'drop_all; rm -rf "$work"' EXIT
drop_all

# ---- the ledger, as superuser ------------------------------------------------
# Rows in every view: citizens' points, transfers and a behaviour; the mall (an
# offer, a redemption); a project's units issued, traded, one sell order left
# on the book and 20 t retired (the market and the books of units).
"$PGBIN/createdb" "$DB"
setup=$(q "$DB" 2>&1 <<'SQL'
CREATE EXTENSION carbon_ledger;
SET search_path = carbon, public;
SELECT set_setting('trade_fee_bps', '0');
SELECT open_account('personal', '620700', 'odbc-li', '李雷') AS li,
       open_account('personal', '620700', 'odbc-han', '韩梅梅') AS han,
       open_account('merchant', '620700', 'odbc-tea', '丹霞茶社') AS tea,
       open_account('government', '620700', 'odbc-bureau', '张掖市生态环境局') AS bureau \gset
SELECT issue(:li, 'POINT', 1000, '注册奖励 welcome points') > 0, issue(:han, 'POINT', 500) > 0;
SELECT transfer(:li, :bureau, 'POINT', 100, '捐赠 donation') > 0,
       transfer(:han, :tea, 'POINT', 20, '兑换咖啡 coffee') > 0;
SELECT define_methodology('ODBC-METRO', 1, '地铁出行 metro ride', 'I', 'metro', 'distance_substitution',
                          '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61}');
SELECT submit_methodology('ODBC-METRO', 1), approve_methodology('ODBC-METRO', 1, 'ok'),
       publish_methodology('ODBC-METRO', 1, now() - interval '30 days');
SELECT register_source('odbc-metro', ARRAY['metro']);
SELECT points AS metro_points
FROM record_behavior('odbc-metro', 'ride-1', :li, 'ODBC-METRO', 22, now() - interval '1 hour') \gset
SELECT create_offer(:tea, '一杯红茶 a cup of black tea', 200, 5,
                    tstzrange(now() - interval '1 hour', now() + interval '30 days'), 2) AS cup \gset
SELECT redeem(:li, :cup, 1, 'odbc-cup-1') > 0;
SELECT set_reference_price('CER-I', 65);
SELECT open_account('enterprise', '620700', 'odbc-buyer', '钢铁厂 steel works') AS e,
       open_account('enterprise', '620700', 'odbc-owner', '林场 forest farm') AS s,
       open_account('verifier', '620100', 'odbc-verifier', 'verifier') AS v \gset
SELECT define_methodology('ODBC-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('ODBC-FOREST', 1), approve_methodology('ODBC-FOREST', 1, 'ok'),
       publish_methodology('ODBC-FOREST', 1, now() - interval '1 day');
SELECT register_project(:s, 'ODBCFOREST', 'forest farm', 'ODBC-FOREST', '620700', 'sinks') AS p \gset
SELECT publicize_project(:p, current_date - 30), approve_project(:p);
SELECT submit_monitoring(:p, '[2025-01-01,2025-12-31]', '1000 t') AS r \gset
SELECT verify_monitoring(:r, :v, '1000 t', 'checked');
SELECT count(*) > 0 FROM issue_units(:r);
SELECT deposit_cash(:e, 20000, 'odbc-e') > 0;
SELECT status FROM place_order(:s, 'sell', 100, 60);
SELECT status FROM place_order(:e, 'buy', 100, 60);
SELECT status FROM place_order(:s, 'sell', 50, 66);
SELECT (retire_units(:e, 20, 'voluntary', 'steel works 2025')).serials IS NOT NULL;
SELECT seal() > 0;
\echo VARS :li :han :tea :metro_points
SQL
)
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "$setup"; echo "not ok - setting up the ledger"; fail=$((fail + 1)); finish
fi
read -r _ LI HAN TEA METRO_POINTS <<<"$(grep '^VARS ' <<<"$setup")"

# Passwords although the test clusters trust local connections: a BI tool
# sends one, and the suite then works where local logins need one too.
pw="odbc-$RANDOM$RANDOM"
q "$DB" >/dev/null <<SQL || { echo "not ok - creating the login roles"; fail=$((fail + 1)); finish; }
CREATE ROLE $AUDITOR LOGIN PASSWORD '$pw' IN ROLE carbon_auditor;
CREATE ROLE $APP LOGIN PASSWORD '$pw' IN ROLE carbon_app;
SQL

# ---- the DSNs ------------------------------------------------------------------
driver=$(dpkg -L odbc-postgresql 2>/dev/null | grep '/psqlodbcw\.so$' | head -n 1)
check "odbc-postgresql ships the psqlODBC Unicode driver (${driver:-none})" test -n "$driver" -a -f "$driver"
[ -n "$driver" ] || finish
cat >"$work/odbcinst.ini" <<EOF
[carbon_psqlodbcw]
Description = psqlODBC Unicode driver (Debian package odbc-postgresql)
Driver = $driver
EOF
dsn() { # name, login
  cat <<EOF
[$1]
Driver = carbon_psqlodbcw
Servername = ${PGHOST:-/var/run/postgresql}
Port = ${PGPORT:-5432}
Database = $DB
Username = $2
Password = $pw

EOF
}
{ dsn bi_auditor "$AUDITOR"; dsn bi_app "$APP"; } >"$work/odbc.ini"
export ODBCSYSINI=$work ODBCINI=$work/odbc.ini

# odbc DSN: the statements on stdin (one a line) through isql in batch mode
# with ODBC 3 calls; the rows, comma-separated, land in $work/out, isql's
# own messages in $work/err.  Fails when isql reports any error.
odbc() {
  isql -b -v -3 -d, -L100000 "$1" >"$work/out" 2>"$work/err"
  ! grep -q 'ERROR' "$work/err" && ! grep -qE '^\[[0-9A-Z]{5}\]ERROR' "$work/out"
}
show() { sed 's/^/#   /' "$work/out" "$work/err"; }
# the rows of one tagged statement ("tag,..."), the tag cut off
tagged() { sed -n "s/^$1,//p" "$work/out"; }

for pair in "bi_auditor $AUDITOR" "bi_app $APP"; do
  read -r name login <<<"$pair"
  echo "SELECT 'me', current_user, current_database()" | odbc "$name" || show
  check "isql connects through DSN $name as $login to $DB" test "$(tagged me)" = "$login,$DB"
done

# ---- the auditor reads every view ---------------------------------------------
mapfile -t views < <(q "$DB" -c "SELECT viewname FROM pg_views WHERE schemaname = 'carbon' AND viewname LIKE 'v\_%' ORDER BY 1")
check "found the reporting views (${#views[@]}; api.md §7 lists 12)" test "${#views[@]}" -ge 12

# A BI tool first browses the catalogue (SQLTables): every view is listed.
echo help | odbc bi_auditor
missing=()
for v in "${views[@]}"; do grep -q ",carbon,$v,VIEW," "$work/out" || missing+=("$v"); done
check "the ODBC catalogue lists every view as a VIEW to $AUDITOR (missing: ${missing[*]:-none})" test "${#missing[@]}" -eq 0

# Each view: all rows and columns fetched through the driver, as many rows as
# the superuser sees, and the same rows (compared server-side as text).
digest="count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
for v in "${views[@]}"; do
  want=$(q "$DB" -c "SELECT $digest FROM carbon.$v t")
  if printf 'SELECT %s FROM carbon.%s t\nSELECT * FROM carbon.%s\n' "$digest" "$v" "$v" | odbc bi_auditor; then
    got=$(head -n 1 "$work/out")
    rows=$(($(wc -l <"$work/out") - 1))
    check "$AUDITOR reads carbon.$v over ODBC: ${want%%:*} rows fetched" test "$rows" -eq "${want%%:*}"
    check "$AUDITOR sees the same rows of carbon.$v as the superuser" test "$got" = "$want"
    [ "$got" = "$want" ] || echo "#   ODBC $got, psql $want"
    [ "${want%%:*}" -gt 0 ] || echo "# carbon.$v has no rows in this suite's ledger: add some to the setup"
  else
    check "$AUDITOR reads carbon.$v over ODBC" false
    show
  fi
done

# A known figure: the points held by citizens (v_supply's outstanding POINT of
# the personal tier) = 1000 + 500 issued - 100 - 20 transferred - 200 redeemed
# + the metro ride's points.
want=$((1000 + 500 - 100 - 20 - 200 + METRO_POINTS))
psql_fig=$(q "$DB" -c "SELECT outstanding FROM carbon.v_supply WHERE asset = 'POINT' AND tier = 'personal'")
echo "SELECT 'fig', outstanding FROM carbon.v_supply WHERE asset = 'POINT' AND tier = 'personal'" | odbc bi_auditor || show
check "v_supply over ODBC: citizens hold $want points, as psql says ($psql_fig)" \
  test "$(tagged fig)" = "$want" -a "$psql_fig" = "$want"

# Chinese text arrives intact in UTF-8, both ways: a memo, the names of the
# accounting subjects, a view's comment, and a Chinese literal in a query.
echo "SELECT 'memo', memo FROM carbon.v_account_statement WHERE account = $LI AND kind = 'issuance'" | odbc bi_auditor || show
check "a Chinese memo arrives intact (注册奖励 welcome points)" test "$(tagged memo)" = "注册奖励 welcome points"
echo "SELECT DISTINCT 'subj', subject_code, subject_name FROM carbon.v_accounting_journal ORDER BY 2" | odbc bi_auditor || show
want=$(q "$DB" -F, -c "SELECT DISTINCT subject_code, subject_name FROM carbon.v_accounting_journal ORDER BY 1")
check "the accounting subjects' Chinese names arrive as psql shows them ($(tagged subj | tr '\n' ' '))" \
  test "$(tagged subj)" = "$want" -a -n "$want"
echo "SELECT 'comment', obj_description('carbon.v_supply'::regclass, 'pg_class')" | odbc bi_auditor || show
want=$(q "$DB" -c "SELECT obj_description('carbon.v_supply'::regclass, 'pg_class')")
check "v_supply's comment (供应量 …, $(printf %s "$want" | wc -c) bytes) arrives whole" \
  test "$(tagged comment)" = "$want" -a "${want#供应量}" != "$want"
echo "SELECT 'lit', count(*) FROM carbon.v_account_statement WHERE memo = '捐赠 donation'" | odbc bi_auditor || show
want=$(q "$DB" -c "SELECT count(*) FROM carbon.v_account_statement WHERE memo = '捐赠 donation'")
check "a Chinese literal in a query over ODBC finds the rows psql finds (捐赠 donation: $want postings)" \
  test "$(tagged lit)" = "$want" -a "$want" -gt 0

# ---- the app: its acting account's statement, and nothing else -----------------
# act_as() lasts until the end of the transaction: BEGIN and COMMIT are lines
# of their own, the statements between them share the transaction.
want=$(q "$DB" -c "SELECT count(*) || ',' || sum(amount) FILTER (WHERE asset = 'POINT') FROM carbon.v_account_statement WHERE account = $LI")
odbc bi_app <<SQL || show
SELECT 'before', count(*) FROM carbon.v_account_statement
BEGIN
SELECT carbon.act_as($LI)
SELECT 'acting', count(*), sum(amount) FILTER (WHERE asset = 'POINT'), count(*) FILTER (WHERE account <> $LI) FROM carbon.v_account_statement
COMMIT
SELECT 'after', count(*) FROM carbon.v_account_statement
SQL
check "$APP without act_as() sees no statement rows" test "$(tagged before)" = 0
check "$APP acting for citizen $LI sees exactly its ${want%%,*} rows (POINT net ${want#*,}) and no other account's" \
  test "$(tagged acting)" = "$want,0" -a "${want%%,*}" -gt 0
check "nothing carries over to the next transaction on the connection" test "$(tagged after)" = 0
want=$(q "$DB" -c "SELECT count(*) FROM carbon.v_account_statement WHERE account = $HAN")
printf 'BEGIN\nSELECT carbon.act_as(%s)\nSELECT %s, count(*), count(*) FILTER (WHERE account <> %s) FROM carbon.v_account_statement\nCOMMIT\n' \
  "$HAN" "'acting'" "$HAN" | odbc bi_app || show
check "$APP acting for citizen $HAN sees its $want rows only" test "$(tagged acting)" = "$want,0" -a "$want" -gt 0
printf 'BEGIN\nSELECT carbon.act_as(%s)\nCOMMIT\n' "$TEA" | odbc bi_app
check "$APP may not act for a merchant it is not bound to (42501)" grep -q '^\[42501\]' "$work/out"

# The views api.md makes readable by carbon_app: its statement; the mall's
# catalogue (§4); the project registry, issuances and its own retirements
# (§5); the order book and daily figures (§6); its citizen's rank in its
# groups (issue 21 item 4, src/sql/83_groups.sql).  Every other view is
# refused.
app_views=" v_account_statement v_offers v_projects v_issuances v_retirements v_order_book v_market_daily v_my_group_rank "
for v in "${views[@]}"; do
  echo "SELECT count(*) FROM carbon.$v" | odbc bi_app
  ok=$?
  if [ "${app_views#* $v }" != "$app_views" ]; then
    check "$APP may read carbon.$v over ODBC" test "$ok" -eq 0
    [ "$ok" -eq 0 ] || show
  else
    check "$APP reading carbon.$v over ODBC is refused: permission denied (42501)" \
      grep -q "^\[42501\]ERROR: permission denied for view $v" "$work/out"
  fi
done

# ---- clean up -------------------------------------------------------------------
drop_all
check "the database and the login roles are dropped" \
  test "$(q postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")$(q postgres -c "SELECT count(*) FROM pg_roles WHERE rolname IN ('$AUDITOR', '$APP')")" = 00
finish
