/*
 * behavior.c — the rules a low-carbon event is judged by, and
 * record_behavior().  An event:
 *   1. is checked, read-only, in a fixed order: source, methodology in
 *      force at occurred_at, scenario authorised for the source, acceptance
 *      window, account, plausibility (behavior_check); a failed check is a
 *      `rejected` result with its reason;
 *   2. gets what is left of the day's cap for its scenario and the points
 *      its reduction is worth, with the account's sub-point remainder
 *      (behavior_grant);
 *   3. takes room under the issuance caps (else `rejected`, reason `cap`);
 *   4. credits RED and POINT from its segment's issuance accounts; the lots
 *      expire per points_validity from the event's time.
 * engine.c applies these rules to batches, under the locks, with the
 * claim of (source, event_id); record_behavior() is a batch of one.
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

/*
 * Superusers and carbon_admin always; others as members of the source's
 * role.  The reporter is the caller, or for an inbox row the role that
 * inserted it (api.md §4: a row is judged as if that role had called).
 */
bool
behavior_may_report(Oid reporter, bool reporter_is_admin, const char *role)
{
	Oid			roleid;

	if (reporter_is_admin)
		return true;
	if (role == NULL || !OidIsValid(reporter))
		return false;
	roleid = get_role_oid(role, true);
	return OidIsValid(roleid) && has_privs_of_role(reporter, roleid);
}

/*
 * Why a reporter may not claim the (source, event_id) of an event at all,
 * or NULL: a registered source it may not report for, or (unless it is an
 * admin) a source nobody registered.  Such an event is rejected with that
 * reason but recorded nowhere in carbon.behavior, only in
 * carbon.inbox_rejects: recorded there it would make the source's own
 * event of that id a duplicate of a rejected one, and anyone allowed to
 * call could void another source's events (or a future source's) by
 * guessing their ids.  record_behavior() and process_inbox() both ask.
 */
const char *
behavior_reporter_problem(Oid reporter, bool reporter_is_admin, const char *source)
{
	const LedgerSource *s;

	if (reporter_is_admin)
		return NULL;
	s = ledger_source_info(source);
	if (!s->found)
		return "unknown_source";
	if (!behavior_may_report(reporter, false, s->role))
		return "source_not_authorised";
	return NULL;
}

static bool
may_report(const BehaviorContext *ctx, const BehaviorInput *in, const char *role)
{
	return ctx->per_row_reporter ? behavior_may_report(in->reporter, in->reporter_is_admin, role)
		: behavior_may_report(ctx->caller, ctx->caller_is_admin, role);
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
 * reason (NULL when the event passes, with its reduction in *er).  Callers
 * keep an event its reporter may not claim out of the engine first
 * (behavior_reporter_problem): here that is only a guard.
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

	/* cut to what is left of the day's cap; nothing left: capped, whatever it claims (api.md) */
	if (grant > cap_left || (m->has_daily_cap && cap_left == 0))
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
	return true;
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
	BehaviorCall *call;
	const char *problem;
	int64		counts[4] = {0, 0, 0, 0};
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "record_behavior must return a row");
	read_args(fcinfo, &in);
	behavior_context(&ctx);
	memset(&out, 0, sizeof(out));
	problem = behavior_reporter_problem(ctx.caller, ctx.caller_is_admin, in.source);
	if (problem != NULL)
	{
		/* rejected, as the inbox judges the same row; no behaviour claims the id */
		inbox_keep_refused(&in, ctx.caller, problem);
		behavior_reject(&out, problem);
		nulls[0] = true;
	}
	else
	{
		/* a batch of one, with an entry of its own */
		call = behavior_call_begin(&ctx, true, false);
		behavior_call_batch(call, &in, 1, &out, counts);
		behavior_call_end(call);
	}
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
 * written by the engine, engine.c: post_own_entry); a bulk entry of process_inbox is linked by
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
	static SPIPlanPtr mark_plan_01 = NULL;
	SPIPlanPtr	plan;
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
/* the behaviours a reversal marks, and the daily usage they give back */
#define REVERSAL_HIT \
	"WITH hit AS (UPDATE carbon.behavior b SET status = 'reversed' " \
	"             WHERE b.id BETWEEN $1 AND $2 AND b.account = ANY ($3) " \
	"               AND (NOT $4 OR b.entry_id IS NULL) " \
	"               AND b.status IN ('accepted', 'capped') AND carbon.grams(b.reduction) > 0 " \
	"             RETURNING b.account, b.scenario, b.methodology, b.local_day, " \
	"                       carbon.grams(b.reduction) AS g, b.points) "
#define REVERSAL_USAGE \
	"UPDATE carbon.daily_usage u SET used = greatest(u.used - s.g, 0) " \
	"FROM (SELECT account, scenario, local_day, sum(g)::bigint AS g FROM hit GROUP BY 1, 2, 3) s " \
	"WHERE u.account = s.account AND u.scenario = s.scenario AND u.day = s.local_day"

	if (behavior_summary_kept())
	{
		ledger_plan(&mark_plan,
					REVERSAL_HIT ", usage AS (" REVERSAL_USAGE "), "
		/* the reports' monthly summary loses them too */
					"summary AS (UPDATE carbon.behavior_monthly m "
					"SET events = m.events - s.n, grams = m.grams - s.g, points = m.points - s.p "
					"FROM (SELECT date_trunc('month', h.local_day::timestamp)::date AS month, a.region, h.scenario, "
					"             h.methodology, h.account, count(*) AS n, sum(h.g)::bigint AS g, sum(h.points)::bigint AS p "
					"      FROM hit h JOIN carbon.account a ON a.id = h.account GROUP BY 1, 2, 3, 4, 5) s "
					"WHERE m.month = s.month AND m.region = s.region AND m.scenario = s.scenario "
					"  AND m.methodology = s.methodology AND m.account = s.account "
					"RETURNING 1), "
		/* ... and so does what they earned for the groups their accounts were in that day */
					"groups AS (UPDATE carbon.group_credit c "
					"           SET events = c.events - s.n, grams = c.grams - s.g, points = c.points - s.p "
					"           FROM (SELECT m.group_id, date_trunc('month', h.local_day::timestamp)::date AS month, "
					"                        h.account, count(*) AS n, sum(h.g)::bigint AS g, sum(h.points)::bigint AS p "
					"                 FROM hit h JOIN carbon.group_member m ON m.account = h.account "
					"                  AND h.local_day >= m.since AND (m.until IS NULL OR h.local_day <= m.until) "
					"                 GROUP BY 1, 2, 3) s "
					"           WHERE c.group_id = s.group_id AND c.month = s.month AND c.account = s.account "
					"           RETURNING 1) "
					"SELECT (SELECT count(*) FROM summary) + (SELECT count(*) FROM groups)",
					4, mark_types);
		plan = mark_plan;
	}
	else
	{
		/* a 0.1 schema (behavior_summary_kept): the usage only */
		ledger_plan(&mark_plan_01, REVERSAL_HIT REVERSAL_USAGE, 4, mark_types);
		plan = mark_plan_01;
	}
	if (SPI_execute_plan(plan, values, NULL, false, 0) != (plan == mark_plan ? SPI_OK_SELECT : SPI_OK_UPDATE))
		elog(ERROR, "behaviour reversal failed");
}
