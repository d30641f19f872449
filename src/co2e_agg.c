/*
 * co2e_agg.c — sum(co2e) and avg(co2e), parallel and window-capable.
 *
 * Both aggregates share one transition function and state (an int128 sum and
 * a count), so PostgreSQL computes the state once for `sum(x), avg(x)` in the
 * same query.  The int128 sum cannot overflow before 2^64 rows, so an overflow
 * is reported once, by the final function, and never depends on row order or
 * on how rows were split between parallel workers.
 */
#include "postgres.h"

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "co2e.h"

#ifndef HAVE_INT128
#error "carbon_ledger needs a compiler with a 128-bit integer type"
#endif

typedef struct Co2eAggState
{
	int128		sum;			/* exact sum of the grams seen */
	int64		count;			/* number of non-null values */
} Co2eAggState;

static Co2eAggState *
co2e_agg_state(FunctionCallInfo fcinfo, int argno)
{
	MemoryContext aggcontext;
	Co2eAggState *state;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "co2e aggregate function called in non-aggregate context");
	if (!PG_ARGISNULL(argno))
		return (Co2eAggState *) PG_GETARG_POINTER(argno);
	state = (Co2eAggState *) MemoryContextAllocZero(aggcontext, sizeof(Co2eAggState));
	return state;
}

/* co2e_accum(internal, co2e) → internal: add one value (the hot loop) */
PG_FUNCTION_INFO_V1(co2e_accum);
Datum
co2e_accum(PG_FUNCTION_ARGS)
{
	Co2eAggState *state;

	/* the context check is needed only once, when the state is created */
	if (likely(!PG_ARGISNULL(0)))
		state = (Co2eAggState *) PG_GETARG_POINTER(0);
	else
		state = co2e_agg_state(fcinfo, 0);

	if (!PG_ARGISNULL(1))
	{
		state->sum += (int128) PG_GETARG_CO2E(1);
		state->count++;
	}
	PG_RETURN_POINTER(state);
}

/* co2e_accum_inv(internal, co2e) → internal: remove one value (moving windows) */
PG_FUNCTION_INFO_V1(co2e_accum_inv);
Datum
co2e_accum_inv(PG_FUNCTION_ARGS)
{
	Co2eAggState *state = co2e_agg_state(fcinfo, 0);

	if (!PG_ARGISNULL(1))
	{
		state->sum -= (int128) PG_GETARG_CO2E(1);
		state->count--;
	}
	PG_RETURN_POINTER(state);
}

/* co2e_combine(internal, internal) → internal: merge a worker's partial state */
PG_FUNCTION_INFO_V1(co2e_combine);
Datum
co2e_combine(PG_FUNCTION_ARGS)
{
	Co2eAggState *state;
	Co2eAggState *other;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	state = co2e_agg_state(fcinfo, 0);
	other = (Co2eAggState *) PG_GETARG_POINTER(1);
	state->sum += other->sum;
	state->count += other->count;
	PG_RETURN_POINTER(state);
}

/* co2e_agg_serialize(internal) → bytea: 16-byte sum (high, low) and count */
PG_FUNCTION_INFO_V1(co2e_agg_serialize);
Datum
co2e_agg_serialize(PG_FUNCTION_ARGS)
{
	Co2eAggState *state;
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "co2e aggregate function called in non-aggregate context");
	state = (Co2eAggState *) PG_GETARG_POINTER(0);
	pq_begintypsend(&buf);
	pq_sendint64(&buf, (int64) (state->sum >> 64));
	pq_sendint64(&buf, (int64) (uint64) state->sum);
	pq_sendint64(&buf, state->count);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* co2e_agg_deserialize(bytea, internal) → internal */
PG_FUNCTION_INFO_V1(co2e_agg_deserialize);
Datum
co2e_agg_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *serial = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	Co2eAggState *state;
	int64		high;
	uint64		low;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "co2e aggregate function called in non-aggregate context");
	/* read the bytea in place (what PG16's initReadOnlyStringInfo does) */
	buf.data = VARDATA_ANY(serial);
	buf.len = VARSIZE_ANY_EXHDR(serial);
	buf.maxlen = 0;
	buf.cursor = 0;
	state = (Co2eAggState *) palloc0(sizeof(Co2eAggState));
	high = pq_getmsgint64(&buf);
	low = (uint64) pq_getmsgint64(&buf);
	state->sum = ((int128) high << 64) | (int128) low;
	state->count = pq_getmsgint64(&buf);
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/* co2e_sum_final(internal) → co2e: NULL over no rows; 22003 if it does not fit */
PG_FUNCTION_INFO_V1(co2e_sum_final);
Datum
co2e_sum_final(PG_FUNCTION_ARGS)
{
	Co2eAggState *state = PG_ARGISNULL(0) ? NULL : (Co2eAggState *) PG_GETARG_POINTER(0);

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	if (state->sum > (int128) PG_INT64_MAX || state->sum < (int128) PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("sum of co2e values out of range"),
				 errdetail("The exact sum does not fit in a co2e, whose limit is 9223372036854775807 g."),
				 errhint("Sum carbon.grams(x)::numeric instead to get the exact total.")));
	PG_RETURN_CO2E((Co2e) state->sum);
}

/* co2e_avg_final(internal) → co2e: the mean truncated toward zero */
PG_FUNCTION_INFO_V1(co2e_avg_final);
Datum
co2e_avg_final(PG_FUNCTION_ARGS)
{
	Co2eAggState *state = PG_ARGISNULL(0) ? NULL : (Co2eAggState *) PG_GETARG_POINTER(0);

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	/* C division truncates toward zero; a mean always lies within int64. */
	PG_RETURN_CO2E((Co2e) (state->sum / (int128) state->count));
}
