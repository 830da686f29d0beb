/*
 * Clinical safety (issue 12), without a database: the referral form found
 * by what it answers, the safety net, form maps checked against their
 * Questionnaire, and a property test over generated referrals.
 *
 * The referrals are built here, as a referring system would send them,
 * from one hand-made R4 bundle (triage/midnotts-accept.json) and one e-RS
 * A005 referral (ers/referral-BookedDBS.json) whose form arrives as an
 * attachment (FHIR JSON, FHIR XML or the XHTML layout of
 * mappings/form-maps).  The property test's seed is fixed in CI;
 * RAS_PROPERTY_RUNS (default 300) and RAS_PROPERTY_SEED run it longer or
 * differently (docs/safety/hazard-log.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/referral_json.h"
#include "ras/rules.h"
#include "ras/safety_net.h"
#include "ras/xmlform.h"
#include "ras_config.h"

#define MAPPINGS RAS_SOURCE_ROOT "/mappings"
#define FORM_URL "urn:rasd:questionnaire:community-pain-referral"
#define PHQ9_URL "http://example.org/fhir/Questionnaire/phq-9"

static struct ras_mappings *maps;
static struct ras_xmlform_maps *xmaps;
static struct ras_arena *A;
static const int64_t AT = 1775642400;   /* 2026-04-08 11:00 BST, a Wednesday */

/* Every service with a rule set in mappings/services (filled by setup). */
static const char *services[RAS_SERVICES_MAX];
static size_t n_services;
static const char *const red_flag_codes[] = { "cauda-equina", "suspected-cancer", "fracture",
	"infection", "progressive-neurology", "other" };
#define N_FLAGS (sizeof(red_flag_codes) / sizeof(red_flag_codes[0]))

/* ---- building referrals ---------------------------------------------------- */

static json_t *
load_json(const char *rel)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse(data, len, 0, &j), 0);
	free(data);
	return j;
}

static json_t *
entry_of(json_t *bundle, const char *type, size_t *index)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(bundle, "entry"), i, e)
		if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"), type) == 0) {
			if (index)
				*index = i;
			return json_object_get(e, "resource");
		}
	return NULL;
}

/* The referral form of the base bundle, detached (new reference). */
static json_t *
base_form(void)
{
	json_t *b = load_json("triage/midnotts-accept.json");
	json_t *qr = json_deep_copy(entry_of(b, "QuestionnaireResponse", NULL));

	json_decref(b);
	return qr;
}

static json_t *
item_of(json_t *qr, const char *link_id)
{
	json_t *it;
	size_t i;

	json_array_foreach(json_object_get(qr, "item"), i, it)
		if (strcmp(ras_json_str(it, "linkId"), link_id) == 0)
			return it;
	return NULL;
}

/* Set (or add) an item's answers: `answers` is stolen. */
static void
set_answers(json_t *qr, const char *link_id, json_t *answers)
{
	json_t *it = item_of(qr, link_id);

	if (it == NULL) {
		it = json_pack("{s:s}", "linkId", link_id);
		json_array_append_new(json_object_get(qr, "item"), it);
	}
	json_object_set_new(it, "answer", answers);
}

static void
set_bool(json_t *qr, const char *link_id, bool v)
{
	set_answers(qr, link_id, json_pack("[{s:b}]", "valueBoolean", v));
}

static void
add_red_flag(json_t *qr, const char *code)
{
	json_t *it = item_of(qr, "red-flags");

	if (it == NULL) {
		set_answers(qr, "red-flags", json_array());
		it = item_of(qr, "red-flags");
	}
	json_array_append_new(json_object_get(it, "answer"), json_pack("{s:{s:s, s:s}}",
	    "valueCoding", "system", FORM_URL, "code", code));
}

static json_t *
phq9(void)
{
	return json_pack("{s:s, s:s, s:s, s:[{s:s, s:[{s:i}]}, {s:s, s:[{s:i}]}]}",
	    "resourceType", "QuestionnaireResponse", "questionnaire", PHQ9_URL "|1", "status", "completed",
	    "item", "linkId", "phq9-1", "answer", "valueInteger", 2, "linkId", "phq9-total", "answer",
	    "valueInteger", 11);
}

/* The ServiceRequest priority bundle_with() sets (NULL: the fixture's). */
static const char *r4_priority;

enum link { LINK_SUPPORTING, LINK_BASED_ON, LINK_CONTAINED, LINK_ENTRY, N_LINKS };
static const char *const link_names[N_LINKS] = { "supportingInfo", "basedOn", "contained",
	"bundle entry" };

/*
 * The base bundle with `form` (stolen) linked the given way, and an extra
 * PHQ-9 in supportingInfo when `extra`.
 */
static json_t *
bundle_with(json_t *form, enum link how, bool extra)
{
	json_t *b = load_json("triage/midnotts-accept.json");
	json_t *entries = json_object_get(b, "entry");
	json_t *sr = entry_of(b, "ServiceRequest", NULL), *info = json_array();
	const char *sr_url = NULL;
	size_t qi;
	json_t *e;
	size_t i;

	json_array_foreach(entries, i, e)
		if (json_object_get(e, "resource") == sr)
			sr_url = ras_json_str(e, "fullUrl");
	(void)entry_of(b, "QuestionnaireResponse", &qi);
	json_array_remove(entries, qi);
	json_object_del(form, "basedOn");
	switch (how) {
	case LINK_SUPPORTING:
		json_array_append_new(info, json_pack("{s:s}", "reference", "urn:uuid:form-1"));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	case LINK_BASED_ON:
		json_object_set_new(form, "basedOn", json_pack("[{s:s}]", "reference", sr_url));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	case LINK_CONTAINED:
		json_object_set_new(form, "id", json_string("form"));
		json_object_set_new(sr, "contained", json_pack("[o]", form));
		json_array_append_new(info, json_pack("{s:s}", "reference", "#form"));
		break;
	case LINK_ENTRY:
	default:
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	}
	if (extra) {
		json_array_append_new(info, json_pack("{s:s}", "reference", "urn:uuid:phq-9"));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:phq-9",
		    "resource", phq9()));
	}
	json_object_set_new(sr, "supportingInfo", info);
	if (r4_priority)
		json_object_set_new(sr, "priority", json_string(r4_priority));
	return b;
}

/* Parse payload text the way intake does. */
static int
parse_text(const char *text, size_t len, struct ras_intake *in)
{
	ras_error_clear();
	return ras_intake_parse(A, xmaps, text, len, in);
}

static char *
dump(const json_t *j)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_COMPACT, &b), 0);
	return ras_buf_detach(&b, NULL);
}

/* Decide an R4 bundle (stolen) for `service`; 0 or the parse error. */
static int
decide_bundle(json_t *bundle, const char *service, struct ras_referral *r, struct ras_decision *d)
{
	char *text = dump(bundle);
	struct ras_intake in;
	int err = parse_text(text, strlen(text), &in);

	free(text);
	json_decref(bundle);
	if (err < 0)
		return err;
	*r = in.referrals[0];
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(A, ras_mappings_ruleset(maps, service), r, AT,
	    ras_mappings_calendar(maps), AT + 60, d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(A, d), 0);
	return 0;
}

/* ---- forms as attachments ---------------------------------------------- */

static void
xml_escape(struct ras_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			(void)ras_buf_puts(b, "&lt;");
		else if (*s == '&')
			(void)ras_buf_puts(b, "&amp;");
		else if (*s == '"')
			(void)ras_buf_puts(b, "&quot;");
		else
			(void)ras_buf_putc(b, *s);
	}
}

/* A QuestionnaireResponse (flat items) as FHIR XML. */
static char *
fhir_xml(const json_t *qr)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *it, *an;
	size_t i, k;

	(void)ras_buf_printf(&b, "<QuestionnaireResponse xmlns=\"http://hl7.org/fhir\">"
	    "<questionnaire value=\"%s\"/><status value=\"%s\"/>", ras_json_str(qr, "questionnaire"),
	    ras_json_str(qr, "status"));
	json_array_foreach(json_object_get(qr, "item"), i, it) {
		(void)ras_buf_printf(&b, "<item><linkId value=\"%s\"/>", ras_json_str(it, "linkId"));
		json_array_foreach(json_object_get(it, "answer"), k, an) {
			json_t *v;

			(void)ras_buf_puts(&b, "<answer>");
			if ((v = json_object_get(an, "valueBoolean")) != NULL)
				(void)ras_buf_printf(&b, "<valueBoolean value=\"%s\"/>", json_is_true(v) ? "true" : "false");
			else if ((v = json_object_get(an, "valueInteger")) != NULL)
				(void)ras_buf_printf(&b, "<valueInteger value=\"%lld\"/>", (long long)json_integer_value(v));
			else if ((v = json_object_get(an, "valueString")) != NULL) {
				(void)ras_buf_puts(&b, "<valueString value=\"");
				xml_escape(&b, json_string_value(v));
				(void)ras_buf_puts(&b, "\"/>");
			} else if ((v = json_object_get(an, "valueCoding")) != NULL)
				(void)ras_buf_printf(&b, "<valueCoding><system value=\"%s\"/><code value=\"%s\"/></valueCoding>",
				    ras_json_str(v, "system"), ras_json_str(v, "code"));
			(void)ras_buf_puts(&b, "</answer>");
		}
		(void)ras_buf_puts(&b, "</item>");
	}
	(void)ras_buf_puts(&b, "</QuestionnaireResponse>");
	return ras_buf_detach(&b, NULL);
}

/* A QuestionnaireResponse as the XHTML layout the shipped map reads;
 * `extra_cell` adds a cell the map does not know. */
static char *
xhtml(const json_t *qr, const char *extra_cell)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *it, *an;
	size_t i, k;

	(void)ras_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>Referral</title>"
	    "<meta name=\"rasd-form\" content=\"community-pain-referral\"/></head><body><table>");
	json_array_foreach(json_object_get(qr, "item"), i, it) {
		const char *lid = ras_json_str(it, "linkId");

		(void)ras_buf_printf(&b, "<tr><th>%s</th><td id=\"%s\">", lid, lid);
		if (strcmp(lid, "red-flags") == 0)
			(void)ras_buf_puts(&b, "<ul>");
		json_array_foreach(json_object_get(it, "answer"), k, an) {
			json_t *v;

			if ((v = json_object_get(an, "valueBoolean")) != NULL)
				(void)ras_buf_puts(&b, json_is_true(v) ? "Yes" : "No");
			else if ((v = json_object_get(an, "valueInteger")) != NULL)
				(void)ras_buf_printf(&b, "%lld", (long long)json_integer_value(v));
			else if ((v = json_object_get(an, "valueString")) != NULL)
				xml_escape(&b, json_string_value(v));
			else if ((v = json_object_get(an, "valueCoding")) != NULL)
				(void)ras_buf_printf(&b, strcmp(lid, "red-flags") == 0 ? "<li>%s</li>" : "%s",
				    ras_json_str(v, "code"));
		}
		if (strcmp(lid, "red-flags") == 0)
			(void)ras_buf_puts(&b, "</ul>");
		(void)ras_buf_puts(&b, "</td></tr>");
	}
	if (extra_cell)
		(void)ras_buf_printf(&b, "<tr><th>More</th><td id=\"%s\">Yes</td></tr>", extra_cell);
	(void)ras_buf_puts(&b, "</table></body></html>\n");
	return ras_buf_detach(&b, NULL);
}

enum route { ROUTE_ERS_JSON, ROUTE_ERS_XML, ROUTE_ERS_XHTML, ROUTE_ERS_CONTAINED, N_ROUTES };
static const char *const route_names[N_ROUTES] = { "e-RS JSON", "e-RS FHIR XML", "e-RS XHTML",
	"e-RS contained" };

/*
 * The e-RS route: the A005 referral, then its form as an attachment, and
 * an extra PHQ-9 attachment when `extra`; as the store puts them together
 * (ras_store_referral_form for rasd's form, ras_store_other_form for the others).
 */
static int
decide_ers(const json_t *form, enum route route, bool extra, const char *extra_cell,
    const char *service, struct ras_referral *r, struct ras_decision *d)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("ers/referral-BookedDBS.json"), &len);
	char *att = NULL;
	struct ras_intake in, fin;
	int err;

	if (route == ROUTE_ERS_CONTAINED) {
		/* the form inside the ReferralRequest itself (STU3 reference) */
		json_t *rr = NULL, *f = json_deep_copy(form);
		char *text;

		CU_ASSERT_EQUAL_FATAL(ras_json_parse(data, len, 0, &rr), 0);
		free(data);
		json_object_set_new(f, "questionnaire", json_pack("{s:s}", "reference",
		    ras_json_str(form, "questionnaire")));
		if (json_object_get(rr, "contained") == NULL)
			json_object_set_new(rr, "contained", json_array());
		json_array_append_new(json_object_get(rr, "contained"), f);
		if (extra)
			json_array_append_new(json_object_get(rr, "contained"), phq9());
		text = dump(rr);
		json_decref(rr);
		err = parse_text(text, strlen(text), &in);
		free(text);
		if (err < 0)
			return err;
		*r = in.referrals[0];
		CU_ASSERT_EQUAL_FATAL(ras_rules_decide(A, ras_mappings_ruleset(maps, service), r, AT,
		    ras_mappings_calendar(maps), AT + 60, d), 0);
		CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(A, d), 0);
		return 0;
	}
	CU_ASSERT_EQUAL_FATAL(parse_text(data, len, &in), 0);
	free(data);
	*r = in.referrals[0];
	switch (route) {
	case ROUTE_ERS_JSON: att = dump(form); break;
	case ROUTE_ERS_XML: att = fhir_xml(form); break;
	default: att = xhtml(form, extra_cell); break;
	}
	err = parse_text(att, strlen(att), &fin);
	free(att);
	if (err < 0)
		return err;
	CU_ASSERT_EQUAL_FATAL(fin.kind, RAS_PAYLOAD_FORM);
	if (ras_referral_is_rasd_form(fin.form->questionnaire)) {
		r->form = *fin.form;
		r->has_form = true;
	}
	if (extra) {
		json_t *pq = phq9();
		char *p = dump(pq);
		struct ras_intake pin;

		json_decref(pq);
		CU_ASSERT_EQUAL_FATAL(parse_text(p, strlen(p), &pin), 0);
		free(p);
		r->other_forms = pin.form;
		r->n_other_forms = 1;
	}
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(A, ras_mappings_ruleset(maps, service), r, AT,
	    ras_mappings_calendar(maps), AT + 60, d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(A, d), 0);
	return 0;
}

static bool
returned_or_accepted(const struct ras_decision *d)
{
	return d->outcome == RAS_OUTCOME_RETURN || d->outcome == RAS_OUTCOME_ACCEPT;
}

static const char *
net_applied(const struct ras_decision *d)
{
	const char *s = ras_json_str(json_object_get(d->facts, "safety_net"), "applied");

	return s ? s : "(no safety net)";
}

/* ---- 1. forms found by what they answer -------------------------------- */

/* Issue 12's first defect: the form linked by basedOn, a PHQ-9 in
 * supportingInfo.  The PHQ-9 was read as the form and the referral
 * returned with form.unknown; the real form reports cauda equina. */
static void
form_by_basedon_beside_phq9(void)
{
	json_t *form = base_form();
	struct ras_referral r;
	struct ras_decision d;

	add_red_flag(form, "cauda-equina");
	CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(form, LINK_BASED_ON, true), "midnotts", &r, &d), 0);
	CU_ASSERT(r.has_form);
	CU_ASSERT_STRING_EQUAL(r.form.questionnaire, FORM_URL);
	CU_ASSERT_EQUAL(r.n_other_forms, 1);
	CU_ASSERT_STRING_EQUAL(r.other_forms[0].questionnaire, PHQ9_URL);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "emergency");
	CU_ASSERT_STRING_EQUAL(d.reasons[0].rule, "midnotts.red-flag.cauda-equina");
}

/* Two questionnaires in supportingInfo: the referral was rejected and the
 * reported suspected cancer did not make it URGENT.  Now the form is found
 * and the referral goes to the two-week-wait pathway. */
static void
two_questionnaires_in_supporting_info(void)
{
	json_t *form = base_form();
	struct ras_referral r;
	struct ras_decision d;

	set_bool(form, "suspected-cancer", true);
	CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(form, LINK_SUPPORTING, true), "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");
}

/* However the form is linked, it is the form; a referral with two rasd
 * forms is a clinician's to decide. */
static void
form_found_however_linked(void)
{
	for (int how = 0; how < N_LINKS; how++) {
		struct ras_referral r;
		struct ras_decision d;

		CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(base_form(), (enum link)how, false),
		    "midnotts", &r, &d), 0);
		CU_ASSERT(r.has_form);
		CU_ASSERT_EQUAL(r.n_doubts, 0);
		CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ACCEPT);
		if (d.outcome != RAS_OUTCOME_ACCEPT)
			fprintf(stderr, "linked by %s: %s\n", link_names[how], ras_decision_outcome_name(d.outcome));
	}
}

static void
two_rasd_forms_review(void)
{
	json_t *b = bundle_with(base_form(), LINK_SUPPORTING, false);
	json_t *second = base_form();
	struct ras_referral r;
	struct ras_decision d;

	json_array_append_new(json_object_get(b, "entry"), json_pack("{s:s, s:o}", "fullUrl",
	    "urn:uuid:form-2", "resource", second));
	CU_ASSERT_EQUAL_FATAL(decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(r.n_doubts, 1);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_REVIEW);
	CU_ASSERT_STRING_EQUAL(d.reasons[0].rule, "rasd.safety-net.doubt");
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "doubt");
}

/* A bare PHQ-9 sent for an e-RS referral is not its referral form. */
static void
ers_other_questionnaire_not_the_form(void)
{
	json_t *pq = phq9();
	char *p = dump(pq);
	struct ras_intake in;

	json_decref(pq);
	CU_ASSERT_EQUAL_FATAL(parse_text(p, strlen(p), &in), 0);
	free(p);
	CU_ASSERT_FALSE(ras_referral_is_rasd_form(in.form->questionnaire));
	CU_ASSERT(ras_referral_is_rasd_form(FORM_URL "|1"));
	CU_ASSERT(ras_referral_is_rasd_form(FORM_URL));
	CU_ASSERT_FALSE(ras_referral_is_rasd_form(FORM_URL "-extra|2"));
}

/* An e-RS ReferralRequest carrying its form contained (STU3 names the
 * Questionnaire by reference): the form is found, never dropped. */
static void
ers_contained_form_found(void)
{
	json_t *rr = load_json("ers/referral-BookedDBS.json"), *form = base_form();
	struct ras_referral r;
	struct ras_decision d;
	struct ras_intake in;
	char *text;

	add_red_flag(form, "cauda-equina");
	json_object_set_new(form, "questionnaire", json_pack("{s:s}", "reference", FORM_URL "|2"));
	json_object_set_new(form, "id", json_string("form"));
	if (json_object_get(rr, "contained") == NULL)
		json_object_set_new(rr, "contained", json_array());
	json_array_append_new(json_object_get(rr, "contained"), form);
	json_array_append_new(json_object_get(rr, "contained"), phq9());
	text = dump(rr);
	json_decref(rr);
	CU_ASSERT_EQUAL_FATAL(parse_text(text, strlen(text), &in), 0);
	free(text);
	r = in.referrals[0];
	CU_ASSERT(r.has_form);
	CU_ASSERT_EQUAL(r.n_other_forms, 1);
	CU_ASSERT_EQUAL(r.n_doubts, 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(A, ras_mappings_ruleset(maps, "midnotts"), &r, AT,
	    ras_mappings_calendar(maps), AT + 60, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target ? d.onward_target : "", "emergency");
}

/* ---- 2. the safety net ------------------------------------------------- */

/* Danger only in a questionnaire that is not the form. */
static void
net_danger_in_other_questionnaire(void)
{
	json_t *b = bundle_with(base_form(), LINK_SUPPORTING, true);
	json_t *e;
	size_t i;
	struct ras_referral r;
	struct ras_decision d;

	json_array_foreach(json_object_get(b, "entry"), i, e) {
		json_t *res = json_object_get(e, "resource");

		if (ras_json_str(res, "questionnaire") && strstr(ras_json_str(res, "questionnaire"), "phq-9"))
			add_red_flag(res, "suspected-cancer");
	}
	CU_ASSERT_EQUAL_FATAL(decide_bundle(b, "dorset-2019", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "danger");
}

/* A coded Condition of cancer, the form silent. */
static void
net_coded_condition(void)
{
	json_t *b = bundle_with(base_form(), LINK_SUPPORTING, false);
	json_t *c = entry_of(b, "Condition", NULL);
	struct ras_referral r;
	struct ras_decision d;

	json_object_set_new(c, "code", json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system",
	    "http://snomed.info/sct", "code", "363346000", "display", "Malignant neoplastic disease"));
	json_object_del(c, "clinicalStatus");
	CU_ASSERT_EQUAL_FATAL(decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_FALSE(returned_or_accepted(&d));
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");

	/* "chronic non-malignant pain" is not a suspected cancer */
	b = bundle_with(base_form(), LINK_SUPPORTING, false);
	c = entry_of(b, "Condition", NULL);
	json_object_set_new(c, "code", json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system",
	    "http://snomed.info/sct", "code", "1137393000", "text", "Chronic non-malignant pain"));
	CU_ASSERT_EQUAL_FATAL(decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ACCEPT);
	CU_ASSERT(json_is_false(json_object_get(json_object_get(d.facts, "safety_net"), "danger")));
}

/* An item the form does not have, or an answer rasd cannot read: review. */
static void
net_doubt_unknown_item(void)
{
	json_t *form = base_form();
	struct ras_referral r;
	struct ras_decision d;

	set_bool(form, "new-red-flag-question", true);
	CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(form, LINK_SUPPORTING, false), "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_REVIEW);
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "doubt");
	CU_ASSERT_FALSE(d.final);
	{
		char *doubts = json_dumps(json_object_get(json_object_get(d.facts, "safety_net"), "doubts"),
		    JSON_ENCODE_ANY);

		CU_ASSERT_PTR_NOT_NULL(doubts && strstr(doubts, "new-red-flag-question"));
		free(doubts);
	}
}

/* The net's result is in every decision's facts. */
static void
net_result_in_facts(void)
{
	struct ras_referral r;
	struct ras_decision d;
	json_t *net;

	CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(base_form(), LINK_SUPPORTING, true), "midnotts",
	    &r, &d), 0);
	net = json_object_get(d.facts, "safety_net");
	CU_ASSERT_PTR_NOT_NULL(net);
	CU_ASSERT(json_is_false(json_object_get(net, "danger")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(net, "forms_seen")), 2);
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "none");
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ACCEPT);
}

/* A rejected payload that reports danger says URGENT (the rejection itself
 * is store.c's; what it reads is here). */
static void
rejection_reads_danger(void)
{
	static const char broken[] = "{\"resourceType\": \"Bundle\", \"entry\": [{\"resource\": "
	    "{\"resourceType\": \"QuestionnaireResponse\", \"item\": [{\"linkId\": \"red-flags\", "
	    "\"answer\": [{\"valueCoding\": {\"code\": \"cauda-equina\"}}]}]}}]}";
	static const char calm[] = "{\"resourceType\": \"Bundle\", \"entry\": []}";

	CU_ASSERT(ras_intake_reports_danger(broken, strlen(broken)));
	CU_ASSERT_FALSE(ras_intake_reports_danger(calm, strlen(calm)));
	CU_ASSERT(ras_intake_reports_danger("<td id=\"red-flags\">suspected-cancer", 36));
}

/* ---- 3. form maps checked against their Questionnaire -------------------- */

/* The shipped XHTML map carried no red-flags: an XHTML form reporting cauda
 * equina was returned, final. */
static void
xhtml_red_flags_carried(void)
{
	json_t *form = base_form();
	struct ras_referral r;
	struct ras_decision d;

	add_red_flag(form, "cauda-equina");
	CU_ASSERT_EQUAL_FATAL(decide_ers(form, ROUTE_ERS_XHTML, false, NULL, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "emergency");
	{
		/* written in the cell rather than listed */
		char *x = xhtml(form, NULL), *li = strstr(x, "<ul><li>cauda-equina</li></ul>");
		struct ras_intake in;

		CU_ASSERT_PTR_NOT_NULL_FATAL(li);
		memmove(li, "Cauda equina", 12);
		memmove(li + 12, li + 30, strlen(li + 30) + 1);
		CU_ASSERT_EQUAL_FATAL(parse_text(x, strlen(x), &in), 0);
		CU_ASSERT(ras_form_has_code(in.form, "red-flags", "cauda-equina"));
		/* text the map does not know refuses the form, and says why */
		li = strstr(x, "Cauda equina");
		memcpy(li, "Caudaaequina", 12);
		CU_ASSERT_EQUAL(parse_text(x, strlen(x), &in), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "red-flags"));
		free(x);
	}
	json_decref(form);
}

/* A cell the map does not know: the response is not completed, and the
 * referral is a clinician's. */
static void
xhtml_unmapped_cell_incomplete(void)
{
	json_t *form = base_form();
	struct ras_referral r;
	struct ras_decision d;

	CU_ASSERT_EQUAL_FATAL(decide_ers(form, ROUTE_ERS_XHTML, false, "new-question", "midnotts", &r, &d), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r.form.status);
	CU_ASSERT_STRING_NOT_EQUAL(r.form.status, "completed");
	CU_ASSERT_EQUAL_FATAL(r.form.n_unmapped, 1);
	CU_ASSERT_STRING_EQUAL(r.form.unmapped[0], "new-question");
	CU_ASSERT_FALSE(returned_or_accepted(&d));
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "doubt");
	json_decref(form);
}

/* A map that leaves an item out is refused when it loads. */
static void
form_map_checked_at_load(void)
{
	char *dir = ras_test_mappings_copy("safety-maps");
	char path[4096];
	struct ras_xmlform_maps *m = NULL;
	struct ras_buf problems = RAS_BUF_INIT(0);
	size_t len;
	char *text, *cut;
	FILE *f;

	snprintf(path, sizeof(path), "%s/form-maps/community-pain-referral-xhtml.json", dir);
	text = ras_test_read(path, &len);
	/* drop the gp-consent field */
	cut = strstr(text, "\"linkId\": \"gp-consent\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
	memcpy(cut, "\"linkId\": \"gp-consenx\"", 22);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fwrite(text, 1, len, f);
	fclose(f);
	free(text);
	snprintf(path, sizeof(path), "%s/form-maps", dir);
	CU_ASSERT_EQUAL(ras_xmlform_maps_load(path, &m, &problems), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(problems.data && strstr(problems.data,
	    "item \"gp-consent\" of urn:rasd:questionnaire:community-pain-referral|2 is neither mapped"));
	CU_ASSERT_PTR_NOT_NULL(problems.data && strstr(problems.data, "field \"gp-consenx\" is not an item"));
	ras_xmlform_maps_free(m);
	ras_buf_free(&problems);
	free(dir);
}

/* ---- other clinical failure modes ------------------------------------------ */

/* A restricted patient's address is never kept, so never disclosed. */
static void
restricted_patient_keeps_no_address(void)
{
	json_t *b = bundle_with(base_form(), LINK_SUPPORTING, false);
	json_t *pat = entry_of(b, "Patient", NULL), *doc = NULL;
	struct ras_referral r;
	struct ras_decision d;
	char *text;

	json_object_set_new(pat, "meta", json_pack("{s:[{s:s, s:s}]}", "security", "system",
	    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code", "R"));
	json_object_set_new(pat, "address", json_pack("[{s:[s], s:s}]", "line", "1 Hidden Lane",
	    "postalCode", "NG1 9ZZ"));
	CU_ASSERT_EQUAL_FATAL(decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT(r.patient.restricted);
	CU_ASSERT_PTR_NULL(r.patient.postcode);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_dump(&r, "k", &doc), 0);
	text = dump(doc);
	CU_ASSERT_PTR_NULL(strstr(text, "NG1 9ZZ"));
	CU_ASSERT_PTR_NULL(strstr(text, "Hidden Lane"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"restricted\":true"));
	free(text);
	json_decref(doc);
}

/* ---- 7. property test ---------------------------------------------------- */

static uint64_t rng;

static uint32_t
next_rand(void)
{
	/* xorshift64*: small, deterministic, good enough to spread cases */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 2685821657736338717ULL) >> 32);
}

static bool
coin(unsigned pct)
{
	return next_rand() % 100 < pct;
}

static long
env_long(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	v = strtol(s, &end, 10);
	return *end == '\0' && v > 0 ? v : def;
}

/* A canonical text of a form's answers (sorted), to compare routes. */
static char *
answers_key(const struct ras_form *f)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	char **lines = calloc(f->n_answers + 1, sizeof(char *));

	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *an = &f->answers[i];
		char buf[512];

		switch (an->type) {
		case RAS_ANSWER_BOOLEAN: snprintf(buf, sizeof(buf), "%s=%d", an->link_id, an->b); break;
		case RAS_ANSWER_INTEGER: snprintf(buf, sizeof(buf), "%s=%lld", an->link_id, (long long)an->i); break;
		case RAS_ANSWER_CODING: snprintf(buf, sizeof(buf), "%s=%s", an->link_id, an->code); break;
		default: snprintf(buf, sizeof(buf), "%s=%.100s", an->link_id, an->s ? an->s : ""); break;
		}
		lines[i] = strdup(buf);
	}
	for (size_t i = 0; i < f->n_answers; i++)
		for (size_t k = i + 1; k < f->n_answers; k++)
			if (strcmp(lines[k], lines[i]) < 0) {
				char *t = lines[i];

				lines[i] = lines[k];
				lines[k] = t;
			}
	for (size_t i = 0; i < f->n_answers; i++) {
		(void)ras_buf_printf(&b, "%s;", lines[i]);
		free(lines[i]);
	}
	free(lines);
	return ras_buf_detach(&b, NULL);
}

static void
describe(const struct ras_decision *d, char *out, size_t size)
{
	snprintf(out, size, "%s%s%s%s", ras_decision_outcome_name(d->outcome),
	    d->onward_target ? " to " : "", d->onward_target ? d->onward_target : "",
	    d->final ? " (final)" : "");
}

/* A random referral form: every item answered or not, any red flags. */
static json_t *
random_form(bool *danger)
{
	static const char *const bools[] = { "pain-daily", "investigations-complete",
		"red-flags-screened", "cancer-related-pain", "medication-optimised", "accepts-chronic-pain",
		"motivated-to-engage", "acute-mental-illness", "severe-mental-health", "substance-misuse",
		"medically-stable", "under-investigation", "requires-surgical-opinion",
		"post-op-or-trauma-complication", "pregnancy-related-pain", "cfs-me",
		"secondary-care-advice-sought", "gp-consent", "opioids", "booking-assistance", "dependants" };
	json_t *form = base_form();

	*danger = false;
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (coin(15))
			set_bool(form, bools[i], coin(50));
	if (coin(20))
		set_answers(form, "pain-duration-weeks", json_pack("[{s:i}]", "valueInteger",
		    (int)(next_rand() % 60)));
	if (coin(20)) {
		set_bool(form, "suspected-cancer", true);
		*danger = true;
	}
	for (size_t k = 0; k < N_FLAGS; k++)
		if (coin(10)) {
			add_red_flag(form, red_flag_codes[k]);
			*danger = true;
		}
	return form;
}

static void
property_no_danger_returned(void)
{
	long runs = env_long("RAS_PROPERTY_RUNS", 300);
	long seed = env_long("RAS_PROPERTY_SEED", 12);
	long dangerous = 0, checked = 0;

	rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
	for (long run = 0; run < runs; run++) {
		const char *service = services[next_rand() % n_services];
		bool danger, extra = coin(40);
		json_t *form = random_form(&danger);
		char first[96] = "", now[96], *key = NULL;

		/* an urgent R4 priority is danger too (the e-RS referral keeps its own) */
		r4_priority = coin(10) ? (coin(50) ? "urgent" : "asap") : NULL;
		dangerous += danger || r4_priority;
		/* R4: every way of linking the form gives the same outcome */
		for (int how = 0; how < N_LINKS; how++) {
			struct ras_referral r;
			struct ras_decision d;
			char *k;

			if (decide_bundle(bundle_with(json_deep_copy(form), (enum link)how, extra), service,
			    &r, &d) < 0) {
				CU_FAIL("a generated R4 referral was not parsed");
				fprintf(stderr, "run %ld (seed %ld): %s\n", run, seed, ras_error_last());
				continue;
			}
			checked++;
			describe(&d, now, sizeof(now));
			if ((danger || r4_priority) && returned_or_accepted(&d)) {
				CU_FAIL("a referral reporting danger was returned or accepted");
				fprintf(stderr, "run %ld (seed %ld) %s via %s: %s\n", run, seed, service,
				    link_names[how], now);
			}
			if (how == 0)
				snprintf(first, sizeof(first), "%s", now);
			else if (strcmp(first, now) != 0) {
				CU_FAIL("the same form linked another way gave another outcome");
				fprintf(stderr, "run %ld (seed %ld) %s: %s by supportingInfo, %s by %s\n", run, seed,
				    service, first, now, link_names[how]);
			}
			/* nothing dropped: the form read is the form sent */
			k = answers_key(&r.form);
			if (key == NULL)
				key = k;
			else {
				CU_ASSERT_STRING_EQUAL(k, key);
				free(k);
			}
			CU_ASSERT_EQUAL(r.n_other_forms, extra ? 1u : 0u);
		}
		/* e-RS: the form as a JSON, FHIR XML or XHTML attachment, or contained */
		first[0] = '\0';
		for (int route = 0; route < N_ROUTES; route++) {
			struct ras_referral r;
			struct ras_decision d;
			char *k;

			if (decide_ers(form, (enum route)route, extra, NULL, service, &r, &d) < 0) {
				CU_FAIL("a generated e-RS form attachment was not read");
				fprintf(stderr, "run %ld (seed %ld) %s: %s\n", run, seed, route_names[route],
				    ras_error_last());
				continue;
			}
			checked++;
			describe(&d, now, sizeof(now));
			if (danger && returned_or_accepted(&d)) {
				CU_FAIL("an e-RS referral reporting danger was returned or accepted");
				fprintf(stderr, "run %ld (seed %ld) %s via %s: %s\n", run, seed, service,
				    route_names[route], now);
			}
			if (route == 0)
				snprintf(first, sizeof(first), "%s", now);
			else if (strcmp(first, now) != 0) {
				CU_FAIL("the same answers by another e-RS form route gave another outcome");
				fprintf(stderr, "run %ld (seed %ld) %s: %s as JSON, %s as %s\n", run, seed, service,
				    first, now, route_names[route]);
			}
			k = answers_key(&r.form);
			if (strcmp(k, key) != 0) {
				CU_FAIL("an answer was dropped or changed on an e-RS form route");
				fprintf(stderr, "run %ld (seed %ld) %s:\n sent %s\n read %s\n", run, seed,
				    route_names[route], key, k);
			}
			free(k);
		}
		free(key);
		r4_priority = NULL;
		json_decref(form);
		ras_arena_free(A);
		A = ras_arena_new();
	}
	CU_ASSERT(dangerous > 0 && dangerous < runs);
	CU_ASSERT_EQUAL(checked, runs * (N_LINKS + N_ROUTES));
	if (getenv("RAS_TEST_VERBOSE"))
		fprintf(stderr, "property: %ld referrals (%ld reporting danger), %ld decisions, seed %ld\n",
		    runs, dangerous, checked, seed);
}

/* Every service, every red flag, alone, by every route: never returned or
 * accepted (the exhaustive corner of the property). */
static void
every_service_every_red_flag(void)
{
	CU_ASSERT(n_services >= 4);
	for (size_t s = 0; s < n_services; s++)
		for (size_t k = 0; k <= N_FLAGS; k++) {
			json_t *form = base_form();

			if (k < N_FLAGS)
				add_red_flag(form, red_flag_codes[k]);
			else
				set_bool(form, "suspected-cancer", true);
			for (int how = 0; how < N_LINKS; how++) {
				struct ras_referral r;
				struct ras_decision d;

				CU_ASSERT_EQUAL_FATAL(decide_bundle(bundle_with(json_deep_copy(form), (enum link)how,
				    how % 2 == 1), services[s], &r, &d), 0);
				CU_ASSERT_FALSE(returned_or_accepted(&d));
			}
			for (int route = 0; route < N_ROUTES; route++) {
				struct ras_referral r;
				struct ras_decision d;

				CU_ASSERT_EQUAL_FATAL(decide_ers(form, (enum route)route, route == 1, NULL, services[s],
				    &r, &d), 0);
				if (returned_or_accepted(&d))
					fprintf(stderr, "%s %s via %s: %s\n", services[s],
					    k < N_FLAGS ? red_flag_codes[k] : "suspected-cancer", route_names[route],
					    ras_decision_outcome_name(d.outcome));
				CU_ASSERT_FALSE(returned_or_accepted(&d));
			}
			json_decref(form);
		}
}

/* ---- main --------------------------------------------------------------- */

static int
setup(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);

	A = ras_arena_new();
	if (A == NULL || ras_mappings_load(MAPPINGS, &maps) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, ras_error_last());
		return 1;
	}
	if (ras_xmlform_maps_load(MAPPINGS "/form-maps", &xmaps, &problems) < 0) {
		fprintf(stderr, "form maps: %s%s\n", ras_error_last(), problems.data ? problems.data : "");
		ras_buf_free(&problems);
		return 1;
	}
	ras_buf_free(&problems);
	n_services = ras_mappings_services(maps, services, RAS_SERVICES_MAX);
	return n_services > 0 ? 0 : 1;
}

static int
teardown(void)
{
	ras_xmlform_maps_free(xmaps);
	ras_mappings_free(maps);
	ras_arena_free(A);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "form linked by basedOn beside a PHQ-9", form_by_basedon_beside_phq9 },
		{ "two questionnaires in supportingInfo", two_questionnaires_in_supporting_info },
		{ "the form is found however it is linked", form_found_however_linked },
		{ "two rasd forms go to review", two_rasd_forms_review },
		{ "a bare PHQ-9 is not the referral form", ers_other_questionnaire_not_the_form },
		{ "an e-RS referral's contained form is found", ers_contained_form_found },
		{ "net: danger in another questionnaire", net_danger_in_other_questionnaire },
		{ "net: a coded Condition of cancer", net_coded_condition },
		{ "net: an item the form does not have", net_doubt_unknown_item },
		{ "net: its result is in the facts", net_result_in_facts },
		{ "a rejected payload's danger is read", rejection_reads_danger },
		{ "XHTML red flags are carried", xhtml_red_flags_carried },
		{ "XHTML unmapped cell: incomplete, review", xhtml_unmapped_cell_incomplete },
		{ "form maps are checked against their Questionnaire", form_map_checked_at_load },
		{ "a restricted patient's address is never kept", restricted_patient_keeps_no_address },
		{ "every service, every red flag, every route", every_service_every_red_flag },
		{ "property: danger never returned, routes agree, nothing dropped", property_no_danger_returned },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "safety", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
