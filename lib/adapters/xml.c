/* xml: libxml2 adapter (see include/ras/xml.h). */
#include <stdint.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <libxml/xmlsave.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/xml.h"

/* --- reading ------------------------------------------------------------ */

struct ras_xml_doc {
	xmlDocPtr doc;
};

static void
free_doc(void *p)
{
	xmlFreeDoc(p);
}

/* lib/ never writes to stderr: libxml2's generic error printer is off,
 * and errors are read from the parser context instead. */
static void
quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

/* libxml2 keeps its error handler per thread: each thread that parses
 * (the loop, rasd's intake workers) sets it once, or libxml2 would print
 * parser errors, with pieces of the document, to stderr. */
static void
ensure_init(void)
{
	static _Thread_local int ready;

	if (!ready) {
		xmlInitParser();
		xmlSetGenericErrorFunc(NULL, quiet);
		ready = 1;
	}
}

/* Does the internal subset declare any entity? */
static int
declares_entities(xmlDocPtr doc)
{
	xmlDtdPtr dtd = doc->intSubset;

	if (dtd == NULL)
		return 0;
	for (xmlNodePtr n = dtd->children; n; n = n->next)
		if (n->type == XML_ENTITY_DECL)
			return 1;
	return 0;
}

int
ras_xml_parse(struct ras_arena *a, const char *data, size_t len, size_t max,
    struct ras_xml_doc **out)
{
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	struct ras_xml_doc *d;
	int err;

	if (max && len > max)
		return ras_error_code(RAS_ETOOBIG, "XML document of %zu bytes exceeds the limit of %zu bytes",
		    len, max);
	if (len > (size_t)INT32_MAX)
		return ras_error_code(RAS_ETOOBIG, "XML document too large");
	ensure_init();
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* NONET: never fetch anything; no NOENT (entities are not substituted),
	 * no DTDLOAD/DTDATTR (external DTDs are not read); no HUGE, so
	 * libxml2's own depth and length limits stay on. */
	doc = xmlCtxtReadMemory(ctxt, data, (int)len, "payload.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL || !ctxt->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[200] = "not well-formed XML";

		if (e && e->message) {
			size_t ml;

			snprintf(msg, sizeof(msg), "%s", e->message);
			ml = strlen(msg);
			while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
				msg[--ml] = '\0';
		}
		err = ras_error_code(RAS_EINVALID, "malformed XML at line %d: %s", e ? e->line : 0, msg);
		xmlFreeDoc(doc);
		xmlFreeParserCtxt(ctxt);
		return err;
	}
	xmlFreeParserCtxt(ctxt);
	if (declares_entities(doc)) {
		xmlFreeDoc(doc);
		return ras_error_code(RAS_EINVALID, "XML document declares entities in its DTD: refused");
	}
	if (xmlDocGetRootElement(doc) == NULL) {
		xmlFreeDoc(doc);
		return ras_error_code(RAS_EINVALID, "XML document has no root element");
	}
	if ((err = ras_arena_defer(a, free_doc, doc)) < 0)
		return err;
	d = ras_arena_alloc(a, sizeof(*d));
	if (d == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	d->doc = doc;
	*out = d;
	return 0;
}

const struct ras_xml_node *
ras_xml_root(const struct ras_xml_doc *d)
{
	return (const struct ras_xml_node *)xmlDocGetRootElement(d->doc);
}

const char *
ras_xml_name(const struct ras_xml_node *n)
{
	return (const char *)((const xmlNode *)n)->name;
}

const char *
ras_xml_ns(const struct ras_xml_node *n)
{
	const xmlNode *x = (const xmlNode *)n;

	return x->ns ? (const char *)x->ns->href : NULL;
}

static const struct ras_xml_node *
element_from(const xmlNode *x)
{
	while (x && x->type != XML_ELEMENT_NODE)
		x = x->next;
	return (const struct ras_xml_node *)x;
}

const struct ras_xml_node *
ras_xml_first(const struct ras_xml_node *n)
{
	return element_from(((const xmlNode *)n)->children);
}

const struct ras_xml_node *
ras_xml_next(const struct ras_xml_node *n)
{
	return element_from(((const xmlNode *)n)->next);
}

static const char *
to_arena(struct ras_arena *a, xmlChar *s)
{
	const char *r;

	if (s == NULL)
		return NULL;
	r = ras_arena_strdup(a, (const char *)s);
	xmlFree(s);
	return r;
}

const char *
ras_xml_attr(struct ras_arena *a, const struct ras_xml_node *n, const char *name)
{
	return to_arena(a, xmlGetNoNsProp((const xmlNode *)n, (const xmlChar *)name));
}

const char *
ras_xml_text(struct ras_arena *a, const struct ras_xml_node *n)
{
	return to_arena(a, xmlNodeGetContent((const xmlNode *)n));
}

int
ras_xml_xpath(struct ras_arena *a, const struct ras_xml_doc *d, const char *expr,
    const char *const *ns, const char ***values, size_t *n)
{
	xmlXPathContextPtr ctx;
	xmlXPathObjectPtr obj = NULL;
	const char **v = NULL;
	size_t count = 0;
	int err = 0;

	*values = NULL;
	*n = 0;
	ensure_init();
	ctx = xmlXPathNewContext(d->doc);
	if (ctx == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; ns && ns[i] && ns[i + 1]; i += 2)
		if (xmlXPathRegisterNs(ctx, (const xmlChar *)ns[i], (const xmlChar *)ns[i + 1]) != 0) {
			err = ras_error_code(RAS_EINVALID, "cannot bind XPath prefix \"%.40s\"", ns[i]);
			goto done;
		}
	obj = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	if (obj == NULL) {
		err = ras_error_code(RAS_EINVALID, "invalid XPath expression \"%.120s\"", expr);
		goto done;
	}
	switch (obj->type) {
	case XPATH_NODESET: {
		xmlNodeSetPtr set = obj->nodesetval;

		count = set ? (size_t)set->nodeNr : 0;
		v = ras_arena_calloc(a, count ? count : 1, sizeof(*v));
		if (v == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < count; i++) {
			v[i] = to_arena(a, xmlXPathCastNodeToString(set->nodeTab[i]));
			if (v[i] == NULL) {
				err = ras_error_code(RAS_ENOMEM, "out of memory");
				goto done;
			}
		}
		break;
	}
	case XPATH_BOOLEAN:
	case XPATH_NUMBER:
	case XPATH_STRING:
		count = 1;
		v = ras_arena_calloc(a, 1, sizeof(*v));
		if (v == NULL || (v[0] = to_arena(a, xmlXPathCastToString(obj))) == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		break;
	default:
		err = ras_error_code(RAS_EINVALID, "XPath expression \"%.120s\" gives an unsupported result",
		    expr);
		goto done;
	}
	*values = v;
	*n = count;
done:
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	return err;
}

int
ras_xml_xpath_check(const char *expr)
{
	xmlXPathCompExprPtr c;

	ensure_init();
	c = xmlXPathCompile((const xmlChar *)expr);
	if (c == NULL)
		return ras_error_code(RAS_EINVALID, "invalid XPath expression \"%.120s\"", expr);
	xmlXPathFreeCompExpr(c);
	return 0;
}

/* --- writing ------------------------------------------------------------ */

#define XHTML_NS "http://www.w3.org/1999/xhtml"
#define FHIR_NS  "http://hl7.org/fhir"

struct ras_xhtml {
	xmlDocPtr doc;
	xmlNodePtr cur;
	xmlNsPtr ns;
	bool page;
	int err;
};

/* Length of a valid UTF-8 sequence at s that is also an XML 1.0 Char,
 * else 0. */
static size_t
xml_char_len(const unsigned char *s)
{
	unsigned c = s[0];
	uint32_t cp;
	size_t n;

	if (c < 0x80)
		return (c >= 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) ? 1 : 0;
	if ((c & 0xe0) == 0xc0) {
		n = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, non-characters XML refuses */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
		return 0;
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff || cp > 0x10ffff)
		return 0;
	return n;
}

/* A copy of s that libxml2 can hold: invalid bytes become U+FFFD. */
static xmlChar *
clean_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0;
	xmlChar *out;

	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = xmlMalloc(len * 3 + 1);
	if (out == NULL)
		return NULL;
	while (*p) {
		size_t n = xml_char_len(p);

		if (n == 0) {
			out[o++] = 0xef;
			out[o++] = 0xbf;
			out[o++] = 0xbd;
			p++;
			continue;
		}
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
	return out;
}

static int
xhtml_new(struct ras_arena *a, const char *root, bool page, struct ras_xhtml **out)
{
	struct ras_xhtml *x = ras_arena_alloc(a, sizeof(*x));
	xmlNodePtr r;

	if (x == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	x->doc = xmlNewDoc(BAD_CAST "1.0");
	if (x->doc == NULL || ras_arena_defer(a, free_doc, x->doc) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	r = xmlNewDocNode(x->doc, NULL, BAD_CAST root, NULL);
	if (r == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	xmlDocSetRootElement(x->doc, r);
	x->ns = xmlNewNs(r, BAD_CAST XHTML_NS, NULL);
	if (x->ns == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	xmlSetNs(r, x->ns);
	if (page)
		xmlNewProp(r, BAD_CAST "lang", BAD_CAST "en");
	x->cur = r;
	x->page = page;
	*out = x;
	return 0;
}

int
ras_xml_xhtml_new_div(struct ras_arena *a, struct ras_xhtml **out)
{
	return xhtml_new(a, "div", false, out);
}

int
ras_xml_xhtml_new_page(struct ras_arena *a, struct ras_xhtml **out)
{
	return xhtml_new(a, "html", true, out);
}

static void
fail(struct ras_xhtml *x, int code, const char *what)
{
	if (x->err == 0)
		x->err = ras_error_code(code, "could not build XHTML: %s", what);
}

static xmlNodePtr
add_element(struct ras_xhtml *x, const char *tag, const char *cls)
{
	xmlNodePtr n;

	if (x->err)
		return NULL;
	n = xmlNewDocNode(x->doc, x->ns, BAD_CAST tag, NULL);
	if (n == NULL || xmlAddChild(x->cur, n) == NULL) {
		xmlFreeNode(n);
		fail(x, RAS_ENOMEM, "out of memory");
		return NULL;
	}
	if (cls && xmlNewProp(n, BAD_CAST "class", BAD_CAST cls) == NULL) {
		fail(x, RAS_ENOMEM, "out of memory");
		return NULL;
	}
	return n;
}

void
ras_xml_xhtml_open(struct ras_xhtml *x, const char *tag, const char *cls)
{
	xmlNodePtr n = add_element(x, tag, cls);

	if (n)
		x->cur = n;
}

void
ras_xml_xhtml_close(struct ras_xhtml *x)
{
	if (x->err)
		return;
	if (x->cur->parent == NULL || x->cur->parent->type != XML_ELEMENT_NODE) {
		fail(x, RAS_ERROR, "close() without open()");
		return;
	}
	x->cur = x->cur->parent;
}

static void
add_text(struct ras_xhtml *x, xmlNodePtr to, const char *text)
{
	xmlChar *t;
	xmlNodePtr n;

	if (x->err || text == NULL || *text == '\0')
		return;
	t = clean_text(text);
	n = t ? xmlNewDocText(x->doc, t) : NULL;
	xmlFree(t);
	if (n == NULL || xmlAddChild(to, n) == NULL) {
		xmlFreeNode(n);
		fail(x, RAS_ENOMEM, "out of memory");
	}
}

void
ras_xml_xhtml_leaf(struct ras_xhtml *x, const char *tag, const char *cls, const char *text)
{
	xmlNodePtr n = add_element(x, tag, cls);

	if (n)
		add_text(x, n, text);
}

void
ras_xml_xhtml_text(struct ras_xhtml *x, const char *text)
{
	if (x->err == 0)
		add_text(x, x->cur, text);
}

void
ras_xml_xhtml_attr(struct ras_xhtml *x, const char *name, const char *value)
{
	xmlChar *v;

	if (x->err)
		return;
	v = clean_text(value ? value : "");
	if (v == NULL || xmlSetProp(x->cur, BAD_CAST name, v) == NULL)
		fail(x, RAS_ENOMEM, "out of memory");
	xmlFree(v);
}

/* Parse a fragment into a node of `doc` (caller adds it). */
static xmlNodePtr
parse_fragment(xmlDocPtr doc, const char *fragment, int *err)
{
	size_t len = strlen(fragment);
	xmlDocPtr f;
	xmlNodePtr copy;

	if (len > RAS_STRING_MAX * 16) {
		*err = ras_error_code(RAS_ETOOBIG, "XHTML fragment is too large");
		return NULL;
	}
	f = xmlReadMemory(fragment, (int)len, NULL, "UTF-8",
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (f == NULL || xmlDocGetRootElement(f) == NULL) {
		xmlFreeDoc(f);
		*err = ras_error_code(RAS_EINVALID, "XHTML fragment is not well-formed XML");
		return NULL;
	}
	copy = xmlDocCopyNode(xmlDocGetRootElement(f), doc, 1);
	xmlFreeDoc(f);
	if (copy == NULL)
		*err = ras_error_code(RAS_ENOMEM, "out of memory");
	return copy;
}

void
ras_xml_xhtml_embed(struct ras_xhtml *x, const char *fragment)
{
	xmlNodePtr n;
	int err = 0;

	if (x->err)
		return;
	n = parse_fragment(x->doc, fragment, &err);
	if (n == NULL) {
		x->err = err;
		return;
	}
	if (xmlAddChild(x->cur, n) == NULL) {
		xmlFreeNode(n);
		fail(x, RAS_ENOMEM, "out of memory");
	}
}

int
ras_xml_xhtml_error(const struct ras_xhtml *x)
{
	return x->err;
}

/* libxml2 writes the serialisation straight into the caller's buffer (no
 * xmlBuffer of its own to allocate and copy out of, for every section of
 * every letter); the buffer's limit still applies, with its own error. */
struct save_to {
	struct ras_buf *out;
	int err;
};

static int
save_write(void *ctx, const char *data, int len)
{
	struct save_to *t = ctx;
	int err;

	if (len < 0)
		return -1;
	if ((err = ras_buf_append(t->out, data, (size_t)len)) < 0) {
		t->err = err;
		return -1;
	}
	return len;
}

static int
save_node(xmlNodePtr node, int options, struct ras_buf *out)
{
	struct save_to t = { out, 0 };
	size_t was = out->len;
	xmlSaveCtxtPtr s = xmlSaveToIO(save_write, NULL, &t, "UTF-8", options);
	int err = 0;

	if (s == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (xmlSaveTree(s, node) < 0)
		err = -1;
	if (xmlSaveClose(s) < 0)
		err = -1;
	if (t.err < 0)
		err = t.err;     /* the buffer's own message (its limit, memory) */
	else if (err < 0)
		err = ras_error_set("could not serialise XML");
	if (err < 0 && out->data != NULL) {
		/* nothing of a failed serialisation is kept */
		out->len = was;
		out->data[was] = '\0';
	}
	return err;
}

#define XHTML_SAVE_OPTIONS (XML_SAVE_NO_DECL | XML_SAVE_XHTML | XML_SAVE_AS_XML)

int
ras_xml_xhtml_dump(struct ras_xhtml *x, struct ras_buf *out)
{
	int err;

	if (x->err)
		return x->err;
	if (x->page && (err = ras_buf_puts(out, "<!DOCTYPE html>\n")) < 0)
		return err;
	if ((err = save_node(xmlDocGetRootElement(x->doc), XHTML_SAVE_OPTIONS, out)) < 0)
		return err;
	if (x->page)
		return ras_buf_putc(out, '\n');
	return 0;
}

struct ras_xhtml_saver {
	xmlSaveCtxtPtr ctx;    /* NULL once a save failed: then one context per dump */
	struct save_to to;     /* where the next flush goes (out NULL: nowhere) */
};

static void
saver_free(void *p)
{
	struct ras_xhtml_saver *s = p;

	if (s->ctx) {
		s->to.out = NULL;
		(void)xmlSaveClose(s->ctx);
		s->ctx = NULL;
	}
}

/* save_write, with nowhere to write once the dump is done (nothing is left
 * to flush then: every dump ends with a flush) */
static int
saver_write(void *ctx, const char *data, int len)
{
	struct save_to *t = ctx;

	return t->out ? save_write(ctx, data, len) : len;
}

int
ras_xml_xhtml_saver_new(struct ras_arena *a, struct ras_xhtml_saver **out)
{
	struct ras_xhtml_saver *s = ras_arena_calloc(a, 1, sizeof(*s));

	if (s == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	s->ctx = xmlSaveToIO(saver_write, NULL, &s->to, "UTF-8", XHTML_SAVE_OPTIONS);
	if (s->ctx == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (ras_arena_defer(a, saver_free, s) < 0) {
		saver_free(s);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

int
ras_xml_xhtml_save(struct ras_xhtml_saver *s, struct ras_xhtml *x, struct ras_buf *out)
{
	size_t was = out->len;
	int err = 0;

	if (x->err)
		return x->err;
	if (s == NULL || s->ctx == NULL || x->page)
		return ras_xml_xhtml_dump(x, out);
	s->to.out = out;
	s->to.err = 0;
	/* xmlSaveTree reports a failed write through the flush */
	(void)xmlSaveTree(s->ctx, xmlDocGetRootElement(x->doc));
	if (xmlSaveFlush(s->ctx) < 0)
		err = s->to.err < 0 ? s->to.err : ras_error_set("could not serialise XML");
	s->to.out = NULL;
	if (err < 0) {
		/* a context that failed keeps failing: none from here on */
		saver_free(s);
		if (out->data != NULL) {
			out->len = was;
			out->data[was] = '\0';
		}
	}
	return err;
}

/* --- FHIR JSON -> FHIR XML ---------------------------------------------- */

struct fx {
	xmlDocPtr doc;
	xmlNsPtr ns;
	int err;
	int depth;
};

static void fx_object(struct fx *f, xmlNodePtr el, const json_t *obj, bool resource);

static xmlNodePtr
fx_elem(struct fx *f, xmlNodePtr parent, const char *name)
{
	xmlNodePtr n;

	if (f->err)
		return NULL;
	n = xmlNewDocNode(f->doc, f->ns, BAD_CAST name, NULL);
	if (n == NULL || (parent && xmlAddChild(parent, n) == NULL)) {
		xmlFreeNode(n);
		f->err = ras_error_code(RAS_ENOMEM, "out of memory");
		return NULL;
	}
	return n;
}

static void
fx_set(struct fx *f, xmlNodePtr n, const char *attr, const char *value)
{
	xmlChar *v = clean_text(value);

	if (v == NULL || xmlSetProp(n, BAD_CAST attr, v) == NULL)
		f->err = ras_error_code(RAS_ENOMEM, "out of memory");
	xmlFree(v);
}

static bool
primitive_text(const json_t *v, char *buf, size_t size, const char **out)
{
	switch (json_typeof(v)) {
	case JSON_STRING: *out = json_string_value(v); return true;
	case JSON_TRUE: *out = "true"; return true;
	case JSON_FALSE: *out = "false"; return true;
	case JSON_INTEGER:
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		*out = buf;
		return true;
	case JSON_REAL:
		snprintf(buf, size, "%.15g", json_real_value(v));
		*out = buf;
		return true;
	default:
		return false;
	}
}

static void
fx_one(struct fx *f, xmlNodePtr parent, const char *key, const json_t *v, const json_t *ext)
{
	char num[64];
	const char *text;
	xmlNodePtr n;

	if (f->err)
		return;
	if (json_is_object(v)) {
		n = fx_elem(f, parent, key);
		if (n == NULL)
			return;
		if (json_object_get(v, "resourceType")) {
			xmlNodePtr r = fx_elem(f, n, ras_json_str(v, "resourceType") ?
			    ras_json_str(v, "resourceType") : "Unknown");

			if (r)
				fx_object(f, r, v, true);
		} else {
			fx_object(f, n, v, false);
		}
		return;
	}
	if (strcmp(key, "div") == 0 && json_is_string(v)) {
		int err = 0;

		n = parse_fragment(f->doc, json_string_value(v), &err);
		if (n == NULL) {
			f->err = err;
			return;
		}
		if (xmlAddChild(parent, n) == NULL) {
			xmlFreeNode(n);
			f->err = ras_error_code(RAS_ENOMEM, "out of memory");
		}
		return;
	}
	n = fx_elem(f, parent, key);
	if (n == NULL)
		return;
	if (primitive_text(v, num, sizeof(num), &text))
		fx_set(f, n, "value", text);
	if (json_is_object(ext))
		fx_object(f, n, ext, false);
}

static void
fx_object(struct fx *f, xmlNodePtr el, const json_t *obj, bool resource)
{
	const char *key;
	json_t *v;
	bool is_ext = strcmp((const char *)el->name, "extension") == 0 ||
	    strcmp((const char *)el->name, "modifierExtension") == 0;

	if (++f->depth > RAS_JSON_DEPTH_MAX) {
		f->err = ras_error_code(RAS_EINVALID, "FHIR resource nested too deeply");
		return;
	}
	json_object_foreach((json_t *)obj, key, v) {
		char ukey[256];
		json_t *ext;

		if (f->err)
			break;
		if (key[0] == '_' || (resource && strcmp(key, "resourceType") == 0))
			continue;
		if (!resource && json_is_string(v) &&
		    (strcmp(key, "id") == 0 || (is_ext && strcmp(key, "url") == 0))) {
			fx_set(f, el, key, json_string_value(v));
			continue;
		}
		snprintf(ukey, sizeof(ukey), "_%s", key);
		ext = json_object_get(obj, ukey);
		if (json_is_array(v)) {
			size_t i;
			json_t *item;

			json_array_foreach(v, i, item)
				fx_one(f, el, key, item, json_is_array(ext) ? json_array_get(ext, i) : NULL);
		} else {
			fx_one(f, el, key, v, ext);
		}
	}
	f->depth--;
}

int
ras_xml_fhir_from_json(const json_t *resource, struct ras_buf *out)
{
	struct fx f = { 0 };
	const char *type = ras_json_str(resource, "resourceType");
	xmlNodePtr root;
	int err;

	if (type == NULL)
		return ras_error_code(RAS_EINVALID, "not a FHIR resource (no resourceType)");
	f.doc = xmlNewDoc(BAD_CAST "1.0");
	if (f.doc == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	root = xmlNewDocNode(f.doc, NULL, BAD_CAST type, NULL);
	if (root == NULL) {
		xmlFreeDoc(f.doc);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	xmlDocSetRootElement(f.doc, root);
	f.ns = xmlNewNs(root, BAD_CAST FHIR_NS, NULL);
	xmlSetNs(root, f.ns);
	fx_object(&f, root, resource, true);
	err = f.err;
	if (err == 0)
		err = ras_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	if (err == 0)
		err = save_node(root, XML_SAVE_NO_DECL | XML_SAVE_FORMAT | XML_SAVE_AS_XML, out);
	if (err == 0)
		err = ras_buf_putc(out, '\n');
	xmlFreeDoc(f.doc);
	return err;
}
