-- 014: decisions stored a batch at a time, and stored once (issue 14).
--
-- Measured with scripts/bench --profile: the triage stage called
-- ras_store_decision() once per referral (0.9-3.6 ms each), and each
-- decision's AFTER INSERT row triggers queued its letters
-- (ras_outbox_enqueue, ~0.3-0.9 ms per letter) and its e-RS outcome intent
-- one at a time.  Each decision was also written twice: its reasons, facts
-- and columns again in decisions.doc.
--
-- Now:
--   * ras_store_decisions(batch) stores a whole triage chunk with a constant
--     number of statements (INSERT ... SELECT per table).  It is the one
--     implementation of a decision's semantics: ras_store_decision() and a
--     clinician's decision (UI, rasctl, EPR) call it with one row.
--   * the decisions triggers are statement-level, over the transition table
--     (REFERENCING NEW TABLE), and call set-based forms of
--     ras_outbox_enqueue and ras_ers_make_intent (the one-row forms call
--     them with one row).
--   * decisions.doc is gone: what it held beside the columns (the
--     decision's own list of clocks and the receipt time they ran from) has
--     columns of its own, and doc(decisions) rebuilds the old shape, so
--     `d.doc` still reads it (a computed field: PostgreSQL reads d.doc as
--     doc(d) when decisions has no such column).

-- ---- decisions: each thing once ----------------------------------------------

ALTER TABLE decisions
    ADD COLUMN received_at timestamptz,                  -- the receipt time its clocks ran from
    ADD COLUMN deadlines jsonb NOT NULL DEFAULT '[]';     -- [{kind, due, clause}] as the decision listed them

ALTER TABLE decisions DISABLE TRIGGER decisions_no_update;
UPDATE decisions SET received_at = (doc ->> 'received_at')::timestamptz,
                     deadlines = coalesce(doc -> 'deadlines', '[]');
ALTER TABLE decisions ENABLE TRIGGER decisions_no_update;

-- A decision moves its referral to 'decided' or 'review': a new version of
-- the referrals row (state is indexed, so never a HOT update).  With the
-- normalised document inline (compressed, ~1.7 KB of a ~2 KB row) every
-- such update wrote the document to the WAL again (scripts/bench
-- --profile: ~2.4 KB per decision); kept out of line from now on, a state
-- change writes a row of a few hundred bytes.  (Rows stored before keep
-- their layout.)
ALTER TABLE referrals SET (toast_tuple_target = 128);

-- No query reads the clocks by decision (decisions are never updated or
-- deleted, so the foreign key needs no index either): one index entry less
-- per clock started.
DROP INDEX deadlines_decision;

DROP VIEW current_decisions;
ALTER TABLE decisions DROP COLUMN doc;
CREATE VIEW current_decisions AS
    SELECT DISTINCT ON (referral_id) * FROM decisions ORDER BY referral_id, id DESC;

-- The decision as ras_decision_to_json(full) printed it (what the render
-- stage reads as d.doc): every field from its column.  (A clinician's
-- decision given without facts or a rule-set version reads {} and
-- 'clinician', as the columns have always stored them.)
CREATE FUNCTION doc(d decisions) RETURNS jsonb
LANGUAGE sql STABLE STRICT AS $$
    SELECT jsonb_build_object(
        'service', d.service, 'outcome', d.outcome, 'onward_target', d.onward_target,
        'final', d.final, 'reasons', d.reasons, 'deadlines', d.deadlines, 'facts', d.facts,
        'ruleset_version', d.ruleset_version, 'decided_by', d.decided_by,
        'decided_at', to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'received_at', to_char(d.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- ---- letters, a set at a time --------------------------------------------------

-- One document to enqueue (the arguments of ras_outbox_enqueue).
CREATE TYPE ras_outbox_letter AS (
    referral_id  bigint,
    service      text,
    kind         text,
    decision_id  bigint,
    episode_id   bigint,
    deadline_id  bigint,
    gp_only      boolean,
    patient      boolean
);

-- ras_outbox_enqueue (004) for many documents at once, in the order given:
-- for each, a row for the referrer, one for the GP practice when the
-- referrer is not the GP (gp_only: the GP alone, or the referrer when no
-- practice is known), the patient's copy when asked, and a
-- documents-enqueued event.  Versions are per (referral_key, kind): a
-- document of a kind the same referral already has (or has earlier in the
-- list) is the next version.  Returns the number of outbox rows.
CREATE FUNCTION ras_outbox_enqueue_all(p_letters ras_outbox_letter[])
RETURNS int
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions
AS $$
DECLARE
    v_ids     bigint[] := ARRAY(SELECT DISTINCT l.referral_id FROM unnest(p_letters) l);
    v_found   bigint[];
    v_keys    text[];
    v_missing bigint;
    n         int;
BEGIN
    -- every lookup below is by an explicit list of ids or keys, so that it
    -- is an index scan whatever join the planner picks
    v_found := ARRAY(SELECT r.id FROM referrals r WHERE r.id = ANY (v_ids) ORDER BY r.id FOR UPDATE);
    SELECT l.referral_id INTO v_missing
      FROM unnest(p_letters) WITH ORDINALITY AS l
     WHERE l.referral_id IS NULL OR NOT l.referral_id = ANY (v_found)
     ORDER BY l.ordinality LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'no referral %', v_missing USING ERRCODE = 'no_data_found';
    END IF;
    v_keys := ARRAY(SELECT DISTINCT r.referral_key FROM referrals r WHERE r.id = ANY (v_found));
    WITH r AS (
        SELECT r.id, r.referral_key, r.ubrn, r.registered_practice, r.referrer_ods
          FROM referrals r WHERE r.id = ANY (v_found)),
    l AS (
        SELECT l.*, l.ordinality AS ord, r.referral_key, r.ubrn, r.registered_practice AS gp,
               coalesce(r.referrer_ods, r.registered_practice) AS ref
          FROM unnest(p_letters) WITH ORDINALITY AS l
          JOIN r ON r.id = l.referral_id),
    have AS (
        SELECT o.referral_key, o.kind, max(o.doc_version) AS ver
          FROM outbox o
         WHERE o.referral_key = ANY (v_keys)
         GROUP BY o.referral_key, o.kind),
    v AS (
        SELECT l.*,
               coalesce(h.ver, 0)
               + row_number() OVER (PARTITION BY l.referral_key, l.kind ORDER BY l.ord) AS ver
          FROM l LEFT JOIN have h ON h.referral_key = l.referral_key AND h.kind = l.kind),
    rows AS (
        SELECT v.*, 1 AS seq, 'referrer' AS role, v.ref AS ods, v.kind AS doc_kind, v.deadline_id AS dl
          FROM v WHERE NOT v.gp_only OR v.gp IS NULL
        UNION ALL
        SELECT v.*, 2, 'gp', v.gp, v.kind, v.deadline_id
          FROM v WHERE v.gp IS NOT NULL AND (v.gp_only OR v.ref IS DISTINCT FROM v.gp)
        UNION ALL
        SELECT v.*, 3, 'patient', NULL, 'patient-copy', NULL
          FROM v WHERE v.patient),
    ins AS (
        INSERT INTO outbox (referral_id, referral_key, service, kind, doc_version, recipient_role,
                            recipient_ods, decision_id, episode_id, deadline_id)
        SELECT referral_id, referral_key, service, doc_kind, ver, role, ods, decision_id, episode_id, dl
          FROM rows ORDER BY ord, seq
        RETURNING 1),
    ev AS (
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        SELECT v.referral_id, v.ubrn, 'documents-enqueued', 'rasd',
               jsonb_build_object('kind', v.kind, 'version', v.ver,
                                  'rows', (SELECT count(*) FROM rows w WHERE w.ord = v.ord),
                                  'decision_id', v.decision_id, 'episode_id', v.episode_id)
          FROM v ORDER BY v.ord
        RETURNING 1)
    SELECT count(*) INTO n FROM ins;
    RETURN n;
END $$;

-- The one-document form (004's signature), for episodes and callers of old.
CREATE OR REPLACE FUNCTION ras_outbox_enqueue(p_referral bigint, p_service text, p_kind text,
                                              p_decision bigint, p_episode bigint, p_deadline bigint,
                                              p_gp_only boolean, p_patient boolean)
RETURNS int
LANGUAGE sql AS $$
    SELECT ras_outbox_enqueue_all(ARRAY[ROW(p_referral, p_service, p_kind, p_decision, p_episode,
                                            p_deadline, p_gp_only, p_patient)::ras_outbox_letter])
$$;

-- The letters the new decisions call for (as 004's row trigger did, for
-- each decision):
--  * a potential two-week-wait referral (onward to two-week-wait): the GP
--    notice, once per referral version;
--  * a final decision, or any decision a clinician made, that is not
--    "review": the triage outcome letter, after cancelling the letters of
--    earlier decisions that have not gone yet.
-- (decisions_ers_outcome, which fires first, has checked that the
-- statement holds one decision per referral.)
CREATE FUNCTION ras_outbox_on_decisions() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions
AS $$
DECLARE
    v_refs bigint[] := ARRAY(SELECT n.referral_id FROM new_decisions n);
    v_2ww  bigint[];
BEGIN
    -- the referrals that already have a GP notice
    v_2ww := ARRAY(SELECT o.referral_id FROM outbox o
                    WHERE o.referral_id = ANY (v_refs) AND o.kind = 'gp-2ww-notice'
                      AND o.state <> 'cancelled');
    UPDATE outbox o SET state = 'cancelled', last_error = 'superseded by decision ' || n.id,
                        updated_at = now()
      FROM new_decisions n
     WHERE n.outcome <> 'review' AND (n.final OR n.decided_by <> 'rules')
       AND o.referral_id = ANY (v_refs)
       AND o.referral_id = n.referral_id AND o.kind = 'triage-outcome'
       AND o.state IN ('pending', 'ready');
    -- each decision's notice, then its letter
    PERFORM ras_outbox_enqueue_all(ARRAY(
        SELECT l.letter FROM (
            SELECT n.id, 1 AS k,
                   ROW(n.referral_id, n.service, 'gp-2ww-notice', n.id, NULL, NULL, true, false)::ras_outbox_letter
              FROM new_decisions n
             WHERE n.outcome = 'onward' AND n.onward_target = 'two-week-wait'
               AND NOT n.referral_id = ANY (v_2ww)
            UNION ALL
            SELECT n.id, 2,
                   ROW(n.referral_id, n.service, 'triage-outcome', n.id, NULL, NULL, false, false)::ras_outbox_letter
              FROM new_decisions n
             WHERE n.outcome <> 'review' AND (n.final OR n.decided_by <> 'rules')) AS l(id, k, letter)
         ORDER BY l.id, l.k));
    RETURN NULL;
END $$;

DROP TRIGGER decisions_outbox ON decisions;
DROP FUNCTION ras_outbox_on_decision();
CREATE TRIGGER decisions_outbox AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ras_outbox_on_decisions();

-- ---- e-RS outcome intents, a set at a time ----------------------------------------

-- ras_ers_make_intent (003) for many decisions: each that is final (rules
-- with automation) or a clinician's, with an outcome e-RS can record
-- (accept -> ACCEPT_REFER_BOOK_LATER, return -> RETURN_TO_REFERRER_WITH_ADVICE
-- with the advice as reviewComments), on a referral from e-RS, becomes an
-- intent; each intent wakes the outcome stage (NOTIFY rasd_ers_outcome)
-- and is logged.  Returns the intents made.
CREATE FUNCTION ras_ers_make_intents(p_decisions bigint[])
RETURNS TABLE (decision_id bigint, intent_id bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH dd AS (
        SELECT d.id, d.referral_id, d.outcome, d.final, d.decided_by, d.reasons
          FROM decisions d WHERE d.id = ANY (p_decisions)),
    r AS (
        SELECT r.id, r.ubrn, r.version, r.source
          FROM referrals r WHERE r.id = ANY (ARRAY(SELECT dd.referral_id FROM dd))),
    d AS (
        SELECT dd.id, dd.referral_id, dd.outcome, dd.reasons, r.ubrn, r.version
          FROM dd JOIN r ON r.id = dd.referral_id
         WHERE r.ubrn IS NOT NULL AND r.source IN ('ers-worklist', 'ers-referral')
           AND dd.outcome IN ('accept', 'return') AND (dd.final OR dd.decided_by <> 'rules')),
    ins AS (
        INSERT INTO ers_outcomes (decision_id, referral_id, ubrn, version, review_outcome, comments)
        SELECT d.id, d.referral_id, d.ubrn, d.version,
               CASE d.outcome WHEN 'accept' THEN 'ACCEPT_REFER_BOOK_LATER'
                              ELSE 'RETURN_TO_REFERRER_WITH_ADVICE' END,
               (SELECT string_agg(btrim(x.r ->> 'advice'), E'\n\n' ORDER BY x.ord)
                  FROM jsonb_array_elements(d.reasons) WITH ORDINALITY AS x(r, ord)
                 WHERE coalesce(btrim(x.r ->> 'advice'), '') <> '')
          FROM d ORDER BY d.id
        ON CONFLICT (decision_id) DO NOTHING
        RETURNING id, decision_id, referral_id, ubrn, version, review_outcome),
    ev AS (
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        SELECT ins.referral_id, ins.ubrn, 'ers-outcome-queued', 'rasd',
               jsonb_build_object('intent', ins.id, 'decision', ins.decision_id,
                                  'outcome', ins.review_outcome, 'version', ins.version)
          FROM ins ORDER BY ins.id
        RETURNING 1)
    -- each intent wakes the daemon's outcome stage (LISTEN rasd_ers_outcome)
    SELECT ins.decision_id, ins.id
      FROM ins, LATERAL (SELECT pg_notify('rasd_ers_outcome', ins.id::text)) AS n
     ORDER BY ins.id;
END $$;

-- The one-decision form (003's signature; the outcome stage calls it).
CREATE OR REPLACE FUNCTION ras_ers_make_intent(p_decision bigint) RETURNS bigint
LANGUAGE sql AS $$
    SELECT m.intent_id FROM ras_ers_make_intents(ARRAY[p_decision]) m
$$;

-- Any newer decision of a UBRN retires its intents that were not yet sent,
-- then makes its own when it is recordable.
--
-- A statement stores at most one decision per referral (ras_store_decisions
-- takes a batch in rounds for this): what one decision supersedes (clocks,
-- letters, intents), the next one of the same referral must see.  This
-- trigger fires first (decisions_ers_outcome before decisions_outbox) and
-- refuses a statement that does not.
CREATE FUNCTION ras_ers_decisions_intents() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions
AS $$
DECLARE
    v_refs bigint[] := ARRAY(SELECT n.referral_id FROM new_decisions n);
    v_ers  bigint[];
    v_key  text;
BEGIN
    IF cardinality(v_refs) > 1 THEN
        SELECT r.referral_key INTO v_key
          FROM unnest(v_refs) x(id) JOIN referrals r ON r.id = x.id
         WHERE r.id = ANY (v_refs)
         GROUP BY r.referral_key HAVING count(*) > 1 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'two decisions for referral % in one statement', v_key
                USING ERRCODE = 'cardinality_violation';
        END IF;
    END IF;
    WITH r AS (
        SELECT r.id, r.ubrn FROM referrals r WHERE r.id = ANY (v_refs) AND r.ubrn IS NOT NULL),
    nd AS (
        SELECT n.id, r.ubrn FROM new_decisions n JOIN r ON r.id = n.referral_id),
    gone AS (
        UPDATE ers_outcomes o SET state = 'superseded', updated_at = now()
          FROM nd
         WHERE o.ubrn = ANY (ARRAY(SELECT nd.ubrn FROM nd))
           AND o.ubrn = nd.ubrn AND o.state IN ('pending', 'retry')
        RETURNING o.id, o.referral_id, o.ubrn, nd.id AS decision)
    INSERT INTO events (referral_id, ubrn, kind, actor, detail)
    SELECT referral_id, ubrn, 'ers-outcome-superseded', 'rasd',
           jsonb_build_object('intent', id, 'decision', decision)
      FROM gone ORDER BY decision, id;
    -- only a referral from e-RS can get an intent (ras_ers_make_intents
    -- checks again): most batches have none to make
    v_ers := ARRAY(SELECT n.id FROM new_decisions n JOIN referrals r ON r.id = n.referral_id
                    WHERE r.id = ANY (v_refs) AND r.ubrn IS NOT NULL
                      AND r.source IN ('ers-worklist', 'ers-referral')
                    ORDER BY n.id);
    IF cardinality(v_ers) > 0 THEN
        PERFORM 1 FROM ras_ers_make_intents(v_ers);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER decisions_ers_outcome ON decisions;
DROP FUNCTION ras_ers_decision_intent();
CREATE TRIGGER decisions_ers_outcome AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ras_ers_decisions_intents();

-- ---- storing decisions, a batch at a time ------------------------------------------

-- One decision of a batch, as ras_store_decisions reads it (its reasons,
-- facts and list of clocks stay in the batch until they are inserted).
CREATE TYPE ras_decision_in AS (
    ord              int,            -- its place in the batch
    round            int,            -- the how-manieth decision of its referral in the batch
    referral_id      bigint,
    referral_key     text,
    ubrn             text,
    decision_id      bigint,         -- once stored
    service          text,
    outcome          text,
    onward_target    text,
    final            boolean,
    ruleset_version  text,           -- as given (NULL for a clinician unless given)
    decided_by       text,
    decided_at       timestamptz,
    received_at      timestamptz,
    rules            jsonb,          -- [{rule, clause}] of its reasons, for the event
    clocks           jsonb           -- [{kind, clause, due_date, due_at}] to start
);

-- Store a batch of decisions with their clocks.  p_batch is
-- [{referral, doc, deadlines}, ...] in the order they were made: doc is
-- ras_decision_to_json(full), deadlines [{kind, clause, due_date, due_at}].
-- Returns each decision's id by its place in the batch (1-based).  The
-- result is the same as storing them one at a time in that order (as
-- ras_store_decision of 002/010 did); each referral moves to 'decided'
-- (final) or 'review', and the event log gets a triage-decided event
-- naming the decision, its rules, clauses and rule-set version.
--
-- Decisions of different referrals (referral_key: the UBRN, or the local
-- id) touch nothing in common, so each statement below does every referral
-- of the batch at once.  A batch that holds two decisions of one referral
-- (two versions, or a clinician's after the rules') is taken in rounds:
-- round k holds the k-th decision of each referral, in batch order.
--
-- Clocks.  Every clock runs from the receipt of its referral version, so a
-- later decision on the same version mostly starts the same clocks again;
-- what was already met or is still running must not be started twice:
--   * a clinician's decision (decided_by is not 'rules') is the clinical
--     review that the open 'clinical-review' clocks of the referral waited for;
--   * open clocks of the referral's other versions are superseded (cancelled);
--   * open clocks of this version that the new decision does not start
--     (same kind and due time) are cancelled; the ones it starts again keep
--     running as they are (a letter or event already on its way still meets
--     them);
--   * a clock kind this version has already met is not started again (a
--     delivered 2WW notice, a contact the EPR reported);
--   * a final decision meets the triage clock.
CREATE FUNCTION ras_store_decisions(p_batch jsonb)
RETURNS TABLE (ord int, decision_id bigint)
LANGUAGE plpgsql
-- Every lookup in a large table below (and in the triggers and functions
-- it calls) is by an explicit list of ids or keys (= ANY), which an index
-- serves whatever the list's length and the table's size: so the plans are
-- made once per session (and again when ANALYZE updates the statistics),
-- not for every call.  Planning each call (force_custom_plan) cost ~3 ms of
-- CPU per call, most of what a chunk of a few decisions costs; the first
-- version of this function, which joined the batch to referrals, deadlines
-- and outbox instead, got hash joins over sequential scans.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_refs   bigint[];
    v_items  ras_decision_in[];
    v_round  ras_decision_in[];
    v_rids   bigint[];      -- the round's referrals
    v_vids   bigint[];      -- every version of the round's referrals
    v_ids    bigint[];
    v_out    bigint[];
    v_bad    ras_decision_in;
    v_rounds int;
BEGIN
    IF jsonb_typeof(p_batch) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'a batch of decisions is a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_refs := ARRAY(SELECT DISTINCT (b.x ->> 'referral')::bigint FROM jsonb_array_elements(p_batch) b(x));
    -- the referrals, locked in id order (two batches cannot deadlock)
    PERFORM 1 FROM referrals r WHERE r.id = ANY (v_refs) ORDER BY r.id FOR UPDATE;
    v_items := ARRAY(
        WITH r AS (SELECT r.id, r.referral_key, r.ubrn FROM referrals r WHERE r.id = ANY (v_refs))
        SELECT ROW(b.ord, row_number() OVER (PARTITION BY r.referral_key ORDER BY b.ord),
                   (b.x ->> 'referral')::bigint, r.referral_key, r.ubrn, NULL,
                   b.x -> 'doc' ->> 'service', b.x -> 'doc' ->> 'outcome',
                   b.x -> 'doc' ->> 'onward_target',
                   coalesce((b.x -> 'doc' ->> 'final')::boolean, false),
                   b.x -> 'doc' ->> 'ruleset_version',
                   coalesce(b.x -> 'doc' ->> 'decided_by', 'rules'),
                   coalesce((b.x -> 'doc' ->> 'decided_at')::timestamptz, now()),
                   (b.x -> 'doc' ->> 'received_at')::timestamptz,
                   (SELECT coalesce(jsonb_agg(jsonb_build_object('rule', e.v ->> 'rule',
                                                                 'clause', e.v ->> 'clause')), '[]')
                      FROM jsonb_array_elements(coalesce(b.x -> 'doc' -> 'reasons', '[]')) AS e(v)),
                   coalesce(b.x -> 'deadlines', '[]'))::ras_decision_in
          FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(x, ord)
          LEFT JOIN r ON r.id = (b.x ->> 'referral')::bigint
         ORDER BY b.ord);
    SELECT * INTO v_bad FROM unnest(v_items) i
     WHERE i.referral_key IS NULL OR i.service IS NULL OR i.outcome IS NULL
     ORDER BY i.ord LIMIT 1;
    IF FOUND THEN
        IF v_bad.referral_key IS NULL THEN
            RAISE EXCEPTION 'no referral #%', v_bad.referral_id USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'a decision needs a service and an outcome' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_out := array_fill(NULL::bigint, ARRAY[coalesce(array_length(v_items, 1), 0)]);
    SELECT max(i.round) INTO v_rounds FROM unnest(v_items) i;

    FOR k IN 1 .. coalesce(v_rounds, 0) LOOP
        v_round := ARRAY(SELECT i FROM unnest(v_items) i WHERE i.round = k ORDER BY i.ord);
        v_rids := ARRAY(SELECT i.referral_id FROM unnest(v_round) i);
        -- the decisions (their statement triggers queue letters and e-RS intents)
        WITH ins AS (
            INSERT INTO decisions (referral_id, service, outcome, onward_target, final, reasons, facts,
                                   ruleset_version, decided_by, decided_at, received_at, deadlines)
            SELECT i.referral_id, i.service, i.outcome, i.onward_target, i.final,
                   coalesce(p_batch -> (i.ord - 1) -> 'doc' -> 'reasons', '[]'),
                   coalesce(p_batch -> (i.ord - 1) -> 'doc' -> 'facts', '{}'),
                   coalesce(i.ruleset_version, 'clinician'), i.decided_by, i.decided_at, i.received_at,
                   coalesce(p_batch -> (i.ord - 1) -> 'doc' -> 'deadlines', '[]')
              FROM unnest(v_round) i ORDER BY i.ord
            RETURNING id, referral_id)
        SELECT array_agg(ins.id ORDER BY i.ord) INTO v_ids
          FROM ins JOIN unnest(v_round) i ON i.referral_id = ins.referral_id;
        FOR j IN 1 .. array_length(v_round, 1) LOOP
            v_round[j].decision_id := v_ids[j];
            v_out[v_round[j].ord] := v_ids[j];
        END LOOP;
        v_vids := ARRAY(SELECT v.id FROM referrals v
                         WHERE v.referral_key = ANY (ARRAY(SELECT i.referral_key FROM unnest(v_round) i)));

        -- The open clocks of every version of the referral, in one pass:
        -- a clinician's decision meets the clinical-review clocks of every
        -- version; the other versions' open clocks are superseded; this
        -- version's open clocks that the decision does not start again are
        -- cancelled.
        WITH c AS (
            SELECT d.id, i.decided_at, i.decision_id,
                   i.decided_by <> 'rules' AND d.kind = 'clinical-review' AS meet
              FROM deadlines d JOIN referrals v ON v.id = d.referral_id
              JOIN unnest(v_round) i ON i.referral_key = v.referral_key
             WHERE d.referral_id = ANY (v_vids) AND v.id = ANY (v_vids)
               AND d.met_at IS NULL AND d.cancelled_at IS NULL
               AND ((i.decided_by <> 'rules' AND d.kind = 'clinical-review')
                    OR v.id <> i.referral_id
                    OR NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(i.clocks) AS x(kind text, due_at timestamptz)
                                    WHERE x.kind = d.kind AND x.due_at = d.due_at)))
        UPDATE deadlines d
           SET met_at = CASE WHEN c.meet THEN c.decided_at ELSE d.met_at END,
               met_by = CASE WHEN c.meet THEN 'decision:' || c.decision_id ELSE d.met_by END,
               cancelled_at = CASE WHEN c.meet THEN d.cancelled_at ELSE c.decided_at END
          FROM c
         WHERE d.id = c.id;
        -- the clocks it starts, but no clock of a kind already running at
        -- that time or already met
        WITH held AS (
            SELECT d.referral_id, d.kind, d.due_at, d.met_at FROM deadlines d
             WHERE d.referral_id = ANY (v_rids) AND d.cancelled_at IS NULL)
        INSERT INTO deadlines (referral_id, decision_id, kind, clause, due_date, due_at)
        SELECT i.referral_id, i.decision_id, c.kind, c.clause, c.due_date, c.due_at
          FROM unnest(v_round) i,
               ROWS FROM (jsonb_to_recordset(i.clocks)
                          AS (kind text, clause text, due_date date, due_at timestamptz))
               WITH ORDINALITY AS c(kind, clause, due_date, due_at, n)
         WHERE NOT EXISTS (SELECT 1 FROM held h
                            WHERE h.referral_id = i.referral_id AND h.kind = c.kind
                              AND (h.met_at IS NOT NULL OR h.due_at = c.due_at))
         ORDER BY i.ord, c.n;
        -- a final decision meets the triage clock
        UPDATE deadlines d SET met_at = i.decided_at, met_by = 'decision:' || i.decision_id
          FROM unnest(v_round) i
         WHERE d.referral_id = ANY (v_rids) AND d.referral_id = i.referral_id
           AND i.final AND d.kind = 'triage' AND d.met_at IS NULL AND d.cancelled_at IS NULL;

        -- the referrals' states, and the audit trail
        WITH u AS (
            UPDATE referrals r SET state = CASE WHEN i.final THEN 'decided' ELSE 'review' END,
                                   service = i.service, updated_at = now()
              FROM unnest(v_round) i
             WHERE r.id = ANY (v_rids) AND r.id = i.referral_id
            RETURNING r.id)
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        SELECT i.referral_id, i.ubrn, 'triage-decided', i.decided_by, jsonb_build_object(
               'decision_id', i.decision_id, 'service', i.service, 'outcome', i.outcome,
               'onward_target', i.onward_target, 'final', i.final, 'reasons', i.rules,
               'ruleset_version', i.ruleset_version)
          FROM unnest(v_round) i JOIN u ON u.id = i.referral_id ORDER BY i.ord;
    END LOOP;
    RETURN QUERY SELECT o.n::int, o.id FROM unnest(v_out) WITH ORDINALITY AS o(id, n) ORDER BY o.n;
END $$;

-- One decision (002's signature): a batch of one.
CREATE OR REPLACE FUNCTION ras_store_decision(p_referral bigint, p_doc jsonb, p_deadlines jsonb)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT s.decision_id
      FROM ras_store_decisions(jsonb_build_array(jsonb_build_object(
               'referral', p_referral, 'doc', p_doc, 'deadlines', coalesce(p_deadlines, '[]')))) s
$$;
