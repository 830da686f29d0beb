/*
 * Clinical safety (issue 12), without a database: the referral form found
 * by what it answers, the safety net, form maps checked against their
 * Questionnaire, and a property test over generated referrals.
 *
 * The referrals are built as a referring system would send them
 * (support/referral_gen.h), from one hand-made R4 bundle and one e-RS A005
 * referral whose form arrives as an attachment (FHIR JSON, FHIR XML or the
 * XHTML layout of mappings/form-maps).  The property test's seed is fixed in CI;
 * RAS_PROPERTY_RUNS (default 300) and RAS_PROPERTY_SEED run it longer or
 * differently (docs/safety/hazard-log.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "referral_gen.h"
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
	json_t *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	gen_add_red_flag(form, "cauda-equina");
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(form, GEN_LINK_BASED_ON, true), "midnotts", &r, &d), 0);
	CU_ASSERT(r.has_form);
	CU_ASSERT_STRING_EQUAL(r.form.questionnaire, GEN_FORM_URL);
	CU_ASSERT_EQUAL(r.n_other_forms, 1);
	CU_ASSERT_STRING_EQUAL(r.other_forms[0].questionnaire, GEN_PHQ9_URL);
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
	json_t *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	gen_set_bool(form, "suspected-cancer", true);
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(form, GEN_LINK_SUPPORTING, true), "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");
}

/* However the form is linked, it is the form; a referral with two rasd
 * forms is a clinician's to decide. */
static void
form_found_however_linked(void)
{
	for (int how = 0; how < GEN_N_LINKS; how++) {
		struct ras_referral r;
		struct ras_decision d;

		CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(gen_base_form(), (enum gen_link)how, false),
		    "midnotts", &r, &d), 0);
		CU_ASSERT(r.has_form);
		CU_ASSERT_EQUAL(r.n_doubts, 0);
		CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ACCEPT);
		if (d.outcome != RAS_OUTCOME_ACCEPT)
			fprintf(stderr, "linked by %s: %s\n", gen_link_names[how], ras_decision_outcome_name(d.outcome));
	}
}

static void
two_rasd_forms_review(void)
{
	json_t *b = gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, false);
	json_t *second = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	json_array_append_new(json_object_get(b, "entry"), json_pack("{s:s, s:o}", "fullUrl",
	    "urn:uuid:form-2", "resource", second));
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(r.n_doubts, 1);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_REVIEW);
	CU_ASSERT_STRING_EQUAL(d.reasons[0].rule, "rasd.safety-net.doubt");
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "doubt");
}

/* A bare PHQ-9 sent for an e-RS referral is not its referral form. */
static void
ers_other_questionnaire_not_the_form(void)
{
	json_t *pq = gen_phq9();
	char *p = gen_dump(pq);
	struct ras_intake in;

	json_decref(pq);
	CU_ASSERT_EQUAL_FATAL(gen_parse_text(p, strlen(p), &in), 0);
	free(p);
	CU_ASSERT_FALSE(ras_referral_is_rasd_form(in.form->questionnaire));
	CU_ASSERT(ras_referral_is_rasd_form(GEN_FORM_URL "|1"));
	CU_ASSERT(ras_referral_is_rasd_form(GEN_FORM_URL));
	CU_ASSERT_FALSE(ras_referral_is_rasd_form(GEN_FORM_URL "-extra|2"));
}

/* An e-RS ReferralRequest carrying its form contained (STU3 names the
 * Questionnaire by reference): the form is found, never dropped. */
static void
ers_contained_form_found(void)
{
	json_t *rr = gen_load_json("ers/referral-BookedDBS.json"), *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;
	struct ras_intake in;
	char *text;

	gen_add_red_flag(form, "cauda-equina");
	json_object_set_new(form, "questionnaire", json_pack("{s:s}", "reference", GEN_FORM_URL "|2"));
	json_object_set_new(form, "id", json_string("form"));
	if (json_object_get(rr, "contained") == NULL)
		json_object_set_new(rr, "contained", json_array());
	json_array_append_new(json_object_get(rr, "contained"), form);
	json_array_append_new(json_object_get(rr, "contained"), gen_phq9());
	text = gen_dump(rr);
	json_decref(rr);
	CU_ASSERT_EQUAL_FATAL(gen_parse_text(text, strlen(text), &in), 0);
	free(text);
	r = in.referrals[0];
	CU_ASSERT(r.has_form);
	CU_ASSERT_EQUAL(r.n_other_forms, 1);
	CU_ASSERT_EQUAL(r.n_doubts, 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(gen.arena, ras_mappings_ruleset(gen.maps, "midnotts"), &r, gen.at,
	    ras_mappings_calendar(gen.maps), gen.at + 60, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target ? d.onward_target : "", "emergency");
}

/* ---- 2. the safety net ------------------------------------------------- */

/* Danger only in a questionnaire that is not the form. */
static void
net_danger_in_other_questionnaire(void)
{
	json_t *b = gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, true);
	json_t *e;
	size_t i;
	struct ras_referral r;
	struct ras_decision d;

	json_array_foreach(json_object_get(b, "entry"), i, e) {
		json_t *res = json_object_get(e, "resource");

		if (ras_json_str(res, "questionnaire") && strstr(ras_json_str(res, "questionnaire"), "phq-9"))
			gen_add_red_flag(res, "suspected-cancer");
	}
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, "dorset-2019", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");
	CU_ASSERT_STRING_EQUAL(net_applied(&d), "danger");
}

/* A coded Condition of cancer, the form silent. */
static void
net_coded_condition(void)
{
	json_t *b = gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, false);
	json_t *c = gen_entry_of(b, "Condition", NULL);
	struct ras_referral r;
	struct ras_decision d;

	json_object_set_new(c, "code", json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system",
	    "http://snomed.info/sct", "code", "363346000", "display", "Malignant neoplastic disease"));
	json_object_del(c, "clinicalStatus");
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_FALSE(gen_returned_or_accepted(&d));
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "two-week-wait");

	/* "chronic non-malignant pain" is not a suspected cancer */
	b = gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, false);
	c = gen_entry_of(b, "Condition", NULL);
	json_object_set_new(c, "code", json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system",
	    "http://snomed.info/sct", "code", "1137393000", "text", "Chronic non-malignant pain"));
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ACCEPT);
	CU_ASSERT(json_is_false(json_object_get(json_object_get(d.facts, "safety_net"), "danger")));
}

/* An item the form does not have, or an answer rasd cannot read: review. */
static void
net_doubt_unknown_item(void)
{
	json_t *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	gen_set_bool(form, "new-red-flag-question", true);
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(form, GEN_LINK_SUPPORTING, false), "midnotts", &r, &d), 0);
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

	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, true), "midnotts",
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
	json_t *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	gen_add_red_flag(form, "cauda-equina");
	CU_ASSERT_EQUAL_FATAL(gen_decide_ers(form, GEN_ROUTE_ERS_XHTML, false, NULL, "midnotts", &r, &d), 0);
	CU_ASSERT_EQUAL(d.outcome, RAS_OUTCOME_ONWARD);
	CU_ASSERT_STRING_EQUAL(d.onward_target, "emergency");
	{
		/* written in the cell rather than listed */
		char *x = gen_xhtml(form, NULL), *li = strstr(x, "<ul><li>cauda-equina</li></ul>");
		struct ras_intake in;

		CU_ASSERT_PTR_NOT_NULL_FATAL(li);
		memmove(li, "Cauda equina", 12);
		memmove(li + 12, li + 30, strlen(li + 30) + 1);
		CU_ASSERT_EQUAL_FATAL(gen_parse_text(x, strlen(x), &in), 0);
		CU_ASSERT(ras_form_has_code(in.form, "red-flags", "cauda-equina"));
		/* text the map does not know refuses the form, and says why */
		li = strstr(x, "Cauda equina");
		memcpy(li, "Caudaaequina", 12);
		CU_ASSERT_EQUAL(gen_parse_text(x, strlen(x), &in), RAS_EINVALID);
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
	json_t *form = gen_base_form();
	struct ras_referral r;
	struct ras_decision d;

	CU_ASSERT_EQUAL_FATAL(gen_decide_ers(form, GEN_ROUTE_ERS_XHTML, false, "new-question", "midnotts", &r, &d), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r.form.status);
	CU_ASSERT_STRING_NOT_EQUAL(r.form.status, "completed");
	CU_ASSERT_EQUAL_FATAL(r.form.n_unmapped, 1);
	CU_ASSERT_STRING_EQUAL(r.form.unmapped[0], "new-question");
	CU_ASSERT_FALSE(gen_returned_or_accepted(&d));
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
	json_t *b = gen_bundle_with(gen_base_form(), GEN_LINK_SUPPORTING, false);
	json_t *pat = gen_entry_of(b, "Patient", NULL), *doc = NULL;
	struct ras_referral r;
	struct ras_decision d;
	char *text;

	json_object_set_new(pat, "meta", json_pack("{s:[{s:s, s:s}]}", "security", "system",
	    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code", "R"));
	json_object_set_new(pat, "address", json_pack("[{s:[s], s:s}]", "line", "1 Hidden Lane",
	    "postalCode", "NG1 9ZZ"));
	CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(b, "midnotts", &r, &d), 0);
	CU_ASSERT(r.patient.restricted);
	CU_ASSERT_PTR_NULL(r.patient.postcode);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_dump(&r, "k", &doc), 0);
	text = gen_dump(doc);
	CU_ASSERT_PTR_NULL(strstr(text, "NG1 9ZZ"));
	CU_ASSERT_PTR_NULL(strstr(text, "Hidden Lane"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"restricted\":true"));
	free(text);
	json_decref(doc);
}

/* ---- 7. property test ---------------------------------------------------- */

static void
property_no_danger_returned(void)
{
	long runs = gen_env_long("RAS_PROPERTY_RUNS", 300);
	long seed = gen_env_long("RAS_PROPERTY_SEED", 12);
	long dangerous = 0, checked = 0;

	gen_seed(seed);
	for (long run = 0; run < runs; run++) {
		const char *service = gen.services[gen_next_rand() % gen.n_services];
		bool danger, extra = gen_coin(40);
		json_t *form = gen_random_form(&danger);
		char first[96] = "", now[96], *key = NULL;

		/* an urgent R4 priority is danger too (the e-RS referral keeps its own) */
		gen.r4_priority = gen_coin(10) ? (gen_coin(50) ? "urgent" : "asap") : NULL;
		dangerous += danger || gen.r4_priority;
		/* R4: every way of linking the form gives the same outcome */
		for (int how = 0; how < GEN_N_LINKS; how++) {
			struct ras_referral r;
			struct ras_decision d;
			char *k;

			if (gen_decide_bundle(gen_bundle_with(json_deep_copy(form), (enum gen_link)how, extra), service,
			    &r, &d) < 0) {
				CU_FAIL("a generated R4 referral was not parsed");
				fprintf(stderr, "run %ld (seed %ld): %s\n", run, seed, ras_error_last());
				continue;
			}
			checked++;
			gen_describe(&d, now, sizeof(now));
			if ((danger || gen.r4_priority) && gen_returned_or_accepted(&d)) {
				CU_FAIL("a referral reporting danger was returned or accepted");
				fprintf(stderr, "run %ld (seed %ld) %s via %s: %s\n", run, seed, service,
				    gen_link_names[how], now);
			}
			if (how == 0)
				snprintf(first, sizeof(first), "%s", now);
			else if (strcmp(first, now) != 0) {
				CU_FAIL("the same form linked another way gave another outcome");
				fprintf(stderr, "run %ld (seed %ld) %s: %s by supportingInfo, %s by %s\n", run, seed,
				    service, first, now, gen_link_names[how]);
			}
			/* nothing dropped: the form read is the form sent */
			k = gen_answers_key(&r.form);
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
		for (int route = 0; route < GEN_N_ROUTES; route++) {
			struct ras_referral r;
			struct ras_decision d;
			char *k;

			if (gen_decide_ers(form, (enum gen_route)route, extra, NULL, service, &r, &d) < 0) {
				CU_FAIL("a generated e-RS form attachment was not read");
				fprintf(stderr, "run %ld (seed %ld) %s: %s\n", run, seed, gen_route_names[route],
				    ras_error_last());
				continue;
			}
			checked++;
			gen_describe(&d, now, sizeof(now));
			if (danger && gen_returned_or_accepted(&d)) {
				CU_FAIL("an e-RS referral reporting danger was returned or accepted");
				fprintf(stderr, "run %ld (seed %ld) %s via %s: %s\n", run, seed, service,
				    gen_route_names[route], now);
			}
			if (route == 0)
				snprintf(first, sizeof(first), "%s", now);
			else if (strcmp(first, now) != 0) {
				CU_FAIL("the same answers by another e-RS form route gave another outcome");
				fprintf(stderr, "run %ld (seed %ld) %s: %s as JSON, %s as %s\n", run, seed, service,
				    first, now, gen_route_names[route]);
			}
			k = gen_answers_key(&r.form);
			if (strcmp(k, key) != 0) {
				CU_FAIL("an answer was dropped or changed on an e-RS form route");
				fprintf(stderr, "run %ld (seed %ld) %s:\n sent %s\n read %s\n", run, seed,
				    gen_route_names[route], key, k);
			}
			free(k);
		}
		free(key);
		gen.r4_priority = NULL;
		json_decref(form);
		gen_reset_arena();
	}
	CU_ASSERT(dangerous > 0 && dangerous < runs);
	CU_ASSERT_EQUAL(checked, runs * (GEN_N_LINKS + GEN_N_ROUTES));
	if (getenv("RAS_TEST_VERBOSE"))
		fprintf(stderr, "property: %ld referrals (%ld reporting danger), %ld decisions, seed %ld\n",
		    runs, dangerous, checked, seed);
}

/* Every service, every red flag, alone, by every route: never returned or
 * accepted (the exhaustive corner of the property). */
static void
every_service_every_red_flag(void)
{
	CU_ASSERT(gen.n_services >= 4);
	for (size_t s = 0; s < gen.n_services; s++)
		for (size_t k = 0; k <= gen_n_flags; k++) {
			json_t *form = gen_base_form();

			if (k < gen_n_flags)
				gen_add_red_flag(form, gen_red_flag_codes[k]);
			else
				gen_set_bool(form, "suspected-cancer", true);
			for (int how = 0; how < GEN_N_LINKS; how++) {
				struct ras_referral r;
				struct ras_decision d;

				CU_ASSERT_EQUAL_FATAL(gen_decide_bundle(gen_bundle_with(json_deep_copy(form), (enum gen_link)how,
				    how % 2 == 1), gen.services[s], &r, &d), 0);
				CU_ASSERT_FALSE(gen_returned_or_accepted(&d));
			}
			for (int route = 0; route < GEN_N_ROUTES; route++) {
				struct ras_referral r;
				struct ras_decision d;

				CU_ASSERT_EQUAL_FATAL(gen_decide_ers(form, (enum gen_route)route, route == 1, NULL, gen.services[s],
				    &r, &d), 0);
				if (gen_returned_or_accepted(&d))
					fprintf(stderr, "%s %s via %s: %s\n", gen.services[s],
					    k < gen_n_flags ? gen_red_flag_codes[k] : "suspected-cancer", gen_route_names[route],
					    ras_decision_outcome_name(d.outcome));
				CU_ASSERT_FALSE(gen_returned_or_accepted(&d));
			}
			json_decref(form);
		}
}

/* ---- main --------------------------------------------------------------- */

static int
setup(void)
{
	return gen_setup();
}

static int
teardown(void)
{
	gen_teardown();
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
