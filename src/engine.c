/*
 * engine.c — the behaviour engine: every low-carbon event becomes a
 * behaviour row and its credits here, whether it comes alone
 * (record_behavior: a batch of one) or from the inbox (process_inbox:
 * batches of up to 50,000).  The rules an event is judged by live in
 * behavior.c; this file applies them to a batch, set-based:
 *   1. the batch's sources and methodologies come from the catalog cache,
 *      its accounts from one query; every event is checked in C by
 *      behavior_check(), in seq order;
 *   2. the daily usage and points remainder rows the batch needs are
 *      locked in key order (created first when missing), then, when
 *      issuance caps exist, the cap rows;
 *   3. grants, daily caps, issuance caps and remainders are computed in C
 *      as running state in seq order (behavior_grant()), exactly as one
 *      event after another would leave them;
 *   4. the behaviour rows go in at once (straight into the heap and indexes
 *      for a large batch when the table allows it); an event id recorded
 *      meanwhile by another session makes its row a duplicate after all,
 *      and step 3 is redone without it;
 *   5. credits: an event alone gets an entry of its own, named in its
 *      behaviour row (behavior.entry_id); the inbox's credits join the
 *      call's, per account and per (account, asset, event time), and are
 *      posted, one entry per ENTRY_ACCOUNTS accounts with lots merged per
 *      expiry, when INBOX_FLUSH of them are held and at the end of the
 *      call.  Usage, remainders and caps are written back the same way.
 * Memory is bounded: a batch lives in its own SPI connection; what a call
 * holds across batches is capped by INBOX_FLUSH.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "behavior.h"
#include "catalog.h"
#include "journal.h"
#include "co2e.h"

#define INBOX_FLUSH		100000	/* accounts' credits, lots or states held before writing */
#define ENTRY_ACCOUNTS	8000	/* 2 postings each, plus 2 per segment at worst: under the smallint seq */
#define DIRECT_MIN_ROWS 64		/* below this, one INSERT … ON CONFLICT is cheaper than a subtransaction */

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
	return hash_create(name, Max(nelem, 4), &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
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

/* A source of the batch, copied from the catalog cache. */
typedef struct SourceEntry
{
	InboxKey	key;			/* s1 = source */
	LedgerSource info;
} SourceEntry;

/* A methodology of the batch: every version, copied from the catalog cache. */
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

/*
 * A row the call holds locked, with its running value: a daily usage
 * (account, scenario, day), a remainder (account) or an issuance cap
 * (asset, tier, region, year).
 */
#define STATE_USAGE 'u'
#define STATE_CARRY 'c'
#define STATE_CAP	'k'

typedef struct StateEntry
{
	InboxKey	key;
	char		kind;			/* STATE_USAGE, STATE_CARRY or STATE_CAP */
	int64		value;			/* used / milli / issued, as the events so far leave it */
	int64		last;			/* last_grant / last_points */
	int64		limit;			/* a cap: its amount */
	bool		exists;			/* a cap: the row exists (no row, no cap) */
	bool		touched;		/* changed by a granted event: to be written */
	int			gen;			/* the batch the saved copy below is from */
	int64		saved_value;	/* as the batch found it, to compute it again */
	int64		saved_last;
	bool		saved_touched;
} StateEntry;

typedef struct EngineRow
{
	BehaviorInput *in;
	bool		dup;			/* an earlier row, or a stored behaviour, has its id */
	const char *why;			/* rejection reason from the checks */
	int64		er;
	const Methodology *m;		/* the version in force, or NULL */
	const LedgerAccount *acc;
	bool		has_day;
	DateADT		day;			/* local day of occurred_at */
	StateEntry *usage;			/* when the methodology has a daily cap */
	StateEntry *carry;
	StateEntry *caps[2];		/* issuance caps of RED and POINT (when caps exist) */
	BehaviorResult out;
	ClaimStore	st;
	bool		granted;		/* stores usage and remainder, credits */
	int64		id;				/* behaviour id */
	int64		entry_id;		/* own entries: the id reserved for its credit, or 0 */
} EngineRow;

/*
 * What lives across the batches of one call: the state rows it holds
 * locked, with their running values, and the credits not yet posted.
 * Written back when they grow past INBOX_FLUSH entries and at the end, so
 * that each account costs a write or two per call, not per batch.
 */
struct BehaviorCall
{
	MemoryContext cxt;
	BehaviorContext *ctx;
	bool		own_entries;	/* each event its own entry (record_behavior) */
	bool		link_entries;	/* record carbon.behavior_batch (0.2 on) */
	bool		summarize;		/* keep carbon.behavior_monthly (0.2 on) */
	long		table_size;		/* initial size of the tables below */
	int			gen;			/* the current batch */
	MemoryContext state_cxt;	/* the three tables below and their keys' strings */
	HTAB	   *usage;			/* StateEntry by (scenario, account, day) */
	HTAB	   *carry;			/* StateEntry by account */
	HTAB	   *caps;			/* StateEntry by (asset, tier, region, year) */
	HTAB	   *credits;		/* AccountCredit by account */
	HTAB	   *lots;			/* LotCredit by (account, asset, occurred_at) */
	int64		window_first;	/* the behaviours credited since the last flush: */
	int64		window_last;	/* their ids lie in [first, last] */
};

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

typedef struct EngineBatch
{
	BehaviorContext *ctx;
	BehaviorCall *call;
	EngineRow  *rows;
	int			n;
	HTAB	   *sources;
	HTAB	   *methodologies;
	HTAB	   *accounts;
	StateEntry **fresh;			/* state entries new in this batch, to lock */
	int			nfresh;
	SourceEntry *last_source;	/* row_facts' last lookups */
	MethodologyEntry *last_methodology;
} EngineBatch;

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
	return ledger_array(elems, NULL, i, elemtype);
}

/* One lookup query over the distinct keys of `keys`; its rows in SPI_tuptable. */
static void
batch_query(SPIPlanPtr plans[2], const char *sql, HTAB *keys, Oid elemtype)
{
	Oid			types[1] = {elemtype == TEXTOID ? TEXTARRAYOID : INT8ARRAYOID};
	Datum		arg[1];
	SPIPlanPtr	plan = ledger_plan_sized(plans, hash_get_num_entries(keys), sql, 1, types);

	arg[0] = distinct_keys(keys, elemtype);
	if (ledger_run_keyed(plan, arg, NULL, ledger_lookup_read_only()) != SPI_OK_SELECT)
		elog(ERROR, "inbox lookup failed");
}

/* 1. The batch's sources and methodologies (from the catalog cache) and accounts (one query). */
static void
batch_lookups(EngineBatch *b)
{
	static SPIPlanPtr account_plans[2];

	b->sources = inbox_hash("engine sources", sizeof(SourceEntry), 4);
	b->methodologies = inbox_hash("engine methodologies", sizeof(MethodologyEntry), 4);
	b->accounts = inbox_hash("engine accounts", sizeof(AccountEntry), b->n);
	for (int i = 0; i < b->n; i++)
	{
		BehaviorInput *in = b->rows[i].in;
		bool		found;
		SourceEntry *se = inbox_lookup(b->sources, in->source, NULL, 0, 0, 0, HASH_ENTER, &found);

		if (!found)
		{
			/* a copy: the cache's entry is good only until its next lookup */
			const LedgerSource *s = ledger_source_info(in->source);

			se->info = *s;
			se->info.role = s->role ? pstrdup(s->role) : NULL;
			se->info.scenarios = palloc(sizeof(char *) * Max(s->nscenarios, 1));
			for (int k = 0; k < s->nscenarios; k++)
				se->info.scenarios[k] = pstrdup(s->scenarios[k]);
		}
		if (in->methodology)
		{
			MethodologyEntry *me = inbox_lookup(b->methodologies, in->methodology, NULL, 0, 0, 0, HASH_ENTER,
												&found);

			if (!found)
			{
				const MethodologyVersion *v = ledger_methodology_versions(in->methodology, &me->nversions);

				me->versions = palloc(sizeof(MethodologyVersion) * Max(me->nversions, 1));
				if (me->nversions > 0)
					memcpy(me->versions, v, sizeof(MethodologyVersion) * me->nversions);
			}
		}
		if (in->has_account)
		{
			AccountEntry *ae = inbox_lookup(b->accounts, NULL, NULL, in->account, 0, 0, HASH_ENTER, &found);

			if (!found)
				ae->acc.id = 0;	/* not (yet) found */
		}
	}

	if (hash_get_num_entries(b->accounts) == 0)
		return;
	batch_query(account_plans,
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
 * The facts a row is checked against, from the batch's lookups; also
 * points the row at its methodology version and account.  Rows come in
 * runs from one source and methodology: the last ones are kept at hand.
 */
static void
row_facts(EngineBatch *b, EngineRow *r, BehaviorFacts *f)
{
	BehaviorInput *in = r->in;
	SourceEntry *se;

	if (b->last_source == NULL || strcmp(b->last_source->key.s1, in->source) != 0)
		b->last_source = inbox_lookup(b->sources, in->source, NULL, 0, 0, 0, HASH_FIND, NULL);
	se = b->last_source;
	memset(f, 0, sizeof(*f));
	r->m = NULL;
	r->acc = NULL;
	if (in->methodology)
	{
		MethodologyEntry *me;

		if (b->last_methodology == NULL || strcmp(b->last_methodology->key.s1, in->methodology) != 0)
			b->last_methodology = inbox_lookup(b->methodologies, in->methodology, NULL, 0, 0, 0, HASH_FIND, NULL);
		me = b->last_methodology;
		f->methodology_known = me->nversions > 0;
		/* the version in force at occurred_at (one rule: methodology.c) */
		if (in->has_occurred_at)
			r->m = methodology_version_in_force(me->versions, me->nversions, in->occurred_at);
		if (r->m != NULL)
		{
			f->m = *r->m;
			f->has_m = true;
		}
	}
	f->source_found = se->info.found;
	f->role = se->info.role;
	f->scenario_ok = f->has_m && ledger_source_allows(&se->info, f->m.scenario);
	if (in->has_account)
	{
		AccountEntry *ae = inbox_lookup(b->accounts, NULL, NULL, in->account, 0, 0, HASH_FIND, NULL);

		if (ae->acc.id != 0)
		{
			r->acc = &ae->acc;
			f->acc = ae->acc;
			f->account_found = true;
		}
	}
}

/* The state rows of `kind` among the batch's new ones, as arrays (nulls: cap regions are text). */
static int
fresh_keys(EngineBatch *b, char kind, Datum *c0, Datum *c1, Datum *c2, Datum *c3)
{
	int			k = 0;

	for (int i = 0; i < b->nfresh; i++)
	{
		StateEntry *e = b->fresh[i];

		if (e->kind != kind)
			continue;
		if (kind == STATE_USAGE)
		{
			c0[k] = Int64GetDatum(e->key.n);
			c1[k] = CStringGetTextDatum(e->key.s1);
			c2[k] = DateADTGetDatum(e->key.d);
		}
		else if (kind == STATE_CARRY)
			c0[k] = Int64GetDatum(e->key.n);
		else
		{
			c0[k] = CStringGetTextDatum(e->key.s1);
			c1[k] = CStringGetTextDatum(e->key.s2);
			c2[k] = CStringGetTextDatum(psprintf("%06lld", (long long) e->key.n));
			c3[k] = Int32GetDatum(e->key.d);
		}
		k++;
	}
	return k;
}

/*
 * Lock the usage and remainder rows of `values` that exist, in key order
 * (usage, then remainders), reading their values; returns how many.  Each
 * key is probed through the primary key (a LATERAL subquery with FOR
 * UPDATE is never pulled up into a join): a join would let the planner
 * rescan the keys once per row of a table it wrongly believes empty (rows
 * written earlier in the same call, after a vacuum saw none), which took
 * minutes over 50,000 keys.
 */
static uint64
lock_states(EngineBatch *b, Datum *values)
{
	static SPIPlanPtr plans[2];
	Oid			types[4] = {INT8ARRAYOID, TEXTARRAYOID, DATEARRAYOID, INT8ARRAYOID};
	SPIPlanPtr	plan;

	plan = ledger_plan_sized(plans, b->nfresh,
				"WITH u AS (SELECT x.* FROM (SELECT * FROM unnest($1, $2, $3) AS k(a, s, d) ORDER BY a, s, d) k "
				"           CROSS JOIN LATERAL (SELECT u.account, u.scenario, u.day, u.used FROM carbon.daily_usage u "
				"                               WHERE u.account = k.a AND u.scenario = k.s AND u.day = k.d "
				"                               FOR UPDATE OF u) x), "
				"     c AS (SELECT y.* FROM (SELECT a FROM unnest($4) AS a ORDER BY a) k "
				"           CROSS JOIN LATERAL (SELECT c.account, c.milli FROM carbon.points_carry c "
				"                               WHERE c.account = k.a FOR UPDATE OF c) y) "
				"SELECT account, scenario, day, used FROM u "
				"UNION ALL SELECT account, NULL, NULL, milli FROM c",
				4, types);
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "daily usage and remainder lock failed");
	for (uint64 k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		account = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *scenario = SPI_getvalue(tup, desc, 2);
		StateEntry *e;

		if (scenario)
			e = inbox_lookup(b->call->usage, scenario, NULL, account, 0,
							 DatumGetDateADT(SPI_getbinval(tup, desc, 3, &isnull)), HASH_FIND, NULL);
		else
			e = inbox_lookup(b->call->carry, NULL, NULL, account, 0, 0, HASH_FIND, NULL);
		e->value = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	}
	return SPI_processed;
}

/*
 * 2. Lock the usage and remainder rows the batch brings (rows locked by an
 * earlier batch of the call stay locked), then the issuance caps.  Usually
 * every row exists and one statement locks them.  When some are missing
 * they are created (waiting for anyone creating the same) and all are
 * locked again in key order: a session never waits for a row while holding
 * one it created that orders after it.
 */
static void
batch_lock_states(EngineBatch *b)
{
	static SPIPlanPtr usage_new[2];
	static SPIPlanPtr carry_new[2];
	static SPIPlanPtr cap_lock[2];
	SPIPlanPtr	plan;
	Oid			usage_types[3] = {INT8ARRAYOID, TEXTARRAYOID, DATEARRAYOID};
	Oid			carry_types[1] = {INT8ARRAYOID};
	Oid			cap_types[4] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID};
	int			most = Max(b->nfresh, 1);
	Datum	   *c0 = palloc(sizeof(Datum) * most);
	Datum	   *c1 = palloc(sizeof(Datum) * most);
	Datum	   *c2 = palloc(sizeof(Datum) * most);
	Datum	   *c3 = palloc(sizeof(Datum) * most);
	Datum		values[4];
	int			nusage,
				ncarry,
				ncaps;

	nusage = fresh_keys(b, STATE_USAGE, c0, c1, c2, NULL);
	values[0] = ledger_array(c0, NULL, nusage, INT8OID);
	values[1] = ledger_array(c1, NULL, nusage, TEXTOID);
	values[2] = ledger_array(c2, NULL, nusage, DATEOID);
	ncarry = fresh_keys(b, STATE_CARRY, c0, NULL, NULL, NULL);
	values[3] = ledger_array(c0, NULL, ncarry, INT8OID);
	if (nusage + ncarry > 0 && lock_states(b, values) != (uint64) (nusage + ncarry))
	{
		plan = ledger_plan_sized(usage_new, nusage,
					"INSERT INTO carbon.daily_usage (account, scenario, day, used, last_grant) "
					"SELECT a, s, d, 0, 0 FROM unnest($1, $2, $3) AS k(a, s, d) ORDER BY a, s, d "
					"ON CONFLICT (account, scenario, day) DO NOTHING",
					3, usage_types);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "daily usage insert failed");
		plan = ledger_plan_sized(carry_new, ncarry,
					"INSERT INTO carbon.points_carry (account, milli, last_points) "
					"SELECT a, 0, 0 FROM unnest($1) AS a ORDER BY a ON CONFLICT (account) DO NOTHING",
					1, carry_types);
		if (SPI_execute_plan(plan, &values[3], NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "remainder insert failed");
		if (lock_states(b, values) != (uint64) (nusage + ncarry))
			elog(ERROR, "daily usage and remainder lock failed");
	}

	ncaps = fresh_keys(b, STATE_CAP, c0, c1, c2, c3);
	if (ncaps == 0)
		return;
	values[0] = ledger_array(c0, NULL, ncaps, TEXTOID);
	values[1] = ledger_array(c1, NULL, ncaps, TEXTOID);
	values[2] = ledger_array(c2, NULL, ncaps, TEXTOID);
	values[3] = ledger_array(c3, NULL, ncaps, INT4OID);
	plan = ledger_plan_sized(cap_lock, ncaps,
				"SELECT c.asset, c.tier, c.region, c.year, c.cap, c.issued FROM carbon.issuance_cap c "
				"JOIN unnest($1, $2, $3, $4) AS k(asset, tier, region, year) "
				"  ON c.asset = k.asset AND c.tier = k.tier AND c.region = k.region AND c.year = k.year "
				"ORDER BY c.asset, c.tier, c.region, c.year FOR UPDATE OF c",
				4, cap_types);
	if (ledger_run_keyed(plan, values, NULL, false) != SPI_OK_SELECT)
		elog(ERROR, "issuance cap lock failed");
	for (uint64 k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		StateEntry *e = inbox_lookup(b->call->caps, SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
									 strtoll(SPI_getvalue(tup, desc, 3), NULL, 10), 0,
									 DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull)), HASH_FIND, NULL);

		e->exists = true;
		e->limit = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		e->value = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
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

/* Is there room for `amount` under a cap (no row: no cap)? */
static bool
cap_room(const StateEntry *cap, int64 amount)
{
	int64		after;

	return amount <= 0 || cap == NULL || !cap->exists ||
		(!pg_add_s64_overflow(cap->value, amount, &after) && after <= cap->limit);
}

/*
 * The issuance caps of an event's segment and year: room for its RED and
 * its points, both or neither (else rejected, reason `cap`).
 */
static bool
caps_take(EngineRow *r)
{
	int64		amounts[2] = {r->st.grant, r->out.points};

	if (r->caps[0] == NULL && r->caps[1] == NULL)
		return true;
	if (!cap_room(r->caps[0], amounts[0]) || !cap_room(r->caps[1], amounts[1]))
		return false;
	for (int k = 0; k < 2; k++)
		if (amounts[k] > 0 && r->caps[k] && r->caps[k]->exists)
		{
			r->caps[k]->value += amounts[k];
			r->caps[k]->touched = true;
		}
	return true;
}

/* 3. Grants, daily caps, issuance caps and remainders as running state, in seq order. */
static void
batch_compute(EngineBatch *b)
{
	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];

		state_begin(r->usage, b->call->gen);
		state_begin(r->carry, b->call->gen);
		state_begin(r->caps[0], b->call->gen);
		state_begin(r->caps[1], b->call->gen);
	}
	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];
		int64		cap_left;

		r->granted = false;
		memset(&r->out, 0, sizeof(r->out));
		memset(&r->st, 0, sizeof(r->st));
		if (r->dup)
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
		if (!caps_take(r))
		{
			behavior_reject(&r->out, "cap");
			continue;
		}
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

#define BEHAVIOR_INSERT_INTO \
	"INSERT INTO carbon.behavior (id, source, event_id, account, methodology, version, scenario, " \
	"  activity, occurred_at, local_day, attrs, status, reduction, points, reason, entry_id) "

/* one row, bound as scalars (a batch of one: no arrays to build and unnest) */
#define BEHAVIOR_INSERT_ONE BEHAVIOR_INSERT_INTO \
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, carbon.co2e_grams($13), $14, $15, $16)"

#define BEHAVIOR_INSERT BEHAVIOR_INSERT_INTO \
	"SELECT u.id, u.source, u.event_id, u.account, u.methodology, u.version, u.scenario, " \
	"       u.activity, u.occurred_at, u.local_day, u.attrs, u.status, carbon.co2e_grams(u.grams), " \
	"       u.points, u.reason, u.entry_id " \
	"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) " \
	"  AS u(id, source, event_id, account, methodology, version, scenario, activity, occurred_at, " \
	"       local_day, attrs, status, grams, points, reason, entry_id)"

#define BEHAVIOR_NCOLS 16

static const Oid behavior_insert_types[BEHAVIOR_NCOLS] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, NUMERICARRAYOID, TIMESTAMPTZARRAYOID,
DATEARRAYOID, JSONBARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID};

static const Oid behavior_row_types[BEHAVIOR_NCOLS] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID,
TEXTOID, NUMERICOID, TIMESTAMPTZOID, DATEOID, JSONBOID, TEXTOID, INT8OID, INT8OID, TEXTOID, INT8OID};

/* carbon.behavior's columns, in the order batch_insert() fills them. */
static const char *const behavior_columns[BEHAVIOR_NCOLS] = {"id", "source", "event_id", "account",
	"methodology", "version", "scenario", "activity", "occurred_at", "local_day", "attrs", "status",
"reduction", "points", "reason", "entry_id"};

/* The rows as arrays, for the SQL INSERTs. */
static void
insert_arrays(Datum **cols, bool **nulls, int n, Datum *values)
{
	static const Oid elem[BEHAVIOR_NCOLS] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTOID,
	NUMERICOID, TIMESTAMPTZOID, DATEOID, JSONBOID, TEXTOID, INT8OID, INT8OID, TEXTOID, INT8OID};

	for (int c = 0; c < BEHAVIOR_NCOLS; c++)
		values[c] = ledger_array(cols[c], nulls[c], n, elem[c]);
}

/* The batch's behaviour rows as columns (batch_insert() fills them). */
typedef struct BehaviorRows
{
	Datum	  **cols;
	bool	  **nulls;
	int			n;
} BehaviorRows;

/* All the rows: straight into the table and its indexes (append.c). */
static void
insert_rows(void *arg)
{
	BehaviorRows *rows = arg;

	ledger_append("behavior", BEHAVIOR_NCOLS, behavior_columns, rows->cols, rows->nulls, rows->n);
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

/* The next value of one of the extension's sequences (as SQL's nextval). */
int64
ledger_next_id(const char *sequence)
{
	return nextval_internal(ledger_relid(sequence), true);
}

/*
 * An event alone posts its own entry, whose id its behaviour row names:
 * reserved when it credits (and kept if the row is computed again).
 */
static Datum
row_entry_id(const BehaviorCall *call, EngineRow *r, bool *isnull)
{
	*isnull = !(call->own_entries && r->granted && r->st.grant > 0);
	if (*isnull)
		return (Datum) 0;
	if (r->entry_id == 0)
		r->entry_id = ledger_next_id("entry_id_seq");
	return Int64GetDatum(r->entry_id);
}

/* Forget the states held (their rows stay locked): a flush, or a new call. */
static void
states_reset(BehaviorCall *call)
{
	MemoryContextReset(call->state_cxt);
	call->usage = inbox_hash_in(call->state_cxt, "engine usage", sizeof(StateEntry), call->table_size);
	call->carry = inbox_hash_in(call->state_cxt, "engine remainders", sizeof(StateEntry), call->table_size);
	call->caps = inbox_hash_in(call->state_cxt, "engine caps", sizeof(StateEntry), 4);
}

/*
 * The usage, remainders and caps changed since they were last written, as
 * the 13 arrays of STATES_WRITE_CTES; returns how many.
 */
#define STATE_NARGS 13
static const Oid state_types[STATE_NARGS] = {INT8ARRAYOID, TEXTARRAYOID, DATEARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID};

/*
 * Three data-modifying CTEs that write them (a statement's own SELECT
 * follows); `u`, `c`, `k`: the parameters of the usage (5), remainder (3)
 * and cap (5) arrays; `when`: a condition all three obey.
 */
#define STATES_WRITE_CTES(when, u, c, k) \
	"su AS (UPDATE carbon.daily_usage d SET used = u.used, last_grant = u.last_grant " \
	"       FROM unnest(" u ") AS u(account, scenario, day, used, last_grant) " \
	"       WHERE " when " AND d.account = u.account AND d.scenario = u.scenario AND d.day = u.day " \
	"       ), " \
	"sc AS (UPDATE carbon.points_carry c SET milli = u.milli, last_points = u.last_points " \
	"       FROM unnest(" c ") AS u(account, milli, last_points) " \
	"       WHERE " when " AND c.account = u.account), " \
	"sk AS (UPDATE carbon.issuance_cap c SET issued = k.issued " \
	"       FROM unnest(" k ") AS k(asset, tier, region, year, issued) " \
	"       WHERE " when " AND c.asset = k.asset AND c.tier = k.tier AND c.region = k.region " \
	"         AND c.year = k.year) "

static int
states_arrays(BehaviorCall *call, Datum *values)
{
	long		most = Max(Max(hash_get_num_entries(call->usage), hash_get_num_entries(call->carry)),
						   Max(hash_get_num_entries(call->caps), 1));
	HASH_SEQ_STATUS seq;
	StateEntry *e;
	Datum	   *c[5];
	int			k,
				touched = 0;

	for (int i = 0; i < 5; i++)
		c[i] = palloc(sizeof(Datum) * most);
	k = 0;
	hash_seq_init(&seq, call->usage);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->touched)
		{
			c[0][k] = Int64GetDatum(e->key.n);
			c[1][k] = CStringGetTextDatum(e->key.s1);
			c[2][k] = DateADTGetDatum(e->key.d);
			c[3][k] = Int64GetDatum(e->value);
			c[4][k++] = Int64GetDatum(e->last);
		}
	touched += k;
	values[0] = ledger_array(c[0], NULL, k, INT8OID);
	values[1] = ledger_array(c[1], NULL, k, TEXTOID);
	values[2] = ledger_array(c[2], NULL, k, DATEOID);
	values[3] = ledger_array(c[3], NULL, k, INT8OID);
	values[4] = ledger_array(c[4], NULL, k, INT8OID);
	k = 0;
	hash_seq_init(&seq, call->carry);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->touched)
		{
			c[0][k] = Int64GetDatum(e->key.n);
			c[1][k] = Int64GetDatum(e->value);
			c[2][k++] = Int64GetDatum(e->last);
		}
	touched += k;
	values[5] = ledger_array(c[0], NULL, k, INT8OID);
	values[6] = ledger_array(c[1], NULL, k, INT8OID);
	values[7] = ledger_array(c[2], NULL, k, INT8OID);
	k = 0;
	hash_seq_init(&seq, call->caps);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->touched)
		{
			c[0][k] = CStringGetTextDatum(e->key.s1);
			c[1][k] = CStringGetTextDatum(e->key.s2);
			c[2][k] = CStringGetTextDatum(psprintf("%06lld", (long long) e->key.n));
			c[3][k] = Int32GetDatum(e->key.d);
			c[4][k++] = Int64GetDatum(e->value);
		}
	touched += k;
	values[8] = ledger_array(c[0], NULL, k, TEXTOID);
	values[9] = ledger_array(c[1], NULL, k, TEXTOID);
	values[10] = ledger_array(c[2], NULL, k, TEXTOID);
	values[11] = ledger_array(c[3], NULL, k, INT4OID);
	values[12] = ledger_array(c[4], NULL, k, INT8OID);
	return touched;
}

/* Once written: nothing left to write. */
static void
states_written(BehaviorCall *call)
{
	HTAB	   *tables[3] = {call->usage, call->carry, call->caps};

	for (int t = 0; t < 3; t++)
	{
		HASH_SEQ_STATUS seq;
		StateEntry *e;

		hash_seq_init(&seq, tables[t]);
		while ((e = hash_seq_search(&seq)) != NULL)
			e->touched = false;
	}
}

/*
 * 4. The behaviour rows, in one statement; false if some turned out
 * duplicates (recorded meanwhile by another session).
 */
static bool
batch_insert(EngineBatch *b)
{
	static SPIPlanPtr insert_plans[2];
	SPIPlanPtr	plan;
	Datum	   *cols[BEHAVIOR_NCOLS];
	bool	   *nulls[BEHAVIOR_NCOLS];
	Datum		values[BEHAVIOR_NCOLS];
	Oid			seq = ledger_relid("behavior_id_seq");
	int			n = 0;
	bool		all = true;

	for (int i = 0; i < b->n; i++)
		if (!b->rows[i].dup)
			n++;
	if (n == 0)
		return true;
	for (int c = 0; c < BEHAVIOR_NCOLS; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0, k = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];
		BehaviorInput *in = r->in;

		if (r->dup)
			continue;
		r->id = nextval_internal(seq, true);
		r->out.behavior_id = r->id;
		cols[0][k] = Int64GetDatum(r->id);
		cols[1][k] = CStringGetTextDatum(in->source);
		cols[2][k] = CStringGetTextDatum(in->event_id);
		cols[3][k] = Int64GetDatum(in->account);
		nulls[3][k] = !in->has_account;
		if (in->methodology)
			cols[4][k] = CStringGetTextDatum(in->methodology);
		nulls[4][k] = in->methodology == NULL;
		if (r->m)
		{
			cols[5][k] = Int32GetDatum(r->m->version);
			cols[6][k] = CStringGetTextDatum(r->m->scenario);
		}
		nulls[5][k] = nulls[6][k] = r->m == NULL;
		cols[7][k] = PointerGetDatum(in->activity);
		nulls[7][k] = in->activity == NULL;
		cols[8][k] = TimestampTzGetDatum(in->occurred_at);
		nulls[8][k] = !in->has_occurred_at;
		cols[9][k] = DateADTGetDatum(r->day);
		nulls[9][k] = !r->has_day;
		cols[10][k] = PointerGetDatum(in->attrs);
		nulls[10][k] = in->attrs == NULL;
		cols[11][k] = CStringGetTextDatum(r->out.status);
		cols[12][k] = Int64GetDatum(r->out.grams);
		cols[13][k] = Int64GetDatum(r->out.points);
		if (r->out.reason)
			cols[14][k] = CStringGetTextDatum(r->out.reason);
		nulls[14][k] = r->out.reason == NULL;
		cols[15][k] = row_entry_id(b->call, r, &nulls[15][k]);
		k++;
	}

	/*
	 * A large batch goes in all at once first (a speculative INSERT costs
	 * about half as much again); if an event was recorded meanwhile that
	 * fails on the unique key, and the same rows go in again with ON
	 * CONFLICT DO NOTHING.  A small one goes in that way at once, and the
	 * same statement writes the states the call changed if every row went
	 * in (else they are computed again, and written later).
	 */
	if (n >= DIRECT_MIN_ROWS && insert_all_or_none(cols, nulls, n))
		return true;
	if (n > 1)
		insert_arrays(cols, nulls, n, values);
	if (n < DIRECT_MIN_ROWS)
	{
		static SPIPlanPtr small_plans[2];
		static SPIPlanPtr one_plans[2];
		Oid			types[BEHAVIOR_NCOLS + STATE_NARGS + 1];
		Datum		all[BEHAVIOR_NCOLS + STATE_NARGS + 1];
		char		all_nulls[BEHAVIOR_NCOLS + STATE_NARGS + 1];

		memset(all_nulls, ' ', sizeof(all_nulls));
		memcpy(types, n == 1 ? behavior_row_types : behavior_insert_types, sizeof(behavior_insert_types));
		memcpy(types + BEHAVIOR_NCOLS, state_types, sizeof(state_types));
		types[BEHAVIOR_NCOLS + STATE_NARGS] = INT4OID;
		for (int c = 0; c < BEHAVIOR_NCOLS; c++)
		{
			all[c] = n == 1 ? cols[c][0] : values[c];
			if (n == 1 && nulls[c][0])
				all_nulls[c] = 'n';
		}
		states_arrays(b->call, all + BEHAVIOR_NCOLS);
		all[BEHAVIOR_NCOLS + STATE_NARGS] = Int32GetDatum(n);
#define SMALL_INSERT(insert) \
		"WITH claim AS (" insert " ON CONFLICT (source, event_id) DO NOTHING RETURNING id), " \
		"every AS (SELECT count(*) = $30 AS went_in FROM claim), " \
		STATES_WRITE_CTES("(SELECT went_in FROM every)", "$17, $18, $19, $20, $21", "$22, $23, $24", \
						  "$25, $26, $27, $28, $29") \
		"SELECT id FROM claim"
		if (n == 1)
			plan = ledger_plan_sized(one_plans, 1, SMALL_INSERT(BEHAVIOR_INSERT_ONE),
									 BEHAVIOR_NCOLS + STATE_NARGS + 1, types);
		else
			plan = ledger_plan_sized(small_plans, n, SMALL_INSERT(BEHAVIOR_INSERT), BEHAVIOR_NCOLS + STATE_NARGS + 1,
									 types);
		/* its usage and remainder rows by key, however few there were when it was planned */
		if (ledger_run_keyed(plan, all, all_nulls, false) != SPI_OK_SELECT)
			elog(ERROR, "behaviour insert failed");
		if (SPI_processed == (uint64) n)
			states_written(b->call);
	}
	else
	{
		plan = ledger_plan_sized(insert_plans, n, BEHAVIOR_INSERT " ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
								 BEHAVIOR_NCOLS, behavior_insert_types);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "behaviour insert failed");
	}
	if (SPI_processed != (uint64) n)
	{
		/* recorded meanwhile by another session: those rows are duplicates */
		HTAB	   *inserted = inbox_hash("engine inserted", sizeof(InboxKey), (long) SPI_processed);

		for (uint64 k = 0; k < SPI_processed; k++)
		{
			bool		isnull;

			inbox_lookup(inserted, NULL, NULL,
						 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull)),
						 0, 0, HASH_ENTER, NULL);
		}
		for (int i = 0; i < b->n; i++)
		{
			EngineRow  *r = &b->rows[i];

			if (!r->dup && inbox_lookup(inserted, NULL, NULL, r->id, 0, 0, HASH_FIND, NULL) == NULL)
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
batch_fix_figures(EngineBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum	   *cols[6];
	bool	   *rnulls = palloc0(sizeof(bool) * b->n);
	bool	   *enulls = palloc0(sizeof(bool) * b->n);
	Datum		values[6];
	int			k = 0;

	for (int c = 0; c < 6; c++)
		cols[c] = palloc(sizeof(Datum) * b->n);
	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];

		if (r->dup)
			continue;
		cols[0][k] = Int64GetDatum(r->id);
		cols[1][k] = CStringGetTextDatum(r->out.status);
		cols[2][k] = Int64GetDatum(r->out.grams);
		cols[3][k] = Int64GetDatum(r->out.points);
		if (r->out.reason)
			cols[4][k] = CStringGetTextDatum(r->out.reason);
		rnulls[k] = r->out.reason == NULL;
		cols[5][k] = row_entry_id(b->call, r, &enulls[k]);
		k++;
	}
	values[0] = ledger_array(cols[0], NULL, k, INT8OID);
	values[1] = ledger_array(cols[1], NULL, k, TEXTOID);
	values[2] = ledger_array(cols[2], NULL, k, INT8OID);
	values[3] = ledger_array(cols[3], NULL, k, INT8OID);
	values[4] = ledger_array(cols[4], rnulls, k, TEXTOID);
	values[5] = ledger_array(cols[5], enulls, k, INT8OID);
	ledger_plan(&plan,
				"UPDATE carbon.behavior b SET status = u.status, reduction = carbon.co2e_grams(u.grams), "
				"       points = u.points, reason = u.reason, entry_id = u.entry_id "
				"FROM unnest($1, $2, $3, $4, $5, $6) AS u(id, status, grams, points, reason, entry_id) "
				"WHERE b.id = u.id",
				6, types);
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

/* An event alone: its own entry, RED and POINT from its segment's issuance accounts. */
static void
post_own_entry(EngineRow *r)
{
	const LedgerAccount *accounts[4];
	int16		assets[4] = {ASSET_RED, ASSET_RED, ASSET_POINT, ASSET_POINT};
	int64		amounts[4];
	int			n = 0;
	LedgerEntry entry;

	accounts[n] = ledger_system_account_info("issuance", ASSET_RED, r->acc->tier, r->acc->region);
	amounts[n++] = -r->st.grant;
	accounts[n] = r->acc;
	amounts[n++] = r->st.grant;
	if (r->out.points > 0)
	{
		accounts[n] = ledger_system_account_info("issuance", ASSET_POINT, r->acc->tier, r->acc->region);
		amounts[n++] = -r->out.points;
		accounts[n] = r->acc;
		amounts[n++] = r->out.points;
	}
	/* the memo names its behaviour (behavior_entry_reversed reads it) */
	entry = ledger_entry("behavior", psprintf("behaviour " INT64_FORMAT, r->id), n, accounts, assets, amounts);
	entry.reserved_id = r->entry_id;
	entry.fresh_basis = r->in->occurred_at;	/* new lots expire per points_validity from the event */
	ledger_post(&entry);
}

/*
 * 5. The batch's credits: an event alone posts its own entry at once; the
 * inbox's join the call's, per account, and per (account, asset, event
 * time) for lots.
 */
static void
batch_accumulate(EngineBatch *b)
{
	BehaviorCall *call = b->call;

	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];
		AccountCredit *c;
		bool		found;

		if (!r->granted || r->dup || r->st.grant <= 0)
			continue;
		if (call->own_entries)
		{
			post_own_entry(r);
			continue;
		}
		c = inbox_lookup(call->credits, NULL, NULL, r->in->account, 0, 0, HASH_ENTER, &found);
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
			lc = inbox_lookup(call->lots, NULL, NULL, r->in->account, r->in->occurred_at, a, HASH_ENTER, &found);
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
call_flush_credits(BehaviorCall *call)
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

	if (ncredits == 0 && nlots == 0)
	{
		ledger_flush_deferred();
		return;
	}
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
		ledger_lots_credit_fresh(ledger_array(acc, NULL, i, INT8OID), ledger_array(asset, NULL, i, INT2OID),
								 ledger_array(basis, NULL, i, TIMESTAMPTZOID), ledger_array(amount, NULL, i, INT8OID),
								 ledger_array(entry, NULL, i, INT8OID));
	}
	hash_destroy(call->credits);
	hash_destroy(call->lots);
	call->window_first = call->window_last = 0;
	call->credits = inbox_hash_in(call->cxt, "engine credits", sizeof(AccountCredit), call->table_size);
	call->lots = inbox_hash_in(call->cxt, "engine lots", sizeof(LotCredit), call->table_size);
	ledger_flush_deferred();
}

/*
 * Write back the usage, remainders and caps the call changed, in one
 * statement.  Their rows stay locked to the end of the transaction: a later
 * batch that meets one again reads what was written.  Needs an SPI
 * connection.
 */
static void
call_flush_states(BehaviorCall *call)
{
	static SPIPlanPtr plans[2];
	Datum		values[STATE_NARGS];
	int			touched = states_arrays(call, values);

	if (touched > 0)
	{
		SPIPlanPtr	plan = ledger_plan_sized(plans, touched,
											 "WITH " STATES_WRITE_CTES("true", "$1, $2, $3, $4, $5", "$6, $7, $8",
																		  "$9, $10, $11, $12, $13") "SELECT 1", STATE_NARGS, state_types);

		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "daily usage, remainder and cap update failed");
	}
	states_reset(call);
}

/* A state entry of the call, created (and listed to be locked) on first sight. */
static StateEntry *
batch_state(EngineBatch *b, HTAB *h, char kind, const char *s1, const char *s2, int64 n, DateADT d)
{
	bool		found;
	StateEntry *e = inbox_lookup(h, s1, s2, n, 0, d, HASH_ENTER, &found);

	if (!found)
	{
		/* the key's strings outlive the batch */
		e->key.s1 = s1 ? MemoryContextStrdup(b->call->state_cxt, s1) : NULL;
		e->key.s2 = s2 ? MemoryContextStrdup(b->call->state_cxt, s2) : NULL;
		e->kind = kind;
		e->value = e->last = e->limit = 0;
		e->exists = false;
		e->touched = false;
		e->gen = -1;
		b->fresh[b->nfresh++] = e;
	}
	return e;
}

/* The calendar year of a date (the issuance caps' year is the event's local year). */
static int
date_year(DateADT day)
{
	int			y,
				m,
				d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	return y;
}

/* The original figures of a duplicate. */
static void
behavior_original(const BehaviorInput *in, BehaviorResult *out)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	SPITupleTable *tt;
	bool		isnull;
	char	   *status;
	char	   *reason;

	values[0] = CStringGetTextDatum(in->source);
	values[1] = CStringGetTextDatum(in->event_id);
	ledger_plan(&plan,
				"SELECT id, status, carbon.grams(reduction), points, reason FROM carbon.behavior "
				"WHERE source = $1 AND event_id = $2",
				2, types);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "behaviour lookup failed");
	tt = SPI_tuptable;
	memset(out, 0, sizeof(*out));
	out->behavior_id = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	status = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	out->grams = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
	out->points = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
	reason = SPI_getvalue(tt->vals[0], tt->tupdesc, 5);
	out->status = "duplicate";
	out->reason = psprintf("duplicate of behaviour " INT64_FORMAT " (%s%s%s)", out->behavior_id, status,
						   reason ? ": " : "", reason ? reason : "");
}

/* Steps 1 to 5 of the header, for one batch. */
/*
 * 6. The summaries the reports read: the batch's credited behaviours added
 * per (month, region, scenario, methodology, account) to
 * carbon.behavior_monthly, and per (group, month, account) to
 * carbon.group_credit for the groups the account was in that day, in one
 * statement.  Each account's rows are
 * written under its remainder row's lock, which the batch holds: no two
 * calls wait on each other here.
 */
static void
batch_summarize(EngineBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *c[8];
	Datum		values[8];
	int			k = 0;

	if (!b->call->summarize)
		return;
	for (int i = 0; i < 8; i++)
		c[i] = palloc(sizeof(Datum) * b->n);
	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];
		int			y,
					m,
					d;

		if (r->dup || !r->granted)
			continue;
		j2date(r->day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
		c[0][k] = DateADTGetDatum(date2j(y, m, 1) - POSTGRES_EPOCH_JDATE);
		c[1][k] = CStringGetTextDatum(r->acc->region);
		c[2][k] = CStringGetTextDatum(r->m->scenario);
		c[3][k] = CStringGetTextDatum(r->in->methodology);
		c[4][k] = Int64GetDatum(r->in->account);
		c[5][k] = Int64GetDatum(r->out.grams);
		c[6][k] = Int64GetDatum(r->out.points);
		c[7][k++] = DateADTGetDatum(r->day);
	}
	if (k == 0)
		return;
	values[0] = ledger_array(c[0], NULL, k, DATEOID);
	for (int i = 1; i < 4; i++)
		values[i] = ledger_array(c[i], NULL, k, TEXTOID);
	for (int i = 4; i < 7; i++)
		values[i] = ledger_int8_array(c[i], k);
	values[7] = ledger_array(c[7], NULL, k, DATEOID);
	/* the month's summary, and what the members of groups earned while in them */
	ledger_plan_generic(&plan,
				"WITH u AS (SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) "
				"           AS u(month, region, scenario, methodology, account, grams, points, day)), "
				"monthly AS (INSERT INTO carbon.behavior_monthly AS s (month, region, scenario, methodology, account, "
				"                                                      events, grams, points) "
				"            SELECT month, region, scenario, methodology, account, count(*), sum(grams)::bigint, "
				"                   sum(points)::bigint "
				"            FROM u GROUP BY 1, 2, 3, 4, 5 "
				"            ON CONFLICT (month, region, scenario, methodology, account) DO UPDATE "
				"            SET events = s.events + excluded.events, grams = s.grams + excluded.grams, "
				"                points = s.points + excluded.points) "
				"INSERT INTO carbon.group_credit AS c (group_id, month, account, events, grams, points) "
				"SELECT m.group_id, u.month, u.account, count(*), sum(u.grams)::bigint, sum(u.points)::bigint "
				"FROM u JOIN carbon.group_member m ON m.account = u.account AND u.day >= m.since "
				"                                 AND (m.until IS NULL OR u.day <= m.until) "
				"GROUP BY 1, 2, 3 "
				"ON CONFLICT (group_id, month, account) DO UPDATE "
				"SET events = c.events + excluded.events, grams = c.grams + excluded.grams, "
				"    points = c.points + excluded.points",
				8, (Oid[]) {DATEARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
				INT8ARRAYOID, DATEARRAYOID});
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "behaviour summary write failed");
}

static void
batch_process(EngineBatch *b)
{
	BehaviorCall *call = b->call;
	Datum		tz = CStringGetTextDatum(b->ctx->timezone);
	HTAB	   *ids = b->n > 1 ? inbox_hash("engine event ids", sizeof(InboxKey), b->n) : NULL;
	TimestampTz last_t = 0;
	DateADT		last_day = 0;
	bool		have_last = false;

	batch_lookups(b);
	b->fresh = palloc(sizeof(StateEntry *) * b->n * 4);
	b->nfresh = 0;
	for (int i = 0; i < b->n; i++)
	{
		EngineRow  *r = &b->rows[i];
		BehaviorInput *in = r->in;
		BehaviorFacts f;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		/* the first row with an event id claims it; later ones are duplicates */
		if (ids)
		{
			inbox_lookup(ids, in->source, in->event_id, 0, 0, 0, HASH_ENTER, &found);
			r->dup = found;
		}
		if (in->has_occurred_at)
		{
			if (!have_last || last_t != in->occurred_at)
			{
				last_day = ledger_local_day(tz, in->occurred_at);
				last_t = in->occurred_at;
				have_last = true;
			}
			r->day = last_day;
			r->has_day = true;
		}
		row_facts(b, r, &f);
		r->why = behavior_check(b->ctx, in, &f, &r->er);
		if (r->why != NULL)
			continue;
		/* every row that passes the checks takes the locks, duplicates too */
		if (r->m->has_daily_cap)
			r->usage = batch_state(b, call->usage, STATE_USAGE, r->m->scenario, NULL, in->account, r->day);
		r->carry = batch_state(b, call->carry, STATE_CARRY, NULL, NULL, in->account, 0);
		if (b->ctx->any_caps)
		{
			int64		region = strtoll(r->acc->region, NULL, 10);
			int			year = date_year(r->day);

			r->caps[0] = batch_state(b, call->caps, STATE_CAP, "RED", r->acc->tier, region, year);
			r->caps[1] = batch_state(b, call->caps, STATE_CAP, "POINT", r->acc->tier, region, year);
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
	batch_summarize(b);
}

/*
 * A call: one record_behavior() (own_entries: each event its own entry) or
 * one process_inbox() (link_entries: bulk entries linked to the behaviours
 * they credit in carbon.behavior_batch).
 */
/*
 * Does the schema keep the reports' summaries (carbon.behavior_monthly,
 * 0.2 on)?  A 0.1 schema under this library, before ALTER EXTENSION
 * UPDATE, has none: recording and reversing leave them alone.
 */
bool
behavior_summary_kept(void)
{
	return OidIsValid(ledger_relid("behavior_monthly"));
}

BehaviorCall *
behavior_call_begin(BehaviorContext *ctx, bool own_entries, bool link_entries)
{
	/* an event alone needs little: small blocks, small tables */
	MemoryContext cxt = own_entries
		? AllocSetContextCreate(CurrentMemoryContext, "behaviour engine", ALLOCSET_SMALL_SIZES)
		: AllocSetContextCreate(CurrentMemoryContext, "behaviour engine", ALLOCSET_DEFAULT_SIZES);
	BehaviorCall *call = MemoryContextAllocZero(cxt, sizeof(BehaviorCall));

	call->cxt = cxt;
	call->ctx = ctx;
	call->own_entries = own_entries;
	call->link_entries = link_entries;
	call->summarize = behavior_summary_kept();
	call->table_size = own_entries ? 4 : 1024;
	call->state_cxt = AllocSetContextCreate(cxt, "engine states", ALLOCSET_DEFAULT_SIZES);
	states_reset(call);
	call->credits = inbox_hash_in(cxt, "engine credits", sizeof(AccountCredit), call->table_size);
	call->lots = inbox_hash_in(cxt, "engine lots", sizeof(LotCredit), call->table_size);
	return call;
}

/*
 * Record `n` events, in order, as one after another would be recorded.
 * `results` (or NULL) gets each event's result, allocated in the caller's
 * memory context; counts[] adds accepted, capped, rejected, duplicate.
 */
void
behavior_call_batch(BehaviorCall *call, BehaviorInput *in, int n, BehaviorResult *results, int64 *counts)
{
	MemoryContext outcxt = CurrentMemoryContext;
	EngineBatch b;

	ledger_spi_connect();		/* the batch's memory goes with it */
	behavior_read_settings(call->ctx);
	call->gen++;
	memset(&b, 0, sizeof(b));
	b.ctx = call->ctx;
	b.call = call;
	b.n = n;
	b.rows = palloc0(sizeof(EngineRow) * Max(n, 1));
	for (int i = 0; i < n; i++)
		b.rows[i].in = &in[i];
	batch_process(&b);

	for (int i = 0; i < n; i++)
	{
		EngineRow  *r = &b.rows[i];
		BehaviorResult out = r->out;

		if (r->dup)
		{
			counts[3]++;
			if (results)
				behavior_original(r->in, &out);
		}
		else if (strcmp(out.status, "accepted") == 0)
			counts[0]++;
		else if (strcmp(out.status, "capped") == 0)
			counts[1]++;
		else
			counts[2]++;
		if (results)
		{
			results[i] = out;
			results[i].reason = out.reason ? MemoryContextStrdup(outcxt, out.reason) : NULL;
		}
	}

	if (hash_get_num_entries(call->credits) >= INBOX_FLUSH || hash_get_num_entries(call->lots) >= INBOX_FLUSH)
		call_flush_credits(call);
	if (hash_get_num_entries(call->usage) + hash_get_num_entries(call->carry) >= INBOX_FLUSH)
		call_flush_states(call);
	ledger_flush_deferred();
	SPI_finish();
}

/* The end of a call: what it holds is posted and written back. */
void
behavior_call_end(BehaviorCall *call)
{
	ledger_spi_connect();
	call_flush_credits(call);
	call_flush_states(call);
	SPI_finish();
	MemoryContextDelete(call->cxt);
}
