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

/* ---- one batch stores what one payload at a time stores ------------------ */

/* text with every `from` replaced by `to` (malloc'd) */
static char *
replace_all(const char *text, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, from)) != NULL; p += nf)
		n++;
	out = malloc(strlen(text) + n * (nt > nf ? nt - nf : 0) + 1);
	if (out == NULL)
		return NULL;
	for (o = out, p = text;;) {
		const char *q = strstr(p, from);

		if (q == NULL) {
			strcpy(o, p);
			break;
		}
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, to, nt);
		o += nt;
		p = q + nf;
	}
	return out;
}

static char *
replace_into(char *text, const char *from, const char *to)
{
	char *out = replace_all(text, from, to);

	free(text);
	return out;
}

/* A referral Bundle generated from r4/referral-collection-urn.json. */
struct gen {
	const char *ubrn;
	int version;             /* 0: none given (1) */
	const char *nhs;
	const char *postcode;    /* NULL: the fixture's */
	bool restricted;         /* PDS S-flag: no address kept */
	int weeks;               /* the pain-duration-weeks answer (0: the fixture's 26) */
	bool urgent;
	const char *tail;        /* bytes appended (the same content, other bytes) */
};

static char *
gen_bundle(const struct gen *g)
{
	size_t len;
	char *t = ras_test_read(ras_test_fixture("r4/referral-collection-urn.json"), &len), buf[96];

	t = replace_into(t, "100000000101", g->ubrn);
	t = replace_into(t, "9990000018", g->nhs);
	if (g->postcode)
		t = replace_into(t, "NG24 1AA", g->postcode);
	if (g->weeks) {
		snprintf(buf, sizeof(buf), "\"valueInteger\": %d", g->weeks);
		t = replace_into(t, "\"valueInteger\": 26", buf);
	}
	if (g->urgent)
		t = replace_into(t, "\"priority\": \"routine\"", "\"priority\": \"urgent\"");
	if (g->version) {
		snprintf(buf, sizeof(buf), "\"resourceType\": \"ServiceRequest\", \"meta\": {\"versionId\": \"%d\"},",
		    g->version);
		t = replace_into(t, "\"resourceType\": \"ServiceRequest\",", buf);
	}
	if (g->restricted)
		t = replace_into(t, "\"resourceType\": \"Patient\",",
		    "\"resourceType\": \"Patient\", \"meta\": {\"security\": [{\"code\": \"R\"}]},");
	if (g->tail) {
		ras_test_fmt(buf, sizeof(buf), "\n}\n%s", g->tail);
		t = replace_into(t, "\n}\n", buf);
	}
	return t;
}

/* An e-RS worklist with one TRIAGE_DEFERRAL item. */
static char *
gen_worklist_item(const char *ubrn, int version, const char *priority, const char *nhs)
{
	char buf[1024];

	ras_test_fmt(buf, sizeof(buf),
	    "{\"resourceType\":\"List\",\"meta\":{\"profile\":[\"https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchWorklist-List-1\"]},"
	    "\"status\":\"current\",\"mode\":\"snapshot\",\"entry\":[{\"extension\":[{\"url\":"
	    "\"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-ReferralsforReview-WorkListItem-1\","
	    "\"extension\":[{\"url\":\"referralType\",\"valueCodeableConcept\":{\"coding\":[{\"code\":\"TRIAGE_DEFERRAL\"}]}},"
	    "{\"url\":\"priority\",\"valueCodeableConcept\":{\"coding\":[{\"code\":\"%s\"}]}},"
	    "{\"url\":\"patient\",\"valueReference\":{\"identifier\":{\"system\":\"http://fhir.nhs.net/Id/nhs-number\",\"value\":\"%s\"}}},"
	    "{\"url\":\"referralRequestVersion\",\"valueInteger\":%d}]}],"
	    "\"item\":{\"reference\":\"ReferralRequest/%s\"}}]}", priority, nhs, version, ubrn);
	return strdup(buf);
}

/* An e-RS A005 (ers/referral-Unbooked.json) under another UBRN. */
static char *
gen_a005(const char *ubrn)
{
	size_t len;

	return replace_into(ras_test_read(ras_test_fixture("ers/referral-Unbooked.json"), &len),
	    "000000070000", ubrn);
}

struct payload {
	char *data;
	const char *ubrn_hint;
};

/* Keep the payloads (one transaction), then normalise them one at a
 * time (each alone: ras_store_referral) or as one batch. */
static void
store_payloads(struct ras_db *d, struct payload *p, size_t n, bool one_at_a_time,
    struct ras_normalise_report *reps)
{
	struct ras_inbox_item items[32];
	struct ras_inbox_put_result put[32];
	int64_t ids[32];
	struct ras_normalise_report *rep = NULL;
	size_t got = 0;

	CU_ASSERT_FATAL(n <= 32);
	for (size_t i = 0; i < n; i++)
		items[i] = (struct ras_inbox_item){ .data = p[i].data, .len = strlen(p[i].data),
			.source = "file", .ubrn_hint = p[i].ubrn_hint };
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, n, put), 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_FALSE(put[i].duplicate);
		ids[i] = put[i].id;
	}
	if (!one_at_a_time) {
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise(d, NULL, ids, n, n, &rep, &got), 0);
		CU_ASSERT_EQUAL_FATAL(got, n);
		memcpy(reps, rep, n * sizeof(*rep));
		free(rep);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise(d, NULL, &ids[i], 1, 1, &rep, &got), 0);
		CU_ASSERT_EQUAL_FATAL(got, 1);
		reps[i] = rep[0];
		free(rep);
	}
}

/* What the store keeps, without ids, clocks or the order of ids across
 * referrals (the set is inserted before the rest). */
static const char *const STORED[] = {
	"SELECT jsonb_agg(to_jsonb(r) - 'id' - 'patient_id' - 'created_at' - 'updated_at' - 'received_at'"
	"  || jsonb_build_object('patient', (SELECT p.nhs_number FROM patients p WHERE p.id = r.patient_id))"
	"  ORDER BY r.referral_key, r.version)::text FROM referrals r",
	"SELECT jsonb_agg(to_jsonb(v) - 'referral_id' - 'superseded_at' - 'received_at'"
	"  || jsonb_build_object('key', r.referral_key, 'version', r.version)"
	"  ORDER BY r.referral_key, r.version, v.revision)::text"
	" FROM referral_revisions v JOIN referrals r ON r.id = v.referral_id",
	"SELECT jsonb_agg(to_jsonb(p) - 'id' - 'updated_at' ORDER BY p.nhs_number)::text FROM patients p",
	"SELECT jsonb_agg(jsonb_build_object('key', r.referral_key, 'version', r.version, 'kind', e.kind,"
	"  'payload', e.payload_id, 'ubrn', e.ubrn, 'actor', e.actor, 'detail', e.detail)"
	"  ORDER BY r.referral_key, r.version, e.id)::text FROM events e LEFT JOIN referrals r ON r.id = e.referral_id",
	"SELECT jsonb_agg(jsonb_build_object('id', i.id, 'state', i.state, 'kind', i.kind, 'error', i.error,"
	"  'processed', i.processed_at IS NOT NULL) ORDER BY i.id)::text FROM inbox i",
	"SELECT jsonb_agg(to_jsonb(a) - 'id' - 'referral_id' - 'created_at'"
	"  || jsonb_build_object('key', r.referral_key, 'version', r.version) ORDER BY a.ubrn, a.url)::text"
	" FROM attachments a LEFT JOIN referrals r ON r.id = a.referral_id",
	"SELECT jsonb_agg(to_jsonb(a) - 'referral_id' || jsonb_build_object('key', r.referral_key,"
	"  'version', r.version) ORDER BY r.referral_key, r.version, a.seq)::text"
	" FROM referral_answers a JOIN referrals r ON r.id = a.referral_id",
};

static int64_t
ref_id(struct ras_db *d, const char *ubrn, int version)
{
	char sql[160];

	ras_test_fmt(sql, sizeof(sql), "SELECT id FROM referrals WHERE ubrn = $1 AND version = %d", version);
	return ras_test_sql_int(d, sql, ubrn);
}

/*
 * A generated mix of payloads stored one at a time (ras_store_referral per
 * referral) into one database and as one batch (ras_store_referrals: the
 * set, then the rest one by one) into another, after the same history:
 * referrals, revisions, patients, events, the inbox, attachments and
 * answers come out the same.  The mix: new referrals; a key twice in the
 * batch (a revision, and two versions); a duplicate of a stored referral
 * and one of a referral created earlier in the same batch; revisions (one
 * of a decided referral, now urgent); e-RS views that merge (a worklist
 * stub completed by its A005; a decided A005 whose worklist item raises
 * the priority to urgent); patients shared across the batch, a restricted
 * record before and after others of the same patient; a rejected payload;
 * an attachment between two runs.
 */
static void
batch_equals_one_at_a_time(void)
{
	static const char A[] = "9990000026", B[] = "9990000034", C[] = "9990000042",
	    D[] = "9990000050", E[] = "9990000069", ERS_NHS[] = "9912003888";
	struct ras_db *one = ras_test_db("store_one", NULL), *set = ras_test_db("store_set", NULL);
	struct ras_db *dbs[2] = { one, set };
	struct payload hist[4], mix[20];
	struct ras_normalise_report rh[4], r1[20], r2[20];
	size_t nmix = 0, len;

	hist[0] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000201", .nhs = A, .postcode = "NG1 1AA" }), NULL };
	hist[1] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000202", .nhs = B, .weeks = 10 }), NULL };
	hist[2] = (struct payload){ gen_a005("000000080001"), NULL };
	hist[3] = (struct payload){ gen_worklist_item("000000080002", 5, "ROUTINE", ERS_NHS), NULL };
	for (int k = 0; k < 2; k++) {
		store_payloads(dbs[k], hist, 4, true, rh);
		CU_ASSERT_EQUAL(rh[0].created + rh[1].created + rh[2].created + rh[3].created, 4);
		CU_ASSERT_EQUAL(ras_db_exec(dbs[k], "UPDATE referrals SET state = 'decided'"
		    " WHERE ubrn IN ('100000000202', '000000080001')"), 0);
	}

	/* a key twice, first: created by the rest, before the set's */
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000206", .nhs = D }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000206", .nhs = D, .weeks = 40 }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000203", .nhs = C, .postcode = "NG3 3AA" }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000204", .nhs = A, .postcode = "NG4 4AA" }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000201", .nhs = A, .postcode = "NG1 1AA", .tail = "\n" }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000201", .nhs = A, .postcode = "NG1 1AA", .weeks = 30 }), NULL };
	mix[nmix++] = (struct payload){ strdup("{\"resourceType\": \"Bundle\", \"type\": "), NULL };
	mix[nmix++] = (struct payload){ gen_worklist_item("000000080001", 5, "URGENT", ERS_NHS), NULL };
	mix[nmix++] = (struct payload){ gen_a005("000000080002"), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000205", .nhs = C, .restricted = true }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000207", .nhs = E }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000207", .version = 2, .nhs = E }), NULL };
	mix[nmix++] = (struct payload){ ras_test_read(ras_test_fixture("ers/documentreference-80000.json"), &len), "000000080001" };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000202", .nhs = B, .weeks = 10, .urgent = true }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000208", .nhs = C, .postcode = "NG8 8AA" }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000209", .nhs = E, .urgent = true }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000203", .nhs = C, .postcode = "NG3 3AA", .tail = " \n" }), NULL };
	mix[nmix++] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = "100000000210", .nhs = D, .restricted = true }), NULL };

	store_payloads(one, mix, nmix, true, r1);
	store_payloads(set, mix, nmix, false, r2);

	for (size_t i = 0; i < nmix; i++) {
		CU_ASSERT_STRING_EQUAL(r1[i].state, r2[i].state);
		CU_ASSERT_STRING_EQUAL(r1[i].kind, r2[i].kind);
		CU_ASSERT_EQUAL(r1[i].created, r2[i].created);
		CU_ASSERT_EQUAL(r1[i].merged, r2[i].merged);
		CU_ASSERT_EQUAL(r1[i].revised, r2[i].revised);
		CU_ASSERT_EQUAL(r1[i].duplicates, r2[i].duplicates);
	}
	for (size_t q = 0; q < sizeof(STORED) / sizeof(STORED[0]); q++) {
		char *a = ras_test_sql_text(one, STORED[q], NULL), *b = ras_test_sql_text(set, STORED[q], NULL);

		CU_ASSERT_PTR_NOT_NULL(a);
		CU_ASSERT_PTR_NOT_NULL(b);
		if (a && b && strcmp(a, b) != 0)
			fprintf(stderr, "one at a time and as a batch differ:\n  %s\n  one: %s\n  set: %s\n",
			    STORED[q], a, b);
		CU_ASSERT(a && b && strcmp(a, b) == 0);
		free(a);
		free(b);
	}

	/* the mix did what it says (in the batch's database) */
	CU_ASSERT_EQUAL(r2[0].created, 1);
	CU_ASSERT_EQUAL(r2[1].revised, 1);
	CU_ASSERT_STRING_EQUAL(r2[4].state, "duplicate");
	CU_ASSERT_EQUAL(r2[5].revised, 1);
	CU_ASSERT_STRING_EQUAL(r2[6].state, "rejected");
	CU_ASSERT_EQUAL(r2[7].merged, 1);
	CU_ASSERT_EQUAL(r2[8].merged, 1);
	CU_ASSERT_EQUAL(r2[11].created, 1);
	CU_ASSERT_EQUAL(r2[13].revised, 1);
	CU_ASSERT_STRING_EQUAL(r2[16].state, "duplicate");
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM events WHERE kind = 'referral-merged'"
	    " AND detail ->> 'priority_raised' = 'true'", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM referrals WHERE state = 'new'"
	    " AND ubrn IN ('000000080001', '100000000202')", NULL), 2);
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM patients WHERE nhs_number = $1"
	    " AND postcode = 'NG3 3AA'", C), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM patients WHERE nhs_number = $1"
	    " AND postcode IS NULL AND family IS NOT NULL", D), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM patients WHERE nhs_number = $1"
	    " AND postcode = 'NG1 1AA'", A), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(set, "SELECT count(*) FROM attachments WHERE ubrn = '000000080001'"
	    " AND referral_id IS NOT NULL", NULL), 1);
	/* and the batch was stored as a set: the set's referrals were inserted
	 * before the rest's (one at a time they are in batch order) */
	CU_ASSERT(ref_id(one, "100000000206", 1) < ref_id(one, "100000000203", 1));
	CU_ASSERT(ref_id(set, "100000000206", 1) > ref_id(set, "100000000203", 1));

	for (int i = 0; i < 4; i++)
		free(hist[i].data);
	for (size_t i = 0; i < nmix; i++)
		free(mix[i].data);
	ras_db_close(one);
	ras_db_close(set);
}

/* Four payloads of which the database refused the third: its report says
 * so with the database's reason and it is kept, marked; the others stored. */
static void
third_refused_others_stored(struct ras_db *d, const struct ras_normalise_report *r)
{
	for (int i = 0; i < 4; i++) {
		if (i == 2) {
			CU_ASSERT_STRING_EQUAL(r[i].state, "rejected");
			CU_ASSERT_PTR_NOT_NULL(strstr(r[i].message, "refused by the test"));
			continue;
		}
		CU_ASSERT_STRING_EQUAL(r[i].state, "stored");
		CU_ASSERT_EQUAL(r[i].created, 1);
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM referrals", NULL), 3);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'rejected'"
	    " AND error LIKE 'could not store:%refused by the test%' AND length(body) > 0", NULL), 1);
}

/* A batch stored as a set that fails in the database (here a trigger
 * refuses one referral) is taken again one payload at a time: the others
 * are stored, the refused one is kept, marked with the database's reason. */
static void
set_failure_retried_one_at_a_time(void)
{
	static const char *const ubrns[] = { "100000000301", "100000000302", "100000000303",
		"100000000304" };
	struct ras_db *d = ras_test_db("store_retry", NULL);
	struct payload p[4];
	struct ras_normalise_report r[4];

	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF NEW.ubrn = '100000000303' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER test_refuse BEFORE INSERT ON referrals"
	    " FOR EACH ROW EXECUTE FUNCTION test_refuse()"), 0);
	for (int i = 0; i < 4; i++)
		p[i] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = ubrns[i], .nhs = "9990000077" }), NULL };
	store_payloads(d, p, 4, false, r);
	third_refused_others_stored(d, r);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM events WHERE kind = 'referral-received'",
	    NULL), 3);
	for (int i = 0; i < 4; i++)
		free(p[i].data);
	ras_db_close(d);
}

/* What the stage's callback sees (ras_store_normalise_each). */
struct seen {
	struct ras_db *other;     /* a second connection: what is committed */
	int64_t ids[512];
	char state[512][16];
	size_t n, uncommitted;
};

static void
seen_report(const struct ras_normalise_report *r, void *ctx)
{
	struct seen *x = ctx;
	char id[24];

	if (x->n < 512) {
		x->ids[x->n] = r->payload_id;
		snprintf(x->state[x->n], sizeof(x->state[x->n]), "%s", r->state);
	}
	x->n++;
	/* handed over only once the batch is committed: another session sees
	 * the payload out of "received" */
	snprintf(id, sizeof(id), "%lld", (long long)r->payload_id);
	if (ras_test_sql_int(x->other, "SELECT count(*) FROM inbox WHERE id = $1::bigint"
	    " AND state <> 'received'", id) != 1)
		x->uncommitted++;
}

/* A batch of more payloads than a chunk takes (RAS_NORMALISE_CHUNK_ROWS,
 * however small they are), one refused by the database in the last chunk:
 * every payload is reported once, in claim order, through the callback and
 * only after its transaction committed, the refused one rejected with the
 * database's reason, the others stored (the batch, then one at a time). */
static void
batch_over_chunk_rows_reported_after_commit(void)
{
	enum { N = RAS_NORMALISE_CHUNK_ROWS + 44, REFUSED = RAS_NORMALISE_CHUNK_ROWS + 30 };
	char *ci = NULL;
	struct ras_db *d = ras_test_db("store_rows", &ci);
	static struct ras_inbox_item items[N];
	static struct ras_inbox_put_result put[N];
	static char body[N][160];
	static struct seen seen;
	size_t n = 0;

	CU_ASSERT_FATAL(N <= 512);
	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ci);
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(ci, &seen.other), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF position('refuse-me'::bytea IN NEW.body) > 0"
	    "  THEN RAISE EXCEPTION 'refused by the test'; END IF;"
	    " RETURN NEW; END $$;"
	    /* not the fallback's own mark: that one keeps the payload */
	    "CREATE TRIGGER test_refuse BEFORE UPDATE ON inbox FOR EACH ROW"
	    " WHEN (NEW.state <> 'received' AND NEW.error NOT LIKE 'could not store:%')"
	    " EXECUTE FUNCTION test_refuse()"), 0);
	for (int i = 0; i < N; i++) {
		/* small payloads of a kind rasd does not take: each kept and
		 * rejected, 300 of them in far less than a chunk's bytes */
		snprintf(body[i], sizeof(body[i]), "{\"resourceType\": \"Basic\", \"id\": \"%s-%d\"}",
		    i == REFUSED ? "refuse-me" : "small", i);
		items[i] = (struct ras_inbox_item){ .data = body[i], .len = strlen(body[i]), .source = "file" };
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, N, put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_each(d, NULL, NULL, 0, 10000, seen_report, &seen, &n), 0);
	CU_ASSERT_EQUAL(n, N);
	CU_ASSERT_EQUAL_FATAL(seen.n, N);
	CU_ASSERT_EQUAL(seen.uncommitted, 0);
	for (size_t i = 0; i < N; i++) {
		CU_ASSERT_EQUAL(seen.ids[i], put[i].id);   /* each once, in claim order */
		CU_ASSERT_STRING_EQUAL(seen.state[i], "rejected");
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'rejected'", NULL), N);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'rejected'"
	    " AND error LIKE 'could not store:%refused by the test%' AND length(body) > 0", NULL), 1);
	ras_db_close(seen.other);
	ras_db_close(d);
	free(ci);
}

/* A caller may hold one transaction around the store's own (ras_receive
 * keeps, normalises and triages a group with one commit): inside it each
 * begin is a savepoint, so the batch that fails in the database is still
 * retried one payload at a time, the refused one kept and marked, and
 * nothing is visible before the one commit; abandoning the hold keeps
 * nothing, and a hold whose inside was rolled back whole cannot commit. */
static void
held_transaction_nests(void)
{
	static const char *const ubrns[] = { "100000000301", "100000000302", "100000000303",
		"100000000304" };
	char *ci = NULL;
	struct ras_db *d = ras_test_db("store_held", &ci), *other = NULL;
	struct ras_inbox_item items[4];
	struct ras_inbox_put_result put[4];
	struct ras_normalise_report *rep = NULL;
	struct payload p[4];
	int64_t ids[4];
	size_t got = 0;

	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF NEW.ubrn = '100000000303' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER test_refuse BEFORE INSERT ON referrals"
	    " FOR EACH ROW EXECUTE FUNCTION test_refuse()"), 0);
	for (int i = 0; i < 4; i++) {
		p[i] = (struct payload){ gen_bundle(&(struct gen){ .ubrn = ubrns[i], .nhs = "9990000077" }), NULL };
		items[i] = (struct ras_inbox_item){ .data = p[i].data, .len = strlen(p[i].data), .source = "file" };
	}

	/* abandoned: nothing kept */
	CU_ASSERT_FALSE(ras_db_holding(d));
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_TRUE(ras_db_holding(d));
	CU_ASSERT_NOT_EQUAL(ras_db_hold(d), 0);                 /* one at a time */
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 4, put), 0);
	ras_db_hold_abandon(d);
	CU_ASSERT_FALSE(ras_db_holding(d));
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 0);

	/* a savepoint rolled back leaves what came before it */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 1, put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DELETE FROM inbox"), 0);
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(d, "SELECT 1/0"), 0);    /* fails inside the inner one */
	ras_db_rollback(d);
	CU_ASSERT_EQUAL(ras_db_commit(d), 0);                  /* the DELETE's level, still usable */
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DELETE FROM inbox"), 0);
	ras_db_rollback(d);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 0);   /* first DELETE kept */
	ras_db_hold_abandon(d);

	/* a savepoint still open, or a rollback of the whole inside: the hold
	 * cannot commit, and keeps nothing */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 1, put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_begin(d), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_FALSE(ras_db_holding(d));
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 1, put), 0);
	ras_db_rollback(d);                                      /* no begin of its own */
	CU_ASSERT_NOT_EQUAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 0);

	/* held: kept and normalised by one transaction, the refused one marked */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 4, put), 0);
	for (int i = 0; i < 4; i++)
		ids[i] = put[i].id;
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(d, NULL, ids, 4, 4, &rep, &got), 0);
	CU_ASSERT_EQUAL_FATAL(got, 4);
	/* nothing of it is committed yet: another session sees none of it
	 * (the savepoints' rows are written with the one commit) */
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(ci, &other), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT (SELECT count(*) FROM inbox) + (SELECT count(*)"
	    " FROM referrals) + (SELECT count(*) FROM events)", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_FALSE(ras_db_holding(d));
	third_refused_others_stored(d, rep);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'stored'", NULL), 3);
	/* and another session sees all of it once committed */
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM inbox", NULL), 4);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM referrals", NULL), 3);
	ras_db_close(other);
	free(ci);
	free(rep);
	for (int i = 0; i < 4; i++)
		free(p[i].data);
	ras_db_close(d);
}

/* Transaction control goes with the next statement (db.c, "deferred"):
 * a begin, a hold and its savepoints reach the server only with the
 * statement after them (another session sees this one idle until then),
 * and a savepoint begun and rolled back before anything was sent costs
 * nothing.  What it must not change: a transaction that failed does not
 * commit, whichever way it failed.  A deferred savepoint in a failed
 * transaction fails the statement it goes with; the commit then fails
 * (the server answers COMMIT with ROLLBACK) and keeps nothing; the same
 * outside a hold, where a caller that ignored an error used to be told
 * "committed"; and the session is usable afterwards. */
static void
transaction_control_goes_with_the_next_statement(void)
{
	char *ci = NULL, pid[24], sql[160];
	struct ras_db *d = ras_test_db("store_deferred", &ci), *other = NULL;
	struct ras_db_res *res = NULL;
	struct ras_inbox_item item;
	struct ras_inbox_put_result put;
	struct payload p = { gen_bundle(&(struct gen){ .ubrn = "100000000311", .nhs = "9990000077" }), NULL };

	item = (struct ras_inbox_item){ .data = p.data, .len = strlen(p.data), .source = "file" };
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(ci, &other), 0);
	snprintf(pid, sizeof(pid), "%lld", (long long)ras_test_sql_int(d, "SELECT pg_backend_pid()", NULL));
	snprintf(sql, sizeof(sql), "SELECT CASE state WHEN 'idle' THEN 0 WHEN 'idle in transaction' THEN 1"
	    " ELSE 2 END FROM pg_stat_activity WHERE pid = $1::int");
#define STATE() (ras_db_exec(other, "SELECT pg_stat_clear_snapshot()"), ras_test_sql_int(other, sql, pid))

	/* a hold and a savepoint: nothing sent until the statement */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(STATE(), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, &item, 1, &put), 0);   /* with parameters: a pipeline */
	CU_ASSERT_EQUAL(STATE(), 1);
	CU_ASSERT_EQUAL(ras_db_commit(d), 0);
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);                  /* never sent ... */
	ras_db_rollback(d);                                   /* ... so nothing to undo */
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "UPDATE inbox SET service_hint = 'x'"), 0);   /* plain: one string */
	ras_db_rollback(d);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM inbox WHERE service_hint IS NULL", NULL), 1);
	CU_ASSERT_EQUAL(STATE(), 0);

	/* a plain begin: sent with the statement after it, and a begin and
	 * rollback with nothing between them send nothing */
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(STATE(), 0);
	ras_db_rollback(d);
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DELETE FROM inbox"), 0);
	CU_ASSERT_EQUAL(STATE(), 1);
	ras_db_rollback(d);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM inbox", NULL), 1);

	/* a held transaction that failed and was not rolled back: the
	 * deferred savepoint fails the statement it goes with, the hold does
	 * not commit, and nothing of it is kept */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DELETE FROM inbox"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(d, "SELECT 1/0"), 0);   /* the caller does not roll back */
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_query(d, &res, "SELECT $1::int", 1, &RAS_DB_TEXT("1")), 0);
	CU_ASSERT_PTR_NULL(res);
	ras_db_rollback(d);
	CU_ASSERT_NOT_EQUAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM inbox", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 1);   /* usable */
	CU_ASSERT_EQUAL(STATE(), 0);

	/* the same outside a hold: a failed transaction's commit fails */
	CU_ASSERT_EQUAL(ras_db_begin(d), 0);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DELETE FROM inbox"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(d, "SELECT 1/0"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(other, "SELECT count(*) FROM inbox", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 1);
	CU_ASSERT_EQUAL(STATE(), 0);
#undef STATE
	ras_db_close(other);
	ras_db_close(d);
	free(ci);
	free(p.data);
}

/* Normalising what the caller has just kept (ras_receive, rasctl ingest):
 * the payloads' bytes come from the caller, not read back from the inbox
 * (three TOAST values fewer read for three payloads), and the referrals
 * stored are the same as when read back; a payload whose length differs
 * from its row is read back. */
static int64_t
inbox_toast_reads(struct ras_db *d)
{
	return ras_test_sql_int(d, "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_xact_all_tables"
	    " WHERE relid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'inbox')", NULL);
}

static void
known_payloads_not_read_back(void)
{
	static const char *const ubrns[] = { "100000000331", "100000000332", "100000000333" };
	struct ras_db *d = ras_test_db("store_known", NULL);
	struct ras_inbox_item items[3], wrong[3];
	struct ras_inbox_put_result put[3];
	struct ras_normalise_report *rep = NULL;
	char *data[3];
	int64_t ids[3];
	size_t got = 0;
	char *stored[3] = { NULL };
	int64_t before, delta[3];

	RAS_REQUIRE(d);
	for (int i = 0; i < 3; i++) {
		data[i] = gen_bundle(&(struct gen){ .ubrn = ubrns[i], .nhs = "9990000077" });
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = strlen(data[i]), .source = "http" };
	}
	/* three rounds, each rolled back but the last: read back, from
	 * memory, from memory with one length that differs */
	for (int round = 0; round < 3; round++) {
		CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
		CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 3, put), 0);
		for (int i = 0; i < 3; i++) {
			ids[i] = put[i].id;
			wrong[i] = items[i];
		}
		wrong[1].len--;
		/* (storing a TOASTed value probes the TOAST index too: counted from here) */
		before = inbox_toast_reads(d);
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(d, NULL, ids, round == 0 ? NULL : round == 1 ?
		    items : wrong, NULL, 3, 3, NULL, &rep, &got), 0);
		CU_ASSERT_EQUAL(got, 3);
		for (size_t k = 0; k < got; k++)
			CU_ASSERT_STRING_EQUAL(rep[k].state, "stored");
		free(rep);
		rep = NULL;
		/* the bodies read back: one TOAST value each (what else the
		 * transaction probes the TOAST index for is the same each round) */
		delta[round] = inbox_toast_reads(d) - before;
		for (int i = 0; i < 3; i++) {
			struct ras_db_res *res = NULL;

			CU_ASSERT_EQUAL_FATAL(ras_db_query(d, &res, "SELECT doc::text FROM referrals WHERE ubrn = $1", 1,
			    &RAS_DB_TEXT(ubrns[i])), 0);
			CU_ASSERT_EQUAL_FATAL(ras_db_res_rows(res), 1);
			if (round == 0) {
				stored[i] = strdup(ras_db_res_get(res, 0, 0));
			} else {
				CU_ASSERT_STRING_EQUAL(ras_db_res_get(res, 0, 0), stored[i]);
			}
			ras_db_res_free(res);
		}
		if (round < 2) {
			ras_db_hold_abandon(d);
		} else {
			CU_ASSERT_EQUAL(ras_db_hold_commit(d), 0);
		}
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM referrals", NULL), 3);
	CU_ASSERT_EQUAL(delta[1], delta[0] - 3);   /* from memory: none read back */
	CU_ASSERT_EQUAL(delta[2], delta[0]);       /* one length differs: its chunk read back */
	for (int i = 0; i < 3; i++) {
		free(stored[i]);
		free(data[i]);
	}
	ras_db_close(d);
}

/* schema/019: with 013's toast_tuple_target of 128 bytes, PostgreSQL moved
 * every value of more than 24 bytes out of an inbox or referrals row while
 * the row was over 128 bytes: a payload's SHA-256 and correlation id, a
 * referral's form URL, each a TOAST value (row, index entry, WAL) of its
 * own.  Now a payload stores one TOAST value (its bytes) and a referral
 * one (its document), and an update of their state none. */
static void
only_documents_out_of_line(void)
{
	struct ras_db *d = ras_test_db("store_inline", NULL);
	struct ras_inbox_item item;
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	struct payload p = { gen_bundle(&(struct gen){ .ubrn = "100000000341", .nhs = "9990000077" }), NULL };
	size_t got = 0;

	RAS_REQUIRE(d);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION pg_temp.toast_values(t regclass) RETURNS bigint LANGUAGE plpgsql AS $f$"
	    " DECLARE n bigint; BEGIN"
	    "  EXECUTE format('SELECT count(DISTINCT chunk_id) FROM %s',"
	    "                 (SELECT reltoastrelid::regclass FROM pg_class WHERE oid = t)) INTO n;"
	    "  RETURN n; END $f$"), 0);
	item = (struct ras_inbox_item){ .data = p.data, .len = strlen(p.data), .source = "http",
		.source_ref = "/fhir/Bundle", .service_hint = "midnotts",
		.correlation_id = "0f8fad5b-d9cb-469f-a165-70867728950e" };
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, &item, 1, &put), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT pg_temp.toast_values('inbox')", NULL), 1);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(d, NULL, &put.id, 1, 1, &rep, &got), 0);
	CU_ASSERT_EQUAL_FATAL(got, 1);
	CU_ASSERT_STRING_EQUAL(rep[0].state, "stored");
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT pg_temp.toast_values('inbox')", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT pg_temp.toast_values('referrals')", NULL), 1);
	CU_ASSERT_EQUAL(ras_db_exec(d, "UPDATE referrals SET state = 'review', updated_at = now()"), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT pg_temp.toast_values('referrals')", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE correlation_id ="
	    " '0f8fad5b-d9cb-469f-a165-70867728950e' AND length(sha256) = 64", NULL), 1);
	free(rep);
	ras_db_close(d);
	free(p.data);
}

/* A batch whose bytes the caller has, larger than several chunks, is
 * written with the next chunk planned while the server stores the one
 * before (write_overlapped): the same reports, in the same order, the same
 * inbox marks and referrals as the same batch read back chunk by chunk; and
 * a payload the database refuses in the last chunk fails the batch, which
 * is then taken one payload at a time (the refused one marked, the others
 * stored). */
static void
known_batch_in_chunks(void)
{
	enum { N = 150 };
	struct ras_db *d = ras_test_db("store_known_chunks", NULL);
	struct ras_inbox_item *items = calloc(N, sizeof(*items));
	struct ras_inbox_put_result *put = calloc(N, sizeof(*put));
	int64_t *ids = calloc(N, sizeof(*ids));
	char **data = calloc(N, sizeof(*data)), *stored = NULL;
	struct ras_normalise_report *rep[2] = { NULL, NULL };
	size_t got[2] = { 0, 0 }, total = 0;

	RAS_REQUIRE(d && items && put && ids && data);
	for (int i = 0; i < N; i++) {
		char ubrn[13];

		snprintf(ubrn, sizeof(ubrn), "1003%08d", i);
		data[i] = gen_bundle(&(struct gen){ .ubrn = ubrn, .nhs = "9990000077" });
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = strlen(data[i]), .source = "spool" };
		total += items[i].len;
	}
	CU_ASSERT_TRUE(total > 2 * (size_t)RAS_NORMALISE_CHUNK_BYTES);   /* three chunks at least */
	/* read back, then from memory: the same */
	for (int round = 0; round < 2; round++) {
		struct ras_db_res *res = NULL;

		CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
		CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, N, put), 0);
		for (int i = 0; i < N; i++)
			ids[i] = put[i].id;
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(d, NULL, ids, round ? items : NULL, NULL, N, N, NULL,
		    &rep[round], &got[round]), 0);
		CU_ASSERT_EQUAL(got[round], N);
		/* written as a set, not taken one at a time after a failure: every
		 * referral by the one savepoint normalise made (one xmin) */
		CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(DISTINCT xmin::text) FROM referrals", NULL), 1);
		CU_ASSERT_EQUAL_FATAL(ras_db_query(d, &res, "SELECT string_agg(i.state || ':' || coalesce(i.kind, '')"
		    " || ':' || r.ubrn || ':' || r.state || ':' || md5(r.doc::text), ',' ORDER BY i.id)"
		    " FROM inbox i JOIN referrals r ON r.payload_id = i.id", 0, NULL), 0);
		if (round == 0) {
			stored = strdup(ras_db_res_get(res, 0, 0));
		} else {
			CU_ASSERT_STRING_EQUAL(ras_db_res_get(res, 0, 0), stored);
		}
		ras_db_res_free(res);
		ras_db_hold_abandon(d);
	}
	for (size_t k = 0; k < got[0] && k < got[1]; k++) {
		CU_ASSERT_EQUAL(rep[0][k].payload_id - rep[0][0].payload_id, rep[1][k].payload_id - rep[1][0].payload_id);
		CU_ASSERT_STRING_EQUAL(rep[0][k].state, rep[1][k].state);
		CU_ASSERT_STRING_EQUAL(rep[0][k].kind, rep[1][k].kind);
	}
	free(rep[0]);
	free(rep[1]);
	rep[0] = NULL;

	/* refused in the last chunk: taken one at a time, nothing lost */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION test_refuse_last() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF NEW.ubrn = '100300000149' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER test_refuse_last BEFORE INSERT ON referrals"
	    " FOR EACH ROW EXECUTE FUNCTION test_refuse_last()"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, N, put), 0);
	for (int i = 0; i < N; i++)
		ids[i] = put[i].id;
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(d, NULL, ids, items, NULL, N, N, NULL, &rep[0], &got[0]), 0);
	CU_ASSERT_EQUAL(got[0], N);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'stored'", NULL), N - 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'rejected'"
	    " AND error LIKE '%refused by the test%'", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM referrals", NULL), N - 1);
	CU_ASSERT_EQUAL(ras_db_exec(d, "DROP TRIGGER test_refuse_last ON referrals; DROP FUNCTION test_refuse_last()"), 0);
	free(rep[0]);
	free(stored);
	for (int i = 0; i < N; i++)
		free(data[i]);
	free(data);
	free(items);
	free(put);
	free(ids);
	ras_db_close(d);
}

/* schema/018: a payload kept in the inbox is compressed with lz4 where this
 * PostgreSQL has it (pglz was ~5% of the server's CPU on the HTTP path),
 * and reads back byte for byte. */
static void
inbox_payloads_lz4(void)
{
	struct ras_db *d = ras_test_db("store_inbox_lz4", NULL);
	struct ras_inbox_item item;
	struct ras_inbox_put_result put;
	struct ras_db_res *res = NULL;
	struct payload p = { gen_bundle(&(struct gen){ .ubrn = "100000000321", .nhs = "9990000077" }), NULL };
	char id[24];

	RAS_REQUIRE(d);
	CU_ASSERT_TRUE(strlen(p.data) > 2048);   /* past the size PostgreSQL compresses at */
	item = (struct ras_inbox_item){ .data = p.data, .len = strlen(p.data), .source = "file" };
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, &item, 1, &put), 0);
	snprintf(id, sizeof(id), "%lld", (long long)put.id);
	if (ras_db_exec(d, "CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)") == 0) {
		CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE id = $1::bigint"
		    " AND pg_column_compression(body) = 'lz4'", id), 1);
	} else {
		fprintf(stderr, "SKIP: inbox lz4: this PostgreSQL has no lz4\n");
	}
	CU_ASSERT_EQUAL_FATAL(ras_db_query_binary(d, &res, "SELECT body FROM inbox WHERE id = $1::bigint", 1,
	    &RAS_DB_TEXT(id)), 0);
	CU_ASSERT_EQUAL(ras_db_res_len(res, 0, 0), strlen(p.data));
	CU_ASSERT_EQUAL(memcmp(ras_db_res_get(res, 0, 0), p.data, strlen(p.data)), 0);
	ras_db_res_free(res);
	ras_db_close(d);
	free(p.data);
}

/* schema/022: the inbox's statements of every group (keep, claim what the
 * caller has, mark) keep one plan per session, made when the inbox may
 * hold a few rows: in a new database, by a new session, a group kept and
 * normalised reads the inbox by no sequential scan. */
static void
inbox_plans_use_keys_on_small_tables(void)
{
	static const char *const ubrns[] = { "100000000341", "100000000342" };
	struct ras_db *d = ras_test_db("store_inbox_plans", NULL);
	struct ras_inbox_item items[2];
	struct ras_inbox_put_result put[2];
	struct ras_normalise_report *rep = NULL;
	char *data[2];
	int64_t ids[2];
	size_t got = 0;

	RAS_REQUIRE(d);
	for (int i = 0; i < 2; i++) {
		data[i] = gen_bundle(&(struct gen){ .ubrn = ubrns[i], .nhs = "9990000077" });
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = strlen(data[i]), .source = "http" };
	}
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d, "CREATE TEMP TABLE seq0 AS"
	    " SELECT relid, seq_scan FROM pg_stat_xact_user_tables"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 2, put), 0);
	for (int i = 0; i < 2; i++)
		ids[i] = put[i].id;
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(d, NULL, ids, items, NULL, 2, 2, NULL, &rep, &got), 0);
	CU_ASSERT_EQUAL(got, 2);
	for (size_t k = 0; k < got; k++)
		CU_ASSERT_STRING_EQUAL(rep[k].state, "stored");
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT coalesce(sum(t.seq_scan - coalesce(s.seq_scan, 0)), 0)"
	    " FROM pg_stat_xact_user_tables t LEFT JOIN seq0 s USING (relid) WHERE t.relname = 'inbox'", NULL), 0);
	CU_ASSERT_EQUAL(ras_db_hold_commit(d), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'stored'", NULL), 2);
	free(rep);
	for (int i = 0; i < 2; i++)
		free(data[i]);
	ras_db_close(d);
}

static int64_t
claims(struct ras_db *d)
{
	/* (this session's calls not yet reported: counted before and after) */
	return ras_test_sql_int(d, "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
	    " WHERE funcname = 'ras_inbox_claim_known'", NULL);
}

/* items[0..3) kept and normalised in one held transaction as a group is,
 * with the put's answers (in put); every one stored.  Returns how many
 * times normalise claimed rows. */
static int64_t
keep_group_counting_claims(struct ras_db *d, const struct ras_inbox_item *items,
    struct ras_inbox_put_result put[3])
{
	struct ras_normalise_report *rep = NULL;
	int64_t ids[3], calls;
	size_t got = 0;

	CU_ASSERT_EQUAL_FATAL(ras_db_hold(d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 3, put), 0);
	for (int i = 0; i < 3; i++)
		ids[i] = put[i].id;
	calls = claims(d);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(d, NULL, ids, items, put, 3, 3, NULL, &rep, &got), 0);
	calls = claims(d) - calls;
	CU_ASSERT_EQUAL(got, 3);
	for (size_t k = 0; k < got; k++)
		CU_ASSERT_STRING_EQUAL(rep[k].state, "stored");
	CU_ASSERT_EQUAL(ras_db_hold_commit(d), 0);
	free(rep);
	return calls;
}

/* Rows the caller's ras_store_inbox_put inserted in this transaction are
 * its own (still received, seen by nobody else): normalise takes them as
 * they are, without claiming them again, while a payload kept before (a
 * crash between keeping and normalising) is claimed as ever; all stored. */
static void
kept_rows_not_claimed_again(void)
{
	static const char *const ubrns[] = { "100000000351", "100000000352", "100000000353",
		"100000000361", "100000000362", "100000000363" };
	struct ras_db *d = ras_test_db("store_kept_rows", NULL);
	struct ras_inbox_item items[6];
	struct ras_inbox_put_result before, put[3];
	char *data[6];

	RAS_REQUIRE(d);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d, "SET track_functions = 'pl'"), 0);
	for (int i = 0; i < 6; i++) {
		data[i] = gen_bundle(&(struct gen){ .ubrn = ubrns[i], .nhs = "9990000077" });
		items[i] = (struct ras_inbox_item){ .data = data[i], .len = strlen(data[i]), .source = "http",
			.correlation_id = "c-kept" };
	}
	/* the third kept earlier and left received: one claim, of that row */
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, &items[2], 1, &before), 0);
	CU_ASSERT(before.received > 0);
	CU_ASSERT_EQUAL(keep_group_counting_claims(d, items, put), 1);
	CU_ASSERT(put[0].received > 0 && put[1].received > 0);
	CU_ASSERT(put[2].duplicate && put[2].received == 0 && put[2].id == before.id);
	/* a group of new payloads only: no claim at all */
	CU_ASSERT_EQUAL(keep_group_counting_claims(d, items + 3, put), 0);
	/* each referral stored from its own payload, each payload as given */
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE state = 'stored'"
	    " AND correlation_id = 'c-kept'", NULL), 6);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(DISTINCT r.payload_id) FROM referrals r"
	    " WHERE r.ubrn BETWEEN '100000000351' AND '100000000363'", NULL), 6);
	for (int i = 0; i < 6; i++)
		free(data[i]);
	ras_db_close(d);
}

/* The inbox takes a batch in one statement: each payload answered in
 * order, a payload stored before and a second copy within the batch both
 * duplicates of the stored row, the columns kept as given (bytes with a
 * NUL and quotes, hints, the size of a truncated payload). */
static void
inbox_batch_in_one_statement(void)
{
	static const char odd[] = "{\"a\":\"x\"}\0'\\\"";
	struct ras_db *d = ras_test_db("store_inbox", NULL);
	struct ras_inbox_item first = { .data = "{\"one\":1}", .len = 9, .source = "file", .source_ref = "one.json" };
	struct ras_inbox_item items[5] = {
		{ .data = "{\"two\":2}", .len = 9, .source = "http", .correlation_id = "c-2" },
		{ .data = "{\"one\":1}", .len = 9, .source = "file" },                      /* stored before */
		{ .data = odd, .len = sizeof(odd) - 1, .source_ref = "it's \"odd\"", .service_hint = "midnotts",
		  .ubrn_hint = "100000000301", .content_type = "application/json" },
		{ .data = "{\"two\":2}", .len = 9, .source = "spool" },                     /* copy in the batch */
		{ .data = "{\"big\"", .len = 6, .full_size = 1000000, .source = "file" },  /* truncated */
	};
	struct ras_inbox_put_result one, put[5];

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, &first, 1, &one), 0);
	CU_ASSERT_FALSE(one.duplicate);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 5, put), 0);
	CU_ASSERT_FALSE(put[0].duplicate);
	CU_ASSERT_TRUE(put[1].duplicate);
	CU_ASSERT_EQUAL(put[1].id, one.id);
	CU_ASSERT_FALSE(put[2].duplicate);
	CU_ASSERT_TRUE(put[3].duplicate);
	CU_ASSERT_EQUAL(put[3].id, put[0].id);
	CU_ASSERT_FALSE(put[4].duplicate);
	/* ids in the batch's order */
	CU_ASSERT(one.id < put[0].id && put[0].id < put[2].id && put[2].id < put[4].id);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 4);
	{
		char sql[512];
		char *row;

		ras_test_fmt(sql, sizeof(sql), "SELECT concat_ws('|', encode(body, 'hex'), source, source_ref, content_type,"
		    " service_hint, ubrn_hint, correlation_id, size, truncated, state, sha256 = encode(sha256(body), 'hex'))"
		    " FROM inbox WHERE id = %lld", (long long)put[2].id);
		row = ras_test_sql_text(d, sql, NULL);
		CU_ASSERT_STRING_EQUAL(row, "7b2261223a2278227d00275c22|unknown|it's \"odd\"|application/json|midnotts|"
		    "100000000301|13|f|received|t");
		free(row);
		ras_test_fmt(sql, sizeof(sql), "SELECT concat_ws('|', source, size, truncated, correlation_id)"
		    " FROM inbox WHERE id = %lld", (long long)put[4].id);
		row = ras_test_sql_text(d, sql, NULL);
		CU_ASSERT_STRING_EQUAL(row, "file|1000000|t");
		free(row);
		ras_test_fmt(sql, sizeof(sql), "SELECT concat_ws('|', source, correlation_id) FROM inbox WHERE id = %lld",
		    (long long)put[0].id);
		row = ras_test_sql_text(d, sql, NULL);
		CU_ASSERT_STRING_EQUAL(row, "http|c-2");
		free(row);
	}
	ras_db_close(d);
}

/* A duplicate is the same bytes for the same referral (schema 020): the
 * same attachment given for two referrals (ubrn_hint) is kept for each, in
 * one batch and across batches; fetched again for either referral, or sent
 * again with no referral named, it is a duplicate of that copy. */
static void
inbox_duplicate_is_per_referral(void)
{
	struct ras_db *d = ras_test_db("store_inbox_ref", NULL);
	static const char form[] = "{\"resourceType\":\"QuestionnaireResponse\"}";
	struct ras_inbox_item items[4] = {
		{ .data = form, .len = sizeof(form) - 1, .source = "ers", .ubrn_hint = "100000000401" },
		{ .data = form, .len = sizeof(form) - 1, .source = "ers", .ubrn_hint = "100000000402" },
		{ .data = form, .len = sizeof(form) - 1, .source = "ers", .ubrn_hint = "100000000401" },
		{ .data = form, .len = sizeof(form) - 1, .source = "file" },
	};
	struct ras_inbox_put_result put[4], again[4];

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 4, put), 0);
	CU_ASSERT_FALSE(put[0].duplicate);
	CU_ASSERT_FALSE(put[1].duplicate);
	CU_ASSERT_NOT_EQUAL(put[1].id, put[0].id);
	CU_ASSERT_TRUE(put[2].duplicate);
	CU_ASSERT_EQUAL(put[2].id, put[0].id);
	CU_ASSERT_FALSE(put[3].duplicate);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 4, again), 0);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_TRUE(again[i].duplicate);
		CU_ASSERT_EQUAL(again[i].id, put[i].id);
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 3);
	ras_db_close(d);
}

/* A batch larger than RAS_INBOX_PUT_CHUNK_BYTES goes one statement per
 * chunk, in one transaction: a copy in a later chunk is a duplicate of
 * the one stored by an earlier chunk, and a chunk the database refuses
 * leaves nothing of the batch. */
static void
inbox_batch_in_chunks(void)
{
	enum { BIG = RAS_INBOX_PUT_CHUNK_BYTES / 2 + 1000 };
	struct ras_db *d = ras_test_db("store_inbox_chunks", NULL);
	char *body[4];
	struct ras_inbox_item items[4];
	struct ras_inbox_put_result put[4];

	for (int i = 0; i < 4; i++) {
		body[i] = malloc(BIG);
		CU_ASSERT_PTR_NOT_NULL_FATAL(body[i]);
		memset(body[i], 'a' + i, BIG);
		items[i] = (struct ras_inbox_item){ .data = body[i], .len = BIG, .source = "file" };
	}
	items[2].data = body[0];                      /* a copy of the first, in the third chunk */
	items[3].source_ref = "refuse";
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(d, items, 3, put), 0);
	CU_ASSERT_FALSE(put[0].duplicate);
	CU_ASSERT_FALSE(put[1].duplicate);
	CU_ASSERT_TRUE(put[2].duplicate);
	CU_ASSERT_EQUAL(put[2].id, put[0].id);
	CU_ASSERT(put[0].id < put[1].id);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox WHERE length(body) = "
	    "(SELECT max(length(body)) FROM inbox)", NULL), 2);

	CU_ASSERT_EQUAL_FATAL(ras_db_exec(d,
	    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF NEW.source_ref = 'refuse' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER test_refuse BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION test_refuse()"), 0);
	memset(body[2], 'z', BIG);
	items[2].data = body[2];                      /* new, in a chunk before the refused one */
	CU_ASSERT_NOT_EQUAL(ras_store_inbox_put(d, items + 2, 2, put), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(d, "SELECT count(*) FROM inbox", NULL), 2);
	CU_ASSERT_EQUAL(ras_db_exec(d, "SELECT 1"), 0);   /* the session goes on */
	for (int i = 0; i < 4; i++)
		free(body[i]);
	ras_db_close(d);
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
	{ "one batch stores what one payload at a time stores", batch_equals_one_at_a_time },
	{ "a set that fails in the database is retried one payload at a time", set_failure_retried_one_at_a_time },
	{ "a batch of more payloads than a chunk takes, reported after commit",
	  batch_over_chunk_rows_reported_after_commit },
	{ "a transaction held around the store's own nests them", held_transaction_nests },
	{ "transaction control goes with the next statement; a failed one never commits",
	  transaction_control_goes_with_the_next_statement },
	{ "the inbox keeps payloads with lz4", inbox_payloads_lz4 },
	{ "only the payload and the document are kept out of line", only_documents_out_of_line },
	{ "what the caller has just kept is not read back", known_payloads_not_read_back },
	{ "a batch the caller has, in chunks planned while the last is stored", known_batch_in_chunks },
	{ "the inbox takes a batch in one statement", inbox_batch_in_one_statement },
	{ "a duplicate is the same bytes for the same referral", inbox_duplicate_is_per_referral },
	{ "the inbox's plans, made on small tables, read by keys", inbox_plans_use_keys_on_small_tables },
	{ "rows the caller just kept are not claimed again", kept_rows_not_claimed_again },
	{ "a larger batch goes in chunks, in one transaction", inbox_batch_in_chunks },
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
