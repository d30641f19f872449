-- pgTAP: 100,000 random and mutated strings through co2e input, and random
-- parameter objects through define_methodology: never a crash, every
-- refusal a documented SQLSTATE, every accepted co2e round-trips.
BEGIN;
SET LOCAL search_path = public, carbon;
SELECT plan(7);

CREATE TEMP TABLE co2e_outcomes (input text, code text);
DO $$
DECLARE
  alphabet text := '0123456789 .+-eEgGkKtTmMcCoO2x,_' || chr(9);
  valid text[] := ARRAY['12.5 kg', '-3t', '1500 g', '0.000001 Mt', '1 kt', '9223372036854775807 g',
                        '2.5 tCO2e', '-9223372036854.775808 t', '0.001 kgCO2e', '  7 G '];
  s text;
  c text;
BEGIN
  PERFORM setseed(0.42);
  FOR i IN 1..100000 LOOP
    IF i % 2 = 0 THEN
      s := (SELECT string_agg(substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1), '')
            FROM generate_series(1, 1 + floor(random() * 16)::int));
    ELSE
      s := valid[1 + i % array_length(valid, 1)];
      s := overlay(s PLACING substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1 + (i % 3))
                   FROM 1 + floor(random() * length(s))::int FOR floor(random() * 3)::int);
    END IF;
    BEGIN
      c := CASE WHEN s::carbon.co2e::text::carbon.co2e = s::carbon.co2e THEN 'ok' ELSE 'no round trip' END;
    EXCEPTION WHEN OTHERS THEN
      c := SQLSTATE;
    END;
    INSERT INTO co2e_outcomes VALUES (s, c);
  END LOOP;
END $$;
SELECT is((SELECT count(*) FROM co2e_outcomes), 100000::bigint, '100,000 strings tried as co2e');
SELECT is((SELECT count(*) FROM co2e_outcomes WHERE code NOT IN ('ok', '22P02', '22003')), 0::bigint,
          'every refusal is 22P02 or 22003, every accepted value round-trips');
SELECT ok((SELECT count(*) FROM co2e_outcomes WHERE code = 'ok') > 5000, 'many were valid');
SELECT ok((SELECT count(*) FROM co2e_outcomes WHERE code = '22P02') > 5000, 'many were refused as bad text');

-- random parameter objects for every formula
CREATE TEMP TABLE param_outcomes (code text);
DO $$
DECLARE
  keys text[] := ARRAY['baseline_g_per_pkm', 'project_g_per_pkm', 'g_per_unit', 'baseline', 'g_per_event',
                       'daily_cap_g', 'max_activity', 'other'];
  vals jsonb[] := ARRAY['1', '-1', '0', '12.5', '"x"', 'null', '[1]', '1e3', '99999999999999999999', '{}']::jsonb[];
  formulas text[] := ARRAY['distance_substitution', 'per_unit', 'personal_baseline', 'flat', 'nope'];
  p jsonb;
  c text;
BEGIN
  PERFORM setseed(0.7);
  FOR i IN 1..5000 LOOP
    p := '{}';
    FOR k IN 1..(1 + floor(random() * 4)::int) LOOP
      p := p || jsonb_build_object(keys[1 + floor(random() * 8)::int], vals[1 + floor(random() * 10)::int]);
    END LOOP;
    BEGIN
      PERFORM carbon.define_methodology('FUZZ', 1 + i, 't', 'I', 's', formulas[1 + i % 5], p);
      c := 'ok';
    EXCEPTION WHEN OTHERS THEN
      c := SQLSTATE;
    END;
    INSERT INTO param_outcomes VALUES (c);
  END LOOP;
END $$;
SELECT is((SELECT count(*) FROM param_outcomes WHERE code NOT IN ('ok', '22023')), 0::bigint,
          'every refused parameter object is 22023');
SELECT ok((SELECT count(*) FROM param_outcomes WHERE code = 'ok') > 100, 'some were valid drafts');
SELECT is((SELECT count(*) FROM carbon.methodology WHERE code = 'FUZZ'),
          (SELECT count(*) FROM param_outcomes WHERE code = 'ok'), 'exactly the accepted ones were written');

SELECT * FROM finish();
ROLLBACK;
