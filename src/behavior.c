/*
 * behavior.c — low-carbon behaviour in, reductions and points out.
 *
 * record_behavior() and process_inbox() share behavior_record(), so a row
 * gives the same result whichever way it arrives.  One event:
 *   1. checks, read-only: source, methodology in force at occurred_at,
 *      scenario authorised for the source, acceptance window, account,
 *      plausibility; a failed check is a `rejected` result with its reason;
 *   2. locks the account's daily usage (if the methodology has a daily cap)
 *      and its points remainder, and computes the grant and the points;
 *   3. claims (source, event_id) by inserting the behaviour row with its
 *      final figures: a conflict means a duplicate, answered with the
 *      original figures (a concurrent duplicate waits for the first);
 *   4. takes room under the issuance caps (else `rejected`, reason `cap`);
 *   5. stores the new usage and remainder and posts RED and POINT from the
 *      segment's issuance accounts; the lots expire per points_validity.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "behavior.h"
#include "catalog.h"
#include "journal.h"
#include "co2e.h"

#define CLOCK_SKEW_USEC (5 * USECS_PER_MINUTE)

/* Superusers and members of carbon_admin may report for any source. */
bool
behavior_role_is_admin(Oid role)
{
	Oid			admin = get_role_oid("carbon_admin", true);

	return OidIsValid(role) &&
		(superuser_arg(role) || (OidIsValid(admin) && has_privs_of_role(role, admin)));
}

/* Who calls: read once per call. */
void
behavior_context(BehaviorContext *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->latest = GetCurrentTransactionStartTimestamp() + CLOCK_SKEW_USEC;
	ctx->caller = GetOuterUserId();
	ctx->caller_is_admin = behavior_role_is_admin(ctx->caller);
}

/* The settings an event needs (cached per backend: catalog.c). */
void
behavior_read_settings(BehaviorContext *ctx)
{
	const LedgerSettings *s = ledger_settings();

	ctx->points_per_kg = s->points_per_kg;
	ctx->earliest = ledger_acceptance_start();
	strlcpy(ctx->timezone, s->timezone, sizeof(ctx->timezone));
	ctx->any_caps = s->any_caps;
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * Everything an event is checked against: the methodology version in force
 * at occurred_at and the source (both cached per backend, catalog.c), and
 * the account (one query).
 */
static void
lookup(BehaviorContext *ctx, const BehaviorInput *in, BehaviorFacts *f)
{
	memset(f, 0, sizeof(*f));
	if (in->methodology)
	{
		bool		known;

		/* without an event time there is no version in force, but the code may be known */
		f->has_m = ledger_methodology_in_force(in->methodology, in->occurred_at, &f->m, &known) &&
			in->has_occurred_at;
		f->methodology_known = known;
	}
	f->source_found = ledger_source(in->source, f->has_m ? f->m.scenario : NULL, &f->scenario_ok, &f->role);
	if (f->role)
		f->role = pstrdup(f->role);	/* the cache may be dropped by a later statement */
	f->account_found = in->has_account && ledger_get_account(in->account, &f->acc);
	behavior_read_settings(ctx);
}

/*
 * Superusers and carbon_admin always; others as members of the source's
 * role.  The reporter is the caller, or for an inbox row the role that
 * inserted it (api.md §4: a row is judged as if that role had called).
 */
static bool
may_report(const BehaviorContext *ctx, const BehaviorInput *in, const char *role)
{
	Oid			reporter = ctx->per_row_reporter ? in->reporter : ctx->caller;
	Oid			roleid;

	if (ctx->per_row_reporter ? in->reporter_is_admin : ctx->caller_is_admin)
		return true;
	if (role == NULL || !OidIsValid(reporter))
		return false;
	roleid = get_role_oid(role, true);
	return OidIsValid(roleid) && has_privs_of_role(reporter, roleid);
}

/*
 * Lock, always in this order, the daily usage of (account, scenario, local
 * day) — only when the methodology has a daily cap — and the account's
 * points remainder (1/1000 point).  Returns what is left of the cap and the
 * remainder.
 *
 * The rows are usually there: one statement locks them (a row lock writes
 * no new row version, where the upsert below writes one).  When one is
 * missing, the remainder is not locked ahead of the usage; the upsert then
 * creates and locks both, in order.
 */
static void
locks_take(const BehaviorContext *ctx, int64 account, const Methodology *m, TimestampTz at,
		   int64 *cap_left, int64 *milli)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr upsert_plan = NULL;
	Oid			types[5] = {INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, BOOLOID};
	Datum		values[5];
	bool		used_null,
				milli_null;
	int64		used;

	values[0] = Int64GetDatum(account);
	values[1] = CStringGetTextDatum(m->scenario);
	values[2] = TimestampTzGetDatum(at);
	values[3] = CStringGetTextDatum(ctx->timezone);
	values[4] = BoolGetDatum(m->has_daily_cap);
	ledger_plan(&lock_plan,
				"WITH u AS (SELECT used FROM carbon.daily_usage "
				"           WHERE $5 AND account = $1 AND scenario = $2 AND day = ($3 AT TIME ZONE $4)::date "
				"           FOR UPDATE), "
				"     c AS (SELECT milli FROM carbon.points_carry "
				"           WHERE account = $1 AND (NOT $5 OR EXISTS (SELECT 1 FROM u)) FOR UPDATE) "
				"SELECT (SELECT used FROM u), (SELECT milli FROM c)",
				5, types);
	if (SPI_execute_plan(lock_plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "daily usage and remainder lookup failed");
	used = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &used_null));
	*milli = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &milli_null));
	if ((m->has_daily_cap && used_null) || milli_null)
	{
		ledger_plan(&upsert_plan,
					"WITH u AS (INSERT INTO carbon.daily_usage AS u (account, scenario, day, used, last_grant) "
					"           SELECT $1, $2, ($3 AT TIME ZONE $4)::date, 0, 0 WHERE $5 "
					"           ON CONFLICT (account, scenario, day) DO UPDATE SET used = u.used RETURNING u.used), "
					"     c AS (INSERT INTO carbon.points_carry AS c (account, milli, last_points) VALUES ($1, 0, 0) "
					"           ON CONFLICT (account) DO UPDATE SET milli = c.milli RETURNING c.milli) "
					"SELECT (SELECT used FROM u), (SELECT milli FROM c)",
					5, types);
		if (SPI_execute_plan(upsert_plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "daily usage and remainder lookup failed");
		used = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &used_null));
		*milli = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &milli_null));
	}
	if (used_null)
		used = 0;
	*cap_left = !m->has_daily_cap ? PG_INT64_MAX : (used >= m->daily_cap_g ? 0 : m->daily_cap_g - used);
}

/*
 * Insert the behaviour row; false when (source, event_id) already exists.
 * With `st->store`, the same statement adds the grant to the daily usage
 * and stores the new remainder — only if the claim succeeded.
 */
static bool
behavior_claim(const BehaviorContext *ctx, const BehaviorInput *in, const Methodology *m, bool has_m,
			   BehaviorResult *out, const ClaimStore *st)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[19] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTOID, NUMERICOID,
		TIMESTAMPTZOID, TEXTOID, JSONBOID, TEXTOID, INT8OID, INT8OID, TEXTOID,
		BOOLOID, BOOLOID, INT8OID, INT8OID, BOOLOID};
	Datum		values[19];
	char		nulls[19];
	bool		isnull;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(in->source);
	values[1] = CStringGetTextDatum(in->event_id);
	values[2] = Int64GetDatum(in->account);
	nulls[2] = in->has_account ? ' ' : 'n';
	values[3] = text_or_null(in->methodology, &nulls[3]);
	values[4] = Int32GetDatum(has_m ? m->version : 0);
	nulls[4] = has_m ? ' ' : 'n';
	values[5] = text_or_null(has_m ? m->scenario : NULL, &nulls[5]);
	values[6] = PointerGetDatum(in->activity);
	nulls[6] = in->activity ? ' ' : 'n';
	values[7] = TimestampTzGetDatum(in->occurred_at);
	nulls[7] = in->has_occurred_at ? ' ' : 'n';
	values[8] = CStringGetTextDatum(ctx->timezone);
	values[9] = PointerGetDatum(in->attrs);
	nulls[9] = in->attrs ? ' ' : 'n';
	values[10] = CStringGetTextDatum(out->status);
	values[11] = Int64GetDatum(out->grams);
	values[12] = Int64GetDatum(out->points);
	values[13] = text_or_null(out->reason, &nulls[13]);
	values[14] = BoolGetDatum(st != NULL && st->store);
	values[15] = BoolGetDatum(st != NULL && st->has_cap);
	values[16] = Int64GetDatum(st ? st->grant : 0);
	values[17] = Int64GetDatum(st ? st->milli : 0);
	/* an event that credits reserves its entry's id: the behaviour names its entry */
	values[18] = BoolGetDatum(st != NULL && st->grant > 0);
	ledger_plan(&plan,
				"WITH claim AS ("
				"  INSERT INTO carbon.behavior (source, event_id, account, methodology, version, scenario, "
				"    activity, occurred_at, local_day, attrs, status, reduction, points, reason, entry_id) "
				"  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ($8 AT TIME ZONE $9)::date, $10, $11, "
				"          carbon.co2e_grams($12), $13, $14, "
				"          CASE WHEN $19 THEN nextval('carbon.entry_id_seq') END) "
				"  ON CONFLICT (source, event_id) DO NOTHING RETURNING id, entry_id), "
				"u AS (UPDATE carbon.daily_usage SET used = used + $17, last_grant = $17 "
				"      WHERE $15 AND $16 AND account = $3 AND scenario = $6 AND day = ($8 AT TIME ZONE $9)::date "
				"        AND EXISTS (SELECT 1 FROM claim)), "
				"c AS (UPDATE carbon.points_carry SET milli = $18, last_points = $13 "
				"      WHERE $15 AND account = $3 AND EXISTS (SELECT 1 FROM claim)) "
				"SELECT id, entry_id FROM claim",
				19, types);
	if (SPI_execute_plan(plan, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "behaviour insert failed");
	if (SPI_processed == 1)
	{
		out->behavior_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		out->entry_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			out->entry_id = 0;
		return true;
	}
	return false;
}

/* Store usage and remainder after the caps allowed the event. */
static void
usage_and_carry_store(const BehaviorContext *ctx, const BehaviorInput *in, const Methodology *m,
					  const ClaimStore *st, int64 points)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[8] = {INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, BOOLOID, INT8OID, INT8OID, INT8OID};
	Datum		values[8];

	values[0] = Int64GetDatum(in->account);
	values[1] = CStringGetTextDatum(m->scenario);
	values[2] = TimestampTzGetDatum(in->occurred_at);
	values[3] = CStringGetTextDatum(ctx->timezone);
	values[4] = BoolGetDatum(st->has_cap);
	values[5] = Int64GetDatum(st->grant);
	values[6] = Int64GetDatum(st->milli);
	values[7] = Int64GetDatum(points);
	ledger_plan(&plan,
				"WITH u AS (UPDATE carbon.daily_usage SET used = used + $6, last_grant = $6 "
				"           WHERE $5 AND account = $1 AND scenario = $2 AND day = ($3 AT TIME ZONE $4)::date) "
				"UPDATE carbon.points_carry SET milli = $7, last_points = $8 WHERE account = $1",
				8, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "daily usage and remainder update failed");
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
	out->behavior_id = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	status = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	out->grams = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
	out->points = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
	reason = SPI_getvalue(tt->vals[0], tt->tupdesc, 5);
	out->status = "duplicate";
	out->reason = psprintf("duplicate of behaviour " INT64_FORMAT " (%s%s%s)", out->behavior_id, status,
						   reason ? ": " : "", reason ? reason : "");
}

static void
behavior_set_rejected(int64 behavior_id, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(behavior_id);
	values[1] = CStringGetTextDatum(reason);
	ledger_plan(&plan,
				"UPDATE carbon.behavior SET status = 'rejected', reason = $2, "
				"reduction = carbon.co2e_grams(0), points = 0, entry_id = NULL WHERE id = $1",
				2, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "behaviour update failed");
}

void
behavior_reject(BehaviorResult *out, const char *reason)
{
	out->status = "rejected";
	out->reason = pstrdup(reason);
	out->grams = 0;
	out->points = 0;
}

/*
 * The read-only checks, in a fixed order: the first broken rule is the
 * reason (NULL when the event passes, with its reduction in *er).  A caller
 * who may not report for a known source is an error (42501), not a result.
 */
const char *
behavior_check(const BehaviorContext *ctx, const BehaviorInput *in, const BehaviorFacts *f, int64 *er)
{
	const char *why = NULL;

	*er = 0;
	if (in->methodology == NULL)
		why = "unknown_methodology";
	else if (!in->has_occurred_at)
		why = "missing_time";
	else if (!f->has_m)
		why = f->methodology_known ? "methodology_not_in_force" : "unknown_methodology";

	if (!f->source_found)
		why = "unknown_source";
	else if (ctx->per_row_reporter && !may_report(ctx, in, f->role))
		why = "source_not_authorised";	/* an inbox row: a result, the batch goes on */
	else if (!may_report(ctx, in, f->role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("not allowed to record behaviour for source \"%s\"", in->source),
				 errhint("Members of the source's operator role, carbon_admin and superusers may.")));
	if (why == NULL && !f->scenario_ok)
		why = "source_not_authorised";
	if (why == NULL && in->occurred_at > ctx->latest)
		why = "future";
	if (why == NULL && in->occurred_at < ctx->earliest)
		why = "too_old";
	if (why == NULL)
	{
		if (!f->account_found || !f->acc.participant)
			why = "unknown_account";
		else if (strcmp(f->acc.status, "active") != 0)
			why = strcmp(f->acc.status, "frozen") == 0 ? "account_frozen" : "account_closed";
	}
	if (why == NULL && !methodology_reduce(&f->m, in->activity, in->attrs, er, &why))
		Assert(why != NULL);
	return why;
}

/*
 * The grant under what is left of the daily cap, and the points with the
 * account's remainder (1/1000 point).  False, with `out` rejected as
 * implausible, when the figures overflow.  `out->status` comes in as
 * "accepted".
 */
bool
behavior_grant(const BehaviorContext *ctx, const Methodology *m, int64 er, int64 cap_left, int64 milli,
			   BehaviorResult *out, ClaimStore *st)
{
	int64		grant = er;
	int64		total_milli;

	if (grant > cap_left)
	{
		grant = cap_left;
		out->status = "capped";
		out->reason = pstrdup("daily_cap");
	}
	if (pg_mul_s64_overflow(grant, ctx->points_per_kg, &total_milli) ||
		pg_add_s64_overflow(total_milli, milli, &total_milli))
	{
		behavior_reject(out, "implausible");
		return false;
	}
	out->grams = grant;
	out->points = total_milli / 1000;
	st->has_cap = m->has_daily_cap && grant > 0;
	st->grant = grant;
	st->milli = total_milli % 1000;
	st->store = !ctx->any_caps;	/* no issuance cap to ask: store with the claim */
	return true;
}

/*
 * Record one event.  Needs an SPI connection of its own (the caller's
 * loop frees each row's memory with SPI_finish).
 */
void
behavior_record(BehaviorContext *ctx, const BehaviorInput *in, BehaviorResult *out)
{
	BehaviorFacts f;
	const char *why;
	int64		er;
	int64		cap_left,
				milli;
	ClaimStore	st;
	LedgerAccount *acc = &f.acc;

	memset(out, 0, sizeof(*out));
	out->status = "accepted";

	/* 1. read-only checks */
	lookup(ctx, in, &f);
	why = behavior_check(ctx, in, &f, &er);
	if (why != NULL)
	{
		behavior_reject(out, why);
		if (!behavior_claim(ctx, in, &f.m, f.has_m, out, NULL))
			behavior_original(in, out);
		return;
	}

	/* 2. daily cap and points, under the locks of the usage and remainder rows */
	locks_take(ctx, in->account, &f.m, in->occurred_at, &cap_left, &milli);
	if (!behavior_grant(ctx, &f.m, er, cap_left, milli, out, &st))
	{
		if (!behavior_claim(ctx, in, &f.m, f.has_m, out, NULL))
			behavior_original(in, out);
		return;
	}

	/* 3. claim the event id */
	if (!behavior_claim(ctx, in, &f.m, f.has_m, out, &st))
	{
		behavior_original(in, out);
		return;
	}

	/* 4. issuance caps */
	if (ctx->any_caps)
	{
		int64		cap_amounts[2] = {st.grant, out->points};
		const char *cap_assets[2] = {"RED", "POINT"};

		if (!ledger_cap_take(acc->tier, acc->region, in->occurred_at, cap_assets, cap_amounts, 2))
		{
			behavior_set_rejected(out->behavior_id, "cap");
			behavior_reject(out, "cap");
			return;
		}
		usage_and_carry_store(ctx, in, &f.m, &st, out->points);
	}

	/* 5. post RED and POINT from the segment's issuance accounts */
	if (st.grant > 0)
	{
		const LedgerAccount *accounts[4];
		int16		assets[4] = {ASSET_RED, ASSET_RED, ASSET_POINT, ASSET_POINT};
		int64		amounts[4];
		int			n = 0;
		LedgerEntry entry;

		accounts[n] = ledger_system_account_info("issuance", ASSET_RED, acc->tier, acc->region);
		amounts[n++] = -st.grant;
		accounts[n] = acc;
		amounts[n++] = st.grant;
		if (out->points > 0)
		{
			accounts[n] = ledger_system_account_info("issuance", ASSET_POINT, acc->tier, acc->region);
			amounts[n++] = -out->points;
			accounts[n] = acc;
			amounts[n++] = out->points;
		}
		/* the memo names its behaviour (behavior_entry_reversed reads it) */
		entry = ledger_entry("behavior", psprintf("behaviour " INT64_FORMAT, out->behavior_id),
							 n, accounts, assets, amounts);
		entry.reserved_id = out->entry_id;
		entry.fresh_basis = in->occurred_at;	/* new lots expire per points_validity from the event */
		ledger_post(&entry);
	}
}

static void
read_args(FunctionCallInfo fcinfo, BehaviorInput *in)
{
	memset(in, 0, sizeof(*in));
	in->source = ledger_arg_text(fcinfo, 0, "source");
	in->event_id = ledger_arg_text(fcinfo, 1, "event_id");
	if (in->source[0] == '\0' || in->event_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source and event_id must not be empty")));
	if (strlen(in->source) > BEHAVIOR_MAX_SOURCE || strlen(in->event_id) > BEHAVIOR_MAX_EVENT_ID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source is at most %d bytes and event_id at most %d", BEHAVIOR_MAX_SOURCE,
						BEHAVIOR_MAX_EVENT_ID)));
	in->has_account = !PG_ARGISNULL(2);
	in->account = in->has_account ? PG_GETARG_INT64(2) : 0;
	in->methodology = ledger_arg_text_or_null(fcinfo, 3);
	in->activity = PG_ARGISNULL(4) ? NULL : PG_GETARG_NUMERIC(4);
	in->has_occurred_at = !PG_ARGISNULL(5);
	in->occurred_at = in->has_occurred_at ? PG_GETARG_TIMESTAMPTZ(5) : 0;
	in->attrs = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);
}

/*
 * record_behavior(source, event_id, account, methodology, activity,
 *                 occurred_at, attrs) → (behavior_id, status, reduction, points, reason)
 */
PG_FUNCTION_INFO_V1(ledger_record_behavior);
Datum
ledger_record_behavior(PG_FUNCTION_ARGS)
{
	BehaviorContext ctx;
	BehaviorInput in;
	BehaviorResult out;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	MemoryContext callercxt = CurrentMemoryContext;
	char	   *reason;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "record_behavior must return a row");
	read_args(fcinfo, &in);
	ledger_spi_connect();
	behavior_context(&ctx);
	behavior_record(&ctx, &in, &out);
	reason = out.reason ? MemoryContextStrdup(callercxt, out.reason) : NULL;
	SPI_finish();
	out.reason = reason;
	values[0] = Int64GetDatum(out.behavior_id);
	values[1] = CStringGetTextDatum(out.status);
	values[2] = Co2eGetDatum(out.grams);
	values[3] = Int64GetDatum(out.points);
	values[4] = out.reason ? CStringGetTextDatum(out.reason) : (Datum) 0;
	nulls[4] = out.reason == NULL;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * reverse_entry() of a behaviour's entry (api.md §7): the behaviours it
 * credited become `reversed`, leave the reports, and give back their daily
 * usage.  A single event's entry names it in its memo ("behaviour <id>",
 * written by behavior_record); a bulk entry of process_inbox is linked by
 * carbon.behavior_batch to the ids it covers, for its own accounts, among
 * the behaviours without an entry of their own.  (Entries of 0.1 bulk calls
 * have no link: their behaviours stay as they are.)  The sub-point
 * remainder carried per account is not taken back, nor the issuance cap's
 * count: a cap counts what was issued.
 */
void
behavior_entry_reversed(int64 entry_id)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr mark_plan = NULL;
	Oid			find_types[1] = {INT8OID};
	Oid			mark_types[4] = {INT8OID, INT8OID, INT8ARRAYOID, BOOLOID};
	Datum		values[4];
	bool		isnull;

	values[0] = Int64GetDatum(entry_id);
	ledger_plan(&find_plan,
				"SELECT coalesce(k.first_behavior, substring(e.memo FROM '^behaviour ([0-9]+)$')::bigint), "
				"       coalesce(k.last_behavior, substring(e.memo FROM '^behaviour ([0-9]+)$')::bigint), "
				"       (SELECT array_agg(DISTINCT p.account) FROM carbon.posting p "
				"          JOIN carbon.account a ON a.id = p.account "
				"         WHERE p.entry_id = e.id AND a.kind = 'participant' AND p.amount > 0), "
				"       k.entry_id IS NOT NULL "
				"FROM carbon.entry e LEFT JOIN carbon.behavior_batch k ON k.entry_id = e.id "
				"WHERE e.id = $1 AND e.kind = 'behavior'",
				1, find_types);
	if (SPI_execute_plan(find_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "behaviour entry lookup failed");
	if (SPI_processed != 1)
		return;
	for (int i = 0; i < 4; i++)
	{
		values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
		if (isnull)
			return;				/* no behaviour named: nothing to mark */
	}
	ledger_plan(&mark_plan,
				"WITH hit AS (UPDATE carbon.behavior b SET status = 'reversed' "
				"             WHERE b.id BETWEEN $1 AND $2 AND b.account = ANY ($3) "
				"               AND (NOT $4 OR b.entry_id IS NULL) "
				"               AND b.status IN ('accepted', 'capped') AND carbon.grams(b.reduction) > 0 "
				"             RETURNING b.account, b.scenario, b.local_day, carbon.grams(b.reduction) AS g) "
				"UPDATE carbon.daily_usage u SET used = greatest(u.used - s.g, 0) "
				"FROM (SELECT account, scenario, local_day, sum(g)::bigint AS g FROM hit GROUP BY 1, 2, 3) s "
				"WHERE u.account = s.account AND u.scenario = s.scenario AND u.day = s.local_day",
				4, mark_types);
	if (SPI_execute_plan(mark_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "behaviour reversal failed");
}
