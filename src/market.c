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
 * Everything one statement's orders move (their escrow, every fill's
 * cash, units and fees, escrow released by orders that end) is one entry,
 * posted once when the statement ends (a batch: see "a statement's
 * orders" below); the serial blocks follow after the posting (balances
 * before blocks, as everywhere).  Prices are fen per tonne; fees are
 * floor(value × trade_fee_bps / 10,000) on each side of each fill, so that
 * fills never cost more than the escrow of their limit price.
 */
#include "postgres.h"

#include <sched.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "executor/executor.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
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
	HTAB	   *index;			/* (account, asset) → position, once there are many */
	MemoryContext cxt;			/* where they live (SPI calls switch contexts) */
} Postings;

typedef struct AccountAsset
{
	int64		account;
	int64		asset;
} AccountAsset;

typedef struct PostingSlot
{
	AccountAsset key;
	int			pos;
} PostingSlot;

/* Where (account, asset) stands in the postings, or -1. */
static int
post_find(Postings *p, int64 account, int16 asset)
{
	if (p->index == NULL)
	{
		for (int i = 0; i < p->n; i++)
			if (p->accounts[i]->id == account && p->assets[i] == asset)
				return i;
		return -1;
	}
	else
	{
		AccountAsset key = {account, asset};
		PostingSlot *slot = hash_search(p->index, &key, HASH_FIND, NULL);

		return slot ? slot->pos : -1;
	}
}

/* What this work has posted so far on (account, asset): not yet in its balance. */
static int64
posted(Postings *p, int64 account, int16 asset)
{
	int			i = post_find(p, account, asset);

	return i < 0 ? 0 : p->amounts[i];
}

static void
post_add(Postings *p, const LedgerAccount *acc, int16 asset, int64 amount)
{
	int			i;

	MemoryContext old;

	if (amount == 0)
		return;
	i = post_find(p, acc->id, asset);
	if (i >= 0)
	{
		if (pg_add_s64_overflow(p->amounts[i], amount, &p->amounts[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("amount out of range")));
		return;
	}
	old = MemoryContextSwitchTo(p->cxt);
	if (p->index == NULL && p->n >= 16)
	{
		/* a batch of orders meets many accounts: find them by hash from now on */
		HASHCTL		ctl = {.keysize = sizeof(AccountAsset), .entrysize = sizeof(PostingSlot),
		.hcxt = CurrentMemoryContext};

		p->index = hash_create("market postings", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		for (int k = 0; k < p->n; k++)
		{
			AccountAsset key = {p->accounts[k]->id, p->assets[k]};

			((PostingSlot *) hash_search(p->index, &key, HASH_ENTER, NULL))->pos = k;
		}
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
	p->amounts[p->n] = amount;
	if (p->index != NULL)
	{
		AccountAsset key = {acc->id, asset};

		((PostingSlot *) hash_search(p->index, &key, HASH_ENTER, NULL))->pos = p->n;
	}
	p->n++;
	MemoryContextSwitchTo(old);
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
	p->n = n;
	p->index = NULL;			/* positions moved */
	if (n == 0)
		return 0;
	entry = ledger_entry(kind, memo, n, p->accounts, p->assets, p->amounts);
	entry.holdings_moved = true;	/* the serial blocks follow below (units.c) */
	entry.booked_by_caller = true;	/* escrow is no event in the books; trades are booked by work_write */
	entry.correction = correction;
	return ledger_post(&entry);
}

/* ---- accounts ---- */

/* The participant accounts a work meets, read once (pointers stay valid). */
typedef struct AccountCache
{
	HTAB	   *h;
	MemoryContext cxt;
} AccountCache;

typedef struct AccountSlot
{
	int64		id;
	LedgerAccount acc;
} AccountSlot;

static const LedgerAccount *
account_of(AccountCache *c, int64 id)
{
	AccountSlot *slot;
	LedgerAccount a;

	if (c->h == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(int64), .entrysize = sizeof(AccountSlot), .hcxt = c->cxt};

		c->h = hash_create("market accounts", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	slot = hash_search(c->h, &id, HASH_FIND, NULL);
	if (slot != NULL)
		return &slot->acc;
	ledger_require_account(id, &a);
	slot = hash_search(c->h, &id, HASH_ENTER, NULL);
	slot->acc = a;
	return &slot->acc;
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
 * lock) and when the reference price changes; not the same once
 * carbon.instrument is another table (DROP and CREATE EXTENSION in the
 * transaction).
 */
static struct
{
	LocalTransactionId lxid;
	bool		valid;
	Oid			table;			/* carbon.instrument's OID then */
	Instrument	ins;
}			held_instrument;

static void
instrument_forget(void)
{
	held_instrument.valid = false;
}

/* What the book's lock reads of the instrument's row as it bumps its version. */
typedef struct InstrumentRow
{
	AttrNumber	version,
				reference,
				band;
	bool		has_reference;
	int64		reference_fen;
	int32		band_bps;
} InstrumentRow;

static void
instrument_bump(int row pg_attribute_unused(), Datum *values, bool *isnull, void *arg)
{
	InstrumentRow *ir = (InstrumentRow *) arg;

	values[ir->version - 1] = Int64GetDatum(DatumGetInt64(values[ir->version - 1]) + 1);
	ir->has_reference = !isnull[ir->reference - 1];
	ir->reference_fen = ir->has_reference ? DatumGetInt64(values[ir->reference - 1]) : 0;
	ir->band_bps = DatumGetInt32(values[ir->band - 1]);
}

/*
 * Bump the instrument's version, straight in the heap (append.c): false
 * when its row is missing; -1 (as an int) when the table is not plain and
 * SQL must do it.
 */
static int
instrument_lock_direct(Datum code, InstrumentRow *ir)
{
	Oid			relid;
	Datum	   *keys[] = {&code};
	int64		n;

	relid = ledger_relid("instrument");
	ir->version = get_attnum(relid, "book_version");
	ir->reference = get_attnum(relid, "reference_price");
	ir->band = get_attnum(relid, "band_bps");
	if (ir->version == InvalidAttrNumber || ir->reference == InvalidAttrNumber || ir->band == InvalidAttrNumber)
		return -1;
	n = ledger_update_by_key_with("instrument", 1, keys, 0, NULL, NULL, NULL, 1, NULL, instrument_bump, ir);
	return n < 0 ? -1 : n > 0;
}

/* The instrument's row, created on first use (values: its code and asset). */
static void
instrument_create(Datum *values)
{
	static SPIPlanPtr create_plan = NULL;

	ledger_plan_generic(&create_plan,
				"INSERT INTO carbon.instrument (code, asset_id, class) VALUES ($1, $2, 'I') ON CONFLICT DO NOTHING",
				2, (Oid[]) {TEXTOID, INT2OID});
	if (SPI_execute_plan(create_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "instrument insert failed");
}

/*
 * The instrument's row by `plan` (SQL, where the table is not plain), run
 * by its key (ledger_run_keyed: a plan built while the table was one page
 * would scan it whole, and every change of the book held to its
 * transaction's end leaves a dead version of the row behind it); created
 * on first use.  Its reference price and band into ins.
 */
static void
instrument_by_sql(SPIPlanPtr plan, int expect, Datum *values, Instrument *ins)
{
	bool		isnull;
	Datum		d;

	if (ledger_run_keyed(plan, values, NULL, false) != expect)
		elog(ERROR, "instrument lookup failed");
	if (SPI_processed == 0)
	{
		instrument_create(values);
		if (ledger_run_keyed(plan, values, NULL, false) != expect || SPI_processed != 1)
			elog(ERROR, "instrument lookup failed");
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	ins->has_reference = !isnull;
	ins->reference = isnull ? 0 : DatumGetInt64(d);
	ins->band_bps = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/*
 * The instrument's row, its version bumped (created on first use): an
 * update, not only a lock, so that a REPEATABLE READ or SERIALIZABLE
 * transaction whose snapshot predates another's change of the book held
 * to its end fails to serialize (40001) instead of reading a book without
 * it.  Straight in the heap (as UPDATE: it waits for the change before,
 * then bumps the newest version), by SQL where the table is not plain.
 */
static void
instrument_bump_row(const char *code, Instrument *ins)
{
	static SPIPlanPtr lock_plan = NULL;
	Datum		values[2];
	InstrumentRow ir;
	int			direct;

	values[0] = CStringGetTextDatum(code);
	values[1] = Int16GetDatum(ledger_asset_id("CER"));
	direct = instrument_lock_direct(values[0], &ir);
	if (direct == 0)
	{
		instrument_create(values);
		direct = instrument_lock_direct(values[0], &ir);
		if (direct == 0)
			elog(ERROR, "instrument lookup failed");
	}
	if (direct > 0)
	{
		ins->has_reference = ir.has_reference;
		ins->reference = ir.reference_fen;
		ins->band_bps = ir.band_bps;
		return;
	}
	ledger_plan_generic(&lock_plan,
				"UPDATE carbon.instrument SET book_version = book_version + 1 WHERE code = $1 "
				"RETURNING reference_price, band_bps",
				1, (Oid[]) {TEXTOID});
	instrument_by_sql(lock_plan, SPI_OK_UPDATE_RETURNING, values, ins);
}

/* instrument_read's reading of the row, straight from the heap */
static void
instrument_row_read(int row pg_attribute_unused(), TupleTableSlot *slot, void *arg)
{
	Instrument *ins = (Instrument *) arg;
	static const char *const columns[2] = {"reference_price", "band_bps"};
	AttrNumber	att[2];

	ledger_attnums(slot->tts_tupleDescriptor, columns, 2, att, "instrument");
	slot_getallattrs(slot);
	ins->has_reference = !slot->tts_isnull[att[0] - 1];
	ins->reference = ins->has_reference ? DatumGetInt64(slot->tts_values[att[0] - 1]) : 0;
	ins->band_bps = DatumGetInt32(slot->tts_values[att[1] - 1]);
}

/* The instrument's reference price and band, read (created on first use), not bumped. */
static void
instrument_read(const char *code, Instrument *ins)
{
	static SPIPlanPtr read_plan = NULL;
	Datum		values[2];
	Datum	   *keys[] = {&values[0]};
	int64		n;

	values[0] = CStringGetTextDatum(code);
	values[1] = Int16GetDatum(ledger_asset_id("CER"));
	n = ledger_read_by_key("instrument", 1, keys, 1, instrument_row_read, ins);
	if (n == 0)
	{
		instrument_create(values);
		n = ledger_read_by_key("instrument", 1, keys, 1, instrument_row_read, ins);
	}
	if (n > 0)
		return;
	ledger_plan_generic(&read_plan,
				"SELECT reference_price, band_bps FROM carbon.instrument WHERE code = $1",
				1, (Oid[]) {TEXTOID});
	instrument_by_sql(read_plan, SPI_OK_SELECT, values, ins);
}


/* ---- the book's locks ---- */

/*
 * Two heavyweight locks per instrument (advisory lock tags of a class of
 * their own, which no pg_advisory_lock call can name):
 * - the matcher's lock, exclusive: whoever matches an order against the
 *   book or changes the book holds it;
 * - the in-flight lock: an order that lets the matcher's lock go before its
 *   commit (a short lock, below) holds it shared to its end; whoever needs
 *   the book with nothing in flight (a batch of orders, an order in a
 *   transaction block or under REPEATABLE READ, a cancel, the close, a
 *   recall, the reference price) takes it exclusive after the matcher's,
 *   so waits for every order still in flight, and holds both to its end.
 *
 * A short lock: an order alone in its transaction (no transaction block,
 * READ COMMITTED) holds the matcher's lock from before it reads the book
 * until the book's rows it changes (the resting orders it filled, its own
 * order) are written; the rest of the order (postings, serial blocks,
 * trades, the books, the commit) runs while the next order matches.  The
 * next order sees the book as committed, so before it matches it walks the
 * part of the book it can reach with a dirty snapshot: a row there that a
 * transaction in flight wrote (an order resting, a fill, an end) makes it
 * let the lock go, wait for that transaction, and start again.  It never
 * waits holding a balance, so it cannot deadlock with the order it waits
 * for, and it never builds on a row that may yet roll back.
 */
#define BOOK_LOCK_CLASS 0x434C

typedef enum BookMode
{
	BOOK_NONE,					/* not held by this transaction */
	BOOK_SHORT,					/* held until the order's book rows are written */
	BOOK_HELD					/* held to the end of the transaction */
} BookMode;

static struct
{
	LocalTransactionId lxid;
	BookMode	mode;
	LOCKTAG		matcher;
	LOCKTAG		in_flight;
	ResourceOwner owner;		/* whose the matcher's lock is (a short lock) */
}			book;

static bool short_book_lock = true;

static BookMode
book_mode(void)
{
	return book.lxid == MyProc->lxid ? book.mode : BOOK_NONE;
}

static void
book_tags(const char *code)
{
	uint32		h = hash_bytes((const unsigned char *) code, strlen(code));

	SET_LOCKTAG_ADVISORY(book.matcher, MyDatabaseId, h, 1, BOOK_LOCK_CLASS);
	SET_LOCKTAG_ADVISORY(book.in_flight, MyDatabaseId, h, 2, BOOK_LOCK_CLASS);
}

/*
 * The matcher's lock, held by another order for about 50 µs: tried again a
 * few times, yielding the core in between, before queueing for it.  A
 * queued waiter is handed the lock while asleep and has to be woken and
 * scheduled (two context switches and a signal, and on 2 cores with 4
 * clients the lock sits idle meanwhile); an order that finds it free on a
 * retry takes it at once.  Retries never pass a queued waiter: a lock with
 * waiters is handed to the first of them.  B5 at 4 clients without fsync
 * (development cluster, 6 alternating pairs): median +4 % (−11 to +18 %),
 * the machine idle 6–7 % of the time against 8–9 %.
 */
#define BOOK_LOCK_RETRIES 16

static void
book_matcher_acquire(void)
{
	for (int tries = 0; tries < BOOK_LOCK_RETRIES; tries++)
	{
		if (LockAcquire(&book.matcher, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return;
		sched_yield();
	}
	(void) LockAcquire(&book.matcher, ExclusiveLock, false, false);
}

/* Nothing in flight from here to the transaction's end (the matcher's lock held). */
static void
book_hold(void)
{
	(void) LockAcquire(&book.in_flight, ExclusiveLock, false, false);
	book.mode = BOOK_HELD;
}

/*
 * The matcher's lock let go (every time this transaction took it); one
 * held by another resource owner stays to the end.
 */
static void
book_matcher_release(void)
{
	while (LockHeldByMe(&book.matcher, ExclusiveLock) && LockRelease(&book.matcher, ExclusiveLock, false))
		;
	book.mode = BOOK_NONE;
}

/*
 * A short lock let go, the order's book rows written: the in-flight lock
 * shared to the end of the transaction (never waits: whoever takes it
 * exclusive holds the matcher's lock first), then the matcher's.
 */
static void
book_let_go(void)
{
	if (book.owner != CurrentResourceOwner)
	{
		/* written from a subtransaction of the one that took it: held to the end instead */
		book_hold();
		return;
	}
	(void) LockAcquire(&book.in_flight, ShareLock, false, false);
	book_matcher_release();
	ledger_market_forget();		/* the next order of this transaction locks the book again */
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
	/* what this work did to it */
	bool		touched;
	bool		ended;
	const char *end_reason;
	TimestampTz ended_at;
	int			order;			/* an order of this batch (its index), or -1: a row of the book */
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
	TimestampTz at;				/* when the book took it */
	DateADT		day;
	int64		gtc_days;
	int			resting;		/* its entry among the resting orders once it rests, or -1 */
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
	int64		id;				/* drawn under the book's lock: trades are numbered as matched */
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
	bool		buy_aggressor;
	TimestampTz at;
	DateADT		day;
} Trade;

/*
 * The rows of one side of the book that a work has read, best first: the
 * book does not change under the instrument's lock but by this work, so a
 * batch reads each page once, and later walks start past the rows that
 * have ended at its head.
 */
typedef struct BookRows
{
	int		   *rows;			/* indexes into resting */
	int			n,
				cap;
	int			head;			/* rows before it have ended */
	bool		started;
	bool		done;			/* no more rows */
	int64		after_price;	/* the last row read */
	int64		after_id;
} BookRows;

/* Everything a call does, gathered, then written. */
typedef struct MarketWork
{
	MemoryContext cxt;			/* where what it gathers lives: SPI calls switch contexts */
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
	HTAB	   *resting_ids;	/* order id → its index in resting */
	BookRows	rows[2];		/* [bids]: the rows of the book read, in price–time order */
	int		   *own[2];			/* [bids]: the batch's own resting orders, best first */
	int			nown[2],
				maxown[2];
	int			norders,
				maxorders;
	Order	   *orders;			/* the orders this batch placed, written at its end */
	HTAB	   *bases;			/* balances and tradable units read (locked) */
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
 * Another carbon.market_order (DROP and CREATE EXTENSION in the
 * transaction) is another book.
 */
typedef struct BookSkip
{
	LocalTransactionId lxid;
	Oid			table;			/* carbon.market_order's OID */
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
	if (book_skip.lxid != MyProc->lxid || !book_skip.valid[bids] || book_skip.table != ledger_relid("market_order"))
		return false;
	*price = book_skip.price[bids];
	*id = book_skip.id[bids];
	return true;
}

static void
skip_set(bool bids, int64 price, int64 id)
{
	Oid			table = ledger_relid("market_order");

	if (book_skip.lxid != MyProc->lxid || book_skip.table != table)
		book_skip.valid[0] = book_skip.valid[1] = false;
	book_skip.lxid = MyProc->lxid;
	book_skip.table = table;
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

/*
 * Forget the rows of the book a work has read (not what it did to them:
 * rows read again come back as the work left them) and where its walks
 * start: the next walk reads the book from its best price.
 */
static void
book_rows_forget(MarketWork *w)
{
	for (int side = 0; side < 2; side++)
	{
		w->rows[side].n = w->rows[side].head = 0;
		w->rows[side].started = w->rows[side].done = false;
	}
	book_skip.valid[0] = book_skip.valid[1] = false;
}

/*
 * What a work has read of balances and tradable units: read once, locked
 * (the balance row), then moved only by the work's own postings and moves,
 * which are not written yet.
 */
typedef struct BaseAmount
{
	AccountAsset key;			/* asset -1: class I units held (tradable) */
	bool		read;
	int64		amount;			/* as read */
	int64		moved;			/* tradable units: moved by this work since */
} BaseAmount;

static BaseAmount *
base_of(HTAB **bases, MemoryContext cxt, int64 account, int64 asset)
{
	AccountAsset key = {account, asset};
	bool		found;
	BaseAmount *b;

	if (*bases == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(AccountAsset), .entrysize = sizeof(BaseAmount), .hcxt = cxt};

		*bases = hash_create("market balances", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	b = hash_search(*bases, &key, HASH_ENTER, &found);
	if (!found)
		b->read = false, b->amount = 0, b->moved = 0;
	return b;
}

/* What the account can spend of an asset now: its balance row (locked), less what this work posted. */
static int64
available(MarketWork *w, int64 account, int16 asset)
{
	static SPIPlanPtr plan = NULL;
	BaseAmount *b = base_of(&w->bases, w->cxt, account, asset);

	if (!b->read)
	{
		Datum		values[3] = {Int64GetDatum(account), Int16GetDatum(asset), Int16GetDatum(0)};
		Datum	   *keys[] = {&values[0], &values[1], &values[2]};
		bool		isnull;

		/*
		 * Its row locked (FOR UPDATE) straight in the heap, by SQL where the
		 * table is not plain.  Under a short book lock only read: the entry
		 * locks every balance it changes in one sorted pass after the book
		 * is let go, and refuses (CL001) what is no longer there; a balance
		 * locked here, out of that order, could deadlock with an order in
		 * flight crediting it.
		 */
		bool		lock = book_mode() != BOOK_SHORT;

		b->amount = 0;
		if (ledger_read_by_key_to_write("balance", 3, keys, 1, ledger_read_int8_column,
										&(LedgerColumnRead) {"amount", &b->amount}, lock) < 0)
		{
			ledger_plan_generic(&plan,
						"SELECT amount FROM carbon.balance WHERE account = $1 AND asset_id = $2 AND stripe = 0 "
						"FOR UPDATE",
						2, (Oid[]) {INT8OID, INT2OID});
			if (!lock)
				book_hold();	/* not plain: the book held to the end, and the row locked as ever */
			if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT)
				elog(ERROR, "balance lookup failed");
			b->amount = SPI_processed == 0 ? 0 :
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		b->read = true;
	}
	return b->amount + posted(&w->postings, account, asset);
}

/* The class I units the account holds now, less what this work moved (the balance row locked first). */
static int64
tradable(MarketWork *w, int64 account, int16 cer)
{
	BaseAmount *b;

	(void) available(w, account, cer);	/* no transfer takes class I units away before the escrow does */
	b = base_of(&w->bases, w->cxt, account, -1);
	if (!b->read)
	{
		/* the balance counts every held block (verify_integrity: units_match_balances) */
		b->amount = base_of(&w->bases, w->cxt, account, cer)->amount - ledger_units_untradable(account);
		b->read = true;
	}
	return b->amount + b->moved;
}

static void
units_moved(MarketWork *w, int64 account, int64 tonnes)
{
	base_of(&w->bases, w->cxt, account, -1)->moved += tonnes;
}

static void
work_init(MarketWork *w)
{
	memset(w, 0, sizeof(*w));
	w->cxt = w->postings.cxt = w->accounts.cxt = CurrentMemoryContext;
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

static void units_moved(MarketWork *w, int64 account, int64 tonnes);

static void
add_move(MarketWork *w, LedgerUnitMove m, int trade)
{
	/* what the move does to the class I units the accounts hold (tradable) */
	if (m.kind == UNITS_ESCROW || (m.kind == UNITS_DELIVER && m.order == 0))
		units_moved(w, m.seller, -m.tonnes);
	if (m.kind == UNITS_RELEASE)
		units_moved(w, m.seller, m.tonnes);
	if (m.kind == UNITS_DELIVER && !m.retire)
		units_moved(w, m.buyer, m.tonnes);
	if (w->nmoves == w->maxmoves)
	{
		w->maxmoves = w->maxmoves ? w->maxmoves * 2 : 16;
		w->moves = w->moves ? repalloc(w->moves, sizeof(UnitMove) * w->maxmoves)
			: MemoryContextAlloc(w->cxt, sizeof(UnitMove) * w->maxmoves);
	}
	if (m.reason != NULL)
		m.reason = MemoryContextStrdup(w->cxt, m.reason);
	w->moves[w->nmoves++] = (UnitMove) {m, trade};
}

static int
add_trade(MarketWork *w, Trade t)
{
	if (w->ntrades == w->maxtrades)
	{
		w->maxtrades = w->maxtrades ? w->maxtrades * 2 : 16;
		w->trades = w->trades ? repalloc(w->trades, sizeof(Trade) * w->maxtrades)
			: MemoryContextAlloc(w->cxt, sizeof(Trade) * w->maxtrades);
	}
	/*
	 * Under a short lock a later order may commit first: its trades are
	 * numbered here, as matched.  Held to the end, they are written in
	 * the order they matched and numbered then.
	 */
	t.id = book_mode() == BOOK_SHORT ? ledger_next_id("trade_id_seq") : 0;
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
	acc = MemoryContextAlloc(w->cxt, sizeof(LedgerAccount));
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
	r->ended_at = w->now;
}

/*
 * The columns of a resting order as resting_add() reads them (the 9th,
 * whether it is past its life, is false where nobody matches against it).
 */
#define RESTING_COLUMNS "id, account, price, tonnes, filled, turnover, fees, escrow, false, retire_for, " \
	"retire_purpose, side"

/* A new entry among the resting orders, found by id from now on. */
static int
resting_slot(MarketWork *w, int64 id)
{
	Resting    *r;
	bool		found;
	int		   *slot;
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	if (w->resting_ids == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(int64), .entrysize = sizeof(int64) + sizeof(int), .hcxt = w->cxt};

		w->resting_ids = hash_create("market resting orders", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (w->nresting == w->maxresting)
	{
		w->maxresting = w->maxresting ? w->maxresting * 2 : 32;
		w->resting = w->resting ? repalloc(w->resting, sizeof(Resting) * w->maxresting)
			: palloc(sizeof(Resting) * w->maxresting);
	}
	r = &w->resting[w->nresting];
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->order = -1;
	slot = (int *) ((char *) hash_search(w->resting_ids, &id, HASH_ENTER, &found) + sizeof(int64));
	Assert(!found);
	*slot = w->nresting;
	MemoryContextSwitchTo(old);
	return w->nresting++;
}

/* The entry of a resting order this work has seen, or -1. */
static int
resting_known(MarketWork *w, int64 id)
{
	char	   *e;

	if (w->resting_ids == NULL)
		return -1;
	e = hash_search(w->resting_ids, &id, HASH_FIND, NULL);
	return e ? *(int *) (e + sizeof(int64)) : -1;
}

/* A row of the book as read: by SQL (resting_add) or straight from its index (book_take). */
typedef struct RestingRow
{
	int64		id,
				account,
				price,
				tonnes,
				filled,
				turnover,
				fees,
				escrow;
	bool		expired;
	const char *retire_for;
	const char *retire_purpose;
	bool		buy_side;
} RestingRow;

/*
 * A row of the book: its entry, read from the row unless this work has it
 * already (then this work's version is the true one: it may have filled or
 * ended the order, not yet written).
 */
static void
resting_set(Resting *r, const RestingRow *row)
{
	r->account = row->account;
	r->price = row->price;
	r->tonnes = row->tonnes;
	r->filled = row->filled;
	r->turnover = row->turnover;
	r->fees = row->fees;
	r->escrow = row->escrow;
	r->expired = row->expired;
	r->retire_for = (char *) row->retire_for;
	r->retire_purpose = (char *) row->retire_purpose;
	r->buy_side = row->buy_side;
}

static int
resting_add_row(MarketWork *w, const RestingRow *row)
{
	int			i = resting_known(w, row->id);
	RestingRow	kept = *row;

	if (i >= 0 && (w->resting[i].touched || w->resting[i].order >= 0))
		return i;
	/* new, or read again untouched (book_rows_forget): the row as it is now */
	if (i < 0)
		i = resting_slot(w, row->id);
	kept.retire_for = row->retire_for ? MemoryContextStrdup(w->cxt, row->retire_for) : NULL;
	kept.retire_purpose = row->retire_purpose ? MemoryContextStrdup(w->cxt, row->retire_purpose) : NULL;
	resting_set(&w->resting[i], &kept);
	return i;
}

/* The same from a result row of RESTING_COLUMNS. */
static int
resting_add(MarketWork *w, HeapTuple t, TupleDesc d)
{
	bool		isnull;
	RestingRow	row;

	row.id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	row.account = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
	row.price = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	row.tonnes = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
	row.filled = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
	row.turnover = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
	row.fees = DatumGetInt64(SPI_getbinval(t, d, 7, &isnull));
	row.escrow = DatumGetInt64(SPI_getbinval(t, d, 8, &isnull));
	row.expired = DatumGetBool(SPI_getbinval(t, d, 9, &isnull));
	row.retire_for = SPI_getvalue(t, d, 10);
	row.retire_purpose = SPI_getvalue(t, d, 11);
	row.buy_side = strcmp(SPI_getvalue(t, d, 12), "buy") == 0;
	return resting_add_row(w, &row);
}

#define BOOK_PAGE 16
/*
 * The first page a work reads of a side is short: one order mostly meets
 * the best one or two resting orders, or none (half of them do not cross),
 * and every row read is a heap fetch.
 */
#define BOOK_FIRST_PAGE 4

/* What book_take needs: the work, the side, where the page starts, the page. */
typedef struct BookTake
{
	MarketWork *w;
	bool		bids;
	bool		after;			/* the page starts after (after_price, after_id) */
	int64		after_price;
	int64		after_id;
	int		   *page;
	int			n;
	AttrNumber	att[13];		/* the columns of book_take_columns, found at the first row taken */
} BookTake;

static const char *const book_take_columns[13] = {"id", "account", "price", "tonnes", "filled", "turnover", "fees",
	"escrow", "expires_at", "retire_for", "retire_purpose", "side", "status"};

/*
 * A row of the book from its index (book_take, in_flight_take), by the
 * columns of book_take_columns found in att.
 */
static void
book_row(TupleTableSlot *slot, const AttrNumber *att, TimestampTz now, RestingRow *row)
{
	Datum	   *v = slot->tts_values;
	bool	   *isnull = slot->tts_isnull;

#define COL(c) (att[c] - 1)
	row->id = DatumGetInt64(v[COL(0)]);
	row->account = DatumGetInt64(v[COL(1)]);
	row->price = DatumGetInt64(v[COL(2)]);
	row->tonnes = DatumGetInt64(v[COL(3)]);
	row->filled = DatumGetInt64(v[COL(4)]);
	row->turnover = DatumGetInt64(v[COL(5)]);
	row->fees = DatumGetInt64(v[COL(6)]);
	row->escrow = DatumGetInt64(v[COL(7)]);
	row->expired = !isnull[COL(8)] && DatumGetTimestampTz(v[COL(8)]) <= now;
	row->retire_for = isnull[COL(9)] ? NULL : TextDatumGetCString(v[COL(9)]);
	row->retire_purpose = isnull[COL(10)] ? NULL : TextDatumGetCString(v[COL(10)]);
	row->buy_side = strcmp(TextDatumGetCString(v[COL(11)]), "buy") == 0;
#undef COL
}

/* Does the row still rest (the book's partial index says so; checked all the same)? */
static bool
book_row_rests(TupleTableSlot *slot, const AttrNumber *att)
{
	char	   *status = TextDatumGetCString(slot->tts_values[att[12] - 1]);

	return strcmp(status, "open") == 0 || strcmp(status, "partially_filled") == 0;
}

/*
 * A row of the book's index (book_page, straight from the index): taken
 * unless it is the last one read or before it (at its price), or no longer
 * rests.
 */
static bool
book_take(TupleTableSlot *slot, void *arg)
{
	BookTake   *bt = (BookTake *) arg;
	RestingRow	row;

	if (bt->att[0] == InvalidAttrNumber)
		ledger_attnums(slot->tts_tupleDescriptor, book_take_columns, lengthof(book_take_columns), bt->att,
					   "market_order");
	if (!book_row_rests(slot, bt->att))
		return false;
	book_row(slot, bt->att, bt->w->now, &row);
	if (bt->after && row.price == bt->after_price && row.id <= bt->after_id)
		return false;
	if (row.buy_side != bt->bids)
		return false;
	bt->page[bt->n++] = resting_add_row(bt->w, &row);
	return true;
}

/*
 * A page of the book's side (up to `limit` rows), best first, after (price,
 * id) of the last row read: their entries into page[], and the last row's
 * place.
 */
static int
book_page(MarketWork *w, bool bids, bool first, int64 *after_price, int64 *after_id, int limit, int *page)
{
#define BOOK_ROW "SELECT id, account, price, tonnes, filled, turnover, fees, escrow, " \
	"       coalesce(expires_at <= $2, false), retire_for, retire_purpose, side " \
	"FROM carbon.market_order WHERE instrument = $1 AND ended_at IS NULL "
	static SPIPlanPtr plans[2][2];
	SPIPlanPtr	plan;
	Datum		values[5] = {CStringGetTextDatum(w->ins.code), TimestampTzGetDatum(w->now), Int64GetDatum(limit),
	Int64GetDatum(*after_price), Int64GetDatum(*after_id)};
	Oid			types[5] = {TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID};

	/* straight from the book's index (append.c), where the table is plain; else by SQL below */
	if (!IsInParallelMode())
	{
		BookTake	bt = {.w = w, .bids = bids, .after = !first, .after_price = *after_price,
		.after_id = *after_id, .page = page};
		Datum		keys[2] = {values[0], Int64GetDatum(*after_price)};
		uint16		strategies[2] = {BTEqualStrategyNumber,
		bids ? BTLessEqualStrategyNumber : BTGreaterEqualStrategyNumber};
		/* locked as the order's own row will be written (ledger_read_by_key_to_write) */
		int			got = ledger_scan_index("market_order", bids ? "market_order_bids_idx" : "market_order_asks_idx",
											first ? 1 : 2, keys, strategies, limit, book_take, &bt, NULL,
											RowExclusiveLock);

		if (got >= 0)
		{
			if (got > 0)
			{
				*after_price = w->resting[page[got - 1]].price;
				*after_id = w->resting[page[got - 1]].id;
			}
			return got;
		}
	}

	/*
	 * The partial indexes of the book, walked in price–time order; a later
	 * page starts in the index at the last row's price (an index condition,
	 * so that the rows before it are not read again).
	 */
	if (first)
		ledger_plan_generic(&plans[bids][0],
							bids ? BOOK_ROW "AND side = 'buy' ORDER BY instrument, price DESC, id LIMIT $3"
							: BOOK_ROW "AND side = 'sell' ORDER BY instrument, price, id LIMIT $3",
							3, types);
	else
		ledger_plan_generic(&plans[bids][1],
							bids ? BOOK_ROW "AND side = 'buy' AND price <= $4 AND (price < $4 OR id > $5) "
							"ORDER BY instrument, price DESC, id LIMIT $3"
							: BOOK_ROW "AND side = 'sell' AND price >= $4 AND (price > $4 OR id > $5) "
							"ORDER BY instrument, price, id LIMIT $3",
							5, types);
	plan = plans[bids][first ? 0 : 1];
#undef BOOK_ROW

	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "order book lookup failed");
	Assert(SPI_processed <= (uint64) limit);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		page[i] = resting_add(w, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		*after_price = w->resting[page[i]].price;
		*after_id = w->resting[page[i]].id;
	}
	return (int) SPI_processed;
}

/* Does resting order a come before b on side `bids` (price, then time)? */
static bool
book_before(bool bids, const Resting *a, const Resting *b)
{
	if (a->price != b->price)
		return bids ? a->price > b->price : a->price < b->price;
	return a->id < b->id;
}

/*
 * A walk of one side of the book in price–time order: the rows of the book
 * (from where this transaction's ended prefix stops), merged with the
 * orders this batch has put to rest and not yet written.  Rows this batch
 * has ended come back too (with ended set): the walk's caller keeps track
 * of the ended prefix.
 */
typedef struct BookWalk
{
	bool		bids;
	int			pos;			/* the next of the rows read */
	int			own;			/* the next of the batch's own resting orders */
} BookWalk;

static void
walk_start(MarketWork *w, BookWalk *bw, bool bids)
{
	BookRows   *side = &w->rows[bids];

	/* the ended ones at the head stay ended: later walks start past them */
	while (side->head < side->n && w->resting[side->rows[side->head]].ended)
		side->head++;
	bw->bids = bids;
	bw->pos = side->head;
	bw->own = 0;
}

/* The next order of the walk, or NULL; *row says whether it is a row of the book. */
static Resting *
walk_next(MarketWork *w, BookWalk *bw, bool *row)
{
	BookRows   *side = &w->rows[bw->bids];
	Resting    *r = NULL;
	Resting    *own = NULL;

	if (bw->pos == side->n && !side->done)
	{
		/* the next page of rows, after the last one read (the first: from where the ended prefix stops) */
		bool		first = !side->started && !skip_start(bw->bids, &side->after_price, &side->after_id);
		int			page[BOOK_PAGE];
		int			limit = side->started ? BOOK_PAGE : BOOK_FIRST_PAGE;
		int			got = book_page(w, bw->bids, first, &side->after_price, &side->after_id, limit, page);

		side->started = true;
		side->done = got < limit;
		if (side->n + got > side->cap)
		{
			side->cap = Max(64, (side->n + got) * 2);
			side->rows = side->rows ? repalloc(side->rows, sizeof(int) * side->cap)
				: MemoryContextAlloc(w->cxt, sizeof(int) * side->cap);
		}
		memcpy(side->rows + side->n, page, sizeof(int) * got);
		side->n += got;
	}
	if (bw->pos < side->n)
		r = &w->resting[side->rows[bw->pos]];
	/* the batch's own ones that ended are passed over: they are no rows of the book yet */
	while (bw->own < w->nown[bw->bids] && w->resting[w->own[bw->bids][bw->own]].ended)
		bw->own++;
	if (bw->own < w->nown[bw->bids])
		own = &w->resting[w->own[bw->bids][bw->own]];
	if (own != NULL && (r == NULL || book_before(bw->bids, own, r)))
	{
		bw->own++;
		*row = false;
		return own;
	}
	if (r != NULL)
		bw->pos++;
	*row = true;
	return r;
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

/*
 * The furthest resting price order o accepts: its limit, or for a market
 * order the band's edge (none without a reference price: false).
 */
static bool
reach_limit(const MarketWork *w, const Order *o, int64 *limit)
{
	int64		low,
				high;

	if (!o->market)
		*limit = o->price;
	else if (w->ins.has_reference)
	{
		band_of(&w->ins, &low, &high);
		*limit = o->buy ? high : low;
	}
	else
		return false;
	return true;
}

/* Does the resting price cross the incoming order (and lie in the band, for a market order)? */
static bool
acceptable(const MarketWork *w, const Order *o, int64 resting_price)
{
	int64		limit;

	if (!reach_limit(w, o, &limit))
		return true;
	return o->buy ? resting_price <= limit : resting_price >= limit;
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

	t = add_trade(w, (Trade) {0, o->buy ? o->id : r->id, o->buy ? r->id : o->id, buyer->id, seller->id,
						 r->price, q, fb, fs, (Datum) 0, retire_for, retire_purpose, o->buy, w->now, w->today});
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
 * The next resting order of the opposite side the incoming order could
 * trade with now, in price-time order: not ended, not past its life, not
 * the order's own account's, of an active account; NULL at the end of the
 * book or at the first price the order does not accept.  (What match()
 * does to the orders skipped here, it does there.)
 */
static Resting *
next_takeable(MarketWork *w, BookWalk *bw, const Order *o)
{
	Resting    *r;
	bool		row;

	while ((r = walk_next(w, bw, &row)) != NULL)
	{
		if (r->ended)
			continue;
		if (!acceptable(w, o, r->price))
			return NULL;
		if (r->expired || r->account == o->acc->id ||
			strcmp(account_of(&w->accounts, r->account)->status, "active") != 0)
			continue;
		return r;
	}
	return NULL;
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
	BookWalk	bw;
	Resting    *r;

	walk_start(w, &bw, !o->buy);
	while ((r = next_takeable(w, &bw, o)) != NULL)
	{
		int64		q = Min(need, r->tonnes - r->filled);

		if (o->buy)
		{
			q = Min(q, affordable(budget, r->price, w->fee_bps));
			budget -= q * r->price + fee_of(q * r->price, w->fee_bps);
		}
		need -= q;
		if (need == 0)
			return true;
	}
	return false;
}

/*
 * Can a market buy's cash pay for one tonne (and its fee) of the first
 * offer it would take?  True too when there is none: that is an order the
 * book cannot take (rejected), not too little cash.
 */
static bool
market_buy_affordable(MarketWork *w, const Order *o)
{
	BookWalk	bw;
	Resting    *r;

	walk_start(w, &bw, false);
	r = next_takeable(w, &bw, o);
	return r == NULL || affordable(o->budget, r->price, w->fee_bps) > 0;
}

/* Match the incoming order against the book, best price first, then time. */
static void
match(MarketWork *w, Order *o)
{
	BookWalk	bw;
	Resting    *r;
	bool		row;
	bool		head = true;	/* every row of the book walked so far has ended */

	walk_start(w, &bw, !o->buy);
	while (o->filled < o->tonnes && (r = walk_next(w, &bw, &row)) != NULL)
	{
		bool		stop = false;
		int64		q;

		CHECK_FOR_INTERRUPTS();
		if (r->ended)
			;					/* ended earlier in this batch, not yet written */
		else if (r->expired)
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
		if (row)
		{
			if (head && r->ended)
			{
				w->skip_found = true;
				w->skip_price = r->price;
				w->skip_id = r->id;
			}
			else
				head = false;
		}
		if (stop)
			break;
	}
}


/* ---- the book's lock taken ---- */

/*
 * What an order can reach of the opposite side, walked with a dirty
 * snapshot; with `collect`, the rows it walked (they are the match's first
 * page when none of them is in flight).
 */
typedef struct InFlight
{
	MarketWork *w;
	const Order *o;
	SnapshotData dirty;
	int64		need;			/* tonnes still to reach */
	TransactionId xid;			/* a transaction in flight that wrote a row there */
	bool		collect;
	bool		reach_end;		/* the walk met a price the order does not accept */
	int		   *page;			/* the rows walked (entries into resting) */
	int			n,
				cap;
	AttrNumber	att[13];		/* book_take_columns */
} InFlight;

static bool
in_flight_take(TupleTableSlot *slot, void *arg)
{
	InFlight   *f = (InFlight *) arg;
	RestingRow	row;

	if (f->att[0] == InvalidAttrNumber)
		ledger_attnums(slot->tts_tupleDescriptor, book_take_columns, lengthof(book_take_columns), f->att,
					   "market_order");
	if (!acceptable(f->w, f->o, DatumGetInt64(slot->tts_values[f->att[2] - 1])))
	{
		f->reach_end = true;	/* past its reach (no fill changes a price) */
		return true;
	}
	if (TransactionIdIsValid(f->dirty.xmin) || TransactionIdIsValid(f->dirty.xmax))
	{
		f->xid = TransactionIdIsValid(f->dirty.xmin) ? f->dirty.xmin : f->dirty.xmax;
		return true;
	}
	if (IsolationUsesXactSnapshot())
	{
		/* a row its snapshot does not see: the book changed since (40001) */
		bool		should_free;
		HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
		TransactionId xmin = HeapTupleHeaderGetXmin(tup->t_data);

		if (!TransactionIdIsCurrentTransactionId(xmin) && XidInMVCCSnapshot(xmin, GetTransactionSnapshot()))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to a concurrent change of the order book"),
					 errdetail("Order " INT64_FORMAT " changed after this transaction's snapshot.",
							   DatumGetInt64(slot->tts_values[f->att[0] - 1]))));
	}
	if (!book_row_rests(slot, f->att))
		return false;
	book_row(slot, f->att, f->w->now, &row);
	if (row.buy_side == f->o->buy)
		return false;
	if (f->collect)
	{
		if (f->n == f->cap)
		{
			f->cap = f->cap ? f->cap * 2 : 8;
			f->page = f->page ? repalloc(f->page, sizeof(int) * f->cap) : palloc(sizeof(int) * f->cap);
		}
		f->page[f->n++] = resting_add_row(f->w, &row);
	}
	/* what the match passes over (expired, its own, a frozen account's) fills nothing */
	if (row.expired || row.account == f->o->acc->id ||
		strcmp(account_of(&f->w->accounts, row.account)->status, "active") != 0)
		return false;
	f->need -= row.tonnes - row.filled;
	return f->need <= 0;
}

/*
 * A transaction in flight that wrote a row of the book within the reach
 * of order o (the opposite side, at prices it accepts, as far as its
 * tonnes go), or InvalidTransactionId.  Under REPEATABLE READ, a row there
 * that its snapshot does not see raises 40001.
 *
 * With `collect` and nothing in flight, the rows walked become the first
 * rows of the match's walk of that side: committed, with nobody in flight
 * on them and the matcher's lock held, they are what a new snapshot would
 * show (read once, not twice).
 */
static TransactionId
book_in_flight(MarketWork *w, const Order *o, bool collect)
{
	InFlight	f = {.w = w, .o = o, .need = o->tonnes, .xid = InvalidTransactionId, .collect = collect};
	int64		limit;
	Datum		keys[2] = {CStringGetTextDatum(w->ins.code), (Datum) 0};
	uint16		strategies[2] = {BTEqualStrategyNumber,
	o->buy ? BTLessEqualStrategyNumber : BTGreaterEqualStrategyNumber};
	int			nkeys = 1;
	BookRows   *side = &w->rows[!o->buy];
	int			got;

	/*
	 * Bounded by the order's reach, so that the index stops at the first
	 * price past it: on the instrument alone, each walk read the whole leaf
	 * page of the book before its first row (13,000 instructions a walk,
	 * callgrind).
	 */
	if (reach_limit(w, o, &limit))
		keys[1] = Int64GetDatum(limit), nkeys = 2;
	InitDirtySnapshot(f.dirty);
	f.dirty.xmin = f.dirty.xmax = InvalidTransactionId;
	got = ledger_scan_index("market_order", o->buy ? "market_order_asks_idx" : "market_order_bids_idx",
							nkeys, keys, strategies, 1, in_flight_take, &f, &f.dirty, RowExclusiveLock);
	if (got < 0)
	{
		/* the table is not plain (a rule, row-level security): the book held to the end instead */
		book_hold();
		return InvalidTransactionId;
	}
	if (TransactionIdIsValid(f.xid) || !collect || side->started)
		return f.xid;
	if (f.n == 0 && !f.reach_end && got != 0)
		return InvalidTransactionId;	/* (cannot be: the walk stops at a row it could fill) */
	if (side->cap < f.n)
	{
		side->cap = Max(64, f.n * 2);
		side->rows = side->rows ? repalloc(side->rows, sizeof(int) * side->cap)
			: MemoryContextAlloc(w->cxt, sizeof(int) * side->cap);
	}
	if (f.n > 0)
	{
		memcpy(side->rows, f.page, sizeof(int) * f.n);
		side->after_price = w->resting[f.page[f.n - 1]].price;
		side->after_id = w->resting[f.page[f.n - 1]].id;
	}
	side->n = f.n;
	side->head = 0;
	side->started = true;		/* an order that does not cross reads the book once, here */
	/* past the last row walked: nothing it accepts (the walk met a price past its reach, or the book's end) */
	side->done = f.reach_end || got == 0;
	return InvalidTransactionId;
}

/*
 * The book's lock for order o (place_order) or for a change of the book
 * (o NULL: cancel, recall, reference price, close), with the instrument's
 * reference price and band read under it.  Short for an order alone in its
 * transaction (above), held to the end for everything else.
 */
static void
book_lock(const char *code, Instrument *ins, MarketWork *w, const Order *o)
{
	bool		may_short;

	instrument_known(code);
	if (held_instrument.valid && held_instrument.lxid == MyProc->lxid &&
		held_instrument.table == ledger_relid("instrument"))
	{
		/* held since an earlier call of this transaction */
		*ins = held_instrument.ins;
		ins->code = code;
		if (book_mode() == BOOK_SHORT)
		{
			/*
			 * A second call in the statement (a batch): the book held to the
			 * end from here, once the orders in flight have ended.  Nothing
			 * of the batch holds a balance yet (read, not locked, under a
			 * short lock), so waiting here cannot deadlock.  What the batch
			 * read of the book beyond its first order's reach may miss what
			 * they wrote: read again (its own fills are kept).
			 */
			book_hold();
			if (o != NULL)
				book_rows_forget(w);
		}
		return;
	}
	ins->code = code;
	ins->asset = ledger_asset_id("CER");
	/* held already (by a change of the book earlier in this transaction): to the end */
	may_short = o != NULL && short_book_lock && !IsTransactionBlock() && !IsolationUsesXactSnapshot() &&
		book_mode() != BOOK_HELD;
	book.mode = book_mode();	/* what an earlier transaction left is not this one's */
	book.lxid = MyProc->lxid;
	book_tags(code);
	for (;;)
	{
		TransactionId xid;

		book_matcher_acquire();
		if (!may_short)
		{
			book_hold();
			instrument_bump_row(code, ins);
			if (o != NULL && IsolationUsesXactSnapshot())
			{
				w->ins = *ins;
				work_clock(w);
				(void) book_in_flight(w, o, false);	/* raises 40001 if the book changed since its snapshot */
			}
			break;
		}
		book.mode = BOOK_SHORT;
		book.owner = CurrentResourceOwner;
		instrument_read(code, ins);
		w->ins = *ins;
		work_clock(w);
		xid = book_in_flight(w, o, true);
		if (!TransactionIdIsValid(xid))
			break;
		/* let the book go while the order in flight finishes, then start again */
		book_matcher_release();
		XactLockTableWait(xid, NULL, NULL, XLTW_None);
	}
	held_instrument.lxid = MyProc->lxid;
	held_instrument.table = ledger_relid("instrument");
	held_instrument.ins = *ins;
	held_instrument.valid = true;
	/* the commit lets go of what is held before its WAL flush (early_release.c) */
	ledger_early_release_arm();
}

/* The book's lock for a change of the book, held to the transaction's end. */
static void
instrument_lock(const char *code, Instrument *ins)
{
	MarketWork	w;

	book_lock(code, ins, &w, NULL);
}

/* ---- writing it down ---- */

/*
 * After a short lock, the entry posted (every balance it changes now
 * locked): each seller still held the class I units it sold or put in
 * escrow.  Its balance was read unlocked, and a transfer or another order
 * of its own may have taken units since; its CER balance cannot go below
 * zero (the posting refused that), but class II units must not make up
 * the difference.
 */
static void
sellers_recheck(MarketWork *w)
{
	for (int i = 0; i < w->norders; i++)
	{
		const Order *o = &w->orders[i];
		Datum		values[3] = {Int64GetDatum(o->acc->id), Int16GetDatum(w->ins.asset), Int16GetDatum(0)};
		Datum	   *keys[] = {&values[0], &values[1], &values[2]};
		int64		held = 0;
		int64		untradable;

		if (o->buy || (o->filled == 0 && o->escrow == 0))
			continue;
		if (ledger_read_by_key_to_write("balance", 3, keys, 1, ledger_read_int8_column,
										&(LedgerColumnRead) {"amount", &held}, false) < 0)
			continue;			/* not plain: the book was held, the balance locked before */
		untradable = ledger_units_untradable(o->acc->id);
		if (held < untradable)
			ereport(ERROR,
					(errcode(ERRCODE_CL_INSUFFICIENT),
					 errmsg("account " INT64_FORMAT " holds " INT64_FORMAT " t of class I units by now; the order sells "
							INT64_FORMAT, o->acc->id, held - untradable + o->filled + o->escrow, o->tonnes),
					 errdetail("Another order or transfer of the account took units after this order was matched."),
					 errhint("Class II units never reach the market.")));
	}
}



/* An order's status from what it has filled and whether it ended. */
static const char *
status_of(int64 filled, int64 tonnes, bool ended)
{
	if (ended)
		return filled == tonnes ? "filled" : "cancelled";
	return filled > 0 ? "partially_filled" : "open";
}

/*
 * resting_write's check on each row it updates: a resting order another
 * transaction changed since it was read (the update is handed its newer
 * version: a second call for the same row) would lose that change.  The
 * book's lock and the walk for orders in flight (book_lock) rule it out.
 */
static void
resting_write_once(int row, Datum *values, bool *isnull pg_attribute_unused(), void *arg)
{
	int		   *last_row = (int *) arg;

	if (row == *last_row)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("resting order " INT64_FORMAT " changed while the market filled it", DatumGetInt64(values[0])),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
	*last_row = row;
}

/* The rows of the book this work changed, in one statement. */
static void
resting_write(MarketWork *w)
{
	static SPIPlanPtr plan = NULL;
	LedgerColumns c;
	Datum		values[8];

	ledger_columns_init(&c, 8, (const Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID,
				 TIMESTAMPTZOID}, w->nresting);
	for (int i = 0; i < w->nresting; i++)
	{
		Resting    *r = &w->resting[i];

		if (!r->touched || r->order >= 0)	/* the batch's own orders are written whole, below */
			continue;
		ledger_col_set(&c, 0, Int64GetDatum(r->id), false);
		ledger_col_set(&c, 1, Int64GetDatum(r->filled), false);
		ledger_col_set(&c, 2, Int64GetDatum(r->turnover), false);
		ledger_col_set(&c, 3, Int64GetDatum(r->fees), false);
		ledger_col_set(&c, 4, Int64GetDatum(r->escrow), false);
		ledger_col_set(&c, 5, CStringGetTextDatum(status_of(r->filled, r->tonnes, r->ended)), false);
		ledger_col_set(&c, 6, r->ended ? CStringGetTextDatum(r->end_reason) : (Datum) 0, !r->ended);
		ledger_col_set(&c, 7, TimestampTzGetDatum(r->ended_at), !r->ended);
		c.n++;
	}
	if (c.n == 0)
		return;
	/* straight in the heap (append.c) where the table is plain, else by SQL */
	{
		static const char *const columns[] = {"filled", "turnover", "fees", "escrow", "status", "end_reason",
		"ended_at"};
		int			last_row = -1;
		int64		updated = ledger_update_by_key_with("market_order", 1, c.v, lengthof(columns), columns,
														c.v + 1, c.null + 1, c.n, NULL, resting_write_once,
														&last_row);

		if (updated >= 0)
		{
			if (updated != c.n)
				elog(ERROR, "order update failed");
			return;
		}
	}
	ledger_columns_arrays(&c, values);
	ledger_plan_generic(&plan,
				"UPDATE carbon.market_order o SET filled = u.filled, turnover = u.turnover, fees = u.fees, "
				"       escrow = u.escrow, status = u.status, end_reason = u.reason, ended_at = u.ended_at "
				"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS u(id, filled, turnover, fees, escrow, status, reason, "
				"                                                ended_at) "
				"WHERE o.id = u.id",
				8, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
				TEXTARRAYOID, TIMESTAMPTZARRAYOID});
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_UPDATE || SPI_processed != (uint64) c.n)
		elog(ERROR, "order update failed");
}

/* The trades, straight into the table; each lists the serials it moved. */
static void
trades_write(MarketWork *w, int64 entry_id)
{
	static const char *const columns[] = {"instrument", "buy_order", "sell_order", "buyer", "seller", "price",
		"tonnes", "buyer_fee", "seller_fee", "aggressor", "trade_day", "at", "entry_id", "serials", "id"};
	LedgerColumns c;
	Datum		instrument;

	if (w->ntrades == 0)
		return;
	instrument = CStringGetTextDatum(w->ins.code);
	ledger_columns_init(&c, lengthof(columns), NULL, w->ntrades);
	for (int i = 0; i < w->ntrades; i++)
	{
		const Trade *t = &w->trades[i];

		ledger_col_set(&c, 0, instrument, false);
		ledger_col_set(&c, 1, Int64GetDatum(t->buy_order), false);
		ledger_col_set(&c, 2, Int64GetDatum(t->sell_order), false);
		ledger_col_set(&c, 3, Int64GetDatum(t->buyer), false);
		ledger_col_set(&c, 4, Int64GetDatum(t->seller), false);
		ledger_col_set(&c, 5, Int64GetDatum(t->price), false);
		ledger_col_set(&c, 6, Int64GetDatum(t->tonnes), false);
		ledger_col_set(&c, 7, Int64GetDatum(t->buyer_fee), false);
		ledger_col_set(&c, 8, Int64GetDatum(t->seller_fee), false);
		ledger_col_set(&c, 9, CStringGetTextDatum(t->buy_aggressor ? "buy" : "sell"), false);
		ledger_col_set(&c, 10, DateADTGetDatum(t->day), false);
		ledger_col_set(&c, 11, TimestampTzGetDatum(t->at), false);
		ledger_col_set(&c, 12, Int64GetDatum(entry_id), false);
		ledger_col_set(&c, 13, t->serials, false);
		/* numbered as matched (add_trade) under a short lock; those after it in the batch now, in order */
		ledger_col_set(&c, 14, Int64GetDatum(t->id != 0 || w->trades[0].id == 0 ? t->id :
											 ledger_next_id("trade_id_seq")), false);
		c.n++;
	}
	/* without numbers (a lock held to the end): the column's default numbers them as written */
	ledger_append("trade", w->trades[0].id != 0 ? c.ncols : c.ncols - 1, columns, c.v, c.null, c.n);
}

/*
 * The orders this batch placed, each written once, in the state the batch
 * leaves it in (their ids were drawn before matching: trades and escrow
 * name them).
 */
typedef enum OrdersPart
{
	ORDERS_ALL,
	ORDERS_RESTING,				/* rows of the book: written under a short lock */
	ORDERS_ENDED				/* no rows of the book: written after it */
} OrdersPart;

static void
orders_write(MarketWork *w, OrdersPart part)
{
	static const char *const columns[] = {"id", "instrument", "account", "side", "price", "tonnes", "tif",
		"status", "retire_for", "retire_purpose", "trade_day", "expires_at", "created_at", "filled", "turnover",
	"fees", "escrow", "end_reason", "ended_at"};
	LedgerColumns c;
	Datum		instrument;

	if (w->norders == 0)
		return;
	instrument = CStringGetTextDatum(w->ins.code);
	ledger_columns_init(&c, lengthof(columns), NULL, w->norders);
	for (int i = 0; i < w->norders; i++)
	{
		Order	   *o = &w->orders[i];
		const char *status = o->status;
		const char *reason = o->end_reason;
		TimestampTz ended_at = o->at;
		bool		ended;
		bool		gtc = strcmp(o->tif, "GTC") == 0;

		if (o->resting >= 0)
		{
			/* it rested: what the batch did to it since */
			Resting    *r = &w->resting[o->resting];

			o->filled = r->filled, o->turnover = r->turnover, o->fees = r->fees, o->escrow = r->escrow;
			status = status_of(r->filled, r->tonnes, r->ended);
			reason = r->ended ? r->end_reason : NULL;
			ended_at = r->ended_at;
		}
		ended = strcmp(status, "open") != 0 && strcmp(status, "partially_filled") != 0;
		if ((part == ORDERS_RESTING && ended) || (part == ORDERS_ENDED && !ended))
			continue;
		ledger_col_set(&c, 0, Int64GetDatum(o->id), false);
		ledger_col_set(&c, 1, instrument, false);
		ledger_col_set(&c, 2, Int64GetDatum(o->acc->id), false);
		ledger_col_set(&c, 3, CStringGetTextDatum(o->buy ? "buy" : "sell"), false);
		ledger_col_set(&c, 4, Int64GetDatum(o->price), o->market);
		ledger_col_set(&c, 5, Int64GetDatum(o->tonnes), false);
		ledger_col_set(&c, 6, CStringGetTextDatum(o->tif), false);
		ledger_col_set(&c, 7, CStringGetTextDatum(status), false);
		ledger_col_set(&c, 8, o->retire_for ? CStringGetTextDatum(o->retire_for) : (Datum) 0, o->retire_for == NULL);
		ledger_col_set(&c, 9, o->retire_for ? CStringGetTextDatum(o->retire_purpose) : (Datum) 0, o->retire_for == NULL);
		ledger_col_set(&c, 10, DateADTGetDatum(o->day), false);
		if (gtc)
		{
			/* a GTC order's maximum life, in calendar days of the session's time zone (as SQL's +) */
			Interval   *life = palloc0(sizeof(Interval));

			life->day = (int32) o->gtc_days;
			ledger_col_set(&c, 11, DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(o->at),
													   IntervalPGetDatum(life)), false);
		}
		else
			ledger_col_set(&c, 11, (Datum) 0, true);
		ledger_col_set(&c, 12, TimestampTzGetDatum(o->at), false);
		ledger_col_set(&c, 13, Int64GetDatum(o->filled), false);
		ledger_col_set(&c, 14, Int64GetDatum(o->turnover), false);
		ledger_col_set(&c, 15, Int64GetDatum(o->fees), false);
		ledger_col_set(&c, 16, Int64GetDatum(o->escrow), false);
		ledger_col_set(&c, 17, ended ? CStringGetTextDatum(reason) : (Datum) 0, !ended);
		ledger_col_set(&c, 18, TimestampTzGetDatum(ended_at), !ended);
		c.n++;
	}
	if (c.n > 0)
		ledger_append("market_order", c.ncols, columns, c.v, c.null, c.n);
}

/* The unit moves, in order, all at once (units.c runs them in memory). */
static void
moves_write(MarketWork *w, int64 entry_id)
{
	LedgerUnitMove *moves = palloc(sizeof(LedgerUnitMove) * Max(w->nmoves, 1));
	Datum	   *serials = palloc(sizeof(Datum) * Max(w->nmoves, 1));

	if (w->nmoves == 0)
		return;
	for (int k = 0; k < w->nmoves; k++)
		moves[k] = w->moves[k].move;
	ledger_units_market(w->nmoves, moves, entry_id, serials);
	for (int k = 0; k < w->nmoves; k++)
		if (w->moves[k].trade >= 0)
			w->trades[w->moves[k].trade].serials = serials[k];
}

/*
 * Post the entry, then move the serial blocks, write the trades (with the
 * serials they moved; certificates for buys that retire), the books, the
 * rows of the book this work changed and the orders it placed.
 */
static int64
work_write(MarketWork *w, const char *kind, const char *memo)
{
	bool		short_lock = book_mode() == BOOK_SHORT;	/* matched under it: balances read, not locked */
	int64		entry_id;
	LedgerBooks books = {0};

	if (short_lock)
	{
		/* the book's rows, then the book to the next order; the rest after */
		resting_write(w);
		orders_write(w, ORDERS_RESTING);
		book_let_go();
		orders_write(w, ORDERS_ENDED);
	}
	entry_id = post_all(&w->postings, kind, memo, w->correction);
	if (short_lock)
		sellers_recheck(w);

	moves_write(w, entry_id);
	trades_write(w, entry_id);
	for (int i = 0; i < w->ntrades; i++)
	{
		Trade	   *t = &w->trades[i];
		const LedgerAccount *buyer = account_of(&w->accounts, t->buyer);
		const char *what = psprintf(INT64_FORMAT " t at %lld.%02lld", t->tonnes,
									(long long) (t->price / 100), (long long) (t->price % 100));

		/* the books: the buyer's cost and the seller's proceeds, fees in both */
		ledger_books_add(&books, buyer, BOOK_PURCHASE, t->tonnes, t->price * t->tonnes + t->buyer_fee,
						 psprintf("purchase of %s", what));
		ledger_books_add(&books, account_of(&w->accounts, t->seller), BOOK_SALE, t->tonnes,
						 t->price * t->tonnes - t->seller_fee, psprintf("sale of %s", what));
		if (t->retire_for)
		{
			(void) ledger_units_certify(t->buyer, t->tonnes, t->retire_purpose, t->retire_for, buyer->region,
										NULL, t->serials, entry_id);
			ledger_books_add(&books, buyer, BOOK_OUT, t->tonnes, 0,
							 psprintf("retirement of " INT64_FORMAT " t for %s", t->tonnes, t->retire_for));
		}
	}
	ledger_books_write(&books, entry_id);
	if (!short_lock)
	{
		resting_write(w);
		orders_write(w, ORDERS_ALL);
	}
	return entry_id;
}

/* The incoming order comes to rest: the batch's own resting order on its side, in price–time order. */
static void
own_rest(MarketWork *w, Order *o)
{
	int			i = resting_slot(w, o->id);
	Resting    *r = &w->resting[i];
	bool		bids = o->buy;
	int			pos;

	resting_set(r, &(RestingRow) {o->id, o->acc->id, o->price, o->tonnes, o->filled, o->turnover, o->fees, o->escrow,
				false, o->retire_for, o->retire_purpose, o->buy});
	r->order = w->norders;		/* order_keep() puts it there next */
	o->resting = i;
	if (w->nown[bids] == w->maxown[bids])
	{
		w->maxown[bids] = w->maxown[bids] ? w->maxown[bids] * 2 : 64;
		w->own[bids] = w->own[bids] ? repalloc(w->own[bids], sizeof(int) * w->maxown[bids])
			: MemoryContextAlloc(w->cxt, sizeof(int) * w->maxown[bids]);
	}
	/* after every order at least as good: it is the newest */
	pos = w->nown[bids];
	while (pos > 0 && book_before(bids, r, &w->resting[w->own[bids][pos - 1]]))
		pos--;
	memmove(&w->own[bids][pos + 1], &w->own[bids][pos], sizeof(int) * (w->nown[bids] - pos));
	w->own[bids][pos] = i;
	w->nown[bids]++;
}

/* The incoming order, kept to be written with the batch. */
static void
order_keep(MarketWork *w, const Order *o)
{
	if (w->norders == w->maxorders)
	{
		w->maxorders = w->maxorders ? w->maxorders * 2 : 16;
		w->orders = w->orders ? repalloc(w->orders, sizeof(Order) * w->maxorders)
			: MemoryContextAlloc(w->cxt, sizeof(Order) * w->maxorders);
	}
	w->orders[w->norders++] = *o;
}

/* ---- a statement's orders: one batch, written once ---- */

/*
 * B4's broker places 1,000 orders in one statement.  Each call matches at
 * once against the book as the batch left it (the rows of the book, this
 * batch's own changes to them, and the orders it put to rest), and returns
 * its order's state; what the calls move is written when the statement
 * that called them ends: one entry, a few statements of serial blocks, one
 * of trades, one of orders.  Nothing else can see the difference: the
 * calling statement's snapshot does not show what its functions write, the
 * instrument's lock keeps every other order out until the transaction
 * ends, and every other function of carbon_ledger writes the batch first
 * (ledger_spi_connect).  A call with a request_id, or outside any
 * statement, is written at once.
 */
typedef struct MarketBatch
{
	MemoryContext cxt;
	LocalTransactionId lxid;
	SubTransactionId subxid;	/* where its calls ran: it is written there */
	struct EState *estate;		/* the statement that calls place_order */
	Oid			owner;			/* the functions' owner: the batch is written as them */
	bool		busy;			/* a call or the writing is under way */
	bool		writing;
	bool		write_now;		/* written at the end of the call */
	MarketWork	w;
} MarketBatch;

static MarketBatch *batch = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/*
 * A batch written inside a subtransaction other than its own (a function
 * of carbon_ledger called within a savepoint of the statement) belongs to
 * that subtransaction: if it rolls back, the orders its calls reported
 * are gone, and the transaction must not commit.
 */
static SubTransactionId written_in = InvalidSubTransactionId;
static SubTransactionId written_home = InvalidSubTransactionId;
static bool orders_lost = false;	/* until written_home rolls back too */

static void
batch_drop(void)
{
	MemoryContext cxt = batch->cxt;

	batch = NULL;
	MemoryContextDelete(cxt);
}

static void
batch_write_now(void)
{
	MarketBatch *b = batch;
	Oid			save_user;
	int			save_sec;
	int			nest;
	bool		pushed;
	const char *memo;

	b->busy = b->writing = true;
	if (GetCurrentSubTransactionId() != b->subxid && written_in == InvalidSubTransactionId)
	{
		written_in = GetCurrentSubTransactionId();
		written_home = b->subxid;
	}
	/* as the owner, on the functions' search path, whoever's statement it ends */
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(b->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, carbon, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* a statement's finish may come after its portal let go of the snapshot */
	pushed = !ActiveSnapshotSet();
	if (pushed)
		PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(b->cxt);
	memo = b->w.norders == 1 ? psprintf("order " INT64_FORMAT, b->w.orders[0].id) :
		b->w.norders > 1 ? psprintf("orders " INT64_FORMAT " to " INT64_FORMAT, b->w.orders[0].id,
									b->w.orders[b->w.norders - 1].id) : "orders";
	(void) work_write(&b->w, "trade", memo);
	SPI_finish();
	if (pushed)
		PopActiveSnapshot();
	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(save_user, save_sec);
	batch_drop();
}

/* Before any other function of carbon_ledger reads or writes: the batch, written. */
void
ledger_market_write_pending(void)
{
	if (batch != NULL && !batch->busy)
		batch_write_now();
}

/*
 * The statement that placed the batch's orders has run (a cursor: this
 * fetch) or is finishing.  Both, because a statement running when the
 * library was loaded (its first call of carbon_ledger) entered its run
 * before the hook was there.
 */
static void
market_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once)
{
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
	if (batch != NULL && batch->estate == queryDesc->estate && !batch->busy)
		batch_write_now();
}

static void
market_ExecutorFinish(QueryDesc *queryDesc)
{
	if (batch != NULL && batch->estate == queryDesc->estate && !batch->busy)
		batch_write_now();
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

void
ledger_market_register(void)
{
	DefineCustomBoolVariable("carbon_ledger.short_book_lock",
							 "Lets an order alone in its transaction release the book's lock once the book's rows are written.",
							 "The next order waits only for orders in flight within its reach; off holds the lock to the commit.",
							 &short_book_lock,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = market_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = market_ExecutorFinish;
}

/* The batch a call of place_order joins (the one of its statement), or a new one. */
static MarketBatch *
batch_join(ReturnSetInfo *rsinfo, bool alone)
{
	struct EState *estate = rsinfo->econtext ? rsinfo->econtext->ecxt_estate : NULL;
	SubTransactionId sub = GetCurrentSubTransactionId();

	if (orders_lost)
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("orders placed in this transaction were rolled back with a savepoint"),
				 errhint("Roll back the transaction and place them again.")));
	if (batch != NULL &&
		(batch->lxid != MyProc->lxid || batch->subxid != sub || batch->estate != estate || alone ||
		 batch->w.norders >= 10000 || batch->w.postings.n > 8000))
		batch_write_now();
	if (batch == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "carbon_ledger market batch",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		batch = palloc0(sizeof(MarketBatch));
		batch->cxt = cxt;
		batch->lxid = MyProc->lxid;
		batch->subxid = sub;
		batch->estate = estate;
		batch->owner = GetUserId();
		batch->busy = true;		/* work_init may read the settings, through SPI */
		work_init(&batch->w);
		MemoryContextSwitchTo(old);
	}
	batch->write_now = alone || estate == NULL;
	batch->busy = true;
	return batch;
}

/* Transaction end: the batch goes with the transaction's memory. */
void
ledger_market_xact_end(void)
{
	batch = NULL;
	written_in = written_home = InvalidSubTransactionId;
	orders_lost = false;
	ledger_market_forget();
}

/* Before commit: nothing may be left unwritten (a safety net: statements write their own). */
void
ledger_market_pre_commit(void)
{
	if (orders_lost)
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("orders placed in this transaction were rolled back with a savepoint"),
				 errhint("Roll back the transaction and place them again.")));
	if (batch != NULL)
		batch_write_now();
}

void
ledger_market_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent)
{
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (batch != NULL && batch->subxid == sub)
			batch->subxid = parent;
		if (written_in == sub)
			written_in = parent == written_home ? InvalidSubTransactionId : parent;
		if (written_home == sub)
			written_home = parent;
		if (written_in == InvalidSubTransactionId && !orders_lost)
			written_home = InvalidSubTransactionId;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		if (written_in == sub)
		{
			orders_lost = true;
			written_in = InvalidSubTransactionId;
		}
		if (written_home == sub)
		{
			/* the lost orders' own calls are rolled back now too: nothing is missing any more */
			orders_lost = false;
			written_in = written_home = InvalidSubTransactionId;
		}
		if (batch != NULL)
		{
			if (batch->subxid == sub)
				batch_drop();	/* its calls are rolled back with it */
			else if (batch->writing)
			{
				orders_lost = true;	/* half written, in a subtransaction that is gone */
				written_home = batch->subxid;
				batch_drop();
			}
			else
				batch->busy = false;
		}
		ledger_market_forget();	/* and their orders' ends */
	}
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
										Int32GetDatum(2));	/* money: yuan, 2 decimals (api.md) */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * A replayed request: the first call's result (api.md: "returns the first
 * call's result"), not the order as it stands.  An order that can rest (a
 * GTC or DAY limit order) had, when placed, what it took from the book as
 * the incoming order: its trades as aggressor; what filled it later, as a
 * resting order, came after.  Every other order ended in its first call.
 */
static void
order_replay(ReturnSetInfo *rsinfo, int64 id)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;
	HeapTuple	t;
	TupleDesc	d;
	int64		tonnes,
				filled,
				turnover;

	ledger_plan_generic(&plan,
						"SELECT o.status, o.filled, o.turnover, o.tonnes, "
						"       o.price IS NOT NULL AND o.tif IN ('GTC', 'DAY') AS could_rest, "
						"       coalesce(sum(t.tonnes), 0)::bigint AS took, "
						"       coalesce(sum(t.tonnes * t.price), 0)::bigint AS took_turnover "
						"FROM carbon.market_order o "
						/* its trades as aggressor, through the index of its side (one arm runs) */
						"LEFT JOIN LATERAL (SELECT tonnes, price FROM carbon.trade "
						"                   WHERE o.side = 'buy' AND buy_order = o.id AND aggressor = 'buy' "
						"                   UNION ALL "
						"                   SELECT tonnes, price FROM carbon.trade "
						"                   WHERE o.side = 'sell' AND sell_order = o.id AND aggressor = 'sell') t ON true "
						"WHERE o.id = $1 GROUP BY o.id",
						1, (Oid[]) {INT8OID});
	/* read-write: a fresh snapshot, that sees an order placed earlier in the same statement */
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "order " INT64_FORMAT " not found", id);
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	if (!DatumGetBool(SPI_getbinval(t, d, 5, &isnull)))
	{
		srf_order(rsinfo, id, SPI_getvalue(t, d, 1), DatumGetInt64(SPI_getbinval(t, d, 2, &isnull)),
				  DatumGetInt64(SPI_getbinval(t, d, 3, &isnull)));
		return;
	}
	tonnes = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
	filled = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
	turnover = DatumGetInt64(SPI_getbinval(t, d, 7, &isnull));
	srf_order(rsinfo, id, filled == tonnes ? "filled" : filled > 0 ? "partially_filled" : "open", filled, turnover);
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
	MarketBatch *b;
	MarketWork *w;
	Order		o;
	int64		existing;
	int64		gtc_days;
	int64		cash_needed = 0;
	char	   *off_tick = NULL;
	MemoryContext old;

	/* arguments (22023) */
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
		/* off the tick is CL005, reported after the account's status (api.md's order) */
		if (!yuan_to_fen(price, &o.price))
			off_tick = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(price)));
	}
	o.tonnes = tonnes;
	o.tif = o.market && strcmp(tif, "FOK") != 0 ? "IOC" : tif;	/* a market order never rests */
	o.retire_for = retire_for;
	o.retire_purpose = retire_purpose;
	ledger_check_acting(account, false);

	/* the row type the executor expects already (a batch builds one per order otherwise) */
	InitMaterializedSRF(fcinfo, rsinfo != NULL && rsinfo->expectedDesc != NULL ? MAT_SRF_USE_EXPECTED_DESC : 0);
	b = batch_join(rsinfo, request_id != NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	old = MemoryContextSwitchTo(b->cxt);	/* what the call leaves for the batch */
	w = &b->w;
	w->skip_found = false;
	o.tif = pstrdup(o.tif);
	o.retire_for = retire_for ? pstrdup(retire_for) : NULL;
	o.retire_purpose = pstrdup(retire_purpose);
	o.resting = -1;
	o.acc = account_of(&w->accounts, account);
	ledger_require_participant(o.acc);
	if (ledger_request_begin(account, request_id, "place_order",
							 psprintf("%s|" INT64_FORMAT "|%s|%s|%s|%s|%s", side, tonnes,
									  o.market ? "market" : off_tick ? off_tick : psprintf(INT64_FORMAT, o.price),
									  tif, instrument,
									  retire_for ? retire_for : "-", retire_for ? retire_purpose : "-"),
							 &existing))
	{
		order_replay(rsinfo, existing);
		MemoryContextSwitchTo(old);
		SPI_finish();
		b->busy = false;
		return (Datum) 0;
	}
	ledger_require_active(o.acc);
	if (!ledger_flow_allowed(o.acc->tier, o.acc->tier, "CER"))
		ereport(ERROR,
				(errcode(ERRCODE_CL_FLOW),
				 errmsg("a %s account cannot trade certified units", o.acc->tier),
				 errhint("CER moves between personal, enterprise, government and platform accounts (carbon.allowed_flow).")));
	if (off_tick)
		ereport(ERROR,
				(errcode(ERRCODE_CL_PRICE),
				 errmsg("price %s is not on the tick of 0.01 yuan", off_tick)));

	/* the book's lock, before any balance */
	book_lock(instrument, &w->ins, w, &o);
	w->ins.code = MemoryContextStrdup(w->cxt, instrument);	/* the batch outlives the call */
	work_clock(w);
	if (!o.market && w->ins.has_reference)
	{
		int64		low,
					high;

		band_of(&w->ins, &low, &high);
		if (o.price < low || o.price > high)
			ereport(ERROR,
					(errcode(ERRCODE_CL_PRICE),
					 errmsg("price %lld.%02lld is outside the band %lld.%02lld to %lld.%02lld",
							(long long) (o.price / 100), (long long) (o.price % 100),
							(long long) (low / 100), (long long) (low % 100),
							(long long) (high / 100), (long long) (high % 100)),
					 errdetail("The reference price is %lld.%02lld yuan per tonne; orders lie within ±%d.%02d %%.",
							   (long long) (w->ins.reference / 100), (long long) (w->ins.reference % 100),
							   (int) (w->ins.band_bps / 100), (int) (w->ins.band_bps % 100))));
	}

	/* what it needs in escrow (CL001) */
	if (o.buy)
	{
		int64		cash = available(w, account, w->cny);

		if (o.market)
		{
			if (w->ins.has_reference)
			{
				int64		low,
							high;

				band_of(&w->ins, &low, &high);
				cash_needed = mul_or_raise(tonnes, high);
				cash_needed += fee_of(cash_needed, w->fee_bps);
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
			cash_needed += fee_of(cash_needed, w->fee_bps);
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

		units = tradable(w, account, w->ins.asset);

		if (units < tonnes)
			ereport(ERROR,
					(errcode(ERRCODE_CL_INSUFFICIENT),
					 errmsg("account " INT64_FORMAT " holds " INT64_FORMAT " t of class I units; the order sells "
							INT64_FORMAT, account, units, tonnes),
					 errhint("Class II units never reach the market.")));
	}
	/* too little cash to escrow for one tonne of what a market buy would take (CL001) */
	if (o.market && o.buy && !market_buy_affordable(w, &o))
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("account " INT64_FORMAT " has %lld.%02lld yuan: not enough for one tonne of the best offer",
						account, (long long) (o.budget / 100), (long long) (o.budget % 100)),
				 errdetail("A market buy escrows the cash it may spend; one tonne at the best price, with its fee, costs more.")));

	gtc_days = ledger_settings()->gtc_max_days;
	o.id = ledger_next_id("market_order_id_seq");
	o.at = w->now;
	o.day = w->today;
	o.gtc_days = gtc_days;

	/* FOK that cannot fill in full now, or a market order with nothing to match: rejected */
	if (strcmp(o.tif, "FOK") == 0 && !fok_possible(w, &o))
	{
		o.status = "rejected";
		o.end_reason = "fok_unfillable";
	}
	else
	{
		match(w, &o);
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
				o.escrow += fee_of(o.escrow, w->fee_bps);
				post_move(&w->postings, o.acc, escrow_account(w, w->cny, o.acc), w->cny, o.escrow);
			}
			else
			{
				o.escrow = rest;
				post_move(&w->postings, o.acc, escrow_account(w, w->ins.asset, o.acc), w->ins.asset, rest);
				add_move(w, (LedgerUnitMove) {UNITS_ESCROW, account, o.id, rest, 0, false, NULL}, -1);
			}
		}
	}
	if (strcmp(o.status, "open") == 0 || strcmp(o.status, "partially_filled") == 0)
		own_rest(w, &o);
	order_keep(w, &o);
	/* the next walk of this transaction starts past what this one ended */
	if (w->skip_found)
		skip_set(!o.buy, w->skip_price, w->skip_id);
	if (strcmp(o.status, "open") == 0 || strcmp(o.status, "partially_filled") == 0)
		skip_rest(o.buy, o.price);
	srf_order(rsinfo, o.id, o.status, o.filled, o.turnover);
	MemoryContextSwitchTo(old);
	if (b->write_now)
	{
		batch_write_now();		/* a request id names the order once it is written */
		ledger_request_finish(account, request_id, o.id);
	}
	else
		b->busy = false;
	SPI_finish();
	return (Datum) 0;
}

/* ---- cancel, reference price, the daily close ---- */

/* one billion yuan a tonne: far above any carbon price, far below what the band's fen could not hold */
#define MARKET_MAX_REFERENCE_FEN INT64CONST(100000000000)

/*
 * Resting orders read by `plan` (cancel, recall, close): under the
 * instrument's lock; by key (ledger_run_keyed) when the plan looks orders up
 * by id or by their blocks, not for the day's close, which reads the whole
 * book.
 */
static void
resting_read(MarketWork *w, SPIPlanPtr plan, Datum *values, bool keyed)
{
	if ((keyed ? ledger_run_keyed(plan, values, NULL, false) : SPI_execute_plan(plan, values, NULL, false, 0))
		!= SPI_OK_SELECT)
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
	if (ledger_run_keyed(find_plan, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "order lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order " INT64_FORMAT " does not exist", id)));
	instrument = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ledger_check_acting_owner(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
							  false, "order", id);
	work_init(&w);
	instrument_lock(instrument, &w.ins);
	work_clock(&w);
	ledger_plan_generic(&plan,
				"SELECT " RESTING_COLUMNS " FROM carbon.market_order "
				"WHERE id = $1 AND status IN ('open', 'partially_filled')",
				1, (Oid[]) {INT8OID});
	resting_read(&w, plan, values, true);
	if (w.nresting == 1)
	{
		resting_end(&w, &w.resting[0], w.resting[0].buy_side, "cancelled");
		(void) work_write(&w, "order_cancel", psprintf("cancel order " INT64_FORMAT, id));
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
				"  (SELECT b.escrow_order FROM carbon.unit_block b JOIN carbon.unit_issuance i ON " LEDGER_BLOCK_OF_ISSUANCE " "
				"   WHERE i.report = $1 AND b.state = 'escrow') ORDER BY id",
				1, (Oid[]) {INT8OID});
	resting_read(&w, plan, values, true);
	for (int i = 0; i < w.nresting; i++)
		resting_end(&w, &w.resting[i], false, reason);
	if (w.nresting > 0)
		(void) work_write(&w, "order_cancel", psprintf("orders ended: %s", reason));
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
	/* the band around it, and the orders' escrow within it, stay exact in fen (red-team: 9.2e16 yuan overflowed the band) */
	if (fen > MARKET_MAX_REFERENCE_FEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reference price is at most %lld.00 yuan per tonne", (long long) (MARKET_MAX_REFERENCE_FEN / 100))));
	ledger_spi_connect();
	instrument_lock(instrument, &ins);
	values[0] = CStringGetTextDatum(instrument);
	values[1] = Int64GetDatum(fen);
	ledger_plan_generic(&plan, "UPDATE carbon.instrument SET reference_price = $2, reference_set_at = now() WHERE code = $1",
				2, (Oid[]) {TEXTOID, INT8OID});
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_UPDATE)
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
				"WHERE instrument = $1 AND ended_at IS NULL "
				"  AND ((tif = 'DAY' AND trade_day <= $2) OR expires_at <= $3) ORDER BY id",
				3, (Oid[]) {TEXTOID, DATEOID, TIMESTAMPTZOID});
	resting_read(&w, orders_plan, values, false);
	for (int i = 0; i < w.nresting; i++)
		resting_end(&w, &w.resting[i], w.resting[i].buy_side, "expired");
	ended = w.nresting;
	(void) work_write(&w, "market_close", psprintf("market close %s", DatumGetCString(DirectFunctionCall1(date_out,
																						 DateADTGetDatum(day)))));
	/*
	 * The day's last trade is the reference, unless a later day has traded:
	 * a day closed late never puts back a price older than the last trade.
	 */
	ledger_plan_generic(&day_plan,
				"WITH last AS (SELECT price FROM carbon.trade WHERE instrument = $1 AND trade_day = $2 "
				"              AND NOT EXISTS (SELECT FROM carbon.trade WHERE instrument = $1 AND trade_day > $2) "
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
