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
 * takes what is left, so that the pool empties to exactly zero.  Each
 * booking is one voucher (carbon.accounting_voucher): its lines in one row,
 * in fen; v_accounting_journal shows them as lines, in yuan.
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

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

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

/*
 * The voucher one booking makes: its amounts by subject and side, in the
 * order of carbon.accounting_voucher's columns (all zero: no voucher).
 */
typedef enum VoucherColumn
{
	DR_UNITS,					/* dr_1489 碳排放权资产 */
	DR_BANK,					/* dr_1002 银行存款 */
	DR_LOSS,					/* dr_6711 营业外支出 */
	CR_UNITS,					/* cr_1489 */
	CR_BANK,					/* cr_1002 */
	CR_GAIN,					/* cr_6301 营业外收入 */
	VOUCHER_COLUMNS
} VoucherColumn;

typedef struct Voucher
{
	bool		any;
	int64		amount[VOUCHER_COLUMNS];
} Voucher;

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

/*
 * The pools, by SQL, where unit_cost is not plain (a trigger, say): read
 * locked in account order; absent pools stay (0, 0).
 */
static void
pools_read_by_sql(Pool *pools, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *d = palloc(sizeof(Datum) * n);
	Datum		values[1];

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(pools[i].account);
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
line(Voucher *v, VoucherColumn c, int64 amount)
{
	v->amount[c] = amount;
	v->any |= amount != 0;
}

/* One booking applied to its pool, its voucher made. */
static void
book(const Booking *k, Pool *p, Voucher *v)
{
	int64		out;

	memset(v, 0, sizeof(Voucher));
	switch (k->kind)
	{
		case BOOK_FREE_IN:
			p->tonnes += k->tonnes;
			break;
		case BOOK_PURCHASE:
			p->tonnes += k->tonnes;
			p->cost += k->amount;
			line(v, DR_UNITS, k->amount);
			line(v, CR_BANK, k->amount);
			break;
		case BOOK_SALE:
			out = cost_out(p, k->tonnes);
			p->tonnes -= k->tonnes;
			p->cost -= out;
			line(v, DR_BANK, k->amount);
			line(v, CR_UNITS, out);
			if (k->amount > out)
				line(v, CR_GAIN, k->amount - out);
			else
				line(v, DR_LOSS, out - k->amount);
			break;
		case BOOK_OUT:
			out = cost_out(p, k->tonnes);
			p->tonnes -= k->tonnes;
			p->cost -= out;
			line(v, DR_LOSS, out);
			line(v, CR_UNITS, out);
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

/* A batch's bookings, to be applied to the pools one pool at a time. */
typedef struct PoolsPass
{
	const Booking *items;
	int			nitems;
	Pool	   *pools;			/* one per account, in account order */
	int		   *order;			/* the items by account, each account's in the order added */
	int		   *from;			/* pools[j]'s items: order[from[j] .. from[j + 1] - 1] */
	Voucher    *vouchers;		/* vouchers[i]: what items[i] books */
	AttrNumber	att_tonnes;		/* of carbon.unit_cost */
	AttrNumber	att_cost;
} PoolsPass;

/* The pool's bookings, in the order they were added, applied to it as it stands. */
static void
pool_apply(const PoolsPass *pp, Pool *p)
{
	int			j = p - pp->pools;

	for (int k = pp->from[j]; k < pp->from[j + 1]; k++)
		book(&pp->items[pp->order[k]], p, &pp->vouchers[pp->order[k]]);
}

/* qsort_arg's order of items: by account, then as added. */
static int
item_cmp(const void *a, const void *b, void *arg)
{
	const Booking *items = arg;
	int			x = *(const int *) a,
				y = *(const int *) b;
	int64		ax = items[x].acc->id,
				ay = items[y].acc->id;

	if (ax != ay)
		return ax < ay ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * The update's change() (append.c): the pool's row as found, locked, gets
 * its bookings.  The pool is read and written in one visit to its row, not
 * locked first and updated after (a lock record and a second lookup each).
 * Called again if another transaction changed the row meanwhile: the
 * bookings are applied afresh to the newer version.
 */
static void
pool_change(int row, Datum *values, bool *isnull pg_attribute_unused(), void *arg)
{
	PoolsPass  *pp = (PoolsPass *) arg;
	Pool	   *p = &pp->pools[row];

	p->tonnes = DatumGetInt64(values[pp->att_tonnes - 1]);
	p->cost = DatumGetInt64(values[pp->att_cost - 1]);
	pool_apply(pp, p);
	values[pp->att_tonnes - 1] = Int64GetDatum(p->tonnes);
	values[pp->att_cost - 1] = Int64GetDatum(p->cost);
}

/*
 * Write the batch for entry `entry_id`: each pool updated in account order
 * with its bookings applied in the order they were added (new pools, or all
 * of them where the table is not plain, by SQL), then every line.
 */
void
ledger_books_write(LedgerBooks *b, int64 entry_id)
{
	static const char *const pool_columns[] = {"tonnes", "cost"};
	Booking    *items = (Booking *) b->items;
	int64	   *ids;
	int			nids = 0;
	Oid			relid;
	PoolsPass	pp;
	Datum	   *pa,
			   *pt,
			   *pc;
	bool	   *found;
	int			nnew = 0;
	int			nvouchers = 0;

	if (b->n == 0)
		return;
	ids = palloc(sizeof(int64) * b->n);
	for (int i = 0; i < b->n; i++)
		ids[i] = items[i].acc->id;
	qsort(ids, b->n, sizeof(int64), ledger_int64_cmp);
	for (int i = 0; i < b->n; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];

	relid = ledger_relid("unit_cost");
	pp = (PoolsPass) {.items = items, .nitems = b->n, .pools = palloc0(sizeof(Pool) * nids),
		.vouchers = palloc0(sizeof(Voucher) * b->n), .att_tonnes = get_attnum(relid, "tonnes"),
	.att_cost = get_attnum(relid, "cost")};
	if (pp.att_tonnes <= 0 || pp.att_cost <= 0)
		elog(ERROR, "carbon.unit_cost has no tonnes or cost column");
	pa = palloc(sizeof(Datum) * nids);
	pt = palloc(sizeof(Datum) * nids);
	pc = palloc(sizeof(Datum) * nids);
	found = palloc(sizeof(bool) * nids);
	for (int j = 0; j < nids; j++)
	{
		pp.pools[j].account = ids[j];
		pa[j] = Int64GetDatum(ids[j]);
	}
	/* each pool's items together (a batch books hundreds of accounts: B4) */
	pp.order = palloc(sizeof(int) * b->n);
	pp.from = palloc(sizeof(int) * (nids + 1));
	for (int i = 0; i < b->n; i++)
		pp.order[i] = i;
	qsort_arg(pp.order, b->n, sizeof(int), item_cmp, items);
	for (int i = 0, j = 0; j < nids; j++)
	{
		while (i < b->n && items[pp.order[i]].acc->id < ids[j])
			i++;
		pp.from[j] = i;
	}
	pp.from[nids] = b->n;
	/* the pools there, straight in the heap (append.c), in account order: no two batches wait on each other */
	if (ledger_update_by_key_with("unit_cost", 1, (Datum *[]) {pa}, lengthof(pool_columns), pool_columns, NULL, NULL,
								  nids, found, pool_change, &pp) < 0)
	{
		memset(found, 0, sizeof(bool) * nids);
		pools_read_by_sql(pp.pools, nids);
	}
	for (int j = 0; j < nids; j++)
		if (!found[j])
		{
			pool_apply(&pp, &pp.pools[j]);	/* from (0, 0) when new */
			pa[nnew] = Int64GetDatum(pp.pools[j].account);
			pt[nnew] = Int64GetDatum(pp.pools[j].tonnes);
			pc[nnew] = Int64GetDatum(pp.pools[j].cost);
			nnew++;
		}
	if (nnew > 0)
		pools_upsert(pa, pt, pc, nnew);

	/*
	 * The vouchers, straight into their table (append.c), grouped by
	 * account and in the order of their bookings within one: the index
	 * (account, at, id) takes each account's vouchers as a run at its end,
	 * whose heap neighbours let nbtree split a full page after the new one
	 * rather than in half (a batch books hundreds of accounts: B4).
	 */
	for (int i = 0; i < b->n; i++)
		nvouchers += pp.vouchers[i].any;
	if (nvouchers > 0)
	{
		/* the amounts in VoucherColumn's order */
		static const char *const columns[] = {"account", "entry_id", "at", "memo",
											  "dr_1489", "dr_1002", "dr_6711", "cr_1489", "cr_1002", "cr_6301"};
		Datum	   *cols[lengthof(columns)];
		bool	   *none = palloc0(sizeof(bool) * nvouchers);
		bool	   *nulls[lengthof(columns)];
		Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* now() */
		int			n = 0;

		StaticAssertStmt(lengthof(columns) == 4 + VOUCHER_COLUMNS, "a column per subject and side");
		for (int c = 0; c < (int) lengthof(cols); c++)
		{
			cols[c] = palloc(sizeof(Datum) * nvouchers);
			nulls[c] = none;
		}
		for (int o = 0; o < b->n; o++)
		{
			int			i = pp.order[o];
			const Voucher *v = &pp.vouchers[i];

			if (!v->any)
				continue;
			cols[0][n] = Int64GetDatum(items[i].acc->id);
			cols[1][n] = Int64GetDatum(entry_id);
			cols[2][n] = now;
			cols[3][n] = CStringGetTextDatum(items[i].memo);
			for (int c = 0; c < VOUCHER_COLUMNS; c++)
				cols[4 + c][n] = Int64GetDatum(v->amount[c]);
			n++;
		}
		ledger_append("accounting_voucher", lengthof(columns), columns, cols, nulls, nvouchers);
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
