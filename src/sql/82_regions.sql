-- ---- County clerks (分级分类管理, issue 21; docs/reports.md) ----
--
-- A clerk of a county (or a city, or a province) reads the accounts,
-- behaviours, balances, points, projects, issuances and retirements of its
-- own region codes and nobody else's, and through them the reporting views
-- (security_invoker: row-level security applies to whoever reads them).
-- carbon_admin binds a login to a region prefix: '620702' is Ganzhou
-- district, '6207' every county of Zhangye, '62' Gansu.  A member of
-- carbon_clerk without a binding sees no rows.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'carbon_clerk') THEN
    CREATE ROLE carbon_clerk NOLOGIN;
  END IF;
END
$roles$;

CREATE TABLE carbon.region_scope (
  login          name PRIMARY KEY,
  region_prefix  text NOT NULL CHECK (region_prefix ~ '^[0-9]{2,6}$'),
  bound_by       name NOT NULL DEFAULT session_user,
  bound_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carbon.region_scope IS
  '辖区绑定 the region prefix each county clerk''s login reads (carbon_clerk): 620702 a district, 6207 a city''s counties';
SELECT pg_catalog.pg_extension_config_dump('carbon.region_scope', '');

-- The calling login's prefix, or NULL.  Plain SQL without SET, so that the
-- planner inlines it into the policies below and reads it once per query.
CREATE FUNCTION carbon.clerk_region() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN (SELECT s.region_prefix FROM carbon.region_scope s WHERE s.login = current_user);
COMMENT ON FUNCTION carbon.clerk_region() IS
  '辖区 the region prefix bound to the calling login (carbon_clerk), or NULL';

-- Is a region code in the calling clerk's scope?
CREATE FUNCTION carbon.in_clerk_region(region text) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN starts_with(region, carbon.clerk_region());
COMMENT ON FUNCTION carbon.in_clerk_region(text) IS
  '是否辖区内 whether a region code lies in the calling clerk''s scope (false without a binding)';

-- Is the reader kept to a clerk's scope?  A member of carbon_clerk is,
-- unless it is also a superuser, carbon_admin or carbon_auditor (who read
-- everything, as their row-level policies let them): owner's-rights views
-- (v_gep_carbon) filter on it, so that an unbound clerk, or a clerk after
-- SET ROLE carbon_clerk, sees no rows rather than every row.
CREATE FUNCTION carbon.clerk_scoped() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN pg_has_role(current_user, 'carbon_clerk', 'USAGE')
     AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false)
     AND NOT pg_has_role(current_user, 'carbon_admin', 'USAGE')
     AND NOT pg_has_role(current_user, 'carbon_auditor', 'USAGE');
COMMENT ON FUNCTION carbon.clerk_scoped() IS
  '是否受辖区限制 whether the calling login reads as a county clerk, kept to its bound prefix (no binding: nothing)';


CREATE FUNCTION carbon.bind_region(login name, region_prefix text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF login IS NULL OR region_prefix IS NULL THEN
    RAISE EXCEPTION 'login and region prefix must not be null' USING ERRCODE = '22004';
  END IF;
  IF region_prefix !~ '^[0-9]{2,6}$' THEN
    RAISE EXCEPTION 'region prefix "%" is not 2 to 6 digits of a region code', region_prefix
      USING ERRCODE = '22023', HINT = 'Use 620702 for one county, 6207 for a city''s counties, 62 for a province.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
    RAISE EXCEPTION 'role "%" does not exist', login USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.region_scope AS s (login, region_prefix) VALUES (bind_region.login, bind_region.region_prefix)
  ON CONFLICT ON CONSTRAINT region_scope_pkey
  DO UPDATE SET region_prefix = excluded.region_prefix, bound_by = session_user, bound_at = now();
END $$;
COMMENT ON FUNCTION carbon.bind_region(name, text) IS
  '绑定辖区 let a county clerk''s login (a member of carbon_clerk) read the rows of one region prefix';

CREATE FUNCTION carbon.unbind_region(login name) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  DELETE FROM carbon.region_scope s WHERE s.login = unbind_region.login;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION carbon.unbind_region(name) IS
  '解除辖区 the login reads no region''s rows any more; true if it had a binding';
