/*
 * harness: what every CUnit suite shares.
 *
 * - ras_test_run_suites(): runs the registered suites; the exit code is what
 *   meson test reads: 1 on any failure, 77 (SKIP) when every case that ran
 *   was skipped (ras_test_skip), else 0.  RAS_TEST_ONLY=text runs only the
 *   cases whose name has it, RAS_TEST_EXCLUDE=text all the others (meson
 *   runs a case that may skip as a test of its own).
 * - Databases: ras_test_db() creates a fresh, migrated database in the
 *   private cluster that scripts/test starts (RAS_TEST_PGHOST); a test
 *   without that cluster fails, it does not skip.
 * - Fixtures, golden files, and running the built binaries as subprocesses.
 */
#ifndef RAS_TEST_HARNESS_H
#define RAS_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* CU_..._FATAL leaves the test by longjmp, which the compiler cannot see:
 * under -O3 -Wnull-dereference it would warn on the use that follows.
 * RAS_REQUIRE(p) fails the test when p is NULL and tells the compiler so. */
#define RAS_REQUIRE(p) do { \
	CU_ASSERT_PTR_NOT_NULL_FATAL(p); \
	if (!(p)) \
		abort(); \
} while (0)

struct ras_config;
struct ras_db;
struct ras_outbox;
struct ras_triage;

struct ras_test_case {
	const char *name;
	void (*fn)(void);
};

struct ras_test_suite {
	const char *name;
	const struct ras_test_case *cases;   /* terminated by {NULL, NULL} */
	int (*init)(void);
	int (*cleanup)(void);
};

/* Run suites (terminated by a zeroed entry); returns the process exit code. */
int ras_test_run_suites(const struct ras_test_suite *suites);

/* The running case cannot run here (why: one line); call it and return.
 * It is reported as skipped, not passed. */
void ras_test_skip(const char *why);

/* A fresh migrated database; *conninfo (static buffer per call, strdup'd)
 * may be passed to subprocesses. Aborts the test run when unavailable. */
struct ras_db *ras_test_db(const char *name, char **conninfo);

/* Path of tests/fixtures/<rel> (static buffer, valid until next call). */
const char *ras_test_fixture(const char *rel);

/* Read a whole file (malloc'd, NUL-terminated); aborts on failure. */
char *ras_test_read(const char *path, size_t *len);

struct ras_db;
struct ras_triage;
/* A decision as triage or a clinician stores it, with its rule set's
 * clocks: the decision fixture's facts and reasons, with the outcome,
 * target, finality and decider given, decided (and the referral counted as
 * received) at `at` (ISO 8601); `service` NULL keeps the fixture's, or
 * midnotts.  A failure ends the test. */
void ras_test_store_decision(struct ras_db *db, const struct ras_triage *tri, int64_t referral_id,
    const char *service, const char *fixture, const char *outcome, const char *target,
    bool final, const char *by, const char *at);

/* A temporary directory for this test process (created on first use). */
const char *ras_test_tmpdir(void);

/* Keep one payload in the inbox and normalise it, as intake does (no XML
 * form maps); a failure of either step fails the running case.  Returns
 * the payload id. */
struct ras_inbox_item;
int64_t ras_test_ingest(struct ras_db *db, const struct ras_inbox_item *it);

/* snprintf for paths, commands and identifiers a test builds: text that
 * does not fit stops the test program with a message (exit 1), never cuts
 * a path silently. */
void ras_test_fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Write data to <tmpdir>/<name>; returns the path (malloc'd). */
char *ras_test_write_tmp(const char *name, const char *data, size_t len);

/* Compare with tests/golden/<rel>. On mismatch writes <rel>.actual beside it
 * and returns false. RAS_UPDATE_GOLDEN=1 rewrites the golden file instead. */
bool ras_test_golden(const char *rel, const char *actual, size_t len);

/* Path of a built program (build dir from the RAS_BUILD_ROOT environment
 * variable that meson sets for tests), e.g. "daemon/rasctl". */
const char *ras_test_program(const char *rel);

/* Run argv (argv[0] a path) with optional stdin data and extra environment
 * ("NAME=value", NULL-terminated, may be NULL); capture output. Returns the
 * exit status (or 128+signal). out/err are malloc'd (may be NULL). */
int ras_test_spawn(char *const argv[], const char *const *env, const char *in,
    char **out, char **err);

/* Count occurrences of needle in haystack. */
size_t ras_test_count(const char *haystack, const char *needle);

/* The first column of the first row of a query with at most one text
 * parameter ($1 = arg, none when NULL): as an integer (-1 when the query
 * fails or returns nothing; the failure is printed), or as text (malloc'd;
 * NULL for no row, NULL or a failure). */
int64_t ras_test_sql_int(struct ras_db *db, const char *sql, const char *arg);
char *ras_test_sql_text(struct ras_db *db, const char *sql, const char *arg);

/* A configuration from its text (written to the temporary directory);
 * aborts the run when it does not load.  Free with ras_config_free. */
struct ras_config *ras_test_config(const char *text);

/* The clinician register the tests decide as: 687001000001, 687001000002
 * (the EPR fixtures) and 687001000009 (the demo), every shipped service.
 * ras_test_triage() and ras_test_rasctl() (without a config) add it. */
#define RAS_TEST_CLINICIANS \
	"[clinician 687001000001]\nname = Dr Test One\nregistration = GMC 7000001\n" \
	"role = Consultant in pain medicine\n" \
	"services = midnotts, bassetlaw-2022, dorset-2013, dorset-2019\n" \
	"[clinician 687001000002]\nname = Dr Test Two\nregistration = GMC 7000002\n" \
	"role = Consultant in pain medicine\n" \
	"services = midnotts, bassetlaw-2022, dorset-2013, dorset-2019\n" \
	"[clinician 687001000009]\nname = Dr Test Nine\nregistration = NMC 70A0009E\n" \
	"role = Clinical nurse specialist\n" \
	"services = midnotts, bassetlaw-2022, dorset-2013, dorset-2019\n"

/* Run the built rasctl with --db conninfo and --config file when not NULL
 * (else a config holding only RAS_TEST_CLINICIANS),
 * then args (NULL-terminated); as ras_test_spawn. */
int ras_test_rasctl(const char *conninfo, const char *config, const char *const *args, char **out,
    char **err);

/* The rule sets of `mappings` (NULL: the source tree's) with a
 * configuration given as text (NULL: defaults), such as
 * "[service midnotts]\nautomation = none\n".  Aborts the run when they do
 * not load.  Free with ras_triage_free. */
struct ras_triage *ras_test_triage(const char *conf, const char *mappings);

/* A copy of the source tree's mappings in the test's temporary directory
 * (named `name`), to edit; returns its path (malloc'd). */
char *ras_test_mappings_copy(const char *name);

/* A delivery context with the default configuration and the source tree's
 * mappings (document profiles, calendar): what storing an episode summary
 * needs.  Aborts the run when it cannot be built.  Free with
 * ras_outbox_free. */
struct ras_outbox *ras_test_outbox(void);

/* Triage every referral in state "new" at time `now`, as the daemon's
 * stage would; returns how many were taken. */
size_t ras_test_triage_pending(struct ras_db *db, const struct ras_triage *t, int64_t now);

#endif
