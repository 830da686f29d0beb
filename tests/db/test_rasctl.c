/* CLI tests: rasctl migrate / ingest / show as a user runs them. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/db.h"

static char *conninfo;
static struct ras_db *db;

static int
setup(void)
{
	db = ras_test_db("rasctl", &conninfo);
	return 0;
}

static int
teardown(void)
{
	ras_db_close(db);
	free(conninfo);
	return 0;
}

static int
rasctl(const char *const *args, char **out, char **err)
{
	return ras_test_rasctl(conninfo, NULL, args, out, err);
}

static void
migrate_is_idempotent(void)
{
	char *out, *err;

	CU_ASSERT_EQUAL(rasctl((const char *[]){ "migrate", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "up to date"));
	free(out);
	free(err);
}

static void
ingest_good_files(void)
{
	char *out, *err;
	char f1[4096], f2[4096];
	int rc;

	snprintf(f1, sizeof(f1), "%s", ras_test_fixture("r4/referral-collection-urn.json"));
	snprintf(f2, sizeof(f2), "%s", ras_test_fixture("ers/referral-Unbooked.json"));
	rc = rasctl((const char *[]){ "ingest", f1, f2, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(ras_test_count(out, "\n"), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral-collection-urn.json: stored fhir-bundle"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral 000000070000 v5"));
	/* no patient data on the terminal */
	CU_ASSERT_PTR_NULL(strstr(out, "9990000018"));
	CU_ASSERT_PTR_NULL(strstr(out, "Example"));
	free(out);
	free(err);

	rc = rasctl((const char *[]){ "ingest", f1, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "duplicate"));
	free(out);
	free(err);
}

static void
ingest_mixed_exits_65(void)
{
	char *out, *err;
	char good[4096], bad1[4096], bad2[4096], *big;
	size_t n = 9u * 1024u * 1024u;
	char *bigdata = malloc(n);
	int rc;

	memset(bigdata, ' ', n);
	bigdata[0] = '{';
	bigdata[n - 1] = '}';
	big = ras_test_write_tmp("big.json", bigdata, n);
	free(bigdata);
	snprintf(good, sizeof(good), "%s", ras_test_fixture("r4/referral-message.json"));
	snprintf(bad1, sizeof(bad1), "%s", ras_test_fixture("bad/nhs-invalid.json"));
	snprintf(bad2, sizeof(bad2), "%s", ras_test_fixture("bad/duplicate-key.json"));
	rc = rasctl((const char *[]){ "ingest", bad1, good, bad2, big, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_EQUAL(ras_test_count(out, "\n"), 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nhs-invalid.json: rejected (payload #"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "check digit"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "duplicate-key.json: rejected"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "big.json: rejected"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "exceeds the limit"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral-message.json: stored"));
	free(out);
	free(err);
	free(big);
}

static void
ingest_missing_file(void)
{
	char *out, *err;
	char good[4096];
	int rc;

	snprintf(good, sizeof(good), "%s", ras_test_fixture("r4/referral-transaction-relative.json"));
	rc = rasctl((const char *[]){ "ingest", "/nonexistent/file.json", good, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 66);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/file.json: error: cannot open"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral-transaction-relative.json: stored"));
	free(out);
	free(err);
}

static void
show_prints_json(void)
{
	char *out, *err;
	int rc;

	rc = rasctl((const char *[]){ "show", "100000000101", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"referral_key\": \"100000000101\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"pain-duration-weeks\""));
	free(out);
	free(err);
	rc = rasctl((const char *[]){ "show", "000000000404", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no referral"));
	free(out);
	free(err);
}

static void
usage_and_password_refused(void)
{
	char *argv[] = { (char *)ras_test_program("daemon/rasctl"), "--db",
		"host=/tmp dbname=x password=hunter2", "show", "1", NULL };
	char *out, *err;

	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 64);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "password"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "frobnicate", NULL }, &out, &err), 64);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "ingest", NULL }, &out, &err), 64);
	free(out);
	free(err);
}

static const struct ras_test_case cases[] = {
	{ "migrate", migrate_is_idempotent },
	{ "ingest good files", ingest_good_files },
	{ "ingest with bad files exits 65", ingest_mixed_exits_65 },
	{ "ingest with a missing file exits 66", ingest_missing_file },
	{ "show", show_prints_json },
	{ "usage errors", usage_and_password_refused },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "rasctl", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
