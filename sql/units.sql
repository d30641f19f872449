-- Projects and certified units (api.md §5, issue 19): a forestry project
-- from registration to retirement; a recall that cancels what is held,
-- flags what was retired, draws on the buffer pool and leaves a debt the
-- next issuance repays; and the platform certifying pooled personal
-- reductions through the same path.
SET search_path = carbon, public;
\set SHOW_CONTEXT never

SELECT open_account('enterprise', '620702', '91620700MA00FOREST', '甘州林场 Ganzhou forest farm') AS farm,
       open_account('verifier', '620100', '91620100MA00VERIFY', '陇原核查 Longyuan verification') AS verifier,
       open_account('enterprise', '620702', '91620700MA00HOTEL', '丹霞酒店 Danxia hotel') AS hotel,
       open_account('government', '620700', '11620700MA00ECO', '张掖生态环境局 Zhangye ecology bureau') AS bureau,
       open_account('platform', '620700', '91620700MA00PLATFORM', '张掖碳普惠平台 Zhangye platform') AS platform
\gset

-- A forestry methodology keeps 10 % of every issuance in the buffer pool.
SELECT define_methodology('ZY-FOREST', 1, '林业碳汇 forest carbon sink', 'I', 'forestry', 'per_unit',
                          '{"g_per_unit": 1, "buffer_pct": 10}');
SELECT define_methodology('ZY-FOREST', 2, 'bad buffer', 'I', 'forestry', 'per_unit',
                          '{"g_per_unit": 1, "buffer_pct": 60}');              -- 22023
SELECT submit_methodology('ZY-FOREST', 1), approve_methodology('ZY-FOREST', 1, 'expert panel'),
       publish_methodology('ZY-FOREST', 1, now() - interval '1 year');

-- Registration, publicity (7 working days, weekends and holidays excluded), approval.
SELECT register_project(:farm, 'ZYFOREST01', '甘州区退耕还林碳汇 Ganzhou reforestation', 'ZY-FOREST', '620702',
                        'no financing without carbon revenue') AS project \gset
SELECT register_project(:farm, 'ZY BAD', 'x', 'ZY-FOREST', '620702', 'y');          -- 22023: code
SELECT register_project(:farm, 'ZYOTHER', 'x', 'NO-SUCH', '620702', 'y');           -- CL006
SELECT approve_project(:project);                                                    -- CL007: not publicized
SELECT working_days('2026-09-28', '2026-10-09') AS sept28_to_oct9;
INSERT INTO holiday VALUES ('2026-10-01', '国庆节'), ('2026-10-02', '国庆节'), ('2026-10-05', '国庆节'),
                           ('2026-10-06', '国庆节'), ('2026-10-07', '国庆节');
SELECT working_days('2026-09-28', '2026-10-09') AS with_national_day;
SELECT publicize_project(:project, carbon._local_today() + 1);
\set VERBOSITY terse
SELECT approve_project(:project);                                                    -- CL007: too early
\set VERBOSITY default
UPDATE project SET status = 'registered', publicity_starts = NULL WHERE id = :project;  -- (test shortcut)
SELECT publicize_project(:project, carbon._local_today() - 30);
SELECT publicize_project(:project, carbon._local_today() - 30);                               -- CL007: once
SELECT approve_project(:project);
SELECT project = :project AS ours, code, status, owner = :farm AS farm_owns, region, issued_tonnes FROM v_projects;

-- Monitoring: periods never overlap (an exclusion constraint).
SELECT submit_monitoring(:project, '[2024-01-01,2024-12-31]', '1234.5678 t',
                         '{"plots": 12, "survey": "2025-02"}') AS r2024 \gset
SELECT submit_monitoring(:project, '[2024-12-01,2025-03-31]', '10 t');               -- 23P01
SELECT submit_monitoring(:project, '[2025-01-01,2025-12-31]', '350.9 t') AS r2025 \gset
-- Verification: only an active verifier that is not the owner; verified <= claimed.
SELECT verify_monitoring(:r2024, :farm, '1000 t', 'self-verified');                 -- CL008
SELECT verify_monitoring(:r2024, :verifier, '1300 t', 'more than claimed');          -- 22023
SELECT issue_units(:r2024);                                                          -- CL007: not verified
SELECT verify_monitoring(:r2024, :verifier, '1200.4 t', 'reasonable assurance; 34.17 t of deadwood excluded');
SELECT verify_monitoring(:r2024, :verifier, '1200.4 t', 'again');                    -- CL007

-- Issuance: 1200 whole tonnes (0.4 t recorded, not issued), 120 to the buffer pool.
SELECT * FROM issue_units(:r2024);
SELECT issue_units(:r2024);                                                          -- CL007: once
SELECT issued_tonnes, remainder FROM monitoring_report WHERE id = :r2024;
SELECT balance(:farm, 'CER') AS farm,
       balance(account_id('platform', 'carbon_ledger:buffer_pool:620702'), 'CER') AS buffer_pool;
SELECT serial, vintage, tonnes FROM v_issuances ORDER BY serial;
SELECT block, class, methodology, methodology_version, factors FROM unit_issuance ORDER BY first;

-- The farm sells 300 t to the hotel and 500 t to the bureau: oldest vintage
-- first, the farm's block split.
SELECT transfer_units(:farm, :hotel, 300, 'sale 2026-001', 'farm-sale-1') AS sale1 \gset
SELECT transfer_units(:farm, :hotel, 300, 'sale 2026-001', 'farm-sale-1') = :sale1 AS same_entry_on_retry;
SELECT transfer_units(:farm, :bureau, 500) > 0 AS sold;
SELECT transfer_units(:farm, :hotel, 1000);                                          -- CL001
SELECT transfer_units(:farm, :farm, 1);                                              -- 22023
SELECT a.display_name, serial_text('620702', b.vintage, 'ZYFOREST01', b.first, b.last) AS block, b.state
FROM unit_block b JOIN account a ON a.id = b.account ORDER BY b.first;

-- The hotel retires 100 t for a carbon-neutral conference, by "oldest
-- first", and the bureau a named range for an eco-damage case.
SELECT certificate AS hotel_cert, serials FROM retire_units(:hotel, 100, 'event_neutrality',
                                            '2026 丹霞旅游节 Danxia tourism festival', NULL, 'hotel-ret-1') \gset
SELECT :'serials' AS hotel_serials, length(:'hotel_cert') AS hex_digits, :'hotel_cert' ~ '^[0-9a-f]{64}$' AS lowercase_hex;
SELECT certificate = :'hotel_cert' AS same_certificate_on_retry
FROM retire_units(:hotel, 100, 'event_neutrality', '2026 丹霞旅游节 Danxia tourism festival', NULL, 'hotel-ret-1');
SELECT verify_certificate(:'hotel_cert') AS verifies;
SELECT retire_units(:bureau, 5, 'eco_damage_compensation', '黑河湿地 Heihe wetland');  -- 22023: no case
SELECT retire_units(:bureau, 5, 'carbon_magic', 'x');                                 -- 22023: purpose
SELECT retire_serials(:bureau, '620702-2024-ZYFOREST01-000000500-00000050', 'voluntary', 'x');  -- 22P02
SELECT retire_serials(:bureau, '620702-2024-ZYFOREST01-000000100-000000200', 'voluntary', 'x'); -- CL001: hotel's
SELECT certificate AS bureau_cert, serials FROM retire_serials(:bureau, '620702-2024-ZYFOREST01-000000901-000000910',
       'eco_damage_compensation', '黑河湿地 Heihe wetland', '(2026)甘0702刑初15号') \gset
SELECT :'serials' AS bureau_serials, verify_certificate(:'bureau_cert') AS verifies;
SELECT account = :bureau AS bureau, tonnes, purpose, beneficiary, reference FROM v_retirements
WHERE certificate = :'bureau_cert';
-- An altered certificate no longer verifies; an unknown one is false, not an error.
BEGIN;
UPDATE retirement SET beneficiary = 'someone else' WHERE certificate = :'bureau_cert';
SELECT verify_certificate(:'bureau_cert') AS altered_verifies;
ROLLBACK;
SELECT verify_certificate(repeat('0', 64)) AS unknown, verify_certificate('not a certificate') AS garbage,
       verify_certificate(NULL) AS null_input;
-- Retired units are final: they cannot move or be retired again.
SELECT retire_serials(:bureau, '620702-2024-ZYFOREST01-000000901-000000901', 'voluntary', 'x');  -- CL001
SELECT balance(:hotel, 'CER') AS hotel, balance(:bureau, 'CER') AS bureau, balance(:farm, 'CER') AS farm;

-- Administrative cancellation (注销) of 10 t the farm still holds.
SELECT cancel_units(:farm, 10, 'duplicate registration under another scheme') > 0 AS cancelled;

-- The path of one serial.
SELECT serial_block, event, from_account = :farm AS from_farm, to_account = :hotel AS to_hotel, tonnes, reference
FROM serial_history('620702-2024-ZYFOREST01-000000150-000000150');

-- The 2025 report is verified and issued too (vintage 2025, numbers go on).
SELECT verify_monitoring(:r2025, :verifier, '350 t', 'ok');
SELECT * FROM issue_units(:r2025);

-- A verification error: the 2024 issuance is recalled.  What is still held
-- (the farm's, the hotel's, the bureau's, the 2024 buffer block) is
-- cancelled; 110 t already retired stay retired, flagged; the buffer covers
-- them (its own 120 t block), so the farm owes nothing.
SELECT * FROM recall_issuance('620702-2024-ZYFOREST01-000000150-000000150', 'double-counted plots 7 and 9');
SELECT recall_issuance('620702-2024-ZYFOREST01-000000001-000000001', 'again');       -- CL007
SELECT verify_certificate(:'hotel_cert') AS still_verifies,
       certificate(:'hotel_cert') ->> 'recall_reason' AS flagged_with;
SELECT event, tonnes, reference FROM serial_history('620702-2024-ZYFOREST01-000000150-000000150')
WHERE event = 'recall';
SELECT debt_tonnes FROM project WHERE id = :project;
SELECT balance(:hotel, 'CER') AS hotel, balance(:bureau, 'CER') AS bureau, balance(:farm, 'CER') AS farm;

-- A project without a buffer: a recall after retirements leaves a debt,
-- which the next issuance repays first (issued and cancelled at once).
SELECT define_methodology('ZY-PV', 1, '分布式光伏 rooftop solar', 'II', 'solar', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('ZY-PV', 1), approve_methodology('ZY-PV', 1, 'panel'),
       publish_methodology('ZY-PV', 1, now() - interval '1 year');
SELECT register_project(:farm, 'ZYPV01', '林场屋顶光伏 farm rooftop solar', 'ZY-PV', '620702', 'grid parity not reached')
  AS pv \gset
SELECT publicize_project(:pv, carbon._local_today() - 30), approve_project(:pv);
SELECT submit_monitoring(:pv, '[2025-01-01,2025-06-30]', '40 t') AS pv1 \gset
SELECT submit_monitoring(:pv, '[2025-07-01,2025-12-31]', '40 t') AS pv2 \gset
SELECT verify_monitoring(:pv1, :verifier, '40 t', 'ok'), verify_monitoring(:pv2, :verifier, '40 t', 'ok');
SELECT * FROM issue_units(:pv1);
SELECT tradable_units(:farm) AS class_i_tradable, balance(:farm, 'CER') AS farm_cer;   -- class II: not tradable
SELECT transfer_units(:farm, :hotel, 40 + 315) > 0 AS sold;       -- the 2025 forestry units and the solar ones
SELECT count(*) AS certificates FROM retire_units(:hotel, 355, 'entity_neutrality', '丹霞酒店 2025 运营');
SELECT cancelled, flagged FROM recall_issuance('620702-2025-ZYPV01-000000001-000000040', 'meter fault');
SELECT debt_tonnes FROM project WHERE id = :pv;
SELECT * FROM issue_units(:pv2);                                 -- the debt is repaid first
SELECT debt_tonnes FROM project WHERE id = :pv;
SELECT balance(:farm, 'CER') AS farm;

-- Pooling: the platform certifies personal reductions it pooled from citizens.
SELECT open_account('personal', '620702', 'unit-citizen-1', '赵敏') AS citizen \gset
SELECT issue(:citizen, 'RED', 2500000) > 0 AS credited;           -- 2.5 t of green travel
SELECT transfer(:citizen, :platform, 'RED', 2500000, 'pooling for certification') > 0 AS pooled;
SELECT define_methodology('ZY-POOL', 1, '个人减排归集 pooled personal reductions', 'I', 'pooled', 'per_unit',
                          '{"g_per_unit": 1}');
SELECT submit_methodology('ZY-POOL', 1), approve_methodology('ZY-POOL', 1, 'panel'),
       publish_methodology('ZY-POOL', 1, now() - interval '1 year');
SELECT register_project(:platform, 'ZYPOOL', '张掖个人减排归集 Zhangye pooled reductions', 'ZY-POOL', '620700',
                        'citizens cannot certify alone') AS pool \gset
SELECT publicize_project(:pool, carbon._local_today() - 30), approve_project(:pool);
SELECT submit_monitoring(:pool, '[2025-01-01,2025-12-31]', '2.5 t') AS pr \gset
SELECT verify_monitoring(:pr, :verifier, '2.5 t', 'pooled records sampled');
SELECT * FROM issue_units(:pr);
SELECT balance(:platform, 'RED') AS platform_red_left, balance(:platform, 'CER') AS platform_cer;

-- Which units leave a holder: oldest vintage first, then the ones it got
-- first (first in, first out), then serial.  The 丹霞 cooperative's solar
-- units of one vintage (serials 1-10, then 11-20) pass through two firms:
-- the orchard gets 11-15 first and 1-5 later, so its next 3 t are 11-13.
SELECT open_account('enterprise', '620702', 'unit-fifo-coop', '丹霞光伏合作社 Danxia solar co-op') AS coop,
       open_account('enterprise', '620702', 'unit-fifo-orchard', '临泽果园 Linze orchard') AS orchard,
       open_account('enterprise', '620702', 'unit-fifo-mill', '高台面粉厂 Gaotai mill') AS mill \gset
SELECT register_project(:coop, 'ZYPV02', '合作社屋顶光伏 co-op rooftop solar', 'ZY-PV', '620702', 'no subsidy')
  AS pv02 \gset
SELECT publicize_project(:pv02, carbon._local_today() - 30), approve_project(:pv02);
SELECT submit_monitoring(:pv02, '[2025-01-01,2025-06-30]', '10 t') AS pv02a \gset
SELECT submit_monitoring(:pv02, '[2025-07-01,2025-12-31]', '10 t') AS pv02b \gset
SELECT verify_monitoring(:pv02a, :verifier, '10 t', 'ok');
SELECT serial, tonnes FROM issue_units(:pv02a);
SELECT transfer_units(:coop, :mill, 10) > 0 AS all_of_the_first_to_the_mill;
SELECT verify_monitoring(:pv02b, :verifier, '10 t', 'ok');
SELECT serial, tonnes FROM issue_units(:pv02b);
SELECT transfer_units(:coop, :orchard, 5) > 0 AS coop_to_orchard;
SELECT transfer_units(:mill, :orchard, 5) > 0 AS mill_to_orchard;
SELECT transfer_units(:orchard, :mill, 3) > 0 AS orchard_sells_3;
SELECT carbon.serial_text(i.region, b.vintage, p.code, b.first, b.last) AS orchard_holds
FROM carbon.unit_block b JOIN carbon.unit_issuance i ON i.id = b.issuance JOIN carbon.project p ON p.id = b.project
WHERE b.account = :orchard ORDER BY b.first;

-- Reports and integrity.
SELECT code, status, issued_tonnes FROM v_projects ORDER BY code;
SELECT asset, tier, region, issued, outstanding, retired, cancelled FROM v_supply
WHERE asset = 'CER' OR (asset = 'RED' AND tier = 'platform') ORDER BY 1, 2, 3;
SELECT check_name, ok FROM verify_integrity() WHERE NOT ok OR check_name IN ('units_match_balances', 'serials_cover_issuances');
