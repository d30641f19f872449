/*
 * inbox.c — bulk intake of behaviour: process_inbox() (批量行为导入).
 *
 * Sources COPY rows into carbon.behavior_inbox, a view whose trigger
 * (inbox_enqueue) stores them in carbon.inbox_queue; process_inbox() takes
 * them in inbox order (seq), in batches of INBOX_BATCH, deleting them as it
 * takes them, and hands each batch to the behaviour engine (engine.c), the
 * same engine record_behavior() uses for one event: each row gets exactly
 * what record_behavior() would give it in that order.  Here only what is
 * the inbox's own: which rows a caller may take, the role each row is
 * judged as (the one that inserted it), and the rows without an identity,
 * kept in carbon.inbox_rejects.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "behavior.h"
#include "catalog.h"
#include "ledger.h"

#define INBOX_BATCH		50000

/*
 * Does the inbox record who inserted each row (0.2 on: the queue behind the
 * view)?  A 0.1 schema, before ALTER EXTENSION UPDATE, has only the table
 * carbon.behavior_inbox.
 */
static bool
inbox_has_provenance(void)
{
	return OidIsValid(ledger_relid("inbox_queue"));
}

/* Who owns a relation (the queue: the trigger writes it as its owner). */
static Oid
relation_owner(Oid relid)
{
	HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	return owner;
}

/*
 * carbon.behavior_inbox's INSTEAD OF INSERT row trigger: the row (the
 * view's seven columns, record_behavior's arguments) goes into
 * carbon.inbox_queue, written as the queue's owner (the caller may not
 * write the queue, which has row-level security; its INSERT privilege on
 * the view's columns was checked before the trigger fired), with its place
 * in the inbox (seq), the time it arrived and the role that inserted it
 * set here.  The inbox is a view because COPY FROM refuses a table under
 * row-level security to all but its owner, and operators COPY their events
 * in (api.md §4).
 */
#define INBOX_VIEW_COLUMNS 7
#define INBOX_COLUMNS 10
#define INBOX_SEQ 7				/* zero-based, in the queue: seq, received_at, inserted_by */
#define INBOX_RECEIVED_AT 8
#define INBOX_INSERTED_BY 9

PG_FUNCTION_INFO_V1(inbox_enqueue);
Datum
inbox_enqueue(PG_FUNCTION_ARGS)
{
	static const char *const columns[INBOX_COLUMNS] = {
		"source", "event_id", "account", "methodology", "activity", "occurred_at", "attrs",
		"seq", "received_at", "inserted_by"
	};
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	Datum		values[INBOX_COLUMNS];
	bool		nulls[INBOX_COLUMNS];
	Datum	   *colvalues[INBOX_COLUMNS];
	bool	   *colnulls[INBOX_COLUMNS];
	NameData	reporter;
	Oid			queue = ledger_relid("inbox_queue");
	Oid			queue_seq = ledger_relid("behavior_inbox_seq");
	Oid			saved_user;
	int			saved_context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_INSTEAD(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		RelationGetRelid(td->tg_relation) != ledger_relid("behavior_inbox") ||
		!OidIsValid(queue) || !OidIsValid(queue_seq))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("carbon._inbox_enqueue() is only the INSTEAD OF INSERT row trigger of carbon.behavior_inbox")));
	desc = RelationGetDescr(td->tg_relation);
	if (desc->natts != INBOX_VIEW_COLUMNS)
		elog(ERROR, "carbon.behavior_inbox has %d columns, not %d", desc->natts, INBOX_VIEW_COLUMNS);
	heap_deform_tuple(td->tg_trigtuple, desc, values, nulls);

	namestrcpy(&reporter, GetUserNameFromId(GetUserId(), false));
	values[INBOX_SEQ] = Int64GetDatum(nextval_internal(queue_seq, false));
	values[INBOX_RECEIVED_AT] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[INBOX_INSERTED_BY] = NameGetDatum(&reporter);
	nulls[INBOX_SEQ] = nulls[INBOX_RECEIVED_AT] = nulls[INBOX_INSERTED_BY] = false;
	for (int c = 0; c < INBOX_COLUMNS; c++)
	{
		colvalues[c] = &values[c];
		colnulls[c] = &nulls[c];
	}

	/* as the queue's owner; an error restores the caller at abort */
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(relation_owner(queue), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	ledger_append("inbox_queue", INBOX_COLUMNS, columns, colvalues, colnulls, 1);
	SetUserIdAndSecContext(saved_user, saved_context);

	return PointerGetDatum(td->tg_trigtuple);
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

/*
 * An event record_behavior() rejects without recording it (its caller may
 * not claim the source's event ids: behavior_reporter_problem), kept in
 * carbon.inbox_rejects as the inbox keeps the same row sent through it,
 * with the caller as its sender and a place taken from the inbox's order.
 */
void
inbox_keep_refused(const BehaviorInput *in, Oid reporter, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[9] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, NUMERICOID, TIMESTAMPTZOID, JSONBOID, NAMEOID,
		TEXTOID};
	Datum		values[9];
	char		nulls[9] = "         ";
	NameData	sender;

	if (!inbox_has_provenance())
		return;					/* a 0.1 schema: no inbox_rejects yet */
	namestrcpy(&sender, GetUserNameFromId(reporter, false));
	values[0] = CStringGetTextDatum(in->source);
	values[1] = CStringGetTextDatum(in->event_id);
	values[2] = Int64GetDatum(in->account);
	nulls[2] = in->has_account ? ' ' : 'n';
	values[3] = in->methodology ? CStringGetTextDatum(in->methodology) : (Datum) 0;
	nulls[3] = in->methodology ? ' ' : 'n';
	values[4] = PointerGetDatum(in->activity);
	nulls[4] = in->activity ? ' ' : 'n';
	values[5] = TimestampTzGetDatum(in->occurred_at);
	nulls[5] = in->has_occurred_at ? ' ' : 'n';
	values[6] = PointerGetDatum(in->attrs);
	nulls[6] = in->attrs ? ' ' : 'n';
	values[7] = NameGetDatum(&sender);
	values[8] = CStringGetTextDatum(reason);
	ledger_spi_connect();
	ledger_plan(&plan,
				"INSERT INTO carbon.inbox_rejects (seq, source, event_id, account, methodology, activity, "
				"  occurred_at, attrs, inserted_by, received_at, reason) "
				"VALUES (nextval('carbon.behavior_inbox_seq'), $1, $2, $3, $4, $5, $6, $7, $8, now(), $9)",
				9, types);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "inbox reject insert failed");
	SPI_finish();
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
	BehaviorCall *call;
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
	ledger_private_xact_lock(LEDGER_LOCK_INBOX, 0);

	memset(&reporters, 0, sizeof(reporters));
	call = behavior_call_begin(&ctx, false, provenance);
	ledger_defer_system = true;
	while (done < max_rows)
	{
		int64		want = Min((int64) INBOX_BATCH, max_rows - done);
		Datum		arg[4] = {Int64GetDatum(want), Int64GetDatum(last_seq), BoolGetDatum(ctx.caller_is_admin),
		NameGetDatum(&caller_name)};
		SPITupleTable *tt;
		BehaviorInput *rows;
		int			nrows_ok = 0;
		SeqIndex   *order;
		uint64		nrows;

		CHECK_FOR_INTERRUPTS();

		/* each batch in its own SPI level: its memory goes with it */
		ledger_spi_connect();
		if (provenance)
			ledger_plan(&take_plan,
						"WITH bound AS (SELECT seq FROM carbon.inbox_queue WHERE seq > $2 "
						"               AND ($3 OR inserted_by = $4) ORDER BY seq OFFSET $1 - 1 LIMIT 1) "
						"DELETE FROM carbon.inbox_queue "
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

		rows = palloc0(sizeof(BehaviorInput) * nrows);
		for (uint64 i = 0; i < nrows; i++)
		{
			HeapTuple	tup = tt->vals[order[i].index];
			BehaviorInput *in = &rows[nrows_ok];
			const char *problem;
			bool		isnull;
			Datum		d;

			in->source = SPI_getvalue(tup, tt->tupdesc, 2);
			in->event_id = SPI_getvalue(tup, tt->tupdesc, 3);
			d = SPI_getbinval(tup, tt->tupdesc, 4, &isnull);
			in->has_account = !isnull;
			in->account = isnull ? 0 : DatumGetInt64(d);
			in->methodology = SPI_getvalue(tup, tt->tupdesc, 5);
			d = SPI_getbinval(tup, tt->tupdesc, 6, &isnull);
			in->activity = isnull ? NULL : DatumGetNumeric(d);
			d = SPI_getbinval(tup, tt->tupdesc, 7, &isnull);
			in->has_occurred_at = !isnull;
			in->occurred_at = isnull ? 0 : DatumGetTimestampTz(d);
			d = SPI_getbinval(tup, tt->tupdesc, 8, &isnull);
			in->attrs = isnull ? NULL : DatumGetJsonbP(d);
			if (provenance)
				reporter_of(&reporters, tup, tt->tupdesc, 9, in);
			/*
			 * no usable identity (missing, empty, too long), or one its role
			 * may not claim: kept in inbox_rejects, counted as rejected
			 */
			problem = identity_problem(in);
			if (problem == NULL && provenance)
				problem = behavior_reporter_problem(in->reporter, in->reporter_is_admin, in->source);
			if (problem == NULL)
				nrows_ok++;
			else
			{
				counts[2]++;
				if (provenance)
					keep_reject(tup, tt->tupdesc, problem);
			}
		}
		behavior_call_batch(call, rows, nrows_ok, NULL, counts);
		done += (int64) nrows;
		SPI_finish();
	}
	behavior_call_end(call);
	ledger_defer_system = false;
	for (int i = 0; i < 4; i++)
		values[i] = Int64GetDatum(counts[i]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
