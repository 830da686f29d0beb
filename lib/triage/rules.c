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
};

struct cond {
	enum op op;
	const char *fact;
	json_t *value;          /* owned by the rule set's JSON (kept alive by the arena) */
	struct cond *kids;
	size_t n_kids;
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
	struct cond when;
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
	const char **required;
	const char *population_file;
	struct rule accept;
	size_t n_rules;
	struct rule *rules;
	size_t n_clocks;
	struct clock *clocks;
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

/* Facts a clock's condition may use. */
static const struct {
	const char *name;
	enum ftype type;
} clock_facts[] = {
	{ "outcome", FT_STR },
	{ "onward_target", FT_STR },
	{ "urgent", FT_BOOL },
	{ "final", FT_BOOL },
};

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

static int
parse_cond(struct ras_arena *a, json_t *j, struct cond *c, int depth, bool clock,
    const char *where)
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
			if ((err = parse_cond(a, x, &c->kids[i], depth + 1, clock, where)) < 0)
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
		return parse_cond(a, json_object_get(j, "not"), c->kids, depth + 1, clock, where);
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
value_equal(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return json_equal((json_t *)a, (json_t *)b);
}

static bool
eval(const struct cond *c, const json_t *facts)
{
	const json_t *f;
	size_t i;
	json_t *x;

	switch (c->op) {
	case OP_ALL:
		for (i = 0; i < c->n_kids; i++)
			if (!eval(&c->kids[i], facts))
				return false;
		return true;
	case OP_ANY:
		for (i = 0; i < c->n_kids; i++)
			if (eval(&c->kids[i], facts))
				return true;
		return false;
	case OP_NOT:
		return !eval(&c->kids[0], facts);
	default:
		break;
	}
	f = json_object_get(facts, c->fact);
	if (f != NULL && json_is_null(f))
		f = NULL;
	switch (c->op) {
	case OP_PRESENT:
		return (f != NULL) == json_is_true(c->value);
	case OP_EQ:
		return f != NULL && value_equal(f, c->value);
	case OP_NE:
		return f != NULL && !value_equal(f, c->value);
	case OP_LT:
		return json_is_number(f) && json_number_value(f) < json_number_value(c->value);
	case OP_LE:
		return json_is_number(f) && json_number_value(f) <= json_number_value(c->value);
	case OP_GT:
		return json_is_number(f) && json_number_value(f) > json_number_value(c->value);
	case OP_GE:
		return json_is_number(f) && json_number_value(f) >= json_number_value(c->value);
	case OP_IN:
		if (f == NULL)
			return false;
		json_array_foreach(c->value, i, x)
			if (value_equal(f, x))
				return true;
		return false;
	case OP_NONEMPTY:
		return json_is_array(f) && json_array_size(f) > 0;
	case OP_CONTAINS:
		if (!json_is_array(f))
			return false;
		for (i = 0; i < json_array_size(f); i++) {
			json_t *e = json_array_get(f, i), *y;
			size_t k;

			if (json_is_string(c->value) && value_equal(e, c->value))
				return true;
			if (json_is_array(c->value))
				json_array_foreach(c->value, k, y)
					if (value_equal(e, y))
						return true;
		}
		return false;
	default:
		return false;
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

static int
parse_rule(struct ras_arena *a, const struct ras_ruleset *rs, json_t *j, struct rule *r,
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
	return parse_cond(a, json_object_get(j, "when"), &r->when, 0, false, where);
}

static int
parse_clock(struct ras_arena *a, const struct ras_ruleset *rs, json_t *j, size_t idx,
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
		return parse_cond(a, json_object_get(j, "when"), &c->when, 0, true, where);
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
	for (size_t i = 0; i < rs->n_rules; i++) {
		snprintf(where, sizeof(where), "rule \"%.*s\"", RAS_ID_MAX, rs->rules[i].id);
		if ((err = link_cond(rs, &rs->rules[i].when, where)) < 0)
			return err;
	}
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

struct facts {
	json_t *j;
	bool oom;
};

static void
fset(struct facts *f, const char *key, json_t *v)
{
	if (v == NULL || json_object_set_new(f->j, key, v) < 0)
		f->oom = true;
}

static json_t *
str_array(const char *const *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

/* GP practice (a code on any loaded list, or shaped like an English GP
 * practice code: a letter and five digits, and not a known other
 * organisation), otherwise secondary care. */
static const char *
referrer_kind(const struct ras_ruleset *rs, const char *ods)
{
	size_t l;

	if (ods == NULL || *ods == '\0')
		return "unknown";
	for (size_t i = 0; i < rs->n_lists; i++) {
		const struct ras_practice_list *pl = rs->all_lists[i];

		if (ras_rules_code_listed(pl->practices, pl->n_practices, ods) ||
		    ras_rules_code_listed(pl->closed, pl->n_closed, ods))
			return "gp";
	}
	for (size_t i = 0; i < rs->n_lists; i++) {
		const struct ras_practice_list *pl = rs->all_lists[i];

		if (ras_rules_code_listed(pl->other, pl->n_other, ods))
			return "secondary-care";
	}
	l = strlen(ods);
	if (l == 6 && ods[0] >= 'A' && ods[0] <= 'Z' && strspn(ods + 1, "0123456789") == 5)
		return "gp";
	return "secondary-care";
}

static int
form_facts(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_form *form,
    struct facts *f)
{
	struct ras_form_check fc, interp;
	const struct ras_questionnaire *q;
	int err;

	if ((err = ras_form_check(a, rs->forms, rs->n_forms, form,
	    (const char *const *)rs->required, rs->n_required, &fc)) < 0)
		return err;
	fset(f, "form.present", json_boolean(fc.present));
	if (!fc.present)
		return 0;
	fset(f, "form.questionnaire_known", json_boolean(fc.questionnaire_known));
	fset(f, "form.version_known", json_boolean(fc.version_known));
	fset(f, "form.current", json_boolean(fc.current));
	fset(f, "form.completed", json_boolean(fc.completed));
	if (form->status)
		fset(f, "form.status", json_string(form->status));
	if (form->version)
		fset(f, "form.version", json_string(form->version));
	fset(f, "form.missing", str_array(fc.missing, fc.n_missing));
	/* Answers are read with the version the response names, or with the
	 * current form when that version is unknown: a safety rule must still
	 * see a red flag on an out-of-date or unrecognised form. */
	interp = fc;
	if (fc.q == NULL && (err = ras_form_check_as(a, rs->current, form, NULL, 0, &interp)) < 0)
		return err;
	q = interp.q;
	fset(f, "form.invalid", str_array(interp.invalid, interp.n_invalid));
	fset(f, "form.unknown_items", str_array(interp.unknown, interp.n_unknown));
	{
		json_t **vals = ras_arena_calloc(a, q->n_items + 1, sizeof(json_t *));
		bool *bad = ras_arena_calloc(a, q->n_items + 1, sizeof(bool));
		char key[RAS_ID_MAX + 8];

		if (vals == NULL || bad == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t k = 0; k < interp.n_invalid; k++) {
			const struct ras_qitem *it = ras_form_item(q, interp.invalid[k]);

			if (it)
				bad[it - q->items] = true;
		}
		for (size_t k = 0; k < form->n_answers; k++) {
			const struct ras_answer *ans = &form->answers[k];
			int idx = interp.item_of[k];
			const struct ras_qitem *it;
			json_t *v = NULL;

			if (idx < 0)
				continue;
			it = &q->items[idx];
			if (!ras_form_answer_ok(it, ans))
				continue;
			if (it->type == RAS_QITEM_CHOICE && it->repeats) {
				/* a repeating choice keeps the codes that were acceptable */
				if (vals[idx] == NULL && (vals[idx] = json_array()) == NULL)
					return ras_error_code(RAS_ENOMEM, "out of memory");
				if (json_array_append_new(vals[idx], json_string(ans->code)) < 0)
					return ras_error_code(RAS_ENOMEM, "out of memory");
				continue;
			}
			/* an item with an unacceptable answer (or two answers) is no fact */
			if (bad[idx] || vals[idx] != NULL)
				continue;
			switch (it->type) {
			case RAS_QITEM_BOOLEAN: v = json_boolean(ans->b); break;
			case RAS_QITEM_INTEGER: v = json_integer(ans->i); break;
			case RAS_QITEM_DECIMAL:
				v = ans->type == RAS_ANSWER_INTEGER ? json_integer(ans->i) : json_real(ans->d);
				break;
			case RAS_QITEM_CHOICE: v = json_string(ans->code); break;
			default: v = json_true(); break;   /* free text: answered, never copied */
			}
			if (v == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			vals[idx] = v;
		}
		for (size_t i = 0; i < q->n_items; i++) {
			if (vals[i] == NULL)
				continue;
			snprintf(key, sizeof(key), "form.%s", q->items[i].link_id);
			fset(f, key, vals[i]);
		}
		if (f->oom)
			return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	return 0;
}

static int
build_facts(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_referral *r,
    const struct ras_date *day0, struct facts *f)
{
	const struct ras_patient *p = &r->patient;
	const char *ods = p->practice_ods;

	f->j = json_object();
	if (f->j == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	fset(f, "referral.source", json_string(ras_referral_payload_kind_name(r->source)));
	fset(f, "referral.from_ers", json_boolean(r->source == RAS_PAYLOAD_ERS_REFERRAL ||
	    r->source == RAS_PAYLOAD_ERS_WORKLIST));
	fset(f, "referral.priority", json_string(ras_referral_priority_name(r->priority)));
	fset(f, "referral.has_attachments", json_boolean(r->n_attachments > 0));
	{
		/* Recheck rather than trust the stored status: the engine may be fed
		 * any referral (rasctl triage, fuzzing). */
		enum ras_nhsno_status st = ras_nhsno_check(p->nhs_number);

		fset(f, "nhs_number.valid", json_boolean(st == RAS_NHSNO_OK));
		fset(f, "nhs_number.status", json_string(st == RAS_NHSNO_OK ? "valid" :
		    st == RAS_NHSNO_MISSING ? "missing" : "invalid"));
	}
	{
		/* A birth date after the day of receipt is as good as none. */
		bool known = p->has_birth_date && ras_date_valid(&p->birth_date) &&
		    ras_date_cmp(&p->birth_date, day0) <= 0;

		fset(f, "patient.birth_date_known", json_boolean(known));
		if (known)
			fset(f, "patient.age", json_integer(ras_date_age_years(&p->birth_date, day0)));
	}
	fset(f, "patient.practice_known", json_boolean(ods && *ods));
	if (ods && *ods) {
		const struct ras_practice_list *pl = rs->population;
		bool listed = ras_rules_code_listed(pl->practices, pl->n_practices, ods);
		bool closed = ras_rules_code_listed(pl->closed, pl->n_closed, ods);

		fset(f, "patient.practice", json_string(ods));
		fset(f, "patient.practice_in_area", json_boolean(listed || closed));
		fset(f, "patient.practice_closed", json_boolean(closed));
	}
	fset(f, "referrer.kind", json_string(referrer_kind(rs, r->referrer.org_ods)));
	if (r->referrer.org_ods)
		fset(f, "referrer.org", json_string(r->referrer.org_ods));
	if (f->oom)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	return form_facts(a, rs, r->has_form ? &r->form : NULL, f);
}

/* ---- advice ---------------------------------------------------------------- */

static void
put_value(struct ras_buf *b, const struct ras_ruleset *rs, const char *name, const json_t *v)
{
	size_t i;
	json_t *x;

	if (v == NULL || json_is_null(v)) {
		(void)ras_buf_puts(b, "unknown");
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			const char *s = json_string_value(x);
			const struct ras_qitem *it = s && strncmp(name, "form.", 5) == 0 ?
			    ras_form_item(rs->current, s) : NULL;

			if (i)
				(void)ras_buf_puts(b, "; ");
			if (it && it->text)
				(void)ras_buf_printf(b, "\xe2\x80\x9c%s\xe2\x80\x9d", it->text);
			else
				(void)ras_buf_puts(b, s ? s : "?");
		}
		if (json_array_size(v) == 0)
			(void)ras_buf_puts(b, "none");
	} else if (json_is_string(v)) {
		(void)ras_buf_puts(b, json_string_value(v));
	} else if (json_is_integer(v)) {
		(void)ras_buf_printf(b, "%lld", (long long)json_integer_value(v));
	} else if (json_is_boolean(v)) {
		(void)ras_buf_puts(b, json_is_true(v) ? "yes" : "no");
	} else if (json_is_number(v)) {
		(void)ras_buf_printf(b, "%g", json_number_value(v));
	}
}

static int
render_advice(struct ras_arena *a, const struct ras_ruleset *rs, const char *t, const json_t *facts,
    const char **out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_ADVICE_MAX + 1);
	int err = 0;

	*out = NULL;
	if (t == NULL)
		return 0;
	if (strchr(t, '{') == NULL) {
		*out = t;
		return 0;
	}
	for (const char *p = t; *p;) {
		const char *open = strchr(p, '{'), *end;
		char name[RAS_ID_MAX + 8];

		if (open == NULL) {
			err = ras_buf_puts(&b, p);
			break;
		}
		if ((err = ras_buf_append(&b, p, (size_t)(open - p))) < 0)
			break;
		end = strchr(open, '}');
		snprintf(name, sizeof(name), "%.*s", (int)(end - open - 1), open + 1);
		put_value(&b, rs, name, json_object_get(facts, name));
		p = end + 1;
	}
	if (err == 0 && b.len > RAS_ADVICE_MAX)
		err = ras_error_code(RAS_ETOOBIG, "advice is longer than %d characters", RAS_ADVICE_MAX);
	if (err == 0 && (*out = ras_arena_strndup(a, b.data ? b.data : "", b.len)) == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
	if (err == RAS_ETOOBIG)
		err = ras_error_code(RAS_ETOOBIG, "advice is longer than %d characters", RAS_ADVICE_MAX);
	ras_buf_free(&b);
	return err;
}

/* ---- deadlines ------------------------------------------------------------- */

static int64_t
end_of_day(const struct ras_date *d)
{
	struct ras_date next;

	ras_date_add_days(d, 1, &next);
	return ras_time_uk_midnight(&next) - 1;
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

int
ras_rules_deadlines(struct ras_arena *a, const struct ras_ruleset *rs, enum ras_outcome outcome,
    const char *onward_target, bool urgent, bool final, int64_t received_at,
    const struct ras_calendar *cal, struct ras_deadline **out, size_t *n_out, bool *covered)
{
	struct ras_deadline *dl;
	struct ras_date day0;
	json_t *cf = json_object();
	bool cov = true;
	size_t n = 0;
	int err = 0;

	*out = NULL;
	*n_out = 0;
	if (cf == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (json_object_set_new(cf, "outcome", json_string(ras_decision_outcome_name(outcome))) < 0 ||
	    (onward_target && json_object_set_new(cf, "onward_target", json_string(onward_target)) < 0) ||
	    json_object_set_new(cf, "urgent", json_boolean(urgent)) < 0 ||
	    json_object_set_new(cf, "final", json_boolean(final)) < 0) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	dl = ras_arena_calloc(a, rs->n_clocks + 1, sizeof(*dl));
	if (dl == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	ras_time_uk_date(received_at, &day0, NULL);
	for (size_t i = 0; i < rs->n_clocks; i++) {
		const struct clock *c = &rs->clocks[i];
		struct ras_deadline *d = &dl[n];
		bool c_cov = true;

		if (c->has_when && !eval(&c->when, cf))
			continue;
		d->kind = c->kind;
		d->clause = c->clause;
		switch (c->unit) {
		case U_WORKING_DAYS:
			if ((err = ras_calendar_add_working_days(cal, &day0, c->amount, &d->due_date, &c_cov)) < 0)
				goto done;
			d->due_at = end_of_day(&d->due_date);
			break;
		case U_HOURS:
			d->hours = true;
			d->due_at = received_at + (int64_t)c->amount * 3600;
			ras_time_uk_date(d->due_at, &d->due_date, NULL);
			break;
		case U_WEEKS:
			ras_date_add_days(&day0, (int64_t)c->amount * 7, &d->due_date);
			d->due_at = end_of_day(&d->due_date);
			break;
		case U_MONTHS:
			ras_date_add_months(&day0, c->amount, &d->due_date);
			d->due_at = end_of_day(&d->due_date);
			break;
		}
		cov = cov && c_cov;
		n++;
	}
	*out = dl;
	*n_out = n;
	if (covered)
		*covered = cov;
done:
	json_decref(cf);
	return err;
}

/* ---- decide ------------------------------------------------------------------ */

static int
add_finding(json_t *findings, const struct rule *r)
{
	json_t *x = json_pack("{s:s, s:s, s:s, s:s}", "rule", r->id, "clause", r->clause,
	    "stage", stage_names[r->stage], "outcome", ras_decision_outcome_name(r->outcome));

	if (x == NULL || json_array_append_new(findings, x) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (r->target && json_object_set_new(x, "target", json_string(r->target)) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	return 0;
}

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
 * rule set's own safety rules decide which urgent path applies. */
static json_t *
net_facts(const json_t *facts, const struct ras_safety_net *net)
{
	json_t *nf = json_deep_copy(facts), *flags;

	if (nf == NULL)
		return NULL;
	flags = json_object_get(nf, "form.red-flags");
	if (!json_is_array(flags)) {
		flags = json_array();
		if (flags == NULL || json_object_set_new(nf, "form.red-flags", flags) < 0)
			goto oom;
	}
	if ((net->cauda_equina && json_array_append_new(flags, json_string("cauda-equina")) < 0) ||
	    (net->suspected_cancer && json_array_append_new(flags, json_string("suspected-cancer")) < 0) ||
	    (net->red_flag && json_array_append_new(flags, json_string("other")) < 0))
		goto oom;
	if (net->suspected_cancer && json_object_set_new(nf, "form.suspected-cancer", json_true()) < 0)
		goto oom;
	if (net->two_week_wait &&
	    json_object_set_new(nf, "referral.priority", json_string("two-week-wait")) < 0)
		goto oom;
	else if (!net->two_week_wait && net->urgent &&
	    json_object_set_new(nf, "referral.priority", json_string("urgent")) < 0)
		goto oom;
	return nf;
oom:
	json_decref(nf);
	return NULL;
}

int
ras_rules_decide(struct ras_arena *a, const struct ras_ruleset *rs, const struct ras_referral *r,
    int64_t received_at, const struct ras_calendar *cal, int64_t now, struct ras_decision *out)
{
	const struct rule **hit = NULL, **chosen = NULL;
	struct facts f = { 0 };
	struct ras_date day0;
	json_t *findings = NULL;
	size_t n_hit = 0, n_chosen = 0;
	enum ras_outcome outcome = RAS_OUTCOME_ACCEPT;
	const char *target = NULL;
	bool urgent = false, mdt = false, all_admin = true, covered = true;
	struct ras_safety_net net;
	const char *net_applied = "none";
	int err;

	memset(out, 0, sizeof(*out));
	if (!rs->linked)
		return ras_error_code(RAS_EINVALID, "rule set %s is not linked to its form and practice list",
		    rs->service);
	ras_time_uk_date(received_at, &day0, NULL);
	hit = ras_arena_calloc(a, rs->n_rules + 1, sizeof(*hit));
	chosen = ras_arena_calloc(a, rs->n_rules + 1, sizeof(*chosen));
	if (hit == NULL || chosen == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	err = build_facts(a, rs, r, &day0, &f);
	if (f.j && ras_json_arena_own(a, f.j) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (err < 0)
		return err;

	for (size_t i = 0; i < rs->n_rules; i++)
		if (eval(&rs->rules[i].when, f.j))
			hit[n_hit++] = &rs->rules[i];

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
	if ((err = ras_safety_net_check(a, r, rs->forms, rs->n_forms, &net)) < 0)
		return err;
	if (net.danger && chosen[0]->stage != STAGE_SAFETY) {
		json_t *nf = net_facts(f.j, &net);

		if (nf == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		n_chosen = 0;
		outcome = RAS_OUTCOME_ACCEPT;
		target = NULL;
		for (size_t i = 0; i < rs->n_rules; i++) {
			const struct rule *sr = &rs->rules[i];

			if (sr->stage != STAGE_SAFETY || !eval(&sr->when, nf))
				continue;
			chosen[n_chosen++] = sr;
			if (outcome != RAS_OUTCOME_ONWARD && sr->outcome == RAS_OUTCOME_ONWARD) {
				outcome = RAS_OUTCOME_ONWARD;
				target = sr->target;
			} else if (outcome == RAS_OUTCOME_ACCEPT) {
				outcome = RAS_OUTCOME_REVIEW;
			}
		}
		json_decref(nf);
		if (n_chosen == 0) {
			chosen[n_chosen++] = &net_danger_rule;
			outcome = RAS_OUTCOME_REVIEW;
		}
		net_applied = "danger";
	} else if (net.n_doubts > 0 &&
	    (outcome == RAS_OUTCOME_RETURN || outcome == RAS_OUTCOME_ACCEPT)) {
		n_chosen = 0;
		chosen[n_chosen++] = &net_doubt_rule;
		outcome = RAS_OUTCOME_REVIEW;
		target = NULL;
		net_applied = "doubt";
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
		if ((err = render_advice(a, rs, chosen[i]->advice, f.j, &re->advice)) < 0) {
			ras_error_context("rule \"%s\"", chosen[i]->id);
			return err;
		}
	}
	out->n_reasons = n_chosen;

	if ((err = ras_rules_deadlines(a, rs, outcome, target, urgent, out->final, received_at, cal,
	    &out->deadlines, &out->n_deadlines, &covered)) < 0)
		return err;

	/* The facts record: everything computed, every rule that matched, and
	 * how the decision was reached. */
	findings = json_array();
	if (findings == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n_hit && err == 0; i++)
		err = add_finding(findings, hit[i]);
	if (err < 0) {
		json_decref(findings);
		return err;
	}
	fset(&f, "findings", findings);
	{
		json_t *nj = ras_safety_net_to_json(&net);

		if (nj && json_object_set_new(nj, "applied", json_string(net_applied)) < 0) {
			json_decref(nj);
			nj = NULL;
		}
		fset(&f, "safety_net", nj);
	}
	fset(&f, "automation", json_string(ras_rules_automation_name(rs->automation)));
	fset(&f, "urgent", json_boolean(urgent));
	fset(&f, "calendar_covers_deadlines", json_boolean(covered));
	if (f.oom)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	out->facts = f.j;
	out->ruleset_version = rs->version;
	out->received_at = received_at;
	out->decided_at = now;
	out->decided_by = "rules";
	return 0;
}
