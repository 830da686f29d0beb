/*
 * End-to-end tests: the real rasd as a subprocess, with a NOTIFY_SOCKET of
 * the test's own, a private database, the spool directory and the HTTP
 * listener; clients are lib/http (as any sender would be).
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_ers.h"
#include "fake_fhir.h"
#include "fake_http.h"
#include "fake_mesh.h"
#include "fake_pds.h"
#include "harness.h"
#include "referral_gen.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/json.h"
#include "ras/migrate.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras_config.h"
#include "rasd_proc.h"

#define TOKEN "test-token-0123456789abcdef"
#define START_MS 10000

static struct ras_http *http;
static char *token_path;
static char *ers_key_path;      /* rasd's e-RS signing key (owned by the rasd user) */
static char *ers_public_pem;    /* the fake e-RS checks client assertions with it */

static int
setup(void)
{
	struct ras_http_opts o = { .allow_http_loopback = true };
	char *dir = rasd_dir("ers-key"), cmd[2048], *argv[] = { "/bin/sh", "-c", cmd, NULL };
	char pub[PATH_MAX];

	token_path = ras_test_write_tmp("token", TOKEN "\n", strlen(TOKEN) + 1);
	chmod(token_path, 0644);
	ers_key_path = malloc(PATH_MAX);
	snprintf(ers_key_path, PATH_MAX, "%s/private-key.pem", dir);
	snprintf(pub, sizeof(pub), "%s/public-key.pem", dir);
	ras_test_fmt(cmd, sizeof(cmd), "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s'"
	    " 2>/dev/null && openssl pkey -in '%s' -pubout -out '%s' && chmod 600 '%s'%s%s",
	    ers_key_path, ers_key_path, pub, ers_key_path, geteuid() == 0 ? " && chown nobody " : "",
	    geteuid() == 0 ? ers_key_path : "");
	if (ras_test_spawn(argv, NULL, NULL, NULL, NULL) != 0)
		return 1;
	ers_public_pem = ras_test_read(pub, NULL);
	free(dir);
	if (gen_setup() != 0)
		return 1;
	return ras_http_new(&o, &http) == 0 ? 0 : 1;
}

static int
teardown(void)
{
	ras_http_free(http);
	gen_teardown();
	free(token_path);
	free(ers_key_path);
	free(ers_public_pem);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

struct env {
	struct ras_db *db;
	char *conninfo;
	char *spool;
	char *config;
};

static void
env_new(struct env *e, const char *name, const char *extra)
{
	char text[8192], dir[64];

	memset(e, 0, sizeof(*e));
	e->db = ras_test_db(name, &e->conninfo);
	snprintf(dir, sizeof(dir), "spool-%s", name);
	e->spool = rasd_dir(dir);
	snprintf(text, sizeof(text),
	    "[database]\nconninfo = %s\nbatch_size = 20\n"
	    "[daemon]\nstage_interval = 1\nheartbeat = 5\n"
	    "[http]\nlisten = 127.0.0.1:0\ntoken = %s\nmax_body = 65536\n"
	    "[spool]\ndirectory = %s\nrescan = 2\n%s\n%s",
	    e->conninfo, token_path, e->spool, extra ? extra : "", RAS_TEST_CLINICIANS);
	snprintf(dir, sizeof(dir), "%s.conf", name);
	e->config = rasd_config(dir, text);
}

static void
env_free(struct env *e)
{
	ras_db_close(e->db);
	free(e->conninfo);
	free(e->spool);
	free(e->config);
}

static int64_t
count(struct ras_db *db, const char *sql)
{
	struct ras_db_res *res = NULL;
	int64_t n = -1;

	if (ras_db_query(db, &res, sql, 0, NULL) == 0)
		(void)ras_db_res_int(res, 0, 0, &n);
	ras_db_res_free(res);
	return n;
}

struct resp {
	long status;
	char *body;
	char corr[80];
};

static struct resp
request(const struct rasd_proc *p, const char *method, const char *path, const char *body,
    size_t len, const char *auth, const char *ctype)
{
	struct ras_http_request r;
	struct resp out = { 0, NULL, "" };
	char url[256], bearer[128];

	snprintf(url, sizeof(url), "http://%s%s", p->http, path);
	ras_http_request_init(&r, method, url);
	if (auth) {
		snprintf(bearer, sizeof(bearer), "Bearer %s", auth);
		(void)ras_http_request_header(&r, "Authorization", bearer);
	}
	if (ctype)
		(void)ras_http_request_header(&r, "Content-Type", ctype);
	r.body = body;
	r.body_len = len;
	r.timeout_ms = 10000;
	CU_ASSERT_EQUAL(ras_http_perform(http, &r, 1), 0);
	out.status = r.status;
	out.body = strdup(r.body_out.data ? r.body_out.data : "");
	(void)ras_http_response_header(&r, "X-Correlation-ID", out.corr, sizeof(out.corr));
	ras_http_request_release(&r);
	return out;
}

static struct resp
post(const struct rasd_proc *p, const char *path, const char *body, size_t len)
{
	return request(p, "POST", path, body, len, TOKEN, "application/fhir+json");
}

static struct resp
post_fixture(const struct rasd_proc *p, const char *path, const char *rel)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	struct resp r = post(p, path, data, len);

	free(data);
	return r;
}

/* The value of one sample of /metrics (-1 when absent). */
static double
metric(const struct rasd_proc *p, const char *series)
{
	struct resp r = request(p, "GET", "/metrics", NULL, 0, NULL, NULL);
	const char *line = r.body;
	double v = -1;

	while (line && *line) {
		size_t l = strlen(series);

		if (strncmp(line, series, l) == 0 && line[l] == ' ') {
			v = strtod(line + l + 1, NULL);
			break;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(r.body);
	return v;
}

/* The sum of every sample of a metric family (its name then '{'). */
static double
metric_sum(const struct rasd_proc *p, const char *family)
{
	struct resp r = request(p, "GET", "/metrics", NULL, 0, NULL, NULL);
	const char *line = r.body;
	size_t l = strlen(family);
	double v = 0;

	while (line && *line) {
		const char *sp;

		if (strncmp(line, family, l) == 0 && line[l] == '{' && (sp = strchr(line, ' ')) != NULL)
			v += strtod(sp + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(r.body);
	return v;
}

/* A referral bundle with its own UBRN. */
static char *
referral_with_ubrn(const char *ubrn, size_t *len)
{
	char *data = ras_test_read(ras_test_fixture("r4/referral-collection-urn.json"), len);
	char *p = strstr(data, "\"100000000101\"");

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p + 1, ubrn, 12);
	return data;
}

/* The same, its UBRN the number n in twelve digits. */
static char *
referral_numbered(int n, size_t *len)
{
	char ubrn[16];

	snprintf(ubrn, sizeof(ubrn), "%012d", n);
	return referral_with_ubrn(ubrn, len);
}

/* Put n distinct referrals straight into the inbox (as a burst of intake). */
static void
load_inbox(struct ras_db *db, int n, int base)
{
	for (int i = 0; i < n;) {
		struct ras_inbox_item items[100];
		struct ras_inbox_put_result out[100];
		char *bodies[100];
		int k = 0;

		for (; k < 100 && i < n; k++, i++) {
			char ubrn[16];
			size_t len;

			snprintf(ubrn, sizeof(ubrn), "%012d", base + i);
			bodies[k] = referral_with_ubrn(ubrn, &len);
			items[k] = (struct ras_inbox_item){ .data = bodies[k], .len = len, .source = "test",
				.source_ref = "burst" };
		}
		CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, (size_t)k, out), 0);
		for (int q = 0; q < k; q++)
			free(bodies[q]);
	}
}

static void
write_spool(const char *dir, const char *name, const char *rel)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	FILE *f;

	/* The documented way: write a dot-file, then rename into place. */
	snprintf(tmp, sizeof(tmp), "%s/.%s", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	f = fopen(tmp, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
	fclose(f);
	CU_ASSERT_EQUAL(rename(tmp, dst), 0);
	free(data);
}

/* data[0..len) written to path (created or replaced); 0, or -1. */
static int
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int err = f && fwrite(data, 1, len, f) == len ? 0 : -1;

	if (f && fclose(f) != 0)
		err = -1;
	return err;
}

static bool
exists(const char *dir, const char *name)
{
	char p[PATH_MAX];

	ras_test_fmt(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* Name in dir ending in "-<name>" (the payload id prefix), or NULL. */
static char *
moved_name(const char *dir, const char *name)
{
	char cmd[PATH_MAX * 2], *out = NULL, *argv[] = { "/bin/sh", "-c", cmd, NULL };

	snprintf(cmd, sizeof(cmd), "cd '%s' 2>/dev/null && ls | grep -- '-%s$' | head -n 1", dir, name);
	if (ras_test_spawn(argv, NULL, NULL, &out, NULL) != 0 || out == NULL || *out == '\0') {
		free(out);
		return NULL;
	}
	out[strcspn(out, "\n")] = '\0';
	return out;
}

static char *
wait_moved(const char *dir, const char *name, int ms)
{
	for (int waited = 0; waited <= ms; waited += 50) {
		char *m = moved_name(dir, name);

		if (m)
			return m;
		usleep(50000);
	}
	return NULL;
}

struct wait_count {
	struct ras_db *db;
	const char *sql;
	int64_t want;
};

static bool
count_reached(void *ctx)
{
	struct wait_count *w = ctx;

	return count(w->db, w->sql) >= w->want;
}

static bool
wait_count(struct ras_db *db, const char *sql, int64_t want, int ms)
{
	struct wait_count w = { db, sql, want };

	return rasd_until(count_reached, &w, ms);
}

/* ---- tests ----------------------------------------------------------------- */

static void
check_config_reports_everything(void)
{
	char *bad, *out = NULL, *argv[5];
	char text[2048];
	struct env e;
	int rc;

	env_new(&e, "checkcfg", NULL);
	argv[0] = (char *)ras_test_program("daemon/rasd");
	argv[1] = "--config";
	argv[2] = e.config;
	argv[3] = "--check-config";
	argv[4] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, NULL);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, "configuration OK\n");
	free(out);

	snprintf(text, sizeof(text),
	    "[database]\nbatch_size = 0\n[daemon]\nlog_level = chatty\n"
	    "[http]\nlisten = 127.0.0.1:8443\nmax_body = 12\n[spool]\ndirectory = /nonexistent/spool\nsettle = 0\n"
	    "[nonsense]\nx = 1\n[general]\nmappings = /nonexistent/mappings\n");
	bad = rasd_config("bad.conf", text);
	argv[2] = bad;
	rc = ras_test_spawn(argv, NULL, NULL, &out, NULL);
	CU_ASSERT_EQUAL(rc, 78);
	CU_ASSERT_PTR_NULL(strstr(out, "configuration OK"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "database.batch_size must be between 1 and 10000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "daemon.log_level must be debug"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "http.max_body must be between 1024 and"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown section [nonsense]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[spool] directory \"/nonexistent/spool\""));
	/* a settle time of 0 would take files still being written */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "spool.settle must be between 1 and 3600"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[general] mappings \"/nonexistent/mappings\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs token"));
	free(out);
	free(bad);
	/* The shipped example parses: only what this machine lacks is reported
	 * (the credential, the installed mappings, the spool). */
	argv[2] = (char *)RAS_SOURCE_ROOT "/systemd/rasd.conf.example";
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, NULL), 78);
	CU_ASSERT_PTR_NULL(strstr(out, "unknown"));
	CU_ASSERT_PTR_NULL(strstr(out, " must "));
	CU_ASSERT_PTR_NULL(strstr(out, "expected"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "secret http.token"));
	free(out);
	bad = rasd_config("bad2.conf", "[http]\nlisten = 127.0.0.1\n");
	argv[2] = bad;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, NULL), 78);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "http.listen must be HOST:PORT"));
	free(out);
	free(bad);
	env_free(&e);
}

/* The shipped example names every option of every section (set, or as a
 * commented-out "# name = value" line), so operators see all of them. */
static void
example_config_covers_every_option(void)
{
	char *text = ras_test_read(RAS_SOURCE_ROOT "/systemd/rasd.conf.example", NULL);
	struct ras_buf seen = RAS_BUF_INIT(0);
	char section[64] = "";
	int missing = 0;

	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[256];

		snprintf(buf, sizeof(buf), "%.*s", (int)(len < 255 ? len : 255), line);
		if (buf[0] == '[')
			snprintf(section, sizeof(section), "%.*s", (int)strcspn(buf + 1, " ]"), buf + 1);
		else {
			const char *p = strncmp(buf, "# ", 2) == 0 ? buf + 2 : buf;
			size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");

			if (n && strncmp(p + n, " =", 2) == 0)
				(void)ras_buf_printf(&seen, "|%s.%.*s|", section, (int)n, p);
		}
		line = nl ? nl + 1 : NULL;
	}
	for (const struct ras_option *o = ras_config_options; o->name; o++) {
		char key[128];

		snprintf(key, sizeof(key), "|%s.%s|", o->section, o->name);
		if (seen.data == NULL || strstr(seen.data, key) == NULL) {
			fprintf(stderr, "systemd/rasd.conf.example lacks [%s] %s\n", o->section, o->name);
			missing++;
		}
	}
	CU_ASSERT_EQUAL(missing, 0);
	ras_buf_free(&seen);
	free(text);
}

static void
refuses_root(void)
{
	struct rasd_proc p;
	struct env e;
	char *log;

	if (geteuid() != 0) {
		ras_test_skip("needs root: rasd refuses to start only when started as root");
		return;
	}
	env_new(&e, "root", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, (const char *[]){ "--foreground", NULL },
	    (const char *[]){ "RASD_TEST_AS_ROOT=1", NULL }), 0);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, START_MS), 77);
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "must not run as root"));
	free(log);
	rasd_free(&p);
	env_free(&e);
}

static void
refuses_other_schema(void)
{
	struct rasd_proc p;
	struct env e;
	char *log;

	env_new(&e, "schema", NULL);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "INSERT INTO schema_version (version, name)"
	    " VALUES (99, '099_future.sql')"), 0);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, START_MS), 78);
	CU_ASSERT_FALSE(p.notes && strstr(p.notes, "READY=1"));
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "newer than this rasd knows"));
	free(log);
	rasd_free(&p);
	env_free(&e);
}

static void
ready_health_and_clean_stop(void)
{
	struct rasd_proc p;
	struct resp r;
	struct env e;
	char *log;

	env_new(&e, "ready", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL,
	    (const char *[]){ "WATCHDOG_USEC=200000", NULL }), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	/* The loop pings the watchdog every WATCHDOG_USEC / 2. */
	CU_ASSERT(rasd_wait_notify(&p, "WATCHDOG=1", 2000));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.notes, "MAINPID="));
	/* normalise and triage; no e-RS, no delivery route configured */
	CU_ASSERT_PTR_NOT_NULL(strstr(p.notes, "STATUS=ready: 2 unit(s)"));
	CU_ASSERT_STRING_NOT_EQUAL(p.http, "");
	r = request(&p, "GET", "/healthz", NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	free(r.body);
	r = request(&p, "GET", "/readyz", NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	free(r.body);
	CU_ASSERT_EQUAL(metric(&p, "rasd_ready"), 1);
	CU_ASSERT_EQUAL(metric(&p, "rasd_database_up"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM daemon_instances WHERE stopped_at IS NULL"), 1);

	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.notes, "STOPPING=1"));
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "SIGTERM: stopping"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "stopped"));
	free(log);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM daemon_instances WHERE stopped_at IS NOT NULL"), 1);
	rasd_free(&p);
	env_free(&e);
}

static void
http_intake(void)
{
	struct rasd_proc p;
	struct resp r;
	struct env e;

	env_new(&e, "http", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));

	r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");
	CU_ASSERT_EQUAL(r.status, 201);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"resourceType\":\"OperationOutcome\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"code\":\"stored\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "referral 100000000101 v1"));
	CU_ASSERT_NOT_EQUAL(r.corr[0], '\0');
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '100000000101'"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'http'"
	    " AND source_ref = '/fhir/Bundle' AND correlation_id IS NOT NULL"), 1);

	/* The same bytes again: 200, nothing new. */
	r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"code\":\"duplicate\""));
	free(r.body);
	/* The FHIR messaging URL takes a message bundle. */
	r = post_fixture(&p, "/fhir/$process-message", "r4/referral-message.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	/* Kept but refused: 422 with the reason. */
	r = post_fixture(&p, "/fhir/Bundle", "bad/nhs-invalid.json");
	CU_ASSERT_EQUAL(r.status, 422);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"severity\":\"error\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Modulus 11"));
	CU_ASSERT_PTR_NULL(strstr(r.body, "9990000019"));
	free(r.body);
	/* Not JSON: 400, still kept. */
	r = post_fixture(&p, "/fhir/Bundle", "bad/malformed.json");
	CU_ASSERT_EQUAL(r.status, 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "malformed JSON"));
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE state = 'rejected'"), 2);

	/* Authentication and protocol errors: nothing kept. */
	r = request(&p, "POST", "/fhir/Bundle", "{}", 2, NULL, "application/fhir+json");
	CU_ASSERT_EQUAL(r.status, 401);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"code\":\"login\""));
	free(r.body);
	r = request(&p, "POST", "/fhir/Bundle", "{}", 2, "wrong-token-0123456789", "application/fhir+json");
	CU_ASSERT_EQUAL(r.status, 401);
	free(r.body);
	r = request(&p, "POST", "/fhir/Bundle", "<Bundle/>", 9, TOKEN, "application/fhir+xml");
	CU_ASSERT_EQUAL(r.status, 415);
	free(r.body);
	r = request(&p, "GET", "/fhir/Bundle", NULL, 0, TOKEN, NULL);
	CU_ASSERT_EQUAL(r.status, 405);
	free(r.body);
	r = request(&p, "GET", "/fhir/Patient", NULL, 0, TOKEN, NULL);
	CU_ASSERT_EQUAL(r.status, 404);
	free(r.body);
	{
		size_t big = 70000;
		char *body = malloc(big);

		memset(body, ' ', big);
		body[0] = '{';
		body[big - 1] = '}';
		r = post(&p, "/fhir/Bundle", body, big);
		CU_ASSERT_EQUAL(r.status, 413);
		free(r.body);
		free(body);
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 4);
	CU_ASSERT_EQUAL(metric(&p, "rasd_http_responses_total{class=\"4xx\"}"), 8);
	/* three POSTs and the /metrics scrape just above */
	CU_ASSERT_EQUAL(metric(&p, "rasd_http_responses_total{class=\"2xx\"}"), 4);
	/* ?service= names the rasd service (one URL per service on a
	 * referral portal); an unknown one is refused and nothing kept. */
	r = post_fixture(&p, "/fhir/Bundle?service=no-such-service", "r4/referral-transaction-relative.json");
	CU_ASSERT_EQUAL(r.status, 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "has no rule set"));
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 4);
	{
		size_t len;
		char *body = referral_with_ubrn("100000000901", &len);

		r = post(&p, "/fhir/Bundle?service=bassetlaw-2022", body, len);
		CU_ASSERT_EQUAL(r.status, 201);
		free(r.body);
		free(body);
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '100000000901'"
	    " AND service = 'bassetlaw-2022'"), 1);

	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

/* PDS (issue 10): while PDS is unavailable a referral waits in state
 * "demographics" (nothing dropped, nothing triaged without it), and
 * /metrics shows the wait and the lookups by result. */
static void
pds_unavailable_waits_visibly(void)
{
	struct fake_pds *f = fake_pds_start();
	struct rasd_proc p;
	struct resp r;
	struct env e;
	char extra[512];
	int waited = 0;

	fake_pds_fail(f, 100000, 503);
	snprintf(extra, sizeof(extra), "[pds]\nbase_url = %s\nmode = sandbox\nverify = true\n"
	    "max_attempts = 2\ntimeout = 2\n", fake_pds_base(f));
	env_new(&e, "pds", extra);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	r = post_fixture(&p, "/fhir/$process-message?service=midnotts", "r4/referral-message.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	while (waited < 15000 && count(e.db, "SELECT count(*) FROM pds_lookups WHERE result = 'unavailable'") < 1) {
		usleep(100000);
		waited += 100;
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE state = 'demographics'"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions"), 0);
	CU_ASSERT_EQUAL(metric(&p, "rasd_pds_waiting_referrals"), 1);
	CU_ASSERT_EQUAL(metric(&p, "rasd_queue_depth{stage=\"demographics\"}"), 1);
	CU_ASSERT(metric(&p, "rasd_queue_oldest_seconds{stage=\"demographics\"}") >= 0);
	CU_ASSERT(metric(&p, "rasd_pds_oldest_waiting_seconds") >= 0);
	CU_ASSERT_EQUAL(metric(&p, "rasd_pds_lookups{result=\"unavailable\"}"), 1);
	/* what rasd sent: one X-Request-ID for the retry of that lookup */
	CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(f)), 2);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fake_http_req(fake_pds_http(f), 0), "X-Request-ID"),
	    fake_req_header(fake_http_req(fake_pds_http(f), 1), "X-Request-ID"));
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
	fake_pds_stop(f);
}

static void
http_concurrent_senders(void)
{
	struct ras_http_request reqs[24];
	char *bodies[24], url[128], bearer[64];
	struct rasd_proc p;
	struct env e;

	env_new(&e, "concurrent", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	snprintf(url, sizeof(url), "http://%s/fhir/Bundle", p.http);
	snprintf(bearer, sizeof(bearer), "Bearer %s", TOKEN);
	for (int i = 0; i < 24; i++) {
		char ubrn[16];
		size_t len;

		snprintf(ubrn, sizeof(ubrn), "%012d", 300000 + i);
		bodies[i] = referral_with_ubrn(ubrn, &len);
		ras_http_request_init(&reqs[i], "POST", url);
		(void)ras_http_request_header(&reqs[i], "Authorization", bearer);
		(void)ras_http_request_header(&reqs[i], "Content-Type", "application/fhir+json");
		reqs[i].body = bodies[i];
		reqs[i].body_len = len;
		reqs[i].timeout_ms = 20000;
	}
	CU_ASSERT_EQUAL(ras_http_perform(http, reqs, 24), 0);
	for (int i = 0; i < 24; i++) {
		CU_ASSERT_EQUAL(reqs[i].status, 201);
		ras_http_request_release(&reqs[i]);
		free(bodies[i]);
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals"), 24);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

/* A connection that sends nothing: while it is open, a group in which
 * every other connection waits still waits for [http] commit_delay. */
static int
idle_connection(const struct rasd_proc *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *colon = strrchr(p->http, ':');
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long port;

	CU_ASSERT_FATAL(fd >= 0 && colon != NULL);
	port = strtol(colon + 1, NULL, 10);
	CU_ASSERT_FATAL(port > 0 && port <= 65535);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A POST written on a socket of its own (Connection: close), not read:
 * the test decides when to look for the answer. */
static void
post_on(int fd, const struct rasd_proc *p, const char *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head), "POST /fhir/Bundle HTTP/1.1\r\nHost: %s\r\n"
	    "Authorization: Bearer %s\r\nContent-Type: application/fhir+json\r\n"
	    "Connection: close\r\nContent-Length: %zu\r\n\r\n", p->http, TOKEN, len);

	CU_ASSERT_EQUAL_FATAL(write(fd, head, (size_t)n), n);
	CU_ASSERT_EQUAL_FATAL(write(fd, body, len), (ssize_t)len);
}

static int
raw_post(const struct rasd_proc *p, const char *body, size_t len)
{
	int fd = idle_connection(p);

	post_on(fd, p, body, len);
	return fd;
}

/* Everything the server wrote before closing (empty: no answer). */
static char *
raw_answer(int fd, int timeout_ms)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char chunk[4096];
	ssize_t n;

	while (poll(&pf, 1, timeout_ms) > 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		(void)ras_buf_append(&b, chunk, (size_t)n);
	(void)ras_buf_putc(&b, '\0');
	close(fd);
	return ras_buf_detach(&b, NULL);
}

/* Each of fds[0..n) is answered 201 (created) within timeout_ms. */
static void
expect_created(const int *fds, int n, int timeout_ms)
{
	for (int i = 0; i < n; i++) {
		char *a = raw_answer(fds[i], timeout_ms);

		CU_ASSERT_EQUAL(strncmp(a, "HTTP/1.1 201", 12), 0);
		free(a);
	}
}

/*
 * Group commit ([http] commit_delay): concurrent POSTs wait together and
 * are kept by one transaction; none is answered before that commit.  Here
 * the delay is long (3 s), and an idle connection stays open so that the
 * group waits for it, so that the test can kill rasd while a group is
 * gathered and not yet committed: no sender has an answer then, and after
 * a normal group every answered payload is stored, all in one commit.
 * Last, with no idle connection, a group in which every open connection
 * waits is committed at once, long before its delay.
 */
static void
http_group_commit_answers_only_committed(void)
{
	enum { K = 6 };
	struct rasd_proc p;
	struct env e;
	int fds[K], idle;
	char *bodies[K];
	size_t lens[K];

	env_new(&e, "groupcommit", "[http]\ncommit_delay = 3000\ncommit_workers = 1\n");
	for (int i = 0; i < K; i++)
		bodies[i] = referral_numbered(310000 + i, &lens[i]);
	/* 1: killed while the group waits for its commit */
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	idle = idle_connection(&p);
	for (int i = 0; i < K; i++)
		fds[i] = raw_post(&p, bodies[i], lens[i]);
	usleep(300 * 1000);
	for (int i = 0; i < K; i++) {
		struct pollfd pf = { .fd = fds[i], .events = POLLIN };

		CU_ASSERT_EQUAL(poll(&pf, 1, 0), 0);    /* not answered yet */
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 0);
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	for (int i = 0; i < K; i++) {
		char *a = raw_answer(fds[i], 2000);

		CU_ASSERT_STRING_EQUAL(a, "");          /* never told "kept" */
		free(a);
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 0);
	close(idle);
	rasd_free(&p);

	/* 2: the group committed: every sender answered 201, each payload
	 * stored, all by one transaction; nothing lost to a kill after */
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	idle = idle_connection(&p);
	for (int i = 0; i < K; i++)
		fds[i] = raw_post(&p, bodies[i], lens[i]);
	expect_created(fds, K, 10000);
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), K);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(DISTINCT xmin::text) FROM inbox"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn LIKE '00000031000_'"), K);
	close(idle);
	rasd_free(&p);

	/* 3: SIGTERM while a group waits: it is kept, and answered, before
	 * rasd stops */
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	idle = idle_connection(&p);
	for (int i = 0; i < K; i++) {
		free(bodies[i]);
		bodies[i] = referral_numbered(320000 + i, &lens[i]);
		fds[i] = raw_post(&p, bodies[i], lens[i]);
	}
	usleep(300 * 1000);
	rasd_kill(&p, SIGTERM);
	expect_created(fds, K, 10000);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 2 * K);
	close(idle);
	rasd_free(&p);
	env_free(&e);

	/* 4: every open connection waits in the group: committed at once,
	 * not after the 5 s delay (the longest allowed: an answer later than
	 * 4 s is none here), and still answered only once stored */
	env_new(&e, "groupnowait", "[http]\ncommit_delay = 5000\n");
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	for (int i = 0; i < K; i++) {
		free(bodies[i]);
		bodies[i] = referral_numbered(330000 + i, &lens[i]);
		fds[i] = raw_post(&p, bodies[i], lens[i]);
	}
	expect_created(fds, K, 4000);
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn LIKE '00000033000_'"), K);
	rasd_free(&p);
	for (int i = 0; i < K; i++)
		free(bodies[i]);
	env_free(&e);
}

/*
 * [http] commit_workers = 2: groups kept by worker threads, side by side,
 * each on a database connection of its own.  The test holds a lock that
 * stops every insert into the inbox, so that each group waits inside its
 * transaction, in a worker, while the loop goes on:
 *   1. eight POSTs on eight open connections make two groups of four (the
 *      senders shared between the two idle workers), both waiting in the
 *      database at once; nobody is answered; kill -9, then the lock let
 *      go: no sender was told anything, nothing is stored;
 *   2. the same with the lock let go while rasd runs: every sender is
 *      answered 201 only then, the payloads kept by two transactions, and
 *      all of them decided; a kill -9 after loses nothing;
 *   3. the two groups carry the same two referrals (in other bytes): one
 *      group's insert of each waits for the other's commit, then finds it
 *      stored.  Every sender is answered 2xx, each referral is stored once,
 *      and every referral is decided.
 */
static int64_t
waiting_for_inbox(struct ras_db *db)
{
	/* (inside a transaction the activity view is a snapshot: taken anew) */
	CU_ASSERT_EQUAL(ras_db_exec(db, "SELECT pg_stat_clear_snapshot()"), 0);
	return count(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
	    " AND wait_event_type = 'Lock' AND query LIKE '%inbox%'");
}

static void
http_groups_side_by_side(void)
{
	enum { K = 8 };
	struct rasd_proc p;
	struct env e;
	int fds[K];
	char *bodies[K];
	size_t lens[K];

	env_new(&e, "workers", "[http]\ncommit_delay = 3000\ncommit_workers = 2\n");
	for (int i = 0; i < K; i++)
		bodies[i] = referral_numbered(350000 + i, &lens[i]);
	for (int round = 1; round <= 3; round++) {
		if (round == 3) {
			for (int i = 0; i < K; i++) {
				free(bodies[i]);
				bodies[i] = referral_numbered(360000 + (i == 4 || i == 5 ? i - 4 : i), &lens[i]);
				if (i == 4 || i == 5) {     /* other bytes */
					char *b = realloc(bodies[i], lens[i] + 1);

					CU_ASSERT_FATAL(b != NULL);
					b[lens[i]++] = '\n';
					bodies[i] = b;
				}
			}
		}
		CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
		CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
		for (int i = 0; i < K; i++)
			fds[i] = idle_connection(&p);
		usleep(300 * 1000);   /* (rasd has taken every connection) */
		CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "BEGIN"), 0);
		CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "LOCK TABLE inbox IN SHARE MODE"), 0);
		for (int i = 0; i < K; i++)
			post_on(fds[i], &p, bodies[i], lens[i]);
		/* two groups, each waiting for the lock in a transaction of its own */
		for (int t = 0; t < 100 && waiting_for_inbox(e.db) < 2; t++)
			usleep(50 * 1000);
		usleep(200 * 1000);   /* (and no third) */
		CU_ASSERT_EQUAL(waiting_for_inbox(e.db), 2);
		for (int i = 0; i < K; i++) {
			struct pollfd pf = { .fd = fds[i], .events = POLLIN };

			CU_ASSERT_EQUAL(poll(&pf, 1, 0), 0);    /* not answered */
		}
		if (round == 1) {
			rasd_kill(&p, SIGKILL);
			CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
			ras_db_rollback(e.db);
			for (int i = 0; i < K; i++) {
				char *a = raw_answer(fds[i], 2000);

				CU_ASSERT_STRING_EQUAL(a, "");  /* never told "kept" */
				free(a);
			}
			usleep(200 * 1000);   /* (the server has ended their sessions) */
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 0);
		} else if (round == 3) {
			ras_db_rollback(e.db);
			for (int i = 0; i < K; i++) {
				char *a = raw_answer(fds[i], 10000);

				if (strncmp(a, "HTTP/1.1 20", 11) != 0)
					fprintf(stderr, "expected 2xx, got: %.300s\n", a);
				CU_ASSERT_EQUAL(strncmp(a, "HTTP/1.1 20", 11), 0);
				free(a);
			}
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 2 * K);   /* (round 2's too) */
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '000000360000'"), 1);
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '000000360001'"), 1);
			for (int t = 0; t < 100 && count(e.db, "SELECT count(*) FROM referrals WHERE ubrn LIKE '00000036000_'"
			    " AND state <> 'new'") < 6; t++)
				usleep(100 * 1000);
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn LIKE '00000036000_'"
			    " AND state <> 'new'"), 6);
			rasd_kill(&p, SIGTERM);
			CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
		} else {
			ras_db_rollback(e.db);
			expect_created(fds, K, 10000);
			rasd_kill(&p, SIGKILL);
			CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), K);
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(DISTINCT xmin::text) FROM inbox"), 2);
			CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn LIKE '00000035000_'"
			    " AND state <> 'new'"), K);
		}
		rasd_free(&p);
	}
	for (int i = 0; i < K; i++)
		free(bodies[i]);
	env_free(&e);
}

/* The answer on fd: its status line starts with `status` and its
 * OperationOutcome has intake state `state` and says `says`. */
static void
expect_answer(int fd, const char *status, const char *state, const char *says)
{
	char *a = raw_answer(fd, 10000), code[64];

	snprintf(code, sizeof(code), "\"code\":\"%s\"", state);
	if (strncmp(a, status, strlen(status)) != 0 || strstr(a, code) == NULL || strstr(a, says) == NULL)
		fprintf(stderr, "expected %s %s \"%s\", got: %s\n", status, state, says, a);
	CU_ASSERT_EQUAL(strncmp(a, status, strlen(status)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(a, code));
	CU_ASSERT_PTR_NOT_NULL(strstr(a, says));
	free(a);
}

/*
 * What each sender of one group is told (the receipts, ras_receive): a
 * new referral; the same bytes again in the group; the same referral in
 * other bytes; a revision of a referral a group before this one stored;
 * the bytes of that earlier payload again; a payload kept but rejected;
 * another new referral.  Receipts the group knows are built from memory,
 * the others read from the database: each says what the database holds.
 */
static void
http_group_receipts(void)
{
	enum { K = 7 };
	struct rasd_proc p;
	struct env e;
	int fds[K], idle;
	char *bodies[K], *earlier, *at, says[128];
	size_t lens[K], elen;
	int64_t first, before;

	env_new(&e, "receipts", "[http]\ncommit_delay = 3000\ncommit_workers = 1\n"
	    "[triage]\ndefault_service = midnotts\n");
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	/* a group before: B stored */
	earlier = referral_with_ubrn("000000340002", &elen);
	fds[0] = raw_post(&p, earlier, elen);
	expect_answer(fds[0], "HTTP/1.1 201", "stored", "referral 000000340002 v1");
	before = count(e.db, "SELECT id FROM inbox ORDER BY id DESC LIMIT 1");

	bodies[0] = referral_with_ubrn("000000340001", &lens[0]);           /* A */
	bodies[1] = malloc(lens[0]);                                         /* A's bytes again */
	CU_ASSERT_FATAL(bodies[1] != NULL);
	memcpy(bodies[1], bodies[0], lens[0]);
	lens[1] = lens[0];
	bodies[2] = malloc(lens[0] + 1);                                     /* A in other bytes */
	CU_ASSERT_FATAL(bodies[2] != NULL);
	memcpy(bodies[2], bodies[0], lens[0]);
	bodies[2][lens[0]] = '\n';
	lens[2] = lens[0] + 1;
	bodies[3] = referral_with_ubrn("000000340002", &lens[3]);           /* B revised */
	at = strstr(bodies[3], "2026-04-06T10:15:00");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	at[15] = '6';
	bodies[4] = malloc(elen);                                            /* B's bytes again */
	CU_ASSERT_FATAL(bodies[4] != NULL);
	memcpy(bodies[4], earlier, elen);
	lens[4] = elen;
	bodies[5] = ras_test_read(ras_test_fixture("bad/nhs-invalid.json"), &lens[5]);
	bodies[6] = referral_with_ubrn("000000340003", &lens[6]);           /* C */

	/* one group: it waits for the idle connection, so they all join */
	idle = idle_connection(&p);
	for (int i = 0; i < K; i++) {
		fds[i] = raw_post(&p, bodies[i], lens[i]);
		usleep(100 * 1000);   /* in this order */
	}
	first = before + 1;
	expect_answer(fds[0], "HTTP/1.1 201", "stored", "referral 000000340001 v1");
	snprintf(says, sizeof(says), "the same payload was received before (payload #%lld)", (long long)first);
	expect_answer(fds[1], "HTTP/1.1 200", "duplicate", says);
	expect_answer(fds[2], "HTTP/1.1 200", "duplicate", "already stored");
	expect_answer(fds[3], "HTTP/1.1 201", "stored", "revised");
	snprintf(says, sizeof(says), "the same payload was received before (payload #%lld)", (long long)before);
	expect_answer(fds[4], "HTTP/1.1 200", "duplicate", says);
	expect_answer(fds[5], "HTTP/1.1 422", "rejected", "Modulus 11");
	expect_answer(fds[6], "HTTP/1.1 201", "stored", "referral 000000340003 v1");
	close(idle);
	/* all kept by one commit, and every referral decided in it */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(DISTINCT xmin::text) FROM inbox WHERE id > (SELECT min(id) FROM inbox)"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE state = 'new'"), 0);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '000000340002'"), 2);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	for (int i = 0; i < K; i++)
		free(bodies[i]);
	free(earlier);
	env_free(&e);
}

static void
spool_intake(void)
{
	char done[PATH_MAX], rej[PATH_MAX], *m;
	struct rasd_proc p;
	struct env e;

	env_new(&e, "spool", NULL);
	snprintf(done, sizeof(done), "%s/done", e.spool);
	snprintf(rej, sizeof(rej), "%s/rejected", e.spool);
	/* A file waiting before rasd starts is taken at start. */
	write_spool(e.spool, "early.json", "r4/referral-message.json");
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '100000000102'", 1, 5000));

	write_spool(e.spool, "good.json", "r4/referral-collection-urn.json");
	write_spool(e.spool, "bad.json", "bad/no-servicerequest.json");
	/* A file still being written (a .tmp name) is left alone. */
	write_spool(e.spool, "later.tmp", "r4/referral-transaction-relative.json");
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'", 3, 5000));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM referrals WHERE ubrn = '100000000101'", 1, 5000));
	m = wait_moved(done, "good.json", 5000);
	CU_ASSERT_PTR_NOT_NULL(m);
	free(m);
	m = moved_name(done, "early.json");
	CU_ASSERT_PTR_NOT_NULL(m);
	free(m);
	m = wait_moved(rej, "bad.json", 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	{
		char rp[PATH_MAX];
		char *reason;

		ras_test_fmt(rp, sizeof(rp), "%s/%s.reason", rej, m);
		reason = ras_test_read(rp, NULL);
		CU_ASSERT_PTR_NOT_NULL(strstr(reason, "no ServiceRequest"));
		free(reason);
	}
	free(m);
	CU_ASSERT_FALSE(exists(e.spool, "good.json"));
	CU_ASSERT_FALSE(exists(e.spool, "bad.json"));
	CU_ASSERT_TRUE(exists(e.spool, "later.tmp"));
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool' AND state = 'rejected'"
	    " AND error LIKE '%no ServiceRequest%'"), 1);
	/* The same file dropped again: already known, moved to done, nothing new. */
	write_spool(e.spool, "again.json", "r4/referral-collection-urn.json");
	m = wait_moved(done, "again.json", 5000);
	CU_ASSERT_PTR_NOT_NULL(m);
	free(m);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'"), 3);
	CU_ASSERT_EQUAL(metric(&p, "rasd_spool_files_total{result=\"rejected\"}"), 1);

	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

/*
 * A file another process is still writing in place (no temporary name,
 * never closed yet) is never taken half-written: scans triggered by other
 * files and the periodic rescan pass it by as long as it keeps changing
 * within [spool] settle; once closed it is taken whole.  ([spool] settle
 * 0 is refused: see "--check-config reports every problem".)
 */
static void
spool_half_written_files_wait(void)
{
	char path[PATH_MAX], done[PATH_MAX], *m, *data;
	struct rasd_proc p;
	struct env e;
	size_t len, off;
	int fd;

	env_new(&e, "spoolhalf", NULL);
	snprintf(done, sizeof(done), "%s/done", e.spool);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	data = ras_test_read(ras_test_fixture("r4/referral-transaction-relative.json"), &len);
	snprintf(path, sizeof(path), "%s/slow.json", e.spool);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	off = len / 3;
	CU_ASSERT_EQUAL(write(fd, data, off), (ssize_t)off);
	/* another file arrives: its scan passes the half-written one by */
	write_spool(e.spool, "other.json", "r4/referral-collection-urn.json");
	m = wait_moved(done, "other.json", 5000);
	CU_ASSERT_PTR_NOT_NULL(m);
	free(m);
	CU_ASSERT_TRUE(exists(e.spool, "slow.json"));
	/* a slow writer, a little every half second for 3.5 s: rescans
	 * (every 2 s here) come and go */
	for (int i = 0; i < 7; i++) {
		usleep(500000);
		CU_ASSERT_EQUAL(write(fd, data + off, 16), 16);
		off += 16;
	}
	CU_ASSERT_TRUE(exists(e.spool, "slow.json"));
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'"), 1);
	/* the rest, and closed: taken whole */
	CU_ASSERT_EQUAL(write(fd, data + off, len - off), (ssize_t)(len - off));
	close(fd);
	m = wait_moved(done, "slow.json", 5000);
	CU_ASSERT_PTR_NOT_NULL(m);
	free(m);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'"), 2);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'"
	    " AND state = 'rejected'"), 0);
	{
		char sql[160];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbox WHERE source_ref = 'slow.json'"
		    " AND size = %zu", len);
		CU_ASSERT_EQUAL(count(e.db, sql), 1);
	}
	free(data);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

/* A scan keeps only the files one pass takes, the oldest, whatever the
 * number in the directory: with batch_size 3, twelve waiting files whose
 * ages run opposite to their names are all taken, oldest first, three to a
 * pass. */
static void
spool_oldest_first_in_bounded_passes(void)
{
	char text[8192], path[PATH_MAX], ubrn[16], *got;
	struct ras_buf want = RAS_BUF_INIT(0);
	struct rasd_proc p;
	struct env e;
	time_t now = time(NULL);

	env_new(&e, "spoolorder", NULL);
	snprintf(text, sizeof(text),
	    "[database]\nconninfo = %s\nbatch_size = 3\n"
	    "[daemon]\nstage_interval = 1\nheartbeat = 5\n"
	    "[http]\nlisten = 127.0.0.1:0\ntoken = %s\nmax_body = 65536\n"
	    "[spool]\ndirectory = %s\nrescan = 2\n%s",
	    e.conninfo, token_path, e.spool, RAS_TEST_CLINICIANS);
	free(e.config);
	e.config = rasd_config("spoolorder.conf", text);
	for (int i = 0; i < 12; i++) {
		size_t len;
		char *data;
		FILE *f;
		struct timespec ts[2];

		snprintf(ubrn, sizeof(ubrn), "5000000000%02d", i);
		data = referral_with_ubrn(ubrn, &len);
		snprintf(path, sizeof(path), "%s/f%02d.json", e.spool, i);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f = fopen(path, "wb"));
		CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
		fclose(f);
		free(data);
		/* f00 the newest, f11 the oldest (all settled long ago) */
		ts[0].tv_sec = ts[1].tv_sec = now - 1000 - 10 * i;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		CU_ASSERT_EQUAL(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	for (int i = 11; i >= 0; i--)
		(void)ras_buf_printf(&want, "%sf%02d.json", i < 11 ? "," : "", i);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM inbox WHERE source = 'spool'", 12, 10000));
	got = ras_test_sql_text(e.db, "SELECT string_agg(source_ref, ',' ORDER BY id) FROM inbox "
	    "WHERE source = 'spool'", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want.data);
	CU_ASSERT_STRING_EQUAL(got, want.data);
	free(got);
	ras_buf_free(&want);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

static void
epr_events_over_http(void)
{
	struct rasd_proc p;
	struct resp r;
	struct env e;

	/* rasd's triage stage decides the referral (a recommendation, so that
	 * a clinician has something to decide, and a service for the
	 * discharge summary). */
	env_new(&e, "eprhttp", "[triage]\ndefault_service = bassetlaw-2022\n"
	    "[service bassetlaw-2022]\nautomation = none\n");
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	/* Before the referral: kept, refused with the reason. */
	r = post_fixture(&p, "/fhir/$process-message", "epr/patient-contacted.json");
	CU_ASSERT_EQUAL(r.status, 422);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "no stored referral"));
	free(r.body);
	r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM referrals WHERE state = 'review'"
	    " AND service = 'bassetlaw-2022'", 1, 10000));
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "INSERT INTO deadlines (referral_id, kind, due_date, due_at)"
	    " SELECT id, 'contact', '2026-04-15', '2026-04-15 23:00Z' FROM referrals"), 0);
	/* The EPR fixtures date their events from 2026-04-07: the referral
	 * came before them (an event dated before receipt is refused). */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "UPDATE referrals SET received_at = '2026-04-07T07:00:00Z'"), 0);
	/* Resent after the referral arrived: recorded, the contact clock met. */
	r = post_fixture(&p, "/fhir/$process-message", "epr/patient-contacted.json");
	CU_ASSERT_EQUAL(r.status, 201);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"code\":\"recorded\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "1 deadline(s) met"));
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM deadlines WHERE met_at IS NOT NULL"), 1);
	r = post_fixture(&p, "/fhir/$process-message", "epr/patient-contacted.json");
	CU_ASSERT_EQUAL(r.status, 200);
	free(r.body);
	r = post_fixture(&p, "/fhir/$process-message", "epr/clinician-decision.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions WHERE decided_by = '687001000002'"), 1);
	r = post_fixture(&p, "/fhir/$process-message", "epr/discharged.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM epr_events"), 3);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

static void
sighup_keeps_config_unless_valid(void)
{
	char text[8192];
	struct rasd_proc p;
	struct resp r;
	struct env e;
	char *log;
	FILE *f;

	env_new(&e, "sighup", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));

	/* Break the file: an unknown option and an out-of-range value. */
	f = fopen(e.config, "a");
	fputs("[daemon]\nstage_interval = 0\nwhatever = 1\n", f);
	fclose(f);
	rasd_kill(&p, SIGHUP);
	CU_ASSERT(rasd_wait_notify(&p, "RELOADING=1", 5000));
	CU_ASSERT(rasd_wait_notify(&p, "last reload failed", 5000));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.notes, "MONOTONIC_USEC="));
	CU_ASSERT_EQUAL(metric(&p, "rasd_config_reloads_total{result=\"failed\"}"), 1);
	CU_ASSERT_EQUAL(metric(&p, "rasd_config_reloads_total{result=\"ok\"}"), 0);
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "unknown option \"whatever\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "daemon.stage_interval must be between"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "keeping the configuration in use"));
	free(log);
	/* Still serving with the old configuration. */
	r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);

	/* A valid change is taken; a restart-only change is reported. */
	snprintf(text, sizeof(text),
	    "[database]\nconninfo = %s\nbatch_size = 7\n"
	    "[daemon]\nstage_interval = 1\nheartbeat = 5\n"
	    "[http]\nlisten = 127.0.0.1:1\ntoken = %s\nmax_body = 65536\n"
	    "[spool]\ndirectory = %s\nrescan = 2\n", e.conninfo, token_path, e.spool);
	f = fopen(e.config, "w");
	fputs(text, f);
	fclose(f);
	/* as systemctl reload does it: ExecReload=/usr/sbin/rasd --reload $MAINPID */
	{
		char pid[16], *argv[] = { (char *)ras_test_program("daemon/rasd"), "--reload", pid, NULL };

		snprintf(pid, sizeof(pid), "%d", (int)p.pid);
		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, NULL, NULL), 0);
	}
	CU_ASSERT(rasd_wait_notify(&p, "configuration reloaded", 5000));
	CU_ASSERT_EQUAL(metric(&p, "rasd_config_reloads_total{result=\"ok\"}"), 1);
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "[http] listen changed: it takes effect when rasd restarts"));
	free(log);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

static void
kill9_mid_batch_loses_nothing(void)
{
	enum { N = 1500 };
	struct rasd_proc p;
	struct env e;
	int64_t stored, inflight;

	env_new(&e, "kill9", "[daemon]\nlog_level = warning\n");
	load_inbox(e.db, N, 500000);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM inbox WHERE state <> 'received'", 40, 20000));
	/* While it works through the burst, in a batch transaction. */
	inflight = count(e.db, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rasd%'"
	    " AND state <> 'idle'");
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM daemon_instances_live WHERE running"), 1);
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	/* rasctl status sees it dead at once (its database backend is gone),
	 * not after minutes of a stale heartbeat */
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM daemon_instances_live WHERE NOT running"
	    " AND stopped_at IS NULL", 1, 5000));
	stored = count(e.db, "SELECT count(*) FROM inbox WHERE state <> 'received'");
	fprintf(stderr, "[kill -9 after %lld of %d payloads; rasd connection busy: %lld]\n",
	    (long long)stored, N, (long long)inflight);
	CU_ASSERT(stored < N);
	/* Every stored payload's referral is complete: no half-written batch. */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox i WHERE state = 'stored' AND NOT EXISTS"
	    " (SELECT 1 FROM referrals r WHERE r.payload_id = i.id)"), 0);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals"), stored);
	rasd_free(&p);

	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM inbox WHERE state <> 'received'", N, 60000));
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals"), N);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(DISTINCT ubrn) FROM referrals"), N);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM events WHERE kind = 'referral-received'"), N);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE state = 'stored'"), N);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

static void
two_processes_share_the_work(void)
{
	enum { N = 800, FILES = 30 };
	struct rasd_proc a, b;
	double ra, rb;
	struct env e;
	char done[PATH_MAX];

	env_new(&e, "twoproc", "[daemon]\nlog_level = warning\n");
	CU_ASSERT_EQUAL_FATAL(rasd_start(&a, e.config, NULL, (const char *[]){ "RASD_INSTANCE=a", NULL }), 0);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&b, e.config, NULL, (const char *[]){ "RASD_INSTANCE=b", NULL }), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&a, START_MS));
	CU_ASSERT_FATAL(rasd_wait_ready(&b, START_MS));
	load_inbox(e.db, N, 700000);
	/* And both watch the same spool directory. */
	for (int i = 0; i < FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%02d.json", i);
		write_spool(e.spool, name, i % 3 == 0 ? "r4/referral-message.json" :
		    i % 3 == 1 ? "r4/referral-collection-urn.json" : "bad/nhs-missing.json");
	}
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM inbox WHERE state <> 'received'", N + 3, 60000));
	ra = metric(&a, "rasd_stage_rows_total{unit=\"normalise\"}");
	rb = metric(&b, "rasd_stage_rows_total{unit=\"normalise\"}");
	fprintf(stderr, "[normalise stage rows: a=%.0f b=%.0f]\n", ra, rb);
	CU_ASSERT(ra > 0);
	CU_ASSERT(rb > 0);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals"), N + 2);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM events WHERE kind = 'referral-received'"), N + 2);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM (SELECT payload_id FROM events"
	    " WHERE kind = 'referral-received' GROUP BY payload_id HAVING count(*) > 1) x"), 0);
	/* Every spool file ends up moved exactly once. */
	snprintf(done, sizeof(done), "%s/done", e.spool);
	/* (done, rejected and still waiting, counted together: a file the
	 * scan found rather than inotify waits for [spool] settle) */
	{
		char cmd[PATH_MAX * 2 + 64], *out = NULL, *argv[] = { "/bin/sh", "-c", cmd, NULL };

		snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c 'f[0-9]*.json$'; ls '%s/rejected' | grep -c 'json$';"
		    " ls '%s' | grep -c 'f[0-9]*.json$'", done, e.spool, e.spool);
		for (int tries = 0; tries < 300; tries++) {
			free(out);
			out = NULL;
			(void)ras_test_spawn(argv, NULL, NULL, &out, NULL);
			if (out && strcmp(out, "20\n10\n0\n") == 0)
				break;
			usleep(100000);
		}
		CU_ASSERT_STRING_EQUAL(out ? out : "", "20\n10\n0\n");
		free(out);
	}
	rasd_kill(&a, SIGTERM);
	rasd_kill(&b, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&a, 5000), 0);
	CU_ASSERT_EQUAL(rasd_wait_exit(&b, 5000), 0);
	rasd_free(&a);
	rasd_free(&b);
	env_free(&e);
}

static void
background_start(void)
{
	struct rasd_proc p;
	struct env e;
	char *log, *h, pidq[128];
	int64_t pid;

	/* Not under systemd and without --foreground: rasd leaves the
	 * terminal, and the command returns 0 once the daemon is ready. */
	env_new(&e, "background", NULL);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, (const char *[]){ "NOTIFY_SOCKET=", NULL }), 0);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, START_MS), 0);
	pid = count(e.db, "SELECT pid FROM daemon_instances WHERE stopped_at IS NULL");
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_NOT_EQUAL(pid, p.pid);
	log = rasd_log(&p);
	h = strstr(log, "http 127.0.0.1:");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	snprintf(p.http, sizeof(p.http), "%.*s", (int)strcspn(h + 5, ","), h + 5);
	free(log);
	{
		struct resp r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");

		CU_ASSERT_EQUAL(r.status, 201);
		free(r.body);
	}
	CU_ASSERT_EQUAL(kill((pid_t)pid, SIGTERM), 0);
	snprintf(pidq, sizeof(pidq), "SELECT count(*) FROM daemon_instances WHERE pid = %lld"
	    " AND stopped_at IS NOT NULL", (long long)pid);
	CU_ASSERT(wait_count(e.db, pidq, 1, 5000));
	rasd_free(&p);
	env_free(&e);
}

static void
mutual_tls(void)
{
	const char *dir = ras_test_tmpdir();
	char script[4096], *out = NULL, *argv[] = { "/bin/sh", "-c", script, NULL };
	char cfg[8192], url[128], path[3][600];
	struct rasd_proc p;
	struct env e;
	int rc;

	snprintf(script, sizeof(script),
	    "set -e; cd '%s'; mkdir -p tls; cd tls;"
	    "q() { openssl \"$@\" >/dev/null 2>&1; };"
	    "q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=rasd-test-ca;"
	    "q req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other-ca;"
	    "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext;"
	    "q req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1;"
	    "q x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext;"
	    "for c in client:ca rogue:other; do n=${c%%:*}; a=${c#*:};"
	    " q req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n;"
	    " q x509 -req -in $n.csr -CA $a.pem -CAkey $a.key -CAcreateserial -out $n.pem -days 2; done;"
	    "chmod 644 *; echo ok", dir);
	rc = ras_test_spawn(argv, NULL, NULL, &out, NULL);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	free(out);
	env_new(&e, "mtls", NULL);
	snprintf(cfg, sizeof(cfg),
	    "[database]\nconninfo = %s\n[http]\nlisten = 127.0.0.1:0\n"
	    "tls_certificate = %s/tls/server.pem\ntls_key = %s/tls/server.key\nclient_ca = %s/tls/ca.pem\n",
	    e.conninfo, dir, dir, dir);
	free(e.config);
	e.config = rasd_config("mtls.conf", cfg);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	snprintf(url, sizeof(url), "https://%s/fhir/Bundle", p.http);
	snprintf(path[0], sizeof(path[0]), "%s/tls/ca.pem", dir);
	for (int who = 0; who < 3; who++) {
		static const char *names[] = { "client", "rogue", NULL };
		struct ras_http_opts o = { .ca_file = path[0] };
		struct ras_http *h = NULL;
		struct ras_http_request r;
		size_t len;
		char *body = ras_test_read(ras_test_fixture("r4/referral-message.json"), &len);

		if (names[who]) {
			snprintf(path[1], sizeof(path[1]), "%s/tls/%s.pem", dir, names[who]);
			snprintf(path[2], sizeof(path[2]), "%s/tls/%s.key", dir, names[who]);
			o.client_cert = path[1];
			o.client_key = path[2];
		}
		CU_ASSERT_EQUAL_FATAL(ras_http_new(&o, &h), 0);
		ras_http_request_init(&r, "POST", url);
		(void)ras_http_request_header(&r, "Content-Type", "application/fhir+json");
		r.body = body;
		r.body_len = len;
		CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
		if (r.err)
			fprintf(stderr, "[mTLS %s: %s]\n", names[who] ? names[who] : "no cert", r.errmsg);
		/* Signed by the configured CA: taken; another CA or none: 403. */
		CU_ASSERT_EQUAL(r.status, who == 0 ? 201 : 403);
		ras_http_request_release(&r);
		ras_http_free(h);
		free(body);
	}
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 1);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
}

/* ---- the whole pipeline: fake e-RS, MESH and FHIR ----------------------- */

/*
 * A world for rasd to work in: the fake e-RS (stateful, checking the JWT
 * client assertions), the fake MESH server (mailboxes X26ABC1..3) and the
 * fake FHIR endpoint, all in this process, and the configuration sections
 * that point rasd at them.  Routes: the GP practices of the samples over
 * MESH, the other referrers over FHIR (one in message mode, one in
 * document mode), GP auto-routing for the rest, patient copies into a
 * print directory.
 */
struct world {
	struct fake_ers *ers;
	struct fake_mesh *mesh;
	struct fake_fhir *fhir;
	char *dir;
	char print[PATH_MAX];
	char conf[8192];        /* all of it */
	char conf_nodocs[4096]; /* the same without delivery (letters wait in the outbox) */
};

static void
world_new(struct world *w, const char *name, const char *mappings, bool ers)
{
	struct fake_ers_opts eo = { .stateful = true, .require_auth = true,
		.public_key_pem = ers_public_pem };
	char path[PATH_MAX], routes[2048], ersconf[2048] = "";
	FILE *f;

	memset(w, 0, sizeof(*w));
	snprintf(path, sizeof(path), "world-%s", name);
	w->dir = rasd_dir(path);
	snprintf(w->print, sizeof(w->print), "%s/print", w->dir);
	free(rasd_dir(strstr(w->print, "world-")));
	w->mesh = fake_mesh_start(NULL);
	w->fhir = fake_fhir_start();
	CU_ASSERT_PTR_NOT_NULL_FATAL(w->mesh);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w->fhir);
	{
		static const char *secrets[][2] = { { "mesh-password", "password\n" },
			{ "mesh-shared-key", FAKE_MESH_SHARED_KEY "\n" } };

		for (int i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/%s", w->dir, secrets[i][0]);
			f = fopen(path, "w");
			CU_ASSERT_PTR_NOT_NULL_FATAL(f);
			fputs(secrets[i][1], f);
			fclose(f);
			chmod(path, 0600);
			if (geteuid() == 0)
				CU_ASSERT_EQUAL(chown(path, rasd_uid(), rasd_gid()), 0);
		}
	}
	snprintf(routes, sizeof(routes), "{\"routes\": ["
	    "{\"ods\": \"C84014\", \"transport\": \"mesh\", \"mailbox\": \"X26ABC2\"},"
	    "{\"ods\": \"C84009\", \"transport\": \"mesh\", \"mailbox\": \"X26ABC2\"},"
	    "{\"ods\": \"J81002\", \"transport\": \"mesh\", \"mailbox\": \"X26ABC3\"},"
	    "{\"ods\": \"C84001\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"message\"},"
	    "{\"ods\": \"C84012\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"document\"},"
	    "{\"ods\": \"RK5\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"document\"}]}",
	    fake_fhir_base(w->fhir), fake_fhir_base(w->fhir), fake_fhir_base(w->fhir));
	snprintf(path, sizeof(path), "%s/routes.json", w->dir);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(routes, f);
	fclose(f);
	chmod(path, 0644);
	if (ers) {
		w->ers = fake_ers_start(&eo);
		CU_ASSERT_PTR_NOT_NULL_FATAL(w->ers);
		/* The poll is due whenever the test runs: the schedule's only
		 * time is midnight and every day counts. */
		snprintf(ersconf, sizeof(ersconf), "[ers]\nbase_url = %s\ntoken_url = %s\nmode = application\n"
		    "api_key = test-api-key\nkid = test-key-1\nprivate_key = %s\n"
		    "service_ids = 11012=midnotts, 21013=dorset-2019\nschedule = 00:00\npoll_days = all\n",
		    fake_ers_base_url(w->ers), fake_ers_token_url(w->ers), ers_key_path);
	}
	snprintf(w->conf_nodocs, sizeof(w->conf_nodocs),
	    "[general]\nmappings = %s\n[triage]\ndefault_service = midnotts\n%s",
	    mappings ? mappings : RAS_SOURCE_ROOT "/mappings", ersconf);
	snprintf(w->conf, sizeof(w->conf),
	    "[general]\nmappings = %s\n[triage]\ndefault_service = midnotts\n%s"
	    "[mesh]\nenabled = yes\nurl = %s\nmailbox = X26ABC1\npassword = %s/mesh-password\n"
	    "shared_key = %s/mesh-shared-key\nworkflow_triage_outcome = RASD_LETTERS\n"
	    "workflow_gp_2ww_notice = RASD_LETTERS\nworkflow_notification_letter = RASD_LETTERS\n"
	    "workflow_discharge_summary = RASD_LETTERS\n"
	    "[routing]\ntable = %s/routes.json\ngp_auto_routing = yes\n"
	    "[outbox]\nallow_http_loopback = yes\nprint_dir = %s\n",
	    mappings ? mappings : RAS_SOURCE_ROOT "/mappings", ersconf, fake_mesh_url(w->mesh), w->dir,
	    w->dir, w->dir, w->print);
}

static void
world_free(struct world *w)
{
	if (w->ers)
		fake_ers_stop(w->ers);
	fake_mesh_stop(w->mesh);
	fake_fhir_stop(w->fhir);
	free(w->dir);
}

/* Outbox rows still on their way (not delivered, dead or cancelled). */
#define SQL_OUTBOX_BUSY "SELECT count(*) FROM outbox WHERE state IN ('pending', 'ready', 'sending', 'unknown')"

static bool
outbox_settled(void *ctx)
{
	struct ras_db *db = ctx;

	return count(db, SQL_OUTBOX_BUSY) == 0 && count(db, "SELECT count(*) FROM outbox") > 0;
}

/*
 * What the fakes received against what the outbox says was delivered:
 * every MESH message rasd sent carries the mex-LocalID of one delivered
 * outbox row and no two carry the same one (MESH cannot de-duplicate:
 * never a second send); the FHIR endpoint created or processed exactly one
 * document per delivered row; every patient copy is in the print
 * directory.  Returns the number of documents checked.
 */
static int64_t
check_deliveries(struct ras_db *db, struct world *w, bool allow_fhir_repeats)
{
	struct ras_db_res *res = NULL;
	int64_t mesh_rows = count(db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
	    " AND transport = 'mesh'");
	int64_t fhir_rows = count(db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
	    " AND transport = 'fhir'");
	int64_t file_rows = count(db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
	    " AND transport = 'file'");
	size_t sent = 0;

	for (size_t i = 0; i < fake_mesh_count(w->mesh); i++) {
		const struct fake_mesh_msg *m = fake_mesh_msg(w->mesh, i);
		char sql[512];

		char lid[128];

		if (strcmp(m->type, "DATA") != 0 || strcmp(m->from, "X26ABC1") != 0)
			continue;
		sent++;
		/* rasd's local id is the file name's stem (ITK3 messages carry the
		 * sender's ODS code as mex-LocalID) */
		snprintf(lid, sizeof(lid), "%.*s", (int)strcspn(m->filename, "."), m->filename);
		for (size_t k = 0; k < i; k++) {
			const struct fake_mesh_msg *o = fake_mesh_msg(w->mesh, k);

			if (strcmp(o->type, "DATA") == 0 && strcmp(o->filename, m->filename) == 0) {
				fprintf(stderr, "MESH received %s twice\n", lid);
				CU_FAIL("a document was sent over MESH twice");
			}
		}
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE local_id = '%.100s'"
		    " AND state = 'delivered' AND transport = 'mesh' AND address = '%.100s'", lid, m->to);
		CU_ASSERT_EQUAL(count(db, sql), 1);
	}
	CU_ASSERT_EQUAL((int64_t)sent, mesh_rows);
	CU_ASSERT_EQUAL(fake_fhir_created(w->fhir) + fake_fhir_messages(w->fhir), fhir_rows);
	if (!allow_fhir_repeats)
		CU_ASSERT_EQUAL(fake_fhir_duplicates(w->fhir), 0);
	if (ras_db_query(db, &res, "SELECT local_id || '-' || kind || '.html' FROM outbox"
	    " WHERE state = 'delivered' AND transport = 'file'", 0, NULL) == 0) {
		for (int i = 0; i < ras_db_res_rows(res); i++)
			CU_ASSERT_TRUE(exists(w->print, ras_db_res_get(res, i, 0)));
		CU_ASSERT_EQUAL(ras_db_res_rows(res), file_rows);
	}
	ras_db_res_free(res);
	return mesh_rows + fhir_rows + file_rows;
}

/* A sample referral under a UBRN of its own. */
static char *
fixture_with_ubrn(const char *rel, const char *old_ubrn, const char *ubrn, size_t *len)
{
	char *data = ras_test_read(ras_test_fixture(rel), len), *p;
	char quoted[32];

	snprintf(quoted, sizeof(quoted), "\"%s\"", old_ubrn);
	CU_ASSERT_PTR_NOT_NULL_FATAL((p = strstr(data, quoted)));
	memcpy(p + 1, ubrn, 12);
	return data;
}

static int64_t
query_int(struct ras_db *db, const char *sql, const char *arg)
{
	struct ras_db_res *res = NULL;
	int64_t n = -1;

	if (ras_db_query(db, &res, sql, 1, &RAS_DB_TEXT(arg)) == 0 && ras_db_res_rows(res) == 1)
		(void)ras_db_res_int(res, 0, 0, &n);
	ras_db_res_free(res);
	return n;
}

static char *
query_text(struct ras_db *db, const char *sql, const char *arg)
{
	struct ras_db_res *res = NULL;
	char *v = NULL;

	if (ras_db_query(db, &res, sql, 1, &RAS_DB_TEXT(arg)) == 0 && ras_db_res_rows(res) == 1 &&
	    ras_db_res_get(res, 0, 0))
		v = strdup(ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	return v;
}

/* An EPR message fixture about `ubrn` (instead of 100000000101), with a
 * MessageHeader id of its own (`tag`: 12 hex digits). */
static char *
epr_message(const char *rel, const char *ubrn, const char *tag, size_t *len)
{
	char *data = fixture_with_ubrn(rel, "100000000101", ubrn, len), *p;

	/* MessageHeader ids are 5b0c1d2e-000N-4a00-9000-000000000001 */
	CU_ASSERT_PTR_NOT_NULL_FATAL((p = strstr(data, "-4a00-9000-")));
	memcpy(p + 11, tag, 12);
	return data;
}

#define SQL_OUTCOME_OF "SELECT d.outcome || ' ' || d.final::text || ' ' || coalesce(d.onward_target, '-')" \
	" || ' ' || r.state FROM current_decisions d JOIN referrals r ON r.id = d.referral_id" \
	" WHERE r.ubrn = $1"

struct sample {
	const char *file, *ubrn, *expect;   /* expect: "outcome final target state" */
};

/* Handshakes the fake MESH recorded from `mailbox` (POST /messageexchange/<mailbox>). */
static int
mesh_handshakes(struct fake_mesh *m, const char *mailbox)
{
	struct fake_http *h = fake_mesh_http(m);
	char path[128];
	int n = 0;

	snprintf(path, sizeof(path), "/messageexchange/%s", mailbox);
	for (size_t i = 0; i < fake_http_count(h); i++) {
		const struct fake_req *r = fake_http_req(h, i);

		if (strcmp(r->method, "POST") == 0 && strcmp(r->path, path) == 0)
			n++;
	}
	return n;
}

/* The triage samples (tests/fixtures/triage) and what their rule sets say. */
static const struct sample samples[] = {
	{ "triage/midnotts-accept.json", "100000000301", "accept false - review" },
	{ "triage/midnotts-out-of-area.json", "100000000302", "return true - decided" },
	{ "triage/midnotts-2ww.json", "100000000303", "onward false two-week-wait review" },
	{ "triage/midnotts-incomplete.json", "100000000304", "return true - decided" },
	{ NULL, NULL, NULL },
};

/* The log of one e-RS request the fake recorded (its index, or -1). */
static long
ers_request(struct fake_ers *f, const char *method, const char *path_has, size_t from)
{
	struct fake_http *h = fake_ers_http(f);

	for (size_t i = from; i < fake_http_count(h); i++) {
		const struct fake_req *r = fake_http_req(h, i);

		if (strcmp(r->method, method) == 0 && strstr(r->path, path_has))
			return (long)i;
	}
	return -1;
}

/*
 * The whole pipeline, end to end: rasd polls the fake e-RS on its schedule
 * (the A008 budget recorded), stores and triages its referrals and
 * records the final outcome on e-RS (A029, then A028 with If-Match); the
 * triage samples arrive over HTTP and through the spool and get the
 * decisions their rule sets give; a clinician's decision arrives as an EPR
 * event and flows to e-RS; every letter is delivered once to the fake MESH
 * and FHIR endpoints, patient copies printed; /metrics and rasctl status
 * show it all.
 */
static void
pipeline_end_to_end(void)
{
	struct rasd_proc p;
	struct world w;
	struct resp r;
	struct env e;
	char *log, *v;
	int64_t t0 = (int64_t)time(NULL), docs;
	long k;

	world_new(&w, "e2e", NULL, true);
	env_new(&e, "e2e", w.conf);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.notes, "STATUS=ready: 9 unit(s)"));
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "(normalise, triage, ers-outcome, ers-poll ers:11012,"
	    " ers-poll ers:21013, render, deliver, mesh-poll mesh:X26ABC1, ers-fetch)"));
	free(log);

	/* e-RS: the scheduled poll of both worklists, at start-up. */
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'ok'", 2, 20000));
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM ers_worklist_calls WHERE slot = 1"), 2);
	CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", "$ers.fetchworklist"), 2);
	/* 000000070020's form (an XHTML attachment read through the form map)
	 * is incomplete: returned, final, and recorded on e-RS. */
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_outcomes WHERE ubrn = '000000070020'"
	    " AND state = 'done'", 1, 20000));
	v = query_text(e.db, SQL_OUTCOME_OF, "000000070020");
	CU_ASSERT_STRING_EQUAL(v ? v : "", "return true - decided");
	free(v);
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070020"), 1);
	k = ers_request(w.ers, "POST", "/000000070020/$ers.recordReviewOutcome", 0);
	CU_ASSERT_FATAL(k >= 0);
	{
		const struct fake_req *a028 = fake_http_req(fake_ers_http(w.ers), (size_t)k);

		CU_ASSERT_STRING_EQUAL(fake_req_header(a028, "If-Match"), "W/\"5\"");
		CU_ASSERT_PTR_NOT_NULL(strstr(a028->body, "RETURN_TO_REFERRER_WITH_ADVICE"));
		CU_ASSERT_PTR_NOT_NULL(strstr(a028->body, "reviewComments"));
		/* A029 asked first, for the version the decision saw */
		CU_ASSERT(ers_request(w.ers, "GET", "Task?focus=ReferralRequest/000000070020/_history/5", 0) >= 0);
	}
	/* Review and onward recommendations wait for a person: no A028. */
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070005"), 0);
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070012"), 0);

	/* Intake: two samples over HTTP, two through the spool. */
	r = post_fixture(&p, "/fhir/Bundle", samples[0].file);
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	r = post_fixture(&p, "/fhir/$process-message", samples[1].file);
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	write_spool(e.spool, "2ww.json", samples[2].file);
	write_spool(e.spool, "incomplete.json", samples[3].file);
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM referrals r WHERE ubrn LIKE '1000000003%'"
	    " AND EXISTS (SELECT 1 FROM decisions d WHERE d.referral_id = r.id)", 4, 20000));
	for (int i = 0; samples[i].file; i++) {
		v = query_text(e.db, SQL_OUTCOME_OF, samples[i].ubrn);
		if (v == NULL || strcmp(v, samples[i].expect) != 0)
			fprintf(stderr, "%s: decision \"%s\", expected \"%s\"\n", samples[i].file, v ? v : "none",
			    samples[i].expect);
		CU_ASSERT_STRING_EQUAL(v ? v : "", samples[i].expect);
		free(v);
	}
	/* Every decision records its rule, clause and rule-set version. */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions WHERE decided_by = 'rules' AND"
	    " (ruleset_version IS NULL OR jsonb_array_length(reasons) = 0"
	    "  OR EXISTS (SELECT 1 FROM jsonb_array_elements(reasons) x WHERE x ->> 'clause' IS NULL))"), 0);

	/* A clinician accepts e-RS referral 000000070012 in the EPR: recorded
	 * with who decided, then A028 ACCEPT_REFER_BOOK_LATER on e-RS.  (The
	 * EPR fixtures are dated from 2026-04-07: the referrals came first.) */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "UPDATE referrals SET received_at = '2026-04-07T07:00:00Z'"
	    " WHERE ubrn IN ('000000070012', '100000000301')"), 0);
	{
		size_t len;
		char *msg = epr_message("epr/clinician-decision.json", "000000070012", "0000000a0012", &len);

		r = post(&p, "/fhir/$process-message", msg, len);
		CU_ASSERT_EQUAL(r.status, 201);
		free(r.body);
		free(msg);
	}
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_outcomes WHERE ubrn = '000000070012'"
	    " AND state = 'done' AND review_outcome = 'ACCEPT_REFER_BOOK_LATER'", 1, 20000));
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070012"), 1);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM current_decisions d JOIN referrals r"
	    " ON r.id = d.referral_id WHERE r.ubrn = '000000070012' AND d.decided_by = '687001000002'"), 1);

	/* The midnotts acceptance: a clinician confirms it, the patient is
	 * seen and discharged; the discharge summary (and the patient's
	 * printable copy) follow the EPR's discharge event. */
	{
		size_t len;
		char *msg = epr_message("epr/clinician-decision.json", "100000000301", "0000000b0301", &len);

		r = post(&p, "/fhir/$process-message", msg, len);
		CU_ASSERT_EQUAL(r.status, 201);
		free(r.body);
		free(msg);
		msg = epr_message("epr/discharged.json", "100000000301", "0000000c0301", &len);
		r = post(&p, "/fhir/$process-message", msg, len);
		CU_ASSERT_EQUAL(r.status, 201);
		if (r.status != 201)
			fprintf(stderr, "discharge: %s\n", r.body);
		free(r.body);
		free(msg);
	}
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000301' AND o.kind = 'discharge-summary' AND o.state = 'delivered'", 1, 20000));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000301' AND o.kind = 'patient-copy' AND o.state = 'delivered'"
	    " AND o.transport = 'file'", 1, 20000));
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000301' AND o.kind = 'triage-outcome' AND o.state = 'delivered'"), 1);

	/* Letters: everything rendered is delivered or (with what it lacks
	 * named) dead; the fakes got each one once. */
	CU_ASSERT(rasd_until(outbox_settled, e.db, 30000));
	docs = check_deliveries(e.db, &w, false);
	fprintf(stderr, "[pipeline: %lld document(s) delivered, %lld dead]\n", (long long)docs,
	    (long long)count(e.db, "SELECT count(*) FROM outbox WHERE state = 'dead'"));
	CU_ASSERT(docs >= 3);
	CU_ASSERT(count(e.db, "SELECT count(*) FROM outbox WHERE state = 'delivered' AND transport = 'mesh'") >= 1);
	CU_ASSERT(count(e.db, "SELECT count(*) FROM outbox WHERE state = 'delivered' AND transport = 'fhir'") >= 1);
	/* the two returns: a letter to each referrer, delivered */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn IN ('100000000302', '100000000304') AND o.kind = 'triage-outcome'"
	    " AND o.recipient_role = 'referrer' AND o.state = 'delivered'"), 2);
	/* the potential 2WW: the GP told the same day */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000303' AND o.kind = 'gp-2ww-notice' AND o.state = 'delivered'"), 1);
	/* a dead letter says what it lacks */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM outbox WHERE state = 'dead'"
	    " AND (last_error IS NULL OR last_error = '')"), 0);

	/* /metrics: the families ops watch, agreeing with the database. */
	{
		char series[256];
		struct { const char *series, *sql; } m[] = {
			{ "rasd_ers_budget_used{service=\"11012\"}", "SELECT 1" },
			{ "rasd_ers_budget_used{service=\"21013\"}", "SELECT 1" },
			{ "rasd_ers_outcomes{state=\"done\"}", "SELECT 2" },
			{ "rasd_decisions_made{outcome=\"return\",decided_by=\"rules\"}",
			  "SELECT count(*) FROM decisions WHERE outcome = 'return' AND decided_by = 'rules'" },
			{ "rasd_decisions_made{outcome=\"accept\",decided_by=\"clinician\"}", "SELECT 2" },
			{ "rasd_documents_delivered{transport=\"mesh\",destination=\"X26ABC2\"}",
			  "SELECT count(*) FROM outbox WHERE state = 'delivered' AND address = 'X26ABC2'" },
			{ "rasd_dead_letters{queue=\"outbox\"}", "SELECT count(*) FROM outbox WHERE state = 'dead'" },
			{ "rasd_dead_letters{queue=\"ers-outcome\"}", "SELECT 0" },
			{ "rasd_queue_depth{stage=\"clinician-review\"}",
			  "SELECT count(*) FROM referrals WHERE state = 'review'" },
			{ "rasd_queue_depth{stage=\"deliver\"}", "SELECT 0" },
			/* every endpoint answered: none held back */
			{ "rasd_outbox_endpoints_held", "SELECT 0" },
			{ NULL, NULL },
		};

		for (int i = 0; m[i].series; i++) {
			double got = metric(&p, m[i].series);

			if (got != (double)count(e.db, m[i].sql))
				fprintf(stderr, "metric %s = %g, expected %lld\n", m[i].series, got,
				    (long long)count(e.db, m[i].sql));
			CU_ASSERT_EQUAL(got, (double)count(e.db, m[i].sql));
		}
		CU_ASSERT(metric(&p, "rasd_poll_last_success_timestamp_seconds{source=\"ers:21013\"}") >= (double)t0);
		CU_ASSERT(metric(&p, "rasd_poll_last_success_timestamp_seconds{source=\"mesh:X26ABC1\"}") >= (double)t0);
		/* the deliver stage sent over MESH and the mesh-poll unit polled:
		 * one client, so one handshake in the day's interval */
		CU_ASSERT_EQUAL(mesh_handshakes(w.mesh, "X26ABC1"), 1);
		CU_ASSERT_EQUAL(fake_mesh_auth_failures(w.mesh), 0);
		CU_ASSERT(metric(&p, "rasd_ers_last_worklist_timestamp_seconds{service=\"11012\"}") >= (double)t0);
		/* the triage stage decided the samples; the e-RS poll triaged
		 * what it fetched itself */
		CU_ASSERT_EQUAL(metric(&p, "rasd_stage_rows_total{unit=\"triage\"}"),
		    (double)count(e.db, "SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
		    " WHERE d.decided_by = 'rules' AND r.source NOT LIKE 'ers%'"));
		/* deadlines due today and breached, per kind: one of each added */
		CU_ASSERT_EQUAL_FATAL(ras_db_exec(e.db, "INSERT INTO deadlines (referral_id, kind, due_date, due_at)"
		    " SELECT id, 'test-today', (now() AT TIME ZONE 'Europe/London')::date, now() + interval '1 minute'"
		    " FROM referrals WHERE ubrn = '100000000301';"
		    " INSERT INTO deadlines (referral_id, kind, due_date, due_at)"
		    " SELECT id, 'test-breached', '2020-01-02', '2020-01-02 23:59:59Z'"
		    " FROM referrals WHERE ubrn = '100000000301'"), 0);
		CU_ASSERT_EQUAL(metric(&p, "rasd_deadlines_due_today{kind=\"test-today\"}"), 1);
		CU_ASSERT_EQUAL(metric(&p, "rasd_deadlines_breached{kind=\"test-breached\"}"), 1);
		snprintf(series, sizeof(series), "rasd_deadlines_breached{kind=\"test-today\"}");
		CU_ASSERT_EQUAL(metric(&p, series), -1);
	}
	/* rasctl status: the same, for a person. */
	{
		char *out = NULL, *argv[] = { (char *)ras_test_program("daemon/rasctl"), "--db", e.conninfo,
			"status", "--json", NULL };
		json_t *st = NULL, *x;
		size_t i;
		int found = 0;

		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, NULL), 0);
		CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &st), 0);
		json_array_foreach(json_object_get(st, "budgets"), i, x) {
			int64_t used = -1;

			(void)ras_json_int(x, "used", &used);
			CU_ASSERT_EQUAL(used, 1);
			found++;
		}
		CU_ASSERT_EQUAL(found, 2);
		CU_ASSERT(json_array_size(json_object_get(st, "deliveries")) >= 2);
		{
			int64_t dead = -1;

			(void)ras_json_int(json_object_get(st, "dead_letters"), "outbox_dead", &dead);
			CU_ASSERT_EQUAL(dead, count(e.db, "SELECT count(*) FROM outbox WHERE state = 'dead'"));
		}
		json_decref(st);
		free(out);
	}
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	env_free(&e);
	world_free(&w);
}

/* Post the midnotts acceptance sample under `ubrn`; wait for its decision. */
static void
post_sample_as(struct rasd_proc *p, struct env *e, const char *ubrn)
{
	char sql[256];
	size_t len;
	char *body = fixture_with_ubrn("triage/midnotts-accept.json", "100000000301", ubrn, &len);
	struct resp r = post(p, "/fhir/Bundle", body, len);

	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	free(body);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '%s'", ubrn);
	CU_ASSERT(wait_count(e->db, sql, 1, 10000));
}

static void
rewrite_rules(const char *path, bool all, bool broken)
{
	size_t len;
	char *s, *p;
	static const char admin[] = "\"automation\": \"administrative\"", every[] = "\"automation\": \"all\"";
	static const char good[] = "\"clause\": \"004 §3.4\",\n      \"when\": {\"fact\": \"form.red-flags\","
	    " \"contains\": \"cauda-equina\"}";
	struct ras_buf b = RAS_BUF_INIT(0);
	FILE *f;

	/* from the pristine copy each time */
	s = ras_test_read(RAS_SOURCE_ROOT "/mappings/services/midnotts.json", &len);
	(void)ras_buf_append(&b, s, len);
	if (all) {
		CU_ASSERT_PTR_NOT_NULL_FATAL((p = strstr(b.data, admin)));
		memmove(p + sizeof(every) - 1, p + sizeof(admin) - 1, strlen(p + sizeof(admin) - 1) + 1);
		memcpy(p, every, sizeof(every) - 1);
	}
	if (broken) {
		/* a rule citing no clause of its spec: the whole rule set is refused */
		CU_ASSERT_PTR_NOT_NULL_FATAL((p = strstr(b.data, good)));
		memcpy(p + strlen("\"clause\": \""), "XYZ", 3);
	}
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(b.data, f);
	fclose(f);
	ras_buf_free(&b);
	free(s);
}

/*
 * SIGHUP re-reads the rule sets with the rest of the configuration: a
 * broken rule file is refused as a whole and the rules in use stay, which
 * the decisions made after the failed reload show (same rule-set version,
 * same outcome); a valid change is taken and the next decisions follow it.
 */
static void
sighup_broken_rules_keep_old_rules(void)
{
	char dir[PATH_MAX], rules[PATH_MAX], cmd[2 * PATH_MAX], extra[PATH_MAX + 128];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL }, *v1, *v, *log;
	struct rasd_proc p;
	struct env e;

	snprintf(dir, sizeof(dir), "%s/mappings-sighup", ras_test_tmpdir());
	ras_test_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s/mappings' '%s' && chmod -R a+rX '%s'", dir,
	    RAS_SOURCE_ROOT, dir, dir);
	CU_ASSERT_EQUAL_FATAL(ras_test_spawn(argv, NULL, NULL, NULL, NULL), 0);
	ras_test_fmt(rules, sizeof(rules), "%s/services/midnotts.json", dir);
	snprintf(extra, sizeof(extra), "[general]\nmappings = %s\n[triage]\ndefault_service = midnotts\n", dir);
	env_new(&e, "sighuprules", extra);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));

	/* administrative automation: an acceptance is a recommendation */
	post_sample_as(&p, &e, "400000000001");
	v1 = query_text(e.db, "SELECT d.ruleset_version FROM current_decisions d JOIN referrals r"
	    " ON r.id = d.referral_id WHERE r.ubrn = $1", "400000000001");
	CU_ASSERT_PTR_NOT_NULL_FATAL(v1);
	v = query_text(e.db, SQL_OUTCOME_OF, "400000000001");
	CU_ASSERT_STRING_EQUAL(v ? v : "", "accept false - review");
	free(v);

	/* "automation": "all" in a rule file that is broken elsewhere */
	rewrite_rules(rules, true, true);
	rasd_kill(&p, SIGHUP);
	CU_ASSERT(rasd_wait_notify(&p, "last reload failed", 10000));
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "clause \"XYZ"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "keeping the configuration in use"));
	free(log);
	post_sample_as(&p, &e, "400000000002");
	v = query_text(e.db, SQL_OUTCOME_OF, "400000000002");
	CU_ASSERT_STRING_EQUAL(v ? v : "", "accept false - review");
	free(v);
	CU_ASSERT_EQUAL(query_int(e.db, "SELECT count(*) FROM decisions WHERE ruleset_version = $1", v1), 2);

	/* the same change, valid: taken, and the next decision follows it */
	rewrite_rules(rules, true, false);
	rasd_kill(&p, SIGHUP);
	CU_ASSERT(rasd_wait_notify(&p, "configuration reloaded", 10000));
	post_sample_as(&p, &e, "400000000003");
	v = query_text(e.db, SQL_OUTCOME_OF, "400000000003");
	CU_ASSERT_STRING_EQUAL(v ? v : "", "accept true - decided");
	free(v);
	v = query_text(e.db, "SELECT d.ruleset_version FROM current_decisions d JOIN referrals r"
	    " ON r.id = d.referral_id WHERE r.ubrn = $1", "400000000003");
	CU_ASSERT_PTR_NOT_NULL(v);
	CU_ASSERT_STRING_NOT_EQUAL(v ? v : v1, v1);
	free(v);
	CU_ASSERT_EQUAL(metric(&p, "rasd_config_reloads_total{result=\"failed\"}"), 1);
	CU_ASSERT_EQUAL(metric(&p, "rasd_config_reloads_total{result=\"ok\"}"), 1);
	free(v1);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	env_free(&e);
}

/* Put n copies of a sample into the inbox, each under its own UBRN. */
static void
load_samples(struct ras_db *db, const char *rel, const char *old_ubrn, int n, int base)
{
	for (int i = 0; i < n;) {
		struct ras_inbox_item items[50];
		struct ras_inbox_put_result out[50];
		char *bodies[50];
		int k = 0;

		for (; k < 50 && i < n; k++, i++) {
			char ubrn[16];
			size_t len;

			snprintf(ubrn, sizeof(ubrn), "%012d", base + i);
			bodies[k] = fixture_with_ubrn(rel, old_ubrn, ubrn, &len);
			items[k] = (struct ras_inbox_item){ .data = bodies[k], .len = len, .source = "test",
				.source_ref = "burst" };
		}
		CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, (size_t)k, out), 0);
		for (int q = 0; q < k; q++)
			free(bodies[q]);
	}
}

static size_t
mesh_data_count(struct fake_mesh *m)
{
	size_t n = 0;

	for (size_t i = 0; i < fake_mesh_count(m); i++)
		if (strcmp(fake_mesh_msg(m, i)->type, "DATA") == 0)
			n++;
	return n;
}

/* Spin (finely: the point is to stop rasd at this moment) until cond. */
static bool
spin_until(bool (*cond)(void *), void *ctx, int ms)
{
	for (int waited = 0; waited < ms * 10; waited++) {
		if (cond(ctx))
			return true;
		usleep(100);
	}
	return false;
}

static bool
a028_arrived(void *ctx)
{
	return fake_ers_count(ctx, "POST", "$ers.recordReviewOutcome") >= 1;
}

static bool
mesh_sends_arrived(void *ctx)
{
	return mesh_data_count(ctx) >= 5;
}

/*
 * kill -9 twice, at the two moments where a crash could make rasd send
 * something twice: while e-RS is answering an A028 (the write happened, the
 * answer is lost), and while a batch of MESH sends is being answered (the
 * messages arrived, rasd never heard).  After each restart rasd settles
 * what was in flight first (the intent is read back from e-RS, the sends
 * are looked up by MESH tracking) and then finishes the rest: every
 * referral decided once, every letter in MESH once, one A028 per UBRN, and
 * the FHIR endpoint (which de-duplicates re-posts by document or message
 * id, DESIGN §5) has created each document once.
 */
static void
kill9_mid_send_sends_nothing_twice(void)
{
	enum { N = 160 };
	struct rasd_proc p;
	struct world w;
	struct env e;
	char conf[10000], *nodocs;
	int64_t inflight, in_mesh, tracked;

	world_new(&w, "kill9send", NULL, true);
	snprintf(conf, sizeof(conf), "%s[daemon]\nlog_level = notice\n", w.conf_nodocs);
	env_new(&e, "kill9send", conf);
	nodocs = strdup(e.config);
	/* Half the letters go over MESH (C84014), half over FHIR (C84001). */
	load_samples(e.db, "triage/midnotts-incomplete.json", "100000000304", N / 2, 510000);
	load_samples(e.db, "triage/midnotts-out-of-area.json", "100000000302", N / 2, 520000);
	/* e-RS answers the first A028 three seconds late (after recording it) */
	fake_ers_script(w.ers, &(struct fake_ers_script){ .method = "POST", .path_has = "recordReviewOutcome",
	    .delay_ms = 3000 });

	/* 1: killed while the A028 of 000000070020 is unanswered */
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, nodocs, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_FATAL(spin_until(a028_arrived, w.ers, 30000));
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	rasd_free(&p);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM ers_outcomes WHERE state = 'sending'"), 1);
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070020"), 1);

	/* 2: restarted; the intent is read back from e-RS, not sent again;
	 * triage finishes (delivery is not configured yet: letters wait) */
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, nodocs, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_outcomes WHERE ubrn = '000000070020'"
	    " AND state = 'done'", 1, 20000));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM outbox WHERE kind = 'triage-outcome'"
	    " AND state = 'pending'", N, 30000));
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", "$ers.recordReviewOutcome"), 1);

	/* 3: delivery on, MESH slow to answer: killed while a batch of sends
	 * waits for its answers (the messages are in MESH already) */
	snprintf(conf, sizeof(conf), "%s[daemon]\nlog_level = notice\n", w.conf);
	free(e.config);
	{
		char text[16384], name[64];

		snprintf(text, sizeof(text),
		    "[database]\nconninfo = %s\nbatch_size = 20\n[daemon]\nstage_interval = 1\nheartbeat = 5\n%s",
		    e.conninfo, conf);
		snprintf(name, sizeof(name), "kill9send-docs.conf");
		e.config = rasd_config(name, text);
	}
	fake_mesh_delay_sends(w.mesh, 3000);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_FATAL(spin_until(mesh_sends_arrived, w.mesh, 30000));
	usleep(300000);   /* the rest of the batch arrives; its answers are 3 s away */
	rasd_kill(&p, SIGKILL);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 128 + SIGKILL);
	rasd_free(&p);
	inflight = count(e.db, "SELECT count(*) FROM outbox WHERE state = 'sending' AND transport = 'mesh'");
	fprintf(stderr, "[kill -9 with %lld MESH send(s) unanswered, %zu message(s) in MESH]\n",
	    (long long)inflight, mesh_data_count(w.mesh));
	in_mesh = (int64_t)mesh_data_count(w.mesh);
	CU_ASSERT(inflight >= 5);
	CU_ASSERT(in_mesh >= 5 && in_mesh <= inflight);

	/* 4: the rest, with prompt answers; then everything is checked */
	fake_mesh_delay_sends(w.mesh, 0);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
	    " AND kind = 'triage-outcome' AND recipient_role = 'referrer'", N, 60000));
	CU_ASSERT(rasd_until(outbox_settled, e.db, 30000));
	/* in flight was settled first: what had reached MESH was found by
	 * tracking and not sent again; the rest was sent once */
	tracked = count(e.db, "SELECT count(*) FROM deliveries WHERE action = 'track' AND outcome = 'delivered'");
	CU_ASSERT_EQUAL(tracked, in_mesh);
	/* the FHIR posts of the killed batch had been answered, and recorded
	 * before MESH was waited for: none is posted again */
	check_deliveries(e.db, &w, false);
	CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", "$ers.recordReviewOutcome"), 1);
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070020"), 1);
	/* nothing lost, nothing decided twice */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn ~ '^0000005[12]'"), N);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn ~ '^0000005[12]'"), N);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn ~ '^0000005[12]' AND o.kind = 'triage-outcome'"), N);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	free(nodocs);
	env_free(&e);
	world_free(&w);
}

/*
 * Two rasd processes on one database, both running every stage and poller
 * against the same fakes: each referral is normalised and decided once,
 * each e-RS worklist polled once for the slot (one budget slot used), each
 * outcome written to e-RS once and each letter delivered once; the work
 * is shared.
 */
static void
two_processes_share_the_pipeline(void)
{
	enum { N = 160, FILES = 20 };
	struct rasd_proc a, b;
	struct world w;
	struct env e;
	char conf[10000];
	double ra, rb;

	world_new(&w, "twopipe", NULL, true);
	snprintf(conf, sizeof(conf), "%s[daemon]\nlog_level = warning\n", w.conf);
	env_new(&e, "twopipe", conf);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&a, e.config, NULL, (const char *[]){ "RASD_INSTANCE=a", NULL }), 0);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&b, e.config, NULL, (const char *[]){ "RASD_INSTANCE=b", NULL }), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&a, START_MS));
	CU_ASSERT_FATAL(rasd_wait_ready(&b, START_MS));
	/* Senders spread over both (as behind a load balancer), and a burst
	 * in the spool directory both watch. */
	for (int i = 0; i < N; i++) {
		char ubrn[16];
		size_t len;
		char *body;
		struct resp r;

		snprintf(ubrn, sizeof(ubrn), "%012d", (i % 2 ? 620000 : 610000) + i);
		body = fixture_with_ubrn(i % 2 ? "triage/midnotts-out-of-area.json" : "triage/midnotts-incomplete.json",
		    i % 2 ? "100000000302" : "100000000304", ubrn, &len);
		r = post(i % 4 < 2 ? &a : &b, "/fhir/Bundle", body, len);
		/* 202: kept, and the other process's normalise stage took it
		 * first (README "Intake: HTTP") */
		CU_ASSERT(r.status == 201 || r.status == 202);
		free(r.body);
		free(body);
	}
	for (int i = 0; i < FILES; i++) {
		char name[32], ubrn[16], path[PATH_MAX], tmp[PATH_MAX];
		size_t len;
		char *body;
		FILE *f;

		snprintf(ubrn, sizeof(ubrn), "%012d", 630000 + i);
		body = fixture_with_ubrn("triage/midnotts-incomplete.json", "100000000304", ubrn, &len);
		snprintf(name, sizeof(name), "b%02d.json", i);
		snprintf(tmp, sizeof(tmp), "%s/.%s", e.spool, name);
		snprintf(path, sizeof(path), "%s/%s", e.spool, name);
		f = fopen(tmp, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(body, 1, len, f), len);
		fclose(f);
		CU_ASSERT_EQUAL(rename(tmp, path), 0);
		free(body);
	}
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
	    " AND kind = 'triage-outcome' AND recipient_role = 'referrer'", N + FILES, 60000));
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_outcomes WHERE state = 'done'", 1, 20000));
	CU_ASSERT(rasd_until(outbox_settled, e.db, 30000));

	/* each sample stored once and decided once */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM referrals WHERE ubrn ~ '^0000006[123]'"), N + FILES);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn ~ '^0000006[123]'"), N + FILES);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM events v JOIN referrals r ON r.id = v.referral_id"
	    " WHERE v.kind = 'triage-decided' AND r.ubrn ~ '^0000006[123]'"), N + FILES);
	/* e-RS: one worklist call per service for the slot, one A028 */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM ers_worklist_calls"), 2);
	CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", "$ers.fetchworklist"), 2);
	CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", "$ers.recordReviewOutcome"), 1);
	CU_ASSERT_EQUAL(fake_ers_writes(w.ers, "000000070020"), 1);
	/* letters: once each, wherever they went */
	check_deliveries(e.db, &w, false);
	/* both processes worked; every decision their triage stages report
	 * is one stored (the e-RS poll also triages what it fetches, and an
	 * e-RS referral whose form arrives later is decided again) */
	ra = metric(&a, "rasd_stage_rows_total{unit=\"triage\"}");
	rb = metric(&b, "rasd_stage_rows_total{unit=\"triage\"}");
	fprintf(stderr, "[triage stage rows: a=%.0f b=%.0f; deliver: a=%.0f b=%.0f]\n", ra, rb,
	    metric(&a, "rasd_stage_rows_total{unit=\"deliver\"}"), metric(&b, "rasd_stage_rows_total{unit=\"deliver\"}"));
	CU_ASSERT(ra + rb >= N + FILES);
	CU_ASSERT(ra + rb <= (double)count(e.db, "SELECT count(*) FROM decisions WHERE decided_by = 'rules'"));
	/* both took payloads in; the stages' work went to whichever was free:
	 * while one waits on e-RS (its poll, paced by the rate limit) its
	 * intake goes on and the other's stages take what it kept */
	CU_ASSERT(metric(&a, "rasd_payloads_received_total") > 0);
	CU_ASSERT(metric(&b, "rasd_payloads_received_total") > 0);
	CU_ASSERT(metric_sum(&a, "rasd_stage_rows_total") + metric_sum(&b, "rasd_stage_rows_total") >=
	    N + FILES);
	rasd_kill(&a, SIGTERM);
	rasd_kill(&b, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&a, 10000), 0);
	CU_ASSERT_EQUAL(rasd_wait_exit(&b, 10000), 0);
	rasd_free(&a);
	rasd_free(&b);
	env_free(&e);
	world_free(&w);
}

/* The patient-identifiable values in one fixture: every Patient's names,
 * birth date, identifiers, address lines and postcode, telecom, and every
 * NHS number wherever it is used (EPR events, e-RS STU3 references). */
static void
patient_values(json_t *j, const char **out, size_t *n, size_t max)
{
	size_t i;
	const char *key;
	json_t *v;

	if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			patient_values(v, out, n, max);
		return;
	}
	if (!json_is_object(j))
		return;
	if (ras_json_str(j, "value") && ras_json_str(j, "system") &&
	    strstr(ras_json_str(j, "system"), "nhs-number") && *n < max)
		out[(*n)++] = ras_json_str(j, "value");
	if (ras_json_str(j, "resourceType") && strcmp(ras_json_str(j, "resourceType"), "Patient") == 0) {
		json_t *name, *line;
		size_t q, g;

		if (ras_json_str(j, "birthDate") && *n < max)
			out[(*n)++] = ras_json_str(j, "birthDate");
		json_array_foreach(json_object_get(j, "name"), q, name) {
			if (ras_json_str(name, "family") && *n < max)
				out[(*n)++] = ras_json_str(name, "family");
			json_array_foreach(json_object_get(name, "given"), g, v)
				if (*n < max)
					out[(*n)++] = json_string_value(v);
		}
		json_array_foreach(json_object_get(j, "address"), q, v) {
			if (ras_json_str(v, "postalCode") && *n < max)
				out[(*n)++] = ras_json_str(v, "postalCode");
			json_array_foreach(json_object_get(v, "line"), g, line)
				if (*n < max)
					out[(*n)++] = json_string_value(line);
		}
		json_array_foreach(json_object_get(j, "telecom"), q, v)
			if (ras_json_str(v, "value") && *n < max)
				out[(*n)++] = ras_json_str(v, "value");
	}
	json_object_foreach(j, key, v)
		patient_values(v, out, n, max);
}

/* Runs last: every log written by every rasd in this file, which between
 * them ran the whole pipeline (e-RS, HTTP, spool, EPR events, letters),
 * against every sample they were given. */
/*
 * A remote service that holds its answer back longer than the watchdog
 * interval does not hold rasd up: while the e-RS worklist call waits (4 s,
 * with WATCHDOG_USEC at 1 s), /healthz answers, a POST is taken into the
 * inbox, and the watchdog ping keeps coming every half second; the poll
 * then completes with the late answer.
 */
static bool
worklist_asked(void *ctx)
{
	return fake_ers_count(ctx, "POST", "$ers.fetchworklist") >= 1;
}

static void
slow_remote_does_not_block_the_loop(void)
{
	struct fake_fault hold = { .kind = FAKE_FAULT_DELAY, .path_has = "fetchworklist", .ms = 4000 };
	struct rasd_proc p;
	struct world w;
	struct resp r;
	struct env e;
	int64_t t0, took;
	size_t pings;

	world_new(&w, "slow", NULL, true);
	fake_http_fault(fake_ers_http(w.ers), &hold);
	env_new(&e, "slow", w.conf_nodocs);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL,
	    (const char *[]){ "WATCHDOG_USEC=1000000", NULL }), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_FATAL(rasd_until(worklist_asked, w.ers, 10000));
	t0 = ras_time_mono_ms();
	CU_ASSERT_EQUAL(fake_http_faulted(fake_ers_http(w.ers)), 1);
	(void)rasd_wait_notify(&p, "\x1f", 0);
	pings = ras_test_count(p.notes, "WATCHDOG=1");

	r = request(&p, "GET", "/healthz", NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	free(r.body);
	r = post_fixture(&p, "/fhir/Bundle", "r4/referral-collection-urn.json");
	CU_ASSERT_EQUAL(r.status, 201);
	free(r.body);
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox"), 1);
	r = request(&p, "GET", "/readyz", NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	free(r.body);
	/* a SIGHUP meanwhile: the reload waits for the batch (its units are
	 * in use), then happens */
	rasd_kill(&p, SIGHUP);
	/* two seconds more of the hold: four pings expected, three at least */
	(void)rasd_wait_notify(&p, "\x1f", 2000);
	took = ras_time_mono_ms() - t0;
	CU_ASSERT(took < 4000);
	CU_ASSERT(ras_test_count(p.notes, "WATCHDOG=1") >= pings + 3);
	/* the worklist answer was still held back all that time */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'ok'"), 0);
	if (took >= 4000)
		fprintf(stderr, "slow remote: the checks took %lld ms\n", (long long)took);

	CU_ASSERT_EQUAL(ras_test_count(p.notes, "RELOADING=1"), 0);
	/* the late answer is taken as usual, and the reload follows */
	CU_ASSERT(wait_count(e.db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'ok'", 2, 20000));
	CU_ASSERT(rasd_wait_notify(&p, "RELOADING=1", 10000));
	CU_ASSERT(rasd_wait_notify(&p, "configuration reloaded", 10000));
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	env_free(&e);
	world_free(&w);
}

/*
 * SIGTERM while a stage waits on a slow remote service: the loop reads it
 * at once (/readyz says "stopping" while the batch finishes), no other
 * stage starts, and rasd exits 0 once the held answer has come.
 */
static void
sigterm_while_a_stage_waits(void)
{
	struct fake_fault hold = { .kind = FAKE_FAULT_DELAY, .path_has = "fetchworklist", .ms = 3000 };
	struct rasd_proc p;
	struct world w;
	struct resp r;
	struct env e;
	char *log;

	world_new(&w, "slowstop", NULL, true);
	fake_http_fault(fake_ers_http(w.ers), &hold);
	env_new(&e, "slowstop", w.conf_nodocs);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_FATAL(rasd_until(worklist_asked, w.ers, 10000));
	rasd_kill(&p, SIGTERM);
	CU_ASSERT(rasd_wait_notify(&p, "STOPPING=1", 1000));
	r = request(&p, "GET", "/readyz", NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 503);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "stopping"));
	free(r.body);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 15000), 0);
	log = rasd_log(&p);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "SIGTERM: stopping"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "stopped"));
	free(log);
	rasd_free(&p);
	env_free(&e);
	world_free(&w);
}

/* ---- PostgreSQL failover (the "failover" test: RAS_TEST_FAILOVER=1) ----
 *
 * A primary and a synchronous streaming standby (scripts/lib/pg-pair.sh);
 * rasd connects with both hosts and target_session_attrs=read-write.
 * Under a steady stream of POSTs the primary is stopped at once; /readyz
 * must say so; then either the same server comes back (a plain restart)
 * or the standby is promoted (failover).  rasd reconnects by itself, every
 * payload it acknowledged (2xx) is in the database that is now the
 * primary, no referral is stored twice, and the letters the POSTs cause
 * reach MESH, the FHIR endpoint and the print directory once each. */

static char *pair_dir;

/* The servers pg_ctl starts must not inherit this process's descriptors
 * (a captured output pipe would never reach end-of-file): the script runs
 * with only stdin, and stdout/stderr on a log file. */
static int
pg_pair(const char *cmd)
{
	char log[PATH_MAX];
	pid_t pid;
	int status = -1;

	snprintf(log, sizeof(log), "%s/pg-pair.log", ras_test_tmpdir());
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		for (int k = 3; k < 4096; k++)
			close(k);
		execl("/bin/bash", "bash", RAS_SOURCE_ROOT "/scripts/lib/pg-pair.sh", cmd, pair_dir, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *text = ras_test_read(log, NULL);

		fprintf(stderr, "pg-pair.sh %s failed:\n%s\n", cmd, text);
		free(text);
		return -1;
	}
	return 0;
}

#define SEND_MAX 4000

struct sender {
	char url[128];
	const char *fixture;          /* the referral, its UBRN at ubrn_at */
	size_t len, ubrn_at;
	int base;
	volatile int stop;
	volatile int sent, acked;
	char (*acked_ubrn)[13];
};

static void *
send_loop(void *arg)
{
	struct sender *s = arg;
	struct ras_http_opts o = { .allow_http_loopback = true };
	struct ras_http *h;
	char *body = malloc(s->len + 1);

	if (body == NULL || ras_http_new(&o, &h) < 0)
		return NULL;
	memcpy(body, s->fixture, s->len + 1);
	while (!s->stop && s->sent < SEND_MAX) {
		struct ras_http_request r;
		char ubrn[16];

		snprintf(ubrn, sizeof(ubrn), "%012d", s->base + s->sent);
		memcpy(body + s->ubrn_at, ubrn, 12);
		ras_http_request_init(&r, "POST", s->url);
		(void)ras_http_request_header(&r, "Authorization", "Bearer " TOKEN);
		(void)ras_http_request_header(&r, "Content-Type", "application/fhir+json");
		r.body = body;
		r.body_len = s->len;
		r.timeout_ms = 10000;
		(void)ras_http_perform(h, &r, 1);
		if (r.err == 0 && r.status >= 200 && r.status < 300)
			memcpy(s->acked_ubrn[s->acked++], ubrn, 13);
		s->sent++;
		ras_http_request_release(&r);
		usleep(10000);
	}
	ras_http_free(h);
	free(body);
	return NULL;
}

static long
readyz(const struct rasd_proc *p)
{
	struct resp r = request(p, "GET", "/readyz", NULL, 0, NULL, NULL);

	free(r.body);
	return r.status;
}

/* Wait until /readyz answers `want` (true) or ms pass. */
static bool
readyz_becomes(const struct rasd_proc *p, long want, int ms)
{
	for (int64_t end = ras_time_mono_ms() + ms; ras_time_mono_ms() < end; usleep(100000))
		if (readyz(p) == want)
			return true;
	return false;
}

static bool
acked_at_least(struct sender *s, int n, int ms)
{
	for (int64_t end = ras_time_mono_ms() + ms; ras_time_mono_ms() < end; usleep(50000))
		if (s->acked >= n)
			return true;
	return s->acked >= n;
}

static struct ras_db *
db_for(const char *conninfo, struct ras_db **db)
{
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, db), 0);
	return *db;
}

static bool
ers_outcomes_settled(void *ctx)
{
	return count(ctx, "SELECT count(*) FROM ers_outcomes WHERE state IN ('pending', 'sending',"
	    " 'unknown', 'retry')") == 0;
}

static void
survive_database_outage(const char *name, bool failover)
{
	char conninfo[PATH_MAX * 2 + 256], admin[PATH_MAX + 128], text[32768], sql[160], cfgname[64];
	const char *user = getenv("RAS_TEST_PGUSER") ? getenv("RAS_TEST_PGUSER") : "postgres";
	struct sender s = { .base = failover ? 300000000 : 200000000 };
	struct ras_db *db = NULL;
	struct ras_buf ids = RAS_BUF_INIT(0);
	struct rasd_proc p;
	struct world w;
	pthread_t t;
	char *spool, *cfg, *data;
	int before;

	if (pair_dir == NULL) {
		pair_dir = malloc(PATH_MAX);
		snprintf(pair_dir, PATH_MAX, "%s/pgpair", ras_test_tmpdir());
		CU_ASSERT_EQUAL_FATAL(pg_pair("start"), 0);
	}
	/* the database, on the primary (and by replication on the standby) */
	snprintf(admin, sizeof(admin), "host=%s/sa user=%s dbname=postgres", pair_dir, user);
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(admin, &db), 0);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
	ras_db_close(db);
	snprintf(conninfo, sizeof(conninfo), "host=%s/sa,%s/sb user=%s dbname=%s"
	    " target_session_attrs=read-write connect_timeout=3", pair_dir, pair_dir, user, name);
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, &db), 0);
	CU_ASSERT_EQUAL_FATAL(ras_migrate_apply(db, NULL, NULL), 0);
	ras_db_close(db);
	db = NULL;

	world_new(&w, name, NULL, true);
	snprintf(cfgname, sizeof(cfgname), "spool-%s", name);
	spool = rasd_dir(cfgname);
	snprintf(text, sizeof(text),
	    "[database]\nconninfo = %s\nbatch_size = 20\n"
	    "[daemon]\nstage_interval = 1\nheartbeat = 5\n"
	    "[http]\nlisten = 127.0.0.1:0\ntoken = %s\nmax_body = 65536\n"
	    "[spool]\ndirectory = %s\nrescan = 2\n%s", conninfo, token_path, spool, w.conf);
	snprintf(cfgname, sizeof(cfgname), "%s.conf", name);
	cfg = rasd_config(cfgname, text);
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, cfg, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	CU_ASSERT_EQUAL(readyz(&p), 200);
	/* the e-RS worklists polled at start, and an outcome recorded on e-RS,
	 * before the outage (a failed poll waits for its next slot) */
	CU_ASSERT(wait_count(db_for(conninfo, &db), "SELECT count(*) FROM ers_worklist_calls"
	    " WHERE outcome = 'ok'", 2, 40000));
	CU_ASSERT(wait_count(db, "SELECT count(*) FROM ers_outcomes WHERE state = 'done'", 1, 40000));
	ras_db_close(db);
	db = NULL;

	/* an incomplete referral: returned, with a letter to the referrer */
	data = ras_test_read(ras_test_fixture("triage/midnotts-incomplete.json"), &s.len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(strstr(data, "\"100000000304\""));
	s.fixture = data;
	s.ubrn_at = (size_t)(strstr(data, "\"100000000304\"") - data) + 1;
	s.acked_ubrn = calloc(SEND_MAX, sizeof(*s.acked_ubrn));
	snprintf(s.url, sizeof(s.url), "http://%s/fhir/Bundle", p.http);
	pthread_create(&t, NULL, send_loop, &s);

	/* under load: the primary goes away at once */
	CU_ASSERT(acked_at_least(&s, 20, 20000));
	CU_ASSERT_EQUAL_FATAL(pg_pair("stop-primary"), 0);
	if (!readyz_becomes(&p, 503, 10000)) {
		char *log = rasd_log(&p);
		size_t n = strlen(log);

		CU_FAIL("/readyz did not turn 503 with the primary gone");
		fprintf(stderr, "rasd's log (end):\n%s\n", n > 6000 ? log + n - 6000 : log);
		free(log);
	}
	before = s.acked;
	usleep(500000);
	CU_ASSERT_EQUAL(readyz(&p), 503);
	/* the same server again, or the standby promoted */
	CU_ASSERT_EQUAL_FATAL(pg_pair(failover ? "promote" : "start-primary"), 0);
	CU_ASSERT(readyz_becomes(&p, 200, 30000));
	CU_ASSERT(acked_at_least(&s, before + 20, 30000));
	s.stop = 1;
	pthread_join(t, NULL);
	fprintf(stderr, "[%s: %d POSTs, %d acknowledged]\n", name, s.sent, s.acked);

	/* everything acknowledged is in the database that is now the primary */
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, &db), 0);
	CU_ASSERT_EQUAL(count(db, "SELECT CASE WHEN pg_is_in_recovery() THEN 0 ELSE 1 END"), 1);
	(void)ras_buf_putc(&ids, '{');
	for (int i = 0; i < s.acked; i++)
		(void)ras_buf_printf(&ids, "%s%s", i ? "," : "", s.acked_ubrn[i]);
	(void)ras_buf_putc(&ids, '}');
	{
		struct ras_db_res *res = NULL;
		int64_t n = -1;

		CU_ASSERT_EQUAL(ras_db_query(db, &res, "SELECT count(DISTINCT ubrn) FROM referrals"
		    " WHERE ubrn = ANY ($1::text[])", 1, &RAS_DB_TEXT(ids.data)), 0);
		(void)ras_db_res_int(res, 0, 0, &n);
		ras_db_res_free(res);
		CU_ASSERT_EQUAL(n, s.acked);
	}
	CU_ASSERT_EQUAL(count(db, "SELECT count(*) FROM (SELECT ubrn FROM referrals GROUP BY ubrn"
	    " HAVING count(*) > 1) x"), 0);
	/* and nothing sent twice: every letter reached its endpoint once, */
	CU_ASSERT(rasd_until(outbox_settled, db, 60000));
	CU_ASSERT(check_deliveries(db, &w, false) > 0);
	CU_ASSERT(fake_mesh_count(w.mesh) > 0);
	/* every e-RS outcome (of the worklists polled at start) was sent once:
	 * the reconnection settled nothing by sending it again */
	CU_ASSERT(rasd_until(ers_outcomes_settled, db, 60000));
	{
		struct ras_db_res *res = NULL;
		int done = 0;

		CU_ASSERT_EQUAL(ras_db_query(db, &res, "SELECT ubrn, state FROM ers_outcomes", 0, NULL), 0);
		for (int i = 0; i < ras_db_res_rows(res); i++) {
			const char *ubrn = ras_db_res_get(res, i, 0);
			char path[64];

			snprintf(path, sizeof(path), "/%s/$ers.recordReviewOutcome", ubrn);
			CU_ASSERT(fake_ers_writes(w.ers, ubrn) <= 1);
			if (strcmp(ras_db_res_get(res, i, 1), "done") == 0) {
				done++;
				CU_ASSERT_EQUAL(fake_ers_writes(w.ers, ubrn), 1);
				CU_ASSERT_EQUAL(fake_ers_count(w.ers, "POST", path), 1);
			}
		}
		ras_db_res_free(res);
		CU_ASSERT(done > 0);
	}

	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 10000), 0);
	rasd_free(&p);
	ras_db_close(db);
	ras_buf_free(&ids);
	free(s.acked_ubrn);
	free(data);
	free(cfg);
	free(spool);
	world_free(&w);
}

static void
restart_of_the_server_survived(void)
{
	survive_database_outage("restart", false);
}

static void
failover_to_the_standby_survived(void)
{
	survive_database_outage("failover", true);
}

/* The pair goes with the suite, whatever happened. */
static int
failover_teardown(void)
{
	if (pair_dir)
		(void)pg_pair("stop");
	free(pair_dir);
	pair_dir = NULL;
	return teardown();
}

/*
 * The property test of the safety suites, by rasd's own routes: generated
 * referrals (the form linked each way FHIR allows, any answers, red flags,
 * urgent priorities, a PHQ-9 beside the form) POSTed to a running rasd
 * (?service= naming the service), renamed into its spool directory (the
 * spool's [spool] service), put in its MESH mailbox (its [triage]
 * default_service) and given to `rasctl ingest` (--service, and an
 * e-RS referral's form as JSON, FHIR XML or XHTML by --ubrn, or contained);
 * then each referral's stored decision must be the one the engine makes
 * in-process, none reporting danger returned, accepted or with an e-RS
 * outcome on its way, and its stored form must have the answers sent
 * (gen_check_stored).  RAS_PROPERTY_E2E_RUNS forms (default 12, each sent
 * four ways and once more as an e-RS referral), RAS_PROPERTY_SEED.
 */
static void
property_by_every_route(void)
{
	long runs = gen_env_long("RAS_PROPERTY_E2E_RUNS", 12);
	long seed = gen_env_long("RAS_PROPERTY_SEED", 12);
	size_t cap = (size_t)runs * (GEN_N_LINKS + 1), ns = 0, nposts = 0;
	struct gen_sent *sent = calloc(cap, sizeof(*sent));
	struct ras_http_request *reqs = calloc(cap, sizeof(*reqs));
	char **bodies = calloc(cap, sizeof(char *)), *dir = rasd_dir("property-ingest");
	char (*urls)[256] = calloc(cap, sizeof(*urls)), bearer[64];   /* the requests point at them */
	const char **post_service = calloc(cap, sizeof(char *));
	char conf[sizeof(((struct world *)0)->conf) + 64];
	struct rasd_proc p;
	struct world w;
	struct env e;
	int nrasctl = 0, nmesh = 0;

	CU_ASSERT_FATAL(sent && reqs && bodies && urls && post_service && runs < 100000);
	/* the spool's service, then MESH (its referrals go to [triage]
	 * default_service, midnotts) and delivery as the pipeline test has them */
	world_new(&w, "property", NULL, false);
	snprintf(conf, sizeof(conf), "service = midnotts\n%s", w.conf);
	env_new(&e, "property", conf);
	gen_seed(seed);
	for (long run = 0; run < runs; run++) {
		const char *service = gen.services[gen_next_rand() % gen.n_services];
		bool danger, extra = gen_coin(40);
		json_t *form = gen_random_form(&danger);
		enum gen_route route = (enum gen_route)(run % GEN_N_ROUTES);

		gen.r4_priority = gen_coin(10) ? (gen_coin(50) ? "urgent" : "asap") : NULL;
		for (int how = 0; how < GEN_N_LINKS; how++) {
			struct gen_sent *sn = &sent[ns++];
			json_t *b = gen_bundle_with(json_deep_copy(form), (enum gen_link)how, extra);
			char *text = gen_dump(b), *mine, path[PATH_MAX];
			/* HTTP, the spool, rasctl ingest, MESH: each way gets each link in turn */
			int way = (int)((run + how) % 4);
			struct ras_referral r;
			struct ras_decision d;

			snprintf(sn->ubrn, sizeof(sn->ubrn), "6%u%05u%05u", (unsigned)way % 10u,
			    (unsigned)(run % 100000), (unsigned)how % 100000u);
			sn->service = way == 1 || way == 3 ? "midnotts" : service;
			sn->route = way == 0 ? "HTTP" : way == 1 ? "the spool" : way == 2 ? "rasctl ingest" : "MESH";
			sn->danger = danger || gen.r4_priority;
			CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, sn->service, &r, &d), 0);
			gen_expect(&d, sn);
			sn->answers = gen_answers_key(&r.form);
			mine = gen_with_ubrn(text, GEN_R4_UBRN, sn->ubrn);
			free(text);
			if (way == 0) {
				/* POSTed once rasd runs (below) */
				post_service[nposts] = sn->service;
				bodies[nposts++] = mine;
				continue;
			}
			if (way == 3) {
				/* in rasd's mailbox before it starts: its first poll takes it */
				fake_mesh_deliver(w.mesh, "X26ABC3", "X26ABC1", "RASD_REFERRAL", "application/fhir+json",
				    mine);
				nmesh++;
				free(mine);
				continue;
			}
			/* the spool: written under a dot-name, then renamed into place;
			 * rasctl ingest: one run per file, as a person would */
			snprintf(path, sizeof(path), "%s/.%s.json", way == 1 ? e.spool : dir, sn->ubrn);
			CU_ASSERT_EQUAL_FATAL(write_file(path, mine, strlen(mine)), 0);
			if (way == 1) {
				char dst[PATH_MAX];

				snprintf(dst, sizeof(dst), "%s/%s.json", e.spool, sn->ubrn);
				CU_ASSERT_EQUAL(rename(path, dst), 0);
			} else {
				char *argv[] = { (char *)ras_test_program("daemon/rasctl"), "--db", e.conninfo, "ingest",
					"--service", (char *)sn->service, path, NULL };

				CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, NULL, NULL), 0);
				nrasctl++;
			}
			free(mine);
		}
		/* one e-RS referral of the same form, by rasctl ingest: the A005
		 * referral, then its attachments for its UBRN */
		{
			struct gen_sent *sn = &sent[ns++];
			struct ras_referral r;
			struct ras_decision d;
			char *ref, *att, *oth, *mine, paths[3][PATH_MAX];

			snprintf(sn->ubrn, sizeof(sn->ubrn), "69%05u00000", (unsigned)(run % 100000));
			sn->service = service;
			sn->route = gen_route_names[route];
			sn->danger = danger;
			CU_ASSERT_EQUAL_FATAL(gen_decide_ers(form, route, extra, NULL, service, &r, &d), 0);
			gen_expect(&d, sn);
			sn->answers = gen_answers_key(&r.form);
			gen_ers_payloads(form, route, extra, NULL, &ref, &att, &oth);
			mine = gen_with_ubrn(ref, GEN_ERS_UBRN, sn->ubrn);
			snprintf(paths[0], sizeof(paths[0]), "%s/%s-a005.json", dir, sn->ubrn);
			snprintf(paths[1], sizeof(paths[1]), "%s/%s-form.%s", dir, sn->ubrn,
			    route == GEN_ROUTE_ERS_JSON ? "json" : "xml");
			snprintf(paths[2], sizeof(paths[2]), "%s/%s-phq9.json", dir, sn->ubrn);
			CU_ASSERT_EQUAL_FATAL(write_file(paths[0], mine, strlen(mine)), 0);
			{
				char *argv[] = { (char *)ras_test_program("daemon/rasctl"), "--db", e.conninfo, "ingest",
					"--service", (char *)service, paths[0], NULL };

				CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, NULL, NULL), 0);
				nrasctl++;
			}
			if (att) {
				char *argv[] = { (char *)ras_test_program("daemon/rasctl"), "--db", e.conninfo, "ingest",
					"--ubrn", sn->ubrn, paths[1], oth ? paths[2] : NULL, NULL };

				CU_ASSERT_EQUAL_FATAL(write_file(paths[1], att, strlen(att)), 0);
				if (oth)
					CU_ASSERT_EQUAL_FATAL(write_file(paths[2], oth, strlen(oth)), 0);
				CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, NULL, NULL), 0);
				nrasctl++;
			}
			free(mine);
			free(ref);
			free(att);
			free(oth);
		}
		gen.r4_priority = NULL;
		json_decref(form);
		gen_reset_arena();
	}
	CU_ASSERT_EQUAL_FATAL(rasd_start(&p, e.config, NULL, NULL), 0);
	CU_ASSERT_FATAL(rasd_wait_ready(&p, START_MS));
	snprintf(bearer, sizeof(bearer), "Bearer %s", TOKEN);
	for (size_t i = 0; i < nposts; i++) {
		struct ras_http_request *q = &reqs[i];

		snprintf(urls[i], sizeof(urls[i]), "http://%s/fhir/Bundle?service=%s", p.http, post_service[i]);
		ras_http_request_init(q, "POST", urls[i]);
		(void)ras_http_request_header(q, "Authorization", bearer);
		(void)ras_http_request_header(q, "Content-Type", "application/fhir+json");
		q->body = bodies[i];
		q->body_len = strlen(bodies[i]);
		q->timeout_ms = 30000;
	}
	CU_ASSERT_EQUAL(ras_http_perform(http, reqs, nposts), 0);
	for (size_t i = 0; i < nposts; i++) {
		if (reqs[i].status != 201)
			fprintf(stderr, "POST %zu: %ld %s\n", i, reqs[i].status,
			    reqs[i].body_out.data ? reqs[i].body_out.data : "");
		CU_ASSERT_EQUAL(reqs[i].status, 201);
		ras_http_request_release(&reqs[i]);
		free(bodies[i]);
	}
	/* every referral stored and decided (the spool's by the daemon) */
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "SELECT count(DISTINCT r.ubrn) FROM referrals r"
		    " JOIN current_decisions d ON d.referral_id = r.id WHERE r.ubrn LIKE '6%%'");
		CU_ASSERT(wait_count(e.db, sql, (int64_t)ns, 30000));
	}
	for (size_t i = 0; i < ns; i++) {
		gen_check_stored(e.db, &sent[i], seed);
		gen_sent_free(&sent[i]);
	}
	gen_reset_arena();
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE state <> 'stored'"), 0);
	/* every MESH message was taken (and answered by no error report) */
	CU_ASSERT_EQUAL(count(e.db, "SELECT count(*) FROM inbox WHERE source = 'mesh'"), nmesh);
	CU_ASSERT(nmesh > 0);
	if (getenv("RAS_TEST_VERBOSE"))
		fprintf(stderr, "property by every route: %zu referrals (%zu by HTTP, %d by MESH, %d rasctl runs),"
		    " seed %ld\n", ns, nposts, nmesh, nrasctl, seed);
	rasd_kill(&p, SIGTERM);
	CU_ASSERT_EQUAL(rasd_wait_exit(&p, 5000), 0);
	rasd_free(&p);
	env_free(&e);
	world_free(&w);
	free(post_service);
	free(sent);
	free(reqs);
	free(bodies);
	free(urls);
	free(dir);
}

static void
logs_carry_no_patient_data(void)
{
	static const char *patterns[] = { "r4/*.json", "bad/nhs-invalid.json", "triage/*.json", "epr/*.json",
		"ers/sandbox/stu3/retrieveReferralRequest/responses/*.json",
		"ers/local/stu3/retrieveReferralRequest/responses/*.json", "ers/local/objectstore/*.json", NULL };
	char *logs = rasd_all_logs();
	size_t checked = 0, files = 0;

	CU_ASSERT_FATAL(strlen(logs) > 1000);
	for (int pi = 0; patterns[pi]; pi++) {
		glob_t g;
		char pat[PATH_MAX];

		snprintf(pat, sizeof(pat), "%s", ras_test_fixture(patterns[pi]));
		if (glob(pat, 0, NULL, &g) != 0)
			continue;
		for (size_t f = 0; f < g.gl_pathc; f++) {
			size_t len, n = 0;
			char *data = ras_test_read(g.gl_pathv[f], &len);
			const char *needles[256];
			json_t *b = NULL;

			files++;
			if (ras_json_parse(data, len, 0, &b) < 0) {
				free(data);
				continue;
			}
			patient_values(b, needles, &n, 256);
			for (size_t x = 0; x < n; x++) {
				if (needles[x] == NULL || strlen(needles[x]) < 3)
					continue;
				if (strstr(logs, needles[x]))
					fprintf(stderr, "patient data \"%s\" (from %s) is in the logs\n", needles[x],
					    g.gl_pathv[f]);
				CU_ASSERT_PTR_NULL(strstr(logs, needles[x]));
				checked++;
			}
			json_decref(b);
			free(data);
		}
		globfree(&g);
	}
	fprintf(stderr, "[%zu patient value(s) from %zu sample file(s) checked against %zu bytes of logs]\n",
	    checked, files, strlen(logs));
	CU_ASSERT(checked >= 90);
	/* The logs do name what happened, by UBRN and ids. */
	CU_ASSERT_PTR_NOT_NULL(strstr(logs, "UBRN=100000000101"));
	CU_ASSERT_PTR_NOT_NULL(strstr(logs, "UBRN=000000070020"));
	CU_ASSERT_PTR_NOT_NULL(strstr(logs, "STAGE=triage"));
	CU_ASSERT_PTR_NOT_NULL(strstr(logs, "STAGE=ers-outcome"));
	CU_ASSERT_PTR_NOT_NULL(strstr(logs, "STAGE=deliver"));
	free(logs);
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "--check-config reports every problem", check_config_reports_everything },
		{ "the example configuration names every option", example_config_covers_every_option },
		{ "refuses to run as root", refuses_root },
		{ "refuses a schema it does not know", refuses_other_schema },
		{ "READY, health, SIGTERM", ready_health_and_clean_stop },
		{ "HTTP intake", http_intake },
		{ "HTTP concurrent senders", http_concurrent_senders },
		{ "HTTP group commit: answered only once committed", http_group_commit_answers_only_committed },
		{ "HTTP group: what each sender is told", http_group_receipts },
		{ "HTTP groups kept side by side by workers", http_groups_side_by_side },
		{ "PDS unavailable: the referral waits, visibly", pds_unavailable_waits_visibly },
		{ "spool intake", spool_intake },
		{ "spool: half-written files wait", spool_half_written_files_wait },
		{ "spool: oldest first, a pass's worth of names at a time", spool_oldest_first_in_bounded_passes },
		{ "EPR events over HTTP", epr_events_over_http },
		{ "SIGHUP keeps the config unless valid", sighup_keeps_config_unless_valid },
		{ "kill -9 mid-batch loses nothing", kill9_mid_batch_loses_nothing },
		{ "two processes share the work", two_processes_share_the_work },
		{ "starts in the background", background_start },
		{ "mutual TLS", mutual_tls },
		{ "the whole pipeline end to end", pipeline_end_to_end },
		{ "SIGHUP with a broken rule file keeps the old rules", sighup_broken_rules_keep_old_rules },
		{ "kill -9 mid-send: restart sends nothing twice", kill9_mid_send_sends_nothing_twice },
		{ "two processes share the whole pipeline", two_processes_share_the_pipeline },
		{ "a slow remote service does not block the loop", slow_remote_does_not_block_the_loop },
		{ "SIGTERM while a stage waits on a remote service", sigterm_while_a_stage_waits },
		{ "property: generated referrals by every route, decided as in-process", property_by_every_route },
		{ "logs carry no patient data", logs_carry_no_patient_data },
		{ NULL, NULL },
	};
	static const struct ras_test_case failover_cases[] = {
		{ "failover: the server restarted under load", restart_of_the_server_survived },
		{ "failover: the standby promoted under load", failover_to_the_standby_survived },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "rasd", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};
	static const struct ras_test_suite failover[] = {
		{ "failover", failover_cases, setup, failover_teardown },
		{ NULL, NULL, NULL, NULL },
	};

	/* The failover test is a meson test of its own (it starts its own
	 * pair of servers): the same program with RAS_TEST_FAILOVER=1. */
	if (getenv("RAS_TEST_FAILOVER"))
		return ras_test_run_suites(failover);
	return ras_test_run_suites(suites);
}
