/*
 * intake: turns one received payload into the normalised model.
 *
 * ras_intake_parse() detects what the bytes are (FHIR R4 referral Bundle,
 * e-RS STU3 worklist, ReferralRequest or DocumentReference, or a bare
 * QuestionnaireResponse form) and parses it.  It is pure: no I/O, no
 * database, no logging; everything it returns lives in the arena.
 *
 * A payload that cannot be parsed fails with RAS_EINVALID or RAS_ETOOBIG
 * and a one-line reason (ras_error_last()) that names the problem but never
 * quotes patient data.  Identity checks that are the store's or the rules'
 * business (an NHS number failing Modulus 11) are reported in the model,
 * not as parse failures.
 */
#ifndef RAS_INTAKE_H
#define RAS_INTAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "ras/json.h"
#include "ras/referral.h"

struct ras_arena;

struct ras_intake {
	enum ras_payload_kind kind;
	size_t n_referrals;               /* bundle, A005: 1; worklist: one per item */
	struct ras_referral *referrals;
	struct ras_attachment *attachment;/* RAS_PAYLOAD_ERS_DOCREF */
	struct ras_form *form;            /* RAS_PAYLOAD_FORM */
	json_t *json;                     /* the parsed payload (arena-owned) */
};

/*
 * XML payloads are read only as referral forms (RAS_PAYLOAD_FORM): a FHIR
 * XML QuestionnaireResponse always, any other XML or XHTML through
 * `form_maps`, the field maps of mappings/form-maps (xmlform.h; the
 * runtime's, ras_runtime_form_maps).  NULL = no maps.
 */
struct ras_xmlform_maps;
int ras_intake_parse(struct ras_arena *a, const struct ras_xmlform_maps *form_maps,
    const char *data, size_t len, struct ras_intake *out);

/*
 * Does a payload that cannot be used (it did not parse, or its identity is
 * unusable) report danger anywhere: a red-flags answer, suspected cancer, a
 * cauda-equina or suspected-cancer code, an urgent or two-week-wait
 * priority?  Read without trusting the parsers (any JSON tree; the text of
 * anything else), so a rejection can say URGENT.
 */
bool ras_intake_reports_danger(const char *data, size_t len);

/* The per-format parsers, for callers that already hold parsed JSON. */
int ras_intake_fhir_bundle(struct ras_arena *a, json_t *bundle, struct ras_referral *out);
int ras_intake_fhir_form(struct ras_arena *a, const json_t *qr, struct ras_form *out);
int ras_intake_ers_worklist(struct ras_arena *a, json_t *list, struct ras_intake *out);
int ras_intake_ers_referral(struct ras_arena *a, json_t *rr, struct ras_referral *out);
int ras_intake_ers_docref(struct ras_arena *a, const json_t *dr, struct ras_attachment *out);

/*
 * Sort the QuestionnaireResponses a referral carries (`cand`, in the
 * referrer's order): the first answering rasd's referral form is r->form
 * (unless r already has one), the others go to r->other_forms; two referral
 * forms, an unreadable or unnamed response, or none answering rasd's form
 * are r->doubts (the safety net sends those to review).  Both intake routes
 * (R4 bundles, e-RS ReferralRequests with contained forms) use it.
 */
int ras_intake_fhir_forms(struct ras_arena *a, const json_t *const *cand, size_t n,
    struct ras_referral *r);

/* Fill patient details from an R4 Patient resource (NHS number checked). */
int ras_intake_fhir_patient(struct ras_arena *a, const json_t *patient,
    struct ras_patient *out);

#endif
