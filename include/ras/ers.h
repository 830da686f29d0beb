/*
 * ers: rasd's connection to the NHS e-Referral Service FHIR API
 * (reference/ers/NOTES.md).  It owns what every e-RS call shares:
 *
 * - configuration ([ers] in the config file) and the HTTP client;
 * - authentication (nhsapi_auth.h, shared with PDS): application-restricted signed-JWT tokens
 *   or a user-restricted bearer token file, and the headers each mode must
 *   and must not send (never x-ers-*, never user headers in application-
 *   restricted mode);
 * - X-Correlation-ID on every call (a new UUID each), the response
 *   X-Request-ID kept with it in ers_calls;
 * - the rate limit (at most `rate_limit` calls started in any second, 10 in
 *   production), exponential back-off with jitter on 429 (whose STU3 body
 *   is empty), Retry-After on 503, one token renewal on 401;
 * - STU3 and R4 OperationOutcome parsing (error code and diagnostics).
 *
 * The poll cycle (ers_poll.h) and outcome recording (ers_outcome.h) are
 * built on ras_ers_perform().  Nothing here logs: every call is recorded in
 * the ers_calls table by ras_ers_flush_calls() and failures are returned.
 * One struct ras_ers per process (or thread); it is not thread-safe.
 */
#ifndef RAS_ERS_H
#define RAS_ERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/crypto.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/time.h"

struct ras_config;
struct ras_triage;
struct ras_db;
struct ras_ers;

enum ras_ers_mode {
	RAS_ERS_APPLICATION = 1,   /* application-restricted: signed JWT client credentials */
	RAS_ERS_USER,              /* user-restricted: CIS2 bearer token from a file */
	RAS_ERS_SANDBOX,           /* no authentication (sandbox, local fakes); never production */
};

const char *ras_ers_mode_name(enum ras_ers_mode m);   /* "application", "user", "sandbox" */

/* Injectable time, for tests: monotonic milliseconds and sleeping.  NULL
 * functions mean the real clock. */
struct ras_ers_clock {
	int64_t (*mono_ms)(void *ctx);
	void (*sleep_ms)(void *ctx, int64_t ms);
	void *ctx;
};

/* Is date d a working day?  NULL means Monday to Friday; rasd uses the
 * triage calendar (ras_calendar_workday, set by ras_ers_set_triage). */
typedef bool (*ras_ers_workday_fn)(const struct ras_date *d, void *ctx);

struct ras_ers_service {
	char id[RAS_ID_MAX + 1];            /* e-RS service id, e.g. "21012" */
	char rasd_service[RAS_ID_MAX + 1];  /* rasd service it feeds ("" = unknown) */
};

/* The schedule: at most two working-day times (UK civil time) per day. */
#define RAS_ERS_SCHEDULE_MAX 2
/* e-RS services one rasd polls. */
#define RAS_ERS_SERVICES_MAX 32

struct ras_ers_opts {
	const char *base_url;             /* e.g. https://api.service.nhs.uk/referrals/FHIR */
	const char *token_url;            /* e.g. https://api.service.nhs.uk/oauth2/token */
	enum ras_ers_mode mode;
	const char *api_key;              /* application mode: iss = sub */
	const char *kid;                  /* application mode: key id in the app's JWKS */
	const char *private_key_pem;      /* application mode: RSA key (copied) */
	size_t private_key_len;
	const char *bearer_token_file;    /* user mode: re-read whenever it changes */
	const char *business_function;    /* user mode: NHSD-eRS-Business-Function */
	const char *ods_code;             /* user mode: NHSD-End-User-Organisation-ODS */
	const char *obo_user_id;          /* user mode, SPCA only: NHSD-eRS-On-Behalf-Of-User-ID */
	const char *ca_file;
	const char *client_cert;
	const char *client_key;
	int rate_limit;                   /* calls per second; 0 = 10 */
	long timeout_ms;                  /* e-RS calls; 0 = 200 s (gateway gives up at 180 s) */
	long store_timeout_ms;            /* object-store downloads; 0 = 300 s */
	int max_attempts;                 /* per call on 429/503, and per outcome/attachment; 0 = 5 */
	const char *schedule;             /* "08:00,13:00" */
	const char *services;             /* "21012=midnotts, 11002" */
	const char *accept_comment;       /* reviewComments of an acceptance without advice */
	const char *instance;             /* recorded with calls; NULL = host name */
	struct ras_ers_clock clock;
	ras_ers_workday_fn is_working_day;
	void *workday_ctx;
	bool every_day;                   /* [ers] poll_days = all: every day is a polling day */
};

int ras_ers_new(const struct ras_ers_opts *opts, struct ras_ers **out);

/* The client for the [ers] section of a configuration: secrets (private
 * key, bearer token) from files or systemd credentials.  RAS_ENOTFOUND when
 * e-RS is not configured (no base_url). */
int ras_ers_from_config(const struct ras_config *cfg, struct ras_ers **out);

void ras_ers_free(struct ras_ers *c);

/* Replace the working-day test of the poll schedule. */
void ras_ers_set_workday(struct ras_ers *c, ras_ers_workday_fn fn, void *ctx);

/*
 * Triage with `t` what a poll cycle or a fetch retry stores (the "triage
 * hook" of ers_poll.c: ras_triage_pending over the payloads the cycle
 * stored, before it returns), and count the schedule's working days on
 * t's calendar (mappings/calendar), the one every clock in rasd uses.  t is
 * borrowed: it must outlive its use, or be replaced (again after a
 * reload) or cleared with NULL (which leaves the working days as they are).
 * Without a triage, stored referrals wait in state "new" for the daemon's
 * triage stage.
 */
void ras_ers_set_triage(struct ras_ers *c, const struct ras_triage *t);

/* The XML form maps attachments and payloads are read through (the
 * runtime's; NULL: none).  Not owned. */
struct ras_xmlform_maps;
void ras_ers_set_form_maps(struct ras_ers *c, const struct ras_xmlform_maps *maps);
const struct ras_xmlform_maps *ras_ers_form_maps(const struct ras_ers *c);
const struct ras_triage *ras_ers_triage(const struct ras_ers *c);

/* True for the production e-RS host (api.service.nhs.uk), where --force
 * and sandbox mode are refused. */
bool ras_ers_is_production(const char *url);

enum ras_ers_mode ras_ers_mode(const struct ras_ers *c);
const char *ras_ers_base_url(const struct ras_ers *c);
const char *ras_ers_accept_comment(const struct ras_ers *c);
const char *ras_ers_instance(const struct ras_ers *c);
int ras_ers_max_attempts(const struct ras_ers *c);

/* Configured services (n returned; *out valid while c lives). */
size_t ras_ers_services(const struct ras_ers *c, const struct ras_ers_service **out);
const struct ras_ers_service *ras_ers_service_find(const struct ras_ers *c, const char *id);

/* Schedule times in minutes after UK midnight, ascending. */
size_t ras_ers_schedule(const struct ras_ers *c, const int **minutes);

/* A day the schedule polls on: every day with [ers] poll_days = all, else
 * a working day (the triage calendar once ras_ers_set_triage is called). */
bool ras_ers_working_day(const struct ras_ers *c, const struct ras_date *d);
bool ras_ers_every_day(const struct ras_ers *c);

/* --- calls -------------------------------------------------------------- */

enum {
	RAS_ERS_CALL_WRITE = 1 << 0,      /* not safe to repeat blindly: no retry on 5xx/timeout */
	RAS_ERS_CALL_ABSOLUTE = 1 << 1,   /* url is a full URL to another host (object store):
	                                     no Authorization, no e-RS headers at all */
	RAS_ERS_CALL_NO_ACCEPT = 1 << 2,  /* binary response (PDF, attachment): no Accept header */
};

struct ras_ers_call {
	/* in */
	const char *endpoint;             /* "A005", "A008", …: call log and messages */
	const char *method;
	char url[1024];                   /* path after base_url ("/STU3/…"), or a full URL */
	const char *body;                 /* JSON (application/fhir+json) */
	size_t body_len;
	const char *if_match;             /* W/"n" */
	const char *ubrn;                 /* for the call log */
	size_t max_body;                  /* 0 = RAS_PAYLOAD_MAX */
	long timeout_ms;                  /* 0 = the client's e-RS timeout */
	unsigned flags;

	/* out */
	struct ras_http_request http;     /* status, body_out, headers_out, err, errmsg */
	int attempts;
	char correlation_id[RAS_UUID_STR_LEN];
	char request_id[128];             /* response X-Request-ID */
	char error_code[64];              /* OperationOutcome code (STU3 or R4), "" when none */
	char diagnostics[256];            /* OperationOutcome diagnostics, trimmed */
	int64_t retry_after_s;            /* Retry-After of a 503/429, -1 when absent */

	char full_url_[1280];             /* private: the URL of the request */
};

/* Prepare a call (zeroes it). */
void ras_ers_call_init(struct ras_ers_call *k, const char *endpoint, const char *method,
    unsigned flags);

/* Free the response parts of n calls. */
void ras_ers_call_release(struct ras_ers_call *k, size_t n);

/*
 * Run n calls concurrently (libcurl multi), never starting more than the
 * rate limit allows in any second.  A 401 renews the token once and
 * repeats; a 429 is repeated after 1 s, 2 s, 4 s … (each ±25% jitter) up to
 * max_attempts; a 503 of a read is repeated after Retry-After (or the same
 * back-off) while the total wait stays under a minute.  Writes
 * (RAS_ERS_CALL_WRITE) are never repeated after a 5xx or a timeout: their
 * outcome is the caller's to establish.  Returns 0 when every call ran
 * (each has its own http.err / http.status), negative when the batch could
 * not start (e.g. no token: RAS_EIO, RAS_EINVALID).  `now` is wall-clock
 * seconds (JWT exp and the call log).
 */
int ras_ers_perform(struct ras_ers *c, int64_t now, struct ras_ers_call *calls, size_t n);

/* Make sure a token is at hand (fetching one if needed) before work that
 * must not start without it, such as spending an A008 budget slot. */
int ras_ers_authenticate(struct ras_ers *c, int64_t now);

/* Write the calls made since the last flush to ers_calls (one statement). */
int ras_ers_flush_calls(struct ras_ers *c, struct ras_db *db);

/* One-line description of a failed call for messages and the database:
 * "A005 000000070000: HTTP 422 PATIENT_ERROR: <diagnostics>" or the
 * transport error.  Never contains patient data (diagnostics of e-RS
 * OperationOutcomes are about the request, not the patient). */
const char *ras_ers_call_error(const struct ras_ers_call *k, char *buf, size_t size);

/* Back-off before attempt `attempt` (1-based): base_ms * 2^(attempt-1),
 * capped at cap_ms, with ±25% jitter. */
int64_t ras_ers_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* The authentication state (token requests made, for tests and metrics). */
struct ras_nhsapi_auth *ras_ers_auth_of(struct ras_ers *c);

/* Parse an e-RS OperationOutcome (STU3 eRS-APIErrorCode-1 or R4
 * NHSD/ers-error-codes) from a response body into code/diagnostics; empty
 * strings when the body is empty or not an OperationOutcome. */
void ras_ers_parse_outcome(const char *body, size_t len, char *code, size_t code_size,
    char *diag, size_t diag_size);

#endif
