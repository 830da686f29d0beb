-- 004 documents: episode summaries from the EPR, the outbox of documents to
-- send (one row per document and recipient), the log of every delivery
-- attempt, and the MESH inbox log (delivery reports and error messages).
--
-- Letters are enqueued by triggers, in the transaction that made the
-- decision or stored the episode, so a decision can never be recorded
-- without its letters: an AFTER INSERT trigger on `decisions` (the hub of
-- 002) enqueues the triage outcome letter for a final or clinician's
-- decision and the same-day 2WW GP notice; ras_outbox_episode() stores an
-- episode summary and enqueues the notification letter or discharge
-- summary.  Rows start 'pending'; the render stage (lib/outbox.c) builds the
-- document and resolves the route ('ready'); the deliver stage sends it
-- ('sending' while a transfer is in flight, 'unknown' when its outcome is
-- unknown, then 'delivered'), retrying with back-off until 'dead'.

CREATE TABLE episodes (
    id           bigserial PRIMARY KEY,
    referral_id  bigint NOT NULL REFERENCES referrals (id),
    kind         text NOT NULL CHECK (kind IN ('contact', 'discharge')),
    event_date   date NOT NULL,                 -- the contact date, or the discharge date
    doc          jsonb NOT NULL,                -- the episode-summary QuestionnaireResponse
    received_at  timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL                  -- rasd, rasctl, or an SDS user id
);
CREATE INDEX episodes_referral ON episodes (referral_id, id);

CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    referral_id      bigint NOT NULL REFERENCES referrals (id),
    referral_key     text NOT NULL,
    service          text,
    kind             text NOT NULL CHECK (kind IN ('triage-outcome', 'gp-2ww-notice',
                          'notification-letter', 'discharge-summary', 'patient-copy')),
    doc_version      int NOT NULL CHECK (doc_version > 0),
    recipient_role   text NOT NULL CHECK (recipient_role IN ('referrer', 'gp', 'patient')),
    recipient_ods    text,
    decision_id      bigint REFERENCES decisions (id),
    episode_id       bigint REFERENCES episodes (id),
    deadline_id      bigint REFERENCES deadlines (id),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'ready', 'sending', 'unknown', 'delivered',
                                      'dead', 'cancelled')),
    transport        text CHECK (transport IN ('mesh', 'fhir', 'file')),
    address          text,                      -- MESH mailbox (or GPPROVIDER_…), FHIR base URL, directory
    workflow         text,                      -- MESH workflow id
    fhir_mode        text CHECK (fhir_mode IN ('message', 'document')),
    document_id      text,                      -- Bundle.identifier: the receivers' de-duplication key
    message_id       text,                      -- message Bundle id: the same on every resend
    local_id         text UNIQUE,               -- mex-LocalID: outbox id plus a random suffix, no patient data
    content_type     text,
    payload          bytea,                     -- exactly the bytes sent
    doc              jsonb,                     -- the document Bundle
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    mesh_message_id  text,
    mesh_chunks_done int NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    rendered_at      timestamptz,
    delivered_at     timestamptz,
    acknowledged_at  timestamptz,               -- MESH: the recipient collected it (report or tracking)
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (referral_key, kind, doc_version, recipient_role)
);
CREATE INDEX outbox_work ON outbox (next_attempt_at, id)
    WHERE state IN ('pending', 'ready', 'sending', 'unknown');
CREATE INDEX outbox_referral ON outbox (referral_id, kind);
CREATE INDEX outbox_mesh ON outbox (mesh_message_id) WHERE mesh_message_id IS NOT NULL;
CREATE INDEX outbox_dead ON outbox (updated_at) WHERE state = 'dead';

CREATE FUNCTION ras_outbox_local_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.local_id IS NULL THEN
        NEW.local_id := 'rasd-' || NEW.id || '-' || substr(md5(random()::text || clock_timestamp()::text), 1, 8);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_local_id BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION ras_outbox_local_id();

-- Every delivery attempt and what came of it (no patient data).
CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    outbox_id        bigint NOT NULL REFERENCES outbox (id),
    attempt          int NOT NULL,
    at               timestamptz NOT NULL,
    transport        text NOT NULL,
    action           text NOT NULL,             -- send, chunk, track, post, write, report
    http_status      int,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'progress', 'retry', 'unknown',
                                                      'dead', 'acknowledged')),
    detail           text,
    mesh_message_id  text,
    seconds          double precision
);
CREATE INDEX deliveries_outbox ON deliveries (outbox_id, id);

-- Messages collected from rasd's own MESH inbox.
CREATE TABLE mesh_inbox (
    message_id       text PRIMARY KEY,
    mailbox          text NOT NULL,
    message_type     text,                      -- DATA, REPORT
    workflow         text,
    local_id         text,
    linked_message_id text,
    status_code      text,
    status_event     text,
    status_success   text,
    description      text,
    outbox_id        bigint REFERENCES outbox (id),
    payload_id       bigint REFERENCES inbox (id),
    received_at      timestamptz NOT NULL,
    acknowledged_at  timestamptz
);

-- Enqueue one document for a referral: a row for the referrer, and one for
-- the GP practice when the referrer is not the GP (p_gp_only: the GP alone,
-- or the referrer when no practice is known), plus the patient's printable
-- copy when asked.  A referrer without an ODS code (a bare Practitioner as
-- requester) is taken to be at the patient's registered practice.
-- Documents are versioned per (referral, kind): a new decision's letter is
-- version 2, replacing version 1.
CREATE FUNCTION ras_outbox_enqueue(p_referral bigint, p_service text, p_kind text,
                                   p_decision bigint, p_episode bigint, p_deadline bigint,
                                   p_gp_only boolean, p_patient boolean)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r      referrals%ROWTYPE;
    v_ver  int;
    v_ref  text;
    n      int := 0;
BEGIN
    SELECT * INTO r FROM referrals WHERE id = p_referral FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no referral %', p_referral USING ERRCODE = 'no_data_found';
    END IF;
    SELECT coalesce(max(doc_version), 0) + 1 INTO v_ver
      FROM outbox WHERE referral_key = r.referral_key AND kind = p_kind;
    v_ref := coalesce(r.referrer_ods, r.registered_practice);
    IF NOT p_gp_only OR r.registered_practice IS NULL THEN
        INSERT INTO outbox (referral_id, referral_key, service, kind, doc_version, recipient_role,
                            recipient_ods, decision_id, episode_id, deadline_id)
        VALUES (p_referral, r.referral_key, p_service, p_kind, v_ver, 'referrer', v_ref,
                p_decision, p_episode, p_deadline);
        n := n + 1;
    END IF;
    IF r.registered_practice IS NOT NULL
       AND (p_gp_only OR v_ref IS DISTINCT FROM r.registered_practice) THEN
        INSERT INTO outbox (referral_id, referral_key, service, kind, doc_version, recipient_role,
                            recipient_ods, decision_id, episode_id, deadline_id)
        VALUES (p_referral, r.referral_key, p_service, p_kind, v_ver, 'gp', r.registered_practice,
                p_decision, p_episode, p_deadline);
        n := n + 1;
    END IF;
    IF p_patient THEN
        INSERT INTO outbox (referral_id, referral_key, service, kind, doc_version, recipient_role,
                            decision_id, episode_id, deadline_id)
        VALUES (p_referral, r.referral_key, p_service, 'patient-copy', v_ver, 'patient',
                p_decision, p_episode, NULL);
        n := n + 1;
    END IF;
    INSERT INTO events (referral_id, ubrn, kind, actor, detail)
    VALUES (p_referral, r.ubrn, 'documents-enqueued', 'rasd',
            jsonb_build_object('kind', p_kind, 'version', v_ver, 'rows', n,
                               'decision_id', p_decision, 'episode_id', p_episode));
    RETURN n;
END $$;

-- The letters a decision calls for.
--  * A potential two-week-wait referral (onward to two-week-wait): the GP
--    is told the same day (004 §3.6 2(d)), whether or not the decision is
--    final yet; once per referral version.  The same-day clock is the rule
--    set's own `gp-notification` deadline (one clock, started by triage),
--    met when the notice is delivered (outbox_deadline_meets).  A service
--    whose specification has no such notice cancels the row when it is
--    rendered; its GP is then told by the triage outcome letter.
--  * A final decision, or any decision a clinician made, that is not
--    "review": the triage outcome letter.  Letters of an earlier decision
--    that have not gone yet are cancelled: the newer decision supersedes.
CREATE FUNCTION ras_outbox_on_decision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcome = 'onward' AND NEW.onward_target = 'two-week-wait'
       AND NOT EXISTS (SELECT 1 FROM outbox WHERE referral_id = NEW.referral_id
                          AND kind = 'gp-2ww-notice' AND state <> 'cancelled') THEN
        PERFORM ras_outbox_enqueue(NEW.referral_id, NEW.service, 'gp-2ww-notice', NEW.id, NULL,
                                   NULL, true, false);
    END IF;
    IF NEW.outcome <> 'review' AND (NEW.final OR NEW.decided_by <> 'rules') THEN
        UPDATE outbox SET state = 'cancelled', last_error = 'superseded by decision ' || NEW.id,
                          updated_at = now()
         WHERE referral_id = NEW.referral_id AND kind = 'triage-outcome'
           AND state IN ('pending', 'ready');
        PERFORM ras_outbox_enqueue(NEW.referral_id, NEW.service, 'triage-outcome', NEW.id, NULL,
                                   NULL, false, false);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER decisions_outbox AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION ras_outbox_on_decision();

-- Store an episode summary and enqueue its document with its deadline
-- (computed by the caller from the service's profile and the working-day
-- calendar: notification letter 3 operational days after the contact,
-- discharge summary 5 working days after discharge).
CREATE FUNCTION ras_outbox_episode(p_referral bigint, p_service text, p_kind text,
                                   p_event_date date, p_doc jsonb, p_due date, p_clause text,
                                   p_patient_copy boolean, p_actor text, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_episode  bigint;
    v_deadline bigint;
    v_doc_kind text := CASE p_kind WHEN 'contact' THEN 'notification-letter'
                                   ELSE 'discharge-summary' END;
BEGIN
    INSERT INTO episodes (referral_id, kind, event_date, doc, received_at, actor)
    VALUES (p_referral, p_kind, p_event_date, p_doc, p_at, p_actor)
    RETURNING id INTO v_episode;
    IF p_due IS NOT NULL THEN
        INSERT INTO deadlines (referral_id, kind, clause, due_date, due_at)
        VALUES (p_referral, v_doc_kind, p_clause, p_due,
                -- the last second of the due day, as the rule sets' clocks (002)
                (p_due + 1)::timestamp AT TIME ZONE 'Europe/London' - interval '1 second')
        RETURNING id INTO v_deadline;
    END IF;
    PERFORM ras_outbox_enqueue(p_referral, p_service, v_doc_kind, NULL, v_episode, v_deadline,
                               false, p_patient_copy);
    INSERT INTO events (referral_id, kind, actor, detail)
    VALUES (p_referral, 'episode-received', p_actor,
            jsonb_build_object('episode_id', v_episode, 'kind', p_kind));
    RETURN v_episode;
END $$;

-- A deadline is met when every letter it is waiting for (patient copies
-- aside) has been delivered or cancelled; a letter that later fails (a
-- MESH error report) reopens it.  Cancelled (superseded) deadlines are
-- left alone.
CREATE FUNCTION ras_outbox_deadline_check(p_deadline bigint, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_deadline IS NULL THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM outbox WHERE deadline_id = p_deadline AND recipient_role <> 'patient'
                  AND state NOT IN ('delivered', 'cancelled')) THEN
        UPDATE deadlines SET met_at = NULL, met_by = NULL
         WHERE id = p_deadline AND met_by LIKE 'outbox%' AND cancelled_at IS NULL;
    ELSIF EXISTS (SELECT 1 FROM outbox WHERE deadline_id = p_deadline AND state = 'delivered') THEN
        UPDATE deadlines SET met_at = p_at,
               met_by = 'outbox ' || (SELECT string_agg(id::text, ',' ORDER BY id) FROM outbox
                                        WHERE deadline_id = p_deadline AND state = 'delivered')
         WHERE id = p_deadline AND met_at IS NULL AND cancelled_at IS NULL;
    ELSE
        UPDATE deadlines SET cancelled_at = p_at WHERE id = p_deadline AND met_at IS NULL
           AND cancelled_at IS NULL;
    END IF;
END $$;

-- Which clocks of the rule sets a decision's letter meets once it has
-- reached everyone it is addressed to (data, like epr_deadline_closes):
--   gp-notification  the GP told the same day of a potential 2WW (004 §3.6
--                    2(d)) or an emergency: by the 2WW notice, or else by the
--                    triage outcome letter (which reaches the GP: the GP is
--                    the referrer or gets a copy)
--   return           a referral returned to the referrer: by the triage
--                    outcome letter of the return (for an e-RS referral the
--                    A028 RETURN_TO_REFERRER_WITH_ADVICE meets it too, 003)
-- Episode documents (notification letter, discharge summary) carry their
-- own deadline (outbox.deadline_id, ras_outbox_deadline_check).
CREATE TABLE outbox_deadline_meets (
    doc_kind       text NOT NULL,
    deadline_kind  text NOT NULL,
    PRIMARY KEY (doc_kind, deadline_kind)
);
INSERT INTO outbox_deadline_meets (doc_kind, deadline_kind) VALUES
    ('gp-2ww-notice',  'gp-notification'),
    ('triage-outcome', 'gp-notification'),
    ('triage-outcome', 'return');

-- What a change of state of outbox row p_outbox means for the clocks: its
-- own deadline (episode documents), and the rule-set clocks its kind meets
-- (outbox_deadline_meets) on its referral version.  A triage outcome letter
-- of a superseded decision meets nothing.  Met when every non-patient row
-- of the letter (same referral, kind and version) is delivered or
-- cancelled and at least one was delivered; reopened when one of the rows
-- that met it fails later.
CREATE FUNCTION ras_outbox_deadlines_check(p_outbox bigint, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o      outbox%ROWTYPE;
    v_open boolean;
    v_ids  text;
BEGIN
    SELECT * INTO o FROM outbox WHERE id = p_outbox;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM ras_outbox_deadline_check(o.deadline_id, p_at);
    IF o.recipient_role = 'patient'
       OR NOT EXISTS (SELECT 1 FROM outbox_deadline_meets WHERE doc_kind = o.kind) THEN
        RETURN;
    END IF;
    IF o.kind = 'triage-outcome' AND o.decision_id IS DISTINCT FROM
           (SELECT max(id) FROM decisions WHERE referral_id = o.referral_id) THEN
        RETURN;
    END IF;
    SELECT bool_or(state NOT IN ('delivered', 'cancelled')),
           string_agg(CASE WHEN state = 'delivered' THEN id::text END, ',' ORDER BY id)
      INTO v_open, v_ids
      FROM outbox
     WHERE referral_key = o.referral_key AND kind = o.kind AND doc_version = o.doc_version
       AND recipient_role <> 'patient';
    IF NOT v_open AND v_ids IS NOT NULL THEN
        UPDATE deadlines d SET met_at = p_at, met_by = 'outbox ' || v_ids
         WHERE d.referral_id = o.referral_id AND d.met_at IS NULL AND d.cancelled_at IS NULL
           AND d.kind IN (SELECT deadline_kind FROM outbox_deadline_meets WHERE doc_kind = o.kind);
    ELSIF v_open THEN
        UPDATE deadlines d SET met_at = NULL, met_by = NULL
         WHERE d.referral_id = o.referral_id AND d.cancelled_at IS NULL
           AND d.met_by LIKE 'outbox %'
           AND (',' || substr(d.met_by, 8) || ',') LIKE ('%,' || o.id || ',%')
           AND d.kind IN (SELECT deadline_kind FROM outbox_deadline_meets WHERE doc_kind = o.kind);
    END IF;
END $$;
