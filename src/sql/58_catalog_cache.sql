-- ---------------------------------------------------------------------------
-- What every call reads (settings, assets, the flow matrix, whether a cap
-- exists, methodologies, sources) is cached in each backend (catalog.c).  A change to one of these
-- tables invalidates the copies when it commits.
-- ---------------------------------------------------------------------------
CREATE FUNCTION carbon._catalog_changed() RETURNS trigger
  AS 'MODULE_PATHNAME', 'ledger_catalog_changed' LANGUAGE C;
CREATE TRIGGER setting_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.setting
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER asset_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.asset
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER allowed_flow_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.allowed_flow
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
-- only whether a cap exists is cached: the running count (UPDATE) is not
CREATE TRIGGER issuance_cap_cached AFTER INSERT OR DELETE OR TRUNCATE ON carbon.issuance_cap
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER methodology_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.methodology
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
CREATE TRIGGER source_cached AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carbon.source
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._catalog_changed();
