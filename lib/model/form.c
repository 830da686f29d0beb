/* form: Questionnaires and the check of a response against one (see include/ras/form.h). */
#include <stdint.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/form.h"
#include "ras/limits.h"

#define EXT_MIN "http://hl7.org/fhir/StructureDefinition/minValue"
#define EXT_MAX "http://hl7.org/fhir/StructureDefinition/maxValue"

static int
item_type(const char *t, enum ras_qitem_type *out)
{
	static const struct { const char *name; enum ras_qitem_type type; } map[] = {
		{ "boolean", RAS_QITEM_BOOLEAN }, { "integer", RAS_QITEM_INTEGER },
		{ "decimal", RAS_QITEM_DECIMAL }, { "string", RAS_QITEM_STRING },
		{ "text", RAS_QITEM_STRING }, { "date", RAS_QITEM_DATE },
		{ "dateTime", RAS_QITEM_DATE }, { "choice", RAS_QITEM_CHOICE },
	};

	for (size_t i = 0; t && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, t) == 0) {
			*out = map[i].type;
			return 0;
		}
	return -1;
}

static int
int_extension(const json_t *item, const char *url, bool *has, int64_t *v)
{
	json_t *ext = ras_fhir_extension(item, url), *x;

	*has = false;
	if (ext == NULL)
		return 0;
	x = json_object_get(ext, "valueInteger");
	if (!json_is_integer(x))
		return ras_error_code(RAS_EINVALID, "extension %s needs a valueInteger", url);
	*has = true;
	*v = (int64_t)json_integer_value(x);
	return 0;
}

static int
parse_item(struct ras_arena *a, const json_t *it, struct ras_qitem *q)
{
	const char *type = ras_json_str(it, "type");
	json_t *opts, *o;
	size_t i;
	int err;

	q->link_id = ras_json_str(it, "linkId");
	q->text = ras_json_str(it, "text");
	if (q->link_id == NULL || *q->link_id == '\0' || strlen(q->link_id) > RAS_ID_MAX)
		return ras_error_code(RAS_EINVALID, "an item has no usable linkId");
	q->link_len = strlen(q->link_id);
	if (item_type(type, &q->type) < 0)
		return ras_error_code(RAS_EINVALID, "item \"%s\" has type \"%s\", which rasd cannot check",
		    q->link_id, type ? type : "(none)");
	(void)ras_json_bool(it, "required", &q->required);
	(void)ras_json_bool(it, "repeats", &q->repeats);
	if ((err = int_extension(it, EXT_MIN, &q->has_min, &q->min)) < 0 ||
	    (err = int_extension(it, EXT_MAX, &q->has_max, &q->max)) < 0) {
		ras_error_context("item \"%s\"", q->link_id);
		return err;
	}
	if (ras_json_arr(it, "item"))
		return ras_error_code(RAS_EINVALID, "item \"%s\" has nested items but is not a group",
		    q->link_id);
	opts = ras_json_arr(it, "answerOption");
	if (q->type != RAS_QITEM_CHOICE) {
		if (opts)
			return ras_error_code(RAS_EINVALID, "item \"%s\" has answer options but is not a choice",
			    q->link_id);
		return 0;
	}
	if (json_array_size(opts) == 0)
		return ras_error_code(RAS_EINVALID, "choice item \"%s\" has no answerOption", q->link_id);
	q->options = ras_arena_calloc(a, json_array_size(opts), sizeof(char *));
	if (q->options == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(opts, i, o) {
		json_t *c = ras_json_obj(o, "valueCoding");
		const char *sys = ras_json_str(c, "system"), *code = ras_json_str(c, "code");

		if (sys == NULL || code == NULL)
			return ras_error_code(RAS_EINVALID,
			    "item \"%s\": answerOption %zu needs a valueCoding with system and code",
			    q->link_id, i + 1);
		if (q->option_system == NULL)
			q->option_system = sys;
		else if (strcmp(q->option_system, sys) != 0)
			return ras_error_code(RAS_EINVALID, "item \"%s\": answer options use two code systems",
			    q->link_id);
		q->options[q->n_options++] = code;
	}
	return 0;
}

/* Items in a tree of items, groups included (bounded depth). */
static size_t
count_items(const json_t *items, int depth)
{
	const json_t *it;
	size_t i, n = 0;

	if (depth > 8)
		return RAS_QUESTIONNAIRE_ITEMS_MAX + 1;
	json_array_foreach(items, i, it) {
		n++;
		if (ras_json_arr(it, "item"))
			n += count_items(ras_json_arr(it, "item"), depth + 1);
	}
	return n;
}

/* Parse items into out->items, flattening groups (see form.h). */
static int
parse_items(struct ras_arena *a, const json_t *items, const char *group, bool group_repeats,
    struct ras_questionnaire *out, size_t *n, int depth)
{
	const json_t *it;
	size_t i;
	int err;

	if (depth > 8)
		return ras_error_code(RAS_EINVALID, "groups nested too deeply");
	json_array_foreach(items, i, it) {
		const char *type = ras_json_str(it, "type");

		if (type && strcmp(type, "display") == 0)
			continue;
		if (type && strcmp(type, "group") == 0) {
			const char *lid = ras_json_str(it, "linkId");
			bool rep = false;

			if (lid == NULL || *lid == '\0' || strlen(lid) > RAS_ID_MAX)
				return ras_error_code(RAS_EINVALID, "a group has no usable linkId");
			(void)ras_json_bool(it, "repeats", &rep);
			if (ras_json_arr(it, "item") == NULL)
				return ras_error_code(RAS_EINVALID, "group \"%s\" has no items", lid);
			if ((err = parse_items(a, ras_json_arr(it, "item"), lid, rep || group_repeats, out, n,
			    depth + 1)) < 0)
				return err;
			continue;
		}
		if ((err = parse_item(a, it, &out->items[*n])) < 0)
			return err;
		out->items[*n].group = group;
		if (group_repeats)
			out->items[*n].repeats = true;
		for (size_t k = 0; k < *n; k++)
			if (strcmp(out->items[k].link_id, out->items[*n].link_id) == 0)
				return ras_error_code(RAS_EINVALID, "linkId \"%s\" appears twice",
				    out->items[*n].link_id);
		(*n)++;
	}
	return 0;
}

int
ras_form_questionnaire_parse(struct ras_arena *a, const json_t *qj, struct ras_questionnaire *out)
{
	json_t *items, *it;
	size_t i, n = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (ras_json_str(qj, "resourceType") == NULL ||
	    strcmp(ras_json_str(qj, "resourceType"), "Questionnaire") != 0)
		return ras_error_code(RAS_EINVALID, "not a Questionnaire resource");
	out->url = ras_json_str(qj, "url");
	out->version = ras_json_str(qj, "version");
	out->status = ras_json_str(qj, "status");
	out->title = ras_json_str(qj, "title");
	if (out->url == NULL || out->version == NULL || out->status == NULL)
		return ras_error_code(RAS_EINVALID, "Questionnaire needs url, version and status");
	out->active = strcmp(out->status, "active") == 0;
	if (strchr(out->url, '|') || strchr(out->version, '|'))
		return ras_error_code(RAS_EINVALID, "Questionnaire url and version must not contain '|'");
	items = ras_json_arr(qj, "item");
	if (json_array_size(items) == 0)
		return ras_error_code(RAS_EINVALID, "Questionnaire has no items");
	n = count_items(items, 0);
	if (n > RAS_QUESTIONNAIRE_ITEMS_MAX)
		return ras_error_code(RAS_ETOOBIG, "Questionnaire has more than %d items",
		    RAS_QUESTIONNAIRE_ITEMS_MAX);
	out->items = ras_arena_calloc(a, n + 1, sizeof(*out->items));
	if (out->items == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	n = 0;
	if ((err = parse_items(a, items, NULL, false, out, &n, 0)) < 0) {
		ras_error_context("Questionnaire %s|%s", out->url, out->version);
		return err;
	}
	(void)i;
	(void)it;
	out->n_items = n;
	{
		size_t *req = ras_arena_calloc(a, n + 1, sizeof(*req)), k = 0;

		if (req == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t x = 0; x < n; x++)
			if (out->items[x].required && out->items[x].group == NULL)
				req[k++] = x;
		out->required_top = req;
		out->n_required_top = k;
	}
	return 0;
}

const struct ras_qitem *
ras_form_item(const struct ras_questionnaire *q, const char *link_id)
{
	for (size_t i = 0; q && i < q->n_items; i++)
		if (q->items[i].link_id[0] == link_id[0] && strcmp(q->items[i].link_id, link_id) == 0)
			return &q->items[i];
	return NULL;
}

/* (inlined into the check, which calls it for every answer) */
static inline __attribute__((always_inline)) bool
answer_ok(const struct ras_qitem *item, const struct ras_answer *ans)
{
	switch (item->type) {
	case RAS_QITEM_BOOLEAN:
		return ans->type == RAS_ANSWER_BOOLEAN;
	case RAS_QITEM_INTEGER:
		if (ans->type != RAS_ANSWER_INTEGER)
			return false;
		if (item->has_min && ans->i < item->min)
			return false;
		if (item->has_max && ans->i > item->max)
			return false;
		return true;
	case RAS_QITEM_DECIMAL:
		return ans->type == RAS_ANSWER_DECIMAL || ans->type == RAS_ANSWER_INTEGER;
	case RAS_QITEM_STRING:
		return ans->type == RAS_ANSWER_STRING && ans->s != NULL && ans->s[0] != '\0';
	case RAS_QITEM_DATE:
		return ans->type == RAS_ANSWER_DATE;
	case RAS_QITEM_CHOICE:
		if (ans->type != RAS_ANSWER_CODING || ans->system == NULL || ans->code == NULL)
			return false;
		if (strcmp(ans->system, item->option_system) != 0)
			return false;
		for (size_t i = 0; i < item->n_options; i++)
			if (strcmp(item->options[i], ans->code) == 0)
				return true;
		return false;
	}
	return false;
}

bool
ras_form_answer_ok(const struct ras_qitem *item, const struct ras_answer *ans)
{
	return answer_ok(item, ans);
}

static bool
listed(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Eight bytes of a string, as one word (any alignment). */
static inline uint64_t
word_at(const char *s)
{
	uint64_t w;

	memcpy(&w, s, sizeof(w));
	return w;
}

/* An answer's linkId `id` (its length `len`) is the item's: the lengths
 * first (they rule most items out), then the bytes a word at a time, the
 * last word overlapping the one before it (never a byte past either
 * string's end).  No call, as strcmp would be. */
static inline bool
same_id(const struct ras_qitem *it, const char *id, size_t len)
{
	const char *s = it->link_id;
	size_t o = 0;

	if (it->link_len != len)
		return false;
	if (len < sizeof(uint64_t)) {
		for (; o < len; o++)
			if (s[o] != id[o])
				return false;
		return true;
	}
	for (; o + sizeof(uint64_t) < len; o += sizeof(uint64_t))
		if (word_at(s + o) != word_at(id + o))
			return false;
	return word_at(s + len - sizeof(uint64_t)) == word_at(id + len - sizeof(uint64_t));
}

/* An answer's linkId's length: the reader's, when it is right (a wrong
 * one that is too short shows as a byte that is not the end; one too long
 * cannot match an item, whose linkId has no NUL inside). */
static inline size_t
id_len(const struct ras_answer *ans)
{
	size_t l = ans->link_id_len;

	return l && ans->link_id[l] == '\0' ? l : strlen(ans->link_id);
}

static int
check_against(struct ras_arena *a, const struct ras_questionnaire *q, const struct ras_form *f,
    const char *const *extra_required, size_t n_extra, const int *extra_at,
    struct ras_form_check *out)
{
	size_t na = f->n_answers, ni = q->n_items;
	/* each list as long as it can get: missing, an item or an extra one;
	 * invalid, an item; unknown, an answer */
	size_t n_miss = ni + n_extra + 1, n_inv = ni + 1, n_unk = na + 1;
	size_t cap = n_miss + n_inv + n_unk;
	const char **lists;
	int *item_of, *count, *ok_count, *first;
	bool *ok, any_invalid = false;

	/* Everything the check returns in one allocation, not zeroed: the
	 * three lists of names (each written before it is read, up to its
	 * count), then per answer its item and its acceptability (both
	 * written for every answer), per item its answers and its acceptable
	 * answers (counted up from zero: those two are zeroed here) and its
	 * first answer (-1 until its count becomes one). */
	if (na > SIZE_MAX / 64 || ni > SIZE_MAX / 64 || n_extra > SIZE_MAX / 64)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	lists = ras_arena_array(a, 1, cap * sizeof(char *) + (na + 1 + 3 * (ni + 1)) * sizeof(int) +
	    (na + 1) * sizeof(bool));
	if (lists == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	out->q = q;
	out->missing = lists;
	out->invalid = lists + n_miss;
	out->unknown = lists + n_miss + n_inv;
	item_of = (int *)(lists + cap);
	count = item_of + na + 1;
	ok_count = count + ni + 1;
	first = ok_count + ni + 1;
	ok = (bool *)(first + ni + 1);
	memset(count, 0, 2 * (ni + 1) * sizeof(int));
	memset(first, 0xff, (ni + 1) * sizeof(int));   /* -1 each */
	item_of[na] = -1;
	ok[na] = false;

	/* One pass: which item each answer belongs to, and how many there are.
	 * Answers mostly come in form order, so each search starts at the item
	 * after the previous answer's (linkIds are unique: the same item is
	 * found). */
	for (size_t i = 0, from = 0; i < na; i++) {
		const struct ras_answer *ans = &f->answers[i];
		const char *lid = ans->link_id;
		const struct ras_qitem *it;
		size_t k = from, len = id_len(ans);
		bool good;

		/* (mostly the item expected next; else once round the others) */
		if (ni > 0 && same_id(&q->items[k], lid, len))
			goto found;
		for (size_t n = 1; n < ni; n++) {
			k = k + 1 < ni ? k + 1 : 0;
			if (same_id(&q->items[k], lid, len))
				goto found;
		}
		item_of[i] = -1;
		ok[i] = false;
		if (!listed(out->unknown, out->n_unknown, lid))
			out->unknown[out->n_unknown++] = lid;
		continue;
found:
		it = &q->items[k];
		item_of[i] = (int)k;
		from = k + 1 < ni ? k + 1 : 0;
		if (++count[k] == 1)
			first[k] = (int)i;
		else if (!it->repeats)
			any_invalid = true;
		good = answer_ok(it, ans);
		ok[i] = good;
		ok_count[k] += good;
		any_invalid |= !good;
	}
	out->item_of = item_of;
	out->answer_ok = ok;
	out->n_answers_of = count;
	out->n_ok_of = ok_count;
	out->first_of = first;
	/* In form order: invalid, for any unacceptable answer or several
	 * answers to an item that does not repeat; missing, for a required
	 * item without any answer (one answered only unacceptably is invalid,
	 * not missing).  With nothing invalid (most responses) only the
	 * required items need looking at. */
	for (size_t k = 0; any_invalid && k < ni; k++) {
		const struct ras_qitem *it = &q->items[k];

		if (count[k] > ok_count[k] || (!it->repeats && count[k] > 1))
			out->invalid[out->n_invalid++] = it->link_id;
		else if (count[k] == 0 && it->required && it->group == NULL)
			out->missing[out->n_missing++] = it->link_id;
	}
	for (size_t r = 0; !any_invalid && r < q->n_required_top; r++) {
		size_t k = q->required_top[r];

		if (k < ni && count[k] == 0)
			out->missing[out->n_missing++] = q->items[k].link_id;
	}
	/* Then the service's extra ones: each at its place when the caller
	 * knows it, else searched for by name (listed mostly in form order:
	 * each search starts after the previous one's item). */
	for (size_t e = 0, from = 0; e < n_extra; e++) {
		const char *x = extra_required[e];
		size_t k = from, n = 0;
		bool found = false;

		if (extra_at) {
			if (extra_at[e] >= 0 && (size_t)extra_at[e] < ni && count[extra_at[e]] > 0)
				continue;
			if (!listed(out->missing, out->n_missing, x))
				out->missing[out->n_missing++] = x;
			continue;
		}
		for (; n < ni; n++) {
			if (q->items[k].link_id[0] == x[0] && strcmp(q->items[k].link_id, x) == 0) {
				found = true;
				break;
			}
			k = k + 1 < ni ? k + 1 : 0;
		}
		if (found) {
			from = k + 1 < ni ? k + 1 : 0;
			if (count[k] > 0)
				continue;
		}
		if (!listed(out->missing, out->n_missing, x))
			out->missing[out->n_missing++] = x;
	}
	return 0;
}

int
ras_form_check(struct ras_arena *a, const struct ras_questionnaire *const *qs, size_t nq,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    struct ras_form_check *out)
{
	return ras_form_check_indexed(a, qs, nq, f, extra_required, n_extra, NULL, out);
}

int
ras_form_check_indexed(struct ras_arena *a, const struct ras_questionnaire *const *qs, size_t nq,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    const int *extra_at, struct ras_form_check *out)
{
	const struct ras_questionnaire *q = NULL;
	size_t qi = 0;

	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return 0;
	out->present = true;
	out->completed = f->status && (strcmp(f->status, "completed") == 0 ||
	    strcmp(f->status, "amended") == 0);
	/* The version it names (the last of that URL and version, were there
	 * two), its version compared first: short, and mostly told apart by
	 * its first byte, so the long URL is compared once. */
	for (size_t i = 0; f->questionnaire && f->version && i < nq; i++) {
		const char *v = qs[i]->version;

		if (v[0] != f->version[0] || strcmp(v, f->version) != 0 ||
		    strcmp(qs[i]->url, f->questionnaire) != 0)
			continue;
		q = qs[i];
		qi = i;
	}
	/* Known, any version of that URL (the one above is) */
	out->questionnaire_known = q != NULL;
	for (size_t i = 0; q == NULL && f->questionnaire && i < nq; i++)
		if (strcmp(qs[i]->url, f->questionnaire) == 0) {
			out->questionnaire_known = true;
			break;
		}
	if (q == NULL)
		return 0;
	out->version_known = true;
	out->current = q->active;
	return check_against(a, q, f, extra_required, n_extra, extra_at ? extra_at + qi * n_extra : NULL,
	    out);
}

int
ras_form_check_as(struct ras_arena *a, const struct ras_questionnaire *q,
    const struct ras_form *f, const char *const *extra_required, size_t n_extra,
    struct ras_form_check *out)
{
	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return 0;
	out->present = true;
	out->completed = f->status && (strcmp(f->status, "completed") == 0 ||
	    strcmp(f->status, "amended") == 0);
	return check_against(a, q, f, extra_required, n_extra, NULL, out);
}

/* --- answers of a response ------------------------------------------------ */

const struct ras_answer *
ras_form_answer(const struct ras_form *f, const char *link_id)
{
	for (size_t i = 0; i < f->n_answers; i++)
		if (strcmp(f->answers[i].link_id, link_id) == 0)
			return &f->answers[i];
	return NULL;
}

size_t
ras_form_count(const struct ras_form *f, const char *link_id)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n_answers; i++)
		if (strcmp(f->answers[i].link_id, link_id) == 0)
			n++;
	return n;
}

int
ras_form_bool(const struct ras_form *f, const char *link_id)
{
	const struct ras_answer *a = ras_form_answer(f, link_id);

	if (a == NULL || a->type != RAS_ANSWER_BOOLEAN)
		return -1;
	return a->b ? 1 : 0;
}

bool
ras_form_has_code(const struct ras_form *f, const char *link_id, const char *code)
{
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *a = &f->answers[i];

		if (a->type == RAS_ANSWER_CODING && a->code && strcmp(a->link_id, link_id) == 0 &&
		    strcmp(a->code, code) == 0)
			return true;
	}
	return false;
}

/* --- the stored form (referrals.doc) ------------------------------------- */

int
ras_form_to_json(const struct ras_form *f, json_t **out)
{
	json_t *o = json_object(), *answers = json_array();
	int err = 0;

	if (o == NULL || answers == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	if ((err = ras_json_set_str(o, "questionnaire", f->questionnaire)) < 0 ||
	    (err = ras_json_set_str(o, "version", f->version)) < 0 ||
	    (err = ras_json_set_str(o, "status", f->status)) < 0 ||
	    (err = ras_json_set_str(o, "authored", f->authored)) < 0)
		goto done;
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *a = &f->answers[i];
		json_t *x = json_object();

		if ((err = ras_json_append_new(answers, x)) < 0 ||
		    (err = ras_json_set_str(x, "link_id", a->link_id)) < 0 ||
		    (err = ras_json_set_str(x, "group", a->group)) < 0 ||
		    (a->group && (err = ras_json_set_new(x, "group_index",
		    json_integer(a->group_index))) < 0) ||
		    (err = ras_json_set_str(x, "type", ras_referral_answer_type_name(a->type))) < 0)
			goto done;
		switch (a->type) {
		case RAS_ANSWER_BOOLEAN:
			err = ras_json_set_new(x, "value", json_boolean(a->b));
			break;
		case RAS_ANSWER_INTEGER:
			err = ras_json_set_new(x, "value", json_integer(a->i));
			break;
		case RAS_ANSWER_DECIMAL:
			err = ras_json_set_new(x, "value", json_real(a->d));
			break;
		case RAS_ANSWER_CODING:
			if ((err = ras_json_set_str(x, "system", a->system)) < 0 || (err = ras_json_set_str(x, "code", a->code)) < 0)
				break;
			err = ras_json_set_str(x, "display", a->s);
			break;
		default:
			err = ras_json_set_str(x, "value", a->s);
			break;
		}
		if (err < 0)
			goto done;
	}
	err = ras_json_set_new(o, "answers", answers);
	answers = NULL;
	if (err == 0 && f->n_unmapped) {
		json_t *um = json_array();

		for (size_t i = 0; um && i < f->n_unmapped && err == 0; i++)
			err = ras_json_append_new(um, json_string(f->unmapped[i]));
		if (um == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		else if (err < 0)
			json_decref(um);
		else
			err = ras_json_set_new(o, "unmapped", um);
	}
done:
	json_decref(answers);
	if (err < 0) {
		json_decref(o);
		return err;
	}
	*out = o;
	return 0;
}

static enum ras_answer_type
answer_type_from(const char *s)
{
	static const enum ras_answer_type all[] = { RAS_ANSWER_BOOLEAN, RAS_ANSWER_INTEGER,
		RAS_ANSWER_DECIMAL, RAS_ANSWER_STRING, RAS_ANSWER_DATE, RAS_ANSWER_CODING,
		RAS_ANSWER_OTHER };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, ras_referral_answer_type_name(all[i])) == 0)
			return all[i];
	return RAS_ANSWER_OTHER;
}

int
ras_form_from_json(struct ras_arena *a, const json_t *doc, struct ras_form *f)
{
	json_t *answers = ras_json_arr(doc, "answers");
	json_t *x;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->questionnaire = ras_json_str(doc, "questionnaire");
	f->version = ras_json_str(doc, "version");
	f->status = ras_json_str(doc, "status");
	f->authored = ras_json_str(doc, "authored");
	f->answers = ras_arena_calloc(a, json_array_size(answers) + 1, sizeof(*f->answers));
	if (f->answers == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(answers, i, x) {
		struct ras_answer *an = &f->answers[i];
		json_t *v = json_object_get(x, "value");
		int64_t gi = 0;

		an->link_id = ras_json_str(x, "link_id");
		if (an->link_id == NULL)
			return ras_error_code(RAS_EINVALID, "stored form answer %zu has no link_id", i);
		/* (jansson knows it: rasd's parser refuses "\u0000" in strings,
		 * so it is strlen(link_id); were a NUL inside, the length would be
		 * longer than the C string and match no item, see id_len()) */
		an->link_id_len = json_string_length(json_object_get(x, "link_id"));
		an->group = ras_json_str(x, "group");
		if (ras_json_int(x, "group_index", &gi))
			an->group_index = (int)gi;
		an->type = answer_type_from(ras_json_str(x, "type"));
		switch (an->type) {
		case RAS_ANSWER_BOOLEAN: an->b = json_is_true(v); break;
		case RAS_ANSWER_INTEGER: an->i = (int64_t)json_integer_value(v); break;
		case RAS_ANSWER_DECIMAL: an->d = json_number_value(v); break;
		case RAS_ANSWER_CODING:
			an->system = ras_json_str(x, "system");
			an->code = ras_json_str(x, "code");
			an->s = ras_json_str(x, "display");
			break;
		default: an->s = json_string_value(v); break;
		}
	}
	f->n_answers = json_array_size(answers);
	{
		json_t *um = ras_json_arr(doc, "unmapped");

		f->unmapped = ras_arena_calloc(a, json_array_size(um) + 1, sizeof(char *));
		if (f->unmapped == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_array_foreach(um, i, x)
			if (json_string_value(x))
				f->unmapped[f->n_unmapped++] = json_string_value(x);
	}
	return 0;
}
