/*
 * Integration tests for the triage stage against a real PostgreSQL: the
 * decisions it records (facts, rule-set version, deadlines, events, states),
 * re-triage adding rows, SKIP LOCKED batching, a failing decision not
 * blocking the batch, clinicians' decisions; and `rasctl triage` and
 * `rasctl ingest` as subprocesses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

#define MAPPINGS RAS_SOURCE_ROOT "/mappings"

static struct ras_db *db;
static char *conninfo;
static struct ras_triage *tri;
static int64_t now;

static int64_t
count(const char *sql)
{
	return ras_test_sql_int(db, sql, NULL);
}

static char *
text(const char *sql)
{
	return ras_test_sql_text(db, sql, NULL);
}

/* Keep a payload and normalise it, as the intake routes do; returns the payload id. */
static int64_t
store_payload(const char *data, size_t len, const char *ref, const char *service, const char *ubrn)
{
	struct ras_inbox_item it = { .data = data, .len = len, .source = "file", .source_ref = ref,
		.service_hint = service, .ubrn_hint = ubrn };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_FALSE(put.duplicate);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	if (strcmp(rep[0].state, "stored") != 0)
		fprintf(stderr, "%s: %s %s\n", ref, rep[0].state, rep[0].message);
	CU_ASSERT_STRING_EQUAL(rep[0].state, "stored");
	free(rep);
	return put.id;
}

static int64_t
store_fixture(const char *rel, const char *service)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	int64_t id = store_payload(data, len, rel, service, NULL);

	free(data);
	return id;
}

/* The fixture with its UBRN (and NHS number) replaced, so one file gives
 * many referrals. */
static void
store_variant(const char *rel, const char *old_ubrn, const char *new_ubrn, const char *service,
    const char *version)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	char *out = malloc(len + 128), *p;
	size_t n = 0;
	const char *s = data;

	while ((p = strstr(s, old_ubrn)) != NULL) {
		memcpy(out + n, s, (size_t)(p - s));
		n += (size_t)(p - s);
		memcpy(out + n, new_ubrn, strlen(new_ubrn));
		n += strlen(new_ubrn);
		s = p + strlen(old_ubrn);
	}
	memcpy(out + n, s, strlen(s) + 1);
	n += strlen(s);
	if (version) {
		/* meta.versionId on the ServiceRequest: a new version of the referral */
		char *sr = strstr(out, "\"resourceType\": \"ServiceRequest\",");
		char *copy = malloc(n + 64);
		size_t at;

		CU_ASSERT_PTR_NOT_NULL_FATAL(sr);
		at = (size_t)(sr - out) + strlen("\"resourceType\": \"ServiceRequest\",");
		n = (size_t)snprintf(copy, n + 64, "%.*s \"meta\": {\"versionId\": \"%s\"},%s", (int)at, out,
		    version, out + at);
		free(out);
		out = copy;
	}
	(void)store_payload(out, n, rel, service, NULL);
	free(out);
	free(data);
}

static struct ras_triage_report *
triage_all(size_t limit, size_t *n)
{
	struct ras_triage_report *reps = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, tri, now, limit, NULL, 0, &reps, n), 0);
	return reps;
}

/* The report of a UBRN; a blank one (and a failure) when there is none. */
static const struct ras_triage_report *
report_for(const struct ras_triage_report *reps, size_t n, const char *ubrn)
{
	static const struct ras_triage_report none = { .state = "(no report)" };

	for (size_t i = 0; i < n; i++)
		if (strncmp(reps[i].referral, ubrn, strlen(ubrn)) == 0)
			return &reps[i];
	CU_FAIL("no triage report for the referral");
	return &none;
}

/* ---- the stage ------------------------------------------------------------- */

static void
stage_records_decisions(void)
{
	struct ras_triage_report *reps;
	const struct ras_triage_report *r;
	size_t n = 0;
	char sql[512], *v;

	store_fixture("triage/midnotts-accept.json", "midnotts");
	store_fixture("triage/midnotts-out-of-area.json", "midnotts");
	store_fixture("triage/midnotts-2ww.json", "midnotts");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE state = 'new'"), 3);
	reps = triage_all(100, &n);
	CU_ASSERT_EQUAL_FATAL(n, 3);

	r = report_for(reps, n, "100000000301");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->outcome, RAS_OUTCOME_ACCEPT);
	CU_ASSERT_FALSE(r->final);
	CU_ASSERT_STRING_EQUAL(r->state, "review");
	CU_ASSERT_TRUE(r->decision_id > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "midnotts.accept [004 \xc2\xa7" "3.4]"));
	r = report_for(reps, n, "100000000302");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->outcome, RAS_OUTCOME_RETURN);
	CU_ASSERT_TRUE(r->final);
	CU_ASSERT_STRING_EQUAL(r->state, "decided");
	r = report_for(reps, n, "100000000303");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(r->onward_target, "two-week-wait");
	free(reps);

	/* The decisions: facts, rule-set version, reasons with clauses. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions"), 3);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE ruleset_version = '%s'"
	    " AND decided_by = 'rules' AND facts ? 'patient.age' AND facts ? 'findings'",
	    ras_rules_version(ras_mappings_ruleset(ras_triage_mappings(tri), "midnotts")));
	CU_ASSERT_EQUAL(count(sql), 3);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000302' AND d.outcome = 'return' AND d.final"
	    " AND d.reasons @> '[{\"rule\": \"midnotts.population\", \"clause\": \"004 \xc2\xa7" "3.4\"}]'"
	    " AND (d.facts ->> 'patient.practice_in_area')::boolean = false"), 1);
	/* The clocks ran from the time the payload was received. */
	v = text("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000301' AND (d.doc ->> 'received_at')::timestamptz"
	    "  = date_trunc('second', r.received_at)");
	CU_ASSERT_PTR_NOT_NULL(v);
	CU_ASSERT_STRING_EQUAL(v ? v : "", "1");
	free(v);
	/* The clocks: the 2WW has onward and same-day GP notification; a final
	 * return meets its own triage clock. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000303' AND dl.kind IN ('onward', 'gp-notification', 'triage')"
	    " AND dl.clause LIKE '004 %'"), 3);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000302' AND dl.kind = 'triage' AND dl.met_at IS NOT NULL"
	    " AND dl.met_by LIKE 'decision:%'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000301' AND dl.kind = 'contact' AND dl.met_at IS NULL"
	    " AND dl.due_at > r.received_at"), 1);
	/* The events carry the rules, clauses and rule-set version, and name
	 * the decision whose row holds the facts (stored once, not copied). */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events e JOIN decisions d"
	    " ON d.id = (e.detail ->> 'decision_id')::bigint AND d.referral_id = e.referral_id"
	    " WHERE e.kind = 'triage-decided'"
	    " AND e.detail -> 'reasons' -> 0 ? 'clause' AND d.facts ? 'form.present'"
	    " AND e.detail ? 'ruleset_version' AND NOT e.detail ? 'facts'"), 3);
	/* Nothing left to do. */
	reps = triage_all(100, &n);
	CU_ASSERT_EQUAL(n, 0);
	free(reps);
}

static void
decisions_are_append_only(void)
{
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "UPDATE decisions SET outcome = 'accept'"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "DELETE FROM decisions"), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions"), 3);
}

static void
new_version_adds_a_decision(void)
{
	struct ras_triage_report *reps;
	size_t n = 0;
	char *first;

	first = text("SELECT d.doc::text FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000302'");
	/* Version 2 of the out-of-area referral. */
	store_variant("triage/midnotts-out-of-area.json", "100000000302", "100000000302", "midnotts", "2");
	reps = triage_all(100, &n);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(reps[0].referral, "100000000302 v2");
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000302'"), 2);
	/* The first decision is untouched; its open clocks were superseded. */
	{
		char *again = text("SELECT d.doc::text FROM decisions d JOIN referrals r ON r.id = d.referral_id"
		    " WHERE r.ubrn = '100000000302' AND r.version = 1");

		CU_ASSERT_PTR_NOT_NULL_FATAL(first);
		CU_ASSERT_PTR_NOT_NULL_FATAL(again);
		CU_ASSERT_STRING_EQUAL(first, again);
		free(again);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000302' AND r.version = 1 AND dl.kind = 'return'"
	    " AND dl.cancelled_at IS NOT NULL"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000302' AND r.version = 2 AND dl.cancelled_at IS NULL"), 2);
	free(first);
}

static void
form_arrival_retriages(void)
{
	struct ras_triage_report *reps;
	size_t n = 0, len;
	char *bundle = ras_test_read(ras_test_fixture("triage/midnotts-accept.json"), &len);
	const char *qr, *end;
	json_t *j = NULL, *e;
	size_t i;
	struct ras_buf b = RAS_BUF_INIT(0);

	/* An e-RS referral: only an NHS number, so a person must review it. */
	store_fixture("ers/referral-Unbooked.json", "midnotts");
	reps = triage_all(100, &n);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_REVIEW);
	CU_ASSERT_PTR_NOT_NULL(strstr(reps[0].message, "midnotts.form.awaited"));
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070000' AND state = 'review'"), 1);

	/* Its referral form arrives as an e-RS attachment (a bare QuestionnaireResponse). */
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(bundle, len, 0, &j), 0);
	json_array_foreach(json_object_get(j, "entry"), i, e)
		if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"),
		    "QuestionnaireResponse") == 0)
			CU_ASSERT_EQUAL(ras_json_dump(json_object_get(e, "resource"), RAS_JSON_COMPACT, &b), 0);
	json_decref(j);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
	{
		int64_t pid = store_payload(b.data, b.len, "form.json", NULL, "000000070000");
		struct ras_triage_report *r2 = NULL;
		size_t n2 = 0;

		CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070000' AND state = 'new'"), 1);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'triage-requeued'"
		    " AND detail ->> 'reason' LIKE 'referral form%'"), 1);
		/* As rasctl ingest does: only what this payload touched. */
		CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, tri, now, 10, &pid, 1, &r2, &n2), 0);
		CU_ASSERT_EQUAL_FATAL(n2, 1);
		CU_ASSERT_EQUAL(r2[0].payload_id, pid);
		/* Still a review (no birth date or practice from e-RS), but the form
		 * is no longer what is missing. */
		CU_ASSERT_EQUAL(r2[0].outcome, RAS_OUTCOME_REVIEW);
		CU_ASSERT_PTR_NULL(strstr(r2[0].message, "form.awaited"));
		free(r2);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '000000070000'"), 2);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '000000070000' AND (d.facts ->> 'form.present')::boolean"), 1);
	ras_buf_free(&b);
	free(bundle);
	(void)end;
	(void)qr;
}

static void
skip_locked_batches(void)
{
	struct ras_db *other = NULL;
	struct ras_triage_report *reps;
	size_t n = 0;
	char ubrn[16];

	for (int i = 0; i < 6; i++) {
		snprintf(ubrn, sizeof(ubrn), "1000000004%02d", i);
		store_variant("triage/bassetlaw-short-duration.json", "100000000305", ubrn, "bassetlaw-2022", NULL);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE state = 'new'"), 6);
	/* Another rasd holds two of them. */
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, &other), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_begin(other), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_query(other, NULL, "SELECT id FROM referrals"
	    " WHERE ubrn IN ('100000000400', '100000000401') FOR UPDATE", 0, NULL), 0);
	reps = triage_all(3, &n);
	CU_ASSERT_EQUAL(n, 3);   /* a batch is at most `limit` */
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_PTR_NULL(strstr(reps[i].referral, "100000000400"));
		CU_ASSERT_PTR_NULL(strstr(reps[i].referral, "100000000401"));
	}
	free(reps);
	reps = triage_all(3, &n);
	CU_ASSERT_EQUAL(n, 1);
	free(reps);
	reps = triage_all(3, &n);
	CU_ASSERT_EQUAL(n, 0);   /* the locked ones are skipped, not waited for */
	free(reps);
	CU_ASSERT_EQUAL_FATAL(ras_db_commit(other), 0);
	ras_db_close(other);
	reps = triage_all(3, &n);
	CU_ASSERT_EQUAL(n, 2);
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '1000000004%' AND state = 'decided'"), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '1000000004%' AND state = 'review'"), 6);
}

static void
failing_decision_does_not_block_the_batch(void)
{
	struct ras_triage_report *reps;
	size_t n = 0;
	char ubrn[16];

	/* A later stage's trigger that refuses one decision. */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db,
	    "CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	    " IF NEW.facts ->> 'patient.practice' = 'C84008' THEN RAISE EXCEPTION 'refused by test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER t_refuse AFTER INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION t_refuse()"), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(ubrn, sizeof(ubrn), "1000000005%02d", i);
		store_variant("triage/bassetlaw-short-duration.json", "100000000305", ubrn, "bassetlaw-2022", NULL);
	}
	/* The middle one is registered at another Bassetlaw practice. */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "UPDATE referrals SET doc = jsonb_set(doc, '{patient,practice_ods}',"
	    " '\"C84008\"') WHERE ubrn = '100000000501'"), 0);
	reps = triage_all(10, &n);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(report_for(reps, n, "100000000500")->state, "review");
	CU_ASSERT_STRING_EQUAL(report_for(reps, n, "100000000501")->state, "triage-failed");
	CU_ASSERT_PTR_NOT_NULL(strstr(report_for(reps, n, "100000000501")->message, "refused by test"));
	CU_ASSERT_STRING_EQUAL(report_for(reps, n, "100000000502")->state, "review");
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000000501' AND state = 'triage-failed'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events e JOIN referrals r ON r.id = e.referral_id"
	    " WHERE r.ubrn = '100000000501' AND e.kind = 'triage-failed'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn LIKE '1000000005%'"), 2);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "DROP TRIGGER t_refuse ON decisions; DROP FUNCTION t_refuse()"), 0);
}

/* A batch larger than one chunk (RAS_TRIAGE_CHUNK_BYTES of stored
 * documents) is decided and written chunk by chunk in one transaction; a
 * decision refused in a later chunk still does not block the others. */
static void
batch_of_many_chunks(void)
{
	enum { N = 150 };
	struct ras_triage_report *reps;
	size_t n = 0;
	char ubrn[16];

	for (int i = 0; i < N; i++) {
		snprintf(ubrn, sizeof(ubrn), "1000000007%02d", i % 100);
		if (i >= 100)
			snprintf(ubrn, sizeof(ubrn), "1000000008%02d", i - 100);
		store_variant("triage/midnotts-accept.json", "100000000301", ubrn, "midnotts", NULL);
	}
	/* (more than one chunk's worth) */
	CU_ASSERT(count("SELECT sum(pg_column_size(doc)) FROM referrals WHERE ubrn LIKE '1000000007%'"
	    " OR ubrn LIKE '1000000008%'") > (int64_t)RAS_TRIAGE_CHUNK_BYTES);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db,
	    "CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	    " IF NEW.facts ->> 'patient.practice' = 'C84008' THEN RAISE EXCEPTION 'refused by test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER t_refuse AFTER INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION t_refuse()"), 0);
	/* the last one of the batch is refused */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "UPDATE referrals SET doc = jsonb_set(doc, '{patient,practice_ods}',"
	    " '\"C84008\"') WHERE ubrn = '100000000849'"), 0);
	reps = triage_all(500, &n);
	CU_ASSERT_EQUAL_FATAL(n, N);
	CU_ASSERT_STRING_EQUAL(report_for(reps, n, "100000000849")->state, "triage-failed");
	CU_ASSERT_STRING_EQUAL(report_for(reps, n, "100000000700")->state, "review");
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE (ubrn LIKE '1000000007%'"
	    " OR ubrn LIKE '1000000008%') AND state = 'review'"), N - 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn LIKE '1000000007%' OR r.ubrn LIKE '1000000008%'"), N - 1);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "DROP TRIGGER t_refuse ON decisions; DROP FUNCTION t_refuse()"), 0);
	/* without the refusal: all of a many-chunk batch in one pass */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "UPDATE referrals SET state = 'new' WHERE ubrn = '100000000849'"), 0);
	reps = triage_all(500, &n);
	CU_ASSERT_EQUAL(n, 1);
	free(reps);
}

/* What the stage's callback sees (ras_triage_pending_each). */
struct seen {
	struct ras_db *other;     /* a second connection: what is committed */
	int64_t ids[512];
	char state[512][16], message[512][96];
	size_t n, uncommitted;
};

static void
seen_report(const struct ras_triage_report *r, void *ctx)
{
	struct seen *x = ctx;
	char id[24];

	if (x->n < 512) {
		x->ids[x->n] = r->referral_id;
		snprintf(x->state[x->n], sizeof(x->state[x->n]), "%s", r->state);
		snprintf(x->message[x->n], sizeof(x->message[x->n]), "%.80s", r->message);
	}
	x->n++;
	/* handed over only once committed: another session sees it decided */
	snprintf(id, sizeof(id), "%lld", (long long)r->referral_id);
	if (ras_test_sql_int(x->other, "SELECT count(*) FROM referrals WHERE id = $1::bigint"
	    " AND state <> 'new'", id) != 1)
		x->uncommitted++;
}

/* More referrals than a chunk takes (RAS_TRIAGE_CHUNK_ROWS, however small
 * their documents), the last refused by the database: every referral is
 * reported once, in claim order, through the callback and only after its
 * transaction committed; the batch is taken again one at a time, the
 * refused one triage-failed with the database's reason. */
static void
batch_over_chunk_rows_reported_after_commit(void)
{
	enum { N = RAS_TRIAGE_CHUNK_ROWS + 44 };
	static struct seen seen;
	char ubrn[16], last[16];
	size_t n = 0;

	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, &seen.other), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "UPDATE referrals SET state = 'review' WHERE state = 'new'"), 0);
	for (int i = 0; i < N; i++) {
		snprintf(ubrn, sizeof(ubrn), "10000001%04d", i);
		store_variant("triage/midnotts-accept.json", "100000000301", ubrn, "midnotts", NULL);
	}
	snprintf(last, sizeof(last), "10000001%04d", N - 1);
	/* all but the last with a document of a few bytes, so that the chunks
	 * are cut by count, not bytes */
	CU_ASSERT_EQUAL_FATAL(ras_test_sql_int(db, "WITH u AS (UPDATE referrals SET doc = '{\"x\": 1}'"
	    " WHERE ubrn LIKE '10000001%' AND ubrn <> $1 RETURNING 1) SELECT count(*) FROM u", last), N - 1);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db,
	    "CREATE FUNCTION t_refuse2() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	    " IF NEW.facts ->> 'patient.practice' = 'C84008' THEN RAISE EXCEPTION 'refused by test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER t_refuse2 AFTER INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION t_refuse2()"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_test_sql_int(db, "WITH u AS (UPDATE referrals SET doc = jsonb_set(doc,"
	    " '{patient,practice_ods}', '\"C84008\"') WHERE ubrn = $1 RETURNING 1) SELECT count(*) FROM u",
	    last), 1);
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending_each(db, tri, now, 10000, NULL, 0, seen_report, &seen, &n), 0);
	CU_ASSERT_EQUAL(n, N);
	CU_ASSERT_EQUAL_FATAL(seen.n, N);
	CU_ASSERT_EQUAL(seen.uncommitted, 0);
	for (size_t i = 0; i < N; i++) {
		if (i > 0)
			CU_ASSERT(seen.ids[i] > seen.ids[i - 1]);   /* each once, in claim order */
		/* a document with nothing in it is returned (no NHS number) */
		CU_ASSERT_STRING_EQUAL(seen.state[i], i == N - 1 ? "triage-failed" : "decided");
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(seen.message[N - 1], "could not store the decision"));
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '10000001%'"
	    " AND state = 'triage-failed'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn LIKE '10000001%'"), N - 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '10000001%' AND state = 'new'"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "DROP TRIGGER t_refuse2 ON decisions; DROP FUNCTION t_refuse2()"), 0);
	ras_db_close(seen.other);
}

static void
unassigned_then_requeued(void)
{
	struct ras_triage_report *reps;
	struct ras_triage *t2 = NULL;
	struct ras_config *cfg = NULL;
	struct ras_buf problems = RAS_BUF_INIT(0);
	static const char conf[] = "[triage]\ndefault_service = bassetlaw-2022\n";
	char *path = ras_test_write_tmp("default.conf", conf, strlen(conf));
	int64_t moved = 0;
	size_t n = 0;

	/* No service hint, no e-RS service id, no default: unassigned. */
	store_variant("triage/bassetlaw-short-duration.json", "100000000305", "100000000600", NULL, NULL);
	reps = triage_all(10, &n);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(reps[0].state, "unassigned");
	CU_ASSERT_PTR_NOT_NULL(strstr(reps[0].message, "default_service"));
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'triage-unassigned'"), 1);
	/* The configuration gets a default service; requeue and triage again. */
	CU_ASSERT_EQUAL_FATAL(ras_config_load(path, &cfg, &problems), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_new(cfg, MAPPINGS, &t2), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_requeue(db, t2, &moved), 0);
	CU_ASSERT_EQUAL(moved, 1);
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, t2, now, 10, NULL, 0, &reps, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(reps[0].service, "bassetlaw-2022");
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_RETURN);
	free(reps);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000000600'"
	    " AND service = 'bassetlaw-2022'"), 1);
	ras_triage_free(t2);
	ras_config_free(cfg);
	ras_buf_free(&problems);
	free(path);
}

static void
changed_rules_retriage_recommendations(void)
{
	struct ras_triage *t2 = NULL;
	struct ras_triage_report *reps;
	char dir[4096], cmd[8192], sql[512];
	int64_t moved = 0, reviews;
	size_t n = 0;

	/* Edit the Bassetlaw rule set (a comment): its version changes. */
	snprintf(dir, sizeof(dir), "%s/mappings-edited", ras_test_tmpdir());
	ras_test_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s' && sed -i "
	    "'s/\"comment\": \"An e-RS Referral/\"comment\": \"Edited. An e-RS Referral/' '%s/services/bassetlaw-2022.json'",
	    dir, MAPPINGS, dir, dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_new(NULL, dir, &t2), 0);
	reviews = count("SELECT count(*) FROM referrals WHERE service = 'bassetlaw-2022' AND state = 'review'");
	CU_ASSERT_TRUE(reviews >= 6);
	CU_ASSERT_EQUAL_FATAL(ras_triage_requeue(db, t2, &moved), 0);
	CU_ASSERT_EQUAL(moved, reviews);   /* final decisions (the returns) are not reopened */
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, t2, now, 100, NULL, 0, &reps, &n), 0);
	CU_ASSERT_EQUAL((int64_t)n, reviews);
	free(reps);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM current_decisions WHERE service = 'bassetlaw-2022'"
	    " AND ruleset_version = '%s'", ras_rules_version(ras_mappings_ruleset(ras_triage_mappings(t2),
	    "bassetlaw-2022")));
	CU_ASSERT_EQUAL(count(sql), reviews);
	/* A second requeue with the same rules moves nothing. */
	CU_ASSERT_EQUAL_FATAL(ras_triage_requeue(db, t2, &moved), 0);
	CU_ASSERT_EQUAL(moved, 0);
	ras_triage_free(t2);
}

static void
clinician_decision(void)
{
	struct ras_arena *a = ras_arena_new();
	const struct ras_ruleset *rs = ras_mappings_ruleset(ras_triage_mappings(tri), "midnotts");
	struct ras_reason reason = { "clinician", "004 \xc2\xa7" "3.4", NULL, "clinical" };
	struct ras_decision d = { 0 };
	int64_t rid = 0, did = 0, received;
	char *s;

	s = text("SELECT id FROM referrals WHERE ubrn = '100000000301'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rid = strtoll(s, NULL, 10);
	free(s);
	s = text("SELECT floor(extract(epoch FROM received_at))::bigint FROM referrals WHERE ubrn = '100000000301'");
	received = strtoll(s, NULL, 10);
	free(s);
	d.service = "midnotts";
	d.outcome = RAS_OUTCOME_ACCEPT;
	d.final = true;
	d.reasons = &reason;
	d.n_reasons = 1;
	d.facts = NULL;
	d.decided_by = "555111222333";
	d.decided_at = now + 3600;
	d.received_at = received;
	CU_ASSERT_EQUAL_FATAL(ras_rules_deadlines(a, rs, d.outcome, NULL, false, true, received,
	    ras_mappings_calendar(ras_triage_mappings(tri)), &d.deadlines, &d.n_deadlines, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(db, rid, &d, &did), 0);
	CU_ASSERT_TRUE(did > 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000301' AND d.decided_by = '555111222333' AND d.final"
	    " AND d.ruleset_version = 'clinician'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000000301' AND state = 'decided'"), 1);
	/* The rules' clocks were superseded by the clinician's, and the triage clock is met. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000301' AND dl.cancelled_at IS NULL AND dl.met_at IS NULL"), 3);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '100000000301' AND dl.kind = 'triage' AND dl.met_by IS NOT NULL"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events e JOIN referrals r ON r.id = e.referral_id"
	    " WHERE r.ubrn = '100000000301' AND e.kind = 'triage-decided' AND e.actor = '555111222333'"), 1);
	/* A decision without who made it is refused. */
	d.decided_by = NULL;
	CU_ASSERT_EQUAL(ras_triage_store_decision(db, rid, &d, &did), RAS_EINVALID);
	ras_arena_free(a);
}

/* ---- rasctl -------------------------------------------------------------- */

/* The engine leaves a decision's facts to be written when it is stored
 * (rules.h): storing one whose facts were not written out yet writes them
 * (as text), so no stored decision of the rules lacks its facts. */
static void
engine_decision_stored_with_its_facts(void)
{
	struct ras_arena *a = ras_arena_new();
	const struct ras_mappings *m = ras_triage_mappings(tri);
	size_t len;
	char *data = ras_test_read(ras_test_fixture("triage/midnotts-out-of-area.json"), &len);
	struct ras_intake in;
	struct ras_decision d;
	int64_t did = 0;
	char *s, sql[512];

	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	CU_ASSERT_EQUAL_FATAL(ras_intake_parse(a, NULL, data, len, &in), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(a, ras_mappings_ruleset(m, "midnotts"), &in.referrals[0],
	    now, ras_mappings_calendar(m), now, &d), 0);
	CU_ASSERT_PTR_NULL(d.facts);
	CU_ASSERT_PTR_NOT_NULL(d.trace);
	s = text("SELECT id FROM referrals WHERE ubrn = '100000000302'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(db, strtoll(s, NULL, 10), &d, &did), 0);
	free(s);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions d WHERE id = %lld AND decided_by = 'rules'"
	    " AND facts ->> 'patient.practice_in_area' = 'false' AND facts ? 'findings'"
	    " AND facts -> 'safety_net' ->> 'applied' = 'none' AND d.doc -> 'facts' = facts"
	    " AND ruleset_version <> ''", (long long)did);
	CU_ASSERT_EQUAL(count(sql), 1);
	/* The facts are written as text straight from the typed facts when
	 * stored; the same decision with its facts built as an object first
	 * (the path a decision with PDS findings takes) stores the same
	 * decision, facts and all. */
	{
		struct ras_decision obj = d;
		int64_t did2 = 0;

		CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(a, &obj), 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(obj.facts);
		s = text("SELECT id FROM referrals WHERE ubrn = '100000000302'");
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(db, strtoll(s, NULL, 10), &obj, &did2), 0);
		free(s);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions x, decisions y WHERE x.id = %lld"
		    " AND y.id = %lld AND x.facts = y.facts AND x.doc = y.doc AND x.reasons = y.reasons"
		    " AND x.deadlines = y.deadlines AND x.facts::text = y.facts::text AND x.facts <> '{}'",
		    (long long)did, (long long)did2);
		CU_ASSERT_EQUAL(count(sql), 1);
	}
	free(data);
	ras_arena_free(a);
}

static int
rasctl(const char *const *args, char **out, char **err)
{
	return ras_test_rasctl(NULL, NULL, args, out, err);
}

static void
rasctl_triage_contract(void)
{
	char f[4096], *out = NULL, *err = NULL;
	json_t *j = NULL, *r, *dl;
	const char *key;
	json_t *v;
	int rc, nkeys = 0;

	snprintf(f, sizeof(f), "%s", ras_test_fixture("triage/midnotts-out-of-area.json"));
	rc = rasctl((const char *[]){ "triage", "--service", "midnotts", "--at", "2026-04-02T09:30:00+01:00",
	    "--mappings", MAPPINGS, f, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(ras_test_count(out, "\n"), 1);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	json_object_foreach(j, key, v)
		nkeys++;
	CU_ASSERT_EQUAL(nkeys, 6);
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "service"), "midnotts");
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "outcome"), "return");
	CU_ASSERT_TRUE(json_is_null(json_object_get(j, "onward_target")));
	CU_ASSERT_TRUE(json_is_true(json_object_get(j, "final")));
	r = json_array_get(json_object_get(j, "reasons"), 0);
	CU_ASSERT_STRING_EQUAL(ras_json_str(r, "rule"), "midnotts.population");
	CU_ASSERT_STRING_EQUAL(ras_json_str(r, "clause"), "004 \xc2\xa7" "3.4");
	CU_ASSERT_PTR_NOT_NULL(ras_json_str(r, "advice"));
	CU_ASSERT_EQUAL(json_object_size(r), 3);
	dl = json_object_get(j, "deadlines");
	CU_ASSERT_EQUAL(json_array_size(dl), 2);
	CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(dl, 0), "kind"), "triage");
	CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(dl, 0), "due"), "2026-04-08");
	CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(dl, 1), "kind"), "return");
	CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(dl, 1), "due"), "2026-04-08");
	CU_ASSERT_EQUAL(json_object_size(json_array_get(dl, 0)), 2);
	/* no patient data on stdout */
	CU_ASSERT_PTR_NULL(strstr(out, "9990000034"));
	CU_ASSERT_PTR_NULL(strstr(out, "1980-07-21"));
	json_decref(j);
	free(out);
	free(err);

	/* An invalid NHS number is a return, not an exit 65. */
	snprintf(f, sizeof(f), "%s", ras_test_fixture("bad/nhs-invalid.json"));
	rc = rasctl((const char *[]){ "triage", "--service", "midnotts", "--at", "2026-04-02", f, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"midnotts.nhs-number\""));
	free(out);
	free(err);
}

static void
rasctl_triage_exit_codes(void)
{
	static const struct { const char *service, *at, *file; int rc; const char *msg; } cases[] = {
		{ "midnotts", NULL, "bad/malformed.json", 65, "malformed JSON" },
		{ "midnotts", NULL, "bad/no-servicerequest.json", 65, "cannot triage" },
		{ "midnotts", NULL, "ers/worklist-referrals-for-review.json", 65, "not a single referral" },
		{ "midnotts", NULL, "does-not-exist.json", 65, "cannot open" },
		{ "atlantis", NULL, "triage/midnotts-accept.json", 64, "unknown service" },
		{ "midnotts", "yesterday", "triage/midnotts-accept.json", 64, "--at" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char f[4096], *out = NULL, *err = NULL;
		const char *args[12];
		int n = 0, rc;

		snprintf(f, sizeof(f), "%s", ras_test_fixture(cases[i].file));
		args[n++] = "triage";
		args[n++] = "--service";
		args[n++] = cases[i].service;
		if (cases[i].at) {
			args[n++] = "--at";
			args[n++] = cases[i].at;
		}
		args[n++] = f;
		args[n] = NULL;
		rc = rasctl(args, &out, &err);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].msg));
		CU_ASSERT_EQUAL(ras_test_count(err, "\n"), 1);   /* one line on stderr */
		CU_ASSERT_STRING_EQUAL(out, "");
		free(out);
		free(err);
	}
	{
		char *out = NULL, *err = NULL;
		int rc = rasctl((const char *[]){ "triage", "--service", "midnotts", "--mappings", "/nonexistent",
		    ras_test_fixture("triage/midnotts-accept.json"), NULL }, &out, &err);

		CU_ASSERT_EQUAL(rc, 78);
		free(out);
		free(err);
	}
}

static void
rasctl_ingest_triages(void)
{
	char f1[4096], f2[4096], *out = NULL, *err = NULL;
	int rc;

	snprintf(f1, sizeof(f1), "%s", ras_test_fixture("triage/dorset-2019-old-form.json"));
	snprintf(f2, sizeof(f2), "%s", ras_test_fixture("triage/bassetlaw-surgical-opinion.json"));
	rc = rasctl((const char *[]){ "--db", conninfo, "ingest", "--service", "dorset-2019", f1, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(ras_test_count(out, "\n"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "dorset-2019-old-form.json: stored fhir-bundle"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "; triage: dorset-2019: return (final) dorset-2019.form.out-of-date [002 \xc2\xa7" "3.2]"));
	CU_ASSERT_PTR_NULL(strstr(out, "9990000085"));
	CU_ASSERT_PTR_NULL(strstr(out, "Testpatient"));
	free(out);
	free(err);
	rc = rasctl((const char *[]){ "--db", conninfo, "ingest", "--service", "bassetlaw-2022", f2, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "onward to secondary-care (recommendation) bassetlaw-2022.surgical-opinion"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn IN ('100000000307', '100000000306')"
	    " AND state IN ('decided', 'review')"), 2);

	/* An e-RS referral waits for its form; the form arrives as XHTML, by
	 * hand: read through the shipped XPath form map, and triaged again. */
	snprintf(f1, sizeof(f1), "%s", ras_test_fixture("ers/referral-BookedDBS.json"));
	rc = rasctl((const char *[]){ "--db", conninfo, "ingest", "--service", "midnotts", f1, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "midnotts.form.awaited"));
	free(out);
	free(err);
	snprintf(f2, sizeof(f2), "%s",
	    ras_test_fixture("ers/local/objectstore/8b3f4e5c-3d4e-4f60-8b12-2c3d4e5f6071.xhtml"));
	rc = rasctl((const char *[]){ "--db", conninfo, "ingest", "--ubrn", "000000070001", f2, NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "stored questionnaire-response"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "; triage: midnotts:"));
	CU_ASSERT_PTR_NULL(strstr(out, "form.awaited"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '000000070001' AND (d.facts ->> 'form.present')::boolean"
	    " AND d.facts ->> 'form.pain-duration-weeks' = '14'"), 1);
}

/* ---- main --------------------------------------------------------------- */

/* ---- referrals handed over by normalise (store.h) ---------------------------- */

/* The triage fixtures, with the service each is routed to (NULL: none, so
 * the referral goes to "unassigned": a referral that gets no decision). */
static const struct {
	const char *file, *ubrn, *service;
} handed_fixtures[] = {
	{ "triage/midnotts-accept.json", "100000000301", "midnotts" },
	{ "triage/midnotts-out-of-area.json", "100000000302", "midnotts" },
	{ "triage/midnotts-2ww.json", "100000000303", "midnotts" },
	{ "triage/midnotts-incomplete.json", "100000000304", "midnotts" },
	{ "triage/bassetlaw-short-duration.json", "100000000305", "bassetlaw-2022" },
	{ "triage/bassetlaw-surgical-opinion.json", "100000000306", "bassetlaw-2022" },
	{ "triage/dorset-2019-old-form.json", "100000000307", "dorset-2019" },
	{ "triage/dorset-2013-cauda-equina.json", "100000000308", "dorset-2013" },
	{ "triage/dorset-2013-consultant-letter.json", "100000000309", "dorset-2013" },
	{ "triage/midnotts-accept.json", "100000000301", NULL },
};
#define N_HANDED (sizeof(handed_fixtures) / sizeof(handed_fixtures[0]))

/* Every occurrence of `from` in s replaced by `to` (the same length). */
static void
replace_all(char *s, const char *from, const char *to)
{
	size_t n = strlen(from);

	CU_ASSERT_EQUAL_FATAL(n, strlen(to));
	for (char *p = strstr(s, from); p; p = strstr(p + n, from))
		memcpy(p, to, n);
}

/* The UBRN of fixture i in round `round` (a digit): the fixture's own with
 * its first two digits replaced, unique to this test. */
static void
handed_ubrn(size_t i, char round, char out[13])
{
	snprintf(out, 13, "%c%c%s", round, (char)('0' + (int)i), handed_fixtures[i].ubrn + 2);
}

/* Everything the triage step stored for the referral of `ubrn`, with ids
 * and the UBRN itself left out, as one text. */
static char *
stored_outcome(const char *ubrn)
{
	static const char sql[] =
	    "SELECT jsonb_build_object('state', r.state, 'service', r.service,"
	    " 'decisions', (SELECT jsonb_agg(jsonb_build_object('outcome', d.outcome, 'final', d.final,"
	    "   'target', d.onward_target, 'service', d.service, 'ruleset', d.ruleset_version,"
	    "   'by', d.decided_by, 'facts', d.facts, 'reasons', d.reasons,"
	    "   'doc', d.doc - 'referral_id' - 'decision_id' - 'id') ORDER BY d.id)"
	    "   FROM decisions d WHERE d.referral_id = r.id),"
	    " 'deadlines', (SELECT jsonb_agg(jsonb_build_object('kind', k.kind, 'clause', k.clause,"
	    "   'due_date', k.due_date, 'due_at', k.due_at, 'met', k.met_at IS NOT NULL,"
	    "   'cancelled', k.cancelled_at IS NOT NULL) ORDER BY k.kind, k.due_at)"
	    "   FROM deadlines k WHERE k.referral_id = r.id),"
	    " 'events', (SELECT jsonb_agg(jsonb_build_object('kind', e.kind, 'detail', e.detail"
	    "   - 'decision_id' - 'payload_id' - 'referral_id') ORDER BY e.id)"
	    "   FROM events e WHERE e.referral_id = r.id),"
	    " 'outbox', (SELECT jsonb_agg(jsonb_build_object('kind', o.kind, 'role', o.recipient_role,"
	    "   'state', o.state) ORDER BY o.kind, o.recipient_role)"
	    "   FROM outbox o WHERE o.referral_id = r.id))::text"
	    " FROM referrals r WHERE r.ubrn = $1";
	char *v = ras_test_sql_text(db, sql, ubrn);

	CU_ASSERT_PTR_NOT_NULL(v);
	return v;
}

/* Keep, normalise and triage the fixtures under the UBRNs of `round` as
 * ras_receive does (in the caller's held transaction), with the handover
 * or reading back; the reports in *reps. */
static void
receive_round(char round, bool handed, struct ras_store_handover *h, struct ras_triage_report **reps,
    size_t *nreps)
{
	struct ras_inbox_item items[N_HANDED];
	struct ras_inbox_put_result put[N_HANDED];
	char *bodies[N_HANDED];
	int64_t pids[N_HANDED];
	struct ras_normalise_report *rep = NULL;
	size_t nrep = 0;

	for (size_t i = 0; i < N_HANDED; i++) {
		size_t len;
		char ubrn[13];

		bodies[i] = ras_test_read(ras_test_fixture(handed_fixtures[i].file), &len);
		handed_ubrn(i, round, ubrn);
		replace_all(bodies[i], handed_fixtures[i].ubrn, ubrn);
		items[i] = (struct ras_inbox_item){ .data = bodies[i], .len = len, .source = "http",
			.source_ref = "/fhir/Bundle", .service_hint = handed_fixtures[i].service };
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, N_HANDED, put), 0);
	for (size_t i = 0; i < N_HANDED; i++)
		pids[i] = put[i].id;
	if (handed) {
		/* the payloads' bytes from memory too, and the rows the put
		 * inserted taken without a claim, as ras_receive gives them */
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(db, NULL, pids, items, put, N_HANDED, N_HANDED, h,
		    &rep, &nrep), 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, pids, N_HANDED, N_HANDED, &rep, &nrep), 0);
	}
	CU_ASSERT_EQUAL(nrep, N_HANDED);
	for (size_t i = 0; i < nrep; i++)
		CU_ASSERT_STRING_EQUAL(rep[i].state, "stored");
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending_handed(db, tri, now, 2 * N_HANDED, pids, N_HANDED,
	    handed ? h : NULL, reps, nreps), 0);
	free(rep);
	for (size_t i = 0; i < N_HANDED; i++)
		free(bodies[i]);
}

/* The triage step decides a referral handed over by normalise exactly as
 * one it reads back: the same fixtures, received in one transaction (so
 * at the same time) under other UBRNs, once each way: the same reports,
 * and the same decisions, clocks, events and letters stored. */
static void
handed_over_decides_as_read_back(void)
{
	struct ras_store_handover *h = NULL;
	struct ras_triage_report *ra = NULL, *rb = NULL;
	size_t na = 0, nb = 0, with_doc = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_handover_new(&h), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(db), 0);
	receive_round('7', false, NULL, &ra, &na);
	receive_round('8', true, h, &rb, &nb);
	/* every referral of the second round was handed over with its document */
	CU_ASSERT_EQUAL(ras_store_handover_count(h, &with_doc), N_HANDED);
	CU_ASSERT_EQUAL(with_doc, N_HANDED);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(db), 0);

	CU_ASSERT_EQUAL_FATAL(na, N_HANDED);
	CU_ASSERT_EQUAL_FATAL(nb, N_HANDED);
	for (size_t i = 0; i < N_HANDED && i < na && i < nb; i++) {
		char ua[13], ub[13], *va, *vb;
		char refa[sizeof(ra[i].referral)], msga[sizeof(ra[i].message)];

		handed_ubrn(i, '7', ua);
		handed_ubrn(i, '8', ub);
		/* the reports, in claim order (referral ids, as stored) */
		memcpy(refa, ra[i].referral, sizeof(refa));
		memcpy(msga, ra[i].message, sizeof(msga));
		replace_all(refa, ua, ub);
		replace_all(msga, ua, ub);
		CU_ASSERT_STRING_EQUAL(refa, rb[i].referral);
		CU_ASSERT_STRING_EQUAL(ra[i].state, rb[i].state);
		CU_ASSERT_EQUAL(ra[i].outcome, rb[i].outcome);
		CU_ASSERT_EQUAL(ra[i].final, rb[i].final);
		CU_ASSERT_STRING_EQUAL(ra[i].service, rb[i].service);
		CU_ASSERT_STRING_EQUAL(ra[i].onward_target, rb[i].onward_target);
		CU_ASSERT_STRING_EQUAL(msga, rb[i].message);
		CU_ASSERT_TRUE(ra[i].payload_id > 0);
		CU_ASSERT_TRUE(rb[i].payload_id > 0);
		CU_ASSERT_EQUAL(ra[i].decision_id != 0, rb[i].decision_id != 0);
		/* what was stored */
		va = stored_outcome(ua);
		vb = stored_outcome(ub);
		if (va && vb) {
			replace_all(va, ua, ub);
			if (strcmp(va, vb) != 0)
				fprintf(stderr, "%s\n read back: %s\n handed:    %s\n", handed_fixtures[i].file, va, vb);
			CU_ASSERT_STRING_EQUAL(va, vb);
		}
		free(va);
		free(vb);
	}
	/* the fixtures' outcomes are all there: decided, for review, unassigned */
	CU_ASSERT_EQUAL(count("SELECT count(DISTINCT state) FROM referrals WHERE ubrn LIKE '8%' AND ubrn ~ '^8[0-9]0{7}30[0-9]$'"), 3);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn ~ '^[78][0-9]0{7}30[0-9]$' AND state = 'new'"), 0);
	free(ra);
	free(rb);
	ras_store_handover_free(h);
}

/* A fixture under another UBRN (malloc'd), with `extra` appended to its
 * bytes (other bytes, the same referral). */
static char *
fixture_as(const char *rel, const char *old_ubrn, const char *ubrn, const char *extra, size_t *len)
{
	size_t n;
	char *data = ras_test_read(ras_test_fixture(rel), &n), *out;

	replace_all(data, old_ubrn, ubrn);
	out = malloc(n + strlen(extra) + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	memcpy(out, data, n);
	memcpy(out + n, extra, strlen(extra) + 1);
	*len = n + strlen(extra);
	free(data);
	return out;
}

/* Receive bodies[0..n) as ras_receive does (one held transaction: kept,
 * normalised handing over to h, triaged); *handed how many normalise
 * handed over. */
static void
receive_group(char **bodies, const size_t *lens, const char *const *ubrn_hints, size_t n,
    struct ras_store_handover *h, size_t *handed, size_t *with_doc)
{
	struct ras_inbox_item *items = calloc(n, sizeof(*items));
	struct ras_inbox_put_result *put = calloc(n, sizeof(*put));
	int64_t *pids = calloc(n, sizeof(*pids));
	struct ras_normalise_report *rep = NULL;
	struct ras_triage_report *reps = NULL;
	size_t nrep = 0, nreps = 0;

	CU_ASSERT_FATAL(items && put && pids);
	for (size_t i = 0; i < n; i++)
		items[i] = (struct ras_inbox_item){ .data = bodies[i], .len = lens[i], .source = "http",
			.source_ref = "/fhir/Bundle", .service_hint = ubrn_hints && ubrn_hints[i] ? NULL : "midnotts",
			.ubrn_hint = ubrn_hints ? ubrn_hints[i] : NULL };
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(db), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, n, put), 0);
	for (size_t i = 0; i < n; i++)
		pids[i] = put[i].id;
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(db, NULL, pids, items, put, n, n, h, &rep, &nrep), 0);
	*handed = ras_store_handover_count(h, with_doc);
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending_handed(db, tri, now, 2 * n, pids, n, h, &reps, &nreps), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(db), 0);
	free(rep);
	free(reps);
	free(items);
	free(put);
	free(pids);
}

/* The outcome and state of the referral of `ubrn` ("outcome state"). */
static char *
outcome_of(const char *ubrn)
{
	char *v = ras_test_sql_text(db, "SELECT coalesce(d.outcome, '-') || ' ' || r.state FROM referrals r"
	    " LEFT JOIN current_decisions d ON d.referral_id = r.id WHERE r.ubrn = $1", ubrn);

	CU_ASSERT_PTR_NOT_NULL(v);
	return v ? v : strdup("(none)");
}

static void
assert_outcome(const char *ubrn, const char *expect)
{
	char *v = outcome_of(ubrn);

	if (strcmp(v, expect) != 0)
		fprintf(stderr, "referral %s: %s, expected %s\n", ubrn, v, expect);
	CU_ASSERT_STRING_EQUAL(v, expect);
	free(v);
}

static int64_t
referral_id_of(const char *ubrn)
{
	return ras_test_sql_int(db, "SELECT id FROM referrals WHERE ubrn = $1", ubrn);
}

/* What normalise did not hand over is still decided, by the triage step
 * reading it back, on what is stored: a second copy of a referral and a
 * revision in the same group (the revision decided on its own content), a
 * referral stored earlier that the group revises, a referral whose form
 * comes in the same group, a batch written one payload at a time after a
 * failure, and referrals beyond the handover's bound. */
static void
not_handed_over_read_back(void)
{
	static const char acc[] = "triage/midnotts-accept.json", ooa[] = "triage/midnotts-out-of-area.json";
	struct ras_store_handover *h = NULL;
	size_t handed = 0, with_doc = 0;
	char *bodies[6];
	size_t lens[6];

	CU_ASSERT_EQUAL_FATAL(ras_store_handover_new(&h), 0);

	/* 1. Earlier: U3 stored out of area, not triaged yet. */
	{
		size_t len;
		char *b = fixture_as(ooa, "100000000302", "910000000003", "", &len);

		(void)store_payload(b, len, "earlier.json", "midnotts", NULL);
		free(b);
	}
	bodies[0] = fixture_as(acc, "100000000301", "910000000001", "", &lens[0]);
	bodies[1] = fixture_as(acc, "100000000301", "910000000001", "\n", &lens[1]);   /* the same again */
	bodies[2] = fixture_as(ooa, "100000000302", "910000000002", "", &lens[2]);
	bodies[3] = fixture_as(acc, "100000000301", "910000000002", "", &lens[3]);     /* revises U2 */
	bodies[4] = fixture_as(acc, "100000000301", "910000000003", "", &lens[4]);     /* revises U3 */
	bodies[5] = fixture_as(ooa, "100000000302", "910000000004", "", &lens[5]);
	receive_group(bodies, lens, NULL, 6, h, &handed, &with_doc);
	/* only U4 was left alone by the rest of the group */
	CU_ASSERT_EQUAL(handed, 1);
	CU_ASSERT_EQUAL(with_doc, 1);
	CU_ASSERT_PTR_NOT_NULL(ras_store_handover_find(h, referral_id_of("910000000004")));
	CU_ASSERT_PTR_NULL(ras_store_handover_find(h, referral_id_of("910000000001")));
	CU_ASSERT_PTR_NULL(ras_store_handover_find(h, referral_id_of("910000000002")));
	CU_ASSERT_PTR_NULL(ras_store_handover_find(h, referral_id_of("910000000003")));
	assert_outcome("910000000001", "accept review");
	assert_outcome("910000000002", "accept review");   /* the revision's content */
	assert_outcome("910000000003", "accept review");
	assert_outcome("910000000004", "return decided");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '910000000002'"), 1);
	for (size_t i = 0; i < 6; i++)
		free(bodies[i]);

	/* 2. A referral without its form, and the form in the same group: the
	 * form changes the stored referral, so nothing is handed over. */
	{
		size_t len, i;
		char *b = fixture_as(acc, "100000000301", "910000000005", "", &len);
		json_t *j = NULL, *e = NULL, *entries, *qr = NULL;
		struct ras_buf bb = RAS_BUF_INIT(0), fb = RAS_BUF_INIT(0);
		const char *hints[2] = { NULL, "910000000005" };

		CU_ASSERT_EQUAL_FATAL(ras_json_parse(b, len, 0, &j), 0);
		entries = json_object_get(j, "entry");
		json_array_foreach(entries, i, e)
			if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"),
			    "QuestionnaireResponse") == 0)
				break;
		CU_ASSERT_FATAL(i < json_array_size(entries));
		qr = json_incref(json_object_get(e, "resource"));
		CU_ASSERT_EQUAL_FATAL(json_array_remove(entries, i), 0);
		json_array_foreach(entries, i, e)
			if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"), "ServiceRequest") == 0)
				(void)json_object_del(json_object_get(e, "resource"), "supportingInfo");
		CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_COMPACT, &bb), 0);
		CU_ASSERT_EQUAL_FATAL(ras_json_dump(qr, RAS_JSON_COMPACT, &fb), 0);
		CU_ASSERT_EQUAL_FATAL(ras_buf_putc(&fb, '\n'), 0);   /* not the bytes another case kept */
		bodies[0] = bb.data;
		lens[0] = bb.len;
		bodies[1] = fb.data;
		lens[1] = fb.len;
		receive_group(bodies, lens, hints, 2, h, &handed, &with_doc);
		CU_ASSERT_EQUAL(handed, 0);
		/* decided with the form the group brought */
		assert_outcome("910000000005", "accept review");
		json_decref(qr);
		json_decref(j);
		ras_buf_free(&bb);
		ras_buf_free(&fb);
		free(b);
	}

	/* 3. The batch refused in the database, written one payload at a time:
	 * nothing handed over, what was stored decided all the same. */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db,
	    "CREATE FUNCTION test_refuse_ubrn() RETURNS trigger LANGUAGE plpgsql AS $$"
	    " BEGIN IF NEW.ubrn = '910000000007' THEN RAISE EXCEPTION 'refused by test'; END IF;"
	    " RETURN NEW; END $$;"
	    "CREATE TRIGGER test_refuse_ubrn BEFORE INSERT ON referrals"
	    " FOR EACH ROW EXECUTE FUNCTION test_refuse_ubrn()"), 0);
	bodies[0] = fixture_as(acc, "100000000301", "910000000006", "", &lens[0]);
	bodies[1] = fixture_as(ooa, "100000000302", "910000000007", "", &lens[1]);
	receive_group(bodies, lens, NULL, 2, h, &handed, &with_doc);
	CU_ASSERT_EQUAL(handed, 0);
	assert_outcome("910000000006", "accept review");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '910000000007'"), 0);
	CU_ASSERT_EQUAL(ras_db_exec(db, "DROP TRIGGER test_refuse_ubrn ON referrals;"
	    " DROP FUNCTION test_refuse_ubrn()"), 0);
	free(bodies[0]);
	free(bodies[1]);

	/* 4. More documents than the handover keeps: the rest read back. */
	{
		enum { MANY = 200 };
		char **many = calloc(MANY, sizeof(*many));
		size_t *ml = calloc(MANY, sizeof(*ml));

		CU_ASSERT_FATAL(many && ml);
		for (size_t i = 0; i < MANY; i++) {
			char ubrn[16];

			snprintf(ubrn, sizeof(ubrn), "92%010zu", i);
			many[i] = fixture_as(i % 2 ? ooa : acc, i % 2 ? "100000000302" : "100000000301", ubrn, "",
			    &ml[i]);
		}
		receive_group(many, ml, NULL, MANY, h, &handed, &with_doc);
		CU_ASSERT_EQUAL(handed, MANY);
		CU_ASSERT_TRUE(with_doc > 0 && with_doc < MANY);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals r JOIN current_decisions d"
		    " ON d.referral_id = r.id WHERE r.ubrn LIKE '92%' AND r.state IN ('review', 'decided')"), MANY);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals r JOIN current_decisions d"
		    " ON d.referral_id = r.id WHERE r.ubrn LIKE '92%' AND d.outcome = 'return'"), MANY / 2);
		for (size_t i = 0; i < MANY; i++)
			free(many[i]);
		free(many);
		free(ml);
	}
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn LIKE '9%' AND state = 'new'"), 0);
	ras_store_handover_free(h);
}

static int
setup(void)
{
	db = ras_test_db("triage", &conninfo);
	now = ras_time_now();
	if (ras_triage_new(NULL, MAPPINGS, &tri) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, ras_error_last());
		return 1;
	}
	return 0;
}

static int
teardown(void)
{
	ras_triage_free(tri);
	ras_db_close(db);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "the stage records decisions, facts, rule-set version, clocks and events", stage_records_decisions },
		{ "decisions are append-only", decisions_are_append_only },
		{ "a new referral version adds a decision and supersedes the old clocks", new_version_adds_a_decision },
		{ "an e-RS referral's form arriving later sends it back to triage", form_arrival_retriages },
		{ "batches claim with SKIP LOCKED and respect the limit", skip_locked_batches },
		{ "a decision refused by the database does not block the batch", failing_decision_does_not_block_the_batch },
		{ "no service: unassigned, then requeued once configured", unassigned_then_requeued },
		{ "changed rules re-triage recommendations, never final decisions", changed_rules_retriage_recommendations },
		{ "a clinician's decision is stored with its clocks", clinician_decision },
		{ "an engine decision stored before its facts were written gets them",
		  engine_decision_stored_with_its_facts },
		{ "rasctl triage prints exactly the contract object", rasctl_triage_contract },
		{ "rasctl triage exit codes and one-line errors", rasctl_triage_exit_codes },
		{ "rasctl ingest triages what it stored", rasctl_ingest_triages },
		{ "a batch of many chunks, one refused in the last", batch_of_many_chunks },
		{ "more referrals than a chunk takes, reported after commit",
		  batch_over_chunk_rows_reported_after_commit },
		{ "referrals handed over by normalise are decided as if read back", handed_over_decides_as_read_back },
		{ "what normalise did not hand over is read back and decided", not_handed_over_read_back },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "triage-store", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
