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
