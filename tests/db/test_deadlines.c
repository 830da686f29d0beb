/*
 * Every clock a rule set can start is met by something real: a decision,
 * a delivered letter, an e-RS return, an EPR event (and a discharge ends
 * the clocks it makes moot).  Checked against a real PostgreSQL: the
 * tables that say what meets what cover every kind the rules engine
 * allows, and each meeting happens when its event does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/outbox.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras_config.h"

static struct ras_db *db;
static struct ras_triage *tri;     /* automation none: decisions await a clinician */
static struct ras_outbox *ob;
static struct ras_epr_ctx ctx;
static int serial;

static int64_t
count(const char *sql, const char *arg)
{
	return ras_test_sql_int(db, sql, arg);
}

/* A fixture referral under a fresh UBRN, stored and triaged; its UBRN in
 * `ubrn` (13 bytes).  `from`/`to` replace one string first when given. */
static void
referral(const char *rel, const char *old_ubrn, const char *service, const char *from,
    const char *to, char *ubrn)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len), *p;
	struct ras_inbox_item it = { .source = "file", .source_ref = rel, .service_hint = service };

	ras_test_fmt(ubrn, 13, "4000000%05d", ++serial);
	for (p = strstr(data, old_ubrn); p; p = strstr(p + 12, old_ubrn))
		memcpy(p, ubrn, 12);
	if (from) {
		p = strstr(data, from);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CU_ASSERT_EQUAL_FATAL(strlen(from), strlen(to));
		memcpy(p, to, strlen(to));
	}
	it.data = data;
	it.len = len;
	(void)ras_test_ingest(db, &it);
	free(data);
	CU_ASSERT_EQUAL(ras_test_triage_pending(db, tri, ras_time_now()), 1);
}

static void
decide(const char *ubrn, enum ras_outcome o, const char *target, const char *advice)
{
	struct ras_epr_event ev;
	struct ras_epr_result r;

	memset(&ev, 0, sizeof(ev));
	ev.kind = RAS_EPR_DECISION;
	ev.ubrn = ubrn;
	ev.outcome = o;
	ev.target = target;
	ev.advice = advice;
	ev.actor = "687001000009";
	ev.first_appointment = -1;
	ev.occurred_at = ras_time_now();
	if (ras_epr_record(db, &ctx, &ev, 0, false, &r) < 0)
		fprintf(stderr, "decide %s: %s\n", ubrn, ras_error_last());
	CU_ASSERT_TRUE(r.decision_id > 0);
}

/* The state of a referral's clock of `kind`: met, cancelled or open (the
 * newest row), "" when there is none. */
static const char *
clock_of(const char *ubrn, const char *kind)
{
	static char buf[64];
	char sql[512], *s;

	snprintf(sql, sizeof(sql), "SELECT CASE WHEN d.met_at IS NOT NULL THEN 'met:' || split_part(d.met_by, ':', 1)"
	    " WHEN d.cancelled_at IS NOT NULL THEN 'cancelled' ELSE 'open' END FROM deadlines d"
	    " JOIN referrals r ON r.id = d.referral_id WHERE r.ubrn = $1 AND d.kind = '%s'"
	    " ORDER BY (d.cancelled_at IS NULL) DESC, d.id DESC LIMIT 1", kind);
	s = ras_test_sql_text(db, sql, ubrn);
	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	free(s);
	return buf;
}

/* Settle every pending letter of `kind` of a referral as the stages do
 * (delivered by the deliver stage, or cancelled by the render stage when
 * the service's spec has no such document), then check its clocks
 * (ras_outbox_deadlines_check, what the stages call). */
static void
settle(const char *ubrn, const char *kind, const char *state)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "WITH o AS (UPDATE outbox o SET state = '%s', updated_at = now()"
	    " FROM referrals r WHERE r.id = o.referral_id AND r.ubrn = $1 AND o.kind = '%s'"
	    " AND o.state = 'pending' RETURNING o.id)"
	    " SELECT count(ras_outbox_deadlines_check(o.id, now()) IS NULL) FROM o", state, kind);
	CU_ASSERT_TRUE(count(sql, ubrn) >= 1);
}

static void
deliver(const char *ubrn, const char *kind)
{
	settle(ubrn, kind, "delivered");
}

/* ---- the tables cover every kind --------------------------------------------- */

static void
every_kind_has_a_meeting(void)
{
	const char *const *kinds = ras_rules_clock_kinds();
	size_t n = 0;

	for (; kinds[n]; n++) {
		bool met = strcmp(kinds[n], "triage") == 0 || strcmp(kinds[n], "clinical-review") == 0 ||
		    count("SELECT count(*) FROM epr_deadline_closes WHERE deadline_kind = $1 AND NOT ends",
		    kinds[n]) > 0 ||
		    count("SELECT count(*) FROM outbox_deadline_meets WHERE deadline_kind = $1", kinds[n]) > 0;

		if (!met)
			fprintf(stderr, "clock kind %s: nothing meets it\n", kinds[n]);
		CU_ASSERT_TRUE(met);
	}
	CU_ASSERT_EQUAL(n, 11);
	/* and the tables name no kind a rule set cannot start */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM (SELECT deadline_kind FROM epr_deadline_closes"
	    " UNION SELECT deadline_kind FROM outbox_deadline_meets) k WHERE deadline_kind NOT IN"
	    " ('triage', 'clinical-review', 'return', 'gp-notification', 'onward', 'contact', 'assessment',"
	    " 'first-appointment', 'first-appointment-limit', 'treatment', 'pathway-end')", NULL), 0);
	/* an unknown kind is refused when a rule set loads */
	CU_ASSERT_FALSE(ras_rules_clock_kind_known("gp-2ww-notice"));
	CU_ASSERT_FALSE(ras_rules_clock_kind_known("first-appointment-offered"));
}

/* ---- decisions ----------------------------------------------------------------- */

static void
decisions_meet_triage_and_clinical_review(void)
{
	char ubrn[13];

	/* An urgent referral: review, and a clinician looks the same day. */
	referral("triage/midnotts-accept.json", "100000000301", "midnotts", "\"priority\": \"routine\"",
	    "\"priority\": \"urgent\" ", ubrn);
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "clinical-review"), "open");
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "triage"), "open");
	decide(ubrn, RAS_OUTCOME_ACCEPT, NULL, "Seen today: accept, routine clinic");
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "clinical-review"), "met:decision");
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "triage"), "met:decision");
	/* exactly one of each: met, not restarted */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = $1 AND d.kind = 'triage' AND d.cancelled_at IS NULL", ubrn), 1);
}

/* ---- letters --------------------------------------------------------------------- */

static void
letters_meet_return_and_gp_notification(void)
{
	char ubrn[13];

	/* A return: met when the return letter has reached the referrer. */
	referral("triage/midnotts-accept.json", "100000000301", "midnotts", NULL, NULL, ubrn);
	decide(ubrn, RAS_OUTCOME_RETURN, NULL, "Please try physiotherapy first.");
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "return"), "open");
	deliver(ubrn, "triage-outcome");
	CU_ASSERT_EQUAL(strncmp(clock_of(ubrn, "return"), "met:outbox ", 11), 0);

	/* A potential 2WW (Mid Notts): one same-day GP clock, met by the notice. */
	referral("triage/midnotts-2ww.json", "100000000303", "midnotts", NULL, NULL, ubrn);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = $1 AND d.due_date = (r.received_at AT TIME ZONE 'Europe/London')::date", ubrn), 1);
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "gp-notification"), "open");
	deliver(ubrn, "gp-2ww-notice");
	CU_ASSERT_EQUAL(strncmp(clock_of(ubrn, "gp-notification"), "met:outbox", 10), 0);
	/* the clinician confirms: the met clock is not started again */
	decide(ubrn, RAS_OUTCOME_ONWARD, "two-week-wait", "Referred on the 2WW pathway today.");
	CU_ASSERT_EQUAL(strncmp(clock_of(ubrn, "gp-notification"), "met:outbox", 10), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = $1 AND d.kind = 'gp-notification'", ubrn), 1);

	/* An emergency in Dorset 2013 (cauda equina; no 2WW notice): the clock
	 * stays open until the triage letter of the clinician's decision has
	 * reached the GP. */
	referral("triage/dorset-2013-cauda-equina.json", "100000000308", "dorset-2013", NULL, NULL, ubrn);
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "gp-notification"), "open");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = $1", ubrn), 0);
	decide(ubrn, RAS_OUTCOME_ONWARD, "emergency", "Sent to the emergency spinal pathway today.");
	CU_ASSERT_STRING_EQUAL(clock_of(ubrn, "gp-notification"), "open");
	deliver(ubrn, "triage-outcome");
	CU_ASSERT_EQUAL(strncmp(clock_of(ubrn, "gp-notification"), "met:outbox", 10), 0);
}

/* ---- EPR events -------------------------------------------------------------------- */

static void
epr_events_meet_and_end_what_the_table_says(void)
{
	struct ras_db_res *res = NULL;
	int rows;

	CU_ASSERT_EQUAL_FATAL(ras_db_query(db, &res, "SELECT event_kind, deadline_kind, ends"
	    " FROM epr_deadline_closes ORDER BY 1, 2", 0, NULL), 0);
	rows = ras_db_res_rows(res);
	CU_ASSERT_TRUE(rows >= 10);
	for (int i = 0; i < rows; i++) {
		const char *ek = ras_db_res_get(res, i, 0), *dk = ras_db_res_get(res, i, 1);
		bool ends = strcmp(ras_db_res_get(res, i, 2), "t") == 0 ||
		    strcmp(ras_db_res_get(res, i, 2), "true") == 0;
		struct ras_epr_event ev;
		struct ras_epr_result r;
		char ubrn[13], sql[256];

		referral("triage/midnotts-accept.json", "100000000301", "midnotts", NULL, NULL, ubrn);
		decide(ubrn, RAS_OUTCOME_ACCEPT, NULL, "Accepted.");
		snprintf(sql, sizeof(sql), "INSERT INTO deadlines (referral_id, kind, due_date, due_at)"
		    " SELECT id, '%s', current_date + 30, now() + interval '30 days' FROM referrals"
		    " WHERE ubrn = $1 RETURNING id", dk);
		CU_ASSERT_TRUE(count(sql, ubrn) > 0);
		memset(&ev, 0, sizeof(ev));
		ev.kind = ras_epr_kind_parse(ek);
		ev.ubrn = ubrn;
		ev.actor = "687001000001";
		ev.occurred_at = ras_time_now();
		ev.first_appointment = 1;
		ev.mode = "face-to-face";
		ev.target = ev.kind == RAS_EPR_ONWARD ? "secondary-care" : NULL;
		CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
		if (ends) {
			CU_ASSERT_STRING_EQUAL(clock_of(ubrn, dk), "cancelled");
		} else {
			if (strcmp(clock_of(ubrn, dk), "met:epr-event") != 0)
				fprintf(stderr, "%s should meet %s: %s\n", ek, dk, clock_of(ubrn, dk));
			CU_ASSERT_STRING_EQUAL(clock_of(ubrn, dk), "met:epr-event");
		}
	}
	ras_db_res_free(res);
}

static int
setup(void)
{
	db = ras_test_db("deadlines", NULL);
	tri = ras_test_triage("[service midnotts]\nautomation = none\n[service dorset-2013]\nautomation = none\n",
	    NULL);
	ob = ras_test_outbox();
	ctx.triage = tri;
	ctx.outbox = ob;
	return 0;
}

static int
teardown(void)
{
	ras_outbox_free(ob);
	ras_triage_free(tri);
	ras_db_close(db);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "every clock kind has something that meets it", every_kind_has_a_meeting },
		{ "decisions meet the triage and clinical-review clocks", decisions_meet_triage_and_clinical_review },
		{ "letters meet the return and GP-notification clocks", letters_meet_return_and_gp_notification },
		{ "EPR events meet (or end) what epr_deadline_closes says",
		  epr_events_meet_and_end_what_the_table_says },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "deadlines", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
