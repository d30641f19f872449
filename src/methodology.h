/*
 * methodology.h — exact decimals and the methodology formulas.
 */
#ifndef CARBON_METHODOLOGY_H
#define CARBON_METHODOLOGY_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "access/htup.h"
#include "access/tupdesc.h"

/* An exact decimal: mant × 10^-scale. */
typedef struct Dec
{
	int128		mant;
	int			scale;
} Dec;

typedef enum Formula
{
	FORMULA_DISTANCE_SUBSTITUTION,
	FORMULA_PER_UNIT,
	FORMULA_PERSONAL_BASELINE,
	FORMULA_FLAT,
	FORMULA_UNKNOWN
} Formula;

typedef struct Methodology
{
	char		code[64];
	int			version;
	bool		class_ii;
	char		scenario[64];
	Formula		formula;
	Dec			baseline_g_per_pkm;
	Dec			project_g_per_pkm;
	Dec			g_per_unit;
	Dec			baseline;
	Dec			g_per_event;
	bool		has_daily_cap;
	int64		daily_cap_g;
	bool		has_max_activity;
	Dec			max_activity;
} Methodology;

/* 11 columns of a methodology version that methodology_from_row() reads. */
#define METHODOLOGY_COLUMNS \
	"version, class, scenario, formula, " \
	"params->>'baseline_g_per_pkm', params->>'project_g_per_pkm', params->>'g_per_unit', " \
	"params->>'baseline', params->>'g_per_event', params->>'daily_cap_g', params->>'max_activity'"
/*
 * A version of a methodology as the version-in-force rule sees it:
 * `published` only when its status is published and it has an
 * effective_from.  Lists of them are ordered effective_from descending,
 * then version descending.
 */
typedef struct MethodologyVersion
{
	TimestampTz effective_from;
	bool		published;
	Methodology m;
} MethodologyVersion;

extern bool dec_parse(const char *str, Dec *out);
extern bool dec_from_numeric(Numeric num, Dec *out);
extern Formula methodology_formula(const char *name);
extern bool methodology_from_row(HeapTuple tup, TupleDesc desc, int first, const char *code,
								 Methodology *m);
extern const Methodology *methodology_version_in_force(const MethodologyVersion *versions, int n,
														TimestampTz at);
extern bool methodology_in_force(const char *code, TimestampTz at, Methodology *m, const char **why);
extern bool methodology_reduce(const Methodology *m, Numeric activity, Jsonb *attrs,
							   int64 *grams, const char **why);

#endif							/* CARBON_METHODOLOGY_H */
