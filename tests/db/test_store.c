/* Integration tests: migrations and the store against a real PostgreSQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/migrate.h"
#include "ras/store.h"
#include "ras/time.h"

static struct ras_db *db;

static int
setup(void)
{
	db = ras_test_db("store", NULL);
	return 0;
}

static int
teardown(void)
{
	ras_db_close(db);
	return 0;
}

static int64_t
count(const char *sql)
{
	return ras_test_sql_int(db, sql, NULL);
}

static struct ras_normalise_report
ingest_one(const char *rel, const char *ubrn_hint)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	struct ras_inbox_item it = { .data = data, .len = len, .source = "file", .source_ref = rel,
		.ubrn_hint = ubrn_hint };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL, out = { 0 };
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	out.payload_id = put.id;
	if (put.duplicate) {
		out.state = "duplicate-payload";
		free(data);
		return out;
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	out = rep[0];
	free(rep);
	free(data);
	return out;
}

static void
migrations(void)
{
	int v = -1, from = -1, to = -1;

	CU_ASSERT_EQUAL(ras_migrate_current(db, &v), 0);
	CU_ASSERT_EQUAL(v, ras_migrate_latest());
	CU_ASSERT_EQUAL(ras_migrate_check(db), 0);
	/* applying again is a no-op */
	CU_ASSERT_EQUAL(ras_migrate_apply(db, &from, &to), 0);
	CU_ASSERT_EQUAL(from, to);
	/* a database newer than the binary is refused */
	CU_ASSERT_EQUAL(ras_db_exec(db, "INSERT INTO schema_version (version, name) VALUES (999, 'future')"), 0);
	CU_ASSERT_EQUAL(ras_migrate_check(db), RAS_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "newer"));
	CU_ASSERT_EQUAL(ras_migrate_apply(db, NULL, NULL), RAS_ECONFLICT);
	CU_ASSERT_EQUAL(ras_db_exec(db, "DELETE FROM schema_version WHERE version = 999"), 0);
	CU_ASSERT_EQUAL(ras_migrate_check(db), 0);
}

static void
store_r4(void)
{
	struct ras_normalise_report r = ingest_one("r4/referral-collection-urn.json", NULL);

	CU_ASSERT_STRING_EQUAL(r.state, "stored");
	CU_ASSERT_STRING_EQUAL(r.kind, "fhir-bundle");
	CU_ASSERT_EQUAL(r.created, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000000101' AND state = 'new'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM patients WHERE nhs_number = '9990000018' AND practice_ods = 'C84009'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referral_answers a JOIN referrals r ON r.id = a.referral_id WHERE r.ubrn = '100000000101'"), 25);
	CU_ASSERT_EQUAL(count("SELECT value_integer FROM referral_answers a JOIN referrals r ON r.id = a.referral_id WHERE r.ubrn = '100000000101' AND link_id = 'pain-duration-weeks'"), 26);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referral_conditions"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'referral-received'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE state = 'stored' AND kind = 'fhir-bundle'"), 1);
}

static void
idempotent(void)
{
	struct ras_normalise_report r;
	int64_t before = count("SELECT count(*) FROM referrals");

	/* the identical payload: the inbox keeps it once */
	r = ingest_one("r4/referral-collection-urn.json", NULL);
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate-payload");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE source_ref = 'r4/referral-collection-urn.json'"), 1);
	/* different bytes, same (UBRN, version): stored once */
	{
		size_t len;
		char *data = ras_test_read(ras_test_fixture("r4/referral-collection-urn.json"), &len);
		char *copy = malloc(len + 2);
		struct ras_inbox_item it;
		struct ras_inbox_put_result put;
		struct ras_normalise_report *rep = NULL;
		size_t n = 0;

		memcpy(copy, data, len);
		copy[len] = '\n';
		it = (struct ras_inbox_item){ .data = copy, .len = len + 1, .source = "file" };
		CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
		CU_ASSERT_FALSE(put.duplicate);
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
		CU_ASSERT_STRING_EQUAL(rep[0].state, "duplicate");
		CU_ASSERT_EQUAL(rep[0].duplicates, 1);
		free(rep);
		free(copy);
		free(data);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals"), before);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referral_answers a JOIN referrals r ON r.id = a.referral_id WHERE r.ubrn = '100000000101'"), 25);
}

static void
new_version_is_new_row(void)
{
	struct ras_normalise_report r = ingest_one("r4/referral-message.json", NULL);

	CU_ASSERT_STRING_EQUAL(r.state, "stored");
	CU_ASSERT_EQUAL(count("SELECT version FROM referrals WHERE ubrn = '100000000102'"), 2);
}

static void
ers_worklist_then_referral(void)
{
	struct ras_normalise_report r = ingest_one("ers/worklist-referrals-for-review.json", NULL);

	CU_ASSERT_STRING_EQUAL(r.state, "stored");
	CU_ASSERT_EQUAL(r.created, 1);
	CU_ASSERT_EQUAL(r.skipped, 1);   /* the APPOINTMENT item */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070002' AND version = 7 AND state = 'awaiting-details'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070001'"), 0);

	r = ingest_one("ers/referral-Unbooked.json", NULL);
	CU_ASSERT_STRING_EQUAL(r.state, "stored");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM attachments WHERE ubrn = '000000070000' AND availability = 'AVAILABLE'"), 1);

	/* a standalone DocumentReference with its UBRN links to the referral */
	r = ingest_one("ers/documentreference-80000.json", "000000070000");
	CU_ASSERT_STRING_EQUAL(r.state, "stored");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM attachments WHERE ubrn = '000000070000'"), 1);
}

static void
ers_merge_same_version(void)
{
	/* The worklist item and A005 for one (UBRN, version) merge into one row. */
	const char *item =
	    "{\"resourceType\":\"List\",\"meta\":{\"profile\":[\"https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchWorklist-List-1\"]},"
	    "\"status\":\"current\",\"mode\":\"snapshot\",\"entry\":[{\"extension\":[{\"url\":"
	    "\"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-ReferralsforReview-WorkListItem-1\","
	    "\"extension\":[{\"url\":\"referralType\",\"valueCodeableConcept\":{\"coding\":[{\"code\":\"TRIAGE_DEFERRAL\"}]}},"
	    "{\"url\":\"priority\",\"valueCodeableConcept\":{\"coding\":[{\"code\":\"URGENT\"}]}},"
	    "{\"url\":\"patient\",\"valueReference\":{\"identifier\":{\"system\":\"http://fhir.nhs.net/Id/nhs-number\",\"value\":\"9912003888\"}}},"
	    "{\"url\":\"referralRequestVersion\",\"valueInteger\":5}]}],"
	    "\"item\":{\"reference\":\"ReferralRequest/000000070000\"}}]}";
	struct ras_inbox_item it = { .data = item, .len = strlen(item), .source = "ers" };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL(rep[0].merged, 1);
	free(rep);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070000'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070000' AND priority = 'urgent' AND state = 'new' AND doc->'ers'->>'request_id' IS NOT NULL"), 1);
}

static void
bad_payloads_kept(void)
{
	static const char *bad[] = { "bad/malformed.json", "bad/duplicate-key.json",
		"bad/wrong-resource-type.json", "bad/nhs-missing.json", "bad/nhs-invalid.json",
		"bad/missing-reference.json" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ras_normalise_report r = ingest_one(bad[i], NULL);

		CU_ASSERT_STRING_EQUAL(r.state, "rejected");
		CU_ASSERT(strlen(r.message) > 10);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE state = 'rejected' AND error IS NOT NULL AND length(body) > 0"), 6);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'payload-rejected'"), 6);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE state = 'rejected' AND error LIKE '%Modulus 11%'"), 1);
}

static void
urgent_rejection_says_so(void)
{
	/* An invalid NHS number on a referral that reports suspected cancer is
	 * still rejected (it cannot be matched to a patient), but the reason
	 * says a person must act today. */
	size_t len;
	char *data = ras_test_read(ras_test_fixture("bad/nhs-invalid.json"), &len);
	char *p = strstr(data, "\"suspected-cancer\"");
	struct ras_inbox_item it;
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	p = strstr(p, "false");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p, "true ", 5);
	it = (struct ras_inbox_item){ .data = data, .len = len, .source = "file" };
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_STRING_EQUAL(rep[0].state, "rejected");
	CU_ASSERT_PTR_NOT_NULL(strstr(rep[0].message, "Modulus 11"));
	CU_ASSERT_PTR_NOT_NULL(strstr(rep[0].message, "URGENT"));
	free(rep);
	free(data);
}

static void
batch_with_bad_ones(void)
{
	/* One transaction of mixed payloads: good ones stored, bad ones kept. */
	const char *files[] = { "r4/referral-transaction-relative.json", "bad/document-bundle.json",
		"ers/referral-WithRelatedReferral.json", "bad/no-servicerequest.json" };
	struct ras_inbox_item items[4];
	struct ras_inbox_put_result put[4];
	char *data[4];
	int64_t ids[4];
	struct ras_normalise_report *rep = NULL;
	size_t n = 0, stored = 0, rejected = 0;

	for (int i = 0; i < 4; i++) {
		size_t len;

		data[i] = ras_test_read(ras_test_fixture(files[i]), &len);
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = len, .source = "file" };
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, 4, put), 0);
	for (int i = 0; i < 4; i++)
		ids[i] = put[i].id;
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, ids, 4, 4, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rep[i].state, "stored") == 0)
			stored++;
		if (strcmp(rep[i].state, "rejected") == 0)
			rejected++;
	}
	CU_ASSERT_EQUAL(stored, 2);
	CU_ASSERT_EQUAL(rejected, 2);
	free(rep);
	for (int i = 0; i < 4; i++)
		free(data[i]);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE referral_key LIKE 'local:%'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070005'"), 1);
}

/* A batch larger than one chunk (RAS_NORMALISE_CHUNK_BYTES of payloads) is
 * read, planned and written chunk by chunk in one transaction; a bad
 * payload in a later chunk is kept, marked, and the rest stored. */
static void
batch_of_many_chunks(void)
{
	enum { N = 120 };
	struct ras_inbox_item items[N + 1];
	struct ras_inbox_put_result put[N + 1];
	char *data[N + 1];
	size_t total = 0, n = 0, stored = 0;
	struct ras_normalise_report *rep = NULL;
	int64_t before = count("SELECT count(*) FROM referrals");

	for (int i = 0; i < N; i++) {
		size_t len;
		char *p;

		data[i] = ras_test_read(ras_test_fixture("r4/referral-collection-urn.json"), &len);
		p = strstr(data[i], "\"100000000101\"");
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		snprintf(p + 1, 13, "9000000%05d", i);
		p[13] = '"';
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = len, .source = "file" };
		total += len;
	}
	data[N] = strdup("{\"resourceType\": \"Bundle\", \"type\": \"collection\", \"chunks\": ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(data[N]);   /* malformed: kept, rejected */
	items[N] = (struct ras_inbox_item){ .data = data[N], .len = strlen(data[N]), .source = "file" };
	CU_ASSERT(total > 2 * (size_t)RAS_NORMALISE_CHUNK_BYTES);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, N + 1, put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, NULL, 0, 1000, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, N + 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			CU_ASSERT(rep[i].payload_id > rep[i - 1].payload_id);   /* oldest first, by number */
		if (strcmp(rep[i].state, "stored") == 0)
			stored++;
		if (rep[i].payload_id == put[N].id)
			CU_ASSERT_STRING_EQUAL(rep[i].state, "rejected");
	}
	CU_ASSERT_EQUAL(stored, N);
	free(rep);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals") - before, N);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '9000000%'"), N);
	for (int i = 0; i <= N; i++)
		free(data[i]);
}

static void
claim_mode(void)
{
	/* Rows left "received" (e.g. by a crash) are picked up by the claim mode. */
	const char *body = "{\"resourceType\":\"Basic\"}";
	struct ras_inbox_item it = { .data = body, .len = strlen(body), .source = "spool" };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE state = 'received'"), 1);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, NULL, 0, 100, &rep, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_STRING_EQUAL(rep[0].state, "rejected");
	free(rep);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE state = 'received'"), 0);
	/* nothing left: an empty batch */
	CU_ASSERT_EQUAL(ras_store_normalise(db, NULL, NULL, 0, 100, &rep, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	free(rep);
}

static void
events_append_only(void)
{
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "UPDATE events SET kind = 'x'"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "DELETE FROM events"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "TRUNCATE events"), 0);
	CU_ASSERT(count("SELECT count(*) FROM events") > 0);
}

static void
show(void)
{
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_store_show(db, "100000000101", &j), 0);
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "ubrn"), "100000000101");
	CU_ASSERT_STRING_EQUAL(ras_json_str(ras_json_obj(ras_json_obj(j, "referral"), "patient"),
	    "nhs_number"), "9990000018");
	CU_ASSERT(json_array_size(ras_json_arr(j, "events")) >= 1);
	{
		char id[32];

		snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(j, "id")));
		json_decref(j);
		CU_ASSERT_EQUAL_FATAL(ras_store_show(db, id, &j), 0);
		CU_ASSERT_STRING_EQUAL(ras_json_str(j, "ubrn"), "100000000101");
		json_decref(j);
	}
	CU_ASSERT_EQUAL(ras_store_show(db, "999999999999", &j), RAS_ENOTFOUND);
}

/*
 * The connection lost under rasd (a failover, a restart): a pipeline in
 * flight ends with an error instead of waiting for ever for results that
 * will never come, and the reconnection starts a session set up as rasd's
 * statements expect (UTC, whatever the database's own default).
 */
static void
lost_connection_ends_a_pipeline(void)
{
	char *ci = NULL, pid[24] = "", sql[256];
	struct ras_db *conn = ras_test_db("pipelost", &ci), *admin = NULL;
	struct ras_db_res *res = NULL;
	char *name = strstr(ci, "dbname=");
	int64_t t0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(name);
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(ci, &admin), 0);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET TimeZone = 'Europe/London'", name + 7);
	CU_ASSERT_EQUAL(ras_db_exec(admin, sql), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_query(conn, &res, "SELECT pg_backend_pid()::text", 0, NULL), 0);
	snprintf(pid, sizeof(pid), "%s", ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	res = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_db_pipeline_enter(conn), 0);
	CU_ASSERT_EQUAL(ras_db_pipeline_send(conn, "SELECT pg_sleep(1)", 0, NULL), 0);
	CU_ASSERT_EQUAL(ras_db_pipeline_send(conn, "SELECT 1", 0, NULL), 0);
	CU_ASSERT_EQUAL(ras_db_pipeline_send(conn, "SELECT 2", 0, NULL), 0);
	CU_ASSERT_EQUAL(ras_db_pipeline_sync(conn), 0);
	CU_ASSERT_EQUAL(ras_db_query(admin, NULL, "SELECT pg_terminate_backend($1::int)", 1,
	    &RAS_DB_TEXT(pid)), 0);
	t0 = ras_time_mono_ms();
	CU_ASSERT(ras_db_pipeline_result(conn, &res) < 0);
	ras_db_res_free(res);
	(void)ras_db_pipeline_exit(conn);
	CU_ASSERT(ras_time_mono_ms() - t0 < 5000);

	/* reconnected, with rasd's session settings */
	CU_ASSERT_TRUE(ras_db_ok(conn));
	res = NULL;
	CU_ASSERT_EQUAL(ras_db_query(conn, &res, "SELECT current_setting('TimeZone')", 0, NULL), 0);
	CU_ASSERT_STRING_EQUAL(ras_db_res_get(res, 0, 0) ? ras_db_res_get(res, 0, 0) : "", "UTC");
	ras_db_res_free(res);
	ras_db_close(admin);
	ras_db_close(conn);
	free(ci);
}

static const struct ras_test_case cases[] = {
	{ "migrations and the version check", migrations },
	{ "a lost connection ends a pipeline; the new session is UTC", lost_connection_ends_a_pipeline },
	{ "R4 bundle stored with its parts", store_r4 },
	{ "idempotent re-ingest", idempotent },
	{ "a new version is a new row", new_version_is_new_row },
	{ "e-RS worklist, A005 and DocumentReference", ers_worklist_then_referral },
	{ "e-RS views of one version merge", ers_merge_same_version },
	{ "bad payloads are kept, marked, with reasons", bad_payloads_kept },
	{ "a batch with bad payloads stores the good ones", batch_with_bad_ones },
	{ "a rejected urgent referral says it is urgent", urgent_rejection_says_so },
	{ "claiming received rows", claim_mode },
	{ "a batch of many chunks", batch_of_many_chunks },
	{ "the event log is append-only", events_append_only },
	{ "show by UBRN and by id", show },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "store", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
