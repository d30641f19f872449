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

-- CACHE: the lines' ids come from a backend's own run of 32 (1,500
-- instructions a value fewer, three or four lines a trade); they rise
-- within a transaction, and lines of different transactions differ in `at`
CREATE SEQUENCE carbon.accounting_line_id_seq CACHE 32;
CREATE TABLE carbon.accounting_line (
  id            bigint NOT NULL DEFAULT nextval('carbon.accounting_line_id_seq'),
  account       bigint NOT NULL,              -- carbon.account (no foreign keys: written per trade)
  entry_id      bigint NOT NULL,
  at            timestamptz NOT NULL,
  subject_code  text NOT NULL CHECK (subject_code IN ('1002', '1489', '6301', '6711')),
  debit         bigint NOT NULL CHECK (debit >= 0),   -- fen
  credit        bigint NOT NULL CHECK (credit >= 0),  -- fen
  memo          text NOT NULL,
  CHECK ((debit = 0) <> (credit = 0)),
  -- one index, an account's books by time: a line is written by the market
  -- or the ledger per trade or move (three or four a trade), and a second
  -- index on id alone cost every line an entry more; id comes from the
  -- sequence and lines are append-only, so it is unique all the same
  PRIMARY KEY (account, at, id)
);
ALTER SEQUENCE carbon.accounting_line_id_seq OWNED BY carbon.accounting_line.id;
COMMENT ON TABLE carbon.accounting_line IS
  '会计分录 journal lines of the books of carbon units, in fen, written as the units move (append-only)';
CREATE TRIGGER accounting_line_append_only BEFORE UPDATE OR DELETE ON carbon.accounting_line
  FOR EACH ROW EXECUTE FUNCTION carbon._append_only();
CREATE TRIGGER accounting_line_no_truncate BEFORE TRUNCATE ON carbon.accounting_line
  FOR EACH STATEMENT EXECUTE FUNCTION carbon._append_only();

SELECT pg_catalog.pg_extension_config_dump('carbon.unit_cost', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_line', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.accounting_line_id_seq', '');

CREATE VIEW carbon.v_accounting_journal WITH (security_invoker = true) AS
  SELECT l.account, l.at, l.subject_code, s.name AS subject_name,
         (l.debit / 100.0)::numeric(20, 2) AS debit, (l.credit / 100.0)::numeric(20, 2) AS credit, l.memo
  FROM carbon.accounting_line l
  JOIN carbon.accounting_subject s ON s.code = l.subject_code;
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
  SELECT l.account, l.subject_code, s.name AS subject_name,
         (sum(l.debit) / 100.0)::numeric(20, 2) AS debit, (sum(l.credit) / 100.0)::numeric(20, 2) AS credit,
         ((sum(l.debit) - sum(l.credit)) / 100.0)::numeric(20, 2) AS balance
  FROM carbon.accounting_line l
  JOIN carbon.accounting_subject s ON s.code = l.subject_code
  GROUP BY l.account, l.subject_code, s.name;
COMMENT ON VIEW carbon.v_trial_balance IS
  '试算平衡表 per account and subject: total debits, total credits and balance (debit − credit), in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.account IS '账户 the enterprise or government account';
COMMENT ON COLUMN carbon.v_trial_balance.subject_code IS '科目代码 subject code';
COMMENT ON COLUMN carbon.v_trial_balance.subject_name IS '科目名称 subject name';
COMMENT ON COLUMN carbon.v_trial_balance.debit IS '借方发生额 total debits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.credit IS '贷方发生额 total credits in yuan';
COMMENT ON COLUMN carbon.v_trial_balance.balance IS '余额 debit − credit in yuan (1489: the book cost of the units held)';
