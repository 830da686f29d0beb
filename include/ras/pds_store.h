/*
 * pds_store: PDS answers in the database, the demographics stage, and what
 * triage makes of them (schema/007_pds.sql; docs/design/pds.md).
 *
 * The stage (ras_pds_store_demographics), between normalise and triage:
 *
 *   1. referrals in state "new" with a valid NHS number whose document
 *      lacks the patient's name, birth date or practice (every one with
 *      [pds] verify) and no pds_checks row go to state "demographics" with
 *      a waiting check;
 *   2. waiting checks that are due are leased (FOR UPDATE SKIP LOCKED, the
 *      lease moves next_attempt_at on), looked up, the response stored
 *      verbatim (pds_lookups) and then applied (ras_pds_apply): the
 *      patient row gets the PDS values, the check is done, the referral
 *      goes back to "new";
 *   3. PDS unavailable (or refusing us: configuration) leaves the check
 *      waiting with a back-off (1 min doubling to 1 h); the referral stays
 *      in "demographics", its receipt clock running (rasctl status,
 *      /metrics ras_pds_waiting_*).  Not found, invalidated and invalid
 *      are answers: the check is done and triage sends the referral to
 *      review, so nothing is retried forever;
 *   4. with max_age_s > 0: a referral with letters pending whose PDS
 *      record is older than that is read again (stored and applied, no
 *      re-triage); its letters wait for it (outbox_render.c).
 *
 * Triage reads the done check of each referral it claims (the JSON of
 * ras_pds_store_check_json's shape) and calls ras_pds_store_overlay().
 */
#ifndef RAS_PDS_STORE_H
#define RAS_PDS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/pds.h"

struct ras_arena;
struct ras_db;
struct ras_decision;
struct ras_referral;

/* Store one lookup verbatim (pds_lookups); *id its row.  `referral_id` 0:
 * none (rasctl pds lookup). */
int ras_pds_store_lookup(struct ras_db *db, const struct ras_pds_lookup *l, int64_t referral_id,
    const char *actor, int64_t *id);

/* Apply a stored lookup (ras_pds_apply): patient row, check, referral back
 * to "new", events.  `differences` JSON object text or NULL. */
int ras_pds_store_apply(struct ras_db *db, int64_t lookup_id, int64_t referral_id,
    const char *actor, const char *differences, bool retriage);

/* What one run of the stage did (counts by result; no patient data). */
struct ras_pds_stage_report {
	int queued;                /* referrals sent to wait for demographics */
	int looked_up;
	int by_result[RAS_PDS_UNAVAILABLE + 1];
	int restricted, superseded, deceased, differing;
	int refreshed;             /* records read again for letters (max_age) */
	char first_error[256];     /* of a lookup that failed (no patient data) */
};

int ras_pds_store_demographics(struct ras_db *db, struct ras_pds *c, bool verify, int64_t max_age_s,
    int64_t now, size_t limit, struct ras_pds_stage_report *rep);

/*
 * Look the patient of one referral up again now (rasctl pds refresh): the
 * referral by id or UBRN (its newest version).  The lookup is stored and
 * applied whatever it says except unavailable; a referral in new, review
 * or demographics goes back to triage.  *l is the lookup (release it).
 * RAS_ENOTFOUND: no such referral, or it has no valid NHS number.
 */
int ras_pds_store_refresh(struct ras_db *db, struct ras_pds *c, struct ras_arena *a,
    const char *ref, const char *actor, int64_t *referral_id, int64_t *lookup_id,
    struct ras_pds_lookup *l);

/* Waiting referrals: how many, and the receipt time of the oldest (0 none). */
int ras_pds_store_waiting(struct ras_db *db, int64_t *n, int64_t *oldest_received);

/* Lookups by result since the database began (for /metrics). */
int ras_pds_store_counts(struct ras_db *db, int64_t counts[RAS_PDS_UNAVAILABLE + 1]);

/* The demographics of a referral (by UBRN, its newest version, or id) for
 * rasctl show: {"source": "pds"|"referral", "pds_version", "pds_checked_at",
 * name, birth_date, gender, address (never for a restricted patient),
 * practice_ods, deceased, "referral": what the referrer sent, "differences"}. */
int ras_pds_store_show(struct ras_db *db, const char *ref, json_t **out);

/* What triage makes of a referral's PDS answer. */
struct ras_pds_findings {
	bool have;                 /* a done check was given */
	const char *result;        /* found, not-found, … */
	const char *version;       /* PDS meta.versionId */
	bool restricted, deceased, superseded;
	bool differs_birth_date, differs_practice;
};

/*
 * Fill the referral's missing patient data from the check JSON
 * ({"result", "version", "summary", "lookup_id"}) (pure): name, gender,
 * a full birth date, practice and postcode (never for a restricted
 * patient; a restricted patient's referral postcode is dropped too), and
 * the NHS number PDS answered with.  A birth date or practice that
 * differs from PDS is replaced by the PDS value and noted in *f.
 */
int ras_pds_store_overlay(struct ras_arena *a, const char *check_json, struct ras_referral *r,
    struct ras_pds_findings *f);

/*
 * After the rules decided: name the PDS version in the facts, and send to
 * review (not final, with a reason each) a referral whose patient is
 * restricted, deceased, not found / invalid / invalidated, or whose
 * birth date or practice differs from PDS.  Returns true when the outcome
 * was changed to review (the caller recomputes the clocks).
 */
bool ras_pds_store_findings_apply(struct ras_arena *a, const struct ras_pds_findings *f,
    struct ras_decision *d);

#endif
