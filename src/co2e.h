/*
 * co2e.h — the exact CO2-equivalent mass type.
 *
 * A co2e is a signed 64-bit count of grams, passed by value.  Every module
 * that computes reductions includes this to build and check values.
 */
#ifndef CARBON_CO2E_H
#define CARBON_CO2E_H

#include "postgres.h"
#include "fmgr.h"

typedef int64 Co2e;

#define DatumGetCo2e(X)		((Co2e) DatumGetInt64(X))
#define Co2eGetDatum(X)		Int64GetDatum((int64) (X))
#define PG_GETARG_CO2E(n)	DatumGetCo2e(PG_GETARG_DATUM(n))
#define PG_RETURN_CO2E(x)	return Co2eGetDatum(x)

/* Parse text such as '12.5 kg' into grams; raises 22P02 / 22003. */
extern Co2e co2e_from_cstring(const char *str);

/* Format grams exactly, choosing g, kg or t; result is palloc'd. */
extern char *co2e_to_cstring(Co2e grams);

/* Raise 22003 for a co2e result that does not fit. */
extern void co2e_out_of_range(void) pg_attribute_noreturn();

#endif							/* CARBON_CO2E_H */
