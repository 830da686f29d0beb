/* Unit tests: intake parsers on hand-made R4 bundles and the official e-RS examples. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/referral_json.h"

static struct ras_arena *A;

static int
parse_fixture(const char *rel, struct ras_intake *in)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	int err;

	ras_error_clear();
	err = ras_intake_parse(A, NULL, data, len, in);
	/* The model points into arena-owned JSON, not into `data`. */
	free(data);
	return err;
}

static int
setup(void)
{
	A = ras_arena_new();
	return A ? 0 : 1;
}

static int
teardown(void)
{
	ras_arena_free(A);
	return 0;
}

static void
r4_collection_urn(void)
{
	struct ras_intake in;
	const struct ras_referral *r;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("r4/referral-collection-urn.json", &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_FHIR_BUNDLE);
	CU_ASSERT_EQUAL_FATAL(in.n_referrals, 1);
	r = &in.referrals[0];
	CU_ASSERT_STRING_EQUAL(r->ubrn, "100000000101");
	CU_ASSERT_EQUAL(r->version, 1);
	CU_ASSERT_EQUAL(r->priority, RAS_PRIORITY_ROUTINE);
	CU_ASSERT(r->has_authored);
	CU_ASSERT_STRING_EQUAL(r->patient.nhs_number, "9990000018");
	CU_ASSERT_EQUAL(r->patient.nhs_number_status, RAS_NHSNO_OK);
	CU_ASSERT_STRING_EQUAL(r->patient.nhs_verification, "01");
	CU_ASSERT(r->patient.has_birth_date);
	CU_ASSERT(r->patient.birth_date.year == 1970 && r->patient.birth_date.month == 5 &&
	    r->patient.birth_date.day == 14);
	CU_ASSERT_STRING_EQUAL(r->patient.practice_ods, "C84009");
	CU_ASSERT_STRING_EQUAL(r->patient.family, "Example");
	CU_ASSERT_STRING_EQUAL(r->referrer.org_ods, "C84009");
	CU_ASSERT_STRING_EQUAL(r->referrer.sds_user_id, "555111222333");
	CU_ASSERT_STRING_EQUAL(r->referrer.sds_role_profile_id, "100200300400");
	CU_ASSERT_STRING_EQUAL(r->referrer.role_code, "62247001");
	CU_ASSERT_STRING_EQUAL(r->referrer.name, "Alan Jones");
	CU_ASSERT_FATAL(r->has_form);
	CU_ASSERT_STRING_EQUAL(r->form.questionnaire, "urn:rasd:questionnaire:community-pain-referral");
	CU_ASSERT_STRING_EQUAL(r->form.version, "2");
	CU_ASSERT_EQUAL(r->form.n_answers, 25);
	CU_ASSERT_EQUAL(ras_form_answer(&r->form, "pain-duration-weeks")->i, 26);
	CU_ASSERT_EQUAL(ras_form_bool(&r->form, "red-flags-screened"), 1);
	CU_ASSERT_EQUAL(ras_form_bool(&r->form, "suspected-cancer"), 0);
	CU_ASSERT_EQUAL(ras_form_bool(&r->form, "gp-consent"), -1);
	CU_ASSERT(ras_form_has_code(&r->form, "cognitive-impairment", "none"));
	CU_ASSERT_EQUAL(r->n_conditions, 1);
	CU_ASSERT_STRING_EQUAL(r->conditions[0].code, "279039007");
}

static void
r4_transaction_relative(void)
{
	struct ras_intake in;
	const struct ras_referral *r;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("r4/referral-transaction-relative.json", &in), 0);
	r = &in.referrals[0];
	CU_ASSERT_PTR_NULL(r->ubrn);
	CU_ASSERT_STRING_EQUAL(r->local_id, "https://example.org/gp-system/referral-id|REF-2026-0001");
	CU_ASSERT_STRING_EQUAL(r->patient.practice_ods, "C84001");
	/* requester is a Practitioner: no organisation from it */
	CU_ASSERT_STRING_EQUAL(r->referrer.sds_user_id, "555111222333");
	CU_ASSERT_PTR_NULL(r->referrer.org_ods);
	/* the form is found through QuestionnaireResponse.basedOn */
	CU_ASSERT(r->has_form);
	CU_ASSERT_EQUAL(r->form.n_answers, 25);
}

static void
r4_message(void)
{
	struct ras_intake in;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("r4/referral-message.json", &in), 0);
	CU_ASSERT_STRING_EQUAL(in.referrals[0].ubrn, "100000000102");
	CU_ASSERT_EQUAL(in.referrals[0].version, 2);
	CU_ASSERT_STRING_EQUAL(in.referrals[0].patient.practice_ods, "J81002");
}

static void
r4_groups_and_repeats(void)
{
	const char *qr =
	    "{\"resourceType\":\"QuestionnaireResponse\",\"status\":\"completed\","
	    "\"questionnaire\":\"urn:rasd:questionnaire:episode-summary|1\",\"item\":["
	    "{\"linkId\":\"red-flags\",\"answer\":[{\"valueCoding\":{\"code\":\"fracture\"}},"
	    "  {\"valueCoding\":{\"code\":\"infection\"}}]},"
	    "{\"linkId\":\"medication-changes\",\"item\":["
	    "  {\"linkId\":\"medication\",\"answer\":[{\"valueString\":\"Codeine\"}]},"
	    "  {\"linkId\":\"change\",\"answer\":[{\"valueCoding\":{\"code\":\"stop\"}}]}]},"
	    "{\"linkId\":\"medication-changes\",\"item\":["
	    "  {\"linkId\":\"medication\",\"answer\":[{\"valueString\":\"Amitriptyline\"}]}]}]}";
	struct ras_intake in;
	const struct ras_form *f;

	CU_ASSERT_EQUAL_FATAL(ras_intake_parse(A, NULL, qr, strlen(qr), &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_FORM);
	f = in.form;
	CU_ASSERT_STRING_EQUAL(f->version, "1");
	CU_ASSERT_EQUAL(ras_form_count(f, "red-flags"), 2);
	CU_ASSERT(ras_form_has_code(f, "red-flags", "infection"));
	CU_ASSERT_EQUAL(f->n_answers, 5);
	CU_ASSERT_STRING_EQUAL(f->answers[2].group, "medication-changes");
	CU_ASSERT_EQUAL(f->answers[2].group_index, 0);
	CU_ASSERT_EQUAL(f->answers[4].group_index, 1);
	CU_ASSERT_STRING_EQUAL(f->answers[4].s, "Amitriptyline");
}

static void
ers_worklist(void)
{
	struct ras_intake in;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/worklist-referrals-for-review.json", &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_ERS_WORKLIST);
	CU_ASSERT_EQUAL_FATAL(in.n_referrals, 2);
	CU_ASSERT_STRING_EQUAL(in.referrals[0].ubrn, "000000070002");
	CU_ASSERT_EQUAL(in.referrals[0].version, 7);
	CU_ASSERT_STRING_EQUAL(in.referrals[0].ers_referral_type, "TRIAGE_DEFERRAL");
	CU_ASSERT_STRING_EQUAL(in.referrals[0].patient.nhs_number, "9462979626");
	CU_ASSERT_STRING_EQUAL(in.referrals[0].ers_service_id, "11012");
	CU_ASSERT_STRING_EQUAL(in.referrals[0].request_context, "NEVER_REVIEWED");
	CU_ASSERT(in.referrals[0].has_pathway_start);
	CU_ASSERT_EQUAL(in.referrals[0].priority, RAS_PRIORITY_ROUTINE);
	CU_ASSERT_STRING_EQUAL(in.referrals[1].ers_referral_type, "APPOINTMENT");
	CU_ASSERT_EQUAL(in.referrals[1].version, 12);
}

static void
ers_worklist_asi(void)
{
	struct ras_intake in;

	/* ASI items carry the NHS number inline and no version. */
	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/worklist-appointment-slot-issues.json", &in), 0);
	CU_ASSERT(in.n_referrals >= 1);
	CU_ASSERT_PTR_NOT_NULL(in.referrals[0].patient.nhs_number);
	CU_ASSERT_EQUAL(in.referrals[0].version, 0);
}

static void
ers_referrer_worklist_refused(void)
{
	struct ras_intake in;

	CU_ASSERT_EQUAL(parse_fixture("ers/worklist-letters-outstanding.json", &in), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "referrer worklists"));
}

static void
ers_referral(void)
{
	struct ras_intake in;
	const struct ras_referral *r;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/referral-Unbooked.json", &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_ERS_REFERRAL);
	r = &in.referrals[0];
	CU_ASSERT_STRING_EQUAL(r->ubrn, "000000070000");
	CU_ASSERT_EQUAL(r->version, 5);
	CU_ASSERT_STRING_EQUAL(r->ers_request_id, "r.c18c4ec4-7d0a-480e-8506-347e0ec228b0");
	CU_ASSERT_STRING_EQUAL(r->ers_state, "NOT_BOOKED");
	CU_ASSERT_STRING_EQUAL(r->ers_service_id, "11002");
	CU_ASSERT_STRING_EQUAL(r->patient.nhs_number, "9912003888");
	CU_ASSERT_EQUAL_FATAL(r->n_attachments, 1);
	CU_ASSERT_STRING_EQUAL(r->attachments[0].url, "Binary/19eb7224-dff3-4730-a5cb-67eac811f1a5");
	CU_ASSERT_STRING_EQUAL(r->attachments[0].availability, "AVAILABLE");
	CU_ASSERT_EQUAL(r->attachments[0].size, 6);
	/* the referring organisation comes from the REFERRER attachment */
	CU_ASSERT_STRING_EQUAL(r->referrer.org_ods, "R69");
}

static void
ers_referral_related_and_unavailable(void)
{
	struct ras_intake in;
	size_t pending = 0;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/referral-WithRelatedReferral.json", &in), 0);
	CU_ASSERT_EQUAL_FATAL(in.referrals[0].n_related, 1);
	CU_ASSERT_STRING_EQUAL(in.referrals[0].related_ubrns[0], "000000070004");
	CU_ASSERT(in.referrals[0].has_pathway_start);

	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/referral-WithUnavailableAttachments.json", &in), 0);
	CU_ASSERT_EQUAL(in.referrals[0].n_attachments, 3);
	for (size_t i = 0; i < in.referrals[0].n_attachments; i++)
		if (strcmp(in.referrals[0].attachments[i].availability, "AVAILABLE") != 0)
			pending++;
	CU_ASSERT(pending >= 2);
}

static void
ers_docref(void)
{
	struct ras_intake in;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("ers/documentreference-80000.json", &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_ERS_DOCREF);
	CU_ASSERT_STRING_EQUAL(in.attachment->title, "referralletter.pdf");
	CU_ASSERT_STRING_EQUAL(in.attachment->attached_by_org, "R69");
	CU_ASSERT_STRING_EQUAL(in.attachment->type, "REFERRER");
}

/* Each bad fixture fails with RAS_EINVALID and a message naming the problem. */
static void
bad_inputs(void)
{
	static const struct {
		const char *file, *needle;
	} cases[] = {
		{ "bad/malformed.json", "malformed JSON" },
		{ "bad/duplicate-key.json", "duplicate JSON key" },
		{ "bad/wrong-resource-type.json", "unsupported resource type \"Observation\"" },
		{ "bad/unknown-resource-type.json", "unsupported resource type \"PainReferral\"" },
		{ "bad/missing-reference.json", "ServiceRequest.requester reference" },
		{ "bad/subject-not-patient.json", "not a Patient" },
		{ "bad/document-bundle.json", "not a referral" },
		{ "bad/no-servicerequest.json", "no ServiceRequest" },
	};
	struct ras_intake in;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = parse_fixture(cases[i].file, &in);

		CU_ASSERT_EQUAL(err, RAS_EINVALID);
		if (strstr(ras_error_last(), cases[i].needle) == NULL) {
			fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", cases[i].file, ras_error_last(),
			    cases[i].needle);
			CU_FAIL("wrong message");
		}
	}
}

/* NHS number problems are reported in the model for the store to act on. */
static void
nhs_number_in_model(void)
{
	struct ras_intake in;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("bad/nhs-invalid.json", &in), 0);
	CU_ASSERT_EQUAL(in.referrals[0].patient.nhs_number_status, RAS_NHSNO_BAD_CHECK);
	CU_ASSERT_EQUAL_FATAL(parse_fixture("bad/nhs-missing.json", &in), 0);
	CU_ASSERT_EQUAL(in.referrals[0].patient.nhs_number_status, RAS_NHSNO_MISSING);
}

static void
oversize_payload(void)
{
	size_t n = 9u * 1024u * 1024u;
	char *big = malloc(n);
	struct ras_intake in;

	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	CU_ASSERT_EQUAL(ras_intake_parse(A, NULL, big, n, &in), RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "exceeds the limit"));
	free(big);
}

/* The stored document reads back into the same model. */
static void
json_roundtrip(void)
{
	struct ras_intake in;
	struct ras_referral back;
	json_t *doc, *doc2;

	CU_ASSERT_EQUAL_FATAL(parse_fixture("r4/referral-collection-urn.json", &in), 0);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_dump(&in.referrals[0], "100000000101", &doc), 0);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_load(A, doc, &back), 0);
	CU_ASSERT_STRING_EQUAL(back.patient.nhs_number, "9990000018");
	CU_ASSERT_EQUAL(back.form.n_answers, 25);
	CU_ASSERT_EQUAL(ras_form_answer(&back.form, "pain-duration-weeks")->i, 26);
	CU_ASSERT_EQUAL(back.authored, in.referrals[0].authored);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_dump(&back, "100000000101", &doc2), 0);
	CU_ASSERT(ras_json_equal(doc, doc2));
	json_decref(doc);
	json_decref(doc2);
}

static const struct ras_test_case cases[] = {
	{ "R4 collection with urn:uuid references", r4_collection_urn },
	{ "R4 transaction with relative references", r4_transaction_relative },
	{ "R4 message bundle", r4_message },
	{ "form groups and repeating answers", r4_groups_and_repeats },
	{ "e-RS A008 worklist (RFR)", ers_worklist },
	{ "e-RS A008 worklist (ASI)", ers_worklist_asi },
	{ "e-RS referrer worklist refused", ers_referrer_worklist_refused },
	{ "e-RS A005 referral", ers_referral },
	{ "e-RS related UBRNs and unavailable attachments", ers_referral_related_and_unavailable },
	{ "e-RS DocumentReference", ers_docref },
	{ "bad inputs", bad_inputs },
	{ "NHS number status in the model", nhs_number_in_model },
	{ "payload over the size limit", oversize_payload },
	{ "normalised JSON round trip", json_roundtrip },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "intake", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
