-- ---------------------------------------------------------------------------
-- Type carbon.co2e: an exact signed count of grams of CO2-equivalent.
-- Pure I/O (no table, no setting), so IMMUTABLE STRICT PARALLEL SAFE.
-- ---------------------------------------------------------------------------

CREATE TYPE carbon.co2e;

CREATE FUNCTION carbon.co2e_in(cstring) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_out(carbon.co2e) RETURNS cstring
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_recv(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_send(carbon.co2e) RETURNS bytea
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE carbon.co2e (
  INPUT = carbon.co2e_in,
  OUTPUT = carbon.co2e_out,
  RECEIVE = carbon.co2e_recv,
  SEND = carbon.co2e_send,
  INTERNALLENGTH = 8,
  PASSEDBYVALUE,
  ALIGNMENT = double,
  STORAGE = plain,
  CATEGORY = 'N'
);
COMMENT ON TYPE carbon.co2e IS
  '二氧化碳当量质量（精确到克） exact mass of CO2-equivalent, a signed 64-bit count of grams';

-- Comparisons: co2e is an int8 in memory, so PostgreSQL's own int8
-- comparison, hash and sort support functions serve it unchanged.
CREATE FUNCTION carbon.co2e_eq(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_ne(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_lt(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_le(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_gt(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_ge(carbon.co2e, carbon.co2e) RETURNS boolean
  AS 'int8ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_cmp(carbon.co2e, carbon.co2e) RETURNS integer
  AS 'btint8cmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_sortsupport(internal) RETURNS void
  AS 'btint8sortsupport' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_hash(carbon.co2e) RETURNS integer
  AS 'hashint8' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_hash_extended(carbon.co2e, bigint) RETURNS bigint
  AS 'hashint8extended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION carbon.co2e_smaller(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'int8smaller' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_larger(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'int8larger' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR carbon.= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_eq,
  COMMUTATOR = OPERATOR(carbon.=), NEGATOR = OPERATOR(carbon.<>),
  RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR carbon.<> (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_ne,
  COMMUTATOR = OPERATOR(carbon.<>), NEGATOR = OPERATOR(carbon.=),
  RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR carbon.< (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_lt,
  COMMUTATOR = OPERATOR(carbon.>), NEGATOR = OPERATOR(carbon.>=),
  RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR carbon.<= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_le,
  COMMUTATOR = OPERATOR(carbon.>=), NEGATOR = OPERATOR(carbon.>),
  RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR carbon.> (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_gt,
  COMMUTATOR = OPERATOR(carbon.<), NEGATOR = OPERATOR(carbon.<=),
  RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR carbon.>= (
  LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_ge,
  COMMUTATOR = OPERATOR(carbon.<=), NEGATOR = OPERATOR(carbon.<),
  RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS carbon.co2e_ops DEFAULT FOR TYPE carbon.co2e USING btree AS
  OPERATOR 1 carbon.<,
  OPERATOR 2 carbon.<=,
  OPERATOR 3 carbon.=,
  OPERATOR 4 carbon.>=,
  OPERATOR 5 carbon.>,
  FUNCTION 1 carbon.co2e_cmp(carbon.co2e, carbon.co2e),
  FUNCTION 2 carbon.co2e_sortsupport(internal);

CREATE OPERATOR CLASS carbon.co2e_hash_ops DEFAULT FOR TYPE carbon.co2e USING hash AS
  OPERATOR 1 carbon.=,
  FUNCTION 1 carbon.co2e_hash(carbon.co2e),
  FUNCTION 2 carbon.co2e_hash_extended(carbon.co2e, bigint);

-- Arithmetic, checked in C: an overflow is 22003, never a wrap-around.
CREATE FUNCTION carbon.co2e_pl(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mi(carbon.co2e, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_um(carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mul_int8(carbon.co2e, bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.int8_mul_co2e(bigint, carbon.co2e) RETURNS carbon.co2e
  AS 'SELECT carbon.co2e_mul_int8($2, $1)' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_int8(carbon.co2e, bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_mul_numeric(carbon.co2e, numeric) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.numeric_mul_co2e(numeric, carbon.co2e) RETURNS carbon.co2e
  AS 'SELECT carbon.co2e_mul_numeric($2, $1)' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_numeric(carbon.co2e, numeric) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_co2e(carbon.co2e, carbon.co2e) RETURNS double precision
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- integer (int4) operands, the type of a plain literal such as 2: without
-- them `reduction * 2` would be ambiguous between bigint and numeric
CREATE FUNCTION carbon.co2e_mul_int4(carbon.co2e, integer) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.int4_mul_co2e(integer, carbon.co2e) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_div_int4(carbon.co2e, integer) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR carbon.+ (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_pl, COMMUTATOR = OPERATOR(carbon.+));
CREATE OPERATOR carbon.- (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_mi);
CREATE OPERATOR carbon.- (RIGHTARG = carbon.co2e, FUNCTION = carbon.co2e_um);
CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = bigint,
  FUNCTION = carbon.co2e_mul_int8, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = bigint, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.int8_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = numeric,
  FUNCTION = carbon.co2e_mul_numeric, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = numeric, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.numeric_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = bigint,
  FUNCTION = carbon.co2e_div_int8);
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = numeric,
  FUNCTION = carbon.co2e_div_numeric);
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.co2e_div_co2e);

CREATE OPERATOR carbon.* (LEFTARG = carbon.co2e, RIGHTARG = integer,
  FUNCTION = carbon.co2e_mul_int4, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon.* (LEFTARG = integer, RIGHTARG = carbon.co2e,
  FUNCTION = carbon.int4_mul_co2e, COMMUTATOR = OPERATOR(carbon.*));
CREATE OPERATOR carbon./ (LEFTARG = carbon.co2e, RIGHTARG = integer,
  FUNCTION = carbon.co2e_div_int4);

-- Helpers.
CREATE FUNCTION carbon.grams(carbon.co2e) RETURNS bigint
  AS 'MODULE_PATHNAME', 'co2e_grams_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_grams(bigint) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME', 'co2e_grams_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.kg(carbon.co2e) RETURNS numeric
  AS 'MODULE_PATHNAME', 'co2e_kg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.tonnes(carbon.co2e) RETURNS numeric
  AS 'MODULE_PATHNAME', 'co2e_tonnes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION carbon.grams(carbon.co2e) IS '克数 the exact number of grams';
COMMENT ON FUNCTION carbon.co2e_grams(bigint) IS '由克数构造 a co2e of the given number of grams';
COMMENT ON FUNCTION carbon.kg(carbon.co2e) IS '千克 the exact value in kilograms';
COMMENT ON FUNCTION carbon.tonnes(carbon.co2e) IS '吨 the exact value in tonnes';

-- Aggregates: sum and avg share one transition (int128 sum + count), so
-- `sum(x), avg(x)` in one query computes it once; both are parallel-safe
-- and support moving windows.
CREATE FUNCTION carbon.co2e_accum(internal, carbon.co2e) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_accum_inv(internal, carbon.co2e) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_combine(internal, internal) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_agg_serialize(internal) RETURNS bytea
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_agg_deserialize(bytea, internal) RETURNS internal
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_sum_final(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION carbon.co2e_avg_final(internal) RETURNS carbon.co2e
  AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE carbon.sum(carbon.co2e) (
  SFUNC = carbon.co2e_accum, STYPE = internal, SSPACE = 24,
  FINALFUNC = carbon.co2e_sum_final,
  COMBINEFUNC = carbon.co2e_combine,
  SERIALFUNC = carbon.co2e_agg_serialize, DESERIALFUNC = carbon.co2e_agg_deserialize,
  MSFUNC = carbon.co2e_accum, MINVFUNC = carbon.co2e_accum_inv, MSTYPE = internal,
  MSSPACE = 24, MFINALFUNC = carbon.co2e_sum_final,
  PARALLEL = SAFE);
CREATE AGGREGATE carbon.avg(carbon.co2e) (
  SFUNC = carbon.co2e_accum, STYPE = internal, SSPACE = 24,
  FINALFUNC = carbon.co2e_avg_final,
  COMBINEFUNC = carbon.co2e_combine,
  SERIALFUNC = carbon.co2e_agg_serialize, DESERIALFUNC = carbon.co2e_agg_deserialize,
  MSFUNC = carbon.co2e_accum, MINVFUNC = carbon.co2e_accum_inv, MSTYPE = internal,
  MSSPACE = 24, MFINALFUNC = carbon.co2e_avg_final,
  PARALLEL = SAFE);
CREATE AGGREGATE carbon.min(carbon.co2e) (
  SFUNC = carbon.co2e_smaller, STYPE = carbon.co2e,
  COMBINEFUNC = carbon.co2e_smaller, SORTOP = OPERATOR(carbon.<), PARALLEL = SAFE);
CREATE AGGREGATE carbon.max(carbon.co2e) (
  SFUNC = carbon.co2e_larger, STYPE = carbon.co2e,
  COMBINEFUNC = carbon.co2e_larger, SORTOP = OPERATOR(carbon.>), PARALLEL = SAFE);
COMMENT ON AGGREGATE carbon.sum(carbon.co2e) IS '合计 exact sum; 22003 if it does not fit';
COMMENT ON AGGREGATE carbon.avg(carbon.co2e) IS '平均（截断） mean truncated toward zero';
