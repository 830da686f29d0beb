/* html: escaping for the clinicians' pages (see include/ras/html.h). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/error.h"
#include "ras/html.h"

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* overlong 3-byte, surrogates, beyond U+10FFFF */
	if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
		return 0;
	if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
		return 0;
	return n;
}

int
ras_html_esc(struct ras_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int err = 0;

	if (s == NULL)
		return 0;
	while (*p && err == 0) {
		size_t n = utf8_len(p);

		if (n == 0) {
			err = ras_buf_puts(b, "\xef\xbf\xbd");
			p++;
			continue;
		}
		if (n > 1) {
			err = ras_buf_append(b, p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '&': err = ras_buf_puts(b, "&amp;"); break;
		case '<': err = ras_buf_puts(b, "&lt;"); break;
		case '>': err = ras_buf_puts(b, "&gt;"); break;
		case '"': err = ras_buf_puts(b, "&quot;"); break;
		case '\'': err = ras_buf_puts(b, "&#39;"); break;
		default:
			if (*p >= 0x20 || *p == '\t' || *p == '\n')
				err = ras_buf_putc(b, (char)*p);
			break;
		}
		p++;
	}
	return err;
}

int
ras_html_urlenc(struct ras_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int err = 0;

	if (s == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && err == 0; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			err = ras_buf_putc(b, (char)*p);
		} else {
			char e[4] = { '%', hex[*p >> 4], hex[*p & 15], 0 };

			err = ras_buf_puts(b, e);
		}
	}
	return err;
}

int
ras_html_printf(struct ras_buf *b, const char *fmt, ...)
{
	va_list ap;
	int err = 0;
	char num[32];

	va_start(ap, fmt);
	for (const char *p = fmt; *p && err == 0; p++) {
		const char *pct = strchr(p, '%');

		if (pct == NULL) {
			err = ras_buf_puts(b, p);
			break;
		}
		if (pct > p && (err = ras_buf_append(b, p, (size_t)(pct - p))) < 0)
			break;
		p = pct + 1;
		if (*p == 's') {
			err = ras_html_esc(b, va_arg(ap, const char *));
		} else if (*p == 'd') {
			snprintf(num, sizeof(num), "%d", va_arg(ap, int));
			err = ras_buf_puts(b, num);
		} else if (p[0] == 'l' && p[1] == 'd') {
			snprintf(num, sizeof(num), "%ld", va_arg(ap, long));
			err = ras_buf_puts(b, num);
			p++;
		} else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'd') {
			snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
			err = ras_buf_puts(b, num);
			p += 2;
		} else if (p[0] == 'z' && p[1] == 'u') {
			snprintf(num, sizeof(num), "%zu", va_arg(ap, size_t));
			err = ras_buf_puts(b, num);
			p++;
		} else if (*p == '%') {
			err = ras_buf_putc(b, '%');
		} else {
			err = ras_error_code(RAS_EINVALID, "ras_html_printf: unsupported conversion");
		}
	}
	va_end(ap);
	return err;
}
