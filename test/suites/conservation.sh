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
# the range first).  Per asset, what participants, the redeemed, retired and
# cancelled sinks and the clearing accounts hold in total never changes, and
# verify_integrity() stays clean; every issued serial is in exactly one
# block, every participant's CER balance is its held blocks, every
# certificate verifies and names the blocks its retirement took; no call
# ends with an internal (XX000) or integrity (CL009) error.
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
SECONDS_TO_RUN=${CONSERVATION_SECONDS:-8}
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
SQL
totals() { q -c "SELECT string_agg(s.code || '=' || coalesce(t.total, 0), ' ' ORDER BY s.code)
                 FROM carbon.asset s LEFT JOIN
                      (SELECT b.asset_id, sum(b.amount) AS total FROM carbon.balance b
                       JOIN carbon.account a ON a.id = b.account
                       WHERE a.kind IN ('participant', 'redeemed', 'retired', 'cancelled', 'clearing') GROUP BY 1) t
                      ON t.asset_id = s.id"; }
cer() { q -c "SELECT coalesce(sum(b.amount), 0) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
              WHERE b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER') AND a.kind IN ('participant', 'retired', 'cancelled', 'clearing')"; }
check "the clients' accounts 1..30 are the world's participants" \
  test "$(q -c "SELECT count(*) FROM carbon.account WHERE id BETWEEN 1 AND 30 AND kind = 'participant'
                                                        AND tier IN ('personal', 'enterprise', 'government', 'merchant', 'platform')")" = 30
issued=$(q -c "SELECT sum(last - first + 1) FROM carbon.unit_issuance")
check "CER was seeded through 12 issuances of 4 projects, and spread to the 24 accounts that may hold it" \
  test "$(q -c "SELECT (SELECT count(DISTINCT report) FROM carbon.unit_issuance) = 12
                   AND (SELECT count(*) FROM carbon.account a WHERE a.id <= 30 AND carbon.balance(a.id, 'CER') > 0) = 24
                   AND $issued = 3 * (30000 + 20000 + 12000 + 5000)")" = t
before=$(totals)
cer_before=$(cer)

client() {
  local n=$1 end=$((SECONDS + SECONDS_TO_RUN)) batches=0
  local purposes=(event_neutrality entity_neutrality eco_damage_compensation voluntary compliance_offset)
  while [ $SECONDS -lt $end ]; do
    local args=() k
    for k in 1 2 3 4 5 6 7 8 9 10; do
      local from=$((1 + RANDOM % 30)) to=$((1 + RANDOM % 30))
      local asset purpose=${purposes[RANDOM % 5]} ref=NULL
      asset=$(echo POINT CNY CER | cut -d' ' -f$((1 + RANDOM % 3)))
      [ "$purpose" = eco_damage_compensation ] && ref="'case $n-$RANDOM'"
      # each -c is its own transaction; a refusal ends that call only
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
    # verbose: every refusal's SQLSTATE in the client's log
    psql -X -q -t -A -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -d bank "${args[@]}" >/dev/null 2>>"/tmp/bank.$$.$n.err"
    batches=$((batches + 1))
  done
  echo "$batches"
}
pids=()
for n in 1 2 3 4; do client "$n" >"/tmp/bank.$$.$n" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
batches=$(cat /tmp/bank.$$.[1-4] | awk '{s += $1} END {print s}')
codes=$(cat /tmp/bank.$$.*.err | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')
bad=$(cat /tmp/bank.$$.*.err | grep -E '^ERROR:  (XX|CL009)' | sort | uniq -c | sort -rn | head -5)
rm -f /tmp/bank.$$.*

after=$(totals)
cer_after=$(cer)
moved=$(q -c "SELECT count(*) FROM carbon.entry WHERE kind = 'transfer'")
echo "# $batches batches of 10 random calls, $moved transfers committed; refusals: $codes"
echo "# totals before: $before; after: $after"
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
check "per-asset totals held by participants, redeemed, retired and cancelled sinks and clearing unchanged" \
  test "$before" = "$after"
echo "# CER held by participants, retired, cancelled and clearing: before $cer_before, after $cer_after, issued $issued"
check "CER totals (participants + retired + cancelled + clearing) unchanged, and equal to the tonnes issued" \
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
check "every certificate's serials are the blocks its retirement took, retired by its account, as many tonnes" \
  test "$(q -c "SELECT count(*) FROM carbon.retirement r
                WHERE r.serials IS DISTINCT FROM
                      (SELECT array_agg(carbon.serial_text(i.region, b.vintage, p.code, b.first, b.last)
                                        ORDER BY b.vintage, b.project, b.first)
                       FROM carbon.unit_block b JOIN carbon.unit_issuance i ON i.id = b.issuance
                       JOIN carbon.project p ON p.id = b.project
                       WHERE b.entry_id = r.entry_id AND b.state = 'retired' AND b.account = r.account)
                   OR r.tonnes <> (SELECT sum(s.last - s.first + 1) FROM unnest(r.serials) u,
                                   LATERAL carbon.parse_serial(u) s)")" = 0
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
