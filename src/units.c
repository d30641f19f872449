/*
 * units.c — certified units (核证减排量, asset CER, 1 t per serial) held as
 * serial blocks: issuance, transfer, retirement with certificates,
 * cancellation and recall (api.md §5).
 *
 * Serial blocks are a holdings module of the journal, beside lots: every
 * participant's CER balance is held in blocks of carbon.unit_block, and
 * every issued serial is in exactly one block (an exclusion constraint on
 * issuances; on blocks, a unique key and a check after every write).  A move takes whole blocks oldest vintage first
 * and splits the last one; the history of every block is in
 * carbon.unit_event.
 *
 * Locks, always in this order: the report and project rows (issuance and
 * recall), balances (the posting trigger), then blocks.  Named ranges are
 * checked after the entry is posted, so that no call locks blocks before
 * balances.
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

#define GRAMS_PER_TONNE INT64CONST(1000000)
#define MAX_SERIAL INT64CONST(999999999)

static int16
asset_cer(void)
{
	return ledger_asset_id("CER");
}

static bool
units_hold(int16 asset)
{
	return asset == asset_cer();
}

/* ---- serial ranges ---- */

typedef struct SerialRange
{
	char		region[7];
	int			vintage;
	char		code[33];
	int64		first;
	int64		last;
} SerialRange;

static pg_noinline void
malformed_serial(const char *text)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("malformed serial range \"%s\"", text),
			 errhint("A serial range is REGION-VINTAGE-PROJECTCODE-FIRST-LAST, e.g. 620700-2025-ZYFOREST01-000000001-000000100 "
					 "(6-digit region, 4-digit year, 9-digit numbers, FIRST <= LAST).")));
}

/* Exactly `n` digits at *p, advanced past them. */
static bool
take_digits(const char **p, int n, int64 *value)
{
	int64		v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) (*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*value = v;
	return true;
}

/*
 * A project code: 1 to 32 letters, digits, '_' or '-', beginning and
 * ending with a letter or digit.  Dashes are allowed (codes such as
 * ZY-FOREST-01 are common): a serial is read from both ends, the 9-digit
 * numbers from the right, so the code is what lies between.
 */
static bool
code_valid(const char *code, int n)
{
	if (n < 1 || n > 32 || !isalnum((unsigned char) code[0]) || !isalnum((unsigned char) code[n - 1]))
		return false;
	for (int i = 0; i < n; i++)
		if (!(isalnum((unsigned char) code[i]) || code[i] == '_' || code[i] == '-'))
			return false;
	return true;
}

static void
serial_parse(const char *text, SerialRange *r)
{
	const char *p = text;
	const char *tail;
	int64		v;
	int			n;
	size_t		len = strlen(text);

	/* REGION-VINTAGE- ... -FIRST-LAST: 12 characters on the left, 20 on the right */
	if (len < 6 + 1 + 4 + 1 + 1 + 1 + 9 + 1 + 9)
		malformed_serial(text);
	if (!take_digits(&p, 6, &v) || *p++ != '-')
		malformed_serial(text);
	memcpy(r->region, text, 6);
	r->region[6] = '\0';
	if (!take_digits(&p, 4, &v) || *p++ != '-')
		malformed_serial(text);
	r->vintage = (int) v;
	tail = text + len - 20;		/* -FIRST-LAST */
	n = (int) (tail - p);
	if (*tail != '-' || !code_valid(p, n))
		malformed_serial(text);
	memcpy(r->code, p, n);
	r->code[n] = '\0';
	p = tail + 1;
	if (!take_digits(&p, 9, &r->first) || *p++ != '-' || !take_digits(&p, 9, &r->last) || *p != '\0')
		malformed_serial(text);
	if (r->first < 1 || r->last < r->first)
		malformed_serial(text);
}

static char *
serial_format(const char *region, int vintage, const char *code, int64 first, int64 last)
{
	return psprintf("%s-%d-%s-%09lld-%09lld", region, vintage, code, (long long) first, (long long) last);
}

/* parse_serial(serial) → (region, vintage, project_code, first, last) */
PG_FUNCTION_INFO_V1(ledger_parse_serial);
Datum
ledger_parse_serial(PG_FUNCTION_ARGS)
{
	SerialRange r;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	serial_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &r);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "parse_serial must return a row");
	values[0] = CStringGetTextDatum(r.region);
	values[1] = Int32GetDatum(r.vintage);
	values[2] = CStringGetTextDatum(r.code);
	values[3] = Int64GetDatum(r.first);
	values[4] = Int64GetDatum(r.last);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ---- blocks ---- */

/* Pieces of blocks to move: block id and the serials [first, last] taken from it. */
typedef struct UnitPieces
{
	int			n;
	Datum	   *block;
	Datum	   *first;
	Datum	   *last;
	int64		tonnes;
} UnitPieces;

static void
pieces_from_spi(UnitPieces *p)
{
	p->n = (int) SPI_processed;
	p->block = palloc(sizeof(Datum) * Max(p->n, 1));
	p->first = palloc(sizeof(Datum) * Max(p->n, 1));
	p->last = palloc(sizeof(Datum) * Max(p->n, 1));
	p->tonnes = 0;
	for (int i = 0; i < p->n; i++)
	{
		bool		isnull;

		p->block[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		p->first[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		p->last[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
		p->tonnes += DatumGetInt64(p->last[i]) - DatumGetInt64(p->first[i]) + 1;
	}
}

static pg_noinline void
blocks_not_covered(int64 account, int64 tonnes, int64 found)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_INTEGRITY),
			 errmsg("the serial blocks of account " INT64_FORMAT " do not cover its CER balance", account),
			 errdetail("Needed " INT64_FORMAT " t, blocks hold " INT64_FORMAT " t.", tonnes, found),
			 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
}

/*
 * Take `tonnes` from the account's held blocks, oldest vintage first, and
 * within a vintage first in, first out (the holding order, piece_cmp), the
 * blocks locked; only class `only_class` when not
 * NULL.  The last block taken may be taken in part.
 */
static void
units_take(int64 account, int64 tonnes, const char *only_class, UnitPieces *p)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', only_class ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(account);
	values[1] = Int64GetDatum(tonnes);
	values[2] = only_class ? CStringGetTextDatum(only_class) : (Datum) 0;
	/*
	 * Only the blocks taken are locked, not all the account's: a firm that
	 * trades holds many small blocks, and locking each of them at every take
	 * wrote a lock record per block.  Reading them unlocked is safe because
	 * the account's balance row is locked first (the entry is posted before
	 * its blocks move), and every change to a holder's blocks posts on that
	 * balance: the blocks read are the ones that stay, and a block that
	 * changed anyway fails the count below.  The oldest few blocks are read
	 * first (through the index, in order), and all of them only when those
	 * do not cover the take.
	 */
	ledger_plan_generic(&plan,
				"WITH oldest AS (SELECT id, vintage, since, project, first, last FROM carbon.unit_block "
				"                WHERE account = $1 AND state = 'held' AND ($3::text IS NULL OR class = $3) "
				"                ORDER BY vintage, since, project, first LIMIT $4), "
				"running AS (SELECT id, vintage, since, project, first, last, "
				"            (sum(last - first + 1) OVER (ORDER BY vintage, since, project, first))::bigint "
				"              - (last - first + 1) AS before FROM oldest), "
				"picked AS (SELECT id, vintage, since, project, first, "
				"                  first + least(last - first + 1, $2 - before) - 1 AS upto "
				"           FROM running WHERE before < $2), "
				"locked AS (SELECT b.id FROM carbon.unit_block b JOIN picked p USING (id, first) "
				"           WHERE b.account = $1 AND b.state = 'held' FOR UPDATE OF b) "
				"SELECT id, first, upto FROM picked WHERE id IN (SELECT id FROM locked) "
				"ORDER BY vintage, since, project, first",
				4, (Oid[]) {INT8OID, INT8OID, TEXTOID, INT8OID});
	for (int64 limit = 16;; limit = PG_INT64_MAX)
	{
		values[3] = Int64GetDatum(limit);
		/*
		 * Planned (whenever built) by key, without bitmap scans: the
		 * holder's oldest blocks come from its index in order, and the scan
		 * stops.  A bitmap scan, the planner's pick while the statistics say
		 * a holder has a block or two, reads every block a trading firm has
		 * (hundreds, each on its own page) and sorts them, at every take.
		 */
		if (ledger_run_keyed(plan, values, nulls, false) != SPI_OK_SELECT)
			elog(ERROR, "unit block lookup failed");
		pieces_from_spi(p);
		if (p->tonnes == tonnes || limit == PG_INT64_MAX)
			break;
	}
	if (p->tonnes != tonnes)
		blocks_not_covered(account, tonnes, p->tonnes);
}

/*
 * A reversal: the very serials that entry `reversed` moved to the account,
 * all of them still there, or CL007 (they have moved on since).
 */
static void
units_take_entry(int64 account, int64 tonnes, int64 reversed, UnitPieces *p)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2] = {Int64GetDatum(account), Int64GetDatum(reversed)};

	ledger_plan_generic(&plan,
				"SELECT id, first, last FROM carbon.unit_block "
				"WHERE account = $1 AND state = 'held' AND entry_id = $2 ORDER BY vintage, since, project, first FOR UPDATE",
				2, (Oid[]) {INT8OID, INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "unit block lookup failed");
	pieces_from_spi(p);
	if (p->tonnes != tonnes)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("the units entry " INT64_FORMAT " moved are no longer all with account " INT64_FORMAT,
						reversed, account),
				 errdetail("It still holds " INT64_FORMAT " of the " INT64_FORMAT " t, with their serials.",
						   p->tonnes, tonnes),
				 errhint("Reverse the later moves first, or transfer the units back.")));
}

/*
 * Move the pieces: each to `holder` (state held), or into escrow for the
 * sell order `escrow_order`, or retired / cancelled (by `holder` when given:
 * a buy that retires, else by the account that held them); what is left of
 * a split block stays as it was.  Writes the history (a split, then
 * the move) and returns the moved serial ranges as text[] (oldest first).
 */
static Datum
units_move(const UnitPieces *p, int64 holder, const char *state, int64 entry_id, const char *event,
		   const char *reference, int64 escrow_order)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', holder ? ' ' : 'n', ' ', ' ', ' ', reference ? ' ' : 'n',
	escrow_order ? ' ' : 'n'};
	bool		isnull;
	Datum		serials;

	values[0] = ledger_int8_array(p->block, p->n);
	values[1] = ledger_int8_array(p->first, p->n);
	values[2] = ledger_int8_array(p->last, p->n);
	values[3] = Int64GetDatum(holder);
	values[4] = CStringGetTextDatum(state);
	values[5] = Int64GetDatum(entry_id);
	values[6] = CStringGetTextDatum(event);
	values[7] = reference ? CStringGetTextDatum(reference) : (Datum) 0;
	values[8] = Int64GetDatum(escrow_order);
	ledger_plan_generic(&plan,
				"WITH w AS (SELECT * FROM unnest($1, $2, $3) WITH ORDINALITY AS w(id, f, l, k)), "
	/* deleted first: the parts below take the same serials (exclusion constraint) */
				"gone AS (DELETE FROM carbon.unit_block b USING w, carbon.unit_issuance i, carbon.project pr "
				"         WHERE b.id = w.id AND i.id = b.issuance AND pr.id = b.project "
				"         RETURNING b.issuance, b.project, b.vintage, b.class, b.first, b.last, b.account, b.state, "
				"                   b.escrow_order, b.entry_id, b.since, w.f, w.l, w.k, i.region, pr.code), "
				"parts AS (SELECT issuance, project, vintage, class, f AS first, l AS last, "
				"                 coalesce($4, account) AS account, $5 AS state, "
				"                 $9::bigint AS escrow_order, $6 AS entry_id, now() AS since, true AS moved, k, "
				"                 region, code FROM gone "
				"          UNION ALL SELECT issuance, project, vintage, class, first, f - 1, account, state, "
				"                 escrow_order, entry_id, since, false, k, region, code FROM gone WHERE first < f "
				"          UNION ALL SELECT issuance, project, vintage, class, l + 1, last, account, state, "
				"                 escrow_order, entry_id, since, false, k, region, code FROM gone WHERE l < last), "
				"ins AS (INSERT INTO carbon.unit_block (issuance, project, vintage, class, first, last, account, "
				"                                       state, entry_id, since, escrow_order) "
				"        SELECT issuance, project, vintage, class, first, last, account, state, entry_id, since, "
				"               escrow_order FROM parts), "
				"hist AS (INSERT INTO carbon.unit_event (issuance, project, first, last, event, from_account, "
				"                                        to_account, entry_id, reference) "
				"         SELECT issuance, project, first, last, event, from_account, to_account, $6, reference "
				"         FROM (SELECT k, 0 AS o, issuance, project, first, last, 'split' AS event, account AS from_account, "
				"                      account AS to_account, "
				"                      'split off ' || carbon.serial_text(region, vintage, code, f, l) AS reference "
				"               FROM gone WHERE first < f OR l < last "
				"               UNION ALL "
				"               SELECT k, 1, issuance, project, f, l, $7, account, $4, $8 FROM gone) h "
				"         ORDER BY k, o) "
				"SELECT coalesce(array_agg(carbon.serial_text(region, vintage, code, first, last) ORDER BY k), '{}') "
				"FROM parts WHERE moved",
				9, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8OID, TEXTOID, INT8OID, TEXTOID, TEXTOID,
				INT8OID});
	/* by key: the blocks named, not a scan of the registry (a plan built while it was small) */
	if (ledger_run_keyed(plan, values, nulls, false) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "unit block move failed");
	serials = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return datumCopy(serials, false, -1);
}

/*
 * The market's unit moves of one statement's orders (market.c), after its
 * entry is posted, in order:
 *   escrow:  the seller's class I units, oldest first, into escrow for its order;
 *   release: an order's escrow back to the seller;
 *   deliver: from an order's escrow, or (order 0) straight from the
 *            seller's class I units, to the buyer, or retired for it.
 *
 * The moves run in memory over pools of pieces: a seller's held class I
 * units and a sell order's escrow, each sorted oldest first (the holding
 * order, piece_cmp) as the blocks are, loaded once for all the moves (a
 * seller's oldest block, 16 more at a time only if a take reaches past
 * what is loaded).
 * Every take is a prefix of its pool (whole pieces, oldest first), and of
 * the last piece it takes the top serials: what is left of a stored block
 * keeps its row, only its last lowered (no index entry written, a split
 * less in the history: B4 wrote a third of its blocks and a fifth of its
 * history rows for those remainders).  Then what changed is written: the
 * blocks that shrank are updated, the stored blocks taken whole are
 * deleted, the pieces the batch made (what was moved) are inserted, and
 * the history of every move is appended.  Units a move delivers and a later move of
 * the same statement takes on (a buyer who sells, an escrow made and
 * filled) never become a row of their own: about half the blocks B4 used
 * to write.  serials[i] is what move i moved (text[], oldest first).
 */
typedef struct Piece
{
	int64		block;			/* the stored block it is (part of); 0 for one this batch made */
	bool		shrunk;			/* that stored block's top was taken: it stays, with a lower last */
	int64		issuance;
	int64		project;
	int32		vintage;
	const char *class;
	const char *region;			/* of the issuance, and the project's code: for serials */
	const char *code;
	int64		first;
	int64		last;
	int64		account;
	const char *state;
	int64		escrow_order;	/* 0 unless state escrow */
	int64		entry_id;
	TimestampTz since;
	/*
	 * One this batch made: the stored block it was carved from, and where
	 * that begins.  While that block stays (its top taken, not the whole of
	 * it), the new one's neighbour check starts there (ledger_overlap_row).
	 */
	int64		root;
	int64		root_first;
} Piece;

typedef struct Pool
{
	int64		account;		/* a seller's held class I units, or */
	int64		order;			/* the escrow of this sell order */
	bool		source;			/* a move takes from it */
	bool		complete;		/* every stored block of the pool is loaded */
	bool		loaded;			/* ... some of them are: the oldest, up to `boundary` */
	Piece		boundary;		/* the last stored block loaded (when loaded): its key in the holding order */
	int			head;			/* pieces before it are gone */
	int			n;
	int			cap;
	Piece	   *p;
} Pool;

/* The history rows: issuance, project, first, last, event, from, to, reference. */
static const Oid event_types[8] = {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID, TEXTOID};

/* A block's columns as carbon.unit_block takes them. */
static const Oid block_types[11] = {INT8OID, INT8OID, INT4OID, TEXTOID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID,
TIMESTAMPTZOID, INT8OID};

/*
 * The holding order, in which a holder's units leave it (a sale, an escrow,
 * a transfer, a retirement): oldest vintage first (api.md), then first in,
 * first out by `since`, when the holder got the block, then project and
 * serial, so that the order is total.  unit_block_held_idx is in this
 * order.  First in, first out keeps a holding whole: a firm's issued units
 * leave before the small blocks it bought since, where serial order had
 * every sale of a holder whose purchases numbered below its own units cut
 * them up (1.7 pieces a trade and 3 an escrow in B5, 1 each now).
 */
static int
piece_cmp(const Piece *a, const Piece *b)
{
	if (a->vintage != b->vintage)
		return a->vintage < b->vintage ? -1 : 1;
	if (a->since != b->since)
		return a->since < b->since ? -1 : 1;
	if (a->project != b->project)
		return a->project < b->project ? -1 : 1;
	return a->first < b->first ? -1 : a->first > b->first ? 1 : 0;
}

/* Put `pc` in its place (oldest first) among the pool's pieces. */
static void
pool_add(Pool *pool, const Piece *pc)
{
	int			lo = pool->head,
				hi = pool->n;

	if (pool->n == pool->cap)
	{
		pool->cap = Max(8, pool->cap * 2);
		pool->p = pool->p ? repalloc(pool->p, sizeof(Piece) * pool->cap) : palloc(sizeof(Piece) * pool->cap);
	}
	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (piece_cmp(&pool->p[mid], pc) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&pool->p[lo + 1], &pool->p[lo], sizeof(Piece) * (pool->n - lo));
	pool->p[lo] = *pc;
	pool->n++;
}

/*
 * A piece read from the table into its pool: stored blocks are read
 * oldest first, so the last one read is the boundary of what is loaded.
 */
static void
pool_add_read(Pool *pool, const Piece *pc)
{
	pool_add(pool, pc);
	pool->boundary = *pc;
}

/* A pool's key, and where it is, in a batch's index of its pools. */
typedef struct PoolKey
{
	int64		account;
	int64		order;
} PoolKey;

typedef struct PoolSlot
{
	PoolKey		key;
	int			at;
} PoolSlot;

/*
 * The pool of an account's holding (order 0) or of an order's escrow,
 * added when new.  index: a hash of the pools by key, for a batch of many
 * moves (B4: a thousand orders' moves looked up among hundreds of pools,
 * 1 % of a B4 order), or NULL to look through them.
 */
static Pool *
pool_find(Pool *pools, int *npools, HTAB *index, int64 account, int64 order)
{
	PoolKey		key = {.account = account, .order = order};
	PoolSlot   *slot = NULL;
	bool		found;

	if (index == NULL)
	{
		for (int k = 0; k < *npools; k++)
			if (pools[k].account == account && pools[k].order == order)
				return &pools[k];
	}
	else
	{
		slot = hash_search(index, &key, HASH_ENTER, &found);
		if (found)
			return &pools[slot->at];
		slot->at = *npools;
	}
	pools[*npools] = (Pool) {.account = account, .order = order};
	return &pools[(*npools)++];
}

/* The columns every block query below returns, from b (unit_block). */
#define BLOCK_COLUMNS "b.id, b.issuance, b.project, b.vintage, b.class, b.first, b.last, " \
	"b.account, b.state, coalesce(b.escrow_order, 0), b.entry_id, b.since"

/*
 * An issuance's region and its project's code, which make its serials:
 * written once by issue_units and never changed, so kept per backend
 * instead of joined to every block read (two index probes a block).
 */
typedef struct IssuanceNames
{
	int64		issuance;		/* hash key */
	char	   *region;
	char	   *code;
} IssuanceNames;

static const IssuanceNames *
issuance_names(int64 issuance)
{
	static HTAB *names = NULL;
	static SPIPlanPtr plan = NULL;
	IssuanceNames *n;
	bool		found;

	if (names == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(int64), .entrysize = sizeof(IssuanceNames), .hcxt = CacheMemoryContext};

		names = hash_create("carbon issuance names", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	n = hash_search(names, &issuance, HASH_FIND, NULL);
	if (n == NULL)
	{
		Datum		v[1] = {Int64GetDatum(issuance)};
		char	   *region,
				   *code;

		ledger_plan_generic(&plan,
							"SELECT i.region, pr.code FROM carbon.unit_issuance i JOIN carbon.project pr ON pr.id = i.project "
							"WHERE i.id = $1",
							1, (Oid[]) {INT8OID});
		/* read-write: a fresh snapshot, that sees an issuance of the same statement */
		if (ledger_run_keyed(plan, v, NULL, false) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "issuance " INT64_FORMAT " not found", issuance);
		region = MemoryContextStrdup(CacheMemoryContext, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		code = MemoryContextStrdup(CacheMemoryContext, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		n = hash_search(names, &issuance, HASH_ENTER, &found);
		n->region = region;
		n->code = code;
	}
	return n;
}

static void
piece_from_row(Piece *pc, HeapTuple tup, TupleDesc desc, int at)
{
	bool		isnull;
	const IssuanceNames *names;

	pc->block = DatumGetInt64(SPI_getbinval(tup, desc, at, &isnull));
	pc->shrunk = false;
	pc->issuance = DatumGetInt64(SPI_getbinval(tup, desc, at + 1, &isnull));
	pc->project = DatumGetInt64(SPI_getbinval(tup, desc, at + 2, &isnull));
	pc->vintage = DatumGetInt32(SPI_getbinval(tup, desc, at + 3, &isnull));
	pc->class = SPI_getvalue(tup, desc, at + 4);
	pc->first = DatumGetInt64(SPI_getbinval(tup, desc, at + 5, &isnull));
	pc->last = DatumGetInt64(SPI_getbinval(tup, desc, at + 6, &isnull));
	pc->account = DatumGetInt64(SPI_getbinval(tup, desc, at + 7, &isnull));
	pc->state = SPI_getvalue(tup, desc, at + 8);
	pc->escrow_order = DatumGetInt64(SPI_getbinval(tup, desc, at + 9, &isnull));
	pc->entry_id = DatumGetInt64(SPI_getbinval(tup, desc, at + 10, &isnull));
	pc->since = DatumGetTimestampTz(SPI_getbinval(tup, desc, at + 11, &isnull));
	names = issuance_names(pc->issuance);
	pc->region = names->region;
	pc->code = names->code;
}

/*
 * A seller's held blocks are read a page at a time, oldest first: a
 * holder of thousands of fragments is never read whole for a few tonnes.
 */
#define HELD_PAGE	16
/* ... after a first page of the oldest block alone (pools_load) */
#define HELD_FIRST	1

/* ---- blocks straight from their indexes (ledger_scan_index) ---- */

/* the columns of unit_block a piece is made of, in Piece's order */
static const char *const block_read_columns[12] = {"id", "issuance", "project", "vintage", "class", "first", "last",
	"account", "state", "escrow_order", "entry_id", "since"};

/*
 * What a walk of one index keeps: rows in `state` (and of class I, or not
 * of class I), past a boundary if there is one, added to `pool` (which
 * moves its boundary to the last row read), or their tonnes summed.  The partial indexes say the state already; it is checked
 * all the same, as book_take does for the book.
 */
typedef struct BlockTake
{
	const char *state;
	int			class_i;		/* 1: class I only; 0: not class I; -1: any */
	const Piece *after;			/* skip rows up to this one in the holding order (a pool's boundary), or NULL */
	Pool	   *pool;			/* NULL: only sum the tonnes */
	int64		tonnes;
	AttrNumber	att[12];		/* block_read_columns, found at the first row */
} BlockTake;

static bool
block_take(TupleTableSlot *slot, void *arg)
{
	BlockTake  *bt = (BlockTake *) arg;
	Datum	   *v = slot->tts_values;
	bool	   *isnull = slot->tts_isnull;
	const IssuanceNames *names;
	Piece		pc;

	if (bt->att[0] == InvalidAttrNumber)
		ledger_attnums(slot->tts_tupleDescriptor, block_read_columns, lengthof(block_read_columns), bt->att, "unit_block");
#define COL(c) (bt->att[c] - 1)
	pc.state = TextDatumGetCString(v[COL(8)]);
	if (strcmp(pc.state, bt->state) != 0)
		return false;
	pc.class = TextDatumGetCString(v[COL(4)]);
	if (bt->class_i >= 0 && (strcmp(pc.class, "I") == 0) != (bt->class_i == 1))
		return false;
	pc.vintage = DatumGetInt32(v[COL(3)]);
	pc.project = DatumGetInt64(v[COL(2)]);
	pc.first = DatumGetInt64(v[COL(5)]);
	pc.since = DatumGetTimestampTz(v[COL(11)]);
	if (bt->after && piece_cmp(&pc, bt->after) <= 0)
		return false;
	pc.last = DatumGetInt64(v[COL(6)]);
	if (bt->pool == NULL)
	{
		bt->tonnes += pc.last - pc.first + 1;
		return true;
	}
	pc.block = DatumGetInt64(v[COL(0)]);
	pc.shrunk = false;
	pc.issuance = DatumGetInt64(v[COL(1)]);
	pc.account = DatumGetInt64(v[COL(7)]);
	pc.escrow_order = isnull[COL(9)] ? 0 : DatumGetInt64(v[COL(9)]);
	pc.entry_id = DatumGetInt64(v[COL(10)]);
#undef COL
	names = issuance_names(pc.issuance);
	pc.region = names->region;
	pc.code = names->code;
	pool_add_read(bt->pool, &pc);
	return true;
}

/*
 * Blocks of `key` (an account or an escrow's order) from `index`, oldest
 * first, up to `limit` of them: the rows taken, or -1 when the table is
 * not plain (rules, row-level security): then the caller's SQL reads them.
 * lockmode: the table's and index's, RowExclusiveLock where the caller
 * writes blocks (ledger_read_by_key_to_write, append.c).
 */
static int
blocks_scan(const char *index, int64 key, BlockTake *bt, int limit, LOCKMODE lockmode)
{
	Datum		keys[2] = {Int64GetDatum(key), Int32GetDatum(bt->after ? bt->after->vintage : 0)};
	uint16		strategies[2] = {BTEqualStrategyNumber, BTGreaterEqualStrategyNumber};

	memset(bt->att, 0, sizeof(bt->att));
	return ledger_scan_index("unit_block", index, bt->after ? 2 : 1, keys, strategies, limit, block_take, bt,
							 NULL, lockmode);
}

/*
 * Load the stored blocks of the source pools: every escrow block of the
 * orders, and the oldest held class I block of each account (or, with
 * `only`, the next HELD_PAGE of one pool past its boundary).  Each
 * holder's oldest blocks come from its index in order, an escrow's from its
 * own, walked straight (blocks_scan: no statement under the book's lock);
 * when the table is not plain, by the same reads in SQL, planned by key
 * (ledger_run_keyed, as units_take).
 */
static void
pools_load(Pool *pools, int npools, Pool *only)
{
	static SPIPlanPtr escrow_plan = NULL,
				held_plan = NULL,
				rest_plan = NULL;
	Datum	   *ids = palloc(sizeof(Datum) * Max(npools, 1));
	bool	   *by_sql;			/* the pools the SQL below reads (the table is not plain) */
	int			nids = 0;
	SPITupleTable *tt;			/* the rows a loop reads: piece_from_row may run a lookup of its own */

	if (only)
	{
		Piece		b = only->boundary;	/* a copy: the rows read move the pool's boundary on */
		Datum		v[6] = {Int64GetDatum(only->account), Int32GetDatum(b.vintage), TimestampTzGetDatum(b.since),
		Int64GetDatum(b.project), Int64GetDatum(b.first), Int64GetDatum(HELD_PAGE)};
		BlockTake	bt = {.state = "held", .class_i = 1, .after = &b, .pool = only};
		int			got = blocks_scan("unit_block_held_idx", only->account, &bt, HELD_PAGE, RowExclusiveLock);

		if (got >= 0)
		{
			only->complete = got < HELD_PAGE;
			return;
		}
		ledger_plan_generic(&rest_plan,
							"SELECT " BLOCK_COLUMNS " FROM carbon.unit_block b "
							"WHERE b.account = $1 AND b.state = 'held' AND b.class = 'I' "
							"AND (b.vintage, b.since, b.project, b.first) > ($2, $3, $4, $5) "
							"ORDER BY b.vintage, b.since, b.project, b.first LIMIT $6",
							6, (Oid[]) {INT8OID, INT4OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID});
		if (ledger_run_keyed(rest_plan, v, NULL, false) != SPI_OK_SELECT)
			elog(ERROR, "unit block lookup failed");
		tt = SPI_tuptable;
		for (uint64 r = 0; r < tt->numvals; r++)
		{
			Piece		pc;

			piece_from_row(&pc, tt->vals[r], tt->tupdesc, 1);
			pool_add_read(only, &pc);
		}
		only->complete = tt->numvals < HELD_PAGE;
		return;
	}
	for (int k = 0; k < npools; k++)
		if (pools[k].source && pools[k].order)
		{
			BlockTake	bt = {.state = "escrow", .class_i = -1, .pool = &pools[k]};

			if (blocks_scan("unit_block_escrow_idx", pools[k].order, &bt, INT_MAX, RowExclusiveLock) < 0)
				ids[nids++] = Int64GetDatum(pools[k].order);
		}
	if (nids > 0)
	{
		Datum		v[1] = {ledger_int8_array(ids, nids)};

		ledger_plan_generic(&escrow_plan,
							"SELECT " BLOCK_COLUMNS " FROM carbon.unit_block b "
							"WHERE b.escrow_order = ANY ($1) AND b.state = 'escrow'",
							1, (Oid[]) {INT8ARRAYOID});
		if (ledger_run_keyed(escrow_plan, v, NULL, false) != SPI_OK_SELECT)
			elog(ERROR, "unit escrow lookup failed");
		tt = SPI_tuptable;
		for (uint64 r = 0; r < tt->numvals; r++)
		{
			Piece		pc;

			piece_from_row(&pc, tt->vals[r], tt->tupdesc, 1);
			pool_add(pool_find(pools, &npools, NULL, 0, pc.escrow_order), &pc);
		}
	}
	/*
	 * Each seller's first page is its oldest block alone: in the holding
	 * order (first in, first out) that is usually a holding larger than
	 * anything one statement sells (B4: the seller's first page was up to
	 * 14 blocks, 13 of them read for nothing, 4 % of its time).  A take that
	 * reaches past it reads the next HELD_PAGE (a page of at most as many
	 * blocks as the tonnes it takes, at least one tonne each, did the same
	 * in one read but fetched every small block behind a large one).
	 */
	by_sql = palloc0(sizeof(bool) * Max(npools, 1));
	nids = 0;
	for (int k = 0; k < npools; k++)
		if (pools[k].source && pools[k].account)
		{
			BlockTake	bt = {.state = "held", .class_i = 1, .pool = &pools[k]};
			int			got;

			got = blocks_scan("unit_block_held_idx", pools[k].account, &bt, HELD_FIRST, RowExclusiveLock);
			if (got >= 0)
			{
				pools[k].loaded = true, pools[k].complete = got < HELD_FIRST;
				continue;
			}
			by_sql[k] = true;
			ids[nids++] = Int64GetDatum(pools[k].account);
		}
	if (nids > 0)
	{
		Datum		v[2] = {ledger_int8_array(ids, nids), Int64GetDatum(HELD_FIRST)};
		int		   *count = palloc0(sizeof(int) * npools);

		ledger_plan_generic(&held_plan,
							"SELECT a.account, b.* FROM unnest($1) AS a(account), LATERAL "
							"  (SELECT " BLOCK_COLUMNS " FROM carbon.unit_block b "
							"   WHERE b.account = a.account AND b.state = 'held' AND b.class = 'I' "
							"   ORDER BY b.vintage, b.since, b.project, b.first LIMIT $2) b",
							2, (Oid[]) {INT8ARRAYOID, INT8OID});
		if (ledger_run_keyed(held_plan, v, NULL, false) != SPI_OK_SELECT)
			elog(ERROR, "unit block lookup failed");
		tt = SPI_tuptable;
		for (uint64 r = 0; r < tt->numvals; r++)
		{
			Piece		pc;
			Pool	   *pool;

			piece_from_row(&pc, tt->vals[r], tt->tupdesc, 2);
			pool = pool_find(pools, &npools, NULL, pc.account, 0);
			pool_add_read(pool, &pc);	/* oldest first per account */
			count[pool - pools]++;
		}
		for (int k = 0; k < npools; k++)
			if (by_sql[k])
				pools[k].loaded = true, pools[k].complete = count[k] < HELD_FIRST;
	}
	for (int k = 0; k < npools; k++)
		if (pools[k].order)
			pools[k].loaded = pools[k].complete = true;	/* an escrow is loaded whole */
}

static void
event_add(LedgerColumns *ev, const Piece *pc, int64 first, int64 last, const char *event, int64 from, int64 to,
		  const char *reference)
{
	ledger_columns_room(ev);
	ledger_col_set(ev, 0, Int64GetDatum(pc->issuance), false);
	ledger_col_set(ev, 1, Int64GetDatum(pc->project), false);
	ledger_col_set(ev, 2, Int64GetDatum(first), false);
	ledger_col_set(ev, 3, Int64GetDatum(last), false);
	ledger_col_set(ev, 4, CStringGetTextDatum(event), false);
	ledger_col_set(ev, 5, Int64GetDatum(from), false);
	ledger_col_set(ev, 6, Int64GetDatum(to), to == 0);
	ledger_col_set(ev, 7, reference ? CStringGetTextDatum(reference) : (Datum) 0, reference == NULL);
	ev->n++;
}

/* A new block carved from a stored one that stays (root), for carved_floors. */
typedef struct Carved
{
	int64		root;			/* 0: from none, or from one that goes */
	int64		key;			/* its first serial's key */
	int			row;
} Carved;

static int
carved_cmp(const void *a, const void *b)
{
	const Carved *x = a,
			   *y = b;

	if (x->root != y->root)
		return x->root < y->root ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/*
 * Where each new block's neighbour check may start (ledger_overlap_row):
 * the block just below it that is there when it is checked.  A batch
 * carves one stored block's top into several (B4: a seller's holding, a
 * piece an order): the lowest new one's nearest block below is the stored
 * block, each other's the new one just below it, so that no check reads
 * all the pieces below it.  floors[] comes in with the stored block's
 * beginning for each new one carved from a block that stays.
 */
static void
carved_floors(Carved *c, int n, int64 *floors)
{
	qsort(c, n, sizeof(Carved), carved_cmp);
	for (int i = 1; i < n; i++)
		if (c[i].root != 0 && c[i].root == c[i - 1].root)
			floors[c[i].row] = c[i - 1].key;
}

static void blocks_changed(int ngone);
static void blocks_shrink(Datum *ids, Datum *lasts, int n);
static void moves_store_by_sql(LedgerColumns *blocks, Datum *gone, int ngone);
static void events_store(const LedgerColumns *ev, int64 entry_id);

/*
 * What the moves changed: the stored blocks taken from the top keep their
 * rows with a lower last, the blocks taken whole go, the pieces the batch
 * made come, and the history is appended.
 */
static void
moves_store(Pool *pools, int npools, const Piece *retired, int nretired, Datum *gone, int ngone,
			const LedgerColumns *ev, int64 entry_id)
{
	int			cap = nretired;
	LedgerColumns blocks;
	Datum	   *shrunk_id,
			   *shrunk_last;
	int64	   *floors;
	Carved	   *carved;
	int64	   *gone_sorted = NULL;
	int			nshrunk = 0;
	int64		removed;

	for (int k = 0; k < npools; k++)
		cap += pools[k].n - pools[k].head;
	ledger_columns_init(&blocks, 11, block_types, cap);
	shrunk_id = palloc(sizeof(Datum) * Max(cap, 1));
	shrunk_last = palloc(sizeof(Datum) * Max(cap, 1));
	floors = palloc(sizeof(int64) * Max(cap, 1));
	carved = palloc(sizeof(Carved) * Max(cap, 1));
	if (ngone > 0)
	{
		gone_sorted = palloc(sizeof(int64) * ngone);
		for (int g = 0; g < ngone; g++)
			gone_sorted[g] = DatumGetInt64(gone[g]);
		qsort(gone_sorted, ngone, sizeof(int64), ledger_int64_cmp);
	}
	for (int k = 0; k <= npools; k++)
	{
		const Piece *p = k < npools ? pools[k].p + pools[k].head : retired;
		int			m = k < npools ? pools[k].n - pools[k].head : nretired;

		for (int j = 0; j < m; j++, p++)
		{
			if (p->block != 0)
			{
				/* a stored block no move took whole: changed only if its top went */
				if (p->shrunk)
				{
					shrunk_id[nshrunk] = Int64GetDatum(p->block);
					shrunk_last[nshrunk++] = Int64GetDatum(p->last);
				}
				continue;
			}
			ledger_col_set(&blocks, 0, Int64GetDatum(p->issuance), false);
			ledger_col_set(&blocks, 1, Int64GetDatum(p->project), false);
			ledger_col_set(&blocks, 2, Int32GetDatum(p->vintage), false);
			ledger_col_set(&blocks, 3, CStringGetTextDatum(p->class), false);
			ledger_col_set(&blocks, 4, Int64GetDatum(p->first), false);
			ledger_col_set(&blocks, 5, Int64GetDatum(p->last), false);
			ledger_col_set(&blocks, 6, Int64GetDatum(p->account), false);
			ledger_col_set(&blocks, 7, CStringGetTextDatum(p->state), false);
			ledger_col_set(&blocks, 8, Int64GetDatum(p->entry_id), false);
			ledger_col_set(&blocks, 9, TimestampTzGetDatum(p->since), false);
			ledger_col_set(&blocks, 10, Int64GetDatum(p->escrow_order), p->escrow_order == 0);
			/* carved from a block that stays: where that begins, for the check */
			carved[blocks.n].row = blocks.n;
			carved[blocks.n].root = p->root != 0 && p->root_first < p->first &&
				(ngone == 0 || bsearch(&p->root, gone_sorted, ngone, sizeof(int64), ledger_int64_cmp) == NULL)
				? p->root : 0;
			carved[blocks.n].key = LEDGER_SERIAL_KEY(p->project, p->first);
			floors[blocks.n] = carved[blocks.n].root ? LEDGER_SERIAL_KEY(p->project, p->root_first) : 0;
			blocks.n++;
		}
	}
	if (blocks.n == 0 && ngone == 0 && nshrunk == 0 && ev->n == 0)
		return;
	carved_floors(carved, blocks.n, floors);

	/* first the blocks that shrink: the new ones' neighbour checks must see them end lower */
	if (nshrunk > 0)
		blocks_shrink(shrunk_id, shrunk_last, nshrunk);

	/*
	 * Straight into the table (append.c) when it is as the extension made
	 * it: the blocks taken whole go, then the pieces come, checked against
	 * their neighbours by hand as unit_block_no_overlap would (invariants.c).
	 */
	removed = ngone > 0 ? ledger_remove_by_id("unit_block", gone, ngone) : 0;
	if (removed >= 0)
	{
		static const char *const block_columns[] = {"issuance", "project", "vintage", "class", "first", "last",
		"account", "state", "entry_id", "since", "escrow_order"};

		StaticAssertStmt(lengthof(block_columns) == lengthof(block_types), "block columns");
		if (removed != ngone)
			blocks_changed(ngone);
		ledger_append_checked("unit_block", lengthof(block_columns), block_columns, blocks.v, blocks.null, blocks.n,
							  true, floors);
	}
	else
		moves_store_by_sql(&blocks, gone, ngone);
	events_store(ev, entry_id);
}

/* What blocks_shrink's check on each row knows: the rows, and the last one it saw. */
typedef struct ShrinkCheck
{
	const Datum *ids;
	int			last_row;
} ShrinkCheck;

/*
 * blocks_shrink's check on each row it updates: a row another transaction
 * changed since it was read (the update is handed its newer version: a
 * second call for the same row) is not ours to shrink.
 */
static void
block_shrink_once(int row, Datum *values pg_attribute_unused(), bool *isnull pg_attribute_unused(), void *arg)
{
	ShrinkCheck *sc = (ShrinkCheck *) arg;

	if (row == sc->last_row)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INTEGRITY),
				 errmsg("serial blocks changed while the market moved them"),
				 errdetail("Block " INT64_FORMAT " was changed by another transaction after it was read.",
						   DatumGetInt64(sc->ids[row])),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
	sc->last_row = row;
}

/*
 * The stored blocks whose top serials moved: each keeps its row, id and
 * history, with `last` lowered (no indexed column changes, so the update
 * is heap-only where the page has room).  Straight in the heap when the
 * table is plain for it, else by SQL.
 */
static void
blocks_shrink(Datum *ids, Datum *lasts, int n)
{
	static const char *const columns[] = {"last"};
	Datum	   *keys[] = {ids};
	Datum	   *values[] = {lasts};
	bool	   *nulls[] = {palloc0(sizeof(bool) * n)};
	ShrinkCheck sc = {.ids = ids, .last_row = -1};
	int64		updated;

	updated = ledger_update_by_key_with("unit_block", 1, keys, 1, columns, values, nulls, n, NULL,
										block_shrink_once, &sc);
	if (updated < 0)
	{
		static SPIPlanPtr plan = NULL;
		Datum		args[2] = {ledger_int8_array(ids, n), ledger_int8_array(lasts, n)};

		ledger_plan_generic(&plan,
							"UPDATE carbon.unit_block b SET last = u.last FROM unnest($1, $2) AS u(id, last) "
							"WHERE b.id = u.id AND b.last > u.last",
							2, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID});
		if (ledger_run_keyed(plan, args, NULL, false) != SPI_OK_UPDATE)
			elog(ERROR, "unit block shrink failed");
		updated = SPI_processed;
	}
	if (updated != n)
		blocks_changed(n);
}

/* The blocks read are not all there: something moved them under our locks. */
static void
blocks_changed(int ngone)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_INTEGRITY),
			 errmsg("serial blocks changed while the market moved them"),
			 errdetail("%d blocks were read, fewer were still there.", ngone),
			 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
}

/* moves_store()'s blocks by SQL, for a table a DBA has changed (a DELETE trigger, say). */
static void
moves_store_by_sql(LedgerColumns *blocks, Datum *gone, int ngone)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[12];
	bool		isnull;

	values[0] = ledger_int8_array(gone, ngone);
	ledger_columns_arrays(blocks, values + 1);
	ledger_plan_generic(&plan,
						"WITH gone AS (DELETE FROM carbon.unit_block WHERE id = ANY ($1) RETURNING 1), "
						"came AS (INSERT INTO carbon.unit_block (issuance, project, vintage, class, first, last, "
						"                                        account, state, entry_id, since, escrow_order) "
						"         SELECT * FROM unnest($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING 1) "
	/* evaluated in order: the delete runs to its end before the insert begins */
						"SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM came)",
						12, (Oid[]) {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
						INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID});
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "unit block move failed");
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != ngone)
		blocks_changed(ngone);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) != blocks->n)
		elog(ERROR, "unit block move failed");
}

/* The history, straight into its table (append.c), all under the entry. */
static void
events_store(const LedgerColumns *ev, int64 entry_id)
{
	static const char *const columns[] = {"issuance", "project", "first", "last", "event", "from_account",
	"to_account", "reference", "entry_id"};
	Datum	   *cols[lengthof(columns)];
	bool	   *nulls[lengthof(columns)];

	StaticAssertStmt(lengthof(event_types) == lengthof(columns) - 1, "event columns");
	memcpy(cols, ev->v, sizeof(Datum *) * ev->ncols);
	memcpy(nulls, ev->null, sizeof(bool *) * ev->ncols);
	cols[ev->ncols] = palloc(sizeof(Datum) * Max(ev->n, 1));
	nulls[ev->ncols] = palloc0(sizeof(bool) * Max(ev->n, 1));
	for (int i = 0; i < ev->n; i++)
		cols[ev->ncols][i] = Int64GetDatum(entry_id);
	ledger_append("unit_event", lengthof(columns), columns, cols, nulls, ev->n);
}

void
ledger_units_market(int n, const LedgerUnitMove *moves, int64 entry_id, Datum *serials)
{
	Pool	   *pools = palloc0(sizeof(Pool) * (2 * n + 1));
	int			npools = 0;
	int		   *src_of = palloc(sizeof(int) * Max(n, 1));
	int		   *dst_of = palloc(sizeof(int) * Max(n, 1));
	Piece	   *retired = palloc(sizeof(Piece) * Max(n, 1));
	int			nretired = 0,
				capretired = Max(n, 1);
	Datum	   *gone = NULL;
	int			ngone = 0,
				capgone = 0;
	LedgerColumns ev;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum	   *segs = NULL;
	int			capsegs = 0;
	HTAB	   *index = NULL;

	if (n > 8)
	{
		HASHCTL		ctl = {.keysize = sizeof(PoolKey), .entrysize = sizeof(PoolSlot), .hcxt = CurrentMemoryContext};

		index = hash_create("carbon unit pools", 2 * n + 1, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/* the pools: each move's source and destination (none for units retired) */
	for (int i = 0; i < n; i++)
	{
		const LedgerUnitMove *m = &moves[i];
		Pool	   *s;

		if (m->kind == UNITS_ESCROW || (m->kind == UNITS_DELIVER && m->order == 0))
			s = pool_find(pools, &npools, index, m->seller, 0);
		else
			s = pool_find(pools, &npools, index, 0, m->order);
		s->source = true;
		src_of[i] = s - pools;
		dst_of[i] = m->kind == UNITS_ESCROW ? pool_find(pools, &npools, index, 0, m->order) - pools
			: m->kind == UNITS_RELEASE ? pool_find(pools, &npools, index, m->seller, 0) - pools
			: m->retire ? -1 : pool_find(pools, &npools, index, m->buyer, 0) - pools;
	}
	pools_load(pools, npools, NULL);
	ledger_columns_init(&ev, 8, event_types, 2 * n);

	for (int i = 0; i < n; i++)
	{
		const LedgerUnitMove *m = &moves[i];
		Pool	   *s = &pools[src_of[i]];
		int64		need = m->tonnes;
		int			nsegs = 0;
		const char *state,
				   *event,
				   *reference = m->reason;
		int64		holder;

		switch (m->kind)
		{
			case UNITS_ESCROW:
				state = "escrow", event = "escrow", holder = 0;
				reference = psprintf("sell order " INT64_FORMAT, m->order);
				break;
			case UNITS_RELEASE:
				state = "held", event = "release", holder = m->seller;
				break;
			default:			/* a buy that retires: the buyer never holds them */
				state = m->retire ? "retired" : "held", event = m->retire ? "retirement" : "trade";
				holder = m->buyer;
				break;
		}
		while (need > 0)
		{
			Piece	   *pc;
			Piece		moved;
			int64		take;
			char	   *serial;

			if (s->head == s->n ||
				(!s->complete && piece_cmp(&s->p[s->head], &s->boundary) > 0))
			{
				if (!s->complete)
				{
					pools_load(pools, npools, s);	/* the take reaches past the blocks read */
					continue;
				}
				if (s->account)
					blocks_not_covered(s->account, m->tonnes, m->tonnes - need);
				ereport(ERROR,
						(errcode(ERRCODE_CL_INTEGRITY),
						 errmsg("order " INT64_FORMAT " has " INT64_FORMAT " t in escrow, " INT64_FORMAT " t needed",
								m->order, m->tonnes - need, m->tonnes),
						 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
			}
			pc = &s->p[s->head];
			take = Min(need, pc->last - pc->first + 1);
			moved = *pc;
			moved.block = 0, moved.shrunk = false;
			moved.root = pc->block ? pc->block : pc->root;
			moved.root_first = pc->block ? pc->first : pc->root_first;
			moved.first = pc->last - take + 1;
			moved.account = holder ? holder : pc->account;
			moved.state = state;
			moved.escrow_order = m->kind == UNITS_ESCROW ? m->order : 0;
			moved.entry_id = entry_id;
			/*
			 * A holding's `since` is when the holder got it: escrow and
			 * its release leave the units the seller's (docs/accounting.md),
			 * so they keep their place in its first in, first out order.
			 */
			moved.since = m->kind == UNITS_ESCROW || m->kind == UNITS_RELEASE ? pc->since : now;
			serial = serial_format(pc->region, pc->vintage, pc->code, moved.first, moved.last);
			event_add(&ev, pc, moved.first, moved.last, event, pc->account, holder, reference);
			if (moved.first > pc->first)
			{
				/*
				 * Taken from the top: what is left keeps its row, with a
				 * lower last (a heap-only update: no index changes), and
				 * no history of its own, as it did not move.
				 */
				pc->last = moved.first - 1;
				pc->shrunk = pc->block != 0;
			}
			else
			{
				if (pc->block != 0)
				{
					/* taken whole: the stored block goes */
					if (ngone == capgone)
					{
						capgone = Max(16, capgone * 2);
						gone = gone ? repalloc(gone, sizeof(Datum) * capgone) : palloc(sizeof(Datum) * capgone);
					}
					gone[ngone++] = Int64GetDatum(pc->block);
				}
				s->head++;
			}
			if (nsegs == capsegs)
			{
				capsegs = Max(8, capsegs * 2);
				segs = segs ? repalloc(segs, sizeof(Datum) * capsegs) : palloc(sizeof(Datum) * capsegs);
			}
			segs[nsegs++] = CStringGetTextDatum(serial);
			if (dst_of[i] >= 0)
				pool_add(&pools[dst_of[i]], &moved);	/* after the last use of pc: the pools may grow */
			else
			{
				if (nretired == capretired)
					retired = repalloc(retired, sizeof(Piece) * (capretired *= 2));
				retired[nretired++] = moved;
			}
			need -= take;
		}
		serials[i] = ledger_array(segs, NULL, nsegs, TEXTOID);
	}
	moves_store(pools, npools, retired, nretired, gone, ngone, &ev, entry_id);
}

/*
 * The holdings module's part of a posted entry (transfer(), transfer_units,
 * reversals): one participant paying one other, or paying into the
 * retired or cancelled sink.  Units never come back from a sink or from
 * issuance: their serials are numbered by issue_units alone.
 */
static void
units_follow(const LedgerEntry *entry, int64 entry_id)
{
	int			payer = -1,
				payee = -1,
				sink = -1,
				debits = 0,
				credits = 0;
	int16		cer = asset_cer();
	UnitPieces	p;

	for (int i = 0; i < entry->n; i++)
	{
		const LedgerAccount *a = entry->accounts[i];

		if (entry->assets[i] != cer)
			continue;
		if (a->participant)
		{
			if (entry->amounts[i] < 0)
				payer = i, debits++;
			else
				payee = i, credits++;
		}
		else if (entry->amounts[i] > 0 &&
				 (strcmp(a->kind, "retired") == 0 || strcmp(a->kind, "cancelled") == 0))
			sink = i;
	}
	if (debits == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("certified units cannot be credited without their serials"),
				 errdetail("Units are issued only by carbon.issue_units(); retired and cancelled units are final."),
				 errhint("A retirement, cancellation or issuance of units cannot be reversed.")));
	if (debits > 1 || credits > 1 || (credits == 0 && sink < 0))
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("this entry moves certified units in a way their serials cannot follow"),
				 errhint("Move units with carbon.transfer_units(), retire_units() or cancel_units().")));
	if (entry->reverses != 0)
		units_take_entry(entry->accounts[payer]->id, -entry->amounts[payer], entry->reverses, &p);
	else
		units_take(entry->accounts[payer]->id, -entry->amounts[payer], NULL, &p);
	if (credits == 1)
		(void) units_move(&p, entry->accounts[payee]->id, "held", entry_id, "transfer", entry->memo, 0);
	else
		(void) units_move(&p, 0, strcmp(entry->accounts[sink]->kind, "retired") == 0 ? "retired" : "cancelled",
						  entry_id, strcmp(entry->accounts[sink]->kind, "retired") == 0 ? "retirement" : "cancellation",
						  entry->memo, 0);
}

static const LedgerHoldings units_holdings = {
	.name = "serial blocks",
	.holds = units_hold,
	.follow = units_follow,
};

void
ledger_units_register(void)
{
	ledger_register_holdings(&units_holdings);
}

/* ---- issuance ---- */

typedef struct Report
{
	int64		id;
	int64		project;
	char	   *status;
	int64		verified_g;
	int			vintage;
} Report;

typedef struct Project
{
	int64		id;
	int64		owner;
	char	   *code;
	char	   *region;
	char	   *class;
	char	   *methodology;
	int32		version;
	char	   *methodology_status;
	char	   *factors;
	int			buffer_pct;
	int64		next_serial;
	int64		debt;
	bool		pooled;
} Project;

static void
project_lock(int64 id, Project *p)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(id)};
	SPITupleTable *tt;
	bool		isnull;

	ledger_plan_generic(&plan,
				"SELECT p.owner, p.code, p.region, p.class, p.methodology, p.methodology_version, m.status, "
				"       m.params::text, coalesce((m.params ->> 'buffer_pct')::int, 0), p.next_serial, "
				"       p.debt_tonnes, p.pooled "
				"FROM carbon.project p JOIN carbon.methodology m "
				"  ON m.code = p.methodology AND m.version = p.methodology_version "
				"WHERE p.id = $1 FOR UPDATE OF p",
				1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "project lookup failed");
	tt = SPI_tuptable;
	p->id = id;
	p->owner = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	p->code = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	p->region = SPI_getvalue(tt->vals[0], tt->tupdesc, 3);
	p->class = SPI_getvalue(tt->vals[0], tt->tupdesc, 4);
	p->methodology = SPI_getvalue(tt->vals[0], tt->tupdesc, 5);
	p->version = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 6, &isnull));
	p->methodology_status = SPI_getvalue(tt->vals[0], tt->tupdesc, 7);
	p->factors = SPI_getvalue(tt->vals[0], tt->tupdesc, 8);
	p->buffer_pct = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 9, &isnull));
	p->next_serial = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 10, &isnull));
	p->debt = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 11, &isnull));
	p->pooled = DatumGetBool(SPI_getbinval(tt->vals[0], tt->tupdesc, 12, &isnull));
}

static void
report_lock(int64 id, Report *r)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(id)};
	SPITupleTable *tt;
	bool		isnull;
	Datum		d;

	ledger_plan_generic(&plan,
				"SELECT project, status, carbon.grams(verified), extract(year FROM upper(period) - 1)::int "
				"FROM carbon.monitoring_report WHERE id = $1 FOR UPDATE",
				1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "report lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monitoring report " INT64_FORMAT " does not exist", id)));
	tt = SPI_tuptable;
	r->id = id;
	r->project = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	r->status = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	d = SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull);
	r->verified_g = isnull ? 0 : DatumGetInt64(d);
	r->vintage = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
}

/*
 * A platform account the system keeps per region (the buffer pool, the
 * market's fees): a participant of the platform tier whose external
 * reference is `ref` (opened on first use).
 */
void
ledger_platform_account(const char *ref, const char *name, LedgerAccount *acc, const char *region)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr read_plan = NULL;
	Datum		values[3] = {CStringGetTextDatum(region), CStringGetTextDatum(ref), CStringGetTextDatum(name)};
	bool		isnull;
	Datum		id;

	ledger_plan_generic(&plan, "SELECT carbon.open_account('platform', $1, $2 || ':' || $1, $3 || ' ' || $1)",
				3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "platform account lookup failed");
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	/* read-write, a new snapshot: an account opened just now is seen */
	ledger_plan_generic(&read_plan, "SELECT id, kind, tier, region, status FROM carbon.account WHERE id = $1",
				1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(read_plan, &id, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "platform account lookup failed");
	ledger_account_from_row(acc, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
							SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

/* The platform's buffer-pool account of a region. */
static void
buffer_account(const char *region, LedgerAccount *acc)
{
	ledger_platform_account("carbon_ledger:buffer_pool", "缓冲池 buffer pool", acc, region);
}

/* One block of an issuance: an issued range and its first state. */
typedef struct IssuedBlock
{
	const char *block;			/* owner, buffer, debt */
	int64		account;
	int64		first;
	int64		last;
	const char *state;
} IssuedBlock;

static void
issuance_write(const Report *r, const Project *p, const IssuedBlock *b, int n, int64 entry_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		kind[3],
				acc[3],
				first[3],
				last[3],
				state[3];
	Datum		values[14];

	for (int i = 0; i < n; i++)
	{
		kind[i] = CStringGetTextDatum(b[i].block);
		acc[i] = Int64GetDatum(b[i].account);
		first[i] = Int64GetDatum(b[i].first);
		last[i] = Int64GetDatum(b[i].last);
		state[i] = CStringGetTextDatum(b[i].state);
	}
	values[0] = Int64GetDatum(r->id);
	values[1] = Int64GetDatum(p->id);
	values[2] = CStringGetTextDatum(p->region);
	values[3] = Int32GetDatum(r->vintage);
	values[4] = CStringGetTextDatum(p->class);
	values[5] = CStringGetTextDatum(p->methodology);
	values[6] = Int32GetDatum(p->version);
	values[7] = CStringGetTextDatum(p->factors);
	values[8] = Int64GetDatum(entry_id);
	values[9] = ledger_array(kind, NULL, n, TEXTOID);
	values[10] = ledger_int8_array(acc, n);
	values[11] = ledger_int8_array(first, n);
	values[12] = ledger_int8_array(last, n);
	values[13] = ledger_array(state, NULL, n, TEXTOID);
	ledger_plan_generic(&plan,
				"WITH b AS (SELECT * FROM unnest($10, $11, $12, $13, $14) WITH ORDINALITY "
				"           AS b(block, account, first, last, state, k)), "
				"i AS (INSERT INTO carbon.unit_issuance (report, project, region, vintage, first, last, block, "
				"        account, class, methodology, methodology_version, factors, entry_id) "
				"      SELECT $1, $2, $3, $4, first, last, block, account, $5, $6, $7, $8::jsonb, $9 "
				"      FROM b ORDER BY k RETURNING id, first, last, account), "
				"blk AS (INSERT INTO carbon.unit_block (issuance, project, vintage, class, first, last, account, "
				"          state, entry_id) "
				"        SELECT i.id, $2, $4, $5, i.first, i.last, i.account, b.state, $9 "
				"        FROM i JOIN b ON b.first = i.first) "
				"INSERT INTO carbon.unit_event (issuance, project, first, last, event, from_account, to_account, "
				"                               entry_id, reference) "
				"SELECT id, $2, first, last, event, NULL, to_account, $9, reference FROM ("
				"  SELECT b.k, 0 AS o, i.id, i.first, i.last, 'issuance' AS event, i.account AS to_account, "
				"         'report ' || $1 || ', ' || b.block || ' block' AS reference "
				"  FROM i JOIN b ON b.first = i.first "
				"  UNION ALL "
				"  SELECT b.k, 1, i.id, i.first, i.last, 'cancellation', NULL, 'recall debt repaid' "
				"  FROM i JOIN b ON b.first = i.first WHERE b.state = 'cancelled') e ORDER BY k, o",
				14, (Oid[]) {INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, INT8OID,
				TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "issuance insert failed");
}

static void
report_issued(const Report *r, const Project *p, int64 tonnes, int64 repaid, int64 next_serial)
{
	static SPIPlanPtr report_plan = NULL;
	static SPIPlanPtr project_plan = NULL;
	Datum		rv[3] = {Int64GetDatum(r->id), Int64GetDatum(tonnes), Int64GetDatum(r->verified_g % GRAMS_PER_TONNE)};
	Datum		pv[3] = {Int64GetDatum(p->id), Int64GetDatum(next_serial), Int64GetDatum(repaid)};

	ledger_plan_generic(&report_plan,
				"UPDATE carbon.monitoring_report SET status = 'issued', issued_tonnes = $2, "
				"       remainder = carbon.co2e_grams($3), issued_at = now() WHERE id = $1",
				3, (Oid[]) {INT8OID, INT8OID, INT8OID});
	if (SPI_execute_plan(report_plan, rv, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "report update failed");
	ledger_plan_generic(&project_plan,
				"UPDATE carbon.project SET next_serial = $2, debt_tonnes = debt_tonnes - $3 WHERE id = $1",
				3, (Oid[]) {INT8OID, INT8OID, INT8OID});
	if (SPI_execute_plan(project_plan, pv, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "project update failed");
}

/*
 * A pooled project (the platform certifying personal reductions it holds):
 * the grams certified leave the platform's RED into the retired sink, so
 * that no reduction counts twice.
 */
static void
pooling_convert(const LedgerAccount *owner, int64 tonnes, const char *serials)
{
	int16		red = ledger_asset_red();
	const LedgerAccount *sink = ledger_system_account_info("retired", red, owner->tier, owner->region);

	ledger_sweep_expired(owner->id);	/* expired grams are not certified */
	(void) ledger_move("pooling", psprintf("certified into units %s", serials), owner, sink, red,
					   tonnes * GRAMS_PER_TONNE, NULL);
}

static void
srf_row(ReturnSetInfo *rsinfo, Datum a, Datum b, bool b_null)
{
	Datum		values[2] = {a, b};
	bool		nulls[2] = {false, b_null};

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * issue_units(report) → (serial, tonnes): the verified report's whole
 * tonnes (the remainder recorded, not issued), numbered on from the
 * project's last serial.  The buffer share (methodology param buffer_pct)
 * is its own block for the region's buffer pool; a recall debt of the
 * project is repaid first from the owner's share (issued and cancelled at
 * once).
 */
PG_FUNCTION_INFO_V1(ledger_issue_units);
Datum
ledger_issue_units(PG_FUNCTION_ARGS)
{
	int64		report_id = ledger_arg_int64(fcinfo, 0, "report");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Report		r;
	Project		p;
	LedgerAccount owner;
	LedgerAccount buffer;
	int64		tonnes,
				buffer_t,
				share,
				repay,
				keep,
				next;
	IssuedBlock blocks[3];
	int			nblocks = 0;
	const LedgerAccount *accounts[8];
	int16		assets[8];
	int64		amounts[8];
	int			n = 0;
	int16		cer;
	LedgerEntry entry;
	int64		entry_id;

	InitMaterializedSRF(fcinfo, 0);
	ledger_spi_connect();
	cer = asset_cer();
	report_lock(report_id, &r);
	if (strcmp(r.status, "verified") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("monitoring report " INT64_FORMAT " is %s, not verified", report_id, r.status),
				 errhint(strcmp(r.status, "issued") == 0 ? "A report is issued once." :
						 "Units are issued for a verified report (carbon.verify_monitoring).")));
	project_lock(r.project, &p);
	if (strcmp(p.methodology_status, "published") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_METHODOLOGY),
				 errmsg("methodology %s version %d of project %s is %s", p.methodology, p.version, p.code,
						p.methodology_status),
				 errhint("Units are issued only under a methodology in force.")));
	ledger_require_account(p.owner, &owner);
	ledger_require_active(&owner);

	tonnes = r.verified_g / GRAMS_PER_TONNE;
	if (tonnes > 0 && p.next_serial + tonnes - 1 > MAX_SERIAL)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("project %s would pass serial number %lld", p.code, (long long) MAX_SERIAL)));
	buffer_t = tonnes * p.buffer_pct / 100;
	share = tonnes - buffer_t;
	/* caps count per segment the units are issued from, as set_issuance_cap() does */
	ledger_cap_require(owner.tier, p.region, "CER", share);
	ledger_cap_require("platform", p.region, "CER", buffer_t);
	repay = Min(p.debt, share);
	keep = share - repay;
	next = p.next_serial;
	if (buffer_t > 0)
	{
		buffer_account(p.region, &buffer);
		blocks[nblocks++] = (IssuedBlock) {"buffer", buffer.id, next, next + buffer_t - 1, "held"};
		next += buffer_t;
		accounts[n] = ledger_system_account_info("issuance", cer, buffer.tier, buffer.region);
		assets[n] = cer, amounts[n++] = -buffer_t;
		accounts[n] = &buffer;
		assets[n] = cer, amounts[n++] = buffer_t;
	}
	if (repay > 0)
	{
		blocks[nblocks++] = (IssuedBlock) {"debt", owner.id, next, next + repay - 1, "cancelled"};
		next += repay;
		accounts[n] = ledger_system_account_info("cancelled", cer, owner.tier, owner.region);
		assets[n] = cer, amounts[n++] = repay;
	}
	if (keep > 0)
	{
		blocks[nblocks++] = (IssuedBlock) {"owner", owner.id, next, next + keep - 1, "held"};
		next += keep;
		accounts[n] = &owner;
		assets[n] = cer, amounts[n++] = keep;
	}
	if (share > 0)
	{
		/* issued in the project's region; held in the owner's (through clearing) */
		accounts[n] = ledger_system_account_info("issuance", cer, owner.tier, p.region);
		assets[n] = cer, amounts[n++] = -share;
		if (strcmp(owner.region, p.region) != 0)
		{
			accounts[n] = ledger_system_account_info("clearing", cer, owner.tier, p.region);
			assets[n] = cer, amounts[n++] = share;
			accounts[n] = ledger_system_account_info("clearing", cer, owner.tier, owner.region);
			assets[n] = cer, amounts[n++] = -share;
		}
	}
	if (n > 0)
	{
		entry = ledger_entry("unit_issuance", psprintf("project %s, report " INT64_FORMAT, p.code, r.id),
							 n, accounts, assets, amounts);
		entry.holdings_moved = true;	/* the blocks are written below, numbered */
		entry_id = ledger_post(&entry);
		issuance_write(&r, &p, blocks, nblocks, entry_id);
		if (p.pooled)
			pooling_convert(&owner, tonnes,
							serial_format(p.region, r.vintage, p.code, p.next_serial, next - 1));
	}
	report_issued(&r, &p, tonnes, repay, next);
	for (int i = 0; i < nblocks; i++)
		srf_row(rsinfo, CStringGetTextDatum(serial_format(p.region, r.vintage, p.code, blocks[i].first,
														  blocks[i].last)),
				Int64GetDatum(blocks[i].last - blocks[i].first + 1), false);
	SPI_finish();
	return (Datum) 0;
}

/* ---- transfer, retirement, cancellation ---- */

/*
 * A request's arguments as one unambiguous string (for request-id
 * replays): each part length-prefixed, NULL as "-", so that no two
 * different argument lists (free-text beneficiary and reference) read alike.
 */
static char *
fingerprint(int n, const char *const *parts)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < n; i++)
	{
		if (parts[i] == NULL)
			appendStringInfoString(&s, "-;");
		else
			appendStringInfo(&s, "%zu:%s;", strlen(parts[i]), parts[i]);
	}
	return s.data;
}

/* transfer_units(from, to, tonnes, memo, request_id) → entry id */
PG_FUNCTION_INFO_V1(ledger_transfer_units);
Datum
ledger_transfer_units(PG_FUNCTION_ARGS)
{
	int64		from_id = ledger_arg_int64(fcinfo, 0, "from_account");
	int64		to_id = ledger_arg_int64(fcinfo, 1, "to_account");
	int64		tonnes = ledger_arg_amount(fcinfo, 2, "tonnes");
	char	   *memo = ledger_arg_text_or_null(fcinfo, 3);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 4);
	int64		entry_id;
	bool		replayed;

	if (from_id == to_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer units from account " INT64_FORMAT " to itself", from_id)));
	ledger_check_acting(from_id, false);
	ledger_spi_connect();
	entry_id = ledger_transfer_between("unit_transfer", memo, from_id, to_id, "CER", tonnes, NULL, request_id,
									   fingerprint(3, (const char *[]) {psprintf(INT64_FORMAT, to_id),
																		 psprintf(INT64_FORMAT, tonnes), memo}),
									   &replayed);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

static const char *const purposes[] = {
	"event_neutrality", "entity_neutrality", "eco_damage_compensation", "voluntary", "compliance_offset"
};

void
ledger_check_retire_purpose(const char *purpose, const char *reference)
{
	bool		known = false;

	for (size_t i = 0; i < lengthof(purposes); i++)
		known |= strcmp(purpose, purposes[i]) == 0;
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown retirement purpose \"%s\"", purpose),
				 errhint("Purposes are event_neutrality, entity_neutrality, eco_damage_compensation, voluntary "
						 "and compliance_offset.")));
	if (strcmp(purpose, "eco_damage_compensation") == 0 && (reference == NULL || reference[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a retirement for eco-damage compensation needs the case reference"),
				 errhint("Pass the court or administrative case number as reference.")));
}

/* A retirement, as certified. */
typedef struct Retirement
{
	int64		account;
	int64		tonnes;
	const char *purpose;
	const char *beneficiary;
	const char *jurisdiction;
	const char *reference;
	Datum		serials;		/* text[] */
	int64		entry_id;
	TimestampTz retired_at;
} Retirement;

static void
json_key_text(StringInfo s, const char *key, const char *value)
{
	appendStringInfo(s, "\"%s\":", key);
	if (value)
		escape_json(s, value);
	else
		appendStringInfoString(s, "null");
}

/*
 * The canonical content of a certificate: JSON, keys in order, no spaces,
 * the time in UTC to the microsecond.  Its SHA-256 is the certificate id.
 */
static char *
certificate_content(const Retirement *r)
{
	StringInfoData s;
	ArrayType  *arr = DatumGetArrayTypeP(r->serials);
	Datum	   *elems;
	int			nelems;
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(r->retired_at, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "retirement time out of range");
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
	initStringInfo(&s);
	appendStringInfo(&s, "{\"account\":" INT64_FORMAT ",", r->account);
	json_key_text(&s, "beneficiary", r->beneficiary);
	appendStringInfo(&s, ",\"entry\":" INT64_FORMAT ",", r->entry_id);
	json_key_text(&s, "jurisdiction", r->jurisdiction);
	appendStringInfoChar(&s, ',');
	json_key_text(&s, "purpose", r->purpose);
	appendStringInfoChar(&s, ',');
	json_key_text(&s, "reference", r->reference);
	appendStringInfo(&s, ",\"retired_at\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\",\"serials\":[",
					 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	for (int i = 0; i < nelems; i++)
	{
		if (i > 0)
			appendStringInfoChar(&s, ',');
		escape_json(&s, TextDatumGetCString(elems[i]));
	}
	appendStringInfo(&s, "],\"tonnes\":" INT64_FORMAT ",\"version\":1}", r->tonnes);
	return s.data;
}

static char *
sha256_hex(const char *data)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, strlen(data)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	return hex;
}

static char *
retirement_write(const Retirement *r)
{
	static SPIPlanPtr plan = NULL;
	char	   *certificate = sha256_hex(certificate_content(r));
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', r->reference ? ' ' : 'n', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(certificate);
	values[1] = Int64GetDatum(r->account);
	values[2] = Int64GetDatum(r->tonnes);
	values[3] = CStringGetTextDatum(r->purpose);
	values[4] = CStringGetTextDatum(r->beneficiary);
	values[5] = CStringGetTextDatum(r->jurisdiction);
	values[6] = r->reference ? CStringGetTextDatum(r->reference) : (Datum) 0;
	values[7] = r->serials;
	values[8] = Int64GetDatum(r->entry_id);
	values[9] = TimestampTzGetDatum(r->retired_at);
	ledger_plan_generic(&plan,
				"INSERT INTO carbon.retirement (certificate, account, tonnes, purpose, beneficiary, jurisdiction, "
				"                               reference, serials, entry_id, retired_at) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
				10, (Oid[]) {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID,
				INT8OID, TIMESTAMPTZOID});
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "retirement insert failed");
	return certificate;
}

/* A retirement certificate for units already retired by `account` in entry `entry_id` (a buy that retires). */
char *
ledger_units_certify(int64 account, int64 tonnes, const char *purpose, const char *beneficiary,
					 const char *jurisdiction, const char *reference, Datum serials, int64 entry_id)
{
	Retirement	r;

	r.account = account;
	r.tonnes = tonnes;
	r.purpose = purpose;
	r.beneficiary = beneficiary;
	r.jurisdiction = jurisdiction;
	r.reference = reference;
	r.serials = serials;
	r.entry_id = entry_id;
	r.retired_at = GetCurrentTransactionStartTimestamp();
	return retirement_write(&r);
}

/* The certificate and serials of the retirement posted as `entry_id` (a replayed request). */
static void
retirement_replay(ReturnSetInfo *rsinfo, int64 entry_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(entry_id)};
	bool		isnull;

	ledger_plan_generic(&plan, "SELECT certificate, serials FROM carbon.retirement WHERE entry_id = $1",
				1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "retirement of entry " INT64_FORMAT " not found", entry_id);
	srf_row(rsinfo, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
			SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull), false);
}

/*
 * Post the move of `tonnes` from the account into its segment's retired or
 * cancelled sink (the blocks are moved by the caller: holdings_moved).
 */
static int64
post_to_sink(const LedgerAccount *acc, const char *sink_kind, int64 tonnes, const char *kind, const char *memo,
			 bool correction)
{
	int16		cer = asset_cer();
	const LedgerAccount *accounts[2] = {acc, ledger_system_account_info(sink_kind, cer, acc->tier, acc->region)};
	int16		assets[2] = {cer, cer};
	int64		amounts[2] = {-tonnes, tonnes};
	LedgerEntry entry = ledger_entry(kind, memo, 2, accounts, assets, amounts);

	entry.holdings_moved = true;
	entry.correction = correction;
	return ledger_post(&entry);
}

/*
 * Lock the blocks of the named range and check that the account holds all
 * of it (CL001 otherwise); the pieces to move.
 */
static void
units_take_range(int64 account, const SerialRange *s, const char *text, UnitPieces *p)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[6];
	int64		want = s->last - s->first + 1;
	bool		all_held = true;

	values[0] = Int64GetDatum(account);
	values[1] = CStringGetTextDatum(s->code);
	values[2] = CStringGetTextDatum(s->region);
	values[3] = Int32GetDatum(s->vintage);
	values[4] = Int64GetDatum(s->first);
	values[5] = Int64GetDatum(s->last);
	ledger_plan_generic(&plan,
				"SELECT b.id, greatest(b.first, $5), least(b.last, $6), "
				"       b.account = $1 AND b.state = 'held' AND b.vintage = $4 AND i.region = $3 "
				"FROM carbon.project pr "
	/*
	 * unit_block_serial_key (project × 2^32 + first serial, 70_units.sql):
	 * the blocks that begin in the range, and the one before it, which may
	 * reach into it (an index probe backwards).  Written as an overlap of
	 * ranges this read every block of every project (163,000 after B4:
	 * 57 ms a retirement by serials, 0.7 ms now).
	 */
				"JOIN carbon.unit_block b ON b.project * 4294967296 + b.first "
				"  BETWEEN coalesce((SELECT n.project * 4294967296 + n.first FROM carbon.unit_block n "
				"                    WHERE n.project * 4294967296 + n.first <= pr.id * 4294967296 + least($5, 4294967295) "
				"                      AND n.project * 4294967296 + n.first >= pr.id * 4294967296 "
				"                    ORDER BY n.project * 4294967296 + n.first DESC LIMIT 1), "
				"                   pr.id * 4294967296 + least($5, 4294967295)) "
				"      AND pr.id * 4294967296 + least($6, 4294967295) "
				" AND b.project = pr.id AND b.last >= $5 AND b.first <= $6 "
				"JOIN carbon.unit_issuance i ON i.id = b.issuance "
				"WHERE pr.code = $2 ORDER BY b.first FOR UPDATE OF b",
				6, (Oid[]) {INT8OID, TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "unit block lookup failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		all_held &= DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4, &isnull));
	}
	pieces_from_spi(p);
	if (!all_held || p->tonnes != want)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("account " INT64_FORMAT " does not hold all of %s", account, text),
				 errdetail("It holds " INT64_FORMAT " of the " INT64_FORMAT " serials of the range.",
						   all_held ? p->tonnes : (int64) 0, want)));
}

/*
 * retire_units and retire_serials: arguments, request id, status, the
 * entry, the blocks (oldest first, or the named range), the certificate.
 */
static Datum
retire(FunctionCallInfo fcinfo, bool named)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *serial_text = named ? ledger_arg_text(fcinfo, 1, "serials") : NULL;
	int64		tonnes = named ? 0 : ledger_arg_amount(fcinfo, 1, "tonnes");
	char	   *purpose = ledger_arg_text(fcinfo, 2, "purpose");
	char	   *beneficiary = ledger_arg_text(fcinfo, 3, "beneficiary");
	char	   *reference = ledger_arg_text_or_null(fcinfo, 4);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 5);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SerialRange range;
	LedgerAccount acc;
	Retirement r;
	UnitPieces p;
	int64		entry_id;
	char	   *certificate;

	if (named)
	{
		serial_parse(serial_text, &range);
		tonnes = range.last - range.first + 1;
	}
	ledger_check_retire_purpose(purpose, reference);
	if (beneficiary[0] == '\0' || strlen(beneficiary) > 500)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a retirement names its beneficiary (1 to 500 bytes)")));
	ledger_check_acting(account, false);
	InitMaterializedSRF(fcinfo, 0);
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	ledger_require_participant(&acc);
	if (ledger_request_begin(account, request_id, named ? "retire_serials" : "retire_units",
							 fingerprint(4, (const char *[]) {named ? serial_text : psprintf(INT64_FORMAT, tonnes),
															  purpose, beneficiary, reference}),
							 &entry_id))
	{
		retirement_replay(rsinfo, entry_id);
		SPI_finish();
		return (Datum) 0;
	}
	ledger_require_active(&acc);
	entry_id = post_to_sink(&acc, "retired", tonnes, "retirement",
							psprintf("retired for %s (%s)", beneficiary, purpose), false);
	if (named)
		units_take_range(account, &range, serial_text, &p);
	else
		units_take(account, tonnes, NULL, &p);

	r.account = account;
	r.tonnes = tonnes;
	r.purpose = purpose;
	r.beneficiary = beneficiary;
	r.jurisdiction = acc.region;
	r.reference = reference;
	r.entry_id = entry_id;
	r.retired_at = GetCurrentTransactionStartTimestamp();
	r.serials = units_move(&p, 0, "retired", entry_id, "retirement",
						   psprintf("for %s (%s)", beneficiary, purpose), 0);
	certificate = retirement_write(&r);
	ledger_request_finish(account, request_id, entry_id);
	srf_row(rsinfo, CStringGetTextDatum(certificate), r.serials, false);
	SPI_finish();
	return (Datum) 0;
}

/* retire_units(account, tonnes, purpose, beneficiary, reference, request_id) → (certificate, serials) */
PG_FUNCTION_INFO_V1(ledger_retire_units);
Datum
ledger_retire_units(PG_FUNCTION_ARGS)
{
	return retire(fcinfo, false);
}

/* retire_serials(account, serials, purpose, beneficiary, reference, request_id) → (certificate, serials) */
PG_FUNCTION_INFO_V1(ledger_retire_serials);
Datum
ledger_retire_serials(PG_FUNCTION_ARGS)
{
	return retire(fcinfo, true);
}

/* cancel_units(account, tonnes, reason) → entry id (administrative 注销) */
PG_FUNCTION_INFO_V1(ledger_cancel_units);
Datum
ledger_cancel_units(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	int64		tonnes = ledger_arg_amount(fcinfo, 1, "tonnes");
	char	   *reason = ledger_arg_text(fcinfo, 2, "reason");
	LedgerAccount acc;
	UnitPieces	p;
	int64		entry_id;

	if (reason[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a cancellation needs a reason")));
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	ledger_require_participant(&acc);
	/* the administrator's act: a frozen account's units too (a closed one holds none) */
	entry_id = post_to_sink(&acc, "cancelled", tonnes, "cancellation", reason, true);
	units_take(account, tonnes, NULL, &p);
	(void) units_move(&p, 0, "cancelled", entry_id, "cancellation", reason, 0);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* ---- recall ---- */

/* The holders of an issuance's units still held: account, tonnes, of which buffer blocks. */
typedef struct Holders
{
	int			n;
	int64	   *ids;
	int64	   *tonnes;
	int64	   *buffer;
} Holders;

static void
holders_read(int64 report_id, Holders *h)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {Int64GetDatum(report_id)};
	bool		isnull;

	ledger_plan_generic(&plan,
				"SELECT b.account, sum(b.last - b.first + 1)::bigint, "
				"       coalesce(sum(b.last - b.first + 1) FILTER (WHERE i.block = 'buffer'), 0)::bigint "
				"FROM carbon.unit_block b JOIN carbon.unit_issuance i ON " LEDGER_BLOCK_OF_ISSUANCE " "
				"WHERE i.report = $1 AND b.state = 'held' GROUP BY 1 ORDER BY 1",
				1, (Oid[]) {INT8OID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "held units lookup failed");
	h->n = (int) SPI_processed;
	h->ids = palloc(sizeof(int64) * (h->n + 1));	/* room for the buffer pool's draw */
	h->tonnes = palloc(sizeof(int64) * (h->n + 1));
	h->buffer = palloc(sizeof(int64) * (h->n + 1));
	for (int i = 0; i < h->n; i++)
	{
		h->ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		h->tonnes[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		h->buffer[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
	}
}

static void
holders_lock(const Holders *h, int16 cer)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *ids = palloc(sizeof(Datum) * Max(h->n, 1));
	Datum		values[2];

	for (int i = 0; i < h->n; i++)
		ids[i] = Int64GetDatum(h->ids[i]);
	values[0] = ledger_int8_array(ids, h->n);
	values[1] = Int16GetDatum(cer);
	ledger_plan_generic(&plan,
				"SELECT 1 FROM carbon.balance WHERE account = ANY ($1) AND asset_id = $2 AND stripe = 0 "
				"ORDER BY account FOR UPDATE",
				2, (Oid[]) {INT8ARRAYOID, INT2OID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "balance lock failed");
}

static bool
holders_equal(const Holders *a, const Holders *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->ids[i] != b->ids[i] || a->tonnes[i] != b->tonnes[i])
			return false;
	return true;
}

/*
 * recall_issuance(serial, reason) → (serials, cancelled, flagged): the
 * issuance (all blocks issued for the report) containing `serial`.  Units
 * held anywhere are cancelled (event recall); retired ones stay retired,
 * their certificates and history flagged.  The shortfall (retired tonnes)
 * is drawn from the buffer pool first when the methodology keeps one —
 * the issuance's own buffer block, then the region's pool, oldest first —
 * and the rest is owed by the project, repaid first at its next issuance.
 */
PG_FUNCTION_INFO_V1(ledger_recall_issuance);
Datum
ledger_recall_issuance(PG_FUNCTION_ARGS)
{
	char	   *serial = ledger_arg_text(fcinfo, 0, "serial");
	char	   *reason = ledger_arg_text(fcinfo, 1, "reason");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr flag_plan = NULL;
	Holders		h;
	SerialRange s;
	Datum		values[4];
	bool		isnull;
	int64		report_id,
				project_id,
				retired,
				own_buffer = 0,
				drawn = 0,
				debt,
				cancelled = 0,
				entry_id = 0,
				pool = 0;
	bool		recalled;
	Project		p;
	UnitPieces	held,
				draw;
	int			nholders;
	int64	   *holder_ids;
	int64	   *holder_tonnes;
	const LedgerAccount **accounts;
	int16	   *assets;
	int64	   *amounts;
	int			n = 0;
	int16		cer;
	Datum		serials[2];
	int			nserials = 0;
	char	   *memo;

	serial_parse(serial, &s);
	if (reason[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a recall needs a reason")));
	InitMaterializedSRF(fcinfo, 0);
	ledger_spi_connect();
	cer = asset_cer();

	/* the issuance, its rows locked */
	values[0] = CStringGetTextDatum(s.code);
	values[1] = CStringGetTextDatum(s.region);
	values[2] = Int32GetDatum(s.vintage);
	values[3] = Int64GetDatum(s.first);
	ledger_plan_generic(&find_plan,
				"SELECT i.report, i.project, bool_or(x.recalled_at IS NOT NULL) "
				"FROM carbon.project pr JOIN carbon.unit_issuance i ON i.project = pr.id "
				"JOIN carbon.unit_issuance x ON x.report = i.report "
				"WHERE pr.code = $1 AND i.region = $2 AND i.vintage = $3 AND $4 BETWEEN i.first AND i.last "
				"GROUP BY 1, 2",
				4, (Oid[]) {TEXTOID, TEXTOID, INT4OID, INT8OID});
	if (SPI_execute_plan(find_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "issuance lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no issuance contains serial %s", serial)));
	report_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	project_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	project_lock(project_id, &p);
	{
		static SPIPlanPtr lock_plan = NULL;
		Datum		v[1] = {Int64GetDatum(report_id)};

		/* under the project's lock: a concurrent recall has finished */
		ledger_plan_generic(&lock_plan,
					"SELECT bool_or(recalled_at IS NOT NULL) FROM "
					"(SELECT recalled_at FROM carbon.unit_issuance WHERE report = $1 FOR UPDATE) x",
					1, (Oid[]) {INT8OID});
		if (SPI_execute_plan(lock_plan, v, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "issuance lock failed");
		recalled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (recalled)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("the issuance of report " INT64_FORMAT " containing %s has already been recalled",
						report_id, serial)));

	/* units of the issuance offered on the market: their sell orders end first, the units back with the sellers */
	(void) ledger_market_end_orders_of_report(report_id, "recall");

	/*
	 * Held units of the issuance, per holder, with the holders' CER
	 * balances locked (in account order, as the posting trigger locks
	 * them), so that nobody moves them away meanwhile: a holder found
	 * before a concurrent transfer committed is read again once locked.
	 */
	for (int attempt = 0;; attempt++)
	{
		Holders		locked;

		holders_read(report_id, &h);
		holders_lock(&h, cer);
		holders_read(report_id, &locked);
		if (holders_equal(&h, &locked))
			break;
		if (attempt == 100)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the units of report " INT64_FORMAT " keep moving; try the recall again", report_id)));
		CHECK_FOR_INTERRUPTS();
	}
	nholders = h.n;
	holder_ids = h.ids;
	holder_tonnes = h.tonnes;
	for (int i = 0; i < nholders; i++)
	{
		own_buffer += h.buffer[i];
		cancelled += holder_tonnes[i];
	}
	{
		static SPIPlanPtr retired_plan = NULL;
		Datum		v[1] = {Int64GetDatum(report_id)};

		ledger_plan_generic(&retired_plan,
					"SELECT coalesce(sum(b.last - b.first + 1), 0)::bigint FROM carbon.unit_block b "
					"JOIN carbon.unit_issuance i ON " LEDGER_BLOCK_OF_ISSUANCE " "
					"WHERE i.report = $1 AND b.state = 'retired' AND i.block <> 'debt'",
					1, (Oid[]) {INT8OID});
		if (SPI_execute_plan(retired_plan, v, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "retired units lookup failed");
		retired = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the buffer: the issuance's own block covers first, then the pool */
	debt = retired;
	if (p.buffer_pct > 0 && retired > 0)
	{
		LedgerAccount pool_account;
		int64		buffer_id;
		int64		want;

		buffer_account(p.region, &pool_account);
		buffer_id = pool_account.id;
		{
			Holders		pool_holder = {1, &buffer_id, NULL, NULL};

			holders_lock(&pool_holder, cer);	/* a concurrent recall draws after us */
		}

		debt -= Min(debt, own_buffer);
		{
			static SPIPlanPtr pool_plan = NULL;
			Datum		v[2] = {Int64GetDatum(buffer_id), Int64GetDatum(report_id)};

			ledger_plan_generic(&pool_plan,
						"SELECT coalesce(sum(b.last - b.first + 1), 0)::bigint FROM carbon.unit_block b "
						"JOIN carbon.unit_issuance i ON i.id = b.issuance "
						"WHERE b.account = $1 AND b.state = 'held' AND i.report <> $2",
						2, (Oid[]) {INT8OID, INT8OID});
			if (SPI_execute_plan(pool_plan, v, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "buffer pool lookup failed");
			pool = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		want = Min(debt, pool);
		if (want > 0)
		{
			/* the pool's own blocks of this issuance are cancelled below */
			holder_ids[nholders] = buffer_id;
			holder_tonnes[nholders++] = want;
			drawn = want;
			debt -= want;
		}
	}

	/* one entry: every holder into its segment's cancelled sink */
	accounts = palloc(sizeof(LedgerAccount *) * 2 * Max(nholders, 1));
	assets = palloc(sizeof(int16) * 2 * Max(nholders, 1));
	amounts = palloc(sizeof(int64) * 2 * Max(nholders, 1));
	for (int i = 0; i < nholders; i++)
	{
		LedgerAccount *acc = palloc(sizeof(LedgerAccount));

		ledger_require_account(holder_ids[i], acc);
		accounts[n] = acc;
		assets[n] = cer, amounts[n++] = -holder_tonnes[i];
		accounts[n] = ledger_system_account_info("cancelled", cer, acc->tier, acc->region);
		assets[n] = cer, amounts[n++] = holder_tonnes[i];
	}
	memo = psprintf("recall of report " INT64_FORMAT " of project %s: %s", report_id, p.code, reason);
	if (n > 0)
	{
		LedgerEntry entry = ledger_entry("recall", memo, n, accounts, assets, amounts);

		entry.holdings_moved = true;
		entry.correction = true;	/* a frozen holder's units are recalled too */
		entry_id = ledger_post(&entry);
	}
	if (cancelled > 0)
	{
		static SPIPlanPtr blocks_plan = NULL;
		Datum		v[1] = {Int64GetDatum(report_id)};

		ledger_plan_generic(&blocks_plan,
					"SELECT b.id, b.first, b.last FROM carbon.unit_block b "
					"JOIN carbon.unit_issuance i ON " LEDGER_BLOCK_OF_ISSUANCE " "
					"WHERE i.report = $1 AND b.state = 'held' ORDER BY b.project, b.first FOR UPDATE OF b",
					1, (Oid[]) {INT8OID});
		if (SPI_execute_plan(blocks_plan, v, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "held units lookup failed");
		pieces_from_spi(&held);
		if (held.tonnes != cancelled)
			blocks_not_covered(0, cancelled, held.tonnes);
		serials[nserials++] = units_move(&held, 0, "cancelled", entry_id, "recall", reason, 0);
	}
	if (drawn > 0)
	{
		units_take(holder_ids[nholders - 1], drawn, NULL, &draw);
		serials[nserials++] = units_move(&draw, 0, "cancelled", entry_id, "recall",
										 psprintf("buffer pool drawn for the recall of report " INT64_FORMAT,
												  report_id), 0);
	}

	/* retired units: flagged, in their history and on their certificates */
	values[0] = Int64GetDatum(report_id);
	values[1] = CStringGetTextDatum(reason);
	values[2] = Int64GetDatum(debt);
	values[3] = Int64GetDatum(project_id);
	ledger_plan_generic(&flag_plan,
				"WITH r AS (SELECT b.issuance, b.project, b.first, b.last, b.account, b.entry_id, "
				"                  carbon.serial_text(i.region, i.vintage, pr.code, b.first, b.last) AS serial "
				"           FROM carbon.unit_block b JOIN carbon.unit_issuance i ON " LEDGER_BLOCK_OF_ISSUANCE " "
				"           JOIN carbon.project pr ON pr.id = b.project "
				"           WHERE i.report = $1 AND b.state = 'retired' AND i.block <> 'debt'), "
				"ev AS (INSERT INTO carbon.unit_event (issuance, project, first, last, event, from_account, "
				"                                      to_account, entry_id, reference) "
				"       SELECT issuance, project, first, last, 'recall', account, NULL, entry_id, "
				"              'flagged: retired before the recall: ' || $2 FROM r ORDER BY project, first), "
				"cert AS (UPDATE carbon.retirement t SET recalled_at = now(), recall_reason = $2 "
				"         WHERE t.entry_id IN (SELECT entry_id FROM r) "
				"           AND t.serials && ARRAY(SELECT serial FROM r)), "
				"iss AS (UPDATE carbon.unit_issuance SET recalled_at = now(), recall_reason = $2 WHERE report = $1) "
				"UPDATE carbon.project SET debt_tonnes = debt_tonnes + $3 WHERE id = $4",
				4, (Oid[]) {INT8OID, TEXTOID, INT8OID, INT8OID});
	if (SPI_execute_plan(flag_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "recall bookkeeping failed");

	{
		Datum		all;
		Datum		out[3];
		bool		nulls[3] = {false, false, false};

		if (nserials == 2)
		{
			static SPIPlanPtr cat_plan = NULL;
			Datum		v[2] = {serials[0], serials[1]};

			ledger_plan_generic(&cat_plan, "SELECT $1 || $2", 2, (Oid[]) {TEXTARRAYOID, TEXTARRAYOID});
			if (SPI_execute_plan(cat_plan, v, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "array concatenation failed");
			all = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		}
		else if (nserials == 1)
			all = serials[0];
		else
			all = ledger_array(NULL, NULL, 0, TEXTOID);
		out[0] = all;
		out[1] = Int64GetDatum(cancelled + drawn);
		out[2] = Int64GetDatum(retired);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ---- certificates and tradable units ---- */

/* The retirement row of a certificate, rebuilt; false if there is none. */
static bool
retirement_read(const char *certificate, Retirement *r, bool *flagged)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1] = {CStringGetTextDatum(certificate)};
	SPITupleTable *tt;
	bool		isnull;

	ledger_plan_generic(&plan,
				"SELECT account, tonnes, purpose, beneficiary, jurisdiction, reference, serials, entry_id, "
				"       retired_at, recalled_at IS NOT NULL "
				"FROM carbon.retirement WHERE certificate = $1",
				1, (Oid[]) {TEXTOID});
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "certificate lookup failed");
	if (SPI_processed != 1)
		return false;
	tt = SPI_tuptable;
	r->account = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	r->tonnes = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &isnull));
	r->purpose = SPI_getvalue(tt->vals[0], tt->tupdesc, 3);
	r->beneficiary = SPI_getvalue(tt->vals[0], tt->tupdesc, 4);
	r->jurisdiction = SPI_getvalue(tt->vals[0], tt->tupdesc, 5);
	r->reference = SPI_getvalue(tt->vals[0], tt->tupdesc, 6);
	r->serials = datumCopy(SPI_getbinval(tt->vals[0], tt->tupdesc, 7, &isnull), false, -1);
	r->entry_id = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 8, &isnull));
	r->retired_at = DatumGetTimestampTz(SPI_getbinval(tt->vals[0], tt->tupdesc, 9, &isnull));
	*flagged = DatumGetBool(SPI_getbinval(tt->vals[0], tt->tupdesc, 10, &isnull));
	return true;
}

static bool
looks_like_certificate(const char *c)
{
	int			n = 0;

	for (; c[n]; n++)
		if (!(isdigit((unsigned char) c[n]) || (c[n] >= 'a' && c[n] <= 'f')) || n >= 64)
			return false;
	return n == 64;
}

/* verify_certificate(certificate) → boolean; false, never an error, for anything unknown or altered */
PG_FUNCTION_INFO_V1(ledger_verify_certificate);
Datum
ledger_verify_certificate(PG_FUNCTION_ARGS)
{
	char	   *certificate;
	Retirement	r;
	bool		flagged;
	bool		ok = false;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	certificate = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!looks_like_certificate(certificate))
		PG_RETURN_BOOL(false);
	ledger_spi_connect();
	if (retirement_read(certificate, &r, &flagged))
		ok = strcmp(sha256_hex(certificate_content(&r)), certificate) == 0;
	SPI_finish();
	PG_RETURN_BOOL(ok);
}

/* certificate(certificate) → jsonb: the content, whether it verifies, any recall; NULL if unknown */
PG_FUNCTION_INFO_V1(ledger_certificate);
Datum
ledger_certificate(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *certificate;
	Retirement	r;
	bool		flagged;
	Datum		values[3];
	bool		isnull;
	Datum		result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	certificate = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!looks_like_certificate(certificate))
		PG_RETURN_NULL();
	ledger_spi_connect();
	if (!retirement_read(certificate, &r, &flagged))
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	{
		char	   *content = certificate_content(&r);

		values[0] = CStringGetTextDatum(content);
		values[1] = BoolGetDatum(strcmp(sha256_hex(content), certificate) == 0);
		values[2] = CStringGetTextDatum(certificate);
	}
	ledger_plan_generic(&plan,
				"SELECT $1::jsonb || jsonb_build_object('certificate', $3, 'verifies', $2, "
				"       'recalled_at', recalled_at, 'recall_reason', recall_reason) "
				"FROM carbon.retirement WHERE certificate = $3",
				3, (Oid[]) {TEXTOID, BOOLOID, TEXTOID});
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "certificate lookup failed");
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * The tonnes an account holds in blocks of class I, or of any other class;
 * lockmode: the table's (RowExclusiveLock where the caller writes blocks).
 */
static int64
units_held(int64 account, bool class_i, LOCKMODE lockmode)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Datum		values[1] = {Int64GetDatum(account)};
	bool		isnull;
	BlockTake	bt = {.state = "held", .class_i = class_i ? 1 : 0};

	/* straight from the index when the table is plain (under the book's lock for a sale) */
	if (blocks_scan(class_i ? "unit_block_held_idx" : "unit_block_untradable_idx", account, &bt, INT_MAX, lockmode) >= 0)
		return bt.tonnes;
	ledger_plan_generic(&plans[class_i], class_i ?
				"SELECT coalesce(sum(last - first + 1), 0)::bigint FROM carbon.unit_block "
				"WHERE account = $1 AND state = 'held' AND class = 'I'" :
				"SELECT coalesce(sum(last - first + 1), 0)::bigint FROM carbon.unit_block "
				"WHERE account = $1 AND state = 'held' AND class <> 'I'",
				1, (Oid[]) {INT8OID});
	/* read-write: a fresh snapshot, after whatever lock the caller waited for */
	if (ledger_run_keyed(plans[class_i], values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "held units lookup failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The class I tonnes an account holds: what the market may escrow (class
 * II units never reach the book).
 */
int64
ledger_units_tradable(int64 account)
{
	return units_held(account, true, AccessShareLock);
}

/*
 * The held units of an account that may not trade (class II).  The market
 * counts the tradable ones as the CER balance (which counts every held
 * block: verify_integrity's units_match_balances) less these, without
 * reading every block of a trading firm (index unit_block_untradable_idx).
 * The market's: unit_block locked as its writes will lock it.
 */
int64
ledger_units_untradable(int64 account)
{
	return units_held(account, false, RowExclusiveLock);
}

/* tradable_units(account) → bigint */
PG_FUNCTION_INFO_V1(ledger_tradable_units);
Datum
ledger_tradable_units(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	LedgerAccount acc;
	int64		tonnes;

	ledger_check_acting(account, true);
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	tonnes = ledger_units_tradable(account);
	SPI_finish();
	PG_RETURN_INT64(tonnes);
}

/* _require_acting(account): the acting check of the value functions, for PL/pgSQL */
PG_FUNCTION_INFO_V1(ledger_require_acting);
Datum
ledger_require_acting(PG_FUNCTION_ARGS)
{
	ledger_check_acting(PG_GETARG_INT64(0), false);
	PG_RETURN_VOID();
}
