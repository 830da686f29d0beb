/*
 * decision: what triage decides about one referral, as data.
 *
 * The rules engine (rules.c) produces a struct ras_decision; the store keeps
 * it (decisions table, never overwritten: a re-triage adds a row); the e-RS
 * client records it (A028); the document builders turn it into letters.
 * A decision made by a clinician (rasctl decide, an EPR event) has the same
 * shape, with decided_by set to their SDS user id.
 *
 * Strings and arrays are owned by the arena the decision was built in.
 */
#ifndef RAS_DECISION_H
#define RAS_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"
#include "ras/time.h"

struct ras_arena;
struct ras_rules_trace;

enum ras_outcome {
	RAS_OUTCOME_ACCEPT = 1,   /* into the service */
	RAS_OUTCOME_RETURN,       /* back to the referrer, with advice */
	RAS_OUTCOME_ONWARD,       /* to another pathway (onward_target) */
	RAS_OUTCOME_REVIEW,       /* a clinician or MDT must decide */
};

/* "accept", "return", "onward", "review"; parse returns 0 when unknown. */
const char *ras_decision_outcome_name(enum ras_outcome o);
enum ras_outcome ras_decision_outcome_parse(const char *s);

/* One reason: the rule that fired, the clause of the spec it implements,
 * and plain-English advice for the referrer (may be NULL for reasons that
 * need none, e.g. an acceptance). */
struct ras_reason {
	const char *rule;       /* "midnotts.population" */
	const char *clause;     /* "004 §3.4" */
	const char *advice;
	const char *stage;      /* safety, identity, eligibility, completeness, clinical */
};

/* A clock the decision starts.  Working-day clocks are due at the end of
 * `due_date` (UK civil time); hour clocks are due at `due_at` exactly. */
struct ras_deadline {
	const char *kind;       /* triage, return, onward, gp-notification, contact, … */
	const char *clause;
	bool hours;             /* an hour clock (Dorset 2019 "within 48 hours") */
	struct ras_date due_date;
	int64_t due_at;         /* instant the deadline falls due */
};

struct ras_decision {
	const char *service;          /* rasd service id */
	enum ras_outcome outcome;
	const char *onward_target;    /* two-week-wait, secondary-care, mental-health, … */
	bool final;                   /* false: a recommendation awaiting a clinician */
	size_t n_reasons;
	struct ras_reason *reasons;
	size_t n_deadlines;
	struct ras_deadline *deadlines;
	json_t *facts;                /* the facts the rules used (arena-owned); after
	                                 ras_rules_decide() NULL until ras_rules_facts_json() */
	const struct ras_rules_trace *trace;  /* the rules engine's typed facts (rules.h):
	                                 what ras_rules_facts_json() writes out */
	const char *ruleset_version;  /* content hash of the rule set */
	int64_t received_at;          /* the receipt time clocks ran from */
	int64_t decided_at;
	const char *decided_by;       /* "rules", or an SDS user id */
};

/* JSON form (as printed by `rasctl triage` and stored in decisions.doc):
 * {"service", "outcome", "onward_target", "final", "reasons": [{rule,
 * clause, advice, stage}], "deadlines": [{kind, due, clause}], "facts",
 * "ruleset_version", "decided_by", "decided_at"}.  `full` adds facts,
 * ruleset_version, decided_by and decided_at. */
int ras_decision_to_json(const struct ras_decision *d, bool full, json_t **out);
int ras_decision_from_json(struct ras_arena *a, json_t *doc, struct ras_decision *out);

#endif
