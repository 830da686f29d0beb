/*
 * uipages: the clinicians' pages as server-rendered HTML (NHS.UK frontend
 * classes, no script), read from the shared database.  Every value is
 * escaped (ras_html_esc).  Writing is not done here: a decision is
 * ras_epr_record(), as `rasctl decide`; the HTTP side (daemon/ui) checks
 * sessions, roles, the register and CSRF before it calls these.
 *
 *   worklist   referrals awaiting a clinician, by earliest open clock
 *   referral   patient banner, form answers, attachments, recommendation,
 *              clocks, audit trail
 *   decide     the decision form (rasd's advice pre-filled)
 *   admin      dead letters and parked e-RS outcomes, with requeue
 *   kpi        a service's KPI report
 */
#ifndef RAS_UIPAGES_H
#define RAS_UIPAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"

struct ras_buf;
struct ras_calendar;
struct ras_db;

/* Clocks due within this many hours are "near breach". */
#define RAS_UIPAGES_NEAR_HOURS 24
/* Rows on one worklist page. */
#define RAS_UIPAGES_WORKLIST_MAX 500

/* Who is looking. */
struct ras_uiviewer {
	const char *sds_user_id;
	const char *name;
	const char *role_names;      /* "clinician", "clinician, admin" */
	bool clinician, admin;
	const char *csrf;
	const char *const *services; /* services the clinician serves (the register) */
	size_t nservices;
	const char *mappings;        /* mappings directory: forms give questions their text */
};

bool ras_uipages_serves(const struct ras_uiviewer *v, const char *service);

/* state: "awaiting" (default), "breached", "near-breach" or "decided". */
int ras_uipages_worklist(struct ras_db *db, const struct ras_uiviewer *v, const char *service,
    const char *state, struct ras_buf *out);

/* The referral named by UBRN or storage key.  RAS_ENOTFOUND: none;
 * RAS_EINVALID: not a service this clinician serves (its service in
 * *service_out, RAS_ID_MAX + 1 bytes, when not NULL).  notice: a line shown
 * on top (after a decision). */
int ras_uipages_referral(struct ras_db *db, const struct ras_uiviewer *v, const char *what,
    const char *notice, struct ras_buf *out);

/* The referral's service and whether it awaits a clinician (state review);
 * RAS_ENOTFOUND when no such referral. */
int ras_uipages_referral_service(struct ras_db *db, const char *what, char *service, size_t size,
    bool *awaiting);

/* The decision form; `error` (may be NULL) is shown as an error summary,
 * and the given values (may be NULL) are kept. */
int ras_uipages_decide(struct ras_db *db, const struct ras_uiviewer *v, const char *what,
    const char *error, const char *outcome, const char *advice, const char *target,
    struct ras_buf *out);

int ras_uipages_admin(struct ras_db *db, const struct ras_uiviewer *v, const char *notice,
    struct ras_buf *out);

/* A parked e-RS outcome sent back for another try ("unknown": the e-RS
 * stage reads the referral before it writes again).  RAS_ENOTFOUND when
 * it is not parked. */
int ras_uipages_ers_requeue(struct ras_db *db, int64_t id);

int ras_uipages_kpi(struct ras_db *db, const struct ras_uiviewer *v, const struct ras_calendar *cal,
    const char *service, const char *from, const char *to, struct ras_buf *out);

/* A page with a heading and a paragraph (errors, sign-in). `v` may be NULL
 * (not signed in).  link/link_text: one link under it (may be NULL). */
int ras_uipages_message(const struct ras_uiviewer *v, const char *title, const char *text,
    const char *link, const char *link_text, struct ras_buf *out);

#endif
