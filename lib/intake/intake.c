/*
 * intake: detect a payload's kind and dispatch to its parser (see
 * include/ras/intake.h).
 */
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/intake.h"
#include "ras/limits.h"
#include "ras/xmlform.h"

static bool
is_worklist(const json_t *list)
{
	json_t *prof = ras_json_arr(ras_json_obj(list, "meta"), "profile");
	json_t *p;
	size_t i;

	json_array_foreach(prof, i, p) {
		const char *s = json_string_value(p);

		if (s && strstr(s, "eRS-FetchWorklist-List"))
			return true;
	}
	/* Without the profile: a List whose entries point at ReferralRequests. */
	{
		json_t *e = json_array_get(ras_json_arr(list, "entry"), 0);
		const char *ref = ras_json_str(ras_json_obj(e, "item"), "reference");

		return ref && strncmp(ref, "ReferralRequest/", 16) == 0;
	}
}

int
ras_intake_parse(struct ras_arena *a, const struct ras_xmlform_maps *form_maps, const char *data,
    size_t len, struct ras_intake *out)
{
	const char *type;
	json_t *j;
	size_t k = 0;
	int err;

	memset(out, 0, sizeof(*out));
	while (k < len && (data[k] == ' ' || data[k] == '\n' || data[k] == '\r' || data[k] == '\t'))
		k++;
	if (k < len && data[k] == '<') {
		/* XML is taken only as a referral form: a FHIR XML
		 * QuestionnaireResponse, or a form a mappings/form-maps map reads. */
		json_t *qr;

		out->kind = RAS_PAYLOAD_FORM;
		if ((err = ras_xmlform_read(a, form_maps, data, len, &qr, NULL)) < 0)
			return err;
		out->json = qr;
		out->form = ras_arena_calloc(a, 1, sizeof(*out->form));
		if (out->form == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		return ras_intake_fhir_form(a, qr, out->form);
	}
	if ((err = ras_json_parse_arena(a, data, len, RAS_PAYLOAD_MAX, &j)) < 0)
		return err;
	out->json = j;
	if (!json_is_object(j))
		return ras_error_code(RAS_EINVALID, "payload is not a FHIR resource (not a JSON object)");
	type = ras_json_str(j, "resourceType");
	if (type == NULL)
		return ras_error_code(RAS_EINVALID, "payload has no resourceType");

	if (strcmp(type, "Bundle") == 0) {
		out->kind = RAS_PAYLOAD_FHIR_BUNDLE;
		out->referrals = ras_arena_calloc(a, 1, sizeof(*out->referrals));
		if (out->referrals == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if ((err = ras_intake_fhir_bundle(a, j, out->referrals)) < 0)
			return err;
		out->n_referrals = 1;
		return 0;
	}
	if (strcmp(type, "List") == 0) {
		if (!is_worklist(j))
			return ras_error_code(RAS_EINVALID, "List is not an e-RS worklist");
		return ras_intake_ers_worklist(a, j, out);
	}
	if (strcmp(type, "ReferralRequest") == 0) {
		out->kind = RAS_PAYLOAD_ERS_REFERRAL;
		out->referrals = ras_arena_calloc(a, 1, sizeof(*out->referrals));
		if (out->referrals == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if ((err = ras_intake_ers_referral(a, j, out->referrals)) < 0)
			return err;
		out->n_referrals = 1;
		return 0;
	}
	if (strcmp(type, "DocumentReference") == 0) {
		out->kind = RAS_PAYLOAD_ERS_DOCREF;
		out->attachment = ras_arena_calloc(a, 1, sizeof(*out->attachment));
		if (out->attachment == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		return ras_intake_ers_docref(a, j, out->attachment);
	}
	if (strcmp(type, "QuestionnaireResponse") == 0) {
		out->kind = RAS_PAYLOAD_FORM;
		out->form = ras_arena_calloc(a, 1, sizeof(*out->form));
		if (out->form == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		return ras_intake_fhir_form(a, j, out->form);
	}
	if (strlen(type) > 64)
		return ras_error_code(RAS_EINVALID, "unsupported resource type");
	return ras_error_code(RAS_EINVALID, "unsupported resource type \"%s\"", type);
}

/* ---- danger in a payload that cannot be used --------------------------- */

static bool
danger_code(const char *s)
{
	return s && (strcmp(s, "cauda-equina") == 0 || strcmp(s, "suspected-cancer") == 0 ||
	    strcmp(s, "TWO_WEEK_WAIT") == 0 || strcmp(s, "two-week-wait") == 0);
}

static bool
json_danger(const json_t *j, int depth)
{
	const char *k;
	json_t *v;
	size_t i;

	if (depth > 64)
		return false;
	if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if (json_danger(v, depth + 1))
				return true;
		return false;
	}
	if (!json_is_object(j))
		return false;
	{
		const char *lid = json_string_value(json_object_get(j, "linkId"));
		json_t *ans = json_object_get(j, "answer");

		if (lid && strcmp(lid, "red-flags") == 0 && json_array_size(ans) > 0) {
			json_array_foreach(ans, i, v)
				if (!json_is_false(json_object_get(v, "valueBoolean")))
					return true;
		}
		if (lid && strcmp(lid, "suspected-cancer") == 0)
			json_array_foreach(ans, i, v)
				if (json_is_true(json_object_get(v, "valueBoolean")))
					return true;
	}
	json_object_foreach((json_t *)j, k, v) {
		if (json_is_string(v) && (strcmp(k, "code") == 0 || strcmp(k, "priority") == 0)) {
			const char *s = json_string_value(v);

			if (danger_code(s) || (strcmp(k, "priority") == 0 && (strcmp(s, "urgent") == 0 ||
			    strcmp(s, "asap") == 0 || strcmp(s, "stat") == 0)))
				return true;
		}
		if (json_danger(v, depth + 1))
			return true;
	}
	return false;
}

static bool
text_has(const char *data, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (strncasecmp(data + i, needle, n) == 0)
			return true;
	return false;
}

bool
ras_intake_reports_danger(const char *data, size_t len)
{
	json_error_t e;
	json_t *j;
	bool d;

	if (len > RAS_PAYLOAD_MAX)
		len = RAS_PAYLOAD_MAX;
	j = json_loadb(data, len, JSON_DECODE_ANY, &e);
	if (j != NULL) {
		d = json_danger(j, 0);
		json_decref(j);
		return d;
	}
	/* Not JSON (XML, XHTML, or broken): look for the words. */
	return text_has(data, len, "cauda-equina") || text_has(data, len, "cauda equina") ||
	    text_has(data, len, "suspected-cancer") || text_has(data, len, "suspected cancer") ||
	    text_has(data, len, "TWO_WEEK_WAIT") || text_has(data, len, "two-week-wait");
}
