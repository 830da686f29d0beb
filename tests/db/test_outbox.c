/*
 * Outbox against the real database and the loopback fakes: the decision
 * trigger, rendering, delivery over MESH and FHIR REST, unknown outcomes
 * resolved by tracking, back-off and dead letters, MESH error reports,
 * episode summaries and their deadlines, SKIP LOCKED, and rasctl outbox.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fake_fhir.h"
#include "fake_gp.h"
#include "fake_http.h"
#include "fake_mesh.h"
#include "harness.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/arena.h"
#include "ras/decision.h"
#include "ras/json.h"
#include "ras/kpi.h"
#include "ras/mappings.h"
#include "ras/mesh_inbox.h"
#include "ras/outbox.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

static struct ras_db *db;
static char *conninfo, *config_path;
static struct fake_mesh *fm;
static struct fake_fhir *ff;
static struct ras_config *cfg;
static struct ras_outbox *ob;
static struct ras_mesh_inbox *mi;  /* rasd's MESH mailbox (intake) */
static struct ras_triage *tri;     /* the shipped rule sets: decisions get their clocks */
static int64_t T0;   /* 2026-04-07T10:00:00Z */
static char print_dir[4096];

static char last_ubrn[32];

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Store a fixture referral under a fresh UBRN (each test its own referral). */
static int64_t
referral(const char *fixture, const char *service)
{
	static const char *const ubrns[] = { "100000000101", "100000000102", "100000000201" };
	static int counter;
	size_t len;
	char *data = ras_test_read(ras_test_fixture(fixture), &len);
	struct ras_inbox_item it = { .len = len, .source = "file", .service_hint = service };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;
	int64_t id;

	snprintf(last_ubrn, sizeof(last_ubrn), "3000000%05d", ++counter);
	for (size_t u = 0; u < 3; u++)
		for (char *p = strstr(data, ubrns[u]); p; p = strstr(p + 12, ubrns[u]))
			memcpy(p, last_ubrn, 12);
	it.data = data;
	CU_ASSERT_FATAL(ras_store_inbox_put(db, &it, 1, &put) == 0);
	CU_ASSERT_FATAL(!put.duplicate);
	CU_ASSERT_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n) == 0 && n == 1);
	id = rep[0].first_referral_id;
	free(rep);
	free(data);
	return id;
}

static int64_t
q_int(const char *sql, const char *p1)
{
	return ras_test_sql_int(db, sql, p1);
}

static char *
q_str(const char *sql, const char *p1)
{
	return ras_test_sql_text(db, sql, p1);
}

static void
decide(int64_t referral_id, const char *fixture, const char *outcome, const char *target, bool final,
    const char *by, const char *at)
{
	ras_test_store_decision(db, tri, referral_id, NULL, fixture, outcome, target, final, by, at);
}

static void
stats_zero(struct ras_outbox_stats *s)
{
	memset(s, 0, sizeof(*s));
}

static const char *
rid_s(int64_t id)
{
	static char b[4][32];
	static int k;

	k = (k + 1) % 4;
	snprintf(b[k], sizeof(b[k]), "%lld", (long long)id);
	return b[k];
}

/* --- the decision trigger ------------------------------------------------ */

static void
trigger_enqueues_the_letters_a_decision_calls_for(void)
{
	int64_t r = referral("documents/referral-consultant-midnotts.json", "midnotts");
	const char *rs = rid_s(r);

	/* a recommendation by the rules, or a review, sends nothing */
	decide(r, "documents/decision-midnotts-accept.json", "accept", NULL, false, "rules",
	    "2026-04-07T09:00:00Z");
	decide(r, "documents/decision-midnotts-review.json", "review", NULL, false, "rules",
	    "2026-04-07T09:05:00Z");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1", rs), 0);
	/* a final decision: the referrer, and the GP because the referrer is not the GP */
	decide(r, "documents/decision-midnotts-accept.json", "accept", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'triage-outcome' AND doc_version = 1 AND state = 'pending'", rs), 2);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_role = "
	    "'referrer' AND recipient_ods = 'RK5'", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_role = "
	    "'gp' AND recipient_ods = 'C84009'", rs), 1);
	/* a clinician changes it: the unsent letters are superseded by version 2 */
	decide(r, "documents/decision-midnotts-onward.json", "onward", "secondary-care", true,
	    "555999888777", "2026-04-07T11:00:00Z");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND doc_version = 1 "
	    "AND state = 'cancelled'", rs), 2);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND doc_version = 2 "
	    "AND state = 'pending'", rs), 2);
	CU_ASSERT_TRUE(q_int("SELECT count(*) FROM outbox WHERE local_id ~ '^rasd-[0-9]+-[0-9a-f]{8}$' "
	    "AND referral_id = $1", rs) == 4);
}

static void
twoww_notice_same_day_to_the_gp_once(void)
{
	int64_t r = referral("r4/referral-collection-urn.json", "midnotts");
	const char *rs = rid_s(r);

	/* 23:30 UTC on 7 April is 00:30 on 8 April in London (BST) */
	decide(r, "documents/decision-midnotts-2ww.json", "onward", "two-week-wait", false, "rules",
	    "2026-04-07T23:30:00Z");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'gp-2ww-notice' AND recipient_role = 'gp'", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'triage-outcome'", rs), 0);
	/* Exactly one same-day clock tells the GP: the rule set's gp-notification
	 * (004 §3.6 2(d)), which the notice meets when delivered. */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines WHERE referral_id = $1 AND kind = "
	    "'gp-notification' AND due_date = '2026-04-08' AND due_at = '2026-04-08T22:59:59Z'"
	    " AND clause = '004 \xc2\xa7" "3.6(2d)' AND met_at IS NULL", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines WHERE referral_id = $1 AND kind <> 'gp-notification'"
	    " AND due_date = '2026-04-08'", rs), 0);
	decide(r, "documents/decision-midnotts-2ww.json", "onward", "two-week-wait", true, "rules",
	    "2026-04-07T23:30:00Z");
	/* Confirmed: the clock keeps running (one clock, not two). */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines WHERE referral_id = $1 AND kind = "
	    "'gp-notification' AND cancelled_at IS NULL", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'gp-2ww-notice'", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'triage-outcome'", rs), 1);
}

/* --- render and deliver ------------------------------------------------- */

static void
render_and_deliver_over_fhir_and_mesh(void)
{
	struct ras_outbox_stats s;
	size_t mesh_before = fake_mesh_count(fm), nreq;
	const struct fake_mesh_msg *m;
	const struct fake_req *fr = NULL;
	char *local_id, *doc_id, *payload;

	stats_zero(&s);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.rendered, 4);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE state = 'pending'", NULL), 0);
	/* both copies of one letter are the same document */
	CU_ASSERT_EQUAL(q_int("SELECT count(DISTINCT document_id) FROM outbox WHERE kind = "
	    "'triage-outcome' AND doc_version = 2", NULL), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE state = 'ready' AND transport = 'fhir' "
	    "AND fhir_mode = 'document' AND recipient_ods = 'RK5'", NULL), 1);
	payload = q_str("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE recipient_ods = 'C84009' "
	    "AND kind = 'gp-2ww-notice'", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
	CU_ASSERT_PTR_NOT_NULL(strstr(payload, "\"type\":\"message\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(payload, "urn:nhs-uk:addressing:mesh:X26ABC2"));
	free(payload);

	stats_zero(&s);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_deliver_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.dead, 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE state NOT IN ('delivered', 'cancelled')",
	    NULL), 0);
	/* FHIR: conditional create on the document identifier */
	doc_id = q_str("SELECT document_id FROM outbox WHERE recipient_ods = 'RK5' AND doc_version = 2", NULL);
	nreq = fake_http_count(fake_fhir_http(ff));
	for (size_t i = 0; i < nreq; i++) {
		const struct fake_req *x = fake_http_req(fake_fhir_http(ff), i);

		if (strcmp(x->path, "/fhir/Bundle") == 0 && strstr(x->body, doc_id))
			fr = x;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(fr);
	CU_ASSERT_PTR_NOT_NULL(strstr(fake_req_header(fr, "If-None-Exist"), doc_id));
	CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Type"), "application/fhir+json");
	CU_ASSERT_EQUAL(fake_fhir_created(ff), 1);
	/* MESH: one message per GP copy, mex-LocalID from the outbox row */
	CU_ASSERT_EQUAL(fake_mesh_count(fm), mesh_before + 3);
	local_id = q_str("SELECT local_id FROM outbox WHERE kind = 'gp-2ww-notice'", NULL);
	for (size_t i = mesh_before; i < fake_mesh_count(fm); i++) {
		m = fake_mesh_msg(fm, i);
		CU_ASSERT_STRING_EQUAL(m->to, "X26ABC2");
		CU_ASSERT_STRING_EQUAL(m->workflow, "RASD_LETTERS");
		CU_ASSERT_STRING_EQUAL(m->from, "X26ABC1");
		CU_ASSERT_STRING_EQUAL(m->content_type, "application/fhir+json");
		if (strcmp(m->local_id, local_id) == 0)
			CU_ASSERT_PTR_NOT_NULL(strstr(m->body, "gp-2ww-notice"));
	}
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE transport = 'mesh' AND state = "
	    "'delivered' AND mesh_message_id IS NOT NULL", NULL), 3);
	CU_ASSERT_EQUAL(fake_mesh_auth_failures(fm), 0);
	/* the GP-notification clock is met by the delivered notice */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines d JOIN outbox o ON o.referral_id = d.referral_id"
	    " AND o.kind = 'gp-2ww-notice' WHERE d.kind = 'gp-notification' AND d.met_at IS NOT NULL"
	    " AND d.met_by = 'outbox ' || o.id", NULL), 1);
	CU_ASSERT_TRUE(q_int("SELECT count(*) FROM deliveries WHERE outcome = 'delivered'", NULL) >= 4);
	CU_ASSERT_TRUE(q_int("SELECT count(*) FROM events WHERE kind = 'document-delivered'", NULL) >= 4);
	/* a resend of the same document creates nothing new at the endpoint */
	CU_ASSERT_EQUAL(ras_db_exec(db, "UPDATE outbox SET state = 'ready' WHERE recipient_ods = 'RK5' "
	    "AND doc_version = 2"), 0);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 1, &s), 0);
	CU_ASSERT_EQUAL(fake_fhir_created(ff), 1);
	CU_ASSERT_EQUAL(fake_fhir_duplicates(ff), 1);
	free(local_id);
	free(doc_id);
}

static int64_t
new_letter_to(const char *fixture, const char *service, const char *decision)
{
	int64_t r = referral(fixture, service);

	decide(r, decision, "accept", NULL, true, "rules", "2026-04-07T09:30:00Z");
	return r;
}

static void
unknown_mesh_outcome_is_tracked_never_resent(void)
{
	struct ras_outbox_stats s;
	int sends;
	int64_t r = new_letter_to("r4/referral-message.json", "dorset-2019",
	    "documents/decision-dorset-2019-accept.json");
	const char *rs = rid_s(r);
	char *local_id, *mesh_id;
	size_t before;

	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	fake_mesh_drop_sends(fm, 1);
	sends = fake_mesh_sends(fm);
	before = fake_mesh_count(fm);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.unknown, 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND state = 'unknown'",
	    rs), 1);
	/* MESH did store it */
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	/* too early: nothing happens */
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 1, NULL), 0);
	CU_ASSERT_EQUAL(fake_mesh_sends(fm), sends + 1);
	/* later: tracking by mex-LocalID finds it, and it is not sent again */
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 3600, &s), 0);
	CU_ASSERT_EQUAL(s.delivered, 1);
	CU_ASSERT_EQUAL(fake_mesh_sends(fm), sends + 1);
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	/* tracked by the mex-LocalID it was sent with (an ITK3 letter's: the
	 * sender's ODS code, shared by every letter, its own found by its
	 * mex-FileName) */
	local_id = q_str("SELECT coalesce(mex_local_id, local_id) FROM outbox WHERE referral_id = $1", rs);
	mesh_id = q_str("SELECT mesh_message_id FROM outbox WHERE referral_id = $1", rs);
	CU_ASSERT_STRING_EQUAL(mesh_id, fake_mesh_msg(fm, before)->id);
	{
		const struct fake_req *last = fake_http_req(fake_mesh_http(fm),
		    fake_http_count(fake_mesh_http(fm)) - 1);
		char want[256];

		snprintf(want, sizeof(want), "/messageexchange/X26ABC1/outbox/tracking/%s", local_id);
		CU_ASSERT_STRING_EQUAL(last->path, want);
	}
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
	    "WHERE o.referral_id = $1 AND d.action = 'track' AND d.outcome = 'delivered'", rs), 1);
	free(local_id);
	free(mesh_id);

	/* a send that never reached MESH: tracking says so, and it goes now */
	CU_ASSERT_EQUAL(ras_db_exec(db, "UPDATE outbox SET state = 'unknown', mesh_message_id = NULL, mesh_chunks_done = 0, "
	    "local_id = local_id || 'x', next_attempt_at = '2026-04-07T09:00:00Z' WHERE id = (SELECT max(id) "
	    "FROM outbox WHERE transport = 'mesh')"), 0);
	sends = fake_mesh_sends(fm);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 7200, &s), 0);
	CU_ASSERT_EQUAL(s.delivered, 1);
	CU_ASSERT_EQUAL(fake_mesh_sends(fm), sends + 1);
}

/* An outbox like the suite's but sending in 1024-byte chunks. */
static struct ras_outbox *
small_chunk_outbox(struct ras_config **c2)
{
	struct ras_buf b = RAS_BUF_INIT(1 << 20), problems = RAS_BUF_INIT(8192);
	struct ras_buf out = RAS_BUF_INIT(1 << 20);
	struct ras_outbox *o = NULL;
	char path[4096];
	const char *at;

	CU_ASSERT_FATAL(ras_buf_read_file(&b, config_path) == 0);
	at = strstr(b.data, "[mesh]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	ras_buf_append(&out, b.data, (size_t)(at - b.data) + 7);
	ras_buf_append(&out, "chunk_size = 1024\n", 18);
	ras_buf_append(&out, at + 7, strlen(at + 7));
	ras_buf_append(&out, "", 0);
	snprintf(path, sizeof(path), "%s/rasd-chunks.conf", ras_test_tmpdir());
	write_file(path, out.data);
	CU_ASSERT_FATAL(ras_config_load(path, c2, &problems) == 0);
	CU_ASSERT_FATAL(ras_outbox_new(*c2, RAS_SOURCE_ROOT "/mappings", &o) == 0);
	ras_buf_free(&b);
	ras_buf_free(&out);
	ras_buf_free(&problems);
	return o;
}

/* A letter larger than a chunk goes in several (3 and more used to go dead:
 * the sandbox answers chunks after the first with `null`); one whose first
 * answer was lost and that tracking finds `uploading` is never called
 * delivered but sent again whole. */
static void
chunked_letters_and_uploading_sends(void)
{
	struct ras_config *c2 = NULL;
	struct ras_outbox *o2 = small_chunk_outbox(&c2);
	struct ras_outbox_stats s;
	int64_t r = new_letter_to("r4/referral-message.json", "dorset-2019",
	    "documents/decision-dorset-2019-accept.json");
	const char *rs = rid_s(r);
	const struct fake_mesh_msg *m, *abandoned;
	size_t before = fake_mesh_count(fm);
	char *payload, *mesh_id;
	int64_t chunks;

	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(o2, db, T0, NULL), 0);
	payload = q_str("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE referral_id = $1 "
	    "AND transport = 'mesh'", rs);
	CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
	CU_ASSERT_TRUE_FATAL(strlen(payload) > 2 * 1024);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(o2, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.dead, 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND transport = 'mesh' "
	    "AND state = 'delivered'", rs), 1);
	chunks = q_int("SELECT mesh_chunks_done FROM outbox WHERE referral_id = $1 AND transport = 'mesh'", rs);
	CU_ASSERT_EQUAL(chunks, (int64_t)((strlen(payload) + 1023) / 1024));
	CU_ASSERT_TRUE(chunks >= 3);
	m = fake_mesh_msg(fm, before);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL((int64_t)m->nchunks, chunks);
	CU_ASSERT_EQUAL(m->chunks_got, m->nchunks);
	CU_ASSERT_TRUE(m->gzip);
	CU_ASSERT_EQUAL(m->len, strlen(payload));
	CU_ASSERT_EQUAL(memcmp(m->body, payload, m->len), 0);
	{
		char *lid = q_str("SELECT local_id || '.' FROM outbox WHERE referral_id = $1 AND transport = 'mesh'",
		    rs);

		CU_ASSERT_EQUAL(strncmp(m->filename, lid, strlen(lid)), 0);
		free(lid);
	}
	free(payload);

	/* the first chunk's answer is lost: rasd cannot know the id */
	r = new_letter_to("r4/referral-message.json", "dorset-2019",
	    "documents/decision-dorset-2019-accept.json");
	rs = rid_s(r);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(o2, db, T0, NULL), 0);
	before = fake_mesh_count(fm);
	fake_mesh_drop_sends(fm, 1);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(o2, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.unknown, 1);
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	abandoned = fake_mesh_msg(fm, before);
	CU_ASSERT_TRUE(abandoned->chunks_got < abandoned->nchunks);
	/* tracking by mex-LocalID: `uploading`, so sent again whole */
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(o2, db, T0 + 3600, &s), 0);
	CU_ASSERT_EQUAL(s.delivered, 1);
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 2);
	m = fake_mesh_msg(fm, before + 1);
	CU_ASSERT_EQUAL(m->chunks_got, m->nchunks);
	mesh_id = q_str("SELECT mesh_message_id FROM outbox WHERE referral_id = $1 AND transport = 'mesh'", rs);
	CU_ASSERT_STRING_EQUAL(mesh_id, m->id);
	CU_ASSERT_STRING_NOT_EQUAL(mesh_id, abandoned->id);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
	    "WHERE o.referral_id = $1 AND d.action = 'track' AND d.outcome = 'delivered'", rs), 0);
	free(mesh_id);
	ras_outbox_free(o2);
	ras_config_free(c2);
}

static void
retries_back_off_then_dead_letter_and_requeue(void)
{
	struct ras_outbox_stats s;
	int64_t r = new_letter_to("documents/referral-consultant-midnotts.json", "bassetlaw-2022",
	    "documents/decision-bassetlaw-2022-accept.json");
	const char *rs = rid_s(r);
	int64_t wait;
	char *out = NULL, *err = NULL;
	char *argv[8];
	int rc;

	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	/* only the referrer's copy goes to the FHIR endpoint (RK5) */
	fake_fhir_fail(ff, 1, 503);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.retried, 1);
	wait = q_int("SELECT extract(epoch FROM next_attempt_at - '2026-04-07T10:00:00Z')::bigint "
	    "FROM outbox WHERE referral_id = $1 AND recipient_ods = 'RK5'", rs);
	/* [outbox] backoff_base = 60: first retry jittered into [30, 60] seconds */
	CU_ASSERT_TRUE(wait >= 30 && wait <= 60);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 61, &s), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_ods = "
	    "'RK5' AND state = 'delivered' AND attempts = 2", rs), 1);

	/* max_attempts = 3: three failures and it is dead */
	r = new_letter_to("documents/referral-consultant-midnotts.json", "dorset-2013",
	    "documents/decision-dorset-2013-accept.json");
	rs = rid_s(r);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	fake_fhir_fail(ff, 100, 500);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 100000 * (i + 1), NULL), 0);
	fake_fhir_fail(ff, 0, 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_ods = 'RK5' "
	    "AND state = 'dead' AND last_error LIKE 'gave up after 3 attempts: FHIR endpoint answered 500%'",
	    rs), 1);
	/* rasctl outbox dead shows it; retry requeues it; then it goes */
	argv[0] = (char *)ras_test_program("daemon/rasctl");
	argv[1] = "--db";
	argv[2] = conninfo;
	argv[3] = "outbox";
	argv[4] = "dead";
	argv[5] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gave up after 3 attempts"));
	free(out);
	free(err);
	argv[4] = "retry";
	argv[5] = q_str("SELECT id::text FROM outbox WHERE referral_id = $1 AND recipient_ods = 'RK5'", rs);
	argv[6] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "requeued"));
	free(out);
	free(err);
	/* retrying a delivered row is refused */
	free(argv[5]);
	argv[5] = q_str("SELECT min(id)::text FROM outbox WHERE state = 'delivered'", NULL);
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not dead"));
	free(out);
	free(err);
	free(argv[5]);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0 + 400000, NULL), 0);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 400000, NULL), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_ods = 'RK5' "
	    "AND state = 'delivered'", rs), 1);
	/* a refusal (400) is not retried */
	r = new_letter_to("documents/referral-consultant-midnotts.json", "dorset-2019",
	    "documents/decision-dorset-2019-accept.json");
	rs = rid_s(r);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	fake_fhir_fail(ff, 1, 400);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0 + 500000, NULL), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND recipient_ods = 'RK5' "
	    "AND state = 'dead' AND attempts = 1", rs), 1);
}

/* An endpoint that refuses connections (docs/design/delivery.md): after a
 * round in which its letters were refused a connection, its other letters
 * are not claimed (not attempted, not counted towards max_attempts, no
 * deliveries row) until its own back-off has passed; then one letter, the
 * earliest due, probes it; when a probe is answered the rest follow at once.
 * An endpoint that answers, even with an error (the 503 and 500 of the case
 * before), is never held. */
static void
refusing_endpoint_is_held_then_probed(void)
{
	struct ras_outbox_stats s;
	struct ras_outbox_held h;
	struct fake_fhir *later = fake_fhir_start();
	unsigned port = fake_http_port(fake_fhir_http(later));
	char base[128], ids[128], due[256];
	int64_t r[3], t = T0 + 5000000, t2, t3;

	CU_ASSERT_FALSE(ras_outbox_deliver_held(ob, 0, &h));
	snprintf(base, sizeof(base), "%s", fake_fhir_base(later));
	fake_fhir_stop(later);   /* nobody listens there now */
	for (int i = 0; i < 3; i++)
		r[i] = new_letter_to("documents/referral-consultant-midnotts.json", "bassetlaw-2022",
		    "documents/decision-bassetlaw-2022-accept.json");
	snprintf(ids, sizeof(ids), "{%lld,%lld,%lld}", (long long)r[0], (long long)r[1], (long long)r[2]);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, t, NULL), 0);
	/* the referrer's copies (RK5, FHIR) go to the endpoint that is not there */
	CU_ASSERT_EQUAL(ras_db_query(db, NULL, "UPDATE outbox SET address = $2 WHERE referral_id = "
	    "ANY ($1::bigint[]) AND transport = 'fhir' AND state = 'ready'", 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(ids), RAS_DB_TEXT(base) }), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = ANY ($1::bigint[]) "
	    "AND transport = 'fhir' AND state = 'ready'", ids), 3);
#define MINE(cond) q_int("SELECT count(*) FROM outbox WHERE referral_id = ANY ($1::bigint[]) " \
	    "AND transport = 'fhir' AND " cond, ids)

	/* the first round tries all three (nothing was known yet): refused */
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, t, &s), 0);
	CU_ASSERT_EQUAL(MINE("state = 'ready' AND attempts = 1 AND last_error LIKE 'FHIR endpoint:%'"), 3);
	CU_ASSERT_EQUAL(s.routes_held, 1);
	CU_ASSERT_FATAL(ras_outbox_deliver_held(ob, 0, &h));
	CU_ASSERT_STRING_EQUAL(h.address, base);
	CU_ASSERT_EQUAL(h.since, t);
	CU_ASSERT_EQUAL(h.refusals, 1);
	/* backoff_base = 60: [30, 60] s, like a letter's first retry */
	CU_ASSERT_TRUE(h.next_try >= t + 30 && h.next_try <= t + 60);
	CU_ASSERT_FALSE(ras_outbox_deliver_held(ob, 1, &h));

	/* past every back-off: one letter probes it, refused again */
	t2 = t + 61;
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, t2, &s), 0);
	CU_ASSERT_EQUAL(MINE("attempts = 2"), 1);
	CU_ASSERT_EQUAL(MINE("attempts = 1 AND state = 'ready'"), 2);
	CU_ASSERT_EQUAL(s.routes_held, 0);   /* held already */
	CU_ASSERT_FATAL(ras_outbox_deliver_held(ob, 0, &h));
	CU_ASSERT_EQUAL(h.refusals, 2);
	CU_ASSERT_TRUE(h.next_try >= t2 + 60 && h.next_try <= t2 + 120);

	/* the two are due on their own back-off, but held: not claimed at all */
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, t2 + 59, &s), 0);
	CU_ASSERT_EQUAL(MINE("attempts = 1 AND state = 'ready'"), 2);
	snprintf(due, sizeof(due), "SELECT count(*) FROM outbox WHERE referral_id = ANY ($1::bigint[]) "
	    "AND transport = 'fhir' AND attempts = 1 AND next_attempt_at <= to_timestamp(%lld)",
	    (long long)(t2 + 59));
	CU_ASSERT_EQUAL(q_int(due, ids), 2);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id WHERE "
	    "o.referral_id = ANY ($1::bigint[]) AND o.transport = 'fhir'", ids), 4);

	/* the endpoint is back: the next probe goes through, and the rest
	 * follow at once (the stage is told to run again) */
	later = fake_fhir_start_port(port);
	CU_ASSERT_STRING_EQUAL_FATAL(fake_fhir_base(later), base);
	t3 = t2 + 121;
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, t3, &s), 0);
	CU_ASSERT_EQUAL(MINE("state = 'delivered'"), 1);
	CU_ASSERT_EQUAL(s.routes_back, 1);
	CU_ASSERT_TRUE(s.cut);
	CU_ASSERT_EQUAL(ras_outbox_deliver_work(&s, 100), 100);
	CU_ASSERT_FALSE(ras_outbox_deliver_held(ob, 0, &h));
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, t3, NULL), 0);
	CU_ASSERT_EQUAL(MINE("state = 'delivered'"), 3);
	/* never dead untried: max_attempts is 3, and no letter needed more than 3 */
	CU_ASSERT_EQUAL(MINE("(attempts > 3 OR state = 'dead')"), 0);
	CU_ASSERT_EQUAL(fake_fhir_created(later), 3);
	fake_fhir_stop(later);
#undef MINE
}

static void
mesh_reports_and_inbox(void)
{
	struct ras_mesh_inbox_stats s;
	char *mesh_id = q_str("SELECT mesh_message_id FROM outbox WHERE kind = 'gp-2ww-notice'", NULL);
	char *local_id = q_str("SELECT local_id FROM outbox WHERE kind = 'gp-2ww-notice'", NULL);
	size_t len;
	char *bundle = ras_test_read(ras_test_fixture("r4/referral-transaction-relative.json"), &len);
	char *bundle2 = ras_test_read(ras_test_fixture("r4/referral-collection-urn.json"), &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(mesh_id);
	/* the GP's mailbox never collected it: MESH reports error 14 to us */
	fake_mesh_report(fm, "X26ABC1", mesh_id, local_id, "RASD_LETTERS", "14",
	    "Undelivered message");
	fake_mesh_deliver(fm, "X26ABC3", "X26ABC1", "RASD_REFERRAL", "application/fhir+json", bundle);
	fake_mesh_deliver(fm, "X26ABC3", "X26ABC1", "RASD_REFERRAL", "application/fhir+json", bundle2);
	memset(&s, 0, sizeof(s));
	/* a day later (the fake's clock too: tokens must be within 2 hours) */
	fake_mesh_set_time(fm, T0 + 86400);
	if (ras_mesh_inbox_poll(mi, db, T0 + 86400, &s) < 0)
		CU_FAIL(ras_error_last());
	CU_ASSERT_EQUAL(s.reports, 1);
	/* the document the report killed is counted (and logged) as dead */
	CU_ASSERT_EQUAL(s.dead, 1);
	CU_ASSERT_EQUAL(s.received, 2);
	CU_ASSERT_EQUAL(s.acknowledged, 3);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE kind = 'gp-2ww-notice' AND state = 'dead' "
	    "AND last_error = 'MESH report 14 TRANSFER: Undelivered message'", NULL), 1);
	/* the notice was not delivered after all: the deadline is open again */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines d JOIN outbox o ON o.referral_id = d.referral_id"
	    " AND o.kind = 'gp-2ww-notice' WHERE d.kind = 'gp-notification' AND d.met_at IS NULL"
	    " AND d.cancelled_at IS NULL", NULL), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM inbox WHERE source = 'mesh'", NULL), 2);
	/* the poll's messages were kept by one transaction (one commit) */
	CU_ASSERT_EQUAL(q_int("SELECT count(DISTINCT xmin::text) FROM inbox WHERE source = 'mesh'", NULL), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM mesh_inbox WHERE acknowledged_at IS NOT NULL", NULL), 3);
	for (size_t i = 0; i < fake_mesh_count(fm); i++)
		if (strcmp(fake_mesh_msg(fm, i)->to, "X26ABC1") == 0)
			CU_ASSERT_TRUE(fake_mesh_msg(fm, i)->acked);
	/* an empty inbox next time */
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(ras_mesh_inbox_poll(mi, db, T0 + 86500, &s), 0);
	CU_ASSERT_EQUAL(s.reports + s.received, 0);
	fake_mesh_set_time(fm, T0);
	free(bundle);
	free(bundle2);
	free(mesh_id);
	free(local_id);
}

static void
episode_discharge_and_patient_copy(void)
{
	int64_t r = referral("r4/referral-collection-urn.json", "midnotts"), ep = 0;
	const char *rs = rid_s(r);
	size_t len;
	char *full = ras_test_read(ras_test_fixture("documents/episode-discharge-full.json"), &len);
	char *minimal, path[4096], *lid, *html;
	struct stat stt;

	decide(r, "documents/decision-midnotts-accept.json", "accept", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	minimal = ras_test_read(ras_test_fixture("documents/episode-discharge-minimal.json"), NULL);
	CU_ASSERT_EQUAL(ras_outbox_episode_put(ob, db, last_ubrn, "discharge", minimal,
	    strlen(minimal), "test", T0, &ep), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "missing required items: outcomes"));
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM episodes", NULL), 0);
	CU_ASSERT_EQUAL(ras_outbox_episode_put(ob, db, last_ubrn, "contact", full, len, "test", T0, &ep),
	    0);
	CU_ASSERT_EQUAL(ras_outbox_episode_put(ob, db, last_ubrn, "discharge", full, len, "test",
	    T0, &ep), 0);
	CU_ASSERT_TRUE(ep > 0);
	/* discharged Friday 17 July 2026: due within 5 working days, Friday 24 July */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines WHERE referral_id = $1 AND kind = "
	    "'discharge-summary' AND due_date = '2026-07-24' AND clause = '004 §3.12'", rs), 1);
	/* the referrer is the GP: one letter, plus the patient's copy */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'discharge-summary' AND recipient_role = 'referrer'", rs), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'patient-copy' AND recipient_role = 'patient'", rs), 1);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0, NULL), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind IN "
	    "('discharge-summary', 'patient-copy', 'notification-letter') AND state = 'delivered'", rs), 3);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deadlines WHERE referral_id = $1 AND kind = "
	    "'discharge-summary' AND met_at IS NOT NULL", rs), 1);
	/* the admission date defaulted to the acceptance? the episode gave one */
	lid = q_str("SELECT local_id FROM outbox WHERE referral_id = $1 AND kind = 'patient-copy'", rs);
	ras_test_fmt(path, sizeof(path), "%s/%s-patient-copy.html", print_dir, lid);
	CU_ASSERT_EQUAL(stat(path, &stt), 0);
	html = ras_test_read(path, NULL);
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "This is your own copy"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "<!DOCTYPE html>"));
	free(html);
	/* and the letter as PDF beside it, framed as the patient's own copy */
	ras_test_fmt(path, sizeof(path), "%s/%s-patient-copy.pdf", print_dir, lid);
	CU_ASSERT_EQUAL(stat(path, &stt), 0);
	{
		char *argv[] = { "/usr/bin/pdftotext", path, "-", NULL }, *out = NULL, *err = NULL;

		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
		CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "This is your own copy"));
		CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "Page 1 of"));
		free(out);
		free(err);
	}
	free(lid);
	free(full);
	free(minimal);
}

static void
gp_auto_routing_keeps_patient_data_out_of_listings(void)
{
	int64_t r = referral("r4/referral-message.json", "dorset-2013");
	const char *rs = rid_s(r);
	char *argv[8], *out = NULL, *err = NULL;
	const struct fake_mesh_msg *m;

	/* J81002 has no route: GP auto-routing (the referrer is that GP) */
	decide(r, "documents/decision-dorset-2013-return.json", "return", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND address = "
	    "'GPPROVIDER_9990000034_19620130_Person' AND workflow = 'GPCONNECT_SEND_DOCUMENT' "
	    "AND message_format = 'gp-connect-send-document'", rs), 1);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(ob, db, T0, NULL), 0);
	m = fake_mesh_msg(fm, fake_mesh_count(fm) - 1);
	CU_ASSERT_STRING_EQUAL(m->to, "GPPROVIDER_9990000034_19620130_Person");
	/* GPPROVIDER routing: the message has no destination (GPCM-SD-049) */
	CU_ASSERT_PTR_NULL(strstr(m->body, "\"destination\""));
	CU_ASSERT_PTR_NULL(strstr(m->body, "<destination>"));
	/* and its Patient says what mex-To says (GPCM-SD-038) */
	CU_ASSERT_PTR_NOT_NULL(strstr(m->body, "<value value=\"9990000034\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m->body, "<birthDate value=\"1962-01-30\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m->body, "<family value=\"Person\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m->subject, ", NHS Number: 9990000034, seen at "));
	argv[0] = (char *)ras_test_program("daemon/rasctl");
	argv[1] = "--db";
	argv[2] = conninfo;
	argv[3] = "outbox";
	argv[4] = "list";
	argv[5] = NULL;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "GPPROVIDER_(patient)"));
	CU_ASSERT_PTR_NULL(strstr(out, "9990000034"));
	CU_ASSERT_PTR_NULL(strstr(out, "Person"));
	free(out);
	free(err);
	/* MESH cannot route it: an EPL-153 report kills it with its meaning */
	fake_mesh_report(fm, "X26ABC1", m->id, m->local_id, m->workflow, "EPL-153", "NHS Number not found");
	{
		struct ras_mesh_inbox_stats ms = { 0 };
		char *why;

		fake_mesh_set_time(fm, T0 + 60);
		CU_ASSERT_EQUAL(ras_mesh_inbox_poll(mi, db, T0 + 60, &ms), 0);
		fake_mesh_set_time(fm, T0);
		CU_ASSERT_EQUAL(ms.dead, 1);
		why = q_str("SELECT last_error FROM outbox WHERE referral_id = $1 AND state = 'dead'", rs);
		CU_ASSERT_PTR_NOT_NULL(why);
		CU_ASSERT_STRING_EQUAL(why ? why : "", "MESH report EPL-153 TRANSFER: GPPROVIDER routing: NHS "
		    "number not found - NHS Number not found");
		free(why);
	}
}

/* --- ITK3 acknowledgements ------------------------------------------------ */

/* A letter to the GP by GPPROVIDER auto-routing (GP Connect Send Document):
 * its outbox id, and the index of its message in the fake MESH. */
static int64_t
itk3_letter(size_t *msg)
{
	int64_t r = referral("r4/referral-message.json", "dorset-2013"), id = 0;
	char *lid;

	decide(r, "documents/decision-dorset-2013-return.json", "return", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(ob, db, T0, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_deliver_pending(ob, db, T0, NULL), 0);
	id = q_int("SELECT id FROM outbox WHERE referral_id = $1 AND message_format = "
	    "'gp-connect-send-document' AND state = 'delivered' AND ack_state = 'awaiting'", rid_s(r));
	CU_ASSERT_FATAL(id > 0);
	lid = q_str("SELECT local_id || '.xml' FROM outbox WHERE id = $1", rid_s(id));
	*msg = (size_t)-1;
	for (size_t i = 0; i < fake_mesh_count(fm); i++)
		if (strcmp(fake_mesh_msg(fm, i)->filename, lid) == 0)
			*msg = i;
	CU_ASSERT_FATAL(*msg != (size_t)-1);
	free(lid);
	return id;
}

static void
poll_and_match(int64_t at, struct ras_outbox_ack_stats *as)
{
	struct ras_mesh_inbox_stats s;

	memset(&s, 0, sizeof(s));
	memset(as, 0, sizeof(*as));
	fake_mesh_set_time(fm, at);
	CU_ASSERT_EQUAL(ras_mesh_inbox_poll(mi, db, at, &s), 0);
	CU_ASSERT_EQUAL(ras_outbox_acks(ob, db, at, as), 0);
	fake_mesh_set_time(fm, T0);
}

/* The fake GP answers 20013 and 30001; 20013 and 30002 (patient not known);
 * a fatal infrastructure error; nothing at all; and an infrastructure ack
 * with no business ack.  The letters' states and the alerts follow. */
static void
itk3_acknowledgements(void)
{
	size_t ma, mb, mc, md, me;
	int64_t a = itk3_letter(&ma), b = itk3_letter(&mb), c = itk3_letter(&mc), d = itk3_letter(&md);
	int64_t e = itk3_letter(&me);
	struct ras_outbox_ack_stats as;
	char *err_b, *out = NULL, *errout = NULL, *argv[8];

	CU_ASSERT_EQUAL(fake_gp_reply(fm, ma, "20013"), 0);
	CU_ASSERT_EQUAL(fake_gp_reply(fm, ma, "30001"), 0);
	CU_ASSERT_EQUAL(fake_gp_reply(fm, mb, "20013"), 0);
	CU_ASSERT_EQUAL(fake_gp_reply(fm, mb, "30002"), 0);
	CU_ASSERT_EQUAL(fake_gp_reply(fm, mc, "20009"), 0);
	CU_ASSERT_EQUAL(fake_gp_reply(fm, me, "20013"), 0);
	/* and a message on an _ACK workflow that is no ITK3 response */
	fake_mesh_deliver(fm, "X26ABC2", "X26ABC1", "GPCONNECT_SEND_DOCUMENT_ACK", "application/fhir+xml",
	    "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"message\"/></Bundle>");
	poll_and_match(T0 + 600, &as);
	CU_ASSERT_EQUAL(as.responses, 7);
	CU_ASSERT_EQUAL(as.matched, 6);
	CU_ASSERT_EQUAL(as.negative, 2);
	CU_ASSERT_EQUAL(as.unmatched, 1);
	CU_ASSERT_EQUAL(as.missing, 0);
	/* 20013 + 30001: acknowledged, still delivered */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND state = 'delivered' AND "
	    "ack_state = 'acknowledged' AND inf_ack_code = '20013' AND bus_ack_code = '30001'", rid_s(a)), 1);
	/* 30002: in front of a person, with the meaning */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND state = 'dead' AND "
	    "ack_state = 'negative' AND bus_ack_code = '30002'", rid_s(b)), 1);
	err_b = q_str("SELECT last_error FROM outbox WHERE id = $1", rid_s(b));
	CU_ASSERT_STRING_EQUAL(err_b, "ITK3 business acknowledgement 30002: Patient not known here");
	free(err_b);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM events WHERE kind = 'document-ack-negative' AND "
	    "(detail->>'outbox_id')::bigint = $1 AND detail->>'code' = '30002'", rid_s(b)), 1);
	/* the clocks the delivery met stay met */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND delivered_at IS NOT NULL",
	    rid_s(b)), 1);
	/* a fatal infrastructure error */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND state = 'dead' AND "
	    "ack_state = 'negative' AND inf_ack_code = '20009' AND last_error = "
	    "'ITK3 infrastructure acknowledgement 20009: Payload validation failure'", rid_s(c)), 1);
	/* the stray response is kept with its reason */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM mesh_inbox WHERE workflow = 'GPCONNECT_SEND_DOCUMENT_ACK' "
	    "AND processed_at IS NOT NULL AND process_error LIKE 'not an ITK3 response%'", NULL), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM mesh_inbox WHERE workflow = 'GPCONNECT_SEND_DOCUMENT_ACK' "
	    "AND processed_at IS NULL", NULL), 0);
	/* silence: nothing yet after 23 h, then dead after 24 h */
	poll_and_match(T0 + 23 * 3600, &as);
	CU_ASSERT_EQUAL(as.missing, 0);
	poll_and_match(T0 + 25 * 3600, &as);
	CU_ASSERT_TRUE(as.missing >= 1);   /* letters of earlier tests wait too */
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND state = 'dead' AND "
	    "ack_state = 'missing' AND last_error LIKE 'no ITK3 infrastructure acknowledgement within 24 h%'",
	    rid_s(d)), 1);
	/* an infrastructure ack but no business ack: 5 working days (Tuesday 7
	 * April 2026: due by the end of Tuesday 14 April) */
	poll_and_match(T0 + 6 * 86400, &as);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND ack_state = 'awaiting'",
	    rid_s(e)), 1);
	poll_and_match(T0 + 8 * 86400, &as);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE id = $1 AND state = 'dead' AND "
	    "ack_state = 'missing' AND inf_ack_code = '20013' AND last_error LIKE "
	    "'no ITK3 business acknowledgement within 5 working days%'", rid_s(e)), 1);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM events WHERE kind = 'document-ack-missing' AND "
	    "(detail->>'outbox_id')::bigint IN ($1::bigint, " "(SELECT max(id) FROM outbox))", rid_s(d)) >= 1, 1);
	/* the KPI report counts them beside the clocks */
	{
		struct ras_arena *ka = ras_arena_new();
		struct ras_kpi_data kd;
		struct ras_date from = { 2026, 4, 1 }, to = { 2026, 4, 30 };

		CU_ASSERT_EQUAL_FATAL(ras_kpi_load(db, ka, "dorset-2013", &from, &to, &kd), 0);
		CU_ASSERT_TRUE(kd.acks.delivered >= 5);
		CU_ASSERT_EQUAL(kd.acks.delivered, kd.acks.acknowledged + kd.acks.awaiting + kd.acks.negative +
		    kd.acks.missing);
		CU_ASSERT_TRUE(kd.acks.acknowledged >= 1);
		CU_ASSERT_TRUE(kd.acks.negative >= 2);
		CU_ASSERT_TRUE(kd.acks.missing >= 2);
		ras_arena_free(ka);
	}
	/* rasctl outbox list shows the acknowledgement state */
	argv[0] = (char *)ras_test_program("daemon/rasctl");
	argv[1] = "--db";
	argv[2] = conninfo;
	argv[3] = "outbox";
	argv[4] = "list";
	argv[5] = NULL;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &errout), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ACK (INF/BUS)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "acknowledged 20013/30001"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "negative 20013/30002"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "Patient not known here"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "missing -/-"));
	free(out);
	free(errout);
	/* and rasctl status counts them among the dead letters */
	argv[3] = "status";
	argv[4] = NULL;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &errout), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "letter(s) a GP system answered negatively"));
	free(out);
	free(errout);
}

/* A route whose mailbox MESH endpoint lookup finds (ODS code and workflow),
 * at delivery; none or several mailboxes: a dead letter with the reason. */
static void
mesh_endpoint_lookup_route(void)
{
	struct ras_buf b = RAS_BUF_INIT(1 << 20), problems = RAS_BUF_INIT(8192);
	struct ras_config *c2 = NULL;
	struct ras_outbox *o2 = NULL;
	char routes[4096], conf[4096], *text, *addr, *why;
	int64_t r;
	const char *at;
	size_t before = fake_mesh_count(fm);

	snprintf(routes, sizeof(routes), "%s/routes-lookup.json", ras_test_tmpdir());
	write_file(routes, "{\"routes\": [{\"ods\": \"J81002\", \"transport\": \"mesh\", \"lookup\": true}]}\n");
	CU_ASSERT_FATAL(ras_buf_read_file(&b, config_path) == 0);
	at = strstr(b.data, "table = ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	text = malloc(b.len + 4096);
	snprintf(text, b.len + 4096, "%.*stable = %s%s", (int)(at - b.data), b.data, routes,
	    strchr(at, '\n'));
	snprintf(conf, sizeof(conf), "%s/rasd-lookup.conf", ras_test_tmpdir());
	write_file(conf, text);
	free(text);
	CU_ASSERT_FATAL(ras_config_load(conf, &c2, &problems) == 0);
	CU_ASSERT_FATAL(ras_outbox_new(c2, RAS_SOURCE_ROOT "/mappings", &o2) == 0);
	fake_mesh_register(fm, "J81002", "GPCONNECT_SEND_DOCUMENT", "X26ABC3");

	r = referral("r4/referral-message.json", "dorset-2013");
	decide(r, "documents/decision-dorset-2013-return.json", "return", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	CU_ASSERT_EQUAL(ras_outbox_render_pending(o2, db, T0, NULL), 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND address = 'lookup:J81002' "
	    "AND state = 'ready'", rid_s(r)), 1);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(o2, db, T0, NULL), 0);
	addr = q_str("SELECT address FROM outbox WHERE referral_id = $1 AND state = 'delivered'", rid_s(r));
	CU_ASSERT_STRING_EQUAL(addr ? addr : "", "X26ABC3");
	free(addr);
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	CU_ASSERT_STRING_EQUAL(fake_mesh_msg(fm, before)->to, "X26ABC3");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
	    "WHERE o.referral_id = $1 AND o.state = 'delivered'", rid_s(r)), 1);

	/* a second mailbox registered for the practice: not rasd's to choose */
	fake_mesh_register(fm, "J81002", "GPCONNECT_SEND_DOCUMENT", "X26ABC2");
	r = referral("r4/referral-message.json", "dorset-2013");
	decide(r, "documents/decision-dorset-2013-return.json", "return", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	CU_ASSERT_EQUAL(ras_outbox_render_pending(o2, db, T0, NULL), 0);
	CU_ASSERT_EQUAL(ras_outbox_deliver_pending(o2, db, T0, NULL), 0);
	why = q_str("SELECT last_error FROM outbox WHERE referral_id = $1 AND state = 'dead'", rid_s(r));
	CU_ASSERT_PTR_NOT_NULL(why);
	CU_ASSERT_PTR_NOT_NULL(why && strstr(why, "MESH endpoint lookup for J81002, workflow "
	    "GPCONNECT_SEND_DOCUMENT: 2 mailboxes are registered"));
	free(why);
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	ras_outbox_free(o2);
	ras_config_free(c2);
	ras_buf_free(&b);
	ras_buf_free(&problems);
}

static void
claims_skip_rows_locked_elsewhere(void)
{
	struct ras_db *other;
	struct ras_outbox_stats s;
	int64_t r = new_letter_to("documents/referral-consultant-midnotts.json", "midnotts",
	    "documents/decision-midnotts-return.json");
	const char *rs = rid_s(r);
	struct ras_db_param p[1] = { RAS_DB_TEXT(rs) };

	CU_ASSERT_FATAL(ras_db_connect(conninfo, &other) == 0);
	CU_ASSERT_FATAL(ras_db_begin(other) == 0);
	CU_ASSERT_FATAL(ras_db_query(other, NULL, "SELECT id FROM outbox WHERE referral_id = $1 FOR UPDATE",
	    1, p) == 0);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.claimed, 0);
	ras_db_rollback(other);
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.claimed, 2);
	ras_db_close(other);
}

/* A delivery round holds what it sends in memory: it claims at most
 * RAS_DELIVER_BATCH_BYTES of payloads (at least one letter, however large),
 * leaves the rest due and says so (the daemon runs it again at once); every
 * letter is taken once, in due order, none skipped. */
static void
delivery_round_bounded_by_bytes(void)
{
	struct ras_db *saved = db, *fresh = ras_test_db("outbox_bytes", NULL);
	struct ras_outbox_stats s;
	static const int want[] = { 2, 1, 1, 0 };
	static const bool cut[] = { true, true, false, false };
	char sql[512];
	int taken = 0;

	db = fresh;   /* the suite's helpers write to `db` */
	(void)new_letter_to("documents/referral-consultant-midnotts.json", "midnotts",
	    "documents/decision-midnotts-return.json");
	(void)new_letter_to("documents/referral-consultant-midnotts.json", "midnotts",
	    "documents/decision-midnotts-return.json");
	stats_zero(&s);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL_FATAL(q_int("SELECT count(*) FROM outbox WHERE state = 'ready'", NULL), 4);
	/* three letters of 3/8 of the bound, then one larger than the bound */
	snprintf(sql, sizeof(sql), "WITH u AS (UPDATE outbox o SET next_attempt_at = '2026-01-01T00:00:00Z',"
	    " payload = o.payload || convert_to(repeat(' ', CASE WHEN o.id = (SELECT max(id) FROM outbox)"
	    " THEN %u ELSE %u END), 'UTF8') WHERE state = 'ready' RETURNING 1) SELECT count(*) FROM u",
	    RAS_DELIVER_BATCH_BYTES + 4096u, RAS_DELIVER_BATCH_BYTES / 8u * 3u);
	CU_ASSERT_EQUAL_FATAL(q_int(sql, NULL), 4);
	for (size_t round = 0; round < 4; round++) {
		char n[24];

		stats_zero(&s);
		CU_ASSERT_EQUAL_FATAL(ras_outbox_deliver_pending(ob, db, T0, &s), 0);
		CU_ASSERT_EQUAL(s.claimed, want[round]);
		CU_ASSERT_EQUAL(s.cut, cut[round]);
		/* the daemon goes again at once after a cut round */
		CU_ASSERT_EQUAL(ras_outbox_deliver_work(&s, 100), cut[round] ? 100u : (size_t)want[round]);
		taken += s.claimed;
		/* the oldest due were taken; the rest wait untouched */
		snprintf(n, sizeof(n), "%d", taken);
		CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM (SELECT attempts FROM outbox ORDER BY id"
		    " LIMIT $1::int) x WHERE attempts = 1", n), taken);
		CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE attempts = 0 AND state = 'ready'", NULL),
		    4 - taken);
	}
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE state = 'sending'", NULL), 0);
	db = saved;
	ras_db_close(fresh);
}

static void
backoff_is_bounded_and_jittered(void)
{
	for (int i = 0; i < 200; i++) {
		int64_t d1 = ras_outbox_backoff(1, 60, 3600), d5 = ras_outbox_backoff(5, 60, 3600);
		int64_t d20 = ras_outbox_backoff(20, 60, 3600);

		CU_ASSERT_TRUE(d1 >= 30 && d1 <= 60);
		CU_ASSERT_TRUE(d5 >= 480 && d5 <= 960);
		CU_ASSERT_TRUE(d20 >= 1800 && d20 <= 3600);
	}
}

/* rasctl render: the same bytes as the library's golden file; refusals
 * exit 65 with the list; bad usage 64; an unreadable file 66. */
static void
rasctl_render(void)
{
	char ref[4096], ep[4096], minimal[4096], *out = NULL, *err = NULL, *want;
	char *argv[20];
	int n = 0;

	snprintf(ref, sizeof(ref), "%s", ras_test_fixture("r4/referral-collection-urn.json"));
	snprintf(ep, sizeof(ep), "%s", ras_test_fixture("documents/episode-discharge-full.json"));
	snprintf(minimal, sizeof(minimal), "%s", ras_test_fixture("documents/episode-discharge-minimal.json"));
	argv[n++] = (char *)ras_test_program("daemon/rasctl");
	argv[n++] = "render";
	argv[n++] = "--mappings";
	argv[n++] = RAS_SOURCE_ROOT "/mappings";
	argv[n++] = "--kind";
	argv[n++] = "discharge-summary";
	argv[n++] = "--service";
	argv[n++] = "midnotts";
	argv[n++] = "--referral";
	argv[n++] = ref;
	argv[n++] = "--at";
	argv[n++] = "2026-07-20T10:00:00Z";
	argv[n++] = "--episode";
	argv[n++] = ep;
	argv[n] = NULL;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
	want = ras_test_read(RAS_SOURCE_ROOT "/tests/golden/documents/midnotts-discharge-summary.json", NULL);
	CU_ASSERT_STRING_EQUAL(out, want);
	free(want);
	free(out);
	free(err);
	argv[n - 1] = minimal;
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing required items: outcomes, management-plan, key-worker, "
	    "test-results, re-referral-indicators (004 §3.12)"));
	CU_ASSERT_STRING_EQUAL(out, "");
	free(out);
	free(err);
	argv[n - 1] = "/nonexistent/episode.json";
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 66);
	free(out);
	free(err);
	argv[5] = "letter";
	CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 64);
	free(out);
	free(err);
	/* A triage letter with no --decision: rasctl triages the referral itself,
	 * as `rasctl triage` decides it (--at is the receipt): the same outcome
	 * and clocks, and the rule-set version the letter cites. */
	{
		char *dec = NULL, *dpath, *with = NULL, version[64];
		char *targv[] = { (char *)ras_test_program("daemon/rasctl"), "triage", "--mappings",
			RAS_SOURCE_ROOT "/mappings", "--service", "midnotts", "--at", "2026-07-20T10:00:00Z",
			ref, NULL };

		argv[5] = "triage-outcome";
		argv[n - 2] = NULL;
		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
		CU_ASSERT_EQUAL(ras_test_spawn(targv, NULL, NULL, &dec, NULL), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(dec, "\"outcome\":\"accept\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "Accepted into the service"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "appointment: by Monday 27 July 2026"));
		snprintf(version, sizeof(version), "(rule set %.12s)",
		    ras_rules_version(ras_mappings_ruleset(ras_triage_mappings(tri), "midnotts")));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, version));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "recommendation awaiting a clinician"));
		/* --decision still replaces it: the same decision given as a file */
		dpath = ras_test_write_tmp("rules-decision.json", dec, strlen(dec));
		argv[n - 2] = "--decision";
		argv[n - 1] = dpath;
		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &with, NULL), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(with, "Accepted into the service"));
		CU_ASSERT_PTR_NOT_NULL(strstr(with, "appointment: by Monday 27 July 2026"));
		CU_ASSERT_PTR_NULL(strstr(with, version));
		free(with);
		free(out);
		free(err);
		free(dec);
		free(dpath);
		/* the 2WW notice of a referral the rules do not send to 2WW: refused, with why */
		argv[5] = "gp-2ww-notice";
		argv[n - 2] = NULL;
		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 65);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "two-week-wait pathway"));
		free(out);
		free(err);
		/* a service with no rule set cannot be decided for */
		argv[5] = "triage-outcome";
		argv[7] = "atlantis";
		CU_ASSERT_NOT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
		free(out);
		free(err);
	}
}

/* An e-RS referrer hears a final accept or return through e-RS (A028), so
 * the triage letter to them is cancelled, with the reason; an onward
 * decision, which e-RS has no call for, still gets its letter. */
static void
ers_referrer_answered_through_ers(void)
{
	int64_t r = referral("ers/referral-Unbooked.json", "midnotts");
	const char *rs = rid_s(r);
	struct ras_outbox_stats s;
	char *why;

	decide(r, "documents/decision-midnotts-return.json", "return", NULL, true, "rules",
	    "2026-04-07T09:00:00Z");
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND kind = "
	    "'triage-outcome' AND recipient_role = 'referrer'", rs), 1);
	stats_zero(&s);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.cancelled, 1);
	why = q_str("SELECT last_error FROM outbox WHERE referral_id = $1 AND state = 'cancelled'", rs);
	CU_ASSERT_PTR_NOT_NULL_FATAL(why);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "answered through e-RS"));
	free(why);
	/* a clinician sends it on instead: e-RS cannot say so, the letter is not cancelled */
	decide(r, "documents/decision-midnotts-onward.json", "onward", "secondary-care", true,
	    "555999888777", "2026-04-07T11:00:00Z");
	stats_zero(&s);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(ob, db, T0, &s), 0);
	CU_ASSERT_EQUAL(s.cancelled, 0);
	CU_ASSERT_EQUAL(q_int("SELECT count(*) FROM outbox WHERE referral_id = $1 AND doc_version = 2 "
	    "AND state <> 'cancelled'", rs), 1);
}


static int
setup(void)
{
	const char *tmp;
	char buf[8192], routes[4096], pw[4096], key[4096];
	struct ras_buf problems = RAS_BUF_INIT(8192);

	db = ras_test_db("outbox", &conninfo);
	fm = fake_mesh_start(NULL);
	ff = fake_fhir_start();
	if (ras_time_parse("2026-04-07T10:00:00Z", false, &T0) < 0)
		return 1;
	fake_mesh_set_time(fm, T0);
	tmp = ras_test_tmpdir();
	snprintf(print_dir, sizeof(print_dir), "%s/print", tmp);
	mkdir(print_dir, 0755);
	snprintf(routes, sizeof(routes), "%s/routes.json", tmp);
	snprintf(pw, sizeof(pw), "%s/mesh-password", tmp);
	snprintf(key, sizeof(key), "%s/mesh-shared-key", tmp);
	snprintf(buf, sizeof(buf), "{\"routes\": [\n"
	    " {\"ods\": \"RK5\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"document\"},\n"
	    " {\"ods\": \"C84009\", \"transport\": \"mesh\", \"mailbox\": \"X26ABC2\", \"message\": \"fhir-r4\"},\n"
	    " {\"ods\": \"C84001\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"message\"}]}\n",
	    fake_fhir_base(ff), fake_fhir_base(ff));
	write_file(routes, buf);
	write_file(pw, "password\n");
	write_file(key, FAKE_MESH_SHARED_KEY "\n");
	config_path = malloc(4096);
	snprintf(config_path, 4096, "%s/rasd.conf", tmp);
	ras_test_fmt(buf, sizeof(buf), "[mesh]\nenabled = yes\nurl = %s\nmailbox = X26ABC1\npassword = %s\n"
	    "shared_key = %s\nworkflow_triage_outcome = RASD_LETTERS\nworkflow_gp_2ww_notice = RASD_LETTERS\n"
	    "workflow_notification_letter = RASD_LETTERS\nworkflow_discharge_summary = RASD_LETTERS\n"
	    "[routing]\ntable = %s\ngp_auto_routing = yes\n[outbox]\nallow_http_loopback = yes\n"
	    "max_attempts = 3\nbackoff_base = 60\nprint_dir = %s\n", fake_mesh_url(fm), pw, key, routes,
	    print_dir);
	write_file(config_path, buf);
	if (ras_config_load(config_path, &cfg, &problems) < 0) {
		fprintf(stderr, "config: %s %s\n", problems.data ? problems.data : "", ras_error_last());
		return 1;
	}
	ras_buf_free(&problems);
	if (ras_outbox_new(cfg, RAS_SOURCE_ROOT "/mappings", &ob) < 0) {
		fprintf(stderr, "outbox: %s\n", ras_error_last());
		return 1;
	}
	if (ras_mesh_inbox_new(cfg, &mi) < 0) {
		fprintf(stderr, "MESH inbox: %s\n", ras_error_last());
		return 1;
	}
	tri = ras_test_triage(NULL, NULL);
	return 0;
}

static int
teardown(void)
{
	ras_mesh_inbox_free(mi);
	ras_outbox_free(ob);
	ras_triage_free(tri);
	ras_config_free(cfg);
	fake_fhir_stop(ff);
	fake_mesh_stop(fm);
	ras_db_close(db);
	free(conninfo);
	free(config_path);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "trigger enqueues the letters a decision calls for",
		  trigger_enqueues_the_letters_a_decision_calls_for },
		{ "2WW notice: same day, to the GP, once", twoww_notice_same_day_to_the_gp_once },
		{ "render and deliver over FHIR and MESH", render_and_deliver_over_fhir_and_mesh },
		{ "unknown MESH outcome is tracked, never resent", unknown_mesh_outcome_is_tracked_never_resent },
		{ "chunked letters, and uploading sends sent again", chunked_letters_and_uploading_sends },
		{ "retries back off, then dead letter and requeue",
		  retries_back_off_then_dead_letter_and_requeue },
		{ "an endpoint refusing connections is held, one letter probes it",
		  refusing_endpoint_is_held_then_probed },
		{ "MESH error reports and inbox", mesh_reports_and_inbox },
		{ "episode: discharge summary, deadline, patient copy", episode_discharge_and_patient_copy },
		{ "GP auto-routing keeps patient data out of listings",
		  gp_auto_routing_keeps_patient_data_out_of_listings },
		{ "ITK3 acknowledgements: 20013, 30002, fatal error, silence", itk3_acknowledgements },
		{ "MESH endpoint lookup routes", mesh_endpoint_lookup_route },
		{ "claims skip rows locked elsewhere", claims_skip_rows_locked_elsewhere },
		{ "a delivery round is bounded by bytes", delivery_round_bounded_by_bytes },
		{ "back-off is bounded and jittered", backoff_is_bounded_and_jittered },
		{ "rasctl render: golden bytes, refusals and exit codes", rasctl_render },
		{ "an e-RS referrer is answered through e-RS", ers_referrer_answered_through_ers },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "outbox", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
