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
    WHEN 'exchange_daily_limit' THEN
      IF value !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'exchange_daily_limit must be a whole number (0: no limit), not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'trade_fee_bps' THEN
      IF value !~ '^[0-9]{1,4}$' OR value::int > 1000 THEN
        RAISE EXCEPTION 'trade_fee_bps must be a whole number of basis points from 0 to 1000, not "%"', value
          USING ERRCODE = '22023';
      END IF;
    WHEN 'gtc_max_days' THEN
      IF value !~ '^[0-9]{1,4}$' OR value::int NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'gtc_max_days must be a whole number of days from 1 to 3650, not "%"', value
          USING ERRCODE = '22023';
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
  -- buffer_pct: the share of a forestry issuance set aside for the buffer pool
  IF params ? 'buffer_pct' AND (jsonb_typeof(params -> 'buffer_pct') <> 'number'
       OR (params ->> 'buffer_pct')::numeric NOT IN (SELECT generate_series(0, 50))) THEN
    RAISE EXCEPTION 'parameter "buffer_pct" must be a whole number from 0 to 50' USING ERRCODE = '22023';
  END IF;
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
