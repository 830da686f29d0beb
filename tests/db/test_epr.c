/* Integration tests: EPR event messages and clinicians' decisions (lib/epr.c). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/json.h"
#include "ras/outbox.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

/* Every service's decisions await a clinician, so that the tests decide. */
#define AUTOMATION_NONE "[service midnotts]\nautomation = none\n" \
	"[service bassetlaw-2022]\nautomation = none\n"

static struct ras_db *db;
static struct ras_triage *tri;
static struct ras_outbox *ob;
static struct ras_epr_ctx ctx;

static int
setup(void)
{
	db = ras_test_db("epr", NULL);
	tri = ras_test_triage(AUTOMATION_NONE, NULL);
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

static void
exec(const char *sql)
{
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
}

/* Store a referral payload as intake does; returns its payload id. */
static int64_t
store_text(const char *data, size_t len, const char *ref, const char *service)
{
	struct ras_inbox_item it = { .data = data, .len = len, .source = "file", .source_ref = ref,
		.service_hint = service };

	return ras_test_ingest(db, &it);
}

/* Store a fixture referral and triage it (a recommendation: automation
 * none); returns its payload id. */
static int64_t
store_referral(const char *rel, const char *service)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	int64_t id = store_text(data, len, rel, service);

	free(data);
	/* The EPR events here are dated from 2026-04-02: the referral came
	 * before them (an event dated before receipt is refused). */
	CU_ASSERT_EQUAL(count("WITH u AS (UPDATE referrals SET received_at = '2026-03-30T07:00:00Z'"
	    " WHERE state = 'new' RETURNING 1) SELECT count(*) FROM u"), 1);
	CU_ASSERT_EQUAL(ras_test_triage_pending(db, tri, ras_time_now()), 1);
	return id;
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

	CU_ASSERT_EQUAL_FATAL(ras_epr_receive(db, &ctx, &it, &r), 0);
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
	/* the summary also as JSON text, for its letter */
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev.summary_text);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.summary_text, "\"discharge-date\""));
	CU_ASSERT_EQUAL(ev.summary_len, strlen(ev.summary_text));
	/* a contact may carry one too (its notification letter); without one it has none */
	CU_ASSERT_EQUAL(parse_fixture(a, "epr/patient-contacted.json", &ev), 0);
	CU_ASSERT_PTR_NULL(ev.summary);
	CU_ASSERT_PTR_NULL(ev.summary_text);

	CU_ASSERT_EQUAL(parse_fixture(a, "epr/clinician-decision.json", &ev), 0);
	CU_ASSERT_EQUAL(ev.outcome, RAS_OUTCOME_ACCEPT);
	CU_ASSERT_STRING_EQUAL(ev.actor, "687001000002");
	CU_ASSERT_STRING_EQUAL(ev.advice, "Accepted after MDT review.");
	CU_ASSERT_FALSE(ev.override);
	ras_arena_free(a);
	/* The override extension on the Task. */
	{
		char *m = fixture_with("epr/clinician-decision.json", "\"status\": \"completed\",",
		    "\"status\": \"completed\", \"extension\": [{\"url\": \"" RAS_URL_OVERRIDE "\","
		    " \"valueBoolean\": true}],");
		json_t *j = NULL;

		a = ras_arena_new();
		CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, m, strlen(m), 0, &j), 0);
		CU_ASSERT_EQUAL(ras_epr_parse(a, j, &ev), 0);
		CU_ASSERT_TRUE(ev.override);
		free(m);
		ras_arena_free(a);
	}
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

/* Deadlines of a referral: "kind:open|met|cancelled" sorted, one string. */
static char *
clocks(const char *ubrn)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "SELECT string_agg(dl.kind || ':' || CASE WHEN dl.met_at IS NOT NULL"
	    " THEN 'met' WHEN dl.cancelled_at IS NOT NULL THEN 'cancelled' ELSE 'open' END, ' '"
	    " ORDER BY dl.kind, dl.id) FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id"
	    " WHERE r.ubrn = '%s'", ubrn);
	return text(sql);
}

static void
events_meet_deadlines(void)
{
	struct ras_epr_result r;
	char *s;

	/* Triage recommends returning it (out of area; automation none). */
	store_referral("r4/referral-collection-urn.json", "bassetlaw-2022");
	s = clocks("100000000101");
	CU_ASSERT_STRING_EQUAL(s, "return:open triage:open");
	free(s);
	/* The EPR's Task: the clinician accepts it.  The clocks are the rule
	 * set's for an acceptance; the triage clock is met by the decision. */
	r = receive_fixture("epr/clinician-decision.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_TRUE(r.decision_id > 0);
	s = text("SELECT d.decided_by || ' ' || d.outcome || ' ' || d.final::text || ' '"
	    " || (e.decision_id = d.id)::text || ' ' || (d.reasons -> 0 ->> 'advice') || ' '"
	    " || (d.reasons -> 0 ->> 'clause') FROM decisions d"
	    " JOIN epr_events e ON e.decision_id = d.id WHERE e.kind = 'clinician-decision'");
	CU_ASSERT_STRING_EQUAL(s, "687001000002 accept true true Accepted after MDT review. 003 \xc2\xa7" "5.1");
	free(s);
	s = clocks("100000000101");
	CU_ASSERT_STRING_EQUAL(s, "contact:open first-appointment:open pathway-end:open return:cancelled "
	    "treatment:open triage:met");
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE kind = 'triage' AND met_by LIKE 'decision:%'"), 1);
	/* It flows on: an e-RS intent is not made (no UBRN source), the triage letter is. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE kind = 'triage-outcome'"), 1);
	/* Resent: no second decision. */
	r = receive_fixture("epr/clinician-decision.json");
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions WHERE decided_by <> 'rules'"), 1);

	r = receive_fixture("epr/patient-contacted.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_STRING_EQUAL(r.ubrn, "100000000101");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	CU_ASSERT_FALSE(r.duplicate);
	CU_ASSERT_TRUE(r.payload_id > 0);
	s = text("SELECT to_char(met_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM deadlines"
	    " WHERE kind = 'contact' AND met_at IS NOT NULL");
	CU_ASSERT_STRING_EQUAL(s, "2026-04-08 08:00");
	free(s);
	s = text("SELECT met_by FROM deadlines WHERE kind = 'contact' AND met_at IS NOT NULL");
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "epr-event:"));
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'stored'"), 2);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE kind = 'epr-patient-contacted'"), 1);

	/* The offer meets nothing new (contact is met); the first attendance
	 * meets the first-appointment clock; treatment its own. */
	r = receive_fixture("epr/appointment-offered.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 0);
	r = receive_fixture("epr/appointment-attended.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	r = receive_fixture("epr/treatment-started.json");
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	s = clocks("100000000101");
	CU_ASSERT_STRING_EQUAL(s, "contact:met first-appointment:met pathway-end:open return:cancelled "
	    "treatment:met triage:met");
	free(s);

	/* Discharged: the summary is stored and its discharge summary queued
	 * with its 5-working-day clock (003 §5.1); the pathway clock is met. */
	r = receive_fixture("epr/discharged.json");
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_TRUE(r.episode_id > 0);
	CU_ASSERT_EQUAL(r.deadlines_met, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "discharge summary queued"));
	s = text("SELECT content -> 'questionnaire' #>> '{}' FROM epr_events WHERE kind = 'discharged'");
	CU_ASSERT_STRING_EQUAL(s, "urn:rasd:questionnaire:episode-summary");
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM episodes WHERE kind = 'discharge'"
	    " AND event_date = '2026-07-01' AND actor = '687001000001'"), 1);
	/* 2026-07-01 is a Wednesday: 5 working days on is Wednesday 8 July. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE kind = 'discharge-summary'"
	    " AND due_date = '2026-07-08' AND clause = '003 \xc2\xa7" "5.1' AND met_at IS NULL"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE kind = 'discharge-summary'"
	    " AND state = 'pending' AND episode_id IS NOT NULL"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE kind = 'patient-copy'"), 1);
	s = clocks("100000000101");
	CU_ASSERT_STRING_EQUAL(s, "contact:met discharge-summary:open first-appointment:met pathway-end:met "
	    "return:cancelled treatment:met triage:met");
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events WHERE mode = 'face-to-face' AND first_appointment"), 2);
}

static void
discharge_missing_items_refused(void)
{
	char *m1 = fixture_with("epr/discharged.json", "5b0c1d2e-0007-", "5b0c1d2e-1007-");
	char *m2 = replace(m1, "\"linkId\": \"test-results\"", "\"linkId\": \"peer-support\"");
	char *msg = replace(m2, "\"linkId\": \"key-worker\"", "\"linkId\": \"fit-for-procedure\"");
	struct ras_epr_result r;
	int64_t episodes = count("SELECT count(*) FROM episodes");

	free(m1);
	free(m2);
	r = receive_text(msg, strlen(msg));
	/* Kept, refused with the list of what the Bassetlaw discharge summary
	 * cannot go without; nothing else recorded. */
	CU_ASSERT_STRING_EQUAL(r.state, "rejected");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "test-results"));
	CU_ASSERT_PTR_NULL(strstr(r.message, "key-worker"));   /* not required by 003 */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'rejected'"
	    " AND error LIKE '%test-results%'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM episodes"), episodes);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events WHERE message_id LIKE '5b0c1d2e-1007-%'"), 0);
	free(msg);
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
	/* A resent discharge stores no second summary. */
	r = receive_fixture("epr/discharged.json");
	CU_ASSERT_STRING_EQUAL(r.state, "duplicate");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM episodes"), 1);
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
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM inbox WHERE kind = 'epr-event' AND state = 'rejected'"
	    " AND error LIKE 'no stored referral%'"), 0);
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
	struct ras_epr_ctx none = { NULL, NULL };
	char *s;
	int64_t first;

	/* 100000000102 (midnotts) awaits a clinician: triage recommended a return. */
	s = text("SELECT state FROM referrals WHERE ubrn = '100000000102'");
	CU_ASSERT_STRING_EQUAL(s, "review");
	free(s);
	ev = decision_event("100000000102", RAS_OUTCOME_ONWARD, NULL, "Refer to secondary care");
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "needs a target"));
	ev = decision_event("100000000102", RAS_OUTCOME_RETURN, NULL, NULL);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "needs advice"));
	/* Without the rule sets a decision cannot get its clocks: an error, not a refusal. */
	ev = decision_event("100000000102", RAS_OUTCOME_RETURN, NULL, "Please try physiotherapy first.");
	CU_ASSERT_EQUAL(ras_epr_record(db, &none, &ev, 0, false, &r), RAS_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "rule sets are not loaded"));

	CU_ASSERT_EQUAL_FATAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	CU_ASSERT_TRUE(r.decision_id > 0);
	first = r.decision_id;
	s = text("SELECT decided_by || ' ' || outcome || ' ' || final::text || ' ' || ruleset_version"
	    " || ' ' || (facts ->> 'previous_outcome') || ' ' || (facts ->> 'override')"
	    " FROM decisions ORDER BY id DESC LIMIT 1");
	CU_ASSERT_STRING_EQUAL(s, "687001000009 return true clinician return false");
	free(s);
	s = text("SELECT reasons -> 0 ->> 'advice' FROM decisions ORDER BY id DESC LIMIT 1");
	CU_ASSERT_STRING_EQUAL(s, "Please try physiotherapy first.");
	free(s);
	s = text("SELECT state FROM referrals WHERE ubrn = '100000000102'");
	CU_ASSERT_STRING_EQUAL(s, "decided");
	free(s);
	/* The return clocks of the midnotts rule set: triage met by the decision,
	 * return open until the return letter goes (or e-RS records it). */
	s = clocks("100000000102");
	CU_ASSERT_STRING_EQUAL(s, "return:open triage:met");
	free(s);
	/* A final decision stands unless the clinician means to replace it. */
	ev = decision_event("100000000102", RAS_OUTCOME_ACCEPT, NULL, "Seen the new letter: accept");
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "already has a final decision"));
	ev.override = true;
	CU_ASSERT_EQUAL_FATAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	CU_ASSERT_TRUE(r.decision_id > first);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000000102' AND d.outcome = 'accept' AND d.final"
	    " AND (d.facts ->> 'override')::boolean AND d.facts ->> 'previous_outcome' = 'return'"), 1);
	/* The return clock is superseded, the acceptance's start; the triage
	 * clock stays met (not started again). */
	s = clocks("100000000102");
	CU_ASSERT_STRING_EQUAL(s, "assessment:open contact:open return:cancelled treatment:open triage:met");
	free(s);
	/* The unsent return letter is replaced by the acceptance's. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000102' AND o.kind = 'triage-outcome' AND o.state = 'cancelled'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox o JOIN referrals r ON r.id = o.referral_id"
	    " WHERE r.ubrn = '100000000102' AND o.kind = 'triage-outcome' AND o.state = 'pending'"
	    " AND o.doc_version = 2"), 1);
	ev = decision_event("999999999999", RAS_OUTCOME_ACCEPT, NULL, NULL);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_ENOTFOUND);
}

static void
undecidable_states(void)
{
	struct ras_epr_result r;
	struct ras_epr_event ev;
	size_t len;
	char *data = ras_test_read(ras_test_fixture("r4/referral-message.json"), &len);
	char *v1 = replace(data, "100000000102", "100000000777");   /* Bundle.id */
	char *v = replace(v1, "100000000102", "100000000777");      /* the UBRN */

	/* Stored, not triaged yet: the rules must see it first. */
	(void)store_text(v, strlen(v), "t", NULL);
	ev = decision_event("100000000777", RAS_OUTCOME_ACCEPT, NULL, "ok");
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "waiting for triage"));
	/* Triaged without a service (no hint, no default): unassigned. */
	CU_ASSERT_EQUAL(ras_test_triage_pending(db, tri, ras_time_now()), 1);
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "unassigned"));
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals x ON x.id = d.referral_id"
	    " WHERE x.ubrn = '100000000777'"), 0);
	free(v);
	free(v1);
	free(data);
}

static void
red_flags_never_returned(void)
{
	struct ras_epr_result r;
	struct ras_epr_event ev;
	char *key;

	store_referral("r4/referral-transaction-relative.json", "midnotts");
	key = text("SELECT referral_key FROM referrals WHERE referral_key LIKE 'local:%'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	/* Say triage had found a red flag (safety stage) in an earlier decision. */
	exec("INSERT INTO decisions (referral_id, service, outcome, final, reasons, facts, ruleset_version,"
	     " decided_by) SELECT id, 'midnotts', 'review', false,"
	     " '[{\"rule\":\"midnotts.red-flags\",\"clause\":\"004 §3.4\",\"advice\":null,\"stage\":\"safety\"}]',"
	     " '{}', 'test', 'rules' FROM referrals WHERE referral_key LIKE 'local:%'");
	ev = decision_event(NULL, RAS_OUTCOME_RETURN, NULL, "Not for us");
	ev.referral_key = key;
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "red flag"));
	ev = decision_event(NULL, RAS_OUTCOME_ACCEPT, NULL, "Seen by the consultant: no red flag after all");
	ev.referral_key = key;
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	/* Even overriding a later, clinician's decision cannot return it: the
	 * red flag of any earlier decision counts. */
	ev = decision_event(NULL, RAS_OUTCOME_RETURN, NULL, "Not for us");
	ev.referral_key = key;
	ev.override = true;
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "red flag"));
	ev = decision_event(NULL, RAS_OUTCOME_ONWARD, "two-week-wait", "Urgent suspected cancer referral");
	ev.referral_key = key;
	ev.override = true;
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions WHERE onward_target = 'two-week-wait'"
	    " AND decided_by = '687001000009'"), 1);
	/* Meant for the two-week-wait pathway once: never returned either. */
	ev = decision_event(NULL, RAS_OUTCOME_RETURN, NULL, "Not for us");
	ev.referral_key = key;
	ev.override = true;
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	free(key);
}

static void
contact_summary_makes_notification_letter(void)
{
	char *m1 = fixture_with("epr/patient-contacted.json", "5b0c1d2e-0001-", "5b0c1d2e-2001-");
	char *m2, *msg, *qr = ras_test_read(ras_test_fixture("documents/episode-notification.json"), NULL);
	const char *entry_end = "\n  ]\n}";
	struct ras_epr_result r;
	size_t cut;

	/* The contact message for 100000000102 (midnotts, accepted above),
	 * on the Thursday before Easter 2026, carrying an episode summary: its
	 * notification letter (004 §3.11). */
	m2 = replace(m1, "100000000101", "100000000102");
	{
		char *m3 = replace(m2, "\"start\": \"2026-04-08T09:00:00+01:00\"",
		    "\"start\": \"2026-04-02T09:00:00+01:00\"");

		free(m2);
		m2 = m3;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(strstr(m2, entry_end));
	cut = (size_t)(strstr(m2, entry_end) - m2);
	msg = malloc(cut + strlen(qr) + 64);
	snprintf(msg, cut + strlen(qr) + 64, "%.*s,\n{\"resource\": %s}\n  ]\n}", (int)cut, m2, qr);
	r = receive_text(msg, strlen(msg));
	CU_ASSERT_STRING_EQUAL(r.state, "recorded");
	CU_ASSERT_TRUE(r.episode_id > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "notification letter queued"));
	/* Contact on Thursday 2 April 2026: Good Friday and Easter Monday are
	 * not operational days, so 3 of them run to Thursday 9 April (counting
	 * weekends only would say Tuesday 7). */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines dl JOIN referrals x ON x.id = dl.referral_id"
	    " WHERE x.ubrn = '100000000102' AND dl.kind = 'notification-letter'"
	    " AND dl.due_date = '2026-04-09'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox o JOIN referrals x ON x.id = o.referral_id"
	    " WHERE x.ubrn = '100000000102' AND o.kind = 'notification-letter'"), 1);
	free(msg);
	free(m2);
	free(m1);
	free(qr);
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
		{ "a discharge missing a required item is refused with the list", discharge_missing_items_refused },
		{ "resends change nothing", resends_change_nothing },
		{ "unknown referral kept, retried", unknown_referral_kept_then_retried },
		{ "clinician decisions, and overriding a final one", clinician_decisions },
		{ "referrals not triaged cannot be decided", undecidable_states },
		{ "red flags are never returned", red_flags_never_returned },
		{ "a contact summary makes the notification letter", contact_summary_makes_notification_letter },
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
