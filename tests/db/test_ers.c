/*
 * e-RS client integration: poll cycles, budgets, fetching and review
 * outcomes against the loopback fake e-RS and a real PostgreSQL, asserting
 * on what was stored and on exactly what rasd sent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ers_support.h"
#include "fake_ers.h"
#include "harness.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/ers.h"
#include "ras/ers_outcome.h"
#include "ras/ers_poll.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/ops.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras/xmlform.h"
#include "ras_config.h"

/* ---- helpers ---------------------------------------------------------------- */

static int64_t
uk(int y, int m, int d, int hh, int mm)
{
	struct ras_date date = { y, m, d };

	return ras_time_uk_midnight(&date) + hh * 3600 + mm * 60;
}

static int64_t
q1(struct ras_db *db, const char *sql, const char *arg)
{
	return ras_test_sql_int(db, sql, arg);
}

/* First column of the first row as text (static buffer; "" for none). */
static const char *
qs(struct ras_db *db, const char *sql, const char *arg)
{
	static char buf[8192];
	char *s = ras_test_sql_text(db, sql, arg);

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	free(s);
	return buf;
}

static bool
has_prefix_header(const struct fake_req *r, const char *prefix)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strncasecmp(r->headers[i].name, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static const struct fake_req *
find_req(struct fake_http *h, const char *method, const char *path_has, size_t nth)
{
	for (size_t i = 0; i < fake_http_count(h); i++) {
		const struct fake_req *r = fake_http_req(h, i);

		if (strcmp(r->method, method) == 0 && strstr(r->path, path_has) && nth-- == 0)
			return r;
	}
	return NULL;
}

static char *
file_sha(const char *rel)
{
	static char sha[RAS_SHA256_HEX_LEN];
	size_t len;
	char *t = ras_test_read(ras_test_fixture(rel), &len);

	ras_crypto_sha256_hex(t, len, sha);
	free(t);
	return sha;
}

/* ---- a full cycle ----------------------------------------------------------- */

static void
full_poll_cycle(void)
{
	struct ras_db *db = ras_test_db("ers_full", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_poll_report rep;
	struct fake_http *h = fake_ers_http(f), *store = fake_ers_store(f);
	const struct fake_req *r;
	const char *priv, *pub;
	int64_t now = uk(2026, 5, 12, 9, 0);
	char jti[64], *assertion;

	ers_keypair(&priv, &pub);
	ers_clock_init(&clk);
	fake_ers_set_now(f, now);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts, 21012", &clk);
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now, 0, &rep), 0);
	CU_ASSERT_STRING_EQUAL(rep.outcome, "polled");
	CU_ASSERT_EQUAL(rep.slot, 1);
	CU_ASSERT_EQUAL(rep.budget_left, 1);
	CU_ASSERT_EQUAL(rep.entries, 2);
	CU_ASSERT_EQUAL(rep.kept, 1);            /* 000000070002 TRIAGE_DEFERRAL */
	CU_ASSERT_EQUAL(rep.skipped, 1);         /* 000000070001 APPOINTMENT */
	CU_ASSERT_EQUAL(rep.fetched, 1);
	CU_ASSERT_EQUAL(rep.files.fetched, 2);   /* the letter and the A007 PDF */
	CU_ASSERT_EQUAL_FATAL(rep.nitems, 1);
	CU_ASSERT_STRING_EQUAL(rep.items[0].ubrn, "000000070002");
	CU_ASSERT_EQUAL(rep.items[0].worklist_version, 7);
	CU_ASSERT_EQUAL(rep.items[0].version, 5);   /* what A005 says (the examples disagree) */
	CU_ASSERT_EQUAL(strncmp(rep.request_id, "fake-", 5), 0);
	ras_ers_poll_report_free(&rep);

	/* stored through the inbox like any payload */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM inbox WHERE source = 'ers' AND state = 'stored'", NULL), 2);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT kind FROM inbox WHERE source_ref LIKE 'A008%'", NULL), "ers-worklist");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM referrals WHERE ubrn = '000000070002' AND version = 5",
	    NULL), "new");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT service FROM referrals WHERE ubrn = '000000070002' AND version = 5",
	    NULL), "midnotts");
	/* the worklist stub of a version e-RS no longer serves is retired */
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM referrals WHERE ubrn = '000000070002' AND version = 7",
	    NULL), "superseded");
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM events WHERE kind = 'referral-superseded'", NULL), 1);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT etag FROM ers_referrals WHERE ubrn = '000000070002'", NULL), "W/\"5\"");
	CU_ASSERT_EQUAL(q1(db, "SELECT handled_version FROM ers_referrals WHERE ubrn = '000000070002'", NULL), 7);
	/* attachment content, exactly what the object store served */
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT content_sha256 FROM attachments WHERE ubrn = '000000070002'"
	    " AND url = 'Binary/719f6045-e791-4029-8e0f-1201c02b0a55' AND state = 'fetched'", NULL),
	    file_sha("ers/local/pdf/example_attachment.pdf"));
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT content_sha256 FROM attachments WHERE ubrn = '000000070002'"
	    " AND url = 'ReferralRequest/000000070002/_history/5/$ers.generateCRI' AND state = 'fetched'", NULL),
	    file_sha("ers/local/pdf/Clinical_Information_Summary.pdf"));
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM attachments a JOIN referrals r ON r.id = a.referral_id"
	    " WHERE r.ubrn = '000000070002' AND r.version = 5", NULL), 2);

	/* what was sent: the A008 asks for this service's RFR worklist */
	r = find_req(h, "POST", "/referrals/FHIR/STU3/ReferralRequest/$ers.fetchworklist", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_TRUE(ers_body_equals(r->body, r->body_len,
	    "local/stu3/retrieveWorklist/requests/RfrService11012.json"));
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "Content-Type"), "application/fhir+json");
	/* A007 is a POST without a body and without a form Content-Type */
	r = find_req(h, "POST", "/STU3/ReferralRequest/000000070002/$ers.generateCRI", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_EQUAL(r->body_len, 0);
	CU_ASSERT_PTR_NULL(fake_req_header(r, "Content-Type"));
	CU_ASSERT_PTR_NOT_NULL(find_req(h, "GET", "/referrals/FHIR/STU3/ReferralRequest/000000070002", 0));
	CU_ASSERT_PTR_NOT_NULL(find_req(h, "GET", "/referrals/FHIR/R4/Binary/719f6045-e791-4029-8e0f-1201c02b0a55", 0));
	/* every e-RS call: a token, a correlation id, never x-ers-* or user headers */
	for (size_t i = 0; i < fake_http_count(h); i++) {
		r = fake_http_req(h, i);
		if (strcmp(r->path, "/oauth2/token") == 0)
			continue;
		CU_ASSERT_EQUAL(strncmp(fake_req_header(r, "Authorization"), "Bearer fake-token-", 18), 0);
		CU_ASSERT_PTR_NOT_NULL(fake_req_header(r, "X-Correlation-ID"));
		CU_ASSERT_FALSE(has_prefix_header(r, "x-ers-"));
		CU_ASSERT_FALSE(has_prefix_header(r, "NHSD-"));
	}
	/* the 307 was followed to the second host with nothing of e-RS's */
	CU_ASSERT_EQUAL_FATAL(fake_http_count(store), 1);
	r = fake_http_req(store, 0);
	CU_ASSERT_STRING_EQUAL(r->path, "/ObjectStore/719f6045-e791-4029-8e0f-1201c02b0a55");
	CU_ASSERT_PTR_NULL(fake_req_header(r, "Authorization"));
	CU_ASSERT_PTR_NULL(fake_req_header(r, "X-Correlation-ID"));
	CU_ASSERT_FALSE(has_prefix_header(r, "NHSD-"));
	CU_ASSERT_FALSE(has_prefix_header(r, "x-ers-"));
	/* the client assertion, checked independently */
	r = find_req(h, "POST", "/oauth2/token", 0);
	RAS_REQUIRE(r);
	assertion = ers_form_value(r->body, "client_assertion");
	CU_ASSERT_PTR_NULL(ers_check_jwt(assertion, pub, fake_ers_token_url(f), now, jti, sizeof(jti)));
	free(assertion);
	CU_ASSERT_EQUAL(fake_ers_bad_assertions(f), 0);
	CU_ASSERT(fake_ers_gzipped(f) >= 1);
	/* every call is in the call log with its correlation and request ids */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_calls", NULL), 6);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_calls WHERE endpoint <> 'object-store'"
	    " AND (correlation_id IS NULL OR request_id IS NULL)", NULL), 0);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'ok' AND slot = 1"
	    " AND request_id LIKE 'fake-%'", NULL), 1);

	/* the same worklist again: nothing new to fetch */
	fake_ers_set_now(f, now + 3600);
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now + 3600, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.unchanged, 1);
	CU_ASSERT_EQUAL(rep.fetched, 0);
	CU_ASSERT_EQUAL(rep.budget_left, 0);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "ReferralRequest/000000070002"), 1);
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "fetchworklist"), 2);
	ras_ers_poll_report_free(&rep);

	/* service 21012: the official "filter by service" request, exactly */
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "21012", now, 0, &rep), 0);
	r = find_req(h, "POST", "$ers.fetchworklist", 2);
	RAS_REQUIRE(r);
	CU_ASSERT_TRUE(ers_body_equals(r->body, r->body_len,
	    "sandbox/stu3/retrieveWorklist/requests/FilteringByService.json"));
	CU_ASSERT_EQUAL(rep.entries, 1);
	CU_ASSERT_EQUAL(rep.kept, 0);     /* its only item is a booked APPOINTMENT */
	ras_ers_poll_report_free(&rep);
	/* an unconfigured service is refused */
	CU_ASSERT_EQUAL(ras_ers_poll_service(c, db, "99999", now, 0, &rep), RAS_EINVALID);
	ras_ers_poll_report_free(&rep);

	ras_ers_free(c);
	fake_ers_stop(f);
	ras_db_close(db);
}

/* ---- budget ----------------------------------------------------------------- */

static bool
no_working_days(const struct ras_date *d, void *ctx)
{
	(void)d;
	(void)ctx;
	return false;
}

static int
poll(struct ras_ers *c, struct ras_db *db, int64_t now, unsigned flags, const char **outcome,
    int *slot)
{
	static char out[32];
	struct ras_ers_poll_report rep;
	int err = ras_ers_poll_service(c, db, "11012", now, flags, &rep);

	snprintf(out, sizeof(out), "%s", rep.outcome);
	*outcome = out;
	if (slot)
		*slot = rep.slot;
	ras_ers_poll_report_free(&rep);
	return err;
}

static void
budget(void)
{
	struct ras_db *db = ras_test_db("ers_budget", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_poll_budget b;
	const char *out;
	int slot;

	ers_clock_init(&clk);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts", &clk);
#define AT(d, h, m) (fake_ers_set_now(f, uk(2026, 5, d, h, m)), uk(2026, 5, d, h, m))
	/* Tuesday 12 May 2026, schedule 08:00 and 13:00 */
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 7, 0), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "fetchworklist"), 0);
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 8, 5), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 1);
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 9, 0), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	/* a manual poll takes the second slot */
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 10, 0), 0, &out, &slot), 0);
	CU_ASSERT_EQUAL(slot, 2);
	/* and then the day's budget is spent, whatever asks */
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 11, 0), 0, &out, NULL), RAS_ERATELIMITED);
	CU_ASSERT_STRING_EQUAL(out, "budget-exhausted");
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 13, 5), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "budget-exhausted");
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "fetchworklist"), 2);
	CU_ASSERT_EQUAL(ras_ers_poll_budget(c, db, "11012", AT(12, 13, 5), &b), 0);
	CU_ASSERT_STRING_EQUAL(b.day, "2026-05-12");
	CU_ASSERT_TRUE(b.limited);
	CU_ASSERT_EQUAL(b.used, 2);
	CU_ASSERT_EQUAL(b.left, 0);
	CU_ASSERT_EQUAL(b.next_scheduled, uk(2026, 5, 13, 8, 0));
	CU_ASSERT_STRING_EQUAL(b.last_outcome, "ok");
	/* the next day the budget is back */
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 8, 1), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 1);
	CU_ASSERT_EQUAL(ras_ers_poll_budget(c, db, "11012", AT(13, 8, 2), &b), 0);
	CU_ASSERT_EQUAL(b.left, 1);
	/* --force bypasses it against a non-production e-RS, recorded as forced */
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 12, 0), 0, &out, &slot), 0);
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 12, 1), 0, &out, NULL), RAS_ERATELIMITED);
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 12, 2), RAS_ERS_POLL_FORCE, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 0);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls WHERE forced AND slot IS NULL", NULL), 1);
	/* no scheduled poll on a non-working day; a manual one within budget */
	CU_ASSERT_EQUAL(poll(c, db, AT(16, 9, 0), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	CU_ASSERT_EQUAL(poll(c, db, AT(16, 9, 1), 0, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	/* a missed 08:00 is caught up once, not twice */
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 11, 0), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 12, 59), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 13, 0), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 2);
	/* the daemon's stage polls every configured service that is due */
	{
		struct ras_ers_poll_report *reps = NULL;
		size_t n = 0;

		CU_ASSERT_EQUAL(ras_ers_poll_due(c, db, AT(15, 13, 1), &reps, &n), 0);
		CU_ASSERT_EQUAL_FATAL(n, 1);
		CU_ASSERT_STRING_EQUAL(reps[0].service, "11012");
		CU_ASSERT_STRING_EQUAL(reps[0].outcome, "polled");
		ras_ers_poll_report_free(&reps[0]);
		free(reps);
		CU_ASSERT_EQUAL(ras_ers_poll_due(c, db, AT(15, 13, 30), &reps, &n), 0);
		CU_ASSERT_STRING_EQUAL(reps[0].outcome, "not-due");
		ras_ers_poll_report_free(&reps[0]);
		free(reps);
	}
	/* the working-day test is injectable (the calendar, when it lands) */
	ras_ers_set_workday(c, no_working_days, NULL);
	CU_ASSERT_EQUAL(poll(c, db, AT(18, 8, 30), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	ras_ers_set_workday(c, NULL, NULL);
	CU_ASSERT_EQUAL(poll(c, db, AT(18, 8, 31), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
#undef AT

	/* the database itself refuses a third slot, and forcing production */
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "INSERT INTO ers_worklist_calls (service_id, day, slot, mode,"
	    " base_url, started_at) VALUES ('11012', '2026-05-12', 3, 'application', 'x', now())"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "INSERT INTO ers_worklist_calls (service_id, day, slot, mode,"
	    " base_url, started_at) VALUES ('11012', '2026-05-12', 1, 'application', 'x', now())"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "INSERT INTO ers_worklist_calls (service_id, day, mode,"
	    " base_url, started_at) VALUES ('11012', '2026-05-20', 'application', 'x', now())"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "INSERT INTO ers_worklist_calls (service_id, day, mode, forced,"
	    " base_url, started_at) VALUES ('11012', '2026-05-20', 'application', true,"
	    " 'https://api.service.nhs.uk/referrals/FHIR', now())"), 0);
	ras_ers_free(c);

	/* --force is refused against production before anything is sent */
	{
		struct ras_ers_opts o = { 0 };
		struct ras_ers_poll_report rep;
		const char *priv, *pub;

		ers_keypair(&priv, &pub);
		o.base_url = "https://api.service.nhs.uk/referrals/FHIR";
		o.token_url = "https://api.service.nhs.uk/oauth2/token";
		o.api_key = ERS_API_KEY;
		o.kid = ERS_KID;
		o.private_key_pem = priv;
		o.private_key_len = strlen(priv);
		o.services = "11012";
		CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
		CU_ASSERT_EQUAL(ras_ers_poll_service(c, db, "11012", uk(2026, 5, 20, 9, 0), RAS_ERS_POLL_FORCE,
		    &rep), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "--force"));
		ras_ers_poll_report_free(&rep);
		ras_ers_free(c);
	}
	fake_ers_stop(f);
	ras_db_close(db);
}

/* A missed e-RS poll is never silent (issue 15): a worklist call that
 * failed, or that a killed rasd left 'claimed', does not answer the
 * schedule time; it is retried while the budget allows, and when the budget
 * is gone the scheduled poll reports "missed" (an error: the poller's state
 * is a failure), and rasctl status counts the day's failed calls. */
static void
missed_poll_never_silent(void)
{
	struct ras_db *db = ras_test_db("ers_missed", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	const char *out;
	char sql[512];
	json_t *j = NULL, *b;
	size_t i;
	int slot = 0;

	ers_clock_init(&clk);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts", &clk);
#define AT(d, h, m) (fake_ers_set_now(f, uk(2026, 5, d, h, m)), uk(2026, 5, d, h, m))
	/* Tuesday 12 May 2026, 08:00: e-RS fails the worklist call */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "POST", .path_has = "fetchworklist",
	    .status = 500, .error_code = "INTERNAL_SERVER_ERROR", .times = 20 });
	CU_ASSERT(poll(c, db, AT(12, 8, 0), RAS_ERS_POLL_SCHEDULED, &out, &slot) < 0);
	CU_ASSERT_STRING_EQUAL(out, "failed");
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'failed'", NULL), 1);
	fake_ers_clear_scripts(f);
	/* the poller's retry five minutes later: due again, and it takes slot 2 */
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 8, 5), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 2);
	/* 13:00: no budget left after a failed call: missed, and said so */
	CU_ASSERT_EQUAL(poll(c, db, AT(12, 13, 0), RAS_ERS_POLL_SCHEDULED, &out, NULL), RAS_ERATELIMITED);
	CU_ASSERT_STRING_EQUAL(out, "missed");
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "missed"));
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT last_poll_outcome FROM ers_services WHERE service_id = '11012'",
	    NULL), "missed");
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "fetchworklist"), 2);

	/* Wednesday 08:00: a rasd took slot 1 and was killed before the answer */
	snprintf(sql, sizeof(sql), "INSERT INTO ers_worklist_calls (service_id, day, slot, mode, base_url,"
	    " started_at, instance) VALUES ('11012', '2026-05-13', 1, 'application', '%s',"
	    " to_timestamp(%lld), 'killed-1')", fake_ers_base_url(f), (long long)uk(2026, 5, 13, 8, 0));
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 8, 6), RAS_ERS_POLL_SCHEDULED, &out, &slot), 0);
	CU_ASSERT_STRING_EQUAL(out, "polled");
	CU_ASSERT_EQUAL(slot, 2);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls WHERE instance = 'killed-1'"
	    " AND outcome = 'failed' AND error LIKE 'left unanswered%'", NULL), 1);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls WHERE outcome = 'claimed'", NULL), 0);
	/* a successful call answers the schedule time: nothing more until 13:00 */
	CU_ASSERT_EQUAL(poll(c, db, AT(13, 9, 0), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "not-due");
	/* a day whose calls all succeeded and whose slots a person used: the
	 * scheduled poll is not "missed" (nothing failed) */
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 7, 0), 0, &out, NULL), 0);
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 7, 1), 0, &out, NULL), 0);
	CU_ASSERT_EQUAL(poll(c, db, AT(14, 8, 1), RAS_ERS_POLL_SCHEDULED, &out, NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "budget-exhausted");
#undef AT
	ras_ers_free(c);

	/* rasctl status: today's failed calls per service */
	snprintf(sql, sizeof(sql), "INSERT INTO ers_worklist_calls (service_id, day, slot, mode, base_url,"
	    " started_at, outcome, error) VALUES ('11012', (now() AT TIME ZONE 'Europe/London')::date, 1,"
	    " 'application', 'x', now(), 'failed', 'A008: HTTP 500')");
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
	CU_ASSERT_EQUAL_FATAL(ras_ops_status(db, 24, &j), 0);
	json_array_foreach(json_object_get(j, "budgets"), i, b)
		if (strcmp(ras_json_str(b, "service"), "11012") == 0)
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "failed_today")), 1);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "budgets")), 1);
	json_decref(j);
	fake_ers_stop(f);
	ras_db_close(db);
}

struct racer {
	const char *conninfo;
	struct fake_ers *f;
	int64_t now;
	int polled, refused;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	struct ras_db *db = NULL;
	struct ers_clock clk;
	struct ras_ers *c;

	if (ras_db_connect(r->conninfo, &db) < 0)
		return NULL;
	ers_clock_init(&clk);
	c = ers_client(r->f, RAS_ERS_APPLICATION, "11012", &clk);
	for (int i = 0; i < 3; i++) {
		struct ras_ers_poll_report rep;
		int err = ras_ers_poll_service(c, db, "11012", r->now, 0, &rep);

		if (err == 0 && strcmp(rep.outcome, "polled") == 0)
			r->polled++;
		else if (err == RAS_ERATELIMITED || err == RAS_ECONFLICT)
			r->refused++;
		ras_ers_poll_report_free(&rep);
	}
	ras_ers_free(c);
	ras_db_close(db);
	return NULL;
}

static void
budget_instances(void)
{
	char *conninfo = NULL;
	struct ras_db *db = ras_test_db("ers_race", &conninfo);
	struct fake_ers *f = ers_fake_start(false);
	struct racer a = { conninfo, f, uk(2026, 5, 12, 9, 0), 0, 0 }, b = a;
	pthread_t ta, tb;

	fake_ers_set_now(f, a.now);
	pthread_create(&ta, NULL, race, &a);
	pthread_create(&tb, NULL, race, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	/* two instances, six attempts: two worklist calls */
	CU_ASSERT_EQUAL(a.polled + b.polled, 2);
	CU_ASSERT_EQUAL(a.refused + b.refused, 4);
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "fetchworklist"), 2);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM ers_worklist_calls", NULL), 2);
	fake_ers_stop(f);
	ras_db_close(db);
	free(conninfo);
}

/* ---- attachments, forms, related referrals --------------------------------- */

static struct ras_xmlform_maps *
maps(void)
{
	struct ras_xmlform_maps *m = NULL;
	struct ras_buf problems = RAS_BUF_INIT(0);

	if (ras_xmlform_maps_load(RAS_SOURCE_ROOT "/mappings/form-maps", &m, &problems) < 0)
		exit(1);
	ras_buf_free(&problems);
	return m;
}

static void
forms_and_attachments(void)
{
	struct ras_db *db = ras_test_db("ers_forms", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ras_xmlform_maps *m = maps();
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_poll_report rep;
	struct ras_ers_fetch_report fr;
	int64_t now = uk(2026, 5, 12, 9, 0);

	ers_clock_init(&clk);
	fake_ers_set_now(f, now);
	c = ers_client(f, RAS_ERS_APPLICATION, "21013=dorset-2019", &clk);
	ras_ers_set_form_maps(c, m);   /* XML and XHTML form attachments */
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "21013", now, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.kept, 4);
	CU_ASSERT_EQUAL(rep.fetched, 4);
	CU_ASSERT_EQUAL(rep.related, 1);            /* 000000070004, named by 000000070005 */
	CU_ASSERT_EQUAL(rep.files.blocked, 2);
	CU_ASSERT_EQUAL(rep.files.pending, 1);
	CU_ASSERT_EQUAL(rep.files.forms, 3);        /* JSON, FHIR XML, XHTML */
	ras_ers_poll_report_free(&rep);

	/* a related referral is context, not a referral for this service */
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM referrals WHERE ubrn = '000000070004'", NULL), "related");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT related_to FROM ers_referrals WHERE ubrn = '000000070004'", NULL),
	    "000000070005");
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM referrals WHERE state = 'new'", NULL), 4);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM attachments WHERE ubrn = '000000070004' AND state = 'fetched'",
	    NULL), 5);
	/* availability decides: PENDING later, THREATS_FOUND / VALIDATION_FAILED never */
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE ubrn = '000000070012'"
	    " AND url = 'Binary/19eb7224-dff3-4730-a5cb-67eac811f1a5'", NULL), "pending");
	CU_ASSERT_EQUAL(q1(db, "SELECT extract(epoch FROM next_attempt_at)::bigint FROM attachments"
	    " WHERE ubrn = '000000070012' AND url = 'Binary/19eb7224-dff3-4730-a5cb-67eac811f1a5'", NULL), now + 300);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM attachments WHERE ubrn = '000000070012' AND state = 'blocked'"
	    " AND error LIKE '%contact the organisation%'", NULL), 2);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "Binary/adda8c72"), 0);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "Binary/9e554611"), 0);
	/* forms through the inbox as the referral's form; the XHTML one last */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM inbox WHERE source_ref LIKE 'A042 %' AND state = 'stored'"
	    " AND ubrn_hint = '000000070020'", NULL), 3);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM events WHERE kind = 'form-received' AND ubrn = '000000070020'",
	    NULL), 3);
	CU_ASSERT_EQUAL(q1(db, "SELECT a.value_integer FROM referral_answers a JOIN referrals r ON r.id = a.referral_id"
	    " WHERE r.ubrn = '000000070020' AND a.link_id = 'pain-duration-weeks'", NULL), 14);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT form_questionnaire FROM referrals WHERE ubrn = '000000070020'", NULL),
	    "urn:rasd:questionnaire:community-pain-referral");
	/* the PDF letter of the same referral is not a form */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM inbox WHERE source_ref LIKE 'A042 Binary/19eb%'", NULL), 0);

	/* PENDING: not before 5 minutes; then A042 says PENDING again; later it comes */
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 60, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.fetched + fr.pending, 0);
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "R4/Binary/19eb7224",
	    .status = 422, .error_code = "PENDING" });
	fake_ers_set_now(f, now + 301);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 301, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.pending, 1);
	CU_ASSERT(q1(db, "SELECT extract(epoch FROM next_attempt_at)::bigint FROM attachments"
	    " WHERE ubrn = '000000070012' AND url LIKE 'Binary/19eb%'", NULL) >= now + 301 + 300);
	fake_ers_set_now(f, now + 86400);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 86400, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.fetched, 1);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE ubrn = '000000070012'"
	    " AND url LIKE 'Binary/19eb%'", NULL), "fetched");
	/* blocked ones stay blocked */
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "Binary/adda8c72"), 0);

	ras_xmlform_maps_free(m);
	ras_ers_free(c);
	fake_ers_stop(f);
	ras_db_close(db);
}

static void
fetch_failures(void)
{
	struct ras_db *db = ras_test_db("ers_fail", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_poll_report rep;
	struct ras_ers_fetch_report fr;
	int64_t now = uk(2026, 5, 12, 9, 0);

	ers_clock_init(&clk);
	fake_ers_set_now(f, now);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012, 21013", &clk);
	/* PATIENT_ERROR: "do not attempt again" */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070002",
	    .status = 422, .error_code = "PATIENT_ERROR" });
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.parked, 1);
	CU_ASSERT_EQUAL_FATAL(rep.nitems, 1);
	CU_ASSERT_STRING_EQUAL(rep.items[0].state, "parked");
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.items[0].error, "PATIENT_ERROR"));
	ras_ers_poll_report_free(&rep);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT error_code FROM ers_referrals WHERE ubrn = '000000070002'"
	    " AND fetch_state = 'parked'", NULL), "PATIENT_ERROR");
	CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "000000070002/$ers.generateCRI"), 0);
	/* parked stays parked: not asked again, by the poll or the retry stage */
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 86400, 100, &fr), 0);
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now + 60, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.parked, 1);
	ras_ers_poll_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "ReferralRequest/000000070002"), 1);

	/* 429 (empty body) on A005 and 503 on A007: waited for, then fine;
	 * the object store failing once: retried later with a new A042 (a 307
	 * Location is never reused) */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070005",
	    .status = 429 });
	fake_ers_script(f, &(struct fake_ers_script){ .method = "POST", .path_has = "000000070003/$ers.generateCRI",
	    .status = 503, .retry_after = "3", .error_code = "SYSTEM_UNAVAILABLE" });
	fake_ers_script(f, &(struct fake_ers_script){ .host = "store", .path_has = "/ObjectStore/80245c92",
	    .status = 500, .body = "" });
	/* A005 of 000000070012 fails five times (max_attempts): retried later */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070012",
	    .status = 503, .body = "", .times = 5 });
	ers_clock_init(&clk);
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "21013", now, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.failed, 1);
	CU_ASSERT(clk.slept >= 750 + 3000);
	ras_ers_poll_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "ReferralRequest/000000070005"), 2);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE url ="
	    " 'ReferralRequest/000000070003/_history/5/$ers.generateCRI'", NULL), "fetched");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT fetch_state FROM ers_referrals WHERE ubrn = '000000070012'", NULL),
	    "failed");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE url LIKE 'Binary/80245c92%'", NULL),
	    "listed");
	CU_ASSERT_PTR_NOT_NULL(strstr(qs(db, "SELECT error FROM attachments WHERE url LIKE 'Binary/80245c92%'", NULL),
	    "HTTP 500"));
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "R4/Binary/80245c92"), 1);
	/* the retry stage picks both up once their time has come */
	fake_ers_set_now(f, now + 7200);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 7200, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.referrals_fetched, 1);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT fetch_state FROM ers_referrals WHERE ubrn = '000000070012'", NULL),
	    "fetched");
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE url LIKE 'Binary/80245c92%'", NULL),
	    "fetched");
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "R4/Binary/80245c92"), 2);
	/* THREATS_FOUND from A042 itself (a file marked AVAILABLE in A005): blocked */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "R4/Binary/19eb7224",
	    .status = 422, .error_code = "THREATS_FOUND" });
	CU_ASSERT_EQUAL(ras_db_exec(db, "UPDATE attachments SET state = 'listed', next_attempt_at = NULL,"
	    " content = NULL WHERE ubrn = '000000070003' AND url LIKE 'Binary/19eb%'"), 0);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 7300, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.blocked, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(qs(db, "SELECT error FROM attachments WHERE ubrn = '000000070003'"
	    " AND url LIKE 'Binary/19eb%'", NULL), "THREATS_FOUND"));
	fake_ers_set_now(f, now + 90000);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 90000, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.blocked + fr.failed, 0);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM attachments WHERE ubrn = '000000070003'"
	    " AND url LIKE 'Binary/19eb%'", NULL), "blocked");

	ras_ers_free(c);
	fake_ers_stop(f);
	ras_db_close(db);
}

/* ---- review outcomes ----------------------------------------------------------- */

/* Store the official A005 of `ubrn` as e-RS would have given it. */
static int64_t
stored_referral(struct ras_db *db, const char *rel, const char *ubrn)
{
	size_t len;
	char path[256];
	char *t;
	struct ras_inbox_item it = { 0 };

	snprintf(path, sizeof(path), "ers/sandbox/stu3/retrieveReferralRequest/responses/%s", rel);
	t = ras_test_read(ras_test_fixture(path), &len);
	it.data = t;
	it.len = len;
	it.source = "ers";
	it.source_ref = "test";
	it.ubrn_hint = ubrn;
	it.service_hint = "midnotts";
	(void)ras_test_ingest(db, &it);
	free(t);
	return q1(db, "SELECT id FROM referrals WHERE ubrn = $1 ORDER BY version DESC LIMIT 1", ubrn);
}

static int64_t
decide(struct ras_db *db, int64_t referral, const char *outcome, bool final, const char *by,
    const char *advice)
{
	char rid[24], reasons[1024];
	struct ras_db_res *res = NULL;
	int64_t id = 0;
	json_t *r = json_pack("[{s:s, s:s, s:s*, s:s}]", "rule", "test.rule", "clause", "004 §3.4",
	    "advice", advice, "stage", "clinical");
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_json_dump(r, RAS_JSON_COMPACT, &b);
	snprintf(reasons, sizeof(reasons), "%s", b.data);
	ras_buf_free(&b);
	json_decref(r);
	snprintf(rid, sizeof(rid), "%lld", (long long)referral);
	CU_ASSERT_EQUAL_FATAL(ras_db_query(db, &res,
	    "INSERT INTO decisions (referral_id, service, outcome, final, reasons, facts, ruleset_version,"
	    " decided_by) VALUES ($1::bigint, 'midnotts', $2, $3::boolean, $4::jsonb, '{}', 'test', $5)"
	    " RETURNING id", 5, (struct ras_db_param[]){ RAS_DB_TEXT(rid), RAS_DB_TEXT(outcome),
	    RAS_DB_TEXT(final ? "true" : "false"), RAS_DB_TEXT(reasons), RAS_DB_TEXT(by) }), 0);
	(void)ras_db_res_int(res, 0, 0, &id);
	ras_db_res_free(res);
	return id;
}

static const char *
intent_state(struct ras_db *db, const char *ubrn)
{
	return qs(db, "SELECT state FROM ers_outcomes WHERE ubrn = $1 ORDER BY id DESC LIMIT 1", ubrn);
}

struct outcome_env {
	struct ras_db *db;
	struct fake_ers *f;
	struct ers_clock clk;
	struct ras_ers *c;
	int64_t now;
};

static void
env_start(struct outcome_env *e, const char *name)
{
	e->db = ras_test_db(name, NULL);
	e->f = ers_fake_start(true);
	ers_clock_init(&e->clk);
	e->now = uk(2026, 5, 12, 10, 0);
	fake_ers_set_now(e->f, e->now);
	e->c = ers_client(e->f, RAS_ERS_APPLICATION, "11012", &e->clk);
}

static void
env_stop(struct outcome_env *e)
{
	ras_ers_free(e->c);
	fake_ers_stop(e->f);
	ras_db_close(e->db);
}

static struct ras_ers_outcome_report
run(struct outcome_env *e, int64_t at)
{
	struct ras_ers_outcome_report rep;

	fake_ers_set_now(e->f, at);
	CU_ASSERT_EQUAL(ras_ers_outcome_pending(e->c, e->db, at, 100, &rep), 0);
	return rep;
}

static void
outcome_bodies(void)
{
	struct outcome_env e;
	struct ras_ers_outcome_report rep;
	const struct fake_req *r;
	int64_t ref;

	env_start(&e, "ers_bodies");
	/* a return to the referrer with the decision's advice */
	ref = stored_referral(e.db, "Unbooked.json", "000000070000");
	fake_ers_referral(e.f, "000000070000", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "return", true, "rules", "Condition not serious. No further action needed");
	CU_ASSERT_STRING_EQUAL(intent_state(e.db, "000000070000"), "pending");
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM events WHERE kind = 'ers-outcome-queued'", NULL), 1);
	rep = run(&e, e.now);
	CU_ASSERT_EQUAL(rep.done, 1);
	CU_ASSERT_EQUAL_FATAL(rep.n, 1);
	CU_ASSERT_EQUAL(rep.v[0].result_version, 6);
	CU_ASSERT_EQUAL(rep.v[0].a028_calls, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_STRING_EQUAL(intent_state(e.db, "000000070000"), "done");
	CU_ASSERT_EQUAL(q1(e.db, "SELECT result_version FROM ers_outcomes WHERE ubrn = '000000070000'", NULL), 6);
	CU_ASSERT_STRING_EQUAL(qs(e.db, "SELECT ers_reason FROM ers_outcomes WHERE ubrn = '000000070000'", NULL),
	    "RETURN_TO_REFERRER_WITH_ADVICE");
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070000"), 1);
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM events WHERE kind = 'ers-outcome-recorded'", NULL), 1);
	/* A029 for the current version first, then A028 with If-Match */
	CU_ASSERT_PTR_NOT_NULL(find_req(fake_ers_http(e.f), "GET",
	    "/referrals/FHIR/STU3/Task?focus=ReferralRequest/000000070000/_history/5&intent=proposal&status=ready", 0));
	r = find_req(fake_ers_http(e.f), "POST", "/referrals/FHIR/STU3/ReferralRequest/000000070000/$ers.recordReviewOutcome", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "If-Match"), "W/\"5\"");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "Content-Type"), "application/fhir+json");
	CU_ASSERT_TRUE(ers_body_equals(r->body, r->body_len,
	    "sandbox/stu3/recordTriageOutcome/requests/ReturnToReferrerWithAdvice.json"));
	/* running again does nothing */
	rep = run(&e, e.now + 60);
	CU_ASSERT_EQUAL(rep.n, 0);
	ras_ers_outcome_report_free(&rep);

	/* an acceptance keeps the referral's priority (URGENT here) */
	ref = stored_referral(e.db, "DeferredToProvider.json", "000000070003");
	fake_ers_referral(e.f, "000000070003", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", false, "C0123456789", "Urgent action needed. To be booked ASAP");
	rep = run(&e, e.now + 120);
	CU_ASSERT_EQUAL(rep.done, 1);
	ras_ers_outcome_report_free(&rep);
	r = find_req(fake_ers_http(e.f), "POST", "000000070003/$ers.recordReviewOutcome", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_TRUE(ers_body_equals(r->body, r->body_len,
	    "sandbox/stu3/recordTriageOutcome/requests/AcceptReferBookLater.json"));

	/* an acceptance without advice gets the configured comment, never none */
	ref = stored_referral(e.db, "BookedDBS.json", "000000070001");
	fake_ers_referral(e.f, "000000070001", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", true, "rules", NULL);
	rep = run(&e, e.now + 180);
	CU_ASSERT_EQUAL(rep.done, 1);
	ras_ers_outcome_report_free(&rep);
	r = find_req(fake_ers_http(e.f), "POST", "000000070001/$ers.recordReviewOutcome", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->body, ras_ers_accept_comment(e.c)));

	/* a return without advice is never sent */
	ref = stored_referral(e.db, "WithAdditionalRequirements.json", "000000070011");
	fake_ers_referral(e.f, "000000070011", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "return", true, "rules", "   ");
	rep = run(&e, e.now + 240);
	CU_ASSERT_EQUAL(rep.parked, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070011/$ers.recordReviewOutcome"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(qs(e.db, "SELECT error FROM ers_outcomes WHERE ubrn = '000000070011'", NULL),
	    "needs advice"));
	env_stop(&e);
}

/* ---- the triage hook: poll, triage, record ------------------------------------- */

/* The shipped mappings with one more midnotts rule: e-RS referrals are
 * returned (administrative, so final) with exactly the advice of the
 * official RETURN_TO_REFERRER_WITH_ADVICE example. */
static struct ras_triage *
returning_triage(void)
{
	char *dir = ras_test_mappings_copy("mappings-ers-return"), *text, *path;
	struct ras_buf b = RAS_BUF_INIT(0);
	struct ras_triage *t;
	json_t *rs = NULL;
	size_t len;

	path = malloc(strlen(dir) + 64);
	snprintf(path, strlen(dir) + 64, "%s/services/midnotts.json", dir);
	text = ras_test_read(path, &len);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(text, len, 0, &rs), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_insert_new(json_object_get(rs, "rules"), 0,
	    json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:b}, s:s, s:s, s:s}",
	    "id", "midnotts.test-ers-return", "stage", "eligibility", "kind", "administrative",
	    "clause", "004 \xc2\xa7" "3.4", "when", "fact", "referral.from_ers", "eq", 1,
	    "outcome", "return", "advice", "Condition not serious. No further action needed",
	    "comment", "test only: every e-RS referral is returned")), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_dump(rs, RAS_JSON_PRETTY, &b), 0);
	free(ras_test_write_tmp("mappings-ers-return/services/midnotts.json", b.data, b.len));
	t = ras_test_triage(NULL, dir);
	ras_buf_free(&b);
	json_decref(rs);
	free(text);
	free(path);
	free(dir);
	return t;
}

static void
poll_triages_and_records(void)
{
	struct ras_db *db = ras_test_db("ers_triage", NULL);
	struct fake_ers *f = ers_fake_start(true);
	struct ras_triage *t = returning_triage();
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_poll_report rep;
	struct ras_ers_fetch_report fr;
	struct ras_ers_outcome_report orep;
	const struct fake_req *r;
	int64_t now = uk(2026, 5, 12, 9, 0);
	char etag[32];

	ers_clock_init(&clk);
	fake_ers_set_now(f, now);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts", &clk);
	ras_ers_set_triage(c, t);
	CU_ASSERT_PTR_EQUAL(ras_ers_triage(c), t);

	/* One poll cycle stores the example worklist's RAS referral with its
	 * attachments, and triages it before it returns. */
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now, 0, &rep), 0);
	CU_ASSERT_STRING_EQUAL(rep.outcome, "polled");
	CU_ASSERT_EQUAL(rep.fetched, 1);
	CU_ASSERT_EQUAL(rep.files.fetched, 2);
	CU_ASSERT_EQUAL(rep.triaged, 1);
	CU_ASSERT_EQUAL_FATAL(rep.nitems, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.items[0].triage,
	    "midnotts: return (final) midnotts.test-ers-return [004 \xc2\xa7" "3.4]"));
	ras_ers_poll_report_free(&rep);
	CU_ASSERT_STRING_EQUAL(qs(db, "SELECT state FROM referrals WHERE ubrn = '000000070002'"
	    " ORDER BY version DESC LIMIT 1", NULL), "decided");
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM attachments a JOIN referrals r ON r.id = a.referral_id"
	    " JOIN current_decisions d ON d.referral_id = r.id WHERE r.ubrn = '000000070002'"
	    " AND a.state = 'fetched' AND d.outcome = 'return' AND d.final", NULL), 2);
	/* the decision became an outcome intent (the trigger on decisions) */
	CU_ASSERT_STRING_EQUAL(intent_state(db, "000000070002"), "pending");

	/* ... recorded on e-RS with exactly the official example's body */
	fake_ers_set_now(f, now + 60);
	CU_ASSERT_EQUAL(ras_ers_outcome_pending(c, db, now + 60, 100, &orep), 0);
	CU_ASSERT_EQUAL(orep.done, 1);
	ras_ers_outcome_report_free(&orep);
	r = find_req(fake_ers_http(f), "POST",
	    "/referrals/FHIR/STU3/ReferralRequest/000000070002/$ers.recordReviewOutcome", 0);
	RAS_REQUIRE(r);
	CU_ASSERT_TRUE(ers_body_equals(r->body, r->body_len,
	    "sandbox/stu3/recordTriageOutcome/requests/ReturnToReferrerWithAdvice.json"));
	ras_test_fmt(etag, sizeof(etag), "%s", qs(db, "SELECT etag FROM ers_referrals WHERE ubrn = '000000070002'",
	    NULL));
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "If-Match"), etag);
	CU_ASSERT_EQUAL(fake_ers_writes(f, "000000070002"), 1);
	/* e-RS has it back with the referrer: the return clock is met */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM deadlines d JOIN referrals x ON x.id = d.referral_id"
	    " WHERE x.ubrn = '000000070002' AND d.kind = 'return' AND d.met_by LIKE 'ers-outcome:%'", NULL), 1);
	ras_ers_free(c);
	fake_ers_stop(f);
	ras_db_close(db);

	/* A referral whose A005 failed in the cycle is triaged by the retry stage. */
	db = ras_test_db("ers_triage_retry", NULL);
	f = ers_fake_start(true);
	fake_ers_set_now(f, now);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts", &clk);
	ras_ers_set_triage(c, t);
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET",
	    .path_has = "STU3/ReferralRequest/000000070002", .status = 500 });
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_service(c, db, "11012", now, 0, &rep), 0);
	CU_ASSERT_EQUAL(rep.failed, 1);
	CU_ASSERT_EQUAL(rep.triaged, 0);
	ras_ers_poll_report_free(&rep);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM decisions", NULL), 0);
	fake_ers_set_now(f, now + 7200);
	CU_ASSERT_EQUAL(ras_ers_poll_fetch_due(c, db, now + 7200, 100, &fr), 0);
	CU_ASSERT_EQUAL(fr.referrals_fetched, 1);
	CU_ASSERT_EQUAL(fr.triaged, 1);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM current_decisions WHERE outcome = 'return' AND final", NULL), 1);
	ras_ers_free(c);
	fake_ers_stop(f);
	ras_db_close(db);
	ras_triage_free(t);
}

/* The poll schedule counts the triage calendar's working days: no
 * scheduled poll on Good Friday or Easter Monday. */
static void
schedule_uses_the_calendar(void)
{
	struct ras_db *db = ras_test_db("ers_calendar", NULL);
	struct fake_ers *f = ers_fake_start(false);
	struct ras_triage *t = ras_test_triage(NULL, NULL);
	struct ers_clock clk;
	struct ras_ers_poll_budget b;
	struct ras_ers *c;

	ers_clock_init(&clk);
	c = ers_client(f, RAS_ERS_APPLICATION, "11012=midnotts", &clk);
	/* Monday to Friday only (no calendar): Good Friday is a working day */
	CU_ASSERT_EQUAL(ras_ers_poll_budget(c, db, "11012", uk(2026, 4, 2, 14, 0), &b), 0);
	CU_ASSERT_EQUAL(b.next_scheduled, uk(2026, 4, 3, 8, 0));
	ras_ers_set_triage(c, t);
	CU_ASSERT_EQUAL(ras_ers_poll_budget(c, db, "11012", uk(2026, 4, 3, 9, 0), &b), 0);
	CU_ASSERT_FALSE(b.working_day);
	/* Thursday 2 April after 13:00: next is Tuesday 7 April 08:00 */
	CU_ASSERT_EQUAL(ras_ers_poll_budget(c, db, "11012", uk(2026, 4, 2, 14, 0), &b), 0);
	CU_ASSERT_TRUE(b.working_day);
	CU_ASSERT_EQUAL(b.next_scheduled, uk(2026, 4, 7, 8, 0));
	ras_ers_free(c);
	ras_triage_free(t);
	fake_ers_stop(f);
	ras_db_close(db);
}

static void
outcome_which_decisions(void)
{
	struct outcome_env e;
	struct ras_ers_outcome_report rep;
	int64_t ref;

	env_start(&e, "ers_which");
	ref = stored_referral(e.db, "Unbooked.json", "000000070000");
	fake_ers_referral(e.f, "000000070000", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	/* onward, review, and a rules recommendation wait for a person */
	decide(e.db, ref, "onward", true, "rules", "Refer to the 2WW pathway");
	decide(e.db, ref, "review", false, "rules", NULL);
	decide(e.db, ref, "accept", false, "rules", NULL);
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM ers_outcomes", NULL), 0);
	CU_ASSERT_EQUAL(ras_ers_outcome_record(e.c, e.db, "000000070000", e.now, &rep), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "awaiting a clinician"));
	ras_ers_outcome_report_free(&rep);
	/* the clinician's decision is recorded; an earlier unsent one is replaced */
	decide(e.db, ref, "accept", true, "rules", "Accepted");
	decide(e.db, ref, "return", false, "C0123456789", "Please try physiotherapy first.");
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM ers_outcomes WHERE state = 'superseded'", NULL), 1);
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM ers_outcomes WHERE state = 'pending'", NULL), 1);
	CU_ASSERT_EQUAL(ras_ers_outcome_record(e.c, e.db, "000000070000", e.now, &rep), 0);
	CU_ASSERT_EQUAL_FATAL(rep.n, 1);
	CU_ASSERT_STRING_EQUAL(rep.v[0].state, "done");
	CU_ASSERT_STRING_EQUAL(rep.v[0].review_outcome, "RETURN_TO_REFERRER_WITH_ADVICE");
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070000"), 1);
	CU_ASSERT_EQUAL(ras_ers_outcome_record(e.c, e.db, "000000070000", e.now, &rep), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "already settled"));
	ras_ers_outcome_report_free(&rep);
	/* at most one write in flight per UBRN, whatever the instances do */
	CU_ASSERT_EQUAL(ras_db_exec(e.db, "INSERT INTO ers_outcomes (decision_id, referral_id, ubrn, version,"
	    " review_outcome, comments, state) SELECT id, referral_id, '000000070000', 5,"
	    " 'ACCEPT_REFER_BOOK_LATER', 'x', 'sending' FROM decisions ORDER BY id LIMIT 1"), 0);
	CU_ASSERT_EQUAL(ras_db_exec(e.db, "INSERT INTO ers_outcomes (decision_id, referral_id, ubrn, version,"
	    " review_outcome, comments, state) SELECT id, referral_id, '000000070000', 5,"
	    " 'ACCEPT_REFER_BOOK_LATER', 'x', 'unknown' FROM decisions ORDER BY id LIMIT 1 OFFSET 1"),
	    RAS_ECONFLICT);
	env_stop(&e);
}

static void
outcome_lost_answer(void)
{
	struct outcome_env e;
	struct ras_ers_outcome_report rep;
	int64_t ref;

	env_start(&e, "ers_lost");
	ref = stored_referral(e.db, "BookedDBS.json", "000000070001");
	fake_ers_referral(e.f, "000000070001", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "return", true, "rules", "Please complete the electronic referral form.");
	/* e-RS records it, but the answer never arrives */
	fake_ers_script(e.f, &(struct fake_ers_script){ .method = "POST", .path_has = "recordReviewOutcome",
	    .apply = true, .drop = true });
	rep = run(&e, e.now);
	CU_ASSERT_EQUAL(rep.unknown, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_STRING_EQUAL(intent_state(e.db, "000000070001"), "unknown");
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070001"), 1);
	/* the next run reads A005 first and finds it done: no second write */
	rep = run(&e, e.now + 1);
	CU_ASSERT_EQUAL(rep.done, 1);
	CU_ASSERT_EQUAL_FATAL(rep.n, 1);
	CU_ASSERT_EQUAL(rep.v[0].a028_calls, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.v[0].message, "already shows"));
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "recordReviewOutcome"), 1);
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070001"), 1);
	CU_ASSERT_STRING_EQUAL(intent_state(e.db, "000000070001"), "done");

	/* a 5xx that was not applied: re-read, then (only then) written again */
	ref = stored_referral(e.db, "Unbooked.json", "000000070000");
	fake_ers_referral(e.f, "000000070000", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "return", true, "rules", "Please complete the electronic referral form.");
	fake_ers_script(e.f, &(struct fake_ers_script){ .method = "POST", .path_has = "000000070000/$ers.record",
	    .status = 503, .error_code = "SYSTEM_UNAVAILABLE", .retry_after = "1" });
	rep = run(&e, e.now + 10);
	CU_ASSERT_EQUAL(rep.unknown, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070000/$ers.recordReviewOutcome"), 1);
	rep = run(&e, e.now + 20);
	CU_ASSERT_EQUAL(rep.done, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070000/$ers.recordReviewOutcome"), 2);
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070000"), 1);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "GET", "STU3/ReferralRequest/000000070000"), 2);

	/* an instance died with an A028 in flight: after the lease the intent is
	 * treated as unknown, read first, then sent (it had not been applied) */
	ref = stored_referral(e.db, "DeferredToProvider.json", "000000070003");
	fake_ers_referral(e.f, "000000070003", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
	CU_ASSERT_EQUAL(ras_db_exec(e.db, "UPDATE ers_outcomes SET state = 'sending', attempts = 1,"
	    " next_attempt_at = to_timestamp(1) + interval '0' WHERE ubrn = '000000070003'"), 0);
	rep = run(&e, e.now + 30);
	CU_ASSERT_EQUAL(rep.done, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070003"), 1);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070003/$ers.recordReviewOutcome"), 1);
	env_stop(&e);
}

static void
outcome_conflicts(void)
{
	struct outcome_env e;
	struct ras_ers_outcome_report rep;
	int64_t ref, next;

	env_start(&e, "ers_conflict");
	/* 409 because someone else recorded a review meanwhile: not overwritten */
	ref = stored_referral(e.db, "WithAdditionalRequirements.json", "000000070011");
	fake_ers_referral(e.f, "000000070011", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
	fake_ers_script(e.f, &(struct fake_ers_script){ .method = "POST", .path_has = "recordReviewOutcome",
	    .status = 409, .error_code = "VERSION_CONFLICT", .other_reason = "RETURN_TO_REFERRER_WITH_ADVICE",
	    .other_comments = "Seen in clinic: please refer to physiotherapy first" });
	rep = run(&e, e.now);
	CU_ASSERT_EQUAL(rep.overtaken, 1);
	CU_ASSERT_EQUAL_FATAL(rep.n, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.v[0].message, "someone else"));
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_STRING_EQUAL(intent_state(e.db, "000000070011"), "overtaken");
	CU_ASSERT_STRING_EQUAL(qs(e.db, "SELECT ers_reason FROM ers_outcomes WHERE ubrn = '000000070011'", NULL),
	    "RETURN_TO_REFERRER_WITH_ADVICE");
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "recordReviewOutcome"), 1);
	CU_ASSERT_EQUAL(fake_ers_writes(e.f, "000000070011"), 0);
	CU_ASSERT_EQUAL(q1(e.db, "SELECT count(*) FROM events WHERE kind = 'ers-outcome-overtaken'"
	    " AND detail ->> 'ers_reason' = 'RETURN_TO_REFERRER_WITH_ADVICE'", NULL), 1);
	rep = run(&e, e.now + 3600);
	CU_ASSERT_EQUAL(rep.n, 0);
	ras_ers_outcome_report_free(&rep);

	/* 423: locked by a concurrent update, back off and try later */
	ref = stored_referral(e.db, "WithRelatedReferral.json", "000000070005");
	fake_ers_referral(e.f, "000000070005", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
	fake_ers_script(e.f, &(struct fake_ers_script){ .method = "POST", .path_has = "000000070005/$ers.record",
	    .status = 423, .error_code = "LOCKED" });
	rep = run(&e, e.now);
	CU_ASSERT_EQUAL(rep.retry, 1);
	ras_ers_outcome_report_free(&rep);
	next = q1(e.db, "SELECT extract(epoch FROM next_attempt_at)::bigint FROM ers_outcomes"
	    " WHERE ubrn = '000000070005'", NULL);
	CU_ASSERT(next >= e.now + 45 && next <= e.now + 75);
	rep = run(&e, next - 1);
	CU_ASSERT_EQUAL(rep.n, 0);
	ras_ers_outcome_report_free(&rep);
	rep = run(&e, next);
	CU_ASSERT_EQUAL(rep.done, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070005/$ers.recordReviewOutcome"), 2);

	/* the referral changed on e-RS after the decision: stale, not written */
	ref = stored_referral(e.db, "Unbooked.json", "000000070000");
	fake_ers_referral(e.f, "000000070000", 6, "AWAITING_TRIAGE", "TRIAGE", NULL);
	decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
	rep = run(&e, e.now + 10);
	CU_ASSERT_EQUAL(rep.stale, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070000/$ers.recordReviewOutcome"), 0);

	/* A029 without RECORD_REVIEW_OUTCOME: a person must act */
	ref = stored_referral(e.db, "BookedIBS.json", "000000070002");
	fake_ers_referral(e.f, "000000070002", 5, "BOOKED", NULL, NULL);
	decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
	rep = run(&e, e.now + 20);
	CU_ASSERT_EQUAL(rep.not_offered, 1);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070002/$ers.recordReviewOutcome"), 0);
	env_stop(&e);
}

static void
outcome_refusals(void)
{
	static const struct { const char *file, *ubrn; int status; const char *code; } cases[] = {
		{ "WithUnavailableAttachments.json", "000000070012", 422, "PATIENT_ERROR" },
		{ "ConvertedFromAdviceAndGuidance.json", "000000070004", 422, "INVALID_STATE" },
		{ "Unbooked.json", "000000070000", 422, "NO_RELATIONSHIP" },
		{ "BookedDBS.json", "000000070001", 412, "MISSING_VALUE" },
		{ "DeferredToProvider.json", "000000070003", 403, "NO_ACCESS" },
	};
	struct outcome_env e;
	struct ras_ers_outcome_report rep;

	env_start(&e, "ers_refusals");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ref = stored_referral(e.db, cases[i].file, cases[i].ubrn);
		char path[64];

		fake_ers_referral(e.f, cases[i].ubrn, 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
		decide(e.db, ref, "return", true, "rules", "Please complete the electronic referral form.");
		snprintf(path, sizeof(path), "%s/$ers.record", cases[i].ubrn);
		fake_ers_script(e.f, &(struct fake_ers_script){ .method = "POST", .path_has = path,
		    .status = cases[i].status, .error_code = cases[i].code });
	}
	rep = run(&e, e.now);
	CU_ASSERT_EQUAL(rep.parked, 5);
	ras_ers_outcome_report_free(&rep);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_STRING_EQUAL(intent_state(e.db, cases[i].ubrn), "parked");
		CU_ASSERT_STRING_EQUAL(qs(e.db, "SELECT error_code FROM ers_outcomes WHERE ubrn = $1", cases[i].ubrn),
		    cases[i].code);
	}
	/* parked means parked: nothing is retried on its own */
	rep = run(&e, e.now + 86400);
	CU_ASSERT_EQUAL(rep.n, 0);
	ras_ers_outcome_report_free(&rep);
	CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "recordReviewOutcome"), 5);
	/* a PATIENT_ERROR on the A005 read parks the intent too, before any write */
	{
		int64_t ref = stored_referral(e.db, "WithAdditionalRequirements.json", "000000070011");

		fake_ers_referral(e.f, "000000070011", 5, "AWAITING_TRIAGE", "TRIAGE", NULL);
		decide(e.db, ref, "accept", true, "rules", "Accepted for assessment.");
		fake_ers_script(e.f, &(struct fake_ers_script){ .method = "GET",
		    .path_has = "ReferralRequest/000000070011", .status = 422, .error_code = "PATIENT_ERROR" });
		rep = run(&e, e.now + 90000);
		CU_ASSERT_EQUAL(rep.parked, 1);
		ras_ers_outcome_report_free(&rep);
		CU_ASSERT_STRING_EQUAL(qs(e.db, "SELECT error_code FROM ers_outcomes WHERE ubrn = '000000070011'", NULL),
		    "PATIENT_ERROR");
		CU_ASSERT_EQUAL(fake_ers_count(e.f, "POST", "000000070011/$ers.recordReviewOutcome"), 0);
	}
	env_stop(&e);
}

/* ---- rasctl ---------------------------------------------------------------------- */

static char *
write_config(const char *name, struct fake_ers *f, const char *conninfo, const char *services)
{
	const char *priv, *pub;
	char *key, *cfg, text[4096];

	ers_keypair(&priv, &pub);
	key = ras_test_write_tmp("ers-key.pem", priv, strlen(priv));
	snprintf(text, sizeof(text),
	    "[database]\nconninfo = %s\n[general]\nmappings = %s/mappings\n"
	    "[ers]\nbase_url = %s\ntoken_url = %s\nmode = application\napi_key = %s\nkid = %s\n"
	    "private_key = %s\nservice_ids = %s\nschedule = 08:00,13:00\n%s",
	    conninfo, RAS_SOURCE_ROOT, fake_ers_base_url(f), fake_ers_token_url(f), ERS_API_KEY, ERS_KID, key,
	    services, RAS_TEST_CLINICIANS);
	cfg = ras_test_write_tmp(name, text, strlen(text));
	free(key);
	return cfg;
}

static int
rasctl(const char *cfg, char **out, char **err, const char *a1, const char *a2, const char *a3,
    const char *a4, const char *a5)
{
	const char *args[] = { "ers", a1, a2, a3, a4, a5, NULL };

	return ras_test_rasctl(NULL, cfg, args, out, err);
}

/* e-RS lists 000000070002 at version 7 on the worklist while A005 serves
 * version 5 (the official examples disagree): the version-7 worklist stub
 * is superseded, and nothing that picks "the" referral of a UBRN may take
 * it (issue 15): not rasctl show, not a clinician's decision, not a form
 * arriving on its own, not an episode and its letters. */
static void
superseded_stub_never_wins(void)
{
	char *conninfo = NULL, *out = NULL, *err = NULL, *cfg, at[32];
	struct ras_db *db = ras_test_db("ers_superseded", &conninfo);
	struct fake_ers *f = ers_fake_start(false);   /* serves the examples as they are */
	json_t *j = NULL;
	time_t t = time(NULL);
	int rc;

	cfg = write_config("ers-superseded.conf", f, conninfo, "11012=midnotts");
	rc = rasctl(cfg, &out, &err, "poll", "--service", "11012", "--once", NULL);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	free(out);
	free(err);
	CU_ASSERT_EQUAL_FATAL(q1(db, "SELECT count(*) FROM referrals WHERE ubrn = '000000070002' AND version = 7"
	    " AND state = 'superseded'", NULL), 1);
	CU_ASSERT_EQUAL_FATAL(q1(db, "SELECT count(*) FROM referrals WHERE ubrn = '000000070002' AND version = 5"
	    " AND state = 'review'", NULL), 1);

	/* show */
	{
		const char *args[] = { "show", "000000070002", NULL };

		CU_ASSERT_EQUAL(ras_test_rasctl(NULL, cfg, args, &out, &err), 0);
		CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "version")), 5);
		CU_ASSERT_STRING_EQUAL(ras_json_str(j, "state"), "review");
		json_decref(j);
		free(out);
		free(err);
	}
	/* decide: the clinician decides the version e-RS serves */
	{
		const char *args[] = { "decide", "000000070002", "--outcome", "accept", "--advice",
			"Accepted after triage.", "--by", "687001000009", NULL };

		rc = ras_test_rasctl(NULL, cfg, args, &out, &err);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc != 0)
			fprintf(stderr, "%s%s", out, err);
		free(out);
		free(err);
		CU_ASSERT_EQUAL(q1(db, "SELECT r.version FROM decisions d JOIN referrals r ON r.id = d.referral_id"
		    " WHERE r.ubrn = '000000070002' AND d.outcome = 'accept'", NULL), 5);
	}
	/* letters: the discharge and its summary go on version 5 */
	{
		struct tm tm;
		const char *args[] = { "record", "discharged", "000000070002", "--at", at, "--by", "687001000001",
			"--summary", ras_test_fixture("documents/episode-discharge-full.json"), NULL };

		gmtime_r(&t, &tm);
		strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
		/* the e-RS example carries no name or birth date, which a letter
		 * needs (004 §3.12): give both versions the same */
		CU_ASSERT_EQUAL(q1(db, "WITH u AS (UPDATE referrals SET doc = jsonb_set(jsonb_set(jsonb_set(doc,"
		    " '{patient,family}', '\"Example\"'), '{patient,given}', '\"Alex\"'),"
		    " '{patient,birth_date}', '\"1970-05-14\"') WHERE ubrn = $1 RETURNING 1)"
		    " SELECT count(*) FROM u", "000000070002"), 2);
		rc = ras_test_rasctl(NULL, cfg, args, &out, &err);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc != 0)
			fprintf(stderr, "%s%s", out, err);
		free(out);
		free(err);
		CU_ASSERT_EQUAL(q1(db, "SELECT r.version FROM episodes e JOIN referrals r ON r.id = e.referral_id"
		    " WHERE r.ubrn = '000000070002'", NULL), 5);
		CU_ASSERT(q1(db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
		    " WHERE r.ubrn = '000000070002' AND r.version = 5", NULL) >= 1);
		CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
		    " WHERE r.ubrn = '000000070002' AND r.version = 7", NULL), 0);
	}
	/* forms: a form arriving on its own attaches to version 5, and so does a
	 * DocumentReference naming the UBRN */
	CU_ASSERT_EQUAL(q1(db, "SELECT version FROM referrals WHERE id = ras_store_form('000000070002',"
	    " '{\"questionnaire\": \"urn:rasd:test\", \"answers\": []}'::jsonb, NULL)", NULL), 5);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM events e JOIN referrals r ON r.id = e.referral_id"
	    " WHERE e.kind = 'form-received' AND r.ubrn = '000000070002' AND r.version = 7", NULL), 0);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM attachments a JOIN referrals r ON r.id = a.referral_id"
	    " WHERE a.ubrn = '000000070002' AND r.version = 7", NULL), 0);
	free(cfg);
	free(conninfo);
	fake_ers_stop(f);
	ras_db_close(db);
}

static void
rasctl_ers(void)
{
	char *conninfo = NULL, *out = NULL, *err = NULL, *cfg;
	struct ras_db *db = ras_test_db("ers_rasctl", &conninfo);
	struct fake_ers *f = ers_fake_start(true);
	json_t *j = NULL;
	int rc;

	cfg = write_config("ers-rasctl.conf", f, conninfo, "11012=midnotts, 21013=dorset-2019");
	rc = rasctl(cfg, &out, &err, "poll", "--service", "11012", "--once", NULL);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0)
		fprintf(stderr, "%s%s", out, err);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "e-RS service 11012: polled (budget slot 1 of 2)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "000000070002 v7: fetched"));
	/* triaged at once: an e-RS referral with no form yet waits for a clinician */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "    triage: midnotts: review (recommendation)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "midnotts.form.awaited"));
	free(out);
	free(err);
	rc = rasctl(cfg, &out, &err, "budget", NULL, NULL, NULL, NULL);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "11012"));
	free(out);
	free(err);
	rc = rasctl(cfg, &out, &err, "budget", "--json", NULL, NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(j, 0), "left")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(j, 1), "left")), 2);
	json_decref(j);
	free(out);
	free(err);
	/* the second call of the day, then the budget says no (75) */
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "poll", "--service", "11012", "--once", NULL), 0);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "poll", "--service", "11012", "--once", NULL), 75);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "budget"));
	free(out);
	free(err);
	/* --force bypasses it here: the fake is not production */
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "poll", "--service", "11012", "--once", "--force"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "forced"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "poll", "--service", "21013", "--once", "--json"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(j, 0), "kept")), 4);
	json_decref(j);
	free(out);
	free(err);

	/* the polls triaged everything they stored: nothing is left for the stage */
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM referrals WHERE state = 'new'", NULL), 0);
	CU_ASSERT_EQUAL(q1(db, "SELECT count(*) FROM referrals WHERE ubrn = '000000070005' AND state = 'review'",
	    NULL), 1);
	/* a return recorded by hand; the reviews wait for a person */
	decide(db, q1(db, "SELECT id FROM referrals WHERE ubrn = '000000070002' AND state = 'review'", NULL),
	    "return", true, "rules", "Please use the electronic referral form (004 §3.8).");
	rc = rasctl(cfg, &out, &err, "outcome", "000000070002", NULL, NULL, NULL);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0)
		fprintf(stderr, "%s%s", out, err);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "000000070002: RETURN_TO_REFERRER_WITH_ADVICE done"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(fake_ers_writes(f, "000000070002"), 1);
	/* triage sent 000000070005 onward to the 2WW pathway: e-RS has no call for it */
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "outcome", "000000070005", NULL, NULL, NULL), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"onward\""));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "pending", "--json", NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	CU_ASSERT_EQUAL((int64_t)json_array_size(json_object_get(j, "waiting")),
	    q1(db, "SELECT count(*) FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.source LIKE 'ers%' AND (d.outcome IN ('onward', 'review') OR NOT d.final)", NULL));
	CU_ASSERT_TRUE(json_array_size(json_object_get(j, "waiting")) >= 2);
	{
		bool seen = false;
		json_t *w;
		size_t i;

		json_array_foreach(json_object_get(j, "waiting"), i, w) {
			CU_ASSERT_STRING_NOT_EQUAL(ras_json_str(w, "ubrn"), "000000070002");
			seen = seen || strcmp(ras_json_str(w, "ubrn"), "000000070005") == 0;
		}
		CU_ASSERT_TRUE(seen);
	}
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "attachments")), 3);
	/* the rules' own final decisions are outcomes to record, until the stage sends them */
	CU_ASSERT_EQUAL((int64_t)json_array_size(json_object_get(j, "outcomes")),
	    q1(db, "SELECT count(*) FROM ers_outcomes WHERE state = 'pending'", NULL));
	json_decref(j);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "pending", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "waiting for a person"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "THREATS_FOUND"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "fetch", NULL, NULL, NULL, NULL), 0);
	free(out);
	free(err);
	/* usage and configuration errors */
	CU_ASSERT_EQUAL(rasctl(cfg, &out, &err, "poll", "--service", "11012", NULL, NULL), 64);
	free(out);
	free(err);
	{
		char *empty = ras_test_write_tmp("ers-empty.conf", "[database]\nconninfo = x\n", 24);

		CU_ASSERT_EQUAL(rasctl(empty, &out, &err, "budget", NULL, NULL, NULL, NULL), 78);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "base_url"));
		free(out);
		free(err);
		free(empty);
	}
	free(cfg);
	free(conninfo);
	fake_ers_stop(f);
	ras_db_close(db);
}

static const struct ras_test_case poll_cases[] = {
	{ "a full poll cycle into the store", full_poll_cycle },
	{ "A008 budget: schedule, exhaustion, next day, force", budget },
	{ "A008 budget across instances", budget_instances },
	{ "a failed or unanswered worklist call is retried, a lost poll reported", missed_poll_never_silent },
	{ "attachments, forms and related referrals", forms_and_attachments },
	{ "fetch failures: PATIENT_ERROR, 429, 503, object store", fetch_failures },
	{ NULL, NULL },
};

static const struct ras_test_case outcome_cases[] = {
	{ "A028 bodies equal the official examples", outcome_bodies },
	{ "a poll cycle triages what it stored; the outcome is recorded as the official example",
	  poll_triages_and_records },
	{ "the poll schedule counts the triage calendar's working days", schedule_uses_the_calendar },
	{ "which decisions are recorded", outcome_which_decisions },
	{ "a retried A028 that had succeeded: no second write", outcome_lost_answer },
	{ "409 someone else's review, 423, stale, not offered", outcome_conflicts },
	{ "412, 422 per code, 403: parked", outcome_refusals },
	{ NULL, NULL },
};

static const struct ras_test_case rasctl_cases[] = {
	{ "rasctl ers poll, budget, outcome, pending, fetch", rasctl_ers },
	{ "a superseded worklist stub never wins: show, decide, letters, forms", superseded_stub_never_wins },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "ers-poll", poll_cases, NULL, NULL },
		{ "ers-outcome", outcome_cases, NULL, NULL },
		{ "ers-rasctl", rasctl_cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
