/*
 * seal.c — SHA-256 for the hash chain of sealed entries.
 *
 * carbon._sha256_chain(prev bytea, line text ORDER BY ...) is an ordered
 * aggregate: SHA-256 over prev followed by each line and a newline, streamed,
 * so sealing a million entries needs no million-entry string in memory.
 * seal() and verify_integrity() (SQL) feed it the canonical text of entries.
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"

typedef struct ChainState
{
	pg_cryptohash_ctx *ctx;
} ChainState;

static void
chain_update(pg_cryptohash_ctx *ctx, const void *data, size_t len)
{
	if (pg_cryptohash_update(ctx, data, len) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not update SHA-256: %s", pg_cryptohash_error(ctx))));
}

static ChainState *
chain_start(FunctionCallInfo fcinfo, bytea *prev)
{
	MemoryContext aggcontext;
	MemoryContext old;
	ChainState *state;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "_sha256_chain called in non-aggregate context");
	old = MemoryContextSwitchTo(aggcontext);
	state = palloc0(sizeof(ChainState));
	state->ctx = pg_cryptohash_create(PG_SHA256);
	MemoryContextSwitchTo(old);
	if (state->ctx == NULL || pg_cryptohash_init(state->ctx) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start SHA-256")));
	if (prev)
		chain_update(state->ctx, VARDATA_ANY(prev), VARSIZE_ANY_EXHDR(prev));
	return state;
}

/* _sha256_chain_step(internal, prev bytea, line text) → internal */
PG_FUNCTION_INFO_V1(ledger_sha256_chain_step);
Datum
ledger_sha256_chain_step(PG_FUNCTION_ARGS)
{
	ChainState *state;

	if (PG_ARGISNULL(0))
		state = chain_start(fcinfo, PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1));
	else
		state = (ChainState *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(2))
	{
		text	   *line = PG_GETARG_TEXT_PP(2);

		chain_update(state->ctx, VARDATA_ANY(line), VARSIZE_ANY_EXHDR(line));
		chain_update(state->ctx, "\n", 1);
	}
	PG_RETURN_POINTER(state);
}

/* _sha256_chain_final(internal) → bytea (32 bytes); NULL over no rows */
PG_FUNCTION_INFO_V1(ledger_sha256_chain_final);
Datum
ledger_sha256_chain_final(PG_FUNCTION_ARGS)
{
	ChainState *state;
	bytea	   *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (ChainState *) PG_GETARG_POINTER(0);
	result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	if (pg_cryptohash_final(state->ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not finish SHA-256")));
	pg_cryptohash_free(state->ctx);
	state->ctx = NULL;
	PG_RETURN_BYTEA_P(result);
}
