/*
 * mall.c — the points mall (权益联盟, api.md §4 merchants): offers,
 * redemptions, refunds and merchant settlement.
 *
 * A redemption moves the points from the citizen to the merchant through
 * the journal (earliest-expiring lots first; the merchant's lots keep their
 * expiry) and keeps the lot pieces it took.  A refund gives back the same
 * pieces, latest-expiring first, so that what stays redeemed is what would
 * have been spent first; a piece that expired meanwhile has already gone
 * (or goes now) to the expired sink and does not come back.  Points stay
 * outstanding with the merchant until settle_merchant() moves them into the
 * redeemed sink; a settled redemption can no longer be refunded.
 *
 * Locks, always in this order: the offer row (stock, per-account limit),
 * the redemption row, then balances and lots (the journal).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rangetypes.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

/* An offer, as its row says, the row locked (the first lock a mall call takes). */
typedef struct Offer
{
	int64		id;
	int64		merchant;
	char	   *title;
	int64		points_cost;
	int32		stock;
	bool		has_limit;
	int32		per_account_limit;
	char	   *status;
	bool		valid_now;		/* the transaction's start lies in `valid` */
} Offer;

static void
offer_read(int64 id, Offer *o)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2] = {Int64GetDatum(id), TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())};
	SPITupleTable *tt;
	bool		isnull;
	Datum		d;

	ledger_plan(&plan,
				"SELECT merchant, title, points_cost, stock, per_account_limit, status, valid @> $2::timestamptz "
				"FROM carbon.offer WHERE id = $1 FOR UPDATE",
				2, (Oid[]) {INT8OID, TIMESTAMPTZOID});
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "offer lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offer " INT64_FORMAT " does not exist", id)));
	tt = SPI_tuptable;
	o->id = id;
	o->merchant = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	o->title = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	o->points_cost = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
	o->stock = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
	d = SPI_getbinval(tt->vals[0], tt->tupdesc, 5, &isnull);
	o->has_limit = !isnull;
	o->per_account_limit = isnull ? 0 : DatumGetInt32(d);
	o->status = SPI_getvalue(tt->vals[0], tt->tupdesc, 6);
	o->valid_now = DatumGetBool(SPI_getbinval(tt->vals[0], tt->tupdesc, 7, &isnull));
}

/* A merchant account: a participant of the merchant tier. */
static void
require_merchant(const LedgerAccount *acc)
{
	if (!acc->participant || strcmp(acc->tier, "merchant") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is not a merchant", acc->id),
				 errhint("Offers belong to participant accounts of the merchant tier.")));
}

static int32
arg_positive_int(FunctionCallInfo fcinfo, int argno, const char *name, int32 dflt)
{
	int32		v = PG_ARGISNULL(argno) ? dflt : PG_GETARG_INT32(argno);

	if (v <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", name)));
	return v;
}

/*
 * create_offer(merchant, title, points_cost, stock, valid, per_account_limit) → offer id
 */
PG_FUNCTION_INFO_V1(ledger_create_offer);
Datum
ledger_create_offer(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	int64		merchant = ledger_arg_int64(fcinfo, 0, "merchant");
	char	   *title = ledger_arg_text(fcinfo, 1, "title");
	int64		points_cost = ledger_arg_amount(fcinfo, 2, "points_cost");
	int32		stock;
	RangeType  *valid;
	bool		has_limit = !PG_ARGISNULL(5);
	int32		limit = has_limit ? PG_GETARG_INT32(5) : 0;
	LedgerAccount acc;
	Datum		values[6];
	char		nulls[6] = "      ";
	bool		isnull;
	int64		id;

	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stock must be zero or more")));
	stock = PG_GETARG_INT32(3);
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("valid must not be null"),
				 errhint("An offer is valid over a tstzrange, e.g. tstzrange(now(), now() + interval '30 days').")));
	valid = PG_GETARG_RANGE_P(4);
	if (RangeIsEmpty(valid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an offer's validity must not be empty")));
	if (has_limit && limit <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_account_limit must be positive (or NULL for none)")));
	if (title[0] == '\0' || strlen(title) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an offer's title is 1 to 200 bytes")));
	ledger_check_acting(merchant, false);

	ledger_spi_connect();
	ledger_require_account(merchant, &acc);
	require_merchant(&acc);
	ledger_require_active(&acc);
	values[0] = Int64GetDatum(merchant);
	values[1] = CStringGetTextDatum(title);
	values[2] = Int64GetDatum(points_cost);
	values[3] = Int32GetDatum(stock);
	values[4] = RangeTypePGetDatum(valid);
	values[5] = Int32GetDatum(limit);
	nulls[5] = has_limit ? ' ' : 'n';
	ledger_plan(&plan,
				"INSERT INTO carbon.offer (merchant, title, points_cost, stock, valid, per_account_limit) "
				"VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
				6, (Oid[]) {INT8OID, TEXTOID, INT8OID, INT4OID, TSTZRANGEOID, INT4OID});
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "offer insert failed");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* The offer, locked, for its merchant (or the admin) to change. */
static void
offer_for_change(int64 id, Offer *o)
{
	offer_read(id, o);
	ledger_check_acting(o->merchant, false);
	if (strcmp(o->status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("offer " INT64_FORMAT " is closed", id),
				 errhint("A closed offer stays closed; create a new one.")));
}

/*
 * set_offer_status(offer, status) — active, paused or closed (final).
 */
PG_FUNCTION_INFO_V1(ledger_set_offer_status);
Datum
ledger_set_offer_status(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	int64		id = ledger_arg_int64(fcinfo, 0, "offer");
	char	   *status = ledger_arg_text(fcinfo, 1, "status");
	Offer		o;
	Datum		values[2];

	if (strcmp(status, "active") != 0 && strcmp(status, "paused") != 0 && strcmp(status, "closed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown offer status \"%s\"", status),
				 errhint("An offer is active, paused or closed.")));
	ledger_spi_connect();
	offer_for_change(id, &o);
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(status);
	ledger_plan(&plan, "UPDATE carbon.offer SET status = $2 WHERE id = $1", 2, (Oid[]) {INT8OID, TEXTOID});
	ledger_run(plan, values, SPI_OK_UPDATE);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * restock_offer(offer, quantity) → the new stock
 */
PG_FUNCTION_INFO_V1(ledger_restock_offer);
Datum
ledger_restock_offer(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	int64		id = ledger_arg_int64(fcinfo, 0, "offer");
	int32		quantity = arg_positive_int(fcinfo, 1, "quantity", 0);
	Offer		o;
	Datum		values[2];
	int32		stock;

	ledger_spi_connect();
	offer_for_change(id, &o);
	if (pg_add_s32_overflow(o.stock, quantity, &stock))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("stock out of range")));
	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(stock);
	ledger_plan(&plan, "UPDATE carbon.offer SET stock = $2 WHERE id = $1", 2, (Oid[]) {INT8OID, INT4OID});
	ledger_run(plan, values, SPI_OK_UPDATE);
	SPI_finish();
	PG_RETURN_INT32(stock);
}

/* What the account redeemed of the offer so far, net of refunds. */
static int64
redeemed_by(int64 offer, int64 account)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2] = {Int64GetDatum(offer), Int64GetDatum(account)};
	bool		isnull;

	ledger_plan(&plan,
				"SELECT coalesce(sum(quantity - refunded), 0)::bigint FROM carbon.redemption "
				"WHERE offer = $1 AND account = $2",
				2, (Oid[]) {INT8OID, INT8OID});
	ledger_run(plan, values, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static Datum
timestamps_array(const TimestampTz *t, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = TimestampTzGetDatum(t[i]);
	return ledger_array(d, NULL, n, TIMESTAMPTZOID);
}

static Datum
int8s_array(const int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return ledger_int8_array(d, n);
}

/*
 * redeem(account, offer, quantity, request_id) → entry id
 * Checks in api.md's order: arguments (22023), account status (CL002), the
 * offer's lifecycle (CL007: paused, closed, outside its validity), then
 * stock, the per-account limit and the balance (CL001).  A redemption is a
 * move of the system's, not a transfer: the flow matrix does not govern it
 * (api.md §2).  A merchant does not redeem: the points it collected leave
 * it by settlement only (a redemption would take the lots its customers'
 * refunds and its settlement need).
 */
PG_FUNCTION_INFO_V1(ledger_redeem);
Datum
ledger_redeem(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr record_plan = NULL;
	int64		account_id = ledger_arg_int64(fcinfo, 0, "account");
	int64		offer_id = ledger_arg_int64(fcinfo, 1, "offer");
	int32		quantity = arg_positive_int(fcinfo, 2, "quantity", 1);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 3);
	LedgerAccount citizen,
				merchant;
	Offer		o;
	int64		amount;
	int64		entry_id;
	int16		point;
	LedgerLotTrace trace = {0};
	bool		expired;
	Datum		values[8];

	ledger_check_acting(account_id, false);
	ledger_spi_connect();
	point = ledger_asset_point();
	/* the offer, locked: its stock and the account's count stay ours to the end */
	offer_read(offer_id, &o);
	expired = ledger_require_pair(account_id, o.merchant, point, &citizen, &merchant);
	if (!citizen.participant || account_id == o.merchant || strcmp(citizen.tier, "merchant") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " cannot redeem offer " INT64_FORMAT, account_id, offer_id),
				 errdetail("Only a participant that is not a merchant redeems: a merchant's points leave it by settlement.")));
	if (ledger_request_begin(account_id, request_id, "redeem",
							 psprintf(INT64_FORMAT "|%d", offer_id, quantity), &entry_id))
	{
		SPI_finish();
		PG_RETURN_INT64(entry_id);
	}
	ledger_require_active(&citizen);
	ledger_require_active(&merchant);
	if (strcmp(o.status, "active") != 0 || !o.valid_now)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("offer " INT64_FORMAT " cannot be redeemed now: it is %s", offer_id,
						strcmp(o.status, "active") != 0 ? o.status : "outside its validity"),
				 errhint("See carbon.v_offers for the offers open now.")));
	if (o.stock < quantity)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("offer " INT64_FORMAT " has %d left, %d asked", offer_id, o.stock, quantity)));
	if (o.has_limit)
	{
		int64		already = redeemed_by(offer_id, account_id);

		if (already + quantity > o.per_account_limit)
			ereport(ERROR,
					(errcode(ERRCODE_CL_INSUFFICIENT),
					 errmsg("offer " INT64_FORMAT " allows %d per account; account " INT64_FORMAT " has %lld already",
							offer_id, o.per_account_limit, account_id, (long long) already),
					 errdetail("Refunded items do not count.")));
	}
	if (pg_mul_s64_overflow(o.points_cost, quantity, &amount))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("points out of range")));

	/* expired lots are swept before spending: they are not spendable */
	if (expired)
		ledger_sweep_expired(account_id);
	entry_id = ledger_move_traced("redemption", psprintf("兑换 redemption of offer " INT64_FORMAT " × %d",
														 offer_id, quantity),
								  &citizen, &merchant, point, amount, NULL, &trace);
	if (trace.n == 0)
		elog(ERROR, "redemption left no trace of its lots");

	values[0] = Int64GetDatum(entry_id);
	values[1] = Int64GetDatum(offer_id);
	values[2] = Int64GetDatum(account_id);
	values[3] = Int64GetDatum(o.merchant);
	values[4] = Int32GetDatum(quantity);
	values[5] = Int64GetDatum(o.points_cost);
	values[6] = timestamps_array(trace.expires_at, trace.n);
	values[7] = int8s_array(trace.amount, trace.n);
	ledger_plan(&record_plan,
				"WITH s AS (UPDATE carbon.offer SET stock = stock - $5 WHERE id = $2) "
				"INSERT INTO carbon.redemption (entry_id, offer, account, merchant, quantity, unit_points, "
				"  lot_expiries, lot_amounts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
				8, (Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT8OID, TIMESTAMPTZARRAYOID, INT8ARRAYOID});
	ledger_run(record_plan, values, SPI_OK_INSERT);

	ledger_request_finish(account_id, request_id, entry_id);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* A redemption row, as refunds and settlements read it (locked). */
typedef struct Redemption
{
	int64		entry_id;
	int64		offer;
	int64		account;
	int64		merchant;
	int32		quantity;
	int32		refunded;
	int64		unit_points;
	bool		settled;
	int			npieces;
	Datum	   *expiries;		/* the lot pieces it took, earliest first */
	Datum	   *amounts;
} Redemption;

#define REDEMPTION_COLUMNS \
	"entry_id, offer, account, merchant, quantity, refunded, unit_points, settled_by IS NOT NULL, " \
	"lot_expiries, lot_amounts "

static void
redemption_from(HeapTuple tup, TupleDesc desc, Redemption *r)
{
	bool		isnull;

	r->entry_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	r->offer = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	r->account = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	r->merchant = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	r->quantity = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	r->refunded = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	r->unit_points = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	r->settled = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 9, &isnull)), TIMESTAMPTZOID, 8,
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &r->expiries, NULL, &r->npieces);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 10, &isnull)), INT8OID, 8,
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &r->amounts, NULL, &r->npieces);
}

/* Lot pieces, gathered. */
typedef struct Pieces
{
	int			n;
	int			cap;
	TimestampTz *expires_at;
	int64	   *amount;
	int64		live;			/* their total */
	int64		dead;			/* what had expired: not among them */
} Pieces;

/*
 * The pieces of `quantity` items of a redemption, past its `refunded`
 * ones, the latest-expiring first (refunds give back the latest first, so
 * that what stays redeemed is what would have been spent first).  Pieces
 * expired by `now` are counted in `dead` only: they are in the expired
 * sink.
 */
static void
redemption_pieces(const Redemption *r, int32 quantity, TimestampTz now, Pieces *p)
{
	int64		skip = (int64) r->refunded * r->unit_points;
	int64		want = (int64) quantity * r->unit_points;

	for (int i = r->npieces - 1; i >= 0 && want > 0; i--)
	{
		int64		piece = DatumGetInt64(r->amounts[i]);
		int64		part;

		if (skip >= piece)
		{
			skip -= piece;
			continue;
		}
		piece -= skip;
		skip = 0;
		part = Min(piece, want);
		want -= part;
		if (DatumGetTimestampTz(r->expiries[i]) <= now)
		{
			p->dead += part;
			continue;
		}
		if (p->n >= p->cap)
		{
			p->cap = Max(16, p->cap * 2);
			p->expires_at = p->expires_at ? repalloc(p->expires_at, sizeof(TimestampTz) * p->cap)
				: palloc(sizeof(TimestampTz) * p->cap);
			p->amount = p->amount ? repalloc(p->amount, sizeof(int64) * p->cap) : palloc(sizeof(int64) * p->cap);
		}
		p->expires_at[p->n] = DatumGetTimestampTz(r->expiries[i]);
		p->amount[p->n++] = part;
		p->live += part;
	}
}

/*
 * Pieces whose lot the merchant no longer has at all were expired early:
 * expire_lots(as_of) with as_of in the future (a job run ahead, or a test
 * moving time on) deletes the lots expiring by as_of, which the
 * comparison with now in redemption_pieces cannot see.  They are in the
 * expired sink, so they count as dead, not as points to move.  (A lot
 * still there with too little in it is a merchant that moved its points
 * away: pieces_move refuses that.)
 */
static void
pieces_drop_expired(int64 merchant, Pieces *p)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *expiries;
	Datum		values[3];
	int			kept = 0;

	if (p->n == 0)
		return;
	expiries = palloc(sizeof(Datum) * p->n);
	for (int i = 0; i < p->n; i++)
		expiries[i] = TimestampTzGetDatum(p->expires_at[i]);
	values[0] = Int64GetDatum(merchant);
	values[1] = Int16GetDatum(ledger_asset_point());
	values[2] = PointerGetDatum(construct_array(expiries, p->n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ledger_plan(&plan,
				"SELECT DISTINCT expires_at FROM carbon.lot "
				"WHERE account = $1 AND asset_id = $2 AND expires_at = ANY ($3)",
				3, (Oid[]) {INT8OID, INT2OID, TIMESTAMPTZARRAYOID});
	ledger_run(plan, values, SPI_OK_SELECT);
	for (int i = 0; i < p->n; i++)
	{
		bool		present = false;

		for (uint64 j = 0; j < SPI_processed && !present; j++)
		{
			bool		isnull;

			present = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1,
														&isnull)) == p->expires_at[i];
		}
		if (!present)
		{
			p->dead += p->amount[i];
			p->live -= p->amount[i];
			continue;
		}
		p->expires_at[kept] = p->expires_at[i];
		p->amount[kept++] = p->amount[i];
	}
	p->n = kept;
}

/* The pieces moved out of the merchant's lots, or CL001: it no longer holds them. */
static void
pieces_move(int64 merchant, int64 payee, const Pieces *p, int64 entry_id)
{
	int64		moved = ledger_lots_move_pieces(merchant, payee, ledger_asset_point(), p->n, p->expires_at,
												p->amount, entry_id);

	if (moved != p->live)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("merchant " INT64_FORMAT " no longer holds the points it collected", merchant),
				 errdetail("Needed " INT64_FORMAT " points in the lots the redemptions took; found " INT64_FORMAT ".",
						   p->live, moved),
				 errhint("Points a merchant collected leave its account by settle_merchant() only.")));
}

/*
 * refund_redemption(redemption, quantity, request_id) → entry id, or NULL
 * when every piece to give back had expired (nothing moves; the stock still
 * returns).  The merchant (acting for its account) or the admin refunds.
 */
PG_FUNCTION_INFO_V1(ledger_refund_redemption);
Datum
ledger_refund_redemption(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr record_plan = NULL;
	int64		redemption = ledger_arg_int64(fcinfo, 0, "redemption");
	bool		all = PG_ARGISNULL(1);
	int32		quantity = all ? 0 : arg_positive_int(fcinfo, 1, "quantity", 0);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 2);
	Redemption	r;
	LedgerAccount citizen,
				merchant;
	Offer		o;
	Pieces		p = {0};
	int64		entry_id = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		values[6];
	char		nulls[6] = "      ";

	ledger_spi_connect();
	values[0] = Int64GetDatum(redemption);
	ledger_plan(&find_plan, "SELECT " REDEMPTION_COLUMNS "FROM carbon.redemption WHERE entry_id = $1",
				1, (Oid[]) {INT8OID});
	ledger_run(find_plan, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redemption " INT64_FORMAT " does not exist", redemption),
				 errhint("A redemption is named by the entry id redeem() returned.")));
	redemption_from(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &r);
	ledger_check_acting_owner(r.merchant, false, "redemption", redemption);
	if (ledger_request_begin(r.merchant, request_id, "refund_redemption",
							 psprintf(INT64_FORMAT "|%d", redemption, quantity), &entry_id))
	{
		SPI_finish();
		if (entry_id == 0)
			PG_RETURN_NULL();
		PG_RETURN_INT64(entry_id);
	}
	ledger_require_pair(r.merchant, r.account, ledger_asset_point(), &merchant, &citizen);
	ledger_require_active(&citizen);

	/* the offer, then the redemption: redeem()'s lock order */
	offer_read(r.offer, &o);
	ledger_plan(&lock_plan, "SELECT " REDEMPTION_COLUMNS "FROM carbon.redemption WHERE entry_id = $1 FOR UPDATE",
				1, (Oid[]) {INT8OID});
	ledger_run(lock_plan, values, SPI_OK_SELECT);
	redemption_from(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &r);
	if (all)
		quantity = r.quantity - r.refunded;
	if (r.quantity == r.refunded)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("redemption " INT64_FORMAT " has nothing left to refund", redemption)));
	if (quantity > r.quantity - r.refunded)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("redemption " INT64_FORMAT " has %d left to refund, %d asked", redemption,
						r.quantity - r.refunded, quantity)));
	if (r.settled)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("redemption " INT64_FORMAT " is settled", redemption),
				 errhint("Points settled into the redeemed sink are no longer the merchant's to give back.")));

	/* what expired with the merchant goes to the expired sink now, not back */
	ledger_sweep_expired(r.merchant);
	redemption_pieces(&r, quantity, now, &p);
	pieces_drop_expired(r.merchant, &p);
	if (p.live > 0)
	{
		const LedgerAccount *accounts[4];
		int16		point = ledger_asset_point();
		int16		assets[4] = {point, point, point, point};
		int64		amounts[4];
		int			n = 0;
		LedgerEntry entry;

		accounts[n] = &merchant;
		amounts[n++] = -p.live;
		if (strcmp(merchant.tier, citizen.tier) != 0 || strcmp(merchant.region, citizen.region) != 0)
		{
			accounts[n] = ledger_system_account_info("clearing", point, merchant.tier, merchant.region);
			amounts[n++] = p.live;
			accounts[n] = ledger_system_account_info("clearing", point, citizen.tier, citizen.region);
			amounts[n++] = -p.live;
		}
		accounts[n] = &citizen;
		amounts[n++] = p.live;
		entry = ledger_entry("refund", psprintf("退还 refund of redemption " INT64_FORMAT " × %d", redemption,
												quantity), n, accounts, assets, amounts);
		entry.holdings_moved = true;	/* the same pieces go back, below */
		entry_id = ledger_post(&entry);
		pieces_move(r.merchant, r.account, &p, entry_id);
	}

	values[1] = Int32GetDatum(quantity);
	values[2] = Int64GetDatum(p.live);
	values[3] = Int64GetDatum(p.dead);
	values[4] = Int64GetDatum(entry_id);
	nulls[4] = entry_id ? ' ' : 'n';
	values[5] = Int64GetDatum(r.offer);
	ledger_plan(&record_plan,
				"WITH r AS (UPDATE carbon.redemption SET refunded = refunded + $2 WHERE entry_id = $1), "
				"s AS (UPDATE carbon.offer SET stock = stock + $2 WHERE id = $6) "
				"INSERT INTO carbon.refund (redemption, quantity, points, expired_points, entry_id) "
				"VALUES ($1, $2, $3, $4, $5)",
				6, (Oid[]) {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID});
	if (SPI_execute_plan(record_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "refund record failed");
	ledger_request_finish(r.merchant, request_id, entry_id);
	SPI_finish();
	if (entry_id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(entry_id);
}

/*
 * settle_merchant(merchant, up_to) → entry id, or NULL when nothing to
 * settle: what the merchant collected by redemptions made up to `up_to`,
 * net of refunds and of what expired with the merchant, moves into the
 * redeemed sink of the merchant's segment — the very lot pieces those
 * redemptions took, so that later refunds of other redemptions find
 * theirs.
 */
PG_FUNCTION_INFO_V1(ledger_settle_merchant);
Datum
ledger_settle_merchant(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr record_plan = NULL;
	int64		merchant_id = ledger_arg_int64(fcinfo, 0, "merchant");
	TimestampTz up_to = PG_ARGISNULL(1) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	LedgerAccount merchant;
	Pieces		p = {0};
	Datum		values[4];
	uint64		count;
	int64		entry_id = 0;

	ledger_spi_connect();
	ledger_require_account(merchant_id, &merchant);
	require_merchant(&merchant);

	/* the redemptions first (a refund holds its redemption before balances) */
	values[0] = Int64GetDatum(merchant_id);
	values[1] = TimestampTzGetDatum(up_to);
	ledger_plan(&find_plan,
				"SELECT " REDEMPTION_COLUMNS "FROM carbon.redemption "
				"WHERE merchant = $1 AND settled_by IS NULL AND at <= $2 AND refunded < quantity "
				"ORDER BY entry_id FOR UPDATE",
				2, (Oid[]) {INT8OID, TIMESTAMPTZOID});
	ledger_run(find_plan, values, SPI_OK_SELECT);
	count = SPI_processed;
	if (count == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	for (uint64 i = 0; i < count; i++)
	{
		Redemption	r;

		redemption_from(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &r);
		redemption_pieces(&r, r.quantity - r.refunded, now, &p);
	}
	/* what expired with the merchant goes to the expired sink, not to redeemed */
	ledger_sweep_expired(merchant_id);
	pieces_drop_expired(merchant_id, &p);
	if (p.live > 0)
	{
		const LedgerAccount *accounts[2];
		int16		point = ledger_asset_point();
		int16		assets[2] = {point, point};
		int64		amounts[2] = {-p.live, p.live};
		LedgerEntry entry;

		accounts[0] = &merchant;
		accounts[1] = ledger_system_account_info("redeemed", point, merchant.tier, merchant.region);
		entry = ledger_entry("settlement", psprintf("结算 settlement of %llu redemptions", (unsigned long long) count),
							 2, accounts, assets, amounts);
		entry.correction = true;	/* a frozen merchant is still settled */
		entry.holdings_moved = true;	/* the redemptions' own pieces leave, below */
		entry_id = ledger_post(&entry);
		pieces_move(merchant_id, 0, &p, entry_id);
	}
	values[2] = Int64GetDatum(p.live);
	values[3] = Int64GetDatum(entry_id);
	ledger_plan(&record_plan,
				"WITH s AS (INSERT INTO carbon.settlement (merchant, up_to, points, entry_id) "
				"           VALUES ($1, $2, $3, NULLIF($4, 0)) RETURNING id) "
				"UPDATE carbon.redemption SET settled_by = (SELECT id FROM s) "
				"WHERE merchant = $1 AND settled_by IS NULL AND at <= $2 AND refunded < quantity",
				4, (Oid[]) {INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID});
	ledger_run(record_plan, values, SPI_OK_UPDATE);
	SPI_finish();
	if (entry_id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(entry_id);
}
