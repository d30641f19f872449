-- ---------------------------------------------------------------------------
-- Projects and certified units (api.md §5; domain.md flows 3 and 5).
--
-- A project is registered against a published methodology, publicised for
-- at least 7 working days, approved; its monitoring reports (periods that
-- never overlap) are verified by an independent verifier and issued once,
-- in whole tonnes, as serial blocks REGION-VINTAGE-PROJECTCODE-FIRST-LAST.
-- The lifecycle is PL/pgSQL here; everything that moves units is C
-- (units.c): serial blocks are a holdings module of the journal, beside
-- lots, so that the CER balance of every account is the sum of its blocks.
-- ---------------------------------------------------------------------------

CREATE TABLE carbon.holiday (
  day   date PRIMARY KEY,
  name  text
);
COMMENT ON TABLE carbon.holiday IS
  '法定节假日 public holidays: not counted as working days of a project''s publicity (公示)';

CREATE SEQUENCE carbon.project_id_seq;
CREATE TABLE carbon.project (
  id                   bigint PRIMARY KEY DEFAULT nextval('carbon.project_id_seq'),
  owner                bigint NOT NULL REFERENCES carbon.account (id),
  code                 text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9]([A-Za-z0-9_-]{0,30}[A-Za-z0-9])?$'),
  title                text NOT NULL CHECK (title <> ''),
  methodology          text NOT NULL,
  methodology_version  int NOT NULL,
  class                text NOT NULL CHECK (class IN ('I', 'II')),
  region               text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  additionality        text NOT NULL CHECK (additionality <> ''),
  pooled               boolean NOT NULL DEFAULT false,
  status               text NOT NULL DEFAULT 'registered'
                       CHECK (status IN ('registered', 'publicized', 'approved')),
  publicity_starts     date,
  registered_at        timestamptz NOT NULL DEFAULT now(),
  approved_at          timestamptz,
  next_serial          bigint NOT NULL DEFAULT 1 CHECK (next_serial BETWEEN 1 AND 1000000000),
  debt_tonnes          bigint NOT NULL DEFAULT 0 CHECK (debt_tonnes >= 0),
  FOREIGN KEY (methodology, methodology_version) REFERENCES carbon.methodology (code, version)
);
ALTER SEQUENCE carbon.project_id_seq OWNED BY carbon.project.id;
CREATE INDEX project_owner_idx ON carbon.project (owner);
COMMENT ON TABLE carbon.project IS
  '减排项目 reduction projects: registered → publicized (公示) → approved (备案); next_serial numbers its units, debt_tonnes is what a recall left owing';

CREATE SEQUENCE carbon.monitoring_report_id_seq;
CREATE TABLE carbon.monitoring_report (
  id             bigint PRIMARY KEY DEFAULT nextval('carbon.monitoring_report_id_seq'),
  project        bigint NOT NULL REFERENCES carbon.project (id),
  period         daterange NOT NULL CHECK (NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)),
  claimed        carbon.co2e NOT NULL CHECK (carbon.grams(claimed) > 0),
  evidence       jsonb NOT NULL DEFAULT '{}',
  status         text NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'verified', 'issued')),
  submitted_at   timestamptz NOT NULL DEFAULT now(),
  verifier       bigint REFERENCES carbon.account (id),
  verified       carbon.co2e CHECK (carbon.grams(verified) >= 0 AND carbon.grams(verified) <= carbon.grams(claimed)),
  opinion        text,
  verified_at    timestamptz,
  issued_tonnes  bigint,
  remainder      carbon.co2e,
  issued_at      timestamptz,
  -- the periods of one project never overlap (23P01), whoever inserts
  CONSTRAINT monitoring_period_excl
    EXCLUDE USING gist (int8range(project, project, '[]') WITH &&, period WITH &&)
);
ALTER SEQUENCE carbon.monitoring_report_id_seq OWNED BY carbon.monitoring_report.id;
COMMENT ON TABLE carbon.monitoring_report IS
  '监测报告 monitoring reports: submitted → verified (核查) → issued (签发, once); remainder is the part under a whole tonne, recorded and not issued';

-- An issuance: one serial range per block issued for a report (the
-- owner's, the buffer pool's, a recall debt repaid).  No serial is ever
-- issued twice: the exclusion constraint, not only the numbering.
CREATE SEQUENCE carbon.unit_issuance_id_seq;
CREATE TABLE carbon.unit_issuance (
  id                   bigint PRIMARY KEY DEFAULT nextval('carbon.unit_issuance_id_seq'),
  report               bigint NOT NULL REFERENCES carbon.monitoring_report (id),
  project              bigint NOT NULL REFERENCES carbon.project (id),
  region               text NOT NULL,
  vintage              int NOT NULL,
  first                bigint NOT NULL CHECK (first >= 1),
  last                 bigint NOT NULL CHECK (last >= first AND last <= 999999999),
  block                text NOT NULL CHECK (block IN ('owner', 'buffer', 'debt')),
  account              bigint NOT NULL,
  class                text NOT NULL CHECK (class IN ('I', 'II')),
  methodology          text NOT NULL,
  methodology_version  int NOT NULL,
  factors              jsonb NOT NULL,
  entry_id             bigint NOT NULL,
  issued_at            timestamptz NOT NULL DEFAULT now(),
  recalled_at          timestamptz,
  recall_reason        text,
  CONSTRAINT unit_issuance_serial_excl
    EXCLUDE USING gist (int8range(project, project, '[]') WITH &&, int8range(first, last, '[]') WITH &&)
);
ALTER SEQUENCE carbon.unit_issuance_id_seq OWNED BY carbon.unit_issuance.id;
CREATE INDEX unit_issuance_report_idx ON carbon.unit_issuance (report);
COMMENT ON TABLE carbon.unit_issuance IS
  '签发 issued serial ranges, with the methodology version, class and factors used; never overlapping';

-- Value domains of the serial blocks and the market.  A table's CHECK
-- constraint is parsed again by every statement that writes the table
-- (ExecConstraints reads it from the catalog's text each time); a domain's
-- check is planned once per backend (the type cache).  So the single-column
-- rules of the tables every order writes are domains: the same rules, and a
-- value that breaks one fails with 23514 naming the domain.  The views show
-- these columns as their base types (text, bigint).
CREATE DOMAIN carbon.positive_amount AS bigint CHECK (VALUE > 0);
COMMENT ON DOMAIN carbon.positive_amount IS 'a price (fen per tonne) or a quantity (tonnes) greater than 0';
CREATE DOMAIN carbon.nonnegative_amount AS bigint CHECK (VALUE >= 0);
COMMENT ON DOMAIN carbon.nonnegative_amount IS 'fen or tonnes, 0 or more';
CREATE DOMAIN carbon.order_side AS text CHECK (VALUE IN ('buy', 'sell'));
CREATE DOMAIN carbon.time_in_force AS text CHECK (VALUE IN ('GTC', 'DAY', 'IOC', 'FOK'));
CREATE DOMAIN carbon.order_status AS text
  CHECK (VALUE IN ('open', 'partially_filled', 'filled', 'cancelled', 'rejected'));
CREATE DOMAIN carbon.block_state AS text CHECK (VALUE IN ('held', 'escrow', 'retired', 'cancelled'));
CREATE DOMAIN carbon.unit_event_kind AS text
  CHECK (VALUE IN ('issuance', 'split', 'transfer', 'retirement', 'cancellation', 'recall', 'escrow', 'release', 'trade'));
CREATE DOMAIN carbon.instrument_code AS text CHECK (VALUE ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$');
CREATE DOMAIN carbon.basis_points AS int CHECK (VALUE BETWEEN 0 AND 10000);
CREATE DOMAIN carbon.tradable_class AS text CHECK (VALUE = 'I');

-- Holdings: every issued serial is in exactly one block, held by an
-- account or retired or cancelled by it (final states).  Blocks split as
-- units move; a unique key and a check after every write keep any serial in
-- one block (below).
-- CACHE: a batch's blocks draw their ids from a backend's own run of 32
-- (1,500 instructions a value fewer, 1 % of a B4 order); nothing orders
-- blocks by id (the holding order is vintage, since, project, first)
CREATE SEQUENCE carbon.unit_block_id_seq CACHE 32;
CREATE TABLE carbon.unit_block (
  id           bigint PRIMARY KEY DEFAULT nextval('carbon.unit_block_id_seq'),
  issuance     bigint NOT NULL,
  project      bigint NOT NULL,
  vintage      int NOT NULL,
  class        text NOT NULL,
  first        bigint NOT NULL,
  last         bigint NOT NULL CHECK (last >= first),
  account      bigint NOT NULL,
  state        carbon.block_state NOT NULL DEFAULT 'held',
  entry_id     bigint NOT NULL,   -- the entry that last moved it (a retirement's names its certificate)
  since        timestamptz NOT NULL DEFAULT now(),
  escrow_order bigint,            -- the sell order the block is escrowed for (state escrow)
  CHECK ((state = 'escrow') = (escrow_order IS NOT NULL)),
  CHECK (project BETWEEN 1 AND 2147483647 AND first >= 1 AND last < 4294967296)
);
ALTER SEQUENCE carbon.unit_block_id_seq OWNED BY carbon.unit_block.id;
-- No two blocks share a serial.  Each block is keyed by its first serial
-- (one key across projects: project × 2^32 + serial; serials stay below
-- 10^9, project.next_serial), unique; after every statement that writes
-- blocks, the trigger below (invariants.c) checks that each new block's
-- neighbours by that key end before it and begin after it (two probes of
-- this index, with a dirty snapshot: a neighbour another transaction is
-- writing is waited for, as an exclusion constraint does).  An
-- exclusion constraint over the range (GiST) did the same at a quarter of
-- B4's time: wide ranges (what is left of a large holding) overlap in its
-- pages, so every check read several of them.
CREATE UNIQUE INDEX unit_block_serial_key ON carbon.unit_block ((project * 4294967296 + first));
CREATE FUNCTION carbon._unit_block_no_overlap() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_unit_block_no_overlap' LANGUAGE C;
CREATE TRIGGER unit_block_no_overlap AFTER INSERT ON carbon.unit_block
  REFERENCING NEW TABLE AS new_blocks FOR EACH STATEMENT EXECUTE FUNCTION carbon._unit_block_no_overlap();
-- a holder's blocks in the order they leave it: oldest vintage, then first
-- in, first out (units.c, piece_cmp)
CREATE INDEX unit_block_held_idx ON carbon.unit_block (account, vintage, since, project, first) WHERE state = 'held';
-- the units a holder may not trade (class II): few or none, so that the
-- market counts class I units as the CER balance less these (units.c)
CREATE INDEX unit_block_untradable_idx ON carbon.unit_block (account) WHERE state = 'held' AND class <> 'I';
-- no index on issuance: an issuance's blocks are found by their first
-- serial within its range (unit_block_serial_key; LEDGER_BLOCK_OF_ISSUANCE
-- in src/ledger.h), and every block the market writes had an entry here
CREATE INDEX unit_block_escrow_idx ON carbon.unit_block (escrow_order, vintage, project, first) WHERE state = 'escrow';
COMMENT ON TABLE carbon.unit_block IS
  '序列号块 serial blocks: who holds (or has in escrow for a sell order, or retired, or cancelled) which serials';

-- History of every block: issuance, split, transfer, retirement,
-- cancellation, recall; escrow for a sell order, its release, a trade
-- (append-only).
CREATE SEQUENCE carbon.unit_event_id_seq;
CREATE TABLE carbon.unit_event (
  id            bigint NOT NULL DEFAULT nextval('carbon.unit_event_id_seq'),
  issuance      bigint NOT NULL,
  project       bigint NOT NULL,
  first         bigint NOT NULL,
  last          bigint NOT NULL,
  event         carbon.unit_event_kind NOT NULL,
  from_account  bigint,
  to_account    bigint,
  entry_id      bigint,
  at            timestamptz NOT NULL DEFAULT now(),
  reference     text,
  -- one index, a serial's events (serial_history): two events a trade, and
  -- a second index on id alone cost each an entry more; id comes from the
  -- sequence and only the extension writes events, never changing one, so
  -- it is unique all the same
  PRIMARY KEY (project, first, id)
);
ALTER SEQUENCE carbon.unit_event_id_seq OWNED BY carbon.unit_event.id;
COMMENT ON TABLE carbon.unit_event IS
  '序列号流转 every event that touched a serial block';

-- Retirements (注销抵消): the certificate id is the SHA-256 of the
-- canonical content rebuilt from the row (units.c), so an altered row no
-- longer verifies.  A recall flags, and does not change, the content.
CREATE TABLE carbon.retirement (
  certificate    text PRIMARY KEY CHECK (certificate ~ '^[0-9a-f]{64}$'),
  account        bigint NOT NULL,
  tonnes         bigint NOT NULL CHECK (tonnes > 0),
  purpose        text NOT NULL CHECK (purpose IN ('event_neutrality', 'entity_neutrality',
                   'eco_damage_compensation', 'voluntary', 'compliance_offset')),
  beneficiary    text NOT NULL CHECK (beneficiary <> ''),
  jurisdiction   text NOT NULL CHECK (jurisdiction ~ '^[0-9]{6}$'),
  reference      text,
  serials        text[] NOT NULL,
  entry_id       bigint NOT NULL,
  retired_at     timestamptz NOT NULL,
  recalled_at    timestamptz,
  recall_reason  text
);
CREATE INDEX retirement_account_idx ON carbon.retirement (account);
CREATE INDEX retirement_entry_idx ON carbon.retirement (entry_id);   -- a buy that retires: one per fill
COMMENT ON TABLE carbon.retirement IS
  '注销证明 retirement certificates: who retired how many tonnes, for whom, why, and which serials';

-- The text of a serial range.
CREATE FUNCTION carbon.serial_text(region text, vintage int, code text, first bigint, last bigint)
  RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  -- text || text only (immutable), so that the planner inlines it
  RETURN region || '-' || vintage::text || '-' || code || '-' || lpad(first::text, 9, '0') || '-' || lpad(last::text, 9, '0');
COMMENT ON FUNCTION carbon.serial_text(text, int, text, bigint, bigint) IS
  '序列号 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST (9-digit numbers)';

-- ---- the lifecycle (PL/pgSQL: bookkeeping, no value moves) ----

-- The acting check of the value functions, for PL/pgSQL callers.
CREATE FUNCTION carbon._require_acting(account bigint) RETURNS void
  AS 'MODULE_PATHNAME', 'ledger_require_acting' LANGUAGE C VOLATILE STRICT;

-- Working days from `starts` to `until` inclusive: weekends and carbon.holiday excluded.
-- Counted, not enumerated: whole weeks have 5, the days left over are
-- looked at one by one, and the holidays on weekdays are subtracted.
CREATE FUNCTION carbon.working_days(starts date, until date) RETURNS int
  LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  n bigint;
  weeks bigint;
  first_dow int;
  extra int := 0;
BEGIN
  IF NOT isfinite(starts) OR NOT isfinite(until) THEN
    RAISE EXCEPTION 'working days are counted between finite dates' USING ERRCODE = '22023';
  END IF;
  IF until < starts THEN
    RETURN 0;
  END IF;
  n := (until - starts)::bigint + 1;
  weeks := n / 7;
  first_dow := extract(isodow FROM starts)::int;   -- the leftover days start on the same weekday
  FOR k IN 0 .. (n % 7)::int - 1 LOOP
    IF (first_dow - 1 + k) % 7 < 5 THEN
      extra := extra + 1;
    END IF;
  END LOOP;
  RETURN (weeks * 5 + extra - (SELECT count(*) FROM carbon.holiday h
                               WHERE h.day BETWEEN starts AND until AND extract(isodow FROM h.day) < 6))::int;
END $$;
COMMENT ON FUNCTION carbon.working_days(date, date) IS
  '工作日 working days from starts to until inclusive, weekends and carbon.holiday excluded';

CREATE FUNCTION carbon._local_today() RETURNS date
  LANGUAGE sql STABLE SET search_path = pg_catalog, carbon, pg_temp
  RETURN (now() AT TIME ZONE (SELECT value FROM carbon.settings WHERE name = 'timezone'))::date;

CREATE FUNCTION carbon._project(p bigint) RETURNS carbon.project
  LANGUAGE plpgsql SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  r carbon.project;
BEGIN
  IF p IS NULL THEN
    RAISE EXCEPTION 'project must not be null' USING ERRCODE = '22004';
  END IF;
  SELECT * INTO r FROM carbon.project WHERE id = p FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'project % does not exist', p USING ERRCODE = '22023';
  END IF;
  RETURN r;
END $$;

CREATE FUNCTION carbon.register_project(owner bigint, code text, title text, methodology text,
                                        region text, additionality text) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  o carbon.account;
  m carbon.methodology;
  id bigint;
BEGIN
  IF owner IS NULL OR code IS NULL OR title IS NULL OR methodology IS NULL OR region IS NULL
     OR additionality IS NULL THEN
    RAISE EXCEPTION 'no argument of register_project may be null' USING ERRCODE = '22004';
  END IF;
  IF code !~ '^[A-Za-z0-9]([A-Za-z0-9_-]{0,30}[A-Za-z0-9])?$' THEN
    RAISE EXCEPTION 'invalid project code "%"', code USING ERRCODE = '22023',
      HINT = 'A project code is 1 to 32 letters, digits, underscores or dashes, beginning and ending with a letter or digit (it is part of every serial).';
  END IF;
  IF region !~ '^[0-9]{6}$' THEN
    RAISE EXCEPTION 'invalid region "%"', region USING ERRCODE = '22023',
      HINT = 'A region is a 6-digit administrative division code, e.g. 620700.';
  END IF;
  IF title = '' OR additionality = '' THEN
    RAISE EXCEPTION 'a project needs a title and its additionality argument' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO o FROM carbon.account a WHERE a.id = owner;
  IF NOT FOUND OR o.kind <> 'participant' THEN
    RAISE EXCEPTION 'account % is not a participant account', owner USING ERRCODE = '22023';
  END IF;
  -- a verifier may own a project (api.md: verifying its own is CL008);
  -- a merchant may not (it holds points, not units)
  IF o.tier NOT IN ('personal', 'enterprise', 'government', 'platform', 'verifier') THEN
    RAISE EXCEPTION 'a % account cannot own a project', o.tier USING ERRCODE = '22023',
      HINT = 'Project owners are enterprise, government, platform (pooling), verifier or personal accounts.';
  END IF;
  PERFORM carbon._require_acting(owner);
  IF o.status <> 'active' THEN
    RAISE EXCEPTION 'account % is %', owner, o.status USING ERRCODE = 'CL002';
  END IF;
  SELECT * INTO m FROM carbon.methodology x
   WHERE x.code = register_project.methodology AND x.status = 'published' AND x.effective_from <= now()
   ORDER BY x.effective_from DESC, x.version DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'methodology "%" is not in force', methodology USING ERRCODE = 'CL006',
      HINT = 'A project is registered against a published methodology.';
  END IF;
  INSERT INTO carbon.project (owner, code, title, methodology, methodology_version, class, region,
                              additionality, pooled)
  VALUES (owner, code, title, m.code, m.version, m.class, region, additionality, o.tier = 'platform')
  RETURNING project.id INTO id;
  RETURN id;
EXCEPTION WHEN unique_violation THEN
  RAISE EXCEPTION 'project code "%" is taken', code USING ERRCODE = '23505';
END $$;
COMMENT ON FUNCTION carbon.register_project(bigint, text, text, text, text, text) IS
  '项目登记 register a reduction project against the methodology in force; returns its id';

CREATE FUNCTION carbon.publicize_project(project bigint, starts date) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
BEGIN
  IF starts IS NULL THEN
    RAISE EXCEPTION 'starts must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT isfinite(starts) THEN
    RAISE EXCEPTION 'publicity starts on a date, not %', starts USING ERRCODE = '22023';
  END IF;
  p := carbon._project(project);
  IF p.status <> 'registered' THEN
    RAISE EXCEPTION 'project % is %, not registered', p.code, p.status USING ERRCODE = 'CL007',
      HINT = 'Publicity (公示) follows registration, once.';
  END IF;
  UPDATE carbon.project SET status = 'publicized', publicity_starts = starts WHERE id = p.id;
END $$;
COMMENT ON FUNCTION carbon.publicize_project(bigint, date) IS
  '项目公示 start the publicity period of a registered project';

CREATE FUNCTION carbon.approve_project(project bigint) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
  today date := carbon._local_today();
  days int;
BEGIN
  p := carbon._project(project);
  IF p.status <> 'publicized' THEN
    RAISE EXCEPTION 'project % is %, not publicized', p.code, p.status USING ERRCODE = 'CL007',
      HINT = 'A project is approved after at least 7 working days of publicity.';
  END IF;
  days := CASE WHEN p.publicity_starts > today THEN 0 ELSE carbon.working_days(p.publicity_starts, today) END;
  IF days < 7 THEN
    RAISE EXCEPTION 'project % has had % working days of publicity, 7 are needed', p.code, days
      USING ERRCODE = 'CL007',
      DETAIL = format('Publicity started %s; weekends and carbon.holiday days do not count.', p.publicity_starts);
  END IF;
  UPDATE carbon.project SET status = 'approved', approved_at = now() WHERE id = p.id;
END $$;
COMMENT ON FUNCTION carbon.approve_project(bigint) IS
  '项目备案 approve a project after at least 7 working days of publicity';

CREATE FUNCTION carbon.submit_monitoring(project bigint, period daterange, claimed carbon.co2e,
                                         evidence jsonb DEFAULT '{}') RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  p carbon.project;
  id bigint;
BEGIN
  IF period IS NULL OR claimed IS NULL THEN
    RAISE EXCEPTION 'period and claimed must not be null' USING ERRCODE = '22004';
  END IF;
  -- a bound of -infinity is not an unbounded range (lower_inf is false for
  -- it); a year before 1000 makes a vintage that no serial carries: units
  -- issued for it could never be named, retired or recalled by serial
  IF isempty(period) OR lower_inf(period) OR upper_inf(period)
     OR NOT isfinite(lower(period)) OR NOT isfinite(upper(period)) THEN
    RAISE EXCEPTION 'a monitoring period is a finite, non-empty date range' USING ERRCODE = '22023';
  END IF;
  IF lower(period) < date '1000-01-01' THEN
    RAISE EXCEPTION 'a monitoring period starts in the year 1000 or later' USING ERRCODE = '22023',
      DETAIL = format('The period %s starts before it; a serial''s vintage has four digits.', period);
  END IF;
  IF upper(period) > carbon._local_today() + 1 THEN
    RAISE EXCEPTION 'a monitoring period cannot end in the future' USING ERRCODE = '22023',
      DETAIL = format('The period %s ends after today.', period);
  END IF;
  IF carbon.grams(claimed) <= 0 THEN
    RAISE EXCEPTION 'the claimed reduction must be positive' USING ERRCODE = '22023';
  END IF;
  IF evidence IS NULL OR jsonb_typeof(evidence) <> 'object' THEN
    RAISE EXCEPTION 'evidence must be a JSON object' USING ERRCODE = '22023';
  END IF;
  p := carbon._project(project);
  PERFORM carbon._require_acting(p.owner);
  IF p.status <> 'approved' THEN
    RAISE EXCEPTION 'project % is %, not approved', p.code, p.status USING ERRCODE = 'CL007';
  END IF;
  BEGIN
    INSERT INTO carbon.monitoring_report (project, period, claimed, evidence)
    VALUES (p.id, period, claimed, evidence) RETURNING monitoring_report.id INTO id;
  EXCEPTION WHEN exclusion_violation THEN
    RAISE EXCEPTION 'the period % overlaps an earlier monitoring report of project %', period, p.code
      USING ERRCODE = '23P01',
      DETAIL = (SELECT format('Report %s covers %s.', r.id, r.period) FROM carbon.monitoring_report r
                WHERE r.project = p.id AND r.period && submit_monitoring.period ORDER BY r.id LIMIT 1);
  END;
  RETURN id;
END $$;
COMMENT ON FUNCTION carbon.submit_monitoring(bigint, daterange, carbon.co2e, jsonb) IS
  '提交监测报告 submit a monitoring report for a period that overlaps no earlier report of the project';

CREATE FUNCTION carbon.verify_monitoring(report bigint, verifier bigint, verified carbon.co2e, opinion text)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  r carbon.monitoring_report;
  p carbon.project;
  v carbon.account;
  o carbon.account;
BEGIN
  IF report IS NULL OR verifier IS NULL OR verified IS NULL OR opinion IS NULL THEN
    RAISE EXCEPTION 'no argument of verify_monitoring may be null' USING ERRCODE = '22004';
  END IF;
  IF opinion = '' THEN
    RAISE EXCEPTION 'a verification states its opinion' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO r FROM carbon.monitoring_report m WHERE m.id = report FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'monitoring report % does not exist', report USING ERRCODE = '22023';
  END IF;
  IF carbon.grams(verified) < 0 OR carbon.grams(verified) > carbon.grams(r.claimed) THEN
    RAISE EXCEPTION 'the verified reduction % is not between 0 and the claimed %', verified, r.claimed
      USING ERRCODE = '22023';
  END IF;
  PERFORM carbon._require_acting(verifier);
  SELECT * INTO p FROM carbon.project x WHERE x.id = r.project;
  SELECT * INTO o FROM carbon.account a WHERE a.id = p.owner;
  SELECT * INTO v FROM carbon.account a WHERE a.id = verifier;
  IF NOT FOUND OR v.kind <> 'participant' OR v.tier <> 'verifier' OR v.status <> 'active' THEN
    RAISE EXCEPTION 'account % is not an active verifier', verifier USING ERRCODE = 'CL008',
      HINT = 'Monitoring is verified by an active account of the verifier tier.';
  END IF;
  IF v.id = o.id OR v.ref_hash = o.ref_hash THEN
    RAISE EXCEPTION 'verifier % may not verify project % of its own', verifier, p.code USING ERRCODE = 'CL008',
      DETAIL = 'The verifier and the project''s owner are the same legal person.';
  END IF;
  IF r.status <> 'submitted' THEN
    RAISE EXCEPTION 'monitoring report % is %, not submitted', report, r.status USING ERRCODE = 'CL007';
  END IF;
  UPDATE carbon.monitoring_report m
     SET status = 'verified', verifier = v.id, verified = verify_monitoring.verified,
         opinion = verify_monitoring.opinion, verified_at = now()
   WHERE m.id = r.id;
END $$;
COMMENT ON FUNCTION carbon.verify_monitoring(bigint, bigint, carbon.co2e, text) IS
  '核查 verify a monitoring report: an active verifier that is not the owner; verified ≤ claimed';

-- ---- units (C: units.c) ----

CREATE FUNCTION carbon.issue_units(report bigint) RETURNS TABLE (serial text, tonnes bigint)
  AS 'MODULE_PATHNAME', 'ledger_issue_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.issue_units(bigint) IS
  '签发 issue a verified report''s whole tonnes as serial blocks (buffer share and recall debt first)';

CREATE FUNCTION carbon.transfer_units(from_account bigint, to_account bigint, tonnes bigint,
                                      memo text DEFAULT NULL, request_id text DEFAULT NULL) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_transfer_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.transfer_units(bigint, bigint, bigint, text, text) IS
  '转让 transfer certified units, oldest vintage first, splitting blocks; returns the entry id';

CREATE FUNCTION carbon.retire_units(account bigint, tonnes bigint, purpose text, beneficiary text,
                                    reference text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS TABLE (certificate text, serials text[])
  AS 'MODULE_PATHNAME', 'ledger_retire_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.retire_units(bigint, bigint, text, text, text, text) IS
  '注销抵消 retire units (oldest vintage first) for a beneficiary; returns the certificate (SHA-256) and serials';

CREATE FUNCTION carbon.retire_serials(account bigint, serials text, purpose text, beneficiary text,
                                      reference text DEFAULT NULL, request_id text DEFAULT NULL)
  RETURNS TABLE (certificate text, serials text[])
  AS 'MODULE_PATHNAME', 'ledger_retire_serials'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.retire_serials(bigint, text, text, text, text, text) IS
  '按序列号注销 retire a named serial range the account holds in full';

CREATE FUNCTION carbon.cancel_units(account bigint, tonnes bigint, reason text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_cancel_units'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.cancel_units(bigint, bigint, text) IS
  '行政注销 cancel units administratively (oldest vintage first); returns the entry id';

CREATE FUNCTION carbon.recall_issuance(serial text, reason text)
  RETURNS TABLE (serials text[], cancelled bigint, flagged bigint)
  AS 'MODULE_PATHNAME', 'ledger_recall_issuance'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.recall_issuance(text, text) IS
  '撤销签发 recall the issuance containing a serial: held units cancelled, retired ones flagged, the buffer drawn, the rest owed';

CREATE FUNCTION carbon.verify_certificate(certificate text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ledger_verify_certificate'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.verify_certificate(text) IS
  '验证注销证明 true when the certificate exists and its content still hashes to its id; never an error';

CREATE FUNCTION carbon.certificate(certificate text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ledger_certificate'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.certificate(text) IS
  '注销证明 a certificate''s canonical content, whether it verifies, and any recall flag (NULL if unknown)';

CREATE FUNCTION carbon.tradable_units(account bigint) RETURNS bigint
  AS 'MODULE_PATHNAME', 'ledger_tradable_units'
  LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.tradable_units(bigint) IS
  '可交易 the class I tonnes an account holds: the only units that may reach the market';

CREATE FUNCTION carbon.parse_serial(serial text)
  RETURNS TABLE (region text, vintage int, project_code text, first bigint, last bigint)
  AS 'MODULE_PATHNAME', 'ledger_parse_serial'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION carbon.parse_serial(text) IS
  '解析序列号 the parts of REGION-VINTAGE-PROJECTCODE-FIRST-LAST (22P02 when malformed)';

-- ---- views ----

CREATE VIEW carbon.v_projects WITH (security_invoker = true) AS
  SELECT p.id AS project, p.code, p.status, p.owner, p.region,
         -- from the public registry of issuances (monitoring reports are their owner's and verifiers')
         coalesce((SELECT sum(i.last - i.first + 1) FROM carbon.unit_issuance i WHERE i.project = p.id), 0)::bigint
           AS issued_tonnes
  FROM carbon.project p;
COMMENT ON VIEW carbon.v_projects IS '减排项目 projects: status, owner, region and tonnes issued';
COMMENT ON COLUMN carbon.v_projects.issued_tonnes IS '已签发 tonnes issued to the project (owner, buffer and debt blocks)';

CREATE VIEW carbon.v_issuances WITH (security_invoker = true) AS
  SELECT carbon.serial_text(i.region, i.vintage, p.code, i.first, i.last) AS serial, i.project, i.vintage,
         (i.last - i.first + 1) AS tonnes, i.issued_at
  FROM carbon.unit_issuance i JOIN carbon.project p ON p.id = i.project;
COMMENT ON VIEW carbon.v_issuances IS '签发 every serial block issued: project, vintage, tonnes';

CREATE VIEW carbon.v_retirements WITH (security_invoker = true) AS
  SELECT certificate, account, tonnes, purpose, beneficiary, reference, retired_at
  FROM carbon.retirement;
COMMENT ON VIEW carbon.v_retirements IS '注销抵消 retirements and their certificates';

CREATE VIEW carbon.v_serial_history WITH (security_invoker = true) AS
  SELECT carbon.serial_text(i.region, i.vintage, p.code, e.first, e.last) AS serial_block, e.event::text AS event,
         e.from_account, e.to_account, (e.last - e.first + 1) AS tonnes, e.at, e.reference
  FROM carbon.unit_event e
  JOIN carbon.unit_issuance i ON i.id = e.issuance
  JOIN carbon.project p ON p.id = e.project;
CREATE FUNCTION carbon.serial_history(serial text)
  RETURNS TABLE (serial_block text, event text, from_account bigint, to_account bigint, tonnes bigint,
                 at timestamptz, reference text)
  LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp
BEGIN ATOMIC
  SELECT carbon.serial_text(i.region, i.vintage, p.code, e.first, e.last), e.event,
         e.from_account, e.to_account, (e.last - e.first + 1), e.at, e.reference
  FROM carbon.parse_serial(serial) s
  JOIN carbon.project p ON p.code = s.project_code
  JOIN carbon.unit_event e ON e.project = p.id AND e.first <= s.last AND e.last >= s.first
  JOIN carbon.unit_issuance i ON i.id = e.issuance
  WHERE i.region = s.region AND i.vintage = s.vintage
  ORDER BY e.id;
END;
COMMENT ON FUNCTION carbon.serial_history(text) IS
  '序列号追溯 every event of the blocks that contain a serial (or overlap a range), in order';

COMMENT ON VIEW carbon.v_serial_history IS
  '序列号流转 every issuance, split, transfer, trade, escrow and release, retirement, cancellation and recall of every block (carbon.serial_history(serial) follows one serial)';

SELECT pg_catalog.pg_extension_config_dump('carbon.holiday', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.project', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.project_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.monitoring_report', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.monitoring_report_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_issuance', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_issuance_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_block', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_block_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_event', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.unit_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.retirement', '');
