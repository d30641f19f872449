-- ---------------------------------------------------------------------------
-- Ledger core: assets, accounts, entries, postings, balances.
--
-- Every movement is an entry whose postings sum to zero per asset.  Balances
-- are derived from postings by a C statement trigger (invariants.c), which
-- also refuses unbalanced entries, negative participant balances and postings
-- on frozen or closed accounts.  Entries and postings are append-only.
-- ---------------------------------------------------------------------------

-- Tiers of the carbon inclusion system, each a separately reported
-- sub-ledger: the list is in C (accounts.c), once.
CREATE FUNCTION carbon._valid_tier(text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_valid_tier' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

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
-- A region's accounts by index alone (id in the key: the views join them to
-- balances and lots without reading the account rows); and a region's system
-- accounts, a few dozen among its citizens, for v_supply.
CREATE INDEX account_region_idx ON carbon.account (region, tier, id);
CREATE INDEX account_system_region_idx ON carbon.account (region) WHERE kind <> 'participant';
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
-- precedence over a default for the same (from_tier, to_tier, asset), and
-- may update or delete a default, which then becomes such a row
-- (_allowed_flow_guard).
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
