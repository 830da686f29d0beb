-- scripts/bench --stored M: grows a bench database to M stored referrals by
-- copying what rasd itself stored for a seed of referrals (inbox payloads,
-- patients, referrals, decisions, deadlines, events, letters, e-RS outcomes,
-- …) under new ids and keys, so that rasd's stages can be timed against a
-- large database without spending hours filling it through rasd.
--
-- Not part of rasd's schema: the benchmark loads it into its own scratch
-- cluster only.  The copies are written with session_replication_role =
-- replica (no triggers, no foreign-key checks: the seed already satisfied
-- them, and every copied key points at a copy of the same generation).
-- Column lists are read from the catalogue, so the filler follows schema
-- changes; the rules below say how a key column is rewritten.
--
-- Copy k of a row:
--   id, and every column that references a copied table  + k * (max id + 1)
--   ubrn            '9' || k (3 digits) || its last 8 digits: 12 digits, never
--                   in the ranges the benchmark's own Bundles use (71…76)
--   referral_key, sha256, local_id, mesh/itk3 message ids   || '~' || k
--   nhs_number      a 10-digit number of its own per copy
-- Everything else (documents, states, times) is copied as it is.

CREATE OR REPLACE FUNCTION pg_temp.bench_expr(p_table text, p_col text, p_type text,
                                              p_offsets jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_target text;
BEGIN
    IF p_col = 'id' AND p_offsets ? p_table THEN
        RETURN format('t.id + k * %s', p_offsets ->> p_table);
    END IF;
    SELECT ccu.table_name INTO v_target
      FROM information_schema.key_column_usage kcu
      JOIN information_schema.referential_constraints rc
        ON rc.constraint_name = kcu.constraint_name AND rc.constraint_schema = kcu.constraint_schema
      JOIN information_schema.constraint_column_usage ccu
        ON ccu.constraint_name = rc.unique_constraint_name
       AND ccu.constraint_schema = rc.unique_constraint_schema
     WHERE kcu.table_schema = 'public' AND kcu.table_name = p_table AND kcu.column_name = p_col
     LIMIT 1;
    IF v_target IS NOT NULL AND p_offsets ? v_target AND p_type = 'bigint' THEN
        RETURN format('t.%I + k * %s', p_col, p_offsets ->> v_target);
    END IF;
    IF p_col = 'ubrn' THEN
        RETURN 'CASE WHEN t.ubrn ~ ''^[0-9]{12}$'' THEN ''9'' || lpad(k::text, 3, ''0'') || right(t.ubrn, 8)'
               ' ELSE t.ubrn || ''~'' || k END';
    END IF;
    IF p_col = 'nhs_number' THEN
        RETURN 'lpad(((t.nhs_number::bigint + k * 7919) % 10000000000)::text, 10, ''0'')';
    END IF;
    IF p_col IN ('referral_key', 'sha256', 'local_id', 'message_id', 'mesh_message_id',
                 'itk3_header_id', 'correlation_id', 'state_sha256', 'token_sha256') AND p_type = 'text' THEN
        RETURN format('CASE WHEN t.%1$I IS NULL THEN NULL ELSE t.%1$I || ''~'' || k END', p_col);
    END IF;
    RETURN format('t.%I', p_col);
END $$;

-- Copies generations p_from..p_to (k) of every row of the copied tables as
-- they were before the first copy (ids up to the offsets).
CREATE OR REPLACE FUNCTION pg_temp.bench_copy(p_tables text[], p_offsets jsonb, p_from int, p_to int)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_cols  text;
    v_exprs text;
    v_where text;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOREACH v_table IN ARRAY p_tables LOOP
        SELECT string_agg(format('%I', c.column_name), ', ' ORDER BY c.ordinal_position),
               string_agg(pg_temp.bench_expr(v_table, c.column_name, c.data_type, p_offsets),
                          ', ' ORDER BY c.ordinal_position)
          INTO v_cols, v_exprs
          FROM information_schema.columns c
         WHERE c.table_schema = 'public' AND c.table_name = v_table
           AND c.is_generated = 'NEVER';
        -- only the seed's rows are copied (not earlier copies): by id, or
        -- by the referral a table without an id of its own belongs to
        v_where := CASE WHEN p_offsets ? v_table
                        THEN format('WHERE t.id < %s', p_offsets ->> v_table)
                        WHEN v_cols ~ '(^|, )referral_id(,|$)'
                        THEN format('WHERE t.referral_id < %s', p_offsets ->> 'referrals')
                        ELSE 'WHERE false' END;
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %I t CROSS JOIN generate_series(%s, %s) AS k %s',
                       v_table, v_cols, v_exprs, v_table, p_from, p_to, v_where);
    END LOOP;
END $$;
