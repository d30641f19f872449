#!/usr/bin/env bash
# R6, second half: a physical standby (pg_basebackup + streaming) of a
# working ledger stays consistent: after more writes on the primary, the
# standby has replayed them, every ledger table equals the primary's, and
# verify_integrity() is clean on the standby itself; the standby refuses
# writes.
source "$(dirname "$0")/../harness/lib.sh"
set +e
PGBIN=${PGBIN:-$(pg_config --bindir)}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }

start_cluster off
PRIMARY=$CL_TMP
STANDBY=$(mktemp -d /tmp/carbon_ledger_standby.XXXXXX)
chmod 755 "$STANDBY"
[ "$(id -u)" = 0 ] && chown postgres: "$STANDBY"
stop_standby() {
  as_pg "$PGBIN/pg_ctl" -D "$STANDBY/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$STANDBY"
  stop_cluster
}
trap stop_standby EXIT
p() { psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$PRIMARY" -d replica_ledger "$@"; }
s() { psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$STANDBY" -d replica_ledger "$@"; }

"$PGBIN/createdb" replica_ledger
p >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.open_account('personal', '620700', 'rep-' || i) FROM generate_series(1, 20) i;
SELECT carbon.open_account('merchant', '620700', 'rep-shop');
SELECT carbon.issue(i, 'POINT', 1000) FROM generate_series(1, 20) i;
SELECT carbon.transfer(i, 21, 'POINT', 10 * i) FROM generate_series(1, 20) i;
SELECT carbon.define_methodology('REP-METRO', 1, 'metro', 'I', 'metro', 'distance_substitution',
  '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 61, "daily_cap_g": 3000}');
SELECT carbon.submit_methodology('REP-METRO', 1), carbon.approve_methodology('REP-METRO', 1, 'rep'),
       carbon.publish_methodology('REP-METRO', 1, now() - interval '1 day');
SELECT carbon.register_source('rep-metro', ARRAY['metro']);
SELECT carbon.seal();
SQL

as_pg "$PGBIN/pg_basebackup" -h "$PRIMARY" -U postgres -D "$STANDBY/data" -R -X stream -c fast >/dev/null 2>&1
check "pg_basebackup took a base backup" test -f "$STANDBY/data/standby.signal"
{
  echo "unix_socket_directories = '$STANDBY'"
  echo "hot_standby = on"
} | as_pg tee -a "$STANDBY/data/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$STANDBY/data" -l "$STANDBY/server.log" -w start >/dev/null
check "the standby is in recovery" test "$(s -c 'SELECT pg_is_in_recovery()')" = t

# more work on the primary while the standby streams
p >/dev/null <<'SQL'
SELECT carbon.transfer(i, 21, 'POINT', 5) FROM generate_series(1, 20) i;
SELECT carbon.set_account_status(3, 'frozen', 'replica test');
SELECT carbon.reverse_entry(25, 'replica test');
-- the inbox writes behaviours straight into the heap and indexes: replayed too
INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
  SELECT 'rep-metro', 'rep-' || i, 1 + i % 20, 'REP-METRO', 1 + i % 7, now() - interval '1 hour'
  FROM generate_series(1, 3000) i;
SELECT * FROM carbon.process_inbox();
SELECT * FROM carbon.expire_lots(now() + interval '3 years');
SELECT carbon.seal();
SQL
target=$(p -c "SELECT pg_current_wal_lsn()")
caught_up=f
for _ in $(seq 1 100); do
  caught_up=$(s -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")
  [ "$caught_up" = t ] && break
  sleep 0.1
done
check "the standby replayed everything" test "$caught_up" = t
for t in account entry posting balance lot seal account_status_log behavior daily_usage points_carry; do
  q="SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM carbon.$t t"
  check "standby $t equals the primary's" test "$(p -c "$q")" = "$(s -c "$q")"
done
check "the standby finds a behaviour through its event-id index" \
  test "$(s -c "SET enable_seqscan = off; SELECT points > 0 FROM carbon.behavior WHERE source = 'rep-metro' AND event_id = 'rep-1'")" = t
check "verify_integrity() clean on the standby" \
  test "$(s -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
check "the standby refuses writes" \
  bash -c "! psql -X -q -h '$STANDBY' -d replica_ledger -c \"SELECT carbon.transfer(1, 21, 'POINT', 1)\" >/dev/null 2>&1"

echo "standby: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
