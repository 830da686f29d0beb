/*
 * Clinical safety (issue 12) against a real PostgreSQL: resubmissions as
 * revisions (old kept, audited, triaged again, new danger the urgent way),
 * questionnaires that are not the form kept beside it, rejections that
 * report danger saying URGENT, and the clinician register on decisions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/clinicians.h"
#include "ras/epr.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/ops.h"
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

/* Keep a payload and normalise it; returns the report's state. */
static const char *
store_text(const char *data, size_t len, const char *service, const char *ubrn, char *msg,
    size_t msg_size)
{
	static char state[32];
	struct ras_inbox_item it = { .data = data, .len = len, .source = "file", .source_ref = "test",
		.service_hint = service, .ubrn_hint = ubrn };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	if (put.duplicate)
		return "inbox-duplicate";
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	snprintf(state, sizeof(state), "%s", rep[0].state);
	if (msg)
		snprintf(msg, msg_size, "%s", rep[0].message);
	free(rep);
	return state;
}

static json_t *
fixture_json(const char *rel)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse(data, len, 0, &j), 0);
	free(data);
	return j;
}

static char *
dump(const json_t *j, bool pretty)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_COMPACT, &b), 0);
	if (pretty)
		CU_ASSERT_EQUAL_FATAL(ras_buf_puts(&b, "\n\n"), 0);
	return ras_buf_detach(&b, NULL);
}

static json_t *
resource(json_t *bundle, const char *type)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(bundle, "entry"), i, e)
		if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"), type) == 0)
			return json_object_get(e, "resource");
	return NULL;
}

static void
add_red_flag(json_t *bundle, const char *code)
{
	json_t *qr = resource(bundle, "QuestionnaireResponse");

	json_array_append_new(json_object_get(qr, "item"), json_pack("{s:s, s:[{s:{s:s, s:s}}]}",
	    "linkId", "red-flags", "answer", "valueCoding", "system",
	    "urn:rasd:questionnaire:community-pain-referral", "code", code));
}

static void
set_ubrn(json_t *bundle, const char *ubrn)
{
	json_t *sr = resource(bundle, "ServiceRequest");

	json_object_set_new(sr, "identifier", json_pack("[{s:s, s:s}]", "system",
	    "https://fhir.nhs.uk/Id/UBRN", "value", ubrn));
}

static size_t
triage(struct ras_triage_report **reps)
{
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, tri, now, 100, NULL, 0, reps, &n), 0);
	return n;
}

/* ---- revisions ------------------------------------------------------------ */

/* Issue 12's third defect: a GP's corrected re-send with the same UBRN and
 * version newly reporting suspected cancer was a duplicate, never triaged. */
static void
resubmission_is_a_revision(void)
{
	json_t *b = fixture_json("triage/midnotts-accept.json");
	struct ras_triage_report *reps = NULL;
	char *text, msg[512];
	size_t n;

	set_ubrn(b, "100000012001");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	/* the very same bytes: the inbox knows them */
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "inbox-duplicate");
	free(text);
	/* the same content laid out differently: still a duplicate */
	text = dump(b, true);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, msg, sizeof(msg)), "duplicate");
	if (strstr(msg, "already stored") == NULL)
		fprintf(stderr, "%s\n", msg);
	free(text);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ACCEPT);
	free(reps);

	/* corrected: suspected cancer, same UBRN and version */
	add_red_flag(b, "suspected-cancer");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, msg, sizeof(msg)), "stored");
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "revised"));
	free(text);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000012001'"), 1);
	CU_ASSERT_EQUAL(count("SELECT revision FROM referrals WHERE ubrn = '100000012001'"), 2);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referral_revisions v JOIN referrals r ON r.id = v.referral_id"
	    " WHERE r.ubrn = '100000012001' AND v.revision = 1 AND NOT v.doc::text LIKE '%\"red-flags\"%'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE ubrn = '100000012001' AND kind = 'referral-revised'"
	    " AND (detail ->> 'revision')::int = 2"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '100000012001' AND state = 'new'"), 1);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "two-week-wait");
	free(reps);
	/* both decisions kept */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000012001'"), 2);
	json_decref(b);
}

/* The same for an R4 referral without a UBRN, keyed by its ServiceRequest
 * identifier. */
static void
r4_resubmission_by_identifier(void)
{
	json_t *b = fixture_json("triage/midnotts-accept.json");
	json_t *sr = resource(b, "ServiceRequest");
	struct ras_triage_report *reps = NULL;
	char *text;
	size_t n;

	json_object_set_new(sr, "identifier", json_pack("[{s:s, s:s}]", "system",
	    "https://gp.example.org/referrals", "value", "R-12-7"));
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	free(text);
	free(reps = NULL);
	n = triage(&reps);
	CU_ASSERT_EQUAL(n, 1);
	free(reps);
	add_red_flag(b, "cauda-equina");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	free(text);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE referral_key ="
	    " 'local:https://gp.example.org/referrals|R-12-7' AND revision = 2 AND state = 'new'"), 1);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "emergency");
	free(reps);
	json_decref(b);
}

/* ---- forms beside the form --------------------------------------------- */

/* An e-RS referral's PHQ-9 attachment is kept beside it, never read as its
 * form; a red flag in it still reaches triage. */
static void
other_questionnaire_kept_beside(void)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("ers/referral-BookedDBS.json"), &len);
	static const char phq9[] = "{\"resourceType\": \"QuestionnaireResponse\","
	    " \"questionnaire\": \"http://example.org/fhir/Questionnaire/phq-9|1\", \"status\": \"completed\","
	    " \"item\": [{\"linkId\": \"red-flags\", \"answer\": [{\"valueCoding\": {\"code\": \"cauda-equina\"}}]}]}";
	struct ras_triage_report *reps = NULL;
	size_t n;

	CU_ASSERT_STRING_EQUAL(store_text(data, len, "midnotts", NULL, NULL, 0), "stored");
	free(data);
	n = triage(&reps);
	CU_ASSERT_EQUAL(n, 1);
	free(reps);
	CU_ASSERT_STRING_EQUAL(store_text(phq9, strlen(phq9), NULL, "000000070001", NULL, 0), "stored");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070001' AND doc -> 'form' IS NULL"
	    " AND jsonb_array_length(doc -> 'other_forms') = 1 AND state = 'new'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE ubrn = '000000070001'"
	    " AND kind = 'other-form-received'"), 1);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "emergency");
	free(reps);
}

/* A later referral form for an e-RS referral (e-RS referrers attach the
 * form in several renderings) becomes the form; the one it replaces is kept
 * and still read: its red flag is not lost. */
static void
second_rasd_form_keeps_the_first(void)
{
	json_t *b = fixture_json("triage/midnotts-accept.json");
	json_t *qr = json_deep_copy(resource(b, "QuestionnaireResponse"));
	struct ras_triage_report *reps = NULL;
	char *f1, *f2;
	size_t n;

	json_decref(b);
	{
		/* the e-RS referral under a UBRN of its own */
		size_t len;
		char *data = ras_test_read(ras_test_fixture("ers/referral-BookedDBS.json"), &len), *p;

		while ((p = strstr(data, "000000070001")) != NULL)
			memcpy(p, "000000070099", 12);
		CU_ASSERT_STRING_EQUAL(store_text(data, len, "midnotts", NULL, NULL, 0), "stored");
		free(data);
	}
	f2 = dump(qr, false);
	json_array_append_new(json_object_get(qr, "item"), json_pack("{s:s, s:[{s:{s:s, s:s}}]}",
	    "linkId", "red-flags", "answer", "valueCoding", "system",
	    "urn:rasd:questionnaire:community-pain-referral", "code", "cauda-equina"));
	f1 = dump(qr, false);
	json_decref(qr);
	CU_ASSERT_STRING_EQUAL(store_text(f1, strlen(f1), NULL, "000000070099", NULL, 0), "stored");
	n = triage(&reps);
	free(reps);
	CU_ASSERT_STRING_EQUAL(store_text(f2, strlen(f2), NULL, "000000070099", NULL, 0), "stored");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070099' AND state = 'new'"
	    " AND NOT doc -> 'form' ->> 'answers' LIKE '%\"red-flags\"%'"
	    " AND doc -> 'other_forms' -> 0 ->> 'answers' LIKE '%cauda-equina%'"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE ubrn = '000000070099' AND kind = 'form-received'"
	    " AND (detail ->> 'replaced_form_kept')::boolean"), 1);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "emergency");
	free(reps);
	free(f1);
	free(f2);
}

/* e-RS serves the same referral version again with its priority raised to
 * two-week-wait: the views merge, and the referral is triaged again at once. */
static void
ers_priority_raised_retriages(void)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("ers/referral-BookedDBS.json"), &len), *p;
	struct ras_triage_report *reps = NULL;
	size_t n;

	while ((p = strstr(data, "000000070001")) != NULL)
		memcpy(p, "000000070098", 12);
	CU_ASSERT_STRING_EQUAL(store_text(data, len, "midnotts", NULL, NULL, 0), "stored");
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_NOT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	free(reps);
	{
		/* "ROUTINE" -> "TWO_WEEK_WAIT": a longer text, so rebuild it */
		struct ras_buf b = RAS_BUF_INIT(0);
		const char *s = data;

		while ((p = strstr(s, "\"ROUTINE\"")) != NULL) {
			(void)ras_buf_append(&b, s, (size_t)(p - s));
			(void)ras_buf_puts(&b, "\"TWO_WEEK_WAIT\"");
			s = p + strlen("\"ROUTINE\"");
		}
		(void)ras_buf_puts(&b, s);
		CU_ASSERT_STRING_EQUAL(store_text(b.data, b.len, "midnotts", NULL, NULL, 0), "stored");
		ras_buf_free(&b);
	}
	free(data);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE ubrn = '000000070098' AND state = 'new'"
	    " AND priority = 'two-week-wait'"), 1);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(reps[0].outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "two-week-wait");
	free(reps);
}

/* A payload rasd cannot use that reports danger is rejected URGENT. */
static void
rejection_reporting_danger_is_urgent(void)
{
	json_t *b = fixture_json("triage/midnotts-accept.json");
	json_t *sr = resource(b, "ServiceRequest");
	char *text, msg[512];

	set_ubrn(b, "100000012002");
	add_red_flag(b, "cauda-equina");
	/* a supportingInfo that names nothing in the bundle: cannot be parsed */
	json_array_append_new(json_object_get(sr, "supportingInfo"), json_pack("{s:s}", "reference",
	    "urn:uuid:not-here"));
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, msg, sizeof(msg)), "rejected");
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "URGENT:"));
	free(text);
	json_decref(b);
}

/* ---- clocks ------------------------------------------------------------- */

static size_t
alerts_for(const json_t *al, const char *ubrn)
{
	const json_t *x;
	size_t i, n = 0;

	json_array_foreach(al, i, x)
		n += strcmp(ras_json_str(x, "ubrn"), ubrn) == 0;
	return n;
}

/* An undelivered same-day 2WW GP notice is an alert before the working day
 * ends; delivered, it is not. */
static void
undelivered_gp_notice_alerts(void)
{
	json_t *b = fixture_json("triage/midnotts-2ww.json"), *al = NULL;
	struct ras_triage_report *reps = NULL;
	char *text;
	size_t n;

	set_ubrn(b, "100000012004");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	free(text);
	json_decref(b);
	n = triage(&reps);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(reps[0].onward_target, "two-week-wait");
	free(reps);
	CU_ASSERT_EQUAL_FATAL(count("SELECT count(*) FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000012004' AND d.kind = 'gp-notification' AND d.met_at IS NULL"), 1);
	/* from 00:00 UK time: every undelivered notice due today is listed */
	CU_ASSERT_EQUAL_FATAL(ras_ops_gp_notice_alerts(db, "00:00", &al), 0);
	CU_ASSERT_EQUAL(alerts_for(al, "100000012004"), 1);
	json_decref(al);
	/* delivered: no alert */
	CU_ASSERT_EQUAL(ras_db_exec(db, "UPDATE deadlines SET met_at = now(), met_by = 'test'"
	    " WHERE kind = 'gp-notification' AND referral_id IN (SELECT id FROM referrals"
	    " WHERE ubrn = '100000012004')"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_ops_gp_notice_alerts(db, "00:00", &al), 0);
	CU_ASSERT_EQUAL(alerts_for(al, "100000012004"), 0);
	json_decref(al);
}

/* ---- clinicians ----------------------------------------------------------- */

static int
rasctl(const char *config, const char *const *args, char **out, char **err)
{
	return ras_test_rasctl(conninfo, config, args, out, err);
}

/* rasctl decide --by and EPR decisions name a registered clinician of the
 * referral's service; clinical events are dated between receipt and now. */
static void
decisions_need_a_registered_clinician(void)
{
	json_t *b = fixture_json("triage/midnotts-accept.json");
	struct ras_triage_report *reps = NULL;
	char *text, *out = NULL, *err = NULL, *other;
	int rc;

	set_ubrn(b, "100000012003");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	free(text);
	json_decref(b);
	(void)triage(&reps);
	free(reps);

	rc = rasctl(NULL, (const char *[]){ "decide", "100000012003", "--outcome", "accept", "--advice",
	    "Accepted.", "--by", "123456789012", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "123456789012 is not a registered clinician"));
	free(out);
	free(err);

	{
		static const char conf[] = "[clinician 687001000005]\nname = Dr Dorset\n"
		    "registration = GMC 7000005\nrole = Consultant\nservices = dorset-2013\n";

		other = ras_test_write_tmp("dorset-only.conf", conf, strlen(conf));
	}
	rc = rasctl(other, (const char *[]){ "decide", "100000012003", "--outcome", "accept", "--advice",
	    "Accepted.", "--by", "687001000005", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not registered for service midnotts"));
	free(out);
	free(err);
	free(other);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000012003' AND d.decided_by <> 'rules'"), 0);

	rc = rasctl(NULL, (const char *[]){ "record", "patient-contacted", "100000012003", "--at",
	    "2001-01-01T09:00:00Z", "--by", "687001000001", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "dated before the day the referral was received"));
	free(out);
	free(err);
	rc = rasctl(NULL, (const char *[]){ "record", "patient-contacted", "100000012003", "--at",
	    "2099-01-01T09:00:00Z", "--by", "687001000001", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "dated in the future"));
	free(out);
	free(err);

	rc = rasctl(NULL, (const char *[]){ "decide", "100000012003", "--outcome", "accept", "--advice",
	    "Accepted.", "--by", "687001000001", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0)
		fprintf(stderr, "%s", err);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM decisions d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE r.ubrn = '100000012003' AND d.decided_by = '687001000001'"), 1);
}

/* The same for a decision that comes from the EPR (Task.owner). */
static void
epr_decision_needs_a_registered_clinician(void)
{
	struct ras_triage *t = ras_test_triage(NULL, NULL);
	struct ras_epr_ctx ctx = { t, NULL };
	struct ras_triage_report *reps = NULL;
	struct ras_epr_event ev;
	struct ras_epr_result r;
	json_t *b = fixture_json("triage/midnotts-2ww.json");
	char *text;

	set_ubrn(b, "100000012005");
	text = dump(b, false);
	CU_ASSERT_STRING_EQUAL(store_text(text, strlen(text), "midnotts", NULL, NULL, 0), "stored");
	free(text);
	json_decref(b);
	(void)triage(&reps);
	free(reps);
	memset(&ev, 0, sizeof(ev));
	ev.kind = RAS_EPR_DECISION;
	ev.ubrn = "100000012005";          /* a 2WW onward recommendation */
	ev.occurred_at = ras_time_now();
	ev.first_appointment = -1;
	ev.outcome = RAS_OUTCOME_ACCEPT;
	ev.actor = "999999999999";
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "999999999999 is not a registered clinician"));
	ev.actor = "687001000002";
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(ras_epr_record(db, &ctx, &ev, 0, false, &r), 0);
	CU_ASSERT_TRUE(r.decision_id > 0);
	ras_triage_free(t);
}

/* The register's own rules: 12-digit ids, every key, known services. */
static void
clinician_register_checked(void)
{
	struct ras_config *cfg = ras_test_config("[clinician 687001000007]\nname = Dr Seven\n"
	    "registration = GMC 7000007\nrole = Consultant\nservices = midnotts, dorset-2019\n");
	struct ras_clinicians *reg = NULL;
	const struct ras_clinician *c;
	struct ras_triage *t = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_clinicians_from_config(cfg, &reg), 0);
	c = ras_clinicians_find(reg, "687001000007");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->registration, "GMC 7000007");
	CU_ASSERT(ras_clinicians_serves(c, "dorset-2019"));
	CU_ASSERT_FALSE(ras_clinicians_serves(c, "bassetlaw-2022"));
	CU_ASSERT_PTR_NULL(ras_clinicians_find(reg, "687001000008"));
	ras_clinicians_free(reg);
	ras_config_free(cfg);

	cfg = ras_test_config("[clinician 12345]\nname = X\nregistration = GMC 1\nrole = R\nservices = midnotts\n");
	CU_ASSERT_EQUAL(ras_clinicians_from_config(cfg, &reg), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "12 digits"));
	ras_config_free(cfg);
	cfg = ras_test_config("[clinician 687001000007]\nname = X\nrole = R\nservices = midnotts\n");
	CU_ASSERT_EQUAL(ras_clinicians_from_config(cfg, &reg), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "registration is required"));
	ras_config_free(cfg);
	cfg = ras_test_config("[clinician 687001000007]\nname = X\nregistration = GMC 1\nrole = R\n"
	    "services = atlantis\n");
	CU_ASSERT_EQUAL(ras_triage_new(cfg, MAPPINGS, &t), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "\"atlantis\" has no rule set"));
	ras_config_free(cfg);
}

/* ---- main --------------------------------------------------------------- */

static int
setup(void)
{
	db = ras_test_db("safety", &conninfo);
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
	free(conninfo);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "a resubmission with new content is a revision, triaged again", resubmission_is_a_revision },
		{ "an R4 resubmission keyed by its identifier", r4_resubmission_by_identifier },
		{ "another questionnaire is kept beside the form", other_questionnaire_kept_beside },
		{ "a second referral form for an e-RS referral keeps the first", second_rasd_form_keeps_the_first },
		{ "e-RS raising the priority to 2WW triages again", ers_priority_raised_retriages },
		{ "a rejection reporting danger says URGENT", rejection_reporting_danger_is_urgent },
		{ "an undelivered same-day 2WW GP notice is an alert", undelivered_gp_notice_alerts },
		{ "decisions need a registered clinician of the service", decisions_need_a_registered_clinician },
		{ "EPR decisions need a registered clinician", epr_decision_needs_a_registered_clinician },
		{ "the clinician register is checked", clinician_register_checked },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "safety-db", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
