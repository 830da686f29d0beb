/* document: FHIR R4 document builders (see include/ras/document.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/document.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/form.h"
#include "ras/limits.h"
#include "ras/xml.h"

#define SYS_RFC4122   "https://tools.ietf.org/html/rfc4122"
#define SYS_HEADINGS  "https://fhir.hl7.org.uk/CodeSystem/UKCore-RecordStandardHeadings"
#define SYS_VERIFY    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
#define SYS_KIND      "urn:rasd:document-kind"
#define SYS_EVENT     "https://fhir.nhs.uk/CodeSystem/message-event"
#define PROFILE_PATIENT "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"

static const char *const kind_names[] = { NULL, "triage-outcome", "gp-2ww-notice",
	"notification-letter", "discharge-summary", "patient-copy" };

const char *
ras_document_kind_name(enum ras_doc_kind k)
{
	return (k >= RAS_DOC_TRIAGE_OUTCOME && k <= RAS_DOC_PATIENT_COPY) ? kind_names[k] : "unknown";
}

enum ras_doc_kind
ras_document_kind_parse(const char *s)
{
	for (int k = RAS_DOC_TRIAGE_OUTCOME; s && k <= RAS_DOC_PATIENT_COPY; k++)
		if (strcmp(kind_names[k], s) == 0)
			return (enum ras_doc_kind)k;
	return 0;
}

bool
ras_document_kind_needs_episode(enum ras_doc_kind k)
{
	return k == RAS_DOC_NOTIFICATION_LETTER || k == RAS_DOC_DISCHARGE_SUMMARY ||
	    k == RAS_DOC_PATIENT_COPY;
}

void
ras_document_uuid(char out[37], const char *fmt, ...)
{
	char name[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	ras_crypto_uuid_v5(name, out);
}

/* --- the builder state --------------------------------------------------- */

struct b {
	struct ras_arena *a;
	const struct ras_doc_input *in;
	const struct ras_referral *r;
	const struct ras_episode *ep;
	const struct ras_decision *d;
	const struct ras_dockind *dk;      /* the content (for a patient copy: what it copies) */
	enum ras_doc_kind kind;            /* the content kind */
	const char *key;
	char doc[37], comp[37], patient[37], provider[37], gp[37], reforg[37], refprac[37],
	    refrole[37], enc[37], keyworker[37];
	bool has_gp, has_reforg, has_refprac, has_refrole, has_enc, has_keyworker;
	struct ras_xhtml_saver *saver;     /* the sections' narratives (NULL: one each) */
	int err;
};

static json_t *
oom(struct b *b)
{
	if (b->err == 0)
		b->err = ras_error_code(RAS_ENOMEM, "out of memory");
	return NULL;
}

/* Set key only when value is non-NULL (steals value). */
static void
put(struct b *b, json_t *obj, const char *key, json_t *value)
{
	if (b->err || obj == NULL) {
		json_decref(value);
		return;
	}
	if (value == NULL) {
		oom(b);
		return;
	}
	if (json_object_set_new(obj, key, value) != 0)
		oom(b);
}

static void
puts_opt(struct b *b, json_t *obj, const char *key, const char *s)
{
	if (s)
		put(b, obj, key, json_string(s));
}

static void
push(struct b *b, json_t *arr, json_t *value)
{
	if (b->err || arr == NULL) {
		json_decref(value);
		return;
	}
	if (value == NULL || json_array_append_new(arr, value) != 0)
		oom(b);
}

static json_t *
ref(const char *uuid)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "urn:uuid:%s", uuid);
	return json_pack("{s:s}", "reference", buf);
}

static json_t *
ods_identifier(const char *ods)
{
	return json_pack("{s:s,s:s}", "system", RAS_SYS_ODS, "value", ods);
}

/* --- human-readable values ----------------------------------------------- */

static const char *const months[] = { "January", "February", "March", "April", "May", "June",
	"July", "August", "September", "October", "November", "December" };
static const char *const weekdays[] = { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
	"Saturday", "Sunday" };

static const char *
human_date(struct ras_arena *a, const struct ras_date *d, bool weekday)
{
	if (!ras_date_valid(d))
		return "(invalid date)";
	if (weekday)
		return ras_arena_printf(a, "%s %d %s %d", weekdays[ras_date_weekday(d) - 1], d->day,
		    months[d->month - 1], d->year);
	return ras_arena_printf(a, "%d %s %d", d->day, months[d->month - 1], d->year);
}

static const char *
human_instant(struct ras_arena *a, int64_t t)
{
	struct ras_date d;

	ras_time_uk_date(t, &d, NULL);
	return human_date(a, &d, false);
}

static const char *
nhs_spaced(struct ras_arena *a, const char *n)
{
	if (n == NULL)
		return NULL;
	if (strlen(n) != 10)
		return n;
	return ras_arena_printf(a, "%.3s %.3s %.4s", n, n + 3, n + 6);
}

static const char *
patient_name(struct b *b)
{
	const struct ras_patient *p = &b->r->patient;

	if (p->given && p->family)
		return ras_arena_printf(b->a, "%s%s%s %s", p->prefix ? p->prefix : "", p->prefix ? " " : "",
		    p->given, p->family);
	return p->family ? p->family : p->given;
}

static const char *
outcome_text(struct ras_arena *a, const struct ras_decision *d)
{
	switch (d->outcome) {
	case RAS_OUTCOME_ACCEPT: return "Accepted into the service";
	case RAS_OUTCOME_RETURN: return "Returned to the referrer with advice";
	case RAS_OUTCOME_REVIEW: return "Awaiting clinical review";
	case RAS_OUTCOME_ONWARD: break;
	}
	if (d->onward_target == NULL)
		return "Referred on to another service";
	if (strcmp(d->onward_target, "two-week-wait") == 0)
		return "Referred on: two-week-wait (suspected cancer) pathway";
	if (strcmp(d->onward_target, "secondary-care") == 0)
		return "Referred on to secondary care";
	if (strcmp(d->onward_target, "mental-health") == 0)
		return "Referred on to mental health services";
	return ras_arena_printf(a, "Referred on: %s", d->onward_target);
}

/* What a letter says for a clock: the label a reader understands, never
 * rasd's internal name (issue 12). */
const char *
ras_document_deadline_label(const char *kind)
{
	static const struct { const char *k, *label; } labels[] = {
		{ "triage", "Triage completed" },
		{ "clinical-review", "A clinician reviews the referral" },
		{ "return", "Referral returned to the referrer" },
		{ "onward", "Onward referral made" },
		{ "gp-notification", "GP informed" },
		{ "gp-2ww-notice", "GP informed" },
		{ "contact", "The service contacts the patient to arrange an appointment" },
		{ "assessment", "Assessment" },
		{ "first-appointment", "First appointment" },
		{ "first-appointment-limit", "First appointment at the latest" },
		{ "treatment", "Treatment starts" },
		{ "treatment-start", "Treatment starts" },
		{ "pathway-end", "Care with the service completed" },
		{ "discharge-summary", "Discharge summary sent to the GP" },
		{ "care-plan", "Care plan sent to the GP" },
		{ "notification-letter", "Letter to the GP" },
	};

	for (size_t i = 0; kind && i < sizeof(labels) / sizeof(labels[0]); i++)
		if (strcmp(labels[i].k, kind) == 0)
			return labels[i].label;
	return "Next step";
}

/* Free text: each line its own paragraph. */
static void
paragraphs(struct b *b, struct ras_xhtml *x, const char *text, const char *none)
{
	const char *p = text;

	if (text == NULL || *text == '\0') {
		ras_xml_xhtml_leaf(x, "p", "none", none);
		return;
	}
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len)
			ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_strndup(b->a, p, len));
		p = nl ? nl + 1 : NULL;
	}
}

static void
row(struct ras_xhtml *x, const char *th, const char *td)
{
	if (td == NULL)
		return;
	ras_xml_xhtml_open(x, "tr", NULL);
	ras_xml_xhtml_leaf(x, "th", NULL, th);
	ras_xml_xhtml_leaf(x, "td", NULL, td);
	ras_xml_xhtml_close(x);
}

/* --- sections ------------------------------------------------------------ */

struct secdef {
	const char *id, *code, *display, *title;
};

static const struct secdef secdefs[] = {
	{ "actions", "plan-and-requested-actions", "Plan and requested actions",
	  "Actions for the referrer and GP" },
	{ "gp-actions", "plan-and-requested-actions", "Plan and requested actions",
	  "Actions for the GP" },
	{ "outcome", "outcome", "Outcome", "Triage outcome" },
	{ "advice", "information-and-advice-given", "Information and advice given",
	  "Reasons and advice" },
	{ "next-steps", "plan", "Plan", "What happens next" },
	{ "referral-details", "referral-details", "Referral details", "Referral details" },
	{ "reason-for-referral", "reason-for-referral", "Reason for referral", "Reason for referral" },
	{ "patient-demographics", "patient-demographics", "Patient demographics", "Patient details" },
	{ "person-completing-record", "person-completing-record", "Person completing record",
	  "Decision made by" },
	{ "contact-service", "contact-for-further-information", "Contact for further information",
	  "How to contact the service" },
	{ "distribution-list", "distribution-list", "Distribution list", "Copies sent to" },
	{ "dates", "discharge-details", "Discharge details", "Dates of care" },
	{ "diagnosis", "diagnoses", "Diagnoses", "Diagnosis" },
	{ "investigations", "investigations-and-results", "Investigations and results",
	  "Investigations" },
	{ "test-results", "investigation-results", "Investigation results", "Test results" },
	{ "fit-for-procedure", "assessments", "Assessments",
	  "Fitness for surgery or procedure" },
	{ "treatment-summary", "treatments-and-interventions", "Treatments and interventions",
	  "Treatment summary" },
	{ "outcomes", "outcome", "Outcome", "Outcomes" },
	{ "medication-changes", "medications-and-medical-devices", "Medications and medical devices",
	  "Medication changes" },
	{ "management-plan", "plan", "Plan", "Management plan" },
	{ "self-management-advice", "information-and-advice-given", "Information and advice given",
	  "Self-management advice" },
	{ "key-worker", "professional-contacts", "Professional contacts",
	  "Responsible clinician or key worker" },
	{ "onward-referral", "outbound-referral", "Outbound referral", "Onward referral" },
	{ "re-referral-indicators", "future", "Future", "When to come back to the service" },
	{ "peer-support", "signpost-details", "Signpost details", "Peer support" },
};

static const struct secdef *
secdef(const char *id)
{
	for (size_t i = 0; i < sizeof(secdefs) / sizeof(secdefs[0]); i++)
		if (strcmp(secdefs[i].id, id) == 0)
			return &secdefs[i];
	return NULL;
}

static void
sec_actions(struct b *b, struct ras_xhtml *x)
{
	const struct ras_decision *d = b->d;

	ras_xml_xhtml_open(x, "ul", "actions");
	if (b->kind == RAS_DOC_GP_2WW_NOTICE) {
		ras_xml_xhtml_leaf(x, "li", "alert",
		    "This referral has been assessed as a potential two-week-wait (suspected cancer) "
		    "referral and is being referred on to the two-week-wait pathway.");
		ras_xml_xhtml_leaf(x, "li", NULL,
		    "Please make sure the patient knows about the urgent referral and check that it is "
		    "received; contact the service if you have any concern.");
	} else if (d->outcome == RAS_OUTCOME_RETURN) {
		ras_xml_xhtml_leaf(x, "li", "alert",
		    "The referral has not been accepted and is returned to you with the advice below.");
		ras_xml_xhtml_leaf(x, "li", NULL,
		    "Please review the advice and, when the referral criteria are met, refer again using "
		    "the current referral form.");
	} else if (d->outcome == RAS_OUTCOME_ONWARD) {
		ras_xml_xhtml_leaf(x, "li", NULL, ras_arena_printf(b->a,
		    "No action is needed to refer the patient on: %s.", outcome_text(b->a, d)));
		ras_xml_xhtml_leaf(x, "li", NULL, "Please tell the patient about the onward referral.");
	} else {
		ras_xml_xhtml_leaf(x, "li", NULL, "No action is needed: the patient has been accepted and the "
		    "service will contact them.");
	}
	ras_xml_xhtml_close(x);
}

static void
sec_outcome(struct b *b, struct ras_xhtml *x)
{
	ras_xml_xhtml_leaf(x, "p", "outcome", outcome_text(b->a, b->d));
	if (b->d->decided_at)
		ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(b->a, "Decided on %s.",
		    human_instant(b->a, b->d->decided_at)));
}

static void
sec_advice(struct b *b, struct ras_xhtml *x)
{
	size_t shown = 0;

	ras_xml_xhtml_open(x, "ul", NULL);
	for (size_t i = 0; i < b->d->n_reasons; i++) {
		const struct ras_reason *r = &b->d->reasons[i];
		const char *text = r->advice;

		if (text == NULL && b->d->outcome == RAS_OUTCOME_ACCEPT)
			text = "The referral meets the service's referral criteria";
		else if (text == NULL && r->rule)
			text = ras_arena_printf(b->a, "Rule %s", r->rule);
		if (text == NULL)
			continue;
		ras_xml_xhtml_open(x, "li", NULL);
		ras_xml_xhtml_text(x, text);
		if (r->clause)
			ras_xml_xhtml_leaf(x, "span", "clause", ras_arena_printf(b->a, " (%s)", r->clause));
		ras_xml_xhtml_close(x);
		shown++;
	}
	if (shown == 0)
		ras_xml_xhtml_leaf(x, "li", NULL, "No further advice.");
	ras_xml_xhtml_close(x);
}

static void
sec_next_steps(struct b *b, struct ras_xhtml *x)
{
	size_t shown = 0;

	ras_xml_xhtml_open(x, "ul", NULL);
	for (size_t i = 0; i < b->d->n_deadlines; i++) {
		const struct ras_deadline *dl = &b->d->deadlines[i];

		if (dl->kind == NULL || strcmp(dl->kind, "triage") == 0)
			continue;
		ras_xml_xhtml_open(x, "li", NULL);
		ras_xml_xhtml_text(x, ras_arena_printf(b->a, "%s: by %s", ras_document_deadline_label(dl->kind),
		    human_date(b->a, &dl->due_date, true)));
		if (dl->clause)
			ras_xml_xhtml_leaf(x, "span", "clause", ras_arena_printf(b->a, " (%s)", dl->clause));
		ras_xml_xhtml_close(x);
		shown++;
	}
	if (shown == 0)
		ras_xml_xhtml_leaf(x, "li", NULL, "No further steps are scheduled by the service.");
	ras_xml_xhtml_close(x);
}

static void
sec_referral_details(struct b *b, struct ras_xhtml *x)
{
	const struct ras_referral *r = b->r;
	const struct ras_referrer *rf = &r->referrer;
	const char *who = rf->name;

	if (rf->org_name)
		who = who ? ras_arena_printf(b->a, "%s, %s", who, rf->org_name) : rf->org_name;
	if (rf->org_ods)
		who = ras_arena_printf(b->a, "%s (%s)", who ? who : "Organisation", rf->org_ods);
	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_open(x, "tbody", NULL);
	row(x, "e-RS UBRN", r->ubrn);
	row(x, "Referral reference", r->ubrn ? NULL : r->local_id);
	row(x, "Priority", r->priority ? ras_referral_priority_name(r->priority) : NULL);
	row(x, "Date referred", r->has_authored ? human_instant(b->a, r->authored) : NULL);
	row(x, "Referred by", who);
	row(x, "Service requested", r->ers_service_name);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
}

static void
sec_reason(struct b *b, struct ras_xhtml *x)
{
	const struct ras_referral *r = b->r;
	const struct ras_answer *diag = r->has_form ? ras_form_answer(&r->form, RAS_DOC_FORM_ANSWER) : NULL;
	size_t shown = 0;

	ras_xml_xhtml_open(x, "ul", NULL);
	for (size_t i = 0; i < r->n_conditions; i++)
		if (r->conditions[i].display) {
			ras_xml_xhtml_leaf(x, "li", NULL, r->conditions[i].display);
			shown++;
		}
	if (diag && diag->type == RAS_ANSWER_STRING) {
		ras_xml_xhtml_leaf(x, "li", NULL, diag->s);
		shown++;
	}
	if (b->ep && b->ep->diagnosis) {
		ras_xml_xhtml_leaf(x, "li", NULL, b->ep->diagnosis);
		shown++;
	}
	if (shown == 0)
		ras_xml_xhtml_leaf(x, "li", NULL, "As described in the referral.");
	ras_xml_xhtml_close(x);
}

static void
sec_patient(struct b *b, struct ras_xhtml *x)
{
	const struct ras_patient *p = &b->r->patient;
	const char *gp = p->practice_name;

	if (p->practice_ods)
		gp = ras_arena_printf(b->a, "%s (%s)", gp ? gp : "Practice", p->practice_ods);
	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_open(x, "tbody", NULL);
	row(x, "Name", patient_name(b));
	row(x, "Date of birth", p->has_birth_date ? human_date(b->a, &p->birth_date, false) : NULL);
	row(x, "NHS number", nhs_spaced(b->a, p->nhs_number));
	row(x, "Gender", p->gender);
	if (p->restricted) {
		/* a restricted patient: no address of any kind (hazard H12) */
	} else if (p->n_address_lines) {
		/* the PDS correspondence address (never for a restricted patient) */
		struct ras_buf ad = RAS_BUF_INIT(RAS_STRING_MAX);

		for (size_t i = 0; i < p->n_address_lines; i++)
			(void)ras_buf_printf(&ad, "%s%s", i ? ", " : "", p->address_lines[i]);
		if (p->postcode)
			(void)ras_buf_printf(&ad, ", %s", p->postcode);
		row(x, "Address", ad.data ? ras_arena_strdup(b->a, ad.data) : NULL);
		ras_buf_free(&ad);
	} else {
		row(x, "Postcode", p->postcode);
	}
	row(x, "Registered GP practice", gp);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
}

static void
sec_person(struct b *b, struct ras_xhtml *x)
{
	const struct ras_decision *d = b->d;

	if (d == NULL) {
		paragraphs(b, x, b->ep ? b->ep->key_worker : NULL, "Not recorded.");
		return;
	}
	if (d->decided_by == NULL || strcmp(d->decided_by, "rules") == 0)
		ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(b->a,
		    "%s: triage against the service specification's published criteria, applied by "
		    "rasd (rule set %.12s).", b->in->profile->provider.name,
		    d->ruleset_version ? d->ruleset_version : "unknown"));
	else
		ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(b->a,
		    "A clinician of %s (SDS user id %s).", b->in->profile->provider.name, d->decided_by));
}

static void
sec_contact(struct b *b, struct ras_xhtml *x)
{
	const struct ras_docprovider *p = &b->in->profile->provider;

	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_open(x, "tbody", NULL);
	row(x, "Service", p->name);
	row(x, "Telephone", p->telephone);
	row(x, "Email", p->email);
	row(x, "Address", p->address);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
}

static bool
referrer_is_gp(const struct ras_referral *r)
{
	return r->referrer.org_ods && r->patient.practice_ods &&
	    strcmp(r->referrer.org_ods, r->patient.practice_ods) == 0;
}

static void
sec_distribution(struct b *b, struct ras_xhtml *x)
{
	const struct ras_referral *r = b->r;
	const struct ras_referrer *rf = &r->referrer;

	ras_xml_xhtml_open(x, "ul", NULL);
	if (b->kind != RAS_DOC_GP_2WW_NOTICE || referrer_is_gp(r) || r->patient.practice_ods == NULL)
		ras_xml_xhtml_leaf(x, "li", NULL, ras_arena_printf(b->a, "Referrer: %s%s%s%s%s%s",
		    rf->name ? rf->name : "", rf->name && rf->org_name ? ", " : "",
		    rf->org_name ? rf->org_name : "", rf->org_ods ? " (" : "", rf->org_ods ? rf->org_ods : "",
		    rf->org_ods ? ")" : ""));
	if (r->patient.practice_ods && (!referrer_is_gp(r) || b->kind == RAS_DOC_GP_2WW_NOTICE) &&
	    !(b->kind == RAS_DOC_GP_2WW_NOTICE && referrer_is_gp(r)))
		ras_xml_xhtml_leaf(x, "li", NULL, ras_arena_printf(b->a, "GP practice%s: %s (%s)",
		    b->kind == RAS_DOC_GP_2WW_NOTICE ? "" : " (copy)",
		    r->patient.practice_name ? r->patient.practice_name : "registered practice",
		    r->patient.practice_ods));
	if (ras_docprofile_kind(b->in->profile, "patient-copy") && b->kind == RAS_DOC_DISCHARGE_SUMMARY)
		ras_xml_xhtml_leaf(x, "li", NULL, "Patient (paper copy)");
	ras_xml_xhtml_close(x);
}

static void
sec_gp_actions(struct b *b, struct ras_xhtml *x)
{
	const struct ras_episode *e = b->ep;
	bool any = false;

	ras_xml_xhtml_open(x, "ol", "actions");
	if (e && ras_episode_has_opioid(e)) {
		ras_xml_xhtml_open(x, "li", "opioid");
		ras_xml_xhtml_leaf(x, "strong", NULL, "Opioid medicine: ");
		ras_xml_xhtml_text(x, "this letter recommends or changes opioid medication; see the medication "
		    "changes below for the prescription and the dependency issues addressed.");
		ras_xml_xhtml_close(x);
		any = true;
	}
	for (size_t i = 0; e && i < e->n_gp_actions; i++) {
		ras_xml_xhtml_leaf(x, "li", NULL, e->gp_actions[i]);
		any = true;
	}
	if (!any)
		ras_xml_xhtml_leaf(x, "li", NULL, "No actions are required of the GP.");
	ras_xml_xhtml_close(x);
}

static bool
admission_date(struct b *b, struct ras_date *out, bool *defaulted)
{
	*defaulted = false;
	if (b->ep && b->ep->has_admission_date) {
		*out = b->ep->admission_date;
		return true;
	}
	if (b->in->has_accepted_date) {
		*out = b->in->accepted_date;
		*defaulted = true;
		return true;
	}
	return false;
}

static void
sec_dates(struct b *b, struct ras_xhtml *x)
{
	struct ras_date adm;
	bool defaulted;

	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_open(x, "tbody", NULL);
	if (admission_date(b, &adm, &defaulted))
		row(x, "Date of admission into the service", defaulted ?
		    ras_arena_printf(b->a, "%s (date the referral was accepted)",
		    human_date(b->a, &adm, false)) : human_date(b->a, &adm, false));
	else
		row(x, "Date of admission into the service", "Not recorded");
	row(x, "Date of discharge", b->ep && b->ep->has_discharge_date ?
	    human_date(b->a, &b->ep->discharge_date, false) : "Not discharged");
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
}

static void
sec_meds(struct b *b, struct ras_xhtml *x)
{
	const struct ras_episode *e = b->ep;

	if (e == NULL || e->n_meds == 0) {
		ras_xml_xhtml_leaf(x, "p", "none", "No medication changes.");
		return;
	}
	if (ras_episode_has_opioid(e)) {
		ras_xml_xhtml_open(x, "p", "opioid");
		ras_xml_xhtml_leaf(x, "strong", NULL, "Opioids: ");
		ras_xml_xhtml_text(x, "rows marked OPIOID recommend or change an opioid prescription; the reason "
		    "column records the potential dependency issues and how they were addressed.");
		ras_xml_xhtml_close(x);
	}
	ras_xml_xhtml_open(x, "table", NULL);
	ras_xml_xhtml_open(x, "thead", NULL);
	ras_xml_xhtml_open(x, "tr", NULL);
	ras_xml_xhtml_leaf(x, "th", NULL, "Medicine");
	ras_xml_xhtml_leaf(x, "th", NULL, "Change");
	ras_xml_xhtml_leaf(x, "th", NULL, "Reason");
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_open(x, "tbody", NULL);
	for (size_t i = 0; i < e->n_meds; i++) {
		const struct ras_med_change_item *m = &e->meds[i];
		static const char *const change[] = { "", "Start", "Stop", "Dose change", "Continue" };

		ras_xml_xhtml_open(x, "tr", m->opioid ? "opioid" : NULL);
		ras_xml_xhtml_open(x, "td", NULL);
		if (m->opioid) {
			ras_xml_xhtml_leaf(x, "strong", NULL, m->medication);
			ras_xml_xhtml_leaf(x, "strong", "flag", " OPIOID");
		} else {
			ras_xml_xhtml_text(x, m->medication);
		}
		ras_xml_xhtml_close(x);
		ras_xml_xhtml_leaf(x, "td", NULL, change[m->change]);
		ras_xml_xhtml_leaf(x, "td", NULL, m->reason ? m->reason : "");
		ras_xml_xhtml_close(x);
	}
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
}

static void
render_section(struct b *b, const char *id, struct ras_xhtml *x)
{
	const struct ras_episode *e = b->ep;

	if (strcmp(id, "actions") == 0)
		sec_actions(b, x);
	else if (strcmp(id, "outcome") == 0)
		sec_outcome(b, x);
	else if (strcmp(id, "advice") == 0)
		sec_advice(b, x);
	else if (strcmp(id, "next-steps") == 0)
		sec_next_steps(b, x);
	else if (strcmp(id, "referral-details") == 0)
		sec_referral_details(b, x);
	else if (strcmp(id, "reason-for-referral") == 0)
		sec_reason(b, x);
	else if (strcmp(id, "patient-demographics") == 0)
		sec_patient(b, x);
	else if (strcmp(id, "person-completing-record") == 0)
		sec_person(b, x);
	else if (strcmp(id, "contact-service") == 0)
		sec_contact(b, x);
	else if (strcmp(id, "distribution-list") == 0)
		sec_distribution(b, x);
	else if (strcmp(id, "gp-actions") == 0)
		sec_gp_actions(b, x);
	else if (strcmp(id, "dates") == 0)
		sec_dates(b, x);
	else if (strcmp(id, "medication-changes") == 0)
		sec_meds(b, x);
	else if (strcmp(id, "diagnosis") == 0)
		paragraphs(b, x, e ? e->diagnosis : NULL, "Not recorded.");
	else if (strcmp(id, "investigations") == 0)
		paragraphs(b, x, e ? e->investigations : NULL, "None.");
	else if (strcmp(id, "test-results") == 0)
		paragraphs(b, x, e ? e->test_results : NULL, "No tests were carried out by the service.");
	else if (strcmp(id, "fit-for-procedure") == 0)
		paragraphs(b, x, e ? e->fit_for_procedure : NULL, "No fitness for procedure assessment.");
	else if (strcmp(id, "treatment-summary") == 0)
		paragraphs(b, x, e ? e->treatment_summary : NULL, "Not recorded.");
	else if (strcmp(id, "outcomes") == 0)
		paragraphs(b, x, e ? e->outcomes : NULL, "Not recorded.");
	else if (strcmp(id, "management-plan") == 0)
		paragraphs(b, x, e ? e->management_plan : NULL, "Not recorded.");
	else if (strcmp(id, "self-management-advice") == 0)
		paragraphs(b, x, e ? e->self_management_advice : NULL, "None given.");
	else if (strcmp(id, "key-worker") == 0)
		paragraphs(b, x, e ? e->key_worker : NULL, "Not recorded.");
	else if (strcmp(id, "onward-referral") == 0)
		paragraphs(b, x, e ? e->onward_referral : NULL, "No onward referral.");
	else if (strcmp(id, "re-referral-indicators") == 0)
		paragraphs(b, x, e ? e->re_referral_indicators : NULL, "Not recorded.");
	else if (strcmp(id, "peer-support") == 0)
		paragraphs(b, x, e ? e->peer_support : NULL, "Not recorded.");
}

/* The resource a section points at, if any. */
static const char *
section_entry(struct b *b, const char *id)
{
	if (strcmp(id, "patient-demographics") == 0)
		return b->patient;
	if (strcmp(id, "contact-service") == 0)
		return b->provider;
	if (strcmp(id, "key-worker") == 0 && b->has_keyworker)
		return b->keyworker;
	if (strcmp(id, "dates") == 0 && b->has_enc)
		return b->enc;
	if (strcmp(id, "referral-details") == 0 && b->has_refrole)
		return b->refrole;
	return NULL;
}

static json_t *
narrative(struct b *b, struct ras_xhtml *x)
{
	struct ras_buf out = RAS_BUF_INIT(0);
	json_t *t;
	int err;

	if ((err = ras_xml_xhtml_save(b->saver, x, &out)) < 0) {
		if (b->err == 0)
			b->err = err;
		ras_buf_free(&out);
		return NULL;
	}
	t = json_pack("{s:s,s:s}", "status", "generated", "div", out.data);
	ras_buf_free(&out);
	return t;
}

static json_t *
build_section(struct b *b, const struct ras_docsection *s)
{
	const struct secdef *def = secdef(s->id);
	struct ras_xhtml *x;
	const char *entry;
	json_t *sec;

	if (def == NULL) {
		b->err = ras_error_code(RAS_EINVALID, "no builder for section \"%s\"", s->id);
		return NULL;
	}
	if ((b->err = b->err ? b->err : ras_xml_xhtml_new_div(b->a, &x)) < 0)
		return NULL;
	render_section(b, s->id, x);
	sec = json_object();
	put(b, sec, "title", json_string(s->title ? s->title : def->title));
	put(b, sec, "code", json_pack("{s:[{s:s,s:s,s:s}]}", "coding", "system", SYS_HEADINGS, "code",
	    def->code, "display", def->display));
	put(b, sec, "text", narrative(b, x));
	if ((entry = section_entry(b, s->id)) != NULL)
		put(b, sec, "entry", json_pack("[o]", ref(entry)));
	return sec;
}

/* --- resources ------------------------------------------------------------ */

static const char *
verification_display(const char *code)
{
	static const char *const d[] = { NULL, "Number present and verified",
		"Number present but not traced", "Trace required",
		"Trace attempted - No match or multiple match found",
		"Trace needs to be resolved - (NHS number or patient detail conflict)",
		"Trace in progress", "Number not present and trace not required",
		"Trace postponed (baby under six weeks old)" };

	if (code && strlen(code) == 2 && code[0] == '0' && code[1] >= '1' && code[1] <= '8')
		return d[code[1] - '0'];
	return NULL;
}

static json_t *
split_words(const char *s)
{
	json_t *arr = json_array();
	const char *p = s;

	while (arr && p && *p) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);

		if (len && json_array_append_new(arr, json_stringn(p, len)) != 0) {
			json_decref(arr);
			return NULL;
		}
		p = sp ? sp + 1 : NULL;
	}
	return arr;
}

static json_t *
patient_resource(struct b *b)
{
	const struct ras_patient *p = &b->r->patient;
	json_t *res = json_object(), *name = json_object();
	const char *vd = verification_display(p->nhs_verification);

	put(b, res, "resourceType", json_string("Patient"));
	put(b, res, "id", json_string(b->patient));
	put(b, res, "meta", json_pack("{s:[s]}", "profile", PROFILE_PATIENT));
	if (p->nhs_number && p->nhs_number_status == RAS_NHSNO_OK) {
		json_t *id = json_object();

		if (vd)
			put(b, id, "extension", json_pack("[{s:s,s:{s:[{s:s,s:s,s:s}]}}]", "url",
			    RAS_URL_NHS_VERIFICATION, "valueCodeableConcept", "coding", "system", SYS_VERIFY,
			    "code", p->nhs_verification, "display", vd));
		put(b, id, "system", json_string(RAS_SYS_NHS_NUMBER));
		put(b, id, "value", json_string(p->nhs_number));
		put(b, res, "identifier", json_pack("[o]", id));
	}
	put(b, name, "use", json_string("official"));
	puts_opt(b, name, "family", p->family);
	if (p->given)
		put(b, name, "given", split_words(p->given));
	if (p->prefix)
		put(b, name, "prefix", split_words(p->prefix));
	if (p->family || p->given)
		put(b, res, "name", json_pack("[o]", name));
	else
		json_decref(name);
	if (p->gender && (strcmp(p->gender, "male") == 0 || strcmp(p->gender, "female") == 0 ||
	    strcmp(p->gender, "other") == 0 || strcmp(p->gender, "unknown") == 0))
		put(b, res, "gender", json_string(p->gender));
	if (p->has_birth_date) {
		char d[RAS_DATE_STR_MAX];

		ras_date_format(&p->birth_date, d);
		put(b, res, "birthDate", json_string(d));
	}
	if (p->restricted) {
		/* no address for a restricted patient */
	} else if (p->n_address_lines) {
		json_t *lines = json_array();

		for (size_t i = 0; i < p->n_address_lines; i++)
			(void)ras_json_append_new(lines, json_string(p->address_lines[i]));
		put(b, res, "address", json_pack("[{s:o, s:s?}]", "line", lines, "postalCode", p->postcode));
	} else if (p->postcode) {
		put(b, res, "address", json_pack("[{s:s}]", "postalCode", p->postcode));
	}
	if (b->has_gp)
		put(b, res, "generalPractitioner", json_pack("[o]", ref(b->gp)));
	return res;
}

static json_t *
org_resource(struct b *b, const char *uuid, const char *ods, const char *name,
    const struct ras_docprovider *prov)
{
	json_t *res = json_object();

	put(b, res, "resourceType", json_string("Organization"));
	put(b, res, "id", json_string(uuid));
	if (ods)
		put(b, res, "identifier", json_pack("[o]", ods_identifier(ods)));
	puts_opt(b, res, "name", name);
	if (prov) {
		json_t *tel = json_array();

		if (prov->telephone)
			push(b, tel, json_pack("{s:s,s:s,s:s}", "system", "phone", "value", prov->telephone,
			    "use", "work"));
		if (prov->email)
			push(b, tel, json_pack("{s:s,s:s,s:s}", "system", "email", "value", prov->email,
			    "use", "work"));
		if (json_array_size(tel))
			put(b, res, "telecom", tel);
		else
			json_decref(tel);
		if (prov->address)
			put(b, res, "address", json_pack("[{s:s}]", "text", prov->address));
	}
	return res;
}

static json_t *
referrer_practitioner(struct b *b)
{
	const struct ras_referrer *rf = &b->r->referrer;
	json_t *res = json_object(), *ids = json_array();

	put(b, res, "resourceType", json_string("Practitioner"));
	put(b, res, "id", json_string(b->refprac));
	if (rf->sds_user_id)
		push(b, ids, json_pack("{s:s,s:s}", "system", RAS_SYS_SDS_USER, "value", rf->sds_user_id));
	if (rf->professional_id && strchr(rf->professional_id, '|')) {
		const char *bar = strchr(rf->professional_id, '|');

		push(b, ids, json_pack("{s:s%,s:s}", "system", rf->professional_id,
		    (size_t)(bar - rf->professional_id), "value", bar + 1));
	}
	if (json_array_size(ids))
		put(b, res, "identifier", ids);
	else
		json_decref(ids);
	if (rf->name)
		put(b, res, "name", json_pack("[{s:s}]", "text", rf->name));
	return res;
}

static json_t *
referrer_role(struct b *b)
{
	const struct ras_referrer *rf = &b->r->referrer;
	json_t *res = json_object();

	put(b, res, "resourceType", json_string("PractitionerRole"));
	put(b, res, "id", json_string(b->refrole));
	if (rf->sds_role_profile_id)
		put(b, res, "identifier", json_pack("[{s:s,s:s}]", "system", RAS_SYS_SDS_ROLE, "value",
		    rf->sds_role_profile_id));
	if (b->has_refprac)
		put(b, res, "practitioner", ref(b->refprac));
	if (b->has_reforg || (b->has_gp && referrer_is_gp(b->r)))
		put(b, res, "organization", ref(b->has_reforg ? b->reforg : b->gp));
	return res;
}

static json_t *
encounter_resource(struct b *b)
{
	json_t *res = json_object(), *period = json_object();
	struct ras_date adm;
	bool defaulted;
	char d[RAS_DATE_STR_MAX];

	put(b, res, "resourceType", json_string("Encounter"));
	put(b, res, "id", json_string(b->enc));
	put(b, res, "status", json_string(b->ep && b->ep->has_discharge_date ? "finished" :
	    "in-progress"));
	put(b, res, "class", json_pack("{s:s,s:s,s:s}", "system",
	    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code", "AMB", "display", "ambulatory"));
	put(b, res, "subject", ref(b->patient));
	if (admission_date(b, &adm, &defaulted)) {
		ras_date_format(&adm, d);
		put(b, period, "start", json_string(d));
	}
	if (b->ep && b->ep->has_discharge_date) {
		ras_date_format(&b->ep->discharge_date, d);
		put(b, period, "end", json_string(d));
	}
	if (json_object_size(period))
		put(b, res, "period", period);
	else
		json_decref(period);
	put(b, res, "serviceProvider", ref(b->provider));
	return res;
}

static json_t *
doc_type(struct b *b)
{
	if (b->kind == RAS_DOC_DISCHARGE_SUMMARY)
		return json_pack("{s:[{s:s,s:s,s:s}]}", "coding", "system", RAS_SYS_SNOMED, "code",
		    "373942005", "display", "Discharge summary");
	/* No SNOMED "Record composition type" exists for these letters
	 * (reference/mesh/NOTES.md §4.3): rasd's own code, and the text. */
	return json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system", SYS_KIND, "code",
	    ras_document_kind_name(b->kind), "display", b->dk->title ? b->dk->title : ras_document_kind_name(b->kind),
	    "text", b->dk->title ? b->dk->title : ras_document_kind_name(b->kind));
}

static json_t *
doc_category(struct b *b)
{
	if (b->kind == RAS_DOC_DISCHARGE_SUMMARY)
		return json_pack("[{s:[{s:s,s:s,s:s}]}]", "coding", "system", RAS_SYS_SNOMED, "code",
		    "373942005", "display", "Discharge summary");
	return json_pack("[{s:[{s:s,s:s,s:s}]}]", "coding", "system", RAS_SYS_SNOMED, "code",
	    "823751000000102", "display", "Letter");
}

static json_t *
composition(struct b *b, int version)
{
	json_t *res = json_object(), *sections = json_array(), *authors = json_array();
	struct ras_xhtml *x = NULL;
	char at[RAS_TIME_STR_MAX];
	const char *title = b->dk->title ? b->dk->title : ras_document_kind_name(b->kind);

	ras_time_format_uk(b->in->at, at);
	put(b, res, "resourceType", json_string("Composition"));
	put(b, res, "id", json_string(b->comp));
	if (b->err == 0 && (b->err = ras_xml_xhtml_new_div(b->a, &x)) == 0) {
		ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(b->a, "%s: %s", b->in->profile->name, title));
		ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(b->a, "Patient: %s, NHS number %s",
		    patient_name(b) ? patient_name(b) : "(name not given)",
		    b->r->patient.nhs_number ? nhs_spaced(b->a, b->r->patient.nhs_number) : "not given"));
		put(b, res, "text", narrative(b, x));
	}
	put(b, res, "identifier", json_pack("{s:s,s:s}", "system", SYS_RFC4122, "value", b->doc));
	put(b, res, "status", json_string("final"));
	put(b, res, "type", doc_type(b));
	put(b, res, "category", doc_category(b));
	put(b, res, "subject", ref(b->patient));
	if (b->has_enc)
		put(b, res, "encounter", ref(b->enc));
	put(b, res, "date", json_string(at));
	push(b, authors, ref(b->provider));
	if (b->has_keyworker)
		push(b, authors, ref(b->keyworker));
	put(b, res, "author", authors);
	put(b, res, "title", json_string(title));
	put(b, res, "custodian", ref(b->provider));
	if (version > 1) {
		char prev[37];

		ras_document_uuid(prev, "rasd:document|%s|%s|%d", b->key, ras_document_kind_name(b->kind),
		    version - 1);
		put(b, res, "relatesTo", json_pack("[{s:s,s:{s:s,s:s}}]", "code", "replaces",
		    "targetIdentifier", "system", SYS_RFC4122, "value", prev));
	}
	for (size_t i = 0; i < b->dk->n_sections && b->err == 0; i++)
		push(b, sections, build_section(b, &b->dk->sections[i]));
	put(b, res, "section", sections);
	return res;
}

static void
entry(struct b *b, json_t *entries, const char *uuid, json_t *res)
{
	char url[64];

	snprintf(url, sizeof(url), "urn:uuid:%s", uuid);
	push(b, entries, json_pack("{s:s,s:o}", "fullUrl", url, "resource", res));
}

/* --- checks and the whole document ------------------------------------- */

static void
missing_add(struct ras_doc_missing *m, const char *item)
{
	if (m->n < RAS_DOC_MISSING_MAX)
		m->items[m->n++] = item;
}

static void
check_required(struct b *b, struct ras_doc_missing *m)
{
	const struct ras_patient *p = &b->r->patient;

	for (size_t i = 0; i < b->dk->n_required; i++) {
		const char *item = b->dk->required[i];
		bool ok;

		if (strcmp(item, "patient.name") == 0)
			ok = p->family != NULL || p->given != NULL;
		else if (strcmp(item, "patient.birth-date") == 0)
			ok = p->has_birth_date;
		else if (strcmp(item, "patient.nhs-number") == 0)
			ok = p->nhs_number != NULL && p->nhs_number_status == RAS_NHSNO_OK;
		else if (strcmp(item, "admission-date") == 0)
			ok = (b->ep && b->ep->has_admission_date) || b->in->has_accepted_date;
		else
			ok = b->ep && ras_episode_has(b->ep, item);
		if (!ok)
			missing_add(m, item);
	}
}

int
ras_document_build(struct ras_arena *a, const struct ras_doc_input *in, json_t **out,
    struct ras_doc_missing *missing)
{
	struct b b = { .a = a, .in = in, .r = in->referral, .ep = in->episode, .d = in->decision };
	const struct ras_dockind *asked;
	const char *service = in->profile->service;
	int version = in->version > 0 ? in->version : 1;
	json_t *bundle = NULL, *entries;
	char at[RAS_TIME_STR_MAX];
	const struct ras_referrer *rf = &in->referral->referrer;

	memset(missing, 0, sizeof(*missing));
	asked = ras_docprofile_kind(in->profile, ras_document_kind_name(in->kind));
	if (asked == NULL)
		return ras_error_code(RAS_EINVALID,
		    "the %s specification calls for no %s document", service, ras_document_kind_name(in->kind));
	b.dk = asked;
	b.kind = in->kind;
	if (asked->of) {
		b.dk = ras_docprofile_kind(in->profile, asked->of);
		b.kind = ras_document_kind_parse(asked->of);
	}
	missing->clause = b.dk->clause;
	if ((b.saver = in->saver) == NULL && (b.err = ras_xml_xhtml_saver_new(a, &b.saver)) < 0)
		return b.err;
	b.key = in->referral_key ? in->referral_key : ras_referral_key(a, in->referral);
	if (b.key == NULL)
		return ras_error_code(RAS_EINVALID, "the referral has neither a UBRN nor a local identifier");
	if (b.kind == RAS_DOC_TRIAGE_OUTCOME || b.kind == RAS_DOC_GP_2WW_NOTICE) {
		if (b.d == NULL)
			return ras_error_code(RAS_EINVALID, "a %s needs a triage decision",
			    ras_document_kind_name(b.kind));
		if (b.kind == RAS_DOC_TRIAGE_OUTCOME && b.d->outcome == RAS_OUTCOME_REVIEW)
			return ras_error_code(RAS_EINVALID,
			    "the decision is awaiting clinical review: there is no outcome to send yet");
		if (b.kind == RAS_DOC_GP_2WW_NOTICE && (b.d->outcome != RAS_OUTCOME_ONWARD ||
		    b.d->onward_target == NULL || strcmp(b.d->onward_target, "two-week-wait") != 0))
			return ras_error_code(RAS_EINVALID,
			    "a gp-2ww-notice needs a decision to refer on to the two-week-wait pathway");
	}
	check_required(&b, missing);
	if (missing->n) {
		struct ras_buf msg = RAS_BUF_INIT(4096);

		for (size_t i = 0; i < missing->n; i++)
			(void)ras_buf_printf(&msg, "%s%s", i ? ", " : "", missing->items[i]);
		ras_error_code(RAS_EINVALID, "missing required items: %s (%s)", msg.data, b.dk->clause);
		ras_buf_free(&msg);
		return RAS_EINVALID;
	}

	ras_document_uuid(b.doc, "rasd:document|%s|%s|%d", b.key, ras_document_kind_name(b.kind), version);
	ras_document_uuid(b.comp, "%s|Composition", b.doc);
	ras_document_uuid(b.patient, "%s|Patient", b.doc);
	ras_document_uuid(b.provider, "%s|Organization|provider", b.doc);
	ras_document_uuid(b.gp, "%s|Organization|gp", b.doc);
	ras_document_uuid(b.reforg, "%s|Organization|referrer", b.doc);
	ras_document_uuid(b.refprac, "%s|Practitioner|referrer", b.doc);
	ras_document_uuid(b.refrole, "%s|PractitionerRole|referrer", b.doc);
	ras_document_uuid(b.enc, "%s|Encounter", b.doc);
	ras_document_uuid(b.keyworker, "%s|Practitioner|keyworker", b.doc);
	b.has_gp = in->referral->patient.practice_ods != NULL;
	b.has_reforg = rf->org_ods != NULL && !referrer_is_gp(in->referral);
	b.has_refprac = rf->name != NULL || rf->sds_user_id != NULL || rf->professional_id != NULL;
	b.has_refrole = b.has_refprac || b.has_reforg || rf->sds_role_profile_id != NULL;
	b.has_enc = b.ep != NULL;
	b.has_keyworker = b.ep && b.ep->key_worker;

	entries = json_array();
	if (entries == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	entry(&b, entries, b.comp, composition(&b, version));
	entry(&b, entries, b.patient, patient_resource(&b));
	entry(&b, entries, b.provider, org_resource(&b, b.provider, in->profile->provider.ods,
	    in->profile->provider.name, &in->profile->provider));
	if (b.has_gp)
		entry(&b, entries, b.gp, org_resource(&b, b.gp, in->referral->patient.practice_ods,
		    in->referral->patient.practice_name, NULL));
	if (b.has_reforg)
		entry(&b, entries, b.reforg, org_resource(&b, b.reforg, rf->org_ods, rf->org_name, NULL));
	if (b.has_refprac)
		entry(&b, entries, b.refprac, referrer_practitioner(&b));
	if (b.has_refrole)
		entry(&b, entries, b.refrole, referrer_role(&b));
	if (b.has_enc)
		entry(&b, entries, b.enc, encounter_resource(&b));
	if (b.has_keyworker) {
		json_t *kw = json_object();

		put(&b, kw, "resourceType", json_string("Practitioner"));
		put(&b, kw, "id", json_string(b.keyworker));
		put(&b, kw, "name", json_pack("[{s:s}]", "text", b.ep->key_worker));
		entry(&b, entries, b.keyworker, kw);
	}
	ras_time_format_uk(in->at, at);
	bundle = json_object();
	put(&b, bundle, "resourceType", json_string("Bundle"));
	put(&b, bundle, "id", json_string(b.doc));
	put(&b, bundle, "identifier", json_pack("{s:s,s:s}", "system", SYS_RFC4122, "value", b.doc));
	put(&b, bundle, "type", json_string("document"));
	put(&b, bundle, "timestamp", json_string(at));
	put(&b, bundle, "entry", entries);
	if (b.err) {
		json_decref(bundle);
		return b.err;
	}
	if (ras_json_arena_own(a, bundle) < 0)
		return RAS_ENOMEM;
	*out = bundle;
	return 0;
}

const char *
ras_document_identifier(const json_t *bundle)
{
	return ras_json_str(ras_json_obj(bundle, "identifier"), "value");
}

/* --- printable HTML --------------------------------------------------- */

static const char page_css[] =
	"body{font-family:Arial,Helvetica,sans-serif;font-size:12pt;line-height:1.4;color:#212b32;"
	"max-width:48em;margin:2em auto;padding:0 1em}"
	"header{border-bottom:3px solid #005eb8;margin-bottom:1em}"
	".service{color:#005eb8;font-weight:bold;margin:0}"
	"h1{font-size:1.6em;margin:.3em 0}h2{font-size:1.2em;margin:1.2em 0 .4em;color:#005eb8}"
	"table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;"
	"padding:.25em .5em;border-bottom:1px solid #d8dde0}th{width:30%}"
	".note{background:#f0f4f5;border-left:4px solid #005eb8;padding:.5em 1em}"
	".alert,.opioid{background:#fff9c4;border-left:4px solid #ffb81c;padding:.2em .5em}"
	".flag{color:#d5281b}.clause,.meta{color:#4c6272;font-size:.9em}"
	"footer{border-top:1px solid #d8dde0;margin-top:2em;font-size:.9em;color:#4c6272}"
	"@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}"
	"section{page-break-inside:avoid}}";

int
ras_document_html(struct ras_arena *a, const json_t *bundle, const struct ras_docprofile *p,
    bool patient, struct ras_buf *out)
{
	json_t *comp = ras_json_obj(json_array_get(ras_json_arr(bundle, "entry"), 0), "resource");
	json_t *sections = ras_json_arr(comp, "section"), *s;
	const char *title = ras_json_str(comp, "title");
	struct ras_xhtml *x;
	struct ras_date d;
	int64_t t = 0;
	size_t i;
	int err;

	if (comp == NULL || title == NULL)
		return ras_error_code(RAS_EINVALID, "not a rasd document (no Composition)");
	if (ras_json_str(comp, "date"))
		(void)ras_time_parse(ras_json_str(comp, "date"), false, &t);
	ras_time_uk_date(t, &d, NULL);
	if ((err = ras_xml_xhtml_new_page(a, &x)) < 0)
		return err;
	/* libxml2's XHTML serialiser adds the content-type <meta> itself. */
	ras_xml_xhtml_open(x, "head", NULL);
	ras_xml_xhtml_leaf(x, "title", NULL, title);
	ras_xml_xhtml_leaf(x, "style", NULL, page_css);
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_open(x, "body", NULL);
	ras_xml_xhtml_open(x, "header", NULL);
	ras_xml_xhtml_leaf(x, "p", "service", p->provider.name);
	ras_xml_xhtml_leaf(x, "h1", NULL, title);
	ras_xml_xhtml_leaf(x, "p", "meta", ras_arena_printf(a, "Date: %s. Document reference: %s.",
	    human_date(a, &d, false), ras_document_identifier(bundle) ? ras_document_identifier(bundle) :
	    "-"));
	ras_xml_xhtml_close(x);
	if (patient)
		ras_xml_xhtml_leaf(x, "p", "note", "This is your own copy of the letter sent to your GP and "
		    "to the person who referred you. Please keep it. If anything in it is wrong or unclear, "
		    "contact the service using the details at the end.");
	json_array_foreach(sections, i, s) {
		const char *div = ras_json_str(ras_json_obj(s, "text"), "div");

		ras_xml_xhtml_open(x, "section", NULL);
		ras_xml_xhtml_leaf(x, "h2", NULL, ras_json_str(s, "title"));
		if (div)
			ras_xml_xhtml_embed(x, div);
		ras_xml_xhtml_close(x);
	}
	ras_xml_xhtml_open(x, "footer", NULL);
	ras_xml_xhtml_leaf(x, "p", NULL, ras_arena_printf(a, "%s%s%s%s%s", p->provider.name,
	    p->provider.telephone ? ". Telephone " : "", p->provider.telephone ? p->provider.telephone : "",
	    p->provider.email ? ". Email " : "", p->provider.email ? p->provider.email : ""));
	ras_xml_xhtml_close(x);
	ras_xml_xhtml_close(x);
	return ras_xml_xhtml_dump(x, out);
}

/* --- message wrapper ---------------------------------------------------- */

int
ras_document_message(const json_t *document, const struct ras_doc_message *m, json_t **out)
{
	struct b b = { 0 };
	json_t *msg = json_object(), *hdr = json_object(), *entries = json_array();
	char hdr_id[37], doc_url[64], hdr_url[64], at[RAS_TIME_STR_MAX];
	const char *doc_id = ras_json_str(document, "id");

	if (doc_id == NULL)
		doc_id = ras_document_identifier(document);
	ras_document_uuid(hdr_id, "%s|MessageHeader", m->message_id);
	snprintf(doc_url, sizeof(doc_url), "urn:uuid:%s", doc_id ? doc_id : "");
	snprintf(hdr_url, sizeof(hdr_url), "urn:uuid:%s", hdr_id);
	ras_time_format_uk(m->at, at);
	put(&b, hdr, "resourceType", json_string("MessageHeader"));
	put(&b, hdr, "id", json_string(hdr_id));
	put(&b, hdr, "eventCoding", json_pack("{s:s,s:s,s:s}", "system", SYS_EVENT, "code", "document",
	    "display", "Document"));
	if (m->dest_endpoint) {
		json_t *dest = json_object();

		put(&b, dest, "endpoint", json_string(m->dest_endpoint));
		if (m->receiver_ods)
			put(&b, dest, "receiver", json_pack("{s:o}", "identifier",
			    ods_identifier(m->receiver_ods)));
		put(&b, hdr, "destination", json_pack("[o]", dest));
	}
	put(&b, hdr, "sender", json_pack("{s:o,s:s}", "identifier", ods_identifier(m->sender_ods),
	    "display", m->sender_name ? m->sender_name : m->sender_ods));
	put(&b, hdr, "source", json_pack("{s:s,s:s,s:s}", "name", "rasd", "software", "rasd",
	    "endpoint", m->source_endpoint));
	put(&b, hdr, "focus", json_pack("[{s:s}]", "reference", doc_url));
	push(&b, entries, json_pack("{s:s,s:o}", "fullUrl", hdr_url, "resource", hdr));
	push(&b, entries, json_pack("{s:s,s:O}", "fullUrl", doc_url, "resource", document));
	put(&b, msg, "resourceType", json_string("Bundle"));
	put(&b, msg, "id", json_string(m->message_id));
	put(&b, msg, "identifier", json_pack("{s:s,s:s}", "system", SYS_RFC4122, "value",
	    m->message_id));
	put(&b, msg, "type", json_string("message"));
	put(&b, msg, "timestamp", json_string(at));
	put(&b, msg, "entry", entries);
	if (b.err) {
		json_decref(msg);
		return b.err;
	}
	*out = msg;
	return 0;
}
