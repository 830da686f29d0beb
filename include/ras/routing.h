/*
 * routing: where a document for an organisation goes.  The table is a JSON
 * file named by [routing] table, one route per ODS code:
 *
 *   {"routes": [
 *     {"ods": "C84009", "transport": "mesh", "mailbox": "A82045OT001",
 *      "workflow": "RASD_LETTERS"},
 *     {"ods": "RK5", "transport": "fhir", "endpoint": "https://ehr.example.nhs.uk/fhir/R4",
 *      "mode": "message", "format": "json"}]}
 *
 * mesh: the recipient mailbox, and optionally the workflow id (else the
 * message's: GPCONNECT_SEND_DOCUMENT, TOC_FHIR_OP_ATTEN; for fhir-r4 the
 * [mesh] workflow for the document kind), and the message:
 *   "message": "gp-connect-send-document" | "toc-outpatient-letter" | "fhir-r4"
 * (ITK3 STU3 XML, or the R4 message Bundle; default: gp-connect-send-document
 * for letters to GP practices, fhir-r4 for others).  "lookup": true instead
 * of a mailbox: the MESH endpoint lookup finds it by the route's ODS code
 * and the workflow when the letter is sent (none or several: dead letter).  fhir: the endpoint base URL;
 * mode "message" POSTs a message Bundle to $process-message, "document"
 * POSTs the document Bundle to /Bundle with If-None-Exist on its
 * identifier; format json (default) or xml.  Pure: no I/O but the load.
 */
#ifndef RAS_ROUTING_H
#define RAS_ROUTING_H

#include <stdbool.h>
#include <stddef.h>

struct ras_arena;

struct ras_route {
	const char *ods;
	const char *transport;   /* mesh, fhir */
	const char *mailbox;
	const char *workflow;
	const char *endpoint;
	const char *mode;        /* message, document */
	const char *format;      /* json, xml */
	const char *message;     /* mesh: gp-connect-send-document, toc-outpatient-letter, fhir-r4; NULL default */
	bool lookup;             /* mesh: the mailbox found by MESH endpoint lookup (ODS code, workflow) */
};

struct ras_routing {
	size_t n;
	struct ras_route *routes;
};

/* RAS_EINVALID with the offending route on a bad table. */
int ras_routing_parse(struct ras_arena *a, const char *data, size_t len, struct ras_routing *out);
int ras_routing_load(struct ras_arena *a, const char *path, struct ras_routing *out);

/* The route for an ODS code (case-insensitive), or NULL. */
const struct ras_route *ras_routing_find(const struct ras_routing *t, const char *ods);

#endif
