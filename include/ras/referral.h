/*
 * referral: the normalised referral model every intake route produces and
 * every later stage (store, rules, documents, e-RS) consumes.
 *
 * All strings and arrays are owned by the arena the parser was given;
 * a struct ras_referral lives exactly as long as that arena.  Missing data
 * is NULL / 0 / has_x = false, never an empty placeholder: the rules must
 * be able to tell "not said" from "said no".
 *
 * Nothing here is logged: names, dates of birth, postcodes and free text
 * are patient-identifiable.
 */
#ifndef RAS_REFERRAL_H
#define RAS_REFERRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/nhsno.h"
#include "ras/time.h"

struct ras_arena;

/* What a payload turned out to be. */
enum ras_payload_kind {
	RAS_PAYLOAD_UNKNOWN = 0,
	RAS_PAYLOAD_FHIR_BUNDLE,     /* R4 referral Bundle (collection/message/transaction) */
	RAS_PAYLOAD_ERS_WORKLIST,    /* e-RS STU3 A008 List */
	RAS_PAYLOAD_ERS_REFERRAL,    /* e-RS STU3 A005 ReferralRequest */
	RAS_PAYLOAD_ERS_DOCREF,      /* e-RS STU3 DocumentReference (attachment metadata) */
	RAS_PAYLOAD_FORM,            /* a bare R4 QuestionnaireResponse (e.g. an e-RS form attachment) */
};

/* Stable lower-case name: "fhir-bundle", "ers-worklist", … */
const char *ras_referral_payload_kind_name(enum ras_payload_kind k);

enum ras_priority {
	RAS_PRIORITY_UNKNOWN = 0,
	RAS_PRIORITY_ROUTINE,
	RAS_PRIORITY_URGENT,         /* R4 urgent/asap/stat, e-RS URGENT */
	RAS_PRIORITY_TWO_WEEK_WAIT,  /* e-RS TWO_WEEK_WAIT: suspected cancer pathway */
};

const char *ras_referral_priority_name(enum ras_priority p);   /* "routine", "urgent", "two-week-wait", "unknown" */

enum ras_answer_type {
	RAS_ANSWER_BOOLEAN = 1,
	RAS_ANSWER_INTEGER,
	RAS_ANSWER_DECIMAL,
	RAS_ANSWER_STRING,     /* valueString / valueText */
	RAS_ANSWER_DATE,       /* valueDate / valueDateTime: kept as text in `s` */
	RAS_ANSWER_CODING,
	RAS_ANSWER_OTHER,      /* a value type rasd does not interpret; `s` says which */
};

const char *ras_referral_answer_type_name(enum ras_answer_type t);

/*
 * One answer of a QuestionnaireResponse, flattened.  A repeating item gives
 * several answers with the same link_id.  Items nested in a group carry the
 * group's linkId in `group` and the group occurrence (0-based) in
 * `group_index`, so repeating groups such as episode-summary
 * medication-changes stay together.
 */
struct ras_answer {
	const char *link_id;
	/* strlen(link_id) when the reader knew it (the stored form's reader
	 * does: jansson keeps every string's length), else 0: whoever needs
	 * it measures it then.  Never anything but 0 or the true length. */
	size_t link_id_len;
	const char *group;         /* NULL at top level */
	int group_index;
	enum ras_answer_type type;
	bool b;
	int64_t i;
	double d;
	const char *s;             /* string, date text, or coding display */
	const char *system;        /* coding system */
	const char *code;          /* coding code */
};

struct ras_form {
	const char *questionnaire; /* canonical URL without "|version" */
	const char *version;       /* the part after '|', NULL when absent */
	const char *status;        /* completed, in-progress, amended, … */
	const char *authored;      /* as sent */
	size_t n_answers;
	struct ras_answer *answers;
	size_t n_unmapped;
	const char **unmapped;     /* cells of an XML/XHTML form its map does not
	                              place (their ids): the form is incomplete */
};

/*
 * rasd's referral form: the Questionnaire every rule set reads (any
 * version).  Among the QuestionnaireResponses a referral carries, the one
 * answering this canonical URL is the referral form; the others are kept
 * (other_forms) and looked at by the safety net, never triaged as the form.
 */
#define RAS_REFERRAL_FORM_URL "urn:rasd:questionnaire:community-pain-referral"

/* True when `canonical` ("url" or "url|version") names rasd's referral form. */
bool ras_referral_is_rasd_form(const char *canonical);

struct ras_patient {
	const char *nhs_number;
	enum ras_nhsno_status nhs_number_status;
	const char *nhs_verification;  /* UK Core verification status code, e.g. "01" */
	bool has_birth_date;
	struct ras_date birth_date;
	const char *family;
	const char *given;             /* given names joined by spaces */
	const char *prefix;
	const char *gender;
	const char *postcode;          /* never kept for a restricted patient */
	bool restricted;               /* Patient.meta.security R/V (PDS restricted, "S-flagged"):
	                                  no address is kept, so none can be disclosed */
	/* correspondence address lines (PDS only, never stored in the referral
	 * document; pds_store.h fills them for letters) */
	const char *address_lines[5];
	size_t n_address_lines;
	const char *practice_ods;      /* registered GP practice (generalPractitioner) */
	const char *practice_name;
};

struct ras_referrer {
	const char *name;              /* practitioner display name */
	const char *sds_user_id;
	const char *sds_role_profile_id;
	const char *professional_id;   /* GMC/NMC/… as "system|value" */
	const char *org_ods;           /* requester organisation ODS code */
	const char *org_name;
	const char *role_code;         /* PractitionerRole.code (SNOMED or other) */
};

struct ras_condition {
	const char *system;
	const char *code;
	const char *display;
	const char *clinical_status;
};

struct ras_attachment {
	const char *ubrn;              /* the referral it belongs to, when known */
	const char *id;                /* e-RS attachment id / DocumentReference id */
	const char *url;               /* "Binary/<id>" or absolute */
	const char *content_type;
	const char *title;
	const char *availability;      /* AVAILABLE, PENDING, THREATS_FOUND, VALIDATION_FAILED */
	const char *type;              /* REFERRER, PROVIDER, … */
	const char *created;
	const char *attached_by;       /* SDS user id */
	const char *attached_by_org;   /* ODS code */
	int64_t size;                  /* -1 when unknown */
};

struct ras_referral {
	enum ras_payload_kind source;
	const char *ubrn;              /* e-RS UBRN (opaque string), NULL when none */
	int64_t version;               /* e-RS version / meta.versionId; 0 when none */
	const char *local_id;          /* ServiceRequest identifier when there is no UBRN */
	const char *ers_request_id;
	const char *ers_service_id;    /* e-RS service id (http://fhir.nhs.net/Id/ers-service) */
	const char *ers_service_name;
	const char *specialty;
	enum ras_priority priority;
	const char *priority_raw;
	bool has_authored;
	int64_t authored;              /* authoredOn / clinical info first submitted */
	bool has_pathway_start;
	int64_t pathway_start;         /* e-RS eReferralPathwayStart */
	const char *ers_state;         /* e-RS referral state code */
	const char *ers_referral_type; /* TRIAGE_DEFERRAL, APPOINTMENT */
	const char *request_context;   /* NEVER_REVIEWED, LETTER_CHANGED, … */
	const char *status;            /* ServiceRequest/ReferralRequest status */
	const char *reason_text;       /* free text reason/note: never logged */
	struct ras_patient patient;
	struct ras_referrer referrer;
	bool has_form;
	struct ras_form form;
	size_t n_other_forms;
	struct ras_form *other_forms;  /* every other QuestionnaireResponse carried */
	size_t n_doubts;
	const char **doubts;           /* what intake could not settle (two referral
	                                  forms, an unreadable form, ...): no patient
	                                  data; the safety net sends these to review */
	size_t n_conditions;
	struct ras_condition *conditions;
	size_t n_attachments;
	struct ras_attachment *attachments;
	size_t n_related;
	const char **related_ubrns;    /* other UBRNs of the same pathway */
};


/* The key a referral is stored under: the UBRN, else "local:" + local_id. */
const char *ras_referral_key(struct ras_arena *a, const struct ras_referral *r);

#endif
