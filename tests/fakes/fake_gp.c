/* fake_gp: a GP practice system's ITK3 responses (see tests/fakes/fake_gp.h). */
#define _GNU_SOURCE 1
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gp.h"
#include "fake_mesh.h"
#include "ras/arena.h"
#include "ras/crypto.h"
#include "ras/xml.h"

static const char *
first(struct ras_arena *a, const struct ras_xml_doc *d, const char *expr)
{
	static const char *const ns[] = { "f", "http://hl7.org/fhir", NULL };
	const char **v = NULL;
	size_t n = 0;

	if (ras_xml_xpath(a, d, expr, ns, &v, &n) < 0 || n == 0)
		return NULL;
	return v[0];
}

static const char *
meaning(const char *code)
{
	static const struct { const char *c, *m; } t[] = {
		{ "20013", "Success" }, { "20009", "Payload validation failure" },
		{ "20006", "ITK header validation failure" }, { "30001", "Patient known here" },
		{ "30002", "Patient not known here" }, { "30003", "Patient no longer at this clinical setting" },
		{ "30004", "Patient known here and recently deceased" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].c, code) == 0)
			return t[i].m;
	return "Error";
}

char *
fake_gp_response(const char *req, const char *code, const char *gp_mailbox)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_xml_doc *d;
	const char *hdr, *sref, *event;
	char id[RAS_UUID_STR_LEN], hid[RAS_UUID_STR_LEN], oid[RAS_UUID_STR_LEN], *out = NULL;
	bool fatal = code[0] != '3' && strcmp(code, "20013") != 0;

	if (ras_xml_parse(a, req, strlen(req), 1u << 26, &d) < 0)
		goto done;
	hdr = first(a, d, "/f:Bundle/f:entry[1]/f:resource/f:MessageHeader/f:id/@value");
	sref = first(a, d, "//f:MessageHeader/f:extension/f:extension[@url='SenderReference']/f:valueString/@value");
	event = first(a, d, "//f:MessageHeader/f:event/f:code/@value");
	if (hdr == NULL || sref == NULL || event == NULL)
		goto done;
	ras_crypto_uuid(id);
	ras_crypto_uuid(hid);
	ras_crypto_uuid(oid);
	if (asprintf(&out,
	    "<Bundle xmlns=\"http://hl7.org/fhir\"><id value=\"%s\"/>"
	    "<meta><profile value=\"https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1\"/></meta>"
	    "<identifier><system value=\"https://tools.ietf.org/html/rfc4122\"/><value value=\"%s\"/></identifier>"
	    "<type value=\"message\"/>"
	    "<entry><fullUrl value=\"urn:uuid:%s\"/><resource><MessageHeader><id value=\"%s\"/>"
	    "<meta><profile value=\"https://fhir.nhs.uk/STU3/StructureDefinition/ITK-MessageHeader-2\"/></meta>"
	    "<extension url=\"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2\">"
	    "<extension url=\"BusAckRequested\"><valueBoolean value=\"false\"/></extension>"
	    "<extension url=\"InfAckRequested\"><valueBoolean value=\"false\"/></extension>"
	    "<extension url=\"RecipientType\"><valueCoding><system value=\"https://fhir.nhs.uk/STU3/CodeSystem/"
	    "ITK-RecipientType-1\"/><code value=\"FI\"/></valueCoding></extension>"
	    "<extension url=\"MessageDefinition\"><valueReference><reference value=\"https://fhir.nhs.uk/STU3/"
	    "MessageDefinition/ITK-Response-MessageDefinition-1\"/></valueReference></extension>"
	    "<extension url=\"SenderReference\"><valueString value=\"%s\"/></extension>"
	    "<extension url=\"LocalExtension\"><valueString value=\"None\"/></extension></extension>"
	    "<event><system value=\"https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2\"/>"
	    "<code value=\"ITK008M\"/><display value=\"ITK Response\"/></event>"
	    "<timestamp value=\"2026-07-20T11:00:00+01:00\"/>"
	    "<source><endpoint value=\"%s\"/></source>"
	    "<response><identifier value=\"%s\"/><code value=\"%s\"/>"
	    "<details><reference value=\"urn:uuid:%s\"/></details></response></MessageHeader></resource></entry>"
	    "<entry><fullUrl value=\"urn:uuid:%s\"/><resource><OperationOutcome><id value=\"%s\"/>"
	    "<issue><severity value=\"%s\"/><code value=\"%s\"/><details><coding>"
	    "<system value=\"https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1\"/>"
	    "<code value=\"%s\"/><display value=\"%s\"/></coding></details>"
	    "<diagnostics value=\"fake GP practice system\"/></issue></OperationOutcome></resource></entry>"
	    "</Bundle>", id, id, hid, hid, sref, gp_mailbox, hdr, fatal ? "fatal-error" : "ok", oid, oid, oid,
	    fatal ? "error" : code[0] == '3' && strcmp(code, "30001") ? "warning" : "information",
	    fatal ? "invalid" : "informational", code, meaning(code)) < 0)
		out = NULL;
done:
	ras_arena_free(a);
	return out;
}

int
fake_gp_reply(struct fake_mesh *m, size_t i, const char *code)
{
	const struct fake_mesh_msg *x = fake_mesh_msg(m, i);
	char wf[160], *resp;

	if (x == NULL || x->body == NULL)
		return -1;
	resp = fake_gp_response(x->body, code, x->to);
	if (resp == NULL)
		return -1;
	snprintf(wf, sizeof(wf), "%s_ACK", x->workflow);
	/* GPPROVIDER routing resolves to the practice's mailbox: answer from X26ABC2 */
	fake_mesh_deliver(m, strncmp(x->to, "GPPROVIDER_", 11) == 0 ? "X26ABC2" : x->to, x->from, wf,
	    "application/fhir+xml", resp);
	free(resp);
	return 0;
}
