/*
 * config: INI parser, option table and secrets (see include/ras/config.h).
 *
 * To add an option, add a row to ras_options[] and document it in the
 * README's configuration section; nothing else reads the file.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/limits.h"

static const char *
no_password(const char *v, char *buf, size_t size)
{
	/* A conninfo is "key=value" words or a URI; either way a password
	 * written here would be a secret in the main config. */
	if (strstr(v, "password=") || strstr(v, "password ="))
		return "must not contain a password: use passfile= or PGPASSFILE, or a systemd credential";
	if ((strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0)) {
		const char *at = strchr(v, '@'), *colon = strchr(v + 13, ':');

		if (at && colon && colon < at)
			return "must not contain a password: use passfile= or PGPASSFILE";
	}
	(void)buf;
	(void)size;
	return NULL;
}

const struct ras_option ras_options[] = {
	{ "database", "conninfo", RAS_OPT_STRING, NULL, 0, 0, false, false, no_password,
	  "libpq connection string (no password: use passfile= or a credential)" },
	{ "database", "batch_size", RAS_OPT_INT, "200", 1, 10000, true, false, NULL,
	  "rows a stage claims per transaction" },
	{ "general", "mappings", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "directory of rule sets, forms, practice lists and the bank-holiday file" },
	{ "general", "instance", RAS_OPT_STRING, NULL, 0, 0, false, false, NULL,
	  "name of this rasd instance in logs and metrics (default: host name)" },
	/* triage (issue 3): [service ID] … */
	{ "service", "ers_service_ids", RAS_OPT_LIST, NULL, 0, 0, true, true, NULL,
	  "e-RS service ids whose referrals belong to this rasd service (mappings/services/ID.json)" },
	{ "service", "automation", RAS_OPT_STRING, NULL, 0, 0, true, true, NULL,
	  "overrides the rule set's automation: administrative (default), all or none (checked with the rule sets)" },
	{ "triage", "default_service", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "rasd service for referrals that arrive with no service and no configured e-RS service id" },

	/* e-RS (issue 4): [ers] … */

	/* documents and delivery (issue 5): [mesh], [fhir], [routing], [outbox] … */

	/* daemon (issue 6): [http], [spool], [daemon] … */

	{ NULL, NULL, 0, NULL, 0, 0, false, false, NULL, NULL },
};

struct entry {
	char *section, *instance, *name, *value;
	int line;
};

struct ras_config {
	char *path;
	struct entry *v;
	size_t n, cap;
	char *instances[256];
	char *instance_sections[256];
	size_t ninst;
};

static const struct ras_option *
find_option(const char *section, const char *name)
{
	for (const struct ras_option *o = ras_options; o->name; o++)
		if (strcmp(o->section, section) == 0 && strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

static bool
section_known(const char *section, bool instanced)
{
	for (const struct ras_option *o = ras_options; o->name; o++)
		if (strcmp(o->section, section) == 0 && o->instanced == instanced)
			return true;
	return false;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int
add_entry(struct ras_config *c, const char *sec, const char *inst, const char *name,
    const char *value, int line)
{
	struct entry *e;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct entry *nv = realloc(c->v, cap * sizeof(*nv));

		if (nv == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		c->v = nv;
		c->cap = cap;
	}
	e = &c->v[c->n];
	e->section = strdup(sec);
	e->instance = strdup(inst);
	e->name = strdup(name);
	e->value = strdup(value);
	e->line = line;
	if (!e->section || !e->instance || !e->name || !e->value) {
		free(e->section);
		free(e->instance);
		free(e->name);
		free(e->value);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	c->n++;
	return 0;
}

static const char *
check_value(const struct ras_option *o, const char *v, char *buf, size_t size)
{
	switch (o->type) {
	case RAS_OPT_INT: {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end != '\0')
			return "is not an integer";
		if (n < o->min || n > o->max) {
			snprintf(buf, size, "must be between %lld and %lld", (long long)o->min,
			    (long long)o->max);
			return buf;
		}
		break;
	}
	case RAS_OPT_BOOL:
		if (strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "yes") && strcmp(v, "no") &&
		    strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "1") && strcmp(v, "0"))
			return "must be true or false";
		break;
	case RAS_OPT_URL:
		if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
			return "must be an http(s) URL";
		break;
	default:
		break;
	}
	if (o->validate)
		return o->validate(v, buf, size);
	return NULL;
}

static void
problem(struct ras_buf *problems, const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
problem(struct ras_buf *problems, const char *path, int line, const char *fmt, ...)
{
	va_list ap;

	if (problems == NULL)
		return;
	if (line > 0)
		(void)ras_buf_printf(problems, "%s:%d: ", path, line);
	else
		(void)ras_buf_printf(problems, "%s: ", path);
	va_start(ap, fmt);
	(void)ras_buf_vprintf(problems, fmt, ap);
	va_end(ap);
	(void)ras_buf_putc(problems, '\n');
}

int
ras_config_defaults(struct ras_config **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

int
ras_config_load(const char *path, struct ras_config **out, struct ras_buf *problems)
{
	struct ras_buf text = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	struct ras_config *c;
	char section[128] = "", instance[128] = "";
	bool section_ok = true;
	int err, line = 0, nprob = 0;
	char *p, *next;

	if ((err = ras_buf_read_file(&text, path)) < 0) {
		ras_buf_free(&text);
		return err;
	}
	if ((err = ras_config_defaults(&c)) < 0) {
		ras_buf_free(&text);
		return err;
	}
	c->path = strdup(path);
	for (p = text.data; p && *p; p = next) {
		char *l;

		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		line++;
		if (strlen(p) > RAS_CONFIG_LINE_MAX) {
			problem(problems, path, line, "line longer than %d characters", RAS_CONFIG_LINE_MAX);
			nprob++;
			continue;
		}
		l = trim(p);
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']'), *sp;

			if (end == NULL || *trim(end + 1) != '\0') {
				problem(problems, path, line, "malformed section header");
				nprob++;
				section_ok = false;
				continue;
			}
			*end = '\0';
			l = trim(l + 1);
			sp = strpbrk(l, " \t");
			instance[0] = '\0';
			if (sp) {
				*sp = '\0';
				snprintf(instance, sizeof(instance), "%s", trim(sp + 1));
			}
			snprintf(section, sizeof(section), "%s", l);
			section_ok = section_known(section, instance[0] != '\0');
			if (!section_ok) {
				if (section_known(section, instance[0] == '\0'))
					problem(problems, path, line, instance[0] ?
					    "section [%s] takes no name" : "section [%s] needs a name, e.g. [%s ID]",
					    section, section);
				else
					problem(problems, path, line, "unknown section [%s]", section);
				nprob++;
			} else if (instance[0] && c->ninst < sizeof(c->instances) / sizeof(c->instances[0])) {
				bool seen = false;

				for (size_t i = 0; i < c->ninst; i++)
					if (strcmp(c->instance_sections[i], section) == 0 &&
					    strcmp(c->instances[i], instance) == 0)
						seen = true;
				if (!seen) {
					c->instance_sections[c->ninst] = strdup(section);
					c->instances[c->ninst++] = strdup(instance);
				}
			}
			continue;
		}
		{
			char *eq = strchr(l, '='), *name, *value, buf[256];
			const struct ras_option *o;
			const char *why;

			if (eq == NULL) {
				problem(problems, path, line, "expected \"name = value\"");
				nprob++;
				continue;
			}
			*eq = '\0';
			name = trim(l);
			value = trim(eq + 1);
			if (!section_ok)
				continue;
			if (section[0] == '\0') {
				problem(problems, path, line, "option \"%s\" outside any section", name);
				nprob++;
				continue;
			}
			o = find_option(section, name);
			if (o == NULL) {
				problem(problems, path, line, "unknown option \"%s\" in [%s]", name, section);
				nprob++;
				continue;
			}
			if ((why = check_value(o, value, buf, sizeof(buf))) != NULL) {
				problem(problems, path, line, "%s.%s %s", section, name, why);
				nprob++;
				continue;
			}
			if ((err = add_entry(c, section, instance, name, value, line)) < 0) {
				ras_config_free(c);
				ras_buf_free(&text);
				return err;
			}
		}
	}
	ras_buf_free(&text);
	*out = c;
	if (nprob)
		return ras_error_code(RAS_EINVALID, "%d configuration problem(s) in %s", nprob, path);
	return 0;
}

void
ras_config_free(struct ras_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].section);
		free(c->v[i].instance);
		free(c->v[i].name);
		free(c->v[i].value);
	}
	for (size_t i = 0; i < c->ninst; i++) {
		free(c->instances[i]);
		free(c->instance_sections[i]);
	}
	free(c->v);
	free(c->path);
	free(c);
}

const char *
ras_config_get(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const struct ras_option *o = find_option(section, name);

	if (instance == NULL)
		instance = "";
	/* The last assignment wins, like most INI readers. */
	for (size_t i = c ? c->n : 0; i-- > 0;) {
		const struct entry *e = &c->v[i];

		if (strcmp(e->section, section) == 0 && strcmp(e->instance, instance) == 0 &&
		    strcmp(e->name, name) == 0)
			return e->value;
	}
	return o ? o->def : NULL;
}

int64_t
ras_config_int(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const char *v = ras_config_get(c, section, instance, name);

	return v ? strtoll(v, NULL, 10) : 0;
}

bool
ras_config_bool(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const char *v = ras_config_get(c, section, instance, name);

	return v && (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "on") == 0 ||
	    strcmp(v, "1") == 0);
}

size_t
ras_config_instances(const struct ras_config *c, const char *section, const char **names,
    size_t max)
{
	size_t n = 0;

	for (size_t i = 0; c && i < c->ninst; i++)
		if (strcmp(c->instance_sections[i], section) == 0) {
			if (n < max)
				names[n] = c->instances[i];
			n++;
		}
	return n;
}

int
ras_config_secret(const struct ras_config *c, const char *section, const char *instance,
    const char *name, struct ras_buf *out)
{
	const char *v = ras_config_get(c, section, instance, name);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];
	int err;

	if (v == NULL || *v == '\0')
		return ras_error_code(RAS_ENOTFOUND, "%s.%s is not set", section, name);
	if (v[0] == '/') {
		snprintf(path, sizeof(path), "%s", v);
	} else if (creds && strchr(v, '/') == NULL) {
		/* A bare name is a systemd credential (LoadCredential=). */
		if (snprintf(path, sizeof(path), "%s/%s", creds, v) >= (int)sizeof(path))
			return ras_error_code(RAS_EINVALID, "credential path too long");
	} else {
		snprintf(path, sizeof(path), "%s", v);
	}
	out->max = RAS_SECRET_MAX;
	if ((err = ras_buf_read_file(out, path)) < 0) {
		ras_error_context("secret %s.%s", section, name);
		return err;
	}
	while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
		out->data[--out->len] = '\0';
	return 0;
}

const char *
ras_config_path(const struct ras_config *c)
{
	return c ? c->path : NULL;
}

int
ras_config_list_each(const char *value, int (*fn)(const char *item, void *ctx), void *ctx)
{
	char item[RAS_CONFIG_LINE_MAX];
	const char *p = value;
	int err;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *t;

		if (len >= sizeof(item))
			return ras_error_code(RAS_ETOOBIG, "list item too long");
		memcpy(item, p, len);
		item[len] = '\0';
		t = trim(item);
		if (*t && (err = fn(t, ctx)) < 0)
			return err;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}
