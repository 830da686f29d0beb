/*
 * safety_net: the independent danger-and-doubt check over everything a
 * referral carries (see include/ras/safety_net.h and
 * docs/design/safety-net.md).
 *
 * Deliberately simple and deliberately separate from form.c and the rule
 * engine: it reads answers by linkId and code, so a form read through the
 * wrong Questionnaire, a form map that drops a field, or a rule set that
 * forgets a red flag cannot hide danger from it.
 */
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/limits.h"
#include "ras/safety_net.h"

/* Red-flag codes of the referral form that have a path of their own. */
#define CODE_CAUDA  "cauda-equina"
#define CODE_CANCER "suspected-cancer"

/* SNOMED CT concepts that, as a referral's Condition, report danger. */
static const struct {
	const char *code;
	bool cancer;            /* else cauda equina */
} danger_codes[] = {
	{ "192970008", false },  /* Cauda equina syndrome */
	{ "363346000", true },   /* Malignant neoplastic disease */
	{ "372087000", true },   /* Primary malignant neoplasm */
	{ "128462008", true },   /* Secondary malignant neoplastic disease (metastasis) */
};

/* Words that, in a Condition's display text, report the same. */
static const struct {
	const char *word;
	bool cancer;
} danger_words[] = {
	{ "cauda equina", false },
	{ "cancer", true }, { "malignan", true }, { "metasta", true }, { "carcinoma", true },
	{ "lymphoma", true }, { "sarcoma", true }, { "leukaemia", true }, { "leukemia", true },
	{ "myeloma", true },
};

/* Words that say the opposite: "chronic non-malignant pain" is the pain
 * clinic's daily bread, not a suspected cancer. */
static const char *const not_danger[] = { "non-malignant", "non malignant", "nonmalignant",
	"non-cancer", "non cancer", "benign" };

struct net {
	struct ras_arena *a;
	struct ras_safety_net *out;
	size_t cap_sig, cap_doubt;
	int err;
};

static void
push(struct net *n, const char ***v, size_t *len, size_t *cap, const char *s)
{
	if (n->err)
		return;
	if (s == NULL) {
		n->err = ras_error_code(RAS_ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < *len; i++)
		if (strcmp((*v)[i], s) == 0)
			return;
	if (*len >= RAS_FORM_ANSWERS_MAX)
		return;   /* enough said: the outcome does not change */
	if (*len == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		const char **nv = ras_arena_calloc(n->a, nc, sizeof(*nv));

		if (nv == NULL) {
			n->err = ras_error_code(RAS_ENOMEM, "out of memory");
			return;
		}
		if (*len)
			memcpy(nv, *v, *len * sizeof(*nv));
		*v = nv;
		*cap = nc;
	}
	(*v)[(*len)++] = s;
}

static void
add_signal(struct net *n, const char *s)
{
	n->out->danger = true;
	push(n, &n->out->signals, &n->out->n_signals, &n->cap_sig, s);
}

static void
doubt(struct net *n, const char *s)
{
	push(n, &n->out->doubts, &n->out->n_doubts, &n->cap_doubt, s);
}

/* A code or linkId fit to be stored in facts: a short token, no text. */
static const char *
token(const char *s)
{
	size_t l;

	if (s == NULL)
		return "(none)";
	l = strlen(s);
	if (l == 0 || l > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-_.:|/") != l)
		return "(unreadable)";
	return s;
}

static bool
item_on_form(const struct ras_questionnaire *const *forms, size_t n_forms, const char *link_id)
{
	for (size_t i = 0; i < n_forms; i++)
		if (ras_form_item(forms[i], link_id))
			return true;
	return false;
}

static void
red_flag_code(struct net *n, const char *where, const char *code)
{
	if (code && strcmp(code, CODE_CAUDA) == 0)
		n->out->cauda_equina = true;
	else if (code && strcmp(code, CODE_CANCER) == 0)
		n->out->suspected_cancer = true;
	else
		n->out->red_flag = true;
	add_signal(n, ras_arena_printf(n->a, "%s red-flags=%s", where, token(code)));
}

static void
check_answer(struct net *n, const char *where, bool rasd, const struct ras_answer *ans,
    const struct ras_questionnaire *const *forms, size_t n_forms)
{
	const char *lid = ans->link_id ? ans->link_id : "";

	n->out->answers_seen++;
	if (strcmp(lid, "red-flags") == 0) {
		switch (ans->type) {
		case RAS_ANSWER_CODING:
			red_flag_code(n, where, ans->code);
			break;
		case RAS_ANSWER_BOOLEAN:
			if (ans->b) {
				n->out->red_flag = true;
				add_signal(n, ras_arena_printf(n->a, "%s red-flags=true", where));
			}
			break;
		case RAS_ANSWER_STRING:
			if (ans->s && *ans->s) {
				/* written out, not coded: reported all the same */
				n->out->red_flag = true;
				add_signal(n, ras_arena_printf(n->a, "%s red-flags answered in text", where));
				doubt(n, ras_arena_printf(n->a, "%s: red-flags answered in text, not coded", where));
			}
			break;
		default:
			n->out->red_flag = true;
			add_signal(n, ras_arena_printf(n->a, "%s red-flags answered (unreadable)", where));
			doubt(n, ras_arena_printf(n->a, "%s: red-flags answer cannot be read", where));
			break;
		}
		return;
	}
	if (strcmp(lid, CODE_CANCER) == 0 || strcmp(lid, CODE_CAUDA) == 0) {
		bool cancer = strcmp(lid, CODE_CANCER) == 0;

		if (ans->type == RAS_ANSWER_BOOLEAN) {
			if (ans->b) {
				if (cancer)
					n->out->suspected_cancer = true;
				else
					n->out->cauda_equina = true;
				add_signal(n, ras_arena_printf(n->a, "%s %s=true", where, lid));
			}
		} else {
			doubt(n, ras_arena_printf(n->a, "%s: %s answer cannot be read", where, lid));
		}
		return;
	}
	if (ans->type == RAS_ANSWER_CODING && ans->code &&
	    (strcmp(ans->code, CODE_CAUDA) == 0 || strcmp(ans->code, CODE_CANCER) == 0)) {
		if (strcmp(ans->code, CODE_CAUDA) == 0)
			n->out->cauda_equina = true;
		else
			n->out->suspected_cancer = true;
		add_signal(n, ras_arena_printf(n->a, "%s %s=%s", where, token(lid), ans->code));
		return;
	}
	if (!rasd)
		return;
	if (ans->type == RAS_ANSWER_OTHER)
		doubt(n, ras_arena_printf(n->a, "%s: the answer to %s is of a type rasd does not read",
		    where, token(lid)));
	else if (n_forms > 0 && !item_on_form(forms, n_forms, lid))
		doubt(n, ras_arena_printf(n->a, "%s: item %s is not on the referral form", where,
		    token(lid)));
}

/* Every answer of a form for danger; the referral form (`main`) also for
 * what rasd cannot read in it (the others are not what triage decides on). */
static void
check_form(struct net *n, const char *where, const struct ras_form *f,
    const struct ras_questionnaire *const *forms, size_t n_forms, bool main)
{
	bool rasd = main && ras_referral_is_rasd_form(f->questionnaire);

	n->out->forms_seen++;
	for (size_t i = 0; i < f->n_answers; i++)
		check_answer(n, where, rasd, &f->answers[i], forms, n_forms);
	for (size_t i = 0; main && i < f->n_unmapped; i++)
		doubt(n, ras_arena_printf(n->a, "%s: form cell %s has no place in the form map", where,
		    token(f->unmapped[i])));
}

static bool
contains_word(const char *text, const char *word)
{
	size_t lw = strlen(word);

	for (const char *p = text; p && *p; p++)
		if (strncasecmp(p, word, lw) == 0)
			return true;
	return false;
}

static void
check_condition(struct net *n, size_t i, const struct ras_condition *c)
{
	const char *st = c->clinical_status;

	/* A condition that is over is history, not a reason for urgency. */
	if (st && (strcmp(st, "resolved") == 0 || strcmp(st, "inactive") == 0 ||
	    strcmp(st, "remission") == 0))
		return;
	for (size_t k = 0; c->code && k < sizeof(danger_codes) / sizeof(danger_codes[0]); k++)
		if (strcmp(c->code, danger_codes[k].code) == 0) {
			if (danger_codes[k].cancer)
				n->out->suspected_cancer = true;
			else
				n->out->cauda_equina = true;
			add_signal(n, ras_arena_printf(n->a, "conditions[%zu] code %s", i, c->code));
			return;
		}
	for (size_t k = 0; c->display && k < sizeof(not_danger) / sizeof(not_danger[0]); k++)
		if (contains_word(c->display, not_danger[k]))
			return;
	for (size_t k = 0; c->display && k < sizeof(danger_words) / sizeof(danger_words[0]); k++)
		if (contains_word(c->display, danger_words[k].word)) {
			if (danger_words[k].cancer)
				n->out->suspected_cancer = true;
			else
				n->out->cauda_equina = true;
			add_signal(n, ras_arena_printf(n->a, "conditions[%zu] named as %s", i,
			    danger_words[k].word));
			return;
		}
}

int
ras_safety_net_check(struct ras_arena *a, const struct ras_referral *r,
    const struct ras_questionnaire *const *forms, size_t n_forms, struct ras_safety_net *out)
{
	struct net n = { .a = a, .out = out };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < r->n_doubts; i++)
		doubt(&n, ras_arena_strdup(a, r->doubts[i]));
	if (r->has_form)
		check_form(&n, "form", &r->form, forms, n_forms, true);
	for (size_t i = 0; i < r->n_other_forms; i++) {
		const struct ras_form *f = &r->other_forms[i];

		/* (two referral forms in one bundle are intake's doubt; an e-RS
		 * form replaced by a later attachment is read here for danger) */
		check_form(&n, ras_arena_printf(a, "other_forms[%zu]", i), f, forms, n_forms, false);
	}
	switch (r->priority) {
	case RAS_PRIORITY_TWO_WEEK_WAIT:
		out->two_week_wait = true;
		add_signal(&n, "priority two-week-wait");
		break;
	case RAS_PRIORITY_URGENT:
		out->urgent = true;
		add_signal(&n, ras_arena_printf(a, "priority urgent (%s)", token(r->priority_raw)));
		break;
	case RAS_PRIORITY_ROUTINE:
		break;
	case RAS_PRIORITY_UNKNOWN:
		if (r->priority_raw)
			doubt(&n, ras_arena_printf(a, "priority %s is not one rasd knows",
			    token(r->priority_raw)));
		break;
	}
	{
		/* e-RS two-week-wait services say so in their name or specialty. */
		const char *names[] = { r->ers_service_name, r->specialty };

		for (size_t i = 0; i < 2; i++)
			if (names[i] && (contains_word(names[i], "2WW") ||
			    contains_word(names[i], "two week wait") ||
			    contains_word(names[i], "TWO_WEEK_WAIT"))) {
				out->two_week_wait = true;
				add_signal(&n, i == 0 ? "e-RS service is a two-week-wait service" :
				    "e-RS specialty is two-week-wait");
			}
	}
	for (size_t i = 0; i < r->n_conditions; i++)
		check_condition(&n, i, &r->conditions[i]);
	return n.err;
}

static json_t *
strings(const char *const *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

json_t *
ras_safety_net_to_json(const struct ras_safety_net *n)
{
	return json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:o*, s:o*, s:I, s:I}",
	    "danger", n->danger, "cauda_equina", n->cauda_equina,
	    "suspected_cancer", n->suspected_cancer, "two_week_wait", n->two_week_wait,
	    "urgent", n->urgent, "red_flag", n->red_flag,
	    "signals", strings(n->signals, n->n_signals),
	    "doubts", strings(n->doubts, n->n_doubts),
	    "forms_seen", (json_int_t)n->forms_seen, "answers_seen", (json_int_t)n->answers_seen);
}
