/*
 * fhir: small helpers for reading FHIR JSON (R4 and STU3) that every parser
 * and builder shares: identifiers by system, extensions by URL, codings,
 * and reference resolution inside a Bundle or a resource's `contained`.
 *
 * Identifier systems rasd recognises are named here once.
 */
#ifndef RAS_FHIR_H
#define RAS_FHIR_H

#include <stdbool.h>
#include <stddef.h>

#include "ras/json.h"

struct ras_arena;

#define RAS_SYS_NHS_NUMBER       "https://fhir.nhs.uk/Id/nhs-number"
#define RAS_SYS_NHS_NUMBER_STU3  "http://fhir.nhs.net/Id/nhs-number"
#define RAS_SYS_ODS              "https://fhir.nhs.uk/Id/ods-organization-code"
#define RAS_SYS_ODS_SITE         "https://fhir.nhs.uk/Id/ods-site-code"
#define RAS_SYS_UBRN             "https://fhir.nhs.uk/Id/UBRN"
#define RAS_SYS_SDS_USER         "https://fhir.nhs.uk/Id/sds-user-id"
#define RAS_SYS_SDS_USER_STU3    "http://fhir.nhs.net/Id/sds-user-id"
#define RAS_SYS_SDS_ROLE         "https://fhir.nhs.uk/Id/sds-role-profile-id"
#define RAS_SYS_ERS_SERVICE      "http://fhir.nhs.net/Id/ers-service"
#define RAS_SYS_ERS_REQUEST_ID   "https://fhir.nhs.uk/Id/ers-request-id"
#define RAS_SYS_SNOMED           "http://snomed.info/sct"
/* A QuestionnaireResponse extension naming one cell of an XML/XHTML form its
 * map does not place (xmlform.c): the response is incomplete. */
#define RAS_URL_UNMAPPED_CELL    "urn:rasd:form-map:unmapped-cell"
#define RAS_URL_NHS_VERIFICATION \
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"

/* value of the first identifier[] with `system` (NULL when none). */
const char *ras_fhir_identifier(const json_t *resource, const char *system);

/* The extension object in resource.extension[] with `url` (NULL when none). */
json_t *ras_fhir_extension(const json_t *resource, const char *url);

/* First coding code of a CodeableConcept, restricted to `system` unless NULL;
 * `system_suffix` variants match systems that end with the given text (e-RS
 * dynamic code systems carry an environment-specific prefix). */
const char *ras_fhir_cc_code(const json_t *cc, const char *system);
const char *ras_fhir_cc_code_suffix(const json_t *cc, const char *system_suffix);

/* CodeableConcept / Coding display or text, for human-readable output. */
const char *ras_fhir_cc_text(const json_t *cc);

/*
 * A Bundle indexed for reference resolution.  Entries keep their fullUrl
 * and resource; references are resolved by exact fullUrl ("urn:uuid:…"),
 * by "Type/id" (relative), and by absolute URL ending in "/Type/id".
 */
struct ras_fhir_entry {
	const char *full_url;
	json_t *resource;
	const char *type;   /* resourceType */
	const char *id;
};

struct ras_fhir_bundle {
	json_t *root;
	const char *type;    /* collection, message, transaction, document, … */
	size_t n;
	struct ras_fhir_entry *entries;
};

/* Index the bundle; RAS_EINVALID when an entry has no resource or type, or
 * the bundle holds more than RAS_BUNDLE_ENTRIES_MAX entries. */
int ras_fhir_bundle_index(struct ras_arena *a, json_t *bundle, struct ras_fhir_bundle *out);

/* Resolve a Reference object ({"reference": …}) or reference string. NULL
 * when unresolvable. `want_type` (may be NULL) must match the resource. */
json_t *ras_fhir_bundle_resolve(const struct ras_fhir_bundle *b, const char *reference,
    const char *want_type);

/* Resolve "#id" in resource.contained[]. */
json_t *ras_fhir_contained(const json_t *resource, const char *reference);

/* Number of entries with resourceType `type`, and the first of them. */
size_t ras_fhir_bundle_count(const struct ras_fhir_bundle *b, const char *type, json_t **first);

#endif
