/* fhir: identifier, extension, coding and reference helpers (see include/ras/fhir.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/limits.h"

const char *
ras_fhir_identifier(const json_t *resource, const char *system)
{
	json_t *ids = json_object_get(resource, "identifier");
	json_t *id;
	size_t i;

	/* STU3 Reference.identifier and R4 single identifiers are objects. */
	if (json_is_object(ids)) {
		const char *sys = ras_json_str(ids, "system");

		return sys && strcmp(sys, system) == 0 ? ras_json_str(ids, "value") : NULL;
	}
	json_array_foreach(ids, i, id) {
		const char *sys = ras_json_str(id, "system");

		if (sys && strcmp(sys, system) == 0)
			return ras_json_str(id, "value");
	}
	return NULL;
}

json_t *
ras_fhir_extension(const json_t *resource, const char *url)
{
	json_t *exts = ras_json_arr(resource, "extension");
	json_t *e;
	size_t i;

	json_array_foreach(exts, i, e) {
		const char *u = ras_json_str(e, "url");

		if (u && strcmp(u, url) == 0)
			return e;
	}
	return NULL;
}

static bool
suffix_match(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static const char *
cc_code(const json_t *cc, const char *system, bool suffix)
{
	json_t *codings = ras_json_arr(cc, "coding");
	json_t *c;
	size_t i;

	if (codings == NULL && json_is_object(cc) && ras_json_str(cc, "code"))
		codings = NULL; /* a bare Coding is handled below */
	json_array_foreach(codings, i, c) {
		const char *sys = ras_json_str(c, "system");

		if (system == NULL || (sys && (suffix ? suffix_match(sys, system) : strcmp(sys, system) == 0)))
			return ras_json_str(c, "code");
	}
	if (codings == NULL && json_is_object(cc)) {
		const char *sys = ras_json_str(cc, "system");

		if (system == NULL || (sys && (suffix ? suffix_match(sys, system) : strcmp(sys, system) == 0)))
			return ras_json_str(cc, "code");
	}
	return NULL;
}

const char *
ras_fhir_cc_code(const json_t *cc, const char *system)
{
	return cc_code(cc, system, false);
}

const char *
ras_fhir_cc_code_suffix(const json_t *cc, const char *system_suffix)
{
	return cc_code(cc, system_suffix, true);
}

const char *
ras_fhir_cc_text(const json_t *cc)
{
	json_t *codings = ras_json_arr(cc, "coding");
	const char *t = ras_json_str(cc, "text");

	if (t)
		return t;
	if (codings)
		return ras_json_str(json_array_get(codings, 0), "display");
	return ras_json_str(cc, "display");
}

int
ras_fhir_bundle_index(struct ras_arena *a, json_t *bundle, struct ras_fhir_bundle *out)
{
	json_t *entries = ras_json_arr(bundle, "entry");
	json_t *e;
	size_t i, n = json_array_size(entries);

	if (n > RAS_BUNDLE_ENTRIES_MAX)
		return ras_error_code(RAS_ETOOBIG, "bundle has %zu entries, more than the limit of %d",
		    n, RAS_BUNDLE_ENTRIES_MAX);
	out->root = bundle;
	out->type = ras_json_str(bundle, "type");
	out->n = 0;
	out->entries = ras_arena_calloc(a, n ? n : 1, sizeof(*out->entries));
	if (out->entries == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(entries, i, e) {
		struct ras_fhir_entry *en = &out->entries[out->n];
		json_t *r = ras_json_obj(e, "resource");

		if (r == NULL)
			return ras_error_code(RAS_EINVALID, "bundle entry %zu has no resource", i);
		en->resource = r;
		en->full_url = ras_json_str(e, "fullUrl");
		en->type = ras_json_str(r, "resourceType");
		en->id = ras_json_str(r, "id");
		if (en->type == NULL)
			return ras_error_code(RAS_EINVALID, "bundle entry %zu has no resourceType", i);
		out->n++;
	}
	return 0;
}

/* Does "Type/id" (possibly at the end of an absolute URL, possibly with
 * "/_history/n") name this entry? */
static bool
matches_relative(const struct ras_fhir_entry *en, const char *ref)
{
	size_t tl, il;
	const char *p;

	if (en->id == NULL)
		return false;
	tl = strlen(en->type);
	il = strlen(en->id);
	/* Strip a version suffix. */
	p = strstr(ref, "/_history/");
	{
		size_t rl = p ? (size_t)(p - ref) : strlen(ref);

		if (rl < tl + 1 + il)
			return false;
		if (memcmp(ref + rl - il, en->id, il) != 0 || ref[rl - il - 1] != '/' ||
		    memcmp(ref + rl - il - 1 - tl, en->type, tl) != 0)
			return false;
		return rl == tl + 1 + il || ref[rl - il - 2 - tl] == '/';
	}
}

json_t *
ras_fhir_bundle_resolve(const struct ras_fhir_bundle *b, const char *reference,
    const char *want_type)
{
	if (reference == NULL || *reference == '\0')
		return NULL;
	for (size_t i = 0; i < b->n; i++) {
		const struct ras_fhir_entry *en = &b->entries[i];
		bool hit = (en->full_url && strcmp(en->full_url, reference) == 0) ||
		    (strncmp(reference, "urn:", 4) != 0 && matches_relative(en, reference));

		if (hit)
			return (want_type == NULL || strcmp(en->type, want_type) == 0) ? en->resource : NULL;
	}
	return NULL;
}

json_t *
ras_fhir_contained(const json_t *resource, const char *reference)
{
	json_t *contained = ras_json_arr(resource, "contained");
	json_t *c;
	size_t i;

	if (reference == NULL || reference[0] != '#')
		return NULL;
	json_array_foreach(contained, i, c) {
		const char *id = ras_json_str(c, "id");

		if (id && strcmp(id, reference + 1) == 0)
			return c;
	}
	return NULL;
}

size_t
ras_fhir_bundle_count(const struct ras_fhir_bundle *b, const char *type, json_t **first)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->entries[i].type, type) == 0) {
			if (n == 0 && first)
				*first = b->entries[i].resource;
			n++;
		}
	}
	return n;
}
