/*
 * methodology.c — the four formulas of api.md §3, exact.
 *
 * Activity and parameters arrive as numeric; they are read into scaled
 * 128-bit integers (mantissa × 10^-scale) and multiplied and subtracted
 * exactly; the reduction is rounded down to the gram (conservativeness).
 * No float anywhere on this path.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "co2e.h"
#include "ledger.h"
#include "catalog.h"
#include "methodology.h"

#define DEC_MAX_DIGITS 18		/* per operand, so a product fits in int128 */

static const int128 pow10_128[] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
	(int128) 10000000000LL, (int128) 100000000000LL, (int128) 1000000000000LL,
	(int128) 10000000000000LL, (int128) 100000000000000LL, (int128) 1000000000000000LL,
	(int128) 10000000000000000LL, (int128) 100000000000000000LL, (int128) 1000000000000000000LL,
};

static int128
pow10_i128(int e)
{
	int128		r = 1;

	while (e > 18)
	{
		r *= pow10_128[18];
		e -= 18;
	}
	return r * pow10_128[e];
}

/*
 * Parse a plain decimal ("-12.345") into a Dec.  False when it is not one,
 * or has more than DEC_MAX_DIGITS significant digits.  Fraction digits past
 * the limit are dropped toward zero only when they are zeros.
 */
bool
dec_parse(const char *str, Dec *out)
{
	const char *p = str;
	bool		neg = false;
	int			digits = 0;
	int128		mant = 0;
	int			scale = 0;
	bool		seen_point = false;
	bool		any = false;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '-' || *p == '+')
		neg = (*p++ == '-');
	for (; *p; p++)
	{
		if (*p == '.' && !seen_point)
		{
			seen_point = true;
			continue;
		}
		if (!isdigit((unsigned char) *p))
			break;
		any = true;
		if (mant == 0 && *p == '0' && !seen_point)
			continue;			/* leading zeros */
		if (digits >= DEC_MAX_DIGITS)
		{
			if (*p != '0' || !seen_point)
				return false;
			continue;			/* trailing zeros of the fraction */
		}
		mant = mant * 10 + (*p - '0');
		if (mant != 0)
			digits++;
		if (seen_point)
			scale++;
	}
	while (isspace((unsigned char) *p))
		p++;
	if (!any || *p != '\0')
		return false;
	out->mant = neg ? -mant : mant;
	out->scale = scale;
	return true;
}

bool
dec_from_numeric(Numeric num, Dec *out)
{
	if (numeric_is_nan(num) || numeric_is_inf(num))
		return false;
	return dec_parse(DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num))), out);
}

/* a × b, exact; false on overflow */
static bool
dec_mul(Dec a, Dec b, Dec *r)
{
	if (__builtin_mul_overflow(a.mant, b.mant, &r->mant))
		return false;
	r->scale = a.scale + b.scale;
	return true;
}

/* a − b, exact; false on overflow */
static bool
dec_sub(Dec a, Dec b, Dec *r)
{
	if (a.scale < b.scale)
	{
		if (b.scale - a.scale > 36 ||
			__builtin_mul_overflow(a.mant, pow10_i128(b.scale - a.scale), &a.mant))
			return false;
		a.scale = b.scale;
	}
	else if (b.scale < a.scale)
	{
		if (a.scale - b.scale > 36 ||
			__builtin_mul_overflow(b.mant, pow10_i128(a.scale - b.scale), &b.mant))
			return false;
		b.scale = a.scale;
	}
	if (__builtin_sub_overflow(a.mant, b.mant, &r->mant))
		return false;
	r->scale = a.scale;
	return true;
}

/* a < b; operands that cannot be compared exactly count as not less */
static bool
dec_lt(Dec a, Dec b)
{
	Dec			d;

	return dec_sub(a, b, &d) && d.mant < 0;
}

/* floor(d) as grams; false if it does not fit in a co2e */
static bool
dec_floor_grams(Dec d, int64 *grams)
{
	int128		q = d.mant;

	if (d.scale > 36)
		return false;
	if (d.scale > 0)
	{
		int128		div = pow10_i128(d.scale);

		q = d.mant / div;
		if (d.mant % div != 0 && d.mant < 0)
			q -= 1;
	}
	if (q > (int128) PG_INT64_MAX || q < (int128) PG_INT64_MIN)
		return false;
	*grams = (int64) q;
	return true;
}

static const char *const formula_names[] = {
	"distance_substitution", "per_unit", "personal_baseline", "flat"
};

Formula
methodology_formula(const char *name)
{
	for (int i = 0; i < (int) lengthof(formula_names); i++)
		if (strcmp(name, formula_names[i]) == 0)
			return (Formula) i;
	return FORMULA_UNKNOWN;
}

/* A numeric attribute of attrs (number or numeric string), if present. */
static bool
attr_dec(Jsonb *attrs, const char *key, Dec *out)
{
	JsonbValue	v;
	JsonbValue *found;

	if (attrs == NULL || !JB_ROOT_IS_OBJECT(attrs))
		return false;
	found = getKeyJsonValueFromContainer(&attrs->root, key, strlen(key), &v);
	if (found == NULL)
		return false;
	if (found->type == jbvNumeric)
		return dec_from_numeric(found->val.numeric, out);
	if (found->type == jbvString)
		return dec_parse(pnstrdup(found->val.string.val, found->val.string.len), out);
	return false;
}

/*
 * The reduction of one event, in grams, rounded down; negative results are
 * zero.  False (with *why) when the activity cannot be used.
 */
bool
methodology_reduce(const Methodology *m, Numeric activity_num, Jsonb *attrs, int64 *grams, const char **why)
{
	Dec			activity = {0, 0};
	Dec			er = {0, 0};
	bool		ok = true;

	*grams = 0;
	/* a flat reduction needs no activity, but one given is checked as for any formula */
	if (m->formula != FORMULA_FLAT || activity_num != NULL)
	{
		if (activity_num == NULL || !dec_from_numeric(activity_num, &activity))
		{
			*why = "implausible";
			return false;
		}
		if (activity.mant < 0 || (m->has_max_activity && dec_lt(m->max_activity, activity)))
		{
			*why = "implausible";
			return false;
		}
	}
	switch (m->formula)
	{
		case FORMULA_DISTANCE_SUBSTITUTION:
			{
				Dec			factor;

				ok = dec_sub(m->baseline_g_per_pkm, m->project_g_per_pkm, &factor) &&
					dec_mul(activity, factor, &er);
				break;
			}
		case FORMULA_PER_UNIT:
			ok = dec_mul(activity, m->g_per_unit, &er);
			break;
		case FORMULA_PERSONAL_BASELINE:
			{
				Dec			baseline = m->baseline;
				Dec			own;
				Dec			saved;

				if (attr_dec(attrs, "own_baseline", &own) && own.mant >= 0 && dec_lt(own, baseline))
					baseline = own;
				ok = dec_sub(baseline, activity, &saved);
				if (ok && saved.mant < 0)
					saved.mant = 0;
				ok = ok && dec_mul(saved, m->g_per_unit, &er);
				break;
			}
		case FORMULA_FLAT:
			er = m->g_per_event;
			break;
		default:
			elog(ERROR, "unknown formula");
	}
	if (!ok)
	{
		*why = "implausible";
		return false;
	}
	if (!dec_floor_grams(er, grams))
	{
		*why = "implausible";
		return false;
	}
	if (*grams < 0)
		*grams = 0;
	return true;
}

static void
param_dec(HeapTuple tup, TupleDesc desc, int col, bool *has, Dec *out)
{
	char	   *txt = SPI_getvalue(tup, desc, col);

	*has = txt != NULL && dec_parse(txt, out);
}

/*
 * Fill `m` from the METHODOLOGY_COLUMNS of a row, starting at column
 * `first`; false when they are NULL (no version in force).
 */
bool
methodology_from_row(HeapTuple tup, TupleDesc desc, int first, const char *code, Methodology *m)
{
	bool		isnull;
	bool		has;
	Datum		version = SPI_getbinval(tup, desc, first, &isnull);
	Dec			cap;

	if (isnull)
		return false;
	memset(m, 0, sizeof(*m));
	strlcpy(m->code, code, sizeof(m->code));
	m->version = DatumGetInt32(version);
	m->class_ii = strcmp(SPI_getvalue(tup, desc, first + 1), "II") == 0;
	strlcpy(m->scenario, SPI_getvalue(tup, desc, first + 2), sizeof(m->scenario));
	m->formula = methodology_formula(SPI_getvalue(tup, desc, first + 3));
	param_dec(tup, desc, first + 4, &has, &m->baseline_g_per_pkm);
	param_dec(tup, desc, first + 5, &has, &m->project_g_per_pkm);
	param_dec(tup, desc, first + 6, &has, &m->g_per_unit);
	param_dec(tup, desc, first + 7, &has, &m->baseline);
	param_dec(tup, desc, first + 8, &has, &m->g_per_event);
	param_dec(tup, desc, first + 9, &m->has_daily_cap, &cap);
	if (m->has_daily_cap && !dec_floor_grams(cap, &m->daily_cap_g))
		m->has_daily_cap = false;
	param_dec(tup, desc, first + 10, &m->has_max_activity, &m->max_activity);
	return true;
}

/*
 * The version in force at `at` among `versions` (ordered as the struct
 * says): the latest published one with effective_from <= at, or NULL.  The
 * one place of this rule: the single path (through catalog.c's cache) and
 * the inbox's batches both ask it.
 */
const Methodology *
methodology_version_in_force(const MethodologyVersion *versions, int n, TimestampTz at)
{
	for (int i = 0; i < n; i++)
		if (versions[i].published && versions[i].effective_from <= at)
			return &versions[i].m;
	return NULL;
}

/*
 * The version of `code` in force at `at`.  Returns false, with *why set,
 * when there is none.
 */
bool
methodology_in_force(const char *code, TimestampTz at, Methodology *m, const char **why)
{
	bool		known;

	/* the versions are cached per backend; the rule is catalog.c's */
	if (ledger_methodology_in_force(code, at, m, &known))
		return true;
	*why = known ? "methodology_not_in_force" : "unknown_methodology";
	return false;
}

/*
 * calc_reduction(methodology, activity, attrs, at) → co2e: the pure
 * calculation, no caps; CL006 when no version is in force.
 */
PG_FUNCTION_INFO_V1(ledger_calc_reduction);
Datum
ledger_calc_reduction(PG_FUNCTION_ARGS)
{
	char	   *code = ledger_arg_text(fcinfo, 0, "methodology");
	Numeric		activity = PG_ARGISNULL(1) ? NULL : PG_GETARG_NUMERIC(1);
	Jsonb	   *attrs = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	TimestampTz at = PG_ARGISNULL(3) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(3);
	Methodology m;
	const char *why;
	int64		grams;

	ledger_spi_connect();
	if (!methodology_in_force(code, at, &m, &why))
		ereport(ERROR,
				(errcode(ERRCODE_CL_METHODOLOGY),
				 errmsg("methodology \"%s\" is not in force", code),
				 errdetail(strcmp(why, "unknown_methodology") == 0
						   ? "No methodology has this code."
						   : "No published version has taken effect by then."),
				 errhint("A methodology is in force once published with effective_from at or before the event.")));
	SPI_finish();
	if (activity == NULL && m.formula != FORMULA_FLAT)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("activity must not be null")));
	if (!methodology_reduce(&m, activity, attrs, &grams, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("activity %s is not plausible for methodology \"%s\"",
						activity ? DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(activity))) : "NULL",
						code),
				 errdetail("It is negative, above max_activity, or too large to compute exactly.")));
	PG_RETURN_CO2E(grams);
}
