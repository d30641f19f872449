-- carbon_ledger 0.1, as shipped: the install script of version 0.1, kept so that
-- `CREATE EXTENSION carbon_ledger VERSION '0.1'` and the upgrade test work.  Never edit it.

\echo Use "CREATE EXTENSION carbon_ledger" to load this file. \quit

COMMENT ON SCHEMA carbon IS
  '碳普惠账本 carbon inclusion ledger: co2e type, accounts, points, certified units, market';
-- Roles of api.md §7.  They belong to the cluster: a second database's
-- CREATE EXTENSION reuses them, and DROP EXTENSION leaves them.
DO $roles$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['carbon_admin', 'carbon_operator', 'carbon_verifier', 'carbon_trader',
                           'carbon_merchant', 'carbon_auditor', 'carbon_app'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END
$roles$;
-- ---------------------------------------------------------------------------
-- Type carbon.co2e: an exact signed count of grams of CO2-equivalent.
-- Pure I/O (no table, no setting), so IMMUTABLE STRICT PARALLEL SAFE.
-- ---------------------------------------------------------------------------

CREATE TYPE carbon.co2e;

CREATE FUNCTION carbon.co2e_in(cstring) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_out(carbon.co2e) RETURNS cstring
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_recv(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_send(carbon.co2e) RETURNS bytea
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE carbon.co2e (
  INPUT = carbon.co2e_in,
  OUTPUT = carbon.co2e_out,
  RECEIVE = carbon.co2e_recv,
  SEND = carbon.co2e_send,
  INTERNALLENGTH = 8,
  PASSEDBYVALUE,
  ALIGNMENT = double,
  STORAGE = plain,
  CATEGORY = 'N'
);
COMMENT ON TYPE carbon.co2e IS
  '二氧化碳当量质量（精确到克） exact mass of CO2-equivalent, a signed 64-bit count of grams';

-- Comparisons: co2e is an int8 in memory, so PostgreSQL's own int8
-- comparison, hash and sort support functions serve it unchanged.
CREATE FUNCTION carbon.co2e_eq(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_ne(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_lt(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_le(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_gt(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_ge(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_cmp(carbon.co2e, carbon.co2e) RETURNS integer
  AS 'btint8cmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_sortsupport(internal) RETURNS void
  AS 'btint8sortsupport' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_hash(carbon.co2e) RETURNS integer
  AS 'hashint8' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_hash_extended(carbon.co2e, bigint) RETURNS bigint
  AS 'hashint8extended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_smaller(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'int8smaller' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_larger(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'int8larger' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR carbon.= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_eq,
  COMMUTATOR = OPERATOR(carbon.=), NEGATOR = OPERATOR(carbon.<>),
  RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR carbon.<> (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_ne,
  COMMUTATOR = OPERATOR(carbon.<>), NEGATOR = OPERATOR(carbon.=),
  RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR carbon.< (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_lt,
  COMMUTATOR = OPERATOR(carbon.>), NEGATOR = OPERATOR(carbon.>=),
  RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR carbon.<= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_le,
  COMMUTATOR = OPERATOR(carbon.>=), NEGATOR = OPERATOR(carbon.>),
  RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR carbon.> (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_gt,
  COMMUTATOR = OPERATOR(carbon.<), NEGATOR = OPERATOR(carbon.<=),
  RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR carbon.>= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_ge,
  COMMUTATOR = OPERATOR(carbon.<=), NEGATOR = OPERATOR(carbon.<),
  RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS carbon.co2e_ops DEFAULT FOR TYPE carbon.co2e USING btree AS
  OPERATOR 1 carbon.<,
  OPERATOR 2 carbon.<=,
  OPERATOR 3 carbon.=,
  OPERATOR 4 carbon.>=,
  OPERATOR 5 carbon.>,
  FUNCTION 1 carbon.co2e_cmp(carbon.co2e, carbon.co2e),
  FUNCTION 2 carbon.co2e_sortsupport(internal);

CREATE OPERATOR CLASS carbon.co2e_hash_ops DEFAULT FOR TYPE carbon.co2e USING hash AS
  OPERATOR 1 carbon.=,
  FUNCTION 1 carbon.co2e_hash(carbon.co2e),
  FUNCTION 2 carbon.co2e_hash_extended(carbon.co2e, bigint);

-- Arithmetic, checked in C: an overflow is 22003, never a wrap-around.
CREATE FUNCTION carbon.co2e_pl(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mi(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_um(carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mul_int8(carbon.co2e, bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.int8_mul_co2e(bigint, carbon.co2e) RETURNS carbon.co2e
  AS 'SELECT carbon.co2e_mul_int8($2, $1)' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_int8(carbon.co2e, bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mul_numeric(carbon.co2e, numeric) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.numeric_mul_co2e(numeric, carbon.co2e) RETURNS carbon.co2e
  AS 'SELECT carbon.co2e_mul_numeric($2, $1)' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_numeric(carbon.co2e, numeric) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_co2e(carbon.co2e, carbon.co2e) RETURNS double precision
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR carbon.+ (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_pl, COMMUTATOR = OPERATOR(carbon.+));
CREATE OPERATOR carbon.- (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_mi);
CREATE OPERATOR carbon.- (RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_um);
CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = bigint,
  FUNCTION = carbon.co2e_mul_int8, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = bigint, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.int8_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = numeric,
  FUNCTION = carbon.co2e_mul_numeric, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = numeric, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.numeric_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = bigint,
  FUNCTION = carbon.co2e_div_int8);
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = numeric,
  FUNCTION = carbon.co2e_div_numeric);
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_div_co2e);

-- Helpers.
CREATE FUNCTION carbon.grams(carbon.co2e) RETURNS bigint
  AS 'MODULE_PATHNAME', 'co2e_grams_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_grams(bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME', 'co2e_grams_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.kg(carbon.co2e) RETURNS numeric
  AS 'MODULE_PATHNAME', 'co2e_kg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.tonnes(carbon.co2e) RETURNS numeric
  AS 'MODULE_PATHNAME', 'co2e_tonnes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION carbon.grams(carbon.co2e) IS '克数 the exact number of grams';
COMMENT ON FUNCTION carbon.co2e_grams(bigint) IS '由克数构造 a co2e of the given number of grams';
COMMENT ON FUNCTION carbon.kg(carbon.co2e) IS '千克 the exact value in kilograms';
COMMENT ON FUNCTION carbon.tonnes(carbon.co2e) IS '吨 the exact value in tonnes';

-- Aggregates: sum and avg share one transition (int128 sum + count), so
-- `sum(x), avg(x)` in one query computes it once; both are parallel-safe
-- and support moving windows.
CREATE FUNCTION carbon.co2e_accum(internal, carbon.co2e) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_accum_inv(internal, carbon.co2e) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_combine(internal, internal) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_agg_serialize(internal) RETURNS bytea
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_agg_deserialize(bytea, internal) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_sum_final(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_avg_final(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE carbon.sum(carbon.co2e) (
  SFUNC = carbon.co2e_accum, STYPE = internal, SSPACE = 24,
  FINALFUNC = carbon.co2e_sum_final,
  COMBINEFUNC = carbon.co2e_combine,
  SERIALFUNC = carbon.co2e_agg_serialize, DESERIALFUNC = carbon.co2e_agg_deserialize,
  MSFUNC = carbon.co2e_accum, MINVFUNC = carbon.co2e_accum_inv, MSTYPE = internal,
  MSSPACE = 24, MFINALFUNC = carbon.co2e_sum_final,
  PARALLEL = SAFE);
CREATE AGGREGATE carbon.avg(carbon.co2e) (
  SFUNC = carbon.co2e_accum, STYPE = internal, SSPACE = 24,
  FINALFUNC = carbon.co2e_avg_final,
  COMBINEFUNC = carbon.co2e_combine,
  SERIALFUNC = carbon.co2e_agg_serialize, DESERIALFUNC = carbon.co2e_agg_deserialize,
  MSFUNC = carbon.co2e_accum, MINVFUNC = carbon.co2e_accum_inv, MSTYPE = internal,
  MSSPACE = 24, MFINALFUNC = carbon.co2e_avg_final,
  PARALLEL = SAFE);
CREATE AGGREGATE carbon.min(carbon.co2e) (
  SFUNC = carbon.co2e_smaller, STYPE = carbon.co2e,
  COMBINEFUNC = carbon.co2e_smaller, SORTOP = OPERATOR(carbon.<), PARALLEL = SAFE);
CREATE AGGREGATE carbon.max(carbon.co2e) (
  SFUNC = carbon.co2e_larger, STYPE = carbon.co2e,
  COMBINEFUNC = carbon.co2e_larger, SORTOP = OPERATOR(carbon.>), PARALLEL = SAFE);
COMMENT ON AGGREGATE carbon.sum(carbon.co2e) IS '合计 exact sum; 22003 if it does not fit';
COMMENT ON AGGREGATE carbon.avg(carbon.co2e) IS '平均（截断） mean truncated toward zero';
-- ---------------------------------------------------------------------------
-- Ledger core: assets, accounts, entries, postings, balances.
--
-- Every movement is an entry whose postings sum to zero per asset.  Balances
-- are derived from postings by a C statement trigger (invariants.c), which
-- also refuses unbalanced entries, negative participant balances and postings
-- on frozen or closed accounts.  Entries and postings are append-only.
-- ---------------------------------------------------------------------------

-- Tiers of the carbon inclusion system, each a separately reported sub-ledger.
CREATE FUNCTION carbon._valid_tier(text) RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT $1 IN ('personal', 'enterprise', 'government', 'merchant', 'verifier', 'platform') $$;

CREATE TABLE carbon.asset (
  id          smallint PRIMARY KEY,
  code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z][A-Z0-9_]{1,15}$'),
  kind        text NOT NULL CHECK (kind IN ('points', 'reduction', 'unit', 'cash', 'currency')),
  name        text NOT NULL,
  builtin     boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE carbon.asset_id_seq AS smallint START 100 OWNED BY carbon.asset.id;
ALTER TABLE carbon.asset ALTER COLUMN id SET DEFAULT nextval('carbon.asset_id_seq');
COMMENT ON TABLE carbon.asset IS
  '资产 assets: POINT 碳积分 (1 point), RED 减排量 (1 g), CER 核证减排量 (1 t), CNY 人民币 (1 fen), partner currencies';
INSERT INTO carbon.asset (id, code, kind, name, builtin) VALUES
  (1, 'POINT', 'points',    '碳积分 carbon points',                        true),
  (2, 'RED',   'reduction', '减排量 emission reduction (grams CO2e)',      true),
  (3, 'CER',   'unit',      '核证减排量 certified reduction (tonnes CO2e)', true),
  (4, 'CNY',   'cash',      '人民币 yuan (fen)',                            true);

-- Participant accounts (kind = 'participant') and the system accounts of each
-- sub-ledger segment (asset, tier, region): issuance (negative: what was
-- issued), the sinks expired / redeemed / retired / cancelled, escrow, and
-- clearing (moves between segments).  System accounts are created on demand.
CREATE SEQUENCE carbon.account_id_seq;
CREATE TABLE carbon.account (
  id            bigint PRIMARY KEY DEFAULT nextval('carbon.account_id_seq'),
  kind          text NOT NULL DEFAULT 'participant'
                CHECK (kind IN ('participant', 'issuance', 'expired', 'redeemed', 'retired',
                                'cancelled', 'escrow', 'clearing')),
  tier          text NOT NULL CHECK (carbon._valid_tier(tier)),
  region        text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  asset_id      smallint REFERENCES carbon.asset,
  ref_hash      bytea,
  display_name  text,
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
  opened_at     timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'participant') = (ref_hash IS NOT NULL AND asset_id IS NULL))
);
ALTER SEQUENCE carbon.account_id_seq OWNED BY carbon.account.id;
-- NULLs are distinct: participants have no asset, system accounts no ref_hash.
CREATE UNIQUE INDEX account_participant_key ON carbon.account (tier, ref_hash);
CREATE UNIQUE INDEX account_system_key ON carbon.account (kind, asset_id, tier, region);
CREATE INDEX account_region_idx ON carbon.account (region, tier);
COMMENT ON TABLE carbon.account IS
  '碳账户 accounts: participants (personal, enterprise, government, merchant, verifier, platform) and system accounts per asset, tier and region';
COMMENT ON COLUMN carbon.account.ref_hash IS
  '外部标识的密钥哈希 HMAC-SHA-256 of the external reference (ID-card number, credit code); never the reference itself';

CREATE TABLE carbon.account_status_log (
  account     bigint NOT NULL REFERENCES carbon.account,
  old_status  text NOT NULL,
  new_status  text NOT NULL,
  reason      text NOT NULL,
  changed_by  name NOT NULL DEFAULT session_user,
  changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON carbon.account_status_log (account, changed_at);
COMMENT ON TABLE carbon.account_status_log IS '账户状态变更 account status changes, with reasons';

-- The key of external_ref hashes, one per database, created on first use (so
-- that a restored dump keeps the original key).  Only carbon_admin reads it.
CREATE TABLE carbon.ref_secret (
  id        boolean PRIMARY KEY DEFAULT true CHECK (id),
  hmac_key  bytea NOT NULL CHECK (length(hmac_key) = 32)
);
COMMENT ON TABLE carbon.ref_secret IS '外部标识哈希密钥 per-database HMAC key for external references';

-- Entries and postings: the journal.  Append-only for every role.
CREATE SEQUENCE carbon.entry_id_seq;
CREATE TABLE carbon.entry (
  id          bigint PRIMARY KEY DEFAULT nextval('carbon.entry_id_seq'),
  kind        text NOT NULL,
  memo        text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  reverses    bigint
);
ALTER SEQUENCE carbon.entry_id_seq OWNED BY carbon.entry.id;
-- an entry is reversed at most once (partial: most entries reverse nothing)
CREATE UNIQUE INDEX entry_reverses_key ON carbon.entry (reverses) WHERE reverses IS NOT NULL;
COMMENT ON TABLE carbon.entry IS
  '分录 journal entries: every movement of value; postings of an entry sum to zero per asset';

-- No foreign keys here: the C trigger checks accounts and entries itself,
-- set-based, instead of three row triggers per posting.
CREATE TABLE carbon.posting (
  entry_id    bigint NOT NULL,
  seq         smallint NOT NULL,
  account     bigint NOT NULL,
  asset_id    smallint NOT NULL,
  amount      bigint NOT NULL CHECK (amount <> 0),
  at          timestamptz NOT NULL,
  PRIMARY KEY (entry_id, seq)
);
CREATE INDEX posting_account_idx ON carbon.posting (account, asset_id, entry_id);
COMMENT ON TABLE carbon.posting IS
  '过账 postings: signed amounts in the asset''s minor unit; positive credits the account';

-- Current balances, maintained only by the posting trigger.  Participant
-- accounts have one row per asset (stripe 0), which carries a copy of the
-- account status so that a concurrent freeze is seen atomically.  System
-- accounts are striped by backend, so that issuance and sinks are no hot row.
CREATE TABLE carbon.balance (
  account     bigint NOT NULL,
  asset_id    smallint NOT NULL,
  stripe      smallint NOT NULL,
  amount      bigint NOT NULL,
  status      text NOT NULL DEFAULT 'active',
  PRIMARY KEY (account, asset_id, stripe)
) WITH (fillfactor = 70);
COMMENT ON TABLE carbon.balance IS
  '余额 balances derived from postings (system accounts striped to avoid hot rows)';

-- Retry safety: a request id is claimed per account before value moves.
CREATE TABLE carbon.request (
  account     bigint NOT NULL,
  request_id  text NOT NULL,
  fn          text NOT NULL,
  args        text NOT NULL,
  result      bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, request_id)
);
COMMENT ON TABLE carbon.request IS
  '幂等请求 request ids of value-moving calls, so that a retried call moves nothing twice';

-- The allowed-flow matrix for transfer between participants.  Seeded rows
-- are defaults; carbon_admin adds rows (allowed true or false) that take
-- precedence over a default for the same (from_tier, to_tier, asset).
CREATE TABLE carbon.allowed_flow (
  from_tier   text NOT NULL CHECK (carbon._valid_tier(from_tier)),
  to_tier     text NOT NULL CHECK (carbon._valid_tier(to_tier)),
  asset       text NOT NULL,
  allowed     boolean NOT NULL DEFAULT true,
  seeded      boolean NOT NULL DEFAULT false,
  note        text,
  PRIMARY KEY (from_tier, to_tier, asset, seeded)
);
COMMENT ON TABLE carbon.allowed_flow IS
  '允许的流转 allowed flows between tiers per asset; a row with seeded = false overrides the default';
INSERT INTO carbon.allowed_flow (from_tier, to_tier, asset, seeded, note) VALUES
  ('personal',   'merchant',   'POINT', true, '兑换权益 redeem rights'),
  ('personal',   'government', 'POINT', true, '捐赠 donation'),
  ('enterprise', 'merchant',   'POINT', true, NULL),
  ('enterprise', 'government', 'POINT', true, NULL),
  ('merchant',   'platform',   'POINT', true, '结算 settlement'),
  ('personal',   'platform',   'RED',   true, '归集核证 pooling for certification');
INSERT INTO carbon.allowed_flow (from_tier, to_tier, asset, seeded)
  SELECT f, t, 'CER', true
  FROM unnest(ARRAY['personal', 'enterprise', 'government', 'platform']) f,
       unnest(ARRAY['personal', 'enterprise', 'government', 'platform']) t;
INSERT INTO carbon.allowed_flow (from_tier, to_tier, asset, seeded)
  SELECT f, t, 'CNY', true
  FROM unnest(ARRAY['personal', 'enterprise', 'government', 'merchant', 'verifier', 'platform']) f,
       unnest(ARRAY['personal', 'enterprise', 'government', 'merchant', 'verifier', 'platform']) t;

-- Seals: a hash chain over batches of entries.  A seal covers the entries
-- with prev_max_id < id <= max_id, plus `carried` (ids not yet visible at the
-- previous seal), minus `gaps` (ids not visible now: in flight or rolled
-- back).  Membership needs no per-entry marker and no lock on writers.
CREATE SEQUENCE carbon.seal_id_seq;
CREATE TABLE carbon.seal (
  id           bigint PRIMARY KEY DEFAULT nextval('carbon.seal_id_seq'),
  prev_max_id  bigint NOT NULL,
  max_id       bigint NOT NULL,
  carried      bigint[] NOT NULL DEFAULT '{}',
  gaps         bigint[] NOT NULL DEFAULT '{}',
  entries      bigint NOT NULL,
  prev_hash    bytea NOT NULL,
  hash         bytea NOT NULL,
  snapshot_xmax xid8 NOT NULL,
  sealed_at    timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.seal_id_seq OWNED BY carbon.seal.id;
COMMENT ON TABLE carbon.seal IS '封存 sealed batches of entries in a SHA-256 hash chain';

-- Everything above is user data: pg_dump keeps it (seed rows excluded).
SELECT pg_catalog.pg_extension_config_dump('carbon.asset', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('carbon.asset_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.account', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.account_status_log', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.ref_secret', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.entry', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.posting', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.balance', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.request', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.allowed_flow', 'WHERE NOT seeded');
SELECT pg_catalog.pg_extension_config_dump('carbon.seal', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.seal_id_seq', '');
-- ---------------------------------------------------------------------------
-- Ledger API (api.md §2, §4 transfer, §7).  Every write is a SECURITY
-- DEFINER function with a pinned search_path; the C is in accounts.c,
-- entries.c, invariants.c and carbon_ledger.c.
-- ---------------------------------------------------------------------------

-- Triggers: the posting invariants, and append-only journal tables.
CREATE FUNCTION carbon._posting_check() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_posting_check' LANGUAGE C;
CREATE TRIGGER posting_check AFTER INSERT ON carbon.posting
  REFERENCING NEW TABLE AS new_postings
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._posting_check();

CREATE FUNCTION carbon._append_only() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_append_only' LANGUAGE C;
CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON carbon.entry
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER entry_no_truncate BEFORE TRUNCATE ON carbon.entry
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON carbon.posting
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON carbon.posting
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER seal_append_only BEFORE UPDATE OR DELETE ON carbon.seal
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER seal_no_truncate BEFORE TRUNCATE ON carbon.seal
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER status_log_append_only BEFORE UPDATE OR DELETE ON carbon.account_status_log
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER status_log_no_truncate BEFORE TRUNCATE ON carbon.account_status_log
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();

-- Seeded allowed flows are defaults: override them with your own rows.
CREATE FUNCTION carbon._allowed_flow_guard() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF (TG_OP IN ('UPDATE', 'DELETE') AND OLD.seeded) OR (TG_OP IN ('INSERT', 'UPDATE') AND NEW.seeded) THEN
    RAISE EXCEPTION 'the seeded default flows cannot be changed'
      USING ERRCODE = '42501',
            HINT = 'Insert a row with seeded = false for the same tiers and asset; it takes precedence.';
  END IF;
  IF TG_OP <> 'DELETE' AND NOT EXISTS (SELECT 1 FROM carbon.asset WHERE code = NEW.asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', NEW.asset USING ERRCODE = '22023';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER allowed_flow_guard BEFORE INSERT OR UPDATE OR DELETE ON carbon.allowed_flow
  FOR EACH ROW EXECUTE FUNCTION carbon._allowed_flow_guard();

-- Accounts.
CREATE FUNCTION carbon.open_account(tier text, region text, external_ref text, display_name text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_open_account'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.open_account(text, text, text, text) IS
  '开立碳账户 open an account (idempotent on tier and external reference, which is stored only as a keyed hash)';

CREATE FUNCTION carbon.account_id(tier text, external_ref text)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_account_id'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.account_id(text, text) IS '按外部标识查账户 the account of an external reference, or NULL';

CREATE FUNCTION carbon.set_account_status(account bigint, status text, reason text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_set_account_status'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.set_account_status(bigint, text, text) IS
  '冻结/解冻/注销账户 active, frozen or closed (closing needs zero balances and is final)';

CREATE FUNCTION carbon.balance(account bigint, asset text DEFAULT 'POINT')
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_balance'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.balance(bigint, text) IS '可用余额 what the account can spend now';

CREATE FUNCTION carbon.balance_at(account bigint, asset text, at timestamptz)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_balance_at'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.balance_at(bigint, text, timestamptz) IS '历史余额 the balance as it stood at a time';

CREATE FUNCTION carbon.act_as(account bigint)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_act_as'
  LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.act_as(bigint) IS
  '代表账户操作 the app acts for this account until the end of the current transaction';

CREATE FUNCTION carbon.acting_account()
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_acting_account_sql'
  LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION carbon.acting_account() IS 'the account set by act_as() in this transaction, or NULL';

-- Assets.
CREATE FUNCTION carbon.define_asset(code text, kind text, name text)
  RETURNS void AS 'MODULE_PATHNAME', 'ledger_define_asset'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.define_asset(text, text, text) IS
  '定义合作方资产 a partner currency (kind currency) or another city''s points (kind points)';

-- Moving value.
CREATE FUNCTION carbon.transfer(from_account bigint, to_account bigint, asset text, amount bigint,
                                memo text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_transfer'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.transfer(bigint, bigint, text, bigint, text, text) IS
  '转账 move value between participants, subject to carbon.allowed_flow; returns the entry id';

CREATE FUNCTION carbon.issue(account bigint, asset text, amount bigint,
                             memo text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_issue'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.issue(bigint, text, bigint, text, text) IS
  '签发 administrative issuance from the segment''s issuance account; returns the entry id';

CREATE FUNCTION carbon.reverse_entry(entry bigint, memo text)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_reverse_entry'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.reverse_entry(bigint, text) IS
  '冲正 post the exact negation of an entry (at most once); ledger rows are never changed';
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
  PERFORM pg_advisory_xact_lock(hashtext('carbon_ledger.seal'));
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
                WHERE a.kind = 'participant' AND x.asset_id IN (1, 2) GROUP BY 1, 2) b
          FULL JOIN (SELECT account, asset_id, sum(remaining) AS total FROM carbon.lot GROUP BY 1, 2) l
            ON l.account = b.account AND l.asset_id = b.asset_id
          WHERE coalesce(b.total, 0) <> coalesce(l.total, 0)
          ORDER BY 1, 2 LIMIT 20) u;
  check_name := 'lots_match_balances'; ok := n = 0;
  detail := CASE WHEN n = 0 THEN 'every POINT and RED balance is held in lots' ELSE d END;
  RETURN NEXT;

  -- 8. seals: each hash recomputes from the rows and links to the one before
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
  '完整性校验 every check of the ledger: balanced entries and segments, balances = postings, signs, supply, seals';
-- ---------------------------------------------------------------------------
-- Citizens' side: settings, methodologies, sources, behaviours, lots, caps
-- (api.md §3, §4).
-- ---------------------------------------------------------------------------

-- Settings: only what an operator changed is stored (and dumped); the view
-- carbon.settings shows every setting with its default.
CREATE TABLE carbon.setting (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  changed_by  name NOT NULL DEFAULT session_user,
  changed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carbon.setting IS '设置 settings changed from their defaults';

CREATE VIEW carbon.settings AS
  SELECT d.name, coalesce(s.value, d.default_value) AS value, d.default_value,
         s.name IS NULL AS is_default, d.description
  FROM (VALUES
    ('points_per_kg',     '100',              '每千克减排量折算积分 points per kg CO2e'),
    ('points_validity',   'end_of_next_year', '积分有效期 end_of_next_year, or an interval such as 1 year'),
    ('acceptance_window', '7 days',           '行为受理时限 how old an event may be when reported'),
    ('timezone',          'Asia/Shanghai',    '本地时区 local time zone for days, months and expiry')
  ) AS d(name, default_value, description)
  LEFT JOIN carbon.setting s USING (name);
COMMENT ON VIEW carbon.settings IS '设置 every setting, its value and its default';

-- Methodologies: versioned rules turning activity into a reduction.
CREATE TABLE carbon.methodology (
  code            text NOT NULL CHECK (code <> ''),
  version         int NOT NULL CHECK (version >= 1),
  title           text NOT NULL,
  class           text NOT NULL CHECK (class IN ('I', 'II')),
  scenario        text NOT NULL CHECK (scenario <> ''),
  formula         text NOT NULL CHECK (formula IN ('distance_substitution', 'per_unit', 'personal_baseline', 'flat')),
  params          jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'submitted', 'approved', 'published', 'suspended', 'retired')),
  reviewer        text,
  effective_from  timestamptz,
  defined_at      timestamptz NOT NULL DEFAULT now(),
  status_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (code, version)
);
CREATE INDEX methodology_in_force_idx ON carbon.methodology (code, effective_from DESC)
  WHERE status = 'published';
COMMENT ON TABLE carbon.methodology IS
  '方法学 methodologies: draft → submitted → approved → published (→ suspended) → retired; published params are frozen';

-- Sources: scenario operators and the scenarios they may report.
CREATE TABLE carbon.source (
  source         text PRIMARY KEY CHECK (source <> ''),
  scenarios      text[] NOT NULL,
  operator_role  name,
  registered_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carbon.source IS '场景运营方 scenario operators (metro company, bike-share firm, recycling station)';

-- Behaviours: every reported event, with its outcome.  (source, event_id)
-- is unique: the same event is never counted twice.
CREATE SEQUENCE carbon.behavior_id_seq;
CREATE TABLE carbon.behavior (
  id           bigint PRIMARY KEY DEFAULT nextval('carbon.behavior_id_seq'),
  source       text COLLATE "C" NOT NULL,    -- identifiers: compared byte by byte,
  event_id     text COLLATE "C" NOT NULL,    -- not by the database's locale
  account      bigint,
  methodology  text,
  version      int,
  scenario     text,
  activity     numeric,
  occurred_at  timestamptz,
  local_day    date,
  attrs        jsonb,
  status       text NOT NULL CHECK (status IN ('accepted', 'capped', 'rejected')),
  reduction    carbon.co2e NOT NULL,
  points       bigint NOT NULL,
  reason       text,
  entry_id     bigint,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, event_id)
);
ALTER SEQUENCE carbon.behavior_id_seq OWNED BY carbon.behavior.id;
CREATE INDEX behavior_account_idx ON carbon.behavior (account, occurred_at);
COMMENT ON TABLE carbon.behavior IS
  '低碳行为 reported low-carbon behaviour: accepted, capped or rejected (with the reason); duplicates are answered, not stored';

-- Bulk intake: sources COPY rows here; process_inbox() consumes them in
-- inbox order and records each exactly as record_behavior would.
CREATE SEQUENCE carbon.behavior_inbox_seq;
CREATE TABLE carbon.behavior_inbox (
  source       text,
  event_id     text,
  account      bigint,
  methodology  text,
  activity     numeric,
  occurred_at  timestamptz,
  attrs        jsonb DEFAULT '{}',
  seq          bigint NOT NULL DEFAULT nextval('carbon.behavior_inbox_seq'),
  received_at  timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE carbon.behavior_inbox_seq OWNED BY carbon.behavior_inbox.seq;
CREATE INDEX behavior_inbox_seq_idx ON carbon.behavior_inbox (seq);
COMMENT ON TABLE carbon.behavior_inbox IS
  '批量行为收件箱 bulk intake: COPY behaviours here, then call carbon.process_inbox()';

-- Per account, scenario and local day: the reduction granted so far (daily caps).
CREATE TABLE carbon.daily_usage (
  account     bigint NOT NULL,
  scenario    text NOT NULL,
  day         date NOT NULL,
  used        bigint NOT NULL,
  last_grant  bigint NOT NULL,
  PRIMARY KEY (account, scenario, day)
);
COMMENT ON TABLE carbon.daily_usage IS '每日上限用量 reduction granted per account, scenario and local day';

-- The sub-point remainder of conversions, per account, in 1/1000 point.
CREATE TABLE carbon.points_carry (
  account      bigint PRIMARY KEY,
  milli        bigint NOT NULL CHECK (milli >= 0 AND milli < 1000),
  last_points  bigint NOT NULL
);
COMMENT ON TABLE carbon.points_carry IS '积分折算余数 the sub-point remainder carried per account (1/1000 point)';

-- Lots: credited points and reductions with their expiry.  For every
-- participant and lot asset (POINT, RED), the remaining amounts of its lots
-- equal its balance.
CREATE SEQUENCE carbon.lot_id_seq;
CREATE TABLE carbon.lot (
  id          bigint PRIMARY KEY DEFAULT nextval('carbon.lot_id_seq'),
  account     bigint NOT NULL,
  asset_id    smallint NOT NULL,
  expires_at  timestamptz NOT NULL,
  original    bigint NOT NULL CHECK (original > 0),
  remaining   bigint NOT NULL CHECK (remaining >= 0 AND remaining <= original),
  entry_id    bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
ALTER SEQUENCE carbon.lot_id_seq OWNED BY carbon.lot.id;
CREATE UNIQUE INDEX lot_key ON carbon.lot (account, asset_id, expires_at);
-- No index on expires_at: expire_lots walks lot_key (the expiry is in the
-- key, checked inside the index), so that an account's expired lots come
-- together, and every credit that opens a lot writes one index entry less.
-- An expired lot is deleted once its remainder is in the expired sink.
COMMENT ON TABLE carbon.lot IS '积分批次 lots of points and reductions with their expiry; spent earliest-expiry first';

-- Yearly issuance caps per asset, tier and region (碳积分总量控制).
CREATE TABLE carbon.issuance_cap (
  asset    text NOT NULL,
  tier     text NOT NULL CHECK (carbon._valid_tier(tier)),
  region   text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  year     int NOT NULL CHECK (year BETWEEN 2000 AND 2200),
  cap      bigint NOT NULL CHECK (cap >= 0),
  issued   bigint NOT NULL DEFAULT 0 CHECK (issued >= 0),
  PRIMARY KEY (asset, tier, region, year)
);
COMMENT ON TABLE carbon.issuance_cap IS '发行总量上限 yearly issuance caps per asset, tier and region, and what was issued under them';

SELECT pg_catalog.pg_extension_config_dump('carbon.setting', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.methodology', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.source', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_inbox', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_inbox_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.daily_usage', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.points_carry', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.lot', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.lot_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.issuance_cap', '');
-- ---------------------------------------------------------------------------
-- Citizens' side API: settings, methodologies, sources, behaviours, lots,
-- caps (api.md §3, §4).  Lifecycle glue in PL/pgSQL; the calculations,
-- record_behavior, process_inbox and expire_lots in C (methodology.c,
-- behavior.c, lots.c).
-- ---------------------------------------------------------------------------

-- Settings.
CREATE FUNCTION carbon.set_setting(name text, value text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  n numeric;
  iv interval;
BEGIN
  IF name IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'name and value must not be null' USING ERRCODE = '22004';
  END IF;
  CASE name
    WHEN 'points_per_kg' THEN
      IF value !~ '^[0-9]{1,9}$' OR value::bigint = 0 THEN
        RAISE EXCEPTION 'points_per_kg must be a positive whole number, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'points_validity' THEN
      IF value <> 'end_of_next_year' THEN
        BEGIN
          iv := value::interval;
        EXCEPTION WHEN OTHERS THEN
          RAISE EXCEPTION 'points_validity must be end_of_next_year or an interval, not "%"', value
            USING ERRCODE = '22023';
        END;
        IF iv <= interval '0' OR iv > interval '100 years' THEN
          RAISE EXCEPTION 'points_validity must be a positive interval of at most 100 years' USING ERRCODE = '22023';
        END IF;
      END IF;
    WHEN 'acceptance_window' THEN
      BEGIN
        iv := value::interval;
      EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'acceptance_window must be an interval, not "%"', value USING ERRCODE = '22023';
      END;
      IF iv < interval '0' OR iv > interval '100 years' THEN
        RAISE EXCEPTION 'acceptance_window must be between 0 and 100 years' USING ERRCODE = '22023';
      END IF;
    WHEN 'timezone' THEN
      IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE pg_timezone_names.name = value) THEN
        RAISE EXCEPTION 'unknown time zone "%"', value USING ERRCODE = '22023',
          HINT = 'Use a name from pg_timezone_names, such as Asia/Shanghai.';
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown setting "%"', name USING ERRCODE = '22023',
        HINT = 'The settings are listed in carbon.settings.';
  END CASE;
  INSERT INTO carbon.setting AS s (name, value) VALUES (set_setting.name, set_setting.value)
  ON CONFLICT ON CONSTRAINT setting_pkey
  DO UPDATE SET value = excluded.value, changed_by = session_user, changed_at = now();
END $$;
COMMENT ON FUNCTION carbon.set_setting(text, text) IS '修改设置 change a setting (see carbon.settings)';

-- Methodologies.
CREATE FUNCTION carbon._check_params(formula text, params jsonb) RETURNS void
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  required text[];
  k text;
  v jsonb;
  n numeric;
BEGIN
  required := CASE formula
    WHEN 'distance_substitution' THEN ARRAY['baseline_g_per_pkm', 'project_g_per_pkm']
    WHEN 'per_unit' THEN ARRAY['g_per_unit']
    WHEN 'personal_baseline' THEN ARRAY['baseline', 'g_per_unit']
    WHEN 'flat' THEN ARRAY['g_per_event'] END;
  IF required IS NULL THEN
    RAISE EXCEPTION 'unknown formula "%"', formula USING ERRCODE = '22023',
      HINT = 'Formulas are distance_substitution, per_unit, personal_baseline and flat.';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  FOREACH k IN ARRAY required LOOP
    IF NOT params ? k THEN
      RAISE EXCEPTION 'parameter "%" is missing', k USING ERRCODE = '22023',
        DETAIL = format('Formula %s needs %s.', formula, array_to_string(required, ', '));
    END IF;
  END LOOP;
  FOREACH k IN ARRAY required || ARRAY['daily_cap_g', 'max_activity'] LOOP
    v := params -> k;
    CONTINUE WHEN v IS NULL;
    IF jsonb_typeof(v) <> 'number' THEN
      RAISE EXCEPTION 'parameter "%" must be a number', k USING ERRCODE = '22023';
    END IF;
    n := v::text::numeric;
    IF n < 0 THEN
      RAISE EXCEPTION 'parameter "%" must not be negative', k USING ERRCODE = '22023';
    END IF;
    IF length(replace(trim(leading '0' FROM replace(n::text, '.', '')), '-', '')) > 18 THEN
      RAISE EXCEPTION 'parameter "%" has more than 18 significant digits', k USING ERRCODE = '22023';
    END IF;
    IF k = 'daily_cap_g' AND n <> trunc(n) THEN
      RAISE EXCEPTION 'parameter "daily_cap_g" must be a whole number of grams' USING ERRCODE = '22023';
    END IF;
  END LOOP;
  IF formula = 'distance_substitution'
     AND (params ->> 'baseline_g_per_pkm')::numeric < (params ->> 'project_g_per_pkm')::numeric THEN
    RAISE EXCEPTION 'parameter "project_g_per_pkm" exceeds "baseline_g_per_pkm"' USING ERRCODE = '22023',
      DETAIL = 'The project must emit less than the baseline it replaces.';
  END IF;
END $$;

CREATE FUNCTION carbon._methodology(p_code text, p_version int) RETURNS carbon.methodology
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  m carbon.methodology;
BEGIN
  SELECT * INTO m FROM carbon.methodology WHERE code = p_code AND version = p_version FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'methodology % version % does not exist', p_code, p_version USING ERRCODE = '22023';
  END IF;
  RETURN m;
END $$;

CREATE FUNCTION carbon._methodology_step(p_code text, p_version int, p_from text[], p_to text,
                                         p_reviewer text DEFAULT NULL, p_effective timestamptz DEFAULT NULL)
  RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  m carbon.methodology := carbon._methodology(p_code, p_version);
BEGIN
  IF NOT m.status = ANY (p_from) THEN
    RAISE EXCEPTION 'methodology % version % is %, so it cannot become %', p_code, p_version, m.status, p_to
      USING ERRCODE = 'CL007',
            HINT = 'The lifecycle is draft → submitted → approved → published (→ suspended) → retired.';
  END IF;
  UPDATE carbon.methodology
     SET status = p_to, status_at = now(),
         reviewer = coalesce(p_reviewer, reviewer),
         effective_from = coalesce(p_effective, effective_from)
   WHERE code = p_code AND version = p_version;
END $$;

CREATE FUNCTION carbon.define_methodology(code text, version int, title text, class text, scenario text,
                                          formula text, params jsonb) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  existing text;
BEGIN
  IF code IS NULL OR version IS NULL OR title IS NULL OR class IS NULL OR scenario IS NULL
     OR formula IS NULL OR params IS NULL THEN
    RAISE EXCEPTION 'no argument of define_methodology may be null' USING ERRCODE = '22004';
  END IF;
  IF code = '' OR scenario = '' OR title = '' THEN
    RAISE EXCEPTION 'code, title and scenario must not be empty' USING ERRCODE = '22023';
  END IF;
  IF octet_length(code) > 63 OR octet_length(scenario) > 63 THEN
    RAISE EXCEPTION 'code and scenario are at most 63 bytes' USING ERRCODE = '22023';
  END IF;
  IF version < 1 THEN
    RAISE EXCEPTION 'version must be 1 or more' USING ERRCODE = '22023';
  END IF;
  IF class NOT IN ('I', 'II') THEN
    RAISE EXCEPTION 'unknown methodology class "%"', class USING ERRCODE = '22023',
      HINT = 'Class I reductions may be traded; class II may not.';
  END IF;
  PERFORM carbon._check_params(formula, params);
  SELECT m.status INTO existing FROM carbon.methodology m
   WHERE m.code = define_methodology.code AND m.version = define_methodology.version FOR UPDATE;
  IF existing IS NOT NULL AND existing <> 'draft' THEN
    RAISE EXCEPTION 'methodology % version % is %; its definition is frozen', code, version, existing
      USING ERRCODE = 'CL007', HINT = 'Define a new version instead.';
  END IF;
  INSERT INTO carbon.methodology AS m (code, version, title, class, scenario, formula, params)
  VALUES (code, version, title, class, scenario, formula, params)
  ON CONFLICT ON CONSTRAINT methodology_pkey DO UPDATE
    SET title = excluded.title, class = excluded.class, scenario = excluded.scenario,
        formula = excluded.formula, params = excluded.params, defined_at = now();
END $$;
COMMENT ON FUNCTION carbon.define_methodology(text, int, text, text, text, text, jsonb) IS
  '定义方法学草案 define (or redefine) a draft methodology version';

CREATE FUNCTION carbon.submit_methodology(code text, version int) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
  SELECT carbon._methodology_step(code, version, ARRAY['draft'], 'submitted')
$$;
CREATE FUNCTION carbon.approve_methodology(code text, version int, reviewer text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF reviewer IS NULL OR reviewer = '' THEN
    RAISE EXCEPTION 'an approval names its reviewer' USING ERRCODE = '22023';
  END IF;
  PERFORM carbon._methodology_step(code, version, ARRAY['submitted'], 'approved', reviewer);
END $$;
CREATE FUNCTION carbon.publish_methodology(code text, version int, effective_from timestamptz) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF effective_from IS NULL THEN
    RAISE EXCEPTION 'effective_from must not be null' USING ERRCODE = '22004';
  END IF;
  PERFORM carbon._methodology_step(code, version, ARRAY['approved', 'suspended'], 'published', NULL, effective_from);
END $$;
CREATE FUNCTION carbon.suspend_methodology(code text, version int) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
  SELECT carbon._methodology_step(code, version, ARRAY['published'], 'suspended')
$$;
CREATE FUNCTION carbon.retire_methodology(code text, version int) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
  SELECT carbon._methodology_step(code, version, ARRAY['published', 'suspended'], 'retired')
$$;
COMMENT ON FUNCTION carbon.publish_methodology(text, int, timestamptz) IS
  '发布方法学 publish (or reinstate) a version; in force for events from effective_from';

-- A published version's definition is frozen, whoever writes.
CREATE FUNCTION carbon._methodology_frozen() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF OLD.status <> 'draft' AND (NEW.params, NEW.formula, NEW.class, NEW.scenario, NEW.code, NEW.version)
       IS DISTINCT FROM (OLD.params, OLD.formula, OLD.class, OLD.scenario, OLD.code, OLD.version) THEN
    RAISE EXCEPTION 'methodology % version % is %; its definition is frozen', OLD.code, OLD.version, OLD.status
      USING ERRCODE = 'CL007';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER methodology_frozen BEFORE UPDATE ON carbon.methodology
  FOR EACH ROW EXECUTE FUNCTION carbon._methodology_frozen();

CREATE FUNCTION carbon.calc_reduction(methodology text, activity numeric, attrs jsonb DEFAULT '{}',
                                      at timestamptz DEFAULT now())
  RETURNS carbon.co2e AS 'MODULE_PATHNAME', 'ledger_calc_reduction'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.calc_reduction(text, numeric, jsonb, timestamptz) IS
  '计算减排量 the reduction of an activity under the version in force at `at` (no caps), rounded down to the gram';

-- Sources.
CREATE FUNCTION carbon.register_source(source text, scenarios text[], operator_role name DEFAULT NULL)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF source IS NULL OR source = '' THEN
    RAISE EXCEPTION 'a source needs a name' USING ERRCODE = '22023';
  END IF;
  IF octet_length(source) > 128 THEN
    RAISE EXCEPTION 'a source name is at most 128 bytes' USING ERRCODE = '22023';
  END IF;
  IF scenarios IS NULL OR cardinality(scenarios) = 0 OR array_position(scenarios, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'a source reports at least one scenario' USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(scenarios) sc WHERE octet_length(sc) > 63) THEN
    RAISE EXCEPTION 'a scenario is at most 63 bytes' USING ERRCODE = '22023';
  END IF;
  IF operator_role IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = operator_role) THEN
    RAISE EXCEPTION 'role "%" does not exist', operator_role USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.source AS s (source, scenarios, operator_role)
  VALUES (register_source.source, register_source.scenarios, register_source.operator_role)
  ON CONFLICT ON CONSTRAINT source_pkey
  DO UPDATE SET scenarios = excluded.scenarios, operator_role = excluded.operator_role;
END $$;
COMMENT ON FUNCTION carbon.register_source(text, text[], name) IS
  '登记场景运营方 register a scenario operator, the scenarios it may report and the role that reports for it';

-- Behaviours.
CREATE FUNCTION carbon.record_behavior(source text, event_id text, account bigint, methodology text,
                                       activity numeric, occurred_at timestamptz, attrs jsonb DEFAULT '{}')
  RETURNS TABLE (behavior_id bigint, status text, reduction carbon.co2e, points bigint, reason text)
  AS 'MODULE_PATHNAME', 'ledger_record_behavior'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb) IS
  '记录低碳行为 record one event: accepted, capped, rejected (with reason) or duplicate';

CREATE FUNCTION carbon.process_inbox(max_rows int DEFAULT NULL)
  RETURNS TABLE (accepted bigint, capped bigint, rejected bigint, duplicate bigint)
  AS 'MODULE_PATHNAME', 'ledger_process_inbox'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp
  -- a long call: tables it writes grow from empty, and a plan re-made after
  -- autovacuum's ANALYZE (which cannot see our uncommitted rows) must not
  -- turn key lookups into sequential scans
  SET enable_seqscan = off;
COMMENT ON FUNCTION carbon.process_inbox(int) IS
  '处理批量行为 record the rows of carbon.behavior_inbox in order, exactly as record_behavior would';

-- Lots.
CREATE FUNCTION carbon.expire_lots(as_of timestamptz DEFAULT now())
  RETURNS TABLE (lots bigint, points bigint, reduction carbon.co2e)
  AS 'MODULE_PATHNAME', 'ledger_expire_lots'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp
  SET enable_seqscan = off;
COMMENT ON FUNCTION carbon.expire_lots(timestamptz) IS
  '积分过期 move what is left of every lot expired by as_of to the expired sink; idempotent';

-- Issuance caps.
CREATE FUNCTION carbon.set_issuance_cap(asset text, tier text, region text, year int, cap bigint)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  tz text := (SELECT value FROM carbon.settings WHERE name = 'timezone');
  already bigint;
BEGIN
  IF asset IS NULL OR tier IS NULL OR region IS NULL OR year IS NULL OR cap IS NULL THEN
    RAISE EXCEPTION 'no argument of set_issuance_cap may be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.asset a WHERE a.code = set_issuance_cap.asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', asset USING ERRCODE = '22023';
  END IF;
  IF NOT carbon._valid_tier(tier) THEN
    RAISE EXCEPTION 'unknown tier "%"', tier USING ERRCODE = '22023';
  END IF;
  IF region !~ '^[0-9]{6}$' THEN
    RAISE EXCEPTION 'malformed region "%"', region USING ERRCODE = '22023';
  END IF;
  IF year NOT BETWEEN 2000 AND 2200 OR cap < 0 THEN
    RAISE EXCEPTION 'a cap is a non-negative amount for a year between 2000 and 2200' USING ERRCODE = '22023';
  END IF;
  -- a new cap counts what was already issued that (local) year
  SELECT coalesce(-sum(p.amount), 0) INTO already
    FROM carbon.account s JOIN carbon.asset a ON a.id = s.asset_id
    JOIN carbon.posting p ON p.account = s.id
   WHERE s.kind = 'issuance' AND a.code = set_issuance_cap.asset AND s.tier = set_issuance_cap.tier
     AND s.region = set_issuance_cap.region
     AND extract(year FROM p.at AT TIME ZONE tz) = set_issuance_cap.year;
  INSERT INTO carbon.issuance_cap AS c (asset, tier, region, year, cap, issued)
  VALUES (asset, tier, region, year, cap, greatest(already, 0))
  ON CONFLICT ON CONSTRAINT issuance_cap_pkey DO UPDATE SET cap = excluded.cap;
END $$;
COMMENT ON FUNCTION carbon.set_issuance_cap(text, text, text, int, bigint) IS
  '设置发行总量上限 yearly cap on issuance of an asset to a tier in a region';
-- ---------------------------------------------------------------------------
-- Reporting views (api.md §7), 中英文注释.  security_invoker: row-level
-- security applies to the reader (an app sees its acting account only).
-- ---------------------------------------------------------------------------

CREATE VIEW carbon.v_account_statement WITH (security_invoker = true) AS
  SELECT p.account, p.entry_id, p.at, s.code AS asset, p.amount,
         sum(p.amount) OVER (PARTITION BY p.account, p.asset_id ORDER BY p.entry_id, p.seq) AS balance_after,
         e.kind, e.memo
  FROM carbon.posting p
  JOIN carbon.entry e ON e.id = p.entry_id
  JOIN carbon.asset s ON s.id = p.asset_id;
COMMENT ON VIEW carbon.v_account_statement IS
  '账户流水 account statement: every posting with the balance after it (filter by account)';

CREATE VIEW carbon.v_points_expiring WITH (security_invoker = true) AS
  -- a lot expiring at local midnight of 1 January counts for December
  SELECT date_trunc('month', (l.expires_at AT TIME ZONE tz.value) - interval '1 microsecond')::date AS month,
         a.region, a.tier, sum(l.remaining)::bigint AS points
  FROM carbon.lot l
  JOIN carbon.account a ON a.id = l.account
  CROSS JOIN (SELECT value FROM carbon.settings WHERE name = 'timezone') tz
  WHERE l.asset_id = 1 AND l.remaining > 0
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_points_expiring IS
  '即将过期积分 points still held, by the month (local) in which they expire, region and tier';

CREATE VIEW carbon.v_reduction_monthly WITH (security_invoker = true) AS
  SELECT date_trunc('month', b.local_day)::date AS month, a.region, b.scenario, b.methodology,
         count(*) AS events, count(DISTINCT b.account) AS participants,
         carbon.sum(b.reduction) AS reduction
  FROM carbon.behavior b
  JOIN carbon.account a ON a.id = b.account
  WHERE b.status IN ('accepted', 'capped')
  GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW carbon.v_reduction_monthly IS
  '月度减排量 reductions credited per month (local), region, scenario and methodology';

-- Supply per asset, tier and region, from the segment's accounts.
CREATE VIEW carbon.v_supply WITH (security_invoker = true) AS
  SELECT s.code AS asset, a.tier, a.region,
         coalesce(-sum(b.amount) FILTER (WHERE a.kind = 'issuance'), 0)::bigint AS issued,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'participant'), 0)::bigint AS outstanding,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'redeemed'), 0)::bigint AS redeemed,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'expired'), 0)::bigint AS expired,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'retired'), 0)::bigint AS retired,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'cancelled'), 0)::bigint AS cancelled,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'escrow'), 0)::bigint AS escrow,
         coalesce(sum(b.amount) FILTER (WHERE a.kind = 'clearing'), 0)::bigint AS moved_out
  FROM carbon.balance b
  JOIN carbon.account a ON a.id = b.account
  JOIN carbon.asset s ON s.id = b.asset_id
  GROUP BY 1, 2, 3;
COMMENT ON VIEW carbon.v_supply IS
  '供应量 per asset, tier and region: issued, outstanding (held by participants), redeemed, expired, retired, cancelled; '
  'escrow and moved_out (net moved to other tiers or regions) close the identity '
  'outstanding + escrow = issued - redeemed - expired - retired - cancelled - moved_out';
-- ---------------------------------------------------------------------------
-- Privileges and row-level security (api.md §7).
--
-- Nobody but the extension owner writes a ledger table: every write goes
-- through a SECURITY DEFINER function.  Functions are not executable by
-- PUBLIC unless they only read the type or the caller's own rows.
-- ---------------------------------------------------------------------------

GRANT USAGE ON SCHEMA carbon TO PUBLIC;   -- the co2e type and its operators are for everyone
REVOKE ALL ON ALL TABLES IN SCHEMA carbon FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA carbon FROM PUBLIC;

-- Ledger functions: nothing for PUBLIC, then per role.
REVOKE EXECUTE ON FUNCTION
  carbon.open_account(text, text, text, text), carbon.account_id(text, text),
  carbon.set_account_status(bigint, text, text), carbon.balance(bigint, text),
  carbon.balance_at(bigint, text, timestamptz), carbon.act_as(bigint),
  carbon.define_asset(text, text, text),
  carbon.transfer(bigint, bigint, text, bigint, text, text),
  carbon.issue(bigint, text, bigint, text, text), carbon.reverse_entry(bigint, text),
  carbon.seal(), carbon.verify_integrity(),
  carbon._posting_check(), carbon._append_only(), carbon._allowed_flow_guard(),
  carbon._entry_text(bigint[]), carbon._seal_members(carbon.seal)
FROM PUBLIC;

-- carbon_admin: runs the system.
GRANT EXECUTE ON FUNCTION
  carbon.open_account(text, text, text, text), carbon.account_id(text, text),
  carbon.set_account_status(bigint, text, text), carbon.balance(bigint, text),
  carbon.balance_at(bigint, text, timestamptz), carbon.act_as(bigint),
  carbon.define_asset(text, text, text),
  carbon.transfer(bigint, bigint, text, bigint, text, text),
  carbon.issue(bigint, text, bigint, text, text), carbon.reverse_entry(bigint, text),
  carbon.seal(), carbon.verify_integrity()
TO carbon_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA carbon TO carbon_admin;
GRANT INSERT, UPDATE, DELETE ON carbon.allowed_flow TO carbon_admin;

-- carbon_auditor: reads everything (but the HMAC key), writes nothing.
GRANT EXECUTE ON FUNCTION
  carbon.balance(bigint, text), carbon.balance_at(bigint, text, timestamptz),
  carbon.verify_integrity(), carbon.account_id(text, text)
TO carbon_auditor;
GRANT SELECT ON carbon.asset, carbon.account, carbon.account_status_log, carbon.entry,
  carbon.posting, carbon.balance, carbon.request, carbon.allowed_flow, carbon.seal
TO carbon_auditor;

-- carbon_app (citizen app backend), carbon_merchant, carbon_trader: act for
-- one account per transaction (act_as) and move only its value.
GRANT EXECUTE ON FUNCTION
  carbon.open_account(text, text, text, text), carbon.account_id(text, text),
  carbon.balance(bigint, text), carbon.balance_at(bigint, text, timestamptz),
  carbon.act_as(bigint), carbon.transfer(bigint, bigint, text, bigint, text, text)
TO carbon_app;
GRANT EXECUTE ON FUNCTION
  carbon.balance(bigint, text), carbon.balance_at(bigint, text, timestamptz),
  carbon.act_as(bigint), carbon.transfer(bigint, bigint, text, bigint, text, text)
TO carbon_merchant, carbon_trader;
GRANT SELECT ON carbon.asset, carbon.allowed_flow TO carbon_app, carbon_merchant, carbon_trader,
  carbon_operator, carbon_verifier;
GRANT SELECT ON carbon.account, carbon.entry, carbon.posting, carbon.balance
  TO carbon_app, carbon_merchant, carbon_trader;

-- Row-level security: members of the acting roles see the acting account's
-- rows only, and nothing without act_as(); admins and auditors see all.
-- (carbon._account_rls is reused below for the citizens' side tables.)
CREATE FUNCTION carbon._account_rls(tables text[], account_column text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('ALTER TABLE carbon.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY read_all ON carbon.%I FOR SELECT TO carbon_admin, carbon_auditor USING (true)', t);
    IF account_column IS NOT NULL THEN
      EXECUTE format('CREATE POLICY acting_account ON carbon.%I FOR SELECT TO carbon_app, carbon_merchant, '
                     'carbon_trader USING (%I = carbon.acting_account())', t, account_column);
    END IF;
  END LOOP;
END $$;
SELECT carbon._account_rls(ARRAY['account'], 'id');
SELECT carbon._account_rls(ARRAY['posting', 'balance'], 'account');
SELECT carbon._account_rls(ARRAY['entry', 'account_status_log', 'request'], NULL);
CREATE POLICY acting_account ON carbon.entry FOR SELECT
  TO carbon_app, carbon_merchant, carbon_trader
  USING (EXISTS (SELECT 1 FROM carbon.posting p
                 WHERE p.entry_id = entry.id AND p.account = carbon.acting_account()));

-- Citizens' side (api.md §3, §4).
REVOKE ALL ON ALL TABLES IN SCHEMA carbon FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
  carbon.set_setting(text, text), carbon._check_params(text, jsonb),
  carbon._methodology(text, int), carbon._methodology_step(text, int, text[], text, text, timestamptz),
  carbon.define_methodology(text, int, text, text, text, text, jsonb),
  carbon.submit_methodology(text, int), carbon.approve_methodology(text, int, text),
  carbon.publish_methodology(text, int, timestamptz), carbon.suspend_methodology(text, int),
  carbon.retire_methodology(text, int), carbon._methodology_frozen(),
  carbon.register_source(text, text[], name),
  carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb),
  carbon.process_inbox(int), carbon.expire_lots(timestamptz),
  carbon.set_issuance_cap(text, text, text, int, bigint)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  carbon.set_setting(text, text),
  carbon.define_methodology(text, int, text, text, text, text, jsonb),
  carbon.submit_methodology(text, int), carbon.approve_methodology(text, int, text),
  carbon.publish_methodology(text, int, timestamptz), carbon.suspend_methodology(text, int),
  carbon.retire_methodology(text, int), carbon.register_source(text, text[], name),
  carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb),
  carbon.process_inbox(int), carbon.expire_lots(timestamptz),
  carbon.set_issuance_cap(text, text, text, int, bigint)
TO carbon_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA carbon TO carbon_admin;
GRANT INSERT, SELECT, DELETE ON carbon.behavior_inbox TO carbon_admin;

-- Scenario operators report behaviour (for their own sources only: checked
-- per source against its operator_role) and COPY into the inbox.
GRANT EXECUTE ON FUNCTION
  carbon.record_behavior(text, text, bigint, text, numeric, timestamptz, jsonb),
  carbon.process_inbox(int)
TO carbon_operator;
GRANT INSERT ON carbon.behavior_inbox TO carbon_operator;
GRANT USAGE ON SEQUENCE carbon.behavior_inbox_seq TO carbon_operator, carbon_admin;
GRANT SELECT ON carbon.methodology, carbon.source, carbon.settings TO carbon_operator, carbon_app,
  carbon_verifier, carbon_merchant, carbon_trader;

-- Auditors read everything but the HMAC key.
GRANT SELECT ON carbon.setting, carbon.settings, carbon.methodology, carbon.source, carbon.behavior,
  carbon.behavior_inbox, carbon.daily_usage, carbon.points_carry, carbon.lot, carbon.issuance_cap
TO carbon_auditor;

-- Views: auditors and admins read them all; apps their own statement.
GRANT SELECT ON carbon.v_account_statement, carbon.v_points_expiring, carbon.v_reduction_monthly,
  carbon.v_supply TO carbon_auditor, carbon_admin;
GRANT SELECT ON carbon.v_account_statement TO carbon_app, carbon_merchant, carbon_trader;
GRANT SELECT ON carbon.lot, carbon.behavior TO carbon_app, carbon_merchant, carbon_trader;

SELECT carbon._account_rls(ARRAY['lot', 'behavior'], 'account');
SELECT carbon._account_rls(ARRAY['points_carry', 'daily_usage'], NULL);
REVOKE EXECUTE ON FUNCTION carbon._account_rls(text[], text) FROM PUBLIC;
