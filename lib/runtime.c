/* runtime: everything rasd loads, loaded and checked as one (see include/ras/runtime.h). */
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/docprofile.h"
#include "ras/ers.h"
#include "ras/pds.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/mesh.h"
#include "ras/mesh_inbox.h"
#include "ras/outbox.h"
#include "ras/rules.h"
#include "ras/runtime.h"
#include "ras/triage.h"
#include "ras/xmlform.h"
#include "ras_config.h"

struct ras_runtime {
	char *mappings;
	struct ras_triage *triage;
	struct ras_outbox *outbox;
	struct ras_mesh_inbox *mesh_inbox;
	struct ras_mesh *mesh;          /* [mesh]: one client for the outbox and the MESH inbox */
	struct ras_http *mesh_http;
	struct ras_xmlform_maps *form_maps;
	struct ras_ers *ers;
	struct ras_pds *pds;            /* [pds] base_url set (issue 10) */
	struct ras_pds_settings pds_settings;
};

const char *
ras_runtime_mappings_dir(const struct ras_config *cfg)
{
	const char *m = cfg ? ras_config_get(cfg, "general", NULL, "mappings") : NULL;

	static char env_dir[PATH_MAX];
	const char *data = getenv("RAS_DATADIR");

	if (m && *m)
		return m;
	/* $RAS_DATADIR: a data directory other than the installed one (a
	 * build run in place: the source checkout, which has mappings/). */
	if (data && *data && snprintf(env_dir, sizeof(env_dir), "%s/mappings", data) <
	    (int)sizeof(env_dir))
		return env_dir;
	return RAS_DATADIR "/mappings";
}

/* One problem, one line; returns 1 (the count). */
static int __attribute__((format(printf, 2, 3)))
note(struct ras_buf *problems, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)ras_buf_vprintf(problems, fmt, ap);
	va_end(ap);
	(void)ras_buf_putc(problems, '\n');
	return 1;
}

/* A load that failed: what it was, and why. */
static int
failed(struct ras_buf *problems, const char *what)
{
	return note(problems, "%s: %s", what, ras_error_last());
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The service ids of the rule-set files (services/<id>.json), sorted. */
static size_t
service_files(const char *dir, char ids[][RAS_ID_MAX + 1], size_t max)
{
	char path[4096];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/services", dir) >= (int)sizeof(path) ||
	    (d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.' || l < 6 || l - 5 > RAS_ID_MAX || strcmp(e->d_name + l - 5, ".json") != 0)
			continue;
		snprintf(ids[n++], RAS_ID_MAX + 1, "%.*s", (int)(l - 5), e->d_name);
	}
	closedir(d);
	qsort(ids, n, sizeof(ids[0]), cmp_id);
	return n;
}

static bool
listed(char ids[][RAS_ID_MAX + 1], size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/*
 * What the configuration says about services, checked against the rule-set
 * files without loading them (so that these problems are reported beside
 * broken files): [service ID] has a rule set and a known automation level,
 * [triage] default_service has a rule set.  Every service with a rule set
 * must also have a document profile that parses: any decision becomes a
 * letter.  Returns the number of problems.
 */
static int
check_services(const struct ras_config *cfg, const char *dir, struct ras_buf *problems)
{
	char ids[RAS_SERVICES_MAX][RAS_ID_MAX + 1];
	const char *names[RAS_SERVICES_MAX], *def;
	size_t ns = service_files(dir, ids, RAS_SERVICES_MAX);
	size_t nc = ras_config_instances(cfg, "service", names, RAS_SERVICES_MAX);
	struct ras_arena *a = ras_arena_new();
	int n = 0;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < nc && i < RAS_SERVICES_MAX; i++) {
		const char *autom = ras_config_get(cfg, "service", names[i], "automation");

		if (!listed(ids, ns, names[i]))
			n += note(problems, "[service %s]: no rule set %s/services/%s.json", names[i], dir, names[i]);
		if (autom && ras_rules_automation_parse(autom) < 0)
			n += note(problems, "[service %s] automation must be administrative, all or none, not "
			    "\"%.40s\"", names[i], autom);
	}
	def = ras_config_get(cfg, "triage", NULL, "default_service");
	if (def && *def && !listed(ids, ns, def))
		n += note(problems, "[triage] default_service \"%s\" has no rule set in %s/services", def, dir);
	for (size_t i = 0; i < ns; i++) {
		struct ras_docprofile p;

		if (ras_docprofile_load(a, dir, ids[i], &p) < 0)
			n += note(problems, "document profile of service \"%s\": %s", ids[i], ras_error_last());
	}
	ras_arena_free(a);
	return n;
}

int
ras_runtime_new(const struct ras_config *cfg, struct ras_runtime **out, struct ras_buf *problems)
{
	struct ras_runtime *rt = calloc(1, sizeof(*rt));
	struct ras_config *defaults = NULL;
	const char *dir;
	char maps[4096];
	int n = 0, err = 0, m;

	if (rt == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (cfg == NULL) {
		if ((err = ras_config_defaults(&defaults)) < 0)
			goto fail;
		cfg = defaults;
	}
	dir = ras_runtime_mappings_dir(cfg);
	if ((rt->mappings = strdup(dir)) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	/* The mappings file by file: every broken one named. */
	if ((m = ras_mappings_check(dir, problems)) < 0) {
		err = m;
		goto fail;
	}
	n += m;
	if ((m = check_services(cfg, dir, problems)) < 0) {
		err = m;
		goto fail;
	}
	n += m;
	/* Then as triage uses them, with the configuration applied ([service
	 * ID] automation and ers_service_ids, [triage] default_service), when
	 * nothing above already failed (it would say the same again). */
	if (n == 0 && ras_triage_new(cfg, dir, &rt->triage) < 0)
		n += failed(problems, "triage configuration");
	/* One MESH client for sending and receiving: one handshake per
	 * interval, and a bad [mesh] is one problem, not one per user. */
	if (ras_mesh_new_config(cfg, &rt->mesh, &rt->mesh_http) < 0)
		n += failed(problems, "MESH configuration ([mesh])");
	if (ras_outbox_new_shared(cfg, dir, rt->mesh, rt->mesh_http, &rt->outbox) < 0)
		n += failed(problems, "delivery configuration ([outbox], [routing], [fhir])");
	if (ras_mesh_inbox_new_shared(cfg, rt->mesh, rt->mesh_http, &rt->mesh_inbox) < 0)
		n += failed(problems, "MESH inbox configuration ([mesh])");
	if (snprintf(maps, sizeof(maps), "%s/form-maps", dir) >= (int)sizeof(maps)) {
		n += note(problems, "form maps: the mappings path is too long");
	} else if ((err = ras_xmlform_maps_load(maps, &rt->form_maps, problems)) < 0) {
		if (err == RAS_ENOMEM)
			goto fail;
		n++;   /* each bad map is already a line */
	}
	err = 0;
	if (rt->outbox)
		ras_outbox_set_form_maps(rt->outbox, rt->form_maps);
	if (ras_config_get(cfg, "pds", NULL, "base_url")) {
		if (ras_pds_from_config(cfg, &rt->pds) < 0)
			n += failed(problems, "PDS configuration ([pds])");
		ras_pds_settings(cfg, &rt->pds_settings);
	}
	if (ras_config_get(cfg, "ers", NULL, "base_url")) {
		if (ras_ers_from_config(cfg, &rt->ers) < 0) {
			n += failed(problems, "e-RS configuration ([ers])");
		} else {
			ras_ers_set_form_maps(rt->ers, rt->form_maps);
			if (rt->triage)
				ras_ers_set_triage(rt->ers, rt->triage);
		}
	}
	if (n) {
		err = RAS_EINVALID;
		ras_error_code(RAS_EINVALID, "%d problem(s) in the configuration or mappings", n);
		goto fail;
	}
	ras_config_free(defaults);
	*out = rt;
	return 0;
fail:
	ras_config_free(defaults);
	ras_runtime_free(rt);
	return err;
}

void
ras_runtime_free(struct ras_runtime *rt)
{
	if (rt == NULL)
		return;
	ras_ers_free(rt->ers);
	ras_pds_free(rt->pds);
	ras_xmlform_maps_free(rt->form_maps);
	ras_mesh_inbox_free(rt->mesh_inbox);
	ras_outbox_free(rt->outbox);
	ras_mesh_free(rt->mesh);
	ras_http_free(rt->mesh_http);
	ras_triage_free(rt->triage);
	free(rt->mappings);
	free(rt);
}

int
ras_runtime_check(const struct ras_config *cfg, struct ras_buf *problems)
{
	struct ras_runtime *rt = NULL;
	size_t before = problems->len;
	int err = ras_runtime_new(cfg, &rt, problems);
	int n = 0;

	if (err == 0) {
		ras_runtime_free(rt);
		return 0;
	}
	if (err != RAS_EINVALID)
		return err;
	for (size_t i = before; i < problems->len; i++)
		if (problems->data[i] == '\n')
			n++;
	return n ? n : 1;
}

const char *
ras_runtime_mappings(const struct ras_runtime *rt)
{
	return rt->mappings;
}

const struct ras_triage *
ras_runtime_triage(const struct ras_runtime *rt)
{
	return rt->triage;
}

const struct ras_calendar *
ras_runtime_calendar(const struct ras_runtime *rt)
{
	return ras_mappings_calendar(ras_triage_mappings(rt->triage));
}

struct ras_outbox *
ras_runtime_outbox(const struct ras_runtime *rt)
{
	return rt->outbox;
}

struct ras_mesh_inbox *
ras_runtime_mesh_inbox(const struct ras_runtime *rt)
{
	return rt->mesh_inbox;
}

const struct ras_xmlform_maps *
ras_runtime_form_maps(const struct ras_runtime *rt)
{
	return rt->form_maps;
}

struct ras_pds *
ras_runtime_pds(const struct ras_runtime *rt, struct ras_pds_settings *settings)
{
	if (settings)
		*settings = rt->pds_settings;
	return rt->pds;
}

struct ras_ers *
ras_runtime_ers(const struct ras_runtime *rt)
{
	return rt->ers;
}

struct ras_epr_ctx
ras_runtime_epr(const struct ras_runtime *rt)
{
	struct ras_epr_ctx ctx = { rt->triage, rt->outbox };

	return ctx;
}
