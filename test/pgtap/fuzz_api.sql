-- pgTAP: random argument combinations into every public function of the
-- extension (quality.md R4), with random and mutated strings for tiers,
-- regions, assets, codes and the rest.  The functions are read from the
-- catalog (whatever the extension owns in schema carbon and a user may call),
-- so a new function is fuzzed as soon as it exists.  A small realistic world
-- (accounts of every tier in two regions, a published methodology per
-- formula, sources, issued value, inbox rows; projects with monitoring
-- reports submitted, verified and issued, their units spread among the
-- accounts and some retired; cash deposited, a reference price and a book
-- of resting orders) is set up and topped up as the calls go (a new
-- project with fresh verified reports, cash and the reference price again at
-- every top-up), so that random calls succeed as well as fail.  Limit
-- prices are mostly expressions of the reference price as it stands when
-- the call runs (within its band, just outside it, off the tick), else
-- random numerics (NaN, Infinity, huge, many decimals).  Every parameter that takes a serial (range) gets
-- valid ranges read from carbon.unit_block and v_issuances (whole blocks,
-- pieces, single serials) as well as mutated ones (a digit flipped,
-- truncated, lowercase, extra or doubled dashes, huge or zero numbers, FIRST
-- after LAST) and random strings.
--
-- Every call is a statement of its own (psql's gexec) under a statement_timeout:
-- a call that does not return is cancelled and recorded as 57014, which no
-- refusal may be, rather than hanging the file.
--
-- What must hold: no crash (the file completes), no internal error, no call
-- that does not return, every refusal a SQLSTATE of api.md or of the
-- README / docs/ledger.md choices, verify_integrity() clean and every
-- retirement certificate verifying afterwards, the market's escrow equal to
-- what its resting orders hold, and calls that succeed for almost every
-- function (for every function of projects and units, and of the market).
-- Reproducible: setseed(); the world uses fixed references.
BEGIN;
SET LOCAL search_path = public, carbon;
SELECT plan(19);

-- The SQLSTATEs a call may end with: api.md (§ Errors, §1: 22P02, 22003,
-- 22023, 23505, 23P01, 42501, CL001..CL009), docs/ledger.md "Choices where
-- api.md is silent" (22004 for a NULL required argument), README (22012 for
-- a co2e division by zero).  Not 22007 / 22008: every timestamp literal this
-- file writes is valid, so a datetime error can only come from inside a
-- function, and api.md documents none.
CREATE TEMP TABLE fz_documented (code text PRIMARY KEY);
INSERT INTO fz_documented VALUES
  ('ok'), ('22P02'), ('22003'), ('22004'), ('22023'), ('22012'),
  ('23505'), ('23P01'), ('42501'),
  ('CL001'), ('CL002'), ('CL003'), ('CL004'), ('CL005'), ('CL006'), ('CL007'), ('CL008'), ('CL009');

-- ------------------------------------------------------------------ helpers

CREATE FUNCTION pg_temp.fz_pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS
$$ SELECT a[1 + floor(random() * cardinality(a))::int] $$;

-- A random string: mostly short, from an alphabet of quotes, separators,
-- digits, CJK, full-width digits, no-break and zero-width spaces, emoji;
-- sometimes empty, sometimes very long (incompressible or repetitive).
CREATE FUNCTION pg_temp.fz_rstr() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet text[] := ARRAY['a', 'Z', 'x', '0', '6', '9', '_', '-', ' ', '.', ',', '''', '"', '\', '%', '/',
                           ':', '{', '}', '[', ']', '(', ')', ';', '$', '*', E'\t', E'\n', 'é', '碳', '积',
                           '分', '￥', '０', '😀', chr(160), chr(8203), 'NULL', 'POINT', '620700'];
  r float8 := random();
BEGIN
  IF r < 0.06 THEN
    RETURN '';
  ELSIF r < 0.10 THEN   -- 2,000 .. 9,600 random hex digits: too big for a btree key
    RETURN (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 60 + floor(random() * 240)::int));
  ELSIF r < 0.11 THEN   -- up to 100,000 repeated characters
    RETURN repeat(pg_temp.fz_pick(alphabet), 1000 + floor(random() * 99000)::int);
  END IF;
  RETURN (SELECT string_agg(pg_temp.fz_pick(alphabet), '') FROM generate_series(1, 1 + floor(random() * 20)::int));
END $$;

-- One random mutation of a string (a valid tier, region, code ...).
CREATE FUNCTION pg_temp.fz_mutate(s text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n int := length(coalesce(s, ''));
  pos int := 1 + floor(random() * greatest(n, 1))::int;
  c text := pg_temp.fz_pick(ARRAY['x', 'O', '0', '9', ' ', '-', '_', '.', '''', 'é', '碳', '０', chr(160),
                                  upper(substr(s, pos, 1)), lower(substr(s, pos, 1))]);
BEGIN
  s := coalesce(s, '');
  CASE floor(random() * 10)::int
    WHEN 0 THEN RETURN overlay(s PLACING c FROM pos FOR 1);        -- replace a character
    WHEN 1 THEN RETURN overlay(s PLACING c FROM pos FOR 0);        -- insert one
    WHEN 2 THEN RETURN overlay(s PLACING '' FROM pos FOR 1);       -- delete one
    WHEN 3 THEN RETURN upper(s);
    WHEN 4 THEN RETURN initcap(s);
    WHEN 5 THEN RETURN ' ' || s || ' ';
    WHEN 6 THEN RETURN s || s;
    WHEN 7 THEN RETURN left(s, floor(random() * n)::int);
    WHEN 8 THEN RETURN s || chr(8203);                             -- trailing zero-width space
    ELSE RETURN translate(s, '0123456789', '０１２３４５６７８９');  -- full-width digits
  END CASE;
END $$;

-- One random mutation of a serial range REGION-VINTAGE-CODE-FIRST-LAST.
CREATE FUNCTION pg_temp.fz_mutate_serial(s text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  p text[] := string_to_array(s, '-');
  digits int[] := ARRAY(SELECT o::int FROM regexp_split_to_table(s, '') WITH ORDINALITY AS c(ch, o) WHERE ch ~ '[0-9]');
  pos int;
BEGIN
  CASE floor(random() * 12)::int
    WHEN 0 THEN   -- a digit flipped
      pos := digits[1 + floor(random() * cardinality(digits))::int];
      RETURN overlay(s PLACING ((substr(s, pos, 1)::int + 1 + floor(random() * 9)::int) % 10)::text FROM pos FOR 1);
    WHEN 1 THEN RETURN left(s, floor(random() * length(s))::int);                       -- truncated
    WHEN 2 THEN RETURN lower(s);
    WHEN 3 THEN RETURN replace(s, '-', '--');                                           -- extra dashes
    WHEN 4 THEN RETURN s || '-';
    WHEN 5 THEN RETURN '-' || s;
    WHEN 6 THEN RETURN array_to_string(p[1:4] || ARRAY['99999999999999999999999'], '-');  -- huge numbers
    WHEN 7 THEN RETURN array_to_string(p[1:3] || ARRAY['000000000', p[5]], '-');           -- serial zero
    WHEN 8 THEN RETURN array_to_string(p[1:3] || ARRAY[p[5], p[4]], '-');                  -- FIRST after LAST
    WHEN 9 THEN RETURN array_to_string(p[1:3] || ARRAY[ltrim(p[4], '0'), ltrim(p[5], '0')], '-');  -- unpadded
    WHEN 10 THEN RETURN array_to_string(ARRAY[p[1], right(p[2], 2)] || p[3:5], '-');       -- two-digit vintage
    ELSE RETURN pg_temp.fz_mutate(s);
  END CASE;
END $$;

-- One random mutation of a certificate id (64 lowercase hex digits).
CREATE FUNCTION pg_temp.fz_mutate_certificate(c text) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT CASE floor(random() * 5)::int
           WHEN 0 THEN upper(c)
           WHEN 1 THEN left(c, 63)
           WHEN 2 THEN c || '0'
           WHEN 3 THEN overlay(c PLACING CASE WHEN substr(c, 10, 1) = 'a' THEN 'b' ELSE 'a' END FROM 10 FOR 1)
           ELSE pg_temp.fz_mutate(c) END
$$;

-- Serial ranges for the parameters that take one: whole held blocks, pieces
-- of them, single serials, whole issuances (v_issuances), each also mutated.
CREATE FUNCTION pg_temp.fz_serials() RETURNS text[] LANGUAGE sql VOLATILE AS $$
  WITH b AS (SELECT i.region, b.vintage, p.code, b.first, b.last
               FROM carbon.unit_block b JOIN carbon.unit_issuance i ON i.id = b.issuance
               JOIN carbon.project p ON p.id = b.project
              WHERE b.state = 'held' ORDER BY random() LIMIT 15),
  valid AS (SELECT carbon.serial_text(region, vintage, code, first, last) AS s FROM b
            UNION ALL SELECT carbon.serial_text(region, vintage, code, first + (last - first) / 3,
                                                last - (last - first) / 3) FROM b
            UNION ALL SELECT carbon.serial_text(region, vintage, code, last, last) FROM b
            UNION ALL (SELECT serial FROM carbon.v_issuances ORDER BY random() LIMIT 8))
  SELECT coalesce(array_agg(s) || array_agg(pg_temp.fz_mutate_serial(s)), '{}') FROM valid
$$;

-- Values that make sense for a parameter, by (name, type): refreshed from the
-- world as it changes (accounts, entries, methodologies, sources, assets).
CREATE TEMP TABLE fz_pool (key text, typ regtype, vals text[], PRIMARY KEY (key, typ));

CREATE FUNCTION pg_temp.fz_refresh_pools() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := now();
BEGIN
  DELETE FROM fz_pool;
  INSERT INTO fz_pool VALUES
    ('tier', 'text', ARRAY['personal', 'enterprise', 'government', 'merchant', 'verifier', 'platform']),
    ('region', 'text', ARRAY['620700', '320100', '110000', '000000', '620702']),
    ('asset', 'text', ARRAY(SELECT code FROM carbon.asset ORDER BY id)),
    -- mostly the world's accounts (they hold value), some opened by the
    -- calls, a few system accounts, one that does not exist yet
    ('account', 'bigint', (SELECT array_agg(id::text ORDER BY id) FROM carbon.account, generate_series(1, 3)
                            WHERE kind = 'participant' AND display_name LIKE 'world %')
                          || ARRAY(SELECT id::text FROM carbon.account
                                    WHERE kind = 'participant' AND NOT coalesce(display_name LIKE 'world %', false)
                                    ORDER BY id DESC LIMIT 15)
                          || ARRAY(SELECT id::text FROM carbon.account WHERE kind <> 'participant' ORDER BY id LIMIT 3)
                          || ARRAY[(SELECT max(id) + 1 FROM carbon.account)::text]),
    ('entry', 'bigint', ARRAY(SELECT id::text FROM (SELECT id FROM carbon.entry ORDER BY id DESC LIMIT 40) e ORDER BY id)
                        || ARRAY['1', '2', '3']),
    ('methodology', 'text', ARRAY(SELECT DISTINCT code FROM carbon.methodology ORDER BY code) || ARRAY['NOPE']),
    ('code', 'text', ARRAY(SELECT DISTINCT code FROM carbon.methodology ORDER BY code)
                     || ARRAY(SELECT code FROM carbon.asset ORDER BY id) || ARRAY['RAINBOW', 'LANZHOU_PTS']),
    ('version', 'integer', ARRAY(SELECT DISTINCT version::text FROM carbon.methodology ORDER BY 1)
                           || ARRAY[(SELECT least(max(version), 2147483646) + 1 FROM carbon.methodology)::text]),
    ('source', 'text', ARRAY(SELECT source FROM carbon.source ORDER BY source) || ARRAY['nobody']),
    ('scenario', 'text', ARRAY['metro', 'recycling', 'household_power', 'tree_planting', 'bike_share']),
    ('scenarios', 'text[]', ARRAY['{metro}', '{recycling,tree_planting}', '{household_power,metro}', '{}',
                                  '{NULL}', '{metro,metro}', '{""}']),
    ('status', 'text', ARRAY['active', 'frozen', 'closed']),
    ('name', 'text', ARRAY['points_per_kg', 'points_validity', 'acceptance_window', 'timezone',
                           '彩虹元 rainbow yuan', 'Lanzhou points']),
    ('value', 'text', ARRAY['100', '1', '0', '-5', '999999999', '1000000000', '12.5', 'end_of_next_year',
                            '1 year', '30 days', '1 microsecond', '0 days', '-1 day', '7 days', '100000 years',
                            'Asia/Shanghai', 'UTC', 'Asia/Urumqi', 'Mars/Olympus_Mons', 'infinity']),
    ('formula', 'text', ARRAY['distance_substitution', 'per_unit', 'personal_baseline', 'flat']),
    ('class', 'text', ARRAY['I', 'II']),
    ('kind', 'text', ARRAY['points', 'currency', 'reduction', 'unit', 'cash']),
    ('operator_role', 'name', ARRAY['carbon_operator', 'carbon_admin', 'postgres', 'no_such_role']),
    ('external_ref', 'text', ARRAY(SELECT format('%s-%s-%s', t, r, k)
                                     FROM unnest(ARRAY['personal', 'enterprise', 'merchant']) t,
                                          unnest(ARRAY['620700', '320100']) r, generate_series(1, 2) k)
                             || ARRAY['620702199001011234', '91620700MA000001X']),
    ('event_id', 'text', ARRAY(SELECT 'ev-' || g FROM generate_series(1, 25) g)),
    ('request_id', 'text', ARRAY(SELECT 'req-' || g FROM generate_series(1, 12) g)),
    ('activity', 'numeric', ARRAY['0', '1', '2.5', '7', '12.345', '30', '150', '0.001', '250']),
    ('amount', 'bigint', ARRAY['1', '3', '10', '50', '100', '999', '5000']),
    ('cap', 'bigint', ARRAY['0', '1000', '1000000', '1000000000000']),
    ('year', 'integer', ARRAY['2025', '2026', '2027', '2000', '2200', extract(year FROM t0)::int::text]),
    ('params', 'jsonb', ARRAY['{"baseline_g_per_pkm": 120, "project_g_per_pkm": 35}',
                              '{"baseline_g_per_pkm": 90.5, "project_g_per_pkm": 0, "max_activity": 100}',
                              '{"g_per_unit": 850, "daily_cap_g": 5000}', '{"g_per_unit": 0.75}',
                              '{"baseline": 300, "g_per_unit": 581}', '{"baseline": 10, "g_per_unit": 1, "daily_cap_g": 0}',
                              '{"g_per_event": 1500}', '{"g_per_event": 1, "max_activity": 1}']),
    ('attrs', 'jsonb', ARRAY['{}', '{"own_baseline": 120}', '{"own_baseline": -1}', '{"own_baseline": "low"}',
                             '{"line": 2}', '[]']),
    ('max_rows', 'integer', ARRAY['1', '5', '20', '1000']),
    ('occurred_at', 'timestamp with time zone',
       ARRAY[t0::text, (t0 - interval '1 hour')::text, (t0 - interval '1 day')::text, (t0 - interval '6 days')::text,
             (t0 - interval '8 days')::text, (t0 + interval '1 minute')::text, (t0 + interval '1 hour')::text]),
    ('effective_from', 'timestamp with time zone',
       ARRAY[(t0 - interval '30 days')::text, (t0 - interval '1 day')::text, t0::text, (t0 + interval '1 day')::text]),
    ('as_of', 'timestamp with time zone',
       ARRAY[t0::text, (t0 - interval '1 day')::text, (t0 + interval '400 days')::text, (t0 + interval '800 days')::text]),
    ('at', 'timestamp with time zone',
       ARRAY[t0::text, (t0 - interval '1 hour')::text, (t0 - interval '40 days')::text, (t0 + interval '1 day')::text]),
    ('reviewer', 'text', ARRAY['Dr. Wang', '审核员 李']),
    ('reason', 'text', ARRAY['audit', '用户申请 at the holder''s request']),
    ('memo', 'text', ARRAY['coffee', 'donation', '结算']),
    ('title', 'text', ARRAY['Metro rides', '地铁出行']),
    ('display_name', 'text', ARRAY['李雷', 'Acme Ltd.']);
  -- projects and certified units
  INSERT INTO fz_pool VALUES
    ('at', 'date', ARRAY[(current_date - 30)::text, (current_date - 10)::text, (current_date - 3)::text,
                         current_date::text, (current_date + 1)::text]),
    ('project', 'bigint', ARRAY(SELECT id::text FROM carbon.project ORDER BY id)
                          || ARRAY(SELECT id::text FROM carbon.project WHERE status <> 'approved' ORDER BY id)
                          || ARRAY[(SELECT coalesce(max(id), 0) + 1 FROM carbon.project)::text]),
    -- mostly reports that can be verified or issued
    ('report', 'bigint', ARRAY(SELECT id::text FROM carbon.monitoring_report, generate_series(1, 2)
                                WHERE status IN ('submitted', 'verified') ORDER BY id)
                         || ARRAY(SELECT id::text FROM carbon.monitoring_report ORDER BY id DESC LIMIT 10)
                         || ARRAY[(SELECT coalesce(max(id), 0) + 1 FROM carbon.monitoring_report)::text]),
    -- mostly the verifiers (they verify), some other accounts
    ('verifier', 'bigint', ARRAY(SELECT id::text FROM carbon.account, generate_series(1, 3)
                                  WHERE kind = 'participant' AND tier = 'verifier' ORDER BY id)
                           || ARRAY(SELECT id::text FROM carbon.account WHERE kind = 'participant' AND tier <> 'verifier'
                                     ORDER BY id LIMIT 5)),
    ('tonnes', 'bigint', ARRAY['1', '2', '5', '10', '40']),
    ('purpose', 'text', ARRAY['event_neutrality', 'entity_neutrality', 'eco_damage_compensation', 'voluntary',
                              'compliance_offset', 'carbon_magic']),
    ('beneficiary', 'text', ARRAY['2026 丹霞旅游节 Danxia tourism festival', 'Acme Ltd. 2026 operations']),
    ('reference', 'text', ARRAY['(2026)甘0702刑初15号', 'case 7']),
    ('additionality', 'text', ARRAY['no financing without carbon revenue', '无碳收益不可行']),
    ('opinion', 'text', ARRAY['reasonable assurance', '合理保证']),
    ('evidence', 'jsonb', ARRAY['{}', '{"plots": 12, "survey": "2025-02"}']),
    ('claimed', to_regtype('carbon.co2e'), ARRAY['10 t', '100.5 t', '2500 t', '0.5 t', '1234.5678 t']),
    ('verified', to_regtype('carbon.co2e'), ARRAY['10 t', '100 t', '0.4 t', '0 g', '99.99 t']),
    -- periods of one day to two months in the last ten years: most overlap no earlier report
    ('period', 'daterange', ARRAY(SELECT format('[%s,%s)', d, d + 1 + floor(random() * 60)::int)
                                    FROM (SELECT current_date - 70 - floor(random() * 3600)::int AS d
                                            FROM generate_series(1, 12)) x)),
    ('serial', 'text', pg_temp.fz_serials()),
    ('certificate', 'text', ARRAY(SELECT certificate FROM carbon.retirement ORDER BY random() LIMIT 10)
                            || ARRAY(SELECT pg_temp.fz_mutate_certificate(certificate) FROM carbon.retirement
                                      ORDER BY random() LIMIT 5)
                            || ARRAY[repeat('0', 64)]),
    ('vintage', 'integer', ARRAY['2024', '2025', '0', '99999']),
    ('first', 'bigint', ARRAY['1', '121', '999999999', '1000000000']),
    ('last', 'bigint', ARRAY['1', '1200', '999999999', '1000000000']);
  -- the market (api.md §6): cash in yuan (whole, to the fen, a tenth of a
  -- fen, huge, not a number), sides, times in force and instruments (each
  -- sometimes mutated), orders (mostly resting ones, some ended, one that
  -- does not exist), beneficiaries of a buy that retires (NULL: most
  -- orders retire nothing); limit prices are expressions of the reference
  -- price (fz_arg)
  INSERT INTO fz_pool VALUES
    ('amount', 'numeric', ARRAY['100', '2500.50', '0.01', '35.7', '10000', '10.001', '0', '-5', 'NaN', 'Infinity',
                                '99999999999999999.99', '1e30', '0.000000000000000000001']),
    ('side', 'text', ARRAY['buy', 'sell', 'buy', 'sell', 'buy', 'sell', 'BUY', 'hold']),
    ('tif', 'text', ARRAY['GTC', 'DAY', 'IOC', 'FOK', 'GTC', 'DAY', 'IOC', 'FOK', 'GTD', 'gtc']),
    ('instrument', 'text', ARRAY['CER-I', 'CER-I', 'CER-I', 'CER-I', 'CER-I', 'CER-II', 'cer-i']),
    ('order_id', 'bigint', ARRAY(SELECT id::text FROM (SELECT id FROM carbon.market_order
                                                       WHERE status IN ('open', 'partially_filled')
                                                       ORDER BY id DESC LIMIT 20) o)
                           || ARRAY(SELECT id::text FROM carbon.market_order ORDER BY id DESC LIMIT 5)
                           || ARRAY[(SELECT coalesce(max(id), 0) + 1 FROM carbon.market_order)::text]),
    ('retire_for', 'text', ARRAY[NULL, NULL, NULL, '2026 张掖马拉松 Zhangye marathon', 'Acme Ltd. 2026 operations']);
  -- fresh project codes (a taken code is 23505)
  UPDATE fz_pool SET vals = vals || ARRAY(SELECT 'FZ' || upper(to_hex(floor(random() * 2147483647)::int))
                                            FROM generate_series(1, 3))
   WHERE key = 'code' AND typ = 'text'::regtype;
END $$;

-- A random value of a type, not tied to the parameter's meaning: NULL,
-- boundaries, small ids, random numbers, random jsonb, timestamps from
-- -infinity to infinity, random and mutated strings.  Always a valid literal
-- of the type, except for co2e, whose text input is part of what is fuzzed.
CREATE FUNCTION pg_temp.fz_typed(typ regtype) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r float8 := random();
  words text[];
BEGIN
  CASE typ
    WHEN 'text'::regtype, 'name'::regtype, 'character varying'::regtype THEN
      IF r < 0.5 THEN
        RETURN pg_temp.fz_rstr();
      END IF;
      words := ARRAY(SELECT unnest(vals) FROM fz_pool WHERE fz_pool.typ IN ('text'::regtype, 'name'::regtype));
      RETURN CASE WHEN r < 0.8 THEN pg_temp.fz_mutate(pg_temp.fz_pick(words)) ELSE pg_temp.fz_pick(words) END;
    WHEN 'bigint'::regtype THEN
      RETURN CASE WHEN r < 0.45 THEN pg_temp.fz_pick(ARRAY['0', '-1', '1', '2', '9223372036854775807',
                                         '-9223372036854775808', '2147483647', '2147483648', '-2147483648',
                                         '1000000000000', '-1000000', '9223372036854775806'])
                  WHEN r < 0.8 THEN (1 + floor(random() * 80))::text
                  ELSE (floor(random() * 2e9) - 1e9)::bigint::text END;
    WHEN 'integer'::regtype THEN
      RETURN CASE WHEN r < 0.5 THEN pg_temp.fz_pick(ARRAY['0', '-1', '1', '2', '2147483647', '-2147483648',
                                         '1999', '2000', '2200', '2201', '-2026'])
                  WHEN r < 0.8 THEN (1 + floor(random() * 10))::text
                  ELSE (floor(random() * 2e6) - 1e6)::int::text END;
    WHEN 'smallint'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['0', '-1', '1', '32767', '-32768', (floor(random() * 100))::text]);
    WHEN 'numeric'::regtype THEN
      RETURN CASE WHEN r < 0.5 THEN pg_temp.fz_pick(ARRAY['0', '-1', '1', '0.5', '-0.001', '0.0000000000000000001',
                                         '123456789012345678', '1234567890123456789', '99999999999999999999.99',
                                         '1e30', '-1e30', '9223372036854775807', 'NaN', 'Infinity', '-Infinity',
                                         '12.345678901234567890123', '60.005', '60.0000000000000000000000001',
                                         '-0', '1e-30', '123456789012345678901234567890.5', '1e131071'])
                  ELSE round((random() * 1000)::numeric, floor(random() * 6)::int)::text END;
    WHEN 'double precision'::regtype, 'real'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['0', '-1', '1.5', 'NaN', 'Infinity', '-Infinity', '1e300', (random() * 100)::text]);
    WHEN 'boolean'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['true', 'false']);
    WHEN 'jsonb'::regtype, 'json'::regtype THEN
      IF r < 0.4 THEN
        RETURN pg_temp.fz_pick(ARRAY['{}', '[]', 'null', '0', '"x"', 'true', '[1, 2]', '{"": null}',
                                     '{"a": {"b": {"c": [1, {"d": "碳"}]}}}', '{"baseline": null}',
                                     '{"g_per_unit": "1e400"}', '{"g_per_unit": 1e400}']);
      END IF;
      RETURN (SELECT jsonb_object_agg(k, v)::text FROM (
                SELECT pg_temp.fz_pick(ARRAY['baseline_g_per_pkm', 'project_g_per_pkm', 'g_per_unit', 'baseline',
                                             'g_per_event', 'daily_cap_g', 'max_activity', 'own_baseline',
                                             'other', pg_temp.fz_rstr()]) AS k,
                       pg_temp.fz_pick(ARRAY['1', '-1', '0', '12.5', '"x"', 'null', '[1]', '1e3',
                                             '99999999999999999999', '{}', '0.0001', '"12"'])::jsonb AS v
                  FROM generate_series(1, 1 + floor(random() * 4)::int)) kv);
    WHEN 'timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype THEN
      RETURN CASE WHEN r < 0.3 THEN pg_temp.fz_pick(ARRAY['infinity', '-infinity', '2000-01-01', '1970-01-01 00:00:00+00',
                                         '4713-01-01 00:00:00+00 BC', '294276-12-31 00:00:00+00'])
                  ELSE (now() + (random() * 1000 - 900) * interval '1 day')::timestamptz::text END;
    WHEN 'interval'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['0', '1 day', '-1 day', '7 days', '100 years', '-178000000 years', '1 microsecond']);
    WHEN 'tstzrange'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['empty', '(,)', format('[%s,%s)', now() - interval '1 day', now() + interval '30 days'),
                                   format('[%s,%s)', now() - interval '10 days', now() - interval '9 days'),
                                   '[2000-01-01,infinity)']);
    WHEN 'daterange'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['empty', '(,)', format('[%s,%s)', current_date - 30, current_date),
                                   format('[%s,%s]', current_date - 400, current_date - 35), '[2000-01-01,infinity)']);
    WHEN 'text[]'::regtype, 'name[]'::regtype THEN
      RETURN CASE WHEN r < 0.3 THEN pg_temp.fz_pick(ARRAY['{}', '{NULL}', '{""}', '{a,b,c}'])
                  ELSE (SELECT array_agg(pg_temp.fz_rstr())::text FROM generate_series(1, 1 + floor(random() * 3)::int)) END;
    WHEN 'bigint[]'::regtype, 'integer[]'::regtype THEN
      RETURN pg_temp.fz_pick(ARRAY['{}', '{NULL}', '{1,2,3}', '{-1}', '{9223372036854775807}']);
    WHEN to_regtype('carbon.co2e') THEN
      RETURN CASE WHEN r < 0.6 THEN pg_temp.fz_pick(ARRAY['0 g', '1 g', '-1 g', '12.5 kg', '3 t', '0.5 t', '1.5 Mt',
                                         '9223372036854775807 g', '-9223372036854775808 g'])
                  ELSE pg_temp.fz_mutate(pg_temp.fz_pick(ARRAY['12.5 kg', '-3t', '1500 g', '0.000001 Mt'])) END;
    ELSE
      RETURN NULL;   -- a type this file does not know: only NULL is tried
  END CASE;
END $$;

-- The literal of one argument, cast to the parameter's declared type: NULL;
-- a value that fits the parameter's meaning (by name), sometimes mutated; or
-- a random value of the type.  p_fit is the chance of a fitting value (high
-- for the calls meant to get past the argument checks).
CREATE FUNCTION pg_temp.fz_arg(pname text, typ regtype, p_fit float8) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r float8 := random();
  pkey text := CASE
    WHEN pname IN ('from_account', 'to_account', 'merchant', 'owner', 'acting') THEN 'account'
    WHEN pname IN ('from_asset', 'to_asset') THEN 'asset'
    WHEN pname IN ('valid_from', 'starts', 'day', 'until') THEN 'at'
    WHEN pname IN ('serial', 'serials') THEN 'serial'
    WHEN pname = 'retire_purpose' THEN 'purpose'
    ELSE pname END;
  pool text[];
  v text;
BEGIN
  IF r < (1 - p_fit) / 5 THEN
    RETURN 'NULL::' || typ::text;
  END IF;
  -- a limit or reference price: a factor of the reference price as it is
  -- when the call runs, mostly within its band (±10 %), some just outside it
  -- or off the tick; otherwise a number of the wild kind below
  IF pname = 'price' AND typ = 'numeric'::regtype AND random() < p_fit * 0.8 THEN
    RETURN format('(SELECT round(coalesce(reference_price, 6000) * %s::numeric) / 100 %s FROM carbon.instrument RIGHT JOIN (SELECT) x ON code = %L)',
                  pg_temp.fz_pick(ARRAY['0.9', '0.95', '0.99', '1', '1', '1.01', '1.05', '1.1', '0.89', '1.11',
                                        round((0.9 + random() * 0.2)::numeric, 3)::text]),
                  CASE WHEN random() < 0.1 THEN '+ 0.001' ELSE '' END, 'CER-I');
  END IF;
  SELECT vals INTO pool FROM fz_pool WHERE fz_pool.key = pkey AND fz_pool.typ = fz_arg.typ;
  IF cardinality(pool) > 0 AND random() < p_fit THEN
    v := pg_temp.fz_pick(pool);
    IF typ IN ('text'::regtype, 'name'::regtype) AND random() < (1 - p_fit) / 3 THEN
      v := pg_temp.fz_mutate(v);
    END IF;
    IF typ = 'text'::regtype AND random() < 0.03 THEN   -- a fitting value made very long
      v := v || (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 60 + floor(random() * 240)::int));
    END IF;
  ELSE
    v := pg_temp.fz_typed(typ);
  END IF;
  RETURN quote_nullable(v) || '::' || typ::text;
END $$;

-- Calls that build and top up the world: recorded, so that they too must
-- end only with documented SQLSTATEs.
CREATE TEMP TABLE fz_world (phase text, call text, code text, message text);
CREATE FUNCTION pg_temp.fz_w(phase text, call text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  c text := 'ok';
  m text;
BEGIN
  BEGIN
    EXECUTE call;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
  END;
  INSERT INTO fz_world VALUES (phase, call, c, m);
  RETURN c = 'ok';
END $$;

-- The world: accounts of every tier in two regions, a published methodology
-- per formula (plus drafts, a submitted and an approved version for the
-- lifecycle), sources, issued value, recorded behaviours, an inbox.
CREATE FUNCTION pg_temp.fz_setup() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  acc record;
  yr int := extract(year FROM now() AT TIME ZONE 'Asia/Shanghai');
BEGIN
  FOR acc IN SELECT t, r, k FROM unnest(ARRAY['personal', 'enterprise', 'government', 'merchant', 'verifier', 'platform']) t,
                                 unnest(ARRAY['620700', '320100']) r, generate_series(1, 3) k
              WHERE k <= CASE t WHEN 'personal' THEN 3 ELSE 2 END LOOP
    PERFORM pg_temp.fz_w('setup', format('SELECT carbon.open_account(%L, %L, %L, %L)',
                                         acc.t, acc.r, format('%s-%s-%s', acc.t, acc.r, acc.k),
                                         format('world %s %s #%s', acc.t, acc.r, acc.k)));
  END LOOP;
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.define_asset('RAINBOW', 'currency', '彩虹元 rainbow yuan')$q$);
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.define_methodology(%L, 1, %L, %L, %L, %L, %L)', m.code, m.title,
                                       m.class, m.scenario, m.formula, m.params))
     FROM (VALUES ('METRO', 'Metro rides', 'II', 'metro', 'distance_substitution',
                   '{"baseline_g_per_pkm": 120, "project_g_per_pkm": 35, "max_activity": 200}'),
                  ('RECYCLE', 'Recycling', 'II', 'recycling', 'per_unit', '{"g_per_unit": 850, "daily_cap_g": 50000}'),
                  ('POWER', 'Household power', 'II', 'household_power', 'personal_baseline',
                   '{"baseline": 300, "g_per_unit": 581}'),
                  ('TREE', 'Tree planting', 'I', 'tree_planting', 'flat', '{"g_per_event": 1500}'))
          AS m(code, title, class, scenario, formula, params);
  PERFORM pg_temp.fz_setup_publish(code, 1) FROM unnest(ARRAY['METRO', 'RECYCLE', 'POWER', 'TREE']) code;
  -- lifecycle targets: a draft, a submitted and an approved version
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.define_methodology('METRO', 2, 'Metro v2', 'II', 'metro', 'distance_substitution', '{"baseline_g_per_pkm": 110, "project_g_per_pkm": 30}')$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.define_methodology('RECYCLE', 2, 'Recycling v2', 'II', 'recycling', 'per_unit', '{"g_per_unit": 800}')$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.submit_methodology('RECYCLE', 2)$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.define_methodology('POWER', 2, 'Power v2', 'II', 'household_power', 'personal_baseline', '{"baseline": 250, "g_per_unit": 581}')$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.submit_methodology('POWER', 2)$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.approve_methodology('POWER', 2, 'Dr. Wang')$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.register_source('metro_co', ARRAY['metro'], 'carbon_operator')$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.register_source('green_recycle', ARRAY['recycling', 'tree_planting'])$q$);
  PERFORM pg_temp.fz_w('setup', $q$SELECT carbon.register_source('grid_co', ARRAY['household_power', 'metro'])$q$);
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.set_issuance_cap(%L, %L, %L, %s, %s)', 'POINT', 'personal', '320100', yr,
                                       1000000000000));
  -- issued value: points, cash, reductions and units where the tiers hold them
  FOR acc IN SELECT id, tier FROM carbon.account WHERE kind = 'participant' ORDER BY id LOOP
    PERFORM pg_temp.fz_w('setup', format('SELECT carbon.issue(%s, %L, %s, %L)', acc.id, 'CNY', 1000000, 'opening cash'));
    IF acc.tier IN ('personal', 'enterprise', 'merchant') THEN
      PERFORM pg_temp.fz_w('setup', format('SELECT carbon.issue(%s, %L, %s, %L)', acc.id, 'POINT', 5000, 'welcome points'));
    END IF;
    IF acc.tier = 'personal' THEN
      PERFORM pg_temp.fz_w('setup', format('SELECT carbon.issue(%s, %L, %s)', acc.id, 'RED', 20000));
    END IF;
  END LOOP;
  -- certified units come only from issuance (carbon.issue refuses CER): a
  -- forestry project (a buffer pool) and a class II solar project, issued
  -- three and two times, two verified reports waiting for issue_units and
  -- one for its verifier each; a project only registered, one publicised;
  -- the units spread to every account that may hold them, some retired
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.define_methodology(%L, 1, %L, %L, %L, %L, %L)', m.code, m.title,
                                       m.class, m.scenario, 'per_unit', m.params))
     FROM (VALUES ('FOREST', 'Forest carbon sink', 'I', 'forestry', '{"g_per_unit": 1, "buffer_pct": 10}'),
                  ('SOLAR', 'Rooftop solar', 'II', 'solar', '{"g_per_unit": 1}')) AS m(code, title, class, scenario, params);
  PERFORM pg_temp.fz_setup_publish(code, 1) FROM unnest(ARRAY['FOREST', 'SOLAR']) code;
  PERFORM pg_temp.fz_project('setup', pg_temp.fz_world_account('enterprise', '620700', 1), 'WORLDFOREST', 'FOREST', 6, 5, 3);
  PERFORM pg_temp.fz_project('setup', pg_temp.fz_world_account('government', '320100', 1), 'WORLDSOLAR', 'SOLAR', 5, 4, 2);
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.register_project(%s, %L, %L, %L, %L, %L)',
                                       pg_temp.fz_world_account(t, r, 1), code, 'world project ' || code, 'FOREST', r,
                                       'no financing without carbon revenue'))
     FROM (VALUES ('enterprise', '320100', 'WORLDREG'), ('government', '620700', 'WORLDPUB')) v(t, r, code);
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.publicize_project(%s, %L)',
                                       (SELECT id FROM carbon.project WHERE code = 'WORLDPUB'), current_date - 30));
  PERFORM pg_temp.fz_spread('setup', (SELECT owner FROM carbon.project WHERE code = c), t)
     FROM (VALUES ('WORLDFOREST', 60), ('WORLDSOLAR', 30)) v(c, t);
  PERFORM pg_temp.fz_w('setup', format('SELECT count(*) FROM carbon.retire_units(%s, 3, %L, %L)', a.id, 'voluntary',
                                       'world retirement ' || a.id))
     FROM (SELECT id FROM carbon.account WHERE kind = 'participant' AND tier = 'personal' ORDER BY id LIMIT 2) a;
  PERFORM pg_temp.fz_w('setup', format('SELECT count(*) FROM carbon.retire_serials(%s, %L, %L, %L, %L)', b.account,
                                       carbon.serial_text(i.region, b.vintage, p.code, b.last, b.last),
                                       'eco_damage_compensation', 'world wetland', '(2026)甘0702刑初15号'))
     FROM (SELECT * FROM carbon.unit_block WHERE state = 'held' AND account IN
             (SELECT id FROM carbon.account WHERE tier = 'government' AND display_name LIKE 'world %')
            ORDER BY id LIMIT 2) b
     JOIN carbon.unit_issuance i ON i.id = b.issuance JOIN carbon.project p ON p.id = b.project;
  PERFORM pg_temp.fz_w('setup', format('SELECT * FROM carbon.record_behavior(%L, %L, %s, %L, %s, %L)',
                                       s, 'setup-' || a.id || '-' || s, a.id, m, act, now() - interval '2 hours'))
     FROM (SELECT id FROM carbon.account WHERE kind = 'participant' AND tier = 'personal' ORDER BY id) a,
          (VALUES ('metro_co', 'METRO', 12.5), ('green_recycle', 'RECYCLE', 3), ('grid_co', 'POWER', 180),
                  ('green_recycle', 'TREE', 1)) v(s, m, act);
  PERFORM pg_temp.fz_inbox(40);
  -- the market: cash deposited, a reference price of 60.00 yuan per tonne,
  -- a fee, a book of resting orders on both sides and a trade
  PERFORM pg_temp.fz_market('setup');
END $$;

-- The market's world: every world account that may hold units deposits
-- cash; the reference price back at 60.00, the fee at 10 bp; asks and bids
-- rest on both sides of the reference (from accounts that hold class I
-- units and cash), one crosses.
CREATE FUNCTION pg_temp.fz_market(phase text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.fz_w(phase, format('SELECT carbon.deposit_cash(%s, %s, %L)', a.id, 5000, 'world cash ' || a.id))
     FROM carbon.account a
    WHERE a.kind = 'participant' AND a.status = 'active' AND a.display_name LIKE 'world %'
      AND a.tier IN ('personal', 'enterprise', 'government', 'platform')
    ORDER BY a.id;
  PERFORM pg_temp.fz_w(phase, $q$SELECT carbon.set_reference_price('CER-I', 60.00)$q$);
  PERFORM pg_temp.fz_w(phase, $q$SELECT carbon.set_setting('trade_fee_bps', '10')$q$);
  PERFORM pg_temp.fz_w(phase, format('SELECT count(*) FROM carbon.place_order(%s, %L, %s, %s, %L)', a.id, side, 2 + k,
                                     CASE side WHEN 'sell' THEN 60.5 + k ELSE 59.5 - k END, 'GTC'))
     FROM (SELECT id, row_number() OVER (ORDER BY id) AS k FROM carbon.account
            WHERE kind = 'participant' AND status = 'active' AND display_name LIKE 'world %'
              AND carbon.tradable_units(id) >= 10 ORDER BY id LIMIT 4) a,
          unnest(ARRAY['sell', 'buy']) side;
  PERFORM pg_temp.fz_w(phase, format('SELECT count(*) FROM carbon.place_order(%s, %L, %s, %s, %L)', a.id, 'buy', 3,
                                     61.5, 'IOC'))
     FROM (SELECT id FROM carbon.account WHERE kind = 'participant' AND status = 'active' AND display_name LIKE 'world %'
              AND tier = 'personal' ORDER BY id DESC LIMIT 1) a;
END $$;

-- The k-th world account of a tier and region.
CREATE FUNCTION pg_temp.fz_world_account(tier text, region text, k int) RETURNS bigint LANGUAGE sql AS $$
  SELECT carbon.account_id(tier, format('%s-%s-%s', tier, region, k))
$$;

-- A project of the world: registered by `owner` under the version of
-- `methodology` in force, publicised 30 days ago and approved; `n` monthly
-- monitoring reports (the last n months), the first `verified` of them
-- verified by an active verifier, the first `issued` of those issued.
CREATE FUNCTION pg_temp.fz_project(phase text, owner bigint, code text, methodology text, n int, verified int,
                                   issued int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  pid bigint;
  rid bigint;
  v bigint := (SELECT id FROM carbon.account WHERE kind = 'participant' AND tier = 'verifier' AND status = 'active'
                ORDER BY id LIMIT 1);
BEGIN
  PERFORM pg_temp.fz_w(phase, format('SELECT carbon.register_project(%s, %L, %L, %L, %L, %L)', owner, code,
                                     'world project ' || code, methodology,
                                     (SELECT region FROM carbon.account WHERE id = owner),
                                     'no financing without carbon revenue'));
  SELECT id INTO pid FROM carbon.project p WHERE p.code = fz_project.code;
  IF pid IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_temp.fz_w(phase, format('SELECT carbon.publicize_project(%s, %L)', pid, current_date - 30));
  PERFORM pg_temp.fz_w(phase, format('SELECT carbon.approve_project(%s)', pid));
  FOR k IN 1..n LOOP
    PERFORM pg_temp.fz_w(phase, format('SELECT carbon.submit_monitoring(%s, %L, %L, %L)', pid,
                                       daterange(current_date - 30 * (n - k + 2), current_date - 30 * (n - k + 1)),
                                       (1000 + 100 * k) || '.5 t', '{"plots": 3}'));
    SELECT max(id) INTO rid FROM carbon.monitoring_report WHERE project = pid;
    IF k <= verified THEN
      PERFORM pg_temp.fz_w(phase, format('SELECT carbon.verify_monitoring(%s, %s, %L, %L)', rid, v,
                                         (1000 + 100 * k) || '.25 t', 'reasonable assurance'));
    END IF;
    IF k <= issued THEN
      PERFORM pg_temp.fz_w(phase, format('SELECT count(*) FROM carbon.issue_units(%s)', rid));
    END IF;
  END LOOP;
END $$;

-- `tonnes` of the units of `owner` to each active world account that may
-- hold them, by transfer_units and by transfer(..., 'CER').
CREATE FUNCTION pg_temp.fz_spread(phase text, owner bigint, tonnes int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.fz_w(phase, CASE WHEN a.id % 2 = 0
                                   THEN format('SELECT carbon.transfer_units(%s, %s, %s, %L)', owner, a.id, tonnes, 'spread')
                                   ELSE format('SELECT carbon.transfer(%s, %s, %L, %s, %L)', owner, a.id, 'CER', tonnes,
                                               'spread') END)
     FROM carbon.account a
    WHERE a.kind = 'participant' AND a.status = 'active' AND a.display_name LIKE 'world %' AND a.id <> owner
      AND a.tier IN ('personal', 'enterprise', 'government', 'platform')
    ORDER BY a.id;
END $$;

CREATE FUNCTION pg_temp.fz_setup_publish(code text, version int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.submit_methodology(%L, %s)', code, version));
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.approve_methodology(%L, %s, %L)', code, version, 'Dr. Wang'));
  PERFORM pg_temp.fz_w('setup', format('SELECT carbon.publish_methodology(%L, %s, %L)', code, version,
                                       now() - interval '30 days'));
END $$;

-- n rows into the inbox: mostly plausible, some with random fields.
CREATE FUNCTION pg_temp.fz_inbox(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO carbon.behavior_inbox (source, event_id, account, methodology, activity, occurred_at, attrs)
  SELECT CASE WHEN random() < 0.85 THEN pg_temp.fz_pick(ARRAY['metro_co', 'green_recycle', 'grid_co']) ELSE pg_temp.fz_rstr() END,
         CASE WHEN random() < 0.9 THEN 'inbox-' || floor(random() * 1e9)::bigint
              WHEN random() < 0.5 THEN pg_temp.fz_pick(ARRAY['ev-1', 'ev-2', 'inbox-1']) END,
         CASE WHEN random() < 0.9 THEN (SELECT id FROM carbon.account WHERE kind = 'participant'
                                         ORDER BY id OFFSET floor(random() * 12) LIMIT 1)
              ELSE pg_temp.fz_typed('bigint')::bigint END,
         CASE WHEN random() < 0.9 THEN pg_temp.fz_pick(ARRAY['METRO', 'RECYCLE', 'POWER', 'TREE']) ELSE pg_temp.fz_rstr() END,
         CASE WHEN random() < 0.85 THEN round((random() * 40)::numeric, 2) ELSE pg_temp.fz_typed('numeric')::numeric END,
         CASE WHEN random() < 0.85 THEN now() - random() * interval '8 days' ELSE pg_temp.fz_typed('timestamptz')::timestamptz END,
         CASE WHEN random() < 0.8 THEN '{}'::jsonb ELSE pg_temp.fz_typed('jsonb')::jsonb END
    FROM generate_series(1, n);
END $$;

-- Top the world up so that later calls can still succeed: reopen frozen
-- accounts, issue fresh value, put a version of every world methodology
-- back in force, lift exhausted caps, restore the default settings, refill
-- the inbox, refresh the pools.
CREATE FUNCTION pg_temp.fz_refill() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  a record;
BEGIN
  FOR a IN SELECT id FROM carbon.account WHERE kind = 'participant' AND status = 'frozen' ORDER BY id LOOP
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.set_account_status(%s, %L, %L)', a.id, 'active', 'fuzz refill'));
  END LOOP;
  FOR a IN SELECT id, tier FROM carbon.account WHERE kind = 'participant' AND status = 'active'
            ORDER BY id LIMIT 30 LOOP
    IF random() < 0.4 THEN
      PERFORM pg_temp.fz_w('refill', format('SELECT carbon.issue(%s, %L, %s)', a.id, asset, amount))
         FROM (VALUES ('POINT', 2000), ('CNY', 100000), ('RED', 5000)) v(asset, amount)
        WHERE asset <> 'RED' OR a.tier = 'personal';
    END IF;
  END LOOP;
  FOR a IN SELECT m.code, max(m.version) FILTER (WHERE m.version < 1000000) + 1 AS next, (array_agg(m.title ORDER BY m.version))[1] AS title,
                  (array_agg(m.class ORDER BY m.version))[1] AS class,
                  (array_agg(m.scenario ORDER BY m.version))[1] AS scenario,
                  (array_agg(m.formula ORDER BY m.version))[1] AS formula,
                  (array_agg(m.params ORDER BY m.version))[1] AS params
             FROM carbon.methodology m
            WHERE m.code IN ('METRO', 'RECYCLE', 'POWER', 'TREE', 'FOREST', 'SOLAR')
            GROUP BY m.code
           HAVING NOT bool_or(m.status = 'published' AND m.effective_from <= now() - interval '8 days')
            ORDER BY m.code LOOP
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.define_methodology(%L, %s, %L, %L, %L, %L, %L)', a.code, a.next,
                                          a.title, a.class, a.scenario, a.formula, a.params));
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.submit_methodology(%L, %s)', a.code, a.next));
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.approve_methodology(%L, %s, %L)', a.code, a.next, 'Dr. Wang'));
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.publish_methodology(%L, %s, %L)', a.code, a.next,
                                          now() - interval '30 days'));
  END LOOP;
  FOR a IN SELECT * FROM carbon.issuance_cap WHERE cap - issued < 100000000 ORDER BY 1, 2, 3, 4 LOOP
    PERFORM pg_temp.fz_w('refill', format('SELECT carbon.set_issuance_cap(%L, %L, %L, %s, %s)',
                                          a.asset, a.tier, a.region, a.year,
                                          least(a.issued::numeric + 1000000000000, 9223372036854775807)));
  END LOOP;
  -- settings back to their defaults, and the inbox cleared of rows that
  -- the calls since the last top-up could not process
  PERFORM pg_temp.fz_w('refill', format('SELECT carbon.set_setting(%L, %L)', name, default_value))
     FROM carbon.settings WHERE value IS DISTINCT FROM default_value ORDER BY name;
  DELETE FROM carbon.behavior_inbox;
  PERFORM pg_temp.fz_inbox(20);
  -- a new project of an active world enterprise or government, four reports
  -- (three verified, one issued), its units spread: fresh targets for
  -- verify_monitoring, issue_units, recall_issuance and the unit moves
  SELECT id INTO a FROM carbon.account
   WHERE kind = 'participant' AND status = 'active' AND display_name LIKE 'world %'
     AND tier IN ('enterprise', 'government') ORDER BY random() LIMIT 1;
  IF a.id IS NOT NULL THEN
    PERFORM pg_temp.fz_project('refill', a.id, 'FZREFILL' || (SELECT count(*) + 1 FROM carbon.project),
                               pg_temp.fz_pick(ARRAY['FOREST', 'SOLAR']), 4, 3, 1);
    PERFORM pg_temp.fz_spread('refill', a.id, 10);
  END IF;
  PERFORM pg_temp.fz_market('refill');
  PERFORM pg_temp.fz_refresh_pools();
END $$;

-- ------------------------------------------------------------ the functions

-- Everything the extension owns in schema carbon that a user calls: plain
-- functions, not aggregates, not type I/O, operator, index or aggregate
-- support, not triggers, not internal helpers (names starting with "_"),
-- not callable with pseudo-type arguments.
CREATE TEMP TABLE fz_fn AS
SELECT p.oid AS fn, p.proname::text AS name, p.pronargs::int AS nargs, p.pronargdefaults::int AS ndefaults,
       p.provariadic <> 0 AS variadic,
       ARRAY(SELECT a::regtype FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(a, o) ORDER BY o) AS argtypes,
       ARRAY(SELECT coalesce(u.n, '') FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                                                  p.proargmodes) WITH ORDINALITY AS u(t, n, m, o)
              WHERE coalesce(u.m, 'i') IN ('i', 'b', 'v') ORDER BY u.o) AS argnames,
       CASE WHEN p.pronargs = 0 THEN 25 ELSE least(400 + 200 * p.pronargs, 1600) END AS planned
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                  AND d.refclassid = 'pg_extension'::regclass
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'carbon_ledger')
 WHERE p.pronamespace = 'carbon'::regnamespace
   AND p.proname !~ '^_'
   AND p.prokind = 'f'
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
   AND NOT EXISTS (SELECT 1 FROM pg_type t
                    WHERE p.oid IN (t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout,
                                    t.typanalyze, t.typsubscript))
   AND NOT EXISTS (SELECT 1 FROM pg_operator o WHERE p.oid IN (o.oprcode, o.oprrest, o.oprjoin))
   AND NOT EXISTS (SELECT 1 FROM pg_amproc a WHERE a.amproc = p.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_aggregate g
                    WHERE p.oid IN (g.aggtransfn, g.aggfinalfn, g.aggcombinefn, g.aggserialfn, g.aggdeserialfn,
                                    g.aggmtransfn, g.aggminvtransfn, g.aggmfinalfn))
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) a JOIN pg_type t ON t.oid = a WHERE t.typtype = 'p');

SELECT ok((SELECT count(*) FROM fz_fn) >= 12, 'the public functions are read from the catalog');
SELECT diag(format('%s functions exercised: %s', (SELECT count(*) FROM fz_fn),
                 (SELECT string_agg(name, ', ' ORDER BY name) FROM fz_fn)));

SELECT is(ARRAY(SELECT unnest(ARRAY['open_account', 'transfer', 'record_behavior', 'process_inbox', 'expire_lots',
                                    'define_methodology', 'set_setting', 'set_issuance_cap', 'calc_reduction',
                                    'balance', 'verify_integrity', 'seal'])
                EXCEPT SELECT name FROM fz_fn),
          '{}'::text[], 'the main functions of api.md are among those exercised');

-- Every function of api.md (and the README's extras) that exists by now is
-- exercised: the catalog filter drops none of them.
SELECT is(ARRAY(SELECT DISTINCT p.proname::text FROM pg_proc p
                 WHERE p.pronamespace = 'carbon'::regnamespace
                   AND p.proname = ANY (ARRAY['grams', 'kg', 'tonnes', 'co2e_grams', 'open_account', 'account_id',
                       'set_account_status', 'balance', 'balance_at', 'define_methodology', 'submit_methodology',
                       'approve_methodology', 'publish_methodology', 'suspend_methodology', 'retire_methodology',
                       'calc_reduction', 'register_source', 'record_behavior', 'process_inbox', 'set_setting',
                       'transfer', 'expire_lots', 'create_offer', 'redeem', 'set_issuance_cap', 'define_asset',
                       'set_exchange_rate', 'exchange', 'register_project', 'publicize_project', 'approve_project',
                       'submit_monitoring', 'verify_monitoring', 'issue_units', 'transfer_units', 'retire_units',
                       'verify_certificate', 'cancel_units', 'retire_serials', 'recall_issuance', 'deposit_cash', 'withdraw_cash', 'place_order',
                       'cancel_order', 'set_reference_price', 'close_market_day', 'verify_integrity', 'seal',
                       'act_as', 'acting_account', 'issue', 'reverse_entry'])
                EXCEPT SELECT name FROM fz_fn),
          '{}'::text[], 'every function of api.md that exists is exercised');

-- ---------------------------------------------------------------- the world

SELECT setseed(0.2026);
SELECT pg_temp.fz_refresh_pools();
SELECT pg_temp.fz_setup();
SELECT pg_temp.fz_refresh_pools();

SELECT is((SELECT count(*) FROM fz_world WHERE phase = 'setup' AND code <> 'ok'), 0::bigint,
          'the world is set up: accounts, methodologies in force, sources, issued value, behaviours');
SELECT diag(format('world set-up failed: %s: %s (%s)', code, left(call, 200), message))
  FROM fz_world WHERE phase = 'setup' AND code <> 'ok';

-- ---------------------------------------------------------------- the calls

-- settings: the settings that differed from their defaults when a call was
-- refused (a refusal may depend on them)
CREATE TEMP TABLE fz_call (n int, name text, as_role text, call text, code text, message text, ms float8,
                           settings text);

-- The schedule: every function `planned` times, in random order.
SELECT setseed(0.4711);
CREATE TEMP TABLE fz_schedule AS
SELECT row_number() OVER (ORDER BY k)::int AS n, fn
  FROM (SELECT fn, random() AS k FROM fz_fn, generate_series(1, planned) ORDER BY fn) s;
ALTER TABLE fz_schedule ADD PRIMARY KEY (n);
ANALYZE fz_schedule;

-- Call n of the schedule, with random arguments, recorded in fz_call.
CREATE PROCEDURE pg_temp.fz_call1(n int) LANGUAGE plpgsql AS $$
DECLARE
  f fz_fn;
  nargs int;
  fit float8;
  args text;
  call text;
  role text;
  roles text[] := ARRAY(SELECT rolname::text FROM pg_roles
                         WHERE rolname IN ('carbon_admin', 'carbon_operator', 'carbon_verifier', 'carbon_trader',
                                           'carbon_merchant', 'carbon_auditor', 'carbon_app') ORDER BY 1);
  c text;
  m text;
  t timestamptz;
  argv text[];
  ia int;
  iser int;
  sv text;
  holder bigint;
BEGIN
  SELECT * INTO f FROM fz_fn WHERE fn = (SELECT fn FROM fz_schedule s WHERE s.n = fz_call1.n);
  -- leave out some trailing arguments that have defaults
  nargs := f.nargs - floor(random() * (f.ndefaults + 1))::int;
  -- half of the calls mostly with fitting arguments, the rest a wild mix
  fit := CASE WHEN random() < 0.5 THEN 0.95 ELSE 0.6 END;
  argv := ARRAY(SELECT pg_temp.fz_arg(f.argnames[k], f.argtypes[k], fit) FROM generate_series(1, nargs) k ORDER BY k);
  -- an account and a serial range (retire_serials): half the time the
  -- account is the one that holds the range's first serial, if anyone does
  ia := array_position(f.argnames, 'account');
  iser := array_position(f.argnames, 'serials');
  IF ia <= nargs AND iser <= nargs AND random() < 0.5 THEN
    BEGIN
      EXECUTE 'SELECT ' || argv[iser] INTO sv;
      SELECT b.account INTO holder
        FROM carbon.parse_serial(sv) s JOIN carbon.project p ON p.code = s.project_code
        JOIN carbon.unit_block b ON b.project = p.id AND b.vintage = s.vintage AND s.first BETWEEN b.first AND b.last
       WHERE b.state = 'held';
      IF holder IS NOT NULL THEN
        argv[ia] := holder || '::bigint';
      END IF;
    EXCEPTION WHEN OTHERS THEN
      NULL;   -- a malformed range: the account stays as drawn
    END;
  END IF;
  SELECT coalesce(string_agg(CASE WHEN f.variadic AND k = f.nargs THEN 'VARIADIC ' ELSE '' END || argv[k], ', '
                             ORDER BY k), '')
    INTO args FROM generate_series(1, nargs) k;
  call := format('SELECT count(*) FROM %I.%I(%s)', 'carbon', f.name, args);
  -- one call in ten as one of the extension's roles rather than the superuser
  role := CASE WHEN random() < 0.1 THEN pg_temp.fz_pick(roles) END;
  c := 'ok';
  m := NULL;
  t := clock_timestamp();
  BEGIN
    IF role IS NOT NULL THEN
      PERFORM set_config('role', role, true);
    END IF;
    EXECUTE call;
    IF role IS NOT NULL THEN
      RESET ROLE;
    END IF;
  EXCEPTION
    WHEN query_canceled THEN   -- the statement timeout: a call that did not return (OTHERS does not catch it)
      GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
  END;
  INSERT INTO fz_call VALUES (n, f.name, role, call, c, m, 1000 * extract(epoch FROM clock_timestamp() - t),
                              CASE WHEN c <> 'ok' THEN (SELECT string_agg(format('%s = %s', name, value), ', ' ORDER BY name)
                                                          FROM carbon.settings WHERE value <> default_value) END);
END $$;

CREATE PROCEDURE pg_temp.fz_refill_p() LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.fz_refill();
END $$;

-- Each call is a statement of its own, so that the timeout applies to each
-- call: 2 s (calls take milliseconds), 60 s for a top-up of the world, 20 s
-- for verify_integrity(), an audit of the whole ledger whose time grows
-- with it (0.7 s on average on a slow machine, a few calls over 2 s).
SET LOCAL statement_timeout = '2s';
SELECT CASE WHEN n % 500 = 0 THEN 'SET LOCAL statement_timeout = ''60s''' END,
       CASE WHEN n % 500 = 0 THEN 'CALL pg_temp.fz_refill_p()' END,
       CASE WHEN n % 500 = 0 THEN 'SET LOCAL statement_timeout = ''2s''' END,
       CASE WHEN (SELECT p.proname FROM pg_proc p WHERE p.oid = fn) = 'verify_integrity' THEN 'SET LOCAL statement_timeout = ''20s''' END,
       format('CALL pg_temp.fz_call1(%s)', n),
       CASE WHEN (SELECT p.proname FROM pg_proc p WHERE p.oid = fn) = 'verify_integrity' THEN 'SET LOCAL statement_timeout = ''2s''' END
  FROM fz_schedule ORDER BY n \gexec
SET LOCAL statement_timeout = 0;

-- ------------------------------------------------------------ the outcomes

SELECT is((SELECT count(*) FROM fz_call), (SELECT sum(planned) FROM fz_fn)::bigint,
          'every planned call was made (no crash, no abort)');
SELECT diag(format('%s calls: %s ok, %s refused; SQLSTATEs seen: %s', count(*), count(*) FILTER (WHERE code = 'ok'),
                 count(*) FILTER (WHERE code <> 'ok'),
                 (SELECT string_agg(format('%s ×%s', code, k), ', ' ORDER BY code)
                    FROM (SELECT code, count(*) k FROM fz_call GROUP BY code) s)))
  FROM fz_call;

SELECT ok((SELECT count(*) FROM fz_call) >= 20000, 'at least 20,000 random calls');

-- Per function: ok / refused, and the SQLSTATEs seen.
SELECT diag(format('%-20s %5s calls %5s ok %5s refused %6s ms  %s', name, count(*), count(*) FILTER (WHERE code = 'ok'),
                   count(*) FILTER (WHERE code <> 'ok'), round(sum(ms)),
                   (SELECT string_agg(format('%s×%s', code, k), ' ' ORDER BY code)
                      FROM (SELECT code, count(*) k FROM fz_call c2 WHERE c2.name = c.name AND code <> 'ok'
                             GROUP BY code) s)))
  FROM fz_call c GROUP BY name ORDER BY name;

SELECT is((SELECT count(*) FROM fz_call WHERE code NOT IN (SELECT code FROM fz_documented)), 0::bigint,
          'every refusal is a SQLSTATE documented in api.md or the README');
SELECT diag(format('undocumented %s from %s (%s calls), e.g. %s%s%s: %s', code, name, k,
                   CASE WHEN settings IS NOT NULL THEN 'with carbon.set_setting(' || settings || ') ' ELSE '' END,
                   CASE WHEN as_role IS NOT NULL THEN 'as ' || as_role || ': ' ELSE '' END,
                   CASE WHEN length(call) > 400 THEN left(call, 400) || format('… (%s characters)', length(call))
                        ELSE call END, message))
  FROM (SELECT DISTINCT ON (code, name) code, name, as_role, call, message, settings,
               count(*) OVER (PARTITION BY code, name) AS k
          FROM fz_call WHERE code NOT IN (SELECT code FROM fz_documented)
         ORDER BY code, name, length(call), n) u
 ORDER BY code, name;

SELECT is((SELECT count(*) FROM fz_call WHERE code LIKE 'XX%'), 0::bigint, 'no internal error (XX000) from any call');

SELECT is((SELECT count(*) FROM fz_call WHERE code = '57014'), 0::bigint,
          'no call hung (none was cancelled by the statement timeout)');
SELECT diag(format('hung: %s (%s calls cancelled after their timeout), e.g. %s', name, count(*), min(call)))
  FROM fz_call WHERE code = '57014' GROUP BY name ORDER BY name;

SELECT is((SELECT count(*) FROM fz_world WHERE code NOT IN (SELECT code FROM fz_documented)), 0::bigint,
          'the calls that topped the world up ended only with documented SQLSTATEs');
SELECT diag(format('world call: %s: %s (%s)', code, left(call, 300), message))
  FROM fz_world WHERE code NOT IN (SELECT code FROM fz_documented);

-- The calls reached past the argument checks: almost every function
-- succeeded at least once, and both outcomes are common overall.
SELECT ok((SELECT count(*) FILTER (WHERE oks > 0) FROM (SELECT name, count(*) FILTER (WHERE code = 'ok') oks
                                                          FROM fz_call GROUP BY name) s)
          >= 0.9 * (SELECT count(*) FROM fz_fn),
          'at least 90% of the functions succeeded on some random calls');
SELECT diag('never succeeded: ' || string_agg(name, ', ' ORDER BY name))
  FROM (SELECT name FROM fz_call GROUP BY name HAVING count(*) FILTER (WHERE code = 'ok') = 0) s
HAVING count(*) > 0;

-- Projects and certified units (api.md §5): every function reached past its
-- checks; those that take a serial accepted the valid ranges and refused
-- the malformed ones (22P02).
SELECT is(ARRAY(SELECT unnest(ARRAY['register_project', 'publicize_project', 'approve_project', 'submit_monitoring',
                                    'verify_monitoring', 'issue_units', 'transfer_units', 'retire_units',
                                    'retire_serials', 'cancel_units', 'recall_issuance', 'verify_certificate',
                                    'certificate', 'tradable_units', 'parse_serial', 'serial_history', 'serial_text',
                                    'working_days'])
                EXCEPT SELECT name FROM fz_call WHERE code = 'ok'),
          '{}'::text[], 'every function of projects and units succeeded on some random call');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY['retire_serials', 'recall_issuance', 'parse_serial', 'serial_history']) f
                 WHERE NOT EXISTS (SELECT 1 FROM fz_call WHERE name = f AND code = 'ok')
                    OR NOT EXISTS (SELECT 1 FROM fz_call WHERE name = f AND code = '22P02')),
          '{}'::text[], 'the functions taking a serial accepted valid ranges and refused malformed ones (22P02)');
SELECT diag(format('%-16s %5s calls: %s', name, sum(k),
                   string_agg(format('%s×%s', code, k), ' ' ORDER BY code)))
  FROM (SELECT name, code, count(*) k FROM fz_call
         WHERE name IN ('retire_serials', 'recall_issuance', 'parse_serial', 'serial_history') GROUP BY 1, 2) s
 GROUP BY name ORDER BY name;

-- The market (api.md §6): every function reached past its checks (orders
-- placed, resting and filled, cancelled, cash in and out, the reference
-- set, days closed), and the book is sound after them: the escrow accounts
-- of each segment hold what its resting orders hold (cash of bids, units of
-- asks in blocks held for each ask), ended orders hold nothing, every
-- order's fills are its trades.
SELECT is(ARRAY(SELECT unnest(ARRAY['deposit_cash', 'withdraw_cash', 'place_order', 'cancel_order',
                                    'set_reference_price', 'close_market_day'])
                EXCEPT SELECT name FROM fz_call WHERE code = 'ok'),
          '{}'::text[], 'every function of the market succeeded on some random call');
SELECT diag(format('market: %s orders (%s), %s trades, %s certificates of buys that retire',
                   (SELECT count(*) FROM carbon.market_order),
                   (SELECT string_agg(format('%s %s', status, k), ', ' ORDER BY status)
                      FROM (SELECT status, count(*) k FROM carbon.market_order GROUP BY 1) s),
                   (SELECT count(*) FROM carbon.trade),
                   (SELECT count(*) FROM carbon.retirement r JOIN carbon.entry e ON e.id = r.entry_id AND e.kind = 'trade')));
SELECT is((SELECT count(*) FROM
             (SELECT b.account, b.asset_id, sum(b.amount) AS amount FROM carbon.balance b
              JOIN carbon.account a ON a.id = b.account
              WHERE a.kind = 'escrow' GROUP BY 1, 2 HAVING sum(b.amount) <> 0) e
           FULL JOIN
             (SELECT x.id AS account, x.asset_id, sum(o.escrow) AS amount
              FROM carbon.market_order o JOIN carbon.account h ON h.id = o.account
              JOIN carbon.account x ON x.kind = 'escrow' AND x.tier = h.tier AND x.region = h.region
               AND x.asset_id = (SELECT id FROM carbon.asset WHERE code = CASE o.side WHEN 'buy' THEN 'CNY' ELSE 'CER' END)
              WHERE o.status IN ('open', 'partially_filled') AND o.escrow > 0 GROUP BY 1, 2) o
           ON o.account = e.account AND o.asset_id = e.asset_id
           WHERE e.amount IS DISTINCT FROM o.amount)
        + (SELECT count(*) FROM (SELECT id, account, escrow FROM carbon.market_order
                                 WHERE side = 'sell' AND status IN ('open', 'partially_filled')) o
           FULL JOIN (SELECT escrow_order, account, sum(last - first + 1) AS tonnes FROM carbon.unit_block
                      WHERE state = 'escrow' GROUP BY 1, 2) b ON b.escrow_order = o.id
           WHERE o.id IS NULL OR b.escrow_order IS NULL OR b.account <> o.account OR b.tonnes <> o.escrow)
        + (SELECT count(*) FROM carbon.market_order o
           LEFT JOIN (SELECT order_id, sum(tonnes) AS tonnes, sum(price * tonnes) AS turnover, sum(fee) AS fees
                      FROM (SELECT buy_order AS order_id, tonnes, price, buyer_fee AS fee FROM carbon.trade
                            UNION ALL SELECT sell_order, tonnes, price, seller_fee FROM carbon.trade) x
                      GROUP BY 1) t ON t.order_id = o.id
           WHERE o.filled <> coalesce(t.tonnes, 0) OR o.turnover <> coalesce(t.turnover, 0) OR o.fees <> coalesce(t.fees, 0)
              OR (o.status IN ('open', 'partially_filled')) <> (o.ended_at IS NULL)),
          0::bigint, 'after the random calls the escrow accounts hold what the resting orders hold, and every order''s fills are its trades');
SELECT diag(format('escrow moved by %s entries of kind %s%s', count(DISTINCT e.id), e.kind,
                   coalesce(' reversing ' || string_agg(DISTINCT r.kind, ', '), '')))
  FROM carbon.posting p JOIN carbon.account a ON a.id = p.account AND a.kind = 'escrow'
  JOIN carbon.entry e ON e.id = p.entry_id LEFT JOIN carbon.entry r ON r.id = e.reverses
 WHERE e.kind NOT IN ('trade', 'order_cancel', 'market_close')
 GROUP BY e.kind;

SELECT is((SELECT count(*) FROM carbon.retirement WHERE NOT carbon.verify_certificate(certificate)), 0::bigint,
          'every retirement certificate verifies after the random calls');

SELECT ok((SELECT count(*) FILTER (WHERE code = 'ok') BETWEEN 0.1 * count(*) AND 0.9 * count(*) FROM fz_call),
          'between 10% and 90% of all calls succeeded');

SELECT ok((SELECT count(*) FROM carbon.entry) > (SELECT count(*) FROM fz_world WHERE code = 'ok' AND call ~ 'carbon\.issue\('),
          'random calls moved value too (more entries than the world''s own issuance)');

SELECT is((SELECT count(*) FROM carbon.verify_integrity() WHERE NOT ok), 0::bigint,
          'verify_integrity() is all ok after the random calls');
SELECT diag(format('verify_integrity: %s: %s', check_name, detail)) FROM carbon.verify_integrity() WHERE NOT ok;

SELECT * FROM finish();
ROLLBACK;
