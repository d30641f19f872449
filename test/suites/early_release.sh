#!/usr/bin/env bash
# The book's lock released before the commit's WAL flush
# (src/early_release.c): a transaction that locked a market's book commits
# asynchronously, then waits for its commit record to reach disk before its
# client hears of the commit.  On a cluster of its own with fsync on and a
# WAL writer that sleeps 10 s (so that a commit nobody flushes stays in
# shared memory): ORDERS_ROUNDS rounds (default 5) of one order placed,
# acknowledged, and the postmaster killed with SIGKILL at once; after the
# restart every acknowledged order is there with its escrow.  Also: the
# transaction's synchronous_commit reads off once it holds the book's lock,
# and stays as it was when the setting carbon_ledger.early_lock_release is
# off (superusers only), when the session already commits asynchronously,
# and when synchronous standbys are named; and synchronous standbys named by
# a reload while the transaction runs are still waited for at its commit.
source "$(dirname "$0")/../harness/lib.sh"
set +e
PGBIN=${PGBIN:-$(pg_config --bindir)}
ROUNDS=${ORDERS_ROUNDS:-5}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d early "$@"; }

start_cluster on "bgwriter_lru_maxpages = 0"
"$PGBIN/createdb" early
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.open_account('enterprise', '620700', 'early-buyer');
SELECT carbon.deposit_cash(carbon.account_id('enterprise', 'early-buyer'), 100000000, 'early');
SELECT carbon.set_reference_price('CER-I', 60);
CREATE ROLE early_clerk LOGIN;
GRANT USAGE ON SCHEMA carbon TO early_clerk;
SQL
buyer=$(q -c "SELECT carbon.account_id('enterprise', 'early-buyer')")

# (the library is loaded first, by the type co2e: a placeholder a user sets
# before it is loaded is dropped with a warning when it loads)

# one resting buy in a transaction of its own: "order id|synchronous_commit
# inside the transaction after the order"
place() {
  psql -X -q -t -A -v ON_ERROR_STOP=1 -d early "$@" <<SQL
BEGIN;
SELECT order_id FROM carbon.place_order($buyer, 'buy', 1, 55.00) \gset
SELECT :order_id || '|' || current_setting('synchronous_commit');
COMMIT;
SQL
}

check "an order's transaction commits asynchronously once it holds the book's lock" \
  test "$(place | cut -d'|' -f2)" = off
check "carbon_ledger.early_lock_release = off keeps the commit synchronous" \
  test "$(PGOPTIONS='-c carbon_ledger.early_lock_release=off' place | cut -d'|' -f2)" = on
check "a session that commits asynchronously already is left as it is" \
  test "$(PGOPTIONS='-c synchronous_commit=off' place | cut -d'|' -f2)" = off
check "only a superuser may turn carbon_ledger.early_lock_release off" \
  test "$(psql -X -q -t -A -U early_clerk -d early -c "SELECT '1 kg'::carbon.co2e" \
            -c "SET carbon_ledger.early_lock_release = off" 2>&1 | grep -c 'permission denied to set parameter')" = 1

check "a misspelt carbon_ledger.* setting is refused once the library is loaded" \
  test "$(psql -X -q -t -A -d early -c "SELECT '1 kg'::carbon.co2e" \
            -c "SET carbon_ledger.early_lock_releas = off" 2>&1 | grep -c 'reserved prefix')" = 1

# with a synchronous standby named, the commit keeps its wait for it (the
# transaction is rolled back: no standby answers here)
q -c "ALTER SYSTEM SET synchronous_standby_names = 'early_standby'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
sc=$(q <<SQL
BEGIN;
SELECT order_id FROM carbon.place_order($buyer, 'buy', 1, 55.00) \gset
SELECT current_setting('synchronous_commit');
ROLLBACK;
SQL
)
check "with synchronous standbys named, the commit stays synchronous" test "$sc" = on
q -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1

# standbys named by a reload after the transaction took the book's lock: its
# commit, made early, still waits for them before the client hears of it
# (cancelled here: no standby answers; the commit stays, as PostgreSQL's)
PGAPPNAME=early_reload psql -X -q -t -A -d early >"$CL_TMP/reload.out" 2>&1 <<SQL &
BEGIN;
SELECT order_id FROM carbon.place_order($buyer, 'buy', 1, 55.00) \gset
SELECT pg_sleep(3);
COMMIT;
SELECT 'committed ' || :order_id;
SQL
reload_psql=$!
sleep 1
q -c "ALTER SYSTEM SET synchronous_standby_names = 'early_standby'" -c "SELECT pg_reload_conf()" >/dev/null
waited=no
for _ in $(seq 1 100); do
  [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'early_reload' AND wait_event = 'SyncRep'")" = 1 ] &&
    { waited=yes; break; }
  sleep 0.1
done
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'early_reload'" >/dev/null
wait "$reload_psql"
check "standbys named by a reload while the order's transaction ran: its commit waits for them" test "$waited" = yes
check "... and cancelled, the wait says the commit is local only, and the order is there" \
  test "$(grep -c 'canceling wait for synchronous replication' "$CL_TMP/reload.out")" -ge 1 -a \
       "$(q -c "SELECT count(*) FROM carbon.market_order WHERE id = $(sed -nE 's/^committed ([0-9]+)$/\1/p' "$CL_TMP/reload.out" | head -1)")" = 1
q -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1

lost=0; acked=0
for ROUND in $(seq 1 "$ROUNDS"); do
  # the WAL writer stopped: nothing but the commit itself writes its record
  ww=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
  kill -STOP "$ww"
  r=$(place)
  id=${r%%|*}
  # acknowledged: kill the postmaster, then the WAL writer
  pm=$(head -1 "$CL_TMP/data/postmaster.pid")
  kill -9 "$pm"
  kill -9 "$ww"
  for _ in $(seq 1 50); do pgrep -f "postgres -D $CL_TMP/data" >/dev/null || break; sleep 0.1; done
  for _ in $(seq 1 20); do
    as_pg "$PGBIN/pg_ctl" -D "$CL_TMP/data" -l "$CL_TMP/server.log" -w start >/dev/null 2>&1 && break
    sleep 0.5
  done
  if [ -n "$id" ] && [ "${r#*|}" = off ]; then
    acked=$((acked + 1))
    [ "$(q -c "SELECT count(*) FROM carbon.market_order WHERE id = $id AND status = 'open' AND escrow > 0")" = 1 ] ||
      { lost=$((lost + 1)); echo "# order $id was acknowledged and is gone after the crash"; }
  fi
done
check "every one of $ROUNDS orders acknowledged just before a SIGKILL is there after restart" \
  test "$acked" = "$ROUNDS" -a "$lost" = 0
check "the escrow account holds what the open orders hold after the crashes" \
  test "$(q -c "SELECT (SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                        WHERE a.kind = 'escrow' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CNY'))
                     = (SELECT sum(escrow) FROM carbon.market_order WHERE status IN ('open', 'partially_filled'))")" = t
check "verify_integrity() is clean after the crashes" \
  test "$(q -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0

stop_cluster
echo "early_release: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
