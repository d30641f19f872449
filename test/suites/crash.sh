#!/usr/bin/env bash
# R1 crash: 4 clients run a mixed workload (transfers, behaviours, issuance,
# inbox batches: 100 events COPYed in and processed in one transaction,
# redemptions and refunds in the mall; certified units: issue_units of a
# verified monitoring report, transfer_units from the project's owner,
# retire_units and retire_serials of a range the citizen holds; the market,
# half the calls: limit orders GTC/DAY/IOC/FOK around the reference price
# from four sellers of class I units and from the citizens, who only buy,
# sometimes to retire; market buys, cancels of resting orders, deposits and
# withdrawals of cash, the daily close)
# on a cluster of its own with fsync on, each logging every commit the server
# acknowledged; the postmaster is killed with SIGKILL at a random moment;
# after restart every acknowledged commit must be there (an acknowledged
# retirement: its certificate, which verifies; an acknowledged issuance: the
# report issued with all its serial blocks) and verify_integrity() clean
# (nothing half-applied: no retired block without its certificate, no
# certificate without its blocks, no issued report without its blocks).
# The market after each restart: every acknowledged order there with at
# least the fills it was acknowledged with (exactly, once it had ended),
# every acknowledged cancel done; no half-matched trade (both orders carry
# the fill, the entry is there, the buyer holds or has retired every serial
# the trade names, a buy that retires has its certificate); the escrow
# accounts hold what the open orders hold.  CRASH_ROUNDS rounds (default 10).
source "$(dirname "$0")/../harness/lib.sh"
set +e
PGBIN=${PGBIN:-$(pg_config --bindir)}
ROUNDS=${CRASH_ROUNDS:-10}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d crash "$@"; }

start_cluster on
"$PGBIN/createdb" crash
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT count(carbon.open_account('personal', '620700', 'crash-' || i)) FROM generate_series(1, 50) i;
SELECT count(carbon.open_account('merchant', '620700', 'crash-shop-' || i)) FROM generate_series(1, 5) i;
SELECT count(carbon.issue(i, 'POINT', 1000000)) FROM generate_series(1, 50) i;
SELECT carbon.define_methodology('CRASH-BIKE', 1, 'bike', 'I', 'cycling', 'distance_substitution',
                                 '{"baseline_g_per_pkm": 272, "project_g_per_pkm": 0}');
SELECT carbon.submit_methodology('CRASH-BIKE', 1), carbon.approve_methodology('CRASH-BIKE', 1, 'r1'),
       carbon.publish_methodology('CRASH-BIKE', 1, now() - interval '1 day');
SELECT carbon.register_source('crash-bikes', ARRAY['cycling']);
SELECT carbon.create_offer(50 + i, 'crash offer ' || i, 10 * i, 100000000,
                           tstzrange(now() - interval '1 hour', now() + interval '1 day')) FROM generate_series(1, 5) i;
-- certified units: a forestry project (10 % to the buffer pool) with 1,500
-- verified one-day monitoring reports waiting to be issued, 80 issued at
-- once and 20 t spread to each citizen
SELECT carbon.open_account('enterprise', '620700', 'crash-farm'), carbon.open_account('verifier', '620100', 'crash-verifier');
SELECT carbon.define_methodology('CRASH-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit',
                                 '{"g_per_unit": 1, "buffer_pct": 10}');
SELECT carbon.submit_methodology('CRASH-FOREST', 1), carbon.approve_methodology('CRASH-FOREST', 1, 'r1'),
       carbon.publish_methodology('CRASH-FOREST', 1, now() - interval '1 day');
DO $$
DECLARE
  farm bigint := carbon.account_id('enterprise', 'crash-farm');
  verifier bigint := carbon.account_id('verifier', 'crash-verifier');
  project bigint;
  report bigint;
BEGIN
  project := carbon.register_project(farm, 'CRASHFOREST', 'crash forest', 'CRASH-FOREST', '620700', 'r1');
  PERFORM carbon.publicize_project(project, current_date - 30);
  PERFORM carbon.approve_project(project);
  FOR d IN 1..1500 LOOP
    report := carbon.submit_monitoring(project, daterange(current_date - 1600 + d, current_date - 1599 + d), '50.5 t');
    PERFORM carbon.verify_monitoring(report, verifier, '50.5 t', 'ok');
    IF d <= 80 THEN
      PERFORM carbon.issue_units(report);
    END IF;
  END LOOP;
END $$;
SELECT count(carbon.transfer_units(carbon.account_id('enterprise', 'crash-farm'), i, 20)) FROM generate_series(1, 50) i;
-- the market: three more sellers with 400 t of the farm's class I units
-- each, cash for the citizens (the buyers: they never sell, so every
-- serial a trade names stays theirs, held or retired), a fee of 10 bp, a
-- reference price of 30.00 yuan per tonne
SELECT count(carbon.open_account('enterprise', '320100', 'crash-seller-' || k)) FROM generate_series(1, 3) k;
SELECT count(carbon.transfer_units(carbon.account_id('enterprise', 'crash-farm'),
                                   carbon.account_id('enterprise', 'crash-seller-' || k), 400))
FROM generate_series(1, 3) k;
SELECT count(carbon.deposit_cash(i, 50000, 'crash seed ' || i)) FROM generate_series(1, 50) i;
SELECT carbon.set_setting('trade_fee_bps', '10'), carbon.set_reference_price('CER-I', 30.00);
SQL
FARM=$(q -c "SELECT carbon.account_id('enterprise', 'crash-farm')")
SELLERS=($FARM $(q -c "SELECT string_agg(carbon.account_id('enterprise', 'crash-seller-' || k)::text, ' ') FROM generate_series(1, 3) k"))
# a limit price: a factor of the reference as it is when the order arrives, within the band
price() { echo "(SELECT greatest(ceil(reference_price * 0.9), least(floor(reference_price * 1.1),
                  round(reference_price * ($1 + random() * 0.15)::numeric))) / 100 FROM carbon.instrument WHERE code = 'CER-I')"; }

TIFS=(GTC DAY IOC FOK)
# client N: one transaction per psql call; a line is logged only once the
# server has answered, i.e. the commit was acknowledged.
client() {
  local n=$1 log=$2 i=0
  while :; do
    i=$((i + 1))
    local c=$((1 + (RANDOM % 50))) m=$((51 + (RANDOM % 5))) r
    local seller=${SELLERS[RANDOM % 4]} tif=${TIFS[RANDOM % 4]} retire="NULL"
    [ $((RANDOM % 6)) = 0 ] && retire="'crash c$n-$ROUND-$i'"
    case $((RANDOM % 20)) in
      0) r=$(q -c "SELECT 'entry ' || carbon.transfer($c, $m, 'POINT', 1 + $RANDOM % 50)" 2>/dev/null) ;;
      1) r=$(q -c "SELECT 'behavior ' || behavior_id FROM carbon.record_behavior('crash-bikes', 'c$n-$ROUND-$i',
                    $c, 'CRASH-BIKE', 1 + $RANDOM % 20, now())" 2>/dev/null) ;;
      2) r=$(q -c "SELECT 'entry ' || carbon.issue($c, 'RED', 1 + $RANDOM % 1000)" 2>/dev/null) ;;
      3) r=$(q -c "BEGIN" -c "INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
                    SELECT 'crash-bikes', 'i$n-$ROUND-$i-' || k, 1 + k % 50, 'CRASH-BIKE', 1 + k % 20, now()
                    FROM generate_series(1, 100) k" \
                  -c "SELECT 'inbox i$n-$ROUND-$i-' FROM carbon.process_inbox() WHERE accepted + capped = 100" \
                  -c "COMMIT" 2>/dev/null) ;;
      4) r=$(q -c "SELECT 'redemption ' || carbon.redeem($c, 1 + $RANDOM % 5, 1 + $RANDOM % 3)" 2>/dev/null) ;;
      5) r=$(q -c "SELECT 'entry ' || carbon.refund_redemption(entry_id, 1) FROM carbon.redemption
                    WHERE refunded < quantity ORDER BY random() LIMIT 1" 2>/dev/null) ;;
      6) r=$(q -c "SELECT 'issuance ' || m.id || ' ' || (SELECT count(*) FROM carbon.issue_units(m.id))
                    FROM (SELECT id FROM carbon.monitoring_report WHERE status = 'verified'
                          ORDER BY random() LIMIT 1) m" 2>/dev/null) ;;
      7) r=$(q -c "SELECT 'retirement ' || certificate FROM carbon.retire_units($c, 1 + $RANDOM % 5, 'voluntary',
                    'crash c$n-$ROUND-$i')" 2>/dev/null) ;;
      8) r=$(q -c "SELECT 'retirement ' || certificate FROM carbon.retire_serials($c,
                    (SELECT carbon.serial_text(i.region, b.vintage, p.code, b.lo, least(b.last, b.lo + $RANDOM % 4))
                     FROM (SELECT x.*, x.first + floor(random() * (x.last - x.first + 1))::bigint AS lo
                           FROM carbon.unit_block x WHERE x.account = $c AND x.state = 'held'
                           ORDER BY random() LIMIT 1) b
                     JOIN carbon.unit_issuance i ON i.id = b.issuance JOIN carbon.project p ON p.id = b.project),
                    'event_neutrality', 'crash c$n-$ROUND-$i')" 2>/dev/null) ;;
      9) r=$(q -c "SELECT 'entry ' || carbon.transfer_units($FARM, $c, 1 + $RANDOM % 10)" 2>/dev/null) ;;
      # the market: orders logged as "order ID STATUS FILLED" once acknowledged
      10|11|12|13) r=$(q -c "SELECT 'order ' || order_id || ' ' || status || ' ' || filled
                       FROM carbon.place_order($seller, 'sell', 1 + $RANDOM % 12, $(price 0.95), '$tif')" 2>/dev/null) ;;
      14|15|16|17) r=$(q -c "SELECT 'order ' || order_id || ' ' || status || ' ' || filled
                       FROM carbon.place_order($c, 'buy', 1 + $RANDOM % 12, $(price 0.9), '$tif', 'CER-I', NULL, $retire)" 2>/dev/null) ;;
      18) case $((RANDOM % 4)) in
            0) r=$(q -c "SELECT 'order ' || order_id || ' ' || status || ' ' || filled
                         FROM carbon.place_order($c, 'buy', 1 + $RANDOM % 20, NULL, 'IOC', 'CER-I', NULL, $retire)" 2>/dev/null) ;;
            1) r=$(q -c "SELECT 'entry ' || carbon.deposit_cash($c, 100 + $RANDOM % 1000, 'crash c$n-$ROUND-$i')" 2>/dev/null) ;;
            2) r=$(q -c "SELECT 'close ' || carbon.close_market_day((now() AT TIME ZONE (SELECT value FROM carbon.settings
                                                                                          WHERE name = 'timezone'))::date)" 2>/dev/null) ;;
            *) r=$(q -c "SELECT 'entry ' || carbon.withdraw_cash($c, 1 + $RANDOM % 200, 'crash c$n-$ROUND-$i')" 2>/dev/null) ;;
          esac ;;
      19) r=$(q -c "SELECT 'cancel ' || id || ' ' || carbon.cancel_order(id) FROM
                     (SELECT id FROM carbon.market_order WHERE status IN ('open', 'partially_filled')
                      ORDER BY random() LIMIT 1) o" 2>/dev/null) ;;
    esac
    [ $? -eq 0 ] && [ -n "$r" ] && echo "$r" >>"$log"
    [ -e "$CL_TMP/stop" ] && return 0
  done
}

for ROUND in $(seq 1 "$ROUNDS"); do
  rm -f "$CL_TMP/stop" "$CL_TMP"/acked.*
  pids=()
  for n in 1 2 3 4; do client "$n" "$CL_TMP/acked.$n" & pids+=($!); done
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 1 + (r % 200) / 100 }')"
  pm=$(head -1 "$CL_TMP/data/postmaster.pid")
  kill -9 "$pm"
  touch "$CL_TMP/stop"
  for p in "${pids[@]}"; do wait "$p"; done
  # the backends die with their postmaster; start again: crash recovery
  for _ in $(seq 1 50); do pgrep -f "postgres -D $CL_TMP/data" >/dev/null || break; sleep 0.1; done
  # orphaned backends may hold shared memory for a moment: retry the start
  for _ in $(seq 1 20); do
    as_pg "$PGBIN/pg_ctl" -D "$CL_TMP/data" -l "$CL_TMP/server.log" -w start >/dev/null 2>&1 && break
    sleep 0.5
  done
  acked=$(cat "$CL_TMP"/acked.* 2>/dev/null | wc -l)
  missing_entries=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n 's/^entry //p' | paste -sd, -)
  missing_behaviors=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n 's/^behavior //p' | paste -sd, -)
  redemptions=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n 's/^redemption //p' | paste -sd, -)
  lost=$(q -c "SELECT (SELECT count(*) FROM unnest('{${missing_entries}}'::bigint[]) e
                       WHERE NOT EXISTS (SELECT 1 FROM carbon.entry WHERE id = e))
                    + (SELECT count(*) FROM unnest('{${missing_behaviors}}'::bigint[]) b
                       WHERE NOT EXISTS (SELECT 1 FROM carbon.behavior WHERE id = b))
                    + (SELECT count(*) FROM unnest('{${redemptions}}'::bigint[]) r
                       WHERE NOT EXISTS (SELECT 1 FROM carbon.redemption WHERE entry_id = r)
                          OR NOT EXISTS (SELECT 1 FROM carbon.entry WHERE id = r))")
  batches=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n 's/^inbox //p' | paste -sd, -)
  lost=$((lost + $(q -c "SELECT count(*) FROM unnest('{${batches}}'::text[]) t
                         WHERE (SELECT count(*) FROM carbon.behavior WHERE event_id LIKE t || '%') <> 100")))
  # an inbox batch is all there or not at all, acknowledged or not
  partial=$(q -c "SELECT count(*) FROM (SELECT substring(event_id from '^(i[0-9]+-[0-9]+-[0-9]+-)') AS t, count(*) AS n
                  FROM carbon.behavior WHERE event_id LIKE 'i%' GROUP BY 1) b WHERE n <> 100")
  check "round $ROUND: no inbox batch half there" test "$partial" = 0
  certificates=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n "s/^retirement \(.*\)/'\1'/p" | paste -sd, -)
  check "round $ROUND: every acknowledged retirement's certificate is there and verifies" \
    test "$(q -c "SELECT count(*) FROM unnest(ARRAY[${certificates}]::text[]) c
                  WHERE NOT EXISTS (SELECT 1 FROM carbon.retirement WHERE certificate = c)
                     OR NOT carbon.verify_certificate(c)")" = 0
  issuances=$(cat "$CL_TMP"/acked.* 2>/dev/null | sed -n 's/^issuance \([0-9]*\) .*/\1/p' | paste -sd, -)
  check "round $ROUND: every acknowledged issuance is there, its report issued with all its serial blocks" \
    test "$(q -c "SELECT count(*) FROM unnest('{${issuances}}'::bigint[]) r
                  WHERE NOT EXISTS (SELECT 1 FROM carbon.monitoring_report m
                                    WHERE m.id = r AND m.status = 'issued' AND m.issued_tonnes = 50
                                      AND m.issued_tonnes = (SELECT sum(last - first + 1) FROM carbon.unit_issuance
                                                             WHERE report = r)
                                      AND m.issued_tonnes = (SELECT sum(b.last - b.first + 1) FROM carbon.unit_block b
                                                             JOIN carbon.unit_issuance i ON i.id = b.issuance
                                                             WHERE i.report = r))")" = 0
  check "round $ROUND: no retirement or issuance half there (blocks, certificates, reports and entries agree)" \
    test "$(q -c "SELECT (SELECT count(*) FROM carbon.unit_block b WHERE b.state = 'retired'
                          AND NOT EXISTS (SELECT 1 FROM carbon.retirement r WHERE r.entry_id = b.entry_id))
                       + (SELECT count(*) FROM carbon.retirement r
                          WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = r.entry_id))
                       + (SELECT count(*) FROM (SELECT entry_id, account, sum(tonnes) AS tonnes FROM carbon.retirement
                                                GROUP BY 1, 2) r
                          WHERE r.tonnes <> (SELECT coalesce(sum(b.last - b.first + 1), 0) FROM carbon.unit_block b
                                             WHERE b.entry_id = r.entry_id AND b.account = r.account
                                               AND b.state = 'retired'))
                       + (SELECT count(*) FROM carbon.monitoring_report m
                          WHERE (m.status = 'issued') <> EXISTS (SELECT 1 FROM carbon.unit_issuance i WHERE i.report = m.id))
                       + (SELECT count(*) FROM carbon.unit_issuance i
                          WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = i.entry_id))")" = 0
  # the market: every acknowledged order is there with at least the fills it
  # was acknowledged with (an order that had ended, exactly as it ended), and
  # every acknowledged cancel cancelled it
  orders=$(cat "$CL_TMP"/acked.* 2>/dev/null | awk '$1 == "order" {printf "%s(%s,%s,%s)", sep, $2, "'"'"'" $3 "'"'"'", $4; sep = ","}')
  cancels=$(cat "$CL_TMP"/acked.* 2>/dev/null | awk '$1 == "cancel" && $3 == "true" {print $2}' | paste -sd, -)
  check "round $ROUND: every acknowledged order is there with its fills, every acknowledged cancel cancelled its order" \
    test "$(q -c "SELECT (SELECT count(*) FROM (VALUES (0::bigint, ''::text, 0::bigint) ${orders:+, $orders}) a(id, status, filled)
                          WHERE a.id > 0 AND NOT EXISTS (
                            SELECT 1 FROM carbon.market_order o
                            WHERE o.id = a.id AND o.filled >= a.filled
                              AND (a.status IN ('open', 'partially_filled') OR (o.status = a.status AND o.filled = a.filled))))
                       + (SELECT count(*) FROM unnest('{${cancels}}'::bigint[]) c
                          WHERE NOT EXISTS (SELECT 1 FROM carbon.market_order o
                                            WHERE o.id = c AND o.status = 'cancelled' AND o.end_reason = 'cancelled'))")" = 0
  # no half-matched trade: both orders carry the fill (the orders' fills are
  # their trades), the trade's entry is there, the buyer holds or has retired
  # every serial the trade names, a buy that retires has its certificate
  check "round $ROUND: no half-matched trade (orders' fills = their trades, entries there, serials with the buyer, certificates)" \
    test "$(q -c "SELECT (SELECT count(*) FROM carbon.market_order o
                          LEFT JOIN (SELECT order_id, sum(tonnes) AS tonnes, sum(price * tonnes) AS turnover, sum(fee) AS fees
                                     FROM (SELECT buy_order AS order_id, tonnes, price, buyer_fee AS fee FROM carbon.trade
                                           UNION ALL SELECT sell_order, tonnes, price, seller_fee FROM carbon.trade) x
                                     GROUP BY 1) t ON t.order_id = o.id
                          WHERE o.filled <> coalesce(t.tonnes, 0) OR o.turnover <> coalesce(t.turnover, 0)
                             OR o.fees <> coalesce(t.fees, 0))
                       + (SELECT count(*) FROM carbon.trade t
                          WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = t.entry_id AND e.kind = 'trade')
                             OR NOT EXISTS (SELECT 1 FROM carbon.market_order b WHERE b.id = t.buy_order AND b.account = t.buyer)
                             OR NOT EXISTS (SELECT 1 FROM carbon.market_order s WHERE s.id = t.sell_order AND s.account = t.seller))
                       + (SELECT count(*) FROM carbon.trade t, unnest(t.serials) u, LATERAL carbon.parse_serial(u) s
                          WHERE s.last - s.first + 1 <> (SELECT coalesce(sum(least(b.last, s.last) - greatest(b.first, s.first) + 1), 0)
                                                         FROM carbon.unit_block b JOIN carbon.project p ON p.id = b.project
                                                         WHERE p.code = s.project_code AND b.vintage = s.vintage
                                                           AND b.first <= s.last AND b.last >= s.first
                                                           AND b.account = t.buyer AND b.state IN ('held', 'retired')))
                       + (SELECT count(*) FROM carbon.trade t
                          WHERE t.tonnes <> (SELECT coalesce(sum(s.last - s.first + 1), 0)
                                             FROM unnest(t.serials) u, LATERAL carbon.parse_serial(u) s))
                       + (SELECT count(*) FROM carbon.trade t JOIN carbon.market_order o ON o.id = t.buy_order
                          WHERE o.retire_for IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM carbon.retirement r WHERE r.entry_id = t.entry_id
                                              AND r.account = t.buyer AND r.serials = t.serials AND r.tonnes = t.tonnes))")" = 0
  # escrow: the escrow accounts of each segment hold what its resting orders
  # hold (cash of bids, units of asks, in blocks held for each ask); ended
  # orders hold nothing
  check "round $ROUND: escrow balances are what the open orders hold (per segment, per ask's blocks), ended orders hold none" \
    test "$(q -c "SELECT (SELECT count(*) FROM
                            (SELECT b.account, b.asset_id, sum(b.amount) AS amount FROM carbon.balance b
                             JOIN carbon.account a ON a.id = b.account
                             WHERE a.kind = 'escrow' GROUP BY 1, 2 HAVING sum(b.amount) <> 0) e
                          FULL JOIN
                            (SELECT x.id AS account, x.asset_id, sum(o.escrow) AS amount
                             FROM carbon.market_order o JOIN carbon.account h ON h.id = o.account
                             JOIN carbon.account x ON x.kind = 'escrow' AND x.tier = h.tier AND x.region = h.region
                              AND x.asset_id = (SELECT id FROM carbon.asset
                                                WHERE code = CASE o.side WHEN 'buy' THEN 'CNY' ELSE 'CER' END)
                             WHERE o.status IN ('open', 'partially_filled') AND o.escrow > 0 GROUP BY 1, 2) o
                          ON o.account = e.account AND o.asset_id = e.asset_id
                          WHERE e.amount IS DISTINCT FROM o.amount)
                       + (SELECT count(*) FROM (SELECT id, account, escrow FROM carbon.market_order
                                                WHERE side = 'sell' AND status IN ('open', 'partially_filled')) o
                          FULL JOIN (SELECT escrow_order, account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                                     WHERE state = 'escrow' GROUP BY 1, 2) b ON b.escrow_order = o.id
                          WHERE o.id IS NULL OR b.escrow_order IS NULL OR b.account <> o.account OR b.tonnes <> o.escrow)
                       + (SELECT count(*) FROM carbon.market_order
                          WHERE (status IN ('open', 'partially_filled')) <> (ended_at IS NULL)
                             OR (status NOT IN ('open', 'partially_filled') AND escrow <> 0))")" = 0
  broken=$(q -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")
  check "round $ROUND: all $acked acknowledged commits survived" test "$lost" = 0
  check "round $ROUND: verify_integrity() clean after recovery" test "$broken" = 0
  check "round $ROUND: every refund matches its redemption (refunded count = refund rows, stock = initial - net)" \
    test "$(q -c "SELECT (SELECT count(*) FROM carbon.redemption r
                  WHERE r.refunded <> (SELECT coalesce(sum(quantity), 0) FROM carbon.refund f WHERE f.redemption = r.entry_id))
                 + (SELECT count(*) FROM carbon.offer o
                    WHERE o.stock <> 100000000 - (SELECT coalesce(sum(quantity - refunded), 0) FROM carbon.redemption
                                                  WHERE offer = o.id))")" = 0
  echo "# round $ROUND: $acked acknowledged commits ($(cat "$CL_TMP"/acked.* 2>/dev/null | grep -c '^inbox') inbox batches of 100, $(cat "$CL_TMP"/acked.* 2>/dev/null | grep -c '^retirement') retirements, $(cat "$CL_TMP"/acked.* 2>/dev/null | grep -c '^issuance') issuances, $(cat "$CL_TMP"/acked.* 2>/dev/null | grep -c '^order') orders, $(cat "$CL_TMP"/acked.* 2>/dev/null | grep -c '^cancel .* true') cancels; $(q -c "SELECT count(*) FROM carbon.trade") trades, $(q -c "SELECT count(*) FROM carbon.market_order WHERE status IN ('open', 'partially_filled')") orders resting so far), lost $lost, broken checks $broken"
done
check "every certificate verifies after $ROUNDS crashes" \
  test "$(q -c "SELECT count(*) FROM carbon.retirement WHERE NOT carbon.verify_certificate(certificate)")" = 0
check "after $ROUNDS crashes every resting order cancels, and the escrow accounts are left empty" \
  test "$(q -c "SELECT bool_and(carbon.cancel_order(id)) IS NOT FALSE FROM carbon.market_order
                WHERE status IN ('open', 'partially_filled')")" = t -a \
       "$(q -c "SELECT (SELECT count(*) FROM (SELECT b.account, b.asset_id FROM carbon.balance b
                                              JOIN carbon.account a ON a.id = b.account
                                              WHERE a.kind = 'escrow' GROUP BY 1, 2 HAVING sum(b.amount) <> 0) e)
                     + (SELECT count(*) FROM carbon.unit_block WHERE state = 'escrow')
                     + (SELECT count(*) FROM carbon.market_order WHERE status IN ('open', 'partially_filled') OR escrow <> 0)")" = 0
check "the ledger can be sealed and verified after $ROUNDS crashes" \
  test "$(q -c "SELECT carbon.seal() IS NOT NULL AND (SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok) = 0")" = t

stop_cluster
echo "crash: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
