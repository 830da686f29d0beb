/*
 * rules: a service's triage and return-to-referrer rules as data, and the
 * pure engine that applies them (facts in, decision out; no I/O).
 *
 * A rule set (mappings/services/<service-id>.json, format in
 * mappings/README) names its spec, its automation level, its referral form
 * requirements, its registered population (a practice list), a list of
 * rules and a list of clocks.  Each rule is a condition over the referral's
 * facts, a stage, an outcome, the clause of the spec it implements and the
 * advice for the referring GP.  Each clock is a deadline the spec sets
 * (working days, hours, weeks or months from receipt) with a condition over
 * the decision.
 *
 * Decide (ras_rules_decide):
 *
 * 1. Facts are computed from the referral: NHS number validity, age on the
 *    day of receipt (UK civil date), registered practice against the
 *    practice list, GP or secondary-care referrer, the form checked
 *    against its Questionnaire, and every acceptable answer (free text is
 *    recorded only as "answered": facts are stored and must not carry
 *    patient-identifiable text).  They are typed and held in slots the
 *    rule set's conditions were compiled to: no fact is looked up by name.
 * 2. Every rule is evaluated; the ones that match are "findings".
 * 3. Safety first: if any safety rule matched, the outcome is the first
 *    matching onward safety rule (e.g. cauda equina to an emergency
 *    pathway, suspected cancer to two-week-wait) or else review, whatever
 *    identity, eligibility or completeness say; a red flag is never
 *    returned or accepted.  Otherwise the stages identity, eligibility,
 *    completeness, clinical are taken in order: the first stage with a
 *    return or onward finding decides (onward before return within a
 *    stage); review findings of the stages before it are kept only in the
 *    facts.  With no return or onward finding anywhere, any review finding
 *    makes the outcome review; with no finding at all the referral is
 *    accepted.  The reasons are the findings that gave the outcome.
 * 4. Final or recommendation: review is never final; an onward that needs
 *    an MDT ("mdt": true) is never final; automation "none" makes nothing
 *    final, "all" everything else, and "administrative" (the default) only
 *    a return whose every reason is administrative.
 * 5. Clocks whose condition holds become deadlines.
 *
 * Rule sets are parsed and validated on their own (unknown keys, stages,
 * outcomes, operators and fact names are errors; every rule and clock must
 * cite a clause of its own spec; naming more than RAS_RULE_FACTS_MAX facts
 * is an error), then linked to the forms and practice lists they name
 * (mappings.c does the file reading; a form with an item named like one of
 * the engine's own form facts, e.g. "status", is refused).  A linked rule
 * set is immutable and may be shared between threads.
 */
#ifndef RAS_RULES_H
#define RAS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/decision.h"
#include "ras/form.h"
#include "ras/referral.h"

struct ras_arena;
struct ras_buf;
struct ras_calendar;
struct ras_ruleset;

enum ras_automation {
	RAS_AUTOMATION_ADMINISTRATIVE = 0,
	RAS_AUTOMATION_ALL,
	RAS_AUTOMATION_NONE,
};

/* "administrative", "all", "none"; parse returns -1 when unknown. */
const char *ras_rules_automation_name(enum ras_automation a);
int ras_rules_automation_parse(const char *s);

/*
 * A practice list (mappings/practices/<id>.json): `practices` is the
 * registered population (active and dormant GP practices), `closed` the
 * closed GP practices of the same commissioners, `other` organisations of
 * the ODS extract that are not GP practices.  Arrays are sorted.
 */
struct ras_practice_list {
	const char *name;
	size_t n_practices;
	const char **practices;
	size_t n_closed;
	const char **closed;
	size_t n_other;
	const char **other;
};

int ras_rules_practices_parse(struct ras_arena *a, const char *name, const char *data,
    size_t len, struct ras_practice_list *out);

/* Binary search of a sorted list of ODS codes. */
bool ras_rules_code_listed(const char *const *sorted, size_t n, const char *ods);

/* Parse and validate a rule set; it lives in the arena. */
int ras_rules_parse(struct ras_arena *a, const char *data, size_t len, struct ras_ruleset **out);

/* What a parsed rule set refers to (for the loader). */
const char *ras_rules_service(const struct ras_ruleset *rs);
const char *ras_rules_population_file(const struct ras_ruleset *rs);  /* relative path */
const char *ras_rules_form_url(const struct ras_ruleset *rs);

/*
 * Link a parsed rule set: `forms` are every Questionnaire known (the
 * current one of the rule set's URL must be among them, status "active");
 * `population` its practice list; `all_lists` every practice list loaded
 * (together they say which ODS codes are GP practices).  Checks that every
 * form.<linkId> fact and required item exists in the current form.
 * `version` is the content hash the loader computed (copied).
 */
int ras_rules_link(struct ras_arena *a, struct ras_ruleset *rs,
    const struct ras_questionnaire *const *forms, size_t n_forms,
    const struct ras_practice_list *population,
    const struct ras_practice_list *const *all_lists, size_t n_lists, const char *version);

const char *ras_rules_version(const struct ras_ruleset *rs);
enum ras_automation ras_rules_automation(const struct ras_ruleset *rs);

/* Override the automation level (configuration [service ID] automation). */
void ras_rules_set_automation(struct ras_ruleset *rs, enum ras_automation a);

/* Rule and clock counts, and the id of rule i (for listings and tests). */
size_t ras_rules_count(const struct ras_ruleset *rs);
const char *ras_rules_rule_id(const struct ras_ruleset *rs, size_t i);

/*
 * Decide one referral received at `received_at` (the clocks and the age
 * run from its UK civil date), at time `now` (decided_at).  Everything in
 * *out lives in the arena or the rule set; reasons without placeholders
 * point at the rule set's advice.  No name is looked up, nothing is
 * formatted and no JSON is built: out->facts is NULL until
 * ras_rules_facts_json().  Fails only on a rule set that is not linked,
 * on out-of-memory, or on advice longer than RAS_ADVICE_MAX.
 */
int ras_rules_decide(struct ras_arena *a, const struct ras_ruleset *rs,
    const struct ras_referral *r, int64_t received_at, const struct ras_calendar *cal,
    int64_t now, struct ras_decision *out);

/*
 * The decision's facts as stored (decisions.facts): everything the engine
 * computed, every rule that matched ("findings"), the safety net's result,
 * the automation level, urgency and calendar coverage.  ras_rules_decide()
 * keeps its facts typed (d->trace, pointing into the referral and the rule
 * set) and leaves d->facts NULL: whoever stores or prints the facts calls
 * this once, in the decision's arena, while the referral still lives.  A
 * no-op when d->facts is already set or the decision is not the engine's.
 */
int ras_rules_facts_json(struct ras_arena *a, struct ras_decision *d);

/*
 * The same facts as JSON text, appended to `out`: byte for byte what
 * ras_json_dump(RAS_JSON_COMPACT) writes of the object
 * ras_rules_facts_json() builds from the same decision (before anything
 * else is added to it), written straight from d->trace without building
 * a JSON tree.  RAS_EINVALID when the decision is not the engine's;
 * RAS_ETOOBIG when out's limit is reached, on out-of-memory, or on a
 * string that is not UTF-8 (where building the object fails too).
 */
int ras_rules_facts_text(const struct ras_decision *d, struct ras_buf *out);

/*
 * Clock kinds.  A rule set may only start a clock something in rasd can
 * meet (a decision, a delivered letter, an EPR event: rules.c lists which
 * meets which); any other kind is refused when the rule set loads.
 * ras_rules_clock_kinds() is the NULL-terminated list.
 */
bool ras_rules_clock_kind_known(const char *kind);
const char *const *ras_rules_clock_kinds(void);

/* The clause of the rule set's first clock of `kind` (NULL when it has
 * none): e.g. the spec's triage clause for a clinician's decision. */
const char *ras_rules_clock_clause(const struct ras_ruleset *rs, const char *kind);

/*
 * The deadlines the rule set starts for an outcome (decide uses this; a
 * clinician's decision recorded later gets its clocks the same way).
 * *covered (may be NULL) is false when a clock ran past the years the
 * bank-holiday file covers (see calendar.h).
 */
int ras_rules_deadlines(struct ras_arena *a, const struct ras_ruleset *rs,
    enum ras_outcome outcome, const char *onward_target, bool urgent, bool final,
    int64_t received_at, const struct ras_calendar *cal, struct ras_deadline **out,
    size_t *n_out, bool *covered);

#endif
