-- 016: storing referrals and decisions at a smaller cost per call (issue
-- 14, fourth round; docs/design/performance.md, "Storing referrals and
-- decisions: a smaller cost per call").
--
-- Measured with scripts/bench --profile (pg_stat_statements, nested
-- statements): a ras_store_decisions call ran 14 statements of its own and
-- 13 in the triggers and functions it set off, whatever the batch's size;
-- a group of 8 HTTP referrals paid them all.  What each stores is
-- unchanged (the same rows, columns, events, letters and intents, in the
-- same order; the same locks, taken in the same order; the same errors);
-- only the statements that do it are fewer (12 in all for a batch with one
-- decision per referral and no e-RS referral):
--   * ras_store_decisions: the batch is read and its referrals locked in
--     id order in one statement; the checks and the number of rounds in
--     one more; then, per round, the INSERT of the decisions and ONE
--     statement for the clocks (of every version of the referrals), the
--     referrals' states and the triage-decided events (014: eight per
--     round).  A batch with one decision per referral is one round, taken
--     as it is.  The triage clock a final decision starts is inserted met,
--     instead of inserted and then updated (one row version less).
--   * ras_outbox_on_decisions: the GP notices a referral already has are
--     looked up inside the statement that queues the letters.
--   * ras_outbox_enqueue_all: the referrals locked, checked and their keys
--     listed in one statement (was four).
--   * ras_ers_decisions_intents: the referrals read once (014: three
--     times), and the intents superseded without joining them again.
--   * ras_store_referrals keeps its plans for the session, as the decisions
--     functions do: it was planned again at calls, with the whole batch
--     (~5 KB a referral) copied into the plans as a constant.
-- And per row: the referral's document and the decision's reasons, facts
-- and clocks are compressed with lz4 where the server has it (as 015 did
-- for the letters): compressing each document with pglz was a sixth of
-- what storing a referral cost.  The values are the same; rows stored
-- before keep pglz.

-- ---- storing decisions, a batch at a time -------------------------------------
-- As in 014 (its comment says what is stored); here only how.
CREATE OR REPLACE FUNCTION ras_store_decisions(p_batch jsonb)
RETURNS TABLE (ord int, decision_id bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see 014
AS $$
#variable_conflict use_column
DECLARE
    v_items  ras_decision_in[];
    v_round  ras_decision_in[];
    v_ids    bigint[];
    v_out    bigint[];
    v_bad    int;
    v_rounds int;
BEGIN
    IF jsonb_typeof(p_batch) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'a batch of decisions is a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the referrals, locked in id order (two batches cannot deadlock), and
    -- the decisions as read
    WITH b AS (
        SELECT b.x, b.ord, (b.x ->> 'referral')::bigint AS rid
          FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(x, ord)),
    r AS MATERIALIZED (
        SELECT r.id, r.referral_key, r.ubrn FROM referrals r
         WHERE r.id = ANY (ARRAY(SELECT DISTINCT b.rid FROM b))
         ORDER BY r.id FOR UPDATE)
    SELECT ARRAY(
               SELECT ROW(b.ord, row_number() OVER (PARTITION BY r.referral_key ORDER BY b.ord),
                          b.rid, r.referral_key, r.ubrn, NULL,
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
                 FROM b LEFT JOIN r ON r.id = b.rid
                ORDER BY b.ord)
      INTO v_items;
    -- (v_items[k] is the k-th decision of the batch)
    SELECT min(i.ord) FILTER (WHERE i.referral_key IS NULL OR i.service IS NULL OR i.outcome IS NULL),
           max(i.round)
      INTO v_bad, v_rounds
      FROM unnest(v_items) i;
    IF v_bad IS NOT NULL THEN
        IF v_items[v_bad].referral_key IS NULL THEN
            RAISE EXCEPTION 'no referral #%', v_items[v_bad].referral_id USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'a decision needs a service and an outcome' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_out := array_fill(NULL::bigint, ARRAY[coalesce(array_length(v_items, 1), 0)]);

    FOR k IN 1 .. coalesce(v_rounds, 0) LOOP
        -- one decision per referral (the common case) is one round: the batch
        IF v_rounds = 1 THEN
            v_round := v_items;
        ELSE
            v_round := ARRAY(SELECT i FROM unnest(v_items) i WHERE i.round = k ORDER BY i.ord);
        END IF;
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

        -- Then, in one statement, what 014 did in four, to the same rows:
        --  * open: the open clocks of every version of the round's referrals.
        --    A clinician's decision meets the clinical-review clocks of every
        --    version; the other versions' open clocks are superseded; this
        --    version's open clocks that the decision does not start again are
        --    cancelled; and a final decision meets this version's open triage
        --    clock that it starts again (014 met it after the insert).
        --  * held: this version's clocks as 014 read them between its cancel
        --    and its insert (none of those cancelled here; the clinical-review
        --    clocks met here count as met, the triage clocks met here as still
        --    running, as they were then): the decision starts no clock of a
        --    kind already running at that time or already met.
        --  * the clocks it starts; a final decision's triage clock is
        --    inserted met (014 inserted it, then met it).
        --  * the referrals' states, and the audit trail.
        -- The data-modifying parts touch different rows (an open clock is
        -- either updated or counted in held; new clocks are new rows), and
        -- every part reads the clocks as they were before the statement.
        WITH i AS (SELECT * FROM unnest(v_round)),
        vids AS (
            SELECT v.id, v.referral_key FROM referrals v
             WHERE v.referral_key = ANY (ARRAY(SELECT i.referral_key FROM i))),
        open AS (
            SELECT d.id, i.decided_at, i.decision_id,
                   i.decided_by <> 'rules' AND d.kind = 'clinical-review' AS review,
                   v.id <> i.referral_id
                   OR NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(i.clocks) AS x(kind text, due_at timestamptz)
                                   WHERE x.kind = d.kind AND x.due_at = d.due_at) AS cancel,
                   i.final AND d.kind = 'triage' AND v.id = i.referral_id AS triage
              FROM deadlines d JOIN vids v ON v.id = d.referral_id
              JOIN i ON i.referral_key = v.referral_key
             WHERE d.referral_id = ANY (ARRAY(SELECT v.id FROM vids v))
               AND d.met_at IS NULL AND d.cancelled_at IS NULL),
        act AS (
            SELECT o.id, o.decided_at, o.decision_id, o.review,
                   o.review OR NOT o.cancel AS meet
              FROM open o WHERE o.review OR o.cancel OR o.triage),
        changed AS (
            UPDATE deadlines d
               SET met_at = CASE WHEN a.meet THEN a.decided_at ELSE d.met_at END,
                   met_by = CASE WHEN a.meet THEN 'decision:' || a.decision_id ELSE d.met_by END,
                   cancelled_at = CASE WHEN a.meet THEN d.cancelled_at ELSE a.decided_at END
              FROM act a
             WHERE d.id = a.id),
        held AS (
            SELECT d.referral_id, d.kind, d.due_at, d.met_at IS NOT NULL OR coalesce(a.review, false) AS met
              FROM deadlines d LEFT JOIN act a ON a.id = d.id
             WHERE d.referral_id = ANY (ARRAY(SELECT i.referral_id FROM i)) AND d.cancelled_at IS NULL
               AND (a.id IS NULL OR a.meet)),
        started AS (
            INSERT INTO deadlines (referral_id, decision_id, kind, clause, due_date, due_at, met_at, met_by)
            SELECT i.referral_id, i.decision_id, c.kind, c.clause, c.due_date, c.due_at,
                   CASE WHEN i.final AND c.kind = 'triage' THEN i.decided_at END,
                   CASE WHEN i.final AND c.kind = 'triage' THEN 'decision:' || i.decision_id END
              FROM i,
                   ROWS FROM (jsonb_to_recordset(i.clocks)
                              AS (kind text, clause text, due_date date, due_at timestamptz))
                   WITH ORDINALITY AS c(kind, clause, due_date, due_at, n)
             WHERE NOT EXISTS (SELECT 1 FROM held h
                                WHERE h.referral_id = i.referral_id AND h.kind = c.kind
                                  AND (h.met OR h.due_at = c.due_at))
             ORDER BY i.ord, c.n),
        u AS (
            UPDATE referrals r SET state = CASE WHEN i.final THEN 'decided' ELSE 'review' END,
                                   service = i.service, updated_at = now()
              FROM i
             WHERE r.id = ANY (ARRAY(SELECT i.referral_id FROM i)) AND r.id = i.referral_id
            RETURNING r.id)
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        SELECT i.referral_id, i.ubrn, 'triage-decided', i.decided_by, jsonb_build_object(
               'decision_id', i.decision_id, 'service', i.service, 'outcome', i.outcome,
               'onward_target', i.onward_target, 'final', i.final, 'reasons', i.rules,
               'ruleset_version', i.ruleset_version)
          FROM i JOIN u ON u.id = i.referral_id ORDER BY i.ord;
    END LOOP;
    RETURN QUERY SELECT o.n::int, o.id FROM unnest(v_out) WITH ORDINALITY AS o(id, n) ORDER BY o.n;
END $$;

-- ---- the letters of new decisions ----------------------------------------------
-- As in 014.  The referrals that already have a GP notice are looked up in
-- the statement that queues the letters (the cancelling before it touches
-- triage-outcome letters only, so it reads what 014 read before it).
CREATE OR REPLACE FUNCTION ras_outbox_on_decisions() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions (014)
AS $$
BEGIN
    UPDATE outbox o SET state = 'cancelled', last_error = 'superseded by decision ' || n.id,
                        updated_at = now()
      FROM new_decisions n
     WHERE n.outcome <> 'review' AND (n.final OR n.decided_by <> 'rules')
       AND o.referral_id = ANY (ARRAY(SELECT m.referral_id FROM new_decisions m))
       AND o.referral_id = n.referral_id AND o.kind = 'triage-outcome'
       AND o.state IN ('pending', 'ready');
    -- each decision's notice, then its letter
    PERFORM ras_outbox_enqueue_all(ARRAY(
        SELECT l.letter FROM (
            SELECT n.id, 1 AS k,
                   ROW(n.referral_id, n.service, 'gp-2ww-notice', n.id, NULL, NULL, true, false)::ras_outbox_letter
              FROM new_decisions n
             WHERE n.outcome = 'onward' AND n.onward_target = 'two-week-wait'
               AND NOT n.referral_id = ANY (ARRAY(
                       SELECT o.referral_id FROM outbox o
                        WHERE o.referral_id = ANY (ARRAY(SELECT m.referral_id FROM new_decisions m))
                          AND o.kind = 'gp-2ww-notice' AND o.state <> 'cancelled'))
            UNION ALL
            SELECT n.id, 2,
                   ROW(n.referral_id, n.service, 'triage-outcome', n.id, NULL, NULL, false, false)::ras_outbox_letter
              FROM new_decisions n
             WHERE n.outcome <> 'review' AND (n.final OR n.decided_by <> 'rules')) AS l(id, k, letter)
         ORDER BY l.id, l.k));
    RETURN NULL;
END $$;

-- As in 014: the referrals locked in id order, every letter's referral
-- checked, and their keys listed, in one statement (014: four).
CREATE OR REPLACE FUNCTION ras_outbox_enqueue_all(p_letters ras_outbox_letter[])
RETURNS int
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions (014)
AS $$
DECLARE
    v_found   bigint[];
    v_keys    text[];
    v_missing boolean;
    v_which   bigint;
    n         int;
BEGIN
    -- every lookup below is by an explicit list of ids or keys, so that it
    -- is an index scan whatever join the planner picks
    WITH f AS MATERIALIZED (
        SELECT r.id, r.referral_key FROM referrals r
         WHERE r.id = ANY (ARRAY(SELECT DISTINCT l.referral_id FROM unnest(p_letters) l))
         ORDER BY r.id FOR UPDATE),
    m AS (
        SELECT l.referral_id FROM unnest(p_letters) WITH ORDINALITY AS l
         WHERE l.referral_id IS NULL OR NOT EXISTS (SELECT 1 FROM f WHERE f.id = l.referral_id)
         ORDER BY l.ordinality LIMIT 1)
    SELECT ARRAY(SELECT f.id FROM f ORDER BY f.id), ARRAY(SELECT DISTINCT f.referral_key FROM f),
           EXISTS (SELECT 1 FROM m), (SELECT m.referral_id FROM m)
      INTO v_found, v_keys, v_missing, v_which;
    IF v_missing THEN
        RAISE EXCEPTION 'no referral %', v_which USING ERRCODE = 'no_data_found';
    END IF;
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

-- ---- e-RS outcome intents of new decisions ---------------------------------------
-- As in 014, from one read of the referrals (014: three): the refusal of
-- two decisions of one referral in one statement, the decisions whose
-- referral has a UBRN (whose pending intents they supersede) and those on
-- referrals from e-RS (which may make one).  The superseding statement
-- then reads ers_outcomes alone: in scripts/bench, 014's form of it
-- (joining the transition table to referrals again) read referrals whole,
-- once per decision, in sessions whose plan was made while the table was
-- small.
CREATE OR REPLACE FUNCTION ras_ers_decisions_intents() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan -- see ras_store_decisions (014)
AS $$
DECLARE
    v_refs  bigint[] := ARRAY(SELECT n.referral_id FROM new_decisions n);
    v_twice boolean;
    v_key   text;
    v_ids   bigint[];       -- the decisions whose referral has a UBRN ...
    v_ubrns text[];         -- ... and that UBRN
    v_ers   bigint[];
BEGIN
    WITH r AS MATERIALIZED (
        SELECT r.id, r.referral_key, r.ubrn, r.source FROM referrals r WHERE r.id = ANY (v_refs)),
    twice AS (
        SELECT r.referral_key FROM unnest(v_refs) x(id) JOIN r ON r.id = x.id
         GROUP BY r.referral_key HAVING count(*) > 1 LIMIT 1),
    nd AS (
        SELECT n.id, r.ubrn, r.source FROM new_decisions n JOIN r ON r.id = n.referral_id
         WHERE r.ubrn IS NOT NULL)
    SELECT EXISTS (SELECT 1 FROM twice), (SELECT t.referral_key FROM twice t),
           ARRAY(SELECT nd.id FROM nd ORDER BY nd.id), ARRAY(SELECT nd.ubrn FROM nd ORDER BY nd.id),
           ARRAY(SELECT nd.id FROM nd WHERE nd.source IN ('ers-worklist', 'ers-referral') ORDER BY nd.id)
      INTO v_twice, v_key, v_ids, v_ubrns, v_ers;
    IF v_twice THEN
        RAISE EXCEPTION 'two decisions for referral % in one statement', v_key
            USING ERRCODE = 'cardinality_violation';
    END IF;
    IF cardinality(v_ids) > 0 THEN
        WITH nd AS (
            SELECT * FROM unnest(v_ids, v_ubrns) AS nd(id, ubrn)),
        gone AS (
            UPDATE ers_outcomes o SET state = 'superseded', updated_at = now()
              FROM nd
             WHERE o.ubrn = ANY (v_ubrns)
               AND o.ubrn = nd.ubrn AND o.state IN ('pending', 'retry')
            RETURNING o.id, o.referral_id, o.ubrn, nd.id AS decision)
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        SELECT referral_id, ubrn, 'ers-outcome-superseded', 'rasd',
               jsonb_build_object('intent', id, 'decision', decision)
          FROM gone ORDER BY decision, id;
    END IF;
    -- only a referral from e-RS can get an intent (ras_ers_make_intents
    -- checks again): most batches have none to make
    IF cardinality(v_ers) > 0 THEN
        PERFORM 1 FROM ras_ers_make_intents(v_ers);
    END IF;
    RETURN NULL;
END $$;

-- ---- referrals: plans kept for the session ---------------------------------------
-- Every statement of ras_store_referrals (013) reads the batch through
-- jsonb_array_elements and finds stored rows by key or id (index probes,
-- LATERAL ... LIMIT 1), so one plan serves every batch size.  Planned per
-- call (the default for the first calls, and whenever the planner thinks a
-- custom plan cheaper), the batch was copied as a constant into the plans:
-- ~6% of the instructions of a call of 8 referrals (callgrind).
ALTER FUNCTION ras_store_referrals(jsonb) SET plan_cache_mode = force_generic_plan;

-- ---- lz4 for the documents a referral and a decision store -----------------------
-- scripts/bench --profile, callgrind of the backend: pglz was ~17% of the
-- instructions of ras_store_referrals (a ~5 KB document per referral) and
-- ~8% of ras_store_decisions (facts); lz4 does the same in a fraction.  A
-- server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE referrals ALTER COLUMN doc SET COMPRESSION lz4;
    ALTER TABLE decisions ALTER COLUMN reasons SET COMPRESSION lz4,
                          ALTER COLUMN facts SET COMPRESSION lz4,
                          ALTER COLUMN deadlines SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: referrals and decisions stay compressed with pglz';
END $$;
