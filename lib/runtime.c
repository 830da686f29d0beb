/* runtime: everything rasd loads, loaded and checked as one (see include/ras/runtime.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/docprofile.h"
#include "ras/ers_client.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/outbox.h"
#include "ras/runtime.h"
#include "ras/triage.h"
#include "ras/xmlform.h"
#include "ras_config.h"

struct ras_runtime {
	char *mappings;
	struct ras_triage *triage;
	struct ras_outbox *outbox;
	struct ras_xmlform_maps *form_maps;
	struct ras_ers *ers;
};

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *
ras_runtime_mappings_dir(const struct ras_config *cfg)
{
	const char *m = cfg ? ras_config_get(cfg, "general", NULL, "mappings") : NULL;

	if (m && *m)
		return m;
	if (is_dir(RAS_DATADIR "/mappings/services"))
		return RAS_DATADIR "/mappings";
	return RAS_SOURCE_ROOT "/mappings";
}

/* One problem: its line, and the count. */
static int
note(struct ras_buf *problems, int *n, const char *what)
{
	const char *msg = ras_error_last();

	(void)ras_buf_printf(problems, "%s%s%s\n", what, msg && *msg ? ": " : "", msg ? msg : "");
	(*n)++;
	return 0;
}

/* Every service with a rule set must have a document profile that parses:
 * a decision of any service becomes a letter. */
static int
check_profiles(const char *mappings, const struct ras_triage *t, struct ras_buf *problems, int *n)
{
	const char *ids[RAS_SERVICES_MAX];
	size_t ns = ras_mappings_services(ras_triage_mappings(t), ids, RAS_SERVICES_MAX);
	struct ras_arena *a = ras_arena_new();

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < ns && i < RAS_SERVICES_MAX; i++) {
		struct ras_docprofile p;
		char what[128];

		if (ras_docprofile_load(a, mappings, ids[i], &p) < 0) {
			snprintf(what, sizeof(what), "document profile of service \"%s\"", ids[i]);
			note(problems, n, what);
		}
	}
	ras_arena_free(a);
	return 0;
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
	/* Then as triage uses them, with the configuration applied ([service
	 * ID] automation and ers_service_ids, [triage] default_service). */
	if (m == 0 && ras_triage_new(cfg, dir, &rt->triage) < 0)
		note(problems, &n, "triage configuration");
	if (rt->triage && (err = check_profiles(dir, rt->triage, problems, &n)) < 0)
		goto fail;
	if (ras_outbox_new(cfg, dir, &rt->outbox) < 0)
		note(problems, &n, "delivery configuration ([outbox], [routing], [mesh], [fhir])");
	if (snprintf(maps, sizeof(maps), "%s/form-maps", dir) >= (int)sizeof(maps)) {
		ras_error_code(RAS_EINVALID, "path too long");
		note(problems, &n, "form maps");
	} else if ((err = ras_xmlform_maps_load(maps, &rt->form_maps, problems)) < 0) {
		if (err == RAS_ENOMEM)
			goto fail;
		n++;   /* each bad map is already a line */
	}
	err = 0;
	if (ras_config_get(cfg, "ers", NULL, "base_url")) {
		if (ras_ers_from_config(cfg, &rt->ers) < 0)
			note(problems, &n, "e-RS configuration ([ers])");
		else if (rt->triage)
			ras_ers_set_triage(rt->ers, rt->triage);
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
	ras_xmlform_maps_free(rt->form_maps);
	ras_outbox_free(rt->outbox);
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

const struct ras_xmlform_maps *
ras_runtime_form_maps(const struct ras_runtime *rt)
{
	return rt->form_maps;
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
