-- pgTAP: the views are a contract for BI (issue 21 item 1).  Superset,
-- Metabase, Grafana and Excel reports name these columns: every view's
-- columns, in order, with their types, are written out below.
--
-- CHANGING A VIEW'S COLUMNS (adding, removing, renaming, reordering or
-- retyping one, or adding or dropping a view) MEANS CHANGING THIS TEST *AND*
-- NOTING IT IN CHANGELOG.md UNDER THE VERSION THAT CHANGES IT (a version
-- note), since BI tools depend on them.  The views of api.md §7 use
-- api.md's names in api.md's order; the others follow the docs named beside
-- them.  Every view and column also has a comment in Chinese and English
-- (src/sql/, column comments mostly in 85_view_comments.sql), names are
-- snake_case, and carbon_auditor reads every v_ view.
BEGIN;
-- types print schema-qualified (carbon.co2e): carbon is not on the search_path
SET search_path = public;
SELECT plan(29);

CREATE TEMP VIEW carbon_views AS
  SELECT c.oid, c.relname::text AS view
  FROM pg_class c
  WHERE c.relnamespace = 'carbon'::regnamespace AND c.relkind IN ('v', 'm');

CREATE TEMP VIEW view_columns AS
  SELECT v.view, a.attnum, a.attname::text AS col,
         format_type(a.atttypid, a.atttypmod) AS type,
         col_description(v.oid, a.attnum) AS comment
  FROM carbon_views v
  JOIN pg_attribute a ON a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped;

-- 'name type' of each column of a view, in column order
CREATE FUNCTION pg_temp.cols(text) RETURNS text[] LANGUAGE sql STABLE
  AS $$ SELECT array_agg(col || ' ' || type ORDER BY attnum) FROM view_columns WHERE view = $1 $$;

-- ---- the set of views: a new view fails here until it has a contract below ----
SELECT set_eq($$SELECT view FROM carbon_views$$,
  ARRAY['behavior_inbox', 'settings', 'v_account_statement', 'v_accounting_journal', 'v_gep_carbon', 'v_group_credit', 'v_group_monthly',
        'v_issuances', 'v_market_daily', 'v_merchant_statement', 'v_my_group_rank', 'v_offers', 'v_order_book',
        'v_points_expiring', 'v_projects', 'v_redemptions', 'v_reduction_monthly', 'v_retirements',
        'v_serial_history', 'v_supply', 'v_supply_detail', 'v_trial_balance'],
  'the views of schema carbon are exactly those with a contract in this file');

-- ---- api.md §7 ----
-- v_supply: exactly api.md's nine columns, numeric (0.2); v_supply_detail
-- adds escrow and moved_out (docs/ledger.md: the per-segment identity needs
-- them; in v_supply itself until the twenty-second session).
SELECT is(pg_temp.cols('v_supply'),
  ARRAY['asset text', 'tier text', 'region text', 'issued numeric', 'outstanding numeric',
        'redeemed numeric', 'expired numeric', 'retired numeric', 'cancelled numeric'],
  'v_supply(asset, tier, region, issued, outstanding, redeemed, expired, retired, cancelled)');
SELECT is(pg_temp.cols('v_supply_detail'),
  ARRAY['asset text', 'tier text', 'region text', 'issued numeric', 'outstanding numeric',
        'redeemed numeric', 'expired numeric', 'retired numeric', 'cancelled numeric',
        'escrow numeric', 'moved_out numeric'],
  'v_supply_detail(asset, tier, region, issued, outstanding, redeemed, expired, retired, cancelled, escrow, moved_out)');
SELECT is(pg_temp.cols('v_reduction_monthly'),
  ARRAY['month date', 'region text', 'scenario text', 'methodology text', 'events bigint',
        'participants bigint', 'reduction carbon.co2e'],
  'v_reduction_monthly(month, region, scenario, methodology, events, participants, reduction)');
SELECT is(pg_temp.cols('v_points_expiring'),
  ARRAY['month date', 'region text', 'tier text', 'points bigint'],
  'v_points_expiring(month, region, tier, points)');
-- amount numeric since the twenty-second session: money in yuan, 2 decimals
SELECT is(pg_temp.cols('v_account_statement'),
  ARRAY['account bigint', 'entry_id bigint', 'at timestamp with time zone', 'asset text', 'amount numeric',
        'balance_after numeric', 'kind text', 'memo text'],
  'v_account_statement(account, entry_id, at, asset, amount, balance_after, kind, memo)');
SELECT is(pg_temp.cols('v_market_daily'),
  ARRAY['day date', 'instrument text', 'open numeric', 'high numeric', 'low numeric', 'close numeric',
        'volume bigint', 'turnover numeric', 'vwap numeric'],
  'v_market_daily(day, instrument, open, high, low, close, volume, turnover, vwap)');
SELECT is(pg_temp.cols('v_order_book'),
  ARRAY['instrument text', 'side text', 'price numeric', 'tonnes bigint', 'orders bigint'],
  'v_order_book(instrument, side, price, tonnes, orders)');
SELECT is(pg_temp.cols('v_projects'),
  ARRAY['project bigint', 'code text', 'status text', 'owner bigint', 'region text', 'issued_tonnes bigint'],
  'v_projects(project, code, status, owner, region, issued_tonnes)');
SELECT is(pg_temp.cols('v_issuances'),
  ARRAY['serial text', 'project bigint', 'vintage integer', 'tonnes bigint', 'issued_at timestamp with time zone'],
  'v_issuances(serial, project, vintage, tonnes, issued_at)');
SELECT is(pg_temp.cols('v_retirements'),
  ARRAY['certificate text', 'account bigint', 'tonnes bigint', 'purpose text', 'beneficiary text',
        'reference text', 'retired_at timestamp with time zone'],
  'v_retirements(certificate, account, tonnes, purpose, beneficiary, reference, retired_at)');
SELECT is(pg_temp.cols('v_redemptions'),
  ARRAY['month date', 'merchant bigint', 'offer bigint', 'redemptions bigint', 'points bigint'],
  'v_redemptions(month, merchant, offer, redemptions, points)');
SELECT is(pg_temp.cols('v_accounting_journal'),
  ARRAY['account bigint', 'at timestamp with time zone', 'subject_code text', 'subject_name text',
        'debit numeric(20,2)', 'credit numeric(20,2)', 'memo text'],
  'v_accounting_journal(account, at, subject_code, subject_name, debit, credit, memo)');
SELECT is(pg_temp.cols('v_trial_balance'),
  ARRAY['account bigint', 'subject_code text', 'subject_name text', 'debit numeric(20,2)',
        'credit numeric(20,2)', 'balance numeric(20,2)'],
  'v_trial_balance(account, subject_code, subject_name, debit, credit, balance)');

-- ---- the other views ----
-- api.md §5
SELECT is(pg_temp.cols('v_serial_history'),
  ARRAY['serial_block text', 'event text', 'from_account bigint', 'to_account bigint', 'tonnes bigint',
        'at timestamp with time zone', 'reference text'],
  'v_serial_history(serial_block, event, from_account, to_account, tonnes, at, reference) (api.md §5)');
-- docs/mall.md
SELECT is(pg_temp.cols('v_offers'),
  ARRAY['offer bigint', 'merchant bigint', 'merchant_name text', 'title text', 'points_cost bigint',
        'stock integer', 'valid_from timestamp with time zone', 'valid_until timestamp with time zone',
        'per_account_limit integer'],
  'v_offers(offer, merchant, merchant_name, title, points_cost, stock, valid_from, valid_until, per_account_limit) (docs/mall.md)');
SELECT is(pg_temp.cols('v_merchant_statement'),
  ARRAY['month date', 'merchant bigint', 'points_redeemed bigint', 'points_refunded bigint',
        'points_settled bigint'],
  'v_merchant_statement(month, merchant, points_redeemed, points_refunded, points_settled) (docs/mall.md)');
-- issue 21 items 4 and 5 (src/sql/83_groups.sql, 84_gep.sql; docs/reports.md)
SELECT is(pg_temp.cols('v_group_credit'),
  ARRAY['group_id bigint', 'month date', 'account bigint', 'events bigint', 'grams bigint', 'points bigint'],
  'v_group_credit(group_id, month, account, events, grams, points) (issue 21)');
SELECT is(pg_temp.cols('v_group_monthly'),
  ARRAY['month date', 'group_id bigint', 'kind text', 'name text', 'region text', 'members bigint',
        'active_members bigint', 'events bigint', 'reduction carbon.co2e', 'points bigint', 'rank_in_kind bigint'],
  'v_group_monthly(month, group_id, kind, name, region, members, active_members, events, reduction, points, rank_in_kind) (issue 21)');
SELECT is(pg_temp.cols('v_my_group_rank'),
  ARRAY['month date', 'group_id bigint', 'kind text', 'group_name text', 'reduction carbon.co2e', 'points bigint',
        'my_rank bigint', 'ranked_members bigint'],
  'v_my_group_rank(month, group_id, kind, group_name, reduction, points, my_rank, ranked_members) (issue 21)');
SELECT is(pg_temp.cols('v_gep_carbon'),
  ARRAY['region text', 'year integer', 'gep_yuan bigint', 'provisioning bigint', 'regulating bigint',
        'cultural bigint', 'certified_tonnes bigint', 'retired_tonnes bigint', 'source text'],
  'v_gep_carbon(region, year, gep_yuan, provisioning, regulating, cultural, certified_tonnes, retired_tonnes, source) (issue 21)');
-- api.md §4 (carbon.set_setting)
SELECT is(pg_temp.cols('settings'),
  ARRAY['name text', 'value text', 'default_value text', 'is_default boolean', 'description text'],
  'settings(name, value, default_value, is_default, description)');
-- api.md §4 (bulk intake: "the same columns" as record_behavior's
-- arguments, so a COPY without a column list takes rows of them; a view over
-- carbon.inbox_queue since the twenty-second session, docs/points.md)
SELECT is(pg_temp.cols('behavior_inbox'),
  ARRAY['source text', 'event_id text', 'account bigint', 'methodology text', 'activity numeric',
        'occurred_at timestamp with time zone', 'attrs jsonb'],
  'behavior_inbox(source, event_id, account, methodology, activity, occurred_at, attrs)');

-- ---- names, comments, readers ----
SELECT is_empty($$
  SELECT view, col FROM view_columns
  WHERE view !~ '^[a-z][a-z0-9]*(_[a-z0-9]+)*$' OR col !~ '^[a-z][a-z0-9]*(_[a-z0-9]+)*$'$$,
  'every view and column name is snake_case');

SELECT is_empty($$
  SELECT view FROM carbon_views WHERE obj_description(oid, 'pg_class') IS NULL$$,
  'every view has a COMMENT');
SELECT is_empty($$
  SELECT view, obj_description(oid, 'pg_class') FROM carbon_views
  WHERE NOT (obj_description(oid, 'pg_class') ~ '[一-龥]' AND obj_description(oid, 'pg_class') ~ '[A-Za-z]')$$,
  'every view''s comment is in Chinese and English');
SELECT is_empty($$
  SELECT view, col FROM view_columns WHERE comment IS NULL$$,
  'every view column has a COMMENT');
SELECT is_empty($$
  SELECT view, col, comment FROM view_columns
  WHERE NOT (comment ~ '[一-龥]' AND comment ~ '[A-Za-z]')$$,
  'every view column''s comment is in Chinese and English');

SELECT is_empty($$
  SELECT view FROM carbon_views
  WHERE view LIKE 'v\_%' AND NOT has_table_privilege('carbon_auditor', oid, 'SELECT')$$,
  'carbon_auditor may SELECT every v_ view');

SELECT * FROM finish();
ROLLBACK;
