-- The schema of an installed carbon_ledger as sorted lines of text: every
-- member object, function definitions and privileges, table columns in
-- order, constraints, indexes, triggers, policies, views, comments, the
-- tables pg_dump keeps, and the seeded rows.  test/suites/upgrade.sh
-- compares a database upgraded from an earlier version with a fresh install:
-- any difference is a missing (or wrong) step in an upgrade script.
-- privileges compare as sorted lists: GRANTs in another order are the same
CREATE FUNCTION pg_temp.carbon_fp_acl(aclitem[]) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest($1) a $$;
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'carbon_ledger'),
members AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rels AS (
  SELECT c.oid, c.relname, c.relkind FROM pg_class c
  WHERE c.relnamespace = 'carbon'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'p', 'm')
),
funcs AS (
  SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'carbon'::regnamespace
)
SELECT line FROM (
  SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
         || E'\nacl ' || coalesce(pg_temp.carbon_fp_acl(p.proacl), 'default') || ' owner-is-super ' || r.rolsuper
         || E'\ncomment ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p JOIN funcs f ON f.oid = p.oid JOIN pg_roles r ON r.oid = p.proowner
  WHERE p.prokind <> 'a'
  UNION ALL
  SELECT 'aggregate ' || p.oid::regprocedure || ' acl ' || coalesce(pg_temp.carbon_fp_acl(p.proacl), 'default')
  FROM pg_proc p JOIN funcs f ON f.oid = p.oid WHERE p.prokind = 'a'
  UNION ALL
  SELECT format('relation %s kind %s options %s acl %s rls %s/%s comment %s', c.relname, c.relkind,
                c.reloptions, pg_temp.carbon_fp_acl(c.relacl), c.relrowsecurity, c.relforcerowsecurity,
                obj_description(c.oid, 'pg_class'))
  FROM pg_class c JOIN rels USING (oid)
  UNION ALL
  SELECT format('column %s.%s #%s %s notnull %s default %s collation %s acl %s comment %s',
                c.relname, a.attname,
                row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
                format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(ad.adbin, ad.adrelid), a.attcollation::regcollation, pg_temp.carbon_fp_acl(a.attacl),
                col_description(c.oid, a.attnum))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN rels r ON r.oid = c.oid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN rels r ON r.oid = c.oid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN rels r ON r.oid = i.indrelid
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('policy %s.%s cmd %s permissive %s roles %s using %s check %s', c.relname, p.polname,
                p.polcmd, p.polpermissive,
                (SELECT array_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END ORDER BY 1)
                   FROM unnest(p.polroles) x),
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN rels r ON r.oid = c.oid
  UNION ALL
  SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN rels r ON r.oid = c.oid WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT format('sequence %s %s start %s increment %s min %s max %s cycle %s', c.relname,
                s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN rels r ON r.oid = c.oid
  UNION ALL
  SELECT format('dumped %s where %s', cfg.rel::regclass, cfg.cond)
  FROM ext, pg_extension e,
       unnest(e.extconfig, e.extcondition) AS cfg(rel, cond)
  WHERE e.oid = ext.oid
  UNION ALL
  SELECT format('type %s acl %s comment %s', t.oid::regtype, pg_temp.carbon_fp_acl(t.typacl), obj_description(t.oid, 'pg_type'))
  FROM pg_type t WHERE t.typnamespace = 'carbon'::regnamespace AND t.typtype IN ('b', 'd', 'e', 'r')
  UNION ALL
  SELECT 'schema comment ' || coalesce(obj_description('carbon'::regnamespace, 'pg_namespace'), '')
         || ' acl ' || (SELECT pg_temp.carbon_fp_acl(nspacl) FROM pg_namespace WHERE oid = 'carbon'::regnamespace)
  UNION ALL
  SELECT format('seeded asset %s %s %s %s', id, code, kind, name) FROM carbon.asset WHERE builtin
  UNION ALL
  SELECT format('seeded flow %s %s %s %s %s %s', from_tier, to_tier, asset, allowed, seeded, note)
  FROM carbon.allowed_flow WHERE seeded
) lines(line)
ORDER BY line COLLATE "C";
