-- ---- Accounting for carbon units (财会〔2019〕22号, api.md §7; docs/accounting.md) ----
--
-- Enterprise and government accounts keep books of the certified units they
-- hold: a purchase debits 1489 碳排放权资产 at cost, a sale credits it at
-- the weighted-average cost of the tonnes sold (the difference to 6301 or
-- 6711), units obtained free are not booked, units that leave without
-- payment (retired, cancelled, recalled, given away) go to 6711 at
-- weighted-average cost.  The lines are written by the ledger as the units
-- move (src/accounting.c), never recomputed: the books are as append-only as
-- the journal, and verify_integrity() checks them against the serial blocks.

CREATE TABLE carbon.accounting_subject (
  code     text PRIMARY KEY,
  name     text NOT NULL,
  name_en  text NOT NULL
);
INSERT INTO carbon.accounting_subject VALUES
  ('1002', '银行存款', 'bank deposits'),
  ('1489', '碳排放权资产', 'carbon emission rights assets'),
  ('6301', '营业外收入', 'non-operating income'),
  ('6711', '营业外支出', 'non-operating expenses');
COMMENT ON TABLE carbon.accounting_subject IS
  '会计科目 the accounting subjects of 财会〔2019〕22号 that the books of carbon units use';

-- The units an account holds, at book cost: what a sale or retirement
-- takes its weighted-average cost from.
CREATE TABLE carbon.unit_cost (
  account  bigint PRIMARY KEY,                    -- carbon.account (no foreign key: written per trade)
  tonnes   bigint NOT NULL CHECK (tonnes >= 0),
  cost     bigint NOT NULL CHECK (cost >= 0)      -- fen
) WITH (fillfactor = 10);
-- Updated on every trade: room for HOT updates, and few rows a page.
-- PostgreSQL prunes a page whose free space is below the share fillfactor
-- leaves at a read after an update, which here is nearly every read, and
-- each prune walks every row of the page: at fillfactor 50 that was 67 rows,
-- about a prune every other order (1 % of a B5 order's instructions).
COMMENT ON TABLE carbon.unit_cost IS
  '碳排放权资产账面 the certified units an enterprise or government account holds (in escrow included) and their book cost in fen';

-- CACHE: the vouchers' ids come from a backend's own run of 32 (1,500
-- instructions a value fewer, two a trade); they rise within a
-- transaction, and vouchers of different transactions differ in `at`
CREATE SEQUENCE carbon.accounting_voucher_id_seq CACHE 32;
-- One voucher (记账凭证) per booking: an account's side of one trade or
-- move, its lines in one row, one column per subject and side a booking can
-- use (debits first, as 借 comes before 贷).  A purchase is Dr 1489 /
-- Cr 1002, a sale Dr 1002 / Cr 1489 with Cr 6301 or Dr 6711, units leaving
-- Dr 6711 / Cr 1489.  A voucher balances by its own CHECK.  One row and
-- one index entry a booking, instead of one per line, took 15 % off the
-- market's CPU an order (B4: 3.5 lines an order, 1.4 vouchers).
-- v_accounting_journal shows the lines.
CREATE TABLE carbon.accounting_voucher (
  id        bigint NOT NULL DEFAULT nextval('carbon.accounting_voucher_id_seq'),
  account   bigint NOT NULL,              -- carbon.account (no foreign keys: written per trade)
  entry_id  bigint NOT NULL,
  at        timestamptz NOT NULL,
  memo      text NOT NULL,
  dr_1489   bigint NOT NULL DEFAULT 0 CHECK (dr_1489 >= 0),   -- fen: 碳排放权资产 debit (bought at cost)
  dr_1002   bigint NOT NULL DEFAULT 0 CHECK (dr_1002 >= 0),   -- 银行存款 debit (a sale's proceeds)
  dr_6711   bigint NOT NULL DEFAULT 0 CHECK (dr_6711 >= 0),   -- 营业外支出 debit (a loss; units leaving)
  cr_1489   bigint NOT NULL DEFAULT 0 CHECK (cr_1489 >= 0),   -- 碳排放权资产 credit (book cost out)
  cr_1002   bigint NOT NULL DEFAULT 0 CHECK (cr_1002 >= 0),   -- 银行存款 credit (a purchase's cost)
  cr_6301   bigint NOT NULL DEFAULT 0 CHECK (cr_6301 >= 0),   -- 营业外收入 credit (a gain)
  CONSTRAINT accounting_voucher_balances CHECK (dr_1489 + dr_1002 + dr_6711 = cr_1489 + cr_1002 + cr_6301),
  CONSTRAINT accounting_voucher_books CHECK (dr_1489 + dr_1002 + dr_6711 > 0),
  -- one index, an account's books by time (id comes from the sequence and
  -- vouchers are append-only, so it is unique all the same)
  PRIMARY KEY (account, at, id)
);
ALTER SEQUENCE carbon.accounting_voucher_id_seq OWNED BY carbon.accounting_voucher.id;
COMMENT ON TABLE carbon.accounting_voucher IS
  '记账凭证 vouchers of the books of carbon units, one per account and trade or move, in fen, each balanced, written as the units move (append-only); v_accounting_journal shows their lines';
CREATE TRIGGER accounting_voucher_append_only BEFORE UPDATE OR DELETE ON carbon.accounting_voucher
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER accounting_voucher_no_truncate BEFORE TRUNCATE ON carbon.accounting_voucher
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();

SELECT pg_catalog.pg_extension_config_dump('carbon.unit_cost', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_voucher', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_voucher_id_seq', '');

-- A voucher's lines: one per subject and side it uses.
CREATE VIEW carbon.v_accounting_journal WITH (security_invoker = true) AS
  SELECT v.account, v.at, l.subject_code, s.name AS subject_name,
         (l.debit / 100.0)::numeric(20, 2) AS debit, (l.credit / 100.0)::numeric(20, 2) AS credit, v.memo
  FROM carbon.accounting_voucher v
  CROSS JOIN LATERAL (VALUES ('1489', v.dr_1489, 0::bigint), ('1002', v.dr_1002, 0), ('6711', v.dr_6711, 0),
                             ('1489', 0, v.cr_1489), ('1002', 0, v.cr_1002), ('6301', 0, v.cr_6301))
               AS l (subject_code, debit, credit)
  JOIN carbon.accounting_subject s ON s.code = l.subject_code
  WHERE l.debit <> 0 OR l.credit <> 0;
COMMENT ON VIEW carbon.v_accounting_journal IS
  '会计分录 the journal of the books of carbon units (财会〔2019〕22号) of enterprise and government accounts, in yuan';
COMMENT ON COLUMN carbon.v_accounting_journal.account IS '账户 the enterprise or government account whose books these are';
COMMENT ON COLUMN carbon.v_accounting_journal.at IS '记账时间 when the units moved (the ledger entry''s time)';
COMMENT ON COLUMN carbon.v_accounting_journal.subject_code IS '科目代码 subject code: 1489, 1002, 6301 or 6711';
COMMENT ON COLUMN carbon.v_accounting_journal.subject_name IS '科目名称 subject name';
COMMENT ON COLUMN carbon.v_accounting_journal.debit IS '借方 debit in yuan (0.00 on a credit line)';
COMMENT ON COLUMN carbon.v_accounting_journal.credit IS '贷方 credit in yuan (0.00 on a debit line)';
COMMENT ON COLUMN carbon.v_accounting_journal.memo IS '摘要 what happened: purchase, sale, retirement, cancellation, recall, transfer';

CREATE VIEW carbon.v_trial_balance WITH (security_invoker = true) AS
  SELECT v.account, l.subject_code, s.name AS subject_name,
         (sum(l.debit) / 100.0)::numeric(20, 2) AS debit, (sum(l.credit) / 100.0)::numeric(20, 2) AS credit,
         ((sum(l.debit) - sum(l.credit)) / 100.0)::numeric(20, 2) AS balance
  FROM carbon.accounting_voucher v
  CROSS JOIN LATERAL (VALUES ('1489', v.dr_1489, 0::bigint), ('1002', v.dr_1002, 0), ('6711', v.dr_6711, 0),
                             ('1489', 0, v.cr_1489), ('1002', 0, v.cr_1002), ('6301', 0, v.cr_6301))
               AS l (subject_code, debit, credit)
  JOIN carbon.accounting_subject s ON s.code = l.subject_code
  WHERE l.debit <> 0 OR l.credit <> 0
  GROUP BY v.account, l.subject_code, s.name;
COMMENT ON VIEW carbon.v_trial_balance IS
  '试算平衡表 per account and subject: total debits, total credits and balance (debit − credit), in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.account IS '账户 the enterprise or government account';
COMMENT ON COLUMN carbon.v_trial_balance.subject_code IS '科目代码 subject code';
COMMENT ON COLUMN carbon.v_trial_balance.subject_name IS '科目名称 subject name';
COMMENT ON COLUMN carbon.v_trial_balance.debit IS '借方发生额 total debits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.credit IS '贷方发生额 total credits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.balance IS '余额 debit − credit in yuan (1489: the book cost of the units held)';
