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

/* --- writing ------------------------------------------------------------ */

#endif
