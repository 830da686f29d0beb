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
