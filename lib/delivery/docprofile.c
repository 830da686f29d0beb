/* docprofile: per-service document profiles (see include/ras/docprofile.h). */
#include <stdio.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/docprofile.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"

static const char *const kinds[] = { "triage-outcome", "gp-2ww-notice", "notification-letter",
	"discharge-summary", "patient-copy", NULL };

/* The sections lib/document.c can render. */
static const char *const sections[] = {
	"actions", "outcome", "advice", "next-steps", "referral-details", "reason-for-referral",
	"patient-demographics", "person-completing-record", "contact-service", "distribution-list",
	"gp-actions", "dates", "diagnosis", "investigations", "test-results", "fit-for-procedure",
	"treatment-summary", "outcomes", "medication-changes", "management-plan",
	"self-management-advice", "key-worker", "onward-referral", "re-referral-indicators",
	"peer-support", NULL,
};

static const char *const patient_items[] = { "patient.name", "patient.birth-date",
	"patient.nhs-number", NULL };

static bool
listed(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

bool
ras_docprofile_section_known(const char *id)
{
	return id && listed(sections, id);
}

static int
parse_kind(struct ras_arena *a, const char *name, json_t *k, struct ras_dockind *out)
{
	json_t *secs = ras_json_arr(k, "sections"), *req = ras_json_arr(k, "required");
	json_t *dl = ras_json_obj(k, "deadline"), *x;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!listed(kinds, name))
		return ras_error_code(RAS_EINVALID, "unknown document kind \"%.60s\"", name);
	out->kind = name;
	out->clause = ras_json_str(k, "clause");
	out->title = ras_json_str(k, "title");
	out->of = ras_json_str(k, "of");
	if (out->clause == NULL)
		return ras_error_code(RAS_EINVALID, "document \"%s\" cites no clause", name);
	if (strcmp(name, "patient-copy") == 0) {
		if (out->of == NULL || !listed(kinds, out->of) || strcmp(out->of, "patient-copy") == 0)
			return ras_error_code(RAS_EINVALID, "patient-copy needs \"of\": the kind it copies");
		return 0;
	}
	if (secs == NULL || json_array_size(secs) == 0)
		return ras_error_code(RAS_EINVALID, "document \"%s\" has no sections", name);
	out->sections = ras_arena_calloc(a, json_array_size(secs), sizeof(*out->sections));
	out->required = ras_arena_calloc(a, json_array_size(req) + 1, sizeof(*out->required));
	if (out->sections == NULL || out->required == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(secs, i, x) {
		struct ras_docsection *s = &out->sections[out->n_sections++];

		s->id = json_is_string(x) ? json_string_value(x) : ras_json_str(x, "id");
		s->title = json_is_object(x) ? ras_json_str(x, "title") : NULL;
		if (!ras_docprofile_section_known(s->id))
			return ras_error_code(RAS_EINVALID, "document \"%s\" has an unknown section \"%.60s\"",
			    name, s->id ? s->id : "(none)");
	}
	json_array_foreach(req, i, x) {
		const char *r = json_string_value(x);

		if (r == NULL || (!ras_episode_item_known(r) && !listed(patient_items, r)))
			return ras_error_code(RAS_EINVALID,
			    "document \"%s\" requires an unknown item \"%.60s\"", name, r ? r : "(none)");
		out->required[out->n_required++] = r;
	}
	if (dl) {
		json_int_t wd = 0;

		out->has_deadline = true;
		out->deadline_from = ras_json_str(dl, "from");
		out->deadline_clause = ras_json_str(dl, "clause");
		(void)ras_json_bool(dl, "same_day", &out->same_day);
		if (json_is_integer(json_object_get(dl, "working_days")))
			wd = json_integer_value(json_object_get(dl, "working_days"));
		if (!out->same_day && (wd < 1 || wd > 100))
			return ras_error_code(RAS_EINVALID,
			    "document \"%s\" deadline needs same_day or working_days 1..100", name);
		out->working_days = (int)wd;
		if (out->deadline_from == NULL || (strcmp(out->deadline_from, "decision") &&
		    strcmp(out->deadline_from, "contact") && strcmp(out->deadline_from, "discharge")))
			return ras_error_code(RAS_EINVALID,
			    "document \"%s\" deadline \"from\" must be decision, contact or discharge", name);
	}
	return 0;
}

int
ras_docprofile_parse(struct ras_arena *a, const char *data, size_t len, struct ras_docprofile *p)
{
	json_t *root, *docs, *prov, *k;
	const char *name;
	int err;

	memset(p, 0, sizeof(*p));
	if ((err = ras_json_parse_arena(a, data, len, RAS_MAPPING_FILE_MAX, &root)) < 0)
		return err;
	p->service = ras_json_str(root, "service");
	p->name = ras_json_str(root, "name");
	p->spec = ras_json_str(root, "spec");
	prov = ras_json_obj(root, "provider");
	docs = ras_json_obj(root, "documents");
	if (p->service == NULL || p->name == NULL || prov == NULL || docs == NULL)
		return ras_error_code(RAS_EINVALID,
		    "document profile needs service, name, provider and documents");
	p->provider.ods = ras_json_str(prov, "ods");
	p->provider.name = ras_json_str(prov, "name");
	p->provider.telephone = ras_json_str(prov, "telephone");
	p->provider.email = ras_json_str(prov, "email");
	p->provider.address = ras_json_str(prov, "address");
	if (p->provider.ods == NULL || p->provider.name == NULL)
		return ras_error_code(RAS_EINVALID, "document profile provider needs ods and name");
	p->kinds = ras_arena_calloc(a, json_object_size(docs) + 1, sizeof(*p->kinds));
	if (p->kinds == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_object_foreach(docs, name, k) {
		if (!json_is_object(k))
			return ras_error_code(RAS_EINVALID, "document \"%.60s\" is not an object", name);
		if ((err = parse_kind(a, name, k, &p->kinds[p->n_kinds])) < 0)
			return err;
		p->n_kinds++;
	}
	for (size_t i = 0; i < p->n_kinds; i++)
		if (p->kinds[i].of && ras_docprofile_kind(p, p->kinds[i].of) == NULL)
			return ras_error_code(RAS_EINVALID, "patient-copy copies \"%s\", which the profile lacks",
			    p->kinds[i].of);
	return 0;
}

int
ras_docprofile_load(struct ras_arena *a, const char *mappings, const char *service,
    struct ras_docprofile *out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	char path[4096];
	int err;

	for (const char *c = service; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return ras_error_code(RAS_EINVALID, "service id \"%.40s\" is not valid", service);
	if (snprintf(path, sizeof(path), "%s/documents/%s.json", mappings, service) >= (int)sizeof(path))
		return ras_error_code(RAS_EINVALID, "mappings path too long");
	if ((err = ras_buf_read_file(&b, path)) < 0) {
		ras_buf_free(&b);
		if (err == RAS_EIO || err == RAS_ENOTFOUND)
			return ras_error_code(RAS_ENOTFOUND, "service \"%s\" has no document profile (%s)",
			    service, path);
		return err;
	}
	err = ras_docprofile_parse(a, b.data ? b.data : "", b.len, out);
	ras_buf_free(&b);
	if (err < 0)
		ras_error_context("%s", path);
	return err;
}

const struct ras_dockind *
ras_docprofile_kind(const struct ras_docprofile *p, const char *kind)
{
	for (size_t i = 0; i < p->n_kinds; i++)
		if (strcmp(p->kinds[i].kind, kind) == 0)
			return &p->kinds[i];
	return NULL;
}
