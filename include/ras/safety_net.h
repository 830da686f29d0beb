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

/*
 * What the net noted, as data: a kind, where (the referral form, one of
 * the other forms, a Condition) and the codes or item names involved
 * (tokens: never patient text).  Nothing is formatted while deciding: the
 * text ("other_forms[1] red-flags=cauda-equina") is written only when the
 * decision's facts are serialised (ras_safety_net_note_text).
 */
enum ras_safety_note_kind {
	/* signals */
	RAS_NOTE_RED_FLAG_CODE = 1,   /* "W red-flags=A" */
	RAS_NOTE_RED_FLAG_TRUE,       /* "W red-flags=true" */
	RAS_NOTE_RED_FLAG_TEXT,       /* "W red-flags answered in text" */
	RAS_NOTE_RED_FLAG_UNREADABLE, /* "W red-flags answered (unreadable)" */
	RAS_NOTE_ITEM_TRUE,           /* "W A=true" (A: suspected-cancer, cauda-equina) */
	RAS_NOTE_ITEM_CODE,           /* "W A=B" (B: suspected-cancer, cauda-equina) */
	RAS_NOTE_PRIORITY_2WW,        /* "priority two-week-wait" */
	RAS_NOTE_PRIORITY_URGENT,     /* "priority urgent (A)" */
	RAS_NOTE_ERS_SERVICE_2WW,     /* "e-RS service is a two-week-wait service" */
	RAS_NOTE_ERS_SPECIALTY_2WW,   /* "e-RS specialty is two-week-wait" */
	RAS_NOTE_CONDITION_CODE,      /* "conditions[I] code A" */
	RAS_NOTE_CONDITION_NAMED,     /* "conditions[I] named as A" */
	/* doubts */
	RAS_NOTE_INTAKE,              /* A: intake's own line, as it wrote it */
	RAS_NOTE_RED_FLAG_TEXT_DOUBT, /* "W: red-flags answered in text, not coded" */
	RAS_NOTE_RED_FLAG_UNREADABLE_DOUBT, /* "W: red-flags answer cannot be read" */
	RAS_NOTE_ITEM_UNREADABLE,     /* "W: A answer cannot be read" */
	RAS_NOTE_ANSWER_TYPE,         /* "W: the answer to A is of a type rasd does not read" */
	RAS_NOTE_NOT_ON_FORM,         /* "W: item A is not on the referral form" */
	RAS_NOTE_UNMAPPED_CELL,       /* "W: form cell A has no place in the form map" */
	RAS_NOTE_PRIORITY_UNKNOWN,    /* "priority A is not one rasd knows" */
};

struct ras_safety_note {
	enum ras_safety_note_kind kind;
	int where;                 /* W: -1 "form", i "other_forms[i]"; I for Conditions */
	const char *a, *b;         /* tokens (static, or the referral's codes and linkIds) */
};

/* The longest text of a note other than RAS_NOTE_INTAKE (whose text is its
 * own string): "other_forms[N]" and two tokens of at most 64 bytes. */
#define RAS_SAFETY_NOTE_TEXT_MAX 256

struct ras_safety_net {
	bool danger;
	bool cauda_equina;         /* a cauda-equina red flag or Condition */
	bool suspected_cancer;     /* suspected cancer: form, code or Condition */
	bool two_week_wait;        /* a 2WW priority or service */
	bool urgent;               /* an urgent priority */
	bool red_flag;             /* any other red flag */
	size_t n_signals;
	const struct ras_safety_note *signals;
	size_t n_doubts;
	const struct ras_safety_note *doubts;
	size_t forms_seen;         /* QuestionnaireResponses looked at */
	size_t answers_seen;
};

/*
 * The linkIds of every version of rasd's referral form (a hash set), to
 * tell an item the form does not have: built once, when a rule set is
 * linked, from the Questionnaires themselves.  Lives in `a`.
 */
struct ras_safety_net_items;

int ras_safety_net_items_new(struct ras_arena *a, const struct ras_questionnaire *const *forms,
    size_t n_forms, const struct ras_safety_net_items **out);

/*
 * Which item of the referral form each of its answers is, as the form
 * check matched them (ras_form_check's item_of), in version `form` of the
 * versions `items` was built from.  The net then reads an answer's linkId
 * from its item instead of hashing it again (an answer matched to an item
 * has that item's linkId, and is on the form); answers matched to no item
 * it looks up itself.  It takes nothing else from the form check: not
 * whether an answer is acceptable, nor what the rules made of it.
 */
struct ras_safety_net_match {
	size_t form;
	const int *item_of;        /* per answer of r->form: its item, or -1 */
};

/*
 * Check referral `r`.  `items` are the referral form's linkIds (NULL, or
 * built from no form version: no item is said to be off the form; built
 * from versions without items: every item is); `match` (may be NULL) as
 * above.  The notes
 * point into `r` (its codes, linkIds and intake doubts) and static text:
 * keep `r` while they are used.  Allocates from `a` only when there is
 * something to note.
 */
int ras_safety_net_check(struct ras_arena *a, const struct ras_referral *r,
    const struct ras_safety_net_items *items, const struct ras_safety_net_match *match,
    struct ras_safety_net *out);

/* The text of note `n`: written into buf (RAS_SAFETY_NOTE_TEXT_MAX bytes)
 * and returned, or for RAS_NOTE_INTAKE its own string. */
const char *ras_safety_net_note_text(const struct ras_safety_note *n, char *buf);

/* The net's result as the "safety_net" fact (new reference). */
json_t *ras_safety_net_to_json(const struct ras_safety_net *n);

#endif
