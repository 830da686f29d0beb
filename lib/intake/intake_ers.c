/*
 * intake_ers: e-RS FHIR STU3 payloads into the normalised model
 * (reference/ers/NOTES.md §7).
 *
 * - A008 worklist `List`: one referral stub per entry (UBRN, version,
 *   priority, service, NHS number from the contained Patient or an inline
 *   identifier, referral type).  Both RFR and ASI item extensions are read;
 *   the caller decides which referral types it keeps.
 * - A005 `ReferralRequest`: UBRN = id, version = meta.versionId, state,
 *   priority, pathway start, contained DocumentReference attachments and
 *   related UBRNs from supportingInfo.
 * - `DocumentReference`: one attachment's metadata.
 * Code systems with the `_baseUrl_` placeholder are matched by suffix and
 * unknown codes are kept as they are (NOTES §14 item 11).
 */
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/intake.h"
#include "ras/limits.h"

#define ERS_SD "https://fhir.nhs.uk/STU3/StructureDefinition/"
#define EXT_RFR_ITEM ERS_SD "Extension-eRS-ReferralsforReview-WorkListItem-1"
#define EXT_ASI_ITEM ERS_SD "Extension-eRS-AppointmentSlotIssues-WorkListItem-1"

static enum ras_priority
ers_priority(const char *p)
{
	if (p == NULL)
		return RAS_PRIORITY_UNKNOWN;
	if (strcmp(p, "ROUTINE") == 0)
		return RAS_PRIORITY_ROUTINE;
	if (strcmp(p, "URGENT") == 0)
		return RAS_PRIORITY_URGENT;
	if (strcmp(p, "TWO_WEEK_WAIT") == 0)
		return RAS_PRIORITY_TWO_WEEK_WAIT;
	return RAS_PRIORITY_UNKNOWN;
}

static int
check_id(const char *what, const char *s)
{
	if (s && strlen(s) > RAS_ID_MAX)
		return ras_error_code(RAS_ETOOBIG, "%s is longer than %d characters", what, RAS_ID_MAX);
	return 0;
}

/* Sub-extension of a complex extension by its (short) url. */
static json_t *
sub(const json_t *ext, const char *name)
{
	return ras_fhir_extension(ext, name);
}

static int
parse_instant(const char *s, bool *has, int64_t *out, const char *what)
{
	if (s == NULL)
		return 0;
	if (ras_time_parse(s, false, out) < 0)
		return ras_error_code(RAS_EINVALID, "%s \"%.40s\" is not a valid dateTime", what, s);
	*has = true;
	return 0;
}

static const char *
ubrn_from_reference(const char *ref)
{
	static const char prefix[] = "ReferralRequest/";

	if (ref == NULL || strncmp(ref, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	ref += sizeof(prefix) - 1;
	return *ref && strchr(ref, '/') == NULL ? ref : NULL;
}

static int
set_nhsno(struct ras_patient *p, const char *nhs)
{
	int err;

	if ((err = check_id("NHS number", nhs)) < 0)
		return err;
	p->nhs_number = nhs;
	p->nhs_number_status = ras_nhsno_check(nhs);
	return 0;
}

static int
worklist_item(const json_t *list, const json_t *entry, size_t idx,
    struct ras_referral *r)
{
	json_t *item = ras_fhir_extension(entry, EXT_RFR_ITEM);
	json_t *x;
	bool asi = false;
	int err;

	memset(r, 0, sizeof(*r));
	r->source = RAS_PAYLOAD_ERS_WORKLIST;
	if (item == NULL) {
		item = ras_fhir_extension(entry, EXT_ASI_ITEM);
		asi = item != NULL;
	}
	if (item == NULL)
		return ras_error_code(RAS_EINVALID,
		    "worklist entry %zu is not a referrals-for-review or appointment-slot-issues item "
		    "(referrer worklists are not taken)", idx);
	r->ubrn = ubrn_from_reference(ras_json_str(ras_json_obj(entry, "item"), "reference"));
	if (r->ubrn == NULL)
		return ras_error_code(RAS_EINVALID,
		    "worklist entry %zu item is not a ReferralRequest/{ubrn} reference", idx);
	if ((err = check_id("UBRN", r->ubrn)) < 0)
		return err;

	if ((x = sub(item, "referralRequestVersion")) != NULL) {
		json_t *v = json_object_get(x, "valueInteger");

		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return ras_error_code(RAS_EINVALID, "worklist entry %zu has an invalid referralRequestVersion",
			    idx);
		r->version = (int64_t)json_integer_value(v);
	}
	if ((x = sub(item, "priority")) != NULL) {
		r->priority_raw = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);
		r->priority = ers_priority(r->priority_raw);
	}
	if ((x = sub(item, "specialty")) != NULL)
		r->specialty = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);
	if ((x = sub(item, "referralType")) != NULL)
		r->ers_referral_type = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);
	else if (asi)
		r->ers_referral_type = "APPOINTMENT_SLOT_ISSUE";
	if ((x = sub(item, "requestContextStatus")) != NULL)
		r->request_context = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);
	if ((x = sub(item, "service")) != NULL) {
		json_t *ref = ras_json_obj(x, "valueReference");

		r->ers_service_id = ras_fhir_identifier(ref, RAS_SYS_ERS_SERVICE);
		r->ers_service_name = ras_json_str(ref, "display");
		if ((err = check_id("e-RS service id", r->ers_service_id)) < 0)
			return err;
	}
	if ((err = parse_instant(ras_json_str(sub(item, "eReferralPathwayStart"), "valueDateTime"),
	    &r->has_pathway_start, &r->pathway_start, "eReferralPathwayStart")) < 0)
		return err;
	{
		json_t *first = sub(item, "clinicalInfoFirstSubmitted");
		json_t *recv = sub(item, "ubrnReceived");
		const char *s = ras_json_str(first, "valueDateTime");

		if (s == NULL)
			s = ras_json_str(recv, "valueDateTime");
		if ((err = parse_instant(s, &r->has_authored, &r->authored, "clinicalInfoFirstSubmitted")) < 0)
			return err;
	}
	if ((x = sub(item, "patient")) != NULL) {
		json_t *ref = ras_json_obj(x, "valueReference");
		const char *cref = ras_json_str(ref, "reference");
		const char *nhs = NULL;

		if (cref) {
			json_t *pat = ras_fhir_contained(list, cref);

			if (pat == NULL)
				return ras_error_code(RAS_EINVALID,
				    "worklist entry %zu patient reference \"%.60s\" is not contained in the list",
				    idx, cref);
			nhs = ras_fhir_identifier(pat, RAS_SYS_NHS_NUMBER_STU3);
			if (nhs == NULL)
				nhs = ras_fhir_identifier(pat, RAS_SYS_NHS_NUMBER);
		} else {
			nhs = ras_fhir_identifier(ref, RAS_SYS_NHS_NUMBER_STU3);
			if (nhs == NULL)
				nhs = ras_fhir_identifier(ref, RAS_SYS_NHS_NUMBER);
		}
		if ((err = set_nhsno(&r->patient, nhs)) < 0)
			return err;
	} else {
		r->patient.nhs_number_status = RAS_NHSNO_MISSING;
	}
	return 0;
}

int
ras_intake_ers_worklist(struct ras_arena *a, json_t *list, struct ras_intake *out)
{
	json_t *entries = ras_json_arr(list, "entry");
	json_t *e;
	size_t i, n = json_array_size(entries);
	int err;

	json_incref(list);
	if ((err = ras_json_arena_own(a, list)) < 0)
		return err;
	if (n > RAS_WORKLIST_ITEMS_MAX)
		return ras_error_code(RAS_ETOOBIG, "worklist has %zu entries, more than the limit of %d", n,
		    RAS_WORKLIST_ITEMS_MAX);
	out->kind = RAS_PAYLOAD_ERS_WORKLIST;
	out->referrals = ras_arena_calloc(a, n ? n : 1, sizeof(*out->referrals));
	if (out->referrals == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(entries, i, e) {
		if ((err = worklist_item(list, e, i, &out->referrals[i])) < 0)
			return err;
	}
	out->n_referrals = n;
	return 0;
}

int
ras_intake_ers_docref(struct ras_arena *a, const json_t *dr, struct ras_attachment *out)
{
	json_t *att = ras_json_obj(json_array_get(ras_json_arr(dr, "content"), 0), "attachment");
	json_t *x;
	int err;

	(void)a;
	memset(out, 0, sizeof(*out));
	out->size = -1;
	if (att == NULL)
		return ras_error_code(RAS_EINVALID, "DocumentReference has no content.attachment");
	out->id = ras_json_str(dr, "id");
	out->url = ras_json_str(att, "url");
	out->content_type = ras_json_str(att, "contentType");
	out->title = ras_json_str(att, "title");
	out->created = ras_json_str(att, "creation");
	out->type = ras_fhir_cc_code(ras_json_obj(dr, "type"), NULL);
	if ((x = ras_fhir_extension(att, ERS_SD "Extension-eRS-AvailabilityStatus-1")) != NULL)
		out->availability = ras_json_str(ras_json_obj(x, "valueCoding"), "code");
	if ((x = ras_fhir_extension(att, ERS_SD "Extension-eRS-AttachedBy-1")) != NULL)
		out->attached_by = ras_fhir_identifier(ras_json_obj(x, "valueReference"),
		    RAS_SYS_SDS_USER_STU3);
	if ((x = ras_fhir_extension(att, ERS_SD "Extension-eRS-AttachedByOrganisation-1")) != NULL)
		out->attached_by_org = ras_fhir_identifier(ras_json_obj(x, "valueReference"), RAS_SYS_ODS);
	{
		json_t *sz = json_object_get(att, "size");

		if (sz != NULL) {
			if (!json_is_integer(sz) || json_integer_value(sz) < 0)
				return ras_error_code(RAS_EINVALID, "DocumentReference attachment size is invalid");
			out->size = (int64_t)json_integer_value(sz);
		}
	}
	if (out->url == NULL)
		return ras_error_code(RAS_EINVALID, "DocumentReference attachment has no url");
	if ((err = check_id("attachment url", out->url)) < 0 ||
	    (err = check_id("attachment id", out->id)) < 0)
		return err;
	if (out->title && strlen(out->title) > 1024)
		return ras_error_code(RAS_ETOOBIG, "attachment title is too long");
	return 0;
}

int
ras_intake_ers_referral(struct ras_arena *a, json_t *rr, struct ras_referral *r)
{
	json_t *x, *infos, *info;
	size_t i, n_docs = 0, n_rel = 0;
	const char *ver;
	int err;

	memset(r, 0, sizeof(*r));
	json_incref(rr);
	if ((err = ras_json_arena_own(a, rr)) < 0)
		return err;
	r->source = RAS_PAYLOAD_ERS_REFERRAL;
	r->ubrn = ras_json_str(rr, "id");
	if (r->ubrn == NULL || *r->ubrn == '\0')
		return ras_error_code(RAS_EINVALID, "ReferralRequest has no id (UBRN)");
	if ((err = check_id("UBRN", r->ubrn)) < 0)
		return err;
	ver = ras_json_str(ras_json_obj(rr, "meta"), "versionId");
	if (ver == NULL)
		return ras_error_code(RAS_EINVALID, "ReferralRequest has no meta.versionId");
	{
		char *end;
		long long v = strtoll(ver, &end, 10);

		if (*ver == '\0' || *end != '\0' || v < 1 || v > 1000000000)
			return ras_error_code(RAS_EINVALID, "ReferralRequest meta.versionId is not a positive integer");
		r->version = v;
	}
	r->status = ras_json_str(rr, "status");
	r->ers_request_id = ras_fhir_identifier(rr, RAS_SYS_ERS_REQUEST_ID);
	r->specialty = ras_fhir_cc_code(ras_json_obj(rr, "specialty"), NULL);
	{
		const char *nhs = ras_fhir_identifier(ras_json_obj(rr, "subject"), RAS_SYS_NHS_NUMBER_STU3);

		if (nhs == NULL)
			nhs = ras_fhir_identifier(ras_json_obj(rr, "subject"), RAS_SYS_NHS_NUMBER);
		if ((err = set_nhsno(&r->patient, nhs)) < 0)
			return err;
	}
	if ((x = ras_fhir_extension(rr, ERS_SD "Extension-eRS-ReferralPriority-1")) != NULL) {
		r->priority_raw = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);
		r->priority = ers_priority(r->priority_raw);
	}
	if ((x = ras_fhir_extension(rr, ERS_SD "Extension-eRS-ReferralState-1")) != NULL)
		r->ers_state = ras_json_str(ras_json_obj(sub(x, "state"), "valueCoding"), "code");
	if ((x = ras_fhir_extension(rr, ERS_SD "Extension-eRS-eReferralPathwayStart-1")) != NULL) {
		const char *s = ras_json_str(x, "valueInstant");

		if (s == NULL)
			s = ras_json_str(x, "valueDateTime");
		if ((err = parse_instant(s, &r->has_pathway_start, &r->pathway_start,
		    "eReferralPathwayStart")) < 0)
			return err;
	}
	if ((x = ras_fhir_extension(rr, ERS_SD "Extension-eRS-ClinicalInfoFirstSubmitted-1")) != NULL &&
	    (err = parse_instant(ras_json_str(x, "valueDateTime"), &r->has_authored, &r->authored,
	    "clinicalInfoFirstSubmitted")) < 0)
		return err;
	if ((x = ras_fhir_extension(rr, ERS_SD "Extension-eRS-ReferralShortlist-1")) != NULL) {
		json_t *sl = ras_fhir_contained(rr, ras_json_str(ras_json_obj(x, "valueReference"),
		    "reference"));
		json_t *first = json_array_get(ras_json_arr(sl, "entry"), 0);
		json_t *item = ras_json_obj(first, "item");

		r->ers_service_id = ras_fhir_identifier(item, RAS_SYS_ERS_SERVICE);
		r->ers_service_name = ras_json_str(item, "display");
		if ((err = check_id("e-RS service id", r->ers_service_id)) < 0)
			return err;
	}

	infos = ras_json_arr(rr, "supportingInfo");
	r->attachments = ras_arena_calloc(a, json_array_size(infos) + 1, sizeof(*r->attachments));
	r->related_ubrns = ras_arena_calloc(a, json_array_size(infos) + 1, sizeof(char *));
	if (r->attachments == NULL || r->related_ubrns == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(infos, i, info) {
		const char *ref = ras_json_str(info, "reference");
		const char *rel;

		if (ref == NULL)
			continue;
		if (ref[0] == '#') {
			json_t *dr = ras_fhir_contained(rr, ref);

			if (dr == NULL)
				return ras_error_code(RAS_EINVALID,
				    "ReferralRequest.supportingInfo \"%.60s\" is not contained", ref);
			/* A contained resource need not say what it is (found by fuzzing). */
			if (ras_json_str(dr, "resourceType") == NULL ||
			    strcmp(ras_json_str(dr, "resourceType"), "DocumentReference") != 0)
				continue;
			if ((err = ras_intake_ers_docref(a, dr, &r->attachments[n_docs])) < 0) {
				ras_error_context("attachment %zu", n_docs + 1);
				return err;
			}
			r->attachments[n_docs].ubrn = r->ubrn;
			n_docs++;
		} else if ((rel = ubrn_from_reference(ref)) != NULL) {
			if ((err = check_id("related UBRN", rel)) < 0)
				return err;
			r->related_ubrns[n_rel++] = rel;
		}
	}
	r->n_attachments = n_docs;
	r->n_related = n_rel;
	{
		/* A form contained in the ReferralRequest (a referring system may
		 * send it so) is found by what it answers, as in an R4 bundle; it is
		 * never dropped unseen. */
		json_t *contained = ras_json_arr(rr, "contained"), *c;
		const json_t **qrs = ras_arena_calloc(a, json_array_size(contained) + 1, sizeof(*qrs));
		size_t nq = 0;

		if (qrs == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(contained, i, c) {
			const char *t = ras_json_str(c, "resourceType");

			if (t && strcmp(t, "QuestionnaireResponse") == 0 && nq < RAS_FORMS_PER_REFERRAL_MAX)
				qrs[nq++] = c;
		}
		if ((err = ras_intake_fhir_forms(a, qrs, nq, r)) < 0)
			return err;
	}
	/* e-RS gives no requester on the ReferralRequest; the organisation that
	 * attached the referrer's documents is the referring organisation. */
	for (i = 0; i < n_docs; i++) {
		const struct ras_attachment *at = &r->attachments[i];

		if (at->type && strcmp(at->type, "REFERRER") == 0 && at->attached_by_org) {
			r->referrer.org_ods = at->attached_by_org;
			r->referrer.sds_user_id = at->attached_by;
			break;
		}
	}
	return 0;
}
