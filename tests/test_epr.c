/* Integration tests: EPR event messages and clinicians' decisions (lib/epr.c). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/store.h"

static struct ras_db *db;

static int
setup(void)
{
	db = ras_test_db("epr", NULL);
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
	struct ras_db_res *res = NULL;
	int64_t n = -1;

	if (ras_db_query(db, &res, sql, 0, NULL) == 0)
		(void)ras_db_res_int(res, 0, 0, &n);
	ras_db_res_free(res);
	return n;
}

static char *
text(const char *sql)
{
	struct ras_db_res *res = NULL;
	char *v = NULL;

	if (ras_db_query(db, &res, sql, 0, NULL) == 0 && ras_db_res_rows(res) > 0 &&
	    ras_db_res_get(res, 0, 0))
		v = strdup(ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	return v;
}

static void
exec(const char *sql)
{
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
}

/* Store a fixture referral; returns its payload id. */
static int64_t
store_referral(const char *rel, const char *service)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	struct ras_inbox_item it = { .data = data, .len = len, .source = "file", .source_ref = rel,
		.service_hint = service };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, &put.id, 1, 1, &rep, &n), 0);
	free(rep);
	free(data);
	return put.id;
}

static int
parse_fixture(struct ras_arena *a, const char *rel, struct ras_epr_event *ev)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	json_t *j = NULL;
	int err;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, data, len, 0, &j), 0);
	CU_ASSERT_TRUE(ras_epr_detect(j));
	err = ras_epr_parse(a, j, ev);
	free(data);
	return err;
}

/* Receive a message given as text (as the daemon does). */
static struct ras_epr_result
receive_text(const char *data, size_t len)
{
	struct ras_inbox_item it = { .data = data, .len = len, .source = "http", .source_ref = "/fhir/Bundle" };
	struct ras_epr_result r;

	CU_ASSERT_EQUAL_FATAL(ras_epr_receive(db, &it, &r), 0);
	return r;
}

static struct ras_epr_result
receive_fixture(const char *rel)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	struct ras_epr_result r = receive_text(data, len);

	free(data);
	return r;
}

/* s with the first `from` replaced by `to` (malloc'd). */
static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	size_t pre, flen = strlen(from), tlen = strlen(to), rest;
	char *out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	pre = (size_t)(p - s);
	rest = strlen(s) - pre - flen;
	out = malloc(pre + tlen + rest + 1);
	memcpy(out, s, pre);
	memcpy(out + pre, to, tlen);
	memcpy(out + pre + tlen, p + flen, rest);
	out[pre + tlen + rest] = '\0';
	return out;
}

/* A fixture with one string replaced (malloc'd). */
static char *
fixture_with(const char *rel, const char *from, const char *to)
{
	char *data = ras_test_read(ras_test_fixture(rel), NULL), *out = replace(data, from, to);

	free(data);
	return out;
}

/* --- parsing -------------------------------------------------------------- */

static void
parse_every_shape(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_epr_event ev;
	int64_t t;

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/patient-contacted.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_CONTACTED);
	CU_ASSERT_STRING_EQUAL(ev.ubrn, "100000000101");
	CU_ASSERT_STRING_EQUAL(ev.mode, "virtual");
	CU_ASSERT_STRING_EQUAL(ev.actor, "687001000001");
	CU_ASSERT_STRING_EQUAL(ev.message_id, "5b0c1d2e-0001-4a00-9000-000000000001");
	(void)ras_time_parse("2026-04-08T08:00:00Z", false, &t);
	CU_ASSERT_EQUAL(ev.occurred_at, t);

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/appointment-offered.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_OFFERED);
	CU_ASSERT_STRING_EQUAL(ev.mode, "face-to-face");
	CU_ASSERT_EQUAL(ev.first_appointment, 1);
	CU_ASSERT_TRUE(ev.has_slot);
	(void)ras_time_parse("2026-04-20T09:00:00Z", false, &t);
	CU_ASSERT_EQUAL(ev.slot, t);

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/appointment-attended.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_ATTENDED);
	CU_ASSERT_STRING_EQUAL(ev.mode, "face-to-face");

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/treatment-started.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_TREATMENT);
	CU_ASSERT_EQUAL(parse_fixture(a, "epr/pifu.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_PIFU);
	CU_ASSERT_EQUAL(parse_fixture(a, "epr/onward-referral.json", &ev), 0);
	CU_ASSERT_STRING_EQUAL(ev.target, "secondary-care");

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/discharged.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, RAS_EPR_DISCHARGED);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev.summary);
	CU_ASSERT_STRING_EQUAL(ev.summary->questionnaire, RAS_Q_EPISODE_SUMMARY);
	CU_ASSERT_EQUAL(ras_form_bool(ev.summary, "opioid"), 1);

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/clinician-decision.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.outcome, RAS_OUTCOME_ACCEPT);
	CU_ASSERT_STRING_EQUAL(ev.actor, "687001000002");
	CU_ASSERT_STRING_EQUAL(ev.advice, "Accepted after MDT review.");
	ras_arena_free(a);
}

static void
parse_refusals(void)
{
	static const struct {
		const char *rel, *from, *to, *why;
	} cases[] = {
		{ "epr/patient-contacted.json", "\"patient-contacted\"", "\"patient-phoned\"", "unknown EPR event" },
		{ "epr/patient-contacted.json", "\"resourceType\": \"Encounter\"",
		  "\"resourceType\": \"Observation\"", "needs a Encounter" },
		{ "epr/patient-contacted.json", "\"basedOn\"", "\"partOf\"", "basedOn must name the referral" },
		{ "epr/patient-contacted.json", "\"start\"", "\"begin\"", "Encounter.period.start is missing" },
		{ "epr/appointment-attended.json", "\"code\": \"AMB\"", "\"code\": \"EMER\"",
		  "Encounter.class VR" },
		{ "epr/appointment-offered.json", "\"created\": \"2026-04-09\"", "\"created\": \"9 April\"",
		  "not a FHIR dateTime" },
		{ "epr/discharged.json", "\"status\": \"finished\"", "\"status\": \"active\"", "status finished" },
		{ "epr/discharged.json", "episode-summary", "referral-form", "episode summary" },
		{ "epr/pifu.json", "\"urn:rasd:episode-type\"", "\"urn:example:other\"", "episode-type#pifu" },
		{ "epr/onward-referral.json", "\"performerType\"", "\"performer\"", "performerType" },
		{ "epr/clinician-decision.json", "\"code\": \"accept\"", "\"code\": \"review\"",
		  "businessStatus" },
		{ "epr/clinician-decision.json", "\"owner\"", "\"requester\"", "SDS user id" },
		{ NULL, NULL, NULL, NULL },
	};

	for (int i = 0; cases[i].rel; i++) {
		struct ras_arena *a = ras_arena_new();
		char *data = fixture_with(cases[i].rel, cases[i].from, cases[i].to);
		struct ras_epr_event ev;
		json_t *j = NULL;

		CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, data, strlen(data), 0, &j), 0);
		CU_ASSERT_EQUAL(ras_epr_parse(a, j, &ev), RAS_EINVALID);
		if (strstr(ras_error_last(), cases[i].why) == NULL)
			fprintf(stderr, "case %d: \"%s\" does not say \"%s\"\n", i, ras_error_last(), cases[i].why);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), cases[i].why));
		free(data);
		ras_arena_free(a);
	}
}

static void
detect_only_epr(void)
{
	struct ras_arena *a = ras_arena_new();
	size_t len;
	char *data = ras_test_read(ras_test_fixture("r4/referral-message.json"), &len);
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, data, len, 0, &j), 0);
	/* A referral message is not an EPR event (other eventCoding system). */
	CU_ASSERT_FALSE(ras_epr_detect(j));
	free(data);
	ras_arena_free(a);
}

/* --- recording -------------------------------------------------------------- */

static void
events_meet_deadlines(void)
{
	struct ras_epr_result r;
	char *s;

	store_referral("r4/referral-collection-urn.json", "bassetlaw-2022");
	/* Clocks as triage would have started them. */
	exec("INSERT INTO deadlines (referral_id, kind, due_date, due_at)"
	     " SELECT id, k, '2026-04-15', '2026-04-15 23:00Z' FROM referrals,"
	     " unnest(ARRAY['contact','first-appointment-offered','first-appointment','treatment','return']) k"
	     " WHERE ubrn = '100000000101'");

	r = receive_fixture("epr/patient-contacted.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_STRING_EQUAL(r.ubrn, "100000000101");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	CU_ASSERT_FALSE(r.duplicate);
	CU_ASSERT_TRUE(r.payload_id > 0);
	s = text("SELECT to_char(met_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM deadlines WHERE kind = 'contact'");
	CU_ASSERT_STRING_EQUAL(s, "2026-04-08 08:00");
	free(s);
	s = text("SELECT met_by FROM deadlines WHERE kind = 'contact'");
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "epr-event:"));
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'stored'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'epr-patient-contacted'"), 1);

	/* The offer meets the first-appointment-offered clock; contact is already met. */
	r = receive_fixture("epr/appointment-offered.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	r = receive_fixture("epr/appointment-attended.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE met_at IS NULL"), 2);
	r = receive_fixture("epr/treatment-started.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	/* "return" is not met by any EPR event. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE met_at IS NULL AND kind = 'return'"), 1);

	r = receive_fixture("epr/discharged.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	s = text("SELECT content -> 'questionnaire' #>> '{}' FROM epr_events WHERE kind = 'discharged'");
	CU_ASSERT_STRING_EQUAL(s, "urn:rasd:questionnaire:episode-summary");
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events WHERE mode = 'face-to-face' AND first_appointment"), 2);
}

static void
resends_change_nothing(void)
{
	struct ras_epr_result r;
	char *again;
	int64_t before = count("SELECT count(*) FROM epr_events");

	/* The same bytes again. */
	r = receive_fixture("epr/patient-contacted.json");
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate");
	CU_ASSERT_TRUE(r.duplicate);
	/* Different bytes, same MessageHeader.id (a re-serialised resend). */
	again = fixture_with("epr/patient-contacted.json", "\"Telephone call", "\"Phone call");
	r = receive_text(again, strlen(again));
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate");
	free(again);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events"), before);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'duplicate'"), 1);
}

static void
unknown_referral_kept_then_retried(void)
{
	char *m1 = fixture_with("epr/patient-contacted.json", "100000000101", "100000000102");
	char *msg = replace(m1, "5b0c1d2e-0001-", "5b0c1d2e-1001-");
	struct ras_epr_result r;

	free(m1);
	/* UBRN 100000000102 is not stored yet: kept, rejected with the reason. */
	r = receive_text(msg, strlen(msg));
	CU_ASSERT_STRING_EQUAL(r.state, "rejected");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "no stored referral with UBRN \"100000000102\""));
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'rejected'"
	    " AND error LIKE 'no stored referral%'"), 1);
	/* The referral arrives; the EPR resends the same message: recorded. */
	store_referral("r4/referral-message.json", "midnotts");
	r = receive_text(msg, strlen(msg));
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'rejected'"), 0);
	free(msg);

	/* Not JSON at all: kept, rejected. */
	r = receive_text("{\"resourceType\":", 16);
	CU_ASSERT_STRING_EQUAL(r.state, "rejected");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "malformed JSON"));
}

static struct ras_epr_event
decision_event(const char *ubrn, enum ras_outcome o, const char *target, const char *advice)
{
	struct ras_epr_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = RAS_EPR_DECISION;
	ev.ubrn = ubrn;
	ev.outcome = o;
	ev.target = target;
	ev.advice = advice;
	ev.actor = "687001000009";
	ev.first_appointment = -1;
	ev.occurred_at = ras_time_now();
	return ev;
}

static void
clinician_decisions(void)
{
	struct ras_epr_result r;
	struct ras_epr_event ev;
	char *s;

	/* 100000000102 has no decision yet; its triage clock is met by the decision. */
	exec("INSERT INTO deadlines (referral_id, kind, due_date, due_at) SELECT id, 'triage',"
	     " '2026-04-08', '2026-04-08 23:00Z' FROM referrals WHERE ubrn = '100000000102'");
	ev = decision_event("100000000102", RAS_OUTCOME_ONWARD, NULL, "Refer to secondary care");
	CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "needs a target"));
	ev = decision_event("100000000102", RAS_OUTCOME_RETURN, NULL, NULL);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "needs advice"));

	ev = decision_event("100000000102", RAS_OUTCOME_RETURN, NULL, "Please try physiotherapy first.");
	CU_ASSERT_EQUAL_FATAL(ras_epr_record(db, &ev, 0, false, &r), 0);
	CU_ASSERT_TRUE(r.decision_id > 0);
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	s = text("SELECT decided_by || ' ' || outcome || ' ' || final::text || ' ' || ruleset_version"
	    " FROM decisions ORDER BY id DESC LIMIT 1");
	CU_ASSERT_STRING_EQUAL(s, "687001000009 return true clinician");
	free(s);
	s = text("SELECT reasons -> 0 ->> 'advice' FROM decisions ORDER BY id DESC LIMIT 1");
	CU_ASSERT_STRING_EQUAL(s, "Please try physiotherapy first.");
	free(s);
	s = text("SELECT state FROM referrals WHERE ubrn = '100000000102'");
	CU_ASSERT_STRING_EQUAL(s, "decided");
	free(s);
	/* A final decision stands: a second one is refused. */
	ev = decision_event("100000000102", RAS_OUTCOME_ACCEPT, NULL, NULL);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "already has a final decision"));
	ev = decision_event("999999999999", RAS_OUTCOME_ACCEPT, NULL, NULL);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), RAS_ENOTFOUND);
}

static void
red_flags_never_returned(void)
{
	struct ras_epr_result r;
	struct ras_epr_event ev;

	store_referral("r4/referral-transaction-relative.json", "midnotts");
	/* Triage recommended review because of a red flag (safety stage). */
	exec("INSERT INTO decisions (referral_id, service, outcome, final, reasons, facts, ruleset_version,"
	     " decided_by, doc) SELECT id, 'midnotts', 'review', false,"
	     " '[{\"rule\":\"midnotts.red-flags\",\"clause\":\"004 §3.4\",\"advice\":null,\"stage\":\"safety\"}]',"
	     " '{}', 'test', 'rules', '{}' FROM referrals WHERE ubrn IS NULL OR referral_key LIKE 'local:%'");
	{
		char *key = text("SELECT referral_key FROM referrals WHERE referral_key LIKE 'local:%'");

		CU_ASSERT_PTR_NOT_NULL_FATAL(key);
		ev = decision_event(NULL, RAS_OUTCOME_RETURN, NULL, "Not for us");
		ev.referral_key = key;
		CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "red flag"));
		ev = decision_event(NULL, RAS_OUTCOME_ONWARD, "two-week-wait", "Urgent suspected cancer referral");
		ev.referral_key = key;
		CU_ASSERT_EQUAL(ras_epr_record(db, &ev, 0, false, &r), 0);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions WHERE onward_target = 'two-week-wait'"
		    " AND decided_by = '687001000009'"), 1);
		free(key);
	}
}

static void
decision_by_message(void)
{
	struct ras_epr_result r;
	char *s;

	/* 100000000101 has no decision: the EPR's Task records one. */
	r = receive_fixture("epr/clinician-decision.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_TRUE(r.decision_id > 0);
	s = text("SELECT d.decided_by || ' ' || d.outcome || ' ' || (e.decision_id = d.id)::text FROM decisions d"
	    " JOIN epr_events e ON e.decision_id = d.id WHERE e.kind = 'clinician-decision'");
	CU_ASSERT_STRING_EQUAL(s, "687001000002 accept true");
	free(s);
	/* Resent: no second decision. */
	r = receive_fixture("epr/clinician-decision.json");
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals x ON x.id = d.referral_id"
	    " WHERE x.ubrn = '100000000101'"), 1);
}

static void
events_are_append_only(void)
{
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "UPDATE epr_events SET kind = 'pifu'"), 0);
	CU_ASSERT_NOT_EQUAL(ras_db_exec(db, "DELETE FROM epr_events"), 0);
}

int
main(void)
{
	static const struct ras_test_case parse_cases[] = {
		{ "every event shape", parse_every_shape },
		{ "refusals say why", parse_refusals },
		{ "referral messages are not EPR events", detect_only_epr },
		{ NULL, NULL },
	};
	static const struct ras_test_case record_cases[] = {
		{ "events meet their deadlines", events_meet_deadlines },
		{ "resends change nothing", resends_change_nothing },
		{ "unknown referral kept, retried", unknown_referral_kept_then_retried },
		{ "clinician decisions", clinician_decisions },
		{ "red flags are never returned", red_flags_never_returned },
		{ "decision by EPR message", decision_by_message },
		{ "epr_events is append-only", events_are_append_only },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "epr-parse", parse_cases, NULL, NULL },
		{ "epr-record", record_cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
