-- 022: the inbox statements of every group keep their plans for the session
-- (issue 14; docs/design/performance.md, "Plans kept for the inbox's
-- statements").
--
-- scripts/bench --profile --clients 1: a group of one referral spent
-- ~0.39 ms of its ~3.9 ms in PostgreSQL planning the statements rasd sends
-- (pg_stat_statements' plan time), most of it for three statements whose
-- execution is a fraction of that: keeping the payloads (0.129 ms planning
-- against 0.116 executing), marking them (0.092 against 0.060) and
-- claiming the ones the caller has (0.054 against 0.017).  As functions
-- they are planned once per session, like the store functions (014, 016),
-- with sequential scans off so that a plan made while the inbox is small
-- still looks rows up by their keys (017).  Each does exactly what the
-- statement did (lib/intake/store.c says what); the columns come back in
-- the same order.
--
-- The triage claim stays a statement planned per call: its plan depends on
-- which of its filters are given, which a generic plan cannot know.

-- Keep a batch of payloads (SQL_INBOX_PUT): each row in order, with the id
-- it was inserted as (NULL: a duplicate), the id of the row already kept
-- (read from the statement's snapshot), whether it is the first copy of its
-- payload in the batch, and, for a row inserted here, its received_at in
-- whole seconds (normalise then needs no claim of its own for that row:
-- lib/intake/store.c, claim_known).
CREATE FUNCTION ras_inbox_put(p_sha text[], p_source text[], p_ref text[], p_type text[], p_body bytea[],
                              p_size bigint[], p_truncated text[], p_service text[], p_ubrn text[],
                              p_correlation text[])
RETURNS TABLE (ord bigint, inserted bigint, stored bigint, first boolean, received bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH v AS (
        SELECT * FROM unnest(p_sha, p_source, p_ref, p_type, p_body, p_size, p_truncated, p_service,
                             p_ubrn, p_correlation)
            WITH ORDINALITY AS v(sha256, source, source_ref, content_type, body, size, truncated,
                                 service_hint, ubrn_hint, correlation_id, ord)),
    ins AS (
        INSERT INTO inbox (sha256, source, source_ref, content_type, body, size, truncated,
                           service_hint, ubrn_hint, correlation_id)
        SELECT v.sha256, v.source, v.source_ref, v.content_type, v.body, v.size, v.truncated::boolean,
               v.service_hint, v.ubrn_hint, v.correlation_id FROM v ORDER BY v.ord
        ON CONFLICT (sha256, ubrn_hint) DO NOTHING
        RETURNING inbox.id, inbox.sha256, inbox.ubrn_hint, inbox.received_at)
    SELECT v.ord, ins.id,
           (SELECT o.id FROM inbox o WHERE o.sha256 = v.sha256
                                       AND o.ubrn_hint IS NOT DISTINCT FROM v.ubrn_hint),
           row_number() OVER (PARTITION BY v.sha256, v.ubrn_hint ORDER BY v.ord) = 1,
           floor(extract(epoch FROM ins.received_at))::bigint
      FROM v LEFT JOIN ins ON ins.sha256 = v.sha256
                          AND coalesce(ins.ubrn_hint, '') = coalesce(v.ubrn_hint, '')
     ORDER BY v.ord;
END $$;

-- Mark a batch's payloads (SQL_INBOX_DONE_SET): p_marks is a JSON array of
-- {id, state, kind, error}; p_ids the same ids, so that the rows are
-- fetched by their key; a payload-rejected event for each rejected one.
CREATE FUNCTION ras_inbox_mark(p_marks jsonb, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
BEGIN
    WITH d AS (
        SELECT d.ord, (d.v ->> 'id')::bigint AS id, d.v ->> 'state' AS state, d.v ->> 'kind' AS kind,
               d.v ->> 'error' AS error
          FROM jsonb_array_elements(p_marks) WITH ORDINALITY AS d(v, ord)),
    u AS (
        UPDATE inbox i SET state = d.state, kind = d.kind, error = d.error, processed_at = now()
          FROM d WHERE i.id = ANY (p_ids) AND i.id = d.id)
    INSERT INTO events (payload_id, kind, actor)
    SELECT d.id, 'payload-rejected', 'rasd' FROM d WHERE d.state = 'rejected' ORDER BY d.ord;
END $$;

-- Claim the rows of payloads the caller has kept in this transaction
-- (SQL_CLAIM_KNOWN): still received, locked, skipping rows another
-- session holds; their length instead of their bytes.
CREATE FUNCTION ras_inbox_claim_known(p_ids bigint[], p_limit int)
RETURNS TABLE (id text, length text, truncated text, service_hint text, ubrn_hint text,
               correlation_id text, received text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT i.id::text, octet_length(i.body)::text, i.truncated::text, i.service_hint, i.ubrn_hint,
           i.correlation_id, floor(extract(epoch FROM i.received_at))::bigint::text
      FROM inbox i
     WHERE i.state = 'received' AND i.id = ANY (p_ids)
     ORDER BY i.id LIMIT p_limit FOR UPDATE OF i SKIP LOCKED;
END $$;
