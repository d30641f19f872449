# B3: expire_lots() over 1 M expired lots among 5 M, vs UPDATE ... SET
# remaining = 0 of the same rows in a plain table.  Time ratio.
# The lots, their balances and one issuance entry are loaded directly (as a
# restore would), so that the set-up takes seconds, not hours.
b3() {
  local accounts=$((100000 * ${BENCH_SCALE:-1}))
  log "B3: $((accounts * 50 / 1000000)) M lots, $((accounts * 10 / 1000000)) M expired"
  "$PGBIN/createdb" bench_b3
  psql -X -q -d bench_b3 -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION carbon_ledger;
INSERT INTO carbon.account (id, kind, tier, region, ref_hash)
  SELECT i, 'participant', 'personal', '620700', sha256(('b3-' || i)::bytea) FROM generate_series(1, $accounts) i;
INSERT INTO carbon.account (id, kind, tier, region, asset_id) VALUES ($accounts + 1, 'issuance', 'personal', '620700', 1);
SELECT setval('carbon.account_id_seq', $accounts + 1);
-- one issuance entry per 10,000 accounts (posting seq is a smallint)
INSERT INTO carbon.entry (id, kind, memo)
  SELECT e, 'issuance', 'B3 load' FROM generate_series(1, ($accounts + 9999) / 10000) e;
SELECT setval('carbon.entry_id_seq', ($accounts + 9999) / 10000);
SQL
  # postings come in as a restore does (a superuser's COPY): a plain INSERT
  # would be refused by the posting trigger
  psql -X -q -d bench_b3 -v ON_ERROR_STOP=1 -c "COPY (
      SELECT 1 + (i - 1) / 10000, 1 + (i - 1) % 10000, i, 1, 50 * 100, now() FROM generate_series(1, $accounts) i
      UNION ALL
      SELECT e, 0, $accounts + 1, 1, -50 * 100 * count(*), now()
      FROM (SELECT 1 + (i - 1) / 10000 AS e FROM generate_series(1, $accounts) i) x GROUP BY e) TO STDOUT" |
    psql -X -q -d bench_b3 -v ON_ERROR_STOP=1 -c "COPY carbon.posting (entry_id, seq, account, asset_id, amount, at) FROM STDIN"
  psql -X -q -d bench_b3 -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO carbon.balance (account, asset_id, stripe, amount)
  SELECT i, 1, 0, 50 * 100 FROM generate_series(1, $accounts) i
  UNION ALL SELECT $accounts + 1, 1, 0, -50 * 100 * $accounts::bigint;
-- 50 lots per account, 10 of them already expired
INSERT INTO carbon.lot (account, asset_id, expires_at, original, remaining, entry_id)
  SELECT a, 1, date_trunc('day', now()) + (d - 10) * interval '1 day', 100, 100, 1 + (a - 1) / 10000
  FROM generate_series(1, $accounts) a, generate_series(0, 49) d;
CREATE TABLE b3_plain AS SELECT id, account, expires_at, remaining FROM carbon.lot;
VACUUM ANALYZE;
CHECKPOINT;
SQL
  local t0 t1 t2
  t0=$(now_ms)
  psql -X -q -d bench_b3 -c "UPDATE b3_plain SET remaining = 0 WHERE expires_at <= now() AND remaining > 0"
  t1=$(now_ms)
  psql -X -q -d bench_b3 -c "SELECT * FROM carbon.expire_lots()" >/dev/null
  t2=$(now_ms)
  local bad
  bad=$(psql -X -t -A -d bench_b3 -c "SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok AND check_name <> 'seals_intact'")
  bench_row B3 "expire_lots, $((accounts * 10 / 1000000)) M of $((accounts * 50 / 1000000)) M lots" "$((t2 - t1)) ms" \
    "UPDATE $((t1 - t0)) ms" "$(ratio "$((t2 - t1))" "$((t1 - t0))")" "≤ 2"
  [ "$bad" = 0 ] || echo "B3: verify_integrity() found $bad broken checks" >&2
  "$PGBIN/dropdb" bench_b3
}
