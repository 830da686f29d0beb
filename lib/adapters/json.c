/* json: parsing and dumping policy over jansson (see include/ras/json.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"

static int
depth_ok(const json_t *j, int depth)
{
	if (depth > RAS_JSON_DEPTH_MAX)
		return 0;
	if (json_is_object(j)) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)j, k, v)
			if (!depth_ok(v, depth + 1))
				return 0;
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;

		json_array_foreach(j, i, v)
			if (!depth_ok(v, depth + 1))
				return 0;
	}
	return 1;
}

/* jansson's messages quote the text near the error ("'}' expected near
 * 'Smith'"), which may be patient data that would then reach a log or an
 * OperationOutcome: keep the kind of error and drop the quoted text. */
static const char *
scrub(char *text)
{
	char *near = strstr(text, " near ");

	if (near)
		*near = '\0';
	return text;
}

int
ras_json_parse(const char *data, size_t len, size_t max, json_t **out)
{
	json_error_t jerr;
	json_t *j;

	if (max != 0 && len > max)
		return ras_error_code(RAS_ETOOBIG, "payload of %zu bytes exceeds the limit of %zu bytes",
		    len, max);
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		if (json_error_code(&jerr) == json_error_duplicate_key)
			return ras_error_code(RAS_EINVALID, "duplicate JSON key at line %d column %d",
			    jerr.line, jerr.column);
		return ras_error_code(RAS_EINVALID, "malformed JSON at line %d column %d: %s",
		    jerr.line, jerr.column, scrub(jerr.text));
	}
	if (!depth_ok(j, 1)) {
		json_decref(j);
		return ras_error_code(RAS_EINVALID, "JSON nested deeper than %d levels",
		    RAS_JSON_DEPTH_MAX);
	}
	*out = j;
	return 0;
}

static void
decref(void *p)
{
	json_decref(p);
}

int
ras_json_arena_own(struct ras_arena *a, json_t *j)
{
	if (j == NULL)
		return 0;
	return ras_arena_defer(a, decref, j);
}

int
ras_json_parse_arena(struct ras_arena *a, const char *data, size_t len, size_t max, json_t **out)
{
	json_t *j;
	int err;

	if ((err = ras_json_parse(data, len, max, &j)) < 0)
		return err;
	if ((err = ras_json_arena_own(a, j)) < 0)
		return err;
	*out = j;
	return 0;
}

/* jansson hands over a document a few bytes at a time (a quote, a key, a
 * colon): what fits is copied here, the rest goes through ras_buf_append
 * (growth, the buffer's limit). */
static int
dump_cb(const char *buffer, size_t size, void *data)
{
	struct ras_buf *b = data;

	if (b->data != NULL && size < b->cap - b->len && (b->max == 0 || size <= b->max - b->len)) {
		memcpy(b->data + b->len, buffer, size);
		b->len += size;
		b->data[b->len] = '\0';
		return 0;
	}
	return ras_buf_append(b, buffer, size) < 0 ? -1 : 0;
}

int
ras_json_dump(const json_t *j, int flags, struct ras_buf *out)
{
	size_t jflags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);

	if (flags & RAS_JSON_PRETTY)
		jflags |= JSON_INDENT(2);
	else
		jflags |= JSON_COMPACT;
	if (flags & RAS_JSON_SORTED)
		jflags |= JSON_SORT_KEYS;
	if (json_dump_callback(j, dump_cb, out, jflags) != 0)
		return ras_error_code(RAS_ETOOBIG, "could not serialise JSON (output limit or memory)");
	return 0;
}

const char *
ras_json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

json_t *
ras_json_obj(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_object(v) ? v : NULL;
}

json_t *
ras_json_arr(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_array(v) ? v : NULL;
}

bool
ras_json_bool(const json_t *obj, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_boolean(v))
		return false;
	*out = json_is_true(v);
	return true;
}

bool
ras_json_int(const json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return false;
	*out = (int64_t)json_integer_value(v);
	return true;
}

bool
ras_json_equal(const json_t *a, const json_t *b)
{
	return json_equal(a, b) != 0;
}

int
ras_json_set_str(json_t *obj, const char *key, const char *value)
{
	if (value == NULL)
		return 0;
	return ras_json_set_new(obj, key, json_string(value));
}

int
ras_json_set_new(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory building JSON");
	if (json_object_set_new(obj, key, value) != 0)
		return ras_error_code(RAS_ENOMEM, "could not set JSON key \"%s\"", key);
	return 0;
}

int
ras_json_append_new(json_t *arr, json_t *value)
{
	if (value == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory building JSON");
	if (json_array_append_new(arr, value) != 0)
		return ras_error_code(RAS_ENOMEM, "could not append to JSON array");
	return 0;
}
