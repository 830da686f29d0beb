/*
 * intake_fhir: FHIR R4 referral Bundles and QuestionnaireResponses into the
 * normalised model (see include/ras/intake.h).
 *
 * A referral Bundle (collection, message or transaction) holds exactly one
 * ServiceRequest (for a message, the MessageHeader focus), its subject
 * Patient, the requester (PractitionerRole, Practitioner or Organization),
 * the referral form (the QuestionnaireResponse that answers rasd's form,
 * however it is linked: see find_form), other QuestionnaireResponses, and
 * optional Conditions.  References are
 * fullUrls ("urn:uuid:…"), relative ("Patient/123") or absolute.  A
 * reference that names something not in the Bundle is an error: a referral
 * with a dangling reference is incomplete, and guessing is not safe.
 */
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/intake.h"
#include "ras/limits.h"

static int
check_id(const char *what, const char *s)
{
	if (s && strlen(s) > RAS_ID_MAX)
		return ras_error_code(RAS_ETOOBIG, "%s is longer than %d characters", what, RAS_ID_MAX);
	return 0;
}

static int
check_text(const char *what, const char *s)
{
	if (s && strlen(s) > RAS_STRING_MAX)
		return ras_error_code(RAS_ETOOBIG, "%s is longer than %u characters", what,
		    RAS_STRING_MAX);
	return 0;
}

/* "Given Family" style name from a HumanName array, preferring use=official. */
static const json_t *
pick_name(const json_t *names)
{
	const json_t *n, *best = NULL;
	size_t i;

	json_array_foreach(names, i, n) {
		const char *use = ras_json_str(n, "use");

		if (best == NULL)
			best = n;
		if (use && (strcmp(use, "official") == 0 || strcmp(use, "usual") == 0)) {
			best = n;
			break;
		}
	}
	return best;
}

static const char *
join_strings(struct ras_arena *a, const json_t *arr)
{
	const json_t *s;
	const char *out = NULL;
	size_t i;

	json_array_foreach(arr, i, s) {
		const char *v = json_string_value(s);

		if (v == NULL)
			continue;
		out = out ? ras_arena_printf(a, "%s %s", out, v) : v;
	}
	return out;
}

static const char *
human_name(struct ras_arena *a, const json_t *names, const char **family, const char **given,
    const char **prefix)
{
	const json_t *n = pick_name(names);
	const char *fam, *giv, *text;

	if (n == NULL)
		return NULL;
	fam = ras_json_str(n, "family");
	giv = join_strings(a, ras_json_arr(n, "given"));
	text = ras_json_str(n, "text");
	if (family)
		*family = fam;
	if (given)
		*given = giv;
	if (prefix)
		*prefix = join_strings(a, ras_json_arr(n, "prefix"));
	if (text)
		return text;
	if (fam && giv)
		return ras_arena_printf(a, "%s %s", giv, fam);
	return fam ? fam : giv;
}

int
ras_intake_fhir_patient(struct ras_arena *a, const json_t *patient, struct ras_patient *out)
{
	const char *bd = ras_json_str(patient, "birthDate");
	json_t *ids = ras_json_arr(patient, "identifier");
	json_t *id;
	size_t i;
	int err;

	memset(out, 0, sizeof(*out));
	json_array_foreach(ids, i, id) {
		const char *sys = ras_json_str(id, "system");

		if (sys && (strcmp(sys, RAS_SYS_NHS_NUMBER) == 0 ||
		    strcmp(sys, RAS_SYS_NHS_NUMBER_STU3) == 0)) {
			json_t *ver;

			if (out->nhs_number != NULL)
				return ras_error_code(RAS_EINVALID, "Patient has more than one NHS number");
			out->nhs_number = ras_json_str(id, "value");
			ver = ras_fhir_extension(id, RAS_URL_NHS_VERIFICATION);
			if (ver)
				out->nhs_verification = ras_fhir_cc_code(ras_json_obj(ver,
				    "valueCodeableConcept"), NULL);
		}
	}
	if ((err = check_id("NHS number", out->nhs_number)) < 0)
		return err;
	out->nhs_number_status = ras_nhsno_check(out->nhs_number);
	if (bd) {
		/* A partial date (YYYY or YYYY-MM) is valid FHIR but gives no age:
		 * it is kept as "no birth date" for the rules. */
		if (strlen(bd) == 10) {
			if (ras_date_parse(bd, &out->birth_date) < 0)
				return ras_error_code(RAS_EINVALID, "Patient.birthDate is not a valid date");
			out->has_birth_date = true;
		} else if (!(strlen(bd) == 4 || strlen(bd) == 7)) {
			return ras_error_code(RAS_EINVALID, "Patient.birthDate is not a valid date");
		}
	}
	(void)human_name(a, ras_json_arr(patient, "name"), &out->family, &out->given, &out->prefix);
	out->gender = ras_json_str(patient, "gender");
	{
		/* A restricted record (PDS "S-flagged": confidentiality R or V in
		 * meta.security) keeps no address at all: what rasd never holds it
		 * cannot print on a letter or send to anyone. */
		json_t *sec = ras_json_arr(ras_json_obj(patient, "meta"), "security"), *c;
		size_t k;

		json_array_foreach(sec, k, c) {
			const char *code = ras_json_str(c, "code");

			if (code && (strcmp(code, "R") == 0 || strcmp(code, "V") == 0 ||
			    strcmp(code, "REDACTED") == 0))
				out->restricted = true;
		}
	}
	if (!out->restricted) {
		json_t *addr = json_array_get(ras_json_arr(patient, "address"), 0);

		out->postcode = ras_json_str(addr, "postalCode");
	}
	if ((err = check_text("Patient name", out->family)) < 0 ||
	    (err = check_text("Patient name", out->given)) < 0)
		return err;
	return 0;
}

static void
practice_from_gp(const struct ras_fhir_bundle *b, const json_t *patient, struct ras_patient *p)
{
	json_t *gps = ras_json_arr(patient, "generalPractitioner");
	json_t *gp;
	size_t i;

	json_array_foreach(gps, i, gp) {
		const char *ref = ras_json_str(gp, "reference");
		json_t *org = NULL;
		json_t *ident = ras_json_obj(gp, "identifier");

		if (ref)
			org = b ? ras_fhir_bundle_resolve(b, ref, "Organization") : NULL;
		if (org == NULL && ref)
			org = ras_fhir_contained(patient, ref);
		if (org) {
			const char *ods = ras_fhir_identifier(org, RAS_SYS_ODS);

			if (ods) {
				p->practice_ods = ods;
				p->practice_name = ras_json_str(org, "name");
				return;
			}
		}
		/* A logical reference: {"identifier": {system: ODS, value}} */
		if (ident) {
			const char *sys = ras_json_str(ident, "system");

			if (sys && strcmp(sys, RAS_SYS_ODS) == 0) {
				p->practice_ods = ras_json_str(ident, "value");
				p->practice_name = ras_json_str(gp, "display");
				return;
			}
		}
	}
}

/* Resolve a Reference inside the bundle; a reference that is present but
 * does not resolve is an error (RAS_EINVALID), an absent one gives NULL. */
static int
must_resolve(const struct ras_fhir_bundle *b, const json_t *refobj, const char *want,
    const char *what, json_t **out)
{
	const char *ref = ras_json_str(refobj, "reference");
	json_t *r;

	*out = NULL;
	if (ref == NULL)
		return 0;
	r = ras_fhir_bundle_resolve(b, ref, NULL);
	if (r == NULL)
		return ras_error_code(RAS_EINVALID, "%s reference \"%.80s\" is not in the bundle", what,
		    ref);
	if (want && strcmp(ras_json_str(r, "resourceType"), want) != 0)
		return ras_error_code(RAS_EINVALID, "%s reference \"%.80s\" is a %s, not a %s", what, ref,
		    ras_json_str(r, "resourceType"), want);
	*out = r;
	return 0;
}

static void
org_details(const json_t *org, struct ras_referrer *ref)
{
	if (org == NULL)
		return;
	ref->org_ods = ras_fhir_identifier(org, RAS_SYS_ODS);
	ref->org_name = ras_json_str(org, "name");
}

static void
practitioner_details(struct ras_arena *a, const json_t *pr, struct ras_referrer *ref)
{
	json_t *ids = ras_json_arr(pr, "identifier");
	json_t *id;
	size_t i;

	if (pr == NULL)
		return;
	ref->name = human_name(a, ras_json_arr(pr, "name"), NULL, NULL, NULL);
	ref->sds_user_id = ras_fhir_identifier(pr, RAS_SYS_SDS_USER);
	json_array_foreach(ids, i, id) {
		const char *sys = ras_json_str(id, "system");

		if (sys && strcmp(sys, RAS_SYS_SDS_USER) != 0 && ref->professional_id == NULL)
			ref->professional_id = ras_arena_printf(a, "%s|%s", sys,
			    ras_json_str(id, "value") ? ras_json_str(id, "value") : "");
	}
}

static int
requester(struct ras_arena *a, const struct ras_fhir_bundle *b, const json_t *sr,
    struct ras_referrer *ref)
{
	json_t *req = ras_json_obj(sr, "requester");
	json_t *r;
	const char *type;
	int err;

	if ((err = must_resolve(b, req, NULL, "ServiceRequest.requester", &r)) < 0)
		return err;
	if (r == NULL)
		return 0;
	type = ras_json_str(r, "resourceType");
	if (strcmp(type, "PractitionerRole") == 0) {
		json_t *pr, *org;

		if ((err = must_resolve(b, ras_json_obj(r, "practitioner"), "Practitioner",
		    "PractitionerRole.practitioner", &pr)) < 0 ||
		    (err = must_resolve(b, ras_json_obj(r, "organization"), "Organization",
		    "PractitionerRole.organization", &org)) < 0)
			return err;
		practitioner_details(a, pr, ref);
		org_details(org, ref);
		if (ref->org_ods == NULL) {
			/* logical organisation reference */
			json_t *ident = ras_json_obj(ras_json_obj(r, "organization"), "identifier");
			const char *sys = ras_json_str(ident, "system");

			if (sys && strcmp(sys, RAS_SYS_ODS) == 0)
				ref->org_ods = ras_json_str(ident, "value");
		}
		ref->sds_role_profile_id = ras_fhir_identifier(r, RAS_SYS_SDS_ROLE);
		ref->role_code = ras_fhir_cc_code(json_array_get(ras_json_arr(r, "code"), 0), NULL);
	} else if (strcmp(type, "Practitioner") == 0) {
		practitioner_details(a, r, ref);
	} else if (strcmp(type, "Organization") == 0) {
		org_details(r, ref);
	} else {
		return ras_error_code(RAS_EINVALID,
		    "ServiceRequest.requester is a %s, not a PractitionerRole, Practitioner or Organization",
		    type);
	}
	if ((err = check_id("requester ODS code", ref->org_ods)) < 0 ||
	    (err = check_id("requester SDS user id", ref->sds_user_id)) < 0)
		return err;
	return 0;
}

/* --- QuestionnaireResponse ---------------------------------------------- */

struct flat {
	struct ras_arena *a;
	struct ras_answer *v;
	size_t n, cap;
};

static int
push_answer(struct flat *f, struct ras_answer *ans)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 32;
		struct ras_answer *nv;

		if (cap > RAS_FORM_ANSWERS_MAX)
			cap = RAS_FORM_ANSWERS_MAX;
		if (f->n >= cap)
			return ras_error_code(RAS_ETOOBIG, "form has more than %d answers",
			    RAS_FORM_ANSWERS_MAX);
		nv = ras_arena_calloc(f->a, cap, sizeof(*nv));
		if (nv == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if (f->n)
			memcpy(nv, f->v, f->n * sizeof(*nv));
		f->v = nv;
		f->cap = cap;
	}
	f->v[f->n++] = *ans;
	return 0;
}

static int
read_value(const json_t *answer, const char *link_id, struct ras_answer *out)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)answer, k, v) {
		if (strncmp(k, "value", 5) != 0)
			continue;
		if (strcmp(k, "valueBoolean") == 0) {
			if (!json_is_boolean(v))
				goto bad;
			out->type = RAS_ANSWER_BOOLEAN;
			out->b = json_is_true(v);
		} else if (strcmp(k, "valueInteger") == 0) {
			if (!json_is_integer(v))
				goto bad;
			out->type = RAS_ANSWER_INTEGER;
			out->i = (int64_t)json_integer_value(v);
		} else if (strcmp(k, "valueDecimal") == 0) {
			if (!json_is_number(v))
				goto bad;
			out->type = RAS_ANSWER_DECIMAL;
			out->d = json_number_value(v);
		} else if (strcmp(k, "valueString") == 0 || strcmp(k, "valueText") == 0 ||
		    strcmp(k, "valueUri") == 0) {
			if (!json_is_string(v))
				goto bad;
			out->type = RAS_ANSWER_STRING;
			out->s = json_string_value(v);
			if (strlen(out->s) > RAS_STRING_MAX)
				return ras_error_code(RAS_ETOOBIG, "answer to \"%.60s\" is longer than %u characters",
				    link_id, RAS_STRING_MAX);
		} else if (strcmp(k, "valueDate") == 0 || strcmp(k, "valueDateTime") == 0) {
			if (!json_is_string(v))
				goto bad;
			out->type = RAS_ANSWER_DATE;
			out->s = json_string_value(v);
		} else if (strcmp(k, "valueCoding") == 0) {
			if (!json_is_object(v))
				goto bad;
			out->type = RAS_ANSWER_CODING;
			out->system = ras_json_str(v, "system");
			out->code = ras_json_str(v, "code");
			out->s = ras_json_str(v, "display");
		} else {
			out->type = RAS_ANSWER_OTHER;
			out->s = k;
		}
		return 1;
	}
	return 0;
bad:
	return ras_error_code(RAS_EINVALID, "answer to \"%.60s\" has a %s that is not of that type",
	    link_id, k);
}

static int flatten_items(struct flat *f, const json_t *items, const char *group, int gidx,
    int depth);

static int
flatten_item(struct flat *f, const json_t *item, const char *group, int gidx, int depth,
    int *group_counts_for_this)
{
	const char *link_id = ras_json_str(item, "linkId");
	json_t *answers = ras_json_arr(item, "answer");
	json_t *children = ras_json_arr(item, "item");
	json_t *ans;
	size_t i;
	int err;

	if (link_id == NULL || *link_id == '\0')
		return ras_error_code(RAS_EINVALID, "QuestionnaireResponse item without a linkId");
	if ((err = check_id("linkId", link_id)) < 0)
		return err;
	json_array_foreach(answers, i, ans) {
		struct ras_answer a = { .link_id = link_id, .group = group, .group_index = gidx };
		int got;

		if ((got = read_value(ans, link_id, &a)) < 0)
			return got;
		if (got && (err = push_answer(f, &a)) < 0)
			return err;
		/* Items nested under an answer belong to this item as a group. */
		if (ras_json_arr(ans, "item") &&
		    (err = flatten_items(f, ras_json_arr(ans, "item"), link_id, (int)i, depth + 1)) < 0)
			return err;
	}
	if (children) {
		/* A group item: each occurrence of the same linkId is a new index. */
		int idx = (*group_counts_for_this)++;

		if ((err = flatten_items(f, children, link_id, idx, depth + 1)) < 0)
			return err;
	}
	return 0;
}

struct gcount {
	const char *link_id;
	int n;
};

static int
flatten_items(struct flat *f, const json_t *items, const char *group, int gidx, int depth)
{
	struct gcount counts[64];
	size_t ncounts = 0, i;
	json_t *item;
	int err;

	if (depth > 16)
		return ras_error_code(RAS_EINVALID, "QuestionnaireResponse items nested too deeply");
	json_array_foreach(items, i, item) {
		const char *lid = ras_json_str(item, "linkId");
		int *cnt = NULL, dummy = 0;

		for (size_t k = 0; lid && k < ncounts; k++)
			if (strcmp(counts[k].link_id, lid) == 0)
				cnt = &counts[k].n;
		if (cnt == NULL && lid && ncounts < sizeof(counts) / sizeof(counts[0])) {
			counts[ncounts].link_id = lid;
			counts[ncounts].n = 0;
			cnt = &counts[ncounts++].n;
		}
		if ((err = flatten_item(f, item, group, gidx, depth, cnt ? cnt : &dummy)) < 0)
			return err;
	}
	return 0;
}

/* R4 names the Questionnaire by canonical URL; STU3 (e-RS) by Reference. */
static const char *
questionnaire_of(const json_t *qr)
{
	const char *q = ras_json_str(qr, "questionnaire");

	return q ? q : ras_json_str(ras_json_obj(qr, "questionnaire"), "reference");
}

int
ras_intake_fhir_form(struct ras_arena *a, const json_t *qr, struct ras_form *out)
{
	const char *q = questionnaire_of(qr);
	struct flat f = { .a = a };
	const char *bar;
	int err;

	memset(out, 0, sizeof(*out));
	if (q) {
		if (strlen(q) > 1024)
			return ras_error_code(RAS_ETOOBIG, "QuestionnaireResponse.questionnaire is too long");
		bar = strchr(q, '|');
		out->questionnaire = bar ? ras_arena_strndup(a, q, (size_t)(bar - q)) : q;
		out->version = bar ? bar + 1 : NULL;
	}
	out->status = ras_json_str(qr, "status");
	out->authored = ras_json_str(qr, "authored");
	if ((err = flatten_items(&f, ras_json_arr(qr, "item"), NULL, 0, 0)) < 0) {
		ras_error_context("referral form");
		return err;
	}
	out->n_answers = f.n;
	out->answers = f.v;
	{
		/* Cells of an XML form its map could not place (xmlform.c). */
		json_t *exts = ras_json_arr(qr, "extension"), *x;
		size_t i, n = 0;

		out->unmapped = ras_arena_calloc(a, json_array_size(exts) + 1, sizeof(char *));
		if (out->unmapped == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(exts, i, x) {
			const char *url = ras_json_str(x, "url"), *v = ras_json_str(x, "valueString");

			if (url && strcmp(url, RAS_URL_UNMAPPED_CELL) == 0 && v) {
				if ((err = check_id("unmapped form cell", v)) < 0)
					return err;
				out->unmapped[n++] = v;
			}
		}
		out->n_unmapped = n;
	}
	return 0;
}

/* --- Bundle ---------------------------------------------------------------- */

static enum ras_priority
r4_priority(const char *p)
{
	if (p == NULL)
		return RAS_PRIORITY_UNKNOWN;
	if (strcmp(p, "routine") == 0)
		return RAS_PRIORITY_ROUTINE;
	if (strcmp(p, "urgent") == 0 || strcmp(p, "asap") == 0 || strcmp(p, "stat") == 0)
		return RAS_PRIORITY_URGENT;
	return RAS_PRIORITY_UNKNOWN;
}

static int
find_service_request(const struct ras_fhir_bundle *b, json_t **out)
{
	json_t *sr = NULL;
	size_t n;

	if (b->type && strcmp(b->type, "message") == 0) {
		json_t *mh = b->n ? b->entries[0].resource : NULL;

		if (mh == NULL || strcmp(b->entries[0].type, "MessageHeader") != 0)
			return ras_error_code(RAS_EINVALID, "message bundle does not start with a MessageHeader");
		{
			json_t *focus = ras_json_arr(mh, "focus");
			json_t *fo;
			size_t i;

			json_array_foreach(focus, i, fo) {
				json_t *r = ras_fhir_bundle_resolve(b, ras_json_str(fo, "reference"), NULL);

				if (r == NULL)
					return ras_error_code(RAS_EINVALID,
					    "MessageHeader.focus reference \"%.80s\" is not in the bundle",
					    ras_json_str(fo, "reference") ? ras_json_str(fo, "reference") : "");
				if (strcmp(ras_json_str(r, "resourceType"), "ServiceRequest") == 0) {
					*out = r;
					return 0;
				}
			}
		}
	}
	n = ras_fhir_bundle_count(b, "ServiceRequest", &sr);
	if (n == 0)
		return ras_error_code(RAS_EINVALID, "bundle holds no ServiceRequest: not a referral");
	if (n > 1)
		return ras_error_code(RAS_EINVALID,
		    "bundle holds %zu ServiceRequests; rasd takes one referral per bundle", n);
	*out = sr;
	return 0;
}

/* Add a QuestionnaireResponse to the candidates once. */
static int
add_candidate(struct ras_arena *a, json_t ***v, size_t *n, size_t *cap, json_t *qr)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == qr)
			return 0;
	if (*n >= RAS_FORMS_PER_REFERRAL_MAX)
		return ras_error_code(RAS_ETOOBIG, "referral carries more than %d QuestionnaireResponses",
		    RAS_FORMS_PER_REFERRAL_MAX);
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		json_t **nv = ras_arena_calloc(a, nc, sizeof(*nv));

		if (nv == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if (*n)
			memcpy(nv, *v, *n * sizeof(*nv));
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = qr;
	return 0;
}

static bool
is_qr(const json_t *res)
{
	const char *t = ras_json_str(res, "resourceType");

	return t && strcmp(t, "QuestionnaireResponse") == 0;
}

static int
add_doubt(struct ras_arena *a, struct ras_referral *r, const char *why)
{
	const char **nv = ras_arena_calloc(a, r->n_doubts + 1, sizeof(*nv));

	if (nv == NULL || why == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (r->n_doubts)
		memcpy(nv, r->doubts, r->n_doubts * sizeof(*nv));
	nv[r->n_doubts++] = why;
	r->doubts = nv;
	return 0;
}

/*
 * The referral form is found by what it answers, not by how it is linked:
 * every QuestionnaireResponse the bundle carries (linked from
 * supportingInfo, pointing back with basedOn, contained in the request or
 * in any other resource, or just an entry) is a candidate, and the one
 * whose questionnaire is rasd's referral form (any version) is the form.
 * The others are kept (other_forms) for the safety net and for people.
 * Two rasd forms, a response that names no questionnaire, or one that
 * cannot be read are doubts: intake records them and the safety net sends
 * the referral to a clinician.
 */
static int
find_form(struct ras_arena *a, const struct ras_fhir_bundle *b, const json_t *sr, const char *sr_url,
    struct ras_referral *r)
{
	json_t *infos = ras_json_arr(sr, "supportingInfo");
	json_t *info, **cand = NULL;
	size_t i, n = 0, cap = 0;
	int err;

	(void)sr_url;
	/* Linked first (their order is the referrer's), then the rest. */
	json_array_foreach(infos, i, info) {
		const char *ref = ras_json_str(info, "reference");
		json_t *res;

		if (ref && ref[0] == '#') {
			res = ras_fhir_contained(sr, ref);
			if (res == NULL)
				return ras_error_code(RAS_EINVALID,
				    "ServiceRequest.supportingInfo reference \"%.80s\" is not contained", ref);
		} else if ((err = must_resolve(b, info, NULL, "ServiceRequest.supportingInfo", &res)) < 0) {
			return err;
		}
		if (res && is_qr(res) && (err = add_candidate(a, &cand, &n, &cap, res)) < 0)
			return err;
	}
	for (size_t k = 0; k < b->n; k++) {
		json_t *res = b->entries[k].resource, *c;
		size_t j;

		if (strcmp(b->entries[k].type, "QuestionnaireResponse") == 0 &&
		    (err = add_candidate(a, &cand, &n, &cap, res)) < 0)
			return err;
		json_array_foreach(ras_json_arr(res, "contained"), j, c)
			if (is_qr(c) && (err = add_candidate(a, &cand, &n, &cap, c)) < 0)
				return err;
	}
	return ras_intake_fhir_forms(a, (const json_t *const *)cand, n, r);
}

int
ras_intake_fhir_forms(struct ras_arena *a, const json_t *const *cand, size_t n,
    struct ras_referral *r)
{
	size_t i, n_rasd = r->has_form ? 1 : 0, n_other = 0;
	int err;

	if (n == 0)
		return 0;
	r->other_forms = ras_arena_calloc(a, n, sizeof(*r->other_forms));
	if (r->other_forms == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		const char *q = questionnaire_of(cand[i]);
		struct ras_form f;

		ras_error_clear();
		if ((err = ras_intake_fhir_form(a, cand[i], &f)) < 0) {
			if (err == RAS_ENOMEM)
				return err;
			if (ras_referral_is_rasd_form(q) && n == 1)
				return err;     /* the form itself is unreadable: rejected, as before */
			if ((err = add_doubt(a, r, ras_arena_printf(a,
			    "QuestionnaireResponse %zu of the referral cannot be read: %s", i + 1,
			    ras_error_last()))) < 0)
				return err;
			continue;
		}
		if (ras_referral_is_rasd_form(q)) {
			if (n_rasd++ == 0) {
				r->form = f;
				r->has_form = true;
				continue;
			}
			if ((err = add_doubt(a, r, ras_arena_printf(a,
			    "the referral carries %zu referral forms (%s)", n_rasd, RAS_REFERRAL_FORM_URL))) < 0)
				return err;
		} else if (q == NULL) {
			if ((err = add_doubt(a, r, ras_arena_printf(a,
			    "QuestionnaireResponse %zu of the referral does not say which Questionnaire it answers",
			    i + 1))) < 0)
				return err;
		}
		r->other_forms[n_other++] = f;
	}
	r->n_other_forms = n_other;
	if (n_rasd == 0 && n_other > 0 &&
	    (err = add_doubt(a, r, "the referral carries QuestionnaireResponses but none answers rasd's "
	    "referral form")) < 0)
		return err;
	return 0;
}

static int
conditions(struct ras_arena *a, const struct ras_fhir_bundle *b, struct ras_referral *r)
{
	size_t n = ras_fhir_bundle_count(b, "Condition", NULL), k = 0;

	if (n == 0)
		return 0;
	r->conditions = ras_arena_calloc(a, n, sizeof(*r->conditions));
	if (r->conditions == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n; i++) {
		json_t *c = b->entries[i].resource;
		json_t *code = ras_json_obj(c, "code");
		json_t *coding = json_array_get(ras_json_arr(code, "coding"), 0);
		struct ras_condition *cond;

		if (strcmp(b->entries[i].type, "Condition") != 0)
			continue;
		cond = &r->conditions[k++];
		cond->system = ras_json_str(coding, "system");
		cond->code = ras_json_str(coding, "code");
		cond->display = ras_fhir_cc_text(code);
		cond->clinical_status = ras_fhir_cc_code(ras_json_obj(c, "clinicalStatus"), NULL);
	}
	r->n_conditions = k;
	return 0;
}

static const char *
entry_url_of(const struct ras_fhir_bundle *b, const json_t *res)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->entries[i].resource == res)
			return b->entries[i].full_url;
	return NULL;
}

int
ras_intake_fhir_bundle(struct ras_arena *a, json_t *bundle, struct ras_referral *r)
{
	struct ras_fhir_bundle b;
	json_t *sr = NULL, *patient = NULL;
	const char *s;
	int err;

	memset(r, 0, sizeof(*r));
	json_incref(bundle);
	if ((err = ras_json_arena_own(a, bundle)) < 0)
		return err;
	if ((s = ras_json_str(bundle, "type")) == NULL)
		return ras_error_code(RAS_EINVALID, "Bundle has no type");
	if (strcmp(s, "collection") != 0 && strcmp(s, "message") != 0 &&
	    strcmp(s, "transaction") != 0)
		return ras_error_code(RAS_EINVALID,
		    "Bundle of type \"%.40s\" is not a referral (expected collection, message or transaction)",
		    s);
	if ((err = ras_fhir_bundle_index(a, bundle, &b)) < 0 ||
	    (err = find_service_request(&b, &sr)) < 0)
		return err;

	r->source = RAS_PAYLOAD_FHIR_BUNDLE;
	r->ubrn = ras_fhir_identifier(sr, RAS_SYS_UBRN);
	{
		const char *ver = ras_json_str(ras_json_obj(sr, "meta"), "versionId");

		r->version = 1;
		if (ver) {
			char *end;
			long long v = strtoll(ver, &end, 10);

			if (*ver == '\0' || *end != '\0' || v < 1 || v > 1000000000)
				return ras_error_code(RAS_EINVALID,
				    "ServiceRequest.meta.versionId \"%.20s\" is not a positive integer", ver);
			r->version = v;
		}
	}
	{
		/* Local identity when there is no UBRN: the first other identifier,
		 * else the ServiceRequest's fullUrl or id. */
		json_t *ids = ras_json_arr(sr, "identifier");
		json_t *id;
		size_t i;

		json_array_foreach(ids, i, id) {
			const char *sys = ras_json_str(id, "system"), *val = ras_json_str(id, "value");

			if (sys && val && strcmp(sys, RAS_SYS_UBRN) != 0) {
				r->local_id = ras_arena_printf(a, "%s|%s", sys, val);
				break;
			}
		}
		if (r->local_id == NULL)
			r->local_id = entry_url_of(&b, sr);
		if (r->local_id == NULL && ras_json_str(sr, "id"))
			r->local_id = ras_arena_printf(a, "ServiceRequest/%s", ras_json_str(sr, "id"));
	}
	if ((err = check_id("UBRN", r->ubrn)) < 0)
		return err;
	if (r->local_id && strlen(r->local_id) > 1024)
		return ras_error_code(RAS_ETOOBIG, "ServiceRequest identifier is too long");
	if (r->ubrn == NULL && r->local_id == NULL)
		return ras_error_code(RAS_EINVALID,
		    "ServiceRequest has neither a UBRN nor any identifier, fullUrl or id");

	r->status = ras_json_str(sr, "status");
	r->priority_raw = ras_json_str(sr, "priority");
	r->priority = r4_priority(r->priority_raw);
	if ((s = ras_json_str(sr, "authoredOn")) != NULL) {
		if (ras_time_parse(s, false, &r->authored) < 0) {
			/* A date-only authoredOn is allowed by FHIR. */
			struct ras_date d;

			if (ras_date_parse(s, &d) < 0)
				return ras_error_code(RAS_EINVALID, "ServiceRequest.authoredOn is not a valid dateTime");
			r->authored = ras_time_uk_midnight(&d);
		}
		r->has_authored = true;
	}
	{
		json_t *performers = ras_json_arr(sr, "performer");
		json_t *p;
		size_t i;

		json_array_foreach(performers, i, p) {
			json_t *ident = ras_json_obj(p, "identifier");
			const char *sys = ras_json_str(ident, "system");
			json_t *res = ras_fhir_bundle_resolve(&b, ras_json_str(p, "reference"), NULL);

			if (sys && strcmp(sys, RAS_SYS_ERS_SERVICE) == 0)
				r->ers_service_id = ras_json_str(ident, "value");
			else if (res && ras_fhir_identifier(res, RAS_SYS_ERS_SERVICE))
				r->ers_service_id = ras_fhir_identifier(res, RAS_SYS_ERS_SERVICE);
		}
		if ((err = check_id("e-RS service id", r->ers_service_id)) < 0)
			return err;
	}
	{
		json_t *notes = ras_json_arr(sr, "note");
		json_t *reason = json_array_get(ras_json_arr(sr, "reasonCode"), 0);

		r->reason_text = reason ? ras_fhir_cc_text(reason) : NULL;
		if (r->reason_text == NULL && json_array_size(notes))
			r->reason_text = ras_json_str(json_array_get(notes, 0), "text");
		if ((err = check_text("ServiceRequest reason", r->reason_text)) < 0)
			return err;
	}

	if (ras_json_obj(sr, "subject") == NULL)
		return ras_error_code(RAS_EINVALID, "ServiceRequest has no subject");
	if ((err = must_resolve(&b, ras_json_obj(sr, "subject"), "Patient", "ServiceRequest.subject",
	    &patient)) < 0)
		return err;
	if (patient == NULL)
		return ras_error_code(RAS_EINVALID, "ServiceRequest.subject does not reference a Patient");
	if ((err = ras_intake_fhir_patient(a, patient, &r->patient)) < 0)
		return err;
	practice_from_gp(&b, patient, &r->patient);
	if ((err = check_id("registered practice ODS code", r->patient.practice_ods)) < 0)
		return err;
	if ((err = requester(a, &b, sr, &r->referrer)) < 0 ||
	    (err = find_form(a, &b, sr, entry_url_of(&b, sr), r)) < 0 ||
	    (err = conditions(a, &b, r)) < 0)
		return err;
	return 0;
}
