/* itk3: ITK3 messages and responses (see include/ras/itk3.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/document.h"
#include "ras/error.h"
#include "ras/itk3.h"
#include "ras/limits.h"
#include "ras/date.h"
#include "ras/time.h"
#include "ras/xml.h"

#define SYS_RFC4122     "https://tools.ietf.org/html/rfc4122"
#define SYS_ODS         "https://fhir.nhs.uk/Id/ods-organization-code"
#define SYS_NHS         "https://fhir.nhs.uk/Id/nhs-number"
#define SYS_SNOMED      "http://snomed.info/sct"
#define SYS_EVENT       "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
#define SYS_RECIPIENT   "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
#define URL_HANDLING    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
#define URL_VERIFY      "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-NHSNumberVerificationStatus-1"
#define SYS_VERIFY      "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
#define R4_URL_VERIFY   "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
#define SD_STU3         "https://fhir.nhs.uk/STU3/StructureDefinition/"
#define SD_CC           "https://fhir.hl7.org.uk/STU3/StructureDefinition/"

struct kinddef {
	const char *name, *workflow, *event, *event_display, *definition, *local_extension;
};

static const struct kinddef kinds[] = {
	[RAS_ITK3_SEND_DOCUMENT] = { "gp-connect-send-document", "GPCONNECT_SEND_DOCUMENT", "ITK007C",
		"ITK GP Connect Send Document",
		"https://fhir.nhs.uk/STU3/MessageDefinition/ITK-GPConnectSendDocument-MessageDefinition-1",
		"SendDocument-Letter" },
	[RAS_ITK3_TOC_OUTPATIENT] = { "toc-outpatient-letter", "TOC_FHIR_OP_ATTEN", "ITK006D",
		"ITK Outpatient Letter", "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-OPL-MessageDefinition-4",
		"TransferOfCare-OutpatientLetter" },
};

enum ras_itk3_kind
ras_itk3_kind_parse(const char *s)
{
	for (int k = RAS_ITK3_SEND_DOCUMENT; k <= RAS_ITK3_TOC_OUTPATIENT; k++)
		if (s && strcmp(s, kinds[k].name) == 0)
			return (enum ras_itk3_kind)k;
	return RAS_ITK3_NONE;
}

const char *
ras_itk3_kind_name(enum ras_itk3_kind k)
{
	return k >= RAS_ITK3_SEND_DOCUMENT && k <= RAS_ITK3_TOC_OUTPATIENT ? kinds[k].name : NULL;
}

const char *
ras_itk3_workflow(enum ras_itk3_kind k)
{
	return k >= RAS_ITK3_SEND_DOCUMENT && k <= RAS_ITK3_TOC_OUTPATIENT ? kinds[k].workflow : NULL;
}

const char *
ras_itk3_event(enum ras_itk3_kind k)
{
	return k >= RAS_ITK3_SEND_DOCUMENT && k <= RAS_ITK3_TOC_OUTPATIENT ? kinds[k].event : NULL;
}

void
ras_itk3_header_id(char out[37], const char *message_id)
{
	ras_document_uuid(out, "rasd:itk3|%s|MessageHeader", message_id);
}

/* --- building ------------------------------------------------------------ */

struct b {
	struct ras_arena *a;
	const json_t *doc;               /* the R4 document */
	const struct ras_itk3_msg *m;
	int err;
};

static void
put(struct b *b, json_t *obj, const char *key, json_t *v)
{
	if (v == NULL) {
		if (b->err == 0)
			b->err = ras_error_code(RAS_ENOMEM, "out of memory");
		return;
	}
	json_object_set_new(obj, key, v);
}

static void
push(struct b *b, json_t *arr, json_t *v)
{
	if (v == NULL) {
		if (b->err == 0)
			b->err = ras_error_code(RAS_ENOMEM, "out of memory");
		return;
	}
	json_array_append_new(arr, v);
}

static json_t *
meta(const char *profile)
{
	return json_pack("{s:[s]}", "profile", profile);
}

static json_t *
ref(const char *uuid)
{
	char r[64];

	snprintf(r, sizeof(r), "urn:uuid:%s", uuid);
	return json_pack("{s:s}", "reference", r);
}

static json_t *
entry(const char *uuid, json_t *res)
{
	char u[64];

	snprintf(u, sizeof(u), "urn:uuid:%s", uuid);
	return res ? json_pack("{s:s,s:o}", "fullUrl", u, "resource", res) : NULL;
}

static const json_t *
doc_resource(const json_t *doc, const char *type, const char *id)
{
	json_t *e;
	size_t i;

	json_array_foreach(ras_json_arr(doc, "entry"), i, e) {
		json_t *r = ras_json_obj(e, "resource");
		const char *t = ras_json_str(r, "resourceType");

		if (t && strcmp(t, type) == 0 && (id == NULL || (ras_json_str(r, "id") &&
		    strcmp(ras_json_str(r, "id"), id) == 0)))
			return r;
	}
	return NULL;
}

static const char *
ref_id(const json_t *reference)
{
	const char *r = ras_json_str(reference, "reference");

	return r && strncmp(r, "urn:uuid:", 9) == 0 ? r + 9 : r;
}

static const json_t *
composition(const json_t *doc)
{
	return ras_json_obj(json_array_get(ras_json_arr(doc, "entry"), 0), "resource");
}

/* CareConnect-Patient-1 from the UK Core Patient: NHS number with the STU3
 * verification status extension, name, gender, birth date, GP. */
static json_t *
patient_stu3(struct b *b, const json_t *p, const char *gp_uuid)
{
	json_t *res = json_object(), *ids = json_array(), *id;
	size_t i;

	put(b, res, "resourceType", json_string("Patient"));
	put(b, res, "id", json_string(ras_json_str(p, "id")));
	put(b, res, "meta", meta(SD_CC "CareConnect-Patient-1"));
	json_array_foreach(ras_json_arr(p, "identifier"), i, id) {
		const char *sys = ras_json_str(id, "system"), *v = ras_json_str(id, "value");
		json_t *x = json_object(), *ext;
		size_t k;
		const char *code = NULL;

		if (sys == NULL || v == NULL)
			continue;
		json_array_foreach(ras_json_arr(id, "extension"), k, ext)
			if (ras_json_str(ext, "url") && strcmp(ras_json_str(ext, "url"), R4_URL_VERIFY) == 0)
				code = ras_json_str(json_array_get(ras_json_arr(ras_json_obj(ext,
				    "valueCodeableConcept"), "coding"), 0), "code");
		if (strcmp(sys, SYS_NHS) == 0 && code)
			put(b, x, "extension", json_pack("[{s:s,s:{s:[{s:s,s:s}]}}]", "url", URL_VERIFY,
			    "valueCodeableConcept", "coding", "system", SYS_VERIFY, "code", code));
		put(b, x, "system", json_string(sys));
		put(b, x, "value", json_string(v));
		push(b, ids, x);
	}
	put(b, res, "identifier", ids);
	if (ras_json_arr(p, "name"))
		put(b, res, "name", json_deep_copy(ras_json_arr(p, "name")));
	if (ras_json_str(p, "gender"))
		put(b, res, "gender", json_string(ras_json_str(p, "gender")));
	if (ras_json_str(p, "birthDate"))
		put(b, res, "birthDate", json_string(ras_json_str(p, "birthDate")));
	if (gp_uuid)
		put(b, res, "generalPractitioner", json_pack("[o]", ref(gp_uuid)));
	return res;
}

static json_t *
organization_stu3(struct b *b, const json_t *o, const char *profile)
{
	json_t *res = json_object();

	put(b, res, "resourceType", json_string("Organization"));
	put(b, res, "id", json_string(ras_json_str(o, "id")));
	put(b, res, "meta", meta(profile));
	if (ras_json_arr(o, "identifier"))
		put(b, res, "identifier", json_deep_copy(ras_json_arr(o, "identifier")));
	if (ras_json_str(o, "name"))
		put(b, res, "name", json_string(ras_json_str(o, "name")));
	if (ras_json_arr(o, "telecom"))
		put(b, res, "telecom", json_deep_copy(ras_json_arr(o, "telecom")));
	if (ras_json_arr(o, "address"))
		put(b, res, "address", json_deep_copy(ras_json_arr(o, "address")));
	return res;
}

static json_t *
practitioner_stu3(struct b *b, const json_t *p)
{
	json_t *res = json_object(), *names = json_array(), *n;
	size_t i;

	put(b, res, "resourceType", json_string("Practitioner"));
	put(b, res, "id", json_string(ras_json_str(p, "id")));
	put(b, res, "meta", meta(SD_CC "CareConnect-Practitioner-1"));
	if (ras_json_arr(p, "identifier"))
		put(b, res, "identifier", json_deep_copy(ras_json_arr(p, "identifier")));
	json_array_foreach(ras_json_arr(p, "name"), i, n)
		push(b, names, json_deep_copy(n));
	put(b, res, "name", names);
	return res;
}

/* The PDF as an ITK attachment Binary. */
static json_t *
binary(struct b *b, const char *uuid)
{
	struct ras_buf b64 = RAS_BUF_INIT(0);
	json_t *res;

	if (b->m->pdf == NULL || b->m->pdf_len == 0) {
		b->err = ras_error_code(RAS_EINVALID, "an ITK3 letter needs its PDF");
		return NULL;
	}
	if ((b->err = ras_crypto_base64(b->m->pdf, b->m->pdf_len, &b64)) < 0)
		return NULL;
	(void)ras_buf_append(&b64, "", 0);
	res = json_pack("{s:s,s:s,s:o,s:s,s:s}", "resourceType", "Binary", "id", uuid, "meta",
	    meta(SD_STU3 "ITK-Attachment-Binary-1"), "contentType", "application/pdf", "content",
	    b64.data ? b64.data : "");
	ras_buf_free(&b64);
	return res;
}

/* Transfer of Care outpatient letter headings (SNOMED section codes). */
struct tocsec {
	const char *code, *display;
	bool mandatory;
};

static const struct tocsec toc[] = {
	{ "887201000000105", "Plan and requested actions", false },
	{ "887181000000106", "Clinical summary", true },
	{ "1077881000000105", "Attendance details", true },
	{ "933361000000108", "Medications and medical devices", false },
	{ "1082101000000102", "Investigation results", false },
	{ "1052951000000105", "Information and advice given", false },
	{ "886921000000105", "Allergies and adverse reactions", true },
	{ "886731000000109", "Patient demographics", true },
	{ "886711000000101", "GP practice", true },
	{ "887231000000104", "Person completing record", true },
	{ "1052891000000108", "Referrer details", false },
	{ "887261000000109", "Distribution list", false },
};
#define NTOC (sizeof(toc) / sizeof(toc[0]))

/* Which ToC heading a UK Core heading (the R4 document's section code) goes under. */
static size_t
toc_of(const char *heading)
{
	static const struct { const char *h; size_t t; } map[] = {
		{ "plan-and-requested-actions", 0 }, { "plan", 0 }, { "outbound-referral", 0 }, { "future", 0 },
		{ "outcome", 1 }, { "treatments-and-interventions", 1 }, { "reason-for-referral", 1 },
		{ "diagnoses", 1 }, { "assessments", 1 },
		{ "discharge-details", 2 }, { "referral-details", 2 },
		{ "medications-and-medical-devices", 3 },
		{ "investigations-and-results", 4 }, { "investigation-results", 4 },
		{ "information-and-advice-given", 5 }, { "signpost-details", 5 },
		{ "patient-demographics", 7 },
		{ "person-completing-record", 9 }, { "professional-contacts", 9 },
		{ "contact-for-further-information", 9 },
		{ "distribution-list", 11 },
	};

	for (size_t i = 0; heading && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].h, heading) == 0)
			return map[i].t;
	return 1;   /* anything else is part of the clinical summary */
}

/* The inside of a narrative <div xmlns=...>…</div>. */
static void
div_inner(const char *div, struct ras_buf *out)
{
	const char *open = div ? strchr(div, '>') : NULL, *close = div ? strrchr(div, '<') : NULL;

	if (open && close && close > open)
		(void)ras_buf_append(out, open + 1, (size_t)(close - open - 1));
}

static void
esc(struct ras_buf *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '<')
			ras_buf_puts(out, "&lt;");
		else if (*s == '>')
			ras_buf_puts(out, "&gt;");
		else if (*s == '&')
			ras_buf_puts(out, "&amp;");
		else
			(void)ras_buf_append(out, s, 1);
	}
}

/* ToC sections from the document's: each heading once, the letter's
 * sections under it in their order (titled), mandatory ones always. */
static json_t *
toc_sections(struct b *b, const json_t *comp, const char *binary_uuid)
{
	struct ras_buf divs[NTOC];
	json_t *out = json_array(), *s;
	const json_t *gp = NULL, *pt = doc_resource(b->doc, "Patient", NULL);
	size_t i;

	for (size_t t = 0; t < NTOC; t++)
		divs[t] = (struct ras_buf)RAS_BUF_INIT(RAS_PAYLOAD_MAX);
	json_array_foreach(ras_json_arr(comp, "section"), i, s) {
		const char *code = ras_json_str(json_array_get(ras_json_arr(ras_json_obj(s, "code"), "coding"),
		    0), "code");
		size_t t = toc_of(code);

		ras_buf_puts(&divs[t], "<h3>");
		esc(&divs[t], ras_json_str(s, "title"));
		ras_buf_puts(&divs[t], "</h3>");
		div_inner(ras_json_str(ras_json_obj(s, "text"), "div"), &divs[t]);
	}
	/* mandatory headings the letter has nothing under */
	if (divs[1].len == 0)
		ras_buf_puts(&divs[1], "<p>The letter is attached.</p>");
	if (divs[2].len == 0)
		ras_buf_puts(&divs[2], "<p>Referral triage by the service; the letter's date is the date of "
		    "the decision or contact it reports.</p>");
	if (divs[6].len == 0)
		ras_buf_puts(&divs[6], "<p>Not recorded by this service: see the GP record.</p>");
	if (pt)
		gp = doc_resource(b->doc, "Organization", ref_id(json_array_get(ras_json_arr(pt,
		    "generalPractitioner"), 0)));
	if (divs[8].len == 0) {
		ras_buf_puts(&divs[8], "<p>");
		if (gp) {
			esc(&divs[8], ras_json_str(gp, "name") ? ras_json_str(gp, "name") : "GP practice");
			ras_buf_puts(&divs[8], " (");
			esc(&divs[8], ras_json_str(json_array_get(ras_json_arr(gp, "identifier"), 0), "value"));
			ras_buf_puts(&divs[8], ")");
		} else {
			ras_buf_puts(&divs[8], "Registered GP practice not known to this service.");
		}
		ras_buf_puts(&divs[8], "</p>");
	}
	if (divs[9].len == 0)
		ras_buf_puts(&divs[9], "<p>The service named at the top of this letter.</p>");
	for (size_t t = 0; t < NTOC; t++) {
		json_t *sec;
		const char *div;

		if (divs[t].len == 0)
			continue;
		(void)ras_buf_append(&divs[t], "", 0);
		div = ras_arena_printf(b->a, "<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>",
		    divs[t].data);
		sec = json_pack("{s:s,s:{s:[{s:s,s:s,s:s}]},s:{s:s,s:s}}", "title", toc[t].display, "code",
		    "coding", "system", SYS_SNOMED, "code", toc[t].code, "display", toc[t].display, "text",
		    "status", "generated", "div", div ? div : "");
		/* the PDF: the first entry of the clinical summary */
		if (sec && t == 1)
			put(b, sec, "entry", json_pack("[o]", ref(binary_uuid)));
		push(b, out, sec);
	}
	for (size_t t = 0; t < NTOC; t++)
		ras_buf_free(&divs[t]);
	return out;
}

/* The STU3 document Bundle (ITK-Document-Bundle-1). */
static json_t *
document_stu3(struct b *b, const char *docb_uuid)
{
	const json_t *comp = composition(b->doc), *pt = doc_resource(b->doc, "Patient", NULL);
	const json_t *prov = doc_resource(b->doc, "Organization", ref_id(ras_json_obj(comp, "custodian")));
	const json_t *gp = pt ? doc_resource(b->doc, "Organization", ref_id(json_array_get(ras_json_arr(pt,
	    "generalPractitioner"), 0))) : NULL;
	json_t *bundle = json_object(), *entries = json_array(), *c = json_object(), *authors = json_array();
	json_t *a;
	const char *comp_id = ras_json_str(comp, "id");
	char bin[37];
	size_t i;
	bool opl = b->m->kind == RAS_ITK3_TOC_OUTPATIENT;

	if (comp == NULL || pt == NULL || prov == NULL || comp_id == NULL) {
		b->err = ras_error_code(RAS_EINVALID, "not a rasd document (Composition, Patient, custodian)");
		json_decref(bundle);
		json_decref(entries);
		json_decref(c);
		json_decref(authors);
		return NULL;
	}
	ras_document_uuid(bin, "rasd:itk3|%s|Binary", comp_id);
	put(b, c, "resourceType", json_string("Composition"));
	put(b, c, "id", json_string(comp_id));
	put(b, c, "meta", meta(opl ? SD_STU3 "CareConnect-ITK-OPL-Composition-1" :
	    SD_CC "CareConnect-Composition-1"));
	if (ras_json_obj(comp, "text"))
		put(b, c, "text", json_deep_copy(ras_json_obj(comp, "text")));
	/* (careSettingType is must-support, not mandatory: left out until the
	 * service's SNOMED care setting is configured, rather than guessed) */
	put(b, c, "identifier", json_deep_copy(ras_json_obj(comp, "identifier")));
	put(b, c, "status", json_string("final"));
	put(b, c, "type", opl ? json_pack("{s:[{s:s,s:s,s:s}]}", "coding", "system", SYS_SNOMED, "code",
	    "823681000000100", "display", "Outpatient letter") : json_pack("{s:[{s:s,s:s,s:s}],s:s}",
	    "coding", "system", SYS_SNOMED, "code", "823751000000102", "display", "Letter", "text",
	    ras_json_str(comp, "title")));
	put(b, c, "subject", ref(ras_json_str(pt, "id")));
	put(b, c, "date", json_string(ras_json_str(comp, "date")));
	json_array_foreach(ras_json_arr(comp, "author"), i, a)
		push(b, authors, json_deep_copy(a));
	put(b, c, "author", authors);
	put(b, c, "title", json_string(ras_json_str(comp, "title")));
	put(b, c, "confidentiality", json_string("N"));
	put(b, c, "custodian", json_deep_copy(ras_json_obj(comp, "custodian")));
	if (ras_json_arr(comp, "relatesTo"))
		put(b, c, "relatesTo", json_deep_copy(ras_json_arr(comp, "relatesTo")));
	if (opl)
		put(b, c, "section", toc_sections(b, comp, bin));
	else
		/* Send Document: the PDF is the primary attachment, the first
		 * entry of the only section */
		put(b, c, "section", json_pack("[{s:s,s:[o]}]", "title", ras_json_str(comp, "title"), "entry",
		    ref(bin)));
	push(b, entries, entry(comp_id, c));
	push(b, entries, entry(bin, binary(b, bin)));
	push(b, entries, entry(ras_json_str(pt, "id"), patient_stu3(b, pt, gp ? ras_json_str(gp, "id") :
	    NULL)));
	push(b, entries, entry(ras_json_str(prov, "id"), organization_stu3(b, prov,
	    SD_CC "CareConnect-Organization-1")));
	if (gp)
		push(b, entries, entry(ras_json_str(gp, "id"), organization_stu3(b, gp,
		    SD_CC "CareConnect-Organization-1")));
	json_array_foreach(ras_json_arr(comp, "author"), i, a) {
		const json_t *pr = doc_resource(b->doc, "Practitioner", ref_id(a));

		if (pr)
			push(b, entries, entry(ras_json_str(pr, "id"), practitioner_stu3(b, pr)));
	}
	put(b, bundle, "resourceType", json_string("Bundle"));
	put(b, bundle, "id", json_string(docb_uuid));
	put(b, bundle, "meta", meta(SD_STU3 "ITK-Document-Bundle-1"));
	put(b, bundle, "identifier", json_deep_copy(ras_json_obj(b->doc, "identifier")));
	put(b, bundle, "type", json_string("document"));
	put(b, bundle, "entry", entries);
	return bundle;
}

int
ras_itk3_message(struct ras_arena *a, const json_t *document, const struct ras_itk3_msg *m,
    struct ras_buf *xml)
{
	struct b b = { .a = a, .doc = document, .m = m };
	const struct kinddef *k;
	json_t *msg, *hdr, *handling, *entries, *docb;
	char hdr_id[37], org_id[37], docb_id[37], at[RAS_TIME_STR_MAX];
	int err;

	if (m->kind != RAS_ITK3_SEND_DOCUMENT && m->kind != RAS_ITK3_TOC_OUTPATIENT)
		return ras_error_code(RAS_EINVALID, "unknown ITK3 message kind");
	if (m->message_id == NULL || m->sender_ods == NULL || m->source_mailbox == NULL ||
	    m->sender_reference == NULL)
		return ras_error_code(RAS_EINVALID, "an ITK3 message needs its id, sender, mailbox and "
		    "sender reference");
	k = &kinds[m->kind];
	ras_itk3_header_id(hdr_id, m->message_id);
	ras_document_uuid(org_id, "rasd:itk3|%s|sender|%s", m->message_id, m->sender_ods);
	ras_document_uuid(docb_id, "rasd:itk3|%s|document", m->message_id);
	ras_time_format_uk(m->at, at);
	docb = document_stu3(&b, docb_id);
	if (b.err) {
		json_decref(docb);
		return b.err;
	}
	handling = json_pack("{s:s,s:[{s:s,s:b},{s:s,s:b},{s:s,s:{s:s,s:s,s:s}},{s:s,s:{s:s}},"
	    "{s:s,s:s},{s:s,s:s}]}", "url", URL_HANDLING, "extension",
	    "url", "BusAckRequested", "valueBoolean", 1,
	    "url", "InfAckRequested", "valueBoolean", 1,
	    "url", "RecipientType", "valueCoding", "system", SYS_RECIPIENT, "code", "FA", "display",
	    "For Action",
	    "url", "MessageDefinition", "valueReference", "reference", k->definition,
	    "url", "SenderReference", "valueString", m->sender_reference,
	    "url", "LocalExtension", "valueString", k->local_extension);
	/* STU3 element order: extension, event, destination, sender, timestamp, source, focus */
	hdr = json_object();
	put(&b, hdr, "resourceType", json_string("MessageHeader"));
	put(&b, hdr, "id", json_string(hdr_id));
	put(&b, hdr, "meta", meta(SD_STU3 "ITK-MessageHeader-2"));
	put(&b, hdr, "extension", json_pack("[o]", handling));
	put(&b, hdr, "event", json_pack("{s:s,s:s,s:s}", "system", SYS_EVENT, "code", k->event, "display",
	    k->event_display));
	if (m->dest_mailbox) {
		/* STU3: destination.endpoint, and the receiver beside it */
		put(&b, hdr, "destination", json_pack("[{s:s}]", "endpoint", m->dest_mailbox));
		if (m->receiver_ods)
			put(&b, hdr, "receiver", json_pack("{s:{s:s,s:s}}", "identifier", "system", SYS_ODS,
			    "value", m->receiver_ods));
	}
	put(&b, hdr, "sender", ref(org_id));
	put(&b, hdr, "timestamp", json_string(at));
	put(&b, hdr, "source", json_pack("{s:s}", "endpoint", m->source_mailbox));
	put(&b, hdr, "focus", ref(docb_id));
	entries = json_array();
	push(&b, entries, entry(hdr_id, hdr));
	push(&b, entries, entry(org_id, json_pack("{s:s,s:s,s:o,s:[{s:s,s:s}],s:s}", "resourceType",
	    "Organization", "id", org_id, "meta", meta(SD_CC "CareConnect-ITK-Header-Organization-1"),
	    "identifier", "system", SYS_ODS, "value", m->sender_ods, "name",
	    m->sender_name ? m->sender_name : m->sender_ods)));
	push(&b, entries, entry(docb_id, docb));
	msg = json_pack("{s:s,s:s,s:o,s:{s:s,s:s},s:s,s:o}", "resourceType", "Bundle", "id", m->message_id,
	    "meta", meta(SD_STU3 "ITK-Message-Bundle-1"), "identifier", "system", SYS_RFC4122, "value",
	    m->message_id, "type", "message", "entry", entries);
	if (msg == NULL && b.err == 0)
		b.err = ras_error_code(RAS_ENOMEM, "out of memory");
	if (b.err) {
		json_decref(msg);
		return b.err;
	}
	err = ras_xml_fhir_from_json(msg, xml);
	json_decref(msg);
	return err;
}

const char *
ras_itk3_subject(struct ras_arena *a, const json_t *document, const char *sender_name,
    const char *sender_ods, int version)
{
	const json_t *comp = composition(document), *pt = doc_resource(document, "Patient", NULL);
	json_t *name = json_array_get(ras_json_arr(pt, "name"), 0), *id, *g;
	struct ras_buf n = RAS_BUF_INIT(RAS_STRING_MAX);
	const char *nhs = "", *out;
	size_t i;

	json_array_foreach(ras_json_arr(name, "prefix"), i, g)
		if (json_is_string(g)) {
			ras_buf_puts(&n, json_string_value(g));
			ras_buf_puts(&n, " ");
		}
	json_array_foreach(ras_json_arr(name, "given"), i, g)
		if (json_is_string(g)) {
			ras_buf_puts(&n, json_string_value(g));
			ras_buf_puts(&n, " ");
		}
	if (ras_json_str(name, "family"))
		ras_buf_puts(&n, ras_json_str(name, "family"));
	(void)ras_buf_append(&n, "", 0);
	json_array_foreach(ras_json_arr(pt, "identifier"), i, id)
		if (ras_json_str(id, "system") && strcmp(ras_json_str(id, "system"), SYS_NHS) == 0)
			nhs = ras_json_str(id, "value");
	out = ras_arena_printf(a, "%s for %s, NHS Number: %s, seen at %s, %s, Version: %d",
	    ras_json_str(comp, "title") ? ras_json_str(comp, "title") : "Letter", n.data ? n.data : "",
	    nhs ? nhs : "", sender_name ? sender_name : "", sender_ods ? sender_ods : "",
	    version > 0 ? version : 1);
	ras_buf_free(&n);
	return out;
}

/* --- responses ----------------------------------------------------------- */

static const struct { const char *code, *meaning; } codes[] = {
	{ "10001", "Handling specification error" },
	{ "10002", "Infrastructure level response value: processing error" },
	{ "10003", "Business level response value: processing error" },
	{ "10004", "Message definition value: processing error" },
	{ "10005", "Message definition version value: processing error" },
	{ "10007", "Sender reference value: processing error" },
	{ "10008", "Handling specification business rule error" },
	{ "10009", "Unreadable message received" },
	{ "10010", "Recipient type: processing error" },
	{ "20001", "Unrecognised recipient person" },
	{ "20002", "Unrecognised recipient organisation" },
	{ "20003", "Unrecognised sender" },
	{ "20004", "Non-approved file type received as an attachment" },
	{ "20005", "Unsupported file type received as an attachment" },
	{ "20006", "ITK header validation failure" },
	{ "20007", "Duplicate message received" },
	{ "20008", "Duplicate document received" },
	{ "20009", "Payload validation failure" },
	{ "20010", "Unrecognised payload recipient organisation" },
	{ "20011", "Unrecognised payload recipient person" },
	{ "20012", "Unauthorised sender" },
	{ "20013", "Success" },
	{ "20014", "Unable to process replacement document" },
	{ "20015", "Message too large" },
	{ "30001", "Patient known here" },
	{ "30002", "Patient not known here" },
	{ "30003", "Patient no longer at this clinical setting" },
	{ "30004", "Patient known here and recently deceased" },
};

const char *
ras_itk3_code_meaning(const char *code)
{
	for (size_t i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(codes[i].code, code) == 0)
			return codes[i].meaning;
	return NULL;
}

static void
first(struct ras_arena *a, const struct ras_xml_doc *d, const char *expr, char *out, size_t size)
{
	static const char *const ns[] = { "f", "http://hl7.org/fhir", NULL };
	const char **v = NULL;
	size_t n = 0;

	out[0] = '\0';
	if (ras_xml_xpath(a, d, expr, ns, &v, &n) == 0 && n > 0 && v[0])
		snprintf(out, size, "%s", v[0]);
}

int
ras_itk3_parse_response(struct ras_arena *a, const char *data, size_t len,
    struct ras_itk3_response *out)
{
	struct ras_xml_doc *d;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = ras_xml_parse(a, data, len, RAS_PAYLOAD_MAX, &d)) < 0)
		return err;
	if (ras_xml_name(ras_xml_root(d)) == NULL || strcmp(ras_xml_name(ras_xml_root(d)), "Bundle") != 0)
		return ras_error_code(RAS_EINVALID, "an ITK3 response is a FHIR Bundle");
	first(a, d, "//f:MessageHeader/f:event/f:code/@value", out->event, sizeof(out->event));
	first(a, d, "//f:MessageHeader/f:response/f:code/@value", out->response_code,
	    sizeof(out->response_code));
	first(a, d, "//f:MessageHeader/f:response/f:identifier/@value", out->request_id,
	    sizeof(out->request_id));
	first(a, d, "//f:MessageHeader/f:extension[@url='" URL_HANDLING "']/f:extension"
	    "[@url='SenderReference']/f:valueString/@value", out->sender_reference,
	    sizeof(out->sender_reference));
	first(a, d, "//f:OperationOutcome/f:issue/f:details/f:coding/f:code/@value", out->itk_code,
	    sizeof(out->itk_code));
	first(a, d, "//f:OperationOutcome/f:issue/f:details/f:coding/f:display/@value", out->itk_display,
	    sizeof(out->itk_display));
	first(a, d, "//f:OperationOutcome/f:issue/f:diagnostics/@value", out->diagnostics,
	    sizeof(out->diagnostics));
	if (strcmp(out->event, "ITK008M") != 0)
		return ras_error_code(RAS_EINVALID, "not an ITK3 response (event %s)",
		    out->event[0] ? out->event : "missing");
	if (out->request_id[0] == '\0' && out->sender_reference[0] == '\0')
		return ras_error_code(RAS_EINVALID, "an ITK3 response without response.identifier or "
		    "SenderReference cannot be matched to a letter");
	if (out->itk_code[0] == '1' || out->itk_code[0] == '2')
		out->type = RAS_ITK3_ACK_INFRASTRUCTURE;
	else if (out->itk_code[0] == '3')
		out->type = RAS_ITK3_ACK_BUSINESS;
	else if (out->itk_code[0] == '\0' && strcmp(out->response_code, "ok") == 0) {
		/* an infrastructure ack with no OperationOutcome */
		out->type = RAS_ITK3_ACK_INFRASTRUCTURE;
		snprintf(out->itk_code, sizeof(out->itk_code), "20013");
	} else {
		return ras_error_code(RAS_EINVALID, "ITK3 response code \"%s\" is not an ITK response code",
		    out->itk_code);
	}
	out->success = strcmp(out->itk_code, "20013") == 0 || strcmp(out->itk_code, "30001") == 0;
	if (out->itk_display[0] == '\0' && ras_itk3_code_meaning(out->itk_code))
		snprintf(out->itk_display, sizeof(out->itk_display), "%s", ras_itk3_code_meaning(out->itk_code));
	return 0;
}
