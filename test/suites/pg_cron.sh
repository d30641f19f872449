#!/usr/bin/env bash
# expire_lots() scheduled with pg_cron (Debian package postgresql-15-cron),
# as docs/points.md recommends: the job runs in the ledger's database and
# moves expired lots to the expired sink.  pg_cron 1.4 schedules by the
# minute, so this waits for the next minute boundary (at most ~75 s).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$@"; }

"$PGBIN/dropdb" --if-exists cron_ledger >/dev/null 2>&1
"$PGBIN/createdb" cron_ledger
q cron_ledger >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.set_setting('points_validity', '1 day');
SELECT carbon.open_account('personal', '620700', 'cron-citizen');
SELECT carbon.issue(1, 'POINT', 500);
SQL
q postgres -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
# the lots expire tomorrow; the job looks two days ahead, as a clock would
job=$(q postgres -c "SELECT cron.schedule_in_database('carbon-expire-lots', '* * * * *',
                      \$\$SELECT * FROM carbon.expire_lots(now() + interval '2 days')\$\$, 'cron_ledger')")
check "the job is scheduled" test -n "$job"
status=""
for _ in $(seq 1 80); do
  status=$(q postgres -c "SELECT status FROM cron.job_run_details WHERE jobid = $job ORDER BY runid DESC LIMIT 1")
  [ "$status" = succeeded ] || [ "$status" = failed ] && break
  sleep 1
done
check "pg_cron ran expire_lots() in the ledger's database ($status)" test "$status" = succeeded
check "the lot was moved to the expired sink" \
  test "$(q cron_ledger -c "SELECT expired FROM carbon.v_supply WHERE asset = 'POINT' AND tier = 'personal'")" = 500
check "verify_integrity() clean after the job" \
  test "$(q cron_ledger -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
q postgres -c "SELECT cron.unschedule($job)" >/dev/null
"$PGBIN/dropdb" cron_ledger
echo "pg_cron: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
