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
    ('timezone',          'Asia/Shanghai',    '本地时区 local time zone for days, months and expiry'),
    ('exchange_daily_limit', '0',             '每日兑换上限 most of one asset an account may exchange per local day (0: no limit)'),
    ('trade_fee_bps',     '0',                '交易手续费 market fee on each side of a trade, in basis points of its value (0 to 1000)'),
    ('gtc_max_days',      '90',               '长期委托最长有效期 days a GTC order rests at most before it is cancelled (1 to 3650)')
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
  status       text NOT NULL CHECK (status IN ('accepted', 'capped', 'rejected', 'reversed')),
  reduction    carbon.co2e NOT NULL,
  points       bigint NOT NULL,
  reason       text,
  entry_id     bigint,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, event_id)
);
ALTER SEQUENCE carbon.behavior_id_seq OWNED BY carbon.behavior.id;
CREATE INDEX behavior_account_idx ON carbon.behavior (account, occurred_at);

-- Credited behaviours (accepted or capped) per local month, region,
-- scenario, methodology and account: written by the engine as it records
-- them and by reversals, read by the reports instead of the behaviours
-- (B8); verify_integrity() checks it against them.  One row per account:
-- no two callers write the same row.
CREATE TABLE carbon.behavior_monthly (
  month        date NOT NULL,
  region       text NOT NULL,
  scenario     text NOT NULL,
  methodology  text NOT NULL,
  account      bigint NOT NULL,
  events       bigint NOT NULL CHECK (events >= 0),
  grams        bigint NOT NULL,
  points       bigint NOT NULL,
  PRIMARY KEY (month, region, scenario, methodology, account)
) WITH (fillfactor = 90);
CREATE INDEX behavior_monthly_account_idx ON carbon.behavior_monthly (account, month);
COMMENT ON TABLE carbon.behavior_monthly IS
  '月度行为汇总 credited behaviours per local month, region, scenario, methodology and account (events, grams CO2e, points), kept as behaviours are recorded and reversed';
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_monthly', '');
COMMENT ON TABLE carbon.behavior IS
  '低碳行为 reported low-carbon behaviour: accepted, capped or rejected (with the reason), reversed when its entry is; duplicates are answered, not stored';
COMMENT ON COLUMN carbon.behavior.entry_id IS
  '入账分录 the entry that credited this event alone (record_behavior); NULL for bulk credits (see carbon.behavior_batch) and events that credit nothing';

-- Which behaviours a bulk entry of process_inbox() credits: those of the
-- entry's accounts with ids in [first_behavior, last_behavior] and no entry
-- of their own.  reverse_entry() marks them reversed.
CREATE TABLE carbon.behavior_batch (
  entry_id        bigint PRIMARY KEY,
  first_behavior  bigint NOT NULL,
  last_behavior   bigint NOT NULL CHECK (last_behavior >= first_behavior)
);
COMMENT ON TABLE carbon.behavior_batch IS
  '批量入账范围 the behaviours a bulk entry credits: its accounts'' behaviours with ids in the range and no entry of their own';

-- Bulk intake: sources COPY rows into carbon.behavior_inbox, a view over
-- this queue; process_inbox() consumes them in inbox order and records each
-- exactly as record_behavior would.  (A view, because COPY FROM refuses a
-- table under row-level security to everyone but its owner, and operators
-- must see only their own rows: docs/points.md.)
CREATE SEQUENCE carbon.behavior_inbox_seq;
CREATE TABLE carbon.inbox_queue (
  source       text,
  event_id     text,
  account      bigint,
  methodology  text,
  activity     numeric,
  occurred_at  timestamptz,
  attrs        jsonb DEFAULT '{}',
  seq          bigint NOT NULL DEFAULT nextval('carbon.behavior_inbox_seq'),
  received_at  timestamptz NOT NULL DEFAULT now(),
  -- the role that inserted the row: set by the database (operators may not
  -- write this column), and the row is judged as if that role had called
  -- record_behavior
  inserted_by  name NOT NULL DEFAULT CURRENT_USER
);
ALTER SEQUENCE carbon.behavior_inbox_seq OWNED BY carbon.inbox_queue.seq;
CREATE INDEX behavior_inbox_seq_idx ON carbon.inbox_queue (seq);
COMMENT ON TABLE carbon.inbox_queue IS
  '行为收件箱队列 the rows of carbon.behavior_inbox waiting for carbon.process_inbox()';
COMMENT ON COLUMN carbon.inbox_queue.inserted_by IS
  '提交角色 the role that inserted the row (set by the database); the row is judged as that role''s report';

-- The inbox itself: exactly record_behavior's seven arguments (api.md: "the
-- same columns"), so that a COPY without a column list takes rows of
-- them.  Reads are the queue's, under its row-level security as the reader
-- (security_invoker): an operator sees its own rows (their place, arrival
-- and sender are in carbon.inbox_queue).  Writes (INSERT, COPY FROM) go
-- through _inbox_enqueue(), which stores each row in the queue with the
-- inserting role, its place and its arrival time set by the database.
CREATE VIEW carbon.behavior_inbox WITH (security_invoker = true) AS
  SELECT source, event_id, account, methodology, activity, occurred_at, attrs
  FROM carbon.inbox_queue;
ALTER VIEW carbon.behavior_inbox ALTER COLUMN attrs SET DEFAULT '{}';
CREATE FUNCTION carbon._inbox_enqueue() RETURNS trigger
  AS 'MODULE_PATHNAME', 'inbox_enqueue' LANGUAGE C;
CREATE TRIGGER enqueue INSTEAD OF INSERT ON carbon.behavior_inbox
  FOR EACH ROW EXECUTE FUNCTION carbon._inbox_enqueue();
COMMENT ON VIEW carbon.behavior_inbox IS
  '批量行为收件箱 bulk intake: COPY behaviours here, then call carbon.process_inbox()';
COMMENT ON COLUMN carbon.behavior_inbox.source IS '来源 the reporting source (carbon.register_source)';
COMMENT ON COLUMN carbon.behavior_inbox.event_id IS '事件号 the source''s own id of the event: one record per (source, event_id)';
COMMENT ON COLUMN carbon.behavior_inbox.account IS '账户 the citizen''s account';
COMMENT ON COLUMN carbon.behavior_inbox.methodology IS '方法学 methodology code, or code@version';
COMMENT ON COLUMN carbon.behavior_inbox.activity IS '活动量 activity in the methodology''s unit (km, kg, trips …)';
COMMENT ON COLUMN carbon.behavior_inbox.occurred_at IS '发生时间 when the behaviour happened';
COMMENT ON COLUMN carbon.behavior_inbox.attrs IS '属性 further facts of the event (JSON)';

-- Inbox rows that cannot be recorded at all (no source or event id, or one
-- too long for its key, or a source the inserting role may not report for,
-- whose event id it must not claim): kept with their reason, never dropped
-- silently.
CREATE TABLE carbon.inbox_rejects (
  seq          bigint PRIMARY KEY,
  source       text,
  event_id     text,
  account      bigint,
  methodology  text,
  activity     numeric,
  occurred_at  timestamptz,
  attrs        jsonb,
  inserted_by  name,
  received_at  timestamptz,
  reason       text NOT NULL,
  rejected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_rejects_inserted_by_idx ON carbon.inbox_rejects (inserted_by, seq);
COMMENT ON TABLE carbon.inbox_rejects IS
  '无法受理的收件箱记录 inbox rows that cannot be recorded (no usable source or event id, or a source their role may not report for), as they came, with the reason';

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
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_batch', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.inbox_queue', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.behavior_inbox_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.inbox_rejects', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.daily_usage', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.points_carry', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.lot', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.lot_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.issuance_cap', '');
