/*
 * referral_gen: referrals built as a referring system would send them, for
 * the clinical safety suites (unit/test_safety.c decides them in-process,
 * db/test_safety_db.c sends them through the store and the triage stage).
 *
 * Everything starts from one hand-made R4 bundle
 * (triage/midnotts-accept.json) and one e-RS A005 referral
 * (ers/referral-BookedDBS.json).  The referral form is linked to the R4
 * ServiceRequest in each way FHIR allows (enum gen_link), or arrives for
 * an e-RS referral as an attachment (FHIR JSON, FHIR XML or the XHTML
 * layout of mappings/form-maps) or contained (enum gen_route).
 * gen_random_form() answers the form at random, red flags included, from
 * a seeded xorshift generator, so a failure names the seed that makes it.
 */
#ifndef RAS_TEST_REFERRAL_GEN_H
#define RAS_TEST_REFERRAL_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/arena.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras/xmlform.h"

#define GEN_FORM_URL "urn:rasd:questionnaire:community-pain-referral"
#define GEN_PHQ9_URL "http://example.org/fhir/Questionnaire/phq-9"
/* The UBRNs of the two base referrals, as their fixtures have them. */
#define GEN_R4_UBRN "100000000301"
#define GEN_ERS_UBRN "000000070001"

/* What the generators read and decide with (gen_setup fills it). */
struct gen {
	struct ras_arena *arena;         /* parses and decisions; gen_reset_arena() */
	struct ras_mappings *maps;
	struct ras_xmlform_maps *xmaps;
	int64_t at;                      /* the time referrals are decided at */
	const char *r4_priority;         /* the ServiceRequest priority gen_bundle_with sets (NULL: the fixture's) */
	uint64_t rng;
	const char *services[RAS_SERVICES_MAX];   /* every service with a rule set */
	size_t n_services;
};
extern struct gen gen;

extern const char *const gen_red_flag_codes[];
extern const size_t gen_n_flags;

enum gen_link { GEN_LINK_SUPPORTING, GEN_LINK_BASED_ON, GEN_LINK_CONTAINED, GEN_LINK_ENTRY, GEN_N_LINKS };
extern const char *const gen_link_names[GEN_N_LINKS];

enum gen_route { GEN_ROUTE_ERS_JSON, GEN_ROUTE_ERS_XML, GEN_ROUTE_ERS_XHTML, GEN_ROUTE_ERS_CONTAINED,
	GEN_N_ROUTES };
extern const char *const gen_route_names[GEN_N_ROUTES];

/* Load the shipped mappings and form maps; 0, or 1 after saying why. */
int gen_setup(void);
void gen_teardown(void);
/* A fresh arena (what earlier parses and decisions pointed into is gone). */
void gen_reset_arena(void);

/* ---- building referrals ---- */
json_t *gen_load_json(const char *fixture);
json_t *gen_entry_of(json_t *bundle, const char *type, size_t *index);
json_t *gen_base_form(void);                 /* the base bundle's form, detached */
json_t *gen_item_of(json_t *qr, const char *link_id);
void gen_set_answers(json_t *qr, const char *link_id, json_t *answers);   /* answers stolen */
void gen_set_bool(json_t *qr, const char *link_id, bool v);
void gen_add_red_flag(json_t *qr, const char *code);
json_t *gen_phq9(void);
/* The base bundle with `form` (stolen) linked `how`, and a PHQ-9 in
 * supportingInfo when `extra`. */
json_t *gen_bundle_with(json_t *form, enum gen_link how, bool extra);
char *gen_dump(const json_t *j);             /* compact JSON, malloc'd */
char *gen_fhir_xml(const json_t *qr);        /* a flat QuestionnaireResponse as FHIR XML */
char *gen_xhtml(const json_t *qr, const char *extra_cell);   /* the XHTML layout of the shipped map */

/*
 * The payloads e-RS gives for a referral whose form goes `route`: the A005
 * referral (the form contained in it for GEN_ROUTE_ERS_CONTAINED), then
 * the form as an attachment (NULL when contained), then a PHQ-9
 * attachment when `extra` and not contained (else NULL).  All malloc'd.
 */
void gen_ers_payloads(const json_t *form, enum gen_route route, bool extra, const char *extra_cell,
    char **referral, char **attachment, char **other);

/* ---- deciding in-process ---- */
int gen_parse_text(const char *text, size_t len, struct ras_intake *in);
/* Decide an R4 bundle (stolen) for `service` at gen.at; 0 or the parse error. */
int gen_decide_bundle(json_t *bundle, const char *service, struct ras_referral *r, struct ras_decision *d);
/* Decide the e-RS referral whose form goes `route`, as the store puts its
 * payloads together; 0 or the parse error. */
int gen_decide_ers(const json_t *form, enum gen_route route, bool extra, const char *extra_cell,
    const char *service, struct ras_referral *r, struct ras_decision *d);
bool gen_returned_or_accepted(const struct ras_decision *d);
/* "outcome[ to target][ (final)]" */
void gen_describe(const struct ras_decision *d, char *out, size_t size);
/* A canonical text of a form's answers (sorted), malloc'd. */
char *gen_answers_key(const struct ras_form *f);

/* ---- what the store made of them ---- */
/* One referral sent, and what the engine decided for it in-process. */
struct gen_sent {
	char ubrn[13];
	const char *service;
	const char *route;        /* how it was sent, for messages */
	bool danger;              /* it reports a red flag, a suspected cancer or an urgent priority */
	char expect[96];          /* "outcome|target|final" of the in-process decision (gen_expect) */
	char *facts;              /* its facts, as JSON (malloc'd; gen_expect) */
	char *answers;            /* gen_answers_key() of the form as read in-process (malloc'd) */
};

/* A payload under another UBRN (every occurrence of `from`; the same
 * length), malloc'd. */
char *gen_with_ubrn(const char *text, const char *from, const char *ubrn);
/* s->expect and s->facts from the in-process decision d. */
void gen_expect(const struct ras_decision *d, struct gen_sent *s);
void gen_sent_free(struct gen_sent *s);
/* What the database has for s->ubrn, checked against s: the latest
 * version's current decision is s->expect; with danger it is neither a
 * return nor an acceptance and no e-RS outcome is on its way; its stored
 * form has the answers sent.  Failures name the seed and the route, and
 * the facts that differ. */
struct ras_db;
void gen_check_stored(struct ras_db *db, const struct gen_sent *s, long seed);

/* ---- random referrals ---- */
void gen_seed(long seed);
uint32_t gen_next_rand(void);
bool gen_coin(unsigned pct);
long gen_env_long(const char *name, long def);
/* A random referral form: every item answered or not, any red flags;
 * *danger when it reports one (or a suspected cancer). */
json_t *gen_random_form(bool *danger);

#endif
