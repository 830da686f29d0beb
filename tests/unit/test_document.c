/* Document builders: golden files for every kind and service, determinism,
 * refusals with the list of missing items, narrative safety, XML, HTML. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/xml.h"
#include "ras_config.h"

#define AT "2026-07-20T10:00:00Z"

static struct ras_arena *A;

static const struct ras_referral *
referral(const char *fixture)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(fixture), &len);
	struct ras_intake in;
	char *copy = ras_arena_strndup(A, data, len);

	free(data);
	CU_ASSERT_FATAL(ras_intake_parse(A, NULL, copy, len, &in) == 0);
	CU_ASSERT_FATAL(in.n_referrals == 1);
	return &in.referrals[0];
}

static const struct ras_decision *
decision(const char *name)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(ras_arena_printf(A, "documents/%s", name)), &len);
	struct ras_decision *d = ras_arena_alloc(A, sizeof(*d));
	json_t *j;

	CU_ASSERT_FATAL(ras_json_parse_arena(A, data, len, 1 << 20, &j) == 0);
	free(data);
	CU_ASSERT_FATAL(ras_decision_from_json(A, j, d) == 0);
	return d;
}

static int
episode_of(const char *name, struct ras_episode *e)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(ras_arena_printf(A, "documents/%s", name)), &len);
	char *copy = ras_arena_strndup(A, data, len);
	struct ras_intake in;
	int err;

	free(data);
	CU_ASSERT_FATAL(ras_intake_parse(A, NULL, copy, len, &in) == 0);
	CU_ASSERT_FATAL(in.kind == RAS_PAYLOAD_FORM);
	err = ras_episode_from_form(A, in.form, e);
	return err;
}

static const struct ras_episode *
episode(const char *name)
{
	struct ras_episode *e = ras_arena_alloc(A, sizeof(*e));

	CU_ASSERT_FATAL(episode_of(name, e) == 0);
	return e;
}

static const struct ras_docprofile *
profile(const char *service)
{
	struct ras_docprofile *p = ras_arena_alloc(A, sizeof(*p));

	CU_ASSERT_FATAL(ras_docprofile_load(A, RAS_SOURCE_ROOT "/mappings", service, p) == 0);
	return p;
}

static struct ras_doc_input
input(enum ras_doc_kind kind, const char *service, const char *ref)
{
	struct ras_doc_input in = { .kind = kind, .profile = profile(service), .referral = referral(ref),
		.version = 1 };

	CU_ASSERT_FATAL(ras_time_parse(AT, false, &in.at) == 0);
	return in;
}

static const char *
dump(const json_t *j)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	char *s;

	CU_ASSERT_FATAL(ras_json_dump(j, RAS_JSON_PRETTY, &b) == 0);
	ras_buf_putc(&b, '\n');
	s = ras_arena_strdup(A, b.data);
	ras_buf_free(&b);
	return s;
}

static json_t *
build_ok(const struct ras_doc_input *in)
{
	struct ras_doc_missing m;
	json_t *b = NULL;
	int err = ras_document_build(A, in, &b, &m);

	if (err)
		fprintf(stderr, "build failed: %s\n", ras_error_last());
	CU_ASSERT_FATAL(err == 0);
	return b;
}

static void
golden(const char *name, const char *text)
{
	CU_ASSERT_TRUE(ras_test_golden(ras_arena_printf(A, "documents/%s", name), text, strlen(text)));
}

static const char *
ref_for(const char *service)
{
	if (strcmp(service, "midnotts") == 0)
		return "r4/referral-collection-urn.json";
	if (strcmp(service, "bassetlaw-2022") == 0)
		return "r4/referral-transaction-relative.json";
	return "r4/referral-message.json";
}

static const char *const services[] = { "midnotts", "bassetlaw-2022", "dorset-2013", "dorset-2019",
	NULL };

static void
golden_triage_outcomes(void)
{
	static const char *const outcomes[] = { "accept", "return", "onward", NULL };

	for (int s = 0; services[s]; s++)
		for (int o = 0; outcomes[o]; o++) {
			struct ras_doc_input in = input(RAS_DOC_TRIAGE_OUTCOME, services[s], ref_for(services[s]));
			json_t *b;

			in.decision = decision(ras_arena_printf(A, "decision-%s-%s.json", services[s],
			    outcomes[o]));
			b = build_ok(&in);
			golden(ras_arena_printf(A, "%s-triage-%s.json", services[s], outcomes[o]), dump(b));
		}
}

static void
golden_discharge_and_patient_copy(void)
{
	for (int s = 0; services[s]; s++) {
		struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, services[s], ref_for(services[s]));
		struct ras_buf html = RAS_BUF_INIT(0);
		json_t *b;

		in.episode = episode("episode-discharge-full.json");
		b = build_ok(&in);
		golden(ras_arena_printf(A, "%s-discharge-summary.json", services[s]), dump(b));
		in.kind = RAS_DOC_PATIENT_COPY;
		b = build_ok(&in);
		CU_ASSERT_FATAL(ras_document_html(A, b, in.profile, true, &html) == 0);
		golden(ras_arena_printf(A, "%s-patient-copy.html", services[s]), html.data);
		/* self-contained: nothing fetched from anywhere */
		CU_ASSERT_PTR_NULL(strstr(html.data, "src="));
		CU_ASSERT_PTR_NULL(strstr(html.data, "<link"));
		CU_ASSERT_PTR_NULL(strstr(html.data, "<script"));
		CU_ASSERT_PTR_NULL(strstr(html.data, "@import"));
		CU_ASSERT_PTR_NOT_NULL(strstr(html.data, "This is your own copy"));
		ras_buf_free(&html);
	}
}

static void
golden_notification_2ww_and_xml(void)
{
	struct ras_doc_input in = input(RAS_DOC_NOTIFICATION_LETTER, "midnotts",
	    "documents/referral-consultant-midnotts.json");
	struct ras_buf xml = RAS_BUF_INIT(0);
	json_t *b;

	in.episode = episode("episode-notification.json");
	golden("midnotts-notification-letter.json", dump(build_ok(&in)));

	in = input(RAS_DOC_NOTIFICATION_LETTER, "bassetlaw-2022", "r4/referral-transaction-relative.json");
	in.episode = episode("episode-notification.json");
	golden("bassetlaw-2022-notification-letter.json", dump(build_ok(&in)));

	in = input(RAS_DOC_GP_2WW_NOTICE, "midnotts", "documents/referral-consultant-midnotts.json");
	in.decision = decision("decision-midnotts-2ww.json");
	golden("midnotts-gp-2ww-notice.json", dump(build_ok(&in)));

	in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts", "r4/referral-collection-urn.json");
	in.episode = episode("episode-discharge-full.json");
	b = build_ok(&in);
	CU_ASSERT_FATAL(ras_xml_fhir_from_json(b, &xml) == 0);
	golden("midnotts-discharge-summary.xml", xml.data);
	ras_buf_reset(&xml);
	in = input(RAS_DOC_TRIAGE_OUTCOME, "midnotts", "r4/referral-collection-urn.json");
	in.decision = decision("decision-midnotts-return.json");
	CU_ASSERT_FATAL(ras_xml_fhir_from_json(build_ok(&in), &xml) == 0);
	golden("midnotts-triage-return.xml", xml.data);
	/* extension url is an attribute, primitives are value attributes */
	CU_ASSERT_PTR_NOT_NULL(strstr(xml.data, "<extension url=\"https://fhir.hl7.org.uk/"
	    "StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus\">"));
	CU_ASSERT_PTR_NOT_NULL(strstr(xml.data, "<birthDate value=\"1970-05-14\"/>"));
	ras_buf_free(&xml);
}

static const json_t *
section_at(const json_t *bundle, size_t i)
{
	json_t *comp = json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource");

	return json_array_get(json_object_get(comp, "section"), i);
}

static const char *
section_code(const json_t *sec)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(sec,
	    "code"), "coding"), 0), "code"));
}

static void
deterministic_and_stable_identifier(void)
{
	struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts",
	    "r4/referral-collection-urn.json");
	const char *one, *two, *id1, *id2;
	json_t *b1, *b2, *b3;

	in.episode = episode("episode-discharge-full.json");
	b1 = build_ok(&in);
	b2 = build_ok(&in);
	one = dump(b1);
	two = dump(b2);
	CU_ASSERT_STRING_EQUAL(one, two);
	id1 = ras_document_identifier(b1);
	/* another time: same identifier, only the times differ */
	in.at += 86400;
	b3 = build_ok(&in);
	CU_ASSERT_STRING_EQUAL(ras_document_identifier(b3), id1);
	CU_ASSERT_STRING_NOT_EQUAL(dump(b3), one);
	/* a new version is a new document that replaces the old one */
	in.version = 2;
	b3 = build_ok(&in);
	id2 = ras_document_identifier(b3);
	CU_ASSERT_STRING_NOT_EQUAL(id2, id1);
	CU_ASSERT_PTR_NOT_NULL(strstr(dump(b3), "\"replaces\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(dump(b3), id1));
	/* Composition first, with the same identifier as the Bundle */
	CU_ASSERT_STRING_EQUAL(ras_json_str(ras_json_obj(json_array_get(json_object_get(b1, "entry"), 0),
	    "resource"), "resourceType"), "Composition");
}

static void
gp_actions_first_and_opioids_highlighted(void)
{
	struct ras_doc_input in;
	json_t *b;
	const char *txt;

	for (int s = 0; services[s]; s++) {
		in = input(RAS_DOC_DISCHARGE_SUMMARY, services[s], ref_for(services[s]));
		in.episode = episode("episode-discharge-full.json");
		b = build_ok(&in);
		CU_ASSERT_STRING_EQUAL(section_code(section_at(b, 0)), "plan-and-requested-actions");
		txt = dump(section_at(b, 0));
		/* the opioid alert is the first action */
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "<ol class=\\\"actions\\\"><li class=\\\"opioid\\\">"));
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "Please review codeine use"));
		txt = dump(b);
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "<tr class=\\\"opioid\\\"><td><strong>Morphine sulfate"));
		CU_ASSERT_EQUAL(ras_test_count(txt, "<tr class=\\\"opioid\\\">"), 2);
	}
	/* no opioid, no alert */
	in = input(RAS_DOC_NOTIFICATION_LETTER, "midnotts", "r4/referral-collection-urn.json");
	in.episode = episode("episode-notification.json");
	b = build_ok(&in);
	CU_ASSERT_EQUAL(ras_test_count(dump(b), "<tr class=\\\"opioid\\\">"), 1);
}

static void
missing_items_are_listed_per_service(void)
{
	static const struct { const char *service, *want; } cases[] = {
		{ "midnotts", "missing required items: outcomes, management-plan, key-worker, test-results, "
		  "re-referral-indicators (004 §3.12)" },
		{ "bassetlaw-2022", "missing required items: diagnosis, investigations, test-results, "
		  "outcomes, management-plan, self-management-advice, re-referral-indicators (003 §3.9)" },
		{ "dorset-2013", "missing required items: outcomes, management-plan, peer-support (001 §2.2)" },
		{ "dorset-2019", "missing required items: management-plan, self-management-advice, "
		  "peer-support, re-referral-indicators (002 §3.3 Discharge)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, cases[i].service,
		    ref_for(cases[i].service));
		struct ras_doc_missing m;
		json_t *b = NULL;

		in.episode = episode("episode-discharge-minimal.json");
		CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
		CU_ASSERT_PTR_NULL(b);
		CU_ASSERT_STRING_EQUAL(ras_error_last(), cases[i].want);
		CU_ASSERT_TRUE(m.n > 0);
		/* no episode at all: everything the episode gives is missing */
		in.episode = NULL;
		CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
	}
}

static void
refusals(void)
{
	struct ras_doc_input in = input(RAS_DOC_NOTIFICATION_LETTER, "dorset-2013",
	    "r4/referral-message.json");
	struct ras_doc_missing m;
	json_t *b = NULL;

	in.episode = episode("episode-notification.json");
	CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "calls for no notification-letter"));
	CU_ASSERT_EQUAL(m.n, 0);

	in = input(RAS_DOC_TRIAGE_OUTCOME, "midnotts", "r4/referral-collection-urn.json");
	in.decision = decision("decision-midnotts-review.json");
	CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "awaiting clinical review"));
	in.decision = NULL;
	CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);

	in = input(RAS_DOC_GP_2WW_NOTICE, "midnotts", "r4/referral-collection-urn.json");
	in.decision = decision("decision-midnotts-accept.json");
	CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "two-week-wait"));
	/* other services' specs have no 2WW notice */
	in = input(RAS_DOC_GP_2WW_NOTICE, "dorset-2019", "r4/referral-message.json");
	in.decision = decision("decision-midnotts-2ww.json");
	CU_ASSERT_EQUAL(ras_document_build(A, &in, &b, &m), RAS_EINVALID);
}

static void
episode_parsing_is_strict(void)
{
	struct ras_episode e;
	const struct ras_episode *full = episode("episode-discharge-full.json");

	CU_ASSERT_EQUAL(full->n_meds, 4);
	CU_ASSERT_EQUAL(full->n_gp_actions, 2);
	CU_ASSERT_TRUE(full->meds[0].opioid);
	CU_ASSERT_EQUAL(full->meds[0].change, RAS_MED_STOP);
	CU_ASSERT_FALSE(full->meds[3].opioid);
	CU_ASSERT_EQUAL(full->discharge_date.day, 17);
	CU_ASSERT_EQUAL(episode_of("episode-bad-item.json", &e), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "favourite-colour"));
	CU_ASSERT_EQUAL(episode_of("episode-bad-version.json", &e), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "version"));
	CU_ASSERT_EQUAL(episode_of("episode-bad-change.json", &e), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "start, stop, dose-change or continue"));
}

static void
narrative_escapes_hostile_text(void)
{
	struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts",
	    "r4/referral-collection-urn.json");
	struct ras_episode *e = ras_arena_alloc(A, sizeof(*e));
	struct ras_referral *r = ras_arena_alloc(A, sizeof(*r));
	struct ras_buf xml = RAS_BUF_INIT(0);
	const char *txt;
	json_t *b;

	*e = *episode("episode-discharge-full.json");
	*r = *in.referral;
	r->patient.family = "O'Brien <script>alert(1)</script> & \"Sons\"";
	e->management_plan = "Rest \x01 then walk\xff\xfe; 5 < 6 & 7 > 3";
	in.referral = r;
	in.episode = e;
	b = build_ok(&in);
	txt = dump(b);
	/* only the Patient.name JSON string holds the raw text; every narrative escapes it */
	CU_ASSERT_EQUAL(ras_test_count(txt, "<script>"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(txt, "&lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(txt, "5 &lt; 6 &amp; 7 &gt; 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(txt, "Rest \xef\xbf\xbd then walk\xef\xbf\xbd\xef\xbf\xbd"));
	/* and the whole document serialises as well-formed FHIR XML */
	CU_ASSERT_EQUAL(ras_xml_fhir_from_json(b, &xml), 0);
	CU_ASSERT_PTR_NULL(strstr(xml.data, "<script>"));
	ras_buf_free(&xml);
}

static void
message_wrapper(void)
{
	struct ras_doc_input in = input(RAS_DOC_TRIAGE_OUTCOME, "midnotts",
	    "r4/referral-collection-urn.json");
	struct ras_doc_message m = { .message_id = "6f9a4c1e-0b7d-4e35-9a51-3d2f8e7c6b5a", .at = in.at,
		.sender_ods = "RASMN", .sender_name = "Mid Notts CPMS",
		.source_endpoint = "urn:nhs-uk:addressing:mesh:X26ABC1",
		.dest_endpoint = "urn:nhs-uk:addressing:mesh:X26ABC2", .receiver_ods = "C84009" };
	json_t *msg, *doc;

	in.decision = decision("decision-midnotts-accept.json");
	doc = build_ok(&in);
	CU_ASSERT_FATAL(ras_document_message(doc, &m, &msg) == 0);
	golden("midnotts-triage-accept-message.json", dump(msg));
	CU_ASSERT_STRING_EQUAL(ras_json_str(msg, "type"), "message");
	json_decref(msg);
	/* GPPROVIDER routing: no destination (GPCM-SD-049) */
	m.dest_endpoint = NULL;
	CU_ASSERT_FATAL(ras_document_message(doc, &m, &msg) == 0);
	CU_ASSERT_PTR_NULL(strstr(dump(msg), "\"destination\""));
	json_decref(msg);
}

static void
xhtml_builder(void)
{
	struct ras_xhtml *x;
	struct ras_buf out = RAS_BUF_INIT(0);

	CU_ASSERT_FATAL(ras_xml_xhtml_new_div(A, &x) == 0);
	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_leaf(x, "td", "c", NULL);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_leaf(x, "p", NULL, "a<b");
	CU_ASSERT_EQUAL(ras_xml_xhtml_dump(x, &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "<div xmlns=\"http://www.w3.org/1999/xhtml\"><table>"
	    "<td class=\"c\"></td></table><p>a&lt;b</p></div>");
	/* a close() too many is a sticky error */
	ras_xml_xhtml_close(x);
	CU_ASSERT_NOT_EQUAL(ras_xml_xhtml_error(x), 0);
	ras_buf_reset(&out);
	CU_ASSERT_NOT_EQUAL(ras_xml_xhtml_dump(x, &out), 0);
	/* a fragment that is not well formed is refused */
	CU_ASSERT_FATAL(ras_xml_xhtml_new_div(A, &x) == 0);
	ras_xml_xhtml_embed(x, "<div><p>unclosed</div>");
	CU_ASSERT_EQUAL(ras_xml_xhtml_error(x), RAS_EINVALID);
	ras_buf_free(&out);
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

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "golden triage outcomes (every service, every outcome)", golden_triage_outcomes },
		{ "golden discharge summaries and patient copies", golden_discharge_and_patient_copy },
		{ "golden notification letters, 2WW notice, FHIR XML", golden_notification_2ww_and_xml },
		{ "deterministic output and stable identifiers", deterministic_and_stable_identifier },
		{ "GP actions first, opioids highlighted", gp_actions_first_and_opioids_highlighted },
		{ "missing items listed per service", missing_items_are_listed_per_service },
		{ "refusals", refusals },
		{ "episode parsing is strict", episode_parsing_is_strict },
		{ "narrative escapes hostile text", narrative_escapes_hostile_text },
		{ "message wrapper", message_wrapper },
		{ "xhtml builder", xhtml_builder },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "document", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
