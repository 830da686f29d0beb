/*
 * form: rasd's referral form as a FHIR R4 Questionnaire, and the check of
 * a referral's QuestionnaireResponse against it.
 *
 * The Questionnaires live in mappings/forms/ (canonical URL
 * urn:rasd:questionnaire:community-pain-referral; version 2 is current,
 * status "active"; version 1 is out of date, status "retired").  A response
 * names the one it answers as "<url>|<version>".
 *
 * The check is pure (no I/O) and reports, rather than fails on, everything
 * a rule might care about: which Questionnaire (and whether it is the
 * current one), whether the response is completed, mandatory items left
 * unanswered, answers of the wrong type, a repeated answer to an item that
 * does not repeat, coded answers outside the form's code system or its
 * answer options, integers outside minValue/maxValue, and items the form
 * does not have.  Everything returned lives in the caller's arena.
 */
#ifndef RAS_FORM_H
#define RAS_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"
#include "ras/referral.h"

struct ras_arena;

/* The R4 item types rasd's forms use.  "choice" items are answered with a
 * valueCoding (the "coding" type). */
enum ras_qitem_type {
	RAS_QITEM_BOOLEAN = 1,
	RAS_QITEM_INTEGER,
	RAS_QITEM_DECIMAL,
	RAS_QITEM_STRING,     /* string and text */
	RAS_QITEM_DATE,       /* date and dateTime */
	RAS_QITEM_CHOICE,
};

struct ras_qitem {
	const char *link_id;
	size_t link_len;              /* strlen(link_id) */
	const char *group;            /* linkId of the group it sits in (NULL at top level) */
	const char *text;
	enum ras_qitem_type type;
	bool required;
	bool repeats;
	bool has_min, has_max;        /* minValue / maxValue extensions (integer items) */
	int64_t min, max;
	size_t n_options;             /* choice: answerOption valueCoding codes */
	const char **options;
	const char *option_system;    /* their system (one per item) */
};

struct ras_questionnaire {
	const char *url;
	const char *version;
	const char *status;           /* active (current), retired (out of date), draft */
	bool active;                  /* status is "active" (set when parsed) */
	const char *title;
	size_t n_items;
	struct ras_qitem *items;
	/* the required items outside any group, by index in items (form order):
	 * what the check lists as missing when nothing is invalid */
	size_t n_required_top;
	const size_t *required_top;
};

/* Parse an R4 Questionnaire resource.  RAS_EINVALID with the reason when
 * it is not one rasd can check against (no url/version, an item without
 * linkId or with an unsupported type, duplicate linkIds, a choice item
 * without answer options).  A group's items are listed flat with `group`
 * set, matching the flattened answers of referral.h; an item of a
 * repeating group may be answered once per group occurrence, and a
 * required item inside a group is required only within a group that is
 * present, so the top-level check does not list it as missing. */
int ras_form_questionnaire_parse(struct ras_arena *a, const json_t *q,
    struct ras_questionnaire *out);

/* The item with link_id (NULL when the form has none). */
const struct ras_qitem *ras_form_item(const struct ras_questionnaire *q, const char *link_id);

/* The result of checking one response. */
struct ras_form_check {
	bool present;                 /* the referral has a form at all */
	bool questionnaire_known;     /* its canonical URL is one of ours */
	bool version_known;           /* … and so is its version */
	bool current;                 /* … which is the active version */
	bool completed;               /* status completed or amended */
	const struct ras_questionnaire *q;  /* the version it answers (NULL if unknown) */
	size_t n_missing;             /* required items without an (acceptable) answer, in form order */
	const char **missing;
	size_t n_invalid;             /* items with an answer the form does not allow */
	const char **invalid;
	size_t n_unknown;             /* linkIds the form does not have */
	const char **unknown;
	const int *item_of;           /* per answer: index of its item in q->items, or -1 */
	const bool *answer_ok;        /* per answer: acceptable for its item (false: no item) */
	const int *n_answers_of;      /* per item of q: its answers */
	const int *n_ok_of;           /* per item of q: its acceptable answers */
	const int *first_of;          /* per item of q: its first answer (any), -1 when none */
};

/*
 * Check `f` (may be NULL: no form) against the Questionnaires qs[0..nq).
 * `extra_required` lists linkIds a service requires on top of the form's
 * own mandatory items (its pre-referral requirements); an extra linkId the
 * matched form does not have counts as missing.  An answer is "acceptable"
 * when it has the item's type, the item's system and one of its codes
 * (choice), and lies within minValue/maxValue; an item with any
 * unacceptable answer is listed in `invalid` and its acceptable answers
 * still count.
 */
int ras_form_check(struct ras_arena *a, const struct ras_questionnaire *const *qs, size_t nq,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    struct ras_form_check *out);

/* The same, with each extra item's place in each Questionnaire worked out
 * beforehand (a rule set does it when it is linked): extra_at[i * n_extra
 * + e] is the index of extra_required[e] in qs[i]->items, -1 when qs[i]
 * has no such item; NULL finds them by name, as ras_form_check().  The
 * result is the same as ras_form_check()'s when the table is right. */
int ras_form_check_indexed(struct ras_arena *a, const struct ras_questionnaire *const *qs, size_t nq,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    const int *extra_at, struct ras_form_check *out);

/* The same check against one given Questionnaire, whatever URL and
 * version the response names (q must not be NULL).  Used to read the
 * answers of a response whose version is unknown with the current form,
 * so that safety rules still see its red flags. */
int ras_form_check_as(struct ras_arena *a, const struct ras_questionnaire *q,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    struct ras_form_check *out);

/* True when answer `ans` is acceptable for `item` (see above). */
bool ras_form_answer_ok(const struct ras_qitem *item, const struct ras_answer *ans);

/* --- answers of a response (any form: referral, episode summary) --------- */

/* First answer with link_id at any level (NULL when unanswered). */
const struct ras_answer *ras_form_answer(const struct ras_form *f, const char *link_id);

/* Number of answers with link_id. */
size_t ras_form_count(const struct ras_form *f, const char *link_id);

/* Boolean answer: 1 true, 0 false, -1 unanswered or not a boolean. */
int ras_form_bool(const struct ras_form *f, const char *link_id);

/* True when any coding answer of link_id has `code`. */
bool ras_form_has_code(const struct ras_form *f, const char *link_id, const char *code);

/* The form as stored inside referrals.doc and episodes.doc, both ways (new
 * reference in *out; strings of the loaded form point into `doc`). */
int ras_form_to_json(const struct ras_form *f, json_t **out);
int ras_form_from_json(struct ras_arena *a, const json_t *doc, struct ras_form *out);

#endif
