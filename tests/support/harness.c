/* harness: shared test support (see tests/harness.h). */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/decision.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/mappings.h"
#include "ras/migrate.h"
#include "ras/outbox.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras_config.h"

extern char **environ;

static unsigned skipped;

void
ras_test_skip(const char *why)
{
	CU_pTest t = CU_get_current_test();

	fprintf(stderr, "SKIP %s: %s\n", t && t->pName ? t->pName : "(case)", why);
	skipped++;
}

int
ras_test_run_suites(const struct ras_test_suite *suites)
{
	unsigned failures, ran;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	for (const struct ras_test_suite *s = suites; s->name; s++) {
		CU_pSuite suite = CU_add_suite(s->name, s->init, s->cleanup);

		if (suite == NULL)
			return 1;
		for (const struct ras_test_case *c = s->cases; c->name; c++) {
			/* RAS_TEST_ONLY=text runs only the cases whose name has it
			 * (while working on one; the suite always runs whole). */
			const char *only = getenv("RAS_TEST_ONLY");
			const char *except = getenv("RAS_TEST_EXCLUDE");

			if (only && *only && strstr(c->name, only) == NULL)
				continue;
			if (except && *except && strstr(c->name, except) != NULL)
				continue;
			if (CU_add_test(suite, c->name, c->fn) == NULL)
				return 1;
		}
	}
	CU_basic_set_mode(getenv("RAS_TEST_VERBOSE") ? CU_BRM_VERBOSE : CU_BRM_NORMAL);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed() +
	    CU_get_number_of_tests_failed();
	ran = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (failures)
		return 1;
	if (skipped) {
		fprintf(stderr, "%u of %u case(s) skipped\n", skipped, ran);
		if (skipped >= ran)
			return 77;   /* meson: SKIP */
	}
	return 0;
}

struct ras_db *
ras_test_db(const char *name, char **conninfo)
{
	static unsigned counter;
	const char *host = getenv("RAS_TEST_PGHOST"), *user = getenv("RAS_TEST_PGUSER");
	char admin[PATH_MAX + 128], ci[PATH_MAX + 256], sql[256], dbname[96];
	struct ras_db *db = NULL;

	if (host == NULL) {
		fprintf(stderr, "RAS_TEST_PGHOST is not set: run the tests with scripts/test, which "
		    "starts a private PostgreSQL cluster\n");
		exit(1);
	}
	snprintf(dbname, sizeof(dbname), "t_%s_%d_%u", name, (int)getpid(), counter++);
	for (char *p = dbname; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			*p = '_';
	snprintf(admin, sizeof(admin), "host=%s user=%s dbname=postgres", host, user ? user : "postgres");
	if (ras_db_connect(admin, &db) < 0) {
		fprintf(stderr, "cannot reach the test cluster: %s\n", ras_error_last());
		exit(1);
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
	if (ras_db_exec(db, sql) < 0) {
		fprintf(stderr, "cannot create test database: %s\n", ras_error_last());
		exit(1);
	}
	ras_db_close(db);
	snprintf(ci, sizeof(ci), "host=%s user=%s dbname=%s", host, user ? user : "postgres", dbname);
	if (ras_db_connect(ci, &db) < 0 || ras_migrate_apply(db, NULL, NULL) < 0) {
		fprintf(stderr, "cannot prepare test database: %s\n", ras_error_last());
		exit(1);
	}
	if (conninfo)
		*conninfo = strdup(ci);
	return db;
}

const char *
ras_test_fixture(const char *rel)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", RAS_SOURCE_ROOT, rel);
	return path;
}

char *
ras_test_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

const char *
ras_test_tmpdir(void)
{
	static char dir[PATH_MAX];

	if (dir[0] == '\0') {
		const char *base = getenv("RAS_TEST_TMP") ? getenv("RAS_TEST_TMP") : "/tmp";

		snprintf(dir, sizeof(dir), "%s/t.%d.XXXXXX", base, (int)getpid());
		if (mkdtemp(dir) == NULL) {
			fprintf(stderr, "cannot create temp dir: %s\n", strerror(errno));
			exit(1);
		}
		chmod(dir, 0755);
	}
	return dir;
}

char *
ras_test_write_tmp(const char *name, const char *data, size_t len)
{
	char *path = malloc(PATH_MAX);
	FILE *f;

	snprintf(path, PATH_MAX, "%s/%s", ras_test_tmpdir(), name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	return path;
}

bool
ras_test_golden(const char *rel, const char *actual, size_t len)
{
	char path[PATH_MAX], apath[PATH_MAX + 8];
	FILE *f;
	char *want;
	size_t wlen;
	bool same;

	snprintf(path, sizeof(path), "%s/tests/golden/%s", RAS_SOURCE_ROOT, rel);
	snprintf(apath, sizeof(apath), "%s.actual", path);
	if (getenv("RAS_UPDATE_GOLDEN")) {
		f = fopen(path, "wb");
		if (f) {
			fwrite(actual, 1, len, f);
			fclose(f);
		}
		unlink(apath);
		return true;
	}
	if (access(path, R_OK) != 0) {
		fprintf(stderr, "golden file %s is missing (RAS_UPDATE_GOLDEN=1 creates it)\n", path);
		same = false;
	} else {
		want = ras_test_read(path, &wlen);
		same = wlen == len && memcmp(want, actual, len) == 0;
		free(want);
	}
	if (!same) {
		f = fopen(apath, "wb");
		if (f) {
			fwrite(actual, 1, len, f);
			fclose(f);
		}
		fprintf(stderr, "output differs from %s; actual output left in %s\n", path, apath);
	} else {
		unlink(apath);
	}
	return same;
}

const char *
ras_test_program(const char *rel)
{
	static char path[PATH_MAX];
	const char *root = getenv("RAS_BUILD_ROOT");

	snprintf(path, sizeof(path), "%s/%s", root ? root : ".", rel);
	return path;
}

static void
drain(int fd, char **buf, size_t *len, size_t *cap)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n <= 0)
		return;
	if (*len + (size_t)n + 1 > *cap) {
		*cap = (*len + (size_t)n + 1) * 2;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
}

int
ras_test_spawn(char *const argv[], const char *const *env, const char *in, char **out,
    char **err)
{
	int pin[2], pout[2], perr[2], status = 0;
	posix_spawn_file_actions_t fa;
	char **envp = environ, **merged = NULL;
	char *obuf = calloc(1, 1), *ebuf = calloc(1, 1);
	size_t olen = 0, ocap = 1, elen = 0, ecap = 1, ilen = in ? strlen(in) : 0, ioff = 0;
	pid_t pid;

	if (pipe(pin) || pipe(pout) || pipe(perr))
		return -1;
	if (env) {
		size_t n = 0, m = 0;

		while (environ[n])
			n++;
		while (env[m])
			m++;
		merged = calloc(n + m + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			merged[i] = environ[i];
		for (size_t i = 0; i < m; i++)
			merged[n + i] = (char *)env[i];
		envp = merged;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	posix_spawn_file_actions_addclose(&fa, pin[1]);
	posix_spawn_file_actions_addclose(&fa, pout[0]);
	posix_spawn_file_actions_addclose(&fa, perr[0]);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, envp) != 0) {
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		exit(1);
	}
	posix_spawn_file_actions_destroy(&fa);
	free(merged);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	if (ilen == 0) {
		close(pin[1]);
		pin[1] = -1;
	} else {
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd p[3] = { { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 },
			{ pin[1], POLLOUT, 0 } };
		int np = pin[1] >= 0 ? 3 : 2;

		if (p[0].fd < 0 && p[1].fd < 0)
			break;
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			size_t before = olen;

			drain(pout[0], &obuf, &olen, &ocap);
			if (olen == before) {
				close(pout[0]);
				pout[0] = -1;
			}
		}
		if (p[1].revents) {
			size_t before = elen;

			drain(perr[0], &ebuf, &elen, &ecap);
			if (elen == before) {
				close(perr[0]);
				perr[0] = -1;
			}
		}
		if (np == 3 && p[2].revents) {
			ssize_t w = write(pin[1], in + ioff, ilen - ioff);

			if (w > 0)
				ioff += (size_t)w;
			if (w < 0 || ioff >= ilen) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
		if (pout[0] < 0 && perr[0] < 0)
			break;
	}
	if (pin[1] >= 0)
		close(pin[1]);
	waitpid(pid, &status, 0);
	if (out)
		*out = obuf;
	else
		free(obuf);
	if (err)
		*err = ebuf;
	else
		free(ebuf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

size_t
ras_test_count(const char *haystack, const char *needle)
{
	size_t n = 0, l = strlen(needle);

	if (haystack == NULL || l == 0)
		return 0;
	for (const char *p = strstr(haystack, needle); p; p = strstr(p + l, needle))
		n++;
	return n;
}

/* ---- SQL, rasctl and triage helpers shared by the database suites -------- */

int64_t
ras_test_sql_int(struct ras_db *db, const char *sql, const char *arg)
{
	struct ras_db_res *res = NULL;
	int64_t n = -1;

	if (ras_db_query(db, &res, sql, arg ? 1 : 0, arg ? &RAS_DB_TEXT(arg) : NULL) < 0)
		fprintf(stderr, "query failed: %s: %s\n", sql, ras_error_last());
	else if (ras_db_res_rows(res) > 0)
		(void)ras_db_res_int(res, 0, 0, &n);
	ras_db_res_free(res);
	return n;
}

char *
ras_test_sql_text(struct ras_db *db, const char *sql, const char *arg)
{
	struct ras_db_res *res = NULL;
	char *s = NULL;

	if (ras_db_query(db, &res, sql, arg ? 1 : 0, arg ? &RAS_DB_TEXT(arg) : NULL) < 0)
		fprintf(stderr, "query failed: %s: %s\n", sql, ras_error_last());
	else if (ras_db_res_rows(res) > 0 && !ras_db_res_isnull(res, 0, 0))
		s = strdup(ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	return s;
}

int
ras_test_rasctl(const char *conninfo, const char *config, const char *const *args, char **out,
    char **err)
{
	char *argv[64];
	int n = 0;

	argv[n++] = (char *)ras_test_program("daemon/rasctl");
	if (conninfo) {
		argv[n++] = "--db";
		argv[n++] = (char *)conninfo;
	}
	if (config == NULL) {
		/* the clinicians the tests decide as (and nothing else) */
		static char *standard;

		if (standard == NULL)
			standard = ras_test_write_tmp("clinicians.conf", RAS_TEST_CLINICIANS,
			    strlen(RAS_TEST_CLINICIANS));
		config = standard;
	}
	argv[n++] = "--config";
	argv[n++] = (char *)config;
	for (; *args && n < 63; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return ras_test_spawn(argv, NULL, NULL, out, err);
}

struct ras_config *
ras_test_config(const char *text)
{
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_config *cfg = NULL;
	static unsigned k;
	char name[64], *path;

	snprintf(name, sizeof(name), "test-%u.conf", k++);
	path = ras_test_write_tmp(name, text, strlen(text));
	if (ras_config_load(path, &cfg, &problems) < 0) {
		fprintf(stderr, "test configuration: %s%s\n", problems.data ? problems.data : "",
		    ras_error_last());
		exit(1);
	}
	ras_buf_free(&problems);
	free(path);
	return cfg;
}

struct ras_triage *
ras_test_triage(const char *conf, const char *mappings)
{
	char *text = NULL;
	struct ras_config *cfg;
	struct ras_triage *t = NULL;
	size_t need = strlen(RAS_TEST_CLINICIANS) + (conf ? strlen(conf) : 0) + 2;

	/* The test clinicians are registered unless a test brings its own
	 * mappings (whose services may differ). */
	if ((text = malloc(need)) == NULL)
		exit(1);
	snprintf(text, need, "%s\n%s", conf ? conf : "", mappings ? "" : RAS_TEST_CLINICIANS);
	cfg = ras_test_config(text);
	free(text);

	if (ras_triage_new(cfg, mappings ? mappings : RAS_SOURCE_ROOT "/mappings", &t) < 0) {
		fprintf(stderr, "test rule sets: %s\n", ras_error_last());
		exit(1);
	}
	ras_config_free(cfg);
	return t;
}

size_t
ras_test_triage_pending(struct ras_db *db, const struct ras_triage *t, int64_t now)
{
	struct ras_triage_report *reps = NULL;
	size_t n = 0;

	if (ras_triage_pending(db, t, now, 10000, NULL, 0, &reps, &n) < 0) {
		fprintf(stderr, "triage failed: %s\n", ras_error_last());
		return 0;
	}
	free(reps);
	return n;
}

char *
ras_test_mappings_copy(const char *name)
{
	char dir[PATH_MAX], cmd[3 * PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/%s", ras_test_tmpdir(), name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s/mappings' '%s'", dir, RAS_SOURCE_ROOT, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot copy the mappings to %s\n", dir);
		exit(1);
	}
	return strdup(dir);
}

struct ras_outbox *
ras_test_outbox(void)
{
	struct ras_config *cfg = NULL;
	struct ras_outbox *o = NULL;

	if (ras_config_defaults(&cfg) < 0 || ras_outbox_new(cfg, RAS_SOURCE_ROOT "/mappings", &o) < 0) {
		fprintf(stderr, "test outbox: %s\n", ras_error_last());
		exit(1);
	}
	ras_config_free(cfg);
	return o;
}

void
ras_test_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "test: %d bytes do not fit in %zu (\"%.60s...\")\n", n, size, buf);
		exit(1);
	}
}

int64_t
ras_test_ingest(struct ras_db *db, const struct ras_inbox_item *it)
{
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	free(rep);
	return put.id;
}

void
ras_test_store_decision(struct ras_db *db, const struct ras_triage *tri, int64_t referral_id,
    const char *service, const char *fixture, const char *outcome, const char *target,
    bool final, const char *by, const char *at)
{
	struct ras_arena *a = ras_arena_new();
	size_t len;
	char *doc = ras_test_read(ras_test_fixture(fixture), &len);
	const struct ras_ruleset *rs;
	struct ras_decision d;
	json_t *j = NULL;

	CU_ASSERT_FATAL(ras_json_parse_arena(a, doc, len, 0, &j) == 0);
	CU_ASSERT_FATAL(ras_decision_from_json(a, j, &d) == 0);
	if (service != NULL)
		d.service = service;
	else if (d.service == NULL)
		d.service = "midnotts";
	d.outcome = ras_decision_outcome_parse(outcome);
	d.onward_target = target;
	d.final = final;
	d.decided_by = by;
	CU_ASSERT_FATAL(ras_time_parse(at, false, &d.decided_at) == 0);
	d.received_at = d.decided_at;
	rs = ras_mappings_ruleset(ras_triage_mappings(tri), d.service);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
	CU_ASSERT_FATAL(ras_rules_deadlines(a, rs, d.outcome, d.onward_target, false, d.final,
	    d.received_at, ras_mappings_calendar(ras_triage_mappings(tri)), &d.deadlines,
	    &d.n_deadlines, NULL) == 0);
	CU_ASSERT_FATAL(ras_triage_store_decision(db, referral_id, &d, NULL) == 0);
	free(doc);
	ras_arena_free(a);
}
