/*
 * bench_http (tests/bench/bench_http.c), scripts/bench's HTTP load
 * generator, against the recording fake server: a wrong count would
 * mislead every figure the benchmark prints.  Each file is sent once with
 * the intake's headers, a refusal or a lost answer counts as failed, the
 * clients run concurrently on no more connections than there are clients,
 * and the limits on files and answers hold.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_http.h"
#include "harness.h"
#include "ras/limits.h"

#define TOKEN "0123456789abcdef-bench"

struct server {
	pthread_mutex_t lock;
	int inflight, max_inflight;
	bool close_each;        /* answer "Connection: close" */
};

static struct server state = { .lock = PTHREAD_MUTEX_INITIALIZER };
static char *token_file;
static char huge[1024 * 1024];

/* 201 with a receipt; 422 for a body that says "refuse"; 201 with an
 * answer of 1 MiB for one that says "huge".  Each answer takes 5 ms, so
 * that the clients' requests overlap (the fake runs a thread per
 * connection), and the most at once is counted. */
static void
answer(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct server *s = ctx;

	pthread_mutex_lock(&s->lock);
	if (++s->inflight > s->max_inflight)
		s->max_inflight = s->inflight;
	pthread_mutex_unlock(&s->lock);
	usleep(5000);
	resp->content_type = "application/fhir+json";
	if (strstr(req->body, "refuse")) {
		resp->status = 422;
		resp->body = "{\"resourceType\":\"OperationOutcome\"}";
	} else if (strstr(req->body, "huge")) {
		resp->status = 201;
		resp->body = huge;
		resp->body_len = sizeof(huge);
	} else {
		resp->status = 201;
		resp->body = "{\"resourceType\":\"OperationOutcome\",\"issue\":[]}";
	}
	if (s->close_each)
		fake_resp_header(resp, "Connection", "close");
	pthread_mutex_lock(&s->lock);
	s->inflight--;
	pthread_mutex_unlock(&s->lock);
}

/* A directory of n files b-NNN.json, each {"file":NNN,...} with `mark`
 * in the files listed in marked[] (-1 ends it); returns its path. */
static char *
make_dir(const char *name, int n, const int *marked, const char *mark)
{
	char *dir = malloc(4096), rel[256], body[512];

	RAS_REQUIRE(dir);
	snprintf(dir, 4096, "%s/%s", ras_test_tmpdir(), name);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	for (int i = 0; i < n; i++) {
		bool m = false;

		for (const int *k = marked; k && *k >= 0; k++)
			m = m || *k == i;
		snprintf(rel, sizeof(rel), "%s/b-%03d.json", name, i);
		snprintf(body, sizeof(body), "{\"file\":%d,\"note\":\"%s\",\"pad\":\"%0200d\"}", i,
		    m ? mark : "plain", i);
		free(ras_test_write_tmp(rel, body, strlen(body)));
	}
	return dir;
}

/* bench_http ADDR TOKEN_FILE CLIENTS midnotts DIR; its exit status, its
 * output line in out (malloc'd). */
static int
run(const char *addr, const char *clients, const char *dir, char **out)
{
	char *argv[] = { (char *)ras_test_program("tests/bench_http"), (char *)addr, token_file,
		(char *)clients, "midnotts", (char *)dir, NULL };
	char *err = NULL;
	int rc = ras_test_spawn(argv, NULL, NULL, out, &err);

	if (err && *err)
		fprintf(stderr, "%s", err);
	free(err);
	return rc;
}

/* "OK FAILED SECONDS" */
static bool
parse(const char *out, unsigned *ok, unsigned *failed)
{
	double secs;

	return out && sscanf(out, "%u %u %lf", ok, failed, &secs) == 3 && secs >= 0;
}

/* Each recorded request's "file" number, counted: every one of 0..n-1
 * exactly once, with the intake's method, path and headers. */
static void
check_each_once(struct fake_http *srv, int n)
{
	int *seen = calloc((size_t)n, sizeof(int));

	RAS_REQUIRE(seen);
	CU_ASSERT_EQUAL(fake_http_count(srv), (size_t)n);
	for (size_t i = 0; i < fake_http_count(srv); i++) {
		const struct fake_req *r = fake_http_req(srv, i);
		const char *auth, *ct, *cl;
		int k = -1;
		char len[32];

		RAS_REQUIRE(r);
		CU_ASSERT_STRING_EQUAL(r->method, "POST");
		CU_ASSERT_STRING_EQUAL(r->path, "/fhir/Bundle?service=midnotts");
		auth = fake_req_header(r, "Authorization");
		ct = fake_req_header(r, "Content-Type");
		cl = fake_req_header(r, "Content-Length");
		CU_ASSERT(auth && strcmp(auth, "Bearer " TOKEN) == 0);
		CU_ASSERT(ct && strcmp(ct, "application/fhir+json") == 0);
		snprintf(len, sizeof(len), "%zu", r->body_len);
		CU_ASSERT(cl && strcmp(cl, len) == 0);
		CU_ASSERT_PTR_NULL(fake_req_header(r, "Expect"));
		if (sscanf(r->body, "{\"file\":%d,", &k) == 1 && k >= 0 && k < n)
			seen[k]++;
		else
			CU_FAIL("a body that is none of the files");
	}
	for (int k = 0; k < n; k++)
		if (seen[k] != 1) {
			fprintf(stderr, "file %d sent %d times\n", k, seen[k]);
			CU_FAIL("a file not sent exactly once");
		}
	free(seen);
}

static void
counts_each_file_once(void)
{
	static const int refused[] = { 7, 31, -1 };
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], *dir = make_dir("many", 60, refused, "refuse"), *out = NULL;
	unsigned ok = 0, failed = 0;

	/* not a *.json file: not sent */
	free(ras_test_write_tmp("many/notes.txt", "{\"file\":999}", 12));
	state.max_inflight = 0;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	CU_ASSERT_EQUAL(run(addr, "4", dir, &out), 0);
	CU_ASSERT(parse(out, &ok, &failed));
	CU_ASSERT_EQUAL(ok, 58);
	CU_ASSERT_EQUAL(failed, 2);
	check_each_once(srv, 60);
	/* keep-alive: four clients, four connections for sixty requests */
	CU_ASSERT(fake_http_connections(srv) >= 1 && fake_http_connections(srv) <= 4);
	/* and concurrent: more than one request at a time, never more than four */
	CU_ASSERT(state.max_inflight >= 2 && state.max_inflight <= 4);
	free(out);
	free(dir);
	fake_http_stop(srv);
}

static void
one_client_is_sequential(void)
{
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], *dir = make_dir("one", 12, NULL, NULL), *out = NULL;
	unsigned ok = 0, failed = 0;

	state.max_inflight = 0;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	CU_ASSERT_EQUAL(run(addr, "1", dir, &out), 0);
	CU_ASSERT(parse(out, &ok, &failed));
	CU_ASSERT_EQUAL(ok, 12);
	CU_ASSERT_EQUAL(failed, 0);
	check_each_once(srv, 12);
	CU_ASSERT_EQUAL(fake_http_connections(srv), 1);
	CU_ASSERT_EQUAL(state.max_inflight, 1);
	free(out);
	free(dir);
	fake_http_stop(srv);
}

static void
closed_connections_are_reopened(void)
{
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], *dir = make_dir("closing", 10, NULL, NULL), *out = NULL;
	unsigned ok = 0, failed = 0;

	state.close_each = true;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	CU_ASSERT_EQUAL(run(addr, "2", dir, &out), 0);
	state.close_each = false;
	CU_ASSERT(parse(out, &ok, &failed));
	CU_ASSERT_EQUAL(ok, 10);
	CU_ASSERT_EQUAL(failed, 0);
	check_each_once(srv, 10);
	/* the server hung up after every answer */
	CU_ASSERT_EQUAL(fake_http_connections(srv), 10);
	free(out);
	free(dir);
	fake_http_stop(srv);
}

static void
long_answer_is_failed(void)
{
	static const int marked[] = { 3, -1 };
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], *dir = make_dir("huge", 8, marked, "huge"), *out = NULL;
	unsigned ok = 0, failed = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	CU_ASSERT_EQUAL(run(addr, "2", dir, &out), 0);
	CU_ASSERT(parse(out, &ok, &failed));
	CU_ASSERT_EQUAL(ok, 7);
	CU_ASSERT_EQUAL(failed, 1);
	check_each_once(srv, 8);
	free(out);
	free(dir);
	fake_http_stop(srv);
}

static void
nobody_listening_is_failed(void)
{
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], *dir = make_dir("refused", 5, NULL, NULL), *out = NULL;
	unsigned ok = 9, failed = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	fake_http_stop(srv);
	CU_ASSERT_EQUAL(run(addr, "3", dir, &out), 0);
	CU_ASSERT(parse(out, &ok, &failed));
	CU_ASSERT_EQUAL(ok, 0);
	CU_ASSERT_EQUAL(failed, 5);
	free(out);
	free(dir);
}

static void
limits_refuse_before_sending(void)
{
	struct fake_http *srv = fake_http_start(answer, &state);
	char addr[64], path[4096], *dir = make_dir("big", 3, NULL, NULL), *out = NULL;
	size_t n = (size_t)RAS_PAYLOAD_MAX + 1;
	char *big = malloc(n);
	FILE *f;

	RAS_REQUIRE(big);
	memset(big, ' ', n);
	snprintf(path, sizeof(path), "%s/z-big.json", dir);
	f = fopen(path, "wb");
	RAS_REQUIRE(f);
	CU_ASSERT_EQUAL(fwrite(big, 1, n, f), n);
	CU_ASSERT_EQUAL(fclose(f), 0);
	free(big);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake_http_port(srv));
	/* a file past RAS_PAYLOAD_MAX: nothing sent */
	CU_ASSERT_EQUAL(run(addr, "2", dir, &out), 66);
	free(out);
	out = NULL;
	/* not loopback, or no clients: nothing sent either */
	CU_ASSERT_EQUAL(run("192.0.2.1:80", "2", dir, &out), 64);
	free(out);
	out = NULL;
	CU_ASSERT_EQUAL(run(addr, "0", dir, &out), 64);
	free(out);
	CU_ASSERT_EQUAL(fake_http_count(srv), 0);
	CU_ASSERT_EQUAL(fake_http_connections(srv), 0);
	free(dir);
	fake_http_stop(srv);
}

static int
setup(void)
{
	token_file = ras_test_write_tmp("token", TOKEN "\n", strlen(TOKEN) + 1);
	memset(huge, ' ', sizeof(huge));
	return 0;
}

static int
teardown(void)
{
	free(token_file);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "each file once, a refusal failed, kept connections", counts_each_file_once },
		{ "one client sends one at a time on one connection", one_client_is_sequential },
		{ "a connection the server closes is opened again", closed_connections_are_reopened },
		{ "an answer past the ceiling is failed", long_answer_is_failed },
		{ "nobody listening: every file failed", nobody_listening_is_failed },
		{ "a file past the ceiling, a remote address: nothing sent", limits_refuse_before_sending },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "bench_http", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
