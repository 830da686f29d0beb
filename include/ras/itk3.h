/*
 * itk3: ITK3 messages (FHIR STU3 XML, ITK3 Messaging Distribution) that
 * GP practice systems file from MESH, and the ITK3 responses they send
 * back (reference/fhir/itk3-stu3/, reference/mesh/NOTES.md §3).
 *
 * Two messages, chosen per route:
 *   gp-connect-send-document  event ITK007C, workflow GPCONNECT_SEND_DOCUMENT,
 *       MessageDefinition ITK-GPConnectSendDocument-MessageDefinition-1: the
 *       letter as a PDF Binary (the primary attachment, the first entry of
 *       the Composition's only section), with the minimal structured
 *       Patient, Practitioner and Organizations, as the reference message
 *       gpconnect-send-document-consultation-report.xml has them;
 *   toc-outpatient-letter     event ITK006D, workflow TOC_FHIR_OP_ATTEN,
 *       MessageDefinition ITK-OPL-MessageDefinition-4: a CareConnect
 *       document whose Composition (CareConnect-ITK-OPL-Composition-1,
 *       SNOMED 823681000000100) carries the Transfer of Care outpatient
 *       letter sections (SNOMED section codes; the six mandatory ones always
 *       present), GP actions first, plus the PDF.
 *
 * Every message: a Bundle (ITK-Message-Bundle-1, type message) whose first
 * entry is the MessageHeader (ITK-MessageHeader-2) with the MessageHandling
 * extension (BusAckRequested and InfAckRequested true, RecipientType FA,
 * MessageDefinition, SenderReference, LocalExtension), event, destination
 * (not with GPPROVIDER routing), sender, timestamp, source.endpoint the
 * sending mailbox, and focus the document Bundle (ITK-Document-Bundle-1).
 * Identifiers are stable: the message Bundle's is the outbox row's message
 * id, the MessageHeader's and every resource's are derived from it and the
 * document (version 5 UUIDs), so a resend is the same message.
 */
#ifndef RAS_ITK3_H
#define RAS_ITK3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"

struct ras_arena;
struct ras_buf;

enum ras_itk3_kind {
	RAS_ITK3_NONE = 0,
	RAS_ITK3_SEND_DOCUMENT,     /* "gp-connect-send-document" */
	RAS_ITK3_TOC_OUTPATIENT,    /* "toc-outpatient-letter" */
};

/* "gp-connect-send-document", "toc-outpatient-letter" → kind; 0 unknown. */
enum ras_itk3_kind ras_itk3_kind_parse(const char *s);
const char *ras_itk3_kind_name(enum ras_itk3_kind k);
const char *ras_itk3_workflow(enum ras_itk3_kind k);   /* GPCONNECT_SEND_DOCUMENT, … */
const char *ras_itk3_event(enum ras_itk3_kind k);      /* ITK007C, ITK006D */

struct ras_itk3_msg {
	enum ras_itk3_kind kind;
	const char *message_id;       /* uuid: Bundle.id and identifier (stable per outbox row) */
	const char *sender_reference; /* SenderReference, echoed in responses: rasd's local id */
	int64_t at;                   /* MessageHeader.timestamp */
	const char *sender_ods;       /* the service's ODS code */
	const char *sender_name;
	const char *source_mailbox;   /* our MESH mailbox */
	const char *dest_mailbox;     /* NULL with GPPROVIDER routing (no destination, GPCM-SD-049) */
	const char *receiver_ods;     /* with dest_mailbox */
	const void *pdf;              /* the letter as PDF */
	size_t pdf_len;
};

/* The ITK3 message (STU3 XML) for a rasd document Bundle (R4 JSON, as
 * ras_document_build makes it). */
int ras_itk3_message(struct ras_arena *a, const json_t *document, const struct ras_itk3_msg *m,
    struct ras_buf *xml);

/* mex-Subject in the Send Document format:
 * "<title> for <patient name>, NHS Number: <nhs>, seen at <service>, <ods>, Version: <n>". */
const char *ras_itk3_subject(struct ras_arena *a, const json_t *document, const char *sender_name,
    const char *sender_ods, int version);

/* --- responses (ITK008M) ------------------------------------------------ */

enum ras_itk3_ack_type {
	RAS_ITK3_ACK_UNKNOWN = 0,
	RAS_ITK3_ACK_INFRASTRUCTURE,  /* 1xxxx / 2xxxx codes */
	RAS_ITK3_ACK_BUSINESS,        /* 3xxxx codes */
};

struct ras_itk3_response {
	char response_code[16];       /* MessageHeader.response.code: ok, transient-error, fatal-error */
	char request_id[64];          /* MessageHeader.response.identifier: our MessageHeader id */
	char sender_reference[160];   /* the MessageHandling SenderReference echoed */
	char event[16];               /* ITK008M */
	char itk_code[16];            /* the OperationOutcome's ITK response code, e.g. 20013 */
	char itk_display[160];
	char diagnostics[256];
	enum ras_itk3_ack_type type;
	bool success;                 /* 20013 (infrastructure) or 30001 (business) */
};

/* Parse an ITK3 response (STU3 XML, as ITK3 requires). RAS_EINVALID with
 * a reason for anything else (not XML, a DTD with entities, not ITK008M,
 * nothing to match it by, no ITK response code). */
int ras_itk3_parse_response(struct ras_arena *a, const char *data, size_t len,
    struct ras_itk3_response *out);

/* The meaning of an ITK response code ("Patient not known here", …);
 * NULL when unknown. */
const char *ras_itk3_code_meaning(const char *code);

/* The MessageHeader id of a message with this message id (what a response's
 * response.identifier names). */
void ras_itk3_header_id(char out[37], const char *message_id);

#endif
