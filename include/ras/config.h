/*
 * config: rasd's INI-style configuration, described by one declarative
 * table of options (section, name, type, default, bounds, reloadable,
 * validator, help) in lib/config.c.
 *
 *   # comment
 *   [database]
 *   conninfo = host=/run/postgresql dbname=rasd
 *   [service midnotts]          # a section with an instance name
 *   ers_service_ids = 21012, 21013
 *
 * Loading collects every problem (unknown section or option, bad value,
 * out of bounds, failed validator) instead of stopping at the first, so
 * `rasd --check-config` can print them all.  Secrets never live in this
 * file: options of type SECRET name a file, and ras_config_secret() reads
 * it, or the systemd credential of the same name from
 * $CREDENTIALS_DIRECTORY.  A conninfo carrying a password is refused.
 */
#ifndef RAS_CONFIG_H
#define RAS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ras_arena;
struct ras_buf;
struct ras_config;

enum ras_opt_type {
	RAS_OPT_STRING,
	RAS_OPT_INT,
	RAS_OPT_BOOL,
	RAS_OPT_PATH,      /* a file or directory path */
	RAS_OPT_LIST,      /* comma-separated values */
	RAS_OPT_SECRET,    /* the path of a file holding a secret, or a credential name */
	RAS_OPT_URL,
};

struct ras_option {
	const char *section;     /* "database", "service" (instance sections: "[service ID]") */
	const char *name;
	enum ras_opt_type type;
	const char *def;         /* default as text; NULL = unset */
	int64_t min, max;        /* bounds for RAS_OPT_INT */
	bool reloadable;         /* may change on SIGHUP */
	bool instanced;          /* section takes an instance name */
	/* Extra check: return NULL when fine, else a message (static or in buf). */
	const char *(*validate)(const char *value, char *buf, size_t size);
	const char *help;
};

/* The table (terminated by a NULL name). */
extern const struct ras_option ras_config_options[];

/* Load and validate. Problems are appended to `problems` one per line;
 * returns RAS_EINVALID when there are any (the config is still returned so
 * callers may show it), or RAS_EIO when the file cannot be read. */
int ras_config_load(const char *path, struct ras_config **out, struct ras_buf *problems);

/* An empty configuration with every default (for tools run without a file). */
int ras_config_defaults(struct ras_config **out);

void ras_config_free(struct ras_config *cfg);

/* Value of an option ("" instance for non-instanced sections); NULL when
 * unset and without default. */
const char *ras_config_get(const struct ras_config *cfg, const char *section,
    const char *instance, const char *name);
int64_t ras_config_int(const struct ras_config *cfg, const char *section,
    const char *instance, const char *name);
bool ras_config_bool(const struct ras_config *cfg, const char *section,
    const char *instance, const char *name);

/* Instances of an instanced section, in file order. Returns the count;
 * names[i] stay valid while cfg lives. */
size_t ras_config_instances(const struct ras_config *cfg, const char *section,
    const char **names, size_t max);

/* Read the secret named by a SECRET option into out (trailing newline
 * removed), bounded by RAS_SECRET_MAX. */
int ras_config_secret(const struct ras_config *cfg, const char *section, const char *instance,
    const char *name, struct ras_buf *out);

/* The same secret as an arena string (the read buffer is wiped); *out is
 * NULL, and 0 returned, when the option is not set. */
int ras_config_secret_string(const struct ras_config *cfg, struct ras_arena *a,
    const char *section, const char *name, const char **out);

/* A SECRET option that names a key file for a library (which reads it
 * itself): its path, a bare name resolved under $CREDENTIALS_DIRECTORY;
 * NULL when not set (or out of memory). */
const char *ras_config_secret_path(const struct ras_config *cfg, struct ras_arena *a,
    const char *section, const char *name);

/* The path the config was read from (NULL for defaults). */
const char *ras_config_path(const struct ras_config *cfg);

/* Split a LIST value: calls fn for each trimmed item; stops on fn < 0. */
int ras_config_list_each(const char *value, int (*fn)(const char *item, void *ctx), void *ctx);

#endif
