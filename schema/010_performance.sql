-- 010: constant cost as the tables grow (issue 14).  Every query a stage
-- runs per request, file or batch has an index that serves it; without
-- these, each lookup is a sequential scan whose cost grows with the table.

-- the UBRN a payload created, looked up for every HTTP request and spool
-- file answered (daemon/receive.c, daemon/stages.c): was a sequential scan
-- of referrals, half of all database time at 20,000 referrals.  With id in
-- the key, "WHERE payload_id = x ORDER BY id LIMIT 1" is one index probe
-- (not a walk of the primary key in id order until a match).
CREATE INDEX referrals_payload ON referrals (payload_id, id) WHERE payload_id IS NOT NULL;

-- the render stage's claim (outbox state 'pending', oldest first):
-- outbox_work is ordered by next_attempt_at and also holds every letter
-- ready or waiting to be delivered
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';

-- the deliver stage's claim: rows due ('ready', 'unknown') OR left
-- 'sending' past the lease.  outbox_work cannot serve the OR (the planner
-- reads the whole table, delivered letters included, for every batch);
-- one small index per arm gives a BitmapOr over the working set only.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state IN ('ready', 'unknown');
CREATE INDEX outbox_sending ON outbox (claimed_at) WHERE state = 'sending';

-- ---- write less (issue 14) -------------------------------------------------
-- Measured with scripts/bench --profile: each stored referral wrote a second
-- version of its referrals row only to set the form columns the INSERT had
-- just set, and each decision's event carried the whole facts record a third
-- time (beside decisions.facts and decisions.doc).

-- As in 001, except that the form columns are updated only when they change
-- (a first store has already set them; a merge or a new form may change them).
CREATE OR REPLACE FUNCTION ras_store_referral_parts(p_id bigint, p_doc jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_doc -> 'form' IS NOT NULL AND jsonb_typeof(p_doc -> 'form') = 'object' THEN
        DELETE FROM referral_answers WHERE referral_id = p_id;
        INSERT INTO referral_answers (referral_id, seq, link_id, group_link_id, group_index,
                                      value_type, value_boolean, value_integer, value_decimal,
                                      value_text, value_system, value_code)
        SELECT p_id, a.ord, a.v ->> 'link_id', a.v ->> 'group',
               coalesce((a.v ->> 'group_index')::int, 0), a.v ->> 'type',
               CASE WHEN a.v ->> 'type' = 'boolean' THEN (a.v ->> 'value')::boolean END,
               CASE WHEN a.v ->> 'type' = 'integer' THEN (a.v ->> 'value')::bigint END,
               CASE WHEN a.v ->> 'type' = 'decimal' THEN (a.v ->> 'value')::double precision END,
               CASE WHEN a.v ->> 'type' IN ('string', 'date', 'other') THEN a.v ->> 'value'
                    WHEN a.v ->> 'type' = 'coding' THEN a.v ->> 'display' END,
               a.v ->> 'system', a.v ->> 'code'
          FROM jsonb_array_elements(p_doc -> 'form' -> 'answers') WITH ORDINALITY AS a(v, ord);
        UPDATE referrals SET form_questionnaire = p_doc -> 'form' ->> 'questionnaire',
                             form_version = p_doc -> 'form' ->> 'version'
         WHERE id = p_id
           AND (form_questionnaire IS DISTINCT FROM p_doc -> 'form' ->> 'questionnaire'
                OR form_version IS DISTINCT FROM p_doc -> 'form' ->> 'version');
    END IF;
    IF jsonb_array_length(coalesce(p_doc -> 'conditions', '[]')) > 0 THEN
        DELETE FROM referral_conditions WHERE referral_id = p_id;
        INSERT INTO referral_conditions (referral_id, seq, system, code, display, clinical_status)
        SELECT p_id, c.ord, c.v ->> 'system', c.v ->> 'code', c.v ->> 'display',
               c.v ->> 'clinical_status'
          FROM jsonb_array_elements(p_doc -> 'conditions') WITH ORDINALITY AS c(v, ord);
    END IF;
    INSERT INTO attachments AS t (referral_id, ubrn, url, title, content_type, declared_size,
                                  availability, type, attached_by, attached_by_org)
    SELECT p_id, p_doc ->> 'ubrn', x.v ->> 'url', x.v ->> 'title', x.v ->> 'content_type',
           (x.v ->> 'size')::bigint, x.v ->> 'availability', x.v ->> 'type',
           x.v ->> 'attached_by', x.v ->> 'attached_by_org'
      FROM jsonb_array_elements(coalesce(p_doc -> 'attachments', '[]')) AS x(v)
     WHERE p_doc ->> 'ubrn' IS NOT NULL
    ON CONFLICT (ubrn, url) WHERE ubrn IS NOT NULL DO UPDATE SET
        referral_id  = EXCLUDED.referral_id,
        availability = EXCLUDED.availability,
        title        = coalesce(EXCLUDED.title, t.title),
        content_type = coalesce(EXCLUDED.content_type, t.content_type),
        declared_size= coalesce(EXCLUDED.declared_size, t.declared_size);
END $$;

-- As in 002, except that the triage-decided event names the decision (its
-- decision_id, outcome, rules and clauses, rule-set version) without copying
-- its facts: they are in the decision row, which is append-only like the
-- event log (decisions_no_update).
CREATE OR REPLACE FUNCTION ras_store_decision(p_referral bigint, p_doc jsonb, p_deadlines jsonb)
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
            'ruleset_version', p_doc ->> 'ruleset_version'));
    RETURN v_id;
END $$;
