/*
 * pg_shim.c — the backend symbols the extension's text parsers reach, for
 * the libFuzzer harness (see pg_shim.h).  Nothing here talks to a server.
 *
 * ereport(): errstart() opens a report; errcode()/errmsg()/errdetail*()/
 * errhint() fill fuzz_error (messages formatted with pg_vsnprintf, so a bad
 * format argument is caught by AddressSanitizer, as it would crash the
 * server); errfinish() longjmps to the innermost fuzz_call() for ERROR.
 * Anything above ERROR, an ERROR outside fuzz_call(), or a report started
 * while another is being built, aborts: the parsers must never do that.
 *
 * palloc(): malloc'd chunks on one list, freed together by fuzz_reset(),
 * like a memory context reset.  Requests above MaxAllocSize raise an ERROR
 * with the server's SQLSTATE (XX000), so a target that only allows the
 * parser's documented SQLSTATEs reports them.
 */
#include "pg_shim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/palloc.h"

FuzzError	fuzz_error;

static jmp_buf *error_target = NULL;
static bool report_open = false;

void
fuzz_fail(const char *fmt,...)
{
	va_list		args;

	fputs("fuzz harness: ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	abort();
}

/* ---- memory: one arena of malloc'd chunks ---- */

#define CHUNK_MAGIC UINT64CONST(0xC0E2C0E2C0E2C0E2)

typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	Size		size;
	uint64		magic;
} Chunk;						/* 32 bytes: the data stays 16-byte aligned */

static Chunk *arena = NULL;

static Chunk *
chunk_of(void *pointer)
{
	Chunk	   *c;

	if (pointer == NULL)
		fuzz_fail("pfree of a NULL pointer");
	c = (Chunk *) pointer - 1;
	if (c->magic != CHUNK_MAGIC)
		fuzz_fail("pfree of a pointer palloc did not return");
	return c;
}

void *
palloc(Size size)
{
	Chunk	   *c;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	c = malloc(sizeof(Chunk) + size);
	if (c == NULL)
		fuzz_fail("out of memory (%zu bytes)", size);
	c->prev = NULL;
	c->next = arena;
	if (arena)
		arena->prev = c;
	arena = c;
	c->size = size;
	c->magic = CHUNK_MAGIC;
	return c + 1;
}

void
pfree(void *pointer)
{
	Chunk	   *c = chunk_of(pointer);

	if (c->prev)
		c->prev->next = c->next;
	else
		arena = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->magic = 0;
	free(c);
}

void
fuzz_reset(void)
{
	while (arena)
		pfree(arena + 1);
	if (error_target != NULL || report_open)
		fuzz_fail("fuzz_reset() inside fuzz_call() or an open report");
	memset(&fuzz_error, 0, sizeof(fuzz_error));
}

/* pvsnprintf-style: format into a palloc'd buffer of the right size */
static char *
format_va(const char *fmt, va_list args)
{
	size_t		len = 128;

	for (;;)
	{
		char	   *buf = palloc(len);
		va_list		copy;
		int			n;

		va_copy(copy, args);
		n = vsnprintf(buf, len, fmt, copy);
		va_end(copy);
		if (n < 0)
			fuzz_fail("vsnprintf failed for format \"%s\"", fmt);
		if ((size_t) n < len)
			return buf;
		pfree(buf);
		len = (size_t) n + 1;
	}
}

char *
psprintf(const char *fmt,...)
{
	va_list		args;
	char	   *result;

	va_start(args, fmt);
	result = format_va(fmt, args);
	va_end(args);
	return result;
}

/* ---- ereport ---- */

static void
unpack_sqlstate(int code, char *out)
{
	for (int i = 0; i < 5; i++)
	{
		out[i] = PGUNSIXBIT(code);
		code >>= 6;
	}
	out[5] = '\0';
}

bool
fuzz_call(void (*fn) (void *arg), void *arg)
{
	jmp_buf		env;
	jmp_buf    *volatile saved = error_target;

	if (setjmp(env) != 0)
	{
		error_target = saved;
		return false;
	}
	error_target = &env;
	fn(arg);
	error_target = saved;
	return true;
}

bool
errstart(int elevel, const char *domain)
{
	(void) domain;
	if (report_open)
		fuzz_fail("ereport started while another report was being built");
	if (elevel > ERROR)
		fuzz_fail("ereport at level %d (above ERROR)", elevel);
	memset(&fuzz_error, 0, sizeof(fuzz_error));
	fuzz_error.elevel = elevel;
	/* the server's defaults, elog.c's errstart() */
	if (elevel >= ERROR)
		fuzz_error.sqlerrcode = ERRCODE_INTERNAL_ERROR;
	else if (elevel >= WARNING)
		fuzz_error.sqlerrcode = ERRCODE_WARNING;
	else
		fuzz_error.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
	report_open = true;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	if (!report_open)
		fuzz_fail("errfinish without errstart");
	report_open = false;
	fuzz_error.filename = filename;
	fuzz_error.lineno = lineno;
	fuzz_error.funcname = funcname;
	unpack_sqlstate(fuzz_error.sqlerrcode, fuzz_error.sqlstate);
	if (fuzz_error.elevel < ERROR)
		return;
	if (error_target == NULL)
		fuzz_fail("ERROR %s outside fuzz_call() at %s:%d: %s", fuzz_error.sqlstate,
				  filename, lineno, fuzz_error.message ? fuzz_error.message : "(no message)");
	longjmp(*error_target, 1);
}

int
errcode(int sqlerrcode)
{
	if (!report_open)
		fuzz_fail("errcode outside a report");
	fuzz_error.sqlerrcode = sqlerrcode;
	return 0;
}

#define SHIM_ERRFIELD(name, field) \
int \
name(const char *fmt,...) \
{ \
	va_list		args; \
	if (!report_open) \
		fuzz_fail(#name " outside a report"); \
	va_start(args, fmt); \
	fuzz_error.field = format_va(fmt, args); \
	va_end(args); \
	return 0; \
}

SHIM_ERRFIELD(errmsg, message)
SHIM_ERRFIELD(errmsg_internal, message)
SHIM_ERRFIELD(errdetail, detail)
SHIM_ERRFIELD(errdetail_internal, detail)
SHIM_ERRFIELD(errhint, hint)
