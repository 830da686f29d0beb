/*
 * The render stage against recorded output: every letter kind of every
 * shipped service, through every kind of route (FHIR document and message,
 * JSON and XML; MESH with FHIR R4, GP Connect Send Document, ToC outpatient
 * letter, endpoint lookup; GP auto-routing; the patient's printed copy), and
 * letters that fail (no route, no profile, nothing to send yet, no such
 * document in the specification).  Each round renders the same pending
 * letters in one batch and records, per letter, its state, route, headers
 * and the SHA-256 of the exact payload (and of the stored document Bundle
 * where one is kept); tests/golden/render/letters.txt was recorded with
 * the row-at-a-time renderer, so the batched one must produce the same
 * bytes for the same inputs.  A letter that fails is kept with its reason
 * and the rest of the batch is rendered.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fake_mesh.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/decision.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/mappings.h"
#include "ras/outbox.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

static struct ras_db *db;
static char *conninfo;
static struct fake_mesh *fm;
static struct ras_triage *tri;
static int64_t T0;   /* 2026-04-07T10:00:00Z */
static char tmp_dir[4096], print_dir[4096], pw_path[4096], key_path[4096];
static char last_ubrn[32];

/* Store a fixture referral under a fresh UBRN. */
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
	char local[16];

	snprintf(last_ubrn, sizeof(last_ubrn), "4000000%05d", ++counter);
	for (size_t u = 0; u < 3; u++)
		for (char *p = strstr(data, ubrns[u]); p; p = strstr(p + 12, ubrns[u]))
			memcpy(p, last_ubrn, 12);
	/* a referral without a UBRN: its own local identifier (same length) */
	snprintf(local, sizeof(local), "REF-TEST-%04d", counter);
	for (char *p = strstr(data, "REF-2026-0001"); p; p = strstr(p + 13, "REF-2026-0001"))
		memcpy(p, local, 13);
	it.data = data;
	CU_ASSERT_FATAL(ras_store_inbox_put(db, &it, 1, &put) == 0);
	CU_ASSERT_FATAL(!put.duplicate);
	CU_ASSERT_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n) == 0 && n == 1);
	id = rep[0].first_referral_id;
	free(rep);
	free(data);
	return id;
}

/* A decision as triage or a clinician stores it, with its rule set's clocks. */
static void
decide(int64_t referral_id, const char *service, const char *fixture, const char *outcome,
    const char *target, bool final, const char *by, const char *at)
{
	ras_test_store_decision(db, tri, referral_id, service, fixture, outcome, target, final, by, at);
}

static void
sql(const char *text)
{
	if (ras_db_exec(db, text) < 0)
		CU_FAIL_FATAL(ras_error_last());
}

/* Every kind of letter of every shipped service, and some that cannot be
 * sent: pending in the outbox. */
static void
letters(void)
{
	static const struct { const char *service, *fixture; } svcs[] = {
		{ "midnotts", "documents/referral-consultant-midnotts.json" },
		{ "midnotts", "r4/referral-collection-urn.json" },
		{ "bassetlaw-2022", "r4/referral-transaction-relative.json" },
		{ "dorset-2013", "r4/referral-message.json" },
		{ "dorset-2019", "r4/referral-message.json" },
	};
	struct ras_outbox *ob = ras_test_outbox();
	size_t len;
	char *full = ras_test_read(ras_test_fixture("documents/episode-discharge-full.json"), &len);
	char *note = ras_test_read(ras_test_fixture("documents/episode-notification.json"), NULL);
	char fx[256], rid[32];
	int64_t r, ep = 0;

	for (size_t s = 0; s < sizeof(svcs) / sizeof(svcs[0]); s++) {
		const char *svc = svcs[s].service;

		/* accepted, then a clinician returns it: versions 1 and 2 */
		r = referral(svcs[s].fixture, svc);
		ras_test_fmt(fx, sizeof(fx), "documents/decision-%s-accept.json", svc);
		decide(r, svc, fx, "accept", NULL, true, "rules", "2026-04-07T09:30:00Z");
		sql("UPDATE outbox SET state = 'cancelled' WHERE id = (SELECT max(id) FROM outbox)"
		    " AND recipient_role = 'patient'");
		ras_test_fmt(fx, sizeof(fx), "documents/decision-%s-return.json", svc);
		decide(r, svc, fx, "return", NULL, true, "687001000001", "2026-04-07T09:45:00Z");
		/* referred on */
		r = referral(svcs[s].fixture, svc);
		ras_test_fmt(fx, sizeof(fx), "documents/decision-%s-onward.json", svc);
		decide(r, svc, fx, "onward", "secondary-care", true, "rules", "2026-04-07T09:40:00Z");
		/* accepted, then seen and discharged: notification letter,
		 * discharge summary and the patient's copy */
		r = referral(svcs[s].fixture, svc);
		ras_test_fmt(fx, sizeof(fx), "documents/decision-%s-accept.json", svc);
		decide(r, svc, fx, "accept", NULL, true, "rules", "2026-04-07T09:30:00Z");
		snprintf(rid, sizeof(rid), "%lld", (long long)r);
		if (strcmp(svc, "midnotts") == 0)
			CU_ASSERT_EQUAL(ras_outbox_episode_put(ob, db, rid, "contact", note, strlen(note),
			    "test", T0, &ep), 0);
		if (ras_outbox_has_document(ob, svc, "discharge-summary"))
			CU_ASSERT_EQUAL(ras_outbox_episode_put(ob, db, rid, "discharge", full, len, "test",
			    T0, &ep), 0);
	}
	/* the 2WW notice to the GP (same day), and the letter once confirmed */
	r = referral("r4/referral-collection-urn.json", "midnotts");
	decide(r, "midnotts", "documents/decision-midnotts-2ww.json", "onward", "two-week-wait", false,
	    "rules", "2026-04-07T08:30:00Z");
	decide(r, "midnotts", "documents/decision-midnotts-2ww.json", "onward", "two-week-wait", true,
	    "rules", "2026-04-07T08:35:00Z");
	/* letters that cannot be sent: a triage letter for a decision still
	 * under review (dead), a document the specification does not call for
	 * (cancelled), a service without a document profile (dead) */
	r = referral("documents/referral-consultant-midnotts.json", "midnotts");
	decide(r, "midnotts", "documents/decision-midnotts-review.json", "review", NULL, false, "rules",
	    "2026-04-07T09:00:00Z");
	sql("SELECT ras_outbox_enqueue(d.referral_id, 'midnotts', 'triage-outcome', d.id, NULL, NULL, false,"
	    " false) FROM decisions d WHERE d.id = (SELECT max(id) FROM decisions)");
	sql("SELECT ras_outbox_enqueue(d.referral_id, 'dorset-2013', 'gp-2ww-notice', d.id, NULL, NULL, true,"
	    " false) FROM decisions d WHERE d.id = (SELECT max(id) FROM decisions)");
	r = referral("r4/referral-collection-urn.json", "midnotts");
	decide(r, "midnotts", "documents/decision-midnotts-accept.json", "accept", NULL, true, "rules",
	    "2026-04-07T09:30:00Z");
	sql("UPDATE outbox SET service = 'no-such-service' WHERE id = (SELECT max(id) FROM outbox)");
	/* local ids (and the message ids made from them) are random: fixed here */
	sql("UPDATE outbox SET local_id = 'rasd-test-' || referral_key || '-' || kind || '-' || doc_version"
	    " || '-' || recipient_role");
	free(full);
	free(note);
	ras_outbox_free(ob);
}

/* The routing table of a round: every recipient's ODS code to one route. */
static void
routes(const char *path, const char *route)
{
	char *ods = ras_test_sql_text(db, "SELECT string_agg(DISTINCT recipient_ods, ',') FROM outbox", NULL);
	struct ras_buf b = RAS_BUF_INIT(0);
	FILE *f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ods);
	(void)ras_buf_puts(&b, "{\"routes\": [");
	for (char *s = ods, *c; s; s = c ? c + 1 : NULL) {
		if ((c = strchr(s, ',')) != NULL)
			*c = '\0';
		(void)ras_buf_printf(&b, "%s{\"ods\": \"%s\", %s}", s == ods ? "" : ",\n", s, route);
	}
	(void)ras_buf_puts(&b, "]}\n");
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(route ? b.data : "{\"routes\": []}\n", f);
	fclose(f);
	ras_buf_free(&b);
	free(ods);
}

static const char SQL_ROWS[] =
	"SELECT referral_key, kind, doc_version::text, recipient_role, coalesce(recipient_ods, '-'), state,"
	" coalesce(transport, '-'), CASE WHEN transport = 'file' THEN '(print_dir)' ELSE coalesce(address, '-') END, coalesce(workflow, '-'), coalesce(fhir_mode, '-'),"
	" coalesce(document_id, '-'), coalesce(message_id, '-'), coalesce(content_type, '-'),"
	" coalesce(message_format, '-'), coalesce(mex_subject, '-'), coalesce(mex_local_id, '-'),"
	" coalesce(itk3_header_id, '-'),"
	" coalesce(regexp_replace(last_error, '\\(/[^)]*/mappings/', '(mappings/'), '-'),"
	" coalesce(length(payload) || ':' || left(encode(sha256(payload), 'hex'), 16), '-'),"
	/* the document Bundle is kept for the printed copies (their PDF is
	 * made from it when they are delivered) */
	" CASE WHEN transport = 'file' THEN coalesce(length(doc::text) || ':'"
	" || left(encode(sha256(convert_to(doc::text, 'UTF8')), 'hex'), 16), '-') ELSE '' END"
	" FROM outbox WHERE state <> 'cancelled' OR last_error IS NOT NULL"
	" ORDER BY referral_key, kind, doc_version, recipient_role";

/* Render every letter again with these routes ([outbox] batch_size
 * `batch`, batches until none is left), as one rasd would. */
static void
render_all(const char *name, const char *route, const char *extra, int batch, struct ras_outbox_stats *st)
{
	char conf[8192], table[4200];
	struct ras_config *cfg;
	struct ras_outbox *ob;
	int64_t pending;
	int claimed;

	ras_test_fmt(table, sizeof(table), "%s/routes-%s.json", tmp_dir, name);
	routes(table, route);
	ras_test_fmt(conf, sizeof(conf), "[mesh]\nenabled = yes\nurl = %s\nmailbox = X26ABC1\n"
	    "password = %s\nshared_key = %s\nworkflow_triage_outcome = RASD_LETTERS\n"
	    "workflow_gp_2ww_notice = RASD_2WW\nworkflow_notification_letter = RASD_LETTERS\n"
	    "workflow_discharge_summary = RASD_DISCHARGE\n[routing]\ntable = %s\ngp_auto_routing = yes\n"
	    "%s[outbox]\nbatch_size = %d\nallow_http_loopback = yes\nprint_dir = %s\n",
	    fake_mesh_url(fm), pw_path, key_path, table, extra ? extra : "", batch, print_dir);
	cfg = ras_test_config(conf);
	CU_ASSERT_FATAL(ras_outbox_new(cfg, RAS_SOURCE_ROOT "/mappings", &ob) == 0);
	sql("UPDATE outbox SET state = 'pending', transport = NULL, address = NULL, workflow = NULL,"
	    " fhir_mode = NULL, document_id = NULL, message_id = NULL, content_type = NULL, payload = NULL,"
	    " doc = NULL, rendered_at = NULL, last_error = NULL, message_format = NULL, mex_subject = NULL,"
	    " mex_local_id = NULL, itk3_header_id = NULL WHERE state <> 'cancelled' OR last_error IS NOT NULL");
	pending = ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'pending'", NULL);
	memset(st, 0, sizeof(*st));
	do {
		claimed = st->claimed;
		CU_ASSERT_EQUAL_FATAL(ras_outbox_render_pending(ob, db, T0, st), 0);
	} while (st->claimed > claimed);
	/* every letter was taken; none was left behind by a failure */
	CU_ASSERT_EQUAL(st->claimed, pending);
	CU_ASSERT_EQUAL(st->rendered + st->dead + st->cancelled, st->claimed);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'pending'", NULL), 0);
	/* the document Bundle is kept only where a reader needs it (a printed
	 * copy: its PDF is made from it on delivery); the rest carry it in
	 * their payload */
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE doc IS NOT NULL"
	    " AND transport IS DISTINCT FROM 'file'", NULL), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE doc IS NULL"
	    " AND transport = 'file'", NULL), 0);
	ras_outbox_free(ob);
	ras_config_free(cfg);
}

/* A line per letter. */
static void
snapshot(struct ras_buf *out)
{
	struct ras_db_res *res = NULL;

	CU_ASSERT_FATAL(ras_db_query(db, &res, SQL_ROWS, 0, NULL) == 0);
	for (int i = 0; i < ras_db_res_rows(res); i++) {
		for (int c = 0; c < 20; c++)
			(void)ras_buf_printf(out, "%s%s", c ? " | " : "", ras_db_res_get(res, i, c));
		(void)ras_buf_putc(out, '\n');
	}
	ras_db_res_free(res);
}

/* One round: these routes, the letters requeued and rendered in one batch,
 * and a line per letter appended to `out`. */
static void
round_of(struct ras_buf *out, const char *name, const char *route, const char *extra)
{
	struct ras_outbox_stats st;

	render_all(name, route, extra, 1000, &st);
	/* each chunk's results written at least once */
	CU_ASSERT_TRUE(st.chunks >= 1 && st.writes >= st.chunks);
	/* the copies of one letter (to the referrer and to the GP) share one
	 * document, built once: with a route for every recipient, one build
	 * per document rendered */
	if (strcmp(name, "fhir-document-json") == 0) {
		CU_ASSERT_EQUAL(st.built, ras_test_sql_int(db, "SELECT count(DISTINCT (document_id, kind))"
		    " FROM outbox WHERE state = 'ready'", NULL));
		CU_ASSERT_TRUE(st.built < st.rendered);
	}
	/* the ITK3 messages (each with its letter as PDF) are written in
	 * parts of about RAS_RENDER_WRITE_BYTES */
	if (strstr(name, "send-document") || strstr(name, "toc"))
		CU_ASSERT_TRUE(st.writes > 1);
	(void)ras_buf_printf(out, "## %s: %d rendered, %d dead, %d cancelled\n", name, st.rendered, st.dead,
	    st.cancelled);
	snapshot(out);
}

static void
batched_render_is_byte_for_byte_the_recorded_output(void)
{
	struct ras_buf out = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;

	letters();
	round_of(&out, "fhir-document-json", "\"transport\": \"fhir\", \"endpoint\": "
	    "\"http://127.0.0.1:9/fhir\", \"mode\": \"document\"", NULL);
	round_of(&out, "fhir-message-json", "\"transport\": \"fhir\", \"endpoint\": "
	    "\"http://127.0.0.1:9/fhir\", \"mode\": \"message\"", NULL);
	round_of(&out, "fhir-message-xml", "\"transport\": \"fhir\", \"endpoint\": "
	    "\"http://127.0.0.1:9/fhir\", \"mode\": \"message\", \"format\": \"xml\"", NULL);
	round_of(&out, "fhir-document-xml", "\"transport\": \"fhir\", \"endpoint\": "
	    "\"http://127.0.0.1:9/fhir\", \"mode\": \"document\", \"format\": \"xml\"", NULL);
	round_of(&out, "mesh-fhir-r4", "\"transport\": \"mesh\", \"mailbox\": \"X26ABC2\", "
	    "\"message\": \"fhir-r4\"", NULL);
	round_of(&out, "mesh-send-document", "\"transport\": \"mesh\", \"mailbox\": \"X26ABC2\", "
	    "\"message\": \"gp-connect-send-document\"", NULL);
	round_of(&out, "mesh-toc-outpatient-letter", "\"transport\": \"mesh\", \"mailbox\": \"X26ABC2\", "
	    "\"message\": \"toc-outpatient-letter\", \"workflow\": \"TOC_FHIR_OP_LET\"", NULL);
	round_of(&out, "mesh-lookup", "\"transport\": \"mesh\", \"lookup\": true", NULL);
	/* no table entries: GP letters auto-routed (GPPROVIDER_...), the rest dead */
	round_of(&out, "gp-auto-routing", NULL, NULL);
	round_of(&out, "gp-auto-routing-ddmmyyyy", NULL, "gpprovider_dob_format = DDMMYYYY\n");
	/* what the failures left: their events and the clauses of the clocks */
	CU_ASSERT_FATAL(ras_db_query(db, &res, "SELECT kind, detail ->> 'kind', detail ->> 'recipient',"
	    " regexp_replace(detail ->> 'detail', '\\(/[^)]*/mappings/', '(mappings/'), count(*)::text FROM events WHERE kind LIKE 'document-%'"
	    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4", 0, NULL) == 0);
	(void)ras_buf_puts(&out, "## events\n");
	for (int i = 0; i < ras_db_res_rows(res); i++)
		(void)ras_buf_printf(&out, "%s | %s | %s | %s | %s\n", ras_db_res_get(res, i, 0),
		    ras_db_res_get(res, i, 1), ras_db_res_get(res, i, 2), ras_db_res_get(res, i, 3),
		    ras_db_res_get(res, i, 4));
	ras_db_res_free(res);
	CU_ASSERT_FATAL(ras_db_query(db, &res, "SELECT r.referral_key, d.kind, coalesce(d.clause, '-'),"
	    " coalesce(d.met_by, '-') FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " ORDER BY 1, 2, d.id", 0, NULL) == 0);
	(void)ras_buf_puts(&out, "## deadlines\n");
	for (int i = 0; i < ras_db_res_rows(res); i++)
		(void)ras_buf_printf(&out, "%s | %s | %s | %s\n", ras_db_res_get(res, i, 0),
		    ras_db_res_get(res, i, 1), ras_db_res_get(res, i, 2), ras_db_res_get(res, i, 3));
	ras_db_res_free(res);
	CU_ASSERT_TRUE(ras_test_golden("render/letters.txt", out.data, out.len));
	/* 015: payloads compressed with lz4 where this PostgreSQL has it */
	if (ras_db_exec(db, "CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)") == 0)
		CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM pg_attribute WHERE attrelid ="
		    " 'outbox'::regclass AND attname IN ('payload', 'doc') AND attcompression = 'l'", NULL), 2);
	ras_buf_free(&out);
}

/* A batch larger than a chunk: the same letters, each in a version of its
 * own many times over, rendered in one batch of many chunks (the last
 * letter, in the last chunk, failing), are what a batch of one letter at
 * a time makes of them. */
static void
a_batch_of_many_chunks_is_rendered_as_letters_one_at_a_time(void)
{
	const char *route = "\"transport\": \"mesh\", \"mailbox\": \"X26ABC2\", \"message\": \"fhir-r4\"";
	struct ras_buf batched = RAS_BUF_INIT(0), single = RAS_BUF_INIT(0);
	struct ras_outbox_stats st;
	char *why;

	sql("INSERT INTO outbox (referral_id, referral_key, service, kind, doc_version, recipient_role,"
	    " recipient_ods, decision_id, episode_id, deadline_id)"
	    " SELECT referral_id, referral_key, service, kind, doc_version + 10 * g, recipient_role,"
	    " recipient_ods, decision_id, episode_id, deadline_id FROM outbox, generate_series(1, 12) g"
	    " WHERE state <> 'cancelled' OR last_error IS NOT NULL");
	sql("UPDATE outbox SET local_id = 'rasd-test-' || referral_key || '-' || kind || '-' || doc_version"
	    " || '-' || recipient_role");
	sql("UPDATE outbox SET service = 'no-such-service' WHERE id = (SELECT max(id) FROM outbox)");
	render_all("many-chunks", route, NULL, 10000, &st);
	CU_ASSERT_TRUE(st.claimed > 500);
	CU_ASSERT_TRUE(st.chunks > 2);
	CU_ASSERT_TRUE(st.writes >= st.chunks);
	CU_ASSERT_TRUE(st.rendered > 400);
	why = ras_test_sql_text(db, "SELECT state || ': ' || last_error FROM outbox"
	    " WHERE id = (SELECT max(id) FROM outbox)", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(why);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "dead: service \"no-such-service\" has no"));
	free(why);
	snapshot(&batched);
	render_all("one-at-a-time", route, NULL, 1, &st);
	CU_ASSERT_EQUAL(st.chunks, st.claimed);
	snapshot(&single);
	CU_ASSERT_EQUAL(batched.len, single.len);
	CU_ASSERT_TRUE(batched.len == single.len && memcmp(batched.data, single.data, batched.len) == 0);
	ras_buf_free(&batched);
	ras_buf_free(&single);
}

/* A chunk the database refuses (here a trigger refuses one letter's
 * row): the whole batch is rolled back, nothing is half written, the
 * session stays usable, and the next run renders every letter. */
static void
a_batch_the_database_refuses_is_rolled_back_whole(void)
{
	const char *route = "\"transport\": \"fhir\", \"endpoint\": \"http://127.0.0.1:9/fhir\", "
	    "\"mode\": \"document\"";
	char conf[8192], table[4200];
	struct ras_outbox_stats st = { 0 };
	struct ras_config *cfg;
	struct ras_outbox *ob;
	int64_t pending;

	ras_test_fmt(table, sizeof(table), "%s/routes-refused.json", tmp_dir);
	routes(table, route);
	ras_test_fmt(conf, sizeof(conf), "[routing]\ntable = %s\n[outbox]\nbatch_size = 10000\n"
	    "print_dir = %s\n", table, print_dir);
	cfg = ras_test_config(conf);
	CU_ASSERT_FATAL(ras_outbox_new(cfg, RAS_SOURCE_ROOT "/mappings", &ob) == 0);
	sql("UPDATE outbox SET state = 'pending', transport = NULL, payload = NULL, doc = NULL,"
	    " last_error = NULL WHERE state <> 'cancelled' OR last_error IS NOT NULL");
	pending = ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'pending'", NULL);
	CU_ASSERT_TRUE_FATAL(pending > 100);
	/* the last pending discharge summary, whether it renders or fails (a
	 * cancelled one would never be written, and the batch never refused) */
	{
		char *last = ras_test_sql_text(db, "SELECT max(id)::text FROM outbox WHERE kind = 'discharge-summary'"
		    " AND state = 'pending'", NULL);
		char fn[512];

		CU_ASSERT_PTR_NOT_NULL_FATAL(last);
		ras_test_fmt(fn, sizeof(fn), "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$"
		    " BEGIN IF NEW.id = %s AND NEW.state <> 'pending' THEN"
		    " RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$", last);
		sql(fn);
		free(last);
	}
	sql("CREATE TRIGGER refuse_one BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_one()");
	CU_ASSERT_NOT_EQUAL(ras_outbox_render_pending(ob, db, T0, &st), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "refused by test"));
	CU_ASSERT_TRUE(st.chunks > 1);
	/* the session answers at once, and nothing of the batch was kept */
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'pending'", NULL),
	    pending);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE payload IS NOT NULL", NULL), 0);
	sql("DROP TRIGGER refuse_one ON outbox");
	sql("DROP FUNCTION refuse_one()");
	memset(&st, 0, sizeof(st));
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &st), 0);
	CU_ASSERT_EQUAL(st.claimed, pending);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'pending'", NULL), 0);
	ras_outbox_free(ob);
	ras_config_free(cfg);
}

/* The render stage reads only the answer of the stored form a letter
 * shows (RAS_DOC_FORM_ANSWER, the reason for referral): other answers,
 * more of them and in another order with the shown one last, leave the
 * letter byte for byte the same; an answer damaged in the store (no
 * link_id) still makes the letter dead, as reading the whole form did. */
static void
a_letter_reads_only_the_form_answer_it_shows(void)
{
	/* a letter that shows its referral's diagnosis answer */
	static const char pick[] =
	    "SELECT min(o.id) FROM outbox o JOIN referrals r ON r.id = o.referral_id, "
	    "jsonb_array_elements(r.doc->'form'->'answers') a WHERE o.state = 'ready' "
	    "AND o.recipient_role <> 'patient' AND a->>'link_id' = 'diagnosis' AND a->>'type' = 'string' "
	    "AND position(convert_to(a->>'value', 'UTF8') IN o.payload) > 0";
	const char *route = "\"transport\": \"fhir\", \"endpoint\": \"http://127.0.0.1:9/fhir\", "
	    "\"mode\": \"document\"";
	char conf[8192], table[4200], ids[32], q[1024];
	struct ras_outbox_stats st = { 0 };
	struct ras_config *cfg;
	struct ras_outbox *ob;
	char *before, *after, *saved, *why;
	int64_t id;

	ras_test_fmt(table, sizeof(table), "%s/routes-answers.json", tmp_dir);
	routes(table, route);
	ras_test_fmt(conf, sizeof(conf), "[routing]\ntable = %s\n[outbox]\nprint_dir = %s\n", table, print_dir);
	cfg = ras_test_config(conf);
	CU_ASSERT_FATAL(ras_outbox_new(cfg, RAS_SOURCE_ROOT "/mappings", &ob) == 0);
	id = ras_test_sql_int(db, pick, NULL);
	CU_ASSERT_TRUE_FATAL(id > 0);
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	before = ras_test_sql_text(db, "SELECT encode(sha256(payload), 'hex') FROM outbox WHERE id = $1", ids);
	saved = ras_test_sql_text(db, "SELECT r.doc::text FROM referrals r JOIN outbox o ON o.referral_id = r.id "
	    "WHERE o.id = $1", ids);
	CU_ASSERT_PTR_NOT_NULL_FATAL(before);
	CU_ASSERT_PTR_NOT_NULL_FATAL(saved);
	/* more answers, the shown one last */
	ras_test_fmt(q, sizeof(q), "UPDATE referrals r SET doc = jsonb_set(r.doc, '{form,answers}', "
	    "'[{\"link_id\": \"pain-history\", \"type\": \"string\", \"value\": \"not in any letter\"}]'::jsonb || "
	    "(SELECT jsonb_agg(a.v ORDER BY a.n DESC) FROM jsonb_array_elements(r.doc->'form'->'answers') "
	    "WITH ORDINALITY AS a(v, n))) FROM outbox o WHERE o.id = %s AND r.id = o.referral_id", ids);
	sql(q);
	ras_test_fmt(q, sizeof(q), "UPDATE outbox SET state = 'pending', transport = NULL, payload = NULL, "
	    "doc = NULL WHERE id = %s", ids);
	sql(q);
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &st), 0);
	CU_ASSERT_EQUAL(st.rendered, 1);
	after = ras_test_sql_text(db, "SELECT encode(sha256(payload), 'hex') FROM outbox WHERE id = $1 "
	    "AND state = 'ready'", ids);
	CU_ASSERT_PTR_NOT_NULL(after);
	if (after)
		CU_ASSERT_STRING_EQUAL(after, before);
	/* an answer without its link_id: the letter is dead, with the reason */
	ras_test_fmt(q, sizeof(q), "UPDATE referrals r SET doc = jsonb_set(r.doc, '{form,answers}', "
	    "'[{\"type\": \"string\", \"value\": \"damaged\"}]'::jsonb || (r.doc->'form'->'answers')) "
	    "FROM outbox o WHERE o.id = %s AND r.id = o.referral_id", ids);
	sql(q);
	ras_test_fmt(q, sizeof(q), "UPDATE outbox SET state = 'pending', transport = NULL, payload = NULL, "
	    "doc = NULL WHERE id = %s", ids);
	sql(q);
	memset(&st, 0, sizeof(st));
	CU_ASSERT_EQUAL(ras_outbox_render_pending(ob, db, T0, &st), 0);
	CU_ASSERT_EQUAL(st.dead, 1);
	why = ras_test_sql_text(db, "SELECT last_error FROM outbox WHERE id = $1 AND state = 'dead'", ids);
	CU_ASSERT_PTR_NOT_NULL(why);
	CU_ASSERT_PTR_NOT_NULL(why ? strstr(why, "has no link_id") : NULL);
	/* the referral as it was */
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "UPDATE referrals r SET doc = $1::jsonb FROM outbox o "
	    "WHERE o.id = (SELECT min(id) FROM outbox WHERE last_error LIKE '%has no link_id%') "
	    "AND r.id = o.referral_id RETURNING 1", saved), 1);
	free(before);
	free(after);
	free(saved);
	free(why);
	ras_outbox_free(ob);
	ras_config_free(cfg);
}

static int
setup(void)
{
	db = ras_test_db("render", &conninfo);
	fm = fake_mesh_start(NULL);
	if (ras_time_parse("2026-04-07T10:00:00Z", false, &T0) < 0)
		return 1;
	ras_test_fmt(tmp_dir, sizeof(tmp_dir), "%s", ras_test_tmpdir());
	ras_test_fmt(print_dir, sizeof(print_dir), "%s/print", tmp_dir);
	mkdir(print_dir, 0755);
	ras_test_fmt(pw_path, sizeof(pw_path), "%s/mesh-password", tmp_dir);
	ras_test_fmt(key_path, sizeof(key_path), "%s/mesh-shared-key", tmp_dir);
	free(ras_test_write_tmp("mesh-password", "password\n", 9));
	free(ras_test_write_tmp("mesh-shared-key", FAKE_MESH_SHARED_KEY "\n", strlen(FAKE_MESH_SHARED_KEY) + 1));
	tri = ras_test_triage(NULL, NULL);
	return 0;
}

static int
teardown(void)
{
	ras_triage_free(tri);
	fake_mesh_stop(fm);
	ras_db_close(db);
	free(conninfo);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "batched render is byte for byte the recorded output",
		  batched_render_is_byte_for_byte_the_recorded_output },
		{ "a batch of many chunks is rendered as letters one at a time",
		  a_batch_of_many_chunks_is_rendered_as_letters_one_at_a_time },
		{ "a batch the database refuses is rolled back whole",
		  a_batch_the_database_refuses_is_rolled_back_whole },
		{ "a letter reads only the form answer it shows",
		  a_letter_reads_only_the_form_answer_it_shows },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "render", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
