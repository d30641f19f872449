/*
 * fuzz_co2e.c — libFuzzer target for the co2e type's text I/O, src/co2e.c:
 * co2e_from_cstring() (co2e_in) and co2e_to_cstring() (co2e_out).
 *
 * Each input, as a C string, is parsed by the extension and by a reference
 * model of the documented grammar written here independently
 * ("[spaces][sign]digits[.digits][spaces]unit[spaces]", units g, gCO2e, kg,
 * kgCO2e, t, tCO2e, kt, Mt, case-insensitive; syntax checked in full before
 * the value).  The target aborts (libFuzzer reports the input) unless:
 *   - the parser accepts exactly what the model accepts, with the same grams;
 *   - every refusal is an ERROR with SQLSTATE 22P02 (bad text, fraction of a
 *     gram) or 22003 (out of range) — the one the model expects — and a message;
 *   - an accepted value formats as the model's canonical text (g below
 *     1,000 g, kg below 1,000,000 g, else t; fraction zeros trimmed) and that
 *     text parses back to the same grams: parse(format(parse(s))) == parse(s).
 * The input's first 8 bytes, read as an int64, also go through the same
 * format-then-parse round trip, so the whole int64 range reaches the output
 * function.  LLVMFuzzerInitialize() first checks parser and model against a
 * table of known answers.
 */
#include "pg_shim.h"

#include <stdio.h>
#include <stdlib.h>

#include "co2e.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef enum Outcome
{
	OUT_OK,
	OUT_SYNTAX,					/* 22P02 */
	OUT_RANGE					/* 22003 */
} Outcome;

static const char *const outcome_names[] = {"accepted", "22P02", "22003"};

/* ---- the reference model ---- */

static bool
ref_space(char c)
{
	return c != '\0' && strchr(" \t\n\r\f\v", c) != NULL;
}

static bool
ref_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
ref_unit(const char *u, size_t len, int *exponent)
{
	static const struct
	{
		const char *name;
		int			exponent;
	}			units[] = {
		{"g", 0}, {"gco2e", 0}, {"kg", 3}, {"kgco2e", 3},
		{"t", 6}, {"tco2e", 6}, {"kt", 9}, {"mt", 12},
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		size_t		k;

		if (strlen(units[i].name) != len)
			continue;
		for (k = 0; k < len; k++)
		{
			char		c = u[k];

			if (c >= 'A' && c <= 'Z')
				c = (char) (c - 'A' + 'a');
			if (c != units[i].name[k])
				break;
		}
		if (k == len)
		{
			*exponent = units[i].exponent;
			return true;
		}
	}
	return false;
}

/*
 * The grams as a decimal digit string: integer digits, then the fraction
 * shifted by the unit's exponent; any nonzero fraction digit past that is
 * a fraction of a gram.  The range is then a comparison of digit strings.
 */
static Outcome
ref_parse(const char *s, int64 *grams)
{
	size_t		i = 0,
				n = strlen(s);
	bool		negative = false;
	size_t		int_start,
				int_len,
				frac_start = 0,
				frac_len = 0,
				unit_start,
				unit_end;
	int			exponent;
	char	   *g;
	size_t		glen = 0;
	const char *limit;
	int128		value = 0;

	while (ref_space(s[i]))
		i++;
	if (s[i] == '+' || s[i] == '-')
		negative = s[i++] == '-';
	int_start = i;
	while (ref_digit(s[i]))
		i++;
	int_len = i - int_start;
	if (s[i] == '.')
	{
		frac_start = ++i;
		while (ref_digit(s[i]))
			i++;
		frac_len = i - frac_start;
	}
	if (int_len + frac_len == 0)
		return OUT_SYNTAX;
	while (ref_space(s[i]))
		i++;
	unit_start = i;
	unit_end = n;
	while (unit_end > unit_start && ref_space(s[unit_end - 1]))
		unit_end--;
	if (unit_end == unit_start || !ref_unit(s + unit_start, unit_end - unit_start, &exponent))
		return OUT_SYNTAX;
	for (size_t k = (size_t) exponent; k < frac_len; k++)
		if (s[frac_start + k] != '0')
			return OUT_SYNTAX;

	g = malloc(int_len + (size_t) exponent + 1);
	for (size_t k = 0; k < int_len; k++)
		if (glen > 0 || s[int_start + k] != '0')
			g[glen++] = s[int_start + k];
	for (size_t k = 0; k < (size_t) exponent; k++)
	{
		char		d = k < frac_len ? s[frac_start + k] : '0';

		if (glen > 0 || d != '0')
			g[glen++] = d;
	}
	g[glen] = '\0';
	limit = negative ? "9223372036854775808" : "9223372036854775807";
	if (glen > strlen(limit) || (glen == strlen(limit) && strcmp(g, limit) > 0))
	{
		free(g);
		return OUT_RANGE;
	}
	for (size_t k = 0; k < glen; k++)
		value = value * 10 + (g[k] - '0');
	free(g);
	*grams = (int64) (negative ? -value : value);
	return OUT_OK;
}

/* The canonical text, built digit by digit (no printf). */
static void
ref_format(int64 grams, char *out)
{
	uint64		magnitude = grams < 0 ? (uint64) (-(int128) grams) : (uint64) grams;
	int			decimals = magnitude >= 1000000 ? 6 : magnitude >= 1000 ? 3 : 0;
	const char *unit = decimals == 6 ? "t" : decimals == 3 ? "kg" : "g";
	char		digits[32];
	int			nd = 0,
				point,
				last;
	char	   *o = out;

	do
	{
		digits[nd++] = (char) ('0' + magnitude % 10);
		magnitude /= 10;
	} while (magnitude > 0);
	while (nd <= decimals)
		digits[nd++] = '0';
	/* digits[] is least significant first; the point goes before index decimals-1 */
	point = decimals;
	last = 0;
	while (last < point && digits[last] == '0')
		last++;					/* trailing fraction zeros */
	if (grams < 0)
		*o++ = '-';
	for (int k = nd - 1; k >= point; k--)
		*o++ = digits[k];
	if (last < point)
	{
		*o++ = '.';
		for (int k = point - 1; k >= last; k--)
			*o++ = digits[k];
	}
	*o++ = ' ';
	strcpy(o, unit);
}

/* ---- calling the extension ---- */

typedef struct ParseCall
{
	const char *input;
	Co2e		grams;
} ParseCall;

static void
call_parse(void *arg)
{
	ParseCall  *c = arg;

	c->grams = co2e_from_cstring(c->input);
}

typedef struct FormatCall
{
	Co2e		grams;
	char	   *text;
} FormatCall;

static void
call_format(void *arg)
{
	FormatCall *c = arg;

	c->text = co2e_to_cstring(c->grams);
}

/* Parses with the extension: the outcome, by SQLSTATE for a refusal. */
static Outcome
ext_parse(const char *s, int64 *grams)
{
	ParseCall	c = {s, 0};

	if (fuzz_call(call_parse, &c))
	{
		*grams = c.grams;
		return OUT_OK;
	}
	if (fuzz_error.message == NULL || fuzz_error.message[0] == '\0')
		fuzz_fail("co2e input \"%s\": ERROR %s without a message", s, fuzz_error.sqlstate);
	if (fuzz_error.sqlerrcode == ERRCODE_INVALID_TEXT_REPRESENTATION)
		return OUT_SYNTAX;
	if (fuzz_error.sqlerrcode == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE)
		return OUT_RANGE;
	fuzz_fail("co2e input \"%s\": ERROR with undocumented SQLSTATE %s: %s", s,
			  fuzz_error.sqlstate, fuzz_error.message);
}

/* format → model's canonical text → parse back to the same grams */
static void
check_round_trip(int64 grams, const char *origin)
{
	FormatCall	f = {grams, NULL};
	char		expected[64];
	int64		back = 0;
	Outcome		o;

	if (!fuzz_call(call_format, &f))
		fuzz_fail("co2e_to_cstring(" INT64_FORMAT ") raised %s: %s", grams,
				  fuzz_error.sqlstate, fuzz_error.message ? fuzz_error.message : "");
	ref_format(grams, expected);
	if (strcmp(f.text, expected) != 0)
		fuzz_fail("co2e_to_cstring(" INT64_FORMAT ") = \"%s\", expected \"%s\" (%s)",
				  grams, f.text, expected, origin);
	o = ext_parse(f.text, &back);
	if (o != OUT_OK || back != grams)
		fuzz_fail("round trip of " INT64_FORMAT " g (%s): \"%s\" parsed as %s " INT64_FORMAT,
				  grams, origin, f.text, outcome_names[o], back);
}

static void
check_input(const char *s)
{
	int64		model_grams = 0,
				ext_grams = 0;
	Outcome		model = ref_parse(s, &model_grams);
	Outcome		ext = ext_parse(s, &ext_grams);

	if (ext != model)
		fuzz_fail("co2e input \"%s\": extension %s, model %s", s, outcome_names[ext],
				  outcome_names[model]);
	if (ext == OUT_OK)
	{
		if (ext_grams != model_grams)
			fuzz_fail("co2e input \"%s\": extension " INT64_FORMAT " g, model " INT64_FORMAT " g",
					  s, ext_grams, model_grams);
		check_round_trip(ext_grams, s);
	}
}

/* ---- known answers, checked once at start ---- */

static const struct
{
	const char *input;
	Outcome		outcome;
	int64		grams;
}			known_inputs[] = {
	{"12.5 kg", OUT_OK, 12500},
	{"-3t", OUT_OK, -3000000},
	{"1500 g", OUT_OK, 1500},
	{"0.000001 Mt", OUT_OK, 1000000},
	{"1 kt", OUT_OK, INT64CONST(1000000000)},
	{"2.5 tCO2e", OUT_OK, 2500000},
	{"0.001 kgCO2e", OUT_OK, 1},
	{"  7 G ", OUT_OK, 7},
	{"\t12 \n kg\r\n", OUT_OK, 12000},
	{".5kg", OUT_OK, 500},
	{"5. kg", OUT_OK, 5000},
	{"-.25 t", OUT_OK, -250000},
	{"+0 g", OUT_OK, 0},
	{"-0 g", OUT_OK, 0},
	{"1.5000000 kg", OUT_OK, 1500},
	{"3 GCO2E", OUT_OK, 3},
	{"000000000000000000000000001 Mt", OUT_OK, INT64CONST(1000000000000)},
	{"9223372 Mt", OUT_OK, INT64CONST(9223372000000000000)},
	{"9223372036854775807 g", OUT_OK, PG_INT64_MAX},
	{"-9223372036854775808 g", OUT_OK, PG_INT64_MIN},
	{"-9223372036854.775808 t", OUT_OK, PG_INT64_MIN},
	{"", OUT_SYNTAX, 0},
	{"   ", OUT_SYNTAX, 0},
	{"kg", OUT_SYNTAX, 0},
	{"12", OUT_SYNTAX, 0},
	{"12   ", OUT_SYNTAX, 0},
	{". g", OUT_SYNTAX, 0},
	{"- 1 g", OUT_SYNTAX, 0},
	{"--1 g", OUT_SYNTAX, 0},
	{"12 kgs", OUT_SYNTAX, 0},
	{"12 k g", OUT_SYNTAX, 0},
	{"1 mg", OUT_SYNTAX, 0},
	{"1e3 g", OUT_SYNTAX, 0},
	{"1,5 kg", OUT_SYNTAX, 0},
	{"1.2.3 g", OUT_SYNTAX, 0},
	{"1.5 g", OUT_SYNTAX, 0},
	{"0.0001 kg", OUT_SYNTAX, 0},
	{"99999999999999999999.5 g", OUT_SYNTAX, 0},
	{"9223372036854775808 g", OUT_RANGE, 0},
	{"-9223372036854775809 g", OUT_RANGE, 0},
	{"9223372036854.775808 t", OUT_RANGE, 0},
	{"9223373 Mt", OUT_RANGE, 0},
	{"10000000 Mt", OUT_RANGE, 0},
	{"100000000000000000000000000000 g", OUT_RANGE, 0},
};

static const struct
{
	int64		grams;
	const char *text;
}			known_outputs[] = {
	{0, "0 g"}, {999, "999 g"}, {-999, "-999 g"}, {1000, "1 kg"}, {1001, "1.001 kg"},
	{12500, "12.5 kg"}, {999999, "999.999 kg"}, {1000000, "1 t"}, {-1500000, "-1.5 t"},
	{1000001, "1.000001 t"}, {PG_INT64_MAX, "9223372036854.775807 t"},
	{PG_INT64_MIN, "-9223372036854.775808 t"},
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int			checked = 0;

	(void) argc;
	(void) argv;
	for (size_t i = 0; i < lengthof(known_inputs); i++)
	{
		int64		grams = 0;
		Outcome		model = ref_parse(known_inputs[i].input, &grams);

		if (model != known_inputs[i].outcome ||
			(model == OUT_OK && grams != known_inputs[i].grams))
			fuzz_fail("known answer: model gives %s " INT64_FORMAT " for \"%s\"",
					  outcome_names[model], grams, known_inputs[i].input);
		check_input(known_inputs[i].input);
		fuzz_reset();
		checked++;
	}
	for (size_t i = 0; i < lengthof(known_outputs); i++)
	{
		char		text[64];

		ref_format(known_outputs[i].grams, text);
		if (strcmp(text, known_outputs[i].text) != 0)
			fuzz_fail("known answer: model formats " INT64_FORMAT " as \"%s\"",
					  known_outputs[i].grams, text);
		check_round_trip(known_outputs[i].grams, "known answer");
		fuzz_reset();
		checked++;
	}
	fprintf(stderr, "fuzz_co2e: %d known answers ok\n", checked);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);	/* exact size: ASan sees any overread */

	memcpy(s, data, size);
	s[size] = '\0';
	check_input(s);
	if (size >= sizeof(int64))
	{
		int64		grams;

		memcpy(&grams, data, sizeof(grams));
		check_round_trip(grams, "input bytes as int64");
	}
	fuzz_reset();
	free(s);
	return 0;
}
