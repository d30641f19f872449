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
#include "utils/timestamp.h"

#include "catalog.h"
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

/* One booking waiting to be written. */
typedef struct Booking
{
	const LedgerAccount *acc;
	LedgerBooking kind;
	int64		tonnes;
	int64		amount;
	const char *memo;
} Booking;

/* The pools a batch touches, read locked, then changed in memory. */
typedef struct Pool
{
	int64		account;
	int64		tonnes;
	int64		cost;
} Pool;

/* The lines of a batch, as arrays for one INSERT. */
typedef struct Lines
{
	int			n,
				cap;
	Datum	   *account;
	Datum	   *subject;
	Datum	   *debit;
	Datum	   *credit;
	Datum	   *memo;
} Lines;

/* Bookings are gathered by the caller and written once per entry. */
void
ledger_books_add(LedgerBooks *b, const LedgerAccount *acc, LedgerBooking kind, int64 tonnes, int64 amount,
				 const char *memo)
{
	Booking    *k;

	if (!ledger_keeps_books(acc) || tonnes == 0)
		return;
	if (b->n == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 8;
		b->items = b->items ? repalloc(b->items, sizeof(Booking) * b->cap) : palloc(sizeof(Booking) * b->cap);
	}
	k = &((Booking *) b->items)[b->n++];
	k->acc = acc;
	k->kind = kind;
	k->tonnes = tonnes;
	k->amount = amount;
	k->memo = memo;
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/* A pool's row locked: its tonnes and cost (a LedgerRowRead over two LedgerColumnRead). */
static void
pool_row(int row, TupleTableSlot *slot, void *arg)
{
	LedgerColumnRead *columns = (LedgerColumnRead *) arg;

	ledger_read_int8_column(row, slot, &columns[0]);
	ledger_read_int8_column(row, slot, &columns[1]);
}

/*
 * The pools of the accounts, locked in account order (no two batches wait
 * on each other's pools); absent pools are (0, 0).
 */
static Pool *
pools_read(int64 *ids, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *d = palloc(sizeof(Datum) * n);
	Datum		values[1];
	Pool	   *pools = palloc0(sizeof(Pool) * n);
	int64	   *tonnes = palloc0(sizeof(int64) * n);
	int64	   *cost = palloc0(sizeof(int64) * n);

	for (int i = 0; i < n; i++)
	{
		d[i] = Int64GetDatum(ids[i]);
		pools[i].account = ids[i];
	}
	/* straight in the heap (append.c), one row after the other in account order; by SQL where not plain */
	if (ledger_lock_by_key("unit_cost", 1, (Datum *[]) {d}, n, pool_row,
						   (LedgerColumnRead[]) {{"tonnes", tonnes}, {"cost", cost}}) >= 0)
	{
		for (int i = 0; i < n; i++)
		{
			pools[i].tonnes = tonnes[i];
			pools[i].cost = cost[i];
		}
		return pools;
	}
	values[0] = ledger_int8_array(d, n);
	ledger_plan_generic(&plan,
				"SELECT account, tonnes, cost FROM carbon.unit_cost WHERE account = ANY ($1) "
				"ORDER BY account FOR UPDATE",
				1, (Oid[]) {INT8ARRAYOID});
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "unit cost lookup failed");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		account = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		for (int i = 0; i < n; i++)
			if (pools[i].account == account)
			{
				pools[i].tonnes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
				pools[i].cost = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull));
			}
	}
	return pools;
}

/* The book cost of `q` of the pool's tonnes: weighted average, half up. */
static int64
cost_out(const Pool *p, int64 q)
{
	if (q > p->tonnes)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("the books of account " INT64_FORMAT " hold " INT64_FORMAT " t, " INT64_FORMAT " t leave",
						p->account, p->tonnes, q),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
	if (q == p->tonnes)
		return p->cost;
	return (int64) (((int128) p->cost * q * 2 + p->tonnes) / ((int128) p->tonnes * 2));
}

static void
line(Lines *l, const Booking *k, const char *subject, int64 debit, int64 credit)
{
	if (debit == 0 && credit == 0)
		return;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->account = l->account ? repalloc(l->account, sizeof(Datum) * l->cap) : palloc(sizeof(Datum) * l->cap);
		l->subject = l->subject ? repalloc(l->subject, sizeof(Datum) * l->cap) : palloc(sizeof(Datum) * l->cap);
		l->debit = l->debit ? repalloc(l->debit, sizeof(Datum) * l->cap) : palloc(sizeof(Datum) * l->cap);
		l->credit = l->credit ? repalloc(l->credit, sizeof(Datum) * l->cap) : palloc(sizeof(Datum) * l->cap);
		l->memo = l->memo ? repalloc(l->memo, sizeof(Datum) * l->cap) : palloc(sizeof(Datum) * l->cap);
	}
	l->account[l->n] = Int64GetDatum(k->acc->id);
	l->subject[l->n] = CStringGetTextDatum(subject);
	l->debit[l->n] = Int64GetDatum(debit);
	l->credit[l->n] = Int64GetDatum(credit);
	l->memo[l->n++] = CStringGetTextDatum(k->memo);
}

/* One booking applied to its pool, its lines added. */
static void
book(const Booking *k, Pool *p, Lines *l)
{
	int64		out;

	switch (k->kind)
	{
		case BOOK_FREE_IN:
			p->tonnes += k->tonnes;
			break;
		case BOOK_PURCHASE:
			p->tonnes += k->tonnes;
			p->cost += k->amount;
			line(l, k, SUBJECT_UNITS, k->amount, 0);
			line(l, k, SUBJECT_BANK, 0, k->amount);
			break;
		case BOOK_SALE:
			out = cost_out(p, k->tonnes);
			p->tonnes -= k->tonnes;
			p->cost -= out;
			line(l, k, SUBJECT_BANK, k->amount, 0);
			line(l, k, SUBJECT_UNITS, 0, out);
			if (k->amount > out)
				line(l, k, SUBJECT_GAIN, 0, k->amount - out);
			else
				line(l, k, SUBJECT_LOSS, out - k->amount, 0);
			break;
		case BOOK_OUT:
			out = cost_out(p, k->tonnes);
			p->tonnes -= k->tonnes;
			p->cost -= out;
			line(l, k, SUBJECT_LOSS, out, 0);
			line(l, k, SUBJECT_UNITS, 0, out);
			break;
	}
}

/* Pools written by SQL: the new ones, or all of them where unit_cost is not plain. */
static void
pools_upsert(Datum *pa, Datum *pt, Datum *pc, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];

	values[0] = ledger_int8_array(pa, n);
	values[1] = ledger_int8_array(pt, n);
	values[2] = ledger_int8_array(pc, n);
	ledger_plan_generic(&plan,
				"INSERT INTO carbon.unit_cost AS c (account, tonnes, cost) "
				"SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) "
				"ON CONFLICT (account) DO UPDATE SET tonnes = excluded.tonnes, cost = excluded.cost",
				3, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "accounting write failed");
}

/*
 * Write the batch for entry `entry_id`: the pools read and locked in one
 * statement, the bookings applied in the order they were added, the pools
 * and every line written in another.
 */
void
ledger_books_write(LedgerBooks *b, int64 entry_id)
{
	Booking    *items = (Booking *) b->items;
	int64	   *ids;
	int			nids = 0;
	Pool	   *pools;
	Lines		l = {0};
	Datum	   *pa,
			   *pt,
			   *pc;

	if (b->n == 0)
		return;
	ids = palloc(sizeof(int64) * b->n);
	for (int i = 0; i < b->n; i++)
		ids[i] = items[i].acc->id;
	qsort(ids, b->n, sizeof(int64), int64_cmp);
	for (int i = 0; i < b->n; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];
	pools = pools_read(ids, nids);
	for (int i = 0; i < b->n; i++)
		for (int j = 0; j < nids; j++)
			if (pools[j].account == items[i].acc->id)
			{
				book(&items[i], &pools[j], &l);
				break;
			}

	pa = palloc(sizeof(Datum) * nids);
	pt = palloc(sizeof(Datum) * nids);
	pc = palloc(sizeof(Datum) * nids);
	for (int j = 0; j < nids; j++)
	{
		pa[j] = Int64GetDatum(pools[j].account);
		pt[j] = Int64GetDatum(pools[j].tonnes);
		pc[j] = Int64GetDatum(pools[j].cost);
	}
	/* the pools there updated straight in the heap (append.c); new ones, or all where the table is not plain, by SQL */
	{
		static const char *const columns[] = {"tonnes", "cost"};
		Datum	   *keys[] = {pa};
		Datum	   *vals[] = {pt, pc};
		bool	   *none = palloc0(sizeof(bool) * nids);
		bool	   *nulls[] = {none, none};
		bool	   *found = palloc(sizeof(bool) * nids);
		int			nnew = 0;

		if (ledger_update_by_key("unit_cost", 1, keys, lengthof(columns), columns, vals, nulls, nids, found) < 0)
			memset(found, 0, sizeof(bool) * nids);
		for (int j = 0; j < nids; j++)
			if (!found[j])
			{
				pa[nnew] = pa[j], pt[nnew] = pt[j], pc[nnew] = pc[j];
				nnew++;
			}
		if (nnew > 0)
			pools_upsert(pa, pt, pc, nnew);
	}

	/* the lines, in order, straight into their table (append.c) */
	if (l.n > 0)
	{
		static const char *const columns[] = {"account", "subject_code", "debit", "credit", "memo", "entry_id", "at"};
		Datum	   *eid = palloc(sizeof(Datum) * l.n);
		Datum	   *at = palloc(sizeof(Datum) * l.n);
		bool	   *none = palloc0(sizeof(bool) * l.n);
		Datum	   *cols[] = {l.account, l.subject, l.debit, l.credit, l.memo, eid, at};
		bool	   *nulls[] = {none, none, none, none, none, none, none};
		Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* now() */

		for (int i = 0; i < l.n; i++)
		{
			eid[i] = Int64GetDatum(entry_id);
			at[i] = now;
		}
		ledger_append("accounting_line", lengthof(columns), columns, cols, nulls, l.n);
	}
	b->n = 0;
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
	LedgerBooks b = {0};
	const char *memo = NULL;

	for (int i = 0; i < entry->n; i++)
	{
		const LedgerAccount *a = entry->accounts[i];

		if (!ledger_keeps_books(a))
			continue;
		if (cer == -1)
			cer = ledger_asset_lookup("CER");	/* -2: none (a 0.1 schema) */
		if (cer < 0)
			cer = -2;
		if (entry->assets[i] != cer)
			continue;
		if (memo == NULL)
			memo = entry->memo && entry->memo[0] ? psprintf("%s: %s", entry->kind, entry->memo) : entry->kind;
		ledger_books_add(&b, a, entry->amounts[i] > 0 ? BOOK_FREE_IN : BOOK_OUT,
						 entry->amounts[i] > 0 ? entry->amounts[i] : -entry->amounts[i], 0, memo);
	}
	ledger_books_write(&b, entry_id);
}
