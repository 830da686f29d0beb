/*
 * document: the FHIR R4 documents rasd sends (triage outcome letter, 2WW
 * GP notice, notification letter, discharge summary) and the patient's
 * printable copy.  Pure: data in, JSON/HTML out, no I/O.
 *
 * A document is a Bundle of type "document": the Composition first (UK Core
 * headings from UKCore-RecordStandardHeadings, SNOMED document type where
 * one exists), then the Patient (UK Core identifiers, NHS number with its
 * verification status), the organisations (ODS codes), practitioners (SDS
 * ids), and for episode documents an Encounter.  Which sections appear, in
 * which order and what cannot be missing come from the service's profile
 * (docprofile.h); every section has XHTML narrative built with libxml2;
 * actions for the GP always come first; opioid medicines are highlighted.
 *
 * Determinism: every id is a version 5 UUID derived from the referral key,
 * the kind and the document version, so the same input gives the same
 * bytes apart from `at`.  Bundle.identifier (system
 * https://tools.ietf.org/html/rfc4122) is the receivers' de-duplication key.
 */
#ifndef RAS_DOCUMENT_H
#define RAS_DOCUMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/decision.h"
#include "ras/docprofile.h"
#include "ras/episode.h"
#include "ras/json.h"
#include "ras/referral.h"

struct ras_arena;
struct ras_buf;
struct ras_xhtml_saver;

enum ras_doc_kind {
	RAS_DOC_TRIAGE_OUTCOME = 1,
	RAS_DOC_GP_2WW_NOTICE,
	RAS_DOC_NOTIFICATION_LETTER,
	RAS_DOC_DISCHARGE_SUMMARY,
	RAS_DOC_PATIENT_COPY,
};

const char *ras_document_kind_name(enum ras_doc_kind k);

/* The label a letter prints for a clock kind ("GP informed", "Care with the
 * service completed"): never the internal name; "Next step" for a kind it
 * does not know. */
const char *ras_document_deadline_label(const char *kind);
enum ras_doc_kind ras_document_kind_parse(const char *s);   /* 0 when unknown */

/* True when the kind is built from an episode summary (needs --episode). */
bool ras_document_kind_needs_episode(enum ras_doc_kind k);

struct ras_doc_input {
	enum ras_doc_kind kind;
	const struct ras_docprofile *profile;
	const struct ras_referral *referral;
	const char *referral_key;            /* NULL: ras_referral_key(referral) */
	const struct ras_decision *decision; /* triage-outcome, gp-2ww-notice */
	const struct ras_episode *episode;   /* notification-letter, discharge-summary, patient-copy */
	bool has_accepted_date;              /* default admission date (date of acceptance) */
	struct ras_date accepted_date;
	int version;                         /* document version, 1.. (0 = 1) */
	int64_t at;                          /* Composition.date and Bundle.timestamp */
	/* the narratives' serialiser, kept from document to document by a
	 * caller that builds many (NULL: one made for this document) */
	struct ras_xhtml_saver *saver;
};

#define RAS_DOC_MISSING_MAX 32

/* The one answer of the referral's form a document shows (the reason for
 * referral); the render stage reads no other answer of a stored referral
 * (lib/delivery/outbox_render.c, SQL_CONTEXT). */
#define RAS_DOC_FORM_ANSWER "diagnosis"

struct ras_doc_missing {
	size_t n;
	const char *items[RAS_DOC_MISSING_MAX];
	const char *clause;
};

/*
 * Build the document Bundle.  A patient-copy builds the document it copies.
 * When required items are missing, returns RAS_EINVALID with *missing
 * listing them ("discharge-date", "patient.nhs-number", …) and the message
 * "missing required items: a, b (clause)".  A kind the service's profile
 * lacks, a triage letter without a final outcome, or a 2WW notice for a
 * decision that is not onward two-week-wait are RAS_EINVALID with n == 0.
 */
int ras_document_build(struct ras_arena *a, const struct ras_doc_input *in, json_t **bundle,
    struct ras_doc_missing *missing);

/* The document's stable identifier (Bundle.identifier.value). */
const char *ras_document_identifier(const json_t *bundle);

/* A self-contained printable HTML page of a document (inline CSS, no
 * external assets); `patient` frames it as the patient's own copy. */
int ras_document_html(struct ras_arena *a, const json_t *bundle, const struct ras_docprofile *p,
    bool patient, struct ras_buf *out);

/* Wrapping for delivery: a FHIR message Bundle whose MessageHeader
 * (eventCoding message-event#document) has the document as its focus. */
struct ras_doc_message {
	const char *message_id;      /* uuid, stable per outbox row (resend = same id) */
	int64_t at;
	const char *sender_ods;
	const char *sender_name;
	const char *source_endpoint; /* e.g. urn:nhs-uk:addressing:mesh:X26ABC1 */
	const char *dest_endpoint;   /* NULL: no destination (GPPROVIDER routing) */
	const char *receiver_ods;    /* may be NULL */
};

int ras_document_message(const json_t *document, const struct ras_doc_message *m, json_t **out);

/* Stable UUIDs derived from a name (version 5). */
void ras_document_uuid(char out[37], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
