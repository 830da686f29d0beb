/* referral_json: model <-> JSON (see include/ras/referral_json.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/nhsno.h"
#include "ras/form.h"
#include "ras/referral_json.h"

static enum ras_nhsno_status
nhsno_status_from(const char *s)
{
	static const enum ras_nhsno_status all[] = { RAS_NHSNO_OK, RAS_NHSNO_MISSING,
		RAS_NHSNO_BAD_LENGTH, RAS_NHSNO_NOT_DIGITS, RAS_NHSNO_CHECK_10, RAS_NHSNO_BAD_CHECK };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, ras_nhsno_status_name(all[i])) == 0)
			return all[i];
	return RAS_NHSNO_MISSING;
}

/* Builders: a NULL value means "leave the key out". */
static int
put(json_t *o, const char *k, const char *v)
{
	return ras_json_set_str(o, k, v);
}

static int
put_time(json_t *o, const char *k, bool has, int64_t t)
{
	char buf[RAS_TIME_STR_MAX];

	if (!has)
		return 0;
	ras_time_format_utc(t, buf);
	return ras_json_set_str(o, k, buf);
}

int
ras_referral_json_dump(const struct ras_referral *r, const char *key, json_t **out)
{
	json_t *o = json_object(), *ers = json_object(), *pat = json_object(), *ref = json_object();
	json_t *conds = json_array(), *atts = json_array(), *rel = json_array();
	const struct ras_patient *p = &r->patient;
	int err = 0;

	if (!o || !ers || !pat || !ref || !conds || !atts || !rel) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	if ((err = put(o, "source", ras_referral_payload_kind_name(r->source))) < 0 ||
	    (err = put(o, "key", key)) < 0 ||
	    (err = put(o, "ubrn", r->ubrn)) < 0 ||
	    (err = ras_json_set_new(o, "version", json_integer(r->version ? r->version : 1))) < 0 ||
	    (err = put(o, "local_id", r->local_id)) < 0 ||
	    (err = put(o, "status", r->status)) < 0 ||
	    (err = put(o, "priority", ras_referral_priority_name(r->priority))) < 0 ||
	    (err = put(o, "priority_raw", r->priority_raw)) < 0 ||
	    (err = put_time(o, "authored", r->has_authored, r->authored)) < 0 ||
	    (err = put_time(o, "pathway_start", r->has_pathway_start, r->pathway_start)) < 0 ||
	    (err = put(o, "specialty", r->specialty)) < 0 ||
	    (err = put(o, "reason_text", r->reason_text)) < 0)
		goto done;

	if ((err = put(ers, "request_id", r->ers_request_id)) < 0 ||
	    (err = put(ers, "service_id", r->ers_service_id)) < 0 ||
	    (err = put(ers, "service_name", r->ers_service_name)) < 0 ||
	    (err = put(ers, "state", r->ers_state)) < 0 ||
	    (err = put(ers, "referral_type", r->ers_referral_type)) < 0 ||
	    (err = put(ers, "request_context", r->request_context)) < 0)
		goto done;

	if ((err = put(pat, "nhs_number", p->nhs_number)) < 0 ||
	    (err = put(pat, "nhs_number_status", ras_nhsno_status_name(p->nhs_number_status))) < 0 ||
	    (err = put(pat, "nhs_verification", p->nhs_verification)) < 0 ||
	    (err = put(pat, "family", p->family)) < 0 ||
	    (err = put(pat, "given", p->given)) < 0 ||
	    (err = put(pat, "prefix", p->prefix)) < 0 ||
	    (err = put(pat, "gender", p->gender)) < 0 ||
	    (err = put(pat, "postcode", p->restricted ? NULL : p->postcode)) < 0 ||
	    (p->restricted && (err = ras_json_set_new(pat, "restricted", json_true())) < 0) ||
	    (err = put(pat, "practice_ods", p->practice_ods)) < 0 ||
	    (err = put(pat, "practice_name", p->practice_name)) < 0)
		goto done;
	if (p->has_birth_date) {
		char d[RAS_DATE_STR_MAX];

		ras_date_format(&p->birth_date, d);
		if ((err = put(pat, "birth_date", d)) < 0)
			goto done;
	}

	if ((err = put(ref, "name", r->referrer.name)) < 0 ||
	    (err = put(ref, "sds_user_id", r->referrer.sds_user_id)) < 0 ||
	    (err = put(ref, "sds_role_profile_id", r->referrer.sds_role_profile_id)) < 0 ||
	    (err = put(ref, "professional_id", r->referrer.professional_id)) < 0 ||
	    (err = put(ref, "org_ods", r->referrer.org_ods)) < 0 ||
	    (err = put(ref, "org_name", r->referrer.org_name)) < 0 ||
	    (err = put(ref, "role_code", r->referrer.role_code)) < 0)
		goto done;

	for (size_t i = 0; i < r->n_conditions; i++) {
		const struct ras_condition *c = &r->conditions[i];
		json_t *x = json_object();

		if ((err = ras_json_append_new(conds, x)) < 0 || (err = put(x, "system", c->system)) < 0 ||
		    (err = put(x, "code", c->code)) < 0 || (err = put(x, "display", c->display)) < 0 ||
		    (err = put(x, "clinical_status", c->clinical_status)) < 0)
			goto done;
	}
	for (size_t i = 0; i < r->n_attachments; i++) {
		const struct ras_attachment *at = &r->attachments[i];
		json_t *x = json_object();

		if ((err = ras_json_append_new(atts, x)) < 0 || (err = put(x, "id", at->id)) < 0 ||
		    (err = put(x, "url", at->url)) < 0 ||
		    (err = put(x, "content_type", at->content_type)) < 0 ||
		    (err = put(x, "title", at->title)) < 0 ||
		    (err = put(x, "availability", at->availability)) < 0 ||
		    (err = put(x, "type", at->type)) < 0 || (err = put(x, "created", at->created)) < 0 ||
		    (err = put(x, "attached_by", at->attached_by)) < 0 ||
		    (err = put(x, "attached_by_org", at->attached_by_org)) < 0 ||
		    (at->size >= 0 && (err = ras_json_set_new(x, "size", json_integer(at->size))) < 0))
			goto done;
	}
	for (size_t i = 0; i < r->n_related; i++)
		if ((err = ras_json_append_new(rel, json_string(r->related_ubrns[i]))) < 0)
			goto done;

	/* ras_json_set_new steals the value whatever happens. */
	err = ras_json_set_new(o, "ers", ers);
	ers = NULL;
	if (err < 0)
		goto done;
	err = ras_json_set_new(o, "patient", pat);
	pat = NULL;
	if (err < 0)
		goto done;
	err = ras_json_set_new(o, "referrer", ref);
	ref = NULL;
	if (err < 0)
		goto done;
	if (r->has_form) {
		json_t *f;

		if ((err = ras_form_to_json(&r->form, &f)) < 0 || (err = ras_json_set_new(o, "form", f)) < 0)
			goto done;
	}
	if (r->n_other_forms) {
		json_t *of = json_array();

		if ((err = ras_json_set_new(o, "other_forms", of)) < 0)
			goto done;
		for (size_t i = 0; i < r->n_other_forms; i++) {
			json_t *f;

			if ((err = ras_form_to_json(&r->other_forms[i], &f)) < 0 ||
			    (err = ras_json_append_new(of, f)) < 0)
				goto done;
		}
	}
	if (r->n_doubts) {
		json_t *dj = json_array();

		if ((err = ras_json_set_new(o, "doubts", dj)) < 0)
			goto done;
		for (size_t i = 0; i < r->n_doubts; i++)
			if ((err = ras_json_append_new(dj, json_string(r->doubts[i]))) < 0)
				goto done;
	}
	err = ras_json_set_new(o, "conditions", conds);
	conds = NULL;
	if (err < 0)
		goto done;
	err = ras_json_set_new(o, "attachments", atts);
	atts = NULL;
	if (err < 0)
		goto done;
	err = ras_json_set_new(o, "related_ubrns", rel);
	rel = NULL;
done:
	json_decref(ers);
	json_decref(pat);
	json_decref(ref);
	json_decref(conds);
	json_decref(atts);
	json_decref(rel);
	if (err < 0) {
		json_decref(o);
		return err;
	}
	/* Drop an empty e-RS part so absent data stays absent. */
	if (json_object_size(ras_json_obj(o, "ers")) == 0)
		json_object_del(o, "ers");
	*out = o;
	return 0;
}


static enum ras_payload_kind
kind_from(const char *s)
{
	static const enum ras_payload_kind all[] = { RAS_PAYLOAD_FHIR_BUNDLE,
		RAS_PAYLOAD_ERS_WORKLIST, RAS_PAYLOAD_ERS_REFERRAL, RAS_PAYLOAD_ERS_DOCREF,
		RAS_PAYLOAD_FORM };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, ras_referral_payload_kind_name(all[i])) == 0)
			return all[i];
	return RAS_PAYLOAD_UNKNOWN;
}

static enum ras_priority
priority_from(const char *s)
{
	static const enum ras_priority all[] = { RAS_PRIORITY_ROUTINE, RAS_PRIORITY_URGENT,
		RAS_PRIORITY_TWO_WEEK_WAIT };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, ras_referral_priority_name(all[i])) == 0)
			return all[i];
	return RAS_PRIORITY_UNKNOWN;
}

static int
get_time(const json_t *o, const char *k, bool *has, int64_t *t)
{
	const char *s = ras_json_str(o, k);

	if (s == NULL)
		return 0;
	if (ras_time_parse(s, false, t) < 0)
		return ras_error_code(RAS_EINVALID, "stored referral has an invalid %s", k);
	*has = true;
	return 0;
}

int
ras_referral_json_load(struct ras_arena *a, json_t *doc, struct ras_referral *r)
{
	json_t *ers = ras_json_obj(doc, "ers"), *pat = ras_json_obj(doc, "patient");
	json_t *ref = ras_json_obj(doc, "referrer"), *x;
	json_t *conds = ras_json_arr(doc, "conditions"), *atts = ras_json_arr(doc, "attachments");
	json_t *rel = ras_json_arr(doc, "related_ubrns");
	int64_t v = 0;
	size_t i;
	int err;

	memset(r, 0, sizeof(*r));
	json_incref(doc);
	if ((err = ras_json_arena_own(a, doc)) < 0)
		return err;
	r->source = kind_from(ras_json_str(doc, "source"));
	r->ubrn = ras_json_str(doc, "ubrn");
	if (ras_json_int(doc, "version", &v))
		r->version = v;
	r->local_id = ras_json_str(doc, "local_id");
	r->status = ras_json_str(doc, "status");
	r->priority = priority_from(ras_json_str(doc, "priority"));
	r->priority_raw = ras_json_str(doc, "priority_raw");
	r->specialty = ras_json_str(doc, "specialty");
	r->reason_text = ras_json_str(doc, "reason_text");
	if ((err = get_time(doc, "authored", &r->has_authored, &r->authored)) < 0 ||
	    (err = get_time(doc, "pathway_start", &r->has_pathway_start, &r->pathway_start)) < 0)
		return err;
	r->ers_request_id = ras_json_str(ers, "request_id");
	r->ers_service_id = ras_json_str(ers, "service_id");
	r->ers_service_name = ras_json_str(ers, "service_name");
	r->ers_state = ras_json_str(ers, "state");
	r->ers_referral_type = ras_json_str(ers, "referral_type");
	r->request_context = ras_json_str(ers, "request_context");

	r->patient.nhs_number = ras_json_str(pat, "nhs_number");
	r->patient.nhs_number_status = nhsno_status_from(ras_json_str(pat, "nhs_number_status"));
	r->patient.nhs_verification = ras_json_str(pat, "nhs_verification");
	if (ras_json_str(pat, "birth_date")) {
		if (ras_date_parse(ras_json_str(pat, "birth_date"), &r->patient.birth_date) < 0)
			return ras_error_code(RAS_EINVALID, "stored referral has an invalid birth_date");
		r->patient.has_birth_date = true;
	}
	r->patient.family = ras_json_str(pat, "family");
	r->patient.given = ras_json_str(pat, "given");
	r->patient.prefix = ras_json_str(pat, "prefix");
	r->patient.gender = ras_json_str(pat, "gender");
	r->patient.restricted = json_is_true(json_object_get(pat, "restricted"));
	r->patient.postcode = r->patient.restricted ? NULL : ras_json_str(pat, "postcode");
	r->patient.practice_ods = ras_json_str(pat, "practice_ods");
	r->patient.practice_name = ras_json_str(pat, "practice_name");

	r->referrer.name = ras_json_str(ref, "name");
	r->referrer.sds_user_id = ras_json_str(ref, "sds_user_id");
	r->referrer.sds_role_profile_id = ras_json_str(ref, "sds_role_profile_id");
	r->referrer.professional_id = ras_json_str(ref, "professional_id");
	r->referrer.org_ods = ras_json_str(ref, "org_ods");
	r->referrer.org_name = ras_json_str(ref, "org_name");
	r->referrer.role_code = ras_json_str(ref, "role_code");

	if ((x = ras_json_obj(doc, "form")) != NULL) {
		if ((err = ras_form_from_json(a, x, &r->form)) < 0)
			return err;
		r->has_form = true;
	}
	{
		json_t *of = ras_json_arr(doc, "other_forms"), *dj = ras_json_arr(doc, "doubts");

		r->other_forms = ras_arena_calloc(a, json_array_size(of) + 1, sizeof(*r->other_forms));
		r->doubts = ras_arena_calloc(a, json_array_size(dj) + 1, sizeof(char *));
		if (r->other_forms == NULL || r->doubts == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(of, i, x) {
			if ((err = ras_form_from_json(a, x, &r->other_forms[r->n_other_forms])) < 0)
				return err;
			r->n_other_forms++;
		}
		json_array_foreach(dj, i, x)
			if (json_string_value(x))
				r->doubts[r->n_doubts++] = json_string_value(x);
	}
	r->conditions = ras_arena_calloc(a, json_array_size(conds) + 1, sizeof(*r->conditions));
	r->attachments = ras_arena_calloc(a, json_array_size(atts) + 1, sizeof(*r->attachments));
	r->related_ubrns = ras_arena_calloc(a, json_array_size(rel) + 1, sizeof(char *));
	if (!r->conditions || !r->attachments || !r->related_ubrns)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(conds, i, x) {
		struct ras_condition *c = &r->conditions[i];

		c->system = ras_json_str(x, "system");
		c->code = ras_json_str(x, "code");
		c->display = ras_json_str(x, "display");
		c->clinical_status = ras_json_str(x, "clinical_status");
	}
	r->n_conditions = json_array_size(conds);
	json_array_foreach(atts, i, x) {
		struct ras_attachment *at = &r->attachments[i];
		int64_t sz = -1;

		at->ubrn = r->ubrn;
		at->id = ras_json_str(x, "id");
		at->url = ras_json_str(x, "url");
		at->content_type = ras_json_str(x, "content_type");
		at->title = ras_json_str(x, "title");
		at->availability = ras_json_str(x, "availability");
		at->type = ras_json_str(x, "type");
		at->created = ras_json_str(x, "created");
		at->attached_by = ras_json_str(x, "attached_by");
		at->attached_by_org = ras_json_str(x, "attached_by_org");
		at->size = ras_json_int(x, "size", &sz) ? sz : -1;
	}
	r->n_attachments = json_array_size(atts);
	json_array_foreach(rel, i, x)
		r->related_ubrns[i] = json_string_value(x);
	r->n_related = json_array_size(rel);
	return 0;
}
