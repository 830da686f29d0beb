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
CREATE INDEX deadlines_open ON deadlines (due_at) WHERE met_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX deadlines_referral ON deadlines (referral_id, kind);
