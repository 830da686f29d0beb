/* xml: libxml2 adapter (see include/ras/xml.h). */
#include <stdint.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
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

static void
ensure_init(void)
{
	static int ready;

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
