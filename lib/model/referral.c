/* referral: helpers over the normalised model (see include/ras/referral.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/referral.h"

const char *
ras_referral_payload_kind_name(enum ras_payload_kind k)
{
	switch (k) {
	case RAS_PAYLOAD_FHIR_BUNDLE: return "fhir-bundle";
	case RAS_PAYLOAD_ERS_WORKLIST: return "ers-worklist";
	case RAS_PAYLOAD_ERS_REFERRAL: return "ers-referral";
	case RAS_PAYLOAD_ERS_DOCREF: return "ers-documentreference";
	case RAS_PAYLOAD_FORM: return "questionnaire-response";
	case RAS_PAYLOAD_UNKNOWN: break;
	}
	return "unknown";
}

const char *
ras_referral_priority_name(enum ras_priority p)
{
	switch (p) {
	case RAS_PRIORITY_ROUTINE: return "routine";
	case RAS_PRIORITY_URGENT: return "urgent";
	case RAS_PRIORITY_TWO_WEEK_WAIT: return "two-week-wait";
	case RAS_PRIORITY_UNKNOWN: break;
	}
	return "unknown";
}

const char *
ras_referral_answer_type_name(enum ras_answer_type t)
{
	switch (t) {
	case RAS_ANSWER_BOOLEAN: return "boolean";
	case RAS_ANSWER_INTEGER: return "integer";
	case RAS_ANSWER_DECIMAL: return "decimal";
	case RAS_ANSWER_STRING: return "string";
	case RAS_ANSWER_DATE: return "date";
	case RAS_ANSWER_CODING: return "coding";
	case RAS_ANSWER_OTHER: return "other";
	}
	return "other";
}

const struct ras_answer *
ras_form_answer(const struct ras_form *f, const char *link_id)
{
	for (size_t i = 0; i < f->n_answers; i++)
		if (strcmp(f->answers[i].link_id, link_id) == 0)
			return &f->answers[i];
	return NULL;
}

size_t
ras_form_count(const struct ras_form *f, const char *link_id)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n_answers; i++)
		if (strcmp(f->answers[i].link_id, link_id) == 0)
			n++;
	return n;
}

int
ras_form_bool(const struct ras_form *f, const char *link_id)
{
	const struct ras_answer *a = ras_form_answer(f, link_id);

	if (a == NULL || a->type != RAS_ANSWER_BOOLEAN)
		return -1;
	return a->b ? 1 : 0;
}

bool
ras_form_has_code(const struct ras_form *f, const char *link_id, const char *code)
{
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *a = &f->answers[i];

		if (a->type == RAS_ANSWER_CODING && a->code && strcmp(a->link_id, link_id) == 0 &&
		    strcmp(a->code, code) == 0)
			return true;
	}
	return false;
}

const char *
ras_referral_key(struct ras_arena *a, const struct ras_referral *r)
{
	if (r->ubrn)
		return r->ubrn;
	if (r->local_id)
		return ras_arena_printf(a, "local:%s", r->local_id);
	return NULL;
}

bool
ras_referral_is_rasd_form(const char *canonical)
{
	size_t n = strlen(RAS_REFERRAL_FORM_URL);

	return canonical && strncmp(canonical, RAS_REFERRAL_FORM_URL, n) == 0 &&
	    (canonical[n] == '\0' || canonical[n] == '|');
}
