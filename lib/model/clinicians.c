/* clinicians: the clinician register from the configuration (see include/ras/clinicians.h). */
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/clinicians.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/limits.h"

struct ras_clinicians {
	struct ras_arena *a;
	size_t n;
	struct ras_clinician *v;
};

bool
ras_clinicians_sds_ok(const char *s)
{
	if (s == NULL || strlen(s) != 12)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

struct svc_ctx {
	struct ras_arena *a;
	struct ras_clinician *c;
	size_t cap;
};

static int
add_service(const char *item, void *vctx)
{
	struct svc_ctx *x = vctx;

	if (strlen(item) > RAS_ID_MAX)
		return ras_error_code(RAS_EINVALID, "[clinician %s] services: a service name is too long",
		    x->c->sds_id);
	if (x->c->n_services >= x->cap)
		return ras_error_code(RAS_ETOOBIG, "[clinician %s] services: more than %zu", x->c->sds_id,
		    x->cap);
	if ((x->c->services[x->c->n_services] = ras_arena_strdup(x->a, item)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	x->c->n_services++;
	return 0;
}

int
ras_clinicians_from_config(const struct ras_config *cfg, struct ras_clinicians **out)
{
	struct ras_clinicians *reg = calloc(1, sizeof(*reg));
	const char **ids = NULL;
	size_t n;
	int err = 0;

	if (reg == NULL || (reg->a = ras_arena_new()) == NULL) {
		free(reg);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	n = cfg ? ras_config_instances(cfg, "clinician", NULL, 0) : 0;
	if (n > RAS_CLINICIANS_MAX) {
		err = ras_error_code(RAS_ETOOBIG, "more than %d [clinician] sections", RAS_CLINICIANS_MAX);
		goto fail;
	}
	ids = ras_arena_calloc(reg->a, n + 1, sizeof(*ids));
	reg->v = ras_arena_calloc(reg->a, n + 1, sizeof(*reg->v));
	if (ids == NULL || reg->v == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	if (n)
		(void)ras_config_instances(cfg, "clinician", ids, n);
	for (size_t i = 0; i < n; i++) {
		struct ras_clinician *c = &reg->v[i];
		static const char *const keys[] = { "name", "registration", "role", "services" };
		struct svc_ctx sx = { reg->a, c, RAS_SERVICES_MAX };

		if (!ras_clinicians_sds_ok(ids[i])) {
			err = ras_error_code(RAS_EINVALID, "[clinician %.40s]: the section name must be the "
			    "clinician's SDS user id (12 digits)", ids[i]);
			goto fail;
		}
		for (size_t k = 0; k < 4; k++) {
			const char *v = ras_config_get(cfg, "clinician", ids[i], keys[k]);

			if (v == NULL || *v == '\0') {
				err = ras_error_code(RAS_EINVALID, "[clinician %s]: %s is required", ids[i], keys[k]);
				goto fail;
			}
		}
		c->sds_id = ras_arena_strdup(reg->a, ids[i]);
		c->name = ras_arena_strdup(reg->a, ras_config_get(cfg, "clinician", ids[i], "name"));
		c->registration = ras_arena_strdup(reg->a,
		    ras_config_get(cfg, "clinician", ids[i], "registration"));
		c->role = ras_arena_strdup(reg->a, ras_config_get(cfg, "clinician", ids[i], "role"));
		c->services = ras_arena_calloc(reg->a, RAS_SERVICES_MAX, sizeof(char *));
		if (!c->sds_id || !c->name || !c->registration || !c->role || !c->services) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto fail;
		}
		if ((err = ras_config_list_each(ras_config_get(cfg, "clinician", ids[i], "services"),
		    add_service, &sx)) < 0)
			goto fail;
		if (c->n_services == 0) {
			err = ras_error_code(RAS_EINVALID, "[clinician %s]: services lists no service", ids[i]);
			goto fail;
		}
		reg->n++;
	}
	*out = reg;
	return 0;
fail:
	ras_clinicians_free(reg);
	return err;
}

void
ras_clinicians_free(struct ras_clinicians *reg)
{
	if (reg == NULL)
		return;
	ras_arena_free(reg->a);
	free(reg);
}

size_t
ras_clinicians_count(const struct ras_clinicians *reg)
{
	return reg ? reg->n : 0;
}

const struct ras_clinician *
ras_clinicians_at(const struct ras_clinicians *reg, size_t i)
{
	return reg && i < reg->n ? &reg->v[i] : NULL;
}

const struct ras_clinician *
ras_clinicians_find(const struct ras_clinicians *reg, const char *sds_id)
{
	for (size_t i = 0; reg && sds_id && i < reg->n; i++)
		if (strcmp(reg->v[i].sds_id, sds_id) == 0)
			return &reg->v[i];
	return NULL;
}

bool
ras_clinicians_serves(const struct ras_clinician *c, const char *service)
{
	for (size_t i = 0; c && service && i < c->n_services; i++)
		if (strcmp(c->services[i], service) == 0)
			return true;
	return false;
}
