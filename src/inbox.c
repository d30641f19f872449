/*
 * inbox.c — bulk intake of behaviour: process_inbox() (批量行为导入).
 *
 * Sources COPY rows into carbon.behavior_inbox; process_inbox() takes them
 * in inbox order (seq), in batches, and gives each row exactly what
 * record_behavior() would give it in that order.  A batch is set-based:
 *   1. one query each for the batch's sources, methodologies (every version)
 *      and accounts; then every row is checked in C by behavior_check(),
 *      the same rules as the single path;
 *   2. the daily usage and points remainders the batch brings are created
 *      if missing and locked, in key order (rows an earlier batch locked
 *      stay locked and are not read again);
 *   3. grants, caps and remainders are computed in C as running state in
 *      seq order (behavior_grant(), as one by one);
 *   4. the behaviour rows go in all at once, straight into the heap and
 *      indexes when the table allows it; a row whose event id another
 *      session recorded meanwhile is a duplicate after all, and step 3 is
 *      redone without it;
 *   5. the credits join the call's: per account and per (account, asset,
 *      event time).  They are posted — one entry per ENTRY_ACCOUNTS
 *      accounts, lots merged per expiry — and usage and remainders written
 *      back, when INBOX_FLUSH of them are held and at the end of the call.
 * With issuance caps set, a batch goes one row at a time through
 * behavior_record() (each event takes its room under the cap in turn).
 * Memory is bounded: a batch lives in its own SPI connection; what the
 * call holds is capped by INBOX_FLUSH.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "behavior.h"
#include "catalog.h"
#include "journal.h"
#include "co2e.h"

#define INBOX_BATCH		50000
#define INBOX_FLUSH		100000	/* accounts' credits, lots or states held before writing */
#define ENTRY_ACCOUNTS	8000	/* 2 postings each, plus 2 per segment at worst: under the smallint seq */
#define INBOX_LOCK_KEY	INT64CONST(0x63626F6E696E6278)	/* "cbon inbx": processors queue on it */

/* One key type for the batch's hash tables: strings by value, numbers. */
typedef struct InboxKey
{
	const char *s1;
	const char *s2;
	int64		n;
	int64		t;
	int32		d;
} InboxKey;

static uint32
inbox_key_hash(const void *key, Size keysize pg_attribute_unused())
{
	const InboxKey *k = key;
	uint32		h = hash_bytes_uint32((uint32) k->n) ^ hash_bytes_uint32((uint32) (k->n >> 32));

	h = hash_combine(h, hash_bytes_uint32((uint32) k->d));
	h = hash_combine(h, hash_bytes_uint32((uint32) k->t ^ (uint32) (k->t >> 32)));
	if (k->s1)
		h = hash_combine(h, hash_bytes((const unsigned char *) k->s1, strlen(k->s1)));
	if (k->s2)
		h = hash_combine(h, hash_bytes((const unsigned char *) k->s2, strlen(k->s2)));
	return h;
}

static int
str_cmp_nullsafe(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL) == (b == NULL) ? 0 : 1;
	return strcmp(a, b);
}

static int
inbox_key_match(const void *key1, const void *key2, Size keysize pg_attribute_unused())
{
	const InboxKey *a = key1;
	const InboxKey *b = key2;

	if (a->n != b->n || a->d != b->d || a->t != b->t)
		return 1;
	if (str_cmp_nullsafe(a->s1, b->s1) != 0)
		return 1;
	return str_cmp_nullsafe(a->s2, b->s2);
}

static HTAB *
inbox_hash_in(MemoryContext cxt, const char *name, Size entrysize, long nelem)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(InboxKey);
	ctl.entrysize = entrysize;
	ctl.hash = inbox_key_hash;
	ctl.match = inbox_key_match;
	ctl.hcxt = cxt;
	return hash_create(name, Max(nelem, 16), &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static HTAB *
inbox_hash(const char *name, Size entrysize, long nelem)
{
	return inbox_hash_in(CurrentMemoryContext, name, entrysize, nelem);
}

static void *
inbox_lookup(HTAB *h, const char *s1, const char *s2, int64 n, int64 t, int32 d, HASHACTION action, bool *found)
{
	InboxKey	k;

	memset(&k, 0, sizeof(k));
	k.s1 = s1;
	k.s2 = s2;
	k.n = n;
	k.t = t;
	k.d = d;
	return hash_search(h, &k, action, found);
}

typedef struct SourceEntry
{
	InboxKey	key;			/* s1 = source */
	bool		found;
	char	  **scenarios;		/* NULL elements stay NULL */
	int			nscenarios;
	char	   *role;
} SourceEntry;

typedef struct MethodologyEntry
{
	InboxKey	key;			/* s1 = code */
	int			nversions;		/* effective_from descending, version descending */
	MethodologyVersion *versions;
} MethodologyEntry;

typedef struct AccountEntry
{
	InboxKey	key;			/* n = account id */
	LedgerAccount acc;
} AccountEntry;

/* A daily usage (account, scenario, day) or a remainder (account). */
typedef struct StateEntry
{
	InboxKey	key;
	int64		value;			/* used / milli, as the rows so far leave it */
	int64		last;			/* last_grant / last_points */
	bool		touched;		/* changed by a granted event: to be written */
	int			gen;			/* the batch the saved copy below is from */
	int64		saved_value;	/* as the batch found it, to compute it again */
	int64		saved_last;
	bool		saved_touched;
} StateEntry;

typedef struct InboxRow
{
	BehaviorInput in;
	bool		identity;		/* has a source and an event id */
	bool		dup;			/* an earlier row, or a stored behaviour, has its id */
	const char *why;			/* rejection reason from the checks */
	int64		er;
	const Methodology *m;		/* the version in force, or NULL */
	const LedgerAccount *acc;
	bool		has_day;
	DateADT		day;			/* local day of occurred_at */
	StateEntry *usage;			/* when the methodology has a daily cap */
	StateEntry *carry;
	BehaviorResult out;
	ClaimStore	st;
	bool		granted;		/* stores usage and remainder, credits */
	int64		id;				/* behaviour id */
} InboxRow;

/*
 * What lives across the batches of one call: the daily usage and remainder
 * rows it holds locked, with their running values, and the credits not yet
 * posted.  Written back when they grow past INBOX_FLUSH entries and at the
 * end, so that each account costs a write or two per call, not per batch.
 */
typedef struct InboxCall
{
	MemoryContext cxt;
	int			gen;			/* the current batch */
	HTAB	   *usage;			/* StateEntry by (scenario, account, day) */
	HTAB	   *carry;			/* StateEntry by account */
	HTAB	   *credits;		/* AccountCredit by account */
	HTAB	   *lots;			/* LotCredit by (account, asset, occurred_at) */
	bool		link_entries;	/* record carbon.behavior_batch (0.2 on) */
	int64		window_first;	/* the behaviours credited since the last flush: */
	int64		window_last;	/* their ids lie in [first, last] */
} InboxCall;

typedef struct AccountCredit
{
	InboxKey	key;			/* n = account */
	LedgerAccount acc;
	int64		red;
	int64		points;
	int64		entry_id;		/* the entry that posts it */
} AccountCredit;

typedef struct LotCredit
{
	InboxKey	key;			/* n = account, d = asset, t = occurred_at */
	int64		amount;
} LotCredit;

typedef struct InboxBatch
{
	BehaviorContext *ctx;
	InboxCall  *call;
	InboxRow   *rows;
	int			n;
	HTAB	   *sources;
	HTAB	   *methodologies;
	HTAB	   *accounts;
	StateEntry **fresh;			/* state entries new in this batch, to lock */
	int			nfresh;
	struct SourceEntry *last_source;	/* row_facts' last lookups */
	struct MethodologyEntry *last_methodology;
} InboxBatch;

static Datum
array_of(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	dims[0] = n;
	if (n == 0)
		return PointerGetDatum(construct_empty_array(elemtype));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype, typlen, typbyval, typalign));
}

/* The distinct strings (or ids) of the batch, as one array per lookup. */
static Datum
distinct_keys(HTAB *h, Oid elemtype)
{
	HASH_SEQ_STATUS seq;
	InboxKey   *k;
	long		n = hash_get_num_entries(h);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;

	hash_seq_init(&seq, h);
	while ((k = hash_seq_search(&seq)) != NULL)
		elems[i++] = elemtype == TEXTOID ? CStringGetTextDatum(k->s1) : Int64GetDatum(k->n);
	return array_of(elems, NULL, i, elemtype);
}

/* One lookup query over the distinct keys of `keys`; its rows in SPI_tuptable. */
static void
batch_query(SPIPlanPtr *plan, const char *sql, HTAB *keys, Oid elemtype)
{
	Oid			types[1] = {elemtype == TEXTOID ? TEXTARRAYOID : INT8ARRAYOID};
	Datum		arg[1];

	ledger_plan(plan, sql, 1, types);
	arg[0] = distinct_keys(keys, elemtype);
	if (SPI_execute_plan(*plan, arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "inbox lookup failed");
}

/* 1. The batch's sources, methodologies and accounts, one query each. */
static void
batch_lookups(InboxBatch *b)
{
	static SPIPlanPtr source_plan = NULL;
	static SPIPlanPtr methodology_plan = NULL;
	static SPIPlanPtr account_plan = NULL;

	b->sources = inbox_hash("inbox sources", sizeof(SourceEntry), 16);
	b->methodologies = inbox_hash("inbox methodologies", sizeof(MethodologyEntry), 16);
	b->accounts = inbox_hash("inbox accounts", sizeof(AccountEntry), b->n);
	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		bool		found;

		if (!r->identity)
			continue;
		{
			SourceEntry *se = inbox_lookup(b->sources, r->in.source, NULL, 0, 0, 0, HASH_ENTER, &found);

			if (!found)
			{
				se->found = false;	/* until the lookup finds it */
				se->role = NULL;
				se->nscenarios = 0;
			}
		}
		if (r->in.methodology)
		{
			MethodologyEntry *me = inbox_lookup(b->methodologies, r->in.methodology, NULL, 0, 0, 0, HASH_ENTER, &found);

			if (!found)
				me->nversions = 0;
		}
		if (r->in.has_account)
		{
			AccountEntry *ae = inbox_lookup(b->accounts, NULL, NULL, r->in.account, 0, 0, HASH_ENTER, &found);

			if (!found)
				ae->acc.id = 0;	/* not (yet) found */
		}
	}

	batch_query(&source_plan,
				"SELECT source, scenarios, operator_role FROM carbon.source WHERE source = ANY ($1)",
				b->sources, TEXTOID);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		scen;
		SourceEntry *se = inbox_lookup(b->sources, SPI_getvalue(tup, desc, 1), NULL, 0, 0, 0, HASH_FIND, NULL);

		if (se == NULL)
			continue;
		se->found = true;
		se->role = SPI_getvalue(tup, desc, 3);
		scen = SPI_getbinval(tup, desc, 2, &isnull);
		se->nscenarios = 0;
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;

			deconstruct_array(DatumGetArrayTypePCopy(scen), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &se->nscenarios);
			se->scenarios = palloc(sizeof(char *) * Max(se->nscenarios, 1));
			for (int k = 0; k < se->nscenarios; k++)
				se->scenarios[k] = nulls[k] ? NULL : TextDatumGetCString(elems[k]);
		}
	}

	if (hash_get_num_entries(b->methodologies) > 0)
	{
		/* every version, in the order methodology_version_in_force() reads them */
		batch_query(&methodology_plan,
					"SELECT code, effective_from, status = 'published' AND effective_from IS NOT NULL, "
					METHODOLOGY_COLUMNS " "
					"FROM carbon.methodology WHERE code = ANY ($1) "
					"ORDER BY code, effective_from DESC NULLS LAST, version DESC",
					b->methodologies, TEXTOID);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			MethodologyEntry *me = inbox_lookup(b->methodologies, SPI_getvalue(tup, desc, 1), NULL, 0, 0, 0,
												HASH_FIND, NULL);
			MethodologyVersion *v;

			if (me == NULL)
				continue;
			/* the rows of a code are few: grow its array one at a time */
			me->versions = me->nversions == 0 ? palloc(sizeof(MethodologyVersion))
				: repalloc(me->versions, sizeof(MethodologyVersion) * (me->nversions + 1));
			v = &me->versions[me->nversions++];
			v->effective_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
			v->published = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) &&
				methodology_from_row(tup, desc, 4, me->key.s1, &v->m);
		}
	}

	batch_query(&account_plan,
				"SELECT id, kind, tier, region, status FROM carbon.account WHERE id = ANY ($1)",
				b->accounts, INT8OID);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		AccountEntry *ae = inbox_lookup(b->accounts, NULL, NULL, id, 0, 0, HASH_FIND, NULL);

		if (ae == NULL)
			continue;
		ledger_account_from_row(&ae->acc, id, tup, desc, 2);
	}
}

/*
 * The facts one by one would read for a row, from the batch's lookups;
 * also points the row at its methodology version and account.  Rows come
 * in runs from one source and methodology: the last ones are kept at hand.
 */
static void
row_facts(InboxBatch *b, InboxRow *r, BehaviorFacts *f)
{
	SourceEntry *se;
	AccountEntry *ae;

	if (b->last_source == NULL || strcmp(b->last_source->key.s1, r->in.source) != 0)
		b->last_source = inbox_lookup(b->sources, r->in.source, NULL, 0, 0, 0, HASH_FIND, NULL);
	se = b->last_source;
	memset(f, 0, sizeof(*f));
	r->m = NULL;
	r->acc = NULL;
	if (r->in.methodology)
	{
		MethodologyEntry *me;

		if (b->last_methodology == NULL || strcmp(b->last_methodology->key.s1, r->in.methodology) != 0)
			b->last_methodology = inbox_lookup(b->methodologies, r->in.methodology, NULL, 0, 0, 0,
											   HASH_FIND, NULL);
		me = b->last_methodology;
		f->methodology_known = me->nversions > 0;
		/* the version in force at occurred_at (one rule: methodology.c) */
		if (r->in.has_occurred_at)
			r->m = methodology_version_in_force(me->versions, me->nversions, r->in.occurred_at);
		if (r->m != NULL)
		{
			f->m = *r->m;
			f->has_m = true;
		}
	}
	f->source_found = se->found;
	f->role = se->role;
	if (se->found && f->has_m)
		for (int k = 0; k < se->nscenarios; k++)
			if (se->scenarios[k] && strcmp(se->scenarios[k], f->m.scenario) == 0)
			{
				f->scenario_ok = true;
				break;
			}
	if (r->in.has_account)
	{
		ae = inbox_lookup(b->accounts, NULL, NULL, r->in.account, 0, 0, HASH_FIND, NULL);
		if (ae->acc.id != 0)
		{
			r->acc = &ae->acc;
			f->acc = ae->acc;
			f->account_found = true;
		}
	}
}

/*
 * Create the rows of `values` that are missing, then lock them all in key
 * order; the locked rows (current values) are left in SPI_tuptable.
 */
static void
create_and_lock(SPIPlanPtr *create_plan, const char *create_sql, SPIPlanPtr *lock_plan, const char *lock_sql,
				int nargs, Oid *types, Datum *values, int nrows)
{
	ledger_plan(create_plan, create_sql, nargs, types);
	if (SPI_execute_plan(*create_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "inbox state insert failed");
	ledger_plan(lock_plan, lock_sql, nargs, types);
	if (SPI_execute_plan(*lock_plan, values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) nrows)
		elog(ERROR, "inbox state lock failed");
}

/*
 * 2. Create the missing usage and remainder rows the batch brings, then
 * lock them in key order (rows locked by an earlier batch stay locked).
 */
static void
batch_lock_states(InboxBatch *b)
{
	static SPIPlanPtr usage_new = NULL;
	static SPIPlanPtr usage_lock = NULL;
	static SPIPlanPtr carry_new = NULL;
	static SPIPlanPtr carry_lock = NULL;
	Oid			usage_types[3] = {INT8ARRAYOID, TEXTARRAYOID, DATEARRAYOID};
	Oid			carry_types[1] = {INT8ARRAYOID};
	Datum	   *acc = palloc(sizeof(Datum) * Max(b->nfresh, 1));
	Datum	   *scen = palloc(sizeof(Datum) * Max(b->nfresh, 1));
	Datum	   *day = palloc(sizeof(Datum) * Max(b->nfresh, 1));
	Datum		values[3];
	int			nusage = 0,
				ncarry = 0;

	for (int i = 0; i < b->nfresh; i++)
		if (b->fresh[i]->key.s1)	/* a usage: (scenario, account, day) */
		{
			acc[nusage] = Int64GetDatum(b->fresh[i]->key.n);
			scen[nusage] = CStringGetTextDatum(b->fresh[i]->key.s1);
			day[nusage++] = DateADTGetDatum(b->fresh[i]->key.d);
		}
	if (nusage > 0)
	{
		values[0] = array_of(acc, NULL, nusage, INT8OID);
		values[1] = array_of(scen, NULL, nusage, TEXTOID);
		values[2] = array_of(day, NULL, nusage, DATEOID);
		create_and_lock(&usage_new,
						"INSERT INTO carbon.daily_usage (account, scenario, day, used, last_grant) "
						"SELECT a, s, d, 0, 0 FROM unnest($1, $2, $3) AS k(a, s, d) ORDER BY a, s, d "
						"ON CONFLICT (account, scenario, day) DO NOTHING",
						&usage_lock,
						"SELECT u.account, u.scenario, u.day, u.used FROM carbon.daily_usage u "
						"JOIN unnest($1, $2, $3) AS k(a, s, d) "
						"  ON u.account = k.a AND u.scenario = k.s AND u.day = k.d "
						"ORDER BY u.account, u.scenario, u.day FOR UPDATE OF u",
						3, usage_types, values, nusage);
		for (uint64 k = 0; k < SPI_processed; k++)
		{
			HeapTuple	tup = SPI_tuptable->vals[k];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			StateEntry *e = inbox_lookup(b->call->usage, SPI_getvalue(tup, desc, 2), NULL,
										 DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)), 0,
										 DatumGetDateADT(SPI_getbinval(tup, desc, 3, &isnull)), HASH_FIND, NULL);

			e->value = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		}
	}
	for (int i = 0; i < b->nfresh; i++)
		if (b->fresh[i]->key.s1 == NULL)	/* a remainder: account */
			acc[ncarry++] = Int64GetDatum(b->fresh[i]->key.n);
	if (ncarry > 0)
	{
		values[0] = array_of(acc, NULL, ncarry, INT8OID);
		create_and_lock(&carry_new,
						"INSERT INTO carbon.points_carry (account, milli, last_points) "
						"SELECT a, 0, 0 FROM unnest($1) AS a ORDER BY a ON CONFLICT (account) DO NOTHING",
						&carry_lock,
						"SELECT account, milli FROM carbon.points_carry WHERE account = ANY ($1) "
						"ORDER BY account FOR UPDATE",
						1, carry_types, values, ncarry);
		for (uint64 k = 0; k < SPI_processed; k++)
		{
			HeapTuple	tup = SPI_tuptable->vals[k];
			bool		isnull;
			StateEntry *e = inbox_lookup(b->call->carry, NULL, NULL,
										 DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)),
										 0, 0, HASH_FIND, NULL);

			e->value = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		}
	}
}

/* A state as the batch found it: saved once per batch, restored to compute again. */
static void
state_begin(StateEntry *e, int gen)
{
	if (e == NULL)
		return;
	if (e->gen != gen)
	{
		e->gen = gen;
		e->saved_value = e->value;
		e->saved_last = e->last;
		e->saved_touched = e->touched;
	}
	e->value = e->saved_value;
	e->last = e->saved_last;
	e->touched = e->saved_touched;
}

/* 3. Grants, caps and remainders as running state, in seq order. */
static void
batch_compute(InboxBatch *b)
{
	for (int i = 0; i < b->n; i++)
	{
		state_begin(b->rows[i].usage, b->call->gen);
		state_begin(b->rows[i].carry, b->call->gen);
	}
	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		int64		cap_left;

		r->granted = false;
		memset(&r->out, 0, sizeof(r->out));
		memset(&r->st, 0, sizeof(r->st));
		if (!r->identity || r->dup)
			continue;
		r->out.status = "accepted";
		if (r->why)
		{
			behavior_reject(&r->out, r->why);
			continue;
		}
		cap_left = PG_INT64_MAX;
		if (r->usage)
			cap_left = r->usage->value >= r->m->daily_cap_g ? 0 : r->m->daily_cap_g - r->usage->value;
		if (!behavior_grant(b->ctx, r->m, r->er, cap_left, r->carry->value, &r->out, &r->st))
			continue;			/* rejected as implausible */
		r->granted = true;
		if (r->st.has_cap)
		{
			r->usage->value += r->st.grant;
			r->usage->last = r->st.grant;
			r->usage->touched = true;
		}
		r->carry->value = r->st.milli;
		r->carry->last = r->out.points;
		r->carry->touched = true;
	}
}

#define BEHAVIOR_INSERT \
	"INSERT INTO carbon.behavior (id, source, event_id, account, methodology, version, scenario, " \
	"  activity, occurred_at, local_day, attrs, status, reduction, points, reason) " \
	"SELECT u.id, u.source, u.event_id, u.account, u.methodology, u.version, u.scenario, " \
	"       u.activity, u.occurred_at, u.local_day, u.attrs, u.status, carbon.co2e_grams(u.grams), " \
	"       u.points, u.reason " \
	"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) " \
	"  AS u(id, source, event_id, account, methodology, version, scenario, activity, occurred_at, " \
	"       local_day, attrs, status, grams, points, reason)"

static const Oid behavior_insert_types[15] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
	TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, NUMERICARRAYOID, TIMESTAMPTZARRAYOID, DATEARRAYOID,
JSONBARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};

/* carbon.behavior's columns, in the order batch_insert() fills them. */
static const char *const behavior_columns[15] = {"id", "source", "event_id", "account", "methodology",
	"version", "scenario", "activity", "occurred_at", "local_day", "attrs", "status", "reduction",
"points", "reason"};

#define DIRECT_CHUNK 1000

/*
 * Write the rows straight into carbon.behavior and its indexes, as COPY
 * does (heap multi-insert, then each index), skipping the planner and most
 * of the executor: about a third of a plain INSERT's cost.  Every NOT NULL
 * and CHECK constraint the table has is checked on every row, as COPY
 * checks them (ExecConstraints).  Only when the table is as the extension
 * made it otherwise: no triggers, no partitions, no columns but ours,
 * plain indexes; else false, with nothing written, and the caller uses SQL.
 * A duplicate event id raises unique_violation from the unique index, as
 * an INSERT would.
 */
static bool
insert_direct(Datum **cols, bool **nulls, int n)
{
	Oid			relid = get_relname_relid("behavior", get_namespace_oid("carbon", false));
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	map[15];
	AttrNumber	recorded_at = InvalidAttrNumber;
	int			known = 0;
	List	   *index_oids;
	Relation   *indexes;
	IndexInfo **infos;
	int			nindexes = 0;
	bool		plain = rel->trigdesc == NULL && !rel->rd_rel->relhassubclass && !rel->rd_rel->relispartition;
	EState	   *estate;
	ResultRelInfo *rri;
	RangeTblEntry *rte;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	CommandId	cid;
	Datum	   *values;
	bool	   *isnull;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	/* every live column is one we know: ours, entry_id (NULL) and recorded_at (now) */
	for (int c = 0; c < 15; c++)
		map[c] = InvalidAttrNumber;
	for (int a = 0; plain && a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		int			c;

		if (att->attisdropped)
			continue;
		known++;
		if (strcmp(NameStr(att->attname), "recorded_at") == 0)
		{
			recorded_at = att->attnum;
			continue;
		}
		if (strcmp(NameStr(att->attname), "entry_id") == 0)
			continue;
		for (c = 0; c < 15; c++)
			if (strcmp(NameStr(att->attname), behavior_columns[c]) == 0)
				break;
		if (c == 15)
			plain = false;
		else
			map[c] = att->attnum;
	}
	/* our columns, entry_id and recorded_at: nothing else may need a value */
	plain = plain && known == lengthof(behavior_columns) + 2 && recorded_at != InvalidAttrNumber;
	index_oids = plain ? RelationGetIndexList(rel) : NIL;
	indexes = palloc(sizeof(Relation) * Max(list_length(index_oids), 1));
	infos = palloc(sizeof(IndexInfo *) * Max(list_length(index_oids), 1));
	if (plain)
	{
		for (int k = 0; k < list_length(index_oids); k++)
		{
			Relation	idx = index_open(list_nth_oid(index_oids, k), RowExclusiveLock);
			IndexInfo  *ii = BuildIndexInfo(idx);

			indexes[nindexes] = idx;
			infos[nindexes++] = ii;
			if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL || ii->ii_ExclusionOps != NULL ||
				!idx->rd_index->indimmediate)
				plain = false;
		}
	}
	if (!plain)
	{
		for (int i = 0; i < nindexes; i++)
			index_close(indexes[i], NoLock);
		table_close(rel, NoLock);
		return false;
	}

	/* the executor state ExecConstraints() needs, as COPY sets it up */
	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);

	cid = GetCurrentCommandId(true);
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * DIRECT_CHUNK);
	for (int i = 0; i < DIRECT_CHUNK; i++)
		slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);
	for (int from = 0; from < n; from += DIRECT_CHUNK)
	{
		int			m = Min(DIRECT_CHUNK, n - from);

		for (int k = 0; k < m; k++)
		{
			for (int a = 0; a < desc->natts; a++)
			{
				values[a] = (Datum) 0;
				isnull[a] = true;
			}
			for (int c = 0; c < 15; c++)
			{
				values[map[c] - 1] = cols[c][from + k];
				isnull[map[c] - 1] = nulls[c][from + k];
			}
			values[recorded_at - 1] = TimestampTzGetDatum(now);
			isnull[recorded_at - 1] = false;
			ExecClearTuple(slots[k]);
			ExecStoreHeapTuple(heap_form_tuple(desc, values, isnull), slots[k], true);
			if (desc->constr)
			{
				ExecConstraints(rri, slots[k], estate);
				ResetPerTupleExprContext(estate);
			}
		}
		table_multi_insert(rel, slots, m, cid, 0, bistate);
		for (int k = 0; k < m; k++)
			for (int i = 0; i < nindexes; i++)
			{
				Datum		ivalues[INDEX_MAX_KEYS];
				bool		inulls[INDEX_MAX_KEYS];

				if (!infos[i]->ii_ReadyForInserts)
					continue;
				FormIndexDatum(infos[i], slots[k], NULL, ivalues, inulls);
				index_insert(indexes[i], ivalues, inulls, &slots[k]->tts_tid, rel,
							 indexes[i]->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
							 false, infos[i]);
			}
	}
	for (int i = 0; i < DIRECT_CHUNK; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	for (int i = 0; i < nindexes; i++)
		index_close(indexes[i], NoLock);
	table_close(rel, NoLock);
	CommandCounterIncrement();	/* the statements after see the rows */
	return true;
}

/* The rows as arrays, for the SQL INSERTs. */
static void
insert_arrays(Datum **cols, bool **nulls, int n, Datum *values)
{
	static const Oid elem[15] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTOID, NUMERICOID,
	TIMESTAMPTZOID, DATEOID, JSONBOID, TEXTOID, INT8OID, INT8OID, TEXTOID};

	for (int c = 0; c < 15; c++)
		values[c] = array_of(cols[c], nulls[c], n, elem[c]);
}

/* The batch's behaviour rows as columns (batch_insert() fills them). */
typedef struct BehaviorRows
{
	Datum	  **cols;
	bool	  **nulls;
	int			n;
} BehaviorRows;

/* All the rows: straight into the table when it allows it, else one INSERT. */
static void
insert_rows(void *arg)
{
	static SPIPlanPtr plan = NULL;
	BehaviorRows *rows = arg;
	Datum		values[15];

	if (insert_direct(rows->cols, rows->nulls, rows->n))
		return;
	insert_arrays(rows->cols, rows->nulls, rows->n, values);
	ledger_plan(&plan, BEHAVIOR_INSERT, 15, behavior_insert_types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT || SPI_processed != (uint64) rows->n)
		elog(ERROR, "behaviour insert failed");
}

/*
 * The rows, in a subtransaction: true when every row went in; false, with
 * nothing written, on a unique violation (an event recorded meanwhile).
 * Other errors go on.
 */
static bool
insert_all_or_none(Datum **cols, bool **nulls, int n)
{
	BehaviorRows rows = {cols, nulls, n};

	return ledger_try_subxact(insert_rows, &rows, ERRCODE_UNIQUE_VIOLATION);
}

/* 4. The behaviour rows, in one statement; false if some turned out duplicates. */
static bool
batch_insert(InboxBatch *b)
{
	static SPIPlanPtr id_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			id_types[1] = {INT4OID};
	Oid		   *types = (Oid *) behavior_insert_types;
	Datum	   *cols[15];
	bool	   *nulls[15];
	Datum		values[15];
	Datum		want;
	int			n = 0;
	bool		all = true;

	for (int i = 0; i < b->n; i++)
		if (b->rows[i].identity && !b->rows[i].dup)
			n++;
	if (n == 0)
		return true;
	ledger_plan(&id_plan, "SELECT nextval('carbon.behavior_id_seq') FROM generate_series(1, $1)", 1, id_types);
	want = Int32GetDatum(n);
	if (SPI_execute_plan(id_plan, &want, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) n)
		elog(ERROR, "behaviour ids failed");
	for (int c = 0; c < 15; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0, k = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		bool		isnull;

		if (!r->identity || r->dup)
			continue;
		r->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull));
		r->out.behavior_id = r->id;
		cols[0][k] = Int64GetDatum(r->id);
		cols[1][k] = CStringGetTextDatum(r->in.source);
		cols[2][k] = CStringGetTextDatum(r->in.event_id);
		cols[3][k] = Int64GetDatum(r->in.account);
		nulls[3][k] = !r->in.has_account;
		if (r->in.methodology)
			cols[4][k] = CStringGetTextDatum(r->in.methodology);
		nulls[4][k] = r->in.methodology == NULL;
		if (r->m)
		{
			cols[5][k] = Int32GetDatum(r->m->version);
			cols[6][k] = CStringGetTextDatum(r->m->scenario);
		}
		nulls[5][k] = nulls[6][k] = r->m == NULL;
		cols[7][k] = PointerGetDatum(r->in.activity);
		nulls[7][k] = r->in.activity == NULL;
		cols[8][k] = TimestampTzGetDatum(r->in.occurred_at);
		nulls[8][k] = !r->in.has_occurred_at;
		cols[9][k] = DateADTGetDatum(r->day);
		nulls[9][k] = !r->has_day;
		cols[10][k] = PointerGetDatum(r->in.attrs);
		nulls[10][k] = r->in.attrs == NULL;
		cols[11][k] = CStringGetTextDatum(r->out.status);
		cols[12][k] = Int64GetDatum(r->out.grams);
		cols[13][k] = Int64GetDatum(r->out.points);
		if (r->out.reason)
			cols[14][k] = CStringGetTextDatum(r->out.reason);
		nulls[14][k] = r->out.reason == NULL;
		k++;
	}
	/*
	 * All rows at once first (a speculative INSERT costs about half as much
	 * again); if an event was recorded meanwhile that fails on the unique
	 * key, and the same rows go in again with ON CONFLICT DO NOTHING.
	 */
	if (insert_all_or_none(cols, nulls, n))
		return true;
	insert_arrays(cols, nulls, n, values);
	ledger_plan(&insert_plan, BEHAVIOR_INSERT " ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
				15, types);
	if (SPI_execute_plan(insert_plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "behaviour insert failed");
	if (SPI_processed != (uint64) n)
	{
		/* recorded meanwhile by another session: those rows are duplicates */
		HTAB	   *inserted = inbox_hash("inbox inserted", sizeof(InboxKey), (long) SPI_processed);

		for (uint64 k = 0; k < SPI_processed; k++)
		{
			bool		isnull;

			inbox_lookup(inserted, NULL, NULL,
						 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull)),
						 0, 0, HASH_ENTER, NULL);
		}
		for (int i = 0; i < b->n; i++)
		{
			InboxRow   *r = &b->rows[i];

			if (r->identity && !r->dup && inbox_lookup(inserted, NULL, NULL, r->id, 0, 0, HASH_FIND, NULL) == NULL)
			{
				r->dup = true;
				all = false;
			}
		}
	}
	return all;
}

/* After a late duplicate: the figures of the inserted rows, recomputed. */
static void
batch_fix_figures(InboxBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum	   *cols[5];
	bool	   *rnulls = palloc0(sizeof(bool) * b->n);
	Datum		values[5];
	int			k = 0;

	for (int c = 0; c < 5; c++)
		cols[c] = palloc(sizeof(Datum) * b->n);
	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];

		if (!r->identity || r->dup)
			continue;
		cols[0][k] = Int64GetDatum(r->id);
		cols[1][k] = CStringGetTextDatum(r->out.status);
		cols[2][k] = Int64GetDatum(r->out.grams);
		cols[3][k] = Int64GetDatum(r->out.points);
		if (r->out.reason)
			cols[4][k] = CStringGetTextDatum(r->out.reason);
		rnulls[k] = r->out.reason == NULL;
		k++;
	}
	values[0] = array_of(cols[0], NULL, k, INT8OID);
	values[1] = array_of(cols[1], NULL, k, TEXTOID);
	values[2] = array_of(cols[2], NULL, k, INT8OID);
	values[3] = array_of(cols[3], NULL, k, INT8OID);
	values[4] = array_of(cols[4], rnulls, k, TEXTOID);
	ledger_plan(&plan,
				"UPDATE carbon.behavior b SET status = u.status, reduction = carbon.co2e_grams(u.grams), "
				"       points = u.points, reason = u.reason "
				"FROM unnest($1, $2, $3, $4, $5) AS u(id, status, grams, points, reason) WHERE b.id = u.id",
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "behaviour update failed");
}

static int
credit_cmp(const void *a, const void *b)
{
	const AccountCredit *x = *(AccountCredit *const *) a;
	const AccountCredit *y = *(AccountCredit *const *) b;

	return x->key.n < y->key.n ? -1 : x->key.n > y->key.n;
}

/* 5. The batch's credits join the call's: per account, and per (account, asset, event time) for lots. */
static void
batch_accumulate(InboxBatch *b)
{
	InboxCall  *call = b->call;

	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		AccountCredit *c;
		bool		found;

		if (!r->granted || r->dup || r->st.grant <= 0)
			continue;
		c = inbox_lookup(call->credits, NULL, NULL, r->in.account, 0, 0, HASH_ENTER, &found);
		if (!found)
		{
			c->acc = *r->acc;
			c->red = c->points = 0;
			c->entry_id = 0;
		}
		c->red += r->st.grant;
		c->points += r->out.points;
		if (call->window_first == 0 || r->id < call->window_first)
			call->window_first = r->id;
		if (r->id > call->window_last)
			call->window_last = r->id;
		for (int k = 0; k < 2; k++)
		{
			int16		a = k == 0 ? ASSET_POINT : ASSET_RED;
			int64		amount = a == ASSET_RED ? r->st.grant : r->out.points;
			LotCredit  *lc;

			if (amount <= 0)
				continue;
			lc = inbox_lookup(call->lots, NULL, NULL, r->in.account, r->in.occurred_at, a, HASH_ENTER, &found);
			lc->amount = found ? lc->amount + amount : amount;
		}
	}
}

/*
 * Which behaviours a bulk entry credits: those of its accounts (its
 * postings) recorded by this call since the last flush, ids in [first,
 * last], without an entry of their own (the single path names its entry in
 * behavior.entry_id).  reverse_entry() reads it to mark them reversed.
 */
static void
link_batch_entry(int64 entry_id, int64 first, int64 last)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3] = {Int64GetDatum(entry_id), Int64GetDatum(first), Int64GetDatum(last)};

	ledger_plan(&plan,
				"INSERT INTO carbon.behavior_batch (entry_id, first_behavior, last_behavior) VALUES ($1, $2, $3)",
				3, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "behaviour batch link failed");
}

/*
 * Post the credits held: one entry per ENTRY_ACCOUNTS accounts (a debit of
 * each segment's issuance account per asset), then the lots, merged by
 * expiry, in one statement.  Needs an SPI connection.
 */
static void
call_flush_credits(InboxCall *call)
{
	HASH_SEQ_STATUS seq;
	AccountCredit *c;
	AccountCredit **sorted;
	LotCredit  *lc;
	TimestampTz last_basis = 0,
				last_expiry = 0;
	long		ncredits = hash_get_num_entries(call->credits);
	long		nlots = hash_get_num_entries(call->lots);
	Datum	   *acc,
			   *asset,
			   *basis,
			   *amount,
			   *entry;
	long		i = 0;

	if (ncredits > 0)
	{
		sorted = palloc(sizeof(AccountCredit *) * ncredits);
		hash_seq_init(&seq, call->credits);
		while ((c = hash_seq_search(&seq)) != NULL)
			sorted[i++] = c;
		qsort(sorted, ncredits, sizeof(AccountCredit *), credit_cmp);
		for (long from = 0; from < ncredits; from += ENTRY_ACCOUNTS)
		{
			long		to = Min(from + ENTRY_ACCOUNTS, ncredits);
			int			cap = (int) (to - from) * 4;
			const LedgerAccount **accs = palloc(sizeof(LedgerAccount *) * cap);
			int16	   *assets = palloc(sizeof(int16) * cap);
			int64	   *amounts = palloc(sizeof(int64) * cap);
			int			n = 0;
			int			nparticipant;
			int64		entry_id;
			LedgerEntry batch;

			for (long j = from; j < to; j++)
			{
				c = sorted[j];
				accs[n] = &c->acc;
				assets[n] = ASSET_RED;
				amounts[n++] = c->red;
				if (c->points > 0)
				{
					accs[n] = &c->acc;
					assets[n] = ASSET_POINT;
					amounts[n++] = c->points;
				}
			}
			/* the segments' issuance accounts: one posting each per asset */
			nparticipant = n;
			for (int p = 0; p < nparticipant; p++)
			{
				const LedgerAccount *issuer = ledger_system_account_info("issuance", assets[p], accs[p]->tier,
																		   accs[p]->region);
				int			q;

				for (q = nparticipant; q < n; q++)
					if (accs[q] == issuer)
						break;
				if (q == n)
				{
					accs[n] = issuer;
					assets[n] = assets[p];
					amounts[n++] = 0;
				}
				amounts[q] -= amounts[p];
			}
			batch = ledger_entry("behavior", psprintf("行为批量入账 credits of %ld accounts from the inbox", to - from),
								 n, accs, assets, amounts);
			batch.holdings_moved = true;	/* lots are credited per event time below */
			entry_id = ledger_post(&batch);
			for (long j = from; j < to; j++)
				sorted[j]->entry_id = entry_id;
			if (call->link_entries)
				link_batch_entry(entry_id, call->window_first, call->window_last);
			pfree(accs);
			pfree(assets);
			pfree(amounts);
		}
	}
	if (nlots > 0)
	{
		acc = palloc(sizeof(Datum) * nlots);
		asset = palloc(sizeof(Datum) * nlots);
		basis = palloc(sizeof(Datum) * nlots);
		amount = palloc(sizeof(Datum) * nlots);
		entry = palloc(sizeof(Datum) * nlots);
		i = 0;
		hash_seq_init(&seq, call->lots);
		while ((lc = hash_seq_search(&seq)) != NULL)
		{
			c = inbox_lookup(call->credits, NULL, NULL, lc->key.n, 0, 0, HASH_FIND, NULL);
			acc[i] = Int64GetDatum(lc->key.n);
			asset[i] = Int16GetDatum((int16) lc->key.d);
			if (i == 0 || lc->key.t != last_basis)	/* the expiry once per event time in a run */
			{
				last_basis = lc->key.t;
				last_expiry = ledger_fresh_expiry(last_basis);
			}
			basis[i] = TimestampTzGetDatum(last_expiry);
			amount[i] = Int64GetDatum(lc->amount);
			entry[i++] = Int64GetDatum(c->entry_id);
		}
		ledger_lots_credit_fresh(array_of(acc, NULL, i, INT8OID), array_of(asset, NULL, i, INT2OID),
								 array_of(basis, NULL, i, TIMESTAMPTZOID), array_of(amount, NULL, i, INT8OID),
								 array_of(entry, NULL, i, INT8OID));
	}
	hash_destroy(call->credits);
	hash_destroy(call->lots);
	call->window_first = call->window_last = 0;
	call->credits = inbox_hash_in(call->cxt, "inbox credits", sizeof(AccountCredit), 1024);
	call->lots = inbox_hash_in(call->cxt, "inbox lots", sizeof(LotCredit), 1024);
	ledger_flush_deferred();
}

/*
 * Write back the usage and remainders the call changed.  Their rows stay
 * locked to the end of the transaction: a later batch that meets one again
 * reads what was written.  Needs an SPI connection.
 */
static void
call_flush_states(InboxCall *call)
{
	static SPIPlanPtr usage_plan = NULL;
	static SPIPlanPtr carry_plan = NULL;
	Oid			usage_types[5] = {INT8ARRAYOID, TEXTARRAYOID, DATEARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Oid			carry_types[3] = {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	long		nusage = hash_get_num_entries(call->usage);
	long		ncarry = hash_get_num_entries(call->carry);
	long		most = Max(Max(nusage, ncarry), 1);
	HASH_SEQ_STATUS seq;
	StateEntry *e;
	Datum	   *c0 = palloc(sizeof(Datum) * most);
	Datum	   *c1 = palloc(sizeof(Datum) * most);
	Datum	   *c2 = palloc(sizeof(Datum) * most);
	Datum	   *c3 = palloc(sizeof(Datum) * most);
	Datum	   *c4 = palloc(sizeof(Datum) * most);
	Datum		values[5];
	int			k = 0;

	hash_seq_init(&seq, call->usage);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->touched)
		{
			c0[k] = Int64GetDatum(e->key.n);
			c1[k] = CStringGetTextDatum(e->key.s1);
			c2[k] = DateADTGetDatum(e->key.d);
			c3[k] = Int64GetDatum(e->value);
			c4[k++] = Int64GetDatum(e->last);
		}
	if (k > 0)
	{
		values[0] = array_of(c0, NULL, k, INT8OID);
		values[1] = array_of(c1, NULL, k, TEXTOID);
		values[2] = array_of(c2, NULL, k, DATEOID);
		values[3] = array_of(c3, NULL, k, INT8OID);
		values[4] = array_of(c4, NULL, k, INT8OID);
		ledger_plan(&usage_plan,
					"UPDATE carbon.daily_usage d SET used = u.used, last_grant = u.last_grant "
					"FROM unnest($1, $2, $3, $4, $5) AS u(account, scenario, day, used, last_grant) "
					"WHERE d.account = u.account AND d.scenario = u.scenario AND d.day = u.day",
					5, usage_types);
		if (SPI_execute_plan(usage_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "daily usage update failed");
	}
	k = 0;
	hash_seq_init(&seq, call->carry);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->touched)
		{
			c0[k] = Int64GetDatum(e->key.n);
			c1[k] = Int64GetDatum(e->value);
			c2[k++] = Int64GetDatum(e->last);
		}
	if (k > 0)
	{
		values[0] = array_of(c0, NULL, k, INT8OID);
		values[1] = array_of(c1, NULL, k, INT8OID);
		values[2] = array_of(c2, NULL, k, INT8OID);
		ledger_plan(&carry_plan,
					"UPDATE carbon.points_carry c SET milli = u.milli, last_points = u.last_points "
					"FROM unnest($1, $2, $3) AS u(account, milli, last_points) WHERE c.account = u.account",
					3, carry_types);
		if (SPI_execute_plan(carry_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "remainder update failed");
	}
	hash_destroy(call->usage);
	hash_destroy(call->carry);
	call->usage = inbox_hash_in(call->cxt, "inbox usage", sizeof(StateEntry), 1024);
	call->carry = inbox_hash_in(call->cxt, "inbox remainders", sizeof(StateEntry), 1024);
}

/* A state entry of the call, created (and listed to be locked) on first sight. */
static StateEntry *
batch_state(InboxBatch *b, HTAB *h, const char *scenario, int64 account, DateADT day)
{
	bool		found;
	StateEntry *e = inbox_lookup(h, scenario, NULL, account, 0, day, HASH_ENTER, &found);

	if (!found)
	{
		if (scenario)
			e->key.s1 = MemoryContextStrdup(b->call->cxt, scenario);	/* outlives the batch */
		e->value = e->last = 0;
		e->touched = false;
		e->gen = -1;
		b->fresh[b->nfresh++] = e;
	}
	return e;
}

/* The local day of `t` in the ledger's timezone, as SQL's (t AT TIME ZONE tz)::date. */
static DateADT
local_day(Datum tz, TimestampTz t)
{
	return DatumGetDateADT(DirectFunctionCall1(timestamp_date,
											   DirectFunctionCall2(timestamptz_zone, tz, TimestampTzGetDatum(t))));
}

/* A batch, set-based: steps 1 to 5 of the header. */
static void
batch_process(InboxBatch *b, int64 *counts)
{
	Datum		tz = CStringGetTextDatum(b->ctx->timezone);
	HTAB	   *ids = inbox_hash("inbox event ids", sizeof(InboxKey), b->n);
	TimestampTz last_t = 0;
	DateADT		last_day = 0;
	bool		have_last = false;

	batch_lookups(b);
	b->fresh = palloc(sizeof(StateEntry *) * b->n * 2);
	b->nfresh = 0;
	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		BehaviorFacts f;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		if (!r->identity)
			continue;
		/* the first row with an event id claims it; later ones are duplicates */
		inbox_lookup(ids, r->in.source, r->in.event_id, 0, 0, 0, HASH_ENTER, &found);
		r->dup = found;
		if (r->in.has_occurred_at)
		{
			if (!have_last || last_t != r->in.occurred_at)
			{
				last_day = local_day(tz, r->in.occurred_at);
				last_t = r->in.occurred_at;
				have_last = true;
			}
			r->day = last_day;
			r->has_day = true;
		}
		row_facts(b, r, &f);
		r->why = behavior_check(b->ctx, &r->in, &f, &r->er);
		if (r->why == NULL)
		{
			/* as one by one, every row that passes the checks takes the locks, duplicates too */
			if (r->m->has_daily_cap)
				r->usage = batch_state(b, b->call->usage, r->m->scenario, r->in.account, r->day);
			r->carry = batch_state(b, b->call->carry, NULL, r->in.account, 0);
		}
	}
	batch_lock_states(b);
	batch_compute(b);
	if (!batch_insert(b))
	{
		batch_compute(b);
		batch_fix_figures(b);
	}
	batch_accumulate(b);

	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];

		if (!r->identity)
			counts[2]++;		/* no identity: cannot be recorded, only counted */
		else if (r->dup)
			counts[3]++;
		else if (strcmp(r->out.status, "accepted") == 0)
			counts[0]++;
		else if (strcmp(r->out.status, "capped") == 0)
			counts[1]++;
		else
			counts[2]++;
	}
}

/* With issuance caps: each row through the single path, in seq order. */
static void
batch_one_by_one(InboxBatch *b, int64 *counts)
{
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "process_inbox row", ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < b->n; i++)
	{
		InboxRow   *r = &b->rows[i];
		BehaviorResult out;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (!r->identity)
		{
			counts[2]++;
			continue;
		}
		old = MemoryContextSwitchTo(rowcxt);
		ledger_spi_connect();
		behavior_record(b->ctx, &r->in, &out);
		SPI_finish();
		if (strcmp(out.status, "accepted") == 0)
			counts[0]++;
		else if (strcmp(out.status, "capped") == 0)
			counts[1]++;
		else if (strcmp(out.status, "rejected") == 0)
			counts[2]++;
		else
			counts[3]++;
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	MemoryContextDelete(rowcxt);
}

/* Does carbon.behavior_inbox record who inserted each row (0.2 on)? */
static bool
inbox_has_provenance(void)
{
	Oid			relid = get_relname_relid("behavior_inbox", get_namespace_oid("carbon", false));

	return OidIsValid(relid) && get_attnum(relid, "inserted_by") != InvalidAttrNumber;
}

/* The inserting roles of a call, looked up once each (rows come in runs). */
typedef struct ReporterCache
{
	NameData	name;
	Oid			role;
	bool		is_admin;
	bool		valid;
} ReporterCache;

static void
reporter_of(ReporterCache *cache, HeapTuple tup, TupleDesc desc, int col, BehaviorInput *in)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
	{
		in->reporter = InvalidOid;
		in->reporter_is_admin = false;
		return;
	}
	if (!cache->valid || strcmp(NameStr(cache->name), NameStr(*DatumGetName(d))) != 0)
	{
		namestrcpy(&cache->name, NameStr(*DatumGetName(d)));
		cache->role = get_role_oid(NameStr(cache->name), true);	/* a dropped role reports for nothing */
		cache->is_admin = behavior_role_is_admin(cache->role);
		cache->valid = true;
	}
	in->reporter = cache->role;
	in->reporter_is_admin = cache->is_admin;
}

/* Why a row cannot be recorded at all (no usable identity), or NULL. */
static const char *
identity_problem(const BehaviorInput *in)
{
	if (in->source == NULL || in->source[0] == '\0')
		return "missing_source";
	if (in->event_id == NULL || in->event_id[0] == '\0')
		return "missing_event_id";
	if (strlen(in->source) > BEHAVIOR_MAX_SOURCE)
		return "source_too_long";
	if (strlen(in->event_id) > BEHAVIOR_MAX_EVENT_ID)
		return "event_id_too_long";
	return NULL;
}

/*
 * A row without a usable identity is never dropped silently: it is kept,
 * as it came and with its reason, in carbon.inbox_rejects, where the admin,
 * the auditor and the role that sent it see it.  (Rare: one row at a time.)
 */
static void
keep_reject(HeapTuple tup, TupleDesc desc, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[11] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, NUMERICOID, TIMESTAMPTZOID,
		JSONBOID, NAMEOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[11];
	char		nulls[11];

	for (int i = 0; i < 10; i++)
	{
		bool		isnull;

		values[i] = SPI_getbinval(tup, desc, i + 1, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
	}
	values[10] = CStringGetTextDatum(reason);
	nulls[10] = ' ';
	ledger_plan(&plan,
				"INSERT INTO carbon.inbox_rejects (seq, source, event_id, account, methodology, activity, "
				"  occurred_at, attrs, inserted_by, received_at, reason) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
				11, types);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "inbox reject insert failed");
}

typedef struct SeqIndex
{
	int64		seq;
	int			index;
} SeqIndex;

static int
row_seq_cmp(const void *a, const void *b)
{
	int64		x = ((const SeqIndex *) a)->seq;
	int64		y = ((const SeqIndex *) b)->seq;

	return x < y ? -1 : x > y;
}

/*
 * process_inbox(max_rows) → (accepted, capped, rejected, duplicate)
 * Rows are taken in inbox order (seq), in batches of INBOX_BATCH, recorded
 * exactly as record_behavior() would record them in that order, and
 * deleted.  Processors take turns (a transaction-level advisory lock).
 */
PG_FUNCTION_INFO_V1(ledger_process_inbox);
Datum
ledger_process_inbox(PG_FUNCTION_ARGS)
{
	int64		max_rows = PG_ARGISNULL(0) ? PG_INT64_MAX : PG_GETARG_INT32(0);
	static SPIPlanPtr take_plan = NULL;
	static SPIPlanPtr legacy_take_plan = NULL;
	Oid			types[4] = {INT8OID, INT8OID, BOOLOID, NAMEOID};
	bool		provenance;
	NameData	caller_name;
	ReporterCache reporters;
	int64		last_seq = 0;	/* keyset: never walk the rows already taken */
	int64		counts[4] = {0, 0, 0, 0};	/* accepted, capped, rejected, duplicate */
	int64		done = 0;
	BehaviorContext ctx;
	InboxCall	call;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "process_inbox must return a row");
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative")));
	tupdesc = BlessTupleDesc(tupdesc);
	behavior_context(&ctx);
	provenance = inbox_has_provenance();
	/* each row is judged as the role that inserted it; an operator takes only its own */
	ctx.per_row_reporter = provenance;
	namestrcpy(&caller_name, GetUserNameFromId(ctx.caller, false));

	/*
	 * One processor at a time: a second waits for the first to commit, then
	 * takes what is left.  (Two at once would only queue on the same usage
	 * and remainder rows; taking rows without locking each saves a write
	 * per row.)
	 */
	DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum(INBOX_LOCK_KEY));

	memset(&call, 0, sizeof(call));
	memset(&reporters, 0, sizeof(reporters));
	call.cxt = AllocSetContextCreate(CurrentMemoryContext, "process_inbox", ALLOCSET_DEFAULT_SIZES);
	call.usage = inbox_hash_in(call.cxt, "inbox usage", sizeof(StateEntry), 1024);
	call.carry = inbox_hash_in(call.cxt, "inbox remainders", sizeof(StateEntry), 1024);
	call.credits = inbox_hash_in(call.cxt, "inbox credits", sizeof(AccountCredit), 1024);
	call.lots = inbox_hash_in(call.cxt, "inbox lots", sizeof(LotCredit), 1024);
	call.link_entries = provenance;
	ledger_defer_system = true;
	while (done < max_rows)
	{
		int64		want = Min((int64) INBOX_BATCH, max_rows - done);
		Datum		arg[4] = {Int64GetDatum(want), Int64GetDatum(last_seq), BoolGetDatum(ctx.caller_is_admin),
		NameGetDatum(&caller_name)};
		SPITupleTable *tt;
		InboxBatch	b;
		SeqIndex   *order;
		uint64		nrows;

		CHECK_FOR_INTERRUPTS();

		/* each batch in its own SPI level: its memory goes with it */
		ledger_spi_connect();
		if (provenance)
			ledger_plan(&take_plan,
						"WITH bound AS (SELECT seq FROM carbon.behavior_inbox WHERE seq > $2 "
						"               AND ($3 OR inserted_by = $4) ORDER BY seq OFFSET $1 - 1 LIMIT 1) "
						"DELETE FROM carbon.behavior_inbox "
						"WHERE seq > $2 AND seq <= coalesce((SELECT seq FROM bound), 9223372036854775807) "
						"  AND ($3 OR inserted_by = $4) "
						"RETURNING seq, source, event_id, account, methodology, activity, occurred_at, attrs, "
						"          inserted_by, received_at",
						4, types);
		else					/* a 0.1 schema, before ALTER EXTENSION UPDATE: as 0.1 did */
			ledger_plan(&legacy_take_plan,
						"WITH bound AS (SELECT seq FROM carbon.behavior_inbox WHERE seq > $2 "
						"               ORDER BY seq OFFSET $1 - 1 LIMIT 1) "
						"DELETE FROM carbon.behavior_inbox "
						"WHERE seq > $2 AND seq <= coalesce((SELECT seq FROM bound), 9223372036854775807) "
						"RETURNING seq, source, event_id, account, methodology, activity, occurred_at, attrs, "
						"          NULL::name, received_at",
						2, types);
		if (SPI_execute_plan(provenance ? take_plan : legacy_take_plan, arg, NULL, false, 0) !=
			SPI_OK_DELETE_RETURNING)
			elog(ERROR, "inbox read failed");
		nrows = SPI_processed;
		if (nrows == 0)
		{
			SPI_finish();
			break;
		}
		tt = SPI_tuptable;
		/* DELETE ... RETURNING gives no order: the batch goes in seq order */
		order = palloc(sizeof(SeqIndex) * nrows);
		for (uint64 i = 0; i < nrows; i++)
		{
			bool		isnull;

			order[i].seq = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
			order[i].index = (int) i;
		}
		qsort(order, nrows, sizeof(SeqIndex), row_seq_cmp);
		last_seq = order[nrows - 1].seq;

		memset(&b, 0, sizeof(b));
		b.ctx = &ctx;
		b.call = &call;
		call.gen++;
		b.n = (int) nrows;
		b.rows = palloc0(sizeof(InboxRow) * nrows);
		for (uint64 i = 0; i < nrows; i++)
		{
			HeapTuple	tup = tt->vals[order[i].index];
			InboxRow   *r = &b.rows[i];
			const char *problem;
			bool		isnull;
			Datum		d;

			r->in.source = SPI_getvalue(tup, tt->tupdesc, 2);
			r->in.event_id = SPI_getvalue(tup, tt->tupdesc, 3);
			d = SPI_getbinval(tup, tt->tupdesc, 4, &isnull);
			r->in.has_account = !isnull;
			r->in.account = isnull ? 0 : DatumGetInt64(d);
			r->in.methodology = SPI_getvalue(tup, tt->tupdesc, 5);
			d = SPI_getbinval(tup, tt->tupdesc, 6, &isnull);
			r->in.activity = isnull ? NULL : DatumGetNumeric(d);
			d = SPI_getbinval(tup, tt->tupdesc, 7, &isnull);
			r->in.has_occurred_at = !isnull;
			r->in.occurred_at = isnull ? 0 : DatumGetTimestampTz(d);
			d = SPI_getbinval(tup, tt->tupdesc, 8, &isnull);
			r->in.attrs = isnull ? NULL : DatumGetJsonbP(d);
			if (provenance)
				reporter_of(&reporters, tup, tt->tupdesc, 9, &r->in);
			/* no usable identity (missing, empty, too long): kept in inbox_rejects, counted as rejected */
			problem = identity_problem(&r->in);
			r->identity = problem == NULL;
			if (problem != NULL && provenance)
				keep_reject(tup, tt->tupdesc, problem);
		}

		behavior_read_settings(&ctx);
		if (ctx.any_caps)
		{
			/* the single path reads usage and remainders from their rows */
			call_flush_credits(&call);
			call_flush_states(&call);
			batch_one_by_one(&b, counts);
		}
		else
			batch_process(&b, counts);
		done += (int64) nrows;
		if (hash_get_num_entries(call.credits) >= INBOX_FLUSH || hash_get_num_entries(call.lots) >= INBOX_FLUSH)
			call_flush_credits(&call);
		if (hash_get_num_entries(call.usage) + hash_get_num_entries(call.carry) >= INBOX_FLUSH)
			call_flush_states(&call);
		ledger_flush_deferred();
		SPI_finish();
	}
	ledger_spi_connect();
	call_flush_credits(&call);
	call_flush_states(&call);
	SPI_finish();
	ledger_defer_system = false;
	MemoryContextDelete(call.cxt);
	for (int i = 0; i < 4; i++)
		values[i] = Int64GetDatum(counts[i]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
