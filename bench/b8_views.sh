# B8: every view of schema carbon, filtered to one region and month (or
# to what the view is read by: an account, an instrument), on 10 M postings
# over 1 M accounts (goal: each < 100 ms).  BENCH_B8_POSTINGS scales it.
#
# The ledger is written by bench/b8_data.sql straight into the tables
# (behaviours and redemptions over eleven months of 2026, in 20 counties,
# balances and lots to match: verify_integrity() is clean on it); then the
# API adds what the other views read: 200 communities holding every
# citizen, a forest project with its units traded and retired, the books
# of the firms that traded, a GEP row.  Each query runs 5 times inside one
# PL/pgSQL call, planning included (a BI tool's ad-hoc query), every
# column of every row read; the median is reported.

b8_setup() {
  local postings=${BENCH_B8_POSTINGS:-$((10000000 * ${BENCH_SCALE:-1}))}
  local accounts=$((postings / 10)) behaviors=$((postings * 9 / 20)) redemptions=$((postings / 40))
  log "B8: $postings postings over $accounts accounts (data written straight into the tables)"
  "$PGBIN/createdb" b8
  psql -X -q -v ON_ERROR_STOP=1 -d b8 >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SET search_path = carbon, public;
SELECT define_methodology('B8-METRO', 1, 'metro ride', 'II', 'transport', 'per_unit', '{"g_per_unit": 100}');
SELECT submit_methodology('B8-METRO', 1), approve_methodology('B8-METRO', 1, 'bench'),
       publish_methodology('B8-METRO', 1, '2025-01-01');
SELECT register_source('b8-metro', ARRAY['transport']);
SQL
  psql -X -q -d b8 -v accounts="$accounts" -v behaviors="$behaviors" -v redemptions="$redemptions" \
    -f "$ROOT/bench/b8_data.sql" >/dev/null || return 1
  psql -X -q -v ON_ERROR_STOP=1 -d b8 >/dev/null <<'SQL' || return 1
SET search_path = carbon, public;
-- 200 communities, ten per county, every citizen in one since 1 January
-- (a county's citizens have ids of one residue mod 20: id / 20 spreads them)
INSERT INTO account_group (kind, name, region)
SELECT 'community', 'community ' || c.region || '-' || k, c.region
FROM (SELECT DISTINCT region FROM account WHERE kind = 'participant' AND tier = 'personal') c,
     generate_series(0, 9) k;
SET session_replication_role = replica;     -- a bulk load: rows consistent by construction
SET maintenance_work_mem = '512MB';
INSERT INTO group_member (group_id, account, since)
SELECT g.id, a.id, '2026-01-01' FROM account a
JOIN account_group g ON g.region = a.region AND g.name = 'community ' || a.region || '-' || (a.id / 20 % 10)
WHERE a.kind = 'participant' AND a.tier = 'personal';
-- (written straight into the table: what they earned in their groups, as join_group would count it)
INSERT INTO group_credit (group_id, month, account, events, grams, points)
SELECT m.group_id, s.month, s.account, sum(s.events), sum(s.grams), sum(s.points)
FROM group_member m JOIN behavior_monthly s ON s.account = m.account AND s.month >= m.since
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;                           -- its primary key's order
RESET session_replication_role;
-- the indexes bench/b8_data.sql set aside, built once
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM public.b8_rebuild LOOP
    EXECUTE r.def;
  END LOOP;
END $$;
DROP TABLE public.b8_rebuild;
-- a forest project in Ganzhou: issued, traded between two firms, retired
SELECT open_account('enterprise', '620702', 'b8-forest') AS forest, open_account('enterprise', '620702', 'b8-steel') AS steel,
       open_account('verifier', '620100', 'b8-verifier') AS ver \gset
SELECT define_methodology('B8-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('B8-FOREST', 1), approve_methodology('B8-FOREST', 1, 'bench'),
       publish_methodology('B8-FOREST', 1, now() - interval '1 day');
SELECT register_project(:forest, 'B8FOREST', 'forest', 'B8-FOREST', '620702', 'bench') AS p \gset
SELECT publicize_project(:p, current_date - 30), approve_project(:p);
SELECT submit_monitoring(:p, '[2026-01-01,2026-06-30]', '100000 t') AS r \gset
SELECT verify_monitoring(:r, :ver, '100000 t', 'bench');
SELECT count(*) FROM issue_units(:r);
SELECT deposit_cash(:steel, 100000000, 'b8');
SELECT count(*) FROM generate_series(1, 200) i,
  LATERAL place_order(:forest, 'sell', 10, 60 + (i % 5)) s, LATERAL place_order(:steel, 'buy', 10, 60 + (i % 5)) b;
SELECT count(*) FROM generate_series(1, 50) i, LATERAL retire_units(:steel, 10, 'voluntary', 'steel works') r;
SELECT place_order(:forest, 'sell', 100, 66);
INSERT INTO gep VALUES ('620700', 2026, 30000000000, 90000000000, 5000000000, 'bench');
SQL
  psql -X -q -d b8 -c 'VACUUM ANALYZE' >/dev/null
}

b8() {
  # B8_REUSE=1: time the views of the b8 database a run left behind
  [ -n "${B8_REUSE:-}" ] || b8_setup || { echo "B8: setup failed" >&2; return 1; }
  local citizen merchant steel
  citizen=$(psql -X -t -A -d b8 -c "SELECT min(id) FROM carbon.account WHERE kind = 'participant' AND tier = 'personal' AND region = '620702'")
  merchant=$(psql -X -t -A -d b8 -c "SELECT min(id) FROM carbon.account WHERE kind = 'participant' AND tier = 'merchant' AND region = '620702'")
  steel=$(psql -X -t -A -d b8 -c "SELECT id FROM carbon.account WHERE display_name IS NULL AND tier = 'enterprise' ORDER BY id DESC LIMIT 1")
  psql -X -q -d b8 -c "CREATE OR REPLACE FUNCTION public.b8_ms(q text, acting bigint DEFAULT NULL) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; ms numeric[] := '{}'; n bigint; h bigint;
BEGIN
  IF acting IS NOT NULL THEN PERFORM carbon.act_as(acting); END IF;
  FOR i IN 1..5 LOOP
    t0 := clock_timestamp();
    EXECUTE 'SELECT count(*), sum(hashtext(x::text)) FROM (' || q || ') x' INTO n, h;
    ms := ms || (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric;
  END LOOP;
  RETURN round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m) FROM unnest(ms) m)::numeric, 1);
END \$\$" >/dev/null
  local month="'2026-06-01'" region="'620702'"
  local -a queries=(
    "v_supply|region = 620702|SELECT * FROM carbon.v_supply WHERE region = $region"
    "v_supply_detail|region = 620702|SELECT * FROM carbon.v_supply_detail WHERE region = $region"
    "v_reduction_monthly|region, month|SELECT * FROM carbon.v_reduction_monthly WHERE region = $region AND month = $month"
    "v_points_expiring|region, month|SELECT * FROM carbon.v_points_expiring WHERE region = $region AND month = '2027-12-01'"
    "v_account_statement|a citizen, a month|SELECT * FROM carbon.v_account_statement WHERE account = $citizen AND at >= $month AND at < date $month + 31"
    "v_redemptions|month|SELECT * FROM carbon.v_redemptions WHERE month = $month"
    "v_merchant_statement|a merchant, month|SELECT * FROM carbon.v_merchant_statement WHERE merchant = $merchant AND month = $month"
    "v_offers|a merchant|SELECT * FROM carbon.v_offers WHERE merchant = $merchant"
    "v_group_monthly|region, month|SELECT * FROM carbon.v_group_monthly WHERE region = $region AND month = $month"
    "v_group_credit|a group, month|SELECT * FROM carbon.v_group_credit WHERE group_id = (SELECT min(id) FROM carbon.account_group WHERE region = $region) AND month = $month"
    "v_my_group_rank|a citizen (act_as), month|SELECT * FROM carbon.v_my_group_rank WHERE month = $month"
    "v_projects|region|SELECT * FROM carbon.v_projects WHERE region = $region"
    "v_issuances|month|SELECT * FROM carbon.v_issuances WHERE issued_at >= date_trunc('month', now())"
    "v_retirements|month|SELECT * FROM carbon.v_retirements WHERE retired_at >= date_trunc('month', now())"
    "v_serial_history|month|SELECT * FROM carbon.v_serial_history WHERE at >= date_trunc('month', now())"
    "v_market_daily|month|SELECT * FROM carbon.v_market_daily WHERE day >= date_trunc('month', now())::date"
    "v_order_book|instrument|SELECT * FROM carbon.v_order_book WHERE instrument = 'CER-I'"
    "v_accounting_journal|a firm, month|SELECT * FROM carbon.v_accounting_journal WHERE account = $steel AND at >= date_trunc('month', now())"
    "v_trial_balance|a firm|SELECT * FROM carbon.v_trial_balance WHERE account = $steel"
    "v_gep_carbon|region 620700, year|SELECT * FROM carbon.v_gep_carbon WHERE region = '620700' AND year = 2026"
  )
  local q name filter sql ms acting missing
  missing=$(psql -X -t -A -d b8 -c "SELECT string_agg(viewname, ' ') FROM pg_views WHERE schemaname = 'carbon' AND viewname LIKE 'v\_%' AND viewname NOT IN ($(for q in "${queries[@]}"; do printf "'%s'," "${q%%|*}"; done | sed 's/,$//'))")
  [ -z "$missing" ] || { echo "B8: views without a query here: $missing" >&2; return 1; }
  for q in "${queries[@]}"; do
    IFS='|' read -r name filter sql <<<"$q"
    acting=NULL
    [ "$name" = v_my_group_rank ] && acting=$citizen
    ms=$(psql -X -t -A -d b8 -v ON_ERROR_STOP=1 -c "SELECT public.b8_ms(\$q\$$sql\$q\$, $acting)") || return 1
    bench_row B8 "$name ($filter)" "$ms ms" "—" "—" "< 100 ms"
  done
  # The ledger loaded by hand is checked by make test at a small scale
  # (test/suites/bench_fixtures.sh); at 10 M postings verify_integrity()
  # takes 1-2 minutes, a tenth of make bench's 15: BENCH_B8_VERIFY=1 runs it.
  if [ -n "${BENCH_B8_VERIFY:-}" ]; then bench_integrity B8 b8 || return 1; fi
  [ -n "${B8_KEEP:-}" ] || "$PGBIN/dropdb" b8
}
