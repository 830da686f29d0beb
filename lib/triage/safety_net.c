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
#include <stdint.h>
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

/* What a linkId is to the net. */
enum name {
	NAME_UNKNOWN = 0,          /* not yet known: hashed and compared */
	NAME_OTHER,
	NAME_RED_FLAGS,
	NAME_CANCER,
	NAME_CAUDA,
};

struct ras_safety_net_items {
	uint32_t h_red_flags, h_cancer, h_cauda;  /* the hashes of the linkIds the net reads */
	size_t n_forms;            /* form versions it was built from */
	const size_t *n_items;     /* per version: its items */
	const unsigned char *const *names;  /* per version, per item: enum name of its linkId */
	size_t n;                  /* linkIds held */
	size_t mask;               /* slots - 1 (a power of two, at least twice n) */
	const char **slot;
};

struct net {
	struct ras_arena *a;
	struct ras_safety_net *out;
	const struct ras_safety_net_items *items;
	struct ras_safety_note *sig, *dbt;
	size_t cap_sig, cap_doubt;
	int err;
};

/* A linkId's hash: its length and its first and last eight bytes (linkIds
 * that share all three are told apart by strcmp, as any collision is). */
static uint32_t
hash(const char *s)
{
	size_t len = strlen(s);
	uint64_t x = len, head = 0, tail = 0;

	if (len >= 8) {
		memcpy(&head, s, 8);
		memcpy(&tail, s + len - 8, 8);
	} else {
		memcpy(&head, s, len);
	}
	x = (x * 0x9e3779b97f4a7c15u) ^ head;
	x = (x * 0x9e3779b97f4a7c15u) ^ tail;
	x *= 0x9e3779b97f4a7c15u;
	return (uint32_t)(x >> 32);
}

int
ras_safety_net_items_new(struct ras_arena *a, const struct ras_questionnaire *const *forms,
    size_t n_forms, const struct ras_safety_net_items **out)
{
	struct ras_safety_net_items *ix = ras_arena_calloc(a, 1, sizeof(*ix));
	size_t total = 0, size = 16;

	for (size_t i = 0; i < n_forms; i++)
		total += forms[i]->n_items;
	while (size < 2 * total)
		size *= 2;
	if (ix == NULL || (ix->slot = ras_arena_calloc(a, size, sizeof(*ix->slot))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ix->mask = size - 1;
	ix->n_forms = n_forms;
	{
		size_t *ni = ras_arena_calloc(a, n_forms + 1, sizeof(*ni));
		unsigned char **names = ras_arena_calloc(a, n_forms + 1, sizeof(*names));

		if (ni == NULL || names == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t i = 0; i < n_forms; i++) {
			ni[i] = forms[i]->n_items;
			if ((names[i] = ras_arena_calloc(a, ni[i] + 1, 1)) == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			for (size_t k = 0; k < ni[i]; k++) {
				const char *lid = forms[i]->items[k].link_id;

				names[i][k] = strcmp(lid, "red-flags") == 0 ? NAME_RED_FLAGS :
				    strcmp(lid, CODE_CANCER) == 0 ? NAME_CANCER :
				    strcmp(lid, CODE_CAUDA) == 0 ? NAME_CAUDA : NAME_OTHER;
			}
		}
		ix->n_items = ni;
		ix->names = (const unsigned char *const *)names;
	}
	ix->h_red_flags = hash("red-flags");
	ix->h_cancer = hash(CODE_CANCER);
	ix->h_cauda = hash(CODE_CAUDA);
	for (size_t i = 0; i < n_forms; i++)
		for (size_t k = 0; k < forms[i]->n_items; k++) {
			const char *lid = forms[i]->items[k].link_id;
			size_t h = hash(lid) & ix->mask;

			while (ix->slot[h] && strcmp(ix->slot[h], lid) != 0)
				h = (h + 1) & ix->mask;
			if (ix->slot[h] == NULL) {
				ix->slot[h] = lid;
				ix->n++;
			}
		}
	*out = ix;
	return 0;
}

/* ---- the notes' text ---------------------------------------------------- */

struct text {
	char *p;
	size_t n;
};

static void
put(struct text *t, const char *s)
{
	size_t l = strlen(s ? s : "");

	if (l > RAS_SAFETY_NOTE_TEXT_MAX - 1 - t->n)
		l = RAS_SAFETY_NOTE_TEXT_MAX - 1 - t->n;
	memcpy(t->p + t->n, s, l);
	t->n += l;
	t->p[t->n] = '\0';
}

static void
put_index(struct text *t, size_t i)
{
	char d[24];
	size_t k = sizeof(d);

	d[--k] = '\0';
	do {
		d[--k] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	put(t, d + k);
}

static void
put_where(struct text *t, int where)
{
	if (where < 0) {
		put(t, "form");
		return;
	}
	put(t, "other_forms[");
	put_index(t, (size_t)where);
	put(t, "]");
}

const char *
ras_safety_net_note_text(const struct ras_safety_note *n, char *buf)
{
	struct text t = { .p = buf, .n = 0 };

	buf[0] = '\0';
	switch (n->kind) {
	case RAS_NOTE_INTAKE:
		return n->a;
	case RAS_NOTE_RED_FLAG_CODE:
		put_where(&t, n->where), put(&t, " red-flags="), put(&t, n->a);
		break;
	case RAS_NOTE_RED_FLAG_TRUE:
		put_where(&t, n->where), put(&t, " red-flags=true");
		break;
	case RAS_NOTE_RED_FLAG_TEXT:
		put_where(&t, n->where), put(&t, " red-flags answered in text");
		break;
	case RAS_NOTE_RED_FLAG_UNREADABLE:
		put_where(&t, n->where), put(&t, " red-flags answered (unreadable)");
		break;
	case RAS_NOTE_ITEM_TRUE:
		put_where(&t, n->where), put(&t, " "), put(&t, n->a), put(&t, "=true");
		break;
	case RAS_NOTE_ITEM_CODE:
		put_where(&t, n->where), put(&t, " "), put(&t, n->a), put(&t, "="), put(&t, n->b);
		break;
	case RAS_NOTE_PRIORITY_2WW:
		put(&t, "priority two-week-wait");
		break;
	case RAS_NOTE_PRIORITY_URGENT:
		put(&t, "priority urgent ("), put(&t, n->a), put(&t, ")");
		break;
	case RAS_NOTE_ERS_SERVICE_2WW:
		put(&t, "e-RS service is a two-week-wait service");
		break;
	case RAS_NOTE_ERS_SPECIALTY_2WW:
		put(&t, "e-RS specialty is two-week-wait");
		break;
	case RAS_NOTE_CONDITION_CODE:
		put(&t, "conditions["), put_index(&t, (size_t)n->where), put(&t, "] code "), put(&t, n->a);
		break;
	case RAS_NOTE_CONDITION_NAMED:
		put(&t, "conditions["), put_index(&t, (size_t)n->where), put(&t, "] named as "),
		    put(&t, n->a);
		break;
	case RAS_NOTE_RED_FLAG_TEXT_DOUBT:
		put_where(&t, n->where), put(&t, ": red-flags answered in text, not coded");
		break;
	case RAS_NOTE_RED_FLAG_UNREADABLE_DOUBT:
		put_where(&t, n->where), put(&t, ": red-flags answer cannot be read");
		break;
	case RAS_NOTE_ITEM_UNREADABLE:
		put_where(&t, n->where), put(&t, ": "), put(&t, n->a), put(&t, " answer cannot be read");
		break;
	case RAS_NOTE_ANSWER_TYPE:
		put_where(&t, n->where), put(&t, ": the answer to "), put(&t, n->a),
		    put(&t, " is of a type rasd does not read");
		break;
	case RAS_NOTE_NOT_ON_FORM:
		put_where(&t, n->where), put(&t, ": item "), put(&t, n->a),
		    put(&t, " is not on the referral form");
		break;
	case RAS_NOTE_UNMAPPED_CELL:
		put_where(&t, n->where), put(&t, ": form cell "), put(&t, n->a),
		    put(&t, " has no place in the form map");
		break;
	case RAS_NOTE_PRIORITY_UNKNOWN:
		put(&t, "priority "), put(&t, n->a), put(&t, " is not one rasd knows");
		break;
	}
	return buf;
}

static bool
same_str(const char *x, const char *y)
{
	return x == y || (x && y && strcmp(x, y) == 0);
}

/* Whether two notes read the same (a note is kept once).  Notes of
 * different kinds never read the same, except intake's own lines, which
 * are compared as text. */
static bool
same_note(const struct ras_safety_note *x, const struct ras_safety_note *y)
{
	char bx[RAS_SAFETY_NOTE_TEXT_MAX], by[RAS_SAFETY_NOTE_TEXT_MAX];

	if (x->kind == RAS_NOTE_INTAKE || y->kind == RAS_NOTE_INTAKE)
		return strcmp(ras_safety_net_note_text(x, bx), ras_safety_net_note_text(y, by)) == 0;
	return x->kind == y->kind && x->where == y->where && same_str(x->a, y->a) &&
	    same_str(x->b, y->b);
}

static void
push(struct net *n, struct ras_safety_note **v, size_t *len, size_t *cap,
    struct ras_safety_note note)
{
	if (n->err)
		return;
	for (size_t i = 0; i < *len; i++)
		if (same_note(&(*v)[i], &note))
			return;
	if (*len >= RAS_FORM_ANSWERS_MAX)
		return;   /* enough said: the outcome does not change */
	if (*len == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct ras_safety_note *nv = ras_arena_calloc(n->a, nc, sizeof(*nv));

		if (nv == NULL) {
			n->err = ras_error_code(RAS_ENOMEM, "out of memory");
			return;
		}
		if (*len)
			memcpy(nv, *v, *len * sizeof(*nv));
		*v = nv;
		*cap = nc;
	}
	(*v)[(*len)++] = note;
}

static void
add_signal(struct net *n, enum ras_safety_note_kind kind, int where, const char *a,
    const char *b)
{
	n->out->danger = true;
	push(n, &n->sig, &n->out->n_signals, &n->cap_sig,
	    (struct ras_safety_note){ .kind = kind, .where = where, .a = a, .b = b });
	n->out->signals = n->sig;
}

static void
doubt(struct net *n, enum ras_safety_note_kind kind, int where, const char *a)
{
	push(n, &n->dbt, &n->out->n_doubts, &n->cap_doubt,
	    (struct ras_safety_note){ .kind = kind, .where = where, .a = a });
	n->out->doubts = n->dbt;
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
item_on_form(const struct ras_safety_net_items *ix, uint32_t hash_id, const char *link_id)
{
	for (size_t h = hash_id & ix->mask; ix->slot[h]; h = (h + 1) & ix->mask)
		if (strcmp(ix->slot[h], link_id) == 0)
			return true;
	return false;
}

/* linkId `lid` (hashed to h) is `name` (hashed to hn: unequal hashes,
 * unequal names) */
static bool
is(const char *lid, uint32_t h, const char *name, uint32_t hn)
{
	return h == hn && strcmp(lid, name) == 0;
}

static void
red_flag_code(struct net *n, int where, const char *code)
{
	const char *t = token(code);

	if (code && strcmp(code, CODE_CAUDA) == 0)
		n->out->cauda_equina = true;
	else if (code && strcmp(code, CODE_CANCER) == 0)
		n->out->suspected_cancer = true;
	else
		n->out->red_flag = true;
	/* a code "true" reads as a red flag answered true: one note */
	if (strcmp(t, "true") == 0)
		add_signal(n, RAS_NOTE_RED_FLAG_TRUE, where, NULL, NULL);
	else
		add_signal(n, RAS_NOTE_RED_FLAG_CODE, where, t, NULL);
}

/* One answer.  `name`: what its linkId is, when the form check matched it
 * to an item of the form (NAME_UNKNOWN: hashed and looked up here). */
static void
check_answer(struct net *n, int where, bool rasd, const struct ras_answer *ans, enum name name)
{
	const char *lid = ans->link_id ? ans->link_id : "";
	const struct ras_safety_net_items *ix = n->items;
	bool matched = name != NAME_UNKNOWN;
	uint32_t h = 0;

	n->out->answers_seen++;
	if (!matched) {
		/* the linkId is hashed once: for the names below and the form's items */
		if (ix) {
			h = hash(lid);
			name = is(lid, h, "red-flags", ix->h_red_flags) ? NAME_RED_FLAGS :
			    is(lid, h, CODE_CANCER, ix->h_cancer) ? NAME_CANCER :
			    is(lid, h, CODE_CAUDA, ix->h_cauda) ? NAME_CAUDA : NAME_OTHER;
		} else {
			name = strcmp(lid, "red-flags") == 0 ? NAME_RED_FLAGS :
			    strcmp(lid, CODE_CANCER) == 0 ? NAME_CANCER :
			    strcmp(lid, CODE_CAUDA) == 0 ? NAME_CAUDA : NAME_OTHER;
		}
	}
	if (name == NAME_RED_FLAGS) {
		switch (ans->type) {
		case RAS_ANSWER_CODING:
			red_flag_code(n, where, ans->code);
			break;
		case RAS_ANSWER_BOOLEAN:
			if (ans->b) {
				n->out->red_flag = true;
				add_signal(n, RAS_NOTE_RED_FLAG_TRUE, where, NULL, NULL);
			}
			break;
		case RAS_ANSWER_STRING:
			if (ans->s && *ans->s) {
				/* written out, not coded: reported all the same */
				n->out->red_flag = true;
				add_signal(n, RAS_NOTE_RED_FLAG_TEXT, where, NULL, NULL);
				doubt(n, RAS_NOTE_RED_FLAG_TEXT_DOUBT, where, NULL);
			}
			break;
		default:
			n->out->red_flag = true;
			add_signal(n, RAS_NOTE_RED_FLAG_UNREADABLE, where, NULL, NULL);
			doubt(n, RAS_NOTE_RED_FLAG_UNREADABLE_DOUBT, where, NULL);
			break;
		}
		return;
	}
	if (name == NAME_CANCER || name == NAME_CAUDA) {
		bool cancer = name == NAME_CANCER;
		const char *nm = cancer ? CODE_CANCER : CODE_CAUDA;

		if (ans->type == RAS_ANSWER_BOOLEAN) {
			if (ans->b) {
				if (cancer)
					n->out->suspected_cancer = true;
				else
					n->out->cauda_equina = true;
				add_signal(n, RAS_NOTE_ITEM_TRUE, where, nm, NULL);
			}
		} else {
			doubt(n, RAS_NOTE_ITEM_UNREADABLE, where, nm);
		}
		return;
	}
	/* (the first byte rules most codes out without a call) */
	if (ans->type == RAS_ANSWER_CODING && ans->code &&
	    ((ans->code[0] == CODE_CAUDA[0] && strcmp(ans->code, CODE_CAUDA) == 0) ||
	    (ans->code[0] == CODE_CANCER[0] && strcmp(ans->code, CODE_CANCER) == 0))) {
		bool cauda = strcmp(ans->code, CODE_CAUDA) == 0;

		if (cauda)
			n->out->cauda_equina = true;
		else
			n->out->suspected_cancer = true;
		add_signal(n, RAS_NOTE_ITEM_CODE, where, token(lid), cauda ? CODE_CAUDA : CODE_CANCER);
		return;
	}
	if (!rasd)
		return;
	if (ans->type == RAS_ANSWER_OTHER)
		doubt(n, RAS_NOTE_ANSWER_TYPE, where, token(lid));
	else if (!matched && ix && ix->n_forms > 0 && !item_on_form(ix, h, lid))
		doubt(n, RAS_NOTE_NOT_ON_FORM, where, token(lid));
}

/* Every answer of a form for danger; the referral form (`main`) also for
 * what rasd cannot read in it (the others are not what triage decides on). */
static void
check_form(struct net *n, int where, const struct ras_form *f, bool main,
    const struct ras_safety_net_match *match)
{
	bool rasd = main && ras_referral_is_rasd_form(f->questionnaire);
	const struct ras_safety_net_items *ix = n->items;
	const unsigned char *names = NULL;
	size_t n_items = 0, skipped = 0;

	/* the form check's match, when it is one of a version the net knows */
	if (main && match && match->item_of && ix && match->form < ix->n_forms) {
		names = ix->names[match->form];
		n_items = ix->n_items[match->form];
	}
	n->out->forms_seen++;
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *ans = &f->answers[i];
		enum name name = NAME_UNKNOWN;

		/* (an index outside the version's items, -1 included: no item) */
		if (names && (size_t)(unsigned)match->item_of[i] < n_items)
			name = (enum name)names[match->item_of[i]];
		/* most answers: an item of the form, not one the net reads, of a
		 * type rasd reads and not coded: nothing to note but that it was
		 * seen (counted here, added once after the loop) */
		if (name == NAME_OTHER && ans->type != RAS_ANSWER_CODING &&
		    ans->type != RAS_ANSWER_OTHER) {
			skipped++;
			continue;
		}
		check_answer(n, where, rasd, ans, name);
	}
	n->out->answers_seen += skipped;
	for (size_t i = 0; main && i < f->n_unmapped; i++)
		doubt(n, RAS_NOTE_UNMAPPED_CELL, where, token(f->unmapped[i]));
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
			add_signal(n, RAS_NOTE_CONDITION_CODE, (int)i, danger_codes[k].code, NULL);
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
			add_signal(n, RAS_NOTE_CONDITION_NAMED, (int)i, danger_words[k].word, NULL);
			return;
		}
}

int
ras_safety_net_check(struct ras_arena *a, const struct ras_referral *r,
    const struct ras_safety_net_items *items, const struct ras_safety_net_match *match,
    struct ras_safety_net *out)
{
	struct net n = { .a = a, .out = out, .items = items };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < r->n_doubts; i++)
		doubt(&n, RAS_NOTE_INTAKE, 0, r->doubts[i] ? r->doubts[i] : "(none)");
	if (r->has_form)
		check_form(&n, -1, &r->form, true, match);
	for (size_t i = 0; i < r->n_other_forms; i++) {
		const struct ras_form *f = &r->other_forms[i];

		/* (two referral forms in one bundle are intake's doubt; an e-RS
		 * form replaced by a later attachment is read here for danger) */
		check_form(&n, (int)i, f, false, NULL);
	}
	switch (r->priority) {
	case RAS_PRIORITY_TWO_WEEK_WAIT:
		out->two_week_wait = true;
		add_signal(&n, RAS_NOTE_PRIORITY_2WW, 0, NULL, NULL);
		break;
	case RAS_PRIORITY_URGENT:
		out->urgent = true;
		add_signal(&n, RAS_NOTE_PRIORITY_URGENT, 0, token(r->priority_raw), NULL);
		break;
	case RAS_PRIORITY_ROUTINE:
		break;
	case RAS_PRIORITY_UNKNOWN:
		if (r->priority_raw)
			doubt(&n, RAS_NOTE_PRIORITY_UNKNOWN, 0, token(r->priority_raw));
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
				add_signal(&n, i == 0 ? RAS_NOTE_ERS_SERVICE_2WW : RAS_NOTE_ERS_SPECIALTY_2WW,
				    0, NULL, NULL);
			}
	}
	for (size_t i = 0; i < r->n_conditions; i++)
		check_condition(&n, i, &r->conditions[i]);
	return n.err;
}

static json_t *
strings(const struct ras_safety_note *v, size_t n)
{
	json_t *arr = json_array();
	char buf[RAS_SAFETY_NOTE_TEXT_MAX];

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(ras_safety_net_note_text(&v[i], buf))) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

json_t *
ras_safety_net_to_json(const struct ras_safety_net *n)
{
	/* as json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:o*, s:o*, s:I, s:I}")
	 * built it, without parsing a format each time */
	json_t *o = json_object();

	if (o == NULL ||
	    json_object_set_new_nocheck(o, "danger", json_boolean(n->danger)) < 0 ||
	    json_object_set_new_nocheck(o, "cauda_equina", json_boolean(n->cauda_equina)) < 0 ||
	    json_object_set_new_nocheck(o, "suspected_cancer", json_boolean(n->suspected_cancer)) < 0 ||
	    json_object_set_new_nocheck(o, "two_week_wait", json_boolean(n->two_week_wait)) < 0 ||
	    json_object_set_new_nocheck(o, "urgent", json_boolean(n->urgent)) < 0 ||
	    json_object_set_new_nocheck(o, "red_flag", json_boolean(n->red_flag)) < 0 ||
	    json_object_set_new_nocheck(o, "signals", strings(n->signals, n->n_signals)) < 0 ||
	    json_object_set_new_nocheck(o, "doubts", strings(n->doubts, n->n_doubts)) < 0 ||
	    json_object_set_new_nocheck(o, "forms_seen", json_integer((json_int_t)n->forms_seen)) < 0 ||
	    json_object_set_new_nocheck(o, "answers_seen", json_integer((json_int_t)n->answers_seen)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
