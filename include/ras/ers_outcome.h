/*
 * ers_outcome: recording review outcomes on e-RS (NOTES §7.5, §7.6, §11,
 * §14 items 4–6 and 12).
 *
 * A decision becomes an intent in ers_outcomes by a trigger on decisions
 * (schema/003_ers.sql) when it is final or a clinician's and its outcome is
 * accept or return.  For each intent, oldest first and one write per UBRN
 * at a time (an advisory lock per UBRN, and a unique index allowing one
 * 'sending'/'unknown' intent per UBRN across every instance):
 *
 *   1. A005: the current version, state, reason and comments.  When they
 *      already show this outcome with these comments, the intent is done
 *      (an earlier A028 whose answer was lost had in fact succeeded).
 *      Another review recorded by someone else: 'overtaken', never
 *      overwritten.  A newer version than the decision saw: 'stale' (the
 *      referral is fetched again and re-triaged).
 *   2. A029 for that version: without RECORD_REVIEW_OUTCOME, 'not-offered'.
 *   3. the intent is persisted as 'sending' (committed), then A028 with
 *      If-Match: W/"version" and the body of the official examples:
 *      ACCEPT_REFER_BOOK_LATER (with reviewPriority = the referral's current
 *      priority, which leaves it unchanged) or RETURN_TO_REFERRER_WITH_ADVICE
 *      (never a priority), reviewComments = the decision's advice, never
 *      empty.
 *   4. 200: done.  Timeout, dropped connection or 5xx: 'unknown' (the next
 *      run starts at step 1).  409: A005 again and re-evaluated at once.
 *      423 and 429: 'retry' with back-off.  412, 422 (PATIENT_ERROR and
 *      every other code) and other 4xx: 'parked' for a person.
 */
#ifndef RAS_ERS_OUTCOME_H
#define RAS_ERS_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

#include "ras/limits.h"

struct ras_db;
struct ras_ers;

/* reviewComments longer than this are parked rather than cut: advice to a
 * referrer is never silently truncated (A014's comment limit is 2000). */
#define RAS_ERS_COMMENTS_MAX 4000

struct ras_ers_outcome_result {
	int64_t intent_id;
	int64_t decision_id;
	char ubrn[RAS_ID_MAX + 1];
	char review_outcome[40];
	const char *state;            /* the intent's state afterwards */
	int64_t result_version;       /* e-RS version after a recorded outcome */
	int a028_calls;               /* A028 requests made for it in this run */
	char message[512];            /* one line, no patient data */
};

struct ras_ers_outcome_report {
	int done, retry, unknown, parked, overtaken, stale, not_offered, superseded, busy;
	size_t n;
	struct ras_ers_outcome_result *v;   /* malloc'd */
};

void ras_ers_outcome_report_free(struct ras_ers_outcome_report *rep);

/*
 * The daemon's outcome stage: every intent that is due (pending, retry or
 * unknown whose next_attempt_at has come; 'sending' ones abandoned by a
 * crashed instance are treated as unknown), at most `limit`.  Returns a
 * negative code only when the database failed; e-RS failures are per
 * intent.
 */
int ras_ers_outcome_pending(struct ras_ers *c, struct ras_db *db, int64_t now, size_t limit,
    struct ras_ers_outcome_report *rep);

/*
 * Settle intents another process left 'sending' (it died between
 * persisting the intent and hearing e-RS's answer): each one whose UBRN
 * write lock nobody holds becomes 'unknown', due at `now`, so the next run
 * reads A005 before anything is sent again (never a second blind A028).
 * An intent whose writer is still alive is left alone.  *n is how many were
 * settled.  The daemon calls this at start-up, before taking new work, and
 * before each run of its outcome stage.
 */
int ras_ers_outcome_recover(struct ras_db *db, int64_t now, int *n);

/*
 * `rasctl ers outcome UBRN`: record the stored decision of the referral
 * now.  Makes the intent from the current decision if the trigger did not
 * (a decision stored before this migration), then processes it ignoring its
 * retry time.  RAS_ENOTFOUND without a decision; RAS_EINVALID when the
 * current decision is not one e-RS can record (onward, review, or a rules
 * recommendation awaiting a clinician): the message says who must act.
 */
int ras_ers_outcome_record(struct ras_ers *c, struct ras_db *db, const char *ubrn, int64_t now,
    struct ras_ers_outcome_report *rep);

/* The A028 body (JSON text, malloc'd).  priority may be NULL; it is left
 * out of a return. */
int ras_ers_outcome_review_body(const char *review_outcome, const char *comments, const char *priority,
    char **out);

#endif
