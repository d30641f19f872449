#!/usr/bin/env bash
# process_inbox() gives exactly what record_behavior() gives for the same rows
# in the same order: 10,000 mixed rows (accepted, capped, duplicates,
# rejections of every kind) recorded one by one in one database, through the
# inbox in one call in another, and through the inbox in calls of 777 rows in
# a third (state carried across batches); behaviours, balances, lots, daily
# usage and remainders must be identical.  The first 300 rows were recorded
# before in all three, so the inbox also meets duplicates of stored events.
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
ROWS=${INBOX_ROWS:-10000}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }

setup_sql=$(cat <<'SQL'
CREATE EXTENSION carbon_ledger;
SET search_path = carbon, public;
SELECT define_methodology('EQ-METRO', 1, 'metro', 'I', 'metro', 'distance_substitution',
  '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 3000, "max_activity": 80}');
SELECT define_methodology('EQ-RECYCLE', 1, 'recycling', 'II', 'recycling', 'per_unit', '{"g_per_unit": 1520.5}');
SELECT define_methodology('EQ-POWER', 1, 'power', 'II', 'household', 'personal_baseline', '{"baseline": 300, "g_per_unit": 581}');
SELECT submit_methodology(c, 1), approve_methodology(c, 1, 'eq'), publish_methodology(c, 1, now() - interval '60 days')
  FROM unnest(ARRAY['EQ-METRO', 'EQ-RECYCLE', 'EQ-POWER']) c;
SELECT register_source('eq-metro', ARRAY['metro']);
SELECT register_source('eq-station', ARRAY['recycling', 'household']);
SELECT count(open_account('personal', '620700', 'eq-' || i)) FROM generate_series(1, 200) i;
SELECT set_account_status(7, 'frozen', 'equivalence test');
CREATE TABLE public.eq_rows AS
  SELECT i AS seq,
         CASE WHEN h % 10 < 6 THEN 'eq-metro' WHEN h % 10 < 9 THEN 'eq-station' ELSE 'eq-unknown' END AS source,
         'ev-' || (i % (ROWS_PLACEHOLDER - ROWS_PLACEHOLDER / 10)) AS event_id,
         CASE WHEN h % 97 = 0 THEN 999999 ELSE 1 + abs(h) % 200 END::bigint AS account,
         CASE WHEN h % 10 < 6 THEN 'EQ-METRO' WHEN h % 10 < 8 THEN 'EQ-RECYCLE'
              WHEN h % 53 = 0 THEN 'EQ-NOPE' ELSE 'EQ-POWER' END AS methodology,
         CASE WHEN h % 41 = 0 THEN -1 ELSE round((abs(h) % 10000) / 97.0, 3) END AS activity,
         (date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai')
           - interval '1 day' + (abs(h) % 80000) * interval '1 second'
           + CASE WHEN h % 89 = 0 THEN interval '-30 days' WHEN h % 83 = 0 THEN interval '3 days' ELSE interval '0' END
           AS occurred_at,
         CASE WHEN h % 5 = 0 THEN jsonb_build_object('own_baseline', abs(h) % 400) ELSE '{}'::jsonb END AS attrs
  FROM (SELECT i, hashint4(i * 7919) AS h FROM generate_series(1, ROWS_PLACEHOLDER) i) g;
SQL
)
setup_sql=${setup_sql//ROWS_PLACEHOLDER/$ROWS}

for db in eq_one eq_bulk eq_chunks; do
  "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1
  "$PGBIN/createdb" "$db"
  q "$db" -c "$setup_sql" >/dev/null || { echo "not ok - setup of $db"; echo "inbox_equivalence: 0 passed, 1 failed"; exit 1; }
  q "$db" -c "SELECT count(*) FROM public.eq_rows r,
                LATERAL carbon.record_behavior(r.source, r.event_id, r.account, r.methodology, r.activity,
                                               r.occurred_at, r.attrs) WHERE r.seq <= 300" >/dev/null
done

t0=$(date +%s%3N)
q eq_one >/dev/null <<'SQL'
CREATE TABLE public.eq_results AS SELECT NULL::text AS status LIMIT 0;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM public.eq_rows ORDER BY seq LOOP
    INSERT INTO public.eq_results
      SELECT status FROM carbon.record_behavior(r.source, r.event_id, r.account, r.methodology,
                                                r.activity, r.occurred_at, r.attrs);
  END LOOP;
END $$;
SQL
t1=$(date +%s%3N)
q eq_bulk -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs)
              SELECT source, event_id, account, methodology, activity, occurred_at, attrs FROM public.eq_rows ORDER BY seq" >/dev/null
bulk_counts=$(q eq_bulk -c "SELECT accepted || ' ' || capped || ' ' || rejected || ' ' || duplicate FROM carbon.process_inbox()")
t2=$(date +%s%3N)
one_counts=$(q eq_one -c "SELECT count(*) FILTER (WHERE status = 'accepted') || ' ' || count(*) FILTER (WHERE status = 'capped')
                          || ' ' || count(*) FILTER (WHERE status = 'rejected') || ' ' || count(*) FILTER (WHERE status = 'duplicate')
                          FROM public.eq_results")
# eq_chunks has a trigger of its own on carbon.behavior: the inbox must
# then write through SQL (the trigger sees every row), not around it.
q eq_chunks -c "CREATE TABLE public.seen (n int);
  CREATE FUNCTION public.count_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN INSERT INTO public.seen VALUES (1); RETURN NULL; END';
  CREATE TRIGGER user_audit AFTER INSERT ON carbon.behavior FOR EACH ROW EXECUTE FUNCTION public.count_row();" >/dev/null
q eq_chunks -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs)
                SELECT source, event_id, account, methodology, activity, occurred_at, attrs FROM public.eq_rows ORDER BY seq" >/dev/null
chunk_counts=$(q eq_chunks <<'SQL'
CREATE TEMP TABLE c AS SELECT * FROM carbon.process_inbox(0);
DO $$ BEGIN
  LOOP
    INSERT INTO c SELECT * FROM carbon.process_inbox(777);
    EXIT WHEN NOT EXISTS (SELECT 1 FROM carbon.behavior_inbox);
  END LOOP;
END $$;
SELECT sum(accepted) || ' ' || sum(capped) || ' ' || sum(rejected) || ' ' || sum(duplicate) FROM c;
SQL
)
echo "# one by one: $((t1 - t0)) ms; inbox: $((t2 - t1)) ms; counts (accepted capped rejected duplicate): $one_counts"
check "process_inbox counts equal record_behavior's ($bulk_counts)" test "$one_counts" = "$bulk_counts"
check "process_inbox in calls of 777 rows gives the same counts ($chunk_counts)" test "$one_counts" = "$chunk_counts"
for c in $one_counts; do :; done
check "the mix has every outcome" q eq_one -c "SELECT 1/(count(DISTINCT status) = 4)::int FROM public.eq_results" -o /dev/null
check "the mix has many rejection reasons" \
  test "$(q eq_one -c "SELECT count(DISTINCT reason) FROM carbon.behavior WHERE status = 'rejected'")" -ge 5

digest() { q "$1" -c "SELECT md5(string_agg($2, '|' ORDER BY $3)) FROM $4"; }
same() { # name expr order from: eq_one against both inbox databases
  local one; one=$(digest eq_one "$2" "$3" "$4")
  check "$1 identical (one call)" test "$one" = "$(digest eq_bulk "$2" "$3" "$4")"
  check "$1 identical (calls of 777)" test "$one" = "$(digest eq_chunks "$2" "$3" "$4")"
}
same behaviours "concat_ws(',', source, event_id, account, status, reduction, points, reason, local_day, version, scenario)" \
  "source, event_id" carbon.behavior
same balances "concat_ws(',', account, asset_id, amount)" "account, asset_id" \
  "(SELECT account, asset_id, sum(amount) AS amount FROM carbon.balance GROUP BY 1, 2) b"
same lots "concat_ws(',', account, asset_id, expires_at, remaining)" "account, asset_id, expires_at" carbon.lot
same remainders "concat_ws(',', account, milli)" account carbon.points_carry
same "daily usage" "concat_ws(',', account, scenario, day, used)" "account, scenario, day" carbon.daily_usage
check "a user's trigger on behaviours saw every row the inbox wrote" \
  test "$(q eq_chunks -c "SELECT (SELECT count(*) FROM public.seen) = (SELECT count(*) - 300 FROM carbon.behavior)")" = t
# A batch with no stored duplicate is written straight into the heap and the
# indexes (as COPY does): 5,000 new events, then every row must be in each
# index of carbon.behavior.
q eq_bulk -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs)
              SELECT source, 'late-' || seq, account, methodology, activity, occurred_at, attrs
              FROM public.eq_rows WHERE seq <= 5000 ORDER BY seq" >/dev/null
late=$(q eq_bulk -c "SELECT accepted + capped + rejected FROM carbon.process_inbox()")
check "5,000 new events through the direct path are all recorded ($late)" \
  test "$late/$(q eq_bulk -c "SELECT count(*) FROM carbon.behavior WHERE event_id LIKE 'late-%'")" = 5000/5000
check "behaviour indexes hold every row (amcheck, heapallindexed)" \
  q eq_bulk -o /dev/null -c "CREATE EXTENSION amcheck" \
    -c "SELECT bt_index_check(i.indexrelid, true) FROM pg_index i WHERE i.indrelid = 'carbon.behavior'::regclass"
check "the inbox is empty afterwards" test "$(q eq_bulk -c "SELECT count(*) FROM carbon.behavior_inbox")" = 0
for db in eq_one eq_bulk eq_chunks; do
  check "verify_integrity() clean in $db" test "$(q "$db" -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
done
check "expire_lots() afterwards keeps every check" \
  test "$(q eq_bulk -c "SELECT (SELECT lots FROM carbon.expire_lots(now() + interval '5 years')) > 0 AND (SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok) = 0")" = t

[ -n "${EQ_KEEP:-}" ] || { "$PGBIN/dropdb" eq_one; "$PGBIN/dropdb" eq_bulk; "$PGBIN/dropdb" eq_chunks; }
echo "inbox_equivalence: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
