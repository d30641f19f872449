-- ---- Eco-product value beside carbon (生态产品价值核算, Zhangye §3; issue 21; docs/reports.md) ----
--
-- The city's GEP accounting results are imported per region and year with
-- COPY (carbon_admin), and set beside the certified units issued for the
-- same region and vintage and the units retired there that year.  A GEP
-- row for a city (620700) or province (620000) covers every county code
-- under it: its region code with the trailing pairs of zeros dropped is the
-- prefix matched.

CREATE TABLE carbon.gep (
  region        text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  year          int NOT NULL CHECK (year BETWEEN 1990 AND 2200),
  provisioning  bigint NOT NULL CHECK (provisioning BETWEEN 0 AND 1000000000000000),   -- 物质供给 yuan
  regulating    bigint NOT NULL CHECK (regulating BETWEEN 0 AND 1000000000000000),     -- 调节服务 yuan
  cultural      bigint NOT NULL CHECK (cultural BETWEEN 0 AND 1000000000000000),       -- 文化服务 yuan
  source        text NOT NULL CHECK (source <> ''),          -- the accounting report it comes from
  imported_at   timestamptz NOT NULL DEFAULT now(),
  imported_by   name NOT NULL DEFAULT session_user,
  PRIMARY KEY (region, year)
);
COMMENT ON TABLE carbon.gep IS
  '生态产品总值 GEP per region and year in whole yuan (each part at most 10^15): provisioning (物质供给), regulating (调节服务) and cultural (文化服务) services, with the report they come from; imported with COPY carbon.gep (region, year, provisioning, regulating, cultural, source) FROM ...';
SELECT pg_catalog.pg_extension_config_dump('carbon.gep', '');

-- The prefix of the region codes a region covers: 620700 → 6207, 620000 → 62.
CREATE FUNCTION carbon.region_prefix(region text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN CASE WHEN region ~ '^[0-9]{2}0000$' THEN left(region, 2)
              WHEN region ~ '^[0-9]{4}00$' THEN left(region, 4)
              ELSE region END;
COMMENT ON FUNCTION carbon.region_prefix(text) IS
  '区划前缀 the prefix of the region codes a region covers: 620700 (a city) → 6207, 620000 (a province) → 62, a county → itself';

-- Owner's rights: the figures are whole for every reader (public aggregates);
-- a county clerk reads the rows of its bound prefix only (none unbound).
CREATE VIEW carbon.v_gep_carbon AS
  SELECT g.region, g.year, g.provisioning + g.regulating + g.cultural AS gep_yuan,
         g.provisioning, g.regulating, g.cultural,
         coalesce((SELECT sum(i.last - i.first + 1) FROM carbon.unit_issuance i
                   WHERE starts_with(i.region, carbon.region_prefix(g.region)) AND i.vintage = g.year), 0)::bigint
           AS certified_tonnes,
         coalesce((SELECT sum(r.tonnes) FROM carbon.retirement r
                   WHERE starts_with(r.jurisdiction, carbon.region_prefix(g.region))
                     AND r.recalled_at IS NULL
                     AND extract(year FROM r.retired_at AT TIME ZONE
                                 (SELECT value FROM carbon.settings WHERE name = 'timezone')) = g.year), 0)::bigint
           AS retired_tonnes,
         g.source
  FROM carbon.gep g
  WHERE NOT carbon.clerk_scoped() OR starts_with(carbon.region_prefix(g.region), carbon.clerk_region());
COMMENT ON VIEW carbon.v_gep_carbon IS
  '生态产品价值与碳普惠 GEP per region and year beside the certified units issued for that region and vintage and the units retired there that year (local); a city''s or province''s row covers its counties; a county clerk reads the rows of its own prefix';
COMMENT ON COLUMN carbon.v_gep_carbon.region IS '行政区划 the region code of the GEP accounting';
COMMENT ON COLUMN carbon.v_gep_carbon.year IS '年度 the year accounted (and the vintage of the units)';
COMMENT ON COLUMN carbon.v_gep_carbon.gep_yuan IS '生态产品总值 GEP in yuan: provisioning + regulating + cultural';
COMMENT ON COLUMN carbon.v_gep_carbon.provisioning IS '物质供给 provisioning services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.regulating IS '调节服务 regulating services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.cultural IS '文化服务 cultural services in yuan';
COMMENT ON COLUMN carbon.v_gep_carbon.certified_tonnes IS '核证减排量 tonnes of certified units issued for projects of the region with that vintage';
COMMENT ON COLUMN carbon.v_gep_carbon.retired_tonnes IS '注销量 tonnes retired in the region that year (local time), recalled ones left out';
COMMENT ON COLUMN carbon.v_gep_carbon.source IS '来源 the GEP accounting report the figures come from';
