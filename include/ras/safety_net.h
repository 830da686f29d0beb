/*
 * safety_net: an independent check, before any decision becomes return or
 * accept, that nothing the referral carries reports danger the rules did
 * not see, and that nothing is left that rasd could not read.
 *
 * It does not trust the path that chose and read the referral form: it
 * looks at every QuestionnaireResponse the referral carries (the form, and
 * every other one, whatever linked it), every answer of each (by linkId and
 * code, without the Questionnaire's say on what is valid), the cells an XML
 * form map could not place, the priority (R4 and e-RS), two-week-wait
 * service names, and the coded Conditions.
 *
 *   danger  any red flag (red-flags answered with any code, a cauda-equina
 *           or suspected-cancer code anywhere, suspected-cancer answered
 *           yes), a two-week-wait or urgent priority, a Condition coded or
 *           named as cauda equina or cancer: the safety rules apply
 *           (rules.c re-runs the rule set's safety rules over these
 *           signals; with none matching, review, urgent).
 *   doubt   what the net cannot settle: intake's doubts (two referral
 *           forms, an unreadable or unnamed QuestionnaireResponse, none
 *           answering rasd's form), an unmapped form cell, an answer of a
 *           type rasd does not read, an item the referral form does not
 *           have, a red-flag item answered in a way that cannot be read,
 *           a priority rasd does not know: review, never return or accept.
 *
 * Pure: no I/O.  Signals and doubts name items, codes and positions, never
 * patient text, so they may be stored in the decision's facts.
 * docs/design/safety-net.md says how it is used.
 */
#ifndef RAS_SAFETY_NET_H
#define RAS_SAFETY_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "ras/json.h"
#include "ras/referral.h"

struct ras_arena;
struct ras_questionnaire;

struct ras_safety_net {
	bool danger;
	bool cauda_equina;         /* a cauda-equina red flag or Condition */
	bool suspected_cancer;     /* suspected cancer: form, code or Condition */
	bool two_week_wait;        /* a 2WW priority or service */
	bool urgent;               /* an urgent priority */
	bool red_flag;             /* any other red flag */
	size_t n_signals;
	const char **signals;      /* "other_forms[1] red-flags=cauda-equina", "priority two-week-wait" */
	size_t n_doubts;
	const char **doubts;       /* one line each */
	size_t forms_seen;         /* QuestionnaireResponses looked at */
	size_t answers_seen;
};

/*
 * Check referral `r`.  `forms` are the versions of rasd's referral form
 * (to tell an item the form does not have; may be empty).
 */
int ras_safety_net_check(struct ras_arena *a, const struct ras_referral *r,
    const struct ras_questionnaire *const *forms, size_t n_forms, struct ras_safety_net *out);

/* The net's result as the "safety_net" fact (new reference). */
json_t *ras_safety_net_to_json(const struct ras_safety_net *n);

#endif
