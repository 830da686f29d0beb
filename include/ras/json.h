/*
 * json: the JSON adapter.  rasd's JSON value type is jansson's json_t; this
 * module owns the policy for reading and writing it: every parse rejects
 * duplicate keys, NUL bytes and nesting deeper than RAS_JSON_DEPTH_MAX and
 * is bounded in size; every dump is deterministic.  Other modules use the
 * jansson value API through this header and never call json_load* or
 * json_dump* themselves.
 */
#ifndef RAS_JSON_H
#define RAS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ras_arena;
struct ras_buf;

/* Parse `len` bytes (not NUL-terminated necessarily). On failure returns
 * RAS_EINVALID (syntax, duplicate key, depth) or RAS_ETOOBIG (len > max),
 * with a message giving line and column. */
int ras_json_parse(const char *data, size_t len, size_t max, json_t **out);

/* As ras_json_parse, and ties the result to the arena (decref on free). */
int ras_json_parse_arena(struct ras_arena *a, const char *data, size_t len, size_t max,
    json_t **out);

/* Tie a reference to the arena: json_decref(j) runs when it is freed. */
int ras_json_arena_own(struct ras_arena *a, json_t *j);

enum {
	RAS_JSON_COMPACT = 0,     /* one line, no spaces */
	RAS_JSON_PRETTY = 1 << 0, /* two-space indent */
	RAS_JSON_SORTED = 1 << 1, /* keys sorted (canonical form) */
};

/* Append the serialisation of j to out. Keys keep insertion order unless
 * RAS_JSON_SORTED; output is byte-for-byte stable for the same value. */
int ras_json_dump(const json_t *j, int flags, struct ras_buf *out);

/* Accessors that return NULL/false when the key is missing or of another
 * type; they never fail loudly, the caller decides what missing means. */
const char *ras_json_str(const json_t *obj, const char *key);
json_t *ras_json_obj(const json_t *obj, const char *key);
json_t *ras_json_arr(const json_t *obj, const char *key);
bool ras_json_bool(const json_t *obj, const char *key, bool *out);
bool ras_json_int(const json_t *obj, const char *key, int64_t *out);

/* JSON equality ignoring key order (jansson's json_equal). */
bool ras_json_equal(const json_t *a, const json_t *b);

/* Builders that never fail silently: on OOM they return RAS_ENOMEM.
 * `value` may be NULL, in which case nothing is set. */
int ras_json_set_str(json_t *obj, const char *key, const char *value);
int ras_json_set_new(json_t *obj, const char *key, json_t *value);  /* steals value */
int ras_json_append_new(json_t *arr, json_t *value);                /* steals value */

#endif
