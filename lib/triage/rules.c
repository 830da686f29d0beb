/* rules: rule sets and the pure triage engine (see include/ras/rules.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/nhsno.h"
#include "ras/rules.h"
#include "ras/safety_net.h"

/* ---- model ---------------------------------------------------------------- */

enum stage {
	STAGE_SAFETY = 0,
	STAGE_IDENTITY,
	STAGE_ELIGIBILITY,
	STAGE_COMPLETENESS,
	STAGE_CLINICAL,
	STAGE_COUNT,
};

static const char *const stage_names[STAGE_COUNT] = {
	"safety", "identity", "eligibility", "completeness", "clinical",
};

enum kind {
	KIND_ADMINISTRATIVE = 1,
	KIND_CLINICAL,
	KIND_SAFETY,
};

/* Fact types, for checking conditions when the rule set is loaded. */
enum ftype {
	FT_BOOL = 1,
	FT_INT,
	FT_NUM,
	FT_STR,
	FT_LIST,
};

enum op {
	OP_ALL = 1, OP_ANY, OP_NOT,
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_CONTAINS, OP_NONEMPTY, OP_PRESENT,
	OP_IS,                  /* "eq" true or false (most tests), compiled to its own */
};

/* A value's type as a decision holds it: a fact, or a condition's value. */
enum vt {
	VT_NONE = 0,            /* an absent fact; a value equal to nothing */
	VT_BOOL,
	VT_INT,
	VT_REAL,
	VT_STR,
	VT_LIST,                /* of strings (codes, linkIds) */
};

/* A fact's value, typed: what the engine computed, never looked up by name. */
struct fval {
	enum vt t;
	bool b;
	size_t n;               /* VT_LIST */
	union {
		int64_t i;
		double d;
		const char *s;
		const char **list;
	};
};

/* A condition's value, compiled when the rule set is parsed. */
struct cval {
	enum vt t;              /* VT_NONE for a value no fact can equal */
	bool b;
	int64_t i;
	double d;               /* also set for VT_INT: numbers compare as numbers */
	const char *s;
	bool nul;               /* a string with a NUL inside: equal to no fact */
};

struct cond {
	enum op op;
	const char *fact;
	int slot;               /* the fact's slot (enum fid, F_FORM + n: a form fact; clock_facts for a clock) */
	json_t *value;          /* owned by the rule set's JSON (kept alive by the arena) */
	struct cval v;          /* the value compiled ("present": v.b) */
	struct cval *vs;        /* a list value ("in", "contains"), compiled */
	size_t n_vs;
	bool is_list;
	struct cond *kids;
	size_t n_kids;
};

/* A piece of advice: literal text, or a fact's slot ({fact}). */
struct seg {
	const char *text;       /* literal (not NUL-terminated at len) */
	size_t len;
	int slot;               /* -1: literal */
	bool form;              /* the fact is form.*: list elements are item linkIds */
};

struct rule {
	const char *id;
	enum stage stage;
	enum kind kind;
	const char *clause;
	enum ras_outcome outcome;
	const char *target;     /* onward */
	bool mdt;               /* an onward an MDT must agree: never final */
	bool urgent;            /* a clinician must look today */
	const char *advice;     /* template: {fact} placeholders */
	struct seg *segs;       /* the template compiled (n_segs 0: advice is static text) */
	size_t n_segs;
	struct cond when;
	bool plain;             /* id, clause and target need no escape in JSON */
};

enum unit { U_WORKING_DAYS = 1, U_HOURS, U_WEEKS, U_MONTHS };

struct clock {
	const char *kind;
	const char *clause;
	enum unit unit;
	int amount;
	bool has_when;
	struct cond when;
};

struct ras_ruleset {
	const char *service;
	const char *title;
	const char *spec;        /* "004": every clause starts "004 §" */
	enum ras_automation automation;
	const char *form_url;
	size_t n_required;
	int *required_at;        /* at link: each one's item index in each form version (-1: none) */
	const char **required;
	const char *population_file;
	struct rule accept;
	size_t n_rules;
	struct rule *rules;
	size_t n_clocks;
	struct clock *clocks;
	/* every form.<linkId> fact the conditions and advice name, interned at
	 * load (slot F_FORM + index); at link, each one's item in every form
	 * version (item_map[form * n_form_slots + slot]; not on it: the
	 * version's n_items, where a decision keeps an absent fact) */
	const char **form_slots;
	size_t n_form_slots, cap_form_slots;
	int *item_map;
	/* per form version, per item: its facts key as JSON text ("\"form.<linkId>\":"),
	 * NULL when the linkId needs escapes (written as any other string) */
	const char ***item_keys;
	int slot_red_flags, slot_suspected_cancer;  /* the net's facts; -1 when unnamed */
	const struct ras_safety_net_items *net_items;  /* every version's linkIds, for the net */
	struct ods_map *ods;     /* every practice list's codes, what each says (built at link) */
	/* linked */
	bool linked;
	char *version;
	const struct ras_questionnaire *current;
	const struct ras_questionnaire **forms;  /* every version of form_url */
	size_t n_forms;
	const struct ras_practice_list *population;
	const struct ras_practice_list *const *all_lists;
	size_t n_lists;
};

const char *
ras_rules_automation_name(enum ras_automation a)
{
	switch (a) {
	case RAS_AUTOMATION_ADMINISTRATIVE: return "administrative";
	case RAS_AUTOMATION_ALL: return "all";
	case RAS_AUTOMATION_NONE: return "none";
	}
	return "administrative";
}

int
ras_rules_automation_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "administrative") == 0)
		return RAS_AUTOMATION_ADMINISTRATIVE;
	if (strcmp(s, "all") == 0)
		return RAS_AUTOMATION_ALL;
	if (strcmp(s, "none") == 0)
		return RAS_AUTOMATION_NONE;
	return -1;
}

/* ---- facts the engine knows ------------------------------------------------ */

/* The engine's own facts, by slot (known_facts has them in this order). */
enum fid {
	F_SOURCE, F_FROM_ERS, F_PRIORITY, F_HAS_ATTACHMENTS, F_NHS_VALID, F_NHS_STATUS,
	F_BIRTH_KNOWN, F_AGE, F_PRACTICE, F_PRACTICE_KNOWN, F_PRACTICE_IN_AREA,
	F_PRACTICE_CLOSED, F_REFERRER_KIND, F_REFERRER_ORG, F_FORM_PRESENT, F_FORM_Q_KNOWN,
	F_FORM_VERSION, F_FORM_VERSION_KNOWN, F_FORM_CURRENT, F_FORM_COMPLETED, F_FORM_STATUS,
	F_FORM_MISSING, F_FORM_INVALID, F_FORM_UNKNOWN,
	F_FORM,                 /* form.<linkId> facts start here */
};

static const struct {
	const char *name;
	enum ftype type;
} known_facts[] = {
	{ "referral.source", FT_STR },
	{ "referral.from_ers", FT_BOOL },
	{ "referral.priority", FT_STR },
	{ "referral.has_attachments", FT_BOOL },
	{ "nhs_number.valid", FT_BOOL },
	{ "nhs_number.status", FT_STR },
	{ "patient.birth_date_known", FT_BOOL },
	{ "patient.age", FT_INT },
	{ "patient.practice", FT_STR },
	{ "patient.practice_known", FT_BOOL },
	{ "patient.practice_in_area", FT_BOOL },
	{ "patient.practice_closed", FT_BOOL },
	{ "referrer.kind", FT_STR },
	{ "referrer.org", FT_STR },
	{ "form.present", FT_BOOL },
	{ "form.questionnaire_known", FT_BOOL },
	{ "form.version", FT_STR },
	{ "form.version_known", FT_BOOL },
	{ "form.current", FT_BOOL },
	{ "form.completed", FT_BOOL },
	{ "form.status", FT_STR },
	{ "form.missing", FT_LIST },
	{ "form.invalid", FT_LIST },
	{ "form.unknown_items", FT_LIST },
};

/* Facts a clock's condition may use (ras_rules_deadlines fills its slots
 * in this order). */
enum { CF_OUTCOME, CF_ONWARD_TARGET, CF_URGENT, CF_FINAL, CF_COUNT };
static const struct {
	const char *name;
	enum ftype type;
} clock_facts[] = {
	{ "outcome", FT_STR },
	{ "onward_target", FT_STR },
	{ "urgent", FT_BOOL },
	{ "final", FT_BOOL },
};

_Static_assert(sizeof(known_facts) / sizeof(known_facts[0]) == F_FORM, "known facts");

/* The slot of an engine fact, -1 when it is not one. */
static int
known_fact(const char *name)
{
	for (size_t i = 0; i < sizeof(known_facts) / sizeof(known_facts[0]); i++)
		if (strcmp(known_facts[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* 0 when unknown (form.<linkId> facts are typed at link time). */
static enum ftype
fact_type(const char *name, bool clock)
{
	if (clock) {
		for (size_t i = 0; i < sizeof(clock_facts) / sizeof(clock_facts[0]); i++)
			if (strcmp(clock_facts[i].name, name) == 0)
				return clock_facts[i].type;
		return 0;
	}
	for (size_t i = 0; i < sizeof(known_facts) / sizeof(known_facts[0]); i++)
		if (strcmp(known_facts[i].name, name) == 0)
			return known_facts[i].type;
	return 0;
}

static enum ftype
item_fact_type(const struct ras_qitem *it)
{
	switch (it->type) {
	case RAS_QITEM_BOOLEAN: return FT_BOOL;
	case RAS_QITEM_INTEGER: return FT_INT;
	case RAS_QITEM_DECIMAL: return FT_NUM;
	case RAS_QITEM_STRING:
	case RAS_QITEM_DATE: return FT_BOOL;     /* recorded as "answered" only */
	case RAS_QITEM_CHOICE: return it->repeats ? FT_LIST : FT_STR;
	}
	return 0;
}

/* ---- parsing helpers ------------------------------------------------------- */

/* RAS_EINVALID naming the first key of `o` not in `allowed` (NULL-terminated). */
static int
only_keys(const json_t *o, const char *const *allowed, const char *where)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;

		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(allowed[i], k) == 0;
		if (!ok)
			return ras_error_code(RAS_EINVALID, "%s: unknown key \"%.60s\"", where, k);
	}
	return 0;
}

static int
req_str(const json_t *o, const char *key, const char *where, const char **out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return ras_error_code(RAS_EINVALID, "%s: \"%s\" must be a non-empty string", where, key);
	*out = json_string_value(v);
	return 0;
}

static int
opt_str(const json_t *o, const char *key, const char *where, const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return ras_error_code(RAS_EINVALID, "%s: \"%s\" must be a string", where, key);
	*out = json_string_value(v);
	return 0;
}

static int
opt_bool(const json_t *o, const char *key, const char *where, bool *out)
{
	json_t *v = json_object_get(o, key);

	*out = false;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return ras_error_code(RAS_EINVALID, "%s: \"%s\" must be true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

static bool
valid_token(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > RAS_ID_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_'))
			return false;
	return true;
}

/* ---- conditions -------------------------------------------------------- */

static const struct {
	const char *key;
	enum op op;
} leaf_ops[] = {
	{ "eq", OP_EQ }, { "ne", OP_NE }, { "lt", OP_LT }, { "le", OP_LE }, { "gt", OP_GT },
	{ "ge", OP_GE }, { "in", OP_IN }, { "contains", OP_CONTAINS }, { "nonempty", OP_NONEMPTY },
	{ "present", OP_PRESENT },
};

static bool
scalar_of(const json_t *v, enum ftype t)
{
	switch (t) {
	case FT_BOOL: return json_is_boolean(v);
	case FT_INT: return json_is_integer(v);
	case FT_NUM: return json_is_number(v);
	case FT_STR: return json_is_string(v);
	case FT_LIST: return json_is_string(v);
	}
	return false;
}

/* Check that op and value suit a fact of type t. */
static int
check_leaf(const struct cond *c, enum ftype t, const char *where)
{
	const char *why = NULL;
	size_t i;
	json_t *x;

	switch (c->op) {
	case OP_PRESENT:
		if (!json_is_boolean(c->value))
			why = "\"present\" takes true or false";
		break;
	case OP_NONEMPTY:
		if (t != FT_LIST)
			why = "\"nonempty\" applies only to list facts";
		else if (!json_is_true(c->value))
			why = "\"nonempty\" takes true";
		break;
	case OP_CONTAINS:
		if (t != FT_LIST)
			why = "\"contains\" applies only to list facts";
		else if (json_is_array(c->value)) {
			json_array_foreach(c->value, i, x)
				if (!json_is_string(x))
					why = "\"contains\" takes a string or a list of strings";
			if (json_array_size(c->value) == 0)
				why = "\"contains\" needs at least one value";
		} else if (!json_is_string(c->value))
			why = "\"contains\" takes a string or a list of strings";
		break;
	case OP_EQ:
	case OP_IS:
	case OP_NE:
		if (t == FT_LIST)
			why = "use \"contains\" or \"nonempty\" with a list fact";
		else if (!scalar_of(c->value, t))
			why = "the value has the wrong type for this fact";
		break;
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		if (t != FT_INT && t != FT_NUM)
			why = "ordering applies only to number facts";
		else if (!json_is_number(c->value))
			why = "the value must be a number";
		break;
	case OP_IN:
		if (t == FT_LIST || t == FT_BOOL)
			why = "\"in\" applies to string and integer facts";
		else if (!json_is_array(c->value) || json_array_size(c->value) == 0)
			why = "\"in\" takes a non-empty list";
		else
			json_array_foreach(c->value, i, x)
				if (!scalar_of(x, t))
					why = "a value of \"in\" has the wrong type for this fact";
		break;
	default:
		break;
	}
	if (why)
		return ras_error_code(RAS_EINVALID, "%s: fact \"%s\": %s", where, c->fact, why);
	return 0;
}

/* The slot of a rule's fact: an engine fact's own, a form fact interned in
 * rs->form_slots (F_FORM + its index), or a clock's (its index in
 * clock_facts).  The typed facts hold RAS_RULE_FACTS_MAX: a rule set naming
 * more cannot be decided, and does not load. */
static int
fact_slot(struct ras_arena *a, struct ras_ruleset *rs, const char *name, bool clock, int *out)
{
	int k;

	if (clock) {
		for (size_t i = 0; i < sizeof(clock_facts) / sizeof(clock_facts[0]); i++)
			if (strcmp(clock_facts[i].name, name) == 0) {
				*out = (int)i;
				return 0;
			}
		return ras_error_code(RAS_EINVALID, "unknown clock fact \"%.80s\"", name);
	}
	if ((k = known_fact(name)) >= 0) {
		*out = k;
		return 0;
	}
	for (size_t i = 0; i < rs->n_form_slots; i++)
		if (strcmp(rs->form_slots[i], name) == 0) {
			*out = F_FORM + (int)i;
			return 0;
		}
	if (F_FORM + rs->n_form_slots >= RAS_RULE_FACTS_MAX)
		return ras_error_code(RAS_ETOOBIG, "fact \"%.80s\": the rule set names more than %d facts, "
		    "more than the rules engine's typed facts hold (RAS_RULE_FACTS_MAX)", name,
		    RAS_RULE_FACTS_MAX);
	if (rs->n_form_slots == rs->cap_form_slots) {
		size_t cap = rs->cap_form_slots ? rs->cap_form_slots * 2 : 32;
		const char **n = ras_arena_calloc(a, cap, sizeof(*n));

		if (n == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if (rs->n_form_slots)
			memcpy(n, rs->form_slots, rs->n_form_slots * sizeof(*n));
		rs->form_slots = n;
		rs->cap_form_slots = cap;
	}
	rs->form_slots[rs->n_form_slots] = name;
	*out = F_FORM + (int)rs->n_form_slots++;
	return 0;
}

/* A condition's value, compiled: what eval compares facts with. */
static void
compile_value(const json_t *j, struct cval *v)
{
	memset(v, 0, sizeof(*v));
	if (json_is_boolean(j)) {
		v->t = VT_BOOL;
		v->b = json_is_true(j);
	} else if (json_is_integer(j)) {
		v->t = VT_INT;
		v->i = (int64_t)json_integer_value(j);
		v->d = json_number_value(j);
	} else if (json_is_real(j)) {
		v->t = VT_REAL;
		v->d = json_real_value(j);
	} else if (json_is_string(j)) {
		v->t = VT_STR;
		v->s = json_string_value(j);
		v->nul = strlen(v->s) != json_string_length(j);
	}
}

static int
compile_cond_value(struct ras_arena *a, struct cond *c)
{
	compile_value(c->value, &c->v);
	if (json_is_array(c->value)) {
		size_t i;
		json_t *x;

		c->is_list = true;
		c->vs = ras_arena_calloc(a, json_array_size(c->value) + 1, sizeof(*c->vs));
		if (c->vs == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(c->value, i, x)
			compile_value(x, &c->vs[i]);
		c->n_vs = json_array_size(c->value);
	}
	return 0;
}

static int
parse_cond(struct ras_arena *a, struct ras_ruleset *rs, json_t *j, struct cond *c, int depth,
    bool clock, const char *where)
{
	static const char *const combos[] = { "all", "any", "not", NULL };
	int err;

	memset(c, 0, sizeof(*c));
	if (depth > RAS_RULE_DEPTH_MAX)
		return ras_error_code(RAS_EINVALID, "%s: condition nested deeper than %d", where,
		    RAS_RULE_DEPTH_MAX);
	if (!json_is_object(j) || json_object_size(j) == 0)
		return ras_error_code(RAS_EINVALID, "%s: a condition must be a non-empty object", where);
	if (json_object_get(j, "all") || json_object_get(j, "any")) {
		json_t *arr = json_object_get(j, "all") ? json_object_get(j, "all") : json_object_get(j, "any");
		json_t *x;
		size_t i;

		if ((err = only_keys(j, combos, where)) < 0)
			return err;
		if (json_object_size(j) != 1 || !json_is_array(arr) || json_array_size(arr) == 0)
			return ras_error_code(RAS_EINVALID, "%s: \"all\"/\"any\" takes one non-empty list", where);
		c->op = json_object_get(j, "all") ? OP_ALL : OP_ANY;
		c->kids = ras_arena_calloc(a, json_array_size(arr), sizeof(*c->kids));
		if (c->kids == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(arr, i, x)
			if ((err = parse_cond(a, rs, x, &c->kids[i], depth + 1, clock, where)) < 0)
				return err;
		c->n_kids = json_array_size(arr);
		return 0;
	}
	if (json_object_get(j, "not")) {
		if (json_object_size(j) != 1)
			return ras_error_code(RAS_EINVALID, "%s: \"not\" stands alone", where);
		c->op = OP_NOT;
		c->kids = ras_arena_calloc(a, 1, sizeof(*c->kids));
		if (c->kids == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		c->n_kids = 1;
		return parse_cond(a, rs, json_object_get(j, "not"), c->kids, depth + 1, clock, where);
	}
	{
		const char *k;
		json_t *v;
		enum ftype t;

		if ((err = req_str(j, "fact", where, &c->fact)) < 0)
			return err;
		if (json_object_size(j) != 2)
			return ras_error_code(RAS_EINVALID,
			    "%s: a test is {\"fact\": NAME, OPERATOR: VALUE} with exactly one operator", where);
		json_object_foreach(j, k, v) {
			if (strcmp(k, "fact") == 0)
				continue;
			for (size_t i = 0; i < sizeof(leaf_ops) / sizeof(leaf_ops[0]); i++)
				if (strcmp(leaf_ops[i].key, k) == 0)
					c->op = leaf_ops[i].op;
			if (c->op == 0)
				return ras_error_code(RAS_EINVALID, "%s: unknown operator \"%.40s\"", where, k);
			c->value = v;
		}
		t = fact_type(c->fact, clock);
		if (t == 0 && (clock || strncmp(c->fact, "form.", 5) != 0))
			return ras_error_code(RAS_EINVALID, "%s: unknown fact \"%.80s\"", where, c->fact);
		if ((err = fact_slot(a, rs, c->fact, clock, &c->slot)) < 0 ||
		    (err = compile_cond_value(a, c)) < 0) {
			ras_error_context("%s", where);
			return err;
		}
		if (c->op == OP_EQ && c->v.t == VT_BOOL)
			c->op = OP_IS;
		if (t != 0)
			return check_leaf(c, t, where);
		/* form.<linkId>: typed when the rule set is linked to its form. */
		if (c->op == OP_PRESENT && !json_is_boolean(c->value))
			return ras_error_code(RAS_EINVALID, "%s: \"present\" takes true or false", where);
		return 0;
	}
}

/* Type-check form.<linkId> leaves against the current form. */
static int
link_cond(const struct ras_ruleset *rs, const struct cond *c, const char *where)
{
	int err;

	for (size_t i = 0; i < c->n_kids; i++)
		if ((err = link_cond(rs, &c->kids[i], where)) < 0)
			return err;
	if (c->fact && strncmp(c->fact, "form.", 5) == 0 && fact_type(c->fact, false) == 0) {
		const struct ras_qitem *it = ras_form_item(rs->current, c->fact + 5);

		if (it == NULL)
			return ras_error_code(RAS_EINVALID, "%s: fact \"%s\": the current form %s|%s has no item \"%s\"",
			    where, c->fact, rs->current->url, rs->current->version, c->fact + 5);
		return check_leaf(c, item_fact_type(it), where);
	}
	return 0;
}

static bool
is_number(enum vt t)
{
	return t == VT_INT || t == VT_REAL;
}

static double
fnum(const struct fval *f)
{
	return f->t == VT_INT ? (double)f->i : f->d;
}

/* Two strings the same: most facts the rules compare are names from the
 * engine's own tables (outcomes, priorities, kinds), which differ in their
 * first byte more often than not, so most tests need no call. */
static inline bool
same_str(const char *a, const char *b)
{
	return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

/* A fact equals a value as JSON would have it: numbers as numbers, else
 * the same type and the same value. */
static inline __attribute__((always_inline)) bool
equal(const struct fval *f, const struct cval *v)
{
	if (is_number(f->t) && is_number(v->t))
		return fnum(f) == v->d;
	if (f->t != v->t)
		return false;
	switch (f->t) {
	case VT_BOOL: return f->b == v->b;
	case VT_STR: return !v->nul && same_str(f->s, v->s);
	default: return false;
	}
}

static bool
str_equal(const char *s, const struct cval *v)
{
	return v->t == VT_STR && !v->nul && same_str(s, v->s);
}

/* A test of one fact (a condition's leaf): inlined where conditions are
 * evaluated, so a rule's tests cost no call each. */
static inline __attribute__((always_inline)) bool
leaf(const struct cond *c, const struct fval *const *sv)
{
	const struct fval *f = sv[c->slot];
	size_t i;

	switch (c->op) {
	case OP_IS:
		return f->t == VT_BOOL && f->b == c->v.b;
	case OP_PRESENT:
		return (f->t != VT_NONE) == c->v.b;
	case OP_EQ:
		if (c->v.t == VT_BOOL)   /* most tests: a boolean fact is true or false */
			return f->t == VT_BOOL && f->b == c->v.b;
		return f->t != VT_NONE && equal(f, &c->v);
	case OP_NE:
		return f->t != VT_NONE && !equal(f, &c->v);
	case OP_LT:
		return is_number(f->t) && fnum(f) < c->v.d;
	case OP_LE:
		return is_number(f->t) && fnum(f) <= c->v.d;
	case OP_GT:
		return is_number(f->t) && fnum(f) > c->v.d;
	case OP_GE:
		return is_number(f->t) && fnum(f) >= c->v.d;
	case OP_IN:
		if (f->t == VT_NONE)
			return false;
		for (i = 0; i < c->n_vs; i++)
			if (equal(f, &c->vs[i]))
				return true;
		return false;
	case OP_NONEMPTY:
		return f->t == VT_LIST && f->n > 0;
	case OP_CONTAINS:
		if (f->t != VT_LIST)
			return false;
		for (size_t k = 0; k < f->n; k++) {
			if (!c->is_list && str_equal(f->list[k], &c->v))
				return true;
			for (i = 0; c->is_list && i < c->n_vs; i++)
				if (str_equal(f->list[k], &c->vs[i]))
					return true;
		}
		return false;
	default:
		return false;
	}
}

/* A condition over the typed facts: sv[slot] is each slot's fact (an
 * absent one has type VT_NONE).  Only "all", "any" and "not" recurse. */
static bool
eval(const struct cond *c, const struct fval *const *sv)
{
	size_t i;

	switch (c->op) {
	case OP_ALL:
		for (i = 0; i < c->n_kids; i++) {
			const struct cond *k = &c->kids[i];

			if (!(k->op >= OP_EQ ? leaf(k, sv) : eval(k, sv)))
				return false;
		}
		return true;
	case OP_ANY:
		for (i = 0; i < c->n_kids; i++) {
			const struct cond *k = &c->kids[i];

			if (k->op >= OP_EQ ? leaf(k, sv) : eval(k, sv))
				return true;
		}
		return false;
	case OP_NOT:
		return !eval(&c->kids[0], sv);
	default:
		return leaf(c, sv);
	}
}

/* ---- rule sets ------------------------------------------------------------ */

static int
parse_clause(const struct ras_ruleset *rs, const json_t *o, const char *where, const char **out)
{
	int err;
	size_t n;

	if ((err = req_str(o, "clause", where, out)) < 0)
		return err;
	n = strlen(rs->spec);
	if (strncmp(*out, rs->spec, n) != 0 || strncmp(*out + n, " \xc2\xa7", 3) != 0 ||
	    (*out)[n + 3] == '\0')
		return ras_error_code(RAS_EINVALID, "%s: clause \"%.60s\" must cite this rule set's spec as \"%s \xc2\xa7<section>\"",
		    where, *out, rs->spec);
	return 0;
}

/* Placeholders in advice are {fact}; every one must name a known or form fact. */
static int
check_template(const char *t, const char *where)
{
	for (const char *p = t; p && *p; p++) {
		const char *end;
		char name[RAS_ID_MAX + 8];
		size_t n;

		if (*p == '}')
			return ras_error_code(RAS_EINVALID, "%s: advice has a \"}\" without \"{\"", where);
		if (*p != '{')
			continue;
		end = strchr(p, '}');
		n = end ? (size_t)(end - p - 1) : 0;
		if (end == NULL || n == 0 || n >= sizeof(name))
			return ras_error_code(RAS_EINVALID, "%s: advice has an unterminated placeholder", where);
		memcpy(name, p + 1, n);
		name[n] = '\0';
		if (fact_type(name, false) == 0 && strncmp(name, "form.", 5) != 0)
			return ras_error_code(RAS_EINVALID, "%s: advice placeholder {%s} is not a fact", where, name);
		p = end;
	}
	return 0;
}

/* Compile advice {fact} placeholders (checked above) to their facts' slots:
 * a decision fills them in without looking a name up.  Advice without a
 * placeholder is given as it stands. */
static int
compile_template(struct ras_arena *a, struct ras_ruleset *rs, struct rule *r)
{
	const char *t = r->advice;
	size_t n = 1;
	int err;

	if (t == NULL || strchr(t, '{') == NULL)
		return 0;
	for (const char *p = t; *p; p++)
		n += *p == '{' ? 2 : 0;
	r->segs = ras_arena_calloc(a, n, sizeof(*r->segs));
	if (r->segs == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (const char *p = t;;) {
		const char *open = strchr(p, '{'), *end;
		struct seg *sg = &r->segs[r->n_segs++];
		char *name;

		sg->slot = -1;
		sg->text = p;
		sg->len = open ? (size_t)(open - p) : strlen(p);
		if (open == NULL)
			break;
		end = strchr(open, '}');
		name = ras_arena_strndup(a, open + 1, (size_t)(end - open - 1));
		if (name == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		sg = &r->segs[r->n_segs++];
		if ((err = fact_slot(a, rs, name, false, &sg->slot)) < 0)
			return err;
		sg->form = strncmp(name, "form.", 5) == 0;
		p = end + 1;
	}
	return 0;
}

/* A string JSON text holds as it is (printable ASCII, no '"' or '\\'). */
static bool
json_plain(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
			return false;
	return s != NULL;
}

static int
parse_rule(struct ras_arena *a, struct ras_ruleset *rs, json_t *j, struct rule *r,
    bool accept)
{
	static const char *const keys[] = { "id", "stage", "kind", "clause", "when", "outcome",
		"target", "mdt", "urgent", "advice", "comment", NULL };
	static const char *const accept_keys[] = { "id", "clause", "advice", "comment", NULL };
	const char *stage = NULL, *kind = NULL, *outcome = NULL;
	char where[RAS_ID_MAX + 32];
	int err;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(j))
		return ras_error_code(RAS_EINVALID, "a rule must be an object");
	if ((err = req_str(j, "id", "rule", &r->id)) < 0)
		return err;
	snprintf(where, sizeof(where), "rule \"%.*s\"", RAS_ID_MAX, r->id);
	if (!valid_token(r->id))
		return ras_error_code(RAS_EINVALID, "%s: ids are lower-case letters, digits, '.', '-' and '_'", where);
	if (strncmp(r->id, rs->service, strlen(rs->service)) != 0 || r->id[strlen(rs->service)] != '.')
		return ras_error_code(RAS_EINVALID, "%s: ids start with the service id, e.g. \"%s.age\"",
		    where, rs->service);
	if ((err = only_keys(j, accept ? accept_keys : keys, where)) < 0 ||
	    (err = parse_clause(rs, j, where, &r->clause)) < 0 ||
	    (err = opt_str(j, "advice", where, &r->advice)) < 0 ||
	    (err = check_template(r->advice, where)) < 0)
		return err;
	if (r->advice && strlen(r->advice) > RAS_ADVICE_MAX)
		return ras_error_code(RAS_ETOOBIG, "%s: advice is longer than %d characters", where,
		    RAS_ADVICE_MAX);
	if ((err = compile_template(a, rs, r)) < 0) {
		ras_error_context("%s", where);
		return err;
	}
	if (accept) {
		r->stage = STAGE_CLINICAL;
		r->kind = KIND_CLINICAL;
		r->outcome = RAS_OUTCOME_ACCEPT;
		return 0;
	}
	if ((err = req_str(j, "stage", where, &stage)) < 0 ||
	    (err = req_str(j, "kind", where, &kind)) < 0 ||
	    (err = req_str(j, "outcome", where, &outcome)) < 0 ||
	    (err = opt_str(j, "target", where, &r->target)) < 0 ||
	    (err = opt_bool(j, "mdt", where, &r->mdt)) < 0 ||
	    (err = opt_bool(j, "urgent", where, &r->urgent)) < 0)
		return err;
	r->stage = STAGE_COUNT;
	for (int s = 0; s < STAGE_COUNT; s++)
		if (strcmp(stage_names[s], stage) == 0)
			r->stage = s;
	if (r->stage == STAGE_COUNT)
		return ras_error_code(RAS_EINVALID, "%s: stage \"%.40s\" is not safety, identity, eligibility, completeness or clinical",
		    where, stage);
	if (strcmp(kind, "administrative") == 0)
		r->kind = KIND_ADMINISTRATIVE;
	else if (strcmp(kind, "clinical") == 0)
		r->kind = KIND_CLINICAL;
	else if (strcmp(kind, "safety") == 0)
		r->kind = KIND_SAFETY;
	else
		return ras_error_code(RAS_EINVALID, "%s: kind \"%.40s\" is not administrative, clinical or safety",
		    where, kind);
	if ((r->kind == KIND_SAFETY) != (r->stage == STAGE_SAFETY))
		return ras_error_code(RAS_EINVALID, "%s: safety rules, and only they, are of kind \"safety\"", where);
	r->outcome = ras_decision_outcome_parse(outcome);
	if (r->outcome == 0 || r->outcome == RAS_OUTCOME_ACCEPT)
		return ras_error_code(RAS_EINVALID, "%s: outcome must be return, onward or review", where);
	/* Clinical safety: a safety rule never returns a referral. */
	if (r->stage == STAGE_SAFETY && r->outcome == RAS_OUTCOME_RETURN)
		return ras_error_code(RAS_EINVALID, "%s: a safety rule must not return the referral (onward or review)", where);
	if ((r->outcome == RAS_OUTCOME_ONWARD) != (r->target != NULL))
		return ras_error_code(RAS_EINVALID, "%s: an onward rule needs a target, and only an onward rule has one", where);
	if (r->target && !valid_token(r->target))
		return ras_error_code(RAS_EINVALID, "%s: target must be a lower-case token such as \"two-week-wait\"", where);
	if (r->mdt && r->outcome != RAS_OUTCOME_ONWARD)
		return ras_error_code(RAS_EINVALID, "%s: \"mdt\" applies to onward rules", where);
	if (r->outcome == RAS_OUTCOME_RETURN && r->advice == NULL)
		return ras_error_code(RAS_EINVALID, "%s: a return needs advice for the referrer", where);
	if (json_object_get(j, "when") == NULL)
		return ras_error_code(RAS_EINVALID, "%s: \"when\" is required", where);
	r->plain = json_plain(r->id) && json_plain(r->clause) && (r->target == NULL || json_plain(r->target));
	return parse_cond(a, rs, json_object_get(j, "when"), &r->when, 0, false, where);
}

static int
parse_clock(struct ras_arena *a, struct ras_ruleset *rs, json_t *j, size_t idx,
    struct clock *c)
{
	static const char *const keys[] = { "kind", "clause", "working_days", "hours", "weeks",
		"months", "when", "comment", NULL };
	static const struct { const char *key; enum unit unit; int max; } units[] = {
		{ "working_days", U_WORKING_DAYS, RAS_CLOCK_DAYS_MAX },
		{ "hours", U_HOURS, RAS_CLOCK_DAYS_MAX * 24 },
		{ "weeks", U_WEEKS, RAS_CLOCK_DAYS_MAX / 5 },
		{ "months", U_MONTHS, RAS_CLOCK_DAYS_MAX / 20 },
	};
	char where[64];
	int err, n_units = 0;

	memset(c, 0, sizeof(*c));
	snprintf(where, sizeof(where), "clock %zu", idx + 1);
	if (!json_is_object(j))
		return ras_error_code(RAS_EINVALID, "%s: must be an object", where);
	if ((err = only_keys(j, keys, where)) < 0 || (err = req_str(j, "kind", where, &c->kind)) < 0)
		return err;
	snprintf(where, sizeof(where), "clock \"%.40s\"", c->kind);
	if (!valid_token(c->kind))
		return ras_error_code(RAS_EINVALID, "%s: kind must be a lower-case token", where);
	if (!ras_rules_clock_kind_known(c->kind))
		return ras_error_code(RAS_EINVALID, "%s: no clock of that kind can be met (kinds: "
		    "triage, clinical-review, return, gp-notification, onward, contact, assessment, "
		    "first-appointment, first-appointment-limit, treatment, pathway-end)", where);
	if ((err = parse_clause(rs, j, where, &c->clause)) < 0)
		return err;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		json_t *v = json_object_get(j, units[i].key);

		if (v == NULL)
			continue;
		n_units++;
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > units[i].max)
			return ras_error_code(RAS_EINVALID, "%s: \"%s\" must be an integer from 0 to %d", where,
			    units[i].key, units[i].max);
		c->unit = units[i].unit;
		c->amount = (int)json_integer_value(v);
	}
	if (n_units != 1)
		return ras_error_code(RAS_EINVALID, "%s: give exactly one of working_days, hours, weeks, months", where);
	if (json_object_get(j, "when")) {
		c->has_when = true;
		return parse_cond(a, rs, json_object_get(j, "when"), &c->when, 0, true, where);
	}
	return 0;
}

int
ras_rules_parse(struct ras_arena *a, const char *data, size_t len, struct ras_ruleset **out)
{
	static const char *const keys[] = { "service", "title", "spec", "spec_file", "commissioners",
		"automation", "form", "population", "accept", "rules", "clocks", "comment", NULL };
	static const char *const form_keys[] = { "questionnaire", "required", "clause", "comment", NULL };
	struct ras_ruleset *rs;
	json_t *root, *x, *rules, *clocks;
	const char *s;
	size_t i;
	int err;

	if ((err = ras_json_parse_arena(a, data, len, RAS_MAPPING_FILE_MAX, &root)) < 0)
		return err;
	if (!json_is_object(root))
		return ras_error_code(RAS_EINVALID, "a rule set must be a JSON object");
	rs = ras_arena_calloc(a, 1, sizeof(*rs));
	if (rs == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = only_keys(root, keys, "rule set")) < 0 ||
	    (err = req_str(root, "service", "rule set", &rs->service)) < 0 ||
	    (err = req_str(root, "spec", "rule set", &rs->spec)) < 0 ||
	    (err = opt_str(root, "title", "rule set", &rs->title)) < 0 ||
	    (err = req_str(root, "population", "rule set", &rs->population_file)) < 0)
		return err;
	if (!valid_token(rs->service) || strchr(rs->service, '.'))
		return ras_error_code(RAS_EINVALID, "rule set: service id \"%.40s\" must be a lower-case token without dots",
		    rs->service);
	if (strlen(rs->spec) != 3 || strspn(rs->spec, "0123456789") != 3)
		return ras_error_code(RAS_EINVALID, "rule set: spec must be the three-digit file prefix, e.g. \"004\"");
	if (strstr(rs->population_file, "..") || rs->population_file[0] == '/')
		return ras_error_code(RAS_EINVALID, "rule set: population must be a path inside the mappings directory");
	if ((err = opt_str(root, "automation", "rule set", &s)) < 0)
		return err;
	if (s && ras_rules_automation_parse(s) < 0)
		return ras_error_code(RAS_EINVALID, "rule set: automation must be administrative, all or none");
	rs->automation = s ? (enum ras_automation)ras_rules_automation_parse(s) : RAS_AUTOMATION_ADMINISTRATIVE;

	x = json_object_get(root, "form");
	if (!json_is_object(x))
		return ras_error_code(RAS_EINVALID, "rule set: \"form\" must be an object");
	if ((err = only_keys(x, form_keys, "rule set form")) < 0 ||
	    (err = req_str(x, "questionnaire", "rule set form", &rs->form_url)) < 0)
		return err;
	if (json_object_get(x, "required")) {
		json_t *req = json_object_get(x, "required"), *y;

		if (!json_is_array(req))
			return ras_error_code(RAS_EINVALID, "rule set form: \"required\" must be a list of linkIds");
		rs->required = ras_arena_calloc(a, json_array_size(req) + 1, sizeof(char *));
		if (rs->required == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(req, i, y) {
			if (!json_is_string(y))
				return ras_error_code(RAS_EINVALID, "rule set form: \"required\" must be a list of linkIds");
			rs->required[rs->n_required++] = json_string_value(y);
		}
		if (rs->n_required && (err = parse_clause(rs, x, "rule set form", &s)) < 0)
			return err;
	}

	if ((err = parse_rule(a, rs, json_object_get(root, "accept"), &rs->accept, true)) < 0) {
		if (json_object_get(root, "accept") == NULL)
			return ras_error_code(RAS_EINVALID, "rule set: \"accept\" (the reason given for an acceptance) is required");
		return err;
	}
	rules = json_object_get(root, "rules");
	if (!json_is_array(rules) || json_array_size(rules) == 0)
		return ras_error_code(RAS_EINVALID, "rule set: \"rules\" must be a non-empty list");
	if (json_array_size(rules) > RAS_RULES_MAX)
		return ras_error_code(RAS_ETOOBIG, "rule set: more than %d rules", RAS_RULES_MAX);
	rs->rules = ras_arena_calloc(a, json_array_size(rules), sizeof(*rs->rules));
	if (rs->rules == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(rules, i, x) {
		if ((err = parse_rule(a, rs, x, &rs->rules[i], false)) < 0)
			return err;
		for (size_t k = 0; k <= i; k++)
			if ((k < i && strcmp(rs->rules[k].id, rs->rules[i].id) == 0) ||
			    strcmp(rs->accept.id, rs->rules[i].id) == 0)
				return ras_error_code(RAS_EINVALID, "rule \"%s\" is defined twice", rs->rules[i].id);
		rs->n_rules++;
	}
	clocks = json_object_get(root, "clocks");
	if (clocks && !json_is_array(clocks))
		return ras_error_code(RAS_EINVALID, "rule set: \"clocks\" must be a list");
	if (json_array_size(clocks) > RAS_CLOCKS_MAX)
		return ras_error_code(RAS_ETOOBIG, "rule set: more than %d clocks", RAS_CLOCKS_MAX);
	rs->clocks = ras_arena_calloc(a, json_array_size(clocks) + 1, sizeof(*rs->clocks));
	if (rs->clocks == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(clocks, i, x) {
		if ((err = parse_clock(a, rs, x, i, &rs->clocks[i])) < 0)
			return err;
		rs->n_clocks++;
	}
	/* the facts the safety net folds its signals into, when rules name them */
	rs->slot_red_flags = rs->slot_suspected_cancer = -1;
	for (size_t k = 0; k < rs->n_form_slots; k++) {
		if (strcmp(rs->form_slots[k], "form.red-flags") == 0)
			rs->slot_red_flags = F_FORM + (int)k;
		if (strcmp(rs->form_slots[k], "form.suspected-cancer") == 0)
			rs->slot_suspected_cancer = F_FORM + (int)k;
	}
	*out = rs;
	return 0;
}

const char *
ras_rules_service(const struct ras_ruleset *rs)
{
	return rs->service;
}

const char *
ras_rules_population_file(const struct ras_ruleset *rs)
{
	return rs->population_file;
}

const char *
ras_rules_form_url(const struct ras_ruleset *rs)
{
	return rs->form_url;
}

const char *
ras_rules_version(const struct ras_ruleset *rs)
{
	return rs->version;
}

enum ras_automation
ras_rules_automation(const struct ras_ruleset *rs)
{
	return rs->automation;
}

void
ras_rules_set_automation(struct ras_ruleset *rs, enum ras_automation a)
{
	rs->automation = a;
}

size_t
ras_rules_count(const struct ras_ruleset *rs)
{
	return rs->n_rules;
}

const char *
ras_rules_rule_id(const struct ras_ruleset *rs, size_t i)
{
	return i < rs->n_rules ? rs->rules[i].id : NULL;
}

/* ---- practice lists --------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool
ras_rules_code_listed(const char *const *sorted, size_t n, const char *ods)
{
	return ods && n && bsearch(&ods, sorted, n, sizeof(char *), cmp_str) != NULL;
}

static int
code_list(struct ras_arena *a, const json_t *root, const char *key, const char *name,
    const char ***out, size_t *n)
{
	json_t *arr = json_object_get(root, key), *x;
	size_t i;

	*n = 0;
	if (arr == NULL) {
		*out = NULL;
		return 0;
	}
	if (!json_is_array(arr))
		return ras_error_code(RAS_EINVALID, "practice list %s: \"%s\" must be a list", name, key);
	if (json_array_size(arr) > RAS_PRACTICES_MAX)
		return ras_error_code(RAS_ETOOBIG, "practice list %s: more than %d entries", name, RAS_PRACTICES_MAX);
	*out = ras_arena_calloc(a, json_array_size(arr) + 1, sizeof(char *));
	if (*out == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(arr, i, x) {
		const char *ods = ras_json_str(x, "ods");
		size_t l;

		if (ods == NULL && json_is_string(x))
			ods = json_string_value(x);
		l = ods ? strlen(ods) : 0;
		if (l < 3 || l > 10 || strspn(ods, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != l)
			return ras_error_code(RAS_EINVALID, "practice list %s: \"%s\" entry %zu is not an ODS code",
			    name, key, i + 1);
		(*out)[(*n)++] = ods;
	}
	qsort(*out, *n, sizeof(char *), cmp_str);
	return 0;
}

int
ras_rules_practices_parse(struct ras_arena *a, const char *name, const char *data, size_t len,
    struct ras_practice_list *out)
{
	json_t *root;
	int err;

	memset(out, 0, sizeof(*out));
	out->name = ras_arena_strdup(a, name);
	if ((err = ras_json_parse_arena(a, data, len, RAS_MAPPING_FILE_MAX, &root)) < 0)
		return err;
	if (!json_is_object(root) || !json_is_array(json_object_get(root, "practices")))
		return ras_error_code(RAS_EINVALID, "practice list %s: needs a \"practices\" list", name);
	if ((err = code_list(a, root, "practices", name, &out->practices, &out->n_practices)) < 0 ||
	    (err = code_list(a, root, "closed", name, &out->closed, &out->n_closed)) < 0 ||
	    (err = code_list(a, root, "other", name, &out->other, &out->n_other)) < 0)
		return err;
	return 0;
}

/* ---- ODS codes ------------------------------------------------------------- */

/* What the practice lists say of one ODS code: a rule set's decisions need
 * it for the patient's practice and the referrer, so the lists are merged
 * into one hash table when the rule set is linked. */
enum {
	ODS_GP = 1,             /* a practice or closed practice on any list */
	ODS_OTHER = 2,          /* an organisation that is not a GP practice, on any list */
	ODS_POPULATION = 4,     /* a practice of the rule set's population */
	ODS_POPULATION_CLOSED = 8,  /* a closed practice of its population's commissioners */
};

struct ods_map {
	size_t mask;            /* slots - 1: a power of two, at least twice the codes */
	const char **code;
	unsigned char *flags;
};

static size_t
ods_hash(const char *s)
{
	uint64_t h = 1469598103934665603u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (size_t)(h ^ (h >> 32));
}

static size_t
ods_slot(const struct ods_map *m, const char *ods)
{
	size_t h = ods_hash(ods) & m->mask;

	while (m->code[h] && strcmp(m->code[h], ods) != 0)
		h = (h + 1) & m->mask;
	return h;
}

static void
ods_add(struct ods_map *m, const char *const *codes, size_t n, unsigned char flag)
{
	for (size_t i = 0; i < n; i++) {
		size_t h = ods_slot(m, codes[i]);

		m->code[h] = codes[i];
		m->flags[h] |= flag;
	}
}

static int
ods_map_new(struct ras_arena *a, const struct ras_practice_list *population,
    const struct ras_practice_list *const *lists, size_t n_lists, struct ods_map **out)
{
	struct ods_map *m = ras_arena_calloc(a, 1, sizeof(*m));
	size_t total = population->n_practices + population->n_closed, size = 16;

	for (size_t i = 0; i < n_lists; i++)
		total += lists[i]->n_practices + lists[i]->n_closed + lists[i]->n_other;
	while (size < 2 * total)
		size *= 2;
	if (m == NULL || (m->code = ras_arena_calloc(a, size, sizeof(*m->code))) == NULL ||
	    (m->flags = ras_arena_calloc(a, size, 1)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	m->mask = size - 1;
	for (size_t i = 0; i < n_lists; i++) {
		ods_add(m, lists[i]->practices, lists[i]->n_practices, ODS_GP);
		ods_add(m, lists[i]->closed, lists[i]->n_closed, ODS_GP);
		ods_add(m, lists[i]->other, lists[i]->n_other, ODS_OTHER);
	}
	ods_add(m, population->practices, population->n_practices, ODS_POPULATION);
	ods_add(m, population->closed, population->n_closed, ODS_POPULATION_CLOSED);
	*out = m;
	return 0;
}

/* What the lists say of `ods` (0: nothing). */
static unsigned
ods_flags(const struct ods_map *m, const char *ods)
{
	size_t h = ods_slot(m, ods);

	return m->code[h] ? m->flags[h] : 0;
}

/* ---- linking ---------------------------------------------------------------- */

int
ras_rules_link(struct ras_arena *a, struct ras_ruleset *rs,
    const struct ras_questionnaire *const *forms, size_t n_forms,
    const struct ras_practice_list *population, const struct ras_practice_list *const *all_lists,
    size_t n_lists, const char *version)
{
	char where[RAS_ID_MAX + 32];
	int err;

	rs->forms = ras_arena_calloc(a, n_forms + 1, sizeof(*rs->forms));
	if (rs->forms == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	rs->n_forms = 0;
	rs->current = NULL;
	for (size_t i = 0; i < n_forms; i++) {
		if (strcmp(forms[i]->url, rs->form_url) != 0)
			continue;
		rs->forms[rs->n_forms++] = forms[i];
		if (strcmp(forms[i]->status, "active") == 0) {
			if (rs->current)
				return ras_error_code(RAS_EINVALID, "rule set %s: two active versions of form %s",
				    rs->service, rs->form_url);
			rs->current = forms[i];
		}
	}
	if (rs->current == NULL)
		return ras_error_code(RAS_EINVALID, "rule set %s: no active (current) version of form %s",
		    rs->service, rs->form_url);
	for (size_t i = 0; i < rs->n_required; i++)
		if (ras_form_item(rs->current, rs->required[i]) == NULL)
			return ras_error_code(RAS_EINVALID, "rule set %s: required item \"%s\" is not in form %s|%s",
			    rs->service, rs->required[i], rs->current->url, rs->current->version);
	/* and where each is in every version, so that a decision's form check
	 * need not look them up by name */
	rs->required_at = ras_arena_calloc(a, rs->n_forms * rs->n_required + 1, sizeof(int));
	if (rs->required_at == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n_forms; i++)
		for (size_t e = 0; e < rs->n_required; e++) {
			const struct ras_qitem *it = ras_form_item(rs->forms[i], rs->required[e]);

			rs->required_at[i * rs->n_required + e] = it ? (int)(it - rs->forms[i]->items) : -1;
		}
	for (size_t i = 0; i < rs->n_rules; i++) {
		snprintf(where, sizeof(where), "rule \"%.*s\"", RAS_ID_MAX, rs->rules[i].id);
		if ((err = link_cond(rs, &rs->rules[i].when, where)) < 0)
			return err;
	}
	/* Each form fact's item in each version of the form, so that a decision
	 * finds its facts by index.  A form fact is "form.<linkId>": an item
	 * named like one of the engine's form facts (form.status, form.missing,
	 * ...) could not be told apart from it, so such a form is refused. */
	rs->item_map = ras_arena_calloc(a, rs->n_forms * rs->n_form_slots + 1, sizeof(int));
	if (rs->item_map == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n_forms; i++) {
		const struct ras_questionnaire *q = rs->forms[i];

		for (size_t k = 0; k < q->n_items; k++)
			for (int f = F_FORM_PRESENT; f < F_FORM; f++)
				if (strcmp(known_facts[f].name + 5, q->items[k].link_id) == 0)
					return ras_error_code(RAS_EINVALID, "rule set %s: form %s|%s has an item \"%s\", "
					    "which the rules engine cannot tell from its own fact \"%s\"", rs->service,
					    q->url, q->version, q->items[k].link_id, known_facts[f].name);
		for (size_t k = 0; k < rs->n_form_slots; k++) {
			const struct ras_qitem *it = ras_form_item(q, rs->form_slots[k] + 5);

			rs->item_map[i * rs->n_form_slots + k] = it ? (int)(it - q->items) : (int)q->n_items;
		}
	}
	rs->item_keys = ras_arena_calloc(a, rs->n_forms + 1, sizeof(*rs->item_keys));
	if (rs->item_keys == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n_forms; i++) {
		const struct ras_questionnaire *q = rs->forms[i];

		if ((rs->item_keys[i] = ras_arena_calloc(a, q->n_items + 1, sizeof(char *))) == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t k = 0; k < q->n_items; k++) {
			const char *lid = q->items[k].link_id;
			size_t l = strlen(lid);
			char *key;

			if (!json_plain(lid) || l > RAS_ID_MAX + 2)
				continue;
			if ((key = ras_arena_alloc(a, l + 10)) == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			memcpy(key, "\"form.", 6);
			memcpy(key + 6, lid, l);
			memcpy(key + 6 + l, "\":", 3);
			rs->item_keys[i][k] = key;
		}
	}
	if ((err = ras_safety_net_items_new(a, rs->forms, rs->n_forms, &rs->net_items)) < 0 ||
	    (err = ods_map_new(a, population, all_lists, n_lists, &rs->ods)) < 0)
		return err;
	rs->population = population;
	rs->all_lists = all_lists;
	rs->n_lists = n_lists;
	rs->version = ras_arena_strdup(a, version);
	if (rs->version == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	rs->linked = true;
	return 0;
}

/* ---- facts ------------------------------------------------------------------ */

/*
 * A decision's facts, typed: the engine's own facts by slot (enum fid), the
 * form's answers per item of the form version they were read with, and
 * how the decision was reached.  Computed once; rules, the safety net's
 * re-run and advice read them by index; ras_rules_facts_json() writes them
 * out for storage.  Strings point into the referral and the rule set.
 */
struct ras_rules_trace {
	const struct ras_ruleset *rs;
	struct fval v[F_FORM];
	const struct ras_questionnaire *q;   /* the form version answers were read with */
	int qi;                              /* its index in rs->forms; -1 with no form */
	struct fval *items;                  /* per item of q */
	const int *item_of;                  /* per answer of the form: its item of q, or -1 */
	size_t n_hit;
	const struct rule *const *hit;       /* every rule that matched ("findings") */
	struct ras_safety_net net;
	const char *net_applied;             /* none, danger, doubt */
	enum ras_automation automation;
	bool urgent, covered;
};

static const struct fval absent_fact;

/* Facts are set in place, in memory the arena zeroed. */
static void
fbool(struct fval *f, bool b)
{
	f->t = VT_BOOL;
	f->b = b;
}

static void
fint(struct fval *f, int64_t i)
{
	f->t = VT_INT;
	f->i = i;
}

static void
fstr(struct fval *f, const char *s)
{
	f->t = VT_STR;
	f->s = s;
}

static void
flist(struct fval *f, const char **list, size_t n)
{
	f->t = VT_LIST;
	f->list = list;
	f->n = n;
}

/* GP practice (a code on any loaded list, or shaped like an English GP
 * practice code: a letter and five digits, and not a known other
 * organisation), otherwise secondary care.  `flags`: what the lists say. */
static const char *
referrer_kind(const char *ods, unsigned flags)
{
	size_t l;

	if (ods == NULL || *ods == '\0')
		return "unknown";
	if (flags & ODS_GP)
		return "gp";
	if (flags & ODS_OTHER)
		return "secondary-care";
	l = strlen(ods);
	if (l == 6 && ods[0] >= 'A' && ods[0] <= 'Z' && strspn(ods + 1, "0123456789") == 5)
		return "gp";
	return "secondary-care";
}

static int
form_facts(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_form *form,
    struct ras_rules_trace *t)
{
	struct ras_form_check fc, interp;
	const struct ras_questionnaire *q;
	struct fval *v = t->v, *items;
	const bool *ok;
	const int *count, *n_ok, *first;
	const char **codes = NULL;
	int err;

	if ((err = ras_form_check_indexed(a, rs->forms, rs->n_forms, form,
	    (const char *const *)rs->required, rs->n_required, rs->required_at, &fc)) < 0)
		return err;
	fbool(&v[F_FORM_PRESENT], fc.present);
	if (!fc.present)
		return 0;
	fbool(&v[F_FORM_Q_KNOWN], fc.questionnaire_known);
	fbool(&v[F_FORM_VERSION_KNOWN], fc.version_known);
	fbool(&v[F_FORM_CURRENT], fc.current);
	fbool(&v[F_FORM_COMPLETED], fc.completed);
	if (form->status)
		fstr(&v[F_FORM_STATUS], form->status);
	if (form->version)
		fstr(&v[F_FORM_VERSION], form->version);
	flist(&v[F_FORM_MISSING], fc.missing, fc.n_missing);
	/* Answers are read with the version the response names, or with the
	 * current form when that version is unknown: a safety rule must still
	 * see a red flag on an out-of-date or unrecognised form. */
	interp = fc;
	if (fc.q == NULL && (err = ras_form_check_as(a, rs->current, form, NULL, 0, &interp)) < 0)
		return err;
	q = interp.q;
	flist(&v[F_FORM_INVALID], interp.invalid, interp.n_invalid);
	flist(&v[F_FORM_UNKNOWN], interp.unknown, interp.n_unknown);
	t->q = q;
	t->item_of = interp.item_of;
	for (size_t i = 0; i < rs->n_forms; i++)
		if (rs->forms[i] == q)
			t->qi = (int)i;
	/* (every item's fact is written below, absent ones too) */
	items = ras_arena_array(a, q->n_items + 1, sizeof(*items));
	if (items == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	t->items = items;
	ok = interp.answer_ok;
	count = interp.n_answers_of;
	n_ok = interp.n_ok_of;
	first = interp.first_of;
	items[q->n_items] = absent_fact;   /* (slot_facts: an item not on q) */
	/* One pass over the items, each with its first answer as the check
	 * found it (an item's fact is its first answer's, answers in the
	 * order they came). */
	for (size_t k = 0, ni = q->n_items; k < ni; k++) {
		const struct ras_qitem *it = &q->items[k];
		const struct ras_answer *ans;
		struct fval *f = &items[k];
		int c = count[k], c_ok = n_ok[k];   /* (read before f is written) */

		*f = absent_fact;
		if (c_ok == 0)   /* (no answer, or none acceptable) */
			continue;
		if (it->type == RAS_QITEM_CHOICE && it->repeats) {
			/* a repeating choice keeps the codes that were acceptable, in
			 * the answers' order: its list takes that many from one array
			 * (at most one per answer) */
			if (codes == NULL &&
			    (codes = ras_arena_array(a, form->n_answers, sizeof(*codes))) == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			flist(f, codes, 0);
			codes += c_ok;
			for (size_t i = (size_t)first[k]; i < form->n_answers && f->n < (size_t)c_ok; i++)
				if (interp.item_of[i] == (int)k && ok[i])
					f->list[f->n++] = form->answers[i].code;
			continue;
		}
		/* an item with an unacceptable answer (or two answers to an item
		 * that does not repeat: the check's "invalid") is no fact; else
		 * every answer is acceptable, the first one too */
		if (c > c_ok || (!it->repeats && c > 1))
			continue;
		ans = &form->answers[first[k]];
		switch (it->type) {
		case RAS_QITEM_BOOLEAN: fbool(f, ans->b); break;
		case RAS_QITEM_INTEGER: fint(f, ans->i); break;
		case RAS_QITEM_DECIMAL:
			if (ans->type == RAS_ANSWER_INTEGER) {
				fint(f, ans->i);
			} else {
				f->t = VT_REAL;
				f->d = ans->d;
			}
			break;
		case RAS_QITEM_CHOICE: fstr(f, ans->code); break;
		default: fbool(f, true); break;   /* free text: answered, never copied */
		}
	}
	return 0;
}

static int
build_facts(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_referral *r,
    const struct ras_date *day0, struct ras_rules_trace *t)
{
	const struct ras_patient *p = &r->patient;
	const char *ods = p->practice_ods;
	struct fval *v = t->v;

	t->rs = rs;
	t->qi = -1;
	fstr(&v[F_SOURCE], ras_referral_payload_kind_name(r->source));
	fbool(&v[F_FROM_ERS], r->source == RAS_PAYLOAD_ERS_REFERRAL ||
	    r->source == RAS_PAYLOAD_ERS_WORKLIST);
	fstr(&v[F_PRIORITY], ras_referral_priority_name(r->priority));
	fbool(&v[F_HAS_ATTACHMENTS], r->n_attachments > 0);
	{
		/* Recheck rather than trust the stored status: the engine may be fed
		 * any referral (rasctl triage, fuzzing). */
		enum ras_nhsno_status st = ras_nhsno_check(p->nhs_number);

		fbool(&v[F_NHS_VALID], st == RAS_NHSNO_OK);
		fstr(&v[F_NHS_STATUS], st == RAS_NHSNO_OK ? "valid" :
		    st == RAS_NHSNO_MISSING ? "missing" : "invalid");
	}
	{
		/* A birth date after the day of receipt is as good as none. */
		bool known = p->has_birth_date && ras_date_valid(&p->birth_date) &&
		    ras_date_cmp(&p->birth_date, day0) <= 0;

		fbool(&v[F_BIRTH_KNOWN], known);
		if (known)
			fint(&v[F_AGE], ras_date_age_years(&p->birth_date, day0));
	}
	fbool(&v[F_PRACTICE_KNOWN], ods && *ods);
	{
		const char *org = r->referrer.org_ods;
		unsigned f = 0, of = 0;

		if (ods && *ods) {
			bool listed, closed;

			f = ods_flags(rs->ods, ods);
			listed = f & ODS_POPULATION;
			closed = f & ODS_POPULATION_CLOSED;
			fstr(&v[F_PRACTICE], ods);
			fbool(&v[F_PRACTICE_IN_AREA], listed || closed);
			fbool(&v[F_PRACTICE_CLOSED], closed);
		}
		/* (a GP mostly refers from the patient's own practice: the same
		 * code's flags are not looked up twice) */
		if (org && *org)
			of = ods && *ods && strcmp(org, ods) == 0 ? f : ods_flags(rs->ods, org);
		fstr(&v[F_REFERRER_KIND], referrer_kind(org, of));
	}
	if (r->referrer.org_ods)
		fstr(&v[F_REFERRER_ORG], r->referrer.org_ods);
	return form_facts(a, rs, r->has_form ? &r->form : NULL, t);
}

/* Each slot's fact: the engine's by id, form facts through the item map of
 * the form version the answers were read with. */
static void
slot_facts(const struct ras_ruleset *rs, const struct ras_rules_trace *t,
    const struct fval **sv)
{
	for (int i = 0; i < F_FORM; i++)
		sv[i] = &t->v[i];
	if (t->qi < 0) {
		for (size_t k = 0; k < rs->n_form_slots; k++)
			sv[F_FORM + k] = &absent_fact;
	} else {
		/* (an item not on this version maps to the absent fact kept
		 * after its items) */
		const int *map = &rs->item_map[(size_t)t->qi * rs->n_form_slots];

		for (size_t k = 0; k < rs->n_form_slots; k++)
			sv[F_FORM + k] = &t->items[map[k]];
	}
}

/* ---- advice ---------------------------------------------------------------- */

/* An integer in decimal as printf's "%lld" writes it, into the end of d:
 * returns where it starts (the digits run to the end of d, no NUL).  Used
 * by the advice and the facts text alike. */
#define INT_DIGITS 24

static size_t
int_digits(int64_t i, char d[INT_DIGITS])
{
	size_t k = INT_DIGITS;
	uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;

	do {
		d[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (i < 0)
		d[--k] = '-';
	return k;
}

/* Advice is built in a fixed buffer, each piece whole or not at all, at
 * most RAS_ADVICE_MAX + 1 bytes (one more is too long). */
struct advice {
	char text[RAS_ADVICE_MAX + 2];
	size_t len;
};

static int
add(struct advice *o, const char *s, size_t n)
{
	if (n > RAS_ADVICE_MAX + 1 - o->len)
		return RAS_ETOOBIG;
	memcpy(o->text + o->len, s, n);
	o->len += n;
	return 0;
}

static int
adds(struct advice *o, const char *s)
{
	return add(o, s, strlen(s));
}

static void
put_value(struct advice *o, const struct ras_ruleset *rs, bool form, const struct fval *v)
{
	char num[64];

	switch (v->t) {
	case VT_NONE:
		(void)adds(o, "unknown");
		break;
	case VT_LIST:
		for (size_t i = 0; i < v->n; i++) {
			const char *s = v->list[i];
			const struct ras_qitem *it = s && form ? ras_form_item(rs->current, s) : NULL;

			if (i)
				(void)adds(o, "; ");
			if (it && it->text) {
				size_t l = strlen(it->text);

				/* “text”, as one piece */
				if (l + 6 <= RAS_ADVICE_MAX + 1 - o->len) {
					(void)adds(o, "\xe2\x80\x9c");
					(void)add(o, it->text, l);
					(void)adds(o, "\xe2\x80\x9d");
				}
			} else {
				(void)adds(o, s ? s : "?");
			}
		}
		if (v->n == 0)
			(void)adds(o, "none");
		break;
	case VT_STR:
		(void)adds(o, v->s);
		break;
	case VT_INT: {
		size_t k = int_digits(v->i, num);

		(void)add(o, num + k, INT_DIGITS - k);
		break;
	}
	case VT_BOOL:
		(void)adds(o, v->b ? "yes" : "no");
		break;
	case VT_REAL:
		snprintf(num, sizeof(num), "%g", v->d);
		(void)adds(o, num);
		break;
	}
}

/* The advice of rule r: its own text, or its template with the facts
 * filled in (a value that does not fit is left out; literal text that
 * does not fit makes the advice too long). */
static int
render_advice(struct ras_arena *a, const struct ras_ruleset *rs, const struct rule *r,
    const struct fval *const *sv, const char **out)
{
	struct advice o;
	int err = 0;

	*out = r->advice;
	if (r->advice == NULL || r->n_segs == 0)
		return 0;
	o.len = 0;
	for (size_t i = 0; i < r->n_segs && err == 0; i++) {
		const struct seg *sg = &r->segs[i];

		if (sg->slot < 0)
			err = add(&o, sg->text, sg->len);
		else
			put_value(&o, rs, sg->form, sv[sg->slot]);
	}
	if (err == 0 && o.len > RAS_ADVICE_MAX)
		err = RAS_ETOOBIG;
	if (err)
		return ras_error_code(RAS_ETOOBIG, "advice is longer than %d characters", RAS_ADVICE_MAX);
	if ((*out = ras_arena_strndup(a, o.text, o.len)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	return 0;
}

/* ---- deadlines ------------------------------------------------------------- */

/* British Summer Time of one year, kept per thread: decisions mostly fall
 * in the same year, so it is computed about once a year, not per clock. */
struct summer {
	int year;               /* 0: none yet */
	int64_t start, end;
};

static _Thread_local struct summer summer_cache;

static void
summer_of(int year, struct summer *bst)
{
	if (bst->year != year) {
		ras_time_uk_summer(year, &bst->start, &bst->end);
		bst->year = year;
	}
}

/* The last second of UK day d: the next day's UK midnight (as
 * ras_time_uk_midnight: the offset at 23:00 UTC the day before, since the
 * UK changes at 01:00 UTC), less one. */
static int64_t
end_of_day_n(int64_t days, int year, struct summer *bst)
{
	int64_t local = (days + 1) * 86400, guess = local - 3600;

	summer_of(year, bst);
	return local - (guess >= bst->start && guess < bst->end ? 3600 : 0) - 1;
}

static int64_t
end_of_day(const struct ras_date *d, struct summer *bst)
{
	return end_of_day_n(ras_date_to_days(d), d->year, bst);
}

/* The UK day last asked for, kept per thread with its first and last
 * second, one for day 0 (when referrals were received) and one for the
 * hour clocks' due times: a stage's referrals were mostly received on the
 * same few days, so most are placed by two comparisons instead of date
 * conversions. */
struct uk_day {
	int64_t first, last;    /* first > last: none yet */
	struct ras_date d;
	int64_t days;           /* d as ras_date_to_days() counts it */
};

enum { UK_DAY0, UK_DUE, UK_DAYS };

static _Thread_local struct uk_day uk_day_cache[UK_DAYS] = { { 1, 0, { 0, 0, 0 }, 0 },
	{ 1, 0, { 0, 0, 0 }, 0 } };

/* The date of a day number (ras_date_from_days(), a pure function) with the
 * last few asked for kept per thread: the clocks of decisions received on
 * the same day fall due on the same days. */
enum { DAY_MEMO = 4 };

static _Thread_local struct day_memo {
	int64_t n;
	struct ras_date d;
} day_memo[DAY_MEMO] = { { INT64_MIN, { 0, 0, 0 } }, { INT64_MIN, { 0, 0, 0 } },
	{ INT64_MIN, { 0, 0, 0 } }, { INT64_MIN, { 0, 0, 0 } } };
static _Thread_local unsigned day_memo_next;

static void
date_of_day(int64_t n, struct ras_date *d)
{
	struct day_memo *m;

	for (int i = 0; i < DAY_MEMO; i++)
		if (day_memo[i].n == n) {
			*d = day_memo[i].d;
			return;
		}
	ras_date_from_days(n, d);
	m = &day_memo[day_memo_next++ % DAY_MEMO];
	m->n = n;
	m->d = *d;
}

/* As ras_time_uk_date(t, d, NULL), with the year's summer time and the
 * last day asked for at this place (which) cached; returns the day as
 * ras_date_to_days() counts it. */
static int64_t
uk_date(int64_t t, int which, struct ras_date *d)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400, local, first, last;
	struct summer *bst = &summer_cache;
	struct uk_day *c = &uk_day_cache[which];
	struct ras_date prev;

	if (t >= c->first && t <= c->last) {
		*d = c->d;
		return c->days;
	}
	ras_date_from_days(days, d);
	summer_of(d->year, bst);
	if (t >= bst->start && t < bst->end) {
		local = t + 3600;
		if ((local >= 0 ? local / 86400 : (local - 86399) / 86400) != days)
			ras_date_from_days(++days, d);
	}
	/* The day's bounds as end_of_day() sets them (the deadlines' own): kept
	 * only when t lies between them, which it always should. */
	ras_date_from_days(days - 1, &prev);
	first = end_of_day_n(days - 1, prev.year, bst) + 1;
	last = end_of_day_n(days, d->year, bst);
	if (t >= first && t <= last)
		*c = (struct uk_day){ first, last, *d, days };
	return days;
}

/*
 * The clock kinds a rule set may start, each with what meets it in the
 * database (so no clock is started that nothing can meet; mappings/README
 * "CLOCK" and tests/test_deadlines.c):
 */
static const char *const clock_kinds[] = {
	"triage",                  /* a final decision (002 ras_store_decision) */
	"clinical-review",         /* a clinician's decision (002) */
	"return",                  /* the return letter delivered (004), or e-RS A028 done (003) */
	"gp-notification",         /* the 2WW notice or the triage letter delivered to the GP (004) */
	"onward",                  /* EPR onward-referral (005 epr_deadline_closes) */
	"contact",                 /* EPR patient-contacted, appointment-offered or -attended */
	"assessment",              /* EPR first appointment attended */
	"first-appointment",       /* EPR first appointment attended */
	"first-appointment-limit", /* EPR first appointment attended */
	"treatment",               /* EPR treatment-started */
	"pathway-end",             /* EPR discharged or pifu */
	NULL,
};

bool
ras_rules_clock_kind_known(const char *kind)
{
	for (size_t i = 0; kind && clock_kinds[i]; i++)
		if (strcmp(clock_kinds[i], kind) == 0)
			return true;
	return false;
}

const char *const *
ras_rules_clock_kinds(void)
{
	return clock_kinds;
}

const char *
ras_rules_clock_clause(const struct ras_ruleset *rs, const char *kind)
{
	for (size_t i = 0; i < rs->n_clocks; i++)
		if (strcmp(rs->clocks[i].kind, kind) == 0)
			return rs->clocks[i].clause;
	return NULL;
}

/* The deadlines of an outcome, the clocks counted from day0 (the UK date
 * of received_at). */
static int
deadlines_from(struct ras_arena *a, const struct ras_ruleset *rs, enum ras_outcome outcome,
    const char *onward_target, bool urgent, bool final, int64_t received_at,
    const struct ras_date *day0, int64_t day0_n, const struct ras_calendar *cal,
    struct ras_deadline **out, size_t *n_out, bool *covered)
{
	struct ras_deadline *dl;
	struct fval cf[CF_COUNT] = { 0 };
	struct summer *bst = &summer_cache;
	const struct fval *cs[CF_COUNT];
	bool cov = true;
	size_t n = 0;
	int err = 0;
	int64_t due_n;

	_Static_assert(sizeof(clock_facts) / sizeof(clock_facts[0]) == CF_COUNT, "clock facts");
	*out = NULL;
	*n_out = 0;
	fstr(&cf[CF_OUTCOME], ras_decision_outcome_name(outcome));
	if (onward_target)
		fstr(&cf[CF_ONWARD_TARGET], onward_target);
	fbool(&cf[CF_URGENT], urgent);
	fbool(&cf[CF_FINAL], final);
	for (int i = 0; i < CF_COUNT; i++)
		cs[i] = &cf[i];
	dl = ras_arena_calloc(a, rs->n_clocks + 1, sizeof(*dl));
	if (dl == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n_clocks; i++) {
		const struct clock *c = &rs->clocks[i];
		struct ras_deadline *d = &dl[n];
		bool c_cov = true;

		if (c->has_when && !(c->when.op >= OP_EQ ? leaf(&c->when, cs) : eval(&c->when, cs)))
			continue;
		d->kind = c->kind;
		d->clause = c->clause;
		switch (c->unit) {
		case U_WORKING_DAYS:
			if ((err = ras_calendar_add_working_days_n(cal, day0_n, c->amount, &due_n, &c_cov)) < 0)
				return err;
			date_of_day(due_n, &d->due_date);
			d->due_at = end_of_day_n(due_n, d->due_date.year, bst);
			break;
		case U_HOURS:
			d->hours = true;
			d->due_at = received_at + (int64_t)c->amount * 3600;
			(void)uk_date(d->due_at, UK_DUE, &d->due_date);
			break;
		case U_WEEKS:
			due_n = day0_n + (int64_t)c->amount * 7;
			date_of_day(due_n, &d->due_date);
			d->due_at = end_of_day_n(due_n, d->due_date.year, bst);
			break;
		case U_MONTHS:
			ras_date_add_months(day0, c->amount, &d->due_date);
			d->due_at = end_of_day(&d->due_date, bst);
			break;
		}
		cov = cov && c_cov;
		n++;
	}
	*out = dl;
	*n_out = n;
	if (covered)
		*covered = cov;
	return 0;
}

int
ras_rules_deadlines(struct ras_arena *a, const struct ras_ruleset *rs, enum ras_outcome outcome,
    const char *onward_target, bool urgent, bool final, int64_t received_at,
    const struct ras_calendar *cal, struct ras_deadline **out, size_t *n_out, bool *covered)
{
	struct ras_date day0;

	ras_time_uk_date(received_at, &day0, NULL);
	return deadlines_from(a, rs, outcome, onward_target, urgent, final, received_at, &day0,
	    ras_date_to_days(&day0), cal, out, n_out, covered);
}

/* ---- decide ------------------------------------------------------------------ */

/*
 * The safety net's own reasons (safety_net.h): danger the rule set's safety
 * rules do not match even over the net's signals, and doubt the net cannot
 * settle.  Both are reviews; danger is urgent.
 */
static const struct rule net_danger_rule = {
	.id = "rasd.safety-net.danger", .stage = STAGE_SAFETY, .kind = KIND_SAFETY,
	.clause = "rasd safety net (docs/design/safety-net.md)", .outcome = RAS_OUTCOME_REVIEW,
	.urgent = true,
	.advice = "The referral reports a red flag, suspected cancer or an urgent or two-week-wait "
	    "priority that the service's rules do not place: a clinician reviews it today.",
};
static const struct rule net_doubt_rule = {
	.id = "rasd.safety-net.doubt", .stage = STAGE_SAFETY, .kind = KIND_SAFETY,
	.clause = "rasd safety net (docs/design/safety-net.md)", .outcome = RAS_OUTCOME_REVIEW,
	.advice = "rasd could not read everything this referral carries with certainty (the safety "
	    "net's doubts are in the decision's facts): a clinician decides.",
};

/* The referral's facts with the net's danger signals folded in, so that the
 * rule set's own safety rules decide which urgent path applies: ns is sv
 * with form.red-flags gaining the net's codes (a list of its own),
 * form.suspected-cancer true and referral.priority the net's. */
static int
net_facts(struct ras_arena *a, const struct ras_ruleset *rs, const struct fval *const *sv,
    const struct ras_safety_net *net, const struct fval **ns, struct fval *own)
{
	size_t n_slots = F_FORM + rs->n_form_slots;

	memcpy(ns, sv, n_slots * sizeof(*ns));
	if (rs->slot_red_flags >= 0) {
		const struct fval *was = sv[rs->slot_red_flags];
		size_t n = was->t == VT_LIST ? was->n : 0;
		const char **l = ras_arena_array(a, n + 4, sizeof(*l));

		if (l == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if (n)
			memcpy(l, was->list, n * sizeof(*l));
		if (net->cauda_equina)
			l[n++] = "cauda-equina";
		if (net->suspected_cancer)
			l[n++] = "suspected-cancer";
		if (net->red_flag)
			l[n++] = "other";
		flist(&own[0], l, n);
		ns[rs->slot_red_flags] = &own[0];
	}
	if (net->suspected_cancer && rs->slot_suspected_cancer >= 0) {
		fbool(&own[1], true);
		ns[rs->slot_suspected_cancer] = &own[1];
	}
	if (net->two_week_wait || net->urgent) {
		fstr(&own[2], net->two_week_wait ? "two-week-wait" : "urgent");
		ns[F_PRIORITY] = &own[2];
	}
	return 0;
}

int
ras_rules_decide(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_referral *r,
    int64_t received_at, const struct ras_calendar *cal, int64_t now, struct ras_decision *out)
{
	const struct rule **hit = NULL, **chosen = NULL;
	const struct fval *sv[RAS_RULE_FACTS_MAX];
	struct ras_rules_trace *t;
	struct ras_date day0;
	int64_t day0_n;
	size_t n_hit = 0, n_chosen = 0;
	enum ras_outcome outcome = RAS_OUTCOME_ACCEPT;
	const char *target = NULL;
	bool urgent = false, mdt = false, all_admin = true, covered = true;
	int err;

	memset(out, 0, sizeof(*out));
	if (!rs->linked)
		return ras_error_code(RAS_EINVALID, "rule set %s is not linked to its form and practice list",
		    rs->service);
	day0_n = uk_date(received_at, UK_DAY0, &day0);
	t = ras_arena_alloc(a, sizeof(*t));
	/* (the rules that matched and the ones chosen, in one allocation;
	 * each list is written before it is read, up to its count) */
	hit = ras_arena_array(a, 2 * (rs->n_rules + 1), sizeof(*hit));
	chosen = hit ? hit + rs->n_rules + 1 : NULL;
	if (t == NULL || hit == NULL || chosen == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = build_facts(a, rs, r, &day0, t)) < 0)
		return err;

	slot_facts(rs, t, sv);
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct cond *c = &rs->rules[i].when;

		/* (most rules test one fact: tested here, without a call) */
		if (c->op >= OP_EQ ? leaf(c, sv) : eval(c, sv))
			hit[n_hit++] = &rs->rules[i];
	}

	/* 1. Safety: never returned, never silently accepted. */
	for (size_t i = 0; i < n_hit; i++)
		if (hit[i]->stage == STAGE_SAFETY) {
			chosen[n_chosen++] = hit[i];
			if (outcome != RAS_OUTCOME_ONWARD && hit[i]->outcome == RAS_OUTCOME_ONWARD) {
				outcome = RAS_OUTCOME_ONWARD;
				target = hit[i]->target;
			} else if (outcome == RAS_OUTCOME_ACCEPT) {
				outcome = RAS_OUTCOME_REVIEW;
			}
		}
	/* 2. Identity, eligibility, completeness, clinical: the first stage with
	 * a return or onward finding decides. */
	for (int s = STAGE_IDENTITY; n_chosen == 0 && s < STAGE_COUNT; s++) {
		const struct rule *first_onward = NULL;
		bool any_return = false;

		for (size_t i = 0; i < n_hit; i++) {
			if ((int)hit[i]->stage != s)
				continue;
			if (hit[i]->outcome == RAS_OUTCOME_ONWARD && first_onward == NULL)
				first_onward = hit[i];
			any_return = any_return || hit[i]->outcome == RAS_OUTCOME_RETURN;
		}
		if (first_onward == NULL && !any_return)
			continue;
		outcome = first_onward ? RAS_OUTCOME_ONWARD : RAS_OUTCOME_RETURN;
		target = first_onward ? first_onward->target : NULL;
		for (size_t i = 0; i < n_hit; i++)
			if ((int)hit[i]->stage == s && hit[i]->outcome == outcome &&
			    (outcome != RAS_OUTCOME_ONWARD || strcmp(hit[i]->target, target) == 0))
				chosen[n_chosen++] = hit[i];
	}
	/* 3. Nothing to return or send on: a person decides, or it is accepted. */
	if (n_chosen == 0)
		for (size_t i = 0; i < n_hit; i++)
			if (hit[i]->outcome == RAS_OUTCOME_REVIEW) {
				chosen[n_chosen++] = hit[i];
				outcome = RAS_OUTCOME_REVIEW;
			}
	if (n_chosen == 0)
		chosen[n_chosen++] = &rs->accept;

	/* 4. The safety net, which does not trust the facts above: danger it
	 * finds anywhere that did not take the safety path takes it now (the
	 * rule set's safety rules over the net's signals, else an urgent
	 * review); doubt it cannot settle is never returned or accepted. */
	t->net_applied = "none";
	{
		/* the net may share which answer is which item of the form (it
		 * takes nothing else from the facts above) */
		struct ras_safety_net_match m = { .form = t->qi >= 0 ? (size_t)t->qi : 0,
			.item_of = t->qi >= 0 ? t->item_of : NULL };

		if ((err = ras_safety_net_check(a, r, rs->net_items, &m, &t->net)) < 0)
			return err;
	}
	if (t->net.danger && chosen[0]->stage != STAGE_SAFETY) {
		const struct fval *ns[RAS_RULE_FACTS_MAX];
		struct fval own[3] = { 0 };

		if ((err = net_facts(a, rs, sv, &t->net, ns, own)) < 0)
			return err;
		n_chosen = 0;
		outcome = RAS_OUTCOME_ACCEPT;
		target = NULL;
		for (size_t i = 0; i < rs->n_rules; i++) {
			const struct rule *sr = &rs->rules[i];

			if (sr->stage != STAGE_SAFETY || !eval(&sr->when, ns))
				continue;
			chosen[n_chosen++] = sr;
			if (outcome != RAS_OUTCOME_ONWARD && sr->outcome == RAS_OUTCOME_ONWARD) {
				outcome = RAS_OUTCOME_ONWARD;
				target = sr->target;
			} else if (outcome == RAS_OUTCOME_ACCEPT) {
				outcome = RAS_OUTCOME_REVIEW;
			}
		}
		if (n_chosen == 0) {
			chosen[n_chosen++] = &net_danger_rule;
			outcome = RAS_OUTCOME_REVIEW;
		}
		t->net_applied = "danger";
	} else if (t->net.n_doubts > 0 &&
	    (outcome == RAS_OUTCOME_RETURN || outcome == RAS_OUTCOME_ACCEPT)) {
		n_chosen = 0;
		chosen[n_chosen++] = &net_doubt_rule;
		outcome = RAS_OUTCOME_REVIEW;
		target = NULL;
		t->net_applied = "doubt";
	}

	for (size_t i = 0; i < n_chosen; i++) {
		urgent = urgent || chosen[i]->urgent;
		mdt = mdt || chosen[i]->mdt;
		all_admin = all_admin && chosen[i]->kind == KIND_ADMINISTRATIVE;
	}
	out->service = rs->service;
	out->outcome = outcome;
	out->onward_target = target;
	if (outcome == RAS_OUTCOME_REVIEW || mdt || rs->automation == RAS_AUTOMATION_NONE)
		out->final = false;
	else if (rs->automation == RAS_AUTOMATION_ALL)
		out->final = true;
	else
		out->final = outcome == RAS_OUTCOME_RETURN && all_admin;

	out->reasons = ras_arena_calloc(a, n_chosen, sizeof(*out->reasons));
	if (out->reasons == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n_chosen; i++) {
		struct ras_reason *re = &out->reasons[i];

		re->rule = chosen[i]->id;
		re->clause = chosen[i]->clause;
		re->stage = stage_names[chosen[i]->stage];
		if ((err = render_advice(a, rs, chosen[i], sv, &re->advice)) < 0) {
			ras_error_context("rule \"%s\"", chosen[i]->id);
			return err;
		}
	}
	out->n_reasons = n_chosen;

	if ((err = deadlines_from(a, rs, outcome, target, urgent, out->final, received_at, &day0,
	    day0_n, cal, &out->deadlines, &out->n_deadlines, &covered)) < 0)
		return err;

	/* How the decision was reached, for its facts record. */
	t->hit = hit;
	t->n_hit = n_hit;
	t->automation = rs->automation;
	t->urgent = urgent;
	t->covered = covered;
	out->trace = t;
	out->ruleset_version = rs->version;
	out->received_at = received_at;
	out->decided_at = now;
	out->decided_by = "rules";
	return 0;
}

/* ---- the facts as stored ------------------------------------------------------ */

static json_t *
fval_json(const struct fval *v)
{
	json_t *arr;

	switch (v->t) {
	case VT_BOOL: return json_boolean(v->b);
	case VT_INT: return json_integer(v->i);
	case VT_REAL: return json_real(v->d);
	case VT_STR: return json_string(v->s);
	case VT_LIST:
		if ((arr = json_array()) == NULL)
			return NULL;
		for (size_t i = 0; i < v->n; i++)
			if (json_array_append_new(arr, json_string(v->list[i])) < 0) {
				json_decref(arr);
				return NULL;
			}
		return arr;
	case VT_NONE:
		break;
	}
	return NULL;
}

/* Keys are the engine's own names and "form.<linkId>" (a Questionnaire's,
 * read by jansson): valid UTF-8, not checked again. */
static bool
fset(json_t *o, const char *key, json_t *v)
{
	return v != NULL && json_object_set_new_nocheck(o, key, v) == 0;
}

static json_t *
finding_json(const struct rule *r)
{
	json_t *x = json_object();

	/* as json_pack("{s:s, s:s, s:s, s:s}") built it, without parsing a
	 * format; the rule set's strings were read by jansson, the others are
	 * the engine's own */
	if (x == NULL || !fset(x, "rule", json_string_nocheck(r->id)) ||
	    !fset(x, "clause", json_string_nocheck(r->clause)) ||
	    !fset(x, "stage", json_string_nocheck(stage_names[r->stage])) ||
	    !fset(x, "outcome", json_string_nocheck(ras_decision_outcome_name(r->outcome))) ||
	    (r->target && !fset(x, "target", json_string_nocheck(r->target)))) {
		json_decref(x);
		return NULL;
	}
	return x;
}

int
ras_rules_facts_json(struct ras_arena *a, struct ras_decision *d)
{
	/* The keys in the order the facts were always recorded in. */
	static const enum fid order[] = {
		F_SOURCE, F_FROM_ERS, F_PRIORITY, F_HAS_ATTACHMENTS, F_NHS_VALID, F_NHS_STATUS,
		F_BIRTH_KNOWN, F_AGE, F_PRACTICE_KNOWN, F_PRACTICE, F_PRACTICE_IN_AREA,
		F_PRACTICE_CLOSED, F_REFERRER_KIND, F_REFERRER_ORG, F_FORM_PRESENT, F_FORM_Q_KNOWN,
		F_FORM_VERSION_KNOWN, F_FORM_CURRENT, F_FORM_COMPLETED, F_FORM_STATUS, F_FORM_VERSION,
		F_FORM_MISSING, F_FORM_INVALID, F_FORM_UNKNOWN,
	};
	const struct ras_rules_trace *t = d->trace;
	json_t *j, *findings, *nj;
	bool ok = true;

	_Static_assert(sizeof(order) / sizeof(order[0]) == F_FORM, "every engine fact in order");
	if (d->facts != NULL || t == NULL)
		return 0;
	if ((j = json_object()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; ok && i < F_FORM; i++)
		if (t->v[order[i]].t != VT_NONE)
			ok = fset(j, known_facts[order[i]].name, fval_json(&t->v[order[i]]));
	for (size_t i = 0; ok && t->q && i < t->q->n_items; i++) {
		char key[RAS_ID_MAX + 8];
		size_t l;

		if (t->items[i].t == VT_NONE)
			continue;
		/* "form.<linkId>" (linkIds are at most RAS_ID_MAX bytes) */
		l = strnlen(t->q->items[i].link_id, sizeof(key) - 6);
		memcpy(key, "form.", 5);
		memcpy(key + 5, t->q->items[i].link_id, l);
		key[5 + l] = '\0';
		ok = fset(j, key, fval_json(&t->items[i]));
	}
	findings = ok ? json_array() : NULL;
	ok = ok && fset(j, "findings", findings);
	for (size_t i = 0; ok && i < t->n_hit; i++)
		ok = json_array_append_new(findings, finding_json(t->hit[i])) == 0;
	nj = ok ? ras_safety_net_to_json(&t->net) : NULL;
	ok = ok && fset(j, "safety_net", nj) && fset(nj, "applied", json_string_nocheck(t->net_applied)) &&
	    fset(j, "automation", json_string_nocheck(ras_rules_automation_name(t->automation))) &&
	    fset(j, "urgent", json_boolean(t->urgent)) &&
	    fset(j, "calendar_covers_deadlines", json_boolean(t->covered));
	if (!ok || ras_json_arena_own(a, j) < 0) {
		if (!ok)
			json_decref(j);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	d->facts = j;
	return 0;
}

/* ---- the facts as JSON text --------------------------------------------------- */

/*
 * The same bytes as ras_json_dump(RAS_JSON_COMPACT) of the object
 * ras_rules_facts_json() builds, written straight from the typed facts.
 * Strings of printable ASCII without '"' or '\' are copied; any other
 * string (escapes, non-ASCII, which jansson also checks is UTF-8) and any
 * real number is written by jansson itself, so its bytes are jansson's.
 */
struct text {
	struct ras_buf *b;
	char *p;                /* next byte of chunk */
	int err;
	char chunk[4096];       /* written to b when full and at the end */
};

static void
tflush(struct text *t)
{
	if (t->err == 0 && t->p > t->chunk && ras_buf_append(t->b, t->chunk, (size_t)(t->p - t->chunk)) < 0)
		t->err = -1;
	t->p = t->chunk;
}

static inline void
tput(struct text *t, const char *s, size_t n)
{
	if (n > (size_t)(t->chunk + sizeof(t->chunk) - t->p)) {
		tflush(t);
		if (n > sizeof(t->chunk)) {
			if (t->err == 0 && ras_buf_append(t->b, s, n) < 0)
				t->err = -1;
			return;
		}
	}
	memcpy(t->p, s, n);
	t->p += n;
}

/* text known to need no escape (the engine's own names and punctuation) */
static void
tlit(struct text *t, const char *s)
{
	tput(t, s, strlen(s));
}

/* a value jansson writes (a new reference, NULL: the facts object could
 * not have been built either) */
static void
tjson(struct text *t, json_t *j)
{
	if (j == NULL) {
		t->err = -1;
		return;
	}
	tflush(t);
	if (t->err == 0 && ras_json_dump(j, RAS_JSON_COMPACT, t->b) < 0)
		t->err = -1;
	json_decref(j);
}

/* A byte jansson writes as it is: printable ASCII but '"' and '\\'. */
static inline bool
plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Whether s[0..n) is all plain bytes: eight at a time (each test is
 * exact: no borrow crosses a byte unless some byte already fails). */
static bool
plain_text(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w, q = 0, b = 0, d = 0;

		memcpy(&w, s + i, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		d = w ^ (ones * 0x7f);
		if ((((w - ones * 0x20) & ~w) | w | ((q - ones) & ~q) | ((b - ones) & ~b) |
		    ((d - ones) & ~d)) & high)
			return false;
	}
	for (; i < n; i++)
		if (!plain_byte((unsigned char)s[i]))
			return false;
	return true;
}

static void
tstr(struct text *t, const char *s)
{
	size_t n;

	if (s == NULL) {
		t->err = -1;
		return;
	}
	n = strlen(s);
	if (!plain_text(s, n)) {
		tjson(t, json_string(s));
		return;
	}
	tput(t, "\"", 1);
	tput(t, s, n);
	tput(t, "\"", 1);
}

/* A string of the rule set or the engine: checked for escapes once, when
 * the rule set was parsed (plain), else as any other. */
static inline void
tstr_plain(struct text *t, const char *s, bool plain)
{
	if (!plain) {
		tstr(t, s);
		return;
	}
	tput(t, "\"", 1);
	tlit(t, s);
	tput(t, "\"", 1);
}

/* a key and its ':' (after a ',' unless it is the object's first);
 * `plain`: the engine's own name, nothing to escape */
static inline void
tkey(struct text *t, bool *first, const char *k, bool plain)
{
	if (!*first)
		tput(t, ",", 1);
	*first = false;
	tstr_plain(t, k, plain);
	tput(t, ":", 1);
}

static inline void
tbool(struct text *t, bool b)
{
	if (b)
		tput(t, "true", 4);
	else
		tput(t, "false", 5);
}

static inline void
tint(struct text *t, int64_t i)
{
	char d[INT_DIGITS];
	size_t k = int_digits(i, d);

	tput(t, d + k, sizeof(d) - k);
}

static inline void
tval(struct text *t, const struct fval *v)
{
	switch (v->t) {
	case VT_BOOL: tbool(t, v->b); break;
	case VT_INT: tint(t, v->i); break;
	case VT_REAL: tjson(t, json_real(v->d)); break;
	case VT_STR: tstr(t, v->s); break;
	case VT_LIST:
		tput(t, "[", 1);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				tput(t, ",", 1);
			tstr(t, v->list[i]);
		}
		tput(t, "]", 1);
		break;
	case VT_NONE:
		t->err = -1;
		break;
	}
}

static void
tnotes(struct text *t, const struct ras_safety_note *v, size_t n)
{
	char buf[RAS_SAFETY_NOTE_TEXT_MAX];

	tput(t, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			tput(t, ",", 1);
		tstr(t, ras_safety_net_note_text(&v[i], buf));
	}
	tput(t, "]", 1);
}

int
ras_rules_facts_text(const struct ras_decision *d, struct ras_buf *out)
{
	static const enum fid order[] = {
		F_SOURCE, F_FROM_ERS, F_PRIORITY, F_HAS_ATTACHMENTS, F_NHS_VALID, F_NHS_STATUS,
		F_BIRTH_KNOWN, F_AGE, F_PRACTICE_KNOWN, F_PRACTICE, F_PRACTICE_IN_AREA,
		F_PRACTICE_CLOSED, F_REFERRER_KIND, F_REFERRER_ORG, F_FORM_PRESENT, F_FORM_Q_KNOWN,
		F_FORM_VERSION_KNOWN, F_FORM_CURRENT, F_FORM_COMPLETED, F_FORM_STATUS, F_FORM_VERSION,
		F_FORM_MISSING, F_FORM_INVALID, F_FORM_UNKNOWN,
	};
	const struct ras_rules_trace *t = d->trace;
	const struct ras_safety_net *net;
	struct text x;
	bool first = true, nfirst = true;

	_Static_assert(sizeof(order) / sizeof(order[0]) == F_FORM, "every engine fact in order");
	if (t == NULL)
		return ras_error_code(RAS_EINVALID, "the decision is not the rules engine's");
	net = &t->net;
	x.b = out;
	x.p = x.chunk;
	x.err = 0;
	tput(&x, "{", 1);
	for (size_t i = 0; i < F_FORM; i++)
		if (t->v[order[i]].t != VT_NONE) {
			tkey(&x, &first, known_facts[order[i]].name, true);
			tval(&x, &t->v[order[i]]);
		}
	for (size_t i = 0; t->q && i < t->q->n_items; i++) {
		char key[RAS_ID_MAX + 8];
		size_t l;

		if (t->items[i].t == VT_NONE)
			continue;
		if (t->qi >= 0 && t->rs->item_keys[t->qi][i] != NULL) {
			/* its key written when the rule set was linked */
			const char *k = t->rs->item_keys[t->qi][i];

			if (!first)
				tput(&x, ",", 1);
			first = false;
			tlit(&x, k);
			tval(&x, &t->items[i]);
			continue;
		}
		l = strnlen(t->q->items[i].link_id, sizeof(key) - 6);
		memcpy(key, "form.", 5);
		memcpy(key + 5, t->q->items[i].link_id, l);
		key[5 + l] = '\0';
		tkey(&x, &first, key, false);
		tval(&x, &t->items[i]);
	}
	tkey(&x, &first, "findings", true);
	tput(&x, "[", 1);
	for (size_t i = 0; i < t->n_hit; i++) {
		const struct rule *r = t->hit[i];

		tlit(&x, i ? ",{\"rule\":" : "{\"rule\":");
		tstr_plain(&x, r->id, r->plain);
		tlit(&x, ",\"clause\":");
		tstr_plain(&x, r->clause, r->plain);
		tlit(&x, ",\"stage\":");
		tstr_plain(&x, stage_names[r->stage], true);
		tlit(&x, ",\"outcome\":");
		tstr_plain(&x, ras_decision_outcome_name(r->outcome), true);
		if (r->target) {
			tlit(&x, ",\"target\":");
			tstr_plain(&x, r->target, r->plain);
		}
		tput(&x, "}", 1);
	}
	tput(&x, "]", 1);
	tkey(&x, &first, "safety_net", true);
	tput(&x, "{", 1);
	tkey(&x, &nfirst, "danger", true), tbool(&x, net->danger);
	tkey(&x, &nfirst, "cauda_equina", true), tbool(&x, net->cauda_equina);
	tkey(&x, &nfirst, "suspected_cancer", true), tbool(&x, net->suspected_cancer);
	tkey(&x, &nfirst, "two_week_wait", true), tbool(&x, net->two_week_wait);
	tkey(&x, &nfirst, "urgent", true), tbool(&x, net->urgent);
	tkey(&x, &nfirst, "red_flag", true), tbool(&x, net->red_flag);
	tkey(&x, &nfirst, "signals", true), tnotes(&x, net->signals, net->n_signals);
	tkey(&x, &nfirst, "doubts", true), tnotes(&x, net->doubts, net->n_doubts);
	tkey(&x, &nfirst, "forms_seen", true), tint(&x, (int64_t)net->forms_seen);
	tkey(&x, &nfirst, "answers_seen", true), tint(&x, (int64_t)net->answers_seen);
	tkey(&x, &nfirst, "applied", true), tstr_plain(&x, t->net_applied, true);
	tput(&x, "}", 1);
	tkey(&x, &first, "automation", true);
	tstr_plain(&x, ras_rules_automation_name(t->automation), true);
	tkey(&x, &first, "urgent", true);
	tbool(&x, t->urgent);
	tkey(&x, &first, "calendar_covers_deadlines", true);
	tbool(&x, t->covered);
	tput(&x, "}", 1);
	tflush(&x);
	if (x.err)
		return ras_error_code(RAS_ETOOBIG, "could not write the decision's facts (output limit, "
		    "memory or text that is not UTF-8)");
	return 0;
}
