/*
 * pds: the Personal Demographics Service FHIR R4 client (reference
 * pds/NOTES.md) and the reading of the Patient it returns.
 *
 * One call: GET {base_url}/Patient/{nhs-number}.  Every request carries an
 * X-Request-ID (a UUID v4, the same on every retry of that lookup: PDS
 * de-duplicates on it, NOTES §4) and an X-Correlation-ID (a UUID, no
 * dots); application-restricted mode adds the bearer token of the NHS API
 * platform (nhsapi_auth.h, shared with e-RS), user-restricted mode the
 * token file, sandbox mode nothing.  The client paces itself to
 * rate_limit requests a second (PDS allows 5 per application, NOTES §11),
 * gives every call a timeout, retries 408, 429, 5xx, timeouts and
 * connection failures with exponential back-off (same X-Request-ID), and
 * fetches a new token once on a 401 (application mode).
 *
 * Results (NOTES §9): 200 found (id differing from the number asked for:
 * superseded, §8); 404 RESOURCE_NOT_FOUND not-found; 404
 * INVALIDATED_RESOURCE invalidated; 400 INVALID_RESOURCE_ID (or a number
 * that fails the Modulus 11 check here: no call is made) invalid; 401
 * after a new token, 403 and other 4xx refused (configuration); retries
 * used up unavailable.  Dispatch is on status and the Spine error code,
 * never on severity.
 *
 * The client does no I/O but HTTP: the caller stores the response (pds_store.c)
 * before it uses it.  Nothing here logs; the NHS number and the body are
 * patient data.
 */
#ifndef RAS_PDS_H
#define RAS_PDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/buf.h"
#include "ras/json.h"
#include "ras/nhsapi_auth.h"
#include "ras/date.h"
#include "ras/time.h"

struct ras_arena;
struct ras_config;
struct ras_pds;

struct ras_pds_clock {
	int64_t (*mono_ms)(void *ctx);
	void (*sleep_ms)(void *ctx, int64_t ms);
	void *ctx;
};

struct ras_pds_opts {
	const char *base_url;             /* …/personal-demographics/FHIR/R4 */
	enum ras_nhsapi_mode mode;        /* 0 = application */
	const char *token_url, *api_key, *kid;
	const char *private_key_pem;      /* application mode; copied */
	size_t private_key_len;
	const char *bearer_token_file;    /* user mode */
	const char *end_user_ods;         /* NHSD-End-User-Organisation-ODS, optional */
	const char *ca_file, *client_cert, *client_key;
	int rate_limit;                   /* requests a second; 0 = 5 */
	long timeout_ms;                  /* per call; 0 = 10 s */
	int max_attempts;                 /* per lookup; 0 = 4 */
	int64_t backoff_ms;               /* first back-off; 0 = 1000 (doubles, cap 16 s) */
	struct ras_pds_clock clock;       /* NULL members: the real clock */
};

int ras_pds_new(const struct ras_pds_opts *o, struct ras_pds **out);
/* [pds] of the configuration; RAS_ENOTFOUND when [pds] base_url is unset
 * (PDS off: rasd behaves as without it). */
int ras_pds_from_config(const struct ras_config *cfg, struct ras_pds **out);
void ras_pds_free(struct ras_pds *c);

/* [pds] verify and max_age (seconds) of the client's configuration. */
struct ras_pds_settings {
	bool verify;
	int64_t max_age_s;
};
void ras_pds_settings(const struct ras_config *cfg, struct ras_pds_settings *out);

enum ras_pds_result {
	RAS_PDS_FOUND = 1,
	RAS_PDS_NOT_FOUND,        /* 404 RESOURCE_NOT_FOUND */
	RAS_PDS_INVALIDATED,      /* 404 INVALIDATED_RESOURCE */
	RAS_PDS_INVALID,          /* 400 INVALID_RESOURCE_ID, or fails the check digit here */
	RAS_PDS_REFUSED,          /* 401 after a new token, 403, other 4xx: configuration */
	RAS_PDS_UNAVAILABLE,      /* retries used up: 408, 429, 5xx, timeouts, no connection */
};

/* "found", "not-found", "invalidated", "invalid", "refused", "unavailable" */
const char *ras_pds_result_name(enum ras_pds_result r);

/* A PDS Patient, read for rasd (NOTES §6, §14).  Arena-owned strings;
 * NULL when absent. */
struct ras_pds_patient {
	const char *id;                   /* the NHS number PDS answered with */
	bool superseded;                  /* id differs from the number asked for */
	const char *version;              /* meta.versionId */
	const char *security;             /* meta.security[0].code; NULL when missing */
	bool restricted;                  /* security other than U (or missing) */
	const char *family, *given, *prefix;  /* the usual name current today */
	const char *gender;
	const char *birth_date;           /* yyyy-mm-dd, yyyy-mm or yyyy as sent */
	const char *deceased;             /* deceasedDateTime as sent */
	const char *death_notification;   /* 1 informal, 2 formal, U removed */
	const char *address_use;          /* billing, temp or home (correspondence order) */
	const char *address_lines[5];
	size_t n_address_lines;
	const char *postcode;
	const char *practice_ods;         /* current generalPractitioner (open period) */
};

/* One lookup: what was sent and what came back. */
struct ras_pds_lookup {
	char asked[16];                   /* the NHS number asked for */
	char request_id[40];              /* X-Request-ID, the same on every attempt */
	char correlation_id[40];
	int attempts;                     /* HTTP requests made (0: refused locally) */
	long status;                      /* HTTP status of the last attempt, 0 none */
	enum ras_pds_result result;
	char code[64];                    /* Spine error code of an OperationOutcome */
	char etag[64];                    /* ETag as sent (W/"2") */
	char content_type[96];
	char error[256];                  /* why it is not found (no patient data) */
	double seconds;
	struct ras_buf body;              /* the last response body, verbatim */
	bool have_patient;
	struct ras_pds_patient patient;   /* result found */
};

/*
 * Look `nhs_number` up.  The body and patient are in *out (release with
 * ras_pds_lookup_release; patient strings live in `a`).  `today` decides
 * which names, addresses and GP registrations are current.  Returns 0
 * whatever PDS said (out->result); negative only for out of memory.
 */
int ras_pds_get(struct ras_pds *c, struct ras_arena *a, const char *nhs_number,
    const struct ras_date *today, struct ras_pds_lookup *out);
void ras_pds_lookup_release(struct ras_pds_lookup *l);

/* Requests made, token requests made (tests and metrics). */
unsigned ras_pds_requests(const struct ras_pds *c);
struct ras_nhsapi_auth *ras_pds_auth_of(struct ras_pds *c);

/*
 * Read a PDS Patient body (pure).  `asked` is the number looked up (NULL:
 * no supersession check).  RAS_EINVALID when it is not a Patient.
 */
int ras_pds_parse_patient(struct ras_arena *a, const char *body, size_t len, const char *asked,
    const struct ras_date *today, struct ras_pds_patient *out);

/* The summary rasd stores and prints: {"nhs_number", "superseded_from",
 * "version", "security", "restricted", "name": {family, given, prefix},
 * "gender", "birth_date", "deceased", "death_notification", "address":
 * {use, lines, postcode}, "practice_ods"}.  A restricted patient's summary
 * never has an address or practice, whatever the body said. */
json_t *ras_pds_patient_to_json(const struct ras_pds_patient *p, const char *asked);

#endif
