/*
 * fuzz_triage: libFuzzer target for what triage reads from outside.
 *
 * The first byte of the input picks what the rest is fed to:
 *   0  a rule set: parsed, and if valid linked to the shipped forms and
 *      practice lists and used to decide a fixed referral
 *   1  an intake payload (R4 Bundle, e-RS resource): parsed, and every
 *      referral decided by each shipped rule set
 *   2  a Questionnaire: parsed, and a fixed response checked against it
 *   3  a bank-holiday file: parsed, and working days counted over it
 *   4  a QuestionnaireResponse: parsed as a form and decided (the e-RS
 *      form attachment route)
 *
 * Build and run: scripts/fuzz-triage (clang, -Dfuzz=true); see README.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/calendar.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct ras_mappings *maps;
static const char *services[8];
static size_t n_services;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("RAS_MAPPINGS");

	(void)argc;
	(void)argv;
	if (ras_mappings_load(dir ? dir : RAS_SOURCE_ROOT "/mappings", &maps) < 0)
		abort();
	n_services = ras_mappings_services(maps, services, 8);
	return 0;
}

static void
fixed_referral(struct ras_referral *r, struct ras_answer *ans)
{
	memset(r, 0, sizeof(*r));
	r->source = RAS_PAYLOAD_FHIR_BUNDLE;
	r->patient.nhs_number = "9990000018";
	r->patient.has_birth_date = true;
	r->patient.birth_date = (struct ras_date){ 1970, 5, 14 };
	r->patient.practice_ods = "C84009";
	r->referrer.org_ods = "C84009";
	r->has_form = true;
	r->form.questionnaire = "urn:rasd:questionnaire:community-pain-referral";
	r->form.version = "2";
	r->form.status = "completed";
	ans[0] = (struct ras_answer){ .link_id = "pain-duration-weeks", .type = RAS_ANSWER_INTEGER, .i = 20 };
	ans[1] = (struct ras_answer){ .link_id = "red-flags", .type = RAS_ANSWER_CODING,
		.system = r->form.questionnaire, .code = "fracture" };
	ans[2] = (struct ras_answer){ .link_id = "investigations-complete", .type = RAS_ANSWER_BOOLEAN, .b = true };
	r->form.answers = ans;
	r->form.n_answers = 3;
}

static void
decide_all(struct ras_arena *a, const struct ras_referral *r)
{
	struct ras_decision d;

	for (size_t i = 0; i < n_services; i++) {
		const struct ras_ruleset *rs = ras_mappings_ruleset(maps, services[i]);

		if (ras_rules_decide(a, rs, r, 1775000000, ras_mappings_calendar(maps), 1775000000, &d) == 0 &&
		    ras_rules_facts_json(a, &d) == 0) {
			json_t *j = NULL;

			/* Safety invariant: a red flag is never returned or accepted. */
			if (json_array_size(json_object_get(d.facts, "form.red-flags")) > 0 &&
			    (d.outcome == RAS_OUTCOME_RETURN || d.outcome == RAS_OUTCOME_ACCEPT))
				abort();
			if (ras_decision_to_json(&d, true, &j) == 0)
				json_decref(j);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ras_arena *a;
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	a = ras_arena_new();
	switch (data[0] % 5) {
	case 0: {
		struct ras_ruleset *rs;
		struct ras_referral r;
		struct ras_answer ans[3];

		if (ras_rules_parse(a, p, n, &rs) == 0 &&
		    ras_mappings_link_ruleset(maps, a, rs, "fuzz") == 0) {
			struct ras_decision d;

			fixed_referral(&r, ans);
			if (ras_rules_decide(a, rs, &r, 1775000000, ras_mappings_calendar(maps), 1775000000, &d) == 0 &&
			    ras_rules_facts_json(a, &d) == 0) {
				json_t *j = NULL;

				if (ras_decision_to_json(&d, true, &j) == 0)
					json_decref(j);
			}
		}
		break;
	}
	case 1: {
		struct ras_intake in;

		if (ras_intake_parse(a, NULL, p, n, &in) == 0)
			for (size_t i = 0; i < in.n_referrals; i++)
				decide_all(a, &in.referrals[i]);
		break;
	}
	case 2: {
		json_t *j;
		struct ras_questionnaire q;
		struct ras_form_check fc;
		struct ras_referral r;
		struct ras_answer ans[3];

		if (ras_json_parse_arena(a, p, n, 1u << 20, &j) == 0 &&
		    ras_form_questionnaire_parse(a, j, &q) == 0) {
			const struct ras_questionnaire *qs[1] = { &q };

			fixed_referral(&r, ans);
			r.form.questionnaire = q.url;
			r.form.version = q.version;
			(void)ras_form_check(a, qs, 1, &r.form, (const char *[]){ "diagnosis" }, 1, &fc);
		}
		break;
	}
	case 3: {
		struct ras_calendar *cal = NULL;

		if (ras_calendar_parse(p, n, &cal) == 0) {
			struct ras_date d = { 2026, 4, 2 }, out;

			(void)ras_calendar_add_working_days(cal, &d, 30, &out, NULL);
			(void)ras_calendar_working_days_between(cal, &d, &out);
			ras_calendar_free(cal);
		}
		break;
	}
	case 4: {
		struct ras_intake in;
		struct ras_referral r;
		struct ras_answer ans[3];

		if (ras_intake_parse(a, NULL, p, n, &in) == 0 && in.kind == RAS_PAYLOAD_FORM) {
			fixed_referral(&r, ans);
			r.form = *in.form;
			decide_all(a, &r);
		}
		break;
	}
	}
	ras_error_clear();
	ras_arena_free(a);
	return 0;
}
