/* CLI tests: rasctl decide, record, epr, events, status and replay, as operators run them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/json.h"
#include "ras/time.h"

static char *conninfo;
static struct ras_db *db;

static int
setup(void)
{
	db = ras_test_db("ops", &conninfo);
	return 0;
}

static int
teardown(void)
{
	ras_db_close(db);
	free(conninfo);
	return 0;
}

static int
rasctl(const char *const *args, char **out, char **err)
{
	return ras_test_rasctl(conninfo, NULL, args, out, err);
}

static int64_t
count(const char *sql)
{
	return ras_test_sql_int(db, sql, NULL);
}

static void
no_patient_data(const char *s)
{
	static const char *pii[] = { "9990000018", "Jane", "Example", "1970-05-14", "1 Example", NULL };

	for (int i = 0; pii[i]; i++)
		CU_ASSERT_PTR_NULL(strstr(s, pii[i]));
}

static void
decide(void)
{
	char *out, *err;
	char f[4096];

	/* Out of area: triage returns it, final (an administrative return). */
	snprintf(f, sizeof(f), "%s", ras_test_fixture("r4/referral-collection-urn.json"));
	CU_ASSERT_EQUAL_FATAL(rasctl((const char *[]){ "ingest", "--service", "bassetlaw-2022", f, NULL },
	    &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "return (final) bassetlaw-2022.population"));
	free(out);
	free(err);
	/* The events below are dated from 2026-04-08: the referral came before
	 * them (an event dated before receipt is refused). */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "UPDATE referrals SET received_at = '2026-04-07T07:00:00Z'"), 0);

	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "return",
	    "--advice", "Please try physiotherapy first.", "--by", "12345", NULL }, &out, &err), 64);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "SDS user id (12 digits)"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "review",
	    "--advice", "x", "--by", "687001000009", NULL }, &out, &err), 64);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "accept",
	    "--by", "687001000009", NULL }, &out, &err), 64);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000999", "--outcome", "accept",
	    "--advice", "ok", "--by", "687001000009", NULL }, &out, &err), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no stored referral with UBRN \"100000000999\""));
	free(out);
	free(err);

	/* The rules' return is final: a clinician replaces it only on purpose. */
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "accept",
	    "--advice", "Registered at a Bassetlaw practice since March: accepted.", "--by",
	    "687001000009", NULL }, &out, &err), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "already has a final decision"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--override"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "accept",
	    "--advice", "Registered at a Bassetlaw practice since March: accepted.", "--by",
	    "687001000009", "--override", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "clinician decision accept for referral 100000000101 recorded"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions WHERE decided_by = '687001000009'"
	    " AND outcome = 'accept' AND final AND ruleset_version = 'clinician'"
	    " AND reasons -> 0 ->> 'advice' = 'Registered at a Bassetlaw practice since March: accepted.'"
	    " AND reasons -> 0 ->> 'clause' = '003 \xc2\xa7" "5.1'"
	    " AND (facts ->> 'override')::boolean AND facts ->> 'previous_outcome' = 'return'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000000101' AND state = 'decided'"), 1);
	/* Its clocks are the acceptance's, from the rule set, from receipt. */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE met_at IS NULL AND cancelled_at IS NULL"
	    " AND kind IN ('contact', 'first-appointment', 'treatment', 'pathway-end')"), 4);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE kind = 'return' AND cancelled_at IS NOT NULL"), 1);
	/* Final again: a second decision without --override is refused. */
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "decide", "100000000101", "--outcome", "return",
	    "--advice", "Changed my mind", "--by", "687001000009", NULL }, &out, &err), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "already has a final decision"));
	free(out);
	free(err);
}

static void
record_and_epr(void)
{
	char *out, *err, *qr;
	const char *summary =
	    "{\"resourceType\":\"QuestionnaireResponse\",\"status\":\"completed\","
	    "\"questionnaire\":\"urn:rasd:questionnaire:episode-summary|1\","
	    "\"item\":[{\"linkId\":\"gp-actions\",\"answer\":[{\"valueString\":\"Review in 3 months\"}]}]}";

	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "patient-contacted", "100000000101", "--at",
	    "2026-04-08T09:00:00+01:00", "--by", "687001000001", "--mode", "virtual", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "patient-contacted for referral 100000000101 recorded"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 deadline(s) met"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "appointment-attended", "100000000101", "--at",
	    "2026-04-20", "--by", "687001000001", NULL }, &out, &err), 64);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs --mode"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "discharged", "100000000101", "--at",
	    "2026-07-01", "--by", "687001000001", NULL }, &out, &err), 64);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs --summary"));
	free(out);
	free(err);
	/* A summary the Bassetlaw discharge summary cannot be made from: refused
	 * with the list, nothing recorded. */
	qr = ras_test_write_tmp("summary.json", summary, strlen(summary));
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "discharged", "100000000101", "--at",
	    "2026-07-01", "--by", "687001000001", "--summary", qr, NULL }, &out, &err), 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing required items: discharge-date, diagnosis, investigations"));
	free(out);
	free(err);
	free(qr);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events WHERE kind = 'discharged'"), 0);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "discharged", "100000000101", "--at",
	    "2026-07-01", "--by", "687001000001", "--summary",
	    ras_test_fixture("epr/episode-summary-discharge.json"), NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "discharge summary queued"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events WHERE kind = 'discharged'"
	    " AND content ->> 'questionnaire' = 'urn:rasd:questionnaire:episode-summary'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM episodes WHERE kind = 'discharge' AND actor = '687001000001'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE kind = 'discharge-summary'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM deadlines WHERE kind = 'discharge-summary'"
	    " AND due_date = '2026-07-08'"), 1);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "teleported", "100000000101", "--at",
	    "2026-07-01", "--by", "687001000001", NULL }, &out, &err), 64);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "record", "treatment-started", "100000000101", "--at",
	    "2026-07-01", "--by", "687001000001", "--summary", ras_test_fixture("epr/episode-summary-discharge.json"),
	    NULL }, &out, &err), 64);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--summary goes with"));
	free(out);
	free(err);

	{
		char f1[4096], f2[4096];

		snprintf(f1, sizeof(f1), "%s", ras_test_fixture("epr/appointment-offered.json"));
		snprintf(f2, sizeof(f2), "%s", ras_test_fixture("bad/malformed.json"));
		CU_ASSERT_EQUAL(rasctl((const char *[]){ "epr", f1, f2, NULL }, &out, &err), 65);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "appointment-offered.json: recorded"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "malformed.json: rejected"));
		free(out);
		free(err);
		CU_ASSERT_EQUAL(rasctl((const char *[]){ "epr", f1, NULL }, &out, &err), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "duplicate"));
		free(out);
		free(err);
	}
	/* and the decision above, recorded as a clinician-decision event */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM epr_events"), 4);
}

static void
events_trail(void)
{
	char *out, *err;
	json_t *j = NULL;

	CU_ASSERT_EQUAL(rasctl((const char *[]){ "events", "100000000101", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral 100000000101"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "referral-received"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "epr-patient-contacted"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "accept (final) by 687001000009, rules clinician: clinician (003 \xc2\xa7" "5.1)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "return (final) by rules"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "appointment-offered"));
	no_patient_data(out);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "events", "100000000101", "--json", NULL }, &out, &err), 0);
	CU_ASSERT_EQUAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "epr_events")), 4);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "decisions")), 2);
	json_decref(j);
	free(out);
	free(err);
	/* an event with the UBRN and no referral (a payload refused before a
	 * referral existed) is in the trail too (schema 021 indexes only those
	 * by UBRN) */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "INSERT INTO events (ubrn, kind, actor)"
	    " VALUES ('100000000101', 'test-refused-before-a-referral', 'rasd')"), 0);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "events", "100000000101", "--json", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "test-refused-before-a-referral"));
	no_patient_data(out);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "events", "nope", NULL }, &out, &err), 65);
	free(out);
	free(err);
}

static void
status(void)
{
	char *out, *err;
	json_t *j = NULL;

	/* The clocks the tests above started are settled (their letters are not
	 * delivered in this suite); these two are what status must show. */
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db,
	    "UPDATE deadlines SET met_at = now(), met_by = 'test' WHERE met_at IS NULL AND cancelled_at IS NULL;"
	    "INSERT INTO deadlines (referral_id, kind, due_date, due_at) SELECT id, 'first-appointment',"
	    " current_date - 2, now() - interval '2 days' FROM referrals;"
	    "INSERT INTO deadlines (referral_id, kind, due_date, due_at) SELECT id, 'treatment',"
	    " current_date + 30, now() + interval '30 days' FROM referrals;"
	    "INSERT INTO inbox (sha256, source, body, size, state, error) VALUES ('x', 'http', 'x', 1,"
	    " 'rejected', 'malformed')"), 0);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "status", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "queues:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "normalise"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "deadlines: 1 breached"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "first-appointment"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "OVERDUE by"));
	CU_ASSERT_PTR_NULL(strstr(out, "treatment "));   /* not due within 24 h */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "dead letters: 2 payload(s) rejected"));
	no_patient_data(out);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "status", "--json", "--risk-hours", "800", NULL }, &out,
	    &err), 64);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "status", "--json", "--risk-hours", "744", NULL }, &out,
	    &err), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(j, "deadlines"), "at_risk")), 2);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "queues"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "instances"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "budgets"));
	json_decref(j);
	free(out);
	free(err);
}

/* Everything replay could touch, as one string. */
static char *
fingerprint(void)
{
	return ras_test_sql_text(db, "SELECT concat_ws('|',"
	    " (SELECT count(*) FROM decisions), (SELECT count(*) FROM deadlines),"
	    " (SELECT count(*) FROM deadlines WHERE met_at IS NOT NULL OR cancelled_at IS NOT NULL),"
	    " (SELECT count(*) FROM events), (SELECT count(*) FROM outbox), (SELECT count(*) FROM ers_outcomes),"
	    " (SELECT string_agg(id || ':' || state || ':' || updated_at, ',' ORDER BY id) FROM referrals))",
	    NULL);
}

static void
replay(void)
{
	char *out, *err, *before, *after, *dir, path[4096], *text;
	char today[RAS_DATE_STR_MAX], tomorrow[RAS_DATE_STR_MAX];
	struct ras_buf b = RAS_BUF_INIT(0);
	struct ras_date d;
	json_t *rs = NULL, *rules, *r, *kept;
	size_t i, len;

	/* The referral was received on 2026-04-07 (decide() dates it so). */
	CU_ASSERT_EQUAL_FATAL(ras_date_parse("2026-04-07", &d), 0);
	ras_date_format(&d, today);
	ras_date_add_days(&d, 1, &d);
	ras_date_format(&d, tomorrow);
	before = fingerprint();
	CU_ASSERT_PTR_NOT_NULL_FATAL(before);

	/* The shipped rule set decides 100000000101 as it did. */
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "bassetlaw-2022", "--from", today,
	    "--to", tomorrow, NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 decision(s) would change, 1 would stay the same; nothing was changed"));
	free(out);
	free(err);

	/* A changed rule set (the registered-population rule taken out) would
	 * accept it: listed, with what the rules decided before. */
	dir = ras_test_mappings_copy("mappings-replay");
	snprintf(path, sizeof(path), "%s/services/bassetlaw-2022.json", dir);
	text = ras_test_read(path, &len);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(text, len, 0, &rs), 0);
	rules = json_object_get(rs, "rules");
	kept = json_array();
	json_array_foreach(rules, i, r)
		if (strcmp(ras_json_str(r, "id"), "bassetlaw-2022.population") != 0)
			json_array_append(kept, r);
	CU_ASSERT_EQUAL(json_array_size(kept) + 1, json_array_size(rules));
	json_object_set_new(rs, "rules", kept);
	CU_ASSERT_EQUAL_FATAL(ras_json_dump(rs, RAS_JSON_PRETTY, &b), 0);
	free(ras_test_write_tmp("mappings-replay/services/bassetlaw-2022.json", b.data, b.len));
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "bassetlaw-2022", "--mappings", dir,
	    "--from", today, "--to", tomorrow, NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "100000000101 v1: return (final) -> accept (recommendation)"
	    " (a clinician has decided since): bassetlaw-2022: accept (recommendation) bassetlaw-2022.accept"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 decision(s) would change, 0 would stay the same"));
	no_patient_data(out);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "bassetlaw-2022", "--mappings", dir,
	    "--from", today, "--to", tomorrow, "--json", NULL }, &out, &err), 0);
	{
		json_t *j = NULL;

		CU_ASSERT_EQUAL_FATAL(ras_json_parse(out, strlen(out), 0, &j), 0);
		CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "changes")), 1);
		CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(json_object_get(j, "changes"), 0), "now"), "accept");
		json_decref(j);
	}
	free(out);
	free(err);
	/* Outside the period: nothing to replay. */
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "bassetlaw-2022", "--mappings", dir,
	    "--from", "2020-01-01", "--to", "2020-12-31", NULL }, &out, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 decision(s) would change, 0 would stay the same"));
	free(out);
	free(err);
	/* Changing nothing. */
	after = fingerprint();
	CU_ASSERT_STRING_EQUAL(before, after);

	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "atlantis", "--from", today, "--to",
	    tomorrow, NULL }, &out, &err), 78);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(rasctl((const char *[]){ "replay", "--service", "midnotts", NULL }, &out, &err), 64);
	free(out);
	free(err);
	ras_buf_free(&b);
	json_decref(rs);
	free(text);
	free(dir);
	free(before);
	free(after);
}

/* PostgreSQL notices go through rasd's logger, one line with the SQLSTATE;
 * and rasctl status calls an instance whose database backend is gone, or
 * whose heartbeat is two intervals old, not running (issue 15). */
static void
notices_and_liveness(void)
{
	char path[] = "/tmp/rasd-notice.XXXXXX", *text;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct ras_db *other = NULL;
	char sql[512];

	CU_ASSERT_FATAL(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	CU_ASSERT_EQUAL(ras_db_exec(db, "DO $$ BEGIN RAISE WARNING 'rasd notice test %', 42; END $$"), 0);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	text = ras_test_read(path, NULL);
	unlink(path);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "PostgreSQL WARNING 01000: rasd notice test 42"));
	CU_ASSERT_PTR_NULL(strstr(text, "\nWARNING:  "));   /* libpq's default printing */
	free(text);

	/* liveness: a heartbeat from a live connection, then that connection gone */
	CU_ASSERT_EQUAL_FATAL(ras_db_connect(conninfo, &other), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(other, "INSERT INTO daemon_instances (instance, host, pid, version,"
	    " heartbeat_seconds, backend_pid) VALUES ('live-test', 'h', 1, 'v', 20, pg_backend_pid())"), 0);
	snprintf(sql, sizeof(sql), "INSERT INTO daemon_instances (instance, host, pid, version, heartbeat_at,"
	    " heartbeat_seconds) VALUES ('stale-test', 'h', 2, 'v', now() - interval '50 seconds', 20)");
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, sql), 0);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM daemon_instances_live WHERE instance = 'live-test' AND running"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM daemon_instances_live WHERE instance = 'stale-test'"
	    " AND NOT running"), 1);
	ras_db_close(other);
	for (int i = 0; i < 50 && count("SELECT count(*) FROM daemon_instances_live"
	    " WHERE instance = 'live-test' AND running") != 0; i++)
		usleep(100000);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM daemon_instances_live WHERE instance = 'live-test'"
	    " AND NOT running"), 1);
	CU_ASSERT_EQUAL(ras_db_exec(db, "DELETE FROM daemon_instances"
	    " WHERE instance IN ('live-test', 'stale-test')"), 0);
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "decide", decide },
		{ "record and epr", record_and_epr },
		{ "events", events_trail },
		{ "status", status },
		{ "PostgreSQL notices logged; instance liveness", notices_and_liveness },
		{ "replay lists what a rule set would change, changing nothing", replay },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "rasctl-ops", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
