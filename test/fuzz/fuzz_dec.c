/*
 * fuzz_dec.c — libFuzzer target for dec_parse() in src/methodology.c, the
 * exact decimal reader behind methodology parameters, activities (through
 * numeric_out) and behaviour attributes: "-12.345" → mant -12345, scale 3.
 *
 * Each input, as a C string, is read by dec_parse() and by a reference model
 * of its documented contract written here independently: optional leading
 * and trailing white space, an optional sign, digits with at most one point
 * and at least one digit; refused when it has more than 18 significant
 * digits, except that fraction zeros past the 18th are dropped.  The target
 * aborts (libFuzzer reports the input) unless:
 *   - dec_parse() raises no ERROR at all (it reports refusal by returning
 *     false) and accepts exactly what the model accepts, with the same
 *     mantissa and scale;
 *   - an accepted Dec has |mant| < 10^18 and scale >= 0, so products of two
 *     fit in int128 as methodology.c assumes;
 *   - the Dec written back as plain decimal text reads back identically.
 * LLVMFuzzerInitialize() first checks parser and model against a table of
 * known answers.
 */
#include "pg_shim.h"

#include <stdio.h>
#include <stdlib.h>

#include "methodology.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SIGNIFICANT 18

/* ---- the reference model ---- */

static bool
ref_space(char c)
{
	return c != '\0' && strchr(" \t\n\r\f\v", c) != NULL;
}

static bool
ref_dec(const char *s, Dec *out)
{
	size_t		n = strlen(s),
				start = 0,
				end = n,
				point = SIZE_MAX,
				ndigits = 0,
				first_sig,
				nsig;
	bool		negative = false;
	char	   *digits;			/* integer then fraction digits */
	size_t		int_digits;
	int128		mant = 0;

	while (start < end && ref_space(s[start]))
		start++;
	while (end > start && ref_space(s[end - 1]))
		end--;
	if (start < end && (s[start] == '+' || s[start] == '-'))
		negative = s[start++] == '-';
	digits = malloc(end - start + 1);
	for (size_t i = start; i < end; i++)
	{
		if (s[i] == '.' && point == SIZE_MAX)
			point = ndigits;
		else if (s[i] >= '0' && s[i] <= '9')
			digits[ndigits++] = s[i];
		else
		{
			free(digits);
			return false;
		}
	}
	if (ndigits == 0)
	{
		free(digits);
		return false;
	}
	int_digits = point == SIZE_MAX ? ndigits : point;

	first_sig = 0;
	while (first_sig < ndigits && digits[first_sig] == '0')
		first_sig++;
	nsig = ndigits - first_sig;
	/* past the 18th significant digit: only fraction zeros, which go */
	for (size_t k = first_sig + MAX_SIGNIFICANT; k < ndigits; k++)
		if (k < int_digits || digits[k] != '0')
		{
			free(digits);
			return false;
		}
	for (size_t k = first_sig; k < first_sig + MAX_SIGNIFICANT && k < ndigits; k++)
		mant = mant * 10 + (digits[k] - '0');
	free(digits);
	out->mant = negative ? -mant : mant;
	out->scale = (int) (ndigits - int_digits) -
		(nsig > MAX_SIGNIFICANT ? (int) (nsig - MAX_SIGNIFICANT) : 0);
	return true;
}

/* mant × 10^-scale as plain text: "-0.000123" */
static char *
dec_text(Dec d)
{
	char		rev[64];
	int			n = 0;
	int128		m = d.mant < 0 ? -d.mant : d.mant;
	char	   *out = malloc((size_t) d.scale + 48),
			   *o = out;

	do
	{
		rev[n++] = (char) ('0' + (int) (m % 10));
		m /= 10;
	} while (m > 0);
	if (d.mant < 0)
		*o++ = '-';
	for (int k = d.scale >= n ? d.scale : n - 1; k >= 0; k--)
	{
		*o++ = k < n ? rev[k] : '0';
		if (k == d.scale && d.scale > 0)
			*o++ = '.';
	}
	*o = '\0';
	return out;
}

/* ---- calling the extension ---- */

typedef struct DecCall
{
	const char *input;
	bool		ok;
	Dec			dec;
} DecCall;

static void
call_dec_parse(void *arg)
{
	DecCall    *c = arg;

	c->ok = dec_parse(c->input, &c->dec);
}

static bool
ext_dec(const char *s, Dec *out)
{
	DecCall		c = {s, false, {0, 0}};

	if (!fuzz_call(call_dec_parse, &c))
		fuzz_fail("dec_parse(\"%s\") raised ERROR %s: %s", s, fuzz_error.sqlstate,
				  fuzz_error.message ? fuzz_error.message : "");
	*out = c.dec;
	return c.ok;
}

static const char *
show(Dec d)
{
	static char buf[128];
	char	   *t = dec_text(d);

	snprintf(buf, sizeof(buf), "%.100s (scale %d)", t, d.scale);
	free(t);
	return buf;
}

static void
check_input(const char *s)
{
	Dec			model = {0, 0},
				ext = {0, 0},
				back = {0, 0};
	bool		model_ok = ref_dec(s, &model);
	bool		ext_ok = ext_dec(s, &ext);
	static const int128 limit = (int128) 1000000000000000000LL;	/* 10^18 */
	char	   *text;

	if (ext_ok != model_ok)
		fuzz_fail("dec_parse(\"%s\") %s, model %s", s, ext_ok ? "accepts" : "refuses",
				  model_ok ? "accepts" : "refuses");
	if (!ext_ok)
		return;
	if (ext.mant != model.mant || ext.scale != model.scale)
	{
		char		ebuf[128];

		strcpy(ebuf, show(ext));
		fuzz_fail("dec_parse(\"%s\") = %s, model %s", s, ebuf, show(model));
	}
	if (ext.mant >= limit || ext.mant <= -limit || ext.scale < 0)
		fuzz_fail("dec_parse(\"%s\") = %s: outside |mant| < 10^18, scale >= 0", s, show(ext));
	text = dec_text(ext);
	if (!ext_dec(text, &back) || back.mant != ext.mant || back.scale != ext.scale)
		fuzz_fail("dec_parse(\"%s\") = %s, but its text \"%.100s\" reads back differently",
				  s, show(ext), text);
	free(text);
}

/* ---- known answers, checked once at start ---- */

static const struct
{
	const char *input;
	bool		ok;
	int64		mant;
	int			scale;
}			known[] = {
	{"-12.345", true, -12345, 3},
	{"0", true, 0, 0},
	{"-0", true, 0, 0},
	{"  +1.50 ", true, 150, 2},
	{"\t272\n", true, 272, 0},
	{".5", true, 5, 1},
	{"5.", true, 5, 0},
	{"000123", true, 123, 0},
	{"0.000123", true, 123, 6},
	{"0.000", true, 0, 3},
	{"1520.5", true, 15205, 1},
	{"123456789012345678", true, INT64CONST(123456789012345678), 0},
	{"-0.123456789012345678", true, -INT64CONST(123456789012345678), 18},
	{"123456789012345678.000", true, INT64CONST(123456789012345678), 0},
	{"1.00000000000000000000000", true, INT64CONST(100000000000000000), 17},
	{"0000000000000000000000001", true, 1, 0},
	{"", false, 0, 0},
	{"  ", false, 0, 0},
	{"-", false, 0, 0},
	{".", false, 0, 0},
	{"+.", false, 0, 0},
	{"1e3", false, 0, 0},
	{"1.2.3", false, 0, 0},
	{"..1", false, 0, 0},
	{"- 1", false, 0, 0},
	{"1 2", false, 0, 0},
	{"12,5", false, 0, 0},
	{"NaN", false, 0, 0},
	{"Infinity", false, 0, 0},
	{"0x10", false, 0, 0},
	{"1234567890123456789", false, 0, 0},
	{"1000000000000000000", false, 0, 0},
	{"0.1234567890123456789", false, 0, 0},
	{"123456789012345678.5", false, 0, 0},
	{"99999999999999999999", false, 0, 0},
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	for (size_t i = 0; i < lengthof(known); i++)
	{
		Dec			model = {0, 0};
		bool		ok = ref_dec(known[i].input, &model);

		if (ok != known[i].ok ||
			(ok && (model.mant != known[i].mant || model.scale != known[i].scale)))
			fuzz_fail("known answer: model gives %s for \"%s\"", ok ? show(model) : "a refusal",
					  known[i].input);
		check_input(known[i].input);
		fuzz_reset();
	}
	fprintf(stderr, "fuzz_dec: %d known answers ok\n", (int) lengthof(known));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);	/* exact size: ASan sees any overread */

	memcpy(s, data, size);
	s[size] = '\0';
	check_input(s);
	fuzz_reset();
	free(s);
	return 0;
}
