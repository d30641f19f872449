/*
 * pg_shim.h — just enough of the PostgreSQL backend for the extension's text
 * parsers to run inside a libFuzzer binary, with no server.
 *
 * pg_shim.c defines the few backend symbols the parsers reach: ereport's
 * errstart/errcode/errmsg/.../errfinish, and palloc/pfree/psprintf.
 * An ERROR is captured (SQLSTATE, message, detail, hint) and longjmps back
 * to the innermost fuzz_call(); every palloc'd chunk belongs to one arena that
 * fuzz_reset() frees after each input, as the server frees a memory context.
 * Formatting goes through libpgport's pg_snprintf, as in the server.
 */
#ifndef CARBON_FUZZ_PG_SHIM_H
#define CARBON_FUZZ_PG_SHIM_H

#include "postgres.h"

/* The error that ended the last fuzz_call(), if one did. */
typedef struct FuzzError
{
	int			elevel;
	int			sqlerrcode;
	char		sqlstate[6];
	char	   *message;		/* palloc'd in the arena, or NULL */
	char	   *detail;
	char	   *hint;
	const char *filename;
	int			lineno;
	const char *funcname;
} FuzzError;

extern FuzzError fuzz_error;

/*
 * Runs fn(arg).  True when it returned; false when it raised an ERROR, which
 * is then described by fuzz_error.  Calls nest.
 */
extern bool fuzz_call(void (*fn) (void *arg), void *arg);

/* Frees every palloc'd chunk and clears fuzz_error; call after each input. */
extern void fuzz_reset(void);

/* Prints the message and aborts, so libFuzzer records the input as a crash. */
extern void fuzz_fail(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

#endif							/* CARBON_FUZZ_PG_SHIM_H */
