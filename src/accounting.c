/*
 * accounting.c — the books of certified units that enterprise and
 * government accounts keep under 财会〔2019〕22号 (api.md §7,
 * docs/accounting.md), written as the units move.
 *
 * Each such account has one pool (carbon.unit_cost): the tonnes it holds,
 * in escrow included, and their book cost in fen.  A purchase adds its cost
 * (price × tonnes plus the buyer's fee); units obtained free (issued to the
 * account, or given to it) add tonnes at no cost, since they are not
 * booked; whatever leaves takes the pool's weighted-average cost with it,
 * cost × tonnes / pool tonnes rounded half up in fen, and the last tonne
 * takes what is left, so that the pool empties to exactly zero.  The lines
 * (carbon.accounting_line) are in fen; the views show yuan.
 *
 *   purchase   Dr 1489 cost            Cr 1002 cost
 *   sale       Dr 1002 proceeds        Cr 1489 book cost, Cr 6301 gain / Dr 6711 loss
 *   leaving    Dr 6711 book cost       Cr 1489 book cost      (retired, cancelled, recalled, given)
 *   free in    no lines (the pool's tonnes grow at no cost)
 *
 * The market books its trades itself (it knows prices and fees); every
 * other entry that moves certified units is booked from its postings by
 * ledger_book_entry(), called by ledger_post().
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "journal.h"
#include "ledger.h"

#define SUBJECT_BANK	"1002"
#define SUBJECT_UNITS	"1489"
#define SUBJECT_GAIN	"6301"
#define SUBJECT_LOSS	"6711"

/* Enterprise and government accounts keep books (api.md §7); others do not. */
bool
ledger_keeps_books(const LedgerAccount *acc)
{
	return acc->participant &&
		(strcmp(acc->tier, "enterprise") == 0 || strcmp(acc->tier, "government") == 0);
}

/* The pool of an account, locked: (0, 0) before its first units. */
static void
pool_read(int64 account, int64 *tonnes, int64 *cost)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(account)};
	bool		isnull;

	ledger_plan_generic(&plan, "SELECT tonnes, cost FROM carbon.unit_cost WHERE account = $1 FOR UPDATE",
						1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "unit cost lookup failed");
	*tonnes = *cost = 0;
	if (SPI_processed == 1)
	{
		*tonnes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*cost = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/* The book cost of `q` of the pool's tonnes: weighted average, half up. */
static int64
cost_out(int64 account, int64 tonnes, int64 cost, int64 q)
{
	if (q > tonnes)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("the books of account " INT64_FORMAT " hold " INT64_FORMAT " t, " INT64_FORMAT " t leave",
						account, tonnes, q),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
	if (q == tonnes)
		return cost;
	return (int64) (((int128) cost * q * 2 + tonnes) / ((int128) tonnes * 2));
}

/* Up to four lines of one booking. */
typedef struct Lines
{
	int			n;
	Datum		subject[4];
	Datum		debit[4];
	Datum		credit[4];
} Lines;

static void
line(Lines *l, const char *subject, int64 debit, int64 credit)
{
	if (debit == 0 && credit == 0)
		return;
	l->subject[l->n] = CStringGetTextDatum(subject);
	l->debit[l->n] = Int64GetDatum(debit);
	l->credit[l->n++] = Int64GetDatum(credit);
}

/* The pool as it now stands, and the lines, in one statement. */
static void
pool_write(int64 account, int64 tonnes, int64 cost, const Lines *l, int64 entry_id, const char *memo)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[8];

	values[0] = Int64GetDatum(account);
	values[1] = Int64GetDatum(tonnes);
	values[2] = Int64GetDatum(cost);
	values[3] = Int64GetDatum(entry_id);
	values[4] = ledger_array((Datum *) l->subject, NULL, l->n, TEXTOID);
	values[5] = ledger_int8_array((Datum *) l->debit, l->n);
	values[6] = ledger_int8_array((Datum *) l->credit, l->n);
	values[7] = CStringGetTextDatum(memo);
	ledger_plan_generic(&plan,
				"WITH pool AS (INSERT INTO carbon.unit_cost (account, tonnes, cost) VALUES ($1, $2, $3) "
				"              ON CONFLICT (account) DO UPDATE SET tonnes = excluded.tonnes, cost = excluded.cost) "
				"INSERT INTO carbon.accounting_line (account, entry_id, at, subject_code, debit, credit, memo) "
				"SELECT $1, $4, now(), s, d, c, $8 FROM unnest($5, $6, $7) AS u(s, d, c)",
				8, (Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "accounting write failed");
}

/*
 * Book `tonnes` of certified units moving on account `acc` (nothing unless
 * it keeps books): `amount` is the cost of a purchase or the proceeds of a
 * sale (fees deducted), in fen; unused otherwise.
 */
void
ledger_book_units(const LedgerAccount *acc, LedgerBooking kind, int64 tonnes, int64 amount, int64 entry_id,
				  const char *memo)
{
	int64		pool_tonnes,
				pool_cost,
				out;
	Lines		l = {0};

	if (!ledger_keeps_books(acc) || tonnes == 0)
		return;
	pool_read(acc->id, &pool_tonnes, &pool_cost);
	switch (kind)
	{
		case BOOK_FREE_IN:
			pool_tonnes += tonnes;
			break;
		case BOOK_PURCHASE:
			pool_tonnes += tonnes;
			pool_cost += amount;
			line(&l, SUBJECT_UNITS, amount, 0);
			line(&l, SUBJECT_BANK, 0, amount);
			break;
		case BOOK_SALE:
			out = cost_out(acc->id, pool_tonnes, pool_cost, tonnes);
			pool_tonnes -= tonnes;
			pool_cost -= out;
			line(&l, SUBJECT_BANK, amount, 0);
			line(&l, SUBJECT_UNITS, 0, out);
			if (amount > out)
				line(&l, SUBJECT_GAIN, 0, amount - out);
			else
				line(&l, SUBJECT_LOSS, out - amount, 0);
			break;
		case BOOK_OUT:
			out = cost_out(acc->id, pool_tonnes, pool_cost, tonnes);
			pool_tonnes -= tonnes;
			pool_cost -= out;
			line(&l, SUBJECT_LOSS, out, 0);
			line(&l, SUBJECT_UNITS, 0, out);
			break;
	}
	pool_write(acc->id, pool_tonnes, pool_cost, &l, entry_id, memo);
}

/*
 * An entry that moves certified units without a price (issuance, transfer,
 * retirement, cancellation, recall, their reversals): what a book-keeping
 * account receives comes free, what it gives leaves at book cost.
 */
void
ledger_book_entry(const LedgerEntry *entry, int64 entry_id)
{
	int16		cer = -1;

	for (int i = 0; i < entry->n; i++)
	{
		const LedgerAccount *a = entry->accounts[i];

		if (!ledger_keeps_books(a))
			continue;
		if (cer < 0)
			cer = ledger_asset_id("CER");
		if (entry->assets[i] != cer)
			continue;
		ledger_book_units(a, entry->amounts[i] > 0 ? BOOK_FREE_IN : BOOK_OUT,
						  entry->amounts[i] > 0 ? entry->amounts[i] : -entry->amounts[i], 0, entry_id,
						  entry->memo && entry->memo[0] ? psprintf("%s: %s", entry->kind, entry->memo) : entry->kind);
	}
}
