/*
 * html: writing the clinicians' pages safely.  Every value that comes from
 * a referral, a decision, the database or the request goes into a page
 * through ras_html_esc() (text and attribute values alike), and into a URL
 * through ras_html_urlenc(); pages are built in a ras_buf.
 */
#ifndef RAS_HTML_H
#define RAS_HTML_H

#include <stddef.h>

struct ras_buf;

/* Append s with & < > " ' escaped (NULL appends nothing).  Bytes that are
 * not valid UTF-8 become U+FFFD, control characters other than tab and
 * newline are dropped. */
int ras_html_esc(struct ras_buf *b, const char *s);

/* Append s percent-encoded for a query value or path segment (RFC 3986
 * unreserved characters kept). */
int ras_html_urlenc(struct ras_buf *b, const char *s);

/* Append printf-style text in which each %s argument is escaped; other
 * conversions are as printf's.  Only %s, %d, %ld, %lld, %zu and %% are
 * allowed. */
int ras_html_printf(struct ras_buf *b, const char *fmt, ...);

#endif
