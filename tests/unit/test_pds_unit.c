/* Unit tests: the PDS client and its reading of the Patient (lib/pds/pds.c),
 * against the loopback fake PDS (tests/fakes/fake_pds.c). */
#include <stdlib.h>
#include <string.h>

#include "ers_support.h"
#include "fake_ers.h"
#include "fake_http.h"
#include "fake_pds.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/nhsno.h"
#include "ras/pds.h"

/* A clock that never sleeps: it records what the client would wait. */
struct clk {
	int64_t now;
	int64_t slept;
	int sleeps;
};

static int64_t
clk_mono(void *ctx)
{
	return ((struct clk *)ctx)->now;
}

static void
clk_sleep(void *ctx, int64_t ms)
{
	struct clk *c = ctx;

	c->now += ms;
	c->slept += ms;
	c->sleeps++;
}

static struct ras_date
today(void)
{
	struct ras_date d = { 2026, 12, 7 };

	return d;
}

static struct ras_pds *
client(struct fake_pds *f, struct clk *c, long timeout_ms, int rate)
{
	struct ras_pds_opts o = { 0 };
	struct ras_pds *p = NULL;

	o.base_url = fake_pds_base(f);
	o.mode = RAS_NHSAPI_SANDBOX;
	o.timeout_ms = timeout_ms;
	o.rate_limit = rate;
	o.max_attempts = 4;
	o.clock.mono_ms = clk_mono;
	o.clock.sleep_ms = clk_sleep;
	o.clock.ctx = c;
	CU_ASSERT_EQUAL_FATAL(ras_pds_new(&o, &p), 0);
	return p;
}

static struct ras_pds_patient
parse(struct ras_arena *a, const char *file, const char *asked)
{
	struct ras_pds_patient p;
	struct ras_date t = today();
	size_t len;
	char *body = ras_test_read(ras_test_fixture(file), &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL_FATAL(ras_pds_parse_patient(a, body, len, asked, &t, &p), 0);
	free(body);
	return p;
}

static void
reads_the_examples(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_patient p;

	/* live-shaped: usual name, home address and GP with open periods */
	p = parse(a, "pds/patient_9693632109.json", "9693632109");
	CU_ASSERT_STRING_EQUAL(p.id, "9693632109");
	CU_ASSERT_FALSE(p.superseded);
	CU_ASSERT_FALSE(p.restricted);
	CU_ASSERT_STRING_EQUAL(p.version, "58");
	CU_ASSERT_STRING_EQUAL(p.birth_date, "1946-06-23");
	CU_ASSERT_STRING_EQUAL(p.practice_ods, "A20047");
	CU_ASSERT_STRING_EQUAL(p.address_use, "home");
	CU_ASSERT_EQUAL(p.n_address_lines, 3);
	CU_ASSERT_STRING_EQUAL(p.address_lines[0], "1 MOUNT AVENUE");
	CU_ASSERT_STRING_EQUAL(p.postcode, "DN18 5DW");
	CU_ASSERT_PTR_NULL(p.deceased);
	CU_ASSERT_PTR_NOT_NULL(p.family);

	/* restricted: no location data, even if a body carried some */
	p = parse(a, "pds/patient_9000000025.json", "9000000025");
	CU_ASSERT_TRUE(p.restricted);
	CU_ASSERT_STRING_EQUAL(p.security, "R");
	CU_ASSERT_PTR_NULL(p.practice_ods);
	CU_ASSERT_EQUAL(p.n_address_lines, 0);
	CU_ASSERT_PTR_NULL(p.postcode);
	CU_ASSERT_PTR_NOT_NULL(p.deceased);
	CU_ASSERT_PTR_NOT_NULL(p.birth_date);

	/* the sandbox's "normal" patient: deceased, every period ended */
	p = parse(a, "pds/patient_9000000009.json", "9000000009");
	CU_ASSERT_FALSE(p.restricted);
	CU_ASSERT_PTR_NOT_NULL(p.deceased);
	CU_ASSERT_STRING_EQUAL(p.death_notification, "2");
	CU_ASSERT_PTR_NULL(p.practice_ods);      /* GP period ended 2021 */
	CU_ASSERT_EQUAL(p.n_address_lines, 0);   /* no current address */

	/* minimal: no name, no birth date */
	p = parse(a, "pds/patient_9000000033.json", "9000000033");
	CU_ASSERT_PTR_NULL(p.family);
	CU_ASSERT_PTR_NULL(p.birth_date);
	CU_ASSERT_FALSE(p.restricted);

	/* two names: the usual one, not the old one */
	p = parse(a, "pds/patient_9732110317.json", "9732110317");
	CU_ASSERT_STRING_EQUAL(p.family, "Sanderson");
	CU_ASSERT_PTR_NULL(p.practice_ods);

	/* asked for another number: superseded */
	p = parse(a, "pds/patient_9693632109.json", "9434765919");
	CU_ASSERT_TRUE(p.superseded);
	ras_arena_free(a);
}

static void
summary_never_has_restricted_location(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_patient p = parse(a, "pds/patient_9693632109.json", "9693632109");
	json_t *j;

	p.restricted = true;   /* as if the label were R */
	j = ras_pds_patient_to_json(&p, "9693632109");
	CU_ASSERT_PTR_NULL(json_object_get(j, "address"));
	CU_ASSERT_PTR_NULL(json_object_get(j, "practice_ods"));
	json_decref(j);
	p.restricted = false;
	j = ras_pds_patient_to_json(&p, "9693632109");
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "address"));
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "practice_ods"), "A20047");
	json_decref(j);
	ras_arena_free(a);
}

static void
sends_what_pds_asks(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 5000, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();
	const struct fake_req *r;

	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_EQUAL(l.status, 200);
	CU_ASSERT_STRING_EQUAL(l.etag, "W/\"58\"");
	CU_ASSERT_TRUE(l.have_patient);
	CU_ASSERT_STRING_EQUAL(l.patient.practice_ods, "A20047");
	CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(f)), 1);
	r = fake_http_req(fake_pds_http(f), 0);
	CU_ASSERT_STRING_EQUAL(r->method, "GET");
	CU_ASSERT_STRING_EQUAL(r->path, "/personal-demographics/FHIR/R4/Patient/9693632109");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "X-Request-ID"), l.request_id);
	CU_ASSERT_EQUAL(strlen(l.request_id), 36);
	CU_ASSERT_EQUAL(l.request_id[14], '4');    /* UUID v4 */
	CU_ASSERT_PTR_NOT_NULL(fake_req_header(r, "X-Correlation-ID"));
	CU_ASSERT_PTR_NULL(strchr(fake_req_header(r, "X-Correlation-ID"), '.'));
	CU_ASSERT_PTR_NULL(fake_req_header(r, "Authorization"));   /* sandbox mode */
	/* the body is kept verbatim */
	{
		size_t len;
		char *want = ras_test_read(ras_test_fixture("pds/patient_9693632109.json"), &len);

		CU_ASSERT_EQUAL(l.body.len, len);
		CU_ASSERT_EQUAL(memcmp(l.body.data, want, len), 0);
		free(want);
	}
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
answers_that_are_not_patients(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 5000, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();

	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9111231130", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_NOT_FOUND);
	CU_ASSERT_EQUAL(l.status, 404);
	CU_ASSERT_STRING_EQUAL(l.code, "RESOURCE_NOT_FOUND");
	CU_ASSERT_EQUAL(l.attempts, 1);            /* an answer: never retried */
	ras_pds_lookup_release(&l);
	/* a bad check digit is refused here: PDS is not asked */
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9000000000", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_INVALID);
	CU_ASSERT_EQUAL(l.attempts, 0);
	CU_ASSERT_EQUAL(fake_http_count(fake_pds_http(f)), 1);
	ras_pds_lookup_release(&l);
	/* a 403 is configuration: refused, not retried */
	fake_pds_fail(f, 1, 403);
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_REFUSED);
	CU_ASSERT_EQUAL(l.attempts, 1);
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
retries_reuse_the_request_id(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 5000, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();
	const char *first;

	fake_pds_fail(f, 1, 429);
	fake_pds_fail(f, 2, 429);
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_EQUAL(l.attempts, 3);
	CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(f)), 3);
	first = fake_req_header(fake_http_req(fake_pds_http(f), 0), "X-Request-ID");
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 1), "X-Request-ID"), first);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 2), "X-Request-ID"), first);
	/* exponential back-off: 1 s then 2 s */
	CU_ASSERT_TRUE(c.slept >= 3000);
	ras_pds_lookup_release(&l);

	/* 503 every time: unavailable after max_attempts, one X-Request-ID */
	fake_http_reset(fake_pds_http(f));
	fake_pds_fail(f, 10, 503);
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_UNAVAILABLE);
	CU_ASSERT_EQUAL(l.attempts, 4);
	CU_ASSERT_EQUAL(fake_http_count(fake_pds_http(f)), 4);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 3), "X-Request-ID"), l.request_id);
	ras_pds_lookup_release(&l);
	/* the next lookup is a new request: a new X-Request-ID */
	fake_pds_fail(f, 0, 0);
	{
		char old[40];

		snprintf(old, sizeof(old), "%s", fake_req_header(fake_http_req(fake_pds_http(f), 0), "X-Request-ID"));
		CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
		CU_ASSERT_STRING_NOT_EQUAL(l.request_id, old);
		ras_pds_lookup_release(&l);
	}
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
timeouts_are_retried(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 400, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();

	fake_pds_delay(f, 1, 1500);
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_EQUAL(l.attempts, 2);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 1), "X-Request-ID"), l.request_id);
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

/*
 * The PDS client against each fault of the fakes' fault layer (fake_pds
 * opts in through fake_pds_http): a fault that lasts gives a lookup that is
 * "unavailable" after the client's attempts (an answer past a ceiling:
 * "refused" at once, naming it), with the reason and the same X-Request-ID
 * on every attempt, never a patient read from half a body; once the fault
 * is gone the same lookup finds the patient.
 */
static void
every_fault(void)
{
	static const struct {
		const char *name;
		enum fake_fault_kind kind;
		int ms;
		size_t bytes;
		enum ras_pds_result want;
		const char *says;
	} faults[] = {
		{ "drop", FAKE_FAULT_DROP, 0, 0, RAS_PDS_UNAVAILABLE, "" },
		{ "delay past the timeout", FAKE_FAULT_DELAY, 1500, 0, RAS_PDS_UNAVAILABLE, "" },
		{ "truncated body", FAKE_FAULT_TRUNCATE, 0, 0, RAS_PDS_UNAVAILABLE, "" },
		/* past a ceiling: refused at once (another try would be as big) */
		{ "oversize body", FAKE_FAULT_OVERSIZE, 0, RAS_HTTP_BODY_MAX + 1024, RAS_PDS_REFUSED, "larger than" },
		{ "endless header", FAKE_FAULT_ENDLESS_HEADER, 0, 0, RAS_PDS_REFUSED, "RAS_HTTP_HEADER_MAX" },
		{ "slow drip", FAKE_FAULT_SLOW_DRIP, 300, 0, RAS_PDS_UNAVAILABLE, "" },
	};
	struct fake_pds *f = fake_pds_start();
	struct fake_http *h = fake_pds_http(f);
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 600, 50);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		struct fake_fault ft = { .kind = faults[i].kind, .path_has = "/Patient/", .ms = faults[i].ms,
			.bytes = faults[i].bytes, .times = -1 };
		size_t before = fake_http_count(h);

		fake_http_faults_clear(h);
		fake_http_fault(h, &ft);
		CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
		if (l.result != faults[i].want)
			fprintf(stderr, "PDS, %s: %s (%s)\n", faults[i].name, ras_pds_result_name(l.result),
			    l.error);
		CU_ASSERT_EQUAL(l.result, faults[i].want);
		CU_ASSERT_FALSE(l.have_patient);
		CU_ASSERT(l.error[0] != '\0');
		CU_ASSERT_PTR_NOT_NULL(strstr(l.error, faults[i].says));
		CU_ASSERT(l.attempts >= 1);
		for (size_t k = before; k < fake_http_count(h); k++)
			CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(h, k), "X-Request-ID"), l.request_id);
		ras_pds_lookup_release(&l);

		fake_http_faults_clear(h);
		CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
		CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
		ras_pds_lookup_release(&l);
	}
	/* a TLS handshake that fails: unavailable, nothing sent */
	{
		struct ras_pds_opts o = { 0 };
		struct ras_pds *tp = NULL;
		char base[160];
		struct fake_fault ft = { .kind = FAKE_FAULT_TLS, .times = -1 };
		size_t before = fake_http_count(h);

		snprintf(base, sizeof(base), "https://127.0.0.1:%u/personal-demographics/FHIR/R4",
		    fake_http_port(h));
		o.base_url = base;
		o.mode = RAS_NHSAPI_SANDBOX;
		o.timeout_ms = 2000;
		o.rate_limit = 50;
		o.max_attempts = 2;
		o.clock.mono_ms = clk_mono;
		o.clock.sleep_ms = clk_sleep;
		o.clock.ctx = &c;
		if (ras_pds_new(&o, &tp) == 0) {
			fake_http_fault(h, &ft);
			CU_ASSERT_EQUAL_FATAL(ras_pds_get(tp, a, "9693632109", &t, &l), 0);
			CU_ASSERT_EQUAL(l.result, RAS_PDS_UNAVAILABLE);
			CU_ASSERT_EQUAL(l.status, 0);
			CU_ASSERT_EQUAL(fake_http_count(h), before);
			CU_ASSERT(fake_http_faulted(h) > 0);
			ras_pds_lookup_release(&l);
			ras_pds_free(tp);
		} else {
			CU_FAIL("a PDS client for an https loopback URL could not be made");
		}
		fake_http_faults_clear(h);
	}
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
rate_limit_paces_requests(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 5000, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();

	for (int i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
		ras_pds_lookup_release(&l);
	}
	/* the clock does not move by itself: each later request waited 200 ms */
	CU_ASSERT_EQUAL(c.sleeps, 4);
	CU_ASSERT_EQUAL(c.slept, 800);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
superseded_number(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds *p = client(f, &c, 5000, 5);
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();
	json_t *j;

	CU_ASSERT_EQUAL_FATAL(ras_nhsno_check("9434765919"), RAS_NHSNO_OK);
	fake_pds_supersede(f, "9434765919", "9693632109");
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9434765919", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_TRUE(l.patient.superseded);
	CU_ASSERT_STRING_EQUAL(l.patient.id, "9693632109");
	j = ras_pds_patient_to_json(&l.patient, l.asked);
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "superseded_from"), "9434765919");
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "nhs_number"), "9693632109");
	json_decref(j);
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
}

static void
user_mode_sends_the_token_file(void)
{
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds_opts o = { 0 };
	struct ras_pds *p = NULL;
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();
	char *file = ras_test_write_tmp("pds-token", "g1112R_ccQ1Ebbb4gtHBP1aaaNM\n", 28);

	o.base_url = fake_pds_base(f);
	o.mode = RAS_NHSAPI_USER;
	o.bearer_token_file = file;
	o.clock.mono_ms = clk_mono;
	o.clock.sleep_ms = clk_sleep;
	o.clock.ctx = &c;
	CU_ASSERT_EQUAL_FATAL(ras_pds_new(&o, &p), 0);
	fake_pds_require_token(f, "g1112R_ccQ1Ebbb4gtHBP1aaaNM");
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 0), "Authorization"),
	    "Bearer g1112R_ccQ1Ebbb4gtHBP1aaaNM");
	ras_pds_lookup_release(&l);
	/* a token PDS refuses: 401, not retried in user mode */
	fake_pds_require_token(f, "another1");
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_REFUSED);
	CU_ASSERT_EQUAL(l.status, 401);
	CU_ASSERT_STRING_EQUAL(l.code, "ACCESS_DENIED");
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	free(file);
	fake_pds_stop(f);
}

/* Application-restricted: the NHS API platform token (the module e-RS uses;
 * the fake e-RS's token endpoint checks the RS512 client assertion), sent as
 * Bearer; a 401 fetches a new token once, then the lookup is refused. */
static void
application_mode_token(void)
{
	const char *priv, *pub;
	struct fake_ers_opts eo = { 0 };
	struct fake_ers *fe;
	struct fake_pds *f = fake_pds_start();
	struct clk c = { 1000, 0, 0 };
	struct ras_pds_opts o = { 0 };
	struct ras_pds *p = NULL;
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date t = today();
	const char *h0, *h1;
	char token[128];

	ers_keypair(&priv, &pub);
	eo.public_key_pem = pub;
	fe = fake_ers_start(&eo);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fe);
	o.base_url = fake_pds_base(f);
	o.mode = RAS_NHSAPI_APPLICATION;
	o.token_url = fake_ers_token_url(fe);
	o.api_key = "pds-test-api-key";
	o.kid = "pds-test-1";
	o.private_key_pem = priv;
	o.private_key_len = strlen(priv);
	o.clock.mono_ms = clk_mono;
	o.clock.sleep_ms = clk_sleep;
	o.clock.ctx = &c;
	CU_ASSERT_EQUAL_FATAL(ras_pds_new(&o, &p), 0);
	fake_pds_require_token(f, "not-the-token");
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_REFUSED);
	CU_ASSERT_EQUAL(l.status, 401);
	CU_ASSERT_EQUAL(ras_nhsapi_auth_token_requests(ras_pds_auth_of(p)), 2);
	CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(f)), 2);
	h0 = fake_req_header(fake_http_req(fake_pds_http(f), 0), "Authorization");
	h1 = fake_req_header(fake_http_req(fake_pds_http(f), 1), "Authorization");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h1);
	CU_ASSERT_EQUAL(strncmp(h0, "Bearer fake-token-", 18), 0);
	CU_ASSERT_STRING_NOT_EQUAL(h0, h1);    /* a new token after the 401 */
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 1), "X-Request-ID"), l.request_id);
	snprintf(token, sizeof(token), "%s", h1 + 7);
	ras_pds_lookup_release(&l);
	/* PDS takes the token now: found, and the cached token is reused */
	fake_pds_require_token(f, token);
	CU_ASSERT_EQUAL_FATAL(ras_pds_get(p, a, "9693632109", &t, &l), 0);
	CU_ASSERT_EQUAL(l.result, RAS_PDS_FOUND);
	CU_ASSERT_EQUAL(ras_nhsapi_auth_token_requests(ras_pds_auth_of(p)), 2);
	ras_pds_lookup_release(&l);
	ras_pds_free(p);
	ras_arena_free(a);
	fake_pds_stop(f);
	fake_ers_stop(fe);
}

static void
configuration(void)
{
	struct ras_config *cfg;
	struct ras_pds *p = NULL;

	cfg = ras_test_config("[pds]\nbase_url = https://api.service.nhs.uk/personal-demographics/FHIR/R4\n"
	    "mode = sandbox\n");
	CU_ASSERT_EQUAL(ras_pds_from_config(cfg, &p), RAS_EINVALID);   /* sandbox never production */
	ras_config_free(cfg);
	cfg = ras_test_config("[general]\n");
	CU_ASSERT_EQUAL(ras_pds_from_config(cfg, &p), RAS_ENOTFOUND);  /* PDS off */
	ras_config_free(cfg);
	cfg = ras_test_config("[pds]\nbase_url = https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4\n"
	    "mode = application\n");
	CU_ASSERT_TRUE(ras_pds_from_config(cfg, &p) < 0);   /* no key, no token URL */
	ras_config_free(cfg);
	cfg = ras_test_config("[pds]\nbase_url = https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4\n"
	    "mode = sandbox\nverify = true\n");
	CU_ASSERT_EQUAL_FATAL(ras_pds_from_config(cfg, &p), 0);
	{
		struct ras_pds_settings s;

		ras_pds_settings(cfg, &s);
		CU_ASSERT_TRUE(s.verify);
		CU_ASSERT_EQUAL(s.max_age_s, 24 * 3600);
	}
	ras_pds_free(p);
	ras_config_free(cfg);
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "reads the official examples", reads_the_examples },
		{ "restricted summaries carry no location", summary_never_has_restricted_location },
		{ "sends X-Request-ID, X-Correlation-ID, keeps the body", sends_what_pds_asks },
		{ "not found, invalid, refused", answers_that_are_not_patients },
		{ "429/503: back-off, same X-Request-ID", retries_reuse_the_request_id },
		{ "timeouts are retried", timeouts_are_retried },
		{ "every fault of the fault layer", every_fault },
		{ "rate limit", rate_limit_paces_requests },
		{ "superseded NHS number", superseded_number },
		{ "user mode token file", user_mode_sends_the_token_file },
		{ "application mode: platform token, one renewal on 401", application_mode_token },
		{ "configuration", configuration },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "pds", cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
