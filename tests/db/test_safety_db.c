/*
 * Clinical safety (issue 12) against a real PostgreSQL: resubmissions as
 * revisions (old kept, audited, triaged again, new danger the urgent way),
 * questionnaires that are not the form kept beside it, rejections that
 * report danger saying URGENT, the clinician register on decisions; and
 * the property test of unit/test_safety.c through the database: generated
 * referrals sent the ways rasd takes them in, kept, normalised and triaged
 * by the store, each decided as the engine decides it in-process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "referral_gen.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/clinicians.h"
#include "ras/epr.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/ops.h"
#include "ras/referral_json.h"
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
	json_t *b = gen_load_json("triage/midnotts-accept.json");
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
	json_t *b = gen_load_json("triage/midnotts-accept.json");
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
	json_t *b = gen_load_json("triage/midnotts-accept.json");
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
	json_t *b = gen_load_json("triage/midnotts-accept.json");
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
	json_t *b = gen_load_json("triage/midnotts-2ww.json"), *al = NULL;
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
	json_t *b = gen_load_json("triage/midnotts-accept.json");
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
	json_t *b = gen_load_json("triage/midnotts-2ww.json");
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

/* ---- property: generated referrals through the store ----------------------- */

/*
 * The unit suite's property test decides generated referrals in-process.
 * Here the same kind of referrals go the ways rasd takes them in and are
 * decided by what the store keeps:
 *   - R4 bundles (the form linked each way FHIR allows) in one group, as
 *     an HTTP group, a spool pass and `rasctl ingest` keep them: kept,
 *     normalised from the bytes in memory (in chunks planned while the last
 *     is stored: ras_store_normalise_handed) and triaged from the handover,
 *     in one transaction;
 *   - e-RS referrals as the poller keeps them: the A005 referrals as a
 *     batch read back from the inbox, then each attachment (the form as
 *     FHIR JSON, FHIR XML or XHTML; a PHQ-9 beside it) on its own, some
 *     before the triage stage runs and some after it (the form arriving
 *     late); or the form contained in the referral.
 * For each referral: every payload is stored (nothing rejected or lost),
 * the current decision is the one the engine makes in-process for the same
 * referral, a referral reporting danger is neither returned nor accepted
 * and has no e-RS outcome on its way, and the form stored has the answers
 * sent.  RAS_PROPERTY_DB_RUNS (default 40 forms, each sent 8 ways) and
 * RAS_PROPERTY_SEED run it longer or differently.
 */
/* Keep payloads and normalise them reading them back, one call, as the
 * e-RS poller does; every one must be stored. */
static void
keep_read_back(const struct ras_inbox_item *items, size_t n)
{
	struct ras_inbox_put_result *put = calloc(n, sizeof(*put));
	int64_t *ids = calloc(n, sizeof(*ids));
	struct ras_normalise_report *rep = NULL;
	size_t nrep = 0;

	CU_ASSERT_FATAL(put != NULL && ids != NULL);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, n, put), 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_FALSE(put[i].duplicate);
		ids[i] = put[i].id;
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, gen.xmaps, ids, n, n, &rep, &nrep), 0);
	CU_ASSERT_EQUAL(nrep, n);
	for (size_t i = 0; i < nrep; i++)
		if (strcmp(rep[i].state, "stored") != 0) {
			CU_FAIL("a generated e-RS payload was not stored");
			fprintf(stderr, "%s: %s\n", rep[i].state, rep[i].message);
		}
	free(rep);
	free(put);
	free(ids);
}

/* Keep R4 bundles, normalise them from memory and triage them, in one
 * transaction, as an HTTP group does. */
static void
keep_as_a_group(const struct ras_inbox_item *items, size_t n)
{
	struct ras_inbox_put_result *put = calloc(n, sizeof(*put));
	int64_t *ids = calloc(n, sizeof(*ids));
	struct ras_normalise_report *rep = NULL;
	struct ras_triage_report *reps = NULL;
	struct ras_store_handover *h = NULL;
	size_t nrep = 0, nreps = 0, with_doc = 0;

	CU_ASSERT_FATAL(put != NULL && ids != NULL);
	CU_ASSERT_EQUAL_FATAL(ras_store_handover_new(&h), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(db), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, items, n, put), 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_FALSE(put[i].duplicate);
		ids[i] = put[i].id;
	}
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise_handed(db, gen.xmaps, ids, items, put, n, n, h, &rep, &nrep), 0);
	CU_ASSERT_EQUAL(nrep, n);
	for (size_t i = 0; i < nrep; i++)
		if (strcmp(rep[i].state, "stored") != 0) {
			CU_FAIL("a generated R4 bundle was not stored");
			fprintf(stderr, "%s: %s\n", rep[i].state, rep[i].message);
		}
	/* every referral handed over, so the triage step decided from memory */
	CU_ASSERT_EQUAL(ras_store_handover_count(h, &with_doc), n);
	CU_ASSERT_EQUAL_FATAL(ras_triage_pending_handed(db, tri, now, 2 * n, ids, n, h, &reps, &nreps), 0);
	CU_ASSERT_EQUAL(nreps, n);
	CU_ASSERT_EQUAL_FATAL(ras_db_hold_commit(db), 0);
	free(rep);
	free(reps);
	free(put);
	free(ids);
	ras_store_handover_free(h);
}

/* Triage whatever is pending. */
static void
triage_all(void)
{
	struct ras_triage_report *reps = NULL;
	size_t n;

	do {
		n = 0;
		CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, tri, now, 500, NULL, 0, &reps, &n), 0);
		free(reps);
		reps = NULL;
	} while (n > 0);
}

/* Found by the property test below: an e-RS attachment byte for byte the
 * same as one kept for another referral was a duplicate of that payload,
 * so the second referral never got it.  Here two referrals have forms of
 * their own and the same PHQ-9, which reports a suspected cancer: the
 * second was triaged without the PHQ-9 and was not sent the two-week-wait
 * way (and the first one's form, the same as a form an earlier case of
 * this suite kept for another referral, was dropped too).  Each referral
 * keeps its own copy, and both go the two-week-wait way; the same
 * attachment fetched again for the same referral is still a duplicate. */
static void
same_attachment_for_two_referrals(void)
{
	static const char *const ubrns[] = { "570000000001", "570000000002" };
	json_t *form = gen_base_form(), *pq = gen_phq9();
	char *forms[2], *phq, *base, *ref, *att, *oth;
	struct ras_inbox_item it;
	struct ras_inbox_put_result put;

	json_array_append_new(json_object_get(pq, "item"), json_pack("{s:s, s:[{s:{s:s, s:s}}]}",
	    "linkId", "red-flags", "answer", "valueCoding", "system", GEN_FORM_URL, "code", "suspected-cancer"));
	phq = gen_dump(pq);
	forms[0] = gen_dump(form);
	gen_set_bool(form, "opioids", false);
	forms[1] = gen_dump(form);
	gen_ers_payloads(form, GEN_ROUTE_ERS_JSON, false, NULL, &base, &att, &oth);
	free(att);
	free(oth);
	for (int k = 0; k < 2; k++) {
		ref = gen_with_ubrn(base, GEN_ERS_UBRN, ubrns[k]);
		it = (struct ras_inbox_item){ .data = ref, .len = strlen(ref), .source = "ers", .source_ref = "A005",
			.service_hint = "midnotts", .ubrn_hint = ubrns[k] };
		keep_read_back(&it, 1);
		it = (struct ras_inbox_item){ .data = forms[k], .len = strlen(forms[k]), .source = "ers",
			.source_ref = "A042", .service_hint = "midnotts", .ubrn_hint = ubrns[k] };
		keep_read_back(&it, 1);
		it.data = phq;
		it.len = strlen(phq);
		keep_read_back(&it, 1);
		free(ref);
	}
	/* fetched again for the second referral: a duplicate, nothing new */
	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT(put.duplicate);
	triage_all();
	for (int k = 0; k < 2; k++) {
		char *v = ras_test_sql_text(db, "SELECT d.outcome || ' ' || coalesce(d.onward_target, '-')"
		    " FROM referrals r JOIN current_decisions d ON d.referral_id = r.id WHERE r.ubrn = $1"
		    " ORDER BY r.id DESC LIMIT 1", ubrns[k]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		if (strcmp(v, "onward two-week-wait") != 0)
			fprintf(stderr, "referral %d: %s\n", k + 1, v);
		CU_ASSERT_STRING_EQUAL(v, "onward two-week-wait");
		free(v);
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM inbox WHERE ubrn_hint IN ('570000000001',"
	    " '570000000002') AND state = 'stored'", NULL), 6);
	json_decref(form);
	json_decref(pq);
	free(forms[0]);
	free(forms[1]);
	free(phq);
	free(base);
}

static void
property_through_the_store(void)
{
	long runs = gen_env_long("RAS_PROPERTY_DB_RUNS", 40);
	long seed = gen_env_long("RAS_PROPERTY_SEED", 12);
	size_t cap = (size_t)runs * (GEN_N_LINKS + GEN_N_ROUTES), ns = 0, nr4 = 0, nref = 0, nearly = 0,
	    nlate = 0;
	struct gen_sent *sent = calloc(cap, sizeof(*sent));
	/* what each route sends: R4 bundles; e-RS referrals, attachments kept
	 * before the triage stage runs, and attachments kept after it */
	struct ras_inbox_item *r4 = calloc(cap, sizeof(*r4)), *refs = calloc(cap, sizeof(*refs)),
	    *early = calloc(2 * cap, sizeof(*early)), *late = calloc(2 * cap, sizeof(*late));
	char **texts = calloc(4 * cap, sizeof(char *));
	size_t ntexts = 0, dangerous = 0;

	CU_ASSERT_FATAL(sent && r4 && refs && early && late && texts);
	CU_ASSERT_FATAL(runs < 1000000);    /* each referral has a UBRN of its own */
	gen_seed(seed);
	for (long run = 0; run < runs; run++) {
		const char *service = gen.services[gen_next_rand() % gen.n_services];
		bool danger, extra = gen_coin(40), after = gen_coin(50);
		json_t *form = gen_random_form(&danger);

		gen.r4_priority = gen_coin(10) ? (gen_coin(50) ? "urgent" : "asap") : NULL;
		for (int how = 0; how < GEN_N_LINKS; how++) {
			struct gen_sent *s = &sent[ns++];
			json_t *b = gen_bundle_with(json_deep_copy(form), (enum gen_link)how, extra);
			char *text = gen_dump(b);
			struct ras_referral r;
			struct ras_decision d;

			snprintf(s->ubrn, sizeof(s->ubrn), "58%06u%04u", (unsigned)(run % 1000000),
			    (unsigned)how % 10000u);
			s->service = service;
			s->route = gen_link_names[how];
			s->danger = danger || gen.r4_priority;
			CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, service, &r, &d), 0);
			gen_expect(&d, s);
			s->answers = gen_answers_key(&r.form);
			texts[ntexts] = gen_with_ubrn(text, GEN_R4_UBRN, s->ubrn);
			r4[nr4++] = (struct ras_inbox_item){ .data = texts[ntexts], .len = strlen(texts[ntexts]),
				.source = "http", .source_ref = "/fhir/Bundle", .service_hint = service };
			ntexts++;
			free(text);
		}
		for (int route = 0; route < GEN_N_ROUTES; route++) {
			struct gen_sent *s = &sent[ns++];
			struct ras_referral r;
			struct ras_decision d;
			char *ref, *att, *oth;
			struct ras_inbox_item *to = after ? late : early;
			size_t *nto = after ? &nlate : &nearly;

			snprintf(s->ubrn, sizeof(s->ubrn), "59%06u%04u", (unsigned)(run % 1000000),
			    (unsigned)route % 10000u);
			s->service = service;
			s->route = gen_route_names[route];
			s->danger = danger;
			CU_ASSERT_EQUAL_FATAL(gen_decide_ers(form, (enum gen_route)route, extra, NULL, service, &r, &d), 0);
			gen_expect(&d, s);
			s->answers = gen_answers_key(&r.form);
			gen_ers_payloads(form, (enum gen_route)route, extra, NULL, &ref, &att, &oth);
			texts[ntexts] = gen_with_ubrn(ref, GEN_ERS_UBRN, s->ubrn);
			refs[nref++] = (struct ras_inbox_item){ .data = texts[ntexts], .len = strlen(texts[ntexts]),
				.source = "ers", .source_ref = "A005", .service_hint = service, .ubrn_hint = s->ubrn };
			ntexts++;
			free(ref);
			/* the attachments, as fetched (A042): the form, then the PHQ-9 */
			if (att) {
				texts[ntexts] = att;
				to[(*nto)++] = (struct ras_inbox_item){ .data = att, .len = strlen(att), .source = "ers",
					.source_ref = "A042", .service_hint = service, .ubrn_hint = s->ubrn };
				ntexts++;
			}
			if (oth) {
				texts[ntexts] = oth;
				to[(*nto)++] = (struct ras_inbox_item){ .data = oth, .len = strlen(oth), .source = "ers",
					.source_ref = "A042", .service_hint = service, .ubrn_hint = s->ubrn };
				ntexts++;
			}
		}
		dangerous += danger || gen.r4_priority;
		gen.r4_priority = NULL;
		json_decref(form);
		gen_reset_arena();
	}

	keep_as_a_group(r4, nr4);
	keep_read_back(refs, nref);
	for (size_t i = 0; i < nearly; i++)
		keep_read_back(&early[i], 1);
	triage_all();
	for (size_t i = 0; i < nlate; i++)
		keep_read_back(&late[i], 1);
	triage_all();

	for (size_t i = 0; i < ns; i++) {
		gen_check_stored(db, &sent[i], seed);
		gen_sent_free(&sent[i]);
	}
	gen_reset_arena();
	/* the generator made both kinds, and some forms came late */
	CU_ASSERT(dangerous > 0 && dangerous < (size_t)runs);
	CU_ASSERT(nlate > 0 && nearly > 0);
	/* R4 bundles enough for the group to be planned in several chunks */
	CU_ASSERT(runs < 40 || count("SELECT sum(length(body)) FROM inbox WHERE source = 'http'")
	    > 3 * RAS_NORMALISE_CHUNK_BYTES);
	if (getenv("RAS_TEST_VERBOSE"))
		fprintf(stderr, "property through the store: %zu referrals (%zu forms reporting danger), "
		    "%zu e-RS forms late, seed %ld\n", ns, dangerous, nlate, seed);
	for (size_t i = 0; i < ntexts; i++)
		free(texts[i]);
	free(texts);
	free(sent);
	free(r4);
	free(refs);
	free(early);
	free(late);
}

/* ---- main --------------------------------------------------------------- */

static int
setup(void)
{
	if (gen_setup() != 0)
		return 1;
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
	gen_teardown();
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
		{ "the same attachment for two e-RS referrals is each one's", same_attachment_for_two_referrals },
		{ "property: through the store, danger never returned, as decided in-process",
		  property_through_the_store },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "safety-db", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
