-- pgTAP: projects and certified units (api.md §5, issue 19): every refusal
-- of the lifecycle with its SQLSTATE, in api.md's order of checks; serial
-- ranges, retirements and certificates; class II units; request ids; and
-- who may do what (R5: apps, traders and verifiers act for their own
-- accounts only, and row-level security shows the acting account's rows).
-- Four tests failed against commit b7bf918 (each marked "Regression" below); fixed since.
BEGIN;
SET search_path = carbon, public;
SELECT plan(142);

-- ---- setup ----
SELECT open_account('enterprise', '620700', 'U-farm', 'farm') AS farm \gset
SELECT open_account('verifier', '620700', 'U-farm', 'the farm''s own verification arm') AS farm_v \gset
SELECT open_account('verifier', '620100', 'U-ver', 'verifier') AS ver \gset
SELECT open_account('verifier', '620100', 'U-ver2', 'another verifier') AS ver2 \gset
SELECT open_account('verifier', '620100', 'U-vfrozen', 'frozen verifier') AS ver_frozen \gset
SELECT open_account('enterprise', '620700', 'U-hotel', 'hotel') AS hotel \gset
SELECT open_account('enterprise', '620700', 'U-frozen', 'frozen firm') AS frozen \gset
SELECT open_account('government', '620700', 'U-bureau', 'bureau') AS bureau \gset
SELECT open_account('merchant', '620700', 'U-shop', 'shop') AS shop \gset
SELECT open_account('enterprise', '620900', 'U-capfirm', 'a firm in 620900') AS capfirm \gset
SELECT open_account('personal', '620700', 'U-citizen-a', 'citizen A') AS cit_a \gset
SELECT open_account('personal', '620700', 'U-citizen-b', 'citizen B') AS cit_b \gset
SELECT set_account_status(:ver_frozen, 'frozen', 'test');
SELECT carbon._local_today() AS today \gset
SELECT extract(year FROM carbon._local_today())::int AS this_year \gset

SELECT define_methodology('U-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('U-FOREST', 1), approve_methodology('U-FOREST', 1, 'panel'),
       publish_methodology('U-FOREST', 1, now() - interval '1 year');
SELECT define_methodology('U-PV', 1, 'rooftop solar', 'II', 'solar', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('U-PV', 1), approve_methodology('U-PV', 1, 'panel'),
       publish_methodology('U-PV', 1, now() - interval '1 year');
SELECT define_methodology('U-SUSP', 1, 'to be suspended', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('U-SUSP', 1), approve_methodology('U-SUSP', 1, 'panel'),
       publish_methodology('U-SUSP', 1, now() - interval '1 year');
SELECT define_methodology('U-DRAFT', 1, 'a draft', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');

CREATE ROLE u_app LOGIN IN ROLE carbon_app;
CREATE ROLE u_trader LOGIN IN ROLE carbon_trader;
CREATE ROLE u_verifier LOGIN IN ROLE carbon_verifier;
SELECT bind_account(:ver, 'u_verifier');
SELECT bind_account(:farm, 'u_trader');

-- ---- register_project: arguments, owner, methodology, code ----
SELECT register_project(:farm, 'UFOREST', 'forest', 'U-FOREST', '620700', 'no money without carbon') AS p \gset
SELECT throws_ok(format($$SELECT register_project(%s, 'U FOREST', 't', 'U-FOREST', '620700', 'a')$$, :farm),
                 '22023', NULL, 'register_project: a code with a space');
SELECT throws_ok(format($$SELECT register_project(%s, 'UF2', 't', 'U-FOREST', '62070', 'a')$$, :farm),
                 '22023', NULL, 'register_project: a 5-digit region');
SELECT throws_ok(format($$SELECT register_project(%s, 'UF2', 't', 'NO-SUCH', '620700', 'a')$$, :farm),
                 'CL006', NULL, 'register_project: an unknown methodology');
SELECT throws_ok(format($$SELECT register_project(%s, 'UF2', 't', 'U-DRAFT', '620700', 'a')$$, :farm),
                 'CL006', NULL, 'register_project: an unpublished (draft) methodology');
SELECT throws_ok(format($$SELECT register_project(%s, 'UF2', 't', 'U-FOREST', '620700', 'a')$$, :shop),
                 '22023', NULL, 'register_project: a merchant cannot own a project (cannot hold CER)');
SELECT throws_ok(format($$SELECT register_project(%s, 'UFOREST', 't', 'U-FOREST', '620700', 'a')$$, :hotel),
                 '23505', NULL, 'register_project: a duplicate code');

-- ---- publicity: 7 working days, weekends and carbon.holiday excluded ----
SELECT is(working_days('2026-09-28', '2026-10-09'), 10, 'working_days: two Monday-to-Friday weeks are 10 days');
SELECT is(working_days('2026-10-09', '2026-10-12'), 2, 'working_days: Friday to Monday is 2 (the weekend excluded)');
INSERT INTO holiday VALUES ('2026-10-12', 'test holiday');
SELECT is(working_days('2026-10-09', '2026-10-12'), 1, 'working_days: a carbon.holiday row is excluded too');
DELETE FROM holiday WHERE day = '2026-10-12';

-- the latest start with 7 working days up to today (inclusive): walk back from today
SELECT max(d)::date AS seven_start FROM generate_series(:'today'::date - 30, :'today'::date, interval '1 day') d
 WHERE working_days(d::date, :'today'::date) >= 7 \gset
SELECT is(working_days(:'seven_start', :'today'), 7, 'the computed start has exactly 7 working days to today');
SELECT is(working_days(:'seven_start'::date + 1, :'today'), 6, '... the day after it has 6');
SELECT ok(:'today'::date - :'seven_start'::date + 1 >= 9, '... and the 7 working days span a weekend');

SELECT register_project(:farm, 'UWAIT6', 'six days', 'U-FOREST', '620700', 'a') AS q6 \gset
SELECT register_project(:farm, 'UWAIT7', 'seven days', 'U-FOREST', '620700', 'a') AS q7 \gset
SELECT throws_ok(format('SELECT approve_project(%s)', :q6), 'CL007', NULL, 'approve_project before publicity');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[2025-01-01,2025-01-31]', '1 t')$$, :q6), 'CL007', NULL,
                 'submit_monitoring before approval');
SELECT publicize_project(:q6, :'seven_start'::date + 1);
SELECT throws_ok(format('SELECT publicize_project(%s, %L)', :q6, :'seven_start'), 'CL007', NULL,
                 'publicize_project twice');
SELECT throws_ok(format('SELECT approve_project(%s)', :q6), 'CL007', NULL,
                 'approve_project after 6 working days of publicity');
SELECT publicize_project(:q7, :'seven_start');
INSERT INTO holiday VALUES (:'seven_start', 'a holiday on the first day of publicity');
SELECT throws_ok(format('SELECT approve_project(%s)', :q7), 'CL007', NULL,
                 'approve_project: 7 days less a carbon.holiday are 6');
DELETE FROM holiday WHERE day = :'seven_start';
SELECT lives_ok(format('SELECT approve_project(%s)', :q7), 'approve_project after exactly 7 working days');
SELECT is((SELECT status FROM v_projects WHERE project = :q7), 'approved', '... the project is approved');

SELECT publicize_project(:p, :'today'::date - 30);
SELECT approve_project(:p);

-- ---- monitoring reports ----
SELECT submit_monitoring(:p, '[2025-01-01,2025-06-30]', '100.5 t', '{"plots": 3}') AS r25 \gset
SELECT submit_monitoring(:p, '[2024-07-01,2025-01-01)', '3 t') AS r24 \gset
SELECT submit_monitoring(:p, '[2025-07-01,2025-09-30]', '10 t') AS rv \gset
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[2025-06-30,2025-07-15]', '1 t')$$, :p), '23P01', NULL,
                 'submit_monitoring: a period overlapping an earlier report (one shared day)');
SELECT throws_ok(format($$INSERT INTO carbon.monitoring_report (project, period, claimed)
                          VALUES (%s, '[2025-03-01,2025-03-02]', '1 t')$$, :p), '23P01', NULL,
                 'an overlapping period inserted directly (superuser) hits the exclusion constraint');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, daterange('2025-10-01', %L::date + 2), '1 t')$$, :p, :'today'),
                 '22023', NULL, 'submit_monitoring: a period ending tomorrow (in the future)');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, 'empty', '1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: an empty period');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[2025-10-01,)', '1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: a period without an end');
-- bounds that are dates but no vintage a serial can carry (red-team: units
-- issued for them could not be named, retired or recalled by serial)
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[-infinity,2020-01-01)', '1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: a period from -infinity');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[4713-01-01 BC,4712-01-01 BC)', '1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: a period before Christ');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[0999-01-01,0999-12-31]', '1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: a period in a year of three digits');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[2023-01-01,2023-01-31]', '0 g')$$, :p), '22023', NULL,
                 'submit_monitoring: a zero claim');
SELECT throws_ok(format($$SELECT submit_monitoring(%s, '[2023-01-01,2023-01-31]', '-1 t')$$, :p), '22023', NULL,
                 'submit_monitoring: a negative claim');

-- ---- verification ----
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '5 t', 'ok')$$, :rv, :hotel), 'CL008', NULL,
                 'verify_monitoring by an account that is not a verifier');
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '5 t', 'ok')$$, :rv, :ver_frozen), 'CL008', NULL,
                 'verify_monitoring by a frozen verifier');
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '5 t', 'ok')$$, :rv, :farm_v), 'CL008', NULL,
                 'verify_monitoring by the owner''s legal person (same external_ref): not its own project');
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '5 t', 'ok')$$, :rv, :farm), 'CL008', NULL,
                 'verify_monitoring by the owner');
-- api.md's own example of CL008: a verifier owns a project (registering it
-- was 22023 until the twenty-second session, so CL008 could not be reached)
SELECT register_project(:ver2, 'UVOWN', 'a verifier''s own forest', 'U-FOREST', '620700', 'a') AS vown \gset
SELECT publicize_project(:vown, :'today'::date - 30);
SELECT approve_project(:vown);
SELECT submit_monitoring(:vown, '[2025-01-01,2025-06-30]', '2 t') AS vown_r \gset
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '2 t', 'ok')$$, :vown_r, :ver2), 'CL008', NULL,
                 'verify_monitoring by a verifier of the project it owns');
SELECT lives_ok(format($$SELECT verify_monitoring(%s, %s, '2 t', 'ok')$$, :vown_r, :ver),
                '... another verifier verifies it');
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '10.000001 t', 'ok')$$, :rv, :ver), '22023', NULL,
                 'verify_monitoring: verified more than claimed (by a gram)');
SELECT throws_ok(format('SELECT issue_units(%s)', :rv), 'CL007', NULL, 'issue_units before verification');

-- R5: the verifier's login acts for its bound account only
SET LOCAL ROLE u_verifier;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :ver2), '42501', NULL,
                 'a verifier login cannot act for a verifier account not bound to it');
SELECT carbon.act_as(:ver);
SELECT throws_ok(format($$SELECT carbon.verify_monitoring(%s, %s, '10 t', 'ok')$$, :rv, :ver2), '42501', NULL,
                 'a verifier acting for V cannot verify as another verifier');
SELECT lives_ok(format($$SELECT carbon.verify_monitoring(%s, %s, '10 t', 'reasonable assurance')$$, :rv, :ver),
                'a verifier acting for its bound account V verifies as V');
RESET ROLE;
SELECT throws_ok(format($$SELECT verify_monitoring(%s, %s, '10 t', 'again')$$, :rv, :ver), 'CL007', NULL,
                 'verify_monitoring twice');
SELECT verify_monitoring(:r25, :ver, '100.5 t', 'ok');
SELECT verify_monitoring(:r24, :ver, '3 t', 'ok');

-- ---- issuance ----
SELECT is((SELECT array_agg(serial || ' ' || tonnes) FROM issue_units(:r25)),
          ARRAY['620700-2025-UFOREST-000000001-000000100 100'],
          'issue_units: whole tonnes as one serial block REGION-VINTAGE-CODE-FIRST-LAST');
SELECT is((SELECT remainder FROM monitoring_report WHERE id = :r25), '500 kg'::co2e,
          '... the 0.5 t remainder is recorded, not issued');
SELECT throws_ok(format('SELECT issue_units(%s)', :r25), 'CL007', NULL, 'issue_units twice');
SELECT is((SELECT array_agg(serial) FROM issue_units(:r24)), ARRAY['620700-2024-UFOREST-000000101-000000103'],
          'the vintage is the year of the period''s last day (2024 for [2024-07-01,2025-01-01)); numbers go on');
SELECT lives_ok(format('SELECT issue_units(%s)', :rv), 'issue_units of the report verified by the bound verifier');
SELECT throws_ok(format($$SELECT issue(%s, 'CER', 5)$$, :farm), '22023', NULL,
                 'carbon.issue() refuses CER: units come with serials');

-- a suspended methodology issues nothing
SELECT register_project(:farm, 'USUSP', 'suspended', 'U-SUSP', '620700', 'a') AS ps \gset
SELECT publicize_project(:ps, :'today'::date - 30), approve_project(:ps);
SELECT submit_monitoring(:ps, '[2025-01-01,2025-01-31]', '5 t') AS rs \gset
SELECT verify_monitoring(:rs, :ver, '5 t', 'ok');
SELECT suspend_methodology('U-SUSP', 1);
SELECT throws_ok(format('SELECT issue_units(%s)', :rs), 'CL006', NULL, 'issue_units under a suspended methodology');
SELECT throws_ok(format($$SELECT register_project(%s, 'USUSP2', 't', 'U-SUSP', '620700', 'a')$$, :farm),
                 'CL006', NULL, 'register_project under a suspended methodology');

-- a cap on CER for the owner's tier and the project's region
SELECT register_project(:capfirm, 'UCAP', 'capped', 'U-FOREST', '620900', 'a') AS pc \gset
SELECT publicize_project(:pc, :'today'::date - 30), approve_project(:pc);
SELECT submit_monitoring(:pc, '[2025-01-01,2025-12-31]', '10 t') AS rc \gset
SELECT verify_monitoring(:rc, :ver, '10 t', 'ok');
SELECT set_issuance_cap('CER', 'enterprise', '620900', :this_year, 9);
SELECT throws_ok(format('SELECT issue_units(%s)', :rc), 'CL004', NULL, 'issue_units past the CER issuance cap');
SELECT set_issuance_cap('CER', 'enterprise', '620900', :this_year, 10);
SELECT lives_ok(format('SELECT issue_units(%s)', :rc), '... and within it once the cap is raised');

-- serial numbers have 9 digits
SELECT register_project(:farm, 'UBIG', 'too big', 'U-FOREST', '620700', 'a') AS pb \gset
SELECT publicize_project(:pb, :'today'::date - 30), approve_project(:pb);
SELECT submit_monitoring(:pb, '[2025-01-01,2025-12-31]', '1000000000 t') AS rb \gset
SELECT verify_monitoring(:rb, :ver, '1000000000 t', 'ok');
SELECT throws_ok(format('SELECT issue_units(%s)', :rb), '22003', NULL,
                 'issue_units of 10^9 t would pass serial 999999999');

-- ---- transfer_units ----
SELECT transfer_units(:farm, :hotel, 5, 'sale', 'tu-1') AS tu1 \gset
SELECT is(transfer_units(:farm, :hotel, 5, 'sale', 'tu-1'), :tu1::bigint, 'transfer_units: a replayed request_id returns the same entry');
SELECT is(balance(:hotel, 'CER'), 5::bigint, '... and moves nothing the second time');
SELECT is((SELECT array_agg(vintage || ':' || first || '-' || last ORDER BY vintage, first) FROM unit_block
            WHERE account = :hotel AND state = 'held'),
          ARRAY['2024:101-103', '2025:1-2'], 'transfer_units takes the oldest vintage first, splitting a block');
SELECT throws_ok(format($$SELECT transfer_units(%s, %s, 6, 'sale', 'tu-1')$$, :farm, :hotel), '23505', NULL,
                 'transfer_units: the same request_id with other arguments');
SELECT throws_ok(format($$SELECT transfer_units(%s, %s, 1, NULL, '')$$, :farm, :hotel), '22023', NULL,
                 'transfer_units: an empty request_id');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 1)', :farm, :farm), '22023', NULL, 'transfer_units to itself');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 0)', :farm, :hotel), '22023', NULL, 'transfer_units of zero tonnes');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 1)', :farm, :shop), 'CL003', NULL,
                 'transfer_units to a merchant (flow matrix)');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 1000)', :farm, :hotel), 'CL001', NULL,
                 'transfer_units of more than held');
SELECT transfer_units(:farm, :hotel, 25);                       -- hotel: 2024 101-103, 2025 1-27
SELECT transfer_units(:farm, :frozen, 5);                       -- frozen: 28-32
SELECT set_account_status(:frozen, 'frozen', 'test');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 1)', :frozen, :hotel), 'CL002', NULL,
                 'transfer_units from a frozen account');
SELECT throws_ok(format('SELECT transfer_units(%s, %s, 1)', :farm, :frozen), 'CL002', NULL,
                 'transfer_units to a frozen account');
SELECT lives_ok(format($$SELECT transfer(%s, %s, 'CER', 2, 'via transfer()')$$, :hotel, :bureau),
                'carbon.transfer of CER moves serial blocks too');
SELECT is((SELECT sum(last - first + 1) FROM unit_block WHERE account = :bureau AND state = 'held'), 2::numeric,
          '... the receiver''s blocks cover its balance');

-- ---- retire_serials: named ranges ----
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-00000001-000000010'),
                 '22P02', NULL, 'retire_serials: 8 digits instead of 9');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000050-000000040'),
                 '22P02', NULL, 'retire_serials: FIRST > LAST');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST--000000040-000000050'),
                 '22P02', NULL, 'retire_serials: a project code ending with a dash');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000040'),
                 '22P02', NULL, 'retire_serials: LAST missing');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, 'not a serial at all'),
                 '22P02', NULL, 'retire_serials: garbage');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000001-000000010'),
                 'CL001', NULL, 'retire_serials: a range held by someone else');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000030-000000040'),
                 'CL001', NULL, 'retire_serials: a range partly held');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000500-000000510'),
                 'CL001', NULL, 'retire_serials: a range never issued');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2024-UFOREST-000000050-000000050'),
                 'CL001', NULL, 'retire_serials: a serial the account holds, named with the wrong vintage');
SELECT is((SELECT serials FROM retire_serials(:farm, '620700-2025-UFOREST-000000091-000000100', 'voluntary', 'x')),
          ARRAY['620700-2025-UFOREST-000000091-000000100'], 'retire_serials retires the named range');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000095-000000095'),
                 'CL001', NULL, 'retire_serials: a serial already retired');
SELECT lives_ok(format($$SELECT cancel_units(%s, 3, 'registered twice')$$, :farm), 'cancel_units (oldest first: 33-35)');
SELECT throws_ok(format($$SELECT retire_serials(%s, %L, 'voluntary', 'x')$$, :farm, '620700-2025-UFOREST-000000034-000000034'),
                 'CL001', NULL, 'retire_serials: a cancelled serial');
SELECT throws_ok(format($$SELECT cancel_units(%s, 1, '')$$, :farm), '22023', NULL, 'cancel_units with an empty reason');
SELECT throws_ok(format($$SELECT cancel_units(%s, 1000, 'x')$$, :farm), 'CL001', NULL, 'cancel_units of more than held');

-- ---- retire_units ----
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'carbon_magic', 'x')$$, :hotel), '22023', NULL,
                 'retire_units: an unknown purpose');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'eco_damage_compensation', 'wetland')$$, :hotel), '22023', NULL,
                 'retire_units: eco_damage_compensation without a case reference');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'eco_damage_compensation', 'wetland', '')$$, :hotel), '22023', NULL,
                 'retire_units: eco_damage_compensation with an empty case reference');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'voluntary', '')$$, :hotel), '22023', NULL,
                 'retire_units: an empty beneficiary');
SELECT throws_ok(format($$SELECT retire_units(%s, 1000, 'voluntary', 'x')$$, :hotel), 'CL001', NULL,
                 'retire_units: more than held');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'voluntary', 'x')$$, :frozen), 'CL002', NULL,
                 'retire_units from a frozen account');
SELECT certificate AS c1, serials AS c1_serials
  FROM retire_units(:hotel, 2, 'event_neutrality', 'U conference', NULL, 'ret-1') \gset
SELECT is(:'c1_serials'::text[], ARRAY['620700-2024-UFOREST-000000103-000000103', '620700-2025-UFOREST-000000001-000000001'],
          'retire_units retires the oldest vintage first, across blocks');
SELECT is((SELECT certificate FROM retire_units(:hotel, 2, 'event_neutrality', 'U conference', NULL, 'ret-1')), :'c1'::text,
          'retire_units: a replayed request_id returns the same certificate');
SELECT is(balance(:hotel, 'CER'), 26::bigint, '... and retires nothing the second time');
SELECT throws_ok(format($$SELECT retire_units(%s, 3, 'event_neutrality', 'U conference', NULL, 'ret-1')$$, :hotel),
                 '23505', NULL, 'retire_units: the same request_id with other arguments');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'voluntary', 'x', NULL, '')$$, :hotel), '22023', NULL,
                 'retire_units: an empty request_id');
-- Regression: the request fingerprint joined beneficiary and reference with
-- '|', so ('a|b', NULL) and ('a', 'b|') read as the same arguments and the
-- second call got the first call's certificate (for beneficiary 'a|b').
SELECT retire_units(:hotel, 1, 'voluntary', 'a|b', NULL, 'ret-2');
SELECT throws_ok(format($$SELECT retire_units(%s, 1, 'voluntary', 'a', 'b|', 'ret-2')$$, :hotel), '23505', NULL,
                 'retire_units: the same request_id for another beneficiary and reference');
SELECT is((SELECT array_agg(event ORDER BY ord) FROM serial_history('620700-2024-UFOREST-000000103-000000103')
             WITH ORDINALITY AS h(serial_block, event, from_account, to_account, tonnes, at, reference, ord)),
          ARRAY['issuance', 'transfer', 'split', 'retirement'], 'serial_history follows serial 103 to its retirement');

-- retired, cancelled and issued units are final: no reversal brings them back
SELECT throws_ok(format($$SELECT reverse_entry(%s, 'undo')$$, (SELECT entry_id FROM retirement WHERE certificate = :'c1')),
                 'CL007', NULL, 'reverse_entry of a retirement');
SELECT throws_ok(format($$SELECT reverse_entry(%s, 'undo')$$,
                        (SELECT max(entry_id) FROM unit_event WHERE event = 'cancellation' AND from_account = :farm)),
                 'CL007', NULL, 'reverse_entry of a cancellation');
SELECT throws_ok(format($$SELECT reverse_entry(%s, 'undo')$$, (SELECT entry_id FROM unit_issuance WHERE report = :rv)),
                 'CL007', NULL, 'reverse_entry of an issuance (the owner still holds as many tonnes)');
-- Regression: the balance check (CL001) ran before the refusal (CL007), so a
-- clerk was told to top the owner up, and would then get CL007.
SELECT throws_ok(format($$SELECT reverse_entry(%s, 'undo')$$, (SELECT entry_id FROM unit_issuance WHERE report = :r25)),
                 'CL007', NULL, 'reverse_entry of an issuance whose units have moved on');
-- a reversed transfer gives back the serials that were transferred.
-- Regression: the reversal took the receiver's oldest units (the bureau's
-- 2024 serial 101) instead of serial 36, which stayed with the bureau.
SELECT transfer_units(:farm, :bureau, 1, 'serial 36') AS t36 \gset
SELECT is((SELECT account FROM unit_block WHERE project = :p AND vintage = 2025 AND 36 BETWEEN first AND last),
          :bureau::bigint, 'transfer_units: serial 36 went to the bureau');
SELECT lives_ok(format($$SELECT reverse_entry(%s, 'sold by mistake')$$, :t36), 'reverse_entry of a unit transfer');
SELECT is((SELECT account FROM unit_block WHERE project = :p AND vintage = 2025 AND 36 BETWEEN first AND last),
          :farm::bigint, '... serial 36 is the farm''s again');

-- ---- certificates ----
SELECT ok(:'c1' ~ '^[0-9a-f]{64}$', 'a certificate id is 64 lowercase hex digits');
SELECT is(verify_certificate(:'c1'), true, 'verify_certificate: a real certificate verifies');
SELECT is((SELECT encode(sha256(convert_to(format(
             '{"account":%s,"beneficiary":%s,"entry":%s,"jurisdiction":%s,"purpose":%s,"reference":%s,'
             '"retired_at":"%s","serials":%s,"tonnes":%s,"version":1}',
             account, to_json(beneficiary), entry_id, to_json(jurisdiction), to_json(purpose),
             coalesce(to_json(reference)::text, 'null'),
             to_char(retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             array_to_json(serials), tonnes), 'UTF8')), 'hex')
             FROM retirement WHERE certificate = :'c1'), :'c1'::text,
          'the certificate id is the SHA-256 of its canonical content');
SELECT is(verify_certificate(NULL), false, 'verify_certificate(NULL) is false');
SELECT is(verify_certificate('garbage'), false, 'verify_certificate of garbage is false');
SELECT is(verify_certificate(repeat('ab', 32)), false, 'verify_certificate of an unknown 64-hex id is false');
SELECT is(verify_certificate(upper(:'c1')), false, 'verify_certificate of the id in upper case is false');
UPDATE retirement SET beneficiary = 'someone else' WHERE certificate = :'c1';
SELECT is(verify_certificate(:'c1'), false, 'verify_certificate of an altered row is false');
UPDATE retirement SET beneficiary = 'U conference' WHERE certificate = :'c1';
SELECT is(verify_certificate(:'c1'), true, '... and true again once the row is restored');
SELECT is(certificate(:'c1') ->> 'beneficiary', 'U conference', 'certificate() shows the content');

-- ---- class II ----
SELECT register_project(:farm, 'UPV', 'solar', 'U-PV', '620700', 'a') AS pv \gset
SELECT publicize_project(:pv, :'today'::date - 30), approve_project(:pv);
SELECT submit_monitoring(:pv, '[2025-01-01,2025-12-31]', '20 t') AS rpv \gset
SELECT verify_monitoring(:rpv, :ver, '20 t', 'ok');
SELECT issue_units(:rpv);
SELECT is(balance(:farm, 'CER') - tradable_units(:farm), 20::bigint,
          'tradable_units leaves out the 20 t of class II units');
SELECT is(tradable_units(:farm), (SELECT sum(last - first + 1)::bigint FROM unit_block
                                   WHERE account = :farm AND state = 'held' AND class = 'I'),
          'tradable_units counts the class I tonnes held');

-- a cap counts the units issued that year before it was set.  Regression:
-- issue_units took the cap of the project's region (620800) but posted from
-- the issuance account of the owner's region (620700), and set_issuance_cap
-- counts what was already issued by the issuance account's region: the 10 t
-- of rx1 were not counted and rx2 passed a cap of 15 t.  Units are now
-- issued from the project's region.
SELECT register_project(:farm, 'UCAPX', 'capped later', 'U-FOREST', '620800', 'a') AS px \gset
SELECT publicize_project(:px, :'today'::date - 30), approve_project(:px);
SELECT submit_monitoring(:px, '[2025-01-01,2025-06-30]', '10 t') AS rx1 \gset
SELECT submit_monitoring(:px, '[2025-07-01,2025-12-31]', '10 t') AS rx2 \gset
SELECT verify_monitoring(:rx1, :ver, '10 t', 'ok'), verify_monitoring(:rx2, :ver, '10 t', 'ok');
SELECT issue_units(:rx1);
SELECT set_issuance_cap('CER', 'enterprise', '620800', :this_year, 15);
SELECT throws_ok(format('SELECT issue_units(%s)', :rx2), 'CL004', NULL,
                 'issue_units: 10 t issued before the cap was set, 10 t more pass a cap of 15 t');

-- ---- recall ----
SELECT throws_ok($$SELECT recall_issuance('620700-2025-UFOREST-000099000-000099000', 'x')$$, '22023', NULL,
                 'recall_issuance of an unknown serial');
SELECT throws_ok($$SELECT recall_issuance('620700-2025-UFOREST-1-1', 'x')$$, '22P02', NULL,
                 'recall_issuance of a malformed serial');
SELECT throws_ok($$SELECT recall_issuance('620900-2025-UCAP-000000001-000000001', '')$$, '22023', NULL,
                 'recall_issuance with an empty reason');
SELECT certificate AS c2 FROM retire_serials(:capfirm, '620900-2025-UCAP-000000001-000000002', 'voluntary', 'x') \gset
SELECT is((SELECT cancelled || '/' || flagged FROM recall_issuance('620900-2025-UCAP-000000005-000000005', 'plots counted twice')),
          '8/2', 'recall_issuance cancels the 8 t still held and flags the 2 t retired');
SELECT is(verify_certificate(:'c2'), true, '... the flagged certificate still verifies');
SELECT is(certificate(:'c2') ->> 'recall_reason', 'plots counted twice', '... and says so');
SELECT is((SELECT debt_tonnes FROM project WHERE id = :pc), 2::bigint, '... the project owes the 2 t retired');
SELECT throws_ok($$SELECT recall_issuance('620900-2025-UCAP-000000001-000000001', 'again')$$, 'CL007', NULL,
                 'recall_issuance twice');

-- ---- R5: apps, traders ----
SELECT transfer_units(:hotel, :cit_a, 5), transfer_units(:hotel, :cit_b, 5);
SELECT retire_units(:cit_b, 1, 'voluntary', 'B');
SET LOCAL ROLE u_app;
SELECT carbon.act_as(:cit_a);
SELECT throws_ok(format($$SELECT carbon.retire_units(%s, 1, 'voluntary', 'x')$$, :cit_b), '42501', NULL,
                 'an app acting for citizen A cannot retire B''s units');
SELECT throws_ok(format('SELECT carbon.transfer_units(%s, %s, 1)', :cit_b, :cit_a), '42501', NULL,
                 'an app acting for citizen A cannot transfer B''s units');
SELECT throws_ok(format('SELECT carbon.tradable_units(%s)', :cit_b), '42501', NULL,
                 'an app acting for citizen A cannot read B''s tradable units');
SELECT lives_ok(format($$SELECT carbon.retire_units(%s, 1, 'voluntary', 'A''s own trip')$$, :cit_a),
                'an app retires its acting citizen''s units');
SELECT is((SELECT count(*) FILTER (WHERE account <> :cit_a) || '/' || count(*) FILTER (WHERE account = :cit_a)
             FROM carbon.unit_block), '0/2', 'RLS: the app sees only A''s serial blocks (held and retired)');
SELECT is((SELECT count(*) FILTER (WHERE account <> :cit_a) || '/' || count(*) FILTER (WHERE account = :cit_a)
             FROM carbon.v_retirements), '0/1', 'RLS: the app sees only A''s retirements');
SELECT is(carbon.verify_certificate(:'c1'), true, 'an app verifies anyone''s certificate');
SELECT throws_ok(format('SELECT carbon.issue_units(%s)', :rs), '42501', NULL, 'an app cannot issue units');
SELECT throws_ok($$SELECT carbon.recall_issuance('620700-2025-UFOREST-000000001-000000001', 'x')$$, '42501', NULL,
                 'an app cannot recall an issuance');
SELECT throws_ok(format($$SELECT carbon.register_project(%s, 'UAPP', 't', 'U-FOREST', '620700', 'a')$$, :cit_a),
                 '42501', NULL, 'an app cannot register a project');
RESET ROLE;
SET LOCAL ROLE u_trader;
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :hotel), '42501', NULL,
                 'a trader cannot act for an account not bound to it');
SELECT carbon.act_as(:farm);
SELECT throws_ok(format('SELECT carbon.transfer_units(%s, %s, 1)', :hotel, :farm), '42501', NULL,
                 'a trader acting for its bound account cannot move another''s units');
SELECT lives_ok(format('SELECT carbon.transfer_units(%s, %s, 1)', :farm, :hotel),
                'a trader moves its bound account''s units');
SELECT lives_ok(format($$SELECT carbon.submit_monitoring(%s, '[2025-10-01,2025-10-31]', '1 t')$$, :p),
                'a trader acting for the owner submits monitoring');
SELECT throws_ok(format($$SELECT carbon.submit_monitoring(%s, '[2024-01-01,2024-01-31]', '1 t')$$, :pc), '42501', NULL,
                 'a trader cannot submit monitoring for another owner''s project');
RESET ROLE;

-- No serial in two blocks: a block forged over another's serials is refused
-- (as the owner: nobody else may write blocks), whichever side it overlaps.
SELECT id AS some_block, project AS bp, first AS bf, last AS bl FROM unit_block WHERE last > first ORDER BY project, first LIMIT 1 \gset
CREATE TEMP TABLE forge AS SELECT * FROM unit_block WHERE id = :some_block;
SELECT throws_ok(format($$INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
                          SELECT issuance, project, vintage, class, %s, %s, account, 'held', entry_id FROM forge$$,
                        :bf, :bf), '23505', NULL, 'a forged block that begins where another does is refused');
SELECT throws_ok(format($$INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
                          SELECT issuance, project, vintage, class, %s, %s, account, 'held', entry_id FROM forge$$,
                        :bf + 1, :bl + 1000000), '23P01', NULL,
                 'a forged block that begins inside another is refused (23P01)');
INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
  SELECT issuance, project, vintage, class, 998000000, 998000500, account, 'held', entry_id FROM forge;
SELECT throws_ok(format($$INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
                          SELECT issuance, project, vintage, class, 998000300, 998000300, account, 'held', entry_id
                          FROM forge$$), '23P01', NULL,
                 'a forged block deep inside a long block (its start far before) is refused');
DELETE FROM unit_block WHERE first = 998000000;
SELECT throws_ok(format($$INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
                          SELECT issuance, project, vintage, class, 999000000, 999000001, account, 'held', entry_id
                          FROM forge UNION ALL
                          SELECT issuance, project, vintage, class, 999000001, 999000002, account, 'held', entry_id
                          FROM forge$$), '23P01', NULL,
                 'two forged blocks of one statement that overlap each other are refused');
SELECT lives_ok($$INSERT INTO unit_block (issuance, project, vintage, class, first, last, account, state, entry_id)
                  SELECT issuance, project, vintage, class, 999000000, 999000001, account, 'held', entry_id FROM forge$$,
                'a block over serials no block has is not refused by the check (verify_integrity tells it from an issuance)');
DELETE FROM unit_block WHERE first = 999000000;
SELECT is_empty('SELECT check_name FROM verify_integrity() WHERE NOT ok', 'verify_integrity passes after all of this');

SELECT * FROM finish();
ROLLBACK;

