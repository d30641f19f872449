/*
 * append.c — rows written straight into an append-only table of the
 * extension and its indexes, as COPY writes them: heap multi-insert (one
 * WAL record per page, not per row), then each index, with no planner, no
 * unnest of arrays and no executor nodes between the caller's columns and
 * the heap.  About half the CPU of `INSERT … SELECT FROM unnest(…)` per row
 * (docs/market.md).
 *
 * What an INSERT would check is checked on every row: NOT NULL and CHECK
 * constraints (ExecConstraints), the domains of the columns the caller
 * gives (domain_check), unique and exclusion constraints and partial
 * indexes (ExecInsertIndexTuples).  Columns the caller does not give take
 * their defaults, evaluated per row in order (sequences, now()).
 *
 * Only when the table is as plain as the extension made it: no INSERT
 * triggers (a foreign key is one), no partitions or inheritance, no stored
 * generated columns, no deferred unique constraints, no row-level security
 * that applies to the current user, and the current user may insert.
 * Otherwise the rows go in by SQL, one INSERT per row, which does whatever
 * the DBA added (an audit trigger, say) or raises the error an INSERT would.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/reltrigger.h"
#include "utils/rls.h"

#include "ledger.h"

#define APPEND_CHUNK 1000		/* rows per heap multi-insert */

/*
 * The rows by SQL, for a table that is not plain: one prepared INSERT of
 * the named columns (names from the catalog, never from input), run per
 * row.  Parameters have the columns' base types, so that the INSERT checks
 * the domains.
 */
static void
append_by_sql(Relation rel, int ncols, const char *const *columns, Datum *const *values, bool *const *nulls,
			  int nrows)
{
	StringInfoData sql;
	Oid		   *types = palloc(sizeof(Oid) * ncols);
	Datum	   *row = palloc(sizeof(Datum) * ncols);
	char	   *rownull = palloc(sizeof(char) * ncols);
	SPIPlanPtr	plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (",
					 quote_qualified_identifier("carbon", RelationGetRelationName(rel)));
	for (int c = 0; c < ncols; c++)
	{
		AttrNumber	att = attnameAttNum(rel, columns[c], false);

		if (att == InvalidAttrNumber)
			elog(ERROR, "carbon.%s has no column %s", RelationGetRelationName(rel), columns[c]);
		types[c] = getBaseType(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid);
		appendStringInfo(&sql, "%s%s", c ? ", " : "", quote_identifier(columns[c]));
	}
	appendStringInfoString(&sql, ") VALUES (");
	for (int c = 0; c < ncols; c++)
		appendStringInfo(&sql, "%s$%d", c ? ", " : "", c + 1);
	appendStringInfoChar(&sql, ')');

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql.data, ncols, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare %s: %s", sql.data, SPI_result_code_string(SPI_result));
	for (int r = 0; r < nrows; r++)
	{
		for (int c = 0; c < ncols; c++)
		{
			row[c] = values[c][r];
			rownull[c] = nulls[c][r] ? 'n' : ' ';
		}
		if (SPI_execute_plan(plan, row, rownull, false, 0) != SPI_OK_INSERT || SPI_processed != 1)
			elog(ERROR, "insert into carbon.%s failed", RelationGetRelationName(rel));
	}
	SPI_finish();
}

/* Whether rows may go straight in: see the file's comment. */
static bool
append_plain(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	/* triggers on UPDATE, DELETE or TRUNCATE (append-only guards) do not matter here */
	if (trig && (trig->trig_insert_before_row || trig->trig_insert_after_row || trig->trig_insert_instead_row ||
				 trig->trig_insert_before_statement || trig->trig_insert_after_statement ||
				 trig->trig_insert_new_table))
		return false;
	if (rel->rd_rel->relhassubclass || rel->rd_rel->relispartition || rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	if (desc->constr && desc->constr->has_generated_stored)
		return false;
	if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		return false;
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
		return false;
	return true;
}

/*
 * Append nrows rows to carbon.<table>: column c of row r is values[c][r]
 * (nulls[c][r]) for the ncols columns named; the others take their
 * defaults.  The rows are visible to the statements that follow.
 */
void
ledger_append(const char *table, int ncols, const char *const *columns, Datum *const *values,
			  bool *const *nulls, int nrows)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("carbon", false));
	Relation	rel;
	TupleDesc	desc;
	int			natts;
	int		   *given;			/* per attribute: the caller's column, or -1 */
	ExprState **defaults;
	Oid		   *domains;
	void	  **domain_cache;
	EState	   *estate;
	ExprContext *econtext;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	CommandId	cid;
	Datum	   *row;
	bool	   *rownull;
	MemoryContext chunk_cxt,
				old;

	if (!OidIsValid(relid))
		elog(ERROR, "carbon.%s is missing", table);
	rel = table_open(relid, RowExclusiveLock);
	if (nrows == 0)
	{
		table_close(rel, NoLock);
		return;
	}
	if (!append_plain(rel))
	{
		append_by_sql(rel, ncols, columns, values, nulls, nrows);
		table_close(rel, NoLock);
		return;
	}
	desc = RelationGetDescr(rel);
	natts = desc->natts;

	/* the executor state ExecConstraints() and the index inserts need, as COPY sets it up */
	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	CheckValidResultRel(rri, CMD_INSERT);
	ExecOpenIndices(rri, false);
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			/* a deferred unique check needs the trigger queue: SQL's */
			ExecCloseIndices(rri);
			FreeExecutorState(estate);
			append_by_sql(rel, ncols, columns, values, nulls, nrows);
			table_close(rel, NoLock);
			return;
		}

	/* per attribute: the caller's column, its domain, or the default */
	given = palloc(sizeof(int) * natts);
	defaults = palloc0(sizeof(ExprState *) * natts);
	domains = palloc0(sizeof(Oid) * natts);
	domain_cache = palloc0(sizeof(void *) * natts);
	for (int a = 0; a < natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		given[a] = -1;
		if (att->attisdropped)
			continue;
		for (int c = 0; c < ncols; c++)
			if (strcmp(NameStr(att->attname), columns[c]) == 0)
				given[a] = c;
		if (given[a] >= 0)
		{
			if (get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
				domains[a] = att->atttypid;
		}
		else
		{
			Node	   *def = build_column_default(rel, a + 1);

			if (def)
				defaults[a] = ExecPrepareExpr((Expr *) def, estate);
		}
	}
	for (int c = 0; c < ncols; c++)
	{
		bool		found = false;

		for (int a = 0; a < natts && !found; a++)
			found = given[a] == c;
		if (!found)
			elog(ERROR, "carbon.%s has no column %s", table, columns[c]);
	}

	cid = GetCurrentCommandId(true);
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * Min(nrows, APPEND_CHUNK));
	for (int k = 0; k < Min(nrows, APPEND_CHUNK); k++)
		slots[k] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	row = palloc(sizeof(Datum) * natts);
	rownull = palloc(sizeof(bool) * natts);
	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "carbon append chunk", ALLOCSET_DEFAULT_SIZES);

	for (int from = 0; from < nrows; from += APPEND_CHUNK)
	{
		int			m = Min(APPEND_CHUNK, nrows - from);

		old = MemoryContextSwitchTo(chunk_cxt);
		for (int k = 0; k < m; k++)
		{
			int			r = from + k;

			for (int a = 0; a < natts; a++)
			{
				int			c = given[a];

				if (c >= 0)
				{
					row[a] = values[c][r];
					rownull[a] = nulls[c][r];
					if (domains[a])
						domain_check(row[a], rownull[a], domains[a], &domain_cache[a], estate->es_query_cxt);
				}
				else if (defaults[a])
					row[a] = ExecEvalExpr(defaults[a], econtext, &rownull[a]);
				else
					row[a] = (Datum) 0, rownull[a] = true;
			}
			ExecClearTuple(slots[k]);
			ExecStoreHeapTuple(heap_form_tuple(desc, row, rownull), slots[k], false);
			if (desc->constr)
				ExecConstraints(rri, slots[k], estate);
			ResetExprContext(econtext);
		}
		table_multi_insert(rel, slots, m, cid, 0, bistate);
		for (int k = 0; k < m; k++)
		{
			List	   *recheck;

			recheck = ExecInsertIndexTuples(rri, slots[k], estate, false, false, NULL, NIL);
			Assert(recheck == NIL);	/* no deferred constraints: checked above */
			(void) recheck;
			ResetExprContext(econtext);
		}
		for (int k = 0; k < m; k++)
			ExecClearTuple(slots[k]);
		MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
	}

	for (int k = 0; k < Min(nrows, APPEND_CHUNK); k++)
		ExecDropSingleTupleTableSlot(slots[k]);
	MemoryContextDelete(chunk_cxt);
	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	CommandCounterIncrement();	/* the statements after see the rows */
}
