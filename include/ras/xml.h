/*
 * xml: the libxml2 adapter; the only file that includes libxml2 headers.
 *
 * Reading: documents are parsed with XML_PARSE_NONET (no network) and
 * never with entity substitution (XML_PARSE_NOENT), bounded in size.
 * Writing: XHTML narrative and FHIR XML are built as trees and serialised,
 * so text is always escaped and the output always well formed.
 *
 * The functions are grouped: reading (forms that arrive as XML) and
 * writing (documents rasd sends).
 */
#ifndef RAS_XML_H
#define RAS_XML_H

#include <stddef.h>

#include "ras/json.h"

struct ras_buf;
struct ras_arena;

/* --- reading ------------------------------------------------------------ */

/* A parsed document (owned by the arena it was parsed into) and one of its
 * elements.  Both are opaque; nodes stay valid while the document lives. */
struct ras_xml_doc;
struct ras_xml_node;

/*
 * Parse `len` bytes of XML.  RAS_ETOOBIG past `max`; RAS_EINVALID for a
 * document that is not well formed (message with the line number) or whose
 * internal DTD subset declares entities (refused outright: forms never need
 * them and they are the vehicle of entity-expansion attacks).  No network,
 * no external DTD, no entity substitution.  The document is freed with the
 * arena.
 */
int ras_xml_parse(struct ras_arena *a, const char *data, size_t len, size_t max,
    struct ras_xml_doc **out);

/* The root element. */
const struct ras_xml_node *ras_xml_root(const struct ras_xml_doc *d);

/* Local name and namespace URI (NULL when the element has none). */
const char *ras_xml_name(const struct ras_xml_node *n);
const char *ras_xml_ns(const struct ras_xml_node *n);

/* First element child, and next element sibling (NULL at the end). */
const struct ras_xml_node *ras_xml_first(const struct ras_xml_node *n);
const struct ras_xml_node *ras_xml_next(const struct ras_xml_node *n);

/* Attribute without a namespace, copied into the arena (NULL when absent). */
const char *ras_xml_attr(struct ras_arena *a, const struct ras_xml_node *n, const char *name);

/* Text content of an element and its descendants, copied into the arena. */
const char *ras_xml_text(struct ras_arena *a, const struct ras_xml_node *n);

/*
 * Evaluate an XPath 1.0 expression over the document.  `ns` binds prefixes
 * for the expression: {"h", "http://www.w3.org/1999/xhtml", …, NULL}.
 * A node-set gives the string value of each node in document order; a
 * string, number or boolean gives one value ("true"/"false" for booleans).
 * Values are copied into the arena.  RAS_EINVALID for a bad expression.
 */
int ras_xml_xpath(struct ras_arena *a, const struct ras_xml_doc *d, const char *expr,
    const char *const *ns, const char ***values, size_t *n);

/* RAS_EINVALID when expr is not a valid XPath 1.0 expression (used to
 * check mapping files when they are loaded). */
int ras_xml_xpath_check(const char *expr);

/* --- writing ------------------------------------------------------------ */

/*
 * An XHTML tree under construction: a FHIR narrative <div> in the XHTML
 * namespace, or a whole printable page.  Calls add to the current element;
 * open() descends into a new child, close() goes back up.  Errors are
 * sticky: after the first failure every call is a no-op and dump() returns
 * the error, so a builder can make many calls and check once.  Text is
 * always added as text nodes (escaped on output); bytes that are not valid
 * UTF-8, and characters XML 1.0 forbids, are replaced by U+FFFD.  The tree
 * is released with the arena.
 */
struct ras_xhtml;

/* A narrative: root <div xmlns="http://www.w3.org/1999/xhtml">. */
int ras_xml_xhtml_new_div(struct ras_arena *a, struct ras_xhtml **out);

/* A page: root <html lang="en"> (dumped with <!DOCTYPE html>). */
int ras_xml_xhtml_new_page(struct ras_arena *a, struct ras_xhtml **out);

/* Open a child element (cls: optional class attribute) and descend into it. */
void ras_xml_xhtml_open(struct ras_xhtml *x, const char *tag, const char *cls);
/* Back to the parent element. */
void ras_xml_xhtml_close(struct ras_xhtml *x);
/* A child element holding text (NULL text: empty element). */
void ras_xml_xhtml_leaf(struct ras_xhtml *x, const char *tag, const char *cls, const char *text);
/* Text in the current element. */
void ras_xml_xhtml_text(struct ras_xhtml *x, const char *text);
/* An attribute on the current element. */
void ras_xml_xhtml_attr(struct ras_xhtml *x, const char *name, const char *value);
/* Parse a well-formed XHTML fragment (e.g. a narrative div) and append
 * it to the current element. */
void ras_xml_xhtml_embed(struct ras_xhtml *x, const char *fragment);
/* First error so far (0 when none). */
int ras_xml_xhtml_error(const struct ras_xhtml *x);

/* Serialise the whole tree (XHTML rules: <td></td>, never <td/>); a page
 * gets "<!DOCTYPE html>\n" first.  Returns the sticky error if any. */
int ras_xml_xhtml_dump(struct ras_xhtml *x, struct ras_buf *out);

/* One serialiser for many fragments (a document's narrative sections):
 * libxml2's save context and its buffers made once, not per fragment.
 * ras_xml_xhtml_save writes exactly what ras_xml_xhtml_dump writes; the
 * saver is released with the arena. */
struct ras_xhtml_saver;
int ras_xml_xhtml_saver_new(struct ras_arena *a, struct ras_xhtml_saver **out);
int ras_xml_xhtml_save(struct ras_xhtml_saver *s, struct ras_xhtml *x, struct ras_buf *out);

/*
 * FHIR XML from FHIR JSON (R4 rules): the resourceType names the element,
 * in the namespace http://hl7.org/fhir; primitives become value
 * attributes; arrays repeat the element; "url" of an extension and "id" of
 * a non-resource element are attributes; nested resources (Bundle entries,
 * contained) are wrapped in an element named by their type; narrative
 * "div" strings are parsed and embedded as XHTML; "_name" primitive
 * extensions are merged.  Element order is the JSON key order, so builders
 * must insert keys in the order the FHIR specification defines.
 */
int ras_xml_fhir_from_json(const json_t *resource, struct ras_buf *out);

#endif
