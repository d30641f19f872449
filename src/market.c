/*
 * market.c — the voluntary reduction market (自愿减排交易, api.md §6):
 * cash in and out, a price–time priority order book per instrument,
 * continuous matching with delivery versus payment, escrow while orders
 * rest, cancellation and the daily close.
 *
 * Matching is serialised per instrument by a lock on its row, taken before
 * any balance (so that two orders whose traders trade with each other never
 * wait on each other's balances) and held to the end of the transaction:
 * the book never crosses, and every order and escrow ends exactly once.
 * The opposite side is walked in price–time order through its partial
 * index, a page of orders at a time; nothing scans the whole book.
 *
 * Everything one call moves (the incoming order's escrow, every fill's
 * cash, units and fees, escrow released by orders that end) is one entry,
 * posted once; the serial blocks follow after the posting (balances before
 * blocks, as everywhere).  Prices are fen per tonne; fees are
 * floor(value × trade_fee_bps / 10,000) on each side of each fill, so that
 * fills never cost more than the escrow of their limit price.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

/* ---- amounts in yuan ---- */

/*
 * numeric yuan → fen; false when it is not a whole number of fen.  Out of
 * range → 22003.
 */
static bool
yuan_to_fen(Numeric yuan, int64 *fen)
{
	Datum		scaled;
	Datum		whole;

	if (numeric_is_nan(yuan) || numeric_is_inf(yuan))
		return false;
	scaled = DirectFunctionCall2(numeric_mul, NumericGetDatum(yuan),
								 DirectFunctionCall1(int8_numeric, Int64GetDatum(100)));
	whole = DirectFunctionCall2(numeric_trunc, scaled, Int32GetDatum(0));

	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, scaled, whole)))
		return false;
	*fen = DatumGetInt64(DirectFunctionCall1(numeric_int8, whole));
	return true;
}

static Datum
fen_to_yuan(int64 fen)
{
	return DirectFunctionCall2(numeric_div, DirectFunctionCall1(int8_numeric, Int64GetDatum(fen)),
							   DirectFunctionCall1(int8_numeric, Int64GetDatum(100)));
}

static int64
mul_or_raise(int64 a, int64 b)
{
	int64		r;

	if (pg_mul_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the order's value is out of range")));
	return r;
}

/* The fee on one side of a fill of `value` fen. */
static int64
fee_of(int64 value, int64 bps)
{
	return (int64) (((int128) value * bps) / 10000);
}

/* ---- one entry for everything a call moves ---- */

/*
 * The postings of one entry, merged per (account, asset); a move between
 * segments passes through both segments' clearing accounts.
 */
typedef struct Postings
{
	int			n;
	int			cap;
	const LedgerAccount **accounts;
	int16	   *assets;
	int64	   *amounts;
} Postings;

static void
post_add(Postings *p, const LedgerAccount *acc, int16 asset, int64 amount)
{
	if (amount == 0)
		return;
	for (int i = 0; i < p->n; i++)
		if (p->accounts[i]->id == acc->id && p->assets[i] == asset)
		{
			p->amounts[i] += amount;
			return;
		}
	if (p->n == p->cap)
	{
		p->cap = p->cap ? p->cap * 2 : 16;
		p->accounts = p->accounts ? repalloc(p->accounts, sizeof(LedgerAccount *) * p->cap)
			: palloc(sizeof(LedgerAccount *) * p->cap);
		p->assets = p->assets ? repalloc(p->assets, sizeof(int16) * p->cap) : palloc(sizeof(int16) * p->cap);
		p->amounts = p->amounts ? repalloc(p->amounts, sizeof(int64) * p->cap) : palloc(sizeof(int64) * p->cap);
	}
	p->accounts[p->n] = acc;
	p->assets[p->n] = asset;
	p->amounts[p->n++] = amount;
}

static void
post_move(Postings *p, const LedgerAccount *from, const LedgerAccount *to, int16 asset, int64 amount)
{
	if (amount == 0)
		return;
	post_add(p, from, asset, -amount);
	if (strcmp(from->tier, to->tier) != 0 || strcmp(from->region, to->region) != 0)
	{
		post_add(p, ledger_system_account_info("clearing", asset, from->tier, from->region), asset, amount);
		post_add(p, ledger_system_account_info("clearing", asset, to->tier, to->region), asset, -amount);
	}
	post_add(p, to, asset, amount);
}

/* Post them (zero sums dropped) as one entry; 0 when nothing moves. */
static int64
post_all(Postings *p, const char *kind, const char *memo, bool correction)
{
	int			n = 0;
	LedgerEntry entry;

	for (int i = 0; i < p->n; i++)
		if (p->amounts[i] != 0)
		{
			p->accounts[n] = p->accounts[i];
			p->assets[n] = p->assets[i];
			p->amounts[n++] = p->amounts[i];
		}
	if (n == 0)
		return 0;
	entry = ledger_entry(kind, memo, n, p->accounts, p->assets, p->amounts);
	entry.holdings_moved = true;	/* the serial blocks follow below (units.c) */
	entry.booked_by_caller = true;	/* escrow is no event in the books; trades are booked by work_write */
	entry.correction = correction;
	return ledger_post(&entry);
}

/* ---- accounts ---- */

/* A participant account, cached for the call (pointers stay valid). */
typedef struct AccountCache
{
	int			n;
	LedgerAccount acc[64];
} AccountCache;

static const LedgerAccount *
account_of(AccountCache *c, int64 id)
{
	LedgerAccount *a;

	for (int i = 0; i < c->n; i++)
		if (c->acc[i].id == id)
			return &c->acc[i];
	if (c->n == lengthof(c->acc))
	{
		a = palloc(sizeof(LedgerAccount));	/* rarely: a call that meets many counterparties */
		ledger_require_account(id, a);
		return a;
	}
	a = &c->acc[c->n++];
	ledger_require_account(id, a);
	return a;
}

/* What the account can spend of an asset now (its balance row, locked). */
static int64
available(int64 account, int16 asset)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2] = {Int64GetDatum(account), Int16GetDatum(asset)};
	bool		isnull;

	ledger_plan_generic(&plan,
				"SELECT amount FROM carbon.balance WHERE account = $1 AND asset_id = $2 AND stripe = 0 FOR UPDATE",
				2, (Oid[]) {INT8OID, INT2OID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "balance lookup failed");
	return SPI_processed == 0 ? 0 : DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
																 &isnull));
}

/* ---- cash in and out ---- */

static Datum
cash_move(FunctionCallInfo fcinfo, bool deposit)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *reference;
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 3);
	int64		fen;
	int64		entry_id;
	int16		cny;
	LedgerAccount acc;
	const LedgerAccount *gateway;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("amount must not be null")));
	if (!yuan_to_fen(PG_GETARG_NUMERIC(1), &fen) || fen <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an amount of cash is a positive number of yuan with at most 2 decimals")));
	reference = ledger_arg_text(fcinfo, 2, "reference");
	if (reference[0] == '\0' || strlen(reference) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a cash movement names its bank reference (1 to 200 bytes)")));
	ledger_check_acting(account, false);
	ledger_spi_connect();
	cny = ledger_asset_id("CNY");
	ledger_require_account(account, &acc);
	ledger_require_participant(&acc);
	if (ledger_request_begin(account, request_id, deposit ? "deposit_cash" : "withdraw_cash",
							 psprintf(INT64_FORMAT "|%s", fen, reference), &entry_id))
	{
		SPI_finish();
		PG_RETURN_INT64(entry_id);
	}
	ledger_require_active(&acc);
	/* the cash gateway: the CNY issuance account of the account's segment */
	gateway = ledger_system_account_info("issuance", cny, acc.tier, acc.region);
	entry_id = ledger_move(deposit ? "deposit" : "withdrawal", reference, deposit ? gateway : &acc,
						   deposit ? &acc : gateway, cny, fen, NULL);
	ledger_request_finish(account, request_id, entry_id);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* deposit_cash(account, amount, reference, request_id) → entry id */
PG_FUNCTION_INFO_V1(ledger_deposit_cash);
Datum
ledger_deposit_cash(PG_FUNCTION_ARGS)
{
	return cash_move(fcinfo, true);
}

/* withdraw_cash(account, amount, reference, request_id) → entry id */
PG_FUNCTION_INFO_V1(ledger_withdraw_cash);
Datum
ledger_withdraw_cash(PG_FUNCTION_ARGS)
{
	return cash_move(fcinfo, false);
}

/* ---- instruments ---- */

typedef struct Instrument
{
	const char *code;
	int16		asset;
	bool		has_reference;
	int64		reference;
	int64		band_bps;
} Instrument;

static void
instrument_known(const char *code)
{
	if (strcmp(code, "CER-I") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown instrument \"%s\"", code),
				 errhint("The market trades CER-I: class I certified units.")));
}

/*
 * The instrument this transaction has locked, with the values read then:
 * the row lock is held to the end of the transaction, so the second order of
 * a transaction neither locks nor updates the row again (1,000 updates of one
 * row in one transaction leave a chain of 1,000 versions that every lookup
 * walks).  Forgotten when a subtransaction rolls back (it may have taken the
 * lock) and when the reference price changes.
 */
static struct
{
	LocalTransactionId lxid;
	bool		valid;
	Instrument	ins;
}			held_instrument;

static void
instrument_forget(void)
{
	held_instrument.valid = false;
}

/* The instrument's row, locked: the book's lock (created on first use). */
static void
instrument_lock(const char *code, Instrument *ins)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr create_plan = NULL;
	Datum		values[2];
	bool		isnull;
	Datum		d;

	instrument_known(code);
	if (held_instrument.valid && held_instrument.lxid == MyProc->lxid)
	{
		*ins = held_instrument.ins;
		ins->code = code;
		return;
	}
	values[0] = CStringGetTextDatum(code);
	values[1] = Int16GetDatum(ledger_asset_id("CER"));
	/*
	 * An update, not only a lock: a REPEATABLE READ or SERIALIZABLE
	 * transaction whose snapshot predates another order's commit then fails
	 * to serialize (40001) instead of reading a book without that order.
	 */
	ledger_plan_generic(&lock_plan,
				"UPDATE carbon.instrument SET book_version = book_version + 1 WHERE code = $1 "
				"RETURNING reference_price, band_bps",
				1, (Oid[]) {TEXTOID});
	if (SPI_execute_plan(lock_plan, values, NULL, false, 1) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "instrument lookup failed");
	if (SPI_processed == 0)
	{
		ledger_plan_generic(&create_plan,
					"INSERT INTO carbon.instrument (code, asset_id, class) VALUES ($1, $2, 'I') ON CONFLICT DO NOTHING",
					2, (Oid[]) {TEXTOID, INT2OID});
		if (SPI_execute_plan(create_plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "instrument insert failed");
		if (SPI_execute_plan(lock_plan, values, NULL, false, 1) != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
			elog(ERROR, "instrument lookup failed");
	}
	ins->code = code;
	ins->asset = ledger_asset_id("CER");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	ins->has_reference = !isnull;
	ins->reference = isnull ? 0 : DatumGetInt64(d);
	ins->band_bps = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	held_instrument.lxid = MyProc->lxid;
	held_instrument.ins = *ins;
	held_instrument.valid = true;
}

/* The band around the reference price: [low, high] fen, inclusive. */
static void
band_of(const Instrument *ins, int64 *low, int64 *high)
{
	/* low rounds up, high down: a price in the band is within ±band_bps exactly */
	*low = (int64) (((int128) ins->reference * (10000 - ins->band_bps) + 9999) / 10000);
	*high = (int64) (((int128) ins->reference * (10000 + ins->band_bps)) / 10000);
}

/* ---- orders ---- */

/* A resting order, as the book returns it. */
typedef struct Resting
{
	int64		id;
	int64		account;
	int64		price;
	int64		tonnes;
	int64		filled;
	int64		turnover;
	int64		fees;
	int64		escrow;
	bool		expired;
	bool		buy_side;		/* read by resting_read (cancel, close) */
	char	   *retire_for;
	char	   *retire_purpose;
	/* what this call did to it */
	bool		touched;
	bool		ended;
	const char *end_reason;
} Resting;

/* The incoming order. */
typedef struct Order
{
	int64		id;
	const LedgerAccount *acc;
	bool		buy;
	int64		tonnes;
	bool		market;
	int64		price;			/* limit, fen per tonne */
	const char *tif;
	const char *retire_for;
	const char *retire_purpose;
	int64		filled;
	int64		turnover;
	int64		fees;
	int64		budget;			/* buy: cash it may still spend */
	int64		escrow;			/* what rests in escrow at the end */
	const char *status;
	const char *end_reason;
} Order;

/* A unit move to make once the entry is posted. */
/* A unit move (units.c) and the trade it settles, or -1 */
typedef struct UnitMove
{
	LedgerUnitMove move;
	int			trade;
} UnitMove;

typedef struct Trade
{
	int64		buy_order;
	int64		sell_order;
	int64		buyer;
	int64		seller;
	int64		price;
	int64		tonnes;
	int64		buyer_fee;
	int64		seller_fee;
	Datum		serials;
	const char *retire_for;		/* the buy retires: certificate for this beneficiary */
	const char *retire_purpose;
} Trade;

/* Everything a call does, gathered, then written. */
typedef struct MarketWork
{
	Instrument	ins;
	AccountCache accounts;
	Postings	postings;
	int			nmoves,
				maxmoves;
	UnitMove   *moves;
	int			ntrades,
				maxtrades;
	Trade	   *trades;
	int			nresting,
				maxresting;
	Resting    *resting;		/* every resting order read (touched or not) */
	int64		fee_bps;
	bool		correction;		/* escrow goes back to a frozen account: a correction */
	int			nfee_accounts;
	LedgerAccount *fee_accounts[8];	/* the market's fee account per region, this call */
	int16		cny;
	TimestampTz now;
	DateADT		today;
	bool		skip_found;		/* the walk ended orders at the head of the opposite side */
	int64		skip_price;		/* ... up to this one */
	int64		skip_id;
} MarketWork;

/*
 * The ended prefix of each side of the book, within this transaction.
 * Orders that a transaction fills stay in the book's partial index (and in
 * the heap, as versions only this transaction can see past) until it ends:
 * with 1,000 orders in one transaction, each walk from the best price would
 * step over every order the earlier ones filled.  So the walk remembers
 * where the ended orders at the head of the side stop, and the next walk in
 * the same transaction starts there.  Valid because the instrument's lock
 * is held to the end of the transaction (nobody else adds orders), because
 * an order of ours that comes to rest ahead of that point clears it, and
 * because a rolled-back subtransaction (whose ends are undone) clears it.
 */
typedef struct BookSkip
{
	LocalTransactionId lxid;
	bool		valid[2];		/* [bids] */
	int64		price[2];
	int64		id[2];
} BookSkip;

static BookSkip book_skip;

void
ledger_market_forget(void)
{
	book_skip.valid[0] = book_skip.valid[1] = false;
	instrument_forget();
}

/* Where a walk of a side may start: false to start at the best price. */
static bool
skip_start(bool bids, int64 *price, int64 *id)
{
	if (book_skip.lxid != MyProc->lxid || !book_skip.valid[bids])
		return false;
	*price = book_skip.price[bids];
	*id = book_skip.id[bids];
	return true;
}

static void
skip_set(bool bids, int64 price, int64 id)
{
	if (book_skip.lxid != MyProc->lxid)
		book_skip.valid[0] = book_skip.valid[1] = false;
	book_skip.lxid = MyProc->lxid;
	book_skip.valid[bids] = true;
	book_skip.price[bids] = price;
	book_skip.id[bids] = id;
}

/* An order of ours comes to rest on side `bids` at `price`: ahead of the skipped prefix? */
static void
skip_rest(bool bids, int64 price)
{
	if (book_skip.lxid == MyProc->lxid && book_skip.valid[bids] &&
		(bids ? price > book_skip.price[bids] : price < book_skip.price[bids]))
		book_skip.valid[bids] = false;
}

static void
work_init(MarketWork *w)
{
	memset(w, 0, sizeof(*w));
	w->cny = ledger_asset_id("CNY");
	w->fee_bps = ledger_settings()->trade_fee_bps;	/* the cached settings (catalog.c) */
	/* now and today: work_clock(), once the book's lock is held */
}

/*
 * The market's time: read once the book's lock is held, so that the times
 * of orders, trades and their ends follow the order in which the book saw
 * them (the transaction's start would date a fill before the order it met).
 */
static void
work_clock(MarketWork *w)
{
	w->now = GetCurrentTimestamp();
	w->today = ledger_local_day(CStringGetTextDatum(ledger_settings()->timezone), w->now);
}

static void
add_move(MarketWork *w, LedgerUnitMove m, int trade)
{
	if (w->nmoves == w->maxmoves)
	{
		w->maxmoves = w->maxmoves ? w->maxmoves * 2 : 16;
		w->moves = w->moves ? repalloc(w->moves, sizeof(UnitMove) * w->maxmoves)
			: palloc(sizeof(UnitMove) * w->maxmoves);
	}
	w->moves[w->nmoves++] = (UnitMove) {m, trade};
}

static int
add_trade(MarketWork *w, Trade t)
{
	if (w->ntrades == w->maxtrades)
	{
		w->maxtrades = w->maxtrades ? w->maxtrades * 2 : 16;
		w->trades = w->trades ? repalloc(w->trades, sizeof(Trade) * w->maxtrades)
			: palloc(sizeof(Trade) * w->maxtrades);
	}
	w->trades[w->ntrades] = t;
	return w->ntrades++;
}

/* The market's fee account of a region (opened on first use). */
static const LedgerAccount *
fee_account(MarketWork *w, const char *region)
{
	LedgerAccount *acc;

	for (int i = 0; i < w->nfee_accounts; i++)
		if (strcmp(w->fee_accounts[i]->region, region) == 0)
			return w->fee_accounts[i];
	/* opened just now, perhaps: kept as ledger_platform_account read it, not looked up again */
	acc = palloc(sizeof(LedgerAccount));
	ledger_platform_account("carbon_ledger:market_fees", "交易手续费 market fees", acc, region);
	if (w->nfee_accounts < (int) lengthof(w->fee_accounts))
		w->fee_accounts[w->nfee_accounts++] = acc;
	return acc;
}

static const LedgerAccount *
escrow_account(MarketWork *w, int16 asset, const LedgerAccount *of)
{
	(void) w;
	return ledger_system_account_info("escrow", asset, of->tier, of->region);
}

/*
 * A resting order ends (filled in full, cancelled, expired, self-trade):
 * what is left of its escrow goes back to its owner.
 */
static void
resting_end(MarketWork *w, Resting *r, bool buy_side, const char *reason)
{
	const LedgerAccount *owner = account_of(&w->accounts, r->account);

	if (strcmp(owner->status, "active") != 0)
		w->correction = true;	/* its own escrow back to a frozen account */
	if (r->escrow > 0)
	{
		if (buy_side)
			post_move(&w->postings, escrow_account(w, w->cny, owner), owner, w->cny, r->escrow);
		else
		{
			post_move(&w->postings, escrow_account(w, w->ins.asset, owner), owner, w->ins.asset, r->escrow);
			add_move(w, (LedgerUnitMove) {UNITS_RELEASE, r->account, r->id, r->escrow, 0, false, reason}, -1);
		}
	}
	r->escrow = 0;
	r->ended = true;
	r->touched = true;
	r->end_reason = reason;
}

/*
 * The columns of a resting order as resting_add() reads them (the 9th,
 * whether it is past its life, is false where nobody matches against it).
 */
#define RESTING_COLUMNS "id, account, price, tonnes, filled, turnover, fees, escrow, false, retire_for, " \
	"retire_purpose, side"

static void
resting_add(MarketWork *w, HeapTuple t, TupleDesc d)
{
	bool		isnull;
	Resting    *r;

	if (w->nresting == w->maxresting)
	{
		w->maxresting = w->maxresting ? w->maxresting * 2 : 32;
		w->resting = w->resting ? repalloc(w->resting, sizeof(Resting) * w->maxresting)
			: palloc(sizeof(Resting) * w->maxresting);
	}
	r = &w->resting[w->nresting++];
	memset(r, 0, sizeof(*r));
	r->id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	r->account = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
	r->price = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	r->tonnes = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
	r->filled = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
	r->turnover = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
	r->fees = DatumGetInt64(SPI_getbinval(t, d, 7, &isnull));
	r->escrow = DatumGetInt64(SPI_getbinval(t, d, 8, &isnull));
	r->expired = DatumGetBool(SPI_getbinval(t, d, 9, &isnull));
	r->retire_for = SPI_getvalue(t, d, 10);
	r->retire_purpose = SPI_getvalue(t, d, 11);
	r->buy_side = strcmp(SPI_getvalue(t, d, 12), "buy") == 0;
}

/* A page of the opposite side, best first, after (price, id) of the last one read. */
static int
book_page(MarketWork *w, bool bids, bool first, int64 after_price, int64 after_id)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Datum		values[5] = {CStringGetTextDatum(w->ins.code), BoolGetDatum(first), Int64GetDatum(after_price),
	Int64GetDatum(after_id), TimestampTzGetDatum(w->now)};
	int			start = w->nresting;

	/* the partial indexes of the book, walked in price–time order */
	ledger_plan_generic(&plans[bids],
				bids ?
				"SELECT id, account, price, tonnes, filled, turnover, fees, escrow, "
				"       coalesce(expires_at <= $5, false), retire_for, retire_purpose, side "
				"FROM carbon.market_order WHERE instrument = $1 AND side = 'buy' "
				"  AND status IN ('open', 'partially_filled') "
				"  AND ($2 OR (price, -id) < ($3, -$4)) "
				"ORDER BY instrument, price DESC, id LIMIT 16" :
				"SELECT id, account, price, tonnes, filled, turnover, fees, escrow, "
				"       coalesce(expires_at <= $5, false), retire_for, retire_purpose, side "
				"FROM carbon.market_order WHERE instrument = $1 AND side = 'sell' "
				"  AND status IN ('open', 'partially_filled') "
				"  AND ($2 OR (price, id) > ($3, $4)) "
				"ORDER BY instrument, price, id LIMIT 16",
				5, (Oid[]) {TEXTOID, BOOLOID, INT8OID, INT8OID, TIMESTAMPTZOID});
	if (SPI_execute_plan(plans[bids], values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "order book lookup failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		resting_add(w, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
	return w->nresting - start;
}

/* The most tonnes a buy may take at `price` with `budget` fen, fees included. */
static int64
affordable(int64 budget, int64 price, int64 bps)
{
	int64		q = (int64) (((int128) budget * 10000) / ((int128) price * (10000 + bps)));

	while ((int128) (q + 1) * price + fee_of((q + 1) * price, bps) <= budget)
		q++;
	while (q > 0 && (int128) q * price + fee_of(q * price, bps) > budget)
		q--;
	return q;
}

/* Does the resting price cross the incoming order (and lie in the band, for a market order)? */
static bool
acceptable(const MarketWork *w, const Order *o, int64 resting_price)
{
	if (!o->market)
		return o->buy ? resting_price <= o->price : resting_price >= o->price;
	if (w->ins.has_reference)
	{
		int64		low,
					high;

		band_of(&w->ins, &low, &high);
		return o->buy ? resting_price <= high : resting_price >= low;
	}
	return true;
}

/*
 * One fill: `q` tonnes between the incoming order and resting order `r`,
 * at the resting price.  Cash moves from the buyer (the incoming buyer's
 * own account, or the resting buyer's escrow) to the seller less fees;
 * units from the seller (the incoming seller's held units, or the resting
 * seller's escrow) to the buyer, or retired in its name.
 */
static void
fill(MarketWork *w, Order *o, Resting *r, int64 q)
{
	int64		value = mul_or_raise(q, r->price);
	int64		fb = fee_of(value, w->fee_bps);
	int64		fs = fee_of(value, w->fee_bps);
	const LedgerAccount *buyer = o->buy ? o->acc : account_of(&w->accounts, r->account);
	const LedgerAccount *seller = o->buy ? account_of(&w->accounts, r->account) : o->acc;
	const LedgerAccount *cash_from = o->buy ? buyer : escrow_account(w, w->cny, buyer);
	const char *retire_for = o->buy ? o->retire_for : r->retire_for;
	const char *retire_purpose = o->buy ? o->retire_purpose : r->retire_purpose;
	int			t;

	/* cash: delivery versus payment, in the same entry as the units */
	post_move(&w->postings, cash_from, seller, w->cny, value - fs);
	if (fb + fs > 0)
		post_move(&w->postings, cash_from, fee_account(w, cash_from->region), w->cny, fb + fs);
	/* units: from the seller's side to the buyer (or the retired sink in its segment) */
	post_move(&w->postings, o->buy ? escrow_account(w, w->ins.asset, seller) : seller,
			  retire_for ? ledger_system_account_info("retired", w->ins.asset, buyer->tier, buyer->region) : buyer,
			  w->ins.asset, q);

	t = add_trade(w, (Trade) {o->buy ? o->id : r->id, o->buy ? r->id : o->id, buyer->id, seller->id,
						 r->price, q, fb, fs, (Datum) 0, retire_for, retire_purpose});
	add_move(w, (LedgerUnitMove) {UNITS_DELIVER, seller->id, o->buy ? r->id : 0, q, buyer->id, retire_for != NULL,
		psprintf("trade at %lld.%02lld", (long long) (r->price / 100), (long long) (r->price % 100))}, t);

	o->filled += q;
	o->turnover += value;
	o->fees += o->buy ? fb : fs;
	if (o->buy)
		o->budget -= value + fb;
	r->filled += q;
	r->turnover += value;
	r->fees += o->buy ? fs : fb;
	r->touched = true;
	if (o->buy)
		r->escrow -= q;			/* a resting sell: tonnes in escrow */
	else
		r->escrow -= value + fb;	/* a resting buy: fen in escrow */
	if (r->escrow < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("order " INT64_FORMAT " has too little in escrow for its fill", r->id)));
	if (r->filled == r->tonnes)
		resting_end(w, r, !o->buy, "filled");
}

/*
 * Can a FOK order fill in full now?  The tonnes at acceptable prices of
 * other accounts' resting orders (and, for a buy, within its cash).
 */
static bool
fok_possible(MarketWork *w, const Order *o)
{
	int64		need = o->tonnes;
	int64		budget = o->budget;
	int64		after_price = 0,
				after_id = 0;
	bool		first = !skip_start(!o->buy, &after_price, &after_id);
	int			base = w->nresting;

	for (;;)
	{
		int			got = book_page(w, !o->buy, first, after_price, after_id);

		if (got == 0)
			break;
		for (int i = w->nresting - got; i < w->nresting; i++)
		{
			Resting    *r = &w->resting[i];
			int64		q;

			if (!acceptable(w, o, r->price))
			{
				w->nresting = base;
				return false;
			}
			if (r->expired || r->account == o->acc->id ||
				strcmp(account_of(&w->accounts, r->account)->status, "active") != 0)
				continue;
			q = Min(need, r->tonnes - r->filled);
			if (o->buy)
			{
				q = Min(q, affordable(budget, r->price, w->fee_bps));
				budget -= q * r->price + fee_of(q * r->price, w->fee_bps);
			}
			need -= q;
			if (need == 0)
			{
				w->nresting = base;
				return true;
			}
		}
		first = false;
		after_price = w->resting[w->nresting - 1].price;
		after_id = w->resting[w->nresting - 1].id;
	}
	w->nresting = base;			/* read again by the matching itself */
	return false;
}

/* Match the incoming order against the book, best price first, then time. */
static void
match(MarketWork *w, Order *o)
{
	int64		after_price = 0,
				after_id = 0;
	bool		first = !skip_start(!o->buy, &after_price, &after_id);
	bool		head = true;	/* every order walked so far has ended */

	while (o->filled < o->tonnes)
	{
		int			got = book_page(w, !o->buy, first, after_price, after_id);
		bool		stop = false;

		if (got == 0)
			break;
		for (int i = w->nresting - got; i < w->nresting && o->filled < o->tonnes; i++)
		{
			Resting    *r = &w->resting[i];
			int64		q;

			CHECK_FOR_INTERRUPTS();
			if (r->expired)
				resting_end(w, r, !o->buy, "gtc_max_days");
			else if (!acceptable(w, o, r->price))
				stop = true;
			else if (r->account == o->acc->id)
				/* self-trade prevention: the resting order goes, matching goes on */
				resting_end(w, r, !o->buy, "self_trade");
			else if (strcmp(account_of(&w->accounts, r->account)->status, "active") != 0)
				/* a frozen account trades no more: its order ends, its escrow goes back */
				resting_end(w, r, !o->buy, "account_frozen");
			else
			{
				q = Min(o->tonnes - o->filled, r->tonnes - r->filled);
				if (o->buy)
					q = Min(q, affordable(o->budget, r->price, w->fee_bps));
				if (q == 0)
					stop = true;	/* a market buy out of cash */
				else
					fill(w, o, r, q);
			}
			if (head && r->ended)
			{
				w->skip_found = true;
				w->skip_price = r->price;
				w->skip_id = r->id;
			}
			else
				head = false;
			if (stop)
				break;
		}
		if (stop)
			break;
		first = false;
		after_price = w->resting[w->nresting - 1].price;
		after_id = w->resting[w->nresting - 1].id;
	}
}

/* ---- writing it down ---- */

/* The resting orders this call changed, in one statement. */
static void
resting_write(MarketWork *w)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *id,
			   *filled,
			   *turnover,
			   *fees,
			   *escrow;
	Datum	   *status,
			   *reason;
	bool	   *reason_null;
	int			n = 0;
	Datum		values[8];

	id = palloc(sizeof(Datum) * Max(w->nresting, 1));
	filled = palloc(sizeof(Datum) * Max(w->nresting, 1));
	turnover = palloc(sizeof(Datum) * Max(w->nresting, 1));
	fees = palloc(sizeof(Datum) * Max(w->nresting, 1));
	escrow = palloc(sizeof(Datum) * Max(w->nresting, 1));
	status = palloc(sizeof(Datum) * Max(w->nresting, 1));
	reason = palloc(sizeof(Datum) * Max(w->nresting, 1));
	reason_null = palloc(sizeof(bool) * Max(w->nresting, 1));
	for (int i = 0; i < w->nresting; i++)
	{
		Resting    *r = &w->resting[i];
		const char *st;

		if (!r->touched)
			continue;
		if (r->ended)
			st = r->filled == r->tonnes ? "filled" : "cancelled";
		else
			st = r->filled > 0 ? "partially_filled" : "open";
		id[n] = Int64GetDatum(r->id);
		filled[n] = Int64GetDatum(r->filled);
		turnover[n] = Int64GetDatum(r->turnover);
		fees[n] = Int64GetDatum(r->fees);
		escrow[n] = Int64GetDatum(r->escrow);
		status[n] = CStringGetTextDatum(st);
		reason_null[n] = !r->ended;
		reason[n] = r->ended ? CStringGetTextDatum(r->end_reason) : (Datum) 0;
		n++;
	}
	if (n == 0)
		return;
	values[0] = ledger_int8_array(id, n);
	values[1] = ledger_int8_array(filled, n);
	values[2] = ledger_int8_array(turnover, n);
	values[3] = ledger_int8_array(fees, n);
	values[4] = ledger_int8_array(escrow, n);
	values[5] = ledger_array(status, NULL, n, TEXTOID);
	values[6] = ledger_array(reason, reason_null, n, TEXTOID);
	values[7] = TimestampTzGetDatum(w->now);
	ledger_plan_generic(&plan,
				"UPDATE carbon.market_order o SET filled = u.filled, turnover = u.turnover, fees = u.fees, "
				"       escrow = u.escrow, status = u.status, end_reason = u.reason, "
				"       ended_at = CASE WHEN u.reason IS NULL THEN NULL ELSE $8 END "
				"FROM unnest($1, $2, $3, $4, $5, $6, $7) AS u(id, filled, turnover, fees, escrow, status, reason) "
				"WHERE o.id = u.id",
				8, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
				TEXTARRAYOID, TIMESTAMPTZOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != (uint64) n)
		elog(ERROR, "order update failed");
}

static void
trade_write(MarketWork *w, const Trade *t, bool buy_aggressor, int64 entry_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[14];

	values[0] = CStringGetTextDatum(w->ins.code);
	values[1] = Int64GetDatum(t->buy_order);
	values[2] = Int64GetDatum(t->sell_order);
	values[3] = Int64GetDatum(t->buyer);
	values[4] = Int64GetDatum(t->seller);
	values[5] = Int64GetDatum(t->price);
	values[6] = Int64GetDatum(t->tonnes);
	values[7] = Int64GetDatum(t->buyer_fee);
	values[8] = Int64GetDatum(t->seller_fee);
	values[9] = CStringGetTextDatum(buy_aggressor ? "buy" : "sell");
	values[10] = DateADTGetDatum(w->today);
	values[11] = Int64GetDatum(entry_id);
	values[12] = t->serials;
	values[13] = TimestampTzGetDatum(w->now);
	ledger_plan_generic(&plan,
				"INSERT INTO carbon.trade (instrument, buy_order, sell_order, buyer, seller, price, tonnes, "
				"  buyer_fee, seller_fee, aggressor, trade_day, entry_id, serials, at) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
				14, (Oid[]) {TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
				TEXTOID, DATEOID, INT8OID, TEXTARRAYOID, TIMESTAMPTZOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "trade insert failed");
}

/*
 * Post the entry, then move the serial blocks, write the trades (with the
 * serials they moved; certificates for buys that retire), the last price,
 * and the resting orders.
 */
static int64
work_write(MarketWork *w, const char *kind, const char *memo, bool buy_aggressor)
{
	int64		entry_id = post_all(&w->postings, kind, memo, w->correction);
	LedgerBooks books = {0};

	if (w->nmoves > 0)
	{
		LedgerUnitMove *moves = palloc(sizeof(LedgerUnitMove) * w->nmoves);
		Datum	   *serials = palloc(sizeof(Datum) * w->nmoves);

		for (int i = 0; i < w->nmoves; i++)
			moves[i] = w->moves[i].move;
		ledger_units_market(w->nmoves, moves, entry_id, serials);
		for (int i = 0; i < w->nmoves; i++)
			if (w->moves[i].trade >= 0)
				w->trades[w->moves[i].trade].serials = serials[i];
	}
	for (int i = 0; i < w->ntrades; i++)
	{
		Trade	   *t = &w->trades[i];
		const LedgerAccount *buyer = account_of(&w->accounts, t->buyer);
		const char *memo = psprintf(INT64_FORMAT " t at %lld.%02lld", t->tonnes,
									(long long) (t->price / 100), (long long) (t->price % 100));

		trade_write(w, t, buy_aggressor, entry_id);
		/* the books: the buyer's cost and the seller's proceeds, fees in both */
		ledger_books_add(&books, buyer, BOOK_PURCHASE, t->tonnes, t->price * t->tonnes + t->buyer_fee,
						 psprintf("purchase of %s", memo));
		ledger_books_add(&books, account_of(&w->accounts, t->seller), BOOK_SALE, t->tonnes,
						 t->price * t->tonnes - t->seller_fee, psprintf("sale of %s", memo));
		if (t->retire_for)
		{
			(void) ledger_units_certify(t->buyer, t->tonnes, t->retire_purpose, t->retire_for, buyer->region,
										NULL, t->serials, entry_id);
			ledger_books_add(&books, buyer, BOOK_OUT, t->tonnes, 0,
							 psprintf("retirement of " INT64_FORMAT " t for %s", t->tonnes, t->retire_for));
		}
	}
	ledger_books_write(&books, entry_id);
	resting_write(w);
	return entry_id;
}

/* ---- place_order ---- */

static void
srf_order(ReturnSetInfo *rsinfo, int64 id, const char *status, int64 filled, int64 turnover)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, filled == 0};

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(status);
	values[2] = Int64GetDatum(filled);
	if (filled > 0)
		values[3] = DirectFunctionCall2(numeric_round,
										DirectFunctionCall2(numeric_div, fen_to_yuan(turnover),
															DirectFunctionCall1(int8_numeric, Int64GetDatum(filled))),
										Int32GetDatum(4));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A replayed request: the order as it stands. */
static void
order_replay(ReturnSetInfo *rsinfo, int64 id)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;
	HeapTuple	t;

	ledger_plan_generic(&plan, "SELECT status, filled, turnover FROM carbon.market_order WHERE id = $1", 1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "order " INT64_FORMAT " not found", id);
	t = SPI_tuptable->vals[0];
	srf_order(rsinfo, id, SPI_getvalue(t, SPI_tuptable->tupdesc, 1),
			  DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull)),
			  DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull)));
}

/*
 * The incoming order, written once in the state the call leaves it in
 * (its id was drawn before matching: trades and escrow name it).
 */
static void
order_insert(const MarketWork *w, const Order *o, int64 gtc_days)
{
	static SPIPlanPtr plan = NULL;
	bool		ended = strcmp(o->status, "open") != 0 && strcmp(o->status, "partially_filled") != 0;
	Datum		values[18];
	char		nulls[18] = {' ', ' ', ' ', ' ', o->market ? 'n' : ' ', ' ', ' ', o->retire_for ? ' ' : 'n',
	o->retire_for ? ' ' : 'n', ' ', strcmp(o->tif, "GTC") == 0 ? ' ' : 'n', ' ', ' ', ' ', ' ', ' ',
	ended ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(o->id);
	values[1] = CStringGetTextDatum(w->ins.code);
	values[2] = Int64GetDatum(o->acc->id);
	values[3] = CStringGetTextDatum(o->buy ? "buy" : "sell");
	values[4] = Int64GetDatum(o->price);
	values[5] = Int64GetDatum(o->tonnes);
	values[6] = CStringGetTextDatum(o->tif);
	values[7] = o->retire_for ? CStringGetTextDatum(o->retire_for) : (Datum) 0;
	values[8] = o->retire_for ? CStringGetTextDatum(o->retire_purpose) : (Datum) 0;
	values[9] = DateADTGetDatum(w->today);
	values[10] = Int64GetDatum(gtc_days);
	values[11] = TimestampTzGetDatum(w->now);
	values[12] = Int64GetDatum(o->filled);
	values[13] = Int64GetDatum(o->turnover);
	values[14] = Int64GetDatum(o->fees);
	values[15] = Int64GetDatum(o->escrow);
	values[16] = ended ? CStringGetTextDatum(o->end_reason) : (Datum) 0;
	values[17] = CStringGetTextDatum(o->status);
	ledger_plan_generic(&plan,
				"INSERT INTO carbon.market_order (id, instrument, account, side, price, tonnes, tif, status, "
				"  retire_for, retire_purpose, trade_day, expires_at, created_at, filled, turnover, fees, escrow, "
				"  end_reason, ended_at) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7, $18, $8, $9, $10, $12 + make_interval(days => $11::int), $12, "
				"        $13, $14, $15, $16, $17, CASE WHEN $17 IS NULL THEN NULL ELSE $12 END)",
				18, (Oid[]) {INT8OID, TEXTOID, INT8OID, TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID,
				DATEOID, INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID});
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "order insert failed");
}

/*
 * place_order(account, side, tonnes, price, tif, instrument, request_id,
 *             retire_for, retire_purpose) → (order_id, status, filled, avg_price)
 */
PG_FUNCTION_INFO_V1(ledger_place_order);
Datum
ledger_place_order(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *side = ledger_arg_text(fcinfo, 1, "side");
	int64		tonnes = ledger_arg_int64(fcinfo, 2, "tonnes");
	char	   *tif = ledger_arg_text(fcinfo, 4, "tif");
	char	   *instrument = ledger_arg_text(fcinfo, 5, "instrument");
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 6);
	char	   *retire_for = ledger_arg_text_or_null(fcinfo, 7);
	char	   *retire_purpose = PG_ARGISNULL(8) ? "voluntary" : text_to_cstring(PG_GETARG_TEXT_PP(8));
	MarketWork	w;
	Order		o;
	int64		existing;
	int64		gtc_days;
	int64		cash_needed = 0;

	/* arguments (22023), the tick (CL005) */
	memset(&o, 0, sizeof(o));
	if (strcmp(side, "buy") != 0 && strcmp(side, "sell") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown side \"%s\"", side),
				 errhint("An order buys or sells.")));
	o.buy = side[0] == 'b';
	if (tonnes <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an order is for a positive whole number of tonnes")));
	if (strcmp(tif, "GTC") != 0 && strcmp(tif, "DAY") != 0 && strcmp(tif, "IOC") != 0 && strcmp(tif, "FOK") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown time in force \"%s\"", tif),
				 errhint("Orders are GTC, DAY, IOC or FOK.")));
	instrument_known(instrument);
	if (retire_for != NULL)
	{
		if (!o.buy)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("only a buy order can retire what it buys")));
		if (retire_for[0] == '\0' || strlen(retire_for) > 500)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a retirement names its beneficiary (1 to 500 bytes)")));
		/* no case reference can come with an order: eco-damage compensation goes through retire_units */
		ledger_check_retire_purpose(retire_purpose, NULL);
	}
	o.market = PG_ARGISNULL(3);
	if (!o.market)
	{
		Numeric		price = PG_GETARG_NUMERIC(3);

		if (numeric_is_nan(price) || numeric_is_inf(price) ||
			DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(price),
																	   DirectFunctionCall1(int8_numeric, Int64GetDatum(0)))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a limit price is a positive number of yuan per tonne"),
					 errhint("Pass NULL for a market order.")));
		if (!yuan_to_fen(price, &o.price))
			ereport(ERROR,
					(errcode(ERRCODE_CL_PRICE),
					 errmsg("price %s is not on the tick of 0.01 yuan",
							DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(price))))));
	}
	o.tonnes = tonnes;
	o.tif = o.market && strcmp(tif, "FOK") != 0 ? "IOC" : tif;	/* a market order never rests */
	o.retire_for = retire_for;
	o.retire_purpose = retire_purpose;
	ledger_check_acting(account, false);

	InitMaterializedSRF(fcinfo, 0);
	ledger_spi_connect();
	work_init(&w);
	o.acc = account_of(&w.accounts, account);
	ledger_require_participant(o.acc);
	if (ledger_request_begin(account, request_id, "place_order",
							 psprintf("%s|" INT64_FORMAT "|%s|%s|%s|%s|%s", side, tonnes,
									  o.market ? "market" : psprintf(INT64_FORMAT, o.price), tif, instrument,
									  retire_for ? retire_for : "-", retire_for ? retire_purpose : "-"),
							 &existing))
	{
		order_replay(rsinfo, existing);
		SPI_finish();
		return (Datum) 0;
	}
	ledger_require_active(o.acc);
	if (!ledger_flow_allowed(o.acc->tier, o.acc->tier, "CER"))
		ereport(ERROR,
				(errcode(ERRCODE_CL_FLOW),
				 errmsg("a %s account cannot trade certified units", o.acc->tier),
				 errhint("CER moves between personal, enterprise, government and platform accounts (carbon.allowed_flow).")));

	/* the book's lock, before any balance */
	instrument_lock(instrument, &w.ins);
	work_clock(&w);
	if (!o.market && w.ins.has_reference)
	{
		int64		low,
					high;

		band_of(&w.ins, &low, &high);
		if (o.price < low || o.price > high)
			ereport(ERROR,
					(errcode(ERRCODE_CL_PRICE),
					 errmsg("price %lld.%02lld is outside the band %lld.%02lld to %lld.%02lld",
							(long long) (o.price / 100), (long long) (o.price % 100),
							(long long) (low / 100), (long long) (low % 100),
							(long long) (high / 100), (long long) (high % 100)),
					 errdetail("The reference price is %lld.%02lld yuan per tonne; orders lie within ±%d.%02d %%.",
							   (long long) (w.ins.reference / 100), (long long) (w.ins.reference % 100),
							   (int) (w.ins.band_bps / 100), (int) (w.ins.band_bps % 100))));
	}

	/* what it needs in escrow (CL001) */
	if (o.buy)
	{
		int64		cash = available(account, w.cny);

		if (o.market)
		{
			if (w.ins.has_reference)
			{
				int64		low,
							high;

				band_of(&w.ins, &low, &high);
				cash_needed = mul_or_raise(tonnes, high);
				cash_needed += fee_of(cash_needed, w.fee_bps);
				o.budget = Min(cash, cash_needed);
			}
			else
				o.budget = cash;
			if (o.budget <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_CL_INSUFFICIENT),
						 errmsg("account " INT64_FORMAT " has no cash for a market buy", account)));
		}
		else
		{
			cash_needed = mul_or_raise(tonnes, o.price);
			cash_needed += fee_of(cash_needed, w.fee_bps);
			if (cash < cash_needed)
				ereport(ERROR,
						(errcode(ERRCODE_CL_INSUFFICIENT),
						 errmsg("account " INT64_FORMAT " has %lld.%02lld yuan; the order needs %lld.%02lld in escrow",
								account, (long long) (cash / 100), (long long) (cash % 100),
								(long long) (cash_needed / 100), (long long) (cash_needed % 100)),
						 errdetail("Limit price × tonnes, plus the largest fee (trade_fee_bps).")));
			o.budget = cash_needed;
		}
	}
	else
	{
		int64		units;

		/* the balance row locked: no transfer takes class I units away before the escrow does */
		(void) available(account, w.ins.asset);
		units = ledger_units_tradable(account);

		if (units < tonnes)
			ereport(ERROR,
					(errcode(ERRCODE_CL_INSUFFICIENT),
					 errmsg("account " INT64_FORMAT " holds " INT64_FORMAT " t of class I units; the order sells "
							INT64_FORMAT, account, units, tonnes),
					 errhint("Class II units never reach the market.")));
	}
	gtc_days = ledger_settings()->gtc_max_days;
	o.id = ledger_next_id("market_order_id_seq");

	/* FOK that cannot fill in full now, or a market order with nothing to match: rejected */
	if (strcmp(o.tif, "FOK") == 0 && !fok_possible(&w, &o))
	{
		o.status = "rejected";
		o.end_reason = "fok_unfillable";
	}
	else
	{
		match(&w, &o);
		if (o.filled == o.tonnes)
			o.status = "filled", o.end_reason = "filled";
		else if (o.market && o.filled == 0)
			o.status = "rejected", o.end_reason = "nothing_to_match";
		else if (strcmp(o.tif, "IOC") == 0 || strcmp(o.tif, "FOK") == 0)
			o.status = "cancelled", o.end_reason = o.market ? "market_unfilled" : "ioc_unfilled";
		else
		{
			/* it rests: the rest in escrow */
			int64		rest = o.tonnes - o.filled;

			o.status = o.filled > 0 ? "partially_filled" : "open";
			if (o.buy)
			{
				o.escrow = mul_or_raise(rest, o.price);
				o.escrow += fee_of(o.escrow, w.fee_bps);
				post_move(&w.postings, o.acc, escrow_account(&w, w.cny, o.acc), w.cny, o.escrow);
			}
			else
			{
				o.escrow = rest;
				post_move(&w.postings, o.acc, escrow_account(&w, w.ins.asset, o.acc), w.ins.asset, rest);
				add_move(&w, (LedgerUnitMove) {UNITS_ESCROW, account, o.id, rest, 0, false, NULL}, -1);
			}
		}
	}
	order_insert(&w, &o, gtc_days);
	(void) work_write(&w, "trade", psprintf("order " INT64_FORMAT, o.id), o.buy);
	/* written: the next walk of this transaction starts past what this one ended */
	if (w.skip_found)
		skip_set(!o.buy, w.skip_price, w.skip_id);
	if (strcmp(o.status, "open") == 0 || strcmp(o.status, "partially_filled") == 0)
		skip_rest(o.buy, o.price);
	ledger_request_finish(account, request_id, o.id);
	srf_order(rsinfo, o.id, o.status, o.filled, o.turnover);
	SPI_finish();
	return (Datum) 0;
}

/* ---- cancel, reference price, the daily close ---- */

/* Resting orders read by `plan` (cancel, close): under the instrument's lock. */
static void
resting_read(MarketWork *w, SPIPlanPtr plan, Datum *values)
{
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "order lookup failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		resting_add(w, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
}


/* cancel_order(order_id) → boolean */
PG_FUNCTION_INFO_V1(ledger_cancel_order);
Datum
ledger_cancel_order(PG_FUNCTION_ARGS)
{
	int64		id = ledger_arg_int64(fcinfo, 0, "order_id");
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(id)};
	MarketWork	w;
	char	   *instrument;
	bool		isnull;
	bool		cancelled = false;

	ledger_spi_connect();
	ledger_plan_generic(&find_plan, "SELECT instrument, account FROM carbon.market_order WHERE id = $1", 1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(find_plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "order lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order " INT64_FORMAT " does not exist", id)));
	instrument = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ledger_check_acting(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
						false);
	work_init(&w);
	instrument_lock(instrument, &w.ins);
	work_clock(&w);
	ledger_plan_generic(&plan,
				"SELECT " RESTING_COLUMNS " FROM carbon.market_order "
				"WHERE id = $1 AND status IN ('open', 'partially_filled')",
				1, (Oid[]) {INT8OID});
	resting_read(&w, plan, values);
	if (w.nresting == 1)
	{
		resting_end(&w, &w.resting[0], w.resting[0].buy_side, "cancelled");
		(void) work_write(&w, "order_cancel", psprintf("cancel order " INT64_FORMAT, id), false);
		cancelled = true;
	}
	SPI_finish();
	PG_RETURN_BOOL(cancelled);
}

/*
 * End the resting sell orders that hold units of a report's issuance in
 * escrow (a recall): their escrow goes back to the sellers, whose units are
 * then recalled like any held ones.  Returns how many orders ended.
 */
int64
ledger_market_end_orders_of_report(int64 report_id, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(report_id)};
	MarketWork	w;

	work_init(&w);
	instrument_lock("CER-I", &w.ins);
	work_clock(&w);
	ledger_plan_generic(&plan,
				"SELECT " RESTING_COLUMNS " FROM carbon.market_order "
				"WHERE status IN ('open', 'partially_filled') AND side = 'sell' AND id IN "
				"  (SELECT b.escrow_order FROM carbon.unit_block b JOIN carbon.unit_issuance i ON i.id = b.issuance "
				"   WHERE i.report = $1 AND b.state = 'escrow') ORDER BY id",
				1, (Oid[]) {INT8OID});
	resting_read(&w, plan, values);
	for (int i = 0; i < w.nresting; i++)
		resting_end(&w, &w.resting[i], false, reason);
	if (w.nresting > 0)
		(void) work_write(&w, "order_cancel", psprintf("orders ended: %s", reason), false);
	return w.nresting;
}

/* set_reference_price(instrument, price) */
PG_FUNCTION_INFO_V1(ledger_set_reference_price);
Datum
ledger_set_reference_price(PG_FUNCTION_ARGS)
{
	char	   *instrument = ledger_arg_text(fcinfo, 0, "instrument");
	static SPIPlanPtr plan = NULL;
	Instrument	ins;
	int64		fen;
	Datum		values[2];

	instrument_known(instrument);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("price must not be null")));
	if (numeric_is_nan(PG_GETARG_NUMERIC(1)) || !yuan_to_fen(PG_GETARG_NUMERIC(1), &fen) || fen <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reference price is a positive number of yuan per tonne with at most 2 decimals")));
	ledger_spi_connect();
	instrument_lock(instrument, &ins);
	values[0] = CStringGetTextDatum(instrument);
	values[1] = Int64GetDatum(fen);
	ledger_plan_generic(&plan, "UPDATE carbon.instrument SET reference_price = $2, reference_set_at = now() WHERE code = $1",
				2, (Oid[]) {TEXTOID, INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "instrument update failed");
	instrument_forget();		/* the next order reads the new band */
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * close_market_day(day) → orders ended: DAY orders of that day or before,
 * and GTC orders past their maximum life, end with their escrow released;
 * the reference price becomes the day's last trade (else it stays).
 * Idempotent: a second close finds nothing to end and sets the same price.
 */
PG_FUNCTION_INFO_V1(ledger_close_market_day);
Datum
ledger_close_market_day(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr orders_plan = NULL;
	static SPIPlanPtr day_plan = NULL;
	DateADT		day;
	MarketWork	w;
	Datum		values[3];
	int64		ended;
	const char *instrument = "CER-I";

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("day must not be null")));
	day = PG_GETARG_DATEADT(0);
	if (DATE_NOT_FINITE(day))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a market day is a date")));
	ledger_spi_connect();
	work_init(&w);
	instrument_lock(instrument, &w.ins);
	work_clock(&w);
	values[0] = CStringGetTextDatum(instrument);
	values[1] = DateADTGetDatum(day);
	values[2] = TimestampTzGetDatum(w.now);
	ledger_plan_generic(&orders_plan,
				"SELECT " RESTING_COLUMNS " FROM carbon.market_order "
				"WHERE instrument = $1 AND status IN ('open', 'partially_filled') "
				"  AND ((tif = 'DAY' AND trade_day <= $2) OR expires_at <= $3) ORDER BY id",
				3, (Oid[]) {TEXTOID, DATEOID, TIMESTAMPTZOID});
	resting_read(&w, orders_plan, values);
	for (int i = 0; i < w.nresting; i++)
		resting_end(&w, &w.resting[i], w.resting[i].buy_side, "expired");
	ended = w.nresting;
	(void) work_write(&w, "market_close", psprintf("market close %s", DatumGetCString(DirectFunctionCall1(date_out,
																						 DateADTGetDatum(day)))),
					  true);
	ledger_plan_generic(&day_plan,
				"WITH last AS (SELECT price FROM carbon.trade WHERE instrument = $1 AND trade_day = $2 "
				"              ORDER BY id DESC LIMIT 1), "
				"ref AS (UPDATE carbon.instrument i SET reference_price = last.price, reference_set_at = now() "
				"        FROM last WHERE i.code = $1 RETURNING i.reference_price) "
				"INSERT INTO carbon.market_day AS m (instrument, day, reference, expired) "
				"SELECT $1, $2, coalesce((SELECT reference_price FROM ref), "
				"                        (SELECT reference_price FROM carbon.instrument WHERE code = $1)), $3 "
				"ON CONFLICT (instrument, day) DO UPDATE SET reference = excluded.reference, "
				"  expired = m.expired + excluded.expired, closed_at = now()",
				3, (Oid[]) {TEXTOID, DATEOID, INT8OID});
	{
		Datum		v[3] = {values[0], values[1], Int64GetDatum(ended)};

		if (SPI_execute_plan(day_plan, v, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "market day update failed");
	}
	instrument_forget();		/* the reference may have changed */
	SPI_finish();
	PG_RETURN_INT64(ended);
}
