/*
 * triage: the triage stage, between the store (referrals in state "new")
 * and everything that acts on decisions (e-RS, letters), in batches.
 *
 * A struct ras_triage holds what the stage needs and what stays the same
 * between batches: the loaded mappings (rule sets, forms, practice lists,
 * calendar) and how a referral is given its rasd service:
 *
 *   1. the service the referral was stored with (referrals.service, from
 *      the route's service hint: `rasctl ingest --service`, a spool
 *      directory or MESH mailbox configured per service, the e-RS poller
 *      of a service);
 *   2. else its e-RS service id, matched against `[service ID]
 *      ers_service_ids` in the configuration;
 *   3. else `[triage] default_service`;
 *   4. else none: the referral goes to state "unassigned" with an event
 *      saying why, and ras_triage_requeue() retries it after the
 *      configuration is fixed.
 *
 * ras_triage_pending() claims referrals in state "new" with FOR UPDATE
 * SKIP LOCKED (so any number of rasd processes share the work), decides
 * each with ras_rules_decide(), and stores the decisions with their
 * deadlines and events a chunk at a time, each chunk's decisions in one
 * statement (ras_store_decisions() in schema/014_decisions_batch.sql), in
 * one transaction per batch.  If the batch fails in
 * the database each referral is retried on its own; one that still fails
 * goes to "triage-failed" with the reason, so it cannot block the others.
 *
 * Decisions are never overwritten: a re-triage (a new version of the
 * referral, its form arriving later, changed rules) adds a decisions row
 * and supersedes the open deadlines of the referral.
 */
#ifndef RAS_TRIAGE_H
#define RAS_TRIAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/decision.h"

struct ras_config;
struct ras_db;
struct ras_mappings;
struct ras_triage;

/*
 * Load the mappings in `mappings_dir` and apply the configuration (`cfg`
 * may be NULL: defaults): [service ID] automation overrides, the
 * [clinician SDS_USER_ID] register,
 * [service ID] ers_service_ids, [triage] default_service.  RAS_EINVALID
 * when a configured service has no rule set or an e-RS service id is
 * claimed by two services.
 */
int ras_triage_new(const struct ras_config *cfg, const char *mappings_dir, struct ras_triage **out);
void ras_triage_free(struct ras_triage *t);

const struct ras_mappings *ras_triage_mappings(const struct ras_triage *t);

/* The clinician register of the configuration ([clinician SDS_USER_ID],
 * include/ras/clinicians.h); ras_triage_new refuses a clinician whose
 * services have no rule set. */
struct ras_clinicians;
const struct ras_clinicians *ras_triage_clinicians(const struct ras_triage *t);

/* The service for a referral (see the order above), or NULL with *why set
 * to a one-line reason. */
const char *ras_triage_assign(const struct ras_triage *t, const char *stored_service,
    const char *ers_service_id, const char **why);

/* What became of one referral. */
struct ras_triage_report {
	int64_t referral_id;
	int64_t payload_id;       /* the payload (of the filter) that brought it; 0 otherwise */
	int64_t decision_id;      /* 0 when no decision was stored */
	char referral[96];        /* "UBRN vN" or the local key: no patient data */
	char service[64];         /* "" when unassigned */
	const char *state;        /* decided, review, unassigned, triage-failed, new (left) */
	enum ras_outcome outcome; /* 0 when no decision */
	bool final;
	char onward_target[48];
	char message[512];        /* one line: rules and clauses, deadlines, or why not */
};

/*
 * Triage up to `limit` referrals in state "new", oldest first, deciding at
 * time `now`.  With payload_ids (n > 0) only referrals those payloads
 * created, merged or gave a form to are taken (rasctl ingest triages what
 * it stored).  Reports go to *out (malloc'd; caller frees), *n_out their
 * count.  Returns a negative code only when the database failed.
 */
int ras_triage_pending(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, struct ras_triage_report **out,
    size_t *n_out);

/*
 * The same, in the transaction of the normalise step that filled `h`
 * (ras_store_normalise_handed: a held transaction, db.h): the referrals it
 * claims that normalise handed over are decided from the handover, not read
 * back and parsed again; the others (not handed over, or with [pds] on) are
 * read back as by ras_triage_pending.  The claim itself, and so which
 * referrals are decided, is the database's as always.  h may be NULL.
 */
struct ras_store_handover;
int ras_triage_pending_handed(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, const struct ras_store_handover *h,
    struct ras_triage_report **out, size_t *n_out);

/*
 * The same, each report handed to fn(report, ctx) once the batch has
 * committed (in claim order; *n_out their count), none kept: the daemon's
 * stage logs them as they come, so that what a batch holds in memory does
 * not grow with batch_size beyond its ids and packed reports (~150 bytes a
 * referral).  The report is valid only during the call.
 */
typedef void ras_triage_report_fn(const struct ras_triage_report *r, void *ctx);
int ras_triage_pending_each(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, ras_triage_report_fn *fn, void *ctx,
    size_t *n_out);

/*
 * Store decisions d[0..n) of referrals referral_ids[0..n) with their
 * deadlines, in one statement (ras_store_decisions, schema 014), as if
 * stored one at a time in that order (a referral may appear more than
 * once): for each, a decisions row, superseded open deadlines cancelled,
 * the new ones inserted, the referral moved to "decided" (final) or
 * "review", a triage-decided event naming the decision, its rules, clauses
 * and rule-set version; its letters and e-RS outcome intent queued.
 * decision_ids (may be NULL) gets each one's id.  Used by the stage and for
 * a clinician's decision (decided_by = the clinician's SDS user id;
 * ras_rules_deadlines() gives its clocks).  RAS_EINVALID when a decision
 * has no service, outcome or decided_by.
 */
int ras_triage_store_decisions(struct ras_db *db, const int64_t *referral_ids,
    const struct ras_decision *d, size_t n, int64_t *decision_ids);

/* One decision: ras_triage_store_decisions() with n = 1. */
int ras_triage_store_decision(struct ras_db *db, int64_t referral_id,
    const struct ras_decision *d, int64_t *decision_id);

/*
 * Send back to triage the referrals whose current decision was made by an
 * older version of their service's rule set and is still awaiting a
 * clinician (state "review"), and every "unassigned" referral.  Final
 * decisions are not reopened.  *n is how many were requeued.
 */
int ras_triage_requeue(struct ras_db *db, const struct ras_triage *t, int64_t *n);

/* What replaying a rule set says about one stored referral. */
struct ras_triage_replay {
	int64_t referral_id;
	char referral[96];          /* "UBRN vN" or the local key: no patient data */
	bool had;                   /* the rules decided it before */
	enum ras_outcome was;       /* the latest decision the rules made (0 when none) */
	char was_target[48];
	bool was_final;
	const char *was_by;         /* "rules"; "clinician" when a clinician decided since */
	enum ras_outcome now;       /* what the rule set decides now (0 when it could not) */
	char now_target[48];
	bool now_final;
	char message[512];          /* the new decision (ras_triage_summary), or why it failed */
};

/*
 * Re-run the rule set of `service` (in t, configuration applied) over the
 * stored referrals of that service received on the UK dates from..to
 * (inclusive; the latest version of each), deciding each as triage would
 * (received_at its own receipt, decided at `now`), and compare with the
 * latest decision the rules made for it: outcome, onward target and
 * finality.  Nothing is written: the reads run in a READ ONLY transaction.
 * *out (malloc'd) holds the referrals whose decision would change and
 * those that could not be decided (now == 0); *same counts the others.
 * RAS_ENOTFOUND when t has no rule set for the service.
 */
int ras_triage_replay(struct ras_db *db, const struct ras_triage *t, const char *service,
    const struct ras_date *from, const struct ras_date *to, int64_t now,
    struct ras_triage_replay **out, size_t *n, size_t *same);

/* The compact one-line summary used in reports and rasctl output:
 * "midnotts: return (final) midnotts.population [004 §3.4]; triage 2026-04-08, …" */
void ras_triage_summary(const struct ras_decision *d, char *buf, size_t size);

#endif
