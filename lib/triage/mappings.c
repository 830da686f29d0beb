/* mappings: load forms, practice lists, calendar and rule sets (see include/ras/mappings.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"

#define FILES_MAX (RAS_SERVICES_MAX * 4)

struct named_list {
	const char *file;          /* "practices/midnotts.json" */
	char sha[RAS_SHA256_HEX_LEN];
	struct ras_practice_list list;
};

struct named_form {
	char sha[RAS_SHA256_HEX_LEN];
	struct ras_questionnaire q;
};

struct ras_mappings {
	struct ras_arena *a;
	char *dir;
	struct ras_calendar *cal;
	size_t n_forms;
	struct named_form *forms;
	const struct ras_questionnaire **form_ptrs;
	size_t n_lists;
	struct named_list *lists;
	const struct ras_practice_list **list_ptrs;
	size_t n_services;
	struct ras_ruleset **services;
	struct ras_buf *problems;  /* ras_mappings_check: collect, do not stop */
	int n_problems;
};

/* A problem with one file: stop loading (ras_mappings_load), or note it and
 * go on with the next file (ras_mappings_check).  Out of memory always stops. */
static int
problem(struct ras_mappings *m, int err)
{
	if (m->problems == NULL || err == RAS_ENOMEM)
		return err;
	(void)ras_buf_printf(m->problems, "%s\n", ras_error_last());
	m->n_problems++;
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The *.json files of dir/sub, sorted. */
static int
list_json(struct ras_arena *a, const char *dir, const char *sub, const char ***out, size_t *n)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	const char **names;

	*n = 0;
	if (snprintf(path, sizeof(path), "%s/%s", dir, sub) >= (int)sizeof(path))
		return ras_error_code(RAS_EINVALID, "mappings path is too long");
	names = ras_arena_calloc(a, FILES_MAX, sizeof(char *));
	if (names == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((d = opendir(path)) == NULL)
		return ras_error_code(RAS_EIO, "cannot open mappings directory %s", path);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
			continue;
		if (*n == FILES_MAX) {
			closedir(d);
			return ras_error_code(RAS_ETOOBIG, "more than %d files in %s", FILES_MAX, path);
		}
		if ((names[(*n)++] = ras_arena_strdup(a, e->d_name)) == NULL) {
			closedir(d);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
	}
	closedir(d);
	qsort(names, *n, sizeof(char *), cmp_name);
	*out = names;
	return 0;
}

static int
read_file(struct ras_arena *a, const char *dir, const char *rel, char **data, size_t *len,
    char sha[RAS_SHA256_HEX_LEN])
{
	struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	char path[4096];
	int err;

	if (snprintf(path, sizeof(path), "%s/%s", dir, rel) >= (int)sizeof(path))
		return ras_error_code(RAS_EINVALID, "mappings path is too long");
	if ((err = ras_buf_read_file(&b, path)) < 0) {
		ras_error_context("%s", path);
		ras_buf_free(&b);
		return err;
	}
	*len = b.len;
	*data = ras_arena_strndup(a, b.data ? b.data : "", b.len);
	ras_crypto_sha256_hex(b.data ? b.data : "", b.len, sha);
	ras_buf_free(&b);
	return *data ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

static int
load_forms(struct ras_mappings *m)
{
	const char **names;
	size_t n;
	int err;

	if ((err = list_json(m->a, m->dir, "forms", &names, &n)) < 0)
		return err;
	m->forms = ras_arena_calloc(m->a, n + 1, sizeof(*m->forms));
	m->form_ptrs = ras_arena_calloc(m->a, n + 1, sizeof(*m->form_ptrs));
	if (m->forms == NULL || m->form_ptrs == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char rel[512], *data;
		size_t len;
		json_t *j;
		struct named_form *f = &m->forms[m->n_forms];

		bool twice = false;

		snprintf(rel, sizeof(rel), "forms/%s", names[i]);
		if ((err = read_file(m->a, m->dir, rel, &data, &len, f->sha)) < 0) {
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		if ((err = ras_json_parse_arena(m->a, data, len, RAS_MAPPING_FILE_MAX, &j)) < 0 ||
		    (err = ras_form_questionnaire_parse(m->a, j, &f->q)) < 0) {
			ras_error_context("%s/%s", m->dir, rel);
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		for (size_t k = 0; k < m->n_forms && !twice; k++)
			if (strcmp(m->forms[k].q.url, f->q.url) == 0 &&
			    strcmp(m->forms[k].q.version, f->q.version) == 0) {
				err = ras_error_code(RAS_EINVALID, "%s/%s: form %s|%s is defined twice", m->dir,
				    rel, f->q.url, f->q.version);
				if ((err = problem(m, err)) < 0)
					return err;
				twice = true;
			}
		if (!twice)
			m->form_ptrs[m->n_forms++] = &f->q;
	}
	return 0;
}

static int
load_lists(struct ras_mappings *m)
{
	const char **names;
	size_t n;
	int err;

	if ((err = list_json(m->a, m->dir, "practices", &names, &n)) < 0)
		return err;
	m->lists = ras_arena_calloc(m->a, n + 1, sizeof(*m->lists));
	m->list_ptrs = ras_arena_calloc(m->a, n + 1, sizeof(*m->list_ptrs));
	if (m->lists == NULL || m->list_ptrs == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct named_list *l = &m->lists[m->n_lists];
		char *data;
		size_t len;

		l->file = ras_arena_printf(m->a, "practices/%s", names[i]);
		if (l->file == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if ((err = read_file(m->a, m->dir, l->file, &data, &len, l->sha)) < 0) {
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		if ((err = ras_rules_practices_parse(m->a, l->file, data, len, &l->list)) < 0) {
			ras_error_context("%s", m->dir);
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		m->list_ptrs[m->n_lists++] = &l->list;
	}
	return 0;
}

static int
link_service(struct ras_mappings *m, struct ras_ruleset *rs, const char *own_sha)
{
	const struct ras_practice_list *pop = NULL;
	struct ras_sha256 *h = ras_crypto_sha256_new();
	char version[RAS_SHA256_HEX_LEN];

	if (h == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_crypto_sha256_update(h, own_sha, strlen(own_sha));
	for (size_t i = 0; i < m->n_lists; i++) {
		ras_crypto_sha256_update(h, m->lists[i].sha, strlen(m->lists[i].sha));
		if (strcmp(m->lists[i].file, ras_rules_population_file(rs)) == 0)
			pop = &m->lists[i].list;
	}
	for (size_t i = 0; i < m->n_forms; i++)
		if (strcmp(m->forms[i].q.url, ras_rules_form_url(rs)) == 0)
			ras_crypto_sha256_update(h, m->forms[i].sha, strlen(m->forms[i].sha));
	ras_crypto_sha256_final(h, version);
	if (pop == NULL)
		return ras_error_code(RAS_EINVALID, "rule set %s: population file %s is not in %s/practices",
		    ras_rules_service(rs), ras_rules_population_file(rs), m->dir);
	return ras_rules_link(m->a, rs, m->form_ptrs, m->n_forms, pop, m->list_ptrs, m->n_lists, version);
}

static int
load_services(struct ras_mappings *m)
{
	const char **names;
	size_t n;
	int err;

	if ((err = list_json(m->a, m->dir, "services", &names, &n)) < 0)
		return err;
	if (n == 0)
		return ras_error_code(RAS_EINVALID, "%s/services has no rule sets", m->dir);
	if (n > RAS_SERVICES_MAX)
		return ras_error_code(RAS_ETOOBIG, "more than %d rule sets in %s/services", RAS_SERVICES_MAX, m->dir);
	m->services = ras_arena_calloc(m->a, n + 1, sizeof(*m->services));
	if (m->services == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char rel[512], sha[RAS_SHA256_HEX_LEN], *data;
		size_t len, l = strlen(names[i]) - 5;
		struct ras_ruleset *rs;

		snprintf(rel, sizeof(rel), "services/%s", names[i]);
		if ((err = read_file(m->a, m->dir, rel, &data, &len, sha)) < 0) {
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		if ((err = ras_rules_parse(m->a, data, len, &rs)) < 0) {
			ras_error_context("%s/%s", m->dir, rel);
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		if (strlen(ras_rules_service(rs)) != l || strncmp(ras_rules_service(rs), names[i], l) != 0) {
			err = ras_error_code(RAS_EINVALID, "%s/%s: the file of service \"%s\" must be named %s.json",
			    m->dir, rel, ras_rules_service(rs), ras_rules_service(rs));
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		if ((err = link_service(m, rs, sha)) < 0) {
			ras_error_context("%s/%s", m->dir, rel);
			if ((err = problem(m, err)) < 0)
				return err;
			continue;
		}
		m->services[m->n_services++] = rs;
	}
	return 0;
}

int
ras_mappings_load_calendar(const char *dir, struct ras_calendar **out)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/" RAS_MAPPINGS_CALENDAR, dir) >= (int)sizeof(path))
		return ras_error_code(RAS_EINVALID, "mappings path is too long");
	return ras_calendar_load(path, out);
}

static int
load(const char *dir, struct ras_buf *problems, struct ras_mappings **out)
{
	struct ras_mappings *m = calloc(1, sizeof(*m));
	int err;

	if (m == NULL || (m->a = ras_arena_new()) == NULL || (m->dir = strdup(dir)) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	m->problems = problems;
	if ((err = ras_mappings_load_calendar(dir, &m->cal)) < 0 && (err = problem(m, err)) < 0)
		goto fail;
	if ((err = load_forms(m)) < 0 && (err = problem(m, err)) < 0)
		goto fail;
	if ((err = load_lists(m)) < 0 && (err = problem(m, err)) < 0)
		goto fail;
	if ((err = load_services(m)) < 0 && (err = problem(m, err)) < 0)
		goto fail;
	m->problems = NULL;
	*out = m;
	return 0;
fail:
	ras_mappings_free(m);
	return err;
}

int
ras_mappings_load(const char *dir, struct ras_mappings **out)
{
	return load(dir, NULL, out);
}

int
ras_mappings_check(const char *dir, struct ras_buf *problems)
{
	struct ras_mappings *m = NULL;
	int err, n;

	if ((err = load(dir, problems, &m)) < 0)
		return err;
	n = m->n_problems;
	ras_mappings_free(m);
	return n;
}

void
ras_mappings_free(struct ras_mappings *m)
{
	if (m == NULL)
		return;
	ras_calendar_free(m->cal);
	ras_arena_free(m->a);
	free(m->dir);
	free(m);
}

const struct ras_ruleset *
ras_mappings_ruleset(const struct ras_mappings *m, const char *service)
{
	for (size_t i = 0; service && i < m->n_services; i++)
		if (strcmp(ras_rules_service(m->services[i]), service) == 0)
			return m->services[i];
	return NULL;
}

size_t
ras_mappings_services(const struct ras_mappings *m, const char **ids, size_t max)
{
	for (size_t i = 0; ids && i < m->n_services && i < max; i++)
		ids[i] = ras_rules_service(m->services[i]);
	return m->n_services;
}

const struct ras_calendar *
ras_mappings_calendar(const struct ras_mappings *m)
{
	return m->cal;
}

const char *
ras_mappings_dir(const struct ras_mappings *m)
{
	return m->dir;
}

int
ras_mappings_link_ruleset(const struct ras_mappings *m, struct ras_arena *a, struct ras_ruleset *rs,
    const char *version)
{
	const struct ras_practice_list *pop = NULL;

	for (size_t i = 0; i < m->n_lists; i++)
		if (strcmp(m->lists[i].file, ras_rules_population_file(rs)) == 0)
			pop = &m->lists[i].list;
	if (pop == NULL)
		return ras_error_code(RAS_EINVALID, "rule set %s: population file %s is not in %s/practices",
		    ras_rules_service(rs), ras_rules_population_file(rs), m->dir);
	return ras_rules_link(a, rs, m->form_ptrs, m->n_forms, pop, m->list_ptrs, m->n_lists, version);
}

int
ras_mappings_set_automation(struct ras_mappings *m, const char *service, enum ras_automation a)
{
	for (size_t i = 0; i < m->n_services; i++)
		if (strcmp(ras_rules_service(m->services[i]), service) == 0) {
			ras_rules_set_automation(m->services[i], a);
			return 0;
		}
	return ras_error_code(RAS_ENOTFOUND, "no rule set for service \"%s\"", service);
}
