/* Document builders: golden files for every kind and service, determinism,
 * refusals with the list of missing items, narrative safety, XML, HTML. */
#include <stdlib.h>
#include <string.h>

#include "fake_gp.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/itk3.h"
#include "ras/crypto.h"
#include "ras/pdf.h"
#include "ras/rules.h"
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

/* Issue 12: letters print clock labels, never rasd's internal names. */
static void
letters_print_clock_labels(void)
{
	struct ras_doc_input in = input(RAS_DOC_TRIAGE_OUTCOME, "midnotts", ref_for("midnotts"));
	const char *const *kinds = ras_rules_clock_kinds();
	struct ras_decision *d = ras_arena_alloc(A, sizeof(*d));
	struct ras_deadline *dl;
	size_t n = 0;
	const char *text;

	while (kinds[n])
		n++;
	*d = *decision("decision-midnotts-accept.json");
	dl = ras_arena_calloc(A, n, sizeof(*dl));
	for (size_t i = 0; i < n; i++) {
		const char *label = ras_document_deadline_label(kinds[i]);

		CU_ASSERT_STRING_NOT_EQUAL(label, kinds[i]);
		CU_ASSERT_PTR_NULL(strchr(label, '-'));
		dl[i] = d->deadlines[0];
		dl[i].kind = kinds[i];
	}
	d->deadlines = dl;
	d->n_deadlines = n;
	in.decision = d;
	text = dump(build_ok(&in));
	CU_ASSERT_PTR_NULL(strstr(text, "pathway-end"));
	CU_ASSERT_PTR_NULL(strstr(text, "first-appointment-limit"));
	CU_ASSERT_PTR_NULL(strstr(text, "clinical-review"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Care with the service completed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "First appointment at the latest"));
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

/* One saver for many fragments writes what a dump of each writes (UTF-8
 * text, escapes, empty elements, attributes); a buffer too small for a
 * fragment is its own error, keeps nothing of it, and the saver goes on
 * (one context per dump from then on). */
static void
xhtml_saver_writes_what_dump_writes(void)
{
	static const char *const texts[] = { "a<b & \"c\"", "caf\xc3\xa9 \xe2\x80\x94 d\x01" "e", "",
		"a longer paragraph, to fill more than one line of a letter" };
	struct ras_xhtml_saver *sv;
	struct ras_buf one = RAS_BUF_INIT(0), many = RAS_BUF_INIT(0), small = RAS_BUF_INIT(20);
	struct ras_xhtml *x;

	CU_ASSERT_FATAL(ras_xml_xhtml_saver_new(A, &sv) == 0);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
			CU_ASSERT_FATAL(ras_xml_xhtml_new_div(A, &x) == 0);
			ras_xml_xhtml_open(x, "table", "t");
			ras_xml_xhtml_leaf(x, "td", NULL, NULL);
			ras_xml_xhtml_close(x);
			ras_xml_xhtml_leaf(x, "p", "c", texts[i]);
			ras_xml_xhtml_open(x, "span", NULL);
			ras_xml_xhtml_attr(x, "title", texts[i]);
			ras_xml_xhtml_close(x);
			ras_buf_reset(&one);
			ras_buf_reset(&many);
			CU_ASSERT_EQUAL(ras_xml_xhtml_dump(x, &one), 0);
			CU_ASSERT_EQUAL(ras_xml_xhtml_save(sv, x, &many), 0);
			CU_ASSERT_PTR_NOT_NULL_FATAL(one.data);
			CU_ASSERT_PTR_NOT_NULL_FATAL(many.data);
			CU_ASSERT_STRING_EQUAL(many.data, one.data);
			CU_ASSERT_EQUAL(many.len, one.len);
		}
		if (round == 0) {
			/* over the buffer's limit: its error, nothing kept */
			CU_ASSERT_EQUAL(ras_buf_puts(&small, "kept"), 0);
			CU_ASSERT_EQUAL(ras_xml_xhtml_save(sv, x, &small), RAS_ETOOBIG);
			CU_ASSERT_STRING_EQUAL(small.data, "kept");
		}
	}
	ras_buf_free(&one);
	ras_buf_free(&many);
	ras_buf_free(&small);
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

/* --- PDF letters ---------------------------------------------------------- */

static char *
pdf_of(const json_t *bundle, const struct ras_docprofile *p, const struct ras_pdf_opts *o,
    const char *name, size_t *len)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	char *path;

	CU_ASSERT_FATAL(ras_pdf_document(A, bundle, p, o, &b) == 0);
	CU_ASSERT_FATAL(b.len > 1000 && memcmp(b.data, "%PDF-", 5) == 0);
	path = ras_test_write_tmp(name, b.data, b.len);
	if (len)
		*len = b.len;
	ras_buf_free(&b);
	return path;
}

/* pdftotext (poppler-utils) of pages first..last (0: all). */
static char *
pdf_text(const char *path, int first, int last)
{
	char f[16], l[16], *out = NULL, *err = NULL;
	char *argv[] = { "/usr/bin/pdftotext", "-f", f, "-l", l, (char *)path, "-", NULL };
	int rc;

	snprintf(f, sizeof(f), "%d", first ? first : 1);
	snprintf(l, sizeof(l), "%d", last ? last : 9999);
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	if (rc != 0)
		fprintf(stderr, "pdftotext: %s\n", err ? err : "");
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	free(err);
	return out;
}

static int
pdf_pages(const char *path)
{
	char *out = NULL, *err = NULL, *p;
	char *argv[] = { "/usr/bin/pdfinfo", (char *)path, NULL };
	long n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
	if ((p = strstr(out, "\nPages:")) != NULL)
		n = strtol(p + 7, NULL, 10);
	free(out);
	free(err);
	return n > 0 && n < 10000 ? (int)n : 0;
}

/* Every page carries the banner and its own "Page N of M". */
static void
banner_on_every_page(const char *path, int pages, const char *name, const char *nhs, const char *dob)
{
	for (int k = 1; k <= pages; k++) {
		char *t = pdf_text(path, k, k), want[32];

		snprintf(want, sizeof(want), "Page %d of %d", k, pages);
		CU_ASSERT_PTR_NOT_NULL(strstr(t, name));
		CU_ASSERT_PTR_NOT_NULL(strstr(t, nhs));
		CU_ASSERT_PTR_NOT_NULL(strstr(t, dob));
		CU_ASSERT_PTR_NOT_NULL(strstr(t, want));
		if (!strstr(t, want))
			fprintf(stderr, "page %d lacks \"%s\":\n%s\n", k, want, t);
		free(t);
	}
}

/* The letter's text is the document's: every section heading in order,
 * the narrative's words, the recipient and date; same bytes every time;
 * the creation date is the document's. */
static void
pdf_letters_carry_the_document(void)
{
	struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts", "r4/referral-collection-urn.json");
	struct ras_pdf_opts po = { .recipient = "BARNBY GATE SURGERY (C84009)" };
	json_t *b, *sec;
	char *path, *again, *text, *info = NULL, *err = NULL;
	const char *at;
	size_t i, len1, len2;

	in.episode = episode("episode-discharge-full.json");
	b = build_ok(&in);
	path = pdf_of(b, in.profile, &po, "ds.pdf", &len1);
	again = pdf_of(b, in.profile, &po, "ds-again.pdf", &len2);
	{
		char *x = ras_test_read(path, NULL), *y = ras_test_read(again, NULL);

		CU_ASSERT_EQUAL(len1, len2);
		CU_ASSERT_EQUAL(memcmp(x, y, len1), 0);
		free(x);
		free(y);
	}
	text = pdf_text(path, 0, 0);
	CU_ASSERT_TRUE(ras_test_golden("pdf/midnotts-discharge-summary.txt", text, strlen(text)));
	/* section headings in the Composition's order, GP actions first */
	at = text;
	json_array_foreach(ras_json_arr(ras_json_obj(json_array_get(ras_json_arr(b, "entry"), 0),
	    "resource"), "section"), i, sec) {
		const char *h = strstr(at, ras_json_str(sec, "title"));

		CU_ASSERT_PTR_NOT_NULL(h);
		if (h == NULL)
			fprintf(stderr, "section \"%s\" missing or out of order\n", ras_json_str(sec, "title"));
		else
			at = h;
		if (i == 0)
			CU_ASSERT_STRING_EQUAL(ras_json_str(sec, "title"), "Actions for the GP");
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "To: BARNBY GATE SURGERY (C84009)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Date: 20 July 2026"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Discharge summary"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Morphine sulfate modified"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "OPIOID"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Telephone 0800 0000001"));
	banner_on_every_page(path, pdf_pages(path), "EXAMPLE, Jane", "NHS number: 999 000 0018",
	    "Date of birth: 14-May-1970");
	free(text);
	{
		char *argv[] = { "/usr/bin/pdfinfo", "-isodates", path, NULL };

		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &info, &err), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(info, "CreationDate:    2026-07-20T10:00:00"));
		CU_ASSERT_PTR_NOT_NULL(strstr(info, "Title:           Discharge summary"));
		/* no patient data in the PDF's metadata */
		CU_ASSERT_PTR_NULL(strstr(info, "Example"));
		CU_ASSERT_PTR_NULL(strstr(info, "999"));
		free(info);
		free(err);
	}
	free(path);
	free(again);

	/* every kind of letter, every service: its title, banner and pages */
	for (size_t s = 0; services[s]; s++) {
		static const enum ras_doc_kind kinds[] = { RAS_DOC_TRIAGE_OUTCOME, RAS_DOC_NOTIFICATION_LETTER,
			RAS_DOC_PATIENT_COPY };

		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			struct ras_doc_input di = input(kinds[k], services[s], ref_for(services[s]));
			struct ras_pdf_opts o = { .patient_copy = kinds[k] == RAS_DOC_PATIENT_COPY };
			struct ras_doc_missing m;
			const char *title;
			char *p, *t;

			if (kinds[k] == RAS_DOC_TRIAGE_OUTCOME)
				di.decision = decision(ras_arena_printf(A, "decision-%s-accept.json", services[s]));
			else
				di.episode = episode(kinds[k] == RAS_DOC_PATIENT_COPY ? "episode-discharge-full.json" :
				    "episode-notification.json");
			b = NULL;
			if (ras_document_build(A, &di, &b, &m) != 0)
				continue;   /* a kind this service does not send */
			title = ras_json_str(ras_json_obj(json_array_get(ras_json_arr(b, "entry"), 0), "resource"),
			    "title");
			p = pdf_of(b, di.profile, &o, ras_arena_printf(A, "%s-%zu.pdf", services[s], k), NULL);
			t = pdf_text(p, 0, 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(t, title));
			CU_ASSERT_PTR_NOT_NULL(strstr(t, "NHS number:"));
			if (kinds[k] == RAS_DOC_PATIENT_COPY)
				CU_ASSERT_PTR_NOT_NULL(strstr(t, "This is your own copy"));
			banner_on_every_page(p, pdf_pages(p), "NHS number:", "Date of birth:", "Document reference");
			free(t);
			free(p);
		}
	}
}

/* A discharge summary long enough for three pages: the banner and page
 * numbers on each, headings never alone at a page's foot, and a page image
 * a developer can look at (build/tests/pdf/). */
static void
pdf_three_page_discharge_summary(void)
{
	struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts", "r4/referral-collection-urn.json");
	struct ras_pdf_opts po = { .recipient = "BARNBY GATE SURGERY (C84009)" };
	struct ras_buf div = RAS_BUF_INIT(0);
	json_t *b, *sec;
	char *path, *text, *out = NULL, *err = NULL, dir[4096], prefix[4200];
	size_t i;

	in.episode = episode("episode-discharge-full.json");
	b = build_ok(&in);
	/* a long treatment summary: 25 paragraphs */
	ras_buf_puts(&div, "<div xmlns=\"http://www.w3.org/1999/xhtml\">");
	for (int k = 1; k <= 25; k++)
		ras_buf_puts(&div, ras_arena_printf(A, "<p>Session %d: graded activity, pacing and relaxation "
		    "practice; goals reviewed with the patient, who reports steady progress and fewer flare-ups "
		    "than at the start of the programme.</p>", k));
	ras_buf_puts(&div, "</div>");
	json_array_foreach(ras_json_arr(ras_json_obj(json_array_get(ras_json_arr(b, "entry"), 0),
	    "resource"), "section"), i, sec)
		if (strcmp(ras_json_str(sec, "title"), "Summary of treatment") == 0)
			json_object_set_new(json_object_get(sec, "text"), "div", json_string(div.data));
	ras_buf_free(&div);
	path = pdf_of(b, in.profile, &po, "ds-long.pdf", NULL);
	CU_ASSERT_EQUAL_FATAL(pdf_pages(path), 3);
	banner_on_every_page(path, 3, "EXAMPLE, Jane", "NHS number: 999 000 0018",
	    "Date of birth: 14-May-1970");
	/* page 1 opens with the GP's actions; the paragraphs run on over the breaks */
	text = pdf_text(path, 1, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Actions for the GP"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Session 1:"));
	free(text);
	text = pdf_text(path, 2, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Session 25:"));
	CU_ASSERT_PTR_NULL(strstr(text, "Session 1:"));
	free(text);
	text = pdf_text(path, 3, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Copies sent to"));
	free(text);
	text = pdf_text(path, 0, 0);
	for (int k = 1; k <= 25; k++)
		CU_ASSERT_PTR_NOT_NULL(strstr(text, ras_arena_printf(A, "Session %d:", k)));
	free(text);
	/* the first page as an image, kept in the build tree for a person to look at */
	snprintf(dir, sizeof(dir), "%s/tests/pdf", getenv("RAS_BUILD_ROOT") ? getenv("RAS_BUILD_ROOT") :
	    ras_test_tmpdir());
	{
		char *mk[] = { "/bin/mkdir", "-p", dir, NULL };

		CU_ASSERT_EQUAL(ras_test_spawn(mk, NULL, NULL, NULL, NULL), 0);
	}
	snprintf(prefix, sizeof(prefix), "%s/discharge-summary", dir);
	{
		char *argv[] = { "/usr/bin/pdftoppm", "-r", "72", "-png", path, prefix, NULL };
		char *png = ras_arena_printf(A, "%s-1.png", prefix);
		char *data;
		size_t len = 0;

		CU_ASSERT_EQUAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
		data = ras_test_read(png, &len);
		CU_ASSERT_TRUE(len > 1000 && memcmp(data, "\x89PNG", 4) == 0);
		free(data);
		printf("\n  page images: %s-{1,2,3}.png\n", prefix);
	}
	free(out);
	free(err);
	free(path);
}

/* --- ITK3 messages ------------------------------------------------------- */

/* A stand-in PDF for the golden messages (a real one depends on the fonts
 * and Cairo of the machine); itk3_carries_the_real_pdf embeds a real one. */
static const char GOLDEN_PDF[] = "%PDF-1.5\n% rasd golden stand-in\n%%EOF\n";

static const char *
itk3_xml(const json_t *doc, enum ras_itk3_kind kind, const char *dest, const void *pdf, size_t len)
{
	struct ras_itk3_msg m = { .kind = kind, .message_id = "5b7a4c2e-1f0d-5c8e-9a3b-2d4e6f8a0b1c",
		.sender_reference = "rasd-42-triage-outcome-2", .sender_ods = "RASMN",
		.sender_name = "Mid Notts Community Pain Management Service", .source_mailbox = "X26ABC1",
		.dest_mailbox = dest, .receiver_ods = dest ? "C84009" : NULL, .pdf = pdf, .pdf_len = len };
	struct ras_buf xml = RAS_BUF_INIT(0);
	const char *out;

	CU_ASSERT_FATAL(ras_time_parse(AT, false, &m.at) == 0);
	if (ras_itk3_message(A, doc, &m, &xml) != 0)
		fprintf(stderr, "itk3: %s\n", ras_error_last());
	CU_ASSERT_FATAL(xml.len > 0);
	out = ras_arena_strdup(A, xml.data);
	ras_buf_free(&xml);
	return out;
}

/* The structure of the reference Send Document message, checked with XPath. */
static void
itk3_structure(const char *xml, enum ras_itk3_kind kind, bool gpprovider)
{
	static const char *const ns[] = { "f", "http://hl7.org/fhir", NULL };
	static const struct { const char *xpath, *want; } send_doc[] = {
		{ "local-name(/f:Bundle/f:entry[1]/f:resource/*)", "MessageHeader" },
		{ "/f:Bundle/f:type/@value", "message" },
		{ "/f:Bundle/f:meta/f:profile/@value",
		  "https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1" },
		{ "count(//f:MessageHeader/f:extension[@url='https://fhir.nhs.uk/STU3/StructureDefinition/"
		  "Extension-ITK-MessageHandling-2']/f:extension)", "6" },
		{ "//f:MessageHeader//f:extension[@url='BusAckRequested']/f:valueBoolean/@value", "true" },
		{ "//f:MessageHeader//f:extension[@url='InfAckRequested']/f:valueBoolean/@value", "true" },
		{ "//f:MessageHeader//f:extension[@url='RecipientType']/f:valueCoding/f:code/@value", "FA" },
		{ "//f:MessageHeader//f:extension[@url='SenderReference']/f:valueString/@value",
		  "rasd-42-triage-outcome-2" },
		{ "//f:MessageHeader/f:source/f:endpoint/@value", "X26ABC1" },
		/* focus: the document bundle */
		{ "local-name(//f:entry[f:fullUrl/@value = //f:MessageHeader/f:focus/f:reference/@value]"
		  "/f:resource/*)", "Bundle" },
		{ "//f:entry[f:fullUrl/@value = //f:MessageHeader/f:focus/f:reference/@value]/f:resource/"
		  "f:Bundle/f:type/@value", "document" },
		{ "//f:Binary/f:contentType/@value", "application/pdf" },
		{ "count(//f:Binary/f:content)", "1" },
		{ "//f:Patient/f:identifier[f:system/@value='https://fhir.nhs.uk/Id/nhs-number']/f:value/@value",
		  "9990000018" },
		{ "//f:Patient/f:birthDate/@value", "1970-05-14" },
		/* the Composition's first section entry is the PDF */
		{ "count(//f:Binary[concat('urn:uuid:', f:id/@value) = "
		  "//f:Composition/f:section[f:entry][1]/f:entry[1]/f:reference/@value])", "1" },
	};
	struct ras_xml_doc *d;
	const char **v;
	size_t n;

	CU_ASSERT_FATAL(ras_xml_parse(A, xml, strlen(xml), 1 << 26, &d) == 0);
	for (size_t i = 0; i < sizeof(send_doc) / sizeof(send_doc[0]); i++) {
		CU_ASSERT_EQUAL_FATAL(ras_xml_xpath(A, d, send_doc[i].xpath, ns, &v, &n), 0);
		CU_ASSERT_TRUE(n >= 1 && strcmp(v[0], send_doc[i].want) == 0);
		if (n < 1 || strcmp(v[0], send_doc[i].want) != 0)
			fprintf(stderr, "%s: \"%s\", want \"%s\"\n", send_doc[i].xpath, n ? v[0] : "(none)",
			    send_doc[i].want);
	}
	CU_ASSERT_EQUAL(ras_xml_xpath(A, d, "//f:MessageHeader/f:event/f:code/@value", ns, &v, &n), 0);
	CU_ASSERT_STRING_EQUAL(v[0], ras_itk3_event(kind));
	/* with GPPROVIDER routing there is no destination (GPCM-SD-049) */
	CU_ASSERT_EQUAL(ras_xml_xpath(A, d, "count(//f:MessageHeader/f:destination)", ns, &v, &n), 0);
	CU_ASSERT_STRING_EQUAL(v[0], gpprovider ? "0" : "1");
	if (kind == RAS_ITK3_TOC_OUTPATIENT) {
		/* the mandatory outpatient letter sections, GP actions first */
		static const char *const mandatory[] = { "886921000000105", "1077881000000105",
			"887181000000106", "886711000000101", "886731000000109", "887231000000104" };

		for (size_t i = 0; i < 6; i++) {
			CU_ASSERT_EQUAL(ras_xml_xpath(A, d, ras_arena_printf(A, "count(//f:Composition/f:section"
			    "[f:code/f:coding/f:code/@value='%s'])", mandatory[i]), ns, &v, &n), 0);
			CU_ASSERT_STRING_EQUAL(v[0], "1");
		}
		CU_ASSERT_EQUAL(ras_xml_xpath(A, d, "//f:Composition/f:section[1]/f:code/f:coding/f:code/@value",
		    ns, &v, &n), 0);
		CU_ASSERT_STRING_EQUAL(v[0], "887201000000105");
		CU_ASSERT_EQUAL(ras_xml_xpath(A, d, "//f:Composition/f:type/f:coding/f:code/@value", ns, &v, &n), 0);
		CU_ASSERT_STRING_EQUAL(v[0], "823681000000100");
	}
}

/* Golden ITK3 messages for every letter kind and route. */
static void
golden_itk3_messages(void)
{
	static const struct { const char *name; enum ras_doc_kind kind; const char *ref, *extra; } letters[] = {
		{ "triage-outcome", RAS_DOC_TRIAGE_OUTCOME, "r4/referral-collection-urn.json",
		  "decision-midnotts-accept.json" },
		{ "gp-2ww-notice", RAS_DOC_GP_2WW_NOTICE, "r4/referral-collection-urn.json",
		  "decision-midnotts-2ww.json" },
		{ "notification-letter", RAS_DOC_NOTIFICATION_LETTER, "r4/referral-collection-urn.json",
		  "episode-notification.json" },
		{ "discharge-summary", RAS_DOC_DISCHARGE_SUMMARY, "r4/referral-collection-urn.json",
		  "episode-discharge-full.json" },
	};

	for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++) {
		struct ras_doc_input in = input(letters[i].kind, "midnotts", letters[i].ref);
		json_t *b;
		const char *x;

		if (strncmp(letters[i].extra, "decision", 8) == 0)
			in.decision = decision(letters[i].extra);
		else
			in.episode = episode(letters[i].extra);
		b = build_ok(&in);
		x = itk3_xml(b, RAS_ITK3_SEND_DOCUMENT, NULL, GOLDEN_PDF, sizeof(GOLDEN_PDF) - 1);
		itk3_structure(x, RAS_ITK3_SEND_DOCUMENT, true);
		CU_ASSERT_TRUE(ras_test_golden(ras_arena_printf(A, "itk3/midnotts-%s-send-document-gpprovider.xml",
		    letters[i].name), x, strlen(x)));
		x = itk3_xml(b, RAS_ITK3_SEND_DOCUMENT, "X26ABC2", GOLDEN_PDF, sizeof(GOLDEN_PDF) - 1);
		itk3_structure(x, RAS_ITK3_SEND_DOCUMENT, false);
		CU_ASSERT_TRUE(ras_test_golden(ras_arena_printf(A, "itk3/midnotts-%s-send-document-mailbox.xml",
		    letters[i].name), x, strlen(x)));
		x = itk3_xml(b, RAS_ITK3_TOC_OUTPATIENT, "X26ABC2", GOLDEN_PDF, sizeof(GOLDEN_PDF) - 1);
		itk3_structure(x, RAS_ITK3_TOC_OUTPATIENT, false);
		CU_ASSERT_TRUE(ras_test_golden(ras_arena_printf(A, "itk3/midnotts-%s-toc-outpatient-letter.xml",
		    letters[i].name), x, strlen(x)));
	}
}

/* The real letter PDF goes in whole (base64) and the subject is the Send
 * Document format; the same input gives the same message. */
static void
itk3_carries_the_real_pdf(void)
{
	struct ras_doc_input in = input(RAS_DOC_DISCHARGE_SUMMARY, "midnotts", "r4/referral-collection-urn.json");
	struct ras_buf pdf = RAS_BUF_INIT(0), back = RAS_BUF_INIT(0);
	static const char *const ns[] = { "f", "http://hl7.org/fhir", NULL };
	struct ras_xml_doc *d;
	const char *x, *y, **v;
	json_t *b;
	size_t n;

	in.episode = episode("episode-discharge-full.json");
	b = build_ok(&in);
	CU_ASSERT_FATAL(ras_pdf_document(A, b, in.profile, NULL, &pdf) == 0);
	x = itk3_xml(b, RAS_ITK3_SEND_DOCUMENT, NULL, pdf.data, pdf.len);
	y = itk3_xml(b, RAS_ITK3_SEND_DOCUMENT, NULL, pdf.data, pdf.len);
	CU_ASSERT_STRING_EQUAL(x, y);
	CU_ASSERT_FATAL(ras_xml_parse(A, x, strlen(x), 1 << 26, &d) == 0);
	CU_ASSERT_FATAL(ras_xml_xpath(A, d, "//f:Binary/f:content/@value", ns, &v, &n) == 0 && n == 1);
	CU_ASSERT_FATAL(ras_crypto_base64_decode(v[0], strlen(v[0]), &back) == 0);
	CU_ASSERT_EQUAL(back.len, pdf.len);
	CU_ASSERT_EQUAL(memcmp(back.data, pdf.data, pdf.len), 0);
	CU_ASSERT_STRING_EQUAL(ras_itk3_subject(A, b, "Mid Notts Community Pain Management Service", "RASMN", 2),
	    "Discharge summary for Mrs Jane Example, NHS Number: 9990000018, seen at Mid Notts Community "
	    "Pain Management Service, RASMN, Version: 2");
	CU_ASSERT_EQUAL(ras_itk3_kind_parse("gp-connect-send-document"), RAS_ITK3_SEND_DOCUMENT);
	CU_ASSERT_STRING_EQUAL(ras_itk3_workflow(RAS_ITK3_SEND_DOCUMENT), "GPCONNECT_SEND_DOCUMENT");
	CU_ASSERT_STRING_EQUAL(ras_itk3_workflow(RAS_ITK3_TOC_OUTPATIENT), "TOC_FHIR_OP_ATTEN");
	CU_ASSERT_EQUAL(ras_itk3_kind_parse("r4"), RAS_ITK3_NONE);
	/* no PDF, no message */
	{
		struct ras_itk3_msg m = { .kind = RAS_ITK3_SEND_DOCUMENT, .message_id = "x",
			.sender_reference = "r", .sender_ods = "RASMN", .source_mailbox = "X26ABC1" };
		struct ras_buf xml = RAS_BUF_INIT(0);

		CU_ASSERT_EQUAL(ras_itk3_message(A, b, &m, &xml), RAS_EINVALID);
		ras_buf_free(&xml);
	}
	ras_buf_free(&pdf);
	ras_buf_free(&back);
}

/* ITK3 responses as the fake GP writes them, and what is refused. */
static void
itk3_responses_parsed_and_refused(void)
{
	struct ras_doc_input in = input(RAS_DOC_TRIAGE_OUTCOME, "midnotts", "r4/referral-collection-urn.json");
	struct ras_itk3_response r;
	const char *req;
	char hid[37], *x;
	static const struct { const char *code; enum ras_itk3_ack_type type; bool ok; const char *meaning; } c[] = {
		{ "20013", RAS_ITK3_ACK_INFRASTRUCTURE, true, "Success" },
		{ "20009", RAS_ITK3_ACK_INFRASTRUCTURE, false, "Payload validation failure" },
		{ "30001", RAS_ITK3_ACK_BUSINESS, true, "Patient known here" },
		{ "30002", RAS_ITK3_ACK_BUSINESS, false, "Patient not known here" },
		{ "30003", RAS_ITK3_ACK_BUSINESS, false, "Patient no longer at this clinical setting" },
		{ "30004", RAS_ITK3_ACK_BUSINESS, false, "Patient known here and recently deceased" },
	};

	in.decision = decision("decision-midnotts-accept.json");
	req = itk3_xml(build_ok(&in), RAS_ITK3_SEND_DOCUMENT, NULL, GOLDEN_PDF, sizeof(GOLDEN_PDF) - 1);
	ras_itk3_header_id(hid, "5b7a4c2e-1f0d-5c8e-9a3b-2d4e6f8a0b1c");
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		x = fake_gp_response(req, c[i].code, "X26ABC2");
		CU_ASSERT_PTR_NOT_NULL_FATAL(x);
		CU_ASSERT_EQUAL(ras_itk3_parse_response(A, x, strlen(x), &r), 0);
		CU_ASSERT_STRING_EQUAL(r.itk_code, c[i].code);
		CU_ASSERT_EQUAL(r.type, c[i].type);
		CU_ASSERT_EQUAL(r.success, c[i].ok);
		CU_ASSERT_STRING_EQUAL(r.request_id, hid);
		CU_ASSERT_STRING_EQUAL(r.sender_reference, "rasd-42-triage-outcome-2");
		CU_ASSERT_STRING_EQUAL(r.response_code, c[i].code[0] == '2' && !c[i].ok ? "fatal-error" : "ok");
		CU_ASSERT_STRING_EQUAL(ras_itk3_code_meaning(c[i].code), c[i].meaning);
		free(x);
	}
	/* refused, with a reason */
	CU_ASSERT_EQUAL(ras_itk3_parse_response(A, "{\"resourceType\":\"Bundle\"}", 26, &r), RAS_EINVALID);
	x = "<?xml version=\"1.0\"?><!DOCTYPE b [<!ENTITY x \"y\">]><Bundle xmlns=\"http://hl7.org/fhir\"/>";
	CU_ASSERT_EQUAL(ras_itk3_parse_response(A, x, strlen(x), &r), RAS_EINVALID);
	/* the request itself is no response */
	CU_ASSERT_EQUAL(ras_itk3_parse_response(A, req, strlen(req), &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "not an ITK3 response (event ITK007C)"));
	x = "<Bundle xmlns=\"http://hl7.org/fhir\"><entry><resource><MessageHeader><event><code value=\"ITK008M\"/>"
	    "</event><response><code value=\"ok\"/></response></MessageHeader></resource></entry></Bundle>";
	CU_ASSERT_EQUAL(ras_itk3_parse_response(A, x, strlen(x), &r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "cannot be matched"));
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "golden triage outcomes (every service, every outcome)", golden_triage_outcomes },
		{ "golden discharge summaries and patient copies", golden_discharge_and_patient_copy },
		{ "letters print clock labels, never internal names", letters_print_clock_labels },
		{ "golden notification letters, 2WW notice, FHIR XML", golden_notification_2ww_and_xml },
		{ "deterministic output and stable identifiers", deterministic_and_stable_identifier },
		{ "GP actions first, opioids highlighted", gp_actions_first_and_opioids_highlighted },
		{ "missing items listed per service", missing_items_are_listed_per_service },
		{ "refusals", refusals },
		{ "episode parsing is strict", episode_parsing_is_strict },
		{ "narrative escapes hostile text", narrative_escapes_hostile_text },
		{ "message wrapper", message_wrapper },
		{ "xhtml builder", xhtml_builder },
		{ "xhtml saver writes what dump writes", xhtml_saver_writes_what_dump_writes },
		{ "PDF letters carry the document", pdf_letters_carry_the_document },
		{ "golden ITK3 messages (every letter kind and route)", golden_itk3_messages },
		{ "ITK3 carries the real PDF", itk3_carries_the_real_pdf },
		{ "ITK3 responses parsed, bad ones refused", itk3_responses_parsed_and_refused },
		{ "PDF: a 3-page discharge summary paginates", pdf_three_page_discharge_summary },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "document", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
