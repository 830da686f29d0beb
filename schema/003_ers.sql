-- 003 e-RS client (issue 4): worklist budget, what rasd fetched from e-RS,
-- review-outcome intents, and the log of every e-RS call.
--
-- Times that the budget and retries depend on are written from the `now`
-- the caller passes (never SQL now()), so tests and operators control time.

-- One row per e-RS service rasd polls.  Its row lock serialises the budget
-- check of every rasd instance for that service.
CREATE TABLE ers_services (
    service_id        text PRIMARY KEY,            -- e-RS service id (http://fhir.nhs.net/Id/ers-service)
    rasd_service      text,                        -- rasd service the referrals are for
    last_poll_at      timestamptz,
    last_poll_outcome text
);

-- Every A008 worklist call, claimed before it is made.  In application-
-- restricted mode each budgeted call takes one of the day's two slots; the
-- unique index and the CHECK make a third impossible whatever the clients
-- do (NOTES §1.3: "up to two times per day" per service).
CREATE TABLE ers_worklist_calls (
    id             bigserial PRIMARY KEY,
    service_id     text NOT NULL REFERENCES ers_services (service_id),
    day            date NOT NULL,                  -- UK civil date of the call
    slot           smallint CHECK (slot IN (1, 2)),-- NULL: not budgeted (user mode, or forced)
    mode           text NOT NULL CHECK (mode IN ('application', 'user', 'sandbox')),
    forced         boolean NOT NULL DEFAULT false,
    base_url       text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    outcome        text NOT NULL DEFAULT 'claimed' CHECK (outcome IN ('claimed', 'ok', 'failed')),
    status         int,                            -- HTTP status of the last attempt
    attempts       int NOT NULL DEFAULT 0,
    items          int,                            -- worklist entries
    kept           int,                            -- TRIAGE_DEFERRAL items for this service
    payload_id     bigint REFERENCES inbox (id),
    correlation_id text,
    request_id     text,                           -- e-RS X-Request-ID (transaction id) for support
    error          text,
    instance       text,
    -- application-restricted calls are budgeted unless forced, and forcing
    -- is never allowed against production
    CHECK (mode <> 'application' OR forced OR slot IS NOT NULL),
    CHECK (NOT forced OR base_url !~* '^https://api\.service\.nhs\.uk(/|:|$)')
);
CREATE UNIQUE INDEX ers_worklist_calls_slot ON ers_worklist_calls (service_id, day, slot)
    WHERE slot IS NOT NULL;
CREATE INDEX ers_worklist_calls_day ON ers_worklist_calls (service_id, day);

-- What rasd knows of each UBRN it has seen on e-RS.  A worklist item whose
-- (UBRN, version) is newer than fetched_version is fetched again (A005,
-- A007, attachments).  Related UBRNs (supportingInfo of a referral under
-- review) are fetched for their clinical information but are not referrals
-- to this service: their stored rows get the state 'related'.
CREATE TABLE ers_referrals (
    ubrn              text PRIMARY KEY,
    service_id        text,                         -- the worklist that listed it
    on_worklist       boolean NOT NULL DEFAULT false,
    related_to        text,                         -- UBRN that named it in supportingInfo
    worklist_version  bigint,                       -- referralRequestVersion last listed
    handled_version   bigint,                       -- worklist version the last good fetch answered
    fetched_version   bigint,                       -- meta.versionId of the last A005
    etag              text,                         -- ETag of the last A005, W/"n"
    ers_state         text,                         -- referral state at the last A005
    fetch_state       text NOT NULL DEFAULT 'due'
                      CHECK (fetch_state IN ('due', 'fetched', 'failed', 'parked')),
    attempts          int NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz,
    error_code        text,                         -- e-RS error code (PATIENT_ERROR, …)
    error             text,
    payload_id        bigint REFERENCES inbox (id), -- the last A005 payload
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    fetched_at        timestamptz
);
CREATE INDEX ers_referrals_due ON ers_referrals (next_attempt_at) WHERE fetch_state IN ('due', 'failed');

-- A referral fetched only because another one names it is context, not a
-- referral to this service: keep it out of triage.
CREATE FUNCTION ras_ers_related_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.source = 'ers-referral' AND NEW.state = 'new' AND NEW.ubrn IS NOT NULL
       AND EXISTS (SELECT 1 FROM ers_referrals e WHERE e.ubrn = NEW.ubrn AND NOT e.on_worklist) THEN
        NEW.state := 'related';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER referrals_ers_related BEFORE INSERT ON referrals
    FOR EACH ROW EXECUTE FUNCTION ras_ers_related_state();

-- After an A005 of (p_ubrn, p_version) was stored: record it, retire the
-- worklist stubs of other versions that e-RS no longer serves (only the
-- latest version is retrievable, NOTES §11), and make a related-only row a
-- referral for review once the UBRN is on this service's worklist.
CREATE FUNCTION ras_ers_fetched(p_ubrn text, p_version bigint, p_etag text, p_state text,
                                p_payload bigint, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_on boolean;
BEGIN
    UPDATE ers_referrals SET fetched_version = p_version, etag = p_etag, ers_state = p_state,
           handled_version = worklist_version,
           fetch_state = 'fetched', attempts = 0, next_attempt_at = NULL, error = NULL,
           error_code = NULL, payload_id = coalesce(p_payload, payload_id), fetched_at = p_now
     WHERE ubrn = p_ubrn
    RETURNING on_worklist INTO v_on;
    WITH gone AS (
        UPDATE referrals SET state = 'superseded', updated_at = now()
         WHERE ubrn = p_ubrn AND state = 'awaiting-details' AND version <> p_version
        RETURNING id, version)
    INSERT INTO events (referral_id, ubrn, kind, actor, detail)
    SELECT id, p_ubrn, 'referral-superseded', 'rasd',
           jsonb_build_object('version', version, 'current_version', p_version)
      FROM gone;
    IF v_on THEN
        UPDATE referrals SET state = 'new', updated_at = now()
         WHERE ubrn = p_ubrn AND version = p_version AND state = 'related';
    END IF;
END $$;

-- Review-outcome intents: what rasd will record on e-RS (A028), persisted
-- before any call.  States:
--   pending      waiting to be sent (next_attempt_at, when set, says when)
--   sending      an A028 is in flight (at most one per UBRN: unique index)
--   unknown      the A028 may or may not have been applied (timeout, 5xx,
--                dropped connection): re-read A005 before anything else
--   retry        not applied; try again at next_attempt_at (423, 429, 401)
--   done         recorded on e-RS (or found already recorded as intended)
--   overtaken    someone else recorded a different review: not overwritten
--   stale        the referral changed on e-RS after the decision: it will be
--                fetched and triaged again
--   not-offered  e-RS does not offer RECORD_REVIEW_OUTCOME (A029)
--   parked       needs a person (PATIENT_ERROR, 412, other 4xx, no advice)
--   superseded   a later decision replaced it before it was sent
CREATE TABLE ers_outcomes (
    id              bigserial PRIMARY KEY,
    decision_id     bigint NOT NULL UNIQUE REFERENCES decisions (id),
    referral_id     bigint NOT NULL REFERENCES referrals (id),
    ubrn            text NOT NULL,
    version         bigint NOT NULL,                -- the version the decision was made on
    review_outcome  text NOT NULL
                    CHECK (review_outcome IN ('ACCEPT_REFER_BOOK_LATER', 'RETURN_TO_REFERRER_WITH_ADVICE')),
    comments        text,                           -- reviewComments (advice); fixed before the first send
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'unknown', 'retry', 'done', 'overtaken',
                                     'stale', 'not-offered', 'parked', 'superseded')),
    attempts        int NOT NULL DEFAULT 0,         -- A028 calls made
    next_attempt_at timestamptz,
    sent_version    bigint,                         -- If-Match of the last A028
    result_version  bigint,                         -- e-RS version after the outcome
    ers_state       text,                           -- referral state as last read
    ers_reason      text,
    last_status     int,
    error_code      text,
    error           text,
    correlation_id  text,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    CHECK (review_outcome <> 'RETURN_TO_REFERRER_WITH_ADVICE' OR comments IS NULL
           OR btrim(comments) <> '')
);
CREATE INDEX ers_outcomes_due ON ers_outcomes (id) WHERE state IN ('pending', 'unknown', 'retry');
CREATE INDEX ers_outcomes_ubrn ON ers_outcomes (ubrn, id);
CREATE UNIQUE INDEX ers_outcomes_one_write ON ers_outcomes (ubrn) WHERE state IN ('sending', 'unknown');

-- A decision becomes an outcome intent when it is final (rules with
-- automation) or a clinician's, and its outcome is one e-RS can record:
-- accept -> ACCEPT_REFER_BOOK_LATER, return -> RETURN_TO_REFERRER_WITH_ADVICE
-- with the advice as reviewComments.  Onward and review outcomes have no
-- A028 equivalent: they wait for a person (rasctl ers pending).
-- Returns the intent id, or NULL when the decision is not recordable.
CREATE FUNCTION ras_ers_make_intent(p_decision bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    d          decisions%ROWTYPE;
    v_ubrn     text;
    v_version  bigint;
    v_source   text;
    v_outcome  text;
    v_comments text;
    v_id       bigint;
BEGIN
    SELECT * INTO d FROM decisions WHERE id = p_decision;
    SELECT ubrn, version, source INTO v_ubrn, v_version, v_source
      FROM referrals WHERE id = d.referral_id;
    IF v_ubrn IS NULL OR v_source NOT IN ('ers-worklist', 'ers-referral')
       OR d.outcome NOT IN ('accept', 'return') OR NOT (d.final OR d.decided_by <> 'rules') THEN
        RETURN NULL;
    END IF;
    v_outcome := CASE d.outcome WHEN 'accept' THEN 'ACCEPT_REFER_BOOK_LATER'
                                ELSE 'RETURN_TO_REFERRER_WITH_ADVICE' END;
    SELECT string_agg(btrim(r ->> 'advice'), E'\n\n' ORDER BY ord) INTO v_comments
      FROM jsonb_array_elements(d.reasons) WITH ORDINALITY AS x(r, ord)
     WHERE coalesce(btrim(r ->> 'advice'), '') <> '';
    INSERT INTO ers_outcomes (decision_id, referral_id, ubrn, version, review_outcome, comments)
    VALUES (d.id, d.referral_id, v_ubrn, v_version, v_outcome, v_comments)
    ON CONFLICT (decision_id) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        -- wakes the daemon's outcome stage (LISTEN rasd_ers_outcome)
        PERFORM pg_notify('rasd_ers_outcome', v_id::text);
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        VALUES (d.referral_id, v_ubrn, 'ers-outcome-queued', 'rasd',
                jsonb_build_object('intent', v_id, 'decision', d.id, 'outcome', v_outcome,
                                   'version', v_version));
    END IF;
    RETURN v_id;
END $$;

-- Any newer decision of a UBRN retires its intents that were not yet sent,
-- then makes its own when it is recordable.
CREATE FUNCTION ras_ers_decision_intent() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ubrn text;
BEGIN
    SELECT ubrn INTO v_ubrn FROM referrals WHERE id = NEW.referral_id;
    IF v_ubrn IS NULL THEN
        RETURN NULL;
    END IF;
    WITH gone AS (
        UPDATE ers_outcomes SET state = 'superseded', updated_at = now()
         WHERE ubrn = v_ubrn AND state IN ('pending', 'retry')
        RETURNING id, referral_id)
    INSERT INTO events (referral_id, ubrn, kind, actor, detail)
    SELECT referral_id, v_ubrn, 'ers-outcome-superseded', 'rasd',
           jsonb_build_object('intent', id, 'decision', NEW.id)
      FROM gone;
    PERFORM ras_ers_make_intent(NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER decisions_ers_outcome AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION ras_ers_decision_intent();

-- A return recorded on e-RS (A028 RETURN_TO_REFERRER_WITH_ADVICE done) is
-- the referral returned: it meets the return clock of its referral version
-- (the triage outcome letter meets it too, whichever comes first: 004).
CREATE FUNCTION ras_ers_outcome_done() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.review_outcome = 'RETURN_TO_REFERRER_WITH_ADVICE' THEN
        UPDATE deadlines SET met_at = coalesce(NEW.done_at, NEW.updated_at),
                             met_by = 'ers-outcome:' || NEW.id
         WHERE referral_id = NEW.referral_id AND kind = 'return'
           AND met_at IS NULL AND cancelled_at IS NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ers_outcomes_done AFTER UPDATE OF state ON ers_outcomes
    FOR EACH ROW WHEN (NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done')
    EXECUTE FUNCTION ras_ers_outcome_done();

-- Every call rasd made to e-RS (and to the object store it was sent to),
-- with the correlation id it sent and the X-Request-ID e-RS answered: what
-- NHS support asks for.  No bodies, no patient data.
CREATE TABLE ers_calls (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL,
    endpoint       text NOT NULL,                   -- A005, A008, A028, token, object-store, …
    method         text NOT NULL,
    ubrn           text,
    status         int,                             -- HTTP status, NULL when no response
    ms             int,
    correlation_id text,
    request_id     text,
    error_code     text,
    error          text,
    instance       text
);
CREATE INDEX ers_calls_at ON ers_calls (at);
CREATE INDEX ers_calls_ubrn ON ers_calls (ubrn, id) WHERE ubrn IS NOT NULL;
