/*
 * co2e.c — the carbon.co2e type: text and binary I/O, arithmetic, helpers.
 *
 * Values are exact signed 64-bit gram counts.  I/O reads no table and no
 * setting, so every function here is IMMUTABLE STRICT PARALLEL SAFE.
 * Arithmetic is checked: an overflow is 22003, never a wrap-around.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "co2e.h"

/* The units accepted on input, with their power of ten in grams. */
typedef struct Co2eUnit
{
	const char *name;			/* lower case; compared case-insensitively */
	int			exponent;		/* grams = value * 10^exponent */
} Co2eUnit;

static const Co2eUnit co2e_units[] = {
	{"g", 0}, {"gco2e", 0},
	{"kg", 3}, {"kgco2e", 3},
	{"t", 6}, {"tco2e", 6},
	{"kt", 9},
	{"mt", 12},
};

#define CO2E_UNITS_HINT \
	"Write a decimal number followed by a unit: g, kg, t, kt, Mt, gCO2e, kgCO2e or tCO2e, for example '12.5 kg'."

static const uint64 pow10_u64[] = {
	UINT64CONST(1), UINT64CONST(10), UINT64CONST(100), UINT64CONST(1000),
	UINT64CONST(10000), UINT64CONST(100000), UINT64CONST(1000000),
	UINT64CONST(10000000), UINT64CONST(100000000), UINT64CONST(1000000000),
	UINT64CONST(10000000000), UINT64CONST(100000000000),
	UINT64CONST(1000000000000), UINT64CONST(10000000000000),
	UINT64CONST(100000000000000), UINT64CONST(1000000000000000),
	UINT64CONST(10000000000000000), UINT64CONST(100000000000000000),
	UINT64CONST(1000000000000000000), UINT64CONST(10000000000000000000),
};

void
co2e_out_of_range(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("co2e value out of range"),
			 errdetail("A co2e holds from -9223372036854775808 g to 9223372036854775807 g.")));
}

static void
co2e_syntax_error(const char *str, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type co2e: \"%s\"", str),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint(CO2E_UNITS_HINT)));
}

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static const Co2eUnit *
co2e_lookup_unit(const char *unit, size_t len)
{
	for (size_t i = 0; i < lengthof(co2e_units); i++)
	{
		if (strlen(co2e_units[i].name) == len &&
			pg_strncasecmp(co2e_units[i].name, unit, len) == 0)
			return &co2e_units[i];
	}
	return NULL;
}

/*
 * Parse "[spaces][sign]digits[.digits][spaces]unit[spaces]".
 * The syntax is checked in full before the value, so garbage is always 22P02
 * and only a well-formed but too large value is 22003.
 */
Co2e
co2e_from_cstring(const char *str)
{
	const char *p = str;
	bool		negative = false;
	const char *int_start,
			   *int_end,
			   *frac_start = NULL,
			   *frac_end = NULL,
			   *unit_start,
			   *unit_end;
	const Co2eUnit *unit;
	int			frac_len,
				int_len;
	uint64		magnitude = 0;

	while (is_space(*p))
		p++;
	if (*p == '+' || *p == '-')
		negative = (*p++ == '-');

	int_start = p;
	while (isdigit((unsigned char) *p))
		p++;
	int_end = p;
	if (*p == '.')
	{
		frac_start = ++p;
		while (isdigit((unsigned char) *p))
			p++;
		frac_end = p;
	}
	if (int_end == int_start && (frac_start == NULL || frac_end == frac_start))
		co2e_syntax_error(str, "A number is expected before the unit.");

	while (is_space(*p))
		p++;
	unit_start = p;
	unit_end = p + strlen(p);
	while (unit_end > unit_start && is_space(unit_end[-1]))
		unit_end--;
	if (unit_end == unit_start)
		co2e_syntax_error(str, "The unit is missing.");
	unit = co2e_lookup_unit(unit_start, unit_end - unit_start);
	if (unit == NULL)
		co2e_syntax_error(str, psprintf("\"%.*s\" is not a known unit.",
										(int) (unit_end - unit_start), unit_start));

	/* Trailing zeros of the fraction carry no grams. */
	frac_len = frac_start ? (int) (frac_end - frac_start) : 0;
	while (frac_len > 0 && frac_start[frac_len - 1] == '0')
		frac_len--;
	if (frac_len > unit->exponent)
		co2e_syntax_error(str, "The value is not a whole number of grams.");

	/* Leading zeros of the integer part carry no value either. */
	while (int_start < int_end && *int_start == '0')
		int_start++;
	int_len = (int) (int_end - int_start);
	if (int_len + unit->exponent > 19)
		co2e_out_of_range();

	/* At most 19 digits now, so the magnitude fits in uint64. */
	for (const char *d = int_start; d < int_end; d++)
		magnitude = magnitude * 10 + (uint64) (*d - '0');
	magnitude *= pow10_u64[unit->exponent];
	if (frac_len > 0)
	{
		uint64		frac = 0;

		for (int i = 0; i < frac_len; i++)
			frac = frac * 10 + (uint64) (frac_start[i] - '0');
		magnitude += frac * pow10_u64[unit->exponent - frac_len];
	}

	if (negative)
	{
		if (magnitude > (uint64) PG_INT64_MAX + 1)
			co2e_out_of_range();
		return (Co2e) (0 - magnitude);
	}
	if (magnitude > (uint64) PG_INT64_MAX)
		co2e_out_of_range();
	return (Co2e) magnitude;
}

/* Exact text: t from 1,000,000 g, kg from 1,000 g, else g; zeros trimmed. */
char *
co2e_to_cstring(Co2e grams)
{
	uint64		magnitude = grams < 0 ? 0 - (uint64) grams : (uint64) grams;
	const char *unit;
	int			digits;
	uint64		whole,
				frac;
	char		fracbuf[8];
	char	   *result = palloc(40);

	if (magnitude >= UINT64CONST(1000000))
		unit = "t", digits = 6;
	else if (magnitude >= UINT64CONST(1000))
		unit = "kg", digits = 3;
	else
		unit = "g", digits = 0;

	whole = magnitude / pow10_u64[digits];
	frac = magnitude % pow10_u64[digits];
	if (frac == 0)
		snprintf(result, 40, "%s" UINT64_FORMAT " %s", grams < 0 ? "-" : "", whole, unit);
	else
	{
		int			len;

		snprintf(fracbuf, sizeof(fracbuf), "%0*" INT64_MODIFIER "u", digits, frac);
		len = digits;
		while (fracbuf[len - 1] == '0')
			len--;
		fracbuf[len] = '\0';
		snprintf(result, 40, "%s" UINT64_FORMAT ".%s %s",
				 grams < 0 ? "-" : "", whole, fracbuf, unit);
	}
	return result;
}

/* co2e_in(cstring) → co2e */
PG_FUNCTION_INFO_V1(co2e_in);
Datum
co2e_in(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_from_cstring(PG_GETARG_CSTRING(0)));
}

/* co2e_out(co2e) → cstring */
PG_FUNCTION_INFO_V1(co2e_out);
Datum
co2e_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(co2e_to_cstring(PG_GETARG_CO2E(0)));
}

/* co2e_recv(internal) → co2e: 8 bytes, network order; every int64 is valid. */
PG_FUNCTION_INFO_V1(co2e_recv);
Datum
co2e_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);

	PG_RETURN_CO2E(pq_getmsgint64(buf));
}

/* co2e_send(co2e) → bytea */
PG_FUNCTION_INFO_V1(co2e_send);
Datum
co2e_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, PG_GETARG_CO2E(0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* co2e + co2e */
PG_FUNCTION_INFO_V1(co2e_pl);
Datum
co2e_pl(PG_FUNCTION_ARGS)
{
	int64		result;

	if (pg_add_s64_overflow(PG_GETARG_CO2E(0), PG_GETARG_CO2E(1), &result))
		co2e_out_of_range();
	PG_RETURN_CO2E(result);
}

/* co2e - co2e */
PG_FUNCTION_INFO_V1(co2e_mi);
Datum
co2e_mi(PG_FUNCTION_ARGS)
{
	int64		result;

	if (pg_sub_s64_overflow(PG_GETARG_CO2E(0), PG_GETARG_CO2E(1), &result))
		co2e_out_of_range();
	PG_RETURN_CO2E(result);
}

/* - co2e */
PG_FUNCTION_INFO_V1(co2e_um);
Datum
co2e_um(PG_FUNCTION_ARGS)
{
	Co2e		arg = PG_GETARG_CO2E(0);

	if (arg == PG_INT64_MIN)
		co2e_out_of_range();
	PG_RETURN_CO2E(-arg);
}

/* co2e * bigint (and bigint * co2e through the argument order in SQL) */
static Co2e
co2e_times(Co2e value, int64 factor)
{
	int64		result;

	if (pg_mul_s64_overflow(value, factor, &result))
		co2e_out_of_range();
	return result;
}

/* truncated toward zero; / 0 is 22012 */
static Co2e
co2e_divided(Co2e dividend, int64 divisor)
{
	if (divisor == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("division by zero")));
	if (divisor == -1)
	{
		if (dividend == PG_INT64_MIN)
			co2e_out_of_range();
		return -dividend;
	}
	return dividend / divisor;
}

PG_FUNCTION_INFO_V1(co2e_mul_int8);
Datum
co2e_mul_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_times(PG_GETARG_CO2E(0), PG_GETARG_INT64(1)));
}

/* co2e / bigint, truncated toward zero */
PG_FUNCTION_INFO_V1(co2e_div_int8);
Datum
co2e_div_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_divided(PG_GETARG_CO2E(0), PG_GETARG_INT64(1)));
}

/*
 * The same with integer (int4) operands, the type of a plain literal such
 * as 2: without them `reduction * 2` is ambiguous (bigint or numeric).
 */
PG_FUNCTION_INFO_V1(co2e_mul_int4);
Datum
co2e_mul_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_times(PG_GETARG_CO2E(0), PG_GETARG_INT32(1)));
}

PG_FUNCTION_INFO_V1(int4_mul_co2e);
Datum
int4_mul_co2e(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_times(PG_GETARG_CO2E(1), PG_GETARG_INT32(0)));
}

PG_FUNCTION_INFO_V1(co2e_div_int4);
Datum
co2e_div_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(co2e_divided(PG_GETARG_CO2E(0), PG_GETARG_INT32(1)));
}

/* co2e / co2e → double precision: a ratio, not a mass. */
PG_FUNCTION_INFO_V1(co2e_div_co2e);
Datum
co2e_div_co2e(PG_FUNCTION_ARGS)
{
	Co2e		divisor = PG_GETARG_CO2E(1);

	if (divisor == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("division by zero")));
	PG_RETURN_FLOAT8((float8) PG_GETARG_CO2E(0) / (float8) divisor);
}

/*
 * A numeric result truncated toward zero, as grams.  The numeric is already
 * exact (product, or quotient truncated by div()), so only the range is left.
 */
static Co2e
co2e_from_truncated_numeric(Numeric num)
{
	static Numeric min_grams = NULL;
	static Numeric max_grams = NULL;

	if (max_grams == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		min_grams = int64_to_numeric(PG_INT64_MIN);
		max_grams = int64_to_numeric(PG_INT64_MAX);
		MemoryContextSwitchTo(old);
	}
	if (numeric_is_nan(num))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("co2e arithmetic with NaN is not defined")));
	if (numeric_is_inf(num) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
										  NumericGetDatum(max_grams))) > 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
										  NumericGetDatum(min_grams))) < 0)
		co2e_out_of_range();
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(num)));
}

/* co2e * numeric, exact product truncated toward zero */
PG_FUNCTION_INFO_V1(co2e_mul_numeric);
Datum
co2e_mul_numeric(PG_FUNCTION_ARGS)
{
	Datum		grams = NumericGetDatum(int64_to_numeric(PG_GETARG_CO2E(0)));
	Datum		product = DirectFunctionCall2(numeric_mul, grams, PG_GETARG_DATUM(1));

	/* trunc() passes NaN and infinities through; the range check sorts them */
	PG_RETURN_CO2E(co2e_from_truncated_numeric(
		DatumGetNumeric(DirectFunctionCall2(numeric_trunc, product, Int32GetDatum(0)))));
}

/* co2e / numeric, exact quotient truncated toward zero (div() semantics) */
PG_FUNCTION_INFO_V1(co2e_div_numeric);
Datum
co2e_div_numeric(PG_FUNCTION_ARGS)
{
	Numeric		divisor = PG_GETARG_NUMERIC(1);
	Datum		grams = NumericGetDatum(int64_to_numeric(PG_GETARG_CO2E(0)));

	if (numeric_is_nan(divisor))
		PG_RETURN_CO2E(co2e_from_truncated_numeric(divisor));
	if (numeric_is_inf(divisor))
		PG_RETURN_CO2E(0);		/* a finite mass over infinity */
	PG_RETURN_CO2E(co2e_from_truncated_numeric(
		DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc, grams, NumericGetDatum(divisor)))));
}

/* grams(co2e) → bigint */
PG_FUNCTION_INFO_V1(co2e_grams_out);
Datum
co2e_grams_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PG_GETARG_CO2E(0));
}

/* co2e_grams(bigint) → co2e */
PG_FUNCTION_INFO_V1(co2e_grams_in);
Datum
co2e_grams_in(PG_FUNCTION_ARGS)
{
	PG_RETURN_CO2E(PG_GETARG_INT64(0));
}

/* The exact value in kg (log10 = 3) or t (6), trailing zeros trimmed. */
static Datum
co2e_scaled_numeric(Co2e grams, int log10_divisor)
{
	Numeric		exact = int64_div_fast_to_numeric(grams, log10_divisor);

	return DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(exact));
}

/* kg(co2e) → numeric */
PG_FUNCTION_INFO_V1(co2e_kg);
Datum
co2e_kg(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(co2e_scaled_numeric(PG_GETARG_CO2E(0), 3));
}

/* tonnes(co2e) → numeric */
PG_FUNCTION_INFO_V1(co2e_tonnes);
Datum
co2e_tonnes(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(co2e_scaled_numeric(PG_GETARG_CO2E(0), 6));
}
