-- The books of carbon units (财会〔2019〕22号; api.md §7, docs/accounting.md):
-- the worked example.  An enterprise buys 100 t at 60 元 and 50 t at 66 元,
-- sells 80 t at 70 元 and retires 20 t; fees are set to nothing so that the
-- figures are the ones in the docs.  The seller's units were issued to it
-- free: they are not in its books, and its sales are all gain.
SET search_path = carbon, public;
SET timezone = 'UTC';
SELECT set_setting('trade_fee_bps', '0');
-- an empty book around 65 元 (the market's transcript left orders on it)
SELECT count(cancel_order(id)) >= 0 AS book_cleared FROM market_order WHERE status IN ('open', 'partially_filled');
SELECT set_reference_price('CER-I', 65);
SELECT open_account('enterprise', '620700', 'BOOKS-buyer', 'steel works') AS e,
       open_account('enterprise', '620700', 'BOOKS-owner', 'forest farm') AS s,
       open_account('government', '620700', 'BOOKS-bureau', 'ecology bureau') AS g,
       open_account('verifier', '620100', 'BOOKS-verifier', 'verifier') AS v \gset
SELECT define_methodology('BOOKS-FOREST', 1, 'forest', 'I', 'forestry', 'per_unit', '{"g_per_unit": 1}');
SELECT submit_methodology('BOOKS-FOREST', 1), approve_methodology('BOOKS-FOREST', 1, 'ok'),
       publish_methodology('BOOKS-FOREST', 1, now() - interval '1 day');
SELECT register_project(:s, 'BOOKSFOREST', 'forest farm', 'BOOKS-FOREST', '620700', 'sinks') AS p \gset
SELECT publicize_project(:p, carbon._local_today() - 30), approve_project(:p);
SELECT submit_monitoring(:p, '[2025-01-01,2025-12-31]', '1000 t') AS r \gset
SELECT verify_monitoring(:r, :v, '1000 t', 'checked');
SELECT count(*) AS blocks FROM issue_units(:r);
SELECT deposit_cash(:e, 20000, 'books-e') > 0 AS deposited, deposit_cash(:g, 20000, 'books-g') > 0 AS deposited;

-- the owner offers, the enterprise buys twice
SELECT status FROM place_order(:s, 'sell', 100, 60);
SELECT status, filled, avg_price FROM place_order(:e, 'buy', 100, 60);
SELECT status FROM place_order(:s, 'sell', 50, 66);
SELECT status, filled, avg_price FROM place_order(:e, 'buy', 50, 66);
-- the bureau bids 70; the enterprise sells it 80 t; then retires 20 t
SELECT status FROM place_order(:g, 'buy', 80, 70);
SELECT status, filled, avg_price FROM place_order(:e, 'sell', 80, 70);
SELECT (retire_units(:e, 20, 'voluntary', 'steel works 2025')).serials;

-- the enterprise's journal: each booking's debits, then its credits
SELECT subject_code, subject_name, debit, credit, memo FROM v_accounting_journal
WHERE account = :e ORDER BY at, credit > 0, subject_code;
-- its trial balance: 50 t left at 62 元 in 1489
SELECT subject_code, subject_name, debit, credit, balance FROM v_trial_balance WHERE account = :e ORDER BY subject_code;
SELECT tonnes, cost FROM unit_cost WHERE account = :e;
-- the owner: free units, sold for 9,300 元, all of it to 6301
SELECT subject_code, debit, credit, balance FROM v_trial_balance WHERE account = :s ORDER BY subject_code;
-- the bureau bought 80 t at 70
SELECT subject_code, debit, credit, balance FROM v_trial_balance WHERE account = :g ORDER BY subject_code;
SELECT check_name, ok FROM verify_integrity() WHERE check_name = 'books_match_units';
DELETE FROM setting WHERE name = 'trade_fee_bps';   -- back to the default
