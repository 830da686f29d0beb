/*
 * epr: events the service's electronic patient record (EPR) reports after
 * a referral is received, and clinicians' triage decisions.
 *
 * An EPR event arrives as a FHIR R4 message: a Bundle of type "message"
 * whose first entry is a MessageHeader with eventCoding system
 * RAS_SYS_EPR_EVENT and one of the codes below; MessageHeader.focus names
 * the resource that carries the event (Encounter, Appointment,
 * EpisodeOfCare, ServiceRequest, Task), which refers to the referral by
 * its UBRN (docs/design/intake.md, "EPR events", documents every shape).  The same events
 * can be recorded with rasctl.
 *
 * Parsing (ras_epr_parse) is pure.  Recording (ras_epr_record,
 * ras_epr_receive) writes, in one transaction: the payload to the inbox
 * (verbatim, hashed), the event to epr_events, the deadlines it meets
 * (epr_deadline_closes), an event in the audit trail; for a clinician's
 * decision a new decision with its service's clocks, stored as triage
 * stores its own (ras_triage_store_decision); for a discharge, or a
 * contact that carries an episode summary, the summary and its letter
 * (ras_outbox_episode_put: the discharge summary, or the notification
 * letter where the service's specification has one).  A resent message
 * (same MessageHeader.id) is recognised and changes nothing.  A message
 * that cannot be used is still kept in the inbox, rejected, with the
 * reason (an episode summary missing an item its letter requires is
 * refused with the list).
 *
 * Who may decide what (docs/design/intake.md, "Clinicians' decisions"): a clinician decides
 * a referral whose current decision awaits one (state "review": a review or
 * a recommendation).  A final decision (the rules' under the service's
 * automation, or an earlier clinician's) is replaced only when the
 * clinician says so explicitly (rasctl decide --override, or the Task
 * extension RAS_URL_OVERRIDE): e-RS and the letters then act on the new
 * decision.  A referral not triaged yet (new, unassigned, triage-failed)
 * cannot be decided: the rules must have seen it first.  Whatever the
 * state, a referral any decision found a red flag in, or that was ever
 * meant for the two-week-wait pathway, is never returned.
 */
#ifndef RAS_EPR_H
#define RAS_EPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/decision.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/referral.h"

struct ras_arena;
struct ras_db;
struct ras_inbox_item;
struct ras_outbox;
struct ras_triage;

#define RAS_SYS_EPR_EVENT        "urn:rasd:epr-event"
#define RAS_SYS_TRIAGE_OUTCOME   "urn:rasd:triage-outcome"
#define RAS_URL_FIRST_APPOINTMENT "urn:rasd:extension:first-appointment"
#define RAS_URL_PATIENT_CHOICE   "urn:rasd:extension:patient-choice"
#define RAS_URL_OVERRIDE         "urn:rasd:extension:override"
#define RAS_SYS_EPISODE_TYPE     "urn:rasd:episode-type"
#define RAS_SYS_V3_ACTCODE       "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define RAS_Q_EPISODE_SUMMARY    "urn:rasd:questionnaire:episode-summary"

enum ras_epr_kind {
	RAS_EPR_CONTACTED = 1,       /* patient-contacted: Encounter */
	RAS_EPR_OFFERED,             /* appointment-offered: Appointment */
	RAS_EPR_ATTENDED,            /* appointment-attended: Encounter */
	RAS_EPR_TREATMENT,           /* treatment-started: EpisodeOfCare */
	RAS_EPR_ONWARD,              /* onward-referral: ServiceRequest */
	RAS_EPR_DISCHARGED,          /* discharged: EpisodeOfCare + episode-summary QuestionnaireResponse */
	RAS_EPR_PIFU,                /* pifu (patient-initiated follow-up): EpisodeOfCare */
	RAS_EPR_DECISION,            /* clinician-decision: Task */
};

/* The code in MessageHeader.eventCoding and epr_events.kind. */
const char *ras_epr_kind_name(enum ras_epr_kind k);
enum ras_epr_kind ras_epr_kind_parse(const char *s);   /* 0 when unknown */

struct ras_epr_event {
	enum ras_epr_kind kind;
	const char *message_id;      /* MessageHeader.id: a resend carries the same id */
	const char *ubrn;            /* the referral, by UBRN … */
	const char *referral_key;    /* … or by storage key ("local:system|value") */
	int64_t occurred_at;
	const char *mode;            /* "virtual", "face-to-face", NULL when not said */
	int first_appointment;       /* 1 first, 0 follow-up, -1 not said */
	bool patient_choice;         /* the patient chose to wait longer */
	bool has_slot;
	int64_t slot;                /* appointment-offered: the appointment time */
	const char *target;          /* onward-referral / onward decision: where to */
	const char *actor;           /* SDS user id of who did it, else the sending system */
	/* clinician-decision */
	enum ras_outcome outcome;
	const char *advice;
	bool override;               /* replace a final decision (RAS_URL_OVERRIDE) */
	/* discharged (required), patient-contacted and appointment-attended
	 * (optional): the episode-summary QuestionnaireResponse, flattened and
	 * as JSON text */
	struct ras_form *summary;
	const char *summary_text;
	size_t summary_len;
};

/*
 * What recording needs besides the database: the rule sets and calendar
 * (a clinician's decision starts its service's clocks) and the outbox (an
 * episode summary becomes its letter).  A member may be NULL when the
 * caller has no such events to record; an event that needs it then fails
 * with RAS_ERROR (a configuration problem: nothing is kept, the sender
 * retries).  Both are borrowed for the duration of the call.
 */
struct ras_epr_ctx {
	const struct ras_triage *triage;
	struct ras_outbox *outbox;
};

/* True when j is an EPR message (a Bundle of type message whose
 * MessageHeader's eventCoding is in RAS_SYS_EPR_EVENT). */
bool ras_epr_detect(const json_t *j);

/* Parse an EPR message.  RAS_EINVALID with a one-line reason (no patient
 * data) when it is not a usable event.  Strings live in the arena. */
int ras_epr_parse(struct ras_arena *a, json_t *bundle, struct ras_epr_event *out);

struct ras_epr_result {
	int64_t payload_id;          /* inbox row (0 when recorded without a payload) */
	int64_t event_id;            /* epr_events row */
	int64_t referral_id;
	int64_t decision_id;         /* clinician-decision: the new decisions row */
	int64_t episode_id;          /* an episode summary stored (its letter queued) */
	bool duplicate;              /* the same message (id or bytes) was recorded before */
	int deadlines_met;
	const char *state;           /* "recorded", "duplicate", "rejected" */
	const char *kind;            /* event kind name, NULL when unknown */
	char ubrn[RAS_ID_MAX + 1];
	char message[512];           /* one line, no patient data */
};

/*
 * Record an event: find the referral (latest version by UBRN or key),
 * check it (who may decide what: above), write it, meet the deadlines it
 * closes.
 * payload_id is the inbox row it came in (0 for none).  Runs in the
 * caller's transaction when `in_txn`, else in its own.  RAS_ENOTFOUND
 * (unknown referral) and RAS_EINVALID (refused) carry a one-line reason.
 */
int ras_epr_record(struct ras_db *db, const struct ras_epr_ctx *ctx,
    const struct ras_epr_event *ev, int64_t payload_id, bool in_txn, struct ras_epr_result *out);

/*
 * A clinician's decision as `rasctl decide` and the clinicians' pages
 * take it: the same checks (ras_epr_decide_check: outcome accept, return
 * or onward; an SDS user id of 12 digits; advice given, within
 * RAS_STRING_MAX; a target only with onward, within RAS_ID_MAX; the
 * referral named once), then ras_epr_record() in its own transaction.
 * The two front ends differ only in how they learn who decides.
 */
int ras_epr_decide_check(const struct ras_epr_event *ev);
int ras_epr_decide(struct ras_db *db, const struct ras_epr_ctx *ctx, const struct ras_epr_event *ev,
    struct ras_epr_result *out);

/*
 * Receive one EPR message as sent: keep it in the inbox and record it in
 * one transaction, or keep it rejected with the reason.  Returns a
 * negative code only when the database failed (nothing was kept: the
 * sender must retry); a refused message is out->state "rejected".
 */
int ras_epr_receive(struct ras_db *db, const struct ras_epr_ctx *ctx,
    const struct ras_inbox_item *item, struct ras_epr_result *out);

#endif
