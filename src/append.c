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
 * What does not change between calls is kept per backend (AppendShape):
 * the CHECK constraints, the defaults and the partial and expression
 * indexes' predicates and expressions, ready to run, so that a call of one
 * row (place_order's order) does not parse and plan them again; a
 * relcache invalidation of the table or one of its indexes (ALTER TABLE,
 * CREATE INDEX, a new constraint), or a change of any type (a domain's
 * constraint), throws them away.
 *
 * Only when the table is as plain as the extension made it: no INSERT
 * triggers (a foreign key is one) but unit_block's own check (no serial in
 * two blocks), which then runs by hand on every row when the caller asks
 * (ledger_append_checked), and posting's (whole, balanced entries and their
 * balances), which the caller runs on the entry it wrote (ledger_append_own,
 * journal.c), no partitions or inheritance, no stored generated
 * columns, no deferred unique constraints, no row-level security that
 * applies to the current user, and the current user may insert.
 * Otherwise the rows go in by SQL, one INSERT per row, which does whatever
 * the DBA added (an audit trigger, say) or raises the error an INSERT would.
 *
 * ledger_remove_by_id() is the other half for the serial blocks a move
 * replaces: rows deleted by their primary key, straight from the heap, under
 * the same rule (no DELETE trigger or rule, no RLS that applies).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "common/int.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/reltrigger.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "ledger.h"

#define APPEND_CHUNK 1000		/* rows per heap multi-insert */
#define APPEND_BULK 256			/* rows from which an append writes through a ring of buffers */

/*
 * What ledger_append() needs of a table and a list of columns, kept between
 * calls: built at the first call, thrown away when the table or one of its
 * indexes is invalidated (the next call builds it again).  Expression
 * states are built without a parent, as ExecPrepareExpr() builds them, and
 * run in each call's own expression context.
 */
typedef struct AppendShape
{
	struct AppendShape *next;
	char	   *table;
	int			ncols;
	char	  **columns;
	Oid			relid;
	bool		valid;
	int			busy_level;		/* transaction nest level of the call using it, or 0 */
	MemoryContext cxt;
	int			natts;
	TupleDesc	slot_desc;		/* the table's columns, not reference-counted: see append_rows */
	int		   *given;			/* per attribute: the caller's column, or -1 */
	ExprState **defaults;
	Oid		   *domains;
	void	  **domain_cache;
	int			nchecks;
	ExprState **checks;			/* in the order of the relcache's constraints, as ExecRelCheck() */
	int			nindexes;
	Oid		   *index_oids;
	ExprState **index_predicates;	/* NULL for a full index */
	List	  **index_expressions;	/* NIL for a plain one */
} AppendShape;

static AppendShape *shapes = NULL;

static void key_procs_forget(Oid relid);
static void index_infos_forget(Oid relid);

/*
 * An invalidation arrives whenever a lock is taken, in the middle of a
 * write whose copies share the trees of a kept IndexInfo (below): a
 * forgotten one's memory is kept to the end of the transaction.
 */
static MemoryContext index_infos_retired = NULL;

/*
 * What table_plain() found of a table's privileges and row-level security
 * for a user: kept until a relcache invalidation (a GRANT, REVOKE, ALTER
 * TABLE ... ROW LEVEL SECURITY or a new owner changes the table's pg_class
 * row) or a change of roles (pg_authid: superuser, BYPASSRLS; or
 * pg_auth_members), whichever table or role it is.  Asked afresh, the two
 * were 1 % of a B5 order's instructions (fifteen asks an order).
 */
typedef struct PlainSeen
{
	Oid			relid;
	Oid			userid;
	AclMode		mode;
	bool		noforce;		/* InNoForceRLSOperation() */
	bool		plain;
} PlainSeen;

#define PLAIN_SEEN_MAX 64
static PlainSeen plain_seen[PLAIN_SEEN_MAX];
static int	nplain_seen = 0;

static void
plain_role_callback(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
					uint32 hashvalue pg_attribute_unused())
{
	nplain_seen = 0;
}

static void
append_relcache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	nplain_seen = 0;
	key_procs_forget(relid);
	index_infos_forget(relid);
	for (AppendShape *sh = shapes; sh != NULL; sh = sh->next)
	{
		if (!OidIsValid(relid) || sh->relid == relid)
			sh->valid = false;
		for (int i = 0; i < sh->nindexes && sh->valid; i++)
			if (sh->index_oids[i] == relid)
				sh->valid = false;
	}
}

/*
 * The procedure of an index column's operator for a strategy (its
 * equality, or < for a range), as a scan key needs it: kept per (index,
 * column, strategy) until the index is invalidated.  Looked up, it is two
 * catalog cache lookups per key and call, and a market order makes about
 * fifteen such calls (callgrind).
 */
typedef struct KeyProc
{
	Oid			index;
	int			column;
	StrategyNumber strategy;
	RegProcedure proc;
} KeyProc;

static KeyProc key_procs[64];
static int	nkey_procs = 0;

static void
key_procs_forget(Oid relid)
{
	nkey_procs = ledger_kept_forget(key_procs, nkey_procs, sizeof(KeyProc), offsetof(KeyProc, index), relid);
}

static void append_register_callbacks(void);

static RegProcedure
index_key_proc(Relation index, int k, StrategyNumber strategy)
{
	Oid			indexid = RelationGetRelid(index);
	Oid			op;
	RegProcedure proc;

	for (int i = 0; i < nkey_procs; i++)
		if (key_procs[i].index == indexid && key_procs[i].column == k && key_procs[i].strategy == strategy)
			return key_procs[i].proc;
	append_register_callbacks();
	op = get_opfamily_member(index->rd_opfamily[k], index->rd_opcintype[k], index->rd_opcintype[k], strategy);
	if (!OidIsValid(op))
		return InvalidOid;
	proc = get_opcode(op);
	if (nkey_procs < (int) lengthof(key_procs))
		key_procs[nkey_procs++] = (KeyProc) {indexid, k, strategy, proc};
	return proc;
}

/* A domain changed: a kept default may coerce to it (its checks compiled in). */
static void
append_type_callback(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
					 uint32 hashvalue pg_attribute_unused())
{
	for (AppendShape *sh = shapes; sh != NULL; sh = sh->next)
		sh->valid = false;
}

/* A call that ended in an error left its shape marked in use: free it again. */
static void
append_subxact_callback(SubXactEvent event, SubTransactionId sub pg_attribute_unused(),
						SubTransactionId parent pg_attribute_unused(), void *arg pg_attribute_unused())
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
		for (AppendShape *sh = shapes; sh != NULL; sh = sh->next)
			if (sh->busy_level >= level)
				sh->busy_level = 0;
}

static void
append_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	if (index_infos_retired != NULL &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PREPARE ||
		 event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT))
		MemoryContextReset(index_infos_retired);
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		for (AppendShape *sh = shapes; sh != NULL; sh = sh->next)
			sh->busy_level = 0;
}

static void
append_register_callbacks(void)
{
	static bool registered = false;

	if (registered)
		return;
	CacheRegisterRelcacheCallback(append_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, append_type_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, plain_role_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, plain_role_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, plain_role_callback, (Datum) 0);
	RegisterXactCallback(append_xact_callback, NULL);
	RegisterSubXactCallback(append_subxact_callback, NULL);
	registered = true;
}

/* Ready-to-run states of an expression list, in the current memory context. */
static List *
append_prepare_list(List *exprs)
{
	List	   *states = NIL;
	ListCell   *lc;

	foreach(lc, exprs)
		states = lappend(states, ExecInitExpr(expression_planner((Expr *) lfirst(lc)), NULL));
	return states;
}

/* Build sh's states for rel (open) and the caller's columns. */
static void
append_shape_build(AppendShape *sh, Relation rel, MemoryContext parent)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *index_list;
	ListCell   *lc;
	int			i;
	MemoryContext old;

	if (sh->cxt)
		MemoryContextReset(sh->cxt);
	else
		sh->cxt = AllocSetContextCreate(parent, "carbon append shape", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(sh->cxt);
	sh->relid = RelationGetRelid(rel);
	sh->natts = desc->natts;
	sh->slot_desc = CreateTupleDescCopy(desc);
	sh->given = palloc(sizeof(int) * sh->natts);
	sh->defaults = palloc0(sizeof(ExprState *) * sh->natts);
	sh->domains = palloc0(sizeof(Oid) * sh->natts);
	sh->domain_cache = palloc0(sizeof(void *) * sh->natts);
	for (int a = 0; a < sh->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		sh->given[a] = -1;
		if (att->attisdropped)
			continue;
		for (int c = 0; c < sh->ncols; c++)
			if (strcmp(NameStr(att->attname), sh->columns[c]) == 0)
				sh->given[a] = c;
		if (sh->given[a] >= 0)
		{
			if (get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
				sh->domains[a] = att->atttypid;
		}
		else
		{
			Node	   *def = build_column_default(rel, a + 1);

			if (def)
				sh->defaults[a] = ExecInitExpr(expression_planner((Expr *) def), NULL);
		}
	}
	for (int c = 0; c < sh->ncols; c++)
	{
		bool		found = false;

		for (int a = 0; a < sh->natts && !found; a++)
			found = sh->given[a] == c;
		if (!found)
			elog(ERROR, "carbon.%s has no column %s", sh->table, sh->columns[c]);
	}

	/* the CHECK constraints, as ExecRelCheck() would prepare them */
	sh->nchecks = desc->constr ? desc->constr->num_check : 0;
	sh->checks = palloc(sizeof(ExprState *) * Max(sh->nchecks, 1));
	for (i = 0; i < sh->nchecks; i++)
		sh->checks[i] = ExecInitExpr(expression_planner((Expr *) stringToNode(desc->constr->check[i].ccbin)), NULL);

	/* the partial indexes' predicates and the expression indexes' expressions */
	index_list = RelationGetIndexList(rel);
	sh->nindexes = list_length(index_list);
	sh->index_oids = palloc(sizeof(Oid) * Max(sh->nindexes, 1));
	sh->index_predicates = palloc0(sizeof(ExprState *) * Max(sh->nindexes, 1));
	sh->index_expressions = palloc0(sizeof(List *) * Max(sh->nindexes, 1));
	i = 0;
	foreach(lc, index_list)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		List	   *predicate = RelationGetIndexPredicate(index);
		List	   *expressions = RelationGetIndexExpressions(index);

		sh->index_oids[i] = lfirst_oid(lc);
		if (predicate != NIL)
			sh->index_predicates[i] = ExecInitQual((List *) expression_planner((Expr *) predicate), NULL);
		if (expressions != NIL)
			sh->index_expressions[i] = append_prepare_list(expressions);
		index_close(index, NoLock);
		i++;
	}
	MemoryContextSwitchTo(old);
	sh->valid = true;
}

/*
 * The shape of table and columns, valid for rel (open and locked), or NULL
 * when the one kept is in use by a call further up the stack (a DBA's
 * CHECK constraint that appends to the same table): that call's states are
 * not shared, and this one builds its own, as the executor would.
 */
static AppendShape *
append_shape(const char *table, int ncols, const char *const *columns, Relation rel)
{
	AppendShape *sh;
	MemoryContext old;

	for (sh = shapes; sh != NULL; sh = sh->next)
	{
		bool		same = sh->ncols == ncols && strcmp(sh->table, table) == 0;

		for (int c = 0; c < ncols && same; c++)
			same = strcmp(sh->columns[c], columns[c]) == 0;
		if (same)
			break;
	}
	if (sh == NULL)
	{
		append_register_callbacks();
		old = MemoryContextSwitchTo(CacheMemoryContext);
		sh = palloc0(sizeof(AppendShape));
		sh->table = pstrdup(table);
		sh->ncols = ncols;
		sh->columns = palloc(sizeof(char *) * Max(ncols, 1));
		for (int c = 0; c < ncols; c++)
			sh->columns[c] = pstrdup(columns[c]);
		MemoryContextSwitchTo(old);
		sh->next = shapes;
		shapes = sh;
	}
	if (sh->busy_level != 0)
		return NULL;
	if (!sh->valid || sh->relid != RelationGetRelid(rel) || sh->natts != RelationGetDescr(rel)->natts)
	{
		sh->valid = false;
		append_shape_build(sh, rel, CacheMemoryContext);
	}
	return sh;
}

/* Hand the kept predicate and expression states to the opened indexes. */
static void
append_shape_indexes(const AppendShape *sh, ResultRelInfo *rri)
{
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		Oid			oid = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
		IndexInfo  *info = rri->ri_IndexRelationInfo[i];

		for (int k = 0; k < sh->nindexes; k++)
			if (sh->index_oids[k] == oid)
			{
				if (info->ii_Predicate != NIL && sh->index_predicates[k] != NULL)
					info->ii_PredicateState = sh->index_predicates[k];
				if (info->ii_Expressions != NIL && sh->index_expressions[k] != NIL)
					info->ii_ExpressionsState = sh->index_expressions[k];
				break;
			}
	}
}

/*
 * Each index's IndexInfo as BuildIndexInfo() makes it from the relcache,
 * kept per index until the index is invalidated; every call gets a copy
 * with no expression or predicate state yet (ExecInsertIndexTuples, or
 * append_shape_indexes, fills them in for the call).  Building them for
 * every write was 2 % of a market order's instructions (callgrind).
 */
typedef struct IndexInfoKept
{
	Oid			index;
	MemoryContext cxt;			/* the IndexInfo's, with its expression and predicate trees */
	IndexInfo  *info;
} IndexInfoKept;

static IndexInfoKept index_infos[64];
static int	nindex_infos = 0;

static void
index_infos_forget(Oid relid)
{
	for (int i = 0; i < nindex_infos; i++)
		if (!OidIsValid(relid) || index_infos[i].index == relid)
		{
			if (index_infos_retired == NULL)
				index_infos_retired = AllocSetContextCreate(TopMemoryContext, "carbon retired index infos",
															ALLOCSET_SMALL_SIZES);
			MemoryContextSetParent(index_infos[i].cxt, index_infos_retired);
		}
	nindex_infos = ledger_kept_forget(index_infos, nindex_infos, sizeof(IndexInfoKept),
									  offsetof(IndexInfoKept, index), relid);
}

static IndexInfo *
index_info_copy(Relation index)
{
	Oid			oid = RelationGetRelid(index);
	IndexInfo  *kept = NULL;
	IndexInfo  *copy = palloc(sizeof(IndexInfo));

	for (int i = 0; i < nindex_infos && kept == NULL; i++)
		if (index_infos[i].index == oid)
			kept = index_infos[i].info;
	if (kept == NULL)
	{
		MemoryContext cxt,
					old;

		append_register_callbacks();
		if (nindex_infos == (int) lengthof(index_infos))
			return BuildIndexInfo(index);
		cxt = AllocSetContextCreate(CacheMemoryContext, "carbon index info", ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(cxt);
		kept = BuildIndexInfo(index);
		MemoryContextSwitchTo(old);
		index_infos[nindex_infos++] = (IndexInfoKept) {oid, cxt, kept};
	}
	memcpy(copy, kept, sizeof(IndexInfo));
	copy->ii_ExpressionsState = NIL;
	copy->ii_PredicateState = NULL;
	return copy;
}

/* ExecOpenIndices(rri, false), with each IndexInfo copied from those kept. */
static void
open_indices(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *oids;
	ListCell   *lc;
	int			i = 0;

	rri->ri_NumIndices = 0;
	if (!RelationGetForm(rel)->relhasindex)
		return;
	oids = RelationGetIndexList(rel);
	if (oids == NIL)
		return;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * list_length(oids));
	rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * list_length(oids));
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);

		rri->ri_IndexRelationDescs[i] = index;
		rri->ri_IndexRelationInfo[i] = index_info_copy(index);
		i++;
	}
	rri->ri_NumIndices = i;
	list_free(oids);
}

/*
 * ExecCloseIndices() without letting the indexes' locks go: the next write
 * of the transaction finds them held, as the statements' plans hold theirs,
 * instead of locking them anew.
 */
static void
close_indices_keep_locks(ResultRelInfo *rri)
{
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (rri->ri_IndexRelationDescs[i] != NULL)
			index_close(rri->ri_IndexRelationDescs[i], NoLock);
	rri->ri_NumIndices = 0;
}

/*
 * The shape a call uses, marked in use: the kept one, or, when that one is
 * in use further up the stack, one built into *own for this call alone.
 */
static AppendShape *
shape_take(const char *table, int ncols, const char *const *columns, Relation rel, AppendShape *own)
{
	AppendShape *sh = append_shape(table, ncols, columns, rel);

	if (sh != NULL)
	{
		sh->busy_level = GetCurrentTransactionNestLevel();
		return sh;
	}
	memset(own, 0, sizeof(*own));
	own->table = (char *) table;
	own->ncols = ncols;
	own->columns = (char **) columns;
	append_shape_build(own, rel, CurrentMemoryContext);
	return own;
}

/* The call is done with its shape. */
static void
shape_give_back(AppendShape *sh, AppendShape *own)
{
	if (sh == own)
		MemoryContextDelete(own->cxt);
	else
		sh->busy_level = 0;
}

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

/*
 * Is t the extension's own AFTER INSERT statement trigger whose C function
 * is `symbol`, a check the caller runs by hand on the rows it writes?
 */
static bool
trigger_is_own(const Trigger *t, const char *symbol)
{
	HeapTuple	proc;
	bool		own = false;

	if (symbol == NULL || TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_AFTER(t->tgtype) ||
		(t->tgtype & (TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE)) != 0)
		return false;
	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(t->tgfoid));
	if (HeapTupleIsValid(proc))
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, proc, Anum_pg_proc_prosrc, &isnull);

		own = ((Form_pg_proc) GETSTRUCT(proc))->prolang == ClanguageId && !isnull &&
			strcmp(TextDatumGetCString(src), symbol) == 0;
		ReleaseSysCache(proc);
	}
	return own;
}

/*
 * What both direct paths ask of a table: a plain one (no partitions or
 * inheritance), every privilege of `mode` held by the current user, and no
 * row-level security that applies to it.
 */
static bool
table_plain(Relation rel, AclMode mode)
{
	PlainSeen	seen = {.relid = RelationGetRelid(rel), .userid = GetUserId(), .mode = mode,
	.noforce = InNoForceRLSOperation()};

	if (rel->rd_rel->relhassubclass || rel->rd_rel->relispartition || rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	for (int i = 0; i < nplain_seen; i++)
		if (plain_seen[i].relid == seen.relid && plain_seen[i].userid == seen.userid &&
			plain_seen[i].mode == mode && plain_seen[i].noforce == seen.noforce)
			return plain_seen[i].plain;
	append_register_callbacks();
	seen.plain = pg_class_aclmask(seen.relid, seen.userid, mode, ACLMASK_ALL) == mode &&
		check_enable_rls(seen.relid, InvalidOid, true) != RLS_ENABLED;
	if (nplain_seen == PLAIN_SEEN_MAX)
		nplain_seen = 0;
	plain_seen[nplain_seen++] = seen;
	return seen.plain;
}

/* Whether rows may go straight in: see the file's comment. */
static bool
append_plain(Relation rel, const char *own_symbol)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	/* triggers on UPDATE, DELETE or TRUNCATE (append-only guards) do not matter here */
	for (int i = 0; trig != NULL && i < trig->numtriggers; i++)
		if (TRIGGER_FOR_INSERT(trig->triggers[i].tgtype) && !trigger_is_own(&trig->triggers[i], own_symbol))
			return false;
	if (desc->constr && desc->constr->has_generated_stored)
		return false;
	return table_plain(rel, ACL_INSERT);
}

static bool append_rows(const char *table, int ncols, const char *const *columns, Datum *const *values,
						bool *const *nulls, int nrows, const char *own_trigger, bool serial_check,
						const int64 *floors, bool by_sql);

/*
 * Append nrows rows to carbon.<table>: column c of row r is values[c][r]
 * (nulls[c][r]) for the ncols columns named; the others take their
 * defaults.  The rows are visible to the statements that follow.
 */
void
ledger_append(const char *table, int ncols, const char *const *columns, Datum *const *values,
			  bool *const *nulls, int nrows)
{
	(void) append_rows(table, ncols, columns, values, nulls, nrows, NULL, false, NULL, true);
}

/*
 * The rows straight into a table whose own AFTER INSERT statement trigger
 * has the C function `own_trigger` (carbon.posting's ledger_posting_check),
 * which does not fire: true when they went in, and the caller then runs
 * that trigger's check itself; false, nothing written, when they cannot go
 * straight in, and the caller writes them by SQL in one statement (a
 * statement trigger sees all its rows; append_by_sql writes one a
 * statement).
 */
bool
ledger_append_own(const char *table, int ncols, const char *const *columns, Datum *const *values,
				  bool *const *nulls, int nrows, const char *own_trigger)
{
	return append_rows(table, ncols, columns, values, nulls, nrows, own_trigger, false, NULL, false);
}

/*
 * ledger_append() into carbon.unit_block, whose own AFTER INSERT statement
 * trigger unit_block_no_overlap (no serial in two blocks) does not send the
 * rows in by SQL: they go straight in all the same, and its check runs by
 * hand on each (invariants.c).  Any other INSERT trigger sends them by
 * SQL, where the triggers fire as usual.  floors (or NULL): per row, 0 or
 * where the block it was carved from begins (ledger_overlap_row).
 */
#define OVERLAP_TRIGGER_SYMBOL "ledger_unit_block_no_overlap"

void
ledger_append_checked(const char *table, int ncols, const char *const *columns, Datum *const *values,
					  bool *const *nulls, int nrows, bool serial_check, const int64 *floors)
{
	(void) append_rows(table, ncols, columns, values, nulls, nrows,
					   serial_check ? OVERLAP_TRIGGER_SYMBOL : NULL, serial_check, floors, true);
}

/*
 * All of the above: true when the rows went straight in; otherwise by_sql
 * says whether they go in by SQL here (append_by_sql) or not at all.
 */
static bool
append_rows(const char *table, int ncols, const char *const *columns, Datum *const *values,
			bool *const *nulls, int nrows, const char *own_trigger, bool serial_check, const int64 *floors,
			bool by_sql)
{
	Oid			relid = ledger_relid(table);
	Relation	rel;
	TupleDesc	desc;
	int			natts;
	AppendShape *sh,
				own;
	LedgerOverlapCheck *check = NULL;
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
		return true;			/* nothing to check either */
	}
	if (!append_plain(rel, own_trigger))
	{
		if (by_sql)
			append_by_sql(rel, ncols, columns, values, nulls, nrows);
		table_close(rel, NoLock);
		return false;
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
	open_indices(rri);
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			/* a deferred unique check needs the trigger queue: SQL's */
			close_indices_keep_locks(rri);
			FreeExecutorState(estate);
			if (by_sql)
				append_by_sql(rel, ncols, columns, values, nulls, nrows);
			table_close(rel, NoLock);
			return false;
		}

	/* per attribute: the caller's column, its domain, or the default (kept, or built for this call) */
	sh = shape_take(table, ncols, columns, rel, &own);
	if (sh->nchecks > 0 && desc->constr && desc->constr->num_check == sh->nchecks)
		rri->ri_ConstraintExprs = sh->checks;
	append_shape_indexes(sh, rri);

	/*
	 * What an expression keeps at its first run (the hash table of an IN
	 * list of many constants, say) goes in its context's per-query memory:
	 * the shape's, which lives as long as its states do, not this call's.
	 */
	econtext->ecxt_per_query_memory = sh->cxt;

	cid = GetCurrentCommandId(true);
	/*
	 * A bulk load writes through a ring of buffers, as COPY does; a few
	 * rows (an order's postings, one entry) do not: the ring's state is a
	 * zeroed array of 2,048 buffers, and five of them were 4 % of the
	 * instructions of a B5 order (callgrind).
	 */
	bistate = nrows >= APPEND_BULK ? GetBulkInsertState() : NULL;
	/*
	 * The slots over the shape's copy of the table's columns: a slot over
	 * the relcache's own descriptor pins it in the resource owner, and a
	 * chunk's thousand pins of one pointer fall in one bucket of the
	 * owner's hash, so that each pin (and every other pin meanwhile, such
	 * as a unique index's check) walked all those before it.
	 */
	slots = palloc(sizeof(TupleTableSlot *) * Min(nrows, APPEND_CHUNK));
	for (int k = 0; k < Min(nrows, APPEND_CHUNK); k++)
		slots[k] = MakeSingleTupleTableSlot(sh->slot_desc, &TTSOpsHeapTuple);
	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "carbon append chunk", ALLOCSET_DEFAULT_SIZES);
	if (serial_check)
		check = ledger_overlap_begin(rel);

	for (int from = 0; from < nrows; from += APPEND_CHUNK)
	{
		int			m = Min(APPEND_CHUNK, nrows - from);

		old = MemoryContextSwitchTo(chunk_cxt);
		for (int k = 0; k < m; k++)
		{
			int			r = from + k;

			ExecClearTuple(slots[k]);
			row = slots[k]->tts_values;
			rownull = slots[k]->tts_isnull;
			for (int a = 0; a < natts; a++)
			{
				int			c = sh->given[a];

				if (c >= 0)
				{
					row[a] = values[c][r];
					rownull[a] = nulls[c][r];
					if (sh->domains[a])
						domain_check(row[a], rownull[a], sh->domains[a], &sh->domain_cache[a], sh->cxt);
				}
				else if (sh->defaults[a])
					row[a] = ExecEvalExpr(sh->defaults[a], econtext, &rownull[a]);
				else
					row[a] = (Datum) 0, rownull[a] = true;
			}
			/*
			 * The tuple is the slot's own (freed when the slot is cleared),
			 * and the slot's values are those it was formed from: marked
			 * valid, the checks and the index entries read them as they are
			 * instead of deforming the tuple again, twice (a tuple the slot
			 * did not own was copied by the insert and deformed afresh:
			 * 5 % of a B4 order's instructions, callgrind).  Every by-
			 * reference value lives on to the chunk's end: the caller's,
			 * or a default's, evaluated in the chunk's context.
			 */
			ExecStoreHeapTuple(heap_form_tuple(desc, row, rownull), slots[k], true);
			slots[k]->tts_nvalid = natts;
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
		/*
		 * The own trigger's check, on rows that are in the table and its
		 * indexes: a row of a later chunk that overlaps one of this chunk
		 * finds it when its own turn comes.  In the context the check's
		 * index scans began in, not the chunk's: a scan allocates as it goes
		 * (btree's list of dead items to mark) and frees that at its end.
		 */
		MemoryContextSwitchTo(old);
		for (int k = 0; check != NULL && k < m; k++)
			ledger_overlap_row(check, slots[k], floors ? floors[from + k] : 0);
		MemoryContextSwitchTo(chunk_cxt);
		for (int k = 0; k < m; k++)
			ExecClearTuple(slots[k]);
		MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
	}

	if (check != NULL)
		ledger_overlap_end(check);
	for (int k = 0; k < Min(nrows, APPEND_CHUNK); k++)
		ExecDropSingleTupleTableSlot(slots[k]);
	MemoryContextDelete(chunk_cxt);
	if (bistate != NULL)
		FreeBulkInsertState(bistate);
	close_indices_keep_locks(rri);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	shape_give_back(sh, &own);
	table_close(rel, NoLock);
	CommandCounterIncrement();	/* the statements after see the rows */
	return true;
}

/*
 * Remove the rows of carbon.<table> whose primary key, one bigint column,
 * is one of ids[0..n-1], straight from the heap (no planner, no executor),
 * as the rows the caller has read and locked go.  Only when the table is
 * plain for a DELETE: no DELETE triggers or rules, no row-level security
 * that applies, and the current user may delete; otherwise returns -1 and
 * the caller deletes by SQL.  Returns how many rows were found and removed:
 * a row another transaction has deleted or changed meanwhile is not
 * counted (the caller's check of the count says so), or, in a REPEATABLE
 * READ or SERIALIZABLE transaction, fails to serialize (40001), as a
 * DELETE would.
 */
int64
ledger_remove_by_id(const char *table, const Datum *ids, int n)
{
	Oid			relid = ledger_relid(table);
	Relation	rel,
				index;
	Oid			pk;
	TriggerDesc *trig;
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		removed = 0;

	if (!OidIsValid(relid))
		elog(ERROR, "carbon.%s is missing", table);
	rel = table_open(relid, RowExclusiveLock);
	trig = rel->trigdesc;
	pk = RelationGetPrimaryKeyIndex(rel);
	if ((trig && (trig->trig_delete_before_row || trig->trig_delete_after_row || trig->trig_delete_instead_row ||
				  trig->trig_delete_before_statement || trig->trig_delete_after_statement ||
				  trig->trig_delete_old_table)) ||
		rel->rd_rules != NULL || !OidIsValid(pk) || !table_plain(rel, ACL_DELETE | ACL_SELECT))
	{
		table_close(rel, NoLock);
		return -1;
	}
	index = index_open(pk, RowExclusiveLock);
	if (index->rd_index->indnatts != 1 ||
		TupleDescAttr(RelationGetDescr(rel), index->rd_index->indkey.values[0] - 1)->atttypid != INT8OID)
	{
		index_close(index, NoLock);
		table_close(rel, NoLock);
		return -1;
	}
	/* the snapshot a DELETE here would run with (as SPI takes it): this transaction's writes up to now */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	snapshot = GetActiveSnapshot();
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	for (int i = 0; i < n; i++)
	{
		ScanKeyData key;

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, ids[i]);
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			TM_FailureData tmfd;
			TM_Result	result = table_tuple_delete(rel, &slot->tts_tid, GetCurrentCommandId(true), snapshot,
													InvalidSnapshot, true, &tmfd, false);

			if (result == TM_Ok)
				removed++;
			else if ((result == TM_Updated || result == TM_Deleted) && IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent delete")));
			/* else changed meanwhile: not removed, and the caller says so */
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	index_close(index, NoLock);
	table_close(rel, NoLock);
	CommandCounterIncrement();	/* the statements after do not see the rows */
	return removed;
}

/* ---- rows found by their primary key: updated, or locked, straight in the heap ---- */

/*
 * Rows of one table looked up by its primary key with the snapshot a
 * statement here would run with (as SPI takes it, after a command counter
 * increment: this transaction's writes up to now), then updated or locked
 * as UPDATE and SELECT FOR UPDATE do it.
 */
typedef struct KeyedRows
{
	const char *table;
	Relation	rel;
	Relation	index;
	int			nkeys;
	ScanKeyData *skeys;
	Snapshot	snapshot;
	CommandId	cid;
	bool		begun;			/* keyed_begin: the snapshot pushed, the slots made */
	IndexScanDesc scan;			/* at the first lookup row_tids.c does not answer */
	TupleTableSlot *found;		/* the version the snapshot sees */
	TupleTableSlot *locked;		/* its newest version, locked */
	EState	   *estate;			/* for an update: constraints and index entries */
	ResultRelInfo *rri;
	bool		indices_open;	/* rri's indexes, opened at the first update that is not heap-only */
	const struct AppendShape *shape;	/* its indexes' kept predicate and expression states, or NULL */
} KeyedRows;

/*
 * Open carbon.<table> (plain for `mode`, else false, nothing opened) and
 * its primary key of nkeys columns, whose equality operators (in the
 * index's collation) the lookups use; `lockmode` as the statement would
 * take it (AccessShareLock to read, RowShareLock to lock rows,
 * RowExclusiveLock to update them).
 */
static bool
keyed_open(KeyedRows *kr, const char *table, int nkeys, AclMode mode, LOCKMODE lockmode)
{
	Oid			relid = ledger_relid(table);
	Oid			pk;

	memset(kr, 0, sizeof(*kr));
	if (!OidIsValid(relid))
		elog(ERROR, "carbon.%s is missing", table);
	kr->table = table;
	kr->rel = table_open(relid, lockmode);
	pk = RelationGetPrimaryKeyIndex(kr->rel);
	if (!OidIsValid(pk) || kr->rel->rd_rules != NULL || !table_plain(kr->rel, mode))
	{
		table_close(kr->rel, NoLock);
		return false;
	}
	kr->index = index_open(pk, lockmode);
	if (kr->index->rd_index->indnkeyatts != nkeys)
		elog(ERROR, "carbon.%s's primary key has %d columns, not %d", table,
			 kr->index->rd_index->indnkeyatts, nkeys);
	kr->nkeys = nkeys;
	kr->skeys = palloc(sizeof(ScanKeyData) * nkeys);
	for (int k = 0; k < nkeys; k++)
	{
		RegProcedure proc = index_key_proc(kr->index, k, BTEqualStrategyNumber);

		if (!OidIsValid(proc))
			elog(ERROR, "no equality for column %d of carbon.%s's primary key", k + 1, table);
		ScanKeyEntryInitialize(&kr->skeys[k], 0, k + 1, BTEqualStrategyNumber, InvalidOid,
							   kr->index->rd_indcollation[k], proc, (Datum) 0);
	}
	return true;
}

/*
 * The executor state an UPDATE of the table needs (constraints; index
 * entries: the indexes are opened by the first update that is not
 * heap-only, keyed_update, since a heap-only one writes none.  The table's
 * lock, held, keeps every index from being dropped or rebuilt meanwhile).
 */
static void
keyed_for_update(KeyedRows *kr)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	kr->estate = CreateExecutorState();
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(kr->rel);
	rte->relkind = kr->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_UPDATE | ACL_SELECT;
	ExecInitRangeTable(kr->estate, list_make1(rte));
	kr->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(kr->rri, kr->rel, 1, NULL, 0);
	CheckValidResultRel(kr->rri, CMD_UPDATE);
}

/* The snapshot and the scan: after keyed_open (and keyed_for_update). */
static void
keyed_begin(KeyedRows *kr)
{
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	kr->snapshot = GetActiveSnapshot();
	kr->cid = GetCurrentCommandId(true);
	kr->found = table_slot_create(kr->rel, NULL);
	kr->begun = true;			/* kr->locked at the first lock: most lookups lock nothing */
}

/*
 * Row r (key column k: keys[k][r]) as the snapshot sees it, into kr->found;
 * false if none.  Where the row was last time is tried first (row_tids.c),
 * then the primary key.
 */
static bool
keyed_find(KeyedRows *kr, Datum *const *keys, int r)
{
	ItemPointerData root;

	ExecClearTuple(kr->found);
	if (kr->locked)
		ExecClearTuple(kr->locked);
	for (int k = 0; k < kr->nkeys; k++)
		kr->skeys[k].sk_argument = keys[k][r];
	if (ledger_row_tid_fetch(kr->rel, kr->index, kr->snapshot, kr->skeys, kr->nkeys, kr->found))
		return true;
	/*
	 * index_getnext_slot(), keeping the TID of the entry that led to the
	 * row; the scan begun at the first miss (a btree scan's state is a
	 * 27 kB allocation, malloc'd and freed each time)
	 */
	if (kr->scan == NULL)
		kr->scan = index_beginscan(kr->rel, kr->index, kr->snapshot, kr->nkeys, 0);
	index_rescan(kr->scan, kr->skeys, kr->nkeys, NULL, 0);
	if (ledger_index_next(kr->scan, kr->found, &root, NULL))
	{
		ledger_row_tid_remember(kr->rel, kr->index, kr->skeys, kr->nkeys, &root);
		return true;
	}
	ledger_row_tid_remember(kr->rel, kr->index, kr->skeys, kr->nkeys, NULL);
	return false;
}

/*
 * index_getnext_slot() forward, also giving the TID of the index entry
 * that led to the row (the root of its HOT chain, which row_tids.c keeps)
 * into *entry, and passing over, without reading the heap, the entries
 * that point at *skip (a row the caller just wrote itself).  Either may be
 * NULL.
 */
bool
ledger_index_next(IndexScanDesc scan, TupleTableSlot *slot, ItemPointer entry, const ItemPointerData *skip)
{
	for (;;)
	{
		if (!scan->xs_heap_continue)
		{
			ItemPointer tid = index_getnext_tid(scan, ForwardScanDirection);

			if (tid == NULL)
				return false;
			if (skip != NULL && ItemPointerEquals(tid, (ItemPointer) skip))
				continue;
			if (entry != NULL)
				*entry = *tid;
		}
		if (index_fetch_heap(scan, slot))
			return true;
	}
}

/*
 * The newest version of the row found, locked in `mode`, into kr->locked:
 * waits for a writer in flight; in READ COMMITTED follows a change another
 * transaction made meanwhile (false if it deleted the row), in REPEATABLE
 * READ or SERIALIZABLE fails to serialize (40001), as SELECT FOR UPDATE and
 * UPDATE do.
 */
static bool
keyed_lock(KeyedRows *kr, LockTupleMode mode)
{
	ItemPointerData tid = kr->found->tts_tid;
	TM_FailureData tmfd;
	TM_Result	result;

	if (kr->locked == NULL)
		kr->locked = table_slot_create(kr->rel, NULL);
	result = table_tuple_lock(kr->rel, &tid, kr->snapshot, kr->locked, kr->cid, mode, LockWaitBlock,
							  IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
	if (result == TM_Ok)
		return true;
	if ((result == TM_Updated || result == TM_Deleted) && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent update")));
	if (result == TM_Deleted)
		return false;
	elog(ERROR, "a row of carbon.%s could not be locked (%d)", kr->table, (int) result);
	return false;				/* keep the compiler quiet */
}

/*
 * The row found (kr->found) updated to `updated` (whose values its caller
 * built from `from`), as UPDATE does: the version the snapshot sees updated
 * as it stands, waiting for a writer in flight; when another transaction
 * changed it meanwhile, false after locking its newest version into
 * kr->locked, and the caller builds the new version from that one and
 * calls again (REPEATABLE READ: 40001; a row deleted meanwhile: false with
 * kr->locked empty).  Locking first every time would cost a WAL record per
 * row.  Index entries of a version that cannot be heap-only are made.
 */
static bool
keyed_update(KeyedRows *kr, TupleTableSlot *from, TupleTableSlot *updated)
{
	TM_FailureData tmfd;
	TM_Result	result;
	LockTupleMode lockmode;
	bool		update_indexes;

	if (kr->rel->rd_att->constr)
		ExecConstraints(kr->rri, updated, kr->estate);
	result = table_tuple_update(kr->rel, &from->tts_tid, updated, kr->cid, kr->snapshot, InvalidSnapshot, true,
								&tmfd, &lockmode, &update_indexes);
	if (result == TM_Ok)
	{
		if (update_indexes && !kr->indices_open)
		{
			open_indices(kr->rri);
			if (kr->shape)
				append_shape_indexes(kr->shape, kr->rri);
			kr->indices_open = true;
		}
		if (update_indexes && kr->rri->ri_NumIndices > 0)
			(void) ExecInsertIndexTuples(kr->rri, updated, kr->estate, true, false, NULL, NIL);
		ResetPerTupleExprContext(kr->estate);
		return true;
	}
	if (from == kr->locked || (result != TM_Updated && result != TM_Deleted))
		elog(ERROR, "a row of carbon.%s could not be updated (%d)", kr->table, (int) result);
	if (!keyed_lock(kr, LockTupleNoKeyExclusive))
		ExecClearTuple(kr->locked);
	return false;
}

static void
keyed_close(KeyedRows *kr)
{
	if (kr->begun)
	{
		if (kr->scan)
			index_endscan(kr->scan);
		ExecDropSingleTupleTableSlot(kr->found);
		if (kr->locked)
			ExecDropSingleTupleTableSlot(kr->locked);
		PopActiveSnapshot();
	}
	if (kr->estate)
	{
		if (kr->indices_open)
			close_indices_keep_locks(kr->rri);
		ExecCloseRangeTableRelations(kr->estate);
		FreeExecutorState(kr->estate);
	}
	index_close(kr->index, NoLock);
	table_close(kr->rel, NoLock);
	CommandCounterIncrement();	/* the statements after see what changed */
}

/*
 * Whether an UPDATE of the given columns (attribute numbers) would fire no
 * trigger: none on UPDATE, but the foreign keys' own checks of a
 * referencing row (RI_FKey_check_upd), which skip a row whose key columns
 * did not change, so none when no given column is in a foreign key.
 */
static bool
update_fires_nothing(Relation rel, const int *attnums, int n)
{
	TriggerDesc *trig = rel->trigdesc;
	ListCell   *lc;

	if (trig == NULL)
		return true;
	if (trig->trig_update_before_row || trig->trig_update_instead_row || trig->trig_update_before_statement ||
		trig->trig_update_after_statement || trig->trig_update_old_table || trig->trig_update_new_table)
		return false;
	for (int i = 0; i < trig->numtriggers; i++)
		if (TRIGGER_FOR_UPDATE(trig->triggers[i].tgtype) && trig->triggers[i].tgfoid != F_RI_FKEY_CHECK_UPD)
			return false;
	foreach(lc, RelationGetFKeyList(rel))
	{
		ForeignKeyCacheInfo *fk = lfirst_node(ForeignKeyCacheInfo, lc);

		for (int k = 0; k < fk->nkeys; k++)
			for (int a = 0; a < n; a++)
				if (fk->conkey[k] == attnums[a])
					return false;
	}
	return true;
}

/*
 * Add delta[i] to the carbon.balance row (account[i], asset[i], stripe[i]),
 * i = 0..n-1 in the order given (the caller's lock order), straight in the
 * heap, as UPDATE would (keyed_update): a heap-only update where the page
 * has room.
 *
 * found[i] says whether the row was there (if not, nothing was written for
 * it and the caller inserts it by SQL); after[i] is its amount afterwards
 * and status[i] its status.  Returns false, having written nothing, when
 * the table is not plain for an UPDATE (triggers on UPDATE, rules, row-level
 * security that applies, missing privileges): then the caller upserts every
 * row by SQL.
 */
bool
ledger_balances_add(const int64 *account, const int16 *asset, const int16 *stripe, const int64 *delta, int n,
					bool *found, int64 *after, char **status)
{
	KeyedRows	kr;
	TupleDesc	desc;
	AttrNumber	att_amount,
				att_status;
	TupleTableSlot *updated;
	Datum	   *keys[3];

	if (!keyed_open(&kr, "balance", 3, ACL_UPDATE | ACL_SELECT, RowExclusiveLock))
		return false;
	desc = RelationGetDescr(kr.rel);
	att_amount = attnameAttNum(kr.rel, "amount", false);
	att_status = attnameAttNum(kr.rel, "status", false);
	if (!update_fires_nothing(kr.rel, (int[]) {att_amount}, 1) || att_amount <= 0 || att_status <= 0 ||
		(desc->constr && desc->constr->has_generated_stored) ||
		TupleDescAttr(desc, att_amount - 1)->atttypid != INT8OID ||
		kr.index->rd_opcintype[0] != INT8OID || kr.index->rd_opcintype[1] != INT2OID ||
		kr.index->rd_opcintype[2] != INT2OID)
	{
		keyed_close(&kr);
		return false;
	}
	keys[0] = palloc(sizeof(Datum) * Max(n, 1));
	keys[1] = palloc(sizeof(Datum) * Max(n, 1));
	keys[2] = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		keys[0][i] = Int64GetDatum(account[i]);
		keys[1][i] = Int16GetDatum(asset[i]);
		keys[2][i] = Int16GetDatum(stripe[i]);
	}
	keyed_for_update(&kr);
	keyed_begin(&kr);
	updated = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *from = kr.found;
		bool		isnull;
		int64		amount = 0;

		found[i] = false;
		if (!keyed_find(&kr, keys, i))
			continue;			/* a row still to insert: the caller's */
		for (;;)
		{
			slot_getallattrs(from);
			amount = DatumGetInt64(slot_getattr(from, att_amount, &isnull));
			if (pg_add_s64_overflow(amount, delta[i], &amount))
			{
				/*
				 * Left as it is, and said to the caller (status NULL): an
				 * entry that overflows a credit may first be short of a
				 * debit, which is the error to report (CL001 before 22003).
				 */
				status[i] = NULL;
				break;
			}
			ExecClearTuple(updated);
			memcpy(updated->tts_values, from->tts_values, sizeof(Datum) * desc->natts);
			memcpy(updated->tts_isnull, from->tts_isnull, sizeof(bool) * desc->natts);
			updated->tts_values[att_amount - 1] = Int64GetDatum(amount);
			updated->tts_isnull[att_amount - 1] = false;
			ExecStoreVirtualTuple(updated);
			status[i] = TextDatumGetCString(slot_getattr(from, att_status, &isnull));
			if (keyed_update(&kr, from, updated))
				break;
			if (TTS_EMPTY(kr.locked))
				elog(ERROR, "the balance of account " INT64_FORMAT " is gone", account[i]);
			from = kr.locked;
		}
		found[i] = true;
		after[i] = amount;
	}
	ExecDropSingleTupleTableSlot(updated);
	keyed_close(&kr);
	return true;
}

/*
 * Update rows of carbon.<table> found by its primary key, straight in the
 * heap (no planner, no executor), as `UPDATE … SET columns = … FROM
 * unnest(…) WHERE key = …` would: row r is the one whose key columns (in
 * the primary key's order) equal keys[k][r], and takes values[c][r]
 * (nulls[c][r]) in the ncols columns named; the other columns keep theirs.
 * Domains, CHECK constraints (their states kept with the table's shape, as
 * for appends) and the indexes of a row that cannot be updated heap-only
 * are kept up; concurrency as UPDATE (keyed_update).
 *
 * Returns how many rows were found and updated (found[r], when given, says
 * which), or -1, having written nothing, when the table is not plain for an
 * UPDATE of those columns (a trigger that would fire, a rule, row-level
 * security that applies, missing privileges, a generated column): the
 * caller then updates by SQL.  A foreign key's check does not fire when
 * its columns do not change, so it does not count when none is given.
 */
int64
ledger_update_by_key(const char *table, int nkeys, Datum *const *keys, int ncols, const char *const *columns,
					 Datum *const *values, bool *const *nulls, int nrows, bool *found)
{
	return ledger_update_by_key_with(table, nkeys, keys, ncols, columns, values, nulls, nrows, found, NULL, NULL);
}

/*
 * The same, with change(row, r, values, isnull, arg) called on each row
 * found, in the version about to be updated (all its columns in
 * values/isnull, the given ones already set): it may set others from the
 * old ones (a counter plus one) and read what it needs (RETURNING).  With
 * values NULL, the columns named are the ones change() sets, from the old
 * row as it finds it (their domains are checked after it).  It may be
 * called twice for a row that another transaction changed meanwhile; the
 * last call is the version written.  It must not change a foreign key's
 * columns (their checks do not run here).
 */
int64
ledger_update_by_key_with(const char *table, int nkeys, Datum *const *keys, int ncols, const char *const *columns,
						  Datum *const *values, bool *const *nulls, int nrows, bool *found,
						  LedgerRowChange change, void *arg)
{
	KeyedRows	kr;
	TupleDesc	desc;
	AppendShape *sh,
				own;
	TupleTableSlot *updated;
	int64		n_updated = 0;
	int		   *attnums;

	if (!keyed_open(&kr, table, nkeys, ACL_UPDATE | ACL_SELECT, RowExclusiveLock))
		return -1;
	desc = RelationGetDescr(kr.rel);
	attnums = palloc(sizeof(int) * Max(ncols, 1));
	for (int c = 0; c < ncols; c++)
		attnums[c] = attnameAttNum(kr.rel, columns[c], false);
	if (!update_fires_nothing(kr.rel, attnums, ncols) || (desc->constr && desc->constr->has_generated_stored))
	{
		keyed_close(&kr);
		return -1;
	}
	keyed_for_update(&kr);

	/* the columns' domains and the table's checks, kept (see append_rows) */
	sh = shape_take(table, ncols, columns, kr.rel, &own);
	if (sh->nchecks > 0 && desc->constr && desc->constr->num_check == sh->nchecks)
		kr.rri->ri_ConstraintExprs = sh->checks;
	kr.shape = sh;				/* for the indexes, if an update opens them */
	GetPerTupleExprContext(kr.estate)->ecxt_per_query_memory = sh->cxt;

	keyed_begin(&kr);
	updated = MakeSingleTupleTableSlot(sh->slot_desc, &TTSOpsVirtual);
	for (int r = 0; r < nrows; r++)
	{
		TupleTableSlot *from = kr.found;
		bool		done = false;

		if (found)
			found[r] = false;
		if (!keyed_find(&kr, keys, r))
			continue;
		while (!done)
		{
			slot_getallattrs(from);
			ExecClearTuple(updated);
			memcpy(updated->tts_values, from->tts_values, sizeof(Datum) * desc->natts);
			memcpy(updated->tts_isnull, from->tts_isnull, sizeof(bool) * desc->natts);
			for (int a = 0; a < desc->natts; a++)
			{
				int			c = sh->given[a];

				if (c < 0 || values == NULL)
					continue;
				updated->tts_values[a] = values[c][r];
				updated->tts_isnull[a] = nulls[c][r];
				if (sh->domains[a])
					domain_check(values[c][r], nulls[c][r], sh->domains[a], &sh->domain_cache[a], sh->cxt);
			}
			if (change)
				change(r, updated->tts_values, updated->tts_isnull, arg);
			for (int a = 0; values == NULL && a < desc->natts; a++)
				if (sh->given[a] >= 0 && sh->domains[a])
					domain_check(updated->tts_values[a], updated->tts_isnull[a], sh->domains[a],
								 &sh->domain_cache[a], sh->cxt);
			ExecStoreVirtualTuple(updated);
			done = keyed_update(&kr, from, updated);
			if (!done && TTS_EMPTY(kr.locked))
				break;			/* gone meanwhile: not counted, as UPDATE does not count it */
			from = kr.locked;
		}
		if (done)
		{
			n_updated++;
			if (found)
				found[r] = true;
		}
	}
	ExecDropSingleTupleTableSlot(updated);
	keyed_close(&kr);
	shape_give_back(sh, &own);
	return n_updated;
}

/* ledger_read_by_key(_to_write): each row found (and locked) handed to row(). */
static int64
keyed_each(const char *table, int nkeys, Datum *const *keys, int nrows, LedgerRowRead row, void *arg, bool lock,
		   LOCKMODE relmode)
{
	KeyedRows	kr;
	int64		n = 0;

	if (!keyed_open(&kr, table, nkeys, lock ? ACL_UPDATE | ACL_SELECT : ACL_SELECT, relmode))
		return -1;
	keyed_begin(&kr);
	for (int r = 0; r < nrows; r++)
		if (keyed_find(&kr, keys, r) && (!lock || keyed_lock(&kr, LockTupleExclusive)))
		{
			TupleTableSlot *slot = lock ? kr.locked : kr.found;

			slot_getallattrs(slot);
			row(r, slot, arg);
			n++;
		}
	keyed_close(&kr);
	return n;
}

/*
 * Read rows of carbon.<table> found by its primary key (keys as
 * ledger_update_by_key) with the snapshot a statement here would use, and
 * hand each to row(r, slot, arg); rows not there are not handed.  Returns
 * how many were found, or -1 when the table is not plain for a SELECT
 * (rules, row-level security that applies, no privilege): the caller then
 * reads by SQL.  Not in parallel mode (a new command may not start).
 */
int64
ledger_read_by_key(const char *table, int nkeys, Datum *const *keys, int nrows, LedgerRowRead row, void *arg)
{
	return keyed_each(table, nkeys, keys, nrows, row, arg, false, AccessShareLock);
}

/*
 * ledger_read_by_key of a table the transaction is about to write; with
 * `lock`, each row locked as SELECT … FOR UPDATE does and its newest
 * version handed (rows deleted meanwhile are not), -1 having locked
 * nothing when the table is not plain for it.  The relation and its
 * primary key are locked in the mode the write takes (RowExclusiveLock),
 * as an UPDATE or INSERT … SELECT reading its own target does, instead of
 * a second, weaker lock beside it (PostgreSQL keeps one lock per mode, and
 * past 16 a backend's locks go to the shared lock table).
 */
int64
ledger_read_by_key_to_write(const char *table, int nkeys, Datum *const *keys, int nrows, LedgerRowRead row,
							void *arg, bool lock)
{
	return keyed_each(table, nkeys, keys, nrows, row, arg, lock, RowExclusiveLock);
}

/*
 * The last lists resolved, by the caller's array of names and the row
 * type: a hit is checked name by name against the descriptor (n string
 * comparisons, not n × the table's columns), so a table altered since, or
 * another list at the same address, is resolved again.
 */
typedef struct AttnumsKept
{
	const char *const *names;
	int			n;
	Oid			type;
	AttrNumber	attnums[16];
} AttnumsKept;

static AttnumsKept attnums_kept[16];
static int	attnums_next = 0;

/*
 * The attribute numbers of the columns `names` of a row of carbon.<table>
 * (desc: its descriptor, a slot's), as a statement naming them would
 * resolve them; a column missing is an error (table, if known, names it).
 */
void
ledger_attnums(TupleDesc desc, const char *const *names, int n, AttrNumber *attnums, const char *table)
{
	for (int i = 0; i < (int) lengthof(attnums_kept); i++)
	{
		AttnumsKept *k = &attnums_kept[i];
		bool		same = k->names == names && k->n == n && k->type == desc->tdtypeid;

		for (int c = 0; c < n && same; c++)
		{
			AttrNumber	a = k->attnums[c];

			same = a >= 1 && a <= desc->natts && !TupleDescAttr(desc, a - 1)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, a - 1)->attname), names[c]) == 0;
		}
		if (same)
		{
			memcpy(attnums, k->attnums, sizeof(AttrNumber) * n);
			return;
		}
	}
	for (int c = 0; c < n; c++)
	{
		attnums[c] = InvalidAttrNumber;
		for (int a = 0; a < desc->natts && attnums[c] == InvalidAttrNumber; a++)
			if (!TupleDescAttr(desc, a)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, a)->attname), names[c]) == 0)
				attnums[c] = a + 1;
		if (attnums[c] == InvalidAttrNumber)
			elog(ERROR, "carbon.%s has no column %s", table ? table : "table", names[c]);
	}
	if (n <= (int) lengthof(attnums_kept[0].attnums))
	{
		AttnumsKept *k = &attnums_kept[attnums_next];

		attnums_next = (attnums_next + 1) % lengthof(attnums_kept);
		k->names = names;
		k->n = n;
		k->type = desc->tdtypeid;
		memcpy(k->attnums, attnums, sizeof(AttrNumber) * n);
	}
}

/* A LedgerRowRead: the bigint column named in a LedgerColumnRead, into its into[row]. */
void
ledger_read_int8_column(int row, TupleTableSlot *slot, void *arg)
{
	const LedgerColumnRead *cr = (const LedgerColumnRead *) arg;
	TupleDesc	desc = slot->tts_tupleDescriptor;
	AttrNumber	a;

	ledger_attnums(desc, &cr->column, 1, &a, NULL);
	if (slot->tts_isnull[a - 1] || getBaseType(TupleDescAttr(desc, a - 1)->atttypid) != INT8OID)
		elog(ERROR, "column %s is not a bigint", cr->column);
	cr->into[row] = DatumGetInt64(slot->tts_values[a - 1]);
}

/*
 * Rows of carbon.<table> in the order of its index carbon.<index_name>,
 * as the snapshot a statement here would use sees them (after a command
 * counter increment), or as `snapshot` does if not NULL (a dirty snapshot
 * shows the rows other transactions in flight are writing, and says whose
 * they are: its xmin, xmax for each row taken): those whose first nkeys
 * index columns compare to keys[k] by strategies[k] (the operator of the
 * column's btree family: "=" for equality, "<=" for a bound; a DESC
 * column's bound reads as written, nbtree turns it), each handed to
 * take(slot, arg) until `limit` of them were taken (take returns whether
 * it took the row: it may pass rows over).  The table and index are locked
 * in `lockmode` (RowExclusiveLock where the caller writes the table next,
 * as ledger_read_by_key_to_write).  Returns how many were taken, or -1
 * when the table is not plain for a SELECT (rules, row-level security that
 * applies, no privilege): the caller then reads by SQL.  Not in parallel
 * mode.
 */
int
ledger_scan_index(const char *table, const char *index_name, int nkeys, const Datum *keys,
				  const StrategyNumber *strategies, int limit, LedgerRowTake take, void *arg,
				  Snapshot snapshot, LOCKMODE lockmode)
{
	Oid			relid = ledger_relid(table);
	Oid			indexid = ledger_relid(index_name);
	Relation	rel,
				index;
	ScanKeyData *skeys;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			taken = 0;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		elog(ERROR, "carbon.%s or its index %s is missing", table, index_name);
	rel = table_open(relid, lockmode);
	if (rel->rd_rules != NULL || !table_plain(rel, ACL_SELECT))
	{
		table_close(rel, NoLock);
		return -1;
	}
	index = index_open(indexid, lockmode);
	if (index->rd_index->indrelid != relid || index->rd_rel->relam != BTREE_AM_OID ||
		index->rd_index->indnkeyatts < nkeys)
		elog(ERROR, "%s is not a btree index of carbon.%s", index_name, table);
	skeys = palloc(sizeof(ScanKeyData) * Max(nkeys, 1));
	for (int k = 0; k < nkeys; k++)
	{
		RegProcedure proc = index_key_proc(index, k, strategies[k]);

		if (!OidIsValid(proc))
			elog(ERROR, "no operator %d for column %d of %s", (int) strategies[k], k + 1, index_name);
		ScanKeyEntryInitialize(&skeys[k], 0, k + 1, strategies[k], InvalidOid, index->rd_indcollation[k],
							   proc, keys[k]);
	}
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot ? snapshot : GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, skeys, nkeys, NULL, 0);
	while (taken < limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		slot_getallattrs(slot);
		if (take(slot, arg))
			taken++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return taken;
}
