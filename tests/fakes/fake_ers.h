/*
 * fake_ers: a loopback e-RS for protocol tests, the daemon's end-to-end
 * tests and the demo (build/tests/fake-ers runs it on its own).
 *
 * Two fake_http servers: the e-RS host (…/referrals/FHIR and the APIM token
 * endpoint /oauth2/token) and an object store (the host A042's 307 points
 * at).  Both record every request.
 *
 * Sandbox behaviour (always): responses are the official examples, chosen
 * as the published sandbox chooses them, from the `routes` file of the
 * fixtures directory (tests/fixtures/ers/routes): a POST gets the response
 * whose paired request file is JSON-equal to its body, a GET is chosen by
 * path and query; A005 carries ETag W/"<meta.versionId>", A042 answers 307
 * to the object store, an unmatched request gets the sandbox's error
 * outcome (422, or 400 for A029).  Bodies over 1 KB are gzipped when the
 * client accepts gzip, as the sandbox does.
 *
 * Stateful mode (opts.stateful) models what the stateless sandbox cannot:
 * e-RS's versions and review state.  A referral listed as TRIAGE_DEFERRAL
 * on a worklist the fake serves becomes AWAITING_TRIAGE at the listed
 * version (or a test sets it with fake_ers_referral()); its A005 is the
 * official file with meta.versionId, ETag and the ReferralState extension
 * rewritten; A029 offers RECORD_REVIEW_OUTCOME only while it is
 * AWAITING_TRIAGE at the version asked; A028 needs If-Match of the current
 * version (else 409), a valid body (else 422 with the e-RS code) and then
 * records the outcome: version + 1, TRIAGED_PROVIDER_TO_ACTION, reason and
 * comments, answered with the official response rewritten to match.
 *
 * Scripts replace the answer to the next matching requests: any status and
 * body (401 and 429 with an empty body, 409, 412, 422 with a code, 423, 503
 * with Retry-After…), or a dropped connection, optionally after the normal
 * effect was applied (an A028 that succeeded but whose answer was lost) or
 * after someone else's review was recorded (a 409 that is someone else's
 * review).
 */
#ifndef RAS_FAKE_ERS_H
#define RAS_FAKE_ERS_H

#include <stdbool.h>
#include <stddef.h>

#include "fake_http.h"

struct fake_ers;

struct fake_ers_opts {
	const char *fixtures;        /* directory with `routes`; NULL = tests/fixtures/ers */
	bool stateful;
	bool require_auth;           /* API calls need a Bearer token the fake issued (401 otherwise) */
	const char *public_key_pem;  /* verify client assertions (RS512, claims) at the token endpoint */
	unsigned port, store_port;   /* 0 = any free port */
	bool no_gzip;
};

struct fake_ers *fake_ers_start(const struct fake_ers_opts *o);
void fake_ers_stop(struct fake_ers *f);

/* "http://127.0.0.1:P/referrals/FHIR", "http://127.0.0.1:P/oauth2/token",
 * "http://127.0.0.1:Q" (object store). */
const char *fake_ers_base_url(const struct fake_ers *f);
const char *fake_ers_token_url(const struct fake_ers *f);
const char *fake_ers_store_url(const struct fake_ers *f);

/* The recording servers. */
struct fake_http *fake_ers_http(struct fake_ers *f);
struct fake_http *fake_ers_store(struct fake_ers *f);

struct fake_ers_script {
	const char *host;            /* "ers" (default) or "store" */
	const char *method;          /* NULL = any */
	const char *path_has;        /* substring of the path (and query) */
	int status;
	const char *body;            /* NULL = empty */
	const char *error_code;      /* instead of body: an STU3 OperationOutcome with this code */
	const char *retry_after;
	bool drop;                   /* close the connection without answering */
	bool apply;                  /* stateful: do what the request asks first */
	/* stateful: record someone else's review first (version + 1) */
	const char *other_reason;
	const char *other_comments;
	int times;                   /* 0 = once */
	/* With no status, body, error_code or drop: answer as usual, but only
	 * after this many milliseconds (a slow e-RS; the daemon's kill -9
	 * test stops rasd while it waits). */
	int delay_ms;
};

void fake_ers_script(struct fake_ers *f, const struct fake_ers_script *s);
void fake_ers_clear_scripts(struct fake_ers *f);

/* Stateful: set a referral's version and review state. */
void fake_ers_referral(struct fake_ers *f, const char *ubrn, int version, const char *state,
    const char *reason, const char *comments);
/* Stateful: the referral's current version (0 when unknown), and how many
 * A028 writes were applied to it. */
int fake_ers_version(struct fake_ers *f, const char *ubrn);
int fake_ers_writes(struct fake_ers *f, const char *ubrn);

/* The time the token endpoint checks assertion expiry against (tests that
 * run rasd with a chosen `now`); 0 = the real clock. */
void fake_ers_set_now(struct fake_ers *f, long long now);

unsigned fake_ers_tokens_issued(struct fake_ers *f);
unsigned fake_ers_gzipped(struct fake_ers *f);
/* Token requests whose client assertion failed verification. */
unsigned fake_ers_bad_assertions(struct fake_ers *f);

/* Count recorded requests on the e-RS host with `method` whose path
 * contains `path_has`. */
size_t fake_ers_count(struct fake_ers *f, const char *method, const char *path_has);

#endif
