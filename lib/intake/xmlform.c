/* xmlform: XML referral forms into R4 QuestionnaireResponse JSON (see include/ras/xmlform.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/date.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/xml.h"
#include "ras/xmlform.h"

#define FHIR_NS "http://hl7.org/fhir"

/* Files in mappings/form-maps/ (each one form layout). */
#define XMLFORM_MAPS_MAX 256
/* Fields of one map: a referral form has tens of questions. */
#define XMLFORM_FIELDS_MAX 1000
/* Namespace bindings of one map. */
#define XMLFORM_NS_MAX 16

enum ftype { F_BOOLEAN, F_INTEGER, F_DECIMAL, F_STRING, F_DATE, F_CODING };

struct field {
	const char *link_id;
	const char *xpath;
	enum ftype type;
	const char *system;
	json_t *codes;       /* object text -> code, or NULL */
	json_t *truev;       /* array of strings, or NULL for the defaults */
	json_t *falsev;
};

struct map {
	json_t *doc;         /* owns every string below */
	const char *name;
	const char *questionnaire;
	const char *root, *root_ns, *test;
	const char *authored;
	const char *cells;   /* XPath selecting the id of every answer cell, or NULL */
	json_t *not_carried; /* linkIds of the Questionnaire the layout does not carry */
	const char *ns[2 * XMLFORM_NS_MAX + 1];
	struct field *fields;
	size_t nfields;
};

struct ras_xmlform_maps {
	struct map *v;
	size_t n, cap;
};

int
ras_xmlform_maps_new(struct ras_xmlform_maps **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

size_t
ras_xmlform_maps_count(const struct ras_xmlform_maps *m)
{
	return m ? m->n : 0;
}

void
ras_xmlform_maps_free(struct ras_xmlform_maps *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].fields);
		json_decref(m->v[i].doc);
	}
	free(m->v);
	free(m);
}

static int
parse_type(const char *s, enum ftype *t)
{
	static const struct { const char *name; enum ftype t; } types[] = {
		{ "boolean", F_BOOLEAN }, { "integer", F_INTEGER }, { "decimal", F_DECIMAL },
		{ "string", F_STRING }, { "date", F_DATE }, { "coding", F_CODING },
	};

	for (size_t i = 0; s && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(s, types[i].name) == 0) {
			*t = types[i].t;
			return 0;
		}
	return -1;
}

static int
string_array_ok(const json_t *a)
{
	size_t i;
	json_t *v;

	if (a == NULL)
		return 1;
	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, v)
		if (!json_is_string(v))
			return 0;
	return 1;
}

static int
parse_map(const char *origin, json_t *doc, struct map *m)
{
	json_t *match = ras_json_obj(doc, "match"), *fields = ras_json_arr(doc, "fields");
	json_t *nsobj = ras_json_obj(doc, "namespaces"), *f, *v;
	const char *k;
	size_t i, nns = 0;
	int err;

	memset(m, 0, sizeof(*m));
	m->doc = doc;
	m->name = ras_json_str(doc, "name");
	m->questionnaire = ras_json_str(doc, "questionnaire");
	m->authored = ras_json_str(doc, "authored");
	m->cells = ras_json_str(doc, "cells");
	m->not_carried = json_object_get(doc, "not_carried");
	if (!string_array_ok(m->not_carried))
		return ras_error_code(RAS_EINVALID, "%s: \"not_carried\" must be a list of linkIds", origin);
	if (m->name == NULL || *m->name == '\0')
		return ras_error_code(RAS_EINVALID, "%s: \"name\" is missing", origin);
	if (m->questionnaire == NULL)
		return ras_error_code(RAS_EINVALID, "%s: \"questionnaire\" is missing", origin);
	if (match == NULL || (m->root = ras_json_str(match, "root")) == NULL)
		return ras_error_code(RAS_EINVALID, "%s: \"match\" must give at least \"root\"", origin);
	m->root_ns = ras_json_str(match, "namespace");
	m->test = ras_json_str(match, "xpath");
	json_object_foreach(nsobj, k, v) {
		if (!json_is_string(v) || nns >= XMLFORM_NS_MAX)
			return ras_error_code(RAS_EINVALID, "%s: bad or too many \"namespaces\"", origin);
		m->ns[2 * nns] = k;
		m->ns[2 * nns + 1] = json_string_value(v);
		nns++;
	}
	if (m->test && (err = ras_xml_xpath_check(m->test)) < 0) {
		ras_error_context("%s: match", origin);
		return err;
	}
	if (m->authored && (err = ras_xml_xpath_check(m->authored)) < 0) {
		ras_error_context("%s: authored", origin);
		return err;
	}
	if (m->cells && (err = ras_xml_xpath_check(m->cells)) < 0) {
		ras_error_context("%s: cells", origin);
		return err;
	}
	if (json_array_size(fields) == 0)
		return ras_error_code(RAS_EINVALID, "%s: \"fields\" must list at least one field", origin);
	if (json_array_size(fields) > XMLFORM_FIELDS_MAX)
		return ras_error_code(RAS_ETOOBIG, "%s: more than %d fields", origin, XMLFORM_FIELDS_MAX);
	m->fields = calloc(json_array_size(fields), sizeof(*m->fields));
	if (m->fields == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(fields, i, f) {
		struct field *fd = &m->fields[i];

		fd->link_id = ras_json_str(f, "linkId");
		fd->xpath = ras_json_str(f, "xpath");
		fd->system = ras_json_str(f, "system");
		fd->codes = ras_json_obj(f, "codes");
		fd->truev = json_object_get(f, "true");
		fd->falsev = json_object_get(f, "false");
		if (fd->link_id == NULL || *fd->link_id == '\0' || fd->xpath == NULL)
			return ras_error_code(RAS_EINVALID, "%s: field %zu needs \"linkId\" and \"xpath\"", origin,
			    i + 1);
		if (parse_type(ras_json_str(f, "type"), &fd->type) < 0)
			return ras_error_code(RAS_EINVALID,
			    "%s: field \"%.60s\" has no valid \"type\" (boolean, integer, decimal, string, date, coding)",
			    origin, fd->link_id);
		if (!string_array_ok(fd->truev) || !string_array_ok(fd->falsev))
			return ras_error_code(RAS_EINVALID, "%s: field \"%.60s\": \"true\"/\"false\" must be lists of strings",
			    origin, fd->link_id);
		if (fd->codes) {
			json_object_foreach(fd->codes, k, v)
				if (!json_is_string(v))
					return ras_error_code(RAS_EINVALID, "%s: field \"%.60s\": codes must map text to a code",
					    origin, fd->link_id);
		}
		if ((err = ras_xml_xpath_check(fd->xpath)) < 0) {
			ras_error_context("%s: field \"%.60s\"", origin, fd->link_id);
			return err;
		}
		m->nfields++;
	}
	return 0;
}

int
ras_xmlform_maps_add(struct ras_xmlform_maps *ms, const char *origin, const char *json, size_t len)
{
	struct map m;
	json_t *doc;
	int err;

	if (ms->n >= XMLFORM_MAPS_MAX)
		return ras_error_code(RAS_ETOOBIG, "more than %d form maps", XMLFORM_MAPS_MAX);
	if ((err = ras_json_parse(json, len, RAS_MAPPING_FILE_MAX, &doc)) < 0) {
		ras_error_context("%s", origin);
		return err;
	}
	if ((err = parse_map(origin, doc, &m)) < 0) {
		free(m.fields);
		json_decref(doc);
		return err;
	}
	for (size_t i = 0; i < ms->n; i++)
		if (strcmp(ms->v[i].name, m.name) == 0) {
			free(m.fields);
			json_decref(doc);
			return ras_error_code(RAS_EINVALID, "%s: form map name \"%.60s\" is used twice", origin,
			    ms->v[i].name);
		}
	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? ms->cap * 2 : 8;
		struct map *nv = realloc(ms->v, cap * sizeof(*nv));

		if (nv == NULL) {
			free(m.fields);
			json_decref(doc);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		ms->v = nv;
		ms->cap = cap;
	}
	ms->v[ms->n++] = m;
	return 0;
}

/* Every linkId of a Questionnaire's items, nested ones included. */
static int
collect_link_ids(const json_t *items, const char **out, size_t *n, size_t max, int depth)
{
	const json_t *it;
	size_t i;
	int err;

	if (depth > 16)
		return ras_error_code(RAS_EINVALID, "Questionnaire items nested too deeply");
	json_array_foreach(items, i, it) {
		const char *lid = ras_json_str(it, "linkId");
		const char *type = ras_json_str(it, "type");

		if (lid && !(type && (strcmp(type, "group") == 0 || strcmp(type, "display") == 0))) {
			if (*n >= max)
				return ras_error_code(RAS_ETOOBIG, "Questionnaire has more than %zu items", max);
			out[(*n)++] = lid;
		}
		if ((err = collect_link_ids(ras_json_arr(it, "item"), out, n, max, depth + 1)) < 0)
			return err;
	}
	return 0;
}

int
ras_xmlform_maps_check_questionnaire(const struct ras_xmlform_maps *ms, const json_t *q,
    struct ras_buf *problems)
{
	const char *url = ras_json_str(q, "url"), *ver = ras_json_str(q, "version");
	const char **ids;
	size_t n = 0;
	int bad = 0, err;

	if (ms == NULL || url == NULL)
		return 0;
	if ((ids = calloc(XMLFORM_FIELDS_MAX, sizeof(*ids))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = collect_link_ids(ras_json_arr(q, "item"), ids, &n, XMLFORM_FIELDS_MAX, 0)) < 0) {
		free(ids);
		return err;
	}
	for (size_t k = 0; k < ms->n; k++) {
		const struct map *m = &ms->v[k];
		const char *bar = strchr(m->questionnaire, '|');
		size_t ul = bar ? (size_t)(bar - m->questionnaire) : strlen(m->questionnaire);

		if (strlen(url) != ul || strncmp(m->questionnaire, url, ul) != 0 ||
		    (bar && (ver == NULL || strcmp(bar + 1, ver) != 0)))
			continue;
		for (size_t i = 0; i < n; i++) {
			bool placed = false;
			const json_t *x;
			size_t j;

			for (size_t f = 0; f < m->nfields && !placed; f++)
				placed = strcmp(m->fields[f].link_id, ids[i]) == 0;
			json_array_foreach(m->not_carried, j, x)
				placed = placed || strcmp(json_string_value(x), ids[i]) == 0;
			if (!placed) {
				bad++;
				(void)ras_buf_printf(problems, "form map \"%s\": item \"%.60s\" of %s is neither "
				    "mapped nor listed in \"not_carried\"\n", m->name, ids[i], m->questionnaire);
			}
		}
		for (size_t f = 0; f < m->nfields; f++) {
			bool known = false;

			for (size_t i = 0; i < n && !known; i++)
				known = strcmp(m->fields[f].link_id, ids[i]) == 0;
			if (!known) {
				bad++;
				(void)ras_buf_printf(problems, "form map \"%s\": field \"%.60s\" is not an item of %s\n",
				    m->name, m->fields[f].link_id, m->questionnaire);
			}
		}
		if (m->cells == NULL) {
			bad++;
			(void)ras_buf_printf(problems, "form map \"%s\": \"cells\" is missing: a cell the map "
			    "does not place would be dropped unseen\n", m->name);
		}
	}
	free(ids);
	if (bad)
		return ras_error_code(RAS_EINVALID, "%d problem(s) with form maps of %s", bad, url);
	return 0;
}

/* Check every map against the Questionnaire files in `forms_dir`; a map
 * whose Questionnaire is not there is a problem too. */
static int
check_against_forms(struct ras_xmlform_maps *ms, const char *forms_dir, struct ras_buf *problems)
{
	bool *found = calloc(ms->n + 1, sizeof(bool));
	struct dirent *de;
	DIR *d;
	int bad = 0;

	if (found == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((d = opendir(forms_dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct ras_buf text = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
			size_t l = strlen(de->d_name);
			char path[4096];
			json_t *q = NULL;

			if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0 || de->d_name[0] == '.')
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", forms_dir, de->d_name) >= (int)sizeof(path))
				continue;   /* a path this long names no file we wrote */
			if (ras_buf_read_file(&text, path) == 0 &&
			    ras_json_parse(text.data ? text.data : "", text.len, RAS_MAPPING_FILE_MAX, &q) == 0) {
				const char *url = ras_json_str(q, "url"), *ver = ras_json_str(q, "version");

				for (size_t k = 0; url && k < ms->n; k++) {
					const char *mq = ms->v[k].questionnaire, *bar = strchr(mq, '|');
					size_t ul = bar ? (size_t)(bar - mq) : strlen(mq);

					if (strlen(url) == ul && strncmp(mq, url, ul) == 0 &&
					    (bar == NULL || (ver && strcmp(bar + 1, ver) == 0)))
						found[k] = true;
				}
				if (ras_xmlform_maps_check_questionnaire(ms, q, problems) < 0)
					bad++;
			}
			json_decref(q);
			ras_buf_free(&text);
		}
		closedir(d);
	}
	for (size_t k = 0; k < ms->n; k++)
		if (!found[k]) {
			bad++;
			(void)ras_buf_printf(problems, "form map \"%s\": no Questionnaire %s in %s\n",
			    ms->v[k].name, ms->v[k].questionnaire, forms_dir);
		}
	free(found);
	return bad;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
ras_xmlform_maps_load(const char *dir, struct ras_xmlform_maps **out, struct ras_buf *problems)
{
	struct ras_xmlform_maps *ms = NULL;
	char *names[XMLFORM_MAPS_MAX];
	size_t nnames = 0;
	struct dirent *de;
	DIR *d;
	int err, bad = 0;

	if ((err = ras_xmlform_maps_new(&ms)) < 0)
		return err;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT) {
			*out = ms;
			return 0;
		}
		ras_xmlform_maps_free(ms);
		return ras_error_code(RAS_EIO, "cannot read form maps directory \"%s\": %s", dir,
		    strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0 || de->d_name[0] == '.')
			continue;
		if (nnames >= XMLFORM_MAPS_MAX) {
			bad++;
			(void)ras_buf_printf(problems, "%s: more than %d form maps\n", dir, XMLFORM_MAPS_MAX);
			break;
		}
		if ((names[nnames] = strdup(de->d_name)) == NULL)
			break;
		nnames++;
	}
	closedir(d);
	/* Deterministic order: the first matching map wins, by file name. */
	qsort(names, nnames, sizeof(names[0]), by_name);
	for (size_t i = 0; i < nnames; i++) {
		struct ras_buf text = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((err = ras_buf_read_file(&text, path)) < 0 ||
		    (err = ras_xmlform_maps_add(ms, path, text.data ? text.data : "", text.len)) < 0) {
			bad++;
			(void)ras_buf_printf(problems, "%s\n", ras_error_last());
		}
		ras_buf_free(&text);
		free(names[i]);
	}
	{
		/* The maps read forms into the Questionnaires of ../forms: every item
		 * must be mapped or declared not carried (issue 12). */
		char forms[4096];
		const char *slash = strrchr(dir, '/');
		int n, fl;

		fl = slash ? snprintf(forms, sizeof(forms), "%.*s/forms", (int)(slash - dir), dir) :
		    snprintf(forms, sizeof(forms), "forms");

		if (fl < 0 || fl >= (int)sizeof(forms))
			forms[0] = '\0';   /* too long: no Questionnaire found, each map reported */
		if (ms->n > 0 && (n = check_against_forms(ms, forms, problems)) != 0) {
			if (n < 0) {
				ras_xmlform_maps_free(ms);
				return n;
			}
			bad += n;
		}
	}
	*out = ms;
	if (bad)
		return ras_error_code(RAS_EINVALID, "%d form map(s) in %s could not be used", bad, dir);
	return 0;
}

/* --- FHIR XML ------------------------------------------------------------- */

/* Elements of a QuestionnaireResponse (and the data types inside it) that
 * repeat, so JSON holds them as arrays. */
static bool
repeats(const char *name)
{
	static const char *const names[] = {
		"item", "answer", "extension", "modifierExtension", "basedOn", "partOf", "coding",
		"profile", "tag", "security", "given", "prefix", "suffix", "line", "telecom",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static int
fhir_primitive(const char *name, const char *value, json_t **out)
{
	if (strcmp(name, "valueBoolean") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return ras_error_code(RAS_EINVALID, "FHIR XML <%s> is not true or false", name);
		*out = json_boolean(strcmp(value, "true") == 0);
	} else if (strcmp(name, "valueInteger") == 0 || strcmp(name, "valueUnsignedInt") == 0 ||
	    strcmp(name, "valuePositiveInt") == 0) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end != '\0')
			return ras_error_code(RAS_EINVALID, "FHIR XML <%s> is not an integer", name);
		*out = json_integer(v);
	} else if (strcmp(name, "valueDecimal") == 0) {
		char *end;
		double v;

		errno = 0;
		v = strtod(value, &end);
		if (errno || end == value || *end != '\0')
			return ras_error_code(RAS_EINVALID, "FHIR XML <%s> is not a decimal", name);
		*out = json_real(v);
	} else {
		if (strlen(value) > RAS_STRING_MAX)
			return ras_error_code(RAS_ETOOBIG, "FHIR XML <%s> is longer than %u characters", name,
			    RAS_STRING_MAX);
		*out = json_string(value);
	}
	return *out ? 0 : ras_error_code(RAS_EINVALID, "FHIR XML <%s> is not valid UTF-8", name);
}

static int
fhir_element(struct ras_arena *a, const struct ras_xml_node *n, int depth, json_t *obj)
{
	int err;

	if (depth > 32)
		return ras_error_code(RAS_EINVALID, "FHIR XML nested too deeply");
	for (const struct ras_xml_node *c = ras_xml_first(n); c; c = ras_xml_next(c)) {
		const char *name = ras_xml_name(c), *ns = ras_xml_ns(c);
		const char *value = ras_xml_attr(a, c, "value");
		json_t *v = NULL;

		if (ns == NULL || strcmp(ns, FHIR_NS) != 0)
			continue;               /* narrative XHTML and foreign elements */
		if (depth == 0 && (strcmp(name, "text") == 0 || strcmp(name, "contained") == 0))
			continue;
		if (value && ras_xml_first(c) == NULL) {
			if ((err = fhir_primitive(name, value, &v)) < 0)
				return err;
		} else {
			const char *url = ras_xml_attr(a, c, "url"), *id = ras_xml_attr(a, c, "id");

			if ((v = json_object()) == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			if ((url && (err = ras_json_set_str(v, "url", url)) < 0) ||
			    (id && (err = ras_json_set_str(v, "id", id)) < 0) ||
			    (err = fhir_element(a, c, depth + 1, v)) < 0) {
				json_decref(v);
				return err;
			}
		}
		if (repeats(name)) {
			json_t *arr = json_object_get(obj, name);

			if (arr == NULL) {
				arr = json_array();
				if (arr == NULL || json_object_set_new(obj, name, arr) < 0) {
					json_decref(v);
					return ras_error_code(RAS_ENOMEM, "out of memory");
				}
			}
			if ((err = ras_json_append_new(arr, v)) < 0)
				return err;
		} else {
			if (json_object_get(obj, name)) {
				json_decref(v);
				return ras_error_code(RAS_EINVALID, "FHIR XML element <%.60s> appears more than once",
				    name);
			}
			if ((err = ras_json_set_new(obj, name, v)) < 0)
				return err;
		}
	}
	return 0;
}

/* --- mapped XML ----------------------------------------------------------- */

/* Trim both ends and collapse inner whitespace runs to one space, as a
 * browser shows an XHTML form (layout line breaks are not content). */
static char *
clean(struct ras_arena *a, const char *s)
{
	size_t len = strlen(s);
	char *out, *o;

	while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
	    s[len - 1] == '\r'))
		len--;
	out = ras_arena_strndup(a, s, len);
	if (out == NULL)
		return out;
	o = out;
	for (const char *p = out; *p; p++) {
		bool ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';

		if (ws && o > out && o[-1] == ' ')
			continue;
		*o++ = ws ? ' ' : *p;
	}
	*o = '\0';
	return out;
}

static bool
in_list(const json_t *list, const char *const *defaults, const char *v)
{
	size_t i;
	json_t *x;

	if (list == NULL) {
		for (i = 0; defaults[i]; i++)
			if (strcasecmp(defaults[i], v) == 0)
				return true;
		return false;
	}
	json_array_foreach(list, i, x)
		if (strcasecmp(json_string_value(x), v) == 0)
			return true;
	return false;
}

/* "dd/mm/yyyy" (the UK way forms write dates) or "yyyy-mm-dd". */
static int
to_iso_date(const char *v, char out[RAS_DATE_STR_MAX])
{
	struct ras_date d;
	int dd, mm, yy;
	char tail;

	if (strlen(v) == 10 && v[2] == '/' && v[5] == '/' &&
	    sscanf(v, "%2d/%2d/%4d%c", &dd, &mm, &yy, &tail) == 3) {
		d.day = dd;
		d.month = mm;
		d.year = yy;
		if (!ras_date_valid(&d))
			return -1;
		ras_date_format(&d, out);
		return 0;
	}
	if (ras_date_parse(v, &d) < 0)
		return -1;
	ras_date_format(&d, out);
	return 0;
}

static int
answer(struct ras_arena *a, const struct field *f, const char *raw, json_t **out)
{
	static const char *const yes[] = { "yes", "y", "true", "1", "checked", "on", "x", NULL };
	static const char *const no[] = { "no", "n", "false", "0", "unchecked", "off", NULL };
	const char *v = clean(a, raw);
	json_t *val = NULL;
	const char *key = NULL;

	*out = NULL;
	if (v == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (*v == '\0')
		return 0;
	switch (f->type) {
	case F_BOOLEAN:
		key = "valueBoolean";
		if (in_list(f->truev, yes, v))
			val = json_true();
		else if (in_list(f->falsev, no, v))
			val = json_false();
		else
			return ras_error_code(RAS_EINVALID, "form field \"%.60s\" is not a yes/no answer",
			    f->link_id);
		break;
	case F_INTEGER: {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end != '\0')
			return ras_error_code(RAS_EINVALID, "form field \"%.60s\" is not a whole number",
			    f->link_id);
		key = "valueInteger";
		val = json_integer(n);
		break;
	}
	case F_DECIMAL: {
		char *end;
		double d;

		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end != '\0')
			return ras_error_code(RAS_EINVALID, "form field \"%.60s\" is not a number", f->link_id);
		key = "valueDecimal";
		val = json_real(d);
		break;
	}
	case F_STRING:
		if (strlen(v) > RAS_STRING_MAX)
			return ras_error_code(RAS_ETOOBIG, "form field \"%.60s\" is longer than %u characters",
			    f->link_id, RAS_STRING_MAX);
		key = "valueString";
		val = json_string(v);
		break;
	case F_DATE: {
		char iso[RAS_DATE_STR_MAX];

		if (to_iso_date(v, iso) < 0)
			return ras_error_code(RAS_EINVALID, "form field \"%.60s\" is not a date", f->link_id);
		key = "valueDate";
		val = json_string(iso);
		break;
	}
	case F_CODING: {
		const char *code = v;

		if (f->codes) {
			const char *k;
			json_t *c;

			code = NULL;
			json_object_foreach(f->codes, k, c)
				if (strcasecmp(k, v) == 0)
					code = json_string_value(c);
			if (code == NULL)
				return ras_error_code(RAS_EINVALID,
				    "form field \"%.60s\" has an answer the form map does not list", f->link_id);
		}
		if (strlen(code) > RAS_ID_MAX)
			return ras_error_code(RAS_ETOOBIG, "form field \"%.60s\" code is too long", f->link_id);
		key = "valueCoding";
		val = json_pack("{s:s}", "code", code);
		if (val && f->system)
			(void)ras_json_set_str(val, "system", f->system);
		if (val && f->codes)
			(void)ras_json_set_str(val, "display", v);
		break;
	}
	}
	if (val == NULL)
		return ras_error_code(RAS_EINVALID, "form field \"%.60s\" is not valid text", f->link_id);
	*out = json_object();
	if (*out == NULL || json_object_set_new(*out, key, val) < 0) {
		json_decref(*out);
		*out = NULL;
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	return 0;
}

static int
apply_map(struct ras_arena *a, const struct map *m, const struct ras_xml_doc *doc, json_t *qr)
{
	json_t *items = json_array();
	const char **vals;
	size_t nv;
	int err;

	if (items == NULL || json_object_set_new(qr, "item", items) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_json_set_str(qr, "questionnaire", m->questionnaire)) < 0 ||
	    (err = ras_json_set_str(qr, "status", "completed")) < 0)
		return err;
	if (m->authored) {
		if ((err = ras_xml_xpath(a, doc, m->authored, m->ns, &vals, &nv)) < 0)
			return err;
		if (nv > 0) {
			const char *au = clean(a, vals[0]);

			if (au && *au)
				(void)ras_json_set_str(qr, "authored", au);
		}
	}
	for (size_t i = 0; i < m->nfields; i++) {
		const struct field *f = &m->fields[i];
		json_t *item = NULL, *answers = NULL;

		if ((err = ras_xml_xpath(a, doc, f->xpath, m->ns, &vals, &nv)) < 0) {
			ras_error_context("form map \"%s\" field \"%.60s\"", m->name, f->link_id);
			return err;
		}
		if (nv > RAS_FORM_ANSWERS_MAX)
			return ras_error_code(RAS_ETOOBIG, "form field \"%.60s\" has more than %d answers",
			    f->link_id, RAS_FORM_ANSWERS_MAX);
		for (size_t k = 0; k < nv; k++) {
			json_t *ans;

			if ((err = answer(a, f, vals[k], &ans)) < 0)
				return err;
			if (ans == NULL)
				continue;
			if (item == NULL) {
				item = json_pack("{s:s, s:[]}", "linkId", f->link_id, "answer");
				if (item == NULL || json_array_append_new(items, item) < 0) {
					json_decref(ans);
					return ras_error_code(RAS_ENOMEM, "out of memory");
				}
				answers = json_object_get(item, "answer");
			}
			if ((err = ras_json_append_new(answers, ans)) < 0)
				return err;
		}
	}
	if (m->cells) {
		/* A cell the map does not place is an answer rasd would drop: the
		 * response is incomplete, and each such cell is named (its id, never
		 * its text) for the safety net. */
		json_t *exts = NULL;

		if ((err = ras_xml_xpath(a, doc, m->cells, m->ns, &vals, &nv)) < 0) {
			ras_error_context("form map \"%s\" cells", m->name);
			return err;
		}
		for (size_t k = 0; k < nv && k < RAS_FORM_ANSWERS_MAX; k++) {
			const char *id = clean(a, vals[k]);
			bool known = false;

			if (id == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			for (size_t i = 0; i < m->nfields && !known; i++)
				known = strcmp(m->fields[i].link_id, id) == 0;
			if (known)
				continue;
			if (strlen(id) > RAS_ID_MAX)
				id = "(id too long)";
			if (exts == NULL && ((exts = json_array()) == NULL ||
			    json_object_set_new(qr, "extension", exts) < 0))
				return ras_error_code(RAS_ENOMEM, "out of memory");
			if ((err = ras_json_append_new(exts, json_pack("{s:s, s:s}", "url",
			    "urn:rasd:form-map:unmapped-cell", "valueString", id))) < 0)
				return err;
		}
		if (exts && (err = ras_json_set_str(qr, "status", "in-progress")) < 0)
			return err;
	}
	return 0;
}

static bool
map_matches(struct ras_arena *a, const struct map *m, const struct ras_xml_doc *doc)
{
	const struct ras_xml_node *root = ras_xml_root(doc);
	const char *ns = ras_xml_ns(root);
	const char **vals;
	size_t nv;

	if (strcmp(ras_xml_name(root), m->root) != 0)
		return false;
	if (m->root_ns && (ns == NULL || strcmp(ns, m->root_ns) != 0))
		return false;
	if (m->root_ns == NULL && ns != NULL)
		return false;
	if (m->test == NULL)
		return true;
	{
		char *expr = ras_arena_printf(a, "boolean(%s)", m->test);

		if (expr == NULL || ras_xml_xpath(a, doc, expr, m->ns, &vals, &nv) < 0 || nv != 1)
			return false;
		return strcmp(vals[0], "true") == 0;
	}
}

int
ras_xmlform_read(struct ras_arena *a, const struct ras_xmlform_maps *maps, const char *data,
    size_t len, json_t **qr, const char **how)
{
	struct ras_xml_doc *doc;
	const struct ras_xml_node *root;
	const char *ns;
	json_t *out;
	int err;

	*qr = NULL;
	if ((err = ras_xml_parse(a, data, len, RAS_PAYLOAD_MAX, &doc)) < 0)
		return err;
	root = ras_xml_root(doc);
	ns = ras_xml_ns(root);
	if ((out = json_object()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_json_arena_own(a, out)) < 0)
		return err;
	if ((err = ras_json_set_str(out, "resourceType", "QuestionnaireResponse")) < 0)
		return err;
	if (ns && strcmp(ns, FHIR_NS) == 0) {
		if (strcmp(ras_xml_name(root), "QuestionnaireResponse") != 0)
			return ras_error_code(RAS_EINVALID,
			    "FHIR XML %.40s is not a referral form (only a QuestionnaireResponse is read)",
			    ras_xml_name(root));
		if ((err = fhir_element(a, root, 0, out)) < 0)
			return err;
		*qr = out;
		if (how)
			*how = "fhir-xml";
		return 0;
	}
	for (size_t i = 0; maps && i < maps->n; i++) {
		const struct map *m = &maps->v[i];

		if (!map_matches(a, m, doc))
			continue;
		if ((err = apply_map(a, m, doc, out)) < 0) {
			ras_error_context("form map \"%s\"", m->name);
			return err;
		}
		*qr = out;
		if (how)
			*how = m->name;
		return 0;
	}
	return ras_error_code(RAS_EINVALID,
	    "XML <%.40s> is not a FHIR QuestionnaireResponse and no form map in mappings/form-maps "
	    "recognises it", ras_xml_name(root));
}
