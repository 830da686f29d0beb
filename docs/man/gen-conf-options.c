/*
 * gen-conf-options: the options of rasd.conf(5), written as scdoc from the
 * option table rasd itself uses (ras_config_options in lib/util/config.c),
 * so the manual cannot drift from the code.  Run at build time by meson:
 *
 *   gen-conf-options TEMPLATE OUT
 *
 * copies TEMPLATE to OUT, replacing the line "@OPTIONS@" with one entry per
 * option, grouped by section in the table's order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/config.h"

static const char *
type_name(enum ras_opt_type t)
{
	switch (t) {
	case RAS_OPT_STRING: return "string";
	case RAS_OPT_INT: return "integer";
	case RAS_OPT_BOOL: return "boolean";
	case RAS_OPT_PATH: return "path";
	case RAS_OPT_LIST: return "list";
	case RAS_OPT_SECRET: return "secret";
	case RAS_OPT_URL: return "URL";
	}
	return "string";
}

/* scdoc text: a backslash, '*' and '_' would start markup or escapes. */
static void
put_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '*' || *s == '_')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void
put_options(FILE *f)
{
	const char *section = NULL;
	bool instanced = false;

	for (const struct ras_option *o = ras_config_options; o->name; o++) {
		if (section == NULL || strcmp(section, o->section) != 0 || instanced != o->instanced) {
			section = o->section;
			instanced = o->instanced;
			fprintf(f, "## [%s%s]\n\n", section, instanced ? " ID" : "");
		}
		fputc('*', f);
		put_text(f, o->name);
		fprintf(f, "* = _%s_\n", type_name(o->type));
		fputc('\t', f);
		put_text(f, o->help);
		fputs(".", f);
		if (o->def) {
			fputs(" Default: ", f);
			put_text(f, o->def);
			fputs(".", f);
		} else {
			fputs(" Default: unset.", f);
		}
		if (o->type == RAS_OPT_INT)
			fprintf(f, " From %lld to %lld.", (long long)o->min, (long long)o->max);
		if (o->type == RAS_OPT_SECRET)
			fputs(" A file, or the name of a systemd credential; never the secret itself.", f);
		fputs(o->reloadable ? " Changes on SIGHUP." : " Needs a restart to change.", f);
		fputs("\n\n", f);
	}
}

int
main(int argc, char **argv)
{
	char line[4096];
	FILE *in, *out;

	if (argc != 3) {
		fprintf(stderr, "usage: gen-conf-options TEMPLATE OUT\n");
		return 64;
	}
	if ((in = fopen(argv[1], "r")) == NULL || (out = fopen(argv[2], "w")) == NULL) {
		perror("gen-conf-options");
		return 66;
	}
	while (fgets(line, sizeof(line), in)) {
		if (strcmp(line, "@OPTIONS@\n") == 0)
			put_options(out);
		else
			fputs(line, out);
	}
	if (ferror(in) || fclose(out) != 0) {
		perror("gen-conf-options");
		return 74;
	}
	fclose(in);
	return 0;
}
