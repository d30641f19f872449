-- pgTAP: the books of certified units (api.md §7 "Accounting (财会〔2019〕22号)";
-- src/accounting.c, src/sql/80_accounting.sql): every line of the issue's
-- worked example (buy 100 t at 60, buy 50 t at 66, sell 80 t at 70, retire
-- 20 t) and its trial balance; units obtained free (issued, or received by
-- transfer) not booked, so selling them credits the whole proceeds to 6301;
-- fees in the purchase cost and out of the proceeds, floored per side per
-- fill; a sale at a loss (6711) and at cost (no 6301/6711 line); the
-- weighted average rounded half up in fen, the last tonne taking what is
-- left so that the pool empties to exactly 0.00; transfers out, retirements,
-- cancellations (carbon_admin), a recall (a resting sell of the recalled
-- units included), buys that retire at once (purchase and 6711 in the same
-- entry, incoming or resting) and a transfer reversed by the administrator
-- (docs/accounting.md: the units go back as a new gift); personal accounts
-- and escrow are no events in the books;
-- append-only lines (CL009) and no direct writes for carbon_admin; who reads
-- the books (auditors and admins all of them, a trader acting for its bound
-- enterprise its own, apps nothing: 42501); and verify_integrity()'s
-- 'books_match_units', clean after everything and false once the books are
-- tampered with.
BEGIN;
SET search_path = carbon, public;
SELECT plan(97);

-- ---- setup ----
SELECT open_account('enterprise', '620702', 'AC-e', 'E, the worked example') AS e \gset
SELECT open_account('enterprise', '620702', 'AC-s1', 'S1, sells units issued to it') AS s1 \gset
SELECT open_account('enterprise', '620702', 'AC-s2', 'S2, sells units issued to it') AS s2 \gset
SELECT open_account('enterprise', '620702', 'AC-s3', 'S3, whose issuance is recalled') AS s3 \gset
SELECT open_account('enterprise', '620702', 'AC-b', 'B, the buyer on the other side') AS b \gset
SELECT open_account('government', '620700', 'AC-gov', 'a bureau that pays fees') AS gov \gset
SELECT open_account('enterprise', '620702', 'AC-l', 'L, sells at a loss') AS l \gset
SELECT open_account('enterprise', '620702', 'AC-r', 'R, the rounding') AS r \gset
SELECT open_account('enterprise', '620702', 'AC-e2', 'E2, gives, retires, is cancelled') AS e2 \gset
SELECT open_account('enterprise', '620702', 'AC-rcv', 'RCV, receives a gift') AS rcv \gset
SELECT open_account('enterprise', '620702', 'AC-e3', 'E3, holds recalled units') AS e3 \gset
SELECT open_account('enterprise', '620702', 'AC-e4', 'E4, buys to retire') AS e4 \gset
SELECT open_account('enterprise', '620702', 'AC-e5', 'E5, whose gift is reversed') AS e5 \gset
SELECT open_account('personal', '620700', 'AC-p', 'a citizen') AS p \gset
SELECT open_account('verifier', '620100', 'AC-ver', 'verifier') AS ver \gset

SELECT define_methodology('AC-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('AC-FOREST', 1), approve_methodology('AC-FOREST', 1, 'panel'),
       publish_methodology('AC-FOREST', 1, now() - interval '1 day');
SELECT count(*) AS issued FROM
  (VALUES (:s1, 'ACS1', 1000), (:s2, 'ACS2', 500), (:s3, 'ACS3', 20)) AS o(owner, code, t),
  LATERAL (SELECT register_project(o.owner, o.code, o.code, 'AC-FOREST', '620702', 'additional') AS p) p,
  LATERAL (SELECT publicize_project(p.p, current_date - 30), approve_project(p.p)) a,
  LATERAL (SELECT submit_monitoring(p.p, '[2025-01-01,2025-12-31]', carbon.co2e_grams(o.t * 1000000)) AS r) r,
  LATERAL (SELECT verify_monitoring(r.r, :ver, carbon.co2e_grams(o.t * 1000000), 'ok')) v,
  LATERAL (SELECT count(*) FROM issue_units(r.r)) i;
SELECT deposit_cash(a, 100000, 'AC cash') FROM unnest(ARRAY[:e, :b, :gov, :l, :r, :e2, :e3, :e4, :e5, :p]::bigint[]) a;

-- the lines of the vouchers, in yuan, as v_accounting_journal shows them, with the voucher's entry and
-- an id that orders them (the voucher's, then debits first: the view's order of a voucher's lines)
CREATE TEMP VIEW lines AS
  SELECT v.account, v.entry_id, l.subject_code, (l.debit / 100.0)::numeric(20, 2) AS debit,
         (l.credit / 100.0)::numeric(20, 2) AS credit, v.memo, v.id * 10 + l.n AS id
  FROM carbon.accounting_voucher v
  CROSS JOIN LATERAL (VALUES (1, '1489', v.dr_1489, 0::bigint), (2, '1002', v.dr_1002, 0), (3, '6711', v.dr_6711, 0),
                             (4, '1489', 0, v.cr_1489), (5, '1002', 0, v.cr_1002), (6, '6301', 0, v.cr_6301))
               AS l (n, subject_code, debit, credit)
  WHERE l.debit <> 0 OR l.credit <> 0;
CREATE TEMP VIEW pool AS SELECT account, tonnes || ' t / ' || cost || ' fen' AS p FROM carbon.unit_cost;

SELECT ok(NOT EXISTS (SELECT 1 FROM accounting_voucher) AND
          (SELECT string_agg(p, ' ' ORDER BY account) FROM pool WHERE account IN (:s1, :s2, :s3)) = '1000 t / 0 fen 500 t / 0 fen 20 t / 0 fen',
          'units issued to an enterprise are not booked: no lines, its pool holds the tonnes at no cost');

-- ---- 1. the worked example: trade_fee_bps = 0 ----
SELECT set_setting('trade_fee_bps', '0');
SELECT set_reference_price('CER-I', 64.00);   -- band 57.60 to 70.40
SELECT order_id AS s1_ask FROM place_order(:s1, 'sell', 100, 60.00) \gset
SELECT ok(NOT EXISTS (SELECT 1 FROM accounting_voucher)
          AND (SELECT p FROM pool WHERE account = :s1) = '1000 t / 0 fen',
          'a resting sell is no event in the books: its escrowed units stay in the seller''s pool');
SELECT is((SELECT status FROM place_order(:e, 'buy', 100, 60.00)), 'filled', 'E buys 100 t at 60.00');
SELECT place_order(:s2, 'sell', 50, 66.00);
SELECT is((SELECT status FROM place_order(:e, 'buy', 50, 66.00)), 'filled', 'E buys 50 t at 66.00');
SELECT place_order(:b, 'buy', 80, 70.00);
SELECT is((SELECT status || '/' || avg_price FROM place_order(:e, 'sell', 80, 70.00)), 'filled/70.00',
          'E sells 80 t at 70.00 (the resting buy''s price)');
SELECT is((SELECT count(*) FROM retire_units(:e, 20, 'voluntary', 'AC worked example')), 1::bigint, 'E retires 20 t');

SELECT results_eq(
  format($$SELECT e.kind, l.subject_code, l.debit, l.credit FROM lines l JOIN carbon.entry e ON e.id = l.entry_id
           WHERE l.account = %s ORDER BY l.entry_id, l.debit = 0, l.subject_code$$, :e),
  $$VALUES ('trade', '1489', 6000.00, 0.00), ('trade', '1002', 0.00, 6000.00),
           ('trade', '1489', 3300.00, 0.00), ('trade', '1002', 0.00, 3300.00),
           ('trade', '1002', 5600.00, 0.00), ('trade', '1489', 0.00, 4960.00), ('trade', '6301', 0.00, 640.00),
           ('retirement', '6711', 1240.00, 0.00), ('retirement', '1489', 0.00, 1240.00)$$,
  'E''s books, entry by entry: two purchases at cost, the sale at 62.00/t with 640.00 gain, the retirement at 62.00/t');
SELECT bag_eq(
  format('SELECT subject_code, subject_name, debit, credit FROM carbon.v_accounting_journal WHERE account = %s', :e),
  $$VALUES ('1489', '碳排放权资产', 6000.00, 0.00), ('1002', '银行存款', 0.00, 6000.00),
           ('1489', '碳排放权资产', 3300.00, 0.00), ('1002', '银行存款', 0.00, 3300.00),
           ('1002', '银行存款', 5600.00, 0.00), ('1489', '碳排放权资产', 0.00, 4960.00),
           ('6301', '营业外收入', 0.00, 640.00),
           ('6711', '营业外支出', 1240.00, 0.00), ('1489', '碳排放权资产', 0.00, 1240.00)$$,
  'v_accounting_journal shows the same lines in yuan, with the subjects'' names');
SELECT results_eq(
  format('SELECT subject_code, subject_name, debit, credit, balance FROM carbon.v_trial_balance WHERE account = %s ORDER BY 1', :e),
  $$VALUES ('1002', '银行存款', 5600.00, 9300.00, -3700.00), ('1489', '碳排放权资产', 9300.00, 6200.00, 3100.00),
           ('6301', '营业外收入', 0.00, 640.00, -640.00), ('6711', '营业外支出', 1240.00, 0.00, 1240.00)$$,
  'E''s trial balance: 1489 3,100.00 (50 t × 62.00), 1002 −3,700.00, 6301 −640.00, 6711 1,240.00');
SELECT is((SELECT p FROM pool WHERE account = :e), '50 t / 310000 fen', 'E''s pool: 50 t at 3,100.00');
SELECT ok((SELECT bool_and(CASE WHEN e.kind = 'retirement' THEN l.memo ~* 'retire'
                                WHEN l.debit > 0 AND l.subject_code = '1489' THEN l.memo ~* 'purchase'
                                ELSE l.memo ~* 'purchase|sale' END)
           FROM lines l JOIN carbon.entry e ON e.id = l.entry_id WHERE l.account = :e),
          'each line''s memo says what happened (purchase, sale, retirement)');
SELECT results_eq(
  format('SELECT account, subject_code, debit, credit FROM carbon.v_accounting_journal WHERE account IN (%s, %s) ORDER BY account, debit = 0',
         :s1, :s2),
  format($$VALUES (%s::bigint, '1002', 6000.00, 0.00), (%1$s, '6301', 0.00, 6000.00),
                  (%s::bigint, '1002', 3300.00, 0.00), (%2$s, '6301', 0.00, 3300.00)$$, :s1, :s2),
  'the sellers of units issued to them: the whole proceeds to 6301, no 1489 line');
SELECT is((SELECT string_agg(p, ' ' ORDER BY account) FROM pool WHERE account IN (:s1, :s2)), '900 t / 0 fen 450 t / 0 fen',
          '... and their pools lose the tonnes at no cost');
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s ORDER BY debit = 0', :b),
                  $$VALUES ('1489', 5600.00, 0.00), ('1002', 0.00, 5600.00)$$,
                  'B, who bought E''s 80 t: 1489 Dr 5,600.00 / 1002 Cr 5,600.00');
SELECT is((SELECT count(DISTINCT entry_id) FROM accounting_voucher
            WHERE entry_id = (SELECT entry_id FROM trade WHERE seller = :e AND buyer = :b)), 1::bigint,
          'a trade''s lines for buyer and seller are in the trade''s entry');
SELECT place_order(:s1, 'sell', 5, 64.00);
SELECT count(*) AS n_lines FROM lines \gset
SELECT cancel_order(max(id)) FROM market_order WHERE account = :s1;
SELECT is((SELECT count(*) FROM lines), :n_lines::bigint, 'cancelling a resting sell writes no line either');

-- ---- 2. fees: trade_fee_bps = 30, floor(value × 30 / 10,000) per side per fill ----
SELECT set_setting('trade_fee_bps', '30');
SELECT set_reference_price('CER-I', 61.00);   -- band 54.90 to 67.10
SELECT place_order(:s1, 'sell', 10, 61.37);
SELECT is((SELECT status FROM place_order(:gov, 'buy', 10, 61.37)), 'filled', 'the bureau (government) buys 10 t at 61.37');
SELECT entry_id AS fee_entry, buyer_fee || '/' || seller_fee AS fees FROM trade WHERE buyer = :gov \gset
SELECT is(:'fees'::text, '184/184', 'the trade: 613.70 yuan, fee floor(184.11) = 1.84 yuan a side');
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0',
                         :gov, :fee_entry),
                  $$VALUES ('1489', 615.54, 0.00), ('1002', 0.00, 615.54)$$,
                  'a purchase costs price × tonnes + the buyer''s fee: 613.70 + 1.84');
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0',
                         :s1, :fee_entry),
                  $$VALUES ('1002', 611.86, 0.00), ('6301', 0.00, 611.86)$$,
                  'a sale''s proceeds are net of the seller''s fee: 613.70 − 1.84, all of it 6301 for units issued free');
-- two fills of 1 t at 61.67: 61.67 × 30 bp = 18.501 fen, floored per fill (18 + 18, not floor(37.002))
SELECT place_order(:s1, 'sell', 1, 61.67);
SELECT place_order(:s2, 'sell', 1, 61.67);
SELECT is((SELECT status || '/' || filled FROM place_order(:gov, 'buy', 2, 61.67)), 'filled/2', 'the bureau buys 2 t from two sellers');
SELECT entry_id AS two_fill_entry FROM trade WHERE buyer = :gov AND price = 6167 LIMIT 1 \gset
SELECT bag_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s', :gov, :two_fill_entry),
              $$VALUES ('1489', 61.85, 0.00), ('1002', 0.00, 61.85), ('1489', 61.85, 0.00), ('1002', 0.00, 61.85)$$,
              'two fills, two purchases: 61.67 + 0.18 each (123.70 in all, not 123.71)');
SELECT bag_eq(format('SELECT account, subject_code, debit, credit FROM lines WHERE account IN (%s, %s) AND entry_id = %s',
                     :s1, :s2, :two_fill_entry),
              format($$VALUES (%s::bigint, '1002', 61.49, 0.00), (%1$s, '6301', 0.00, 61.49),
                              (%s::bigint, '1002', 61.49, 0.00), (%2$s, '6301', 0.00, 61.49)$$, :s1, :s2),
              '... each seller receives 61.67 − 0.18');
-- the bureau's pool: 12 t at 615.54 + 123.70 = 739.24; 5 t leave at 739.24 × 5 / 12 = 308.016… → 308.02
SELECT place_order(:b, 'buy', 5, 61.00);
SELECT is((SELECT status FROM place_order(:gov, 'sell', 5, 61.00)), 'filled', 'the bureau sells 5 t at 61.00');
SELECT entry_id AS gov_sale FROM trade WHERE seller = :gov \gset
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0, subject_code',
                         :gov, :gov_sale),
                  $$VALUES ('1002', 304.09, 0.00), ('6711', 3.93, 0.00), ('1489', 0.00, 308.02)$$,
                  'a sale at a loss with fees: proceeds 305.00 − 0.91, cost 308.02, 6711 Dr 3.93');
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0',
                         :b, :gov_sale),
                  $$VALUES ('1489', 305.91, 0.00), ('1002', 0.00, 305.91)$$,
                  '... and B''s purchase costs 305.00 + 0.91');
SELECT is((SELECT p FROM pool WHERE account = :gov), '7 t / 43122 fen', 'the bureau''s pool: 7 t at 739.24 − 308.02');
SELECT set_setting('trade_fee_bps', '0');

-- ---- 3. a sale at a loss, and one at cost (fee 0) ----
SELECT set_reference_price('CER-I', 60.00);   -- band 54.00 to 66.00
SELECT place_order(:s1, 'sell', 10, 60.00);
SELECT place_order(:l, 'buy', 10, 60.00);
SELECT place_order(:b, 'buy', 4, 55.00);
SELECT place_order(:l, 'sell', 4, 55.00);
SELECT entry_id AS loss_entry FROM trade WHERE seller = :l \gset
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0, subject_code',
                         :l, :loss_entry),
                  $$VALUES ('1002', 220.00, 0.00), ('6711', 20.00, 0.00), ('1489', 0.00, 240.00)$$,
                  'L sells 4 t bought at 60.00 for 55.00: 1489 Cr 240.00, 6711 Dr 20.00');
SELECT place_order(:b, 'buy', 6, 60.00);
SELECT place_order(:l, 'sell', 6, 60.00);
SELECT results_eq(format($$SELECT subject_code, debit, credit FROM lines
                           WHERE account = %s AND entry_id = (SELECT max(entry_id) FROM trade WHERE seller = %1$s) ORDER BY debit = 0$$, :l),
                  $$VALUES ('1002', 360.00, 0.00), ('1489', 0.00, 360.00)$$,
                  'a sale at cost: no 6301 or 6711 line');
SELECT results_eq(format('SELECT subject_code, balance FROM carbon.v_trial_balance WHERE account = %s ORDER BY 1', :l),
                  $$VALUES ('1002', -20.00), ('1489', 0.00), ('6711', 20.00)$$,
                  'L''s trial balance: 1489 back to 0.00, the 20.00 lost in 6711');

-- ---- 4. rounding: 3 t at 10.00 and 3 t at 10.01 (6,003 fen for 6 t), sold 1 t at a time ----
SELECT set_reference_price('CER-I', 10.00);   -- band 9.00 to 11.00
SELECT place_order(:s1, 'sell', 3, 10.00);
SELECT place_order(:r, 'buy', 3, 10.00);
SELECT place_order(:s2, 'sell', 3, 10.01);
SELECT place_order(:r, 'buy', 3, 10.01);
SELECT is((SELECT p FROM pool WHERE account = :r), '6 t / 6003 fen', 'R''s pool: 6 t at 60.03');
SELECT place_order(:b, 'buy', 6, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT place_order(:r, 'sell', 1, 10.00);
SELECT results_eq(format($$SELECT credit FROM lines WHERE account = %s AND subject_code = '1489' AND credit > 0
                           ORDER BY entry_id$$, :r),
                  $$VALUES (10.01), (10.00), (10.01), (10.00), (10.01), (10.00)$$,
                  'each tonne leaves at the average rounded half up: 1000.5, 1000.4, 1000.5, 1000.33…, 1000.5 fen, then what is left');
SELECT results_eq(format($$SELECT subject_code, debit, credit FROM lines WHERE account = %s AND subject_code IN ('6301', '6711')
                           ORDER BY entry_id$$, :r),
                  $$VALUES ('6711', 0.01, 0.00), ('6711', 0.01, 0.00), ('6711', 0.01, 0.00)$$,
                  '... a tonne at 10.01 sold for 10.00 loses a fen, one at 10.00 neither gains nor loses');
SELECT results_eq(format('SELECT subject_code, debit, credit, balance FROM carbon.v_trial_balance WHERE account = %s ORDER BY 1', :r),
                  $$VALUES ('1002', 60.00, 60.03, -0.03), ('1489', 60.03, 60.03, 0.00), ('6711', 0.03, 0.00, 0.03)$$,
                  'R''s trial balance: 1489 exactly 0.00 once the pool is empty');
SELECT is((SELECT p FROM pool WHERE account = :r), '0 t / 0 fen', '... and the pool is 0 t at 0 fen');

-- ---- 5. transfers, retirement, cancellation, recall, buys that retire, citizens ----
SELECT set_reference_price('CER-I', 60.00);
SELECT place_order(:s1, 'sell', 10, 60.00);
SELECT place_order(:e2, 'buy', 10, 60.00);     -- E2: 10 t at 600.00
SELECT transfer_units(:e2, :rcv, 4, 'a gift') AS gift \gset
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s AND entry_id = %s ORDER BY debit = 0', :e2, :gift),
                  $$VALUES ('6711', 240.00, 0.00), ('1489', 0.00, 240.00)$$,
                  'transfer_units out of the books: 6711 Dr / 1489 Cr 240.00 at average cost');
SELECT ok(NOT EXISTS (SELECT 1 FROM accounting_voucher WHERE account = :rcv), '... the receiving enterprise books nothing');
SELECT is((SELECT p FROM pool WHERE account = :rcv), '4 t / 0 fen', '... its pool gains 4 t at no cost');
SELECT ok((SELECT memo ~* 'transfer' FROM accounting_voucher WHERE entry_id = :gift LIMIT 1), '... and the memo says transfer');
SELECT place_order(:b, 'buy', 4, 60.00);
SELECT place_order(:rcv, 'sell', 4, 60.00);
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s ORDER BY debit = 0', :rcv),
                  $$VALUES ('1002', 240.00, 0.00), ('6301', 0.00, 240.00)$$,
                  'selling units received free: the whole proceeds to 6301');
SELECT transfer_units(:e2, :p, 1) AS gift_p \gset
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE entry_id = %s ORDER BY debit = 0', :gift_p),
                  $$VALUES ('6711', 60.00, 0.00), ('1489', 0.00, 60.00)$$,
                  'a transfer to a citizen: 6711 for the giver, nothing for the citizen');
SELECT retire_units(:e2, 2, 'entity_neutrality', 'AC E2');
SELECT results_eq(format($$SELECT e.kind, l.subject_code, l.debit, l.credit FROM lines l JOIN carbon.entry e ON e.id = l.entry_id
                           WHERE l.account = %s AND e.kind = 'retirement' ORDER BY l.debit = 0$$, :e2),
                  $$VALUES ('retirement', '6711', 120.00, 0.00), ('retirement', '1489', 0.00, 120.00)$$,
                  'retire_units: 6711 Dr / 1489 Cr 120.00 (2 t at 60.00)');
CREATE ROLE ac_admin LOGIN IN ROLE carbon_admin;
SET LOCAL ROLE ac_admin;
SELECT carbon.cancel_units(:e2, 1, 'counted twice') AS cancel_entry \gset
RESET ROLE;
SELECT results_eq(format($$SELECT subject_code, debit, credit, memo ~* 'cancel' FROM lines
                           WHERE account = %s AND entry_id = %s ORDER BY debit = 0$$, :e2, :cancel_entry),
                  $$VALUES ('6711', 60.00, 0.00, true), ('1489', 0.00, 60.00, true)$$,
                  'cancel_units by carbon_admin: 6711 Dr / 1489 Cr 60.00');
SELECT is((SELECT p FROM pool WHERE account = :e2), '2 t / 12000 fen', 'E2''s pool: 2 t at 120.00 left');

-- a recall: E3 holds 5 t of S3's issuance (bought at 60.00) beside 5 t of S1's (at 50.00);
-- S3 offers 5 t more when the recall comes
SELECT set_reference_price('CER-I', 55.00);   -- band 49.50 to 60.50
SELECT place_order(:s1, 'sell', 5, 50.00);
SELECT place_order(:e3, 'buy', 5, 50.00);
SELECT place_order(:s3, 'sell', 5, 60.00);
SELECT place_order(:e3, 'buy', 5, 60.00);
SELECT place_order(:s3, 'sell', 5, 60.50);
SELECT max(id) AS before_recall FROM lines \gset
SET LOCAL ROLE ac_admin;
SELECT cancelled AS recalled FROM carbon.recall_issuance('620702-2025-ACS3-000000001-000000001', 'plots counted twice') \gset
RESET ROLE;
SELECT is(:recalled::bigint, 20::bigint, 'recall_issuance cancels the 20 t (15 at S3, its offer included, and 5 at E3)');
SELECT results_eq(format($$SELECT account, subject_code, debit, credit, memo ~* 'recall' FROM lines
                           WHERE id > %s ORDER BY account, debit = 0$$, :before_recall),
                  format($$VALUES (%s::bigint, '6711', 275.00, 0.00, true), (%1$s, '1489', 0.00, 275.00, true)$$, :e3),
                  'the recall: E3 6711 Dr / 1489 Cr 275.00 (5 t of a pool of 10 t at 550.00); S3''s free units, no line');
SELECT is((SELECT string_agg(p, ' ' ORDER BY account) FROM pool WHERE account IN (:s3, :e3)), '0 t / 0 fen 5 t / 27500 fen',
          '... S3''s pool empties (its escrowed tonnes included), E3 keeps 5 t at 275.00');

-- a buy that retires what it buys
SELECT set_reference_price('CER-I', 60.00);
SELECT place_order(:s1, 'sell', 5, 60.00);
SELECT is((SELECT status FROM place_order(:e4, 'buy', 5, 60.00, 'GTC', 'CER-I', NULL, 'AC event', 'event_neutrality')),
          'filled', 'E4 buys 5 t at 60.00 to retire them');
SELECT results_eq(format('SELECT count(DISTINCT entry_id) FROM accounting_voucher WHERE account = %s', :e4), $$VALUES (1::bigint)$$,
                  '... one entry');
SELECT results_eq(format('SELECT subject_code, debit, credit FROM lines WHERE account = %s ORDER BY id', :e4),
                  $$VALUES ('1489', 300.00, 0.00), ('1002', 0.00, 300.00), ('6711', 300.00, 0.00), ('1489', 0.00, 300.00)$$,
                  '... the purchase lines, then 6711 Dr / 1489 Cr at the cost');
SELECT is((SELECT p FROM pool WHERE account = :e4), '0 t / 0 fen', '... and nothing stays in the pool');
SELECT place_order(:e4, 'buy', 2, 60.00, 'GTC', 'CER-I', NULL, 'AC event, resting');
SELECT place_order(:s1, 'sell', 2, 60.00);
SELECT bag_eq(format($$SELECT subject_code, debit, credit FROM lines
                       WHERE account = %s AND entry_id = (SELECT max(entry_id) FROM trade WHERE buyer = %1$s)$$, :e4),
              $$VALUES ('1489', 120.00, 0.00), ('1002', 0.00, 120.00), ('6711', 120.00, 0.00), ('1489', 0.00, 120.00)$$,
              'a resting buy that retires, filled by an incoming sell: the same four lines in the sell''s entry');

-- a transfer reversed by the administrator (docs/accounting.md, "Reversals"): the
-- units go back as a new gift, booked free by E5 and out at average cost by E3
SELECT place_order(:s1, 'sell', 10, 60.00);
SELECT place_order(:e5, 'buy', 10, 60.00);     -- E5: 10 t at 600.00
SELECT transfer_units(:e5, :e3, 4, 'a gift, by mistake') AS gift5 \gset
SELECT is((SELECT string_agg(p, ' ' ORDER BY account) FROM pool WHERE account IN (:e3, :e5)), '9 t / 27500 fen 6 t / 36000 fen',
          'E5 gives 4 t to E3: E5 books 240.00 out, E3''s pool gains 4 t at no cost');
SET LOCAL ROLE ac_admin;
SELECT carbon.reverse_entry(:gift5, 'sent to the wrong account') AS rev5 \gset
RESET ROLE;
SELECT results_eq(format($$SELECT account, subject_code, debit, credit FROM lines WHERE entry_id = %s ORDER BY account, debit = 0$$, :rev5),
                  format($$VALUES (%s::bigint, '6711', 122.22, 0.00), (%1$s, '1489', 0.00, 122.22)$$, :e3),
                  'the reversal: E3 gives the 4 t back at its average (275.00 × 4 / 9 = 122.22), E5 books nothing');
SELECT is((SELECT string_agg(p, ' ' ORDER BY account) FROM pool WHERE account IN (:e3, :e5)), '5 t / 15278 fen 10 t / 36000 fen',
          '... E5''s 4 t come back at no cost');

-- citizens keep no books
SELECT place_order(:s1, 'sell', 3, 60.00);
SELECT place_order(:p, 'buy', 3, 60.00);
SELECT retire_units(:p, 1, 'voluntary', 'AC citizen');
SELECT place_order(:b, 'buy', 2, 60.00);
SELECT place_order(:p, 'sell', 2, 60.00);
SELECT is((SELECT balance(:p, 'CER')), 1::bigint, 'the citizen bought 3 t, was given 1, retired 1 and sold 2');
SELECT ok(NOT EXISTS (SELECT 1 FROM accounting_voucher WHERE account = :p) AND NOT EXISTS (SELECT 1 FROM unit_cost WHERE account = :p),
          '... and has no lines and no pool');
SELECT results_eq(format($$SELECT account, subject_code, debit, credit FROM lines
                           WHERE entry_id IN (SELECT entry_id FROM trade WHERE %s IN (buyer, seller)) ORDER BY entry_id, debit = 0$$, :p),
                  format($$VALUES (%s::bigint, '1002', 180.00, 0.00), (%1$s, '6301', 0.00, 180.00),
                                  (%s::bigint, '1489', 120.00, 0.00), (%2$s, '1002', 0.00, 120.00)$$, :s1, :b),
                  '... while the enterprises on the other side of its trades book theirs');

-- ---- 6. append-only; no direct writes; who reads the books ----
SELECT throws_ok('UPDATE carbon.accounting_voucher SET dr_1489 = dr_1489', 'CL009', NULL, 'UPDATE of accounting_voucher: CL009');
SELECT throws_ok(format('DELETE FROM carbon.accounting_voucher WHERE account = %s', :e), 'CL009', NULL, 'DELETE of accounting_voucher: CL009');
SELECT throws_ok('TRUNCATE carbon.accounting_voucher', 'CL009', NULL, 'TRUNCATE of accounting_voucher: CL009');
SET LOCAL ROLE ac_admin;
SELECT throws_ok(format($$INSERT INTO carbon.accounting_voucher (account, entry_id, at, memo, dr_1002, cr_6301)
                          VALUES (%s, 1, now(), 'x', 100, 100)$$, :e), '42501', NULL,
                 'carbon_admin cannot write vouchers directly');
SELECT throws_ok(format('UPDATE carbon.unit_cost SET cost = 0 WHERE account = %s', :e), '42501', NULL,
                 '... nor change a pool');
RESET ROLE;

SELECT count(*) AS all_lines, count(DISTINCT account) AS all_accounts FROM lines \gset
SELECT count(*) AS all_tb FROM v_trial_balance \gset
SELECT count(*) AS e_lines FROM lines WHERE account = :e \gset
CREATE ROLE ac_auditor LOGIN IN ROLE carbon_auditor;
CREATE ROLE ac_trader LOGIN IN ROLE carbon_trader;
CREATE ROLE ac_app LOGIN IN ROLE carbon_app;
SELECT bind_account(:e, 'ac_trader');
SELECT bind_account(:e, 'ac_app');
CREATE TEMP TABLE e_tb AS SELECT * FROM v_trial_balance WHERE account = :e;
GRANT SELECT ON e_tb TO PUBLIC;

SET LOCAL ROLE ac_auditor;
SELECT is((SELECT count(*) || '/' || count(DISTINCT account) FROM carbon.v_accounting_journal), :all_lines || '/' || :all_accounts,
          'carbon_auditor reads every account''s lines');
SELECT is((SELECT count(*) FROM carbon.v_trial_balance), :all_tb::bigint, '... and every trial balance');
RESET ROLE;
SET LOCAL ROLE ac_admin;
SELECT is((SELECT count(*) FROM carbon.v_accounting_journal), :all_lines::bigint, 'carbon_admin reads every account''s lines');
RESET ROLE;

SET LOCAL ROLE ac_trader;
SELECT is((SELECT count(*) FROM carbon.v_accounting_journal), 0::bigint,
          'a trader that acts for no account sees no lines');
SELECT throws_ok(format('SELECT carbon.act_as(%s)', :b), '42501', NULL, 'a trader cannot act for an enterprise not bound to it');
SELECT carbon.act_as(:e);
SELECT is((SELECT count(*) FILTER (WHERE account <> :e) || '/' || count(*) FROM carbon.v_accounting_journal), '0/' || :e_lines,
          'the trader acting for E sees E''s lines and no other');
SELECT set_eq('SELECT * FROM carbon.v_trial_balance', 'SELECT * FROM e_tb', '... and E''s trial balance only');
SELECT is((SELECT string_agg(account || ':' || tonnes, ' ') FROM carbon.unit_cost), :e || ':50', '... and E''s pool only');
RESET ROLE;

SET LOCAL ROLE ac_app;
SELECT carbon.act_as(:e);
SELECT throws_ok('SELECT count(*) FROM carbon.accounting_voucher', '42501', NULL,
                 'carbon_app cannot read accounting_voucher, even acting for a bound enterprise');
SELECT throws_ok('SELECT count(*) FROM carbon.v_accounting_journal', '42501', NULL, '... nor v_accounting_journal');
SELECT throws_ok('SELECT count(*) FROM carbon.v_trial_balance', '42501', NULL, '... nor v_trial_balance');
SELECT throws_ok('SELECT count(*) FROM carbon.unit_cost', '42501', NULL, '... nor unit_cost');
SELECT is((SELECT count(*) FROM carbon.accounting_subject), 4::bigint, '... it reads the four subjects');
RESET ROLE;

-- ---- 7. after everything ----
SELECT is_empty($$SELECT o.id, o.status FROM carbon.market_order o WHERE o.status IN ('open', 'partially_filled')$$,
                'no order is left resting (every counterparty above was consumed)');
SELECT is_empty($$SELECT account, at FROM carbon.v_accounting_journal GROUP BY 1, 2 HAVING sum(debit) <> sum(credit)$$,
                'every booking balances: debits = credits per account and time, as the journal shows them');
SELECT is_empty($$SELECT id FROM carbon.accounting_voucher WHERE dr_1489 + dr_1002 + dr_6711 <> cr_1489 + cr_1002 + cr_6301$$,
                '... and every voucher');
SELECT is((SELECT count(*) FROM carbon.v_accounting_journal), (SELECT count(*) FROM lines),
          'the journal shows every non-zero amount of every voucher as a line');
SELECT is_empty($$SELECT a.id, a.tier FROM carbon.account a
                  WHERE (a.id IN (SELECT account FROM carbon.accounting_voucher) OR a.id IN (SELECT account FROM carbon.unit_cost))
                    AND NOT (a.kind = 'participant' AND a.tier IN ('enterprise', 'government'))$$,
                'only enterprise and government accounts have lines or a pool');
SELECT is_empty($$
  WITH cash AS (SELECT buyer AS account, -(price * tonnes + buyer_fee) AS v FROM carbon.trade
                UNION ALL SELECT seller, price * tonnes - seller_fee FROM carbon.trade),
  net AS (SELECT account, sum(v) AS v FROM cash GROUP BY 1),
  bank AS (SELECT account, sum(dr_1002) - sum(cr_1002) AS v FROM carbon.accounting_voucher GROUP BY 1)
  SELECT a.id, net.v, bank.v FROM carbon.account a
  LEFT JOIN net ON net.account = a.id LEFT JOIN bank ON bank.account = a.id
  WHERE a.tier IN ('enterprise', 'government') AND coalesce(net.v, 0) <> coalesce(bank.v, 0)$$,
  '1002 of every book-keeping account is exactly the cash its trades moved, fees included');
SELECT is_empty($$SELECT c.account, c.cost, l.net FROM carbon.unit_cost c
                  LEFT JOIN (SELECT account, sum(dr_1489 - cr_1489) AS net FROM carbon.accounting_voucher
                             GROUP BY 1) l ON l.account = c.account
                  WHERE c.cost <> coalesce(l.net, 0)$$,
                'every pool''s cost is its 1489 balance');
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'books_match_units'), true,
          'verify_integrity(): books_match_units ok');
SELECT is_empty($$SELECT check_name, detail FROM carbon.verify_integrity() WHERE NOT ok$$, 'verify_integrity(): every check ok');

-- tampering, as the superuser (unit_cost has no append-only trigger)
UPDATE unit_cost SET cost = cost + 1 WHERE account = :e;
SELECT is((SELECT ok || ' ' || (detail ~ ('account ' || :e || ':')) FROM verify_integrity() WHERE check_name = 'books_match_units'),
          'false true', 'a pool one fen off its 1489 lines: books_match_units false, naming the account');
UPDATE unit_cost SET cost = cost - 1 WHERE account = :e;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'books_match_units'), true, '... ok again once restored');
UPDATE unit_cost SET tonnes = tonnes + 1 WHERE account = :rcv;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'books_match_units'), false,
          'a pool one tonne off the serial blocks: false');
UPDATE unit_cost SET tonnes = tonnes - 1 WHERE account = :rcv;
DELETE FROM unit_cost WHERE account = :gov;
SELECT is((SELECT ok FROM verify_integrity() WHERE check_name = 'books_match_units'), false,
          'a book-keeping account''s pool missing: false');
INSERT INTO unit_cost VALUES (:gov, 7, 43122);
-- forged vouchers: they cannot be deleted, so they go in inside a savepoint that is rolled back
-- (the result is read into a variable first: pgTAP's own rows must not be rolled back)
SELECT throws_ok(format($$INSERT INTO accounting_voucher (account, entry_id, at, memo, cr_6301) VALUES (%s, %s, now(), 'forged', 100)$$,
                        :e, :gift), '23514', NULL, 'a voucher that does not balance is refused by its own CHECK, even the superuser''s');
SELECT throws_ok(format($$INSERT INTO accounting_voucher (account, entry_id, at, memo) VALUES (%s, %s, now(), 'forged')$$,
                        :e, :gift), '23514', NULL, '... and so is one that books nothing');
SAVEPOINT tamper;
ALTER TABLE accounting_voucher DROP CONSTRAINT accounting_voucher_balances;
INSERT INTO accounting_voucher (account, entry_id, at, memo, dr_1002, cr_6301) SELECT :e, :gift, now(), 'forged', 100, 200;
SELECT ok || ' ' || (detail ~ ('voucher \d+ of account ' || :e || ': debits 100, credits 200')) AS forged_ok
  FROM verify_integrity() WHERE check_name = 'books_match_units' \gset
ROLLBACK TO SAVEPOINT tamper;
SELECT is(:'forged_ok'::text, 'false true', 'with the CHECK dropped by a DBA, an unbalanced voucher: false, naming it');
SAVEPOINT tamper;
INSERT INTO accounting_voucher (account, entry_id, at, memo, dr_1489, cr_1002) SELECT :e, :gift, now(), 'forged', 100, 100;
SELECT ok::text AS forged_ok FROM verify_integrity() WHERE check_name = 'books_match_units' \gset
ROLLBACK TO SAVEPOINT tamper;
SELECT is(:'forged_ok'::text, 'false', 'a forged balanced purchase (1489 without units): false');
SELECT is_empty($$SELECT check_name, detail FROM carbon.verify_integrity() WHERE NOT ok$$, 'every check ok once restored');

-- ---- points in the books (issue 21 item 2a, docs/accounting.md): every point comes free, so none is booked ----
SELECT open_account('enterprise', '620702', 'ACC-points-firm') AS pts_firm,
       open_account('government', '620702', 'ACC-points-bureau') AS pts_bureau \gset
SELECT lives_ok(format('SELECT issue(%s, %L, 1000)', :pts_firm, 'POINT'), 'an enterprise is issued points (free)');
SELECT lives_ok(format('SELECT donate(%s, %s, 100)', :pts_firm, :pts_bureau),
                'it donates some to a government account (out of its books at cost 0)');
SELECT is((SELECT count(*) FROM accounting_voucher WHERE account IN (:pts_firm, :pts_bureau))
          + (SELECT count(*) FROM unit_cost WHERE account IN (:pts_firm, :pts_bureau)), 0::bigint,
          'points obtained free and given away write no line and no pool');

SELECT * FROM finish();
ROLLBACK;
