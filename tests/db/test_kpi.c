/*
 * KPI report tests: the measures computed from made-up data (pure), and a
 * whole report from a database of referrals, decisions and EPR events
 * (golden CSV and HTML, and `rasctl report kpi`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/kpi.h"
#include "ras/mappings.h"
#include "ras/report.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

/* The shipped working-day calendar (mappings/calendar), the one every
 * clock in rasd counts in: 2026 has Good Friday (3 April) and Easter
 * Monday (6 April). */
static const struct ras_calendar *
calendar(void)
{
	static struct ras_calendar *cal;

	if (cal == NULL && ras_mappings_load_calendar(RAS_SOURCE_ROOT "/mappings", &cal) < 0) {
		fprintf(stderr, "calendar: %s\n", ras_error_last());
		exit(1);
	}
	return cal;
}

static int64_t
t(const char *iso)
{
	int64_t v = 0;

	CU_ASSERT_EQUAL_FATAL(ras_time_parse(iso, false, &v), 0);
	return v;
}

static struct ras_date
d(const char *s)
{
	struct ras_date x;

	CU_ASSERT_EQUAL_FATAL(ras_date_parse(s, &x), 0);
	return x;
}

static const struct ras_kpi_result *
measure(const struct ras_kpi_report *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->m[i].id, id) == 0)
			return &r->m[i];
	CU_FAIL_FATAL("no such measure");
	abort();        /* not reached: the FATAL above leaves the test */
}

/* April 2026: Good Friday (3rd) and Easter Monday (6th) are bank holidays. */
static struct ras_kpi_referral april[] = {
	/* A: received Wed 1st; decided Tue 7th = 2 working days after (Easter) */
	{ .key = "A", .received = 0, .outcome = "accept" },
	/* B: received Thu 2nd; returned Thu 9th = 3 working days after */
	{ .key = "B", .outcome = "return" },
	/* C: received Fri 10th; decided Fri 17th = 5 working days: late */
	{ .key = "C", .outcome = "accept" },
	/* D: received Tue 28th, not decided; the report is made on the 30th: pending */
	{ .key = "D" },
	/* E: received Wed 1st, never decided: missed */
	{ .key = "E" },
	/* F: received in March: not in the period */
	{ .key = "F", .outcome = "accept" },
};

static void
fill_april(void)
{
	april[0].received = t("2026-04-01T09:00:00Z");
	april[0].decided = t("2026-04-07T15:00:00Z");
	april[0].attended = t("2026-04-20T09:00:00Z");
	april[0].attended_choice = true;       /* the patient chose to wait: excluded */
	april[1].received = t("2026-04-02T15:00:00Z");
	april[1].decided = t("2026-04-09T16:00:00Z");
	april[1].returned = t("2026-04-09T16:05:00Z");  /* recorded on e-RS */
	april[2].received = t("2026-04-10T08:00:00Z");
	april[2].decided = t("2026-04-17T08:00:00Z");
	april[2].offered = t("2026-04-16T10:00:00Z");
	april[2].attended = t("2026-04-29T10:00:00Z");   /* 13 working days */
	april[3].received = t("2026-04-28T10:00:00Z");
	april[4].received = t("2026-04-01T11:00:00Z");
	april[5].received = t("2026-03-20T10:00:00Z");
	april[5].decided = t("2026-03-23T10:00:00Z");
	april[5].discharged = t("2026-04-15T10:00:00Z");
	april[5].summary_sent = t("2026-04-23T10:00:00Z"); /* 6 working days: late */
}

static struct ras_kpi_event april_events[] = {
	{ 0, false, true }, { 0, false, true }, { 0, false, false }, { 0, true, false },
};

static void
measures_from_made_up_data(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_kpi_data data = { .nref = 6, .ref = april, .nev = 4, .ev = april_events };
	struct ras_kpi_report r;
	struct ras_date from = d("2026-04-01"), to = d("2026-04-30");
	const struct ras_kpi_result *m;

	fill_april();
	april_events[0].at = t("2026-04-20T09:00:00Z");
	april_events[1].at = t("2026-04-21T09:00:00Z");
	april_events[2].at = t("2026-04-29T10:00:00Z");
	april_events[3].at = t("2026-04-30T10:00:00Z");
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "bassetlaw-2022", &from, &to,
	    t("2026-04-30T12:00:00Z"), calendar(), &r), 0);
	CU_ASSERT_EQUAL(r.referrals, 5);
	m = measure(&r, "assessment-3wd");
	CU_ASSERT_EQUAL(m->den, 4);       /* A, B, C, E; D pending */
	CU_ASSERT_EQUAL(m->num, 2);       /* A (Easter), B */
	CU_ASSERT_EQUAL(m->pending, 1);
	CU_ASSERT_DOUBLE_EQUAL(m->value, 50.0, 0.001);
	CU_ASSERT_FALSE(m->met);
	CU_ASSERT_EQUAL(m->nmonths, 1);
	CU_ASSERT_EQUAL(m->months[0].den, 4);
	m = measure(&r, "returned-3wd");
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 1);
	CU_ASSERT_TRUE(m->met);
	m = measure(&r, "offered-5wd");      /* A never offered (missed), C offered in 4 */
	CU_ASSERT_EQUAL(m->den, 2);
	CU_ASSERT_EQUAL(m->num, 1);
	m = measure(&r, "seen-20wd");
	CU_ASSERT_EQUAL(m->excluded, 1);     /* A: patient choice */
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 1);
	m = measure(&r, "virtual-share");
	CU_ASSERT_EQUAL(m->den, 3);
	CU_ASSERT_EQUAL(m->num, 2);
	CU_ASSERT_TRUE(m->met);
	m = measure(&r, "pifu-share");
	CU_ASSERT_EQUAL(m->num, 1);
	CU_ASSERT_EQUAL(m->den, 3);
	m = measure(&r, "summary-5wd");      /* F discharged on the 15th, summary 6 wd later */
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 0);
	m = measure(&r, "pathway-6m");
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 1);

	/* Without the bank holidays, A (4 working days) and B (5) are late. */
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "bassetlaw-2022", &from, &to,
	    t("2026-04-30T12:00:00Z"), NULL, &r), 0);
	CU_ASSERT_EQUAL(measure(&r, "assessment-3wd")->num, 0);
	CU_ASSERT_FALSE(r.holidays);

	/* Made a month later, D's deadline has passed: missed, not pending. */
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "bassetlaw-2022", &from, &to,
	    t("2026-05-30T12:00:00Z"), calendar(), &r), 0);
	m = measure(&r, "assessment-3wd");
	CU_ASSERT_EQUAL(m->pending, 0);
	CU_ASSERT_EQUAL(m->den, 5);

	CU_ASSERT_EQUAL(ras_kpi_compute(a, &data, "no-such-service", &from, &to, 0, NULL, &r), RAS_ENOTFOUND);
	to = d("2026-03-01");
	CU_ASSERT_EQUAL(ras_kpi_compute(a, &data, "midnotts", &from, &to, 0, NULL, &r),
	    RAS_EINVALID);
	ras_arena_free(a);
}

/* Issue 12: the clocks count what happened.  A return is met when e-RS
 * recorded it or its letter was delivered (a dead letter is no return);
 * the 2WW path when the GP notice was delivered, not when it was decided. */
static void
kpi_counts_what_happened(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_kpi_referral ref[6];
	struct ras_kpi_data data = { .nref = 6, .ref = ref, .nev = 0, .ev = NULL };
	struct ras_date from = d("2026-05-01"), to = d("2026-05-31");
	struct ras_kpi_report r;
	const struct ras_kpi_result *m;

	memset(ref, 0, sizeof(ref));
	/* returned, decided at once, its letter dead: not returned */
	ref[0] = (struct ras_kpi_referral){ .key = "ret-dead", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "return" };
	/* returned, recorded on e-RS the next day: met */
	ref[1] = (struct ras_kpi_referral){ .key = "ret-ok", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "return",
		.returned = t("2026-05-06T08:00:00Z") };
	/* 2WW decided at once, the GP notice never delivered: not met */
	ref[2] = (struct ras_kpi_referral){ .key = "2ww-undelivered", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "onward", .target = "two-week-wait" };
	/* 2WW, the notice delivered the same day: met */
	ref[3] = (struct ras_kpi_referral){ .key = "2ww-told", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "onward", .target = "two-week-wait",
		.gp_notified = t("2026-05-05T10:30:00Z") };
	/* 2WW, an ITK3 notice delivered but never acknowledged: not met */
	ref[4] = (struct ras_kpi_referral){ .key = "2ww-itk3-unacked", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "onward", .target = "two-week-wait",
		.gp_notified = t("2026-05-05T10:30:00Z"), .gp_notice_itk3 = true };
	/* 2WW, an ITK3 notice acknowledged the next morning: met */
	ref[5] = (struct ras_kpi_referral){ .key = "2ww-itk3-acked", .received = t("2026-05-05T09:00:00Z"),
		.decided = t("2026-05-05T10:00:00Z"), .outcome = "onward", .target = "two-week-wait",
		.gp_notified = t("2026-05-05T10:30:00Z"), .gp_notice_itk3 = true,
		.gp_notice_acked = t("2026-05-06T08:00:00Z") };
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "midnotts", &from, &to,
	    t("2026-06-01T09:00:00Z"), calendar(), &r), 0);
	m = measure(&r, "returned-2wd");
	CU_ASSERT_EQUAL(m->den, 2);
	CU_ASSERT_EQUAL(m->num, 1);
	m = measure(&r, "onward-2ww-2wd");
	CU_ASSERT_EQUAL(m->den, 4);
	CU_ASSERT_EQUAL(m->num, 2);
	CU_ASSERT_FALSE(m->met);
	ras_arena_free(a);
}

static void
dorset_access_times(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_kpi_referral ref[3];
	struct ras_kpi_data data = { .nref = 3, .ref = ref, .nev = 0, .ev = NULL };
	struct ras_date from = d("2026-01-01"), to = d("2026-06-30");
	struct ras_kpi_report r;
	const struct ras_kpi_result *m;

	memset(ref, 0, sizeof(ref));
	/* Seen face to face 50 days after triage; triaged within 47 hours. */
	ref[0] = (struct ras_kpi_referral){ .key = "a", .received = t("2026-01-05T09:00:00Z"),
		.decided = t("2026-01-07T08:00:00Z"), .outcome = "accept",
		.attended = t("2026-02-26T09:00:00Z"), .face_to_face = t("2026-02-26T09:00:00Z") };
	/* Seen virtually only, never face to face, waiting since January. */
	ref[1] = (struct ras_kpi_referral){ .key = "b", .received = t("2026-01-05T09:00:00Z"),
		.decided = t("2026-01-08T09:00:00Z"), .outcome = "accept",
		.attended = t("2026-01-20T09:00:00Z") };
	/* Accepted in June: still waiting under 8 weeks at the end: pending. */
	ref[2] = (struct ras_kpi_referral){ .key = "c", .received = t("2026-06-01T09:00:00Z"),
		.decided = t("2026-06-02T09:00:00Z"), .outcome = "accept" };
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "dorset-2019", &from, &to,
	    t("2026-07-15T00:00:00Z"), NULL, &r), 0);
	m = measure(&r, "triage-48h");
	CU_ASSERT_EQUAL(m->den, 3);
	CU_ASSERT_EQUAL(m->num, 2);          /* b took 72 hours */
	m = measure(&r, "seen-8w-after-triage");
	CU_ASSERT_EQUAL(m->den, 2);
	CU_ASSERT_EQUAL(m->num, 1);
	CU_ASSERT_EQUAL(m->pending, 1);
	m = measure(&r, "waiting-over-26w");
	CU_ASSERT_FALSE(m->percent);
	CU_ASSERT_EQUAL(m->den, 2);          /* b and c are waiting at the end of June */
	CU_ASSERT_EQUAL(m->num, 0);          /* b: 173 days, not yet over 26 weeks */
	CU_ASSERT_TRUE(m->met);
	to = d("2026-07-31");
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "dorset-2019", &from, &to,
	    t("2026-08-15T00:00:00Z"), NULL, &r), 0);
	m = measure(&r, "waiting-over-26w");
	CU_ASSERT_EQUAL(m->num, 1);
	CU_ASSERT_FALSE(m->met);
	ras_arena_free(a);
}

/* ---- from the database -------------------------------------------------------- */

static struct ras_db *db;
static char *conninfo;
/* The rules' decisions are recommendations (automation none): the first
 * final decision, what the measures count, is the clinician's. */
static struct ras_triage *tri;

static void
exec(const char *sql)
{
	if (ras_db_exec(db, sql) < 0)
		fprintf(stderr, "%s\n", ras_error_last());
}

static void
store(const char *rel, const char *ubrn, const char *received)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len), *p = strstr(data, "\"100000000101\"");
	struct ras_inbox_item it = { .data = data, .len = len, .source = "test", .service_hint = "midnotts" };
	char sql[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p + 1, ubrn, 12);
	(void)ras_test_ingest(db, &it);
	free(data);
	snprintf(sql, sizeof(sql), "UPDATE referrals SET received_at = '%s' WHERE ubrn = '%s'", received, ubrn);
	exec(sql);
	CU_ASSERT_EQUAL(ras_test_triage_pending(db, tri, ras_time_now()), 1);
}

static void
event(const char *ubrn, enum ras_epr_kind kind, const char *at, const char *mode)
{
	struct ras_epr_event ev;
	struct ras_epr_result r;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.ubrn = ubrn;
	ev.occurred_at = t(at);
	ev.mode = mode;
	ev.first_appointment = -1;
	ev.actor = "687001000001";
	if (kind == RAS_EPR_DECISION) {
		ev.outcome = mode && strcmp(mode, "return") == 0 ? RAS_OUTCOME_RETURN :
		    mode && strcmp(mode, "onward") == 0 ? RAS_OUTCOME_ONWARD : RAS_OUTCOME_ACCEPT;
		ev.mode = NULL;
		if (ev.outcome != RAS_OUTCOME_ACCEPT) {
			ev.advice = "See the advice";
			ev.target = ev.outcome == RAS_OUTCOME_ONWARD ? "two-week-wait" : NULL;
		}
	}
	{
		struct ras_epr_ctx ctx = { tri, NULL };

		CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	}
}

static void
build_midnotts(void)
{
	db = ras_test_db("kpi", &conninfo);
	tri = ras_test_triage("[service midnotts]\nautomation = none\n", NULL);
	/* Six midnotts referrals over two months. */
	store("r4/referral-collection-urn.json", "200000000001", "2026-03-02 09:00Z");
	store("r4/referral-collection-urn.json", "200000000002", "2026-03-03 10:00Z");
	store("r4/referral-collection-urn.json", "200000000003", "2026-03-16 10:00Z");
	store("r4/referral-collection-urn.json", "200000000004", "2026-04-01 08:00Z");
	store("r4/referral-collection-urn.json", "200000000005", "2026-04-02 08:00Z");
	store("r4/referral-collection-urn.json", "200000000006", "2026-04-20 08:00Z");
	event("200000000001", RAS_EPR_DECISION, "2026-03-03T15:00:00Z", "accept");
	event("200000000002", RAS_EPR_DECISION, "2026-03-06T15:00:00Z", "return");   /* 3 wd: late */
	event("200000000003", RAS_EPR_DECISION, "2026-03-17T09:00:00Z", "onward");
	event("200000000004", RAS_EPR_DECISION, "2026-04-07T10:00:00Z", "accept");   /* Easter: 2 wd */
	event("200000000005", RAS_EPR_DECISION, "2026-04-09T10:00:00Z", "accept");   /* 3 wd: late */
	event("200000000001", RAS_EPR_CONTACTED, "2026-03-05T10:00:00Z", "virtual");
	event("200000000001", RAS_EPR_ATTENDED, "2026-03-20T10:00:00Z", "face-to-face");
	event("200000000001", RAS_EPR_TREATMENT, "2026-04-08T10:00:00Z", NULL);
	event("200000000001", RAS_EPR_DISCHARGED, "2026-04-24T10:00:00Z", NULL);
	event("200000000004", RAS_EPR_CONTACTED, "2026-04-15T10:00:00Z", "virtual");  /* 6 wd: late */
	event("200000000004", RAS_EPR_ATTENDED, "2026-04-28T10:00:00Z", "virtual");
	/* The 2WW notice for 200000000003 reached the GP the day it was decided. */
	exec("UPDATE deadlines SET met_at = '2026-03-17T11:00:00Z', met_by = 'test'"
	     " WHERE kind = 'gp-notification' AND referral_id = (SELECT id FROM referrals"
	     " WHERE ubrn = '200000000003')");
	/* The summary for 200000000001 went out 3 working days after discharge. */
	exec("INSERT INTO deadlines (referral_id, kind, due_date, due_at, met_at, met_by)"
	     " SELECT id, 'discharge-summary', '2026-05-01', '2026-05-01 23:00Z', '2026-04-29 12:00Z', 'test'"
	     " FROM referrals WHERE ubrn = '200000000001'");
}

static void
report_from_database(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_buf csv = RAS_BUF_INIT(0), html = RAS_BUF_INIT(0);
	struct ras_date from = d("2026-03-01"), to = d("2026-04-30");
	struct ras_kpi_data data;
	struct ras_kpi_report r;
	const struct ras_kpi_result *m;

	build_midnotts();
	CU_ASSERT_EQUAL_FATAL(ras_kpi_load(db, a, "midnotts", &from, &to, &data), 0);
	CU_ASSERT_EQUAL(data.nref, 6);
	CU_ASSERT_EQUAL(data.nev, 2);
	/* Made at a fixed instant so that the output is the same every run. */
	CU_ASSERT_EQUAL_FATAL(ras_kpi_compute(a, &data, "midnotts", &from, &to,
	    t("2026-05-11T09:00:00Z"), calendar(), &r), 0);
	CU_ASSERT_EQUAL(r.referrals, 6);
	m = measure(&r, "triage-2wd");
	CU_ASSERT_EQUAL(m->den, 6);      /* 200000000006 never decided: missed */
	CU_ASSERT_EQUAL(m->num, 3);
	m = measure(&r, "returned-2wd");
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 0);
	m = measure(&r, "onward-2ww-2wd");
	CU_ASSERT_EQUAL(m->num, 1);
	m = measure(&r, "contact-5wd");
	CU_ASSERT_EQUAL(m->den, 3);      /* the accepted ones */
	CU_ASSERT_EQUAL(m->num, 1);
	m = measure(&r, "plan-to-gp-5wd");
	CU_ASSERT_EQUAL(m->den, 1);
	CU_ASSERT_EQUAL(m->num, 1);

	CU_ASSERT_EQUAL(ras_report_kpi_csv(&r, &csv), 0);
	CU_ASSERT(ras_test_golden("kpi/midnotts.csv", csv.data, csv.len));
	CU_ASSERT_EQUAL(ras_report_kpi_html(&r, &html), 0);
	CU_ASSERT(ras_test_golden("kpi/midnotts.html", html.data, html.len));
	/* One self-contained page: no scripts, no external assets. */
	CU_ASSERT_PTR_NULL(strstr(html.data, "<script"));
	CU_ASSERT_PTR_NULL(strstr(html.data, "src="));
	CU_ASSERT_PTR_NULL(strstr(html.data, "<link"));
	CU_ASSERT_PTR_NULL(strstr(html.data, "href=\"http"));
	CU_ASSERT_EQUAL(ras_test_count(html.data, "<svg "), 7);
	CU_ASSERT_PTR_NOT_NULL(strstr(html.data, "based on 6 referrals"));
	ras_buf_free(&csv);
	ras_buf_free(&html);
	ras_arena_free(a);
}

static void
rasctl_report(void)
{
	char *out = NULL, *err = NULL, *with_file = NULL, *argv[16];
	int n = 0, rc;

	argv[n++] = (char *)ras_test_program("daemon/rasctl");
	argv[n++] = "--db";
	argv[n++] = conninfo;
	argv[n++] = "report";
	argv[n++] = "kpi";
	argv[n++] = "--service";
	argv[n++] = "midnotts";
	argv[n++] = "--from";
	argv[n++] = "2026-03-01";
	argv[n++] = "--to";
	argv[n++] = "2026-04-30";
	argv[n++] = "--holidays";
	argv[n++] = (char *)ras_test_fixture("calendar/bank-holidays.json");
	argv[n] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "service,from,to,month,measure"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "midnotts,2026-03-01,2026-04-30,,triage-2wd,"));
	/* header, 7 measures, 7 by month, the ITK3 acknowledgements */
	CU_ASSERT_EQUAL(ras_test_count(out, "\r\n"), 1 + 7 + 7 * 2 + 1);
	with_file = out;
	free(err);
	argv[n++] = "--format";
	argv[n++] = "html";
	argv[n] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "<!DOCTYPE html>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "except England and Wales bank holidays"));
	free(out);
	free(err);
	argv[6] = "nowhere";
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no quality requirements"));
	free(out);
	free(err);
	argv[6] = "midnotts";
	argv[8] = "2026-02-30";
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 64);
	free(out);
	free(err);
	argv[8] = "2026-03-01";
	/* Without --holidays: the mappings' calendar (the same file), the same
	 * figures; 200000000004 was decided over Easter in 2 working days. */
	argv[11] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	{
		const char *row = "midnotts,2026-03-01,2026-04-30,,triage-2wd,";
		const char *p1 = strstr(with_file, row), *p2 = strstr(out, row);

		CU_ASSERT_PTR_NOT_NULL_FATAL(p1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p2);
		CU_ASSERT_EQUAL(strcspn(p1, "\r"), strcspn(p2, "\r"));
		CU_ASSERT_EQUAL(strncmp(p1, p2, strcspn(p1, "\r")), 0);
	}
	free(out);
	free(err);
	free(with_file);
	/* An unreadable --holidays file is an error, not weekends only. */
	argv[11] = "--holidays";
	argv[12] = "/nonexistent/bank-holidays.json";
	argv[13] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	CU_ASSERT_EQUAL(rc, 66);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read the bank holidays"));
	free(out);
	free(err);
	ras_triage_free(tri);
	ras_db_close(db);
	free(conninfo);
}

int
main(void)
{
	static const struct ras_test_case pure[] = {
		{ "measures from made-up data", measures_from_made_up_data },
		{ "KPIs count what happened: delivered returns and 2WW notices", kpi_counts_what_happened },
		{ "Dorset access times", dorset_access_times },
		{ NULL, NULL },
	};
	static const struct ras_test_case dbcases[] = {
		{ "report from the database (golden)", report_from_database },
		{ "rasctl report kpi", rasctl_report },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "kpi", pure, NULL, NULL },
		{ "kpi-db", dbcases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
