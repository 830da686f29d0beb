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

#endif
