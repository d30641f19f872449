-- carbon_ledger install script, built by the Makefile from src/sql/*.sql.
-- Edit the parts in src/sql/, never the built carbon_ledger--X.sql.

\echo Use "CREATE EXTENSION carbon_ledger" to load this file. \quit

COMMENT ON SCHEMA carbon IS
  '碳普惠账本 carbon inclusion ledger: co2e type, accounts, points, certified units, market';
