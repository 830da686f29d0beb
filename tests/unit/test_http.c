/*
 * The http adapter against every fault of the fakes' fault layer, its
 * ceilings (response body, response header line), and its multi socket
 * interface driven from a caller's own loop; and the FHIR delivery client
 * against every fault (the e-RS and MESH clients' are in their own suites).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fhir.h"
#include "fake_http.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir_client.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/time.h"

static struct ras_http *http;
static struct fake_http *srv;

#define BODY "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":0," \
	"\"padding\":\"0123456789012345678901234567890123456789\"}"

static void
answer(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	(void)ctx;
	(void)req;
	resp->status = 200;
	resp->content_type = "application/json";
	resp->body = BODY;
}

/* GET /path on the fake; the request is left for the caller to check. */
static void
get(struct ras_http_request *r, const char *path, long timeout_ms, size_t max_body)
{
	static char url[256];

	snprintf(url, sizeof(url), "%s%s", fake_http_url(srv), path);
	ras_http_request_init(r, "GET", url);
	r->timeout_ms = timeout_ms;
	r->max_body = max_body;
	CU_ASSERT_EQUAL(ras_http_perform(http, r, 1), 0);
}

static void
arm(enum fake_fault_kind kind, const char *path, int ms, size_t bytes)
{
	struct fake_fault ft = { .kind = kind, .path_has = path, .ms = ms, .bytes = bytes };

	fake_http_faults_clear(srv);
	fake_http_fault(srv, &ft);
}

static void
no_fault_answers(void)
{
	struct ras_http_request r;

	fake_http_faults_clear(srv);
	get(&r, "/plain", 5000, 0);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_STRING_EQUAL(r.body_out.data, BODY);
	ras_http_request_release(&r);
}

/* The planted-bug class "no ceiling on a response body": a body past
 * RAS_HTTP_BODY_MAX (no Content-Length to refuse it by) fails the request
 * with RAS_ETOOBIG naming the limit, and so does one past a caller's own
 * max_body.  Without the ceiling the first request would succeed. */
static void
oversize_body_is_refused(void)
{
	struct ras_http_request r;
	size_t before = fake_http_faulted(srv);

	arm(FAKE_FAULT_OVERSIZE, "/big", 0, (size_t)RAS_HTTP_BODY_MAX + 1024u * 1024u);
	get(&r, "/big", 30000, 0);
	CU_ASSERT_EQUAL(fake_http_faulted(srv), before + 1);
	CU_ASSERT_EQUAL(r.err, RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.errmsg, "RAS_HTTP_BODY_MAX"));
	CU_ASSERT(r.body_out.len <= RAS_HTTP_BODY_MAX);
	ras_http_request_release(&r);

	arm(FAKE_FAULT_OVERSIZE, "/big", 0, 5000);
	get(&r, "/big", 5000, 4096);
	CU_ASSERT_EQUAL(r.err, RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.errmsg, "4096"));
	ras_http_request_release(&r);

	/* exactly at a caller's ceiling is fine */
	arm(FAKE_FAULT_OVERSIZE, "/big", 0, 4096);
	get(&r, "/big", 5000, 4096);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(r.body_out.len, 4096);
	ras_http_request_release(&r);
	no_fault_answers();
}

/* The planted-bug class "no cap on a response header line": a line past
 * RAS_HTTP_HEADER_MAX (but under libcurl's own 100 kB, so only rasd's cap
 * can catch it) fails with RAS_ETOOBIG naming the limit; an endless one
 * (1 MiB) fails as clearly. */
static void
endless_header_is_refused(void)
{
	struct ras_http_request r;

	arm(FAKE_FAULT_ENDLESS_HEADER, "/hdr", 0, 4u * RAS_HTTP_HEADER_MAX);
	get(&r, "/hdr", 5000, 0);
	CU_ASSERT_EQUAL(r.err, RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.errmsg, "RAS_HTTP_HEADER_MAX"));
	ras_http_request_release(&r);

	arm(FAKE_FAULT_ENDLESS_HEADER, "/hdr", 0, 0);
	get(&r, "/hdr", 5000, 0);
	if (r.err != RAS_ETOOBIG)
		fprintf(stderr, "endless header: %d %s\n", r.err, r.errmsg);
	CU_ASSERT_EQUAL(r.err, RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.errmsg, "RAS_HTTP_HEADER_MAX"));
	ras_http_request_release(&r);

	/* a line just under the cap is an ordinary answer */
	arm(FAKE_FAULT_ENDLESS_HEADER, "/hdr", 0, RAS_HTTP_HEADER_MAX - 100);
	get(&r, "/hdr", 5000, 0);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(r.status, 200);
	ras_http_request_release(&r);
	no_fault_answers();
}

/* A dropped connection, a cut-off body and a drip past the timeout: the
 * request may have been acted on, so the outcome is unknown
 * (RAS_ETIMEDOUT), never a success with half a body. */
static void
lost_answers_are_unknown(void)
{
	struct ras_http_request r;
	char url[128];
	int64_t t0;

	/* (a GET on a reused connection that dies unanswered is re-sent by
	 * libcurl itself: a write is marked no_replay, and so is this) */
	arm(FAKE_FAULT_DROP, "/x", 0, 0);
	snprintf(url, sizeof(url), "%s/x", fake_http_url(srv));
	ras_http_request_init(&r, "GET", url);
	r.timeout_ms = 5000;
	r.no_replay = true;
	CU_ASSERT_EQUAL(ras_http_perform(http, &r, 1), 0);
	CU_ASSERT_EQUAL(r.err, RAS_ETIMEDOUT);
	CU_ASSERT_EQUAL(r.status, 0);
	/* connected and sent: not "unreached", whatever became of it */
	CU_ASSERT_FALSE(r.unreached);
	ras_http_request_release(&r);

	arm(FAKE_FAULT_TRUNCATE, "/x", 0, 0);
	get(&r, "/x", 5000, 0);
	CU_ASSERT_EQUAL(r.err, RAS_ETIMEDOUT);
	CU_ASSERT(r.body_out.len < strlen(BODY));
	ras_http_request_release(&r);

	t0 = ras_time_mono_ms();
	arm(FAKE_FAULT_SLOW_DRIP, "/x", 200, 0);
	get(&r, "/x", 1000, 0);
	CU_ASSERT_EQUAL(r.err, RAS_ETIMEDOUT);
	CU_ASSERT(ras_time_mono_ms() - t0 < 3000);
	ras_http_request_release(&r);

	/* a delay within the timeout is only a delay; past it, unknown */
	arm(FAKE_FAULT_DELAY, "/x", 300, 0);
	get(&r, "/x", 5000, 0);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_STRING_EQUAL(r.body_out.data, BODY);
	ras_http_request_release(&r);
	arm(FAKE_FAULT_DELAY, "/x", 2000, 0);
	get(&r, "/x", 500, 0);
	CU_ASSERT_EQUAL(r.err, RAS_ETIMEDOUT);
	ras_http_request_release(&r);
	no_fault_answers();
}

/* An https request to a server whose handshake fails never reached it:
 * RAS_EIO, safe to retry. */
static void
tls_failure_is_never_sent(void)
{
	struct ras_http_opts o = { .allow_http_loopback = true };
	struct ras_http *h;
	struct ras_http_request r;
	char url[128];
	size_t before = fake_http_count(srv);

	CU_ASSERT_FATAL(ras_http_new(&o, &h) == 0);
	arm(FAKE_FAULT_TLS, NULL, 0, 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/tls", fake_http_port(srv));
	ras_http_request_init(&r, "GET", url);
	r.timeout_ms = 5000;
	CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
	CU_ASSERT_EQUAL(r.err, RAS_EIO);
	CU_ASSERT_EQUAL(fake_http_count(srv), before);
	/* a connection was made: the outbox must not take it for a host that
	 * is not there */
	CU_ASSERT_FALSE(r.unreached);
	ras_http_request_release(&r);
	ras_http_free(h);
	no_fault_answers();
}

/* A port nobody listens on refuses the connection: nothing was sent, and
 * the request says so (unreached), which the outbox's held routes rely on;
 * the flag does not outlive the request into the next one. */
static void
refused_connection_is_unreached(void)
{
	struct fake_http *gone = fake_http_start(answer, NULL);
	struct ras_http_request r;
	char url[128];

	snprintf(url, sizeof(url), "%s/x", fake_http_url(gone));
	fake_http_stop(gone);
	ras_http_request_init(&r, "POST", url);
	r.body = "{}";
	r.body_len = 2;
	r.timeout_ms = 5000;
	CU_ASSERT_EQUAL(ras_http_perform(http, &r, 1), 0);
	CU_ASSERT_EQUAL(r.err, RAS_EIO);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_TRUE(r.unreached);
	ras_http_request_release(&r);
	CU_ASSERT_FALSE(r.unreached);
	/* the same request answered: not unreached */
	fake_http_faults_clear(srv);
	get(&r, "/plain", 5000, 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_FALSE(r.unreached);
	ras_http_request_release(&r);
}

/* ---- the caller's loop drives the transfers --------------------------- */

struct loop {
	long due_ms;          /* from the driver's timer(), -1 none */
	int turns;            /* turns of the caller's loop during the wait */
	int64_t ticks_ms[64]; /* the caller's own 50 ms "work" while it waits */
	int nticks;
};

static void
drv_timer(void *ctx, long ms)
{
	struct loop *l = ctx;

	l->due_ms = ms;
}

static int
drv_wait(void *ctx, bool (*done)(void *arg), void *arg)
{
	struct loop *l = ctx;
	int64_t next_tick = ras_time_mono_ms() + 50;

	while (!done(arg)) {
		struct pollfd p = { .fd = ras_http_loop_fd(), .events = POLLIN };
		int64_t now = ras_time_mono_ms();
		long ms = next_tick > now ? (long)(next_tick - now) : 0;

		if (l->due_ms >= 0 && l->due_ms < ms)
			ms = l->due_ms;
		(void)poll(&p, 1, (int)ms);
		l->turns++;
		if (ras_time_mono_ms() >= next_tick) {
			if (l->nticks < 64)
				l->ticks_ms[l->nticks++] = ras_time_mono_ms();
			next_tick += 50;
		}
		ras_http_loop_dispatch();
	}
	return 0;
}

static int
drv_give_up(void *ctx, bool (*done)(void *arg), void *arg)
{
	(void)ctx;
	(void)done;
	(void)arg;
	return -1;
}

/* Three requests, one held back for a second: the perform returns only
 * when all are done, but meanwhile the caller's loop turned on its own
 * schedule (its 50 ms ticks kept coming), which is what keeps rasd's
 * intake, health and watchdog going while a remote service is slow. */
static void
caller_loop_keeps_turning(void)
{
	struct loop l = { .due_ms = -1 };
	struct ras_http_driver drv = { &l, drv_timer, drv_wait };
	struct ras_http_request r[3];
	char url[3][128];
	int64_t t0, gap = 0;

	ras_http_set_driver(&drv);
	fake_http_faults_clear(srv);
	{
		struct fake_fault ft = { .kind = FAKE_FAULT_DELAY, .path_has = "/slow", .ms = 1000 };

		fake_http_fault(srv, &ft);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(url[i], sizeof(url[i]), "%s/%s%d", fake_http_url(srv), i == 1 ? "slow" : "fast", i);
		ras_http_request_init(&r[i], "GET", url[i]);
		r[i].timeout_ms = 10000;
	}
	t0 = ras_time_mono_ms();
	CU_ASSERT_EQUAL(ras_http_perform(http, r, 3), 0);
	CU_ASSERT(ras_time_mono_ms() - t0 >= 1000);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(r[i].err, 0);
		CU_ASSERT_EQUAL(r[i].status, 200);
		ras_http_request_release(&r[i]);
	}
	CU_ASSERT(l.nticks >= 15);
	for (int i = 1; i < l.nticks; i++)
		if (l.ticks_ms[i] - l.ticks_ms[i - 1] > gap)
			gap = l.ticks_ms[i] - l.ticks_ms[i - 1];
	CU_ASSERT(gap < 250);

	/* a client's back-off (ras_http_sleep_ms) waits in the loop too */
	l.nticks = 0;
	t0 = ras_time_mono_ms();
	ras_http_sleep_ms(600);
	CU_ASSERT(ras_time_mono_ms() - t0 >= 600);
	CU_ASSERT(ras_time_mono_ms() - t0 < 1500);
	CU_ASSERT(l.nticks >= 8);

	/* a loop that gives the wait up: the batch ends as unknown.  The
	 * answer is held back again (a fault applies once): on a loaded
	 * machine a quick answer can be read inside the first socket action,
	 * before the wait begins, and then there is nothing to give up. */
	{
		struct fake_fault ft = { .kind = FAKE_FAULT_DELAY, .path_has = "/slow", .ms = 1000 };

		fake_http_fault(srv, &ft);
	}
	drv.wait = drv_give_up;
	ras_http_set_driver(&drv);
	ras_http_request_init(&r[0], "GET", url[1]);
	CU_ASSERT_EQUAL(ras_http_perform(http, r, 1), 0);
	CU_ASSERT_EQUAL(r[0].err, RAS_ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(r[0].errmsg, "transfer abandoned");
	ras_http_request_release(&r[0]);
	ras_http_set_driver(NULL);
	no_fault_answers();
}

/* ---- the FHIR delivery client against every fault ---------------------- */

/*
 * Each fault on a message POST ($process-message, whose answer has a
 * body to cut off or drip): a clear classification (RAS_ETIMEDOUT,
 * outcome unknown, is what the deliver stage resends; RAS_ETOOBIG and
 * RAS_EIO too), and the resend with the fault gone has the message
 * processed exactly once whether or not the faulted POST got through (the
 * receiver drops a MessageHeader id it has seen): nothing lost, nothing
 * doubled.
 */
static void
fhir_every_fault(void)
{
	static const struct {
		const char *name;
		enum fake_fault_kind kind;
		int ms;
		size_t bytes;
		int want;
	} faults[] = {
		{ "drop", FAKE_FAULT_DROP, 0, 0, RAS_ETIMEDOUT },
		{ "delay past the timeout", FAKE_FAULT_DELAY, 2500, 0, RAS_ETIMEDOUT },
		{ "truncated body", FAKE_FAULT_TRUNCATE, 0, 0, RAS_ETIMEDOUT },
		{ "oversize body", FAKE_FAULT_OVERSIZE, 0, RAS_HTTP_BODY_MAX + 1024, RAS_ETOOBIG },
		{ "endless header", FAKE_FAULT_ENDLESS_HEADER, 0, 0, RAS_ETOOBIG },
		{ "slow drip", FAKE_FAULT_SLOW_DRIP, 400, 0, RAS_ETIMEDOUT },
		{ "TLS failure", FAKE_FAULT_TLS, 0, 0, RAS_EIO },
	};
	struct fake_fhir *f = fake_fhir_start();
	struct fake_http *h = fake_fhir_http(f);
	struct ras_arena *a = ras_arena_new();

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		char ident[64], body[256], base[128];
		struct fake_fault ft = { .kind = faults[i].kind, .path_has = "/fhir/$process-message",
			.ms = faults[i].ms, .bytes = faults[i].bytes, .times = -1 };
		struct ras_fhir_post post = { .base = fake_fhir_base(f), .mode = "message",
			.identifier = ident, .content_type = "application/fhir+json", .body = body,
			.timeout_ms = 1000 };
		struct ras_http_request r;
		int err;

		snprintf(ident, sizeof(ident), "6f1c0000-0000-4000-8000-%012zu", i);
		snprintf(body, sizeof(body), "{\"resourceType\":\"Bundle\",\"type\":\"message\",\"entry\":"
		    "[{\"resource\":{\"resourceType\":\"MessageHeader\",\"id\":\"%s\"}}]}", ident);
		post.len = strlen(body);
		if (faults[i].kind == FAKE_FAULT_TLS) {
			/* an https endpoint whose handshake fails */
			snprintf(base, sizeof(base), "https://127.0.0.1:%u/fhir", fake_http_port(h));
			post.base = base;
			ft.times = 1;
		}
		fake_http_faults_clear(h);
		fake_http_fault(h, &ft);
		CU_ASSERT_EQUAL_FATAL(ras_fhir_client_prep(a, &post, &r), 0);
		r.no_replay = true;
		CU_ASSERT_EQUAL(ras_http_perform(http, &r, 1), 0);
		err = ras_fhir_client_result(&r);
		if (err != faults[i].want)
			fprintf(stderr, "FHIR, %s: %d %s\n", faults[i].name, err, ras_error_last());
		CU_ASSERT_EQUAL(err, faults[i].want);
		CU_ASSERT(*ras_error_last() != '\0');
		ras_http_request_release(&r);

		/* the fault gone: the resend delivers it, once */
		fake_http_faults_clear(h);
		post.base = fake_fhir_base(f);
		CU_ASSERT_EQUAL_FATAL(ras_fhir_client_prep(a, &post, &r), 0);
		CU_ASSERT_EQUAL(ras_http_perform(http, &r, 1), 0);
		CU_ASSERT_EQUAL(ras_fhir_client_result(&r), 0);
		CU_ASSERT_EQUAL(fake_fhir_messages(f), (int)i + 1);
		ras_http_request_release(&r);
	}
	ras_arena_free(a);
	fake_fhir_stop(f);
}

static int
setup(void)
{
	struct ras_http_opts o = { .allow_http_loopback = true };

	srv = fake_http_start(answer, NULL);
	return ras_http_new(&o, &http) == 0 ? 0 : 1;
}

static int
teardown(void)
{
	ras_http_free(http);
	fake_http_stop(srv);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "an answer without a fault", no_fault_answers },
		{ "a body past its ceiling is refused", oversize_body_is_refused },
		{ "a header line past its cap is refused", endless_header_is_refused },
		{ "dropped, cut off, dripped, delayed: unknown", lost_answers_are_unknown },
		{ "a failed TLS handshake never sent anything", tls_failure_is_never_sent },
		{ "a refused connection: unreached, nothing sent", refused_connection_is_unreached },
		{ "the caller's loop keeps turning", caller_loop_keeps_turning },
		{ NULL, NULL },
	};
	static const struct ras_test_case fhir_cases[] = {
		{ "every fault of the fault layer", fhir_every_fault },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "http", cases, setup, teardown },
		{ "fhir client", fhir_cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
