/*
 * referral_gen: referrals built as a referring system would send them
 * (referral_gen.h says what and for whom).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "referral_gen.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/decision.h"
#include "ras/error.h"
#include "ras/referral_json.h"

#define MAPPINGS RAS_SOURCE_ROOT "/mappings"

struct gen gen = { .at = 1775642400 };   /* 2026-04-08 11:00 BST, a Wednesday */

const char *const gen_red_flag_codes[] = { "cauda-equina", "suspected-cancer", "fracture",
	"infection", "progressive-neurology", "other" };
const size_t gen_n_flags = sizeof(gen_red_flag_codes) / sizeof(gen_red_flag_codes[0]);

int
gen_setup(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);

	gen.arena = ras_arena_new();
	if (gen.arena == NULL || ras_mappings_load(MAPPINGS, &gen.maps) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, ras_error_last());
		return 1;
	}
	if (ras_xmlform_maps_load(MAPPINGS "/form-maps", &gen.xmaps, &problems) < 0) {
		fprintf(stderr, "form maps: %s%s\n", ras_error_last(), problems.data ? problems.data : "");
		ras_buf_free(&problems);
		return 1;
	}
	ras_buf_free(&problems);
	gen.n_services = ras_mappings_services(gen.maps, gen.services, RAS_SERVICES_MAX);
	return gen.n_services > 0 ? 0 : 1;
}

void
gen_teardown(void)
{
	ras_xmlform_maps_free(gen.xmaps);
	ras_mappings_free(gen.maps);
	ras_arena_free(gen.arena);
	gen.xmaps = NULL;
	gen.maps = NULL;
	gen.arena = NULL;
}

void
gen_reset_arena(void)
{
	ras_arena_free(gen.arena);
	gen.arena = ras_arena_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(gen.arena);
}

void
gen_seed(long seed)
{
	gen.rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
}

/* ---- building referrals ---------------------------------------------------- */

json_t *
gen_load_json(const char *rel)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(rel), &len);
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse(data, len, 0, &j), 0);
	free(data);
	return j;
}

json_t *
gen_entry_of(json_t *bundle, const char *type, size_t *index)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(bundle, "entry"), i, e)
		if (strcmp(ras_json_str(json_object_get(e, "resource"), "resourceType"), type) == 0) {
			if (index)
				*index = i;
			return json_object_get(e, "resource");
		}
	return NULL;
}

/* The referral form of the base bundle, detached (new reference). */
json_t *
gen_base_form(void)
{
	json_t *b = gen_load_json("triage/midnotts-accept.json");
	json_t *qr = json_deep_copy(gen_entry_of(b, "QuestionnaireResponse", NULL));

	json_decref(b);
	return qr;
}

json_t *
gen_item_of(json_t *qr, const char *link_id)
{
	json_t *it;
	size_t i;

	json_array_foreach(json_object_get(qr, "item"), i, it)
		if (strcmp(ras_json_str(it, "linkId"), link_id) == 0)
			return it;
	return NULL;
}

/* Set (or add) an item's answers: `answers` is stolen. */
void
gen_set_answers(json_t *qr, const char *link_id, json_t *answers)
{
	json_t *it = gen_item_of(qr, link_id);

	if (it == NULL) {
		it = json_pack("{s:s}", "linkId", link_id);
		json_array_append_new(json_object_get(qr, "item"), it);
	}
	json_object_set_new(it, "answer", answers);
}

void
gen_set_bool(json_t *qr, const char *link_id, bool v)
{
	gen_set_answers(qr, link_id, json_pack("[{s:b}]", "valueBoolean", v));
}

void
gen_add_red_flag(json_t *qr, const char *code)
{
	json_t *it = gen_item_of(qr, "red-flags");

	if (it == NULL) {
		gen_set_answers(qr, "red-flags", json_array());
		it = gen_item_of(qr, "red-flags");
	}
	json_array_append_new(json_object_get(it, "answer"), json_pack("{s:{s:s, s:s}}",
	    "valueCoding", "system", GEN_FORM_URL, "code", code));
}

json_t *
gen_phq9(void)
{
	return json_pack("{s:s, s:s, s:s, s:[{s:s, s:[{s:i}]}, {s:s, s:[{s:i}]}]}",
	    "resourceType", "QuestionnaireResponse", "questionnaire", GEN_PHQ9_URL "|1", "status", "completed",
	    "item", "linkId", "phq9-1", "answer", "valueInteger", 2, "linkId", "phq9-total", "answer",
	    "valueInteger", 11);
}

const char *const gen_link_names[GEN_N_LINKS] = { "supportingInfo", "basedOn", "contained",
	"bundle entry" };

/*
 * The base bundle with `form` (stolen) linked the given way, and an extra
 * PHQ-9 in supportingInfo when `extra`.
 */
json_t *
gen_bundle_with(json_t *form, enum gen_link how, bool extra)
{
	json_t *b = gen_load_json("triage/midnotts-accept.json");
	json_t *entries = json_object_get(b, "entry");
	json_t *sr = gen_entry_of(b, "ServiceRequest", NULL), *info = json_array();
	const char *sr_url = NULL;
	size_t qi;
	json_t *e;
	size_t i;

	json_array_foreach(entries, i, e)
		if (json_object_get(e, "resource") == sr)
			sr_url = ras_json_str(e, "fullUrl");
	(void)gen_entry_of(b, "QuestionnaireResponse", &qi);
	json_array_remove(entries, qi);
	json_object_del(form, "basedOn");
	switch (how) {
	case GEN_LINK_SUPPORTING:
		json_array_append_new(info, json_pack("{s:s}", "reference", "urn:uuid:form-1"));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	case GEN_LINK_BASED_ON:
		json_object_set_new(form, "basedOn", json_pack("[{s:s}]", "reference", sr_url));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	case GEN_LINK_CONTAINED:
		json_object_set_new(form, "id", json_string("form"));
		json_object_set_new(sr, "contained", json_pack("[o]", form));
		json_array_append_new(info, json_pack("{s:s}", "reference", "#form"));
		break;
	case GEN_LINK_ENTRY:
	default:
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:form-1",
		    "resource", form));
		break;
	}
	if (extra) {
		json_array_append_new(info, json_pack("{s:s}", "reference", "urn:uuid:phq-9"));
		json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", "urn:uuid:phq-9",
		    "resource", gen_phq9()));
	}
	json_object_set_new(sr, "supportingInfo", info);
	if (gen.r4_priority)
		json_object_set_new(sr, "priority", json_string(gen.r4_priority));
	return b;
}

/* Parse payload text the way intake does. */
int
gen_parse_text(const char *text, size_t len, struct ras_intake *in)
{
	ras_error_clear();
	return ras_intake_parse(gen.arena, gen.xmaps, text, len, in);
}

char *
gen_dump(const json_t *j)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_COMPACT, &b), 0);
	return ras_buf_detach(&b, NULL);
}

/* Decide an R4 bundle (stolen) for `service`; 0 or the parse error. */
int
gen_decide_bundle(json_t *bundle, const char *service, struct ras_referral *r, struct ras_decision *d)
{
	char *text = gen_dump(bundle);
	struct ras_intake in;
	int err = gen_parse_text(text, strlen(text), &in);

	free(text);
	json_decref(bundle);
	if (err < 0)
		return err;
	*r = in.referrals[0];
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(gen.arena, ras_mappings_ruleset(gen.maps, service), r, gen.at,
	    ras_mappings_calendar(gen.maps), gen.at + 60, d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(gen.arena, d), 0);
	return 0;
}

/* ---- forms as attachments ---------------------------------------------- */

static void
gen_xml_escape(struct ras_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			(void)ras_buf_puts(b, "&lt;");
		else if (*s == '&')
			(void)ras_buf_puts(b, "&amp;");
		else if (*s == '"')
			(void)ras_buf_puts(b, "&quot;");
		else
			(void)ras_buf_putc(b, *s);
	}
}

/* A QuestionnaireResponse (flat items) as FHIR XML. */
char *
gen_fhir_xml(const json_t *qr)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *it, *an;
	size_t i, k;

	(void)ras_buf_printf(&b, "<QuestionnaireResponse xmlns=\"http://hl7.org/fhir\">"
	    "<questionnaire value=\"%s\"/><status value=\"%s\"/>", ras_json_str(qr, "questionnaire"),
	    ras_json_str(qr, "status"));
	json_array_foreach(json_object_get(qr, "item"), i, it) {
		(void)ras_buf_printf(&b, "<item><linkId value=\"%s\"/>", ras_json_str(it, "linkId"));
		json_array_foreach(json_object_get(it, "answer"), k, an) {
			json_t *v;

			(void)ras_buf_puts(&b, "<answer>");
			if ((v = json_object_get(an, "valueBoolean")) != NULL)
				(void)ras_buf_printf(&b, "<valueBoolean value=\"%s\"/>", json_is_true(v) ? "true" : "false");
			else if ((v = json_object_get(an, "valueInteger")) != NULL)
				(void)ras_buf_printf(&b, "<valueInteger value=\"%lld\"/>", (long long)json_integer_value(v));
			else if ((v = json_object_get(an, "valueString")) != NULL) {
				(void)ras_buf_puts(&b, "<valueString value=\"");
				gen_xml_escape(&b, json_string_value(v));
				(void)ras_buf_puts(&b, "\"/>");
			} else if ((v = json_object_get(an, "valueCoding")) != NULL)
				(void)ras_buf_printf(&b, "<valueCoding><system value=\"%s\"/><code value=\"%s\"/></valueCoding>",
				    ras_json_str(v, "system"), ras_json_str(v, "code"));
			(void)ras_buf_puts(&b, "</answer>");
		}
		(void)ras_buf_puts(&b, "</item>");
	}
	(void)ras_buf_puts(&b, "</QuestionnaireResponse>");
	return ras_buf_detach(&b, NULL);
}

/* A QuestionnaireResponse as the XHTML layout the shipped map reads;
 * `extra_cell` adds a cell the map does not know. */
char *
gen_xhtml(const json_t *qr, const char *extra_cell)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *it, *an;
	size_t i, k;

	(void)ras_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>Referral</title>"
	    "<meta name=\"rasd-form\" content=\"community-pain-referral\"/></head><body><table>");
	json_array_foreach(json_object_get(qr, "item"), i, it) {
		const char *lid = ras_json_str(it, "linkId");

		(void)ras_buf_printf(&b, "<tr><th>%s</th><td id=\"%s\">", lid, lid);
		if (strcmp(lid, "red-flags") == 0)
			(void)ras_buf_puts(&b, "<ul>");
		json_array_foreach(json_object_get(it, "answer"), k, an) {
			json_t *v;

			if ((v = json_object_get(an, "valueBoolean")) != NULL)
				(void)ras_buf_puts(&b, json_is_true(v) ? "Yes" : "No");
			else if ((v = json_object_get(an, "valueInteger")) != NULL)
				(void)ras_buf_printf(&b, "%lld", (long long)json_integer_value(v));
			else if ((v = json_object_get(an, "valueString")) != NULL)
				gen_xml_escape(&b, json_string_value(v));
			else if ((v = json_object_get(an, "valueCoding")) != NULL)
				(void)ras_buf_printf(&b, strcmp(lid, "red-flags") == 0 ? "<li>%s</li>" : "%s",
				    ras_json_str(v, "code"));
		}
		if (strcmp(lid, "red-flags") == 0)
			(void)ras_buf_puts(&b, "</ul>");
		(void)ras_buf_puts(&b, "</td></tr>");
	}
	if (extra_cell)
		(void)ras_buf_printf(&b, "<tr><th>More</th><td id=\"%s\">Yes</td></tr>", extra_cell);
	(void)ras_buf_puts(&b, "</table></body></html>\n");
	return ras_buf_detach(&b, NULL);
}

const char *const gen_route_names[GEN_N_ROUTES] = { "e-RS JSON", "e-RS FHIR XML", "e-RS XHTML",
	"e-RS contained" };

void
gen_ers_payloads(const json_t *form, enum gen_route route, bool extra, const char *extra_cell,
    char **referral, char **attachment, char **other)
{
	json_t *rr = gen_load_json("ers/referral-BookedDBS.json");

	*attachment = NULL;
	*other = NULL;
	if (route == GEN_ROUTE_ERS_CONTAINED) {
		/* the form inside the ReferralRequest itself (STU3 reference) */
		json_t *f = json_deep_copy(form);

		json_object_set_new(f, "questionnaire", json_pack("{s:s}", "reference",
		    ras_json_str(form, "questionnaire")));
		if (json_object_get(rr, "contained") == NULL)
			json_object_set_new(rr, "contained", json_array());
		json_array_append_new(json_object_get(rr, "contained"), f);
		if (extra)
			json_array_append_new(json_object_get(rr, "contained"), gen_phq9());
	} else {
		switch (route) {
		case GEN_ROUTE_ERS_JSON: *attachment = gen_dump(form); break;
		case GEN_ROUTE_ERS_XML: *attachment = gen_fhir_xml(form); break;
		default: *attachment = gen_xhtml(form, extra_cell); break;
		}
		if (extra) {
			json_t *pq = gen_phq9();

			*other = gen_dump(pq);
			json_decref(pq);
		}
	}
	*referral = gen_dump(rr);
	json_decref(rr);
}

/*
 * The e-RS route decided in-process: the A005 referral, then its form as
 * an attachment, and an extra PHQ-9 attachment when `extra`; as the store
 * puts them together (ras_store_referral_form for rasd's form,
 * ras_store_other_form for the others).
 */
int
gen_decide_ers(const json_t *form, enum gen_route route, bool extra, const char *extra_cell,
    const char *service, struct ras_referral *r, struct ras_decision *d)
{
	char *ref, *att, *oth;
	struct ras_intake in, fin, pin;
	int err;

	gen_ers_payloads(form, route, extra, extra_cell, &ref, &att, &oth);
	if ((err = gen_parse_text(ref, strlen(ref), &in)) < 0)
		goto out;
	*r = in.referrals[0];
	if (att) {
		if ((err = gen_parse_text(att, strlen(att), &fin)) < 0)
			goto out;
		CU_ASSERT_EQUAL_FATAL(fin.kind, RAS_PAYLOAD_FORM);
		if (ras_referral_is_rasd_form(fin.form->questionnaire)) {
			r->form = *fin.form;
			r->has_form = true;
		}
	}
	if (oth) {
		CU_ASSERT_EQUAL_FATAL(gen_parse_text(oth, strlen(oth), &pin), 0);
		r->other_forms = pin.form;
		r->n_other_forms = 1;
	}
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(gen.arena, ras_mappings_ruleset(gen.maps, service), r, gen.at,
	    ras_mappings_calendar(gen.maps), gen.at + 60, d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(gen.arena, d), 0);
out:
	free(ref);
	free(att);
	free(oth);
	return err;
}

bool
gen_returned_or_accepted(const struct ras_decision *d)
{
	return d->outcome == RAS_OUTCOME_RETURN || d->outcome == RAS_OUTCOME_ACCEPT;
}

uint32_t
gen_next_rand(void)
{
	/* xorshift64*: small, deterministic, good enough to spread cases */
	gen.rng ^= gen.rng >> 12;
	gen.rng ^= gen.rng << 25;
	gen.rng ^= gen.rng >> 27;
	return (uint32_t)((gen.rng * 2685821657736338717ULL) >> 32);
}

bool
gen_coin(unsigned pct)
{
	return gen_next_rand() % 100 < pct;
}

long
gen_env_long(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	v = strtol(s, &end, 10);
	return *end == '\0' && v > 0 ? v : def;
}

/* A canonical text of a form's answers (sorted), to compare routes. */
char *
gen_answers_key(const struct ras_form *f)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	char **lines = calloc(f->n_answers + 1, sizeof(char *));

	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *an = &f->answers[i];
		char buf[512];

		switch (an->type) {
		case RAS_ANSWER_BOOLEAN: snprintf(buf, sizeof(buf), "%s=%d", an->link_id, an->b); break;
		case RAS_ANSWER_INTEGER: snprintf(buf, sizeof(buf), "%s=%lld", an->link_id, (long long)an->i); break;
		case RAS_ANSWER_CODING: snprintf(buf, sizeof(buf), "%s=%s", an->link_id, an->code); break;
		default: snprintf(buf, sizeof(buf), "%s=%.100s", an->link_id, an->s ? an->s : ""); break;
		}
		lines[i] = strdup(buf);
	}
	for (size_t i = 0; i < f->n_answers; i++)
		for (size_t k = i + 1; k < f->n_answers; k++)
			if (strcmp(lines[k], lines[i]) < 0) {
				char *t = lines[i];

				lines[i] = lines[k];
				lines[k] = t;
			}
	for (size_t i = 0; i < f->n_answers; i++) {
		(void)ras_buf_printf(&b, "%s;", lines[i]);
		free(lines[i]);
	}
	free(lines);
	return ras_buf_detach(&b, NULL);
}

void
gen_describe(const struct ras_decision *d, char *out, size_t size)
{
	snprintf(out, size, "%s%s%s%s", ras_decision_outcome_name(d->outcome),
	    d->onward_target ? " to " : "", d->onward_target ? d->onward_target : "",
	    d->final ? " (final)" : "");
}

/* A random referral form: every item answered or not, any red flags. */
json_t *
gen_random_form(bool *danger)
{
	static const char *const bools[] = { "pain-daily", "investigations-complete",
		"red-flags-screened", "cancer-related-pain", "medication-optimised", "accepts-chronic-pain",
		"motivated-to-engage", "acute-mental-illness", "severe-mental-health", "substance-misuse",
		"medically-stable", "under-investigation", "requires-surgical-opinion",
		"post-op-or-trauma-complication", "pregnancy-related-pain", "cfs-me",
		"secondary-care-advice-sought", "gp-consent", "opioids", "booking-assistance", "dependants" };
	json_t *form = gen_base_form();

	*danger = false;
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (gen_coin(15))
			gen_set_bool(form, bools[i], gen_coin(50));
	if (gen_coin(20))
		gen_set_answers(form, "pain-duration-weeks", json_pack("[{s:i}]", "valueInteger",
		    (int)(gen_next_rand() % 60)));
	if (gen_coin(20)) {
		gen_set_bool(form, "suspected-cancer", true);
		*danger = true;
	}
	for (size_t k = 0; k < gen_n_flags; k++)
		if (gen_coin(10)) {
			gen_add_red_flag(form, gen_red_flag_codes[k]);
			*danger = true;
		}
	return form;
}

/* ---- what the store made of them ------------------------------------------- */

/* A payload under another UBRN (every occurrence; the same length). */
char *
gen_with_ubrn(const char *text, const char *from, const char *ubrn)
{
	char *s = strdup(text);
	size_t n = strlen(from);

	CU_ASSERT_FATAL(s != NULL && strlen(ubrn) == n);
	for (char *p = strstr(s, from); p; p = strstr(p + n, from))
		memcpy(p, ubrn, n);
	return s;
}

void
gen_expect(const struct ras_decision *d, struct gen_sent *s)
{
	snprintf(s->expect, sizeof(s->expect), "%s|%s|%d", ras_decision_outcome_name(d->outcome),
	    d->onward_target ? d->onward_target : "", d->final ? 1 : 0);
	s->facts = d->facts ? gen_dump(d->facts) : strdup("{}");
}

void
gen_sent_free(struct gen_sent *s)
{
	free(s->facts);
	free(s->answers);
	s->facts = NULL;
	s->answers = NULL;
}

/* The facts the stored decision of `ubrn` and the in-process one disagree on. */
static void
facts_differing(struct ras_db *db, const struct gen_sent *s)
{
	char *stored = ras_test_sql_text(db, "SELECT d.facts::text FROM referrals r JOIN current_decisions d"
	    " ON d.referral_id = r.id WHERE r.ubrn = $1 ORDER BY r.id DESC LIMIT 1", s->ubrn);
	char *where = ras_test_sql_text(db, "SELECT coalesce(r.service, '-') || ', the route''s hint '"
	    " || coalesce(i.service_hint, '-') || ', from ' || i.source FROM referrals r JOIN inbox i"
	    " ON i.id = r.payload_id WHERE r.ubrn = $1 ORDER BY r.id DESC LIMIT 1", s->ubrn);
	json_t *a = NULL, *b = NULL, *v;
	const char *k;

	fprintf(stderr, "  stored for service %s\n", where ? where : "(none)");
	free(where);
	if (stored && ras_json_parse(stored, strlen(stored), 0, &a) == 0 &&
	    ras_json_parse(s->facts, strlen(s->facts), 0, &b) == 0)
		json_object_foreach(b, k, v) {
			json_t *w = json_object_get(a, k);

			if (w == NULL || !json_equal(v, w)) {
				char *x = gen_dump(v), *y = w ? gen_dump(w) : strdup("(none)");

				fprintf(stderr, "  fact %s: in-process %.120s, stored %.120s\n", k, x, y);
				free(x);
				free(y);
			}
		}
	json_decref(a);
	json_decref(b);
	free(stored);
}

/* What the store has for one sent referral, checked. */
void
gen_check_stored(struct ras_db *db, const struct gen_sent *s, long seed)
{
	char *got = ras_test_sql_text(db, "SELECT d.outcome || '|' || coalesce(d.onward_target, '') || '|'"
	    " || d.final::int FROM referrals r JOIN current_decisions d ON d.referral_id = r.id"
	    " WHERE r.ubrn = $1 ORDER BY r.id DESC LIMIT 1", s->ubrn);
	char *doc = ras_test_sql_text(db, "SELECT doc::text FROM referrals WHERE ubrn = $1"
	    " ORDER BY id DESC LIMIT 1", s->ubrn);
	int64_t live = ras_test_sql_int(db, "SELECT count(*) FROM ers_outcomes WHERE ubrn = $1"
	    " AND state <> 'superseded'", s->ubrn);
	json_t *j = NULL;
	struct ras_referral r;

	if (got == NULL || strcmp(got, s->expect) != 0) {
		CU_FAIL("a referral through the store was decided otherwise than in-process");
		fprintf(stderr, "seed %ld %s via %s: stored %s, in-process %s\n", seed, s->service, s->route,
		    got ? got : "(no decision)", s->expect);
		facts_differing(db, s);
	}
	if (s->danger && (got == NULL || strncmp(got, "return|", 7) == 0 || strncmp(got, "accept|", 7) == 0)) {
		CU_FAIL("a referral reporting danger was returned or accepted through the store");
		fprintf(stderr, "seed %ld %s via %s: %s\n", seed, s->service, s->route, got ? got : "(none)");
	}
	if (s->danger && live != 0) {
		CU_FAIL("a referral reporting danger has an e-RS outcome on its way");
		fprintf(stderr, "seed %ld %s via %s: %lld\n", seed, s->service, s->route, (long long)live);
	}
	/* the form stored has the answers sent */
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(doc, strlen(doc), 0, &j), 0);
	CU_ASSERT_EQUAL_FATAL(ras_referral_json_load(gen.arena, j, &r), 0);
	{
		char *k = gen_answers_key(&r.form);

		if (strcmp(k, s->answers) != 0) {
			CU_FAIL("an answer was dropped or changed through the store");
			fprintf(stderr, "seed %ld %s via %s:\n sent %s\n kept %s\n", seed, s->service, s->route,
			    s->answers, k);
		}
		free(k);
	}
	json_decref(j);
	free(doc);
	free(got);
}
