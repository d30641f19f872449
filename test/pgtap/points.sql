-- pgTAP: refusals of the citizens' side (methodologies, settings, sources,
-- behaviours, caps) with their SQLSTATEs, and what must not be written.
BEGIN;
SET search_path = carbon, public;
SELECT plan(55);

-- Methodology definitions: 22023 naming the parameter.
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'III', 's', 'flat', '{"g_per_event": 1}')$$,
                 '22023', NULL, 'unknown class');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'magic', '{}')$$,
                 '22023', NULL, 'unknown formula');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'per_unit', '{}')$$,
                 '22023', 'parameter "g_per_unit" is missing', 'missing parameter is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'distance_substitution', '{"baseline_g_per_pkm": 10}')$$,
                 '22023', 'parameter "project_g_per_pkm" is missing', 'missing project factor is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'per_unit', '{"g_per_unit": -1}')$$,
                 '22023', 'parameter "g_per_unit" must not be negative', 'negative factor is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'per_unit', '{"g_per_unit": "lots"}')$$,
                 '22023', 'parameter "g_per_unit" must be a number', 'non-numeric factor is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'flat', '{"g_per_event": 1, "daily_cap_g": -5}')$$,
                 '22023', 'parameter "daily_cap_g" must not be negative', 'negative cap is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'flat', '{"g_per_event": 1, "max_activity": -1}')$$,
                 '22023', 'parameter "max_activity" must not be negative', 'negative bound is named');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'distance_substitution', '{"baseline_g_per_pkm": 10, "project_g_per_pkm": 20}')$$,
                 '22023', NULL, 'project above baseline');
SELECT throws_ok($$SELECT define_methodology('M', 0, 't', 'I', 's', 'flat', '{"g_per_event": 1}')$$,
                 '22023', NULL, 'version 0');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 's', 'flat', '[1]')$$,
                 '22023', NULL, 'params not an object');
SELECT throws_ok($$SELECT define_methodology(NULL, 1, 't', 'I', 's', 'flat', '{"g_per_event": 1}')$$,
                 '22004', NULL, 'null code');

-- Lifecycle: CL007 for a step the state does not allow; unknown → 22023.
SELECT lives_ok($$SELECT define_methodology('M', 1, 't', 'I', 'metro', 'per_unit', '{"g_per_unit": 10, "daily_cap_g": 100}')$$,
                'a draft');
SELECT throws_ok($$SELECT approve_methodology('M', 1, 'r')$$, 'CL007', NULL, 'approve a draft');
SELECT throws_ok($$SELECT publish_methodology('M', 1, now())$$, 'CL007', NULL, 'publish a draft');
SELECT throws_ok($$SELECT submit_methodology('M', 9)$$, '22023', NULL, 'unknown version');
SELECT lives_ok($$SELECT submit_methodology('M', 1)$$, 'submit');
SELECT throws_ok($$SELECT submit_methodology('M', 1)$$, 'CL007', NULL, 'submit twice');
SELECT throws_ok($$SELECT approve_methodology('M', 1, '')$$, '22023', NULL, 'approval without reviewer');
SELECT lives_ok($$SELECT approve_methodology('M', 1, 'r')$$, 'approve');
SELECT throws_ok($$SELECT publish_methodology('M', 1, NULL)$$, '22004', NULL, 'publish without a date');
SELECT lives_ok($$SELECT publish_methodology('M', 1, now() - interval '1 day')$$, 'publish');
SELECT throws_ok($$SELECT define_methodology('M', 1, 't', 'I', 'metro', 'per_unit', '{"g_per_unit": 99}')$$,
                 'CL007', NULL, 'redefine a published version');
SELECT throws_ok($$UPDATE methodology SET params = '{"g_per_unit": 99}' WHERE code = 'M'$$,
                 'CL007', NULL, 'published params are frozen even for the owner');
SELECT lives_ok($$SELECT suspend_methodology('M', 1)$$, 'suspend');
SELECT throws_ok($$SELECT calc_reduction('M', 1)$$, 'CL006', NULL, 'suspended is not in force');
SELECT throws_ok($$SELECT calc_reduction('M', 1, '{}', now() - interval '2 days')$$, 'CL006', NULL,
                 'not in force before effective_from');
SELECT lives_ok($$SELECT publish_methodology('M', 1, now() - interval '1 day')$$, 'reinstate');

-- Settings, sources, caps.
SELECT throws_ok($$SELECT set_setting('points_validity', 'forever')$$, '22023', NULL, 'bad validity');
SELECT throws_ok($$SELECT set_setting('acceptance_window', '-1 day')$$, '22023', NULL, 'negative window');
SELECT throws_ok($$SELECT set_setting('acceptance_window', '100000 years')$$, '22023', NULL,
                 'a window past 100 years (now() - window would leave the timestamp range)');
SELECT throws_ok($$SELECT set_setting('points_validity', '300000 years')$$, '22023', NULL, 'a validity past 100 years');
SELECT throws_ok($$SELECT register_source('s', ARRAY[]::text[])$$, '22023', NULL, 'source without scenarios');
SELECT throws_ok($$SELECT register_source('s', ARRAY['metro'], 'no_such_role')$$, '22023', NULL, 'unknown operator role');
SELECT throws_ok($$SELECT set_issuance_cap('GOLD', 'personal', '620700', 2026, 10)$$, '22023', NULL, 'cap of unknown asset');
SELECT throws_ok($$SELECT set_issuance_cap('POINT', 'personal', '620700', 2026, -1)$$, '22023', NULL, 'negative cap');

-- Behaviour: an operator role records only for its own sources and only
-- the scenarios of its source (rejected); nothing is credited then.  For
-- another source it is the inbox's judgement (api.md: rejected /
-- source_not_authorised, a result, 42501 until the twenty-second session),
-- and the event id stays the source's: kept in inbox_rejects, not claimed.
CREATE ROLE tap_metro_op IN ROLE carbon_operator;
CREATE ROLE tap_bike_op IN ROLE carbon_operator;
SELECT register_source('tap-metro', ARRAY['metro'], 'tap_metro_op');
SELECT register_source('tap-bikes', ARRAY['cycling'], 'tap_bike_op');
SELECT open_account('personal', '620700', 'tap-rider') AS rider \gset
SET LOCAL ROLE tap_bike_op;
SELECT is((SELECT coalesce(behavior_id::text, 'no behaviour') || '/' || status || '/' || reason
           FROM carbon.record_behavior('tap-metro', 'x1', :rider, 'M', 1, now())),
          'no behaviour/rejected/source_not_authorised', 'an operator cannot report for another source');
SELECT is((SELECT reason || '/' || inserted_by FROM carbon.inbox_rejects WHERE source = 'tap-metro' AND event_id = 'x1'),
          'source_not_authorised/tap_bike_op', '... kept with its reason and sender, as the inbox keeps such a row');
SELECT is((SELECT coalesce(behavior_id::text, 'no behaviour') || '/' || reason
           FROM carbon.record_behavior('tap-nobody', 'n1', :rider, 'M', 1, now())),
          'no behaviour/unknown_source', 'a source nobody registered: rejected, no id claimed');
SELECT is((SELECT status || '/' || reason FROM carbon.record_behavior('tap-bikes', 'x2', :rider, 'M', 1, now())),
          'rejected/source_not_authorised', 'an operator cannot credit outside its scenarios');
SELECT throws_ok(format($$SELECT carbon.issue(%s, 'POINT', 1)$$, :rider), '42501', NULL, 'operators cannot issue directly');
RESET ROLE;
SET LOCAL ROLE tap_metro_op;
SELECT is((SELECT status FROM carbon.record_behavior('tap-metro', 'x3', :rider, 'M', 1, now())),
          'accepted', 'the metro operator records metro rides');
SELECT is((SELECT status FROM carbon.record_behavior('tap-metro', 'x1', :rider, 'M', 1, now())),
          'accepted', '... among them x1, which the bike operator''s call did not claim');
RESET ROLE;
SELECT is(balance(:rider, 'RED'), 20::bigint, 'only the authorised rides were credited');

-- Identifiers too long for a key: 22023, nothing written; in the inbox the
-- row is counted as rejected (it has no usable identity) and not recorded.
SELECT throws_ok($$SELECT define_methodology(repeat('m', 64), 1, 't', 'I', 's', 'flat', '{"g_per_event": 1}')$$,
                 '22023', NULL, 'a methodology code longer than 63 bytes');
SELECT throws_ok($$SELECT register_source(repeat('s', 129), ARRAY['metro'])$$, '22023', NULL,
                 'a source name longer than 128 bytes');
SELECT throws_ok($$SELECT register_source('s', ARRAY[repeat('x', 64)])$$, '22023', NULL,
                 'a scenario longer than 63 bytes');
SELECT throws_ok(format($$SELECT * FROM record_behavior('tap-metro', repeat('e', 257), %s, 'M', 1, now())$$, :rider),
                 '22023', NULL, 'an event id longer than 256 bytes');
INSERT INTO behavior_inbox (source, event_id, account, methodology, activity, occurred_at)
VALUES ('tap-metro', repeat('e', 5000), :rider, 'M', 1, now()), ('tap-metro', 'x4', :rider, 'M', 1, now());
SELECT is((SELECT accepted || '/' || rejected FROM process_inbox()), '1/1', 'the inbox counts the long id as rejected');
SELECT is((SELECT count(*) FROM behavior WHERE length(event_id) > 256), 0::bigint, 'and does not record it');

-- Caps: CL004 for issue().
SELECT set_issuance_cap('CNY', 'personal', '620700', extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int, 50);
SELECT throws_ok(format($$SELECT issue(%s, 'CNY', 51)$$, :rider), 'CL004', NULL, 'issuance past the cap');

-- Plans built on empty tables keep to their indexes (ledger_run_keyed): the
-- daily usage and remainder rows were first locked above, when there were
-- none; 60 riders later, an event still finds its rows by key.
SELECT count(*) FROM generate_series(1, 60) g,
  LATERAL record_behavior('tap-metro', 'grow-' || g, open_account('personal', '620700', 'tap-grow-' || g), 'M', 1, now()) r;
SELECT coalesce(sum(seq_scan), 0) AS seq_before FROM pg_stat_xact_user_tables
WHERE schemaname = 'carbon' AND relname IN ('daily_usage', 'points_carry') \gset
SELECT is((SELECT status FROM record_behavior('tap-metro', 'grow-last', :rider, 'M', 1, now())), 'accepted',
          'an event once the usage and remainder rows have grown ...');
SELECT is((SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables
           WHERE schemaname = 'carbon' AND relname IN ('daily_usage', 'points_carry')), :seq_before::numeric,
          '... locks its rows through their keys, in a session whose plans were built on empty tables');

-- v_points_expiring sums the lots as the lots joined to their accounts do,
-- the local month worked out per lot (two counties here).
SELECT open_account('personal', '620702', 'tap-far') AS firm \gset
SELECT issue(:firm, 'POINT', 700) > 0 AS issued;
SELECT is((SELECT string_agg(format('%s %s %s %s', month, region, tier, points), '; ' ORDER BY month, region, tier)
           FROM carbon.v_points_expiring),
          (SELECT string_agg(format('%s %s %s %s', month, region, tier, points), '; ' ORDER BY month, region, tier)
           FROM (SELECT date_trunc('month', (l.expires_at AT TIME ZONE (SELECT value FROM settings WHERE name = 'timezone'))
                                   - interval '1 microsecond')::date AS month,
                        a.region, a.tier, sum(l.remaining)::bigint AS points
                 FROM lot l JOIN account a ON a.id = l.account
                 WHERE l.asset_id = (SELECT id FROM asset WHERE code = 'POINT') AND l.remaining > 0
                 GROUP BY 1, 2, 3) x),
          'v_points_expiring: the lots'' points by their holders'' local month of expiry, region and tier');
SELECT is((SELECT count(DISTINCT region || tier) FROM carbon.v_points_expiring), 2::bigint,
          '... over two segments here');

SELECT * FROM finish();
ROLLBACK;
