-- 005 daemon: EPR events after acceptance, the deadlines they meet, poller
-- state shared by every rasd process, and the running instances.

-- What the service's EPR reports after acceptance (FHIR R4 messages to
-- POST /fhir/$process-message or the spool, or rasctl).  Rows are only
-- ever inserted; a resent message (same message_id) is recognised and not
-- stored twice.  The KPI report is computed from these rows, the referral
-- receipt time and the decisions.
CREATE TABLE epr_events (
    id                 bigserial PRIMARY KEY,
    referral_id        bigint NOT NULL REFERENCES referrals (id),
    ubrn               text,
    kind               text NOT NULL CHECK (kind IN (
                           'patient-contacted', 'appointment-offered', 'appointment-attended',
                           'treatment-started', 'onward-referral', 'discharged', 'pifu',
                           'clinician-decision')),
    occurred_at        timestamptz NOT NULL,     -- when it happened, as the EPR says
    mode               text CHECK (mode IN ('virtual', 'face-to-face')),
    first_appointment  boolean,                  -- appointments: the first outpatient appointment
    patient_choice     boolean NOT NULL DEFAULT false, -- the patient chose to wait longer (003 §5.1)
    appointment_at     timestamptz,              -- appointment-offered: the slot offered
    target             text,                     -- onward-referral: where to
    message_id         text,                     -- sender's MessageHeader.id (resends recognised)
    payload_id         bigint REFERENCES inbox (id),
    actor              text NOT NULL,            -- SDS user id of who recorded it, or the sending system
    decision_id        bigint REFERENCES decisions (id), -- clinician-decision: the decision row
    content            jsonb,                    -- discharged: the episode-summary form (referral_json form shape)
    detail             jsonb NOT NULL DEFAULT '{}',
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX epr_events_message ON epr_events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX epr_events_referral ON epr_events (referral_id, occurred_at);
CREATE INDEX epr_events_kind ON epr_events (kind, occurred_at);

CREATE TRIGGER epr_events_no_update BEFORE UPDATE OR DELETE ON epr_events
    FOR EACH ROW EXECUTE FUNCTION ras_events_append_only();

-- Which open deadlines (the rule sets' clock kinds, mappings/README) an EPR
-- event meets.  `first_only`: only an event about the first appointment
-- (or one that does not say) meets it.  `ends`: the event does not meet
-- the clock but makes it moot, so it is cancelled (a patient discharged
-- before treatment has no treatment clock left).  Data, not code; the
-- other clock kinds are met elsewhere: triage and clinical-review by
-- decisions (002), gp-notification and return by letters (004) and e-RS
-- returns (003), notification-letter and discharge-summary by their
-- letters (004).  tests/test_deadlines.c checks every kind has a meeting.
CREATE TABLE epr_deadline_closes (
    event_kind     text NOT NULL,
    deadline_kind  text NOT NULL,
    first_only     boolean NOT NULL DEFAULT false,
    ends           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (event_kind, deadline_kind)
);
INSERT INTO epr_deadline_closes (event_kind, deadline_kind, first_only, ends) VALUES
    ('patient-contacted',    'contact',                 false, false),
    ('appointment-offered',  'contact',                 false, false),
    ('appointment-attended', 'contact',                 false, false),
    ('appointment-attended', 'first-appointment',       true,  false),
    ('appointment-attended', 'first-appointment-limit', true,  false),
    ('appointment-attended', 'assessment',              true,  false),
    ('treatment-started',    'treatment',               false, false),
    ('onward-referral',      'onward',                  false, false),
    ('discharged',           'pathway-end',             false, false),
    ('pifu',                 'pathway-end',             false, false),
    ('discharged',           'contact',                 false, true),
    ('discharged',           'first-appointment',       false, true),
    ('discharged',           'first-appointment-limit', false, true),
    ('discharged',           'assessment',              false, true),
    ('discharged',           'treatment',               false, true);

-- Record one EPR event and meet the deadlines it closes, in one statement.
-- Returns the event id and whether it was new (false: the same message_id
-- was stored before, nothing changed).
CREATE FUNCTION ras_epr_record(p_referral bigint, p_kind text, p_at timestamptz, p_mode text,
                               p_first boolean, p_choice boolean, p_slot timestamptz,
                               p_target text, p_message text, p_payload bigint, p_actor text,
                               p_decision bigint, p_content jsonb, p_detail jsonb)
RETURNS TABLE (event_id bigint, created boolean, deadlines_met int)
LANGUAGE plpgsql AS $$
DECLARE
    v_id   bigint;
    v_ubrn text;
    v_met  int := 0;
BEGIN
    SELECT ubrn INTO v_ubrn FROM referrals WHERE id = p_referral;
    INSERT INTO epr_events (referral_id, ubrn, kind, occurred_at, mode, first_appointment,
                            patient_choice, appointment_at, target, message_id, payload_id,
                            actor, decision_id, content, detail)
    VALUES (p_referral, v_ubrn, p_kind, p_at, p_mode, p_first, coalesce(p_choice, false), p_slot,
            p_target, p_message, p_payload, p_actor, p_decision, p_content,
            coalesce(p_detail, '{}'))
    ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN QUERY SELECT e.id, false, 0 FROM epr_events e WHERE e.message_id = p_message;
        RETURN;
    END IF;
    -- Deadlines of every version of the referral (a clock started on
    -- version 1 is met by an event recorded against version 2).
    UPDATE deadlines d SET met_at = p_at, met_by = 'epr-event:' || v_id
      FROM epr_deadline_closes c, referrals r, referrals mine
     WHERE mine.id = p_referral
       AND r.referral_key = mine.referral_key
       AND d.referral_id = r.id
       AND c.event_kind = p_kind AND c.deadline_kind = d.kind AND NOT c.ends
       AND (NOT c.first_only OR p_first IS NOT FALSE)
       AND d.met_at IS NULL AND d.cancelled_at IS NULL;
    GET DIAGNOSTICS v_met = ROW_COUNT;
    UPDATE deadlines d SET cancelled_at = p_at
      FROM epr_deadline_closes c, referrals r, referrals mine
     WHERE mine.id = p_referral
       AND r.referral_key = mine.referral_key
       AND d.referral_id = r.id
       AND c.event_kind = p_kind AND c.deadline_kind = d.kind AND c.ends
       AND d.met_at IS NULL AND d.cancelled_at IS NULL;
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
    VALUES (p_referral, v_ubrn, p_payload, 'epr-' || p_kind, p_actor,
            jsonb_strip_nulls(jsonb_build_object('epr_event', v_id, 'occurred_at', p_at,
                'mode', p_mode, 'first_appointment', p_first, 'target', p_target,
                'message_id', p_message, 'deadlines_met', v_met)));
    RETURN QUERY SELECT v_id, true, v_met;
END $$;

-- Poll sources (e-RS worklists, the MESH inbox): one row per source, so
-- every rasd process sees when a source was last polled.  The poll itself
-- runs under a PostgreSQL advisory lock for the source.
CREATE TABLE pollers (
    source           text PRIMARY KEY,            -- "ers:21012", "mesh:inbox", …
    last_attempt_at  timestamptz,
    last_success_at  timestamptz,
    last_error       text,
    attempts         bigint NOT NULL DEFAULT 0,
    successes        bigint NOT NULL DEFAULT 0,
    last_instance    text                         -- which rasd ran it last
);

-- Running rasd processes (heartbeat), for `rasctl status`.
CREATE TABLE daemon_instances (
    instance      text NOT NULL,
    host          text NOT NULL,
    pid           int NOT NULL,
    version       text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    PRIMARY KEY (host, pid, started_at)
);

-- In-flight sends and the session that made them.  The deliver stage marks
-- outbox rows 'sending' in a short transaction and transfers outside it; a
-- process that dies mid-transfer leaves them 'sending'.  Recording which
-- database session claimed a row lets a restarted (or any other) rasd tell
-- an abandoned send from one still in progress at once, instead of waiting
-- for [outbox] lease: the claiming session is alive while its backend is
-- (ras_outbox_recover in lib/outbox.c).  now() is the database's clock, so
-- the comparison with pg_stat_activity.backend_start needs no clock sync.
ALTER TABLE outbox ADD COLUMN claimed_pid int, ADD COLUMN claimed_txn_at timestamptz;

CREATE FUNCTION ras_outbox_claimer() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.claimed_pid := pg_backend_pid();
    NEW.claimed_txn_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_claimer BEFORE UPDATE OF state ON outbox
    FOR EACH ROW WHEN (NEW.state = 'sending') EXECUTE FUNCTION ras_outbox_claimer();
