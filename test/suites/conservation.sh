#!/usr/bin/env bash
# R3 conservation ("bank" test): 4 clients move value at random between
# participants for CONSERVATION_SECONDS (default 8) — points to merchants and
# the bureau, merchants settling with the platform, CNY between anyone, CER
# among the tiers that may hold it — and use the mall: redemptions of the
# merchants' offers, refunds, settlements into the redeemed sink, exchanges
# of points into 彩虹元 and back; many refused (flow, balance, stock,
# nothing to refund), many concurrent on the same accounts.
# Certified units: CER exists only as serials (carbon.issue refuses it), so
# the world gets its CER from four projects (an enterprise's forestry
# project with a buffer pool, a government's class II solar project, a
# citizen's forestry project, the platform's pooled personal reductions),
# three verified monitoring reports each, issued and spread with
# transfer_units and transfer(..., 'CER'); the clients then move units with
# transfer_units and transfer(..., 'CER') (both must follow the serials),
# retire them oldest first (retire_units) and by a named range taken from
# the account's blocks (retire_serials: often refused, another client moved
# the range first).
# The market (api.md §6): with a reference price of 30.00 yuan per tonne, a
# fee of 15 bp and 20,000 yuan of cash each, the clients send
# CONSERVATION_ORDERS (default 10,000) orders among their other calls —
# limit orders GTC / DAY / IOC / FOK, about half priced to cross the book,
# all within the band of the reference as it stands (some outside it or off
# the tick), market orders, buys that retire what they buy, request ids
# sent twice — and deposits, withdrawals, cancels, a daily close and a new
# reference price now and then.  While orders rest, the escrow accounts hold
# exactly what they hold; at the end half the resting GTC orders reach their
# maximum life, the day closes and the rest is cancelled: every order has
# ended once, escrow is empty.
# Per asset, what participants (the market's fee accounts among them), the
# redeemed, retired and cancelled sinks, escrow and the clearing accounts
# hold in total never changes — CNY changes by exactly the acknowledged
# deposits less withdrawals — and verify_integrity() stays clean; every
# order's fills are its trades, every trade is at the resting price between
# two accounts, delivered its class I serials to the buyer (or retired them
# with a certificate) in its entry; every issued serial is in exactly one
# block, every participant's CER balance is its held blocks, every
# certificate verifies and names the blocks its retirement took; no call
# ends with an internal (XX000) or integrity (CL009) error.
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
SECONDS_TO_RUN=${CONSERVATION_SECONDS:-8}
ORDERS=${CONSERVATION_ORDERS:-10000}
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d bank "$@"; }

"$PGBIN/dropdb" --if-exists bank >/dev/null 2>&1
"$PGBIN/createdb" bank
q >/dev/null <<'SQL'
CREATE EXTENSION carbon_ledger;
SELECT carbon.open_account(t, CASE WHEN i % 2 = 0 THEN '620700' ELSE '320100' END, t || '-' || i)
FROM unnest(ARRAY['personal', 'enterprise', 'government', 'merchant', 'platform']) t, generate_series(1, 6) i;
SELECT carbon.issue(id, a, 100000) FROM carbon.account, unnest(ARRAY['POINT', 'CNY']) a
WHERE kind = 'participant';
SELECT carbon.create_offer(id, 'offer of ' || id, 1 + id % 7, 1000000,
                           tstzrange(now() - interval '1 hour', now() + interval '1 day'))
FROM carbon.account WHERE tier = 'merchant' AND kind = 'participant' ORDER BY id;
SELECT carbon.define_asset('RAINBOW', 'currency', '彩虹元');
SELECT carbon.set_exchange_rate('POINT', 'RAINBOW', 1, 3, now()), carbon.set_exchange_rate('RAINBOW', 'POINT', 3, 1, now());
-- certified units: a verifier, three methodologies, four projects of three
-- reports each (vintages 2022..2024, a remainder under a tonne each time)
SELECT carbon.open_account('verifier', '620100', 'bank-verifier');
SELECT carbon.define_methodology(code, 1, code, class, scenario, 'per_unit', params::jsonb)
FROM (VALUES ('BANK-FOREST', 'I', 'forestry', '{"g_per_unit": 1, "buffer_pct": 10}'),
             ('BANK-PV', 'II', 'solar', '{"g_per_unit": 1}'),
             ('BANK-POOL', 'I', 'pooled', '{"g_per_unit": 1}')) m(code, class, scenario, params);
SELECT carbon.submit_methodology(code, 1), carbon.approve_methodology(code, 1, 'panel'),
       carbon.publish_methodology(code, 1, now() - interval '1 year')
FROM unnest(ARRAY['BANK-FOREST', 'BANK-PV', 'BANK-POOL']) code;
-- the platform pools its citizens' reductions before certifying them
SELECT carbon.issue(id, 'RED', 3000000000) FROM carbon.account WHERE tier = 'personal' AND kind = 'participant';
SELECT carbon.transfer(id, (SELECT min(id) FROM carbon.account WHERE tier = 'platform' AND kind = 'participant'),
                       'RED', 3000000000, 'pooling for certification')
FROM carbon.account WHERE tier = 'personal' AND kind = 'participant';
DO $$
DECLARE
  p record;
  owner carbon.account;
  project bigint;
  report bigint;
  verifier bigint := carbon.account_id('verifier', 'bank-verifier');
BEGIN
  FOR p IN SELECT * FROM (VALUES ('enterprise', 'BANKFOREST1', 'BANK-FOREST', 30000),
                                 ('government', 'BANKPV1', 'BANK-PV', 20000),
                                 ('personal', 'BANKFOREST2', 'BANK-FOREST', 12000),
                                 ('platform', 'BANKPOOL1', 'BANK-POOL', 5000)) x(tier, code, methodology, tonnes) LOOP
    SELECT * INTO owner FROM carbon.account WHERE tier = p.tier AND kind = 'participant' ORDER BY id LIMIT 1;
    project := carbon.register_project(owner.id, p.code, 'bank project ' || p.code, p.methodology, owner.region,
                                       'not viable without carbon revenue');
    PERFORM carbon.publicize_project(project, current_date - 30);
    PERFORM carbon.approve_project(project);
    FOR y IN 2022..2024 LOOP
      report := carbon.submit_monitoring(project, daterange(make_date(y, 1, 1), make_date(y + 1, 1, 1)),
                                         (p.tonnes + 0.5 || ' t')::carbon.co2e);
      PERFORM carbon.verify_monitoring(report, verifier, (p.tonnes + 0.25 || ' t')::carbon.co2e, 'ok');
      PERFORM carbon.issue_units(report);
    END LOOP;
  END LOOP;
END $$;
-- each owner spreads a share of its units among the 23 other CER holders,
-- by transfer_units and by transfer(..., 'CER')
SELECT CASE WHEN t.id % 2 = 0 THEN carbon.transfer_units(o.owner, t.id, share, 'seed')
            ELSE carbon.transfer(o.owner, t.id, 'CER', share, 'seed') END
FROM (SELECT owner, carbon.balance(owner, 'CER') / 30 AS share FROM carbon.project) o
JOIN carbon.account t ON t.kind = 'participant' AND t.tier IN ('personal', 'enterprise', 'government', 'platform')
                     AND t.id <> o.owner AND t.id <= 30
ORDER BY o.owner, t.id;
-- the market: a fee of 15 bp on each side, a reference price of 30.00 yuan
-- per tonne, 20,000 yuan of cash for each of the clients' accounts
SELECT carbon.set_setting('trade_fee_bps', '15');
SELECT carbon.set_reference_price('CER-I', 30.00);
SELECT count(carbon.deposit_cash(id, 20000, 'bank seed ' || id)) FROM carbon.account WHERE id <= 30;
-- the market's day: the local day of the ledger's time zone (trade_day)
CREATE FUNCTION public.bank_today() RETURNS date LANGUAGE sql STABLE
  RETURN (now() AT TIME ZONE (SELECT value FROM carbon.settings WHERE name = 'timezone'))::date;
-- a batch of n random market calls of client c (statements for psql's
-- \gexec, each its own transaction): n orders — limit orders GTC / DAY /
-- IOC / FOK, half of them priced to cross the book (a buy at or above the
-- reference, a sell at or below it) and half to rest (the other side of the
-- reference), all within the band of the reference as it is when the order
-- arrives; some off the tick or outside the band; market orders; buys that
-- retire what they buy; some with a request id, sent twice (the second a
-- replay) — and among them deposits, withdrawals, cancels of resting and of
-- ended orders, a daily close and a new reference price now and then.
-- Every statement prints what the server acknowledged.
CREATE FUNCTION public.bank_market(c int, batch int, n int) RETURNS SETOF text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  orders int := 0;
  r float8;
  acc int;
  amt numeric;
  buy boolean;
  f numeric;
  price text;
  tif text;
  tonnes int;
  retire text;
  req text;
  stmt text;
  purposes text[] := ARRAY['event_neutrality', 'entity_neutrality', 'voluntary', 'compliance_offset',
                           'event_neutrality', 'voluntary', 'eco_damage_compensation'];
BEGIN
  WHILE orders < n LOOP
    r := random();
    acc := 1 + floor(random() * 30)::int;
    IF r < 0.04 THEN
      amt := round((100 + random() * 20000)::numeric, floor(random() * 3)::int);
      RETURN NEXT format($s$SELECT 'deposit %s ' || carbon.deposit_cash(%s, %s, 'bank c%s')$s$,
                         (amt * 100)::bigint, acc, amt, c);
    ELSIF r < 0.07 THEN
      amt := round((10 + random() * 8000)::numeric, floor(random() * 3)::int);
      RETURN NEXT format($s$SELECT 'withdrawal %s ' || carbon.withdraw_cash(%s, %s, 'bank c%s')$s$,
                         (amt * 100)::bigint, acc, amt, c);
    ELSIF r < 0.15 THEN   -- a resting order, at random
      RETURN NEXT $s$SELECT 'cancel ' || id || ' ' || carbon.cancel_order(id) FROM
                       (SELECT id FROM carbon.market_order WHERE status IN ('open', 'partially_filled')
                        ORDER BY random() LIMIT 1) o$s$;
    ELSIF r < 0.17 THEN   -- any order: mostly one that has ended (false)
      RETURN NEXT $s$SELECT 'cancel ' || id || ' ' || carbon.cancel_order(id) FROM
                       (SELECT 1 + floor(random() * (SELECT last_value FROM carbon.market_order_id_seq))::bigint AS id) o
                     WHERE EXISTS (SELECT 1 FROM carbon.market_order m WHERE m.id = o.id)$s$;
    ELSIF r < 0.1735 THEN
      RETURN NEXT $s$SELECT 'close ' || carbon.close_market_day(public.bank_today())$s$;
    ELSIF r < 0.175 THEN
      RETURN NEXT format($s$SELECT 'reference' FROM carbon.set_reference_price('CER-I', %s)$s$,
                         round((27 + random() * 6)::numeric, 2));
    ELSE
      orders := orders + 1;
      buy := random() < 0.5;
      tonnes := CASE WHEN random() < 0.9 THEN 1 + floor(random() * 30)::int ELSE 1 + floor(random() * 200)::int END;
      retire := CASE WHEN buy AND random() < 0.12
                     THEN format('%L, %L', 'bank market c' || c, purposes[1 + floor(random() * cardinality(purposes))::int])
                     ELSE 'NULL, NULL' END;
      req := CASE WHEN random() < 0.05 THEN quote_literal(format('c%s-%s-%s', c, batch, orders)) ELSE 'NULL' END;
      r := random();
      IF r < 0.1 THEN   -- a market order (never rests)
        price := 'NULL';
        tif := (ARRAY['GTC', 'IOC', 'FOK'])[1 + floor(random() * 3)::int];
      ELSE
        -- a factor of the reference: crossing or resting, within the band
        -- (or, 2 % of the time, outside it; 1 % off the tick)
        f := CASE WHEN (random() < 0.5) = buy THEN 1 + random() * 0.1 ELSE 0.9 + random() * 0.095 END;
        price := format($s$(SELECT greatest(ceil(reference_price * 0.9), least(floor(reference_price * 1.1),
                                                                                round(reference_price * %s))) / 100
                            FROM carbon.instrument WHERE code = 'CER-I')$s$, round(f, 4));
        IF r < 0.12 THEN
          price := format($s$(SELECT round(reference_price * %s) / 100 FROM carbon.instrument WHERE code = 'CER-I')$s$,
                          (ARRAY[0.8, 0.85, 1.15, 1.2])[1 + floor(random() * 4)::int]);
        ELSIF r < 0.13 THEN
          price := price || ' + 0.005';
        END IF;
        r := random();
        tif := CASE WHEN r < 0.35 THEN 'GTC' WHEN r < 0.6 THEN 'DAY' WHEN r < 0.85 THEN 'IOC' ELSE 'FOK' END;
      END IF;
      stmt := format($s$SELECT '%%s ' || order_id || ' ' || status || ' ' || filled || ' %s'
                        FROM carbon.place_order(%s, %L, %s, %s, %L, 'CER-I', %s, %s)$s$,
                     CASE WHEN req = 'NULL' THEN '-' ELSE trim(req, '''') END,
                     acc, CASE WHEN buy THEN 'buy' ELSE 'sell' END, tonnes, price, tif, req, retire);
      RETURN NEXT format(stmt, 'order');
      IF req <> 'NULL' THEN
        RETURN NEXT format(stmt, 'replay');
      END IF;
    END IF;
  END LOOP;
END $$;
SQL
# what participants (the market's fee accounts among them), the sinks, the
# escrow accounts and clearing hold, per asset; CNY apart (cash comes in and
# goes out through the gateway: deposit_cash, withdraw_cash)
held="a.kind IN ('participant', 'redeemed', 'retired', 'cancelled', 'escrow', 'clearing')"
totals() { q -c "SELECT string_agg(s.code || '=' || coalesce(t.total, 0), ' ' ORDER BY s.code)
                 FROM carbon.asset s LEFT JOIN
                      (SELECT b.asset_id, sum(b.amount) AS total FROM carbon.balance b
                       JOIN carbon.account a ON a.id = b.account
                       WHERE $held GROUP BY 1) t
                      ON t.asset_id = s.id WHERE s.code <> 'CNY'"; }
total_of() { q -c "SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                   WHERE b.asset_id = (SELECT id FROM carbon.asset WHERE code = '$1') AND $held"; }
check "the clients' accounts 1..30 are the world's participants" \
  test "$(q -c "SELECT count(*) FROM carbon.account WHERE id BETWEEN 1 AND 30 AND kind = 'participant'
                                                        AND tier IN ('personal', 'enterprise', 'government', 'merchant', 'platform')")" = 30
issued=$(q -c "SELECT sum(last - first + 1) FROM carbon.unit_issuance")
check "CER was seeded through 12 issuances of 4 projects, and spread to the 24 accounts that may hold it" \
  test "$(q -c "SELECT (SELECT count(DISTINCT report) FROM carbon.unit_issuance) = 12
                   AND (SELECT count(*) FROM carbon.account a WHERE a.id <= 30 AND carbon.balance(a.id, 'CER') > 0) = 24
                   AND $issued = 3 * (30000 + 20000 + 12000 + 5000)")" = t
before=$(totals)
cer_before=$(total_of CER)
cny_before=$(total_of CNY)

client() {
  local n=$1 end=$((SECONDS + SECONDS_TO_RUN)) batches=0 orders=0
  local purposes=(event_neutrality entity_neutrality eco_damage_compensation voluntary compliance_offset)
  local assets=(POINT CNY CER)
  while [ $SECONDS -lt $end ] || [ $orders -lt $((ORDERS / 4)) ]; do
    local args=() k
    for k in 1 2 3 4 5 6 7 8 9 10; do
      local from=$((1 + RANDOM % 30)) to=$((1 + RANDOM % 30))
      local asset=${assets[RANDOM % 3]} purpose=${purposes[RANDOM % 5]} ref=NULL
      [ "$purpose" = eco_damage_compensation ] && ref="'case $n-$RANDOM'"
      case $((RANDOM % 15)) in
        0|1) args+=(-c "SELECT carbon.redeem($from, 1 + $RANDOM % 6, 1 + $RANDOM % 3)") ;;
        2) args+=(-c "SELECT carbon.refund_redemption((SELECT entry_id FROM carbon.redemption
                                                       ORDER BY random() LIMIT 1), 1)") ;;
        3) args+=(-c "SELECT carbon.settle_merchant((SELECT merchant FROM carbon.offer WHERE id = 1 + $RANDOM % 6))") ;;
        4) args+=(-c "SELECT carbon.exchange($from, 'POINT', 1 + $RANDOM % 50, 'RAINBOW')") ;;
        5) args+=(-c "SELECT carbon.exchange($from, 'RAINBOW', 1 + $RANDOM % 5, 'POINT')") ;;
        6|7) args+=(-c "SELECT carbon.transfer_units($from, $to, 1 + $RANDOM % 300, 'bank c$n')") ;;
        8) args+=(-c "SELECT carbon.transfer($from, $to, 'CER', 1 + $RANDOM % 300, 'bank c$n')") ;;
        9) args+=(-c "SELECT carbon.retire_units($from, 1 + $RANDOM % 40, '$purpose', 'bank units c$n', $ref)") ;;
        10|11) # a range of a block the account holds: whole, or a piece of it, from anywhere in it
          args+=(-c "SELECT carbon.retire_serials($from,
                       (SELECT carbon.serial_text(i.region, b.vintage, p.code, b.lo, least(b.last, b.lo + $RANDOM % 60))
                        FROM (SELECT x.*, CASE WHEN random() < 0.3 THEN x.first
                                               ELSE x.first + floor(random() * (x.last - x.first + 1))::bigint END AS lo
                              FROM carbon.unit_block x WHERE x.account = $from AND x.state = 'held'
                              ORDER BY random() LIMIT 1) b
                        JOIN carbon.unit_issuance i ON i.id = b.issuance JOIN carbon.project p ON p.id = b.project),
                       '$purpose', 'bank serials c$n', $ref)") ;;
        *) args+=(-c "SELECT carbon.transfer($from, $to, '$asset', 1 + $RANDOM % 500)") ;;
      esac
    done
    # one psql for the batch: each statement its own transaction (a refusal
    # ends that call only); verbose: every refusal's SQLSTATE in the
    # client's log.  The market: a batch of orders (and cash, cancels,
    # closes) among them, each its own transaction too; what was
    # acknowledged goes to the market log
    local script="\\o /dev/null"$'\n' i m=0
    for ((i = 1; i < ${#args[@]}; i += 2)); do script+="${args[i]};"$'\n'; done
    if [ $orders -lt $((ORDERS / 4)) ]; then
      m=$((ORDERS / 4 - orders < 50 ? ORDERS / 4 - orders : 50))
      script+="\\o"$'\n'"SELECT s FROM public.bank_market($n, $batches, $m) s \\gexec"
      orders=$((orders + m))
    fi
    # (synchronous_commit off: durability is the crash suite's; here a
    # commit, and the book's lock with it, does not wait for the disk)
    PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=off" \
      psql -X -q -t -A -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -d bank <<<"$script" \
      >>"/tmp/bank.$$.$n.market" 2>>"/tmp/bank.$$.$n.err"
    batches=$((batches + 1))
  done
  echo "$batches"
}
pids=()
t0=$SECONDS
for n in 1 2 3 4; do client "$n" >"/tmp/bank.$$.$n" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
echo "# the clients ran for $((SECONDS - t0)) s"
batches=$(cat /tmp/bank.$$.[1-4] | awk '{s += $1} END {print s}')
codes=$(cat /tmp/bank.$$.*.err | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')
bad=$(cat /tmp/bank.$$.*.err | grep -E '^ERROR:  (XX|CL009)' | sort | uniq -c | sort -rn | head -5)
market=$(cat /tmp/bank.$$.*.market)
market_codes=$(cat /tmp/bank.$$.*.err | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1 \0/p' |
               grep -E 'price|order|class I|cash|yuan|time in force|side|request id|retire|case reference|market|band|tick' |
               cut -d' ' -f1 | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')
rm -f /tmp/bank.$$.*

after=$(totals)
cer_after=$(total_of CER)
moved=$(q -c "SELECT count(*) FROM carbon.entry WHERE kind = 'transfer'")
echo "# $batches batches of 10 random calls, $moved transfers committed; refusals: $codes"
check "random transfers were committed" test "$moved" -gt 100
mall=$(q -c "SELECT (SELECT count(*) FROM carbon.redemption) || ' redemptions, ' ||
                    (SELECT count(*) FROM carbon.refund) || ' refunds, ' ||
                    (SELECT count(*) FROM carbon.settlement WHERE entry_id IS NOT NULL) || ' settlements, ' ||
                    (SELECT count(*) FROM carbon.exchange) || ' exchanges'")
echo "# the mall: $mall"
check "redemptions, refunds, settlements and exchanges were committed" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.redemption) > 20 AND (SELECT count(*) FROM carbon.refund) > 5
                  AND (SELECT count(*) FROM carbon.settlement WHERE entry_id IS NOT NULL) > 5
                  AND (SELECT count(*) FROM carbon.exchange) > 20")" = t
units=$(q -c "SELECT (SELECT count(*) FROM carbon.entry WHERE kind = 'unit_transfer' AND memo LIKE 'bank c%') || ' transfer_units, ' ||
                     (SELECT count(*) FROM carbon.entry e WHERE kind = 'transfer' AND memo LIKE 'bank c%') || ' CER transfers, ' ||
                     (SELECT count(*) FROM carbon.retirement WHERE beneficiary LIKE 'bank units%') || ' retire_units, ' ||
                     (SELECT count(*) FROM carbon.retirement WHERE beneficiary LIKE 'bank serials%') || ' retire_serials, ' ||
                     (SELECT count(*) FROM carbon.unit_block) || ' blocks'")
echo "# certified units: $units"
check "unit transfers (transfer_units, transfer of CER), retirements by tonnes and by named range were committed" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.entry WHERE kind = 'unit_transfer' AND memo LIKE 'bank c%') > 20
                   AND (SELECT count(*) FROM carbon.entry WHERE kind = 'transfer' AND memo LIKE 'bank c%') > 10
                   AND (SELECT count(*) FROM carbon.retirement WHERE beneficiary LIKE 'bank units%') > 10
                   AND (SELECT count(*) FROM carbon.retirement WHERE beneficiary LIKE 'bank serials%') > 10")" = t
check "no offer's stock below zero, no redemption refunded past its quantity" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.offer WHERE stock < 0)
                     + (SELECT count(*) FROM carbon.redemption WHERE refunded > quantity)")" = 0

# ---- the market, as the clients left it: the book still holds orders ----
# what the clients were told: "order|replay ID STATUS FILLED REQUEST",
# "cancel ID true|false", "deposit FEN ENTRY", "withdrawal FEN ENTRY", "close N"
acked_ids=$(awk '$1 == "order" || $1 == "replay" {print $2}' <<<"$market" | sort -un)
placed=$(wc -l <<<"$acked_ids")
acked_ids=$(paste -sd, - <<<"$acked_ids")
echo "# the market: $placed orders acknowledged of $ORDERS sent, $(grep -c '^replay ' <<<"$market") replays, $(grep -c '^cancel .* true$' <<<"$market") cancels (+ $(grep -c '^cancel .* false$' <<<"$market") of ended orders), $(grep -c '^deposit ' <<<"$market") deposits, $(grep -c '^withdrawal ' <<<"$market") withdrawals, $(grep -c '^close ' <<<"$market") closes, $(grep -c '^reference' <<<"$market") new reference prices; refusals: $market_codes"
q -c "SELECT '#   ' || tif || ' ' || CASE WHEN market THEN 'market ' ELSE '' END || side || ': '
             || string_agg(status || ' ' || n, ', ' ORDER BY status)
      FROM (SELECT tif, price IS NULL AS market, side, status, count(*) AS n FROM carbon.market_order GROUP BY 1, 2, 3, 4) s
      GROUP BY tif, market, side ORDER BY tif, market, side"
q -c "SELECT '#   ' || count(*) || ' trades, ' || coalesce(sum(tonnes), 0) || ' t, '
             || count(*) FILTER (WHERE EXISTS (SELECT 1 FROM carbon.market_order o WHERE o.id = t.buy_order AND o.retire_for IS NOT NULL))
             || ' retired at once; ' || (SELECT count(*) FROM carbon.market_order WHERE status IN ('open', 'partially_filled'))
             || ' orders resting; ' || (SELECT count(*) FROM carbon.market_day) || ' market days closed'
      FROM carbon.trade t"
# (about a quarter are refused: off the band or tick, too little, merchants who may not hold CER: CL003)
check "about $ORDERS orders reached the market ($placed acknowledged, every one in carbon.market_order, nothing else there)" \
  test "$(q -c "SELECT $placed >= 0.6 * $ORDERS
                   AND (SELECT count(*) FROM carbon.market_order) = $placed
                   AND NOT EXISTS (SELECT 1 FROM unnest('{$acked_ids}'::bigint[]) i
                                   WHERE NOT EXISTS (SELECT 1 FROM carbon.market_order WHERE id = i))")" = t
# a request id sent twice: the second call is a replay of the first (the
# same order), or the first was refused (the price it was sent with had
# left the band: a new reference) and the second placed the order
check "a replayed request named the order its first call placed (and placed none: above)" \
  test "$(awk '$1 == "order" && $5 != "-" {o[$5] = $2} $1 == "replay" {r++; if ($5 in o && o[$5] != $2) bad++}
               END {print (r > 10 && bad == 0) ? "ok" : "bad " r " " bad}' <<<"$market")" = ok
check "every kind of order was placed and ended every way: GTC/DAY/IOC/FOK, market orders, fills, partial fills, rejections, self-trade, expiry, buys that retire" \
  test "$(q -c "SELECT (SELECT count(DISTINCT tif) FROM carbon.market_order WHERE price IS NOT NULL) = 4
                   AND (SELECT count(DISTINCT side) FROM carbon.market_order WHERE price IS NULL AND filled > 0) = 2
                   AND (SELECT count(DISTINCT end_reason) FROM carbon.market_order
                        WHERE end_reason IN ('filled', 'cancelled', 'self_trade', 'expired', 'ioc_unfilled',
                                             'market_unfilled', 'fok_unfillable', 'nothing_to_match')) = 8
                   AND EXISTS (SELECT 1 FROM carbon.market_order WHERE filled > 0 AND filled < tonnes)
                   AND (SELECT count(*) FROM carbon.trade t JOIN carbon.market_order o ON o.id = t.buy_order
                        WHERE o.retire_for IS NOT NULL) > 20")" = t
# crossing: a limit order that traded as it arrived (the aggressor of a trade)
crossing=$(q -c "SELECT round(100.0 * count(*) FILTER (WHERE o.id IN (SELECT CASE aggressor WHEN 'buy' THEN buy_order ELSE sell_order END
                                                                     FROM carbon.trade))
                                 / count(*)) FROM carbon.market_order o WHERE price IS NOT NULL")
echo "# $crossing % of the limit orders crossed the book as they arrived"
check "about half the limit orders crossed the book ($crossing %)" test "$crossing" -ge 25 -a "$crossing" -le 75
check "the escrow accounts hold what the resting orders hold, segment by segment (cash of bids, units of asks)" \
  test "$(q -c "SELECT count(*) FROM
                  (SELECT b.account, b.asset_id, sum(b.amount) AS amount FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                   WHERE a.kind = 'escrow' GROUP BY 1, 2 HAVING sum(b.amount) <> 0) e
                FULL JOIN
                  (SELECT x.id AS account, x.asset_id, sum(o.escrow) AS amount
                   FROM carbon.market_order o JOIN carbon.account h ON h.id = o.account
                   JOIN carbon.account x ON x.kind = 'escrow' AND x.tier = h.tier AND x.region = h.region
                    AND x.asset_id = (SELECT id FROM carbon.asset WHERE code = CASE o.side WHEN 'buy' THEN 'CNY' ELSE 'CER' END)
                   WHERE o.status IN ('open', 'partially_filled') AND o.escrow > 0 GROUP BY 1, 2) o
                ON o.account = e.account AND o.asset_id = e.asset_id
                WHERE e.amount IS DISTINCT FROM o.amount")" = 0
check "every resting sell has its escrow in serial blocks held for it; no block is in escrow for an order that ended" \
  test "$(q -c "SELECT count(*) FROM (SELECT id, account, escrow FROM carbon.market_order
                                      WHERE side = 'sell' AND status IN ('open', 'partially_filled')) o
                FULL JOIN (SELECT escrow_order, account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                           WHERE state = 'escrow' GROUP BY 1, 2) b ON b.escrow_order = o.id
                WHERE o.id IS NULL OR b.escrow_order IS NULL OR b.account <> o.account OR b.tonnes <> o.escrow")" = 0
# a bid's escrow at entry is the rest at its limit plus the fee on it; each
# fill as the resting order takes its value and fee (at its limit), so the
# fees rounded down per fill may leave up to a fen per fill over
check "resting orders hold their rest: an ask the rest in tonnes, a bid the rest at its limit plus the fee (+ a fen per fill)" \
  test "$(q -c "SELECT count(*) FROM carbon.market_order o
                WHERE status IN ('open', 'partially_filled')
                  AND CASE side WHEN 'sell' THEN escrow <> tonnes - filled
                       ELSE escrow - ((tonnes - filled) * price + (tonnes - filled) * price * 15 / 10000)
                            NOT BETWEEN 0 AND (SELECT count(*) FROM carbon.trade t WHERE t.buy_order = o.id) END")" = 0
# ---- the end of the day: every order ends ----
# half the resting GTC orders reach their maximum life (expires_at moved
# into the past), the day closes (DAY orders and those GTC orders end), the
# rest is cancelled one by one
due=$(q -c "WITH x AS (UPDATE carbon.market_order SET expires_at = now() - interval '1 second'
                       WHERE status IN ('open', 'partially_filled') AND tif = 'GTC' AND id % 2 = 0 RETURNING id)
            SELECT (SELECT count(*) FROM x) + (SELECT count(*) FROM carbon.market_order
                                               WHERE status IN ('open', 'partially_filled') AND tif = 'DAY')")
closed=$(q -c "SELECT carbon.close_market_day(public.bank_today())")
check "the close ended the DAY orders and the GTC orders past their life ($closed of $due)" test "$closed" = "$due"
resting=$(q -c "SELECT count(*) FROM carbon.market_order WHERE status IN ('open', 'partially_filled')")
final_cancels=$(q -c "SELECT string_agg('cancel ' || id || ' ' || carbon.cancel_order(id), E'\n' ORDER BY id)
                      FROM carbon.market_order WHERE status IN ('open', 'partially_filled')")
check "cancel_order ended each of the $resting orders still resting (true), and the book is empty" \
  test "$(grep -c ' true$' <<<"$final_cancels")" = "$resting" -a \
       "$(q -c "SELECT count(*) FROM carbon.v_order_book")" = 0
market="$market
$final_cancels"

check "every order has ended, once: filled, cancelled or rejected, with its end time and reason, nothing left in escrow" \
  test "$(q -c "SELECT count(*) FROM carbon.market_order
                WHERE status NOT IN ('filled', 'cancelled', 'rejected') OR ended_at IS NULL
                   OR escrow <> 0 OR end_reason IS NULL
                   OR (status = 'filled') <> (filled = tonnes) OR (status = 'filled') <> (end_reason = 'filled')
                   OR (status = 'rejected') <> (end_reason IN ('fok_unfillable', 'nothing_to_match'))
                   OR (status = 'rejected' AND filled <> 0)
                   OR (end_reason IN ('ioc_unfilled', 'fok_unfillable') AND tif NOT IN ('IOC', 'FOK'))
                   OR (end_reason IN ('market_unfilled', 'nothing_to_match') AND price IS NOT NULL)")" = 0
# an order ended twice would show twice here: each true cancel_order is one
# order cancelled by its owner; each close counted the orders it expired
cancelled_ids=$(awk '$1 == "cancel" && $3 == "true" {print $2}' <<<"$market" | sort -n)
check "cancel_order said true once per order, for exactly the orders that ended 'cancelled' ($(wc -l <<<"$cancelled_ids"))" \
  test "$(uniq -d <<<"$cancelled_ids" | wc -w)" = 0 -a \
       "$(q -c "SELECT count(*) FROM carbon.market_order o FULL JOIN unnest('{$(paste -sd, <<<"$cancelled_ids")}'::bigint[]) c(id)
                ON c.id = o.id WHERE (o.end_reason = 'cancelled') IS DISTINCT FROM (c.id IS NOT NULL)")" = 0
check "the closes expired as many orders as ended 'expired' (carbon.market_day)" \
  test "$(q -c "SELECT (SELECT coalesce(sum(expired), 0) FROM carbon.market_day)
                       = (SELECT count(*) FROM carbon.market_order WHERE end_reason = 'expired')")" = t
check "the escrow accounts hold nothing, of any asset" \
  test "$(q -c "SELECT count(*) FROM (SELECT b.account, b.asset_id FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                                      WHERE a.kind = 'escrow' GROUP BY 1, 2 HAVING sum(b.amount) <> 0) e")" = 0 -a \
       "$(q -c "SELECT count(*) FROM carbon.unit_block WHERE state = 'escrow'")" = 0
# the time line: nothing ends, and no trade happens, before the order exists
check "no order ended before it was placed, no trade is dated before either of its orders" \
  test "$(q -c "SELECT (SELECT count(*) FROM carbon.market_order WHERE ended_at < created_at)
                     + (SELECT count(*) FROM carbon.trade t JOIN carbon.market_order b ON b.id = t.buy_order
                        JOIN carbon.market_order s ON s.id = t.sell_order WHERE t.at < b.created_at OR t.at < s.created_at)")" = 0
q -c "SELECT '#   ' || count(*) || ' orders ended before they were placed (by up to ' || max(created_at - ended_at) || '), '
             || (SELECT count(*) FROM carbon.trade t JOIN carbon.market_order b ON b.id = t.buy_order
                 JOIN carbon.market_order s ON s.id = t.sell_order WHERE t.at < b.created_at OR t.at < s.created_at)
             || ' trades dated before one of their orders' FROM carbon.market_order WHERE ended_at < created_at HAVING count(*) > 0"
check "every order's fills are its trades: tonnes, turnover and fees" \
  test "$(q -c "SELECT count(*) FROM carbon.market_order o
                LEFT JOIN (SELECT order_id, sum(tonnes) AS tonnes, sum(price * tonnes) AS turnover, sum(fee) AS fees
                           FROM (SELECT buy_order AS order_id, tonnes, price, buyer_fee AS fee FROM carbon.trade
                                 UNION ALL SELECT sell_order, tonnes, price, seller_fee FROM carbon.trade) x
                           GROUP BY 1) t ON t.order_id = o.id
                WHERE o.filled <> coalesce(t.tonnes, 0) OR o.turnover <> coalesce(t.turnover, 0)
                   OR o.fees <> coalesce(t.fees, 0)")" = 0
check "every trade is between its orders' accounts, never one account with itself, at the resting order's price, within the aggressor's limit, with the fee of 15 bp on each side, in a posted entry" \
  test "$(q -c "SELECT count(*) FROM carbon.trade t
                JOIN carbon.market_order b ON b.id = t.buy_order JOIN carbon.market_order s ON s.id = t.sell_order
                WHERE b.side <> 'buy' OR s.side <> 'sell' OR t.buyer <> b.account OR t.seller <> s.account
                   OR t.buyer = t.seller
                   OR t.price <> CASE t.aggressor WHEN 'buy' THEN s.price ELSE b.price END
                   OR (CASE t.aggressor WHEN 'buy' THEN b.id < s.id ELSE s.id < b.id END)
                   OR (t.aggressor = 'buy' AND b.price < t.price) OR (t.aggressor = 'sell' AND s.price > t.price)
                   OR t.buyer_fee <> t.price * t.tonnes * 15 / 10000 OR t.seller_fee <> t.buyer_fee
                   OR NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = t.entry_id AND e.kind = 'trade')")" = 0
check "every trade delivered its serials, class I only, from the seller to the buyer (or retired in its name) in its entry" \
  test "$(q -c "WITH ts AS (SELECT t.id, t.entry_id, t.buyer, t.seller, t.tonnes, s.*
                           FROM carbon.trade t, unnest(t.serials) u, LATERAL carbon.parse_serial(u) s),
                ev AS (SELECT e.entry_id, p.code, i.region, i.vintage, e.first, e.last, e.from_account, e.to_account
                       FROM carbon.unit_event e JOIN carbon.unit_issuance i ON i.id = e.issuance
                       JOIN carbon.project p ON p.id = e.project
                       WHERE i.class = 'I' AND e.event IN ('trade', 'retirement'))
                SELECT (SELECT count(*) FROM ts LEFT JOIN ev ON ev.entry_id = ts.entry_id AND ev.code = ts.project_code
                                                  AND ev.region = ts.region AND ev.vintage = ts.vintage
                                                  AND ev.first = ts.first AND ev.last = ts.last
                                                  AND ev.from_account = ts.seller AND ev.to_account = ts.buyer
                        WHERE ev.entry_id IS NULL)
                     + (SELECT count(*) FROM carbon.trade t LEFT JOIN (SELECT id, sum(last - first + 1) AS tonnes FROM ts GROUP BY 1) s
                        ON s.id = t.id WHERE s.tonnes IS DISTINCT FROM t.tonnes)")" = 0
check "every fill of a buy that retires has its certificate: the buyer's, the trade's serials and tonnes, the order's beneficiary and purpose" \
  test "$(q -c "SELECT count(*) FROM carbon.trade t JOIN carbon.market_order o ON o.id = t.buy_order
                WHERE o.retire_for IS NOT NULL
                  AND (SELECT count(*) FROM carbon.retirement r
                       WHERE r.entry_id = t.entry_id AND r.account = t.buyer AND r.serials = t.serials
                         AND r.tonnes = t.tonnes AND r.beneficiary = o.retire_for AND r.purpose = o.retire_purpose) <> 1")" = 0 -a \
       "$(q -c "SELECT (SELECT count(*) FROM carbon.retirement r JOIN carbon.entry e ON e.id = r.entry_id AND e.kind = 'trade')
                       = (SELECT count(*) FROM carbon.trade t JOIN carbon.market_order o ON o.id = t.buy_order
                          WHERE o.retire_for IS NOT NULL)")" = t
check "the market's fee accounts (participants of the platform) hold the trades' fees" \
  test "$(q -c "SELECT (SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                        WHERE a.kind = 'participant' AND a.display_name LIKE '交易手续费 market fees%'
                          AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CNY'))
                       = (SELECT coalesce(sum(buyer_fee + seller_fee), 0) FROM carbon.trade)
                   AND (SELECT coalesce(sum(buyer_fee + seller_fee), 0) FROM carbon.trade) > 0")" = t

after=$(totals)
cer_after=$(total_of CER)
cny_after=$(total_of CNY)
cash_in=$(awk '$1 == "deposit" {s += $2} $1 == "withdrawal" {s -= $2} END {print s + 0}' <<<"$market")
cash_ledger=$(q -c "SELECT coalesce(sum(p.amount), 0) FROM carbon.entry e JOIN carbon.posting p ON p.entry_id = e.id
                    JOIN carbon.account a ON a.id = p.account
                    WHERE e.kind IN ('deposit', 'withdrawal') AND e.memo LIKE 'bank c%' AND a.kind = 'participant'")
echo "# totals but CNY before: $before; after: $after"
echo "# CNY held by participants, sinks, escrow and clearing: before $cny_before, after $cny_after; acknowledged deposits less withdrawals $cash_in (the ledger's deposit and withdrawal entries: $cash_ledger)"
check "per-asset totals held by participants, redeemed, retired and cancelled sinks, escrow and clearing unchanged (but CNY)" \
  test "$before" = "$after"
check "CNY totals (participants + sinks + escrow + clearing) changed by exactly the acknowledged deposits less withdrawals" \
  test "$((cny_after - cny_before))" = "$cash_in" -a "$cash_ledger" = "$cash_in"
echo "# CER held by participants, retired, cancelled, escrow and clearing: before $cer_before, after $cer_after, issued $issued"
check "CER totals (participants + retired + cancelled + escrow + clearing) unchanged, and equal to the tonnes issued" \
  test "$cer_before" = "$issued" -a "$cer_after" = "$issued"
check "every issued serial is in exactly one block (blocks of each issuance tile it: no gap, no overlap)" \
  test "$(q -c "SELECT count(*) FROM carbon.unit_issuance i
                WHERE (SELECT coalesce(sum(b.last - b.first + 1), 0) FROM carbon.unit_block b WHERE b.issuance = i.id)
                      <> i.last - i.first + 1
                   OR EXISTS (SELECT 1 FROM (SELECT b.first, b.last,
                                                    lag(b.last) OVER (ORDER BY b.first) AS prev,
                                                    row_number() OVER (ORDER BY b.first DESC) AS from_end
                                               FROM carbon.unit_block b WHERE b.issuance = i.id) s
                              WHERE (s.prev IS NULL AND s.first <> i.first) OR (s.prev IS NOT NULL AND s.first <> s.prev + 1)
                                 OR (s.from_end = 1 AND s.last <> i.last))")" = 0
check "no block outside its issuance's range" \
  test "$(q -c "SELECT count(*) FROM carbon.unit_block b LEFT JOIN carbon.unit_issuance i ON i.id = b.issuance
                WHERE i.id IS NULL OR b.first < i.first OR b.last > i.last OR b.project <> i.project
                   OR b.vintage <> i.vintage OR b.class <> i.class")" = 0
check "every participant's CER balance is the tonnes of the blocks it holds" \
  test "$(q -c "SELECT count(*) FROM (SELECT b.account, b.amount FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                                      WHERE a.kind = 'participant' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')
                                        AND b.amount <> 0) bal
                FULL JOIN (SELECT account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                           WHERE state = 'held' GROUP BY 1) blk ON blk.account = bal.account
                WHERE coalesce(bal.amount, 0) <> coalesce(blk.tonnes, 0)")" = 0
check "the retired sinks hold the retired blocks and the certificates' tonnes; the cancelled sinks the cancelled blocks" \
  test "$(q -c "SELECT (SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                        WHERE a.kind = 'retired' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER'))
                       = (SELECT coalesce(sum(last - first + 1), 0) FROM carbon.unit_block WHERE state = 'retired')
                   AND (SELECT coalesce(sum(last - first + 1), 0) FROM carbon.unit_block WHERE state = 'retired')
                       = (SELECT coalesce(sum(tonnes), 0) FROM carbon.retirement)
                   AND (SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                        WHERE a.kind = 'cancelled' AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER'))
                       = (SELECT coalesce(sum(last - first + 1), 0) FROM carbon.unit_block WHERE state = 'cancelled')")" = t
check "every certificate in carbon.retirement verifies" \
  test "$(q -c "SELECT count(*) FROM carbon.retirement WHERE NOT carbon.verify_certificate(certificate)")" = 0
# a buy that retires has a certificate per fill: the certificates of one
# entry and account together name the blocks it retired
check "the certificates of each retirement entry and account name the blocks it retired there, as many tonnes" \
  test "$(q -c "SELECT count(*) FROM (SELECT r.entry_id, r.account, sum(r.tonnes) AS tonnes,
                                             (SELECT array_agg(u ORDER BY u) FROM carbon.retirement x, unnest(x.serials) u
                                              WHERE x.entry_id = r.entry_id AND x.account = r.account) AS serials
                                      FROM carbon.retirement r GROUP BY 1, 2) r
                FULL JOIN (SELECT b.entry_id, b.account,
                                  array_agg(carbon.serial_text(i.region, b.vintage, p.code, b.first, b.last)
                                            ORDER BY carbon.serial_text(i.region, b.vintage, p.code, b.first, b.last)) AS serials,
                                  sum(b.last - b.first + 1) AS tonnes
                           FROM carbon.unit_block b JOIN carbon.unit_issuance i ON i.id = b.issuance
                           JOIN carbon.project p ON p.id = b.project
                           WHERE b.state = 'retired' GROUP BY 1, 2) b ON b.entry_id = r.entry_id AND b.account = r.account
                WHERE r.serials IS DISTINCT FROM b.serials OR r.tonnes IS DISTINCT FROM b.tonnes")" = 0
check "every certificate's tonnes are the tonnes of its serials" \
  test "$(q -c "SELECT count(*) FROM carbon.retirement r
                WHERE r.tonnes <> (SELECT sum(s.last - s.first + 1) FROM unnest(r.serials) u, LATERAL carbon.parse_serial(u) s)")" = 0
check "verify_integrity() clean" test "$(q -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok")" = 0
q -c "SELECT '# verify_integrity: ' || check_name || ': ' || detail FROM carbon.verify_integrity() WHERE NOT ok"
check "no participant balance below zero" \
  test "$(q -c "SELECT count(*) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                WHERE a.kind = 'participant' AND b.amount < 0")" = 0
check "no call ended with an internal error (XX000) or an integrity error (CL009)" test -z "$bad"
[ -n "$bad" ] && echo "$bad" | sed 's/^/#   /'
"$PGBIN/dropdb" bank
echo "conservation: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
