-- 002 triage: decisions and the clocks they start.
--
-- `decisions` is the hub the later stages hang off: the e-RS client and the
-- document outbox attach their own AFTER INSERT triggers (in their own
-- migrations) to turn a new decision into work.  Rows are never updated or
-- deleted: a re-triage or a clinician's decision adds a row, and the
-- current decision of a referral is its newest row (current_decisions).

CREATE TABLE decisions (
    id               bigserial PRIMARY KEY,
    referral_id      bigint NOT NULL REFERENCES referrals (id),
    service          text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('accept', 'return', 'onward', 'review')),
    onward_target    text,
    final            boolean NOT NULL,
    reasons          jsonb NOT NULL,              -- [{rule, clause, advice, stage}]
    facts            jsonb NOT NULL,              -- the facts the rules used
    ruleset_version  text NOT NULL,               -- content hash of the rule set ("clinician" for people)
    decided_by       text NOT NULL,               -- 'rules', or the SDS user id of the clinician
    decided_at       timestamptz NOT NULL DEFAULT now(),
    doc              jsonb NOT NULL               -- ras_decision_to_json(full)
);
CREATE INDEX decisions_referral ON decisions (referral_id, id DESC);

CREATE TRIGGER decisions_no_update BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION ras_events_append_only();

CREATE VIEW current_decisions AS
    SELECT DISTINCT ON (referral_id) * FROM decisions ORDER BY referral_id, id DESC;

-- Every clock a spec defines.  A working-day deadline is due at the end of
-- its day (UK civil time); an hour clock at its exact instant.  met_at is
-- set by whatever meets it (a decision, a delivered letter, an EPR event).
CREATE TABLE deadlines (
    id            bigserial PRIMARY KEY,
    referral_id   bigint NOT NULL REFERENCES referrals (id),
    decision_id   bigint REFERENCES decisions (id),
    kind          text NOT NULL,                 -- triage, return, onward, gp-notification, contact, …
    clause        text,
    due_date      date NOT NULL,
    due_at        timestamptz NOT NULL,
    met_at        timestamptz,
    met_by        text,                          -- what met it (decision id, outbox id, event)
    cancelled_at  timestamptz,                   -- superseded by a later decision
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Open clocks by due time (status, metrics, breach checks: their WHERE always
-- bounds due_at).  "due_at IS NOT NULL" is always true but keeps this index
-- out of plans that select a referral's open clocks: with stale statistics
-- (a young table) the planner otherwise walks every open clock for each
-- decision instead of using deadlines_open_referral below.
CREATE INDEX deadlines_open ON deadlines (due_at)
    WHERE met_at IS NULL AND cancelled_at IS NULL AND due_at IS NOT NULL;
CREATE INDEX deadlines_referral ON deadlines (referral_id, kind);

-- ---- triage (issue 3): storing decisions, referral states, re-triage ------
--
-- Referral states after triage (001 lists every state; README "Triage"):
--   new          ready for triage (set by the store, or by a re-triage)
--   decided      the current decision is final (made by the rules under the
--                service's automation level, or by a clinician)
--   review       the current decision is a recommendation or a review: a
--                clinician or the MDT must decide
--   unassigned   no rasd service could be given to the referral
--   triage-failed the referral could not be triaged (its stored document is
--                unreadable); the event log says why
-- The current decision is always the newest decisions row.

CREATE INDEX decisions_version ON decisions (service, ruleset_version);
CREATE INDEX deadlines_decision ON deadlines (decision_id);
-- A new decision supersedes the open clocks of its referral: without this,
-- a plan made while the table was small walks deadlines_open (every open
-- clock) for each decision, and the stage slows as the backlog grows.
CREATE INDEX deadlines_open_referral ON deadlines (referral_id)
    WHERE met_at IS NULL AND cancelled_at IS NULL;
-- rasctl ingest triages the referrals its payloads touched (events.payload_id).
CREATE INDEX events_payload ON events (payload_id) WHERE payload_id IS NOT NULL;

-- Store one decision with its clocks, in one statement the triage stage can
-- pipeline.  p_doc is ras_decision_to_json(full); p_deadlines is
-- [{kind, clause, due_date, due_at}].  The referral moves to 'decided'
-- (final) or 'review', and the event log gets the rules, clauses and facts.
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
CREATE FUNCTION ras_store_decision(p_referral bigint, p_doc jsonb, p_deadlines jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ref    referrals%ROWTYPE;
    v_id     bigint;
    v_final  boolean := coalesce((p_doc ->> 'final')::boolean, false);
    v_at     timestamptz := coalesce((p_doc ->> 'decided_at')::timestamptz, now());
    v_by     text := coalesce(p_doc ->> 'decided_by', 'rules');
    v_version bigint;
BEGIN
    SELECT * INTO v_ref FROM referrals WHERE id = p_referral FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no referral #%', p_referral USING ERRCODE = 'no_data_found';
    END IF;
    IF p_doc ->> 'service' IS NULL OR p_doc ->> 'outcome' IS NULL THEN
        RAISE EXCEPTION 'a decision needs a service and an outcome' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO decisions (referral_id, service, outcome, onward_target, final, reasons, facts,
                           ruleset_version, decided_by, decided_at, doc)
    VALUES (p_referral, p_doc ->> 'service', p_doc ->> 'outcome', p_doc ->> 'onward_target', v_final,
            coalesce(p_doc -> 'reasons', '[]'), coalesce(p_doc -> 'facts', '{}'),
            coalesce(p_doc ->> 'ruleset_version', 'clinician'), v_by, v_at, p_doc)
    RETURNING id INTO v_id;

    -- One version at a time, by equality: a join or "= ANY" here gets a plan,
    -- cached while the table was small, that walks every open deadline for
    -- each decision, and the stage slows down as the backlog grows.
    FOREACH v_version IN ARRAY ARRAY(SELECT r.id FROM referrals r
                                      WHERE r.referral_key = v_ref.referral_key) LOOP
        IF v_by <> 'rules' THEN
            UPDATE deadlines d SET met_at = v_at, met_by = 'decision:' || v_id
             WHERE d.referral_id = v_version AND d.kind = 'clinical-review'
               AND d.met_at IS NULL AND d.cancelled_at IS NULL;
        END IF;
        IF v_version <> p_referral THEN
            UPDATE deadlines d SET cancelled_at = v_at
             WHERE d.referral_id = v_version AND d.met_at IS NULL AND d.cancelled_at IS NULL;
        END IF;
    END LOOP;
    UPDATE deadlines d SET cancelled_at = v_at
     WHERE d.referral_id = p_referral AND d.met_at IS NULL AND d.cancelled_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(coalesce(p_deadlines, '[]'))
                              AS x(kind text, due_at timestamptz)
                        WHERE x.kind = d.kind AND x.due_at = d.due_at);
    INSERT INTO deadlines (referral_id, decision_id, kind, clause, due_date, due_at)
    SELECT p_referral, v_id, x.kind, x.clause, x.due_date, x.due_at
      FROM jsonb_to_recordset(coalesce(p_deadlines, '[]'))
           AS x(kind text, clause text, due_date date, due_at timestamptz)
     WHERE NOT EXISTS (SELECT 1 FROM deadlines d
                        WHERE d.referral_id = p_referral AND d.kind = x.kind
                          AND d.cancelled_at IS NULL
                          AND (d.met_at IS NOT NULL OR d.due_at = x.due_at));
    IF v_final THEN
        UPDATE deadlines d SET met_at = v_at, met_by = 'decision:' || v_id
         WHERE d.referral_id = p_referral AND d.kind = 'triage'
           AND d.met_at IS NULL AND d.cancelled_at IS NULL;
    END IF;

    UPDATE referrals SET state = CASE WHEN v_final THEN 'decided' ELSE 'review' END,
                         service = p_doc ->> 'service', updated_at = now()
     WHERE id = p_referral;
    INSERT INTO events (referral_id, ubrn, kind, actor, detail)
    VALUES (p_referral, v_ref.ubrn, 'triage-decided', v_by, jsonb_build_object(
            'decision_id', v_id, 'service', p_doc ->> 'service', 'outcome', p_doc ->> 'outcome',
            'onward_target', p_doc ->> 'onward_target', 'final', v_final,
            'reasons', (SELECT coalesce(jsonb_agg(jsonb_build_object('rule', x ->> 'rule',
                                                                     'clause', x ->> 'clause')), '[]')
                          FROM jsonb_array_elements(coalesce(p_doc -> 'reasons', '[]')) x),
            'ruleset_version', p_doc ->> 'ruleset_version',
            'facts', coalesce(p_doc -> 'facts', '{}')));
    RETURN v_id;
END $$;

-- A referral waiting for a clinician goes back to triage when its referral
-- form arrives or changes (an e-RS form attachment stored by ras_store_form):
-- the rules can now check what only a person could before.  A referral with
-- a final decision is left alone (e-RS may already have been told).
CREATE FUNCTION ras_triage_form_requeue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'review' AND NEW.state = 'review'
       AND (NEW.doc -> 'form') IS DISTINCT FROM (OLD.doc -> 'form') THEN
        NEW.state := 'new';
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        VALUES (NEW.id, NEW.ubrn, 'triage-requeued', 'rasd',
                jsonb_build_object('reason', 'referral form received or changed'));
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER referrals_form_requeue BEFORE UPDATE OF doc ON referrals
    FOR EACH ROW EXECUTE FUNCTION ras_triage_form_requeue();
