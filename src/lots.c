/*
 * lots.c — lots of points and reductions, with their expiry (有效期管理).
 *
 * Every participant's POINT and RED balance is held in lots; a lot is keyed
 * by (account, asset, expires_at), so credits with the same expiry (all of a
 * year's points under end_of_next_year) merge into one row and an account
 * has a handful of lots, not one per event.  Spending takes the
 * earliest-expiring lots first and the receiver's lots keep their expiry.
 * expire_lots() moves what is left of expired lots to the expired sink.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "co2e.h"
#include "ledger.h"

/* POINT and RED are held in lots (assets by code: catalog.c). */
bool
ledger_lot_asset(int16 asset)
{
	return asset == ledger_asset_point() || asset == ledger_asset_red();
}

typedef struct LotPiece
{
	int16		asset;
	TimestampTz expires_at;
	int64		amount;
} LotPiece;

/* Credits gathered for one entry, written in one statement. */
typedef struct LotCredits
{
	int			n;
	int			cap;
	Datum	   *account;
	Datum	   *asset;
	Datum	   *expires_at;
	bool	   *fresh;			/* expiry from points_validity */
	Datum	   *amount;
} LotCredits;

static void
credits_add(LotCredits *c, int64 account, int16 asset, TimestampTz expires_at, bool fresh, int64 amount)
{
	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 8;
		c->account = c->account ? repalloc(c->account, sizeof(Datum) * c->cap) : palloc(sizeof(Datum) * c->cap);
		c->asset = c->asset ? repalloc(c->asset, sizeof(Datum) * c->cap) : palloc(sizeof(Datum) * c->cap);
		c->expires_at = c->expires_at ? repalloc(c->expires_at, sizeof(Datum) * c->cap) : palloc(sizeof(Datum) * c->cap);
		c->fresh = c->fresh ? repalloc(c->fresh, sizeof(bool) * c->cap) : palloc(sizeof(bool) * c->cap);
		c->amount = c->amount ? repalloc(c->amount, sizeof(Datum) * c->cap) : palloc(sizeof(Datum) * c->cap);
	}
	c->account[c->n] = Int64GetDatum(account);
	c->asset[c->n] = Int16GetDatum(asset);
	c->expires_at[c->n] = TimestampTzGetDatum(expires_at);
	c->fresh[c->n] = fresh;
	c->amount[c->n] = Int64GetDatum(amount);
	c->n++;
}

/*
 * Write the credits: each into the lot of (account, asset, expiry), merged
 * with what is there.  A fresh credit expires at the end of the next local
 * year, or at `basis` + points_validity rounded up to the next local
 * midnight (so that a day's credits share one lot).
 */
static void
credits_write(LotCredits *c, TimestampTz basis, int64 entry_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8ARRAYOID, INT2ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8OID};
	Datum		values[5];
	TimestampTz fresh_expiry = 0;

	if (c->n == 0)
		return;
	for (int i = 0; i < c->n; i++)
		if (c->fresh[i])
		{
			if (fresh_expiry == 0)
				fresh_expiry = ledger_fresh_expiry(basis);
			c->expires_at[i] = TimestampTzGetDatum(fresh_expiry);
		}
	values[0] = ledger_int8_array(c->account, c->n);
	values[1] = ledger_int2_array(c->asset, c->n);
	values[2] = ledger_array(c->expires_at, NULL, c->n, TIMESTAMPTZOID);
	values[3] = ledger_int8_array(c->amount, c->n);
	values[4] = Int64GetDatum(entry_id);
	ledger_plan(&plan,
				LOT_INSERT
				"SELECT u.account, u.asset, u.expires_at, sum(u.amount), sum(u.amount), $5 "
				"FROM unnest($1, $2, $3, $4) AS u(account, asset, expires_at, amount) "
				"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 " LOT_MERGE,
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "lot credit failed");
}

/*
 * Fresh credits of bulk entries, each with its expiry (ledger_fresh_expiry
 * of its event's time) and entry: merged into the lots of (account, asset,
 * expiry) in one statement.
 */
void
ledger_lots_credit_fresh(Datum accounts, Datum assets, Datum expiries, Datum amounts, Datum entries)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8ARRAYOID, INT2ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[5] = {accounts, assets, expiries, amounts, entries};

	ledger_plan(&plan,
				LOT_INSERT
				"SELECT u.account, u.asset, u.expires_at, sum(u.amount), sum(u.amount), min(u.entry) "
				"FROM unnest($1, $2, $3, $4, $5) AS u(account, asset, expires_at, amount, entry) "
				"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 " LOT_MERGE,
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "lot credit failed");
}

/*
 * The pieces to take for $3 of asset $2 from account $1's lots, earliest
 * expiry first, the lots locked: CTEs `locked`, `running`, `take`.
 */
#define LOTS_TAKE \
	"WITH locked AS (SELECT id, remaining, expires_at FROM carbon.lot " \
	"                WHERE account = $1 AND asset_id = $2 AND remaining > 0 " \
	"                ORDER BY expires_at, id FOR UPDATE), " \
	"running AS (SELECT id, remaining, expires_at, " \
	"            (sum(remaining) OVER (ORDER BY expires_at, id))::bigint - remaining AS before FROM locked), " \
	"take AS (SELECT id, expires_at, least(remaining, $3 - before)::bigint AS taken " \
	"         FROM running WHERE before < $3)"

/* Lots that do not add up to the balance: the ledger is inconsistent. */
static void
lots_not_covered(int64 account, int64 amount, int64 taken)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_INTEGRITY),
			 errmsg("the lots of account " INT64_FORMAT " do not cover its balance", account),
			 errdetail("Needed " INT64_FORMAT ", lots hold " INT64_FORMAT ".", amount, taken),
			 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
}

/*
 * Take `amount` from the account's lots, earliest expiry first; appends the
 * pieces taken (with their expiry) to `pieces`.
 */
static void
lot_consume(int64 account, int16 asset, int64 amount, LotPiece **pieces, int *npieces, int *maxpieces)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, INT2OID, INT8OID};
	Datum		values[3];
	int64		taken = 0;

	values[0] = Int64GetDatum(account);
	values[1] = Int16GetDatum(asset);
	values[2] = Int64GetDatum(amount);
	ledger_plan(&plan,
				LOTS_TAKE " "
				"UPDATE carbon.lot l SET remaining = l.remaining - t.taken FROM take t WHERE l.id = t.id "
				"RETURNING t.expires_at, t.taken",
				3, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "lot consumption failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		LotPiece   *p;

		CHECK_FOR_INTERRUPTS();
		if (*npieces >= *maxpieces)
		{
			/* an account may hold any number of lots (one per day, say) */
			*maxpieces *= 2;
			*pieces = repalloc_huge(*pieces, sizeof(LotPiece) * *maxpieces);
		}
		p = &(*pieces)[(*npieces)++];
		p->asset = asset;
		p->expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		p->amount = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		taken += p->amount;
	}
	if (taken != amount)
		lots_not_covered(account, amount, taken);
}

/*
 * The common case, one participant paying another one lot asset (a
 * transfer, a redemption): the payer's lots consumed earliest-expiry first
 * and the pieces credited to the payee with their expiry, in one statement.
 */
static void
lots_move_one(int64 payer, int64 payee, int16 asset, int64 amount, int64 entry_id, LedgerLotTrace *trace)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8OID, INT2OID, INT8OID, INT8OID, INT8OID};
	Datum		values[5];
	int64		taken = 0;

	values[0] = Int64GetDatum(payer);
	values[1] = Int16GetDatum(asset);
	values[2] = Int64GetDatum(amount);
	values[3] = Int64GetDatum(payee);
	values[4] = Int64GetDatum(entry_id);
	ledger_plan(&plan,
				LOTS_TAKE ", "
				"moved AS (UPDATE carbon.lot l SET remaining = l.remaining - t.taken FROM take t WHERE l.id = t.id "
				"          RETURNING t.expires_at, t.taken), "
				"pieces AS (SELECT expires_at, sum(taken)::bigint AS taken FROM moved GROUP BY expires_at), "
				"credited AS (" LOT_INSERT
				"             SELECT $4, $2, expires_at, taken, taken, $5 FROM pieces "
				"             ORDER BY expires_at " LOT_MERGE ") "
				"SELECT expires_at, taken FROM pieces ORDER BY expires_at",
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "lot move failed");
	if (trace)
	{
		trace->n = (int) SPI_processed;
		trace->expires_at = palloc(sizeof(TimestampTz) * Max(trace->n, 1));
		trace->amount = palloc(sizeof(int64) * Max(trace->n, 1));
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		piece = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		taken += piece;
		if (trace)
		{
			trace->expires_at[i] = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
																	  SPI_tuptable->tupdesc, 1, &isnull));
			trace->amount[i] = piece;
		}
	}
	if (taken != amount)
		lots_not_covered(payer, amount, taken);
}

/*
 * Move exact pieces: amounts[i] from the payer's lot expiring at
 * expiries[i] to the payee's lot of the same expiry (a refund), or out of
 * lots altogether when payee is 0 (a settlement into a sink).  Returns what
 * moved: a piece the payer no longer holds in full moves nothing, and the
 * caller, who posted `want`, raises.  The payer's lots are locked in expiry
 * order.
 */
int64
ledger_lots_move_pieces(int64 payer, int64 payee, int16 asset, int n, const TimestampTz *expiries,
						const int64 *amounts, int64 entry_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {INT8OID, INT2OID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8OID, INT8OID};
	Datum		values[6];
	Datum	   *e = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *a = palloc(sizeof(Datum) * Max(n, 1));
	int64		moved;
	bool		isnull;

	for (int i = 0; i < n; i++)
	{
		e[i] = TimestampTzGetDatum(expiries[i]);
		a[i] = Int64GetDatum(amounts[i]);
	}
	values[0] = Int64GetDatum(payer);
	values[1] = Int16GetDatum(asset);
	values[2] = ledger_array(e, NULL, n, TIMESTAMPTZOID);
	values[3] = ledger_int8_array(a, n);
	values[4] = Int64GetDatum(payee);
	values[5] = Int64GetDatum(entry_id);
	ledger_plan(&plan,
				"WITH want AS (SELECT e, sum(a)::bigint AS a FROM unnest($3, $4) AS w(e, a) GROUP BY e), "
				"locked AS (SELECT l.id, l.expires_at, w.a FROM carbon.lot l JOIN want w ON l.expires_at = w.e "
				"           WHERE l.account = $1 AND l.asset_id = $2 AND l.remaining >= w.a "
				"           ORDER BY l.expires_at FOR UPDATE OF l), "
				"moved AS (UPDATE carbon.lot l SET remaining = l.remaining - k.a FROM locked k WHERE l.id = k.id "
				"          RETURNING k.expires_at, k.a), "
				"credited AS (" LOT_INSERT
				"             SELECT $5, $2, expires_at, a, a, $6 FROM moved WHERE $5 <> 0 "
				"             ORDER BY expires_at " LOT_MERGE ") "
				"SELECT coalesce(sum(a), 0)::bigint FROM moved",
				6, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "lot move failed");
	moved = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return moved;
}

/*
 * Move lots along with an entry's postings: participants' debits of POINT or
 * RED consume lots (earliest expiry first); credits take those pieces with
 * their expiry, or, when the value comes from a system account (issuance),
 * a new lot expiring per points_validity from `basis`.
 */
static void
lots_follow(const LedgerEntry *entry, int64 entry_id)
{
	const LedgerAccount **accounts = entry->accounts;
	const int16 *assets = entry->assets;
	const int64 *amounts = entry->amounts;
	int			n = entry->n;
	TimestampTz basis = entry->fresh_basis ? entry->fresh_basis : GetCurrentTransactionStartTimestamp();
	LotPiece   *pieces = NULL;
	int			npieces = 0,
				maxpieces = 0,
				next = 0;
	LotCredits	credits;
	int			payer = -1,
				payee = -1,
				lot_postings = 0;

	/* one participant paying another: one statement (lots_move_one) */
	for (int i = 0; i < n; i++)
		if (accounts[i]->participant && ledger_lot_asset(assets[i]))
		{
			lot_postings++;
			if (amounts[i] < 0)
				payer = i;
			else
				payee = i;
		}
	if (lot_postings == 2 && payer >= 0 && payee >= 0 && assets[payer] == assets[payee] &&
		amounts[payee] == -amounts[payer])
	{
		lots_move_one(accounts[payer]->id, accounts[payee]->id, assets[payer], amounts[payee], entry_id,
					  entry->trace);
		return;
	}

	memset(&credits, 0, sizeof(credits));

	for (int i = 0; i < n; i++)
		if (accounts[i]->participant && ledger_lot_asset(assets[i]) && amounts[i] < 0)
		{
			if (pieces == NULL)
			{
				maxpieces = 64;
				pieces = palloc(sizeof(LotPiece) * maxpieces);
			}
			lot_consume(accounts[i]->id, assets[i], -amounts[i], &pieces, &npieces, &maxpieces);
		}

	for (int i = 0; i < n; i++)
	{
		int64		left = amounts[i];

		if (!accounts[i]->participant || !ledger_lot_asset(assets[i]) || left <= 0)
			continue;
		/* pieces of the same asset, in the order they were taken */
		for (; left > 0 && next < npieces; next++)
		{
			LotPiece   *p = &pieces[next];
			int64		part;

			if (p->asset != assets[i] || p->amount == 0)
				continue;
			part = Min(left, p->amount);
			credits_add(&credits, accounts[i]->id, assets[i], p->expires_at, false, part);
			p->amount -= part;
			left -= part;
			if (p->amount > 0)
				break;			/* this piece continues into the next credit */
		}
		if (left > 0)
			credits_add(&credits, accounts[i]->id, assets[i], 0, true, left);
	}
	credits_write(&credits, basis, entry_id);
}

/* A behaviour's fresh credits, in the entry's own statement: their expiry. */
static Datum
lots_fresh_expiry(const LedgerEntry *entry)
{
	return TimestampTzGetDatum(ledger_fresh_expiry(entry->fresh_basis));
}

/*
 * The holdings module of POINT and RED: every participant's balance of them
 * is held in lots (journal.h).
 */
static const LedgerHoldings lots_holdings = {
	.name = "lots",
	.holds = ledger_lot_asset,
	.follow = lots_follow,
	.fresh_cte = LOT_INSERT
	"SELECT u.account, u.asset, $8, sum(u.amount), sum(u.amount), min(e.id) "
	"FROM e, unnest($4, $5, $7) AS u(account, asset, amount) "
	"WHERE u.amount > 0 GROUP BY 1, 2 ORDER BY 1, 2 " LOT_MERGE,
	.fresh_param = lots_fresh_expiry,
	.fresh_param_type = TIMESTAMPTZOID,
};

void
ledger_lots_register(void)
{
	ledger_register_holdings(&lots_holdings);
}

/* Totals of one expire_lots() run. */
typedef struct ExpiryTotals
{
	int64		lots;
	int64		points;
	int64		grams;
} ExpiryTotals;

/*
 * Post one batch's expiry entry from its groups (one row per account and
 * asset of the deleted lots, columns as EXPIRY_GROUPS below): a debit per
 * account and asset, a credit per segment's sink.
 */
static void
expiry_post(SPITupleTable *tuptable, ExpiryTotals *totals)
{
	int			ngroups = (int) tuptable->numvals;
	TupleDesc	desc = tuptable->tupdesc;
	const LedgerAccount **accs = palloc(sizeof(LedgerAccount *) * ngroups * 2);
	int16	   *assets = palloc(sizeof(int16) * ngroups * 2);
	int64	   *amounts = palloc(sizeof(int64) * ngroups * 2);
	const LedgerAccount **sink_accs = palloc(sizeof(LedgerAccount *) * ngroups);
	int16	   *sink_assets = palloc(sizeof(int16) * ngroups);
	int64	   *sink_amounts = palloc(sizeof(int64) * ngroups);
	int			nsinks = 0;
	int			n = 0;

	for (int g = 0; g < ngroups; g++)
	{
		HeapTuple	tup = tuptable->vals[g];
		bool		isnull;
		int64		amount = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		int16		asset;
		LedgerAccount *acc;
		const LedgerAccount *sink;
		int			k;

		if (isnull || amount == 0)
			continue;			/* no lots, or only spent-out ones: nothing to move */
		asset = DatumGetInt16(SPI_getbinval(tup, desc, 2, &isnull));
		acc = palloc(sizeof(LedgerAccount));
		ledger_account_from_row(acc, DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)), tup, desc, 5);
		totals->lots += DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		if (asset == ledger_asset_point())
			totals->points += amount;
		else
			totals->grams += amount;
		accs[n] = acc;
		assets[n] = asset;
		amounts[n++] = -amount;
		/* the segment's sink: one posting for the whole batch */
		sink = ledger_system_account_info("expired", asset, acc->tier, acc->region);
		for (k = 0; k < nsinks; k++)
			if (sink_accs[k] == sink)
				break;
		if (k == nsinks)
		{
			sink_accs[nsinks] = sink;
			sink_assets[nsinks] = asset;
			sink_amounts[nsinks++] = 0;
		}
		sink_amounts[k] += amount;
	}
	for (int k = 0; k < nsinks; k++)
	{
		accs[n] = sink_accs[k];
		assets[n] = sink_assets[k];
		amounts[n++] = sink_amounts[k];
	}
	if (n > 0)
	{
		LedgerEntry entry = ledger_entry("expiry", "有效期届满 lots expired", n, accs, assets, amounts);

		entry.correction = true;	/* a frozen account's lots expire too */
		entry.holdings_moved = true;	/* the lots are deleted already */
		ledger_post(&entry);
	}
}

/*
 * Lock order.  Every writer locks an account's balance rows (in account,
 * asset order, in the posting trigger) before its lots: transfers consume
 * and credit lots after their postings, behaviours credit after theirs.
 * Expiry does the same: it locks the balance rows of the (account, asset)
 * pairs with expired lots first, then deletes exactly those pairs' lots.
 * The job (expire_lots()) never waits for a row a transfer holds: it skips
 * locked balances (SKIP LOCKED), comes back to them after the other
 * ranges, and posts to sink stripes of its own (ledger_set_job_stripe), so
 * the job does not wait for a transaction that could be waiting for it:
 * the three-way deadlocks of two transfers and a batch are gone.  Balances
 * still busy after about a second of retries are waited for one account at
 * a time, only while nobody waits for the job (expiry_account_waiting());
 * one held by a transaction that waits for the job itself is left to the
 * next run (a NOTICE says so), since waiting could only end in a deadlock.
 * Expired lots are not spendable meanwhile (balance() and transfers skip
 * them).
 */
typedef struct ExpiryPairs
{
	int			n;
	int			cap;
	Datum	   *account;
	Datum	   *asset;
} ExpiryPairs;

static void
pairs_add(ExpiryPairs *p, Datum account, Datum asset)
{
	if (p->n == p->cap)
	{
		p->cap = p->cap ? p->cap * 2 : 64;
		p->account = p->account ? repalloc(p->account, sizeof(Datum) * p->cap) : palloc(sizeof(Datum) * p->cap);
		p->asset = p->asset ? repalloc(p->asset, sizeof(Datum) * p->cap) : palloc(sizeof(Datum) * p->cap);
	}
	p->account[p->n] = account;
	p->asset[p->n++] = asset;
}

/* The plans of one expiry walk. */
typedef struct ExpiryPlans
{
	SPIPlanPtr	lock_skip;		/* candidates in a range, locking the free ones */
	SPIPlanPtr	lock_wait;		/* the same, waiting for busy ones */
	SPIPlanPtr	delete;			/* delete the locked pairs' expired lots, grouped */
	bool		skip;
} ExpiryPlans;

/*
 * One range of accounts [from, to): lock the balances of the pairs with
 * expired lots (skipping busy ones when plans->skip: they go to `busy`),
 * delete those pairs' expired lots and post their remainders.  Returns the
 * lots deleted (spent-out ones included); adds to the totals.
 */
static int64
expiry_batch(ExpiryPlans *plans, TimestampTz as_of, int64 from, int64 to, ExpiryTotals *totals,
			 ExpiryPairs *busy, MemoryContext busy_cxt)
{
	Datum		values[3] = {TimestampTzGetDatum(as_of), Int64GetDatum(from), Int64GetDatum(to)};
	ExpiryPairs locked = {0, 0, NULL, NULL};
	int64		deleted = 0;

	/* each batch in its own SPI level: its memory is freed with it */
	ledger_spi_connect();
	if (SPI_execute_plan(plans->skip ? plans->lock_skip : plans->lock_wait, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "lot expiry lock failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		account = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
		Datum		asset = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);

		SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull);
		if (!isnull)
			pairs_add(&locked, account, asset);
		else if (busy != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(busy_cxt);

			pairs_add(busy, account, asset);
			MemoryContextSwitchTo(old);
		}
	}
	if (locked.n > 0)
	{
		Datum		del[3] = {TimestampTzGetDatum(as_of), ledger_int8_array(locked.account, locked.n),
		ledger_int2_array(locked.asset, locked.n)};

		if (SPI_execute_plan(plans->delete, del, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "lot expiry failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			deleted += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 9, &isnull));
		}
		expiry_post(SPI_tuptable, totals);
	}
	SPI_finish();
	return deleted;
}

/* A batch of the expiry job, as ledger_try_subxact() runs it. */
typedef struct ExpiryBatch
{
	ExpiryPlans *plans;
	TimestampTz as_of;
	int64		account;
	ExpiryTotals totals;
} ExpiryBatch;

static void
expiry_batch_run(void *arg)
{
	ExpiryBatch *batch = arg;

	expiry_batch(batch->plans, batch->as_of, batch->account, batch->account + 1, &batch->totals, NULL, NULL);
}

/* Is any other transaction waiting for a lock this one holds? */
static bool
someone_waits_for_us(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	bool		waits;

	ledger_spi_connect();
	ledger_plan(&plan,
				"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity "
				"               WHERE pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(pid)))",
				0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "lock wait lookup failed");
	waits = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return waits;
}

/*
 * The job's last pass over a balance still busy: it waits for it only while
 * no transaction waits for the job.  Any cycle then forms with the job as
 * the first to wait, so the job's deadlock check fires first and the job is
 * the victim: its subtransaction (this account's batch) rolls back and is
 * tried again, the other transaction goes on.  When someone does wait for
 * the job, the account is left to the next run.  True when it was expired.
 */
static bool
expiry_account_waiting(ExpiryPlans *plans, TimestampTz as_of, int64 account, ExpiryTotals *totals)
{
	for (int attempt = 1; attempt <= 5; attempt++)
	{
		ExpiryBatch batch = {plans, as_of, account, {0, 0, 0}};

		CHECK_FOR_INTERRUPTS();
		if (someone_waits_for_us())
			return false;
		if (ledger_try_subxact(expiry_batch_run, &batch, ERRCODE_T_R_DEADLOCK_DETECTED))
		{
			totals->lots += batch.totals.lots;
			totals->points += batch.totals.points;
			totals->grams += batch.totals.grams;
			return true;
		}
		ereport(LOG,
				(errmsg("expire_lots: a batch lost a deadlock and is tried again (attempt %d)", attempt)));
	}
	return false;
}

/*
 * The walk over account ranges [from, last]; the job skips busy balances
 * and comes back to them (see the lock order above).
 */
static void
expiry_walk(ExpiryPlans *plans, TimestampTz as_of, int64 from, int64 last, bool job, ExpiryTotals *totals)
{
	const int64 target = 16000;
	const int64 max_width = 8000;
	int64		width = 1024;
	ExpiryPairs busy = {0, 0, NULL, NULL};
	MemoryContext busy_cxt = CurrentMemoryContext;
	int			left = 0;

	while (from <= last)
	{
		int64		to = (last - from < width) ? last + 1 : from + width;
		int64		deleted;

		CHECK_FOR_INTERRUPTS();
		deleted = expiry_batch(plans, as_of, from, to, totals, job ? &busy : NULL, busy_cxt);
		from = to;
		/* aim the next range at `target` lots */
		width = deleted > 0 ? width * target / deleted : width * 4;
		width = Max(1, Min(width, max_width));
	}
	/* busy accounts: again without waiting, for about a second; the job never waits */
	for (int round = 0; busy.n > 0 && round < 100; round++)
	{
		ExpiryPairs still = {0, 0, NULL, NULL};

		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
		for (int i = 0; i < busy.n; i++)
			if (i == 0 || DatumGetInt64(busy.account[i]) != DatumGetInt64(busy.account[i - 1]))
				expiry_batch(plans, as_of, DatumGetInt64(busy.account[i]), DatumGetInt64(busy.account[i]) + 1,
							 totals, &still, busy_cxt);
		busy = still;
	}
	plans->skip = false;
	for (int i = 0; i < busy.n; i++)
		if (i == 0 || DatumGetInt64(busy.account[i]) != DatumGetInt64(busy.account[i - 1]))
		{
			if (!expiry_account_waiting(plans, as_of, DatumGetInt64(busy.account[i]), totals))
				left++;
		}
	if (left > 0)
		ereport(NOTICE,
				(errmsg("expire_lots: %d accounts were busy throughout and are left for the next run", left),
				 errdetail("Their balances are held by transactions that wait for this one: waiting for them "
						   "could only end in a deadlock."),
				 errhint("Run expire_lots() again; it is idempotent.")));
}

/*
 * Sweep expired lots (of one account, or all when account = 0) into the
 * expired sinks, in batches of one entry each.  Returns totals.
 *
 * An expired lot is deleted, not zeroed: its remainder moves to the sink in
 * the batch's entry, which is the record.  DELETE ... RETURNING hands back
 * the remainder of the row version it removed, and removing a row writes no
 * index entries where zeroing it would (expired lots sit together on their
 * pages, so such updates are rarely HOT).
 *
 * A batch is a range of account ids, walked along lot_key (account, asset,
 * expiry), so an account's expired lots become one posting.  The range's
 * width adapts so that a batch holds about `target` lots; it never spans
 * more than `max_width` accounts, which keeps an entry's postings (one per
 * account and asset, one per segment's sink) under the smallint posting seq.
 */
void
ledger_expire(int64 account, TimestampTz as_of, int64 *lots, int64 *points, int64 *grams)
{
	static ExpiryPlans plans = {NULL, NULL, NULL, false};
	static SPIPlanPtr last_plan = NULL;
	Oid			lock_types[3] = {TIMESTAMPTZOID, INT8OID, INT8OID};
	Oid			delete_types[3] = {TIMESTAMPTZOID, INT8ARRAYOID, INT2ARRAYOID};
	ExpiryTotals totals = {0, 0, 0};
	int64		from,
				last;
	bool		job = (account == 0);

#define EXPIRY_CANDIDATES(lock, no_row) \
	"SELECT c.account, c.asset_id, coalesce(b.locked, " no_row ") " \
	"FROM (SELECT DISTINCT account, asset_id FROM carbon.lot " \
	"      WHERE account >= $2 AND account < $3 AND expires_at <= $1 ORDER BY 1, 2) c " \
	"LEFT JOIN LATERAL (SELECT true AS locked FROM carbon.balance b " \
	"                   WHERE b.account = c.account AND b.asset_id = c.asset_id AND b.stripe = 0 " \
	"                   " lock ") b ON true"
	/* skipping, NULL is a busy row (or none: then the waiting pass takes it) */
	ledger_plan(&plans.lock_skip, EXPIRY_CANDIDATES("FOR UPDATE SKIP LOCKED", "NULL"), 3, lock_types);
	ledger_plan(&plans.lock_wait, EXPIRY_CANDIDATES("FOR UPDATE", "true"), 3, lock_types);
	ledger_plan(&plans.delete,
				"WITH gone AS (DELETE FROM carbon.lot l USING unnest($2, $3) AS u(account, asset_id) "
				"              WHERE l.account = u.account AND l.asset_id = u.asset_id AND l.expires_at <= $1 "
				"              RETURNING l.account, l.asset_id, l.remaining), "
				"per_account AS (SELECT account, asset_id, sum(remaining)::bigint AS left_over, "
				"                       count(*) FILTER (WHERE remaining > 0) AS lots, count(*) AS deleted "
				"                FROM gone GROUP BY account, asset_id) "
				"SELECT p.account, p.asset_id, p.left_over, p.lots, a.kind, a.tier, a.region, a.status, p.deleted "
				"FROM per_account p JOIN carbon.account a ON a.id = p.account "
				"ORDER BY p.account, p.asset_id",
				3, delete_types);
	if (!job)
		from = last = account;
	else
	{
		bool		isnull;

		ledger_plan(&last_plan, "SELECT min(account), max(account) FROM carbon.lot", 0, NULL);
		if (SPI_execute_plan(last_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "lot lookup failed");
		from = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull)
			from = 1, last = 0;	/* no lots at all */
		else
			last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}

	/* the job posts to sink stripes no transfer uses (see above) */
	plans.skip = job;
	ledger_set_job_stripe(job);
	PG_TRY();
	{
		expiry_walk(&plans, as_of, from, last, job, &totals);
	}
	PG_FINALLY();
	{
		ledger_set_job_stripe(false);
		plans.skip = false;
	}
	PG_END_TRY();
	*lots = totals.lots;
	*points = totals.points;
	*grams = totals.grams;
}


/*
 * expire_lots(as_of) → (lots, points, reduction): idempotent; always one row.
 */
/* Expired lots are swept before spending: they are not spendable. */
void
ledger_sweep_expired(int64 account)
{
	int64		lots,
				points,
				grams;

	ledger_expire(account, GetCurrentTransactionStartTimestamp(), &lots, &points, &grams);
}

PG_FUNCTION_INFO_V1(ledger_expire_lots);
Datum
ledger_expire_lots(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(0);
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		lots,
				points,
				grams;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "expire_lots must return a row");
	ledger_spi_connect();
	ledger_expire(0, as_of, &lots, &points, &grams);
	SPI_finish();
	values[0] = Int64GetDatum(lots);
	values[1] = Int64GetDatum(points);
	values[2] = Co2eGetDatum(grams);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
