/*
 * ers_poll: the RAS worklist poll cycle and everything it fetches
 * (NOTES §7.1–7.4, §14 items 2–3), and the A008 budget.
 *
 * One cycle for one e-RS service:
 *   1. budget: in application-restricted mode a worklist call takes one of
 *      the service's two slots for the UK day (ers_worklist_calls; the
 *      ers_services row lock serialises every rasd instance, a unique index
 *      and a CHECK make a third slot impossible).  A scheduled poll runs
 *      only once a schedule time of a working day has passed without a
 *      call; a manual poll (rasctl) only needs a free slot.
 *   2. A008 REFERRALS_FOR_REVIEW with the service filter; the List goes to
 *      the inbox and is normalised like any payload; TRIAGE_DEFERRAL items
 *      of the service are kept.
 *   3. for each new or changed (UBRN, version): A005 (into the inbox; the
 *      ETag is kept in ers_referrals), then the related UBRNs of its
 *      supportingInfo (fetched the same way, stored in state 'related'),
 *      then the A007 clinical-information PDF and every attachment, stored
 *      in the attachments table: AVAILABLE ones through A042 (the 307 is
 *      followed by hand to the object store with no token and no e-RS
 *      header), PENDING ones retried after at least 5 minutes, THREATS_FOUND
 *      and VALIDATION_FAILED never.  An attachment that is a referral form
 *      (QuestionnaireResponse JSON or FHIR XML, or XML a form map reads) also
 *      goes through the inbox as the referral's form.
 *   4. triage: with a triage set on the client (ras_ers_set_triage), the
 *      referrals this cycle stored or completed are triaged before it
 *      returns (their decisions then flow to ers_outcomes and the outbox).
 * Fetch failures are per referral and per attachment and are retried by
 * ras_ers_poll_fetch_due(); PATIENT_ERROR and other permanent refusals park the
 * referral for a person (rasctl ers pending).
 *
 * `now` (wall-clock seconds) is always explicit, so tests control time.
 */
#ifndef RAS_ERS_POLL_H
#define RAS_ERS_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/limits.h"
#include "ras/time.h"

struct ras_db;
struct ras_ers;

enum {
	RAS_ERS_POLL_SCHEDULED = 1 << 0,  /* poll only if a schedule time is due */
	RAS_ERS_POLL_FORCE = 1 << 1,      /* bypass the budget: refused for production */
};

/* One RAS referral of the worklist (or a related UBRN). */
struct ras_ers_poll_item {
	char ubrn[RAS_ID_MAX + 1];
	int64_t worklist_version;    /* 0 for a related UBRN */
	int64_t version;             /* version fetched with A005, 0 when not fetched */
	const char *state;           /* fetched, unchanged, failed, parked */
	bool related;                /* fetched because another referral names it */
	int64_t referral_id;         /* stored referral row (0 when none) */
	int64_t payload_id;          /* inbox row of the A005 */
	char triage[256];            /* its decision ("" when not triaged here): ras_triage_summary */
	char error[256];
};

/* What attachment fetching did. */
struct ras_ers_fetch_report {
	int fetched;                 /* content stored (PDFs and files) */
	int pending;                 /* PENDING on e-RS: retried later */
	int blocked;                 /* THREATS_FOUND / VALIDATION_FAILED: never retried */
	int failed;                  /* failed now (retried later) or given up */
	int too_big;
	int forms;                   /* attachments read as the referral's form */
	int referrals_fetched;       /* A005s stored by ras_ers_poll_fetch_due */
	int referrals_failed;
	int triaged;                 /* decisions made by the triage hook (ras_ers_set_triage) */
};

struct ras_ers_poll_report {
	char service[RAS_ID_MAX + 1];
	const char *outcome;         /* polled, not-due, budget-exhausted, missed, locked, failed */
	int slot;                    /* budget slot taken, 0 when not budgeted */
	bool forced;
	int budget_left;             /* A008 calls left today, -1 when not limited */
	int64_t call_id;             /* ers_worklist_calls row */
	int64_t payload_id;          /* inbox row of the worklist */
	int entries;                 /* worklist entries */
	int kept;                    /* TRIAGE_DEFERRAL items of this service */
	int skipped;                 /* other entries */
	int unchanged, fetched, failed, parked, related;
	int triaged;                 /* decisions made by the triage hook (ras_ers_set_triage) */
	struct ras_ers_fetch_report files;
	size_t nitems;
	struct ras_ers_poll_item *items;   /* malloc'd: ras_ers_poll_report_free */
	char correlation_id[40];
	char request_id[128];        /* e-RS X-Request-ID of the A008 */
	char error[512];
};

void ras_ers_poll_report_free(struct ras_ers_poll_report *rep);

/*
 * One poll cycle for e-RS service `service_id` (one of ers.service_ids).
 * With RAS_ERS_POLL_SCHEDULED it runs only when the latest schedule time of
 * a working day has passed with no successful worklist call since (a missed
 * 08:00 is caught up once, not twice; a call that failed, or that a stopped
 * rasd left 'claimed', is counted as failed, logged as a warning and tried
 * again while the budget allows).  Returns 0 when the cycle ran or had
 * nothing to do (rep->outcome: polled, not-due, or budget-exhausted for a
 * scheduled poll whose slot a manual poll used; per-referral failures are
 * in rep->items), RAS_ERATELIMITED when a manual poll finds the day's budget
 * used up or a scheduled one finds it used up after failed calls
 * (rep->outcome "missed": the poll is lost until the next working day),
 * RAS_ECONFLICT when another instance is polling
 * this service, RAS_EIO/RAS_ETIMEDOUT when e-RS could not be reached or
 * failed, RAS_EINVALID for a refused request (unknown service, --force
 * against production, the worklist payload rejected).  The database must
 * not be in a transaction.
 */
int ras_ers_poll_service(struct ras_ers *c, struct ras_db *db, const char *service_id,
    int64_t now, unsigned flags, struct ras_ers_poll_report *rep);

/*
 * The daemon's poll stage: a scheduled poll (RAS_ERS_POLL_SCHEDULED) of
 * every configured service.  *reps is malloc'd (one per service; free each
 * with ras_ers_poll_report_free, then the array).  Returns the first hard
 * error, after trying every service.
 */
int ras_ers_poll_due(struct ras_ers *c, struct ras_db *db, int64_t now,
    struct ras_ers_poll_report **reps, size_t *n);

/*
 * The daemon's retry stage: A005s whose fetch failed and whose retry time
 * has come, then attachments and clinical-information PDFs that are due
 * (PENDING ones no sooner than 5 minutes after they were seen), at most
 * `limit` of each.  Rows are leased (next_attempt_at moved ahead) before
 * any call, so instances never fetch the same thing at once.
 */
int ras_ers_poll_fetch_due(struct ras_ers *c, struct ras_db *db, int64_t now, size_t limit,
    struct ras_ers_fetch_report *rep);

/* The A008 budget of one service on the UK day of `now`. */
struct ras_ers_poll_budget {
	char service[RAS_ID_MAX + 1];
	char day[RAS_DATE_STR_MAX];  /* UK civil date */
	bool limited;                /* application-restricted mode */
	int limit;                   /* 2 when limited */
	int used;                    /* budgeted calls today */
	int calls;                   /* all worklist calls today (forced ones too) */
	int left;                    /* limit - used, -1 when not limited */
	bool working_day;
	int64_t next_scheduled;      /* next schedule time not yet passed (0 = none in 14 days) */
	char last_outcome[16];       /* ok, failed, claimed; "" = never */
	int64_t last_at;
};

int ras_ers_poll_budget(struct ras_ers *c, struct ras_db *db, const char *service_id, int64_t now,
    struct ras_ers_poll_budget *out);

/* The A008 request body for a service (JSON text, malloc'd): the official
 * eRS-FetchWorklist-Parameters-1 shape. */
int ras_ers_poll_worklist_request(const char *service_id, char **out);

#endif
