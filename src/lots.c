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

#include "co2e.h"
#include "ledger.h"

#define ASSET_POINT 1
#define ASSET_RED	2

bool
ledger_lot_asset(int16 asset)
{
	return asset == ASSET_POINT || asset == ASSET_RED;
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
	Oid			types[6] = {INT8ARRAYOID, INT2ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID,
		TIMESTAMPTZOID, INT8OID};
	Datum		values[6];
	int			dims[1];
	int			lbs[1] = {1};

	if (c->n == 0)
		return;
	dims[0] = c->n;
	values[0] = ledger_int8_array(c->account, c->n);
	values[1] = ledger_int2_array(c->asset, c->n);
	values[2] = PointerGetDatum(construct_md_array(c->expires_at, c->fresh, 1, dims, lbs, TIMESTAMPTZOID,
												   8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = ledger_int8_array(c->amount, c->n);
	values[4] = TimestampTzGetDatum(basis);
	values[5] = Int64GetDatum(entry_id);
	ledger_plan(&plan,
				LOT_INSERT
				"SELECT u.account, u.asset, coalesce(u.expires_at, " LOT_FRESH_EXPIRY("$5") "), "
				"       sum(u.amount), sum(u.amount), $6 "
				"FROM unnest($1, $2, $3, $4) AS u(account, asset, expires_at, amount), " LOT_SETTINGS " "
				"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 " LOT_MERGE,
				6, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "lot credit failed");
}

/*
 * Fresh credits of bulk entries, each with its own basis (the event's time)
 * and entry: merged into the lots of (account, asset, expiry) in one
 * statement.
 */
void
ledger_lots_credit_fresh(Datum accounts, Datum assets, Datum bases, Datum amounts, Datum entries)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8ARRAYOID, INT2ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[5] = {accounts, assets, bases, amounts, entries};

	ledger_plan(&plan,
				"WITH u AS (SELECT * FROM unnest($1, $2, $3, $4, $5) AS u(account, asset, basis, amount, entry)), "
				/* the expiry once per distinct event time, not per credit */
				"e AS (SELECT d.basis, " LOT_FRESH_EXPIRY("d.basis") " AS expires_at "
				"      FROM (SELECT DISTINCT basis FROM u) d, " LOT_SETTINGS ") "
				LOT_INSERT
				"SELECT u.account, u.asset, e.expires_at, sum(u.amount), sum(u.amount), min(u.entry) "
				"FROM u JOIN e ON e.basis = u.basis "
				"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 " LOT_MERGE,
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "lot credit failed");
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
				"WITH locked AS (SELECT id, remaining, expires_at FROM carbon.lot "
				"                WHERE account = $1 AND asset_id = $2 AND remaining > 0 "
				"                ORDER BY expires_at, id FOR UPDATE), "
				"running AS (SELECT id, remaining, expires_at, "
				"            (sum(remaining) OVER (ORDER BY expires_at, id))::bigint - remaining AS before FROM locked), "
				"take AS (SELECT id, expires_at, least(remaining, $3 - before)::bigint AS taken "
				"         FROM running WHERE before < $3) "
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
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("the lots of account " INT64_FORMAT " do not cover its balance", account),
				 errdetail("Needed " INT64_FORMAT ", lots hold " INT64_FORMAT ".", amount, taken),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
}

/*
 * Move lots along with an entry's postings: participants' debits of POINT or
 * RED consume lots (earliest expiry first); credits take those pieces with
 * their expiry, or, when the value comes from a system account (issuance),
 * a new lot expiring per points_validity from `basis`.
 */
void
ledger_lots_follow_entry(const LedgerAccount **accounts, const int16 *assets, const int64 *amounts,
						 int n, int64 entry_id, TimestampTz basis)
{
	LotPiece   *pieces = NULL;
	int			npieces = 0,
				maxpieces = 0,
				next = 0;
	LotCredits	credits;

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
		if (asset == ASSET_POINT)
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
		ledger_post_system_entry("expiry", "有效期届满 lots expired", accs, assets, amounts, n);
}

/*
 * One range of accounts: delete its expired lots and post their remainders.
 * Returns the lots deleted (spent-out ones included); adds to the totals.
 */
static int64
expiry_batch(SPIPlanPtr range_plan, Datum *values, ExpiryTotals *totals)
{
	int64		deleted = 0;

	/* each batch in its own SPI level: its memory is freed with it */
	ledger_spi_connect();
	if (SPI_execute_plan(range_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "lot expiry failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		deleted += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 9, &isnull));
	}
	expiry_post(SPI_tuptable, totals);
	SPI_finish();
	return deleted;
}

/* A batch of the expiry job, as ledger_try_subxact() runs it. */
typedef struct ExpiryBatch
{
	SPIPlanPtr	range_plan;
	Datum	   *values;
	ExpiryTotals totals;
	int64		deleted;
} ExpiryBatch;

static void
expiry_batch_run(void *arg)
{
	ExpiryBatch *batch = arg;

	batch->deleted = expiry_batch(batch->range_plan, batch->values, &batch->totals);
}

/*
 * A batch of the expiry job, in a subtransaction: when it is chosen as the
 * victim of a deadlock (a transfer that locked a balance first and then
 * wants a lot of the batch's range), only the batch is rolled back, the
 * transfer goes through, and the batch is tried again.
 */
static int64
expiry_batch_retried(SPIPlanPtr range_plan, Datum *values, ExpiryTotals *totals)
{
	ExpiryBatch batch;

	for (int attempt = 1;; attempt++)
	{
		batch = (ExpiryBatch) {range_plan, values, {0, 0, 0}, 0};
		if (ledger_try_subxact(expiry_batch_run, &batch, ERRCODE_T_R_DEADLOCK_DETECTED))
			break;
		if (attempt == 5)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
					 errmsg("expire_lots: a batch lost a deadlock %d times", attempt),
					 errhint("Run expire_lots() again; it is idempotent.")));
		ereport(LOG,
				(errmsg("expire_lots: a batch lost a deadlock and is tried again (attempt %d)", attempt)));
	}
	totals->lots += batch.totals.lots;
	totals->points += batch.totals.points;
	totals->grams += batch.totals.grams;
	return batch.deleted;
}

/*
 * Sweep expired lots (of one account, or all when account = 0) into the
 * expired sinks, in batches of one entry each.  Returns totals.
 *
 * An expired lot is deleted, not zeroed: its remainder moves to the sink in
 * the batch's entry, which is the record.  DELETE ... RETURNING hands back
 * the remainder of the row version it removed (after waiting for a
 * concurrent spend, whose new version it rechecks), so no row lock is taken
 * beforehand, and removing a row writes no index entries where zeroing it
 * would (expired lots sit together on their pages, so such updates are
 * rarely HOT).
 *
 * A batch is a range of account ids, walked along lot_key (account, asset,
 * expiry) in one index pass, so an account's expired lots become one
 * posting.  The range's width adapts so that a batch holds about
 * `target` lots; it never spans more than `max_width` accounts, which keeps
 * an entry's postings (one per account and asset, one per segment's sink)
 * under the smallint posting seq.
 */
void
ledger_expire(int64 account, TimestampTz as_of, int64 *lots, int64 *points, int64 *grams)
{
	static SPIPlanPtr range_plan = NULL;
	static SPIPlanPtr last_plan = NULL;
	Oid			types[3] = {TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[3];
	ExpiryTotals totals = {0, 0, 0};
	const int64 target = 16000;
	const int64 max_width = 8000;
	int64		width = 1024;
	int64		from,
				last;

	ledger_plan(&range_plan,
				"WITH gone AS (DELETE FROM carbon.lot "
				"              WHERE account >= $2 AND account < $3 AND expires_at <= $1 "
				"              RETURNING account, asset_id, remaining), "
				"per_account AS (SELECT account, asset_id, sum(remaining)::bigint AS left_over, "
				"                       count(*) FILTER (WHERE remaining > 0) AS lots, count(*) AS deleted "
				"                FROM gone GROUP BY account, asset_id) "
				"SELECT p.account, p.asset_id, p.left_over, p.lots, a.kind, a.tier, a.region, a.status, p.deleted "
				"FROM per_account p JOIN carbon.account a ON a.id = p.account "
				"ORDER BY p.account, p.asset_id",
				3, types);
	values[0] = TimestampTzGetDatum(as_of);
	if (account != 0)
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
	while (from <= last)
	{
		int64		to = (last - from < width) ? last + 1 : from + width;
		int64		deleted;

		values[1] = Int64GetDatum(from);
		values[2] = Int64GetDatum(to);
		if (account != 0)
			deleted = expiry_batch(range_plan, values, &totals);
		else
			deleted = expiry_batch_retried(range_plan, values, &totals);
		from = to;
		/* aim the next range at `target` lots */
		width = deleted > 0 ? width * target / deleted : width * 4;
		width = Max(1, Min(width, max_width));
	}
	*lots = totals.lots;
	*points = totals.points;
	*grams = totals.grams;
}

/* Does the account hold lots of `asset` past their expiry?  (a key probe) */
bool
ledger_has_expired_lots(int64 account, int16 asset)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, INT2OID, TIMESTAMPTZOID};
	Datum		values[3];
	bool		isnull;

	values[0] = Int64GetDatum(account);
	values[1] = Int16GetDatum(asset);
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ledger_plan(&plan,
				"SELECT EXISTS (SELECT 1 FROM carbon.lot WHERE account = $1 AND asset_id = $2 "
				"               AND expires_at <= $3 AND remaining > 0)",
				3, types);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "lot lookup failed");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * expire_lots(as_of) → (lots, points, reduction): idempotent; always one row.
 */
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
