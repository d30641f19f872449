-- ---------------------------------------------------------------------------
-- Tamper evidence and the auditor's checks (api.md §7).
-- ---------------------------------------------------------------------------

CREATE FUNCTION carbon._sha256_chain_step(internal, bytea, text) RETURNS internal
  AS 'MODULE_PATHNAME', 'ledger_sha256_chain_step' LANGUAGE C IMMUTABLE;
CREATE FUNCTION carbon._sha256_chain_final(internal) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ledger_sha256_chain_final' LANGUAGE C IMMUTABLE;
-- SHA-256 of prev followed by every line (and a newline) in the given order.
CREATE AGGREGATE carbon._sha256_chain(bytea, text) (
  SFUNC = carbon._sha256_chain_step, STYPE = internal,
  FINALFUNC = carbon._sha256_chain_final, FINALFUNC_MODIFY = READ_WRITE);

-- The canonical text of an entry and its postings: what a seal hashes.
CREATE FUNCTION carbon._entry_text(ids bigint[]) RETURNS TABLE (id bigint, line text)
  LANGUAGE sql STABLE SET search_path = pg_catalog, carbon, pg_temp AS $$
  SELECT e.id,
         format('%s|%s|%s|%s|%L|%s', e.id, e.kind,
                (extract(epoch FROM e.created_at) * 1000000)::bigint,
                coalesce(e.reverses::text, ''), e.memo,
                (SELECT string_agg(format('%s:%s:%s:%s:%s', p.seq, p.account, p.asset_id, p.amount,
                                          (extract(epoch FROM p.at) * 1000000)::bigint), ','
                                   ORDER BY p.seq)
                   FROM carbon.posting p WHERE p.entry_id = e.id))
  FROM carbon.entry e
  WHERE e.id = ANY (ids)
$$;

-- The members of a seal: ids in (prev_max_id, max_id] or carried, not gaps.
CREATE FUNCTION carbon._seal_members(s carbon.seal) RETURNS bigint[]
  LANGUAGE sql STABLE SET search_path = pg_catalog, carbon, pg_temp AS $$
  SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}')
  FROM carbon.entry e
  WHERE ((e.id > s.prev_max_id AND e.id <= s.max_id) OR e.id = ANY (s.carried))
    AND e.id <> ALL (s.gaps)
$$;

/*
 * seal() → bigint: seals the entries committed since the last seal into the
 * hash chain; NULL when there is nothing new.  It reads entries and writes
 * one seal row: writers never wait for it (only two seal() calls wait for
 * each other).  Entries still in flight become `gaps` and are sealed later.
 */
-- seal()'s turn, a lock no pg_advisory_lock() call can take first (catalog.c)
CREATE FUNCTION carbon._seal_lock() RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_seal_lock' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION carbon._seal_lock() FROM PUBLIC;

CREATE FUNCTION carbon.seal() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  last      carbon.seal;
  prev_max  bigint := 0;
  prev_hash bytea := decode(repeat('00', 32), 'hex');
  carried   bigint[] := '{}';
  new_max   bigint;
  members   bigint[];
  gaps      bigint[];
  digest    bytea;
  sealed    bigint;
BEGIN
  PERFORM carbon._seal_lock();   -- a lock of the extension's own class: no pg_advisory_lock() can hold it
  SELECT * INTO last FROM carbon.seal ORDER BY id DESC LIMIT 1;
  IF FOUND THEN
    prev_max := last.max_id;
    prev_hash := last.hash;
    carried := last.gaps;
    -- once every transaction that was running at the last seal has ended,
    -- a gap still missing was rolled back: stop carrying it
    IF pg_snapshot_xmin(pg_current_snapshot()) >= last.snapshot_xmax THEN
      carried := ARRAY(SELECT g FROM unnest(last.gaps) g
                       WHERE EXISTS (SELECT 1 FROM carbon.entry WHERE id = g));
    END IF;
  END IF;

  SELECT max(id) INTO new_max FROM carbon.entry WHERE id > prev_max;
  new_max := greatest(coalesce(new_max, prev_max), prev_max);
  members := ARRAY(SELECT id FROM carbon.entry
                   WHERE (id > prev_max AND id <= new_max) OR id = ANY (carried)
                   ORDER BY id);
  IF cardinality(members) = 0 THEN
    RETURN NULL;
  END IF;
  gaps := ARRAY(SELECT g FROM (SELECT generate_series(prev_max + 1, new_max) g
                               UNION SELECT unnest(carried)) c
                WHERE g <> ALL (members) ORDER BY g);

  SELECT carbon._sha256_chain(prev_hash, t.line ORDER BY t.id) INTO digest
  FROM carbon._entry_text(members) t;

  INSERT INTO carbon.seal (prev_max_id, max_id, carried, gaps, entries, prev_hash, hash, snapshot_xmax)
  VALUES (prev_max, new_max, carried, gaps, cardinality(members), prev_hash, digest,
          pg_snapshot_xmax(pg_current_snapshot()))
  RETURNING id INTO sealed;
  RETURN sealed;
END $$;
COMMENT ON FUNCTION carbon.seal() IS
  '封存 seal all entries since the last seal into the SHA-256 hash chain; NULL when nothing is new';

/*
 * verify_integrity(): one row per check.  Read-only; run it as often as you
 * like (it reads the whole ledger).
 */
CREATE FUNCTION carbon.verify_integrity() RETURNS TABLE (check_name text, ok boolean, detail text)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
#variable_conflict use_column
DECLARE
  n bigint;
  d text;
  sl carbon.seal;
  expected_prev bytea := decode(repeat('00', 32), 'hex');
  recomputed bytea;
  members bigint[];
  bad_seals text[] := '{}';
  last_seal carbon.seal;
  sealed_total bigint := 0;
  recomputed_total numeric;
BEGIN
  -- 1. every entry balances per asset
  SELECT count(*), string_agg(format('entry %s asset %s sums to %s', entry_id, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT entry_id, asset_id, sum(amount) AS total FROM carbon.posting
          GROUP BY entry_id, asset_id HAVING sum(amount) <> 0 ORDER BY entry_id LIMIT 20) u;
  check_name := 'entries_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry sums to zero per asset' ELSE d END;
  RETURN NEXT;

  -- 2. ... and per segment (asset, tier, region): the tiers balance on their own
  SELECT count(*), string_agg(format('entry %s asset %s segment %s/%s sums to %s',
                                     entry_id, asset_id, tier, region, total), '; ')
    INTO n, d
    FROM (SELECT p.entry_id, p.asset_id, a.tier, a.region, sum(p.amount) AS total
          FROM carbon.posting p JOIN carbon.account a ON a.id = p.account
          GROUP BY 1, 2, 3, 4 HAVING sum(p.amount) <> 0 ORDER BY 1 LIMIT 20) u;
  check_name := 'segments_balanced'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every entry balances within each tier and region' ELSE d END;
  RETURN NEXT;

  -- 3. every posting belongs to an entry and an account; every entry has postings
  SELECT count(*) INTO n FROM carbon.posting p
   WHERE NOT EXISTS (SELECT 1 FROM carbon.entry e WHERE e.id = p.entry_id)
      OR NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = p.account)
      OR NOT EXISTS (SELECT 1 FROM carbon.asset s WHERE s.id = p.asset_id);
  SELECT n + count(*) INTO n FROM carbon.entry e
   WHERE NOT EXISTS (SELECT 1 FROM carbon.posting p WHERE p.entry_id = e.id);
  check_name := 'postings_complete'; ok := n = 0;
  detail := format('%s orphan postings or empty entries', n);
  RETURN NEXT;

  -- 4. balances = Σ postings, for every account and asset
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, postings %s',
                                     account, asset_id, b, p), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, p.account) AS account, coalesce(b.asset_id, p.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(p.total, 0) AS p
          FROM (SELECT account, asset_id, sum(amount) AS total FROM carbon.balance GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(amount) AS total FROM carbon.posting GROUP BY 1, 2) p
            ON p.account = b.account AND p.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(p.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'balances_match_postings'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every balance equals the sum of its postings' ELSE d END;
  RETURN NEXT;

  -- 5. no participant holds less than nothing; issuance never positive, sinks never negative
  SELECT count(*), string_agg(format('%s account %s asset %s: %s', kind, account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT a.kind, b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          GROUP BY 1, 2, 3
          HAVING (a.kind IN ('participant', 'expired', 'redeemed', 'retired', 'cancelled', 'escrow')
                  AND sum(b.amount) < 0)
              OR (a.kind = 'issuance' AND sum(b.amount) > 0)
          ORDER BY 2 LIMIT 20) u;
  check_name := 'balance_signs'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'participants, escrow and sinks >= 0; issuance <= 0' ELSE d END;
  RETURN NEXT;

  -- 6. supply per asset, tier and region: outstanding + escrow =
  --    issued - redeemed - expired - retired - cancelled - net moved out (clearing)
  SELECT count(*), string_agg(format('%s %s/%s off by %s', asset, tier, region, off), '; ')
    INTO n, d
    FROM (SELECT s.code AS asset, a.tier, a.region, sum(b.amount) AS off
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          JOIN carbon.asset s ON s.id = b.asset_id
          GROUP BY 1, 2, 3 HAVING sum(b.amount) <> 0 ORDER BY 1, 2, 3 LIMIT 20) u;
  check_name := 'supply'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN 'outstanding = issued - redeemed - expired - retired - cancelled - moved out, per asset, tier and region'
                 ELSE d END;
  RETURN NEXT;

  -- 7. lots = balances, for every participant and lot asset (POINT, RED)
  SELECT count(*), string_agg(format('account %s asset %s: balance %s, lots %s', account, asset_id, b, l), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, l.account) AS account, coalesce(b.asset_id, l.asset_id) AS asset_id,
                 coalesce(b.total, 0) AS b, coalesce(l.total, 0) AS l
          FROM (SELECT x.account, x.asset_id, sum(x.amount) AS total FROM carbon.balance x
                JOIN carbon.account a ON a.id = x.account
                WHERE a.kind = 'participant'
                  AND x.asset_id IN (SELECT id FROM carbon.asset WHERE code IN ('POINT', 'RED'))
                GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(remaining) AS total FROM carbon.lot GROUP BY 1, 2) l
            ON l.account = b.account AND l.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(l.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'lots_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every POINT and RED balance is held in lots' ELSE d END;
  RETURN NEXT;

  -- 8. a closed account holds nothing (api.md §7: it never receives value)
  SELECT count(*), string_agg(format('account %s asset %s holds %s', account, asset_id, total), '; ')
    INTO n, d
    FROM (SELECT b.account, b.asset_id, sum(b.amount) AS total
          FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
          WHERE a.status = 'closed'
          GROUP BY 1, 2 HAVING sum(b.amount) <> 0 ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'closed_accounts_empty'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'no closed account holds value' ELSE d END;
  RETURN NEXT;

  -- 9. serial blocks = CER balances: every participant's held blocks, and
  --    the retired and cancelled blocks of each segment its sinks
  SELECT count(*), string_agg(format('account %s: CER balance %s, blocks %s', account, b, u), '; ')
    INTO n, d
    FROM (SELECT coalesce(b.account, u.account) AS account, coalesce(b.total, 0) AS b, coalesce(u.total, 0) AS u
          FROM (SELECT x.account, sum(x.amount) AS total FROM carbon.balance x
                JOIN carbon.account a ON a.id = x.account
                WHERE a.kind IN ('participant', 'escrow', 'retired', 'cancelled')
                  AND x.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')
                GROUP BY 1) b
          FULL JOIN (SELECT CASE WHEN k.state = 'held' THEN k.account ELSE s.id END AS account,
                            sum(k.last - k.first + 1) AS total
                     FROM carbon.unit_block k
                     JOIN carbon.account h ON h.id = k.account
                     LEFT JOIN carbon.account s ON k.state <> 'held' AND s.kind = k.state AND s.tier = h.tier
                       AND s.region = h.region AND s.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')
                     GROUP BY 1) u
            ON u.account = b.account
          WHERE coalesce(b.total, 0) <> coalesce(u.total, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'units_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every CER balance (held, in escrow, retired, cancelled) is its serial blocks' ELSE d END;
  RETURN NEXT;

  -- 10. serials: the blocks of each issuance cover exactly its range (no
  --     overlap: exclusion constraints), and CER issued = serials issued
  SELECT count(*), string_agg(format('issuance %s: %s serials in blocks of %s', id, want, got), '; ')
    INTO n, d
    FROM (SELECT i.id, i.last - i.first + 1 AS want,
                 coalesce((SELECT sum(k.last - k.first + 1) FROM carbon.unit_block k
                           WHERE k.project * 4294967296 + k.first
                                 BETWEEN i.project * 4294967296 + i.first AND i.project * 4294967296 + i.last
                             AND k.issuance = i.id AND k.first >= i.first AND k.last <= i.last), 0) AS got
          FROM carbon.unit_issuance i) x
   WHERE want <> got;
  SELECT n + count(*) INTO n FROM carbon.unit_block k
   WHERE NOT EXISTS (SELECT 1 FROM carbon.unit_issuance i
                     WHERE i.id = k.issuance AND k.first >= i.first AND k.last <= i.last);
  SELECT coalesce(sum(last - first + 1), 0) INTO recomputed_total FROM carbon.unit_issuance;
  IF recomputed_total <> coalesce((SELECT -sum(b.amount) FROM carbon.balance b JOIN carbon.account a ON a.id = b.account
                                   WHERE a.kind = 'issuance'
                                     AND b.asset_id = (SELECT id FROM carbon.asset WHERE code = 'CER')), 0) THEN
    n := n + 1;
    d := coalesce(d || '; ', '') || format('%s serials issued, CER issuance accounts say otherwise', recomputed_total);
  END IF;
  check_name := 'serials_cover_issuances'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN format('%s serials issued, each in exactly one block', recomputed_total)
                 ELSE d END;
  RETURN NEXT;

  -- 10a. the reports' monthly summary of behaviours (B8) is the behaviours
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('%s %s %s %s account %s: summary %s events, %s g, %s points; behaviours %s, %s g, %s points',
                        k.month, k.region, k.scenario, k.methodology, k.account, s.events, s.grams, s.points,
                        b.events, b.grams, b.points) AS msg
          FROM (SELECT month, region, scenario, methodology, account FROM carbon.behavior_monthly
                UNION
                SELECT date_trunc('month', b.local_day::timestamp)::date, a.region, b.scenario, b.methodology, b.account
                FROM carbon.behavior b JOIN carbon.account a ON a.id = b.account
                WHERE b.status IN ('accepted', 'capped')) k
          LEFT JOIN carbon.behavior_monthly s USING (month, region, scenario, methodology, account)
          LEFT JOIN (SELECT date_trunc('month', b.local_day::timestamp)::date AS month, a.region, b.scenario,
                            b.methodology, b.account, count(*) AS events, sum(carbon.grams(b.reduction)) AS grams,
                            sum(b.points) AS points
                     FROM carbon.behavior b JOIN carbon.account a ON a.id = b.account
                     WHERE b.status IN ('accepted', 'capped') GROUP BY 1, 2, 3, 4, 5) b
            USING (month, region, scenario, methodology, account)
          WHERE coalesce(s.events, 0) <> coalesce(b.events, 0) OR coalesce(s.grams, 0) <> coalesce(b.grams, 0)
             OR coalesce(s.points, 0) <> coalesce(b.points, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'behavior_summary_matches'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'the monthly summary the reports read is the credited behaviours' ELSE d END;
  RETURN NEXT;

  -- 10a'. what members earned while in their groups is the behaviours of those days
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('group %s %s account %s: kept %s events, %s g, %s points; behaviours %s, %s g, %s points',
                        k.group_id, k.month, k.account, c.events, c.grams, c.points, b.events, b.grams, b.points) AS msg
          FROM (SELECT group_id, month, account FROM carbon.group_credit
                UNION
                SELECT m.group_id, date_trunc('month', b.local_day::timestamp)::date, b.account
                FROM carbon.behavior b JOIN carbon.group_member m ON m.account = b.account
                 AND b.local_day >= m.since AND (m.until IS NULL OR b.local_day <= m.until)
                WHERE b.status IN ('accepted', 'capped')) k
          LEFT JOIN carbon.group_credit c USING (group_id, month, account)
          LEFT JOIN (SELECT m.group_id, date_trunc('month', b.local_day::timestamp)::date AS month, b.account,
                            count(*) AS events, sum(carbon.grams(b.reduction)) AS grams, sum(b.points) AS points
                     FROM carbon.behavior b JOIN carbon.group_member m ON m.account = b.account
                      AND b.local_day >= m.since AND (m.until IS NULL OR b.local_day <= m.until)
                     WHERE b.status IN ('accepted', 'capped') GROUP BY 1, 2, 3) b
            USING (group_id, month, account)
          WHERE coalesce(c.events, 0) <> coalesce(b.events, 0) OR coalesce(c.grams, 0) <> coalesce(b.grams, 0)
             OR coalesce(c.points, 0) <> coalesce(b.points, 0)
          ORDER BY 1 LIMIT 20) x;
  check_name := 'group_credit_matches'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'what members earned while in their groups is their behaviours of those days' ELSE d END;
  RETURN NEXT;

  -- 10b. the books of carbon units (80_accounting.sql): each book-keeping
  --      account's pool holds its serial blocks (held and in escrow) at the
  --      cost its 1489 lines leave, and every booking balances
  SELECT count(*), string_agg(x.msg, '; ') INTO n, d
    FROM (SELECT format('account %s: books %s t at %s fen, blocks %s t, 1489 lines %s fen',
                        a.id, coalesce(c.tonnes, 0), coalesce(c.cost, 0), coalesce(k.tonnes, 0),
                        coalesce(l.net, 0)) AS msg
          FROM carbon.account a
          LEFT JOIN carbon.unit_cost c ON c.account = a.id
          LEFT JOIN (SELECT account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                     WHERE state IN ('held', 'escrow') GROUP BY 1) k ON k.account = a.id
          LEFT JOIN (SELECT account, sum(dr_1489 - cr_1489) AS net FROM carbon.accounting_voucher
                     GROUP BY 1) l ON l.account = a.id
          WHERE a.kind = 'participant' AND a.tier IN ('enterprise', 'government')
            AND (coalesce(c.tonnes, 0) <> coalesce(k.tonnes, 0) OR coalesce(c.cost, 0) <> coalesce(l.net, 0))
          UNION ALL
          SELECT format('voucher %s of account %s: debits %s, credits %s', id, account,
                        dr_1489 + dr_1002 + dr_6711, cr_1489 + cr_1002 + cr_6301)
          FROM carbon.accounting_voucher WHERE dr_1489 + dr_1002 + dr_6711 <> cr_1489 + cr_1002 + cr_6301
          ORDER BY 1 LIMIT 20) x;
  check_name := 'books_match_units'; ok := n = 0;
  detail := CASE WHEN n = 0
                 THEN 'the books of carbon units hold every unit at the cost of its 1489 lines, and balance'
                 ELSE d END;
  RETURN NEXT;

  -- 11. seals: each hash recomputes from the rows and links to the one before
  FOR sl IN SELECT * FROM carbon.seal ORDER BY id LOOP
    members := carbon._seal_members(sl);
    SELECT carbon._sha256_chain(sl.prev_hash, t.line ORDER BY t.id) INTO recomputed
      FROM carbon._entry_text(members) t;
    IF sl.prev_hash <> expected_prev OR recomputed IS DISTINCT FROM sl.hash
       OR cardinality(members) <> sl.entries THEN
      bad_seals := bad_seals || format('seal %s', sl.id);
    END IF;
    expected_prev := sl.hash;
    sealed_total := sealed_total + sl.entries;
    last_seal := sl;
  END LOOP;
  -- ... and no entry appeared inside the sealed range afterwards
  IF last_seal.id IS NOT NULL THEN
    SELECT count(*) INTO n FROM carbon.entry
     WHERE id <= last_seal.max_id AND id <> ALL (last_seal.gaps);
    IF n <> sealed_total THEN
      bad_seals := bad_seals || format('%s entries inside the sealed range, %s sealed', n, sealed_total);
    END IF;
  END IF;
  check_name := 'seals_intact'; ok := cardinality(bad_seals) = 0;
  detail := CASE WHEN cardinality(bad_seals) = 0
                 THEN format('%s seals, %s entries sealed', (SELECT count(*) FROM carbon.seal), sealed_total)
                 ELSE 'tampered: ' || array_to_string(bad_seals, ', ') END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION carbon.verify_integrity() IS
  '完整性校验 every check of the ledger: balanced entries and segments, balances = postings, signs, supply, lots, closed accounts empty, serial blocks = unit balances, serials cover issuances, behaviour summary, group credits, books of carbon units, seals';
