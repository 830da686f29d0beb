/* error: thread-local error message (see include/ras/error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ras/error.h"

#define RAS_ERROR_MSG_MAX 1024

static _Thread_local char errmsg[RAS_ERROR_MSG_MAX];

static void __attribute__((format(printf, 1, 0)))
vset(const char *fmt, va_list ap)
{
	int n = vsnprintf(errmsg, sizeof(errmsg), fmt, ap);

	if (n < 0)
		errmsg[0] = '\0';
}

int
ras_error_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return RAS_ERROR;
}

int
ras_error_code(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return code;
}

void
ras_error_context(const char *fmt, ...)
{
	char ctx[RAS_ERROR_MSG_MAX], old[RAS_ERROR_MSG_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	memcpy(old, errmsg, sizeof(old));
	/* The newest context comes first; a message too long for the buffer
	 * loses its innermost detail, which is then marked. */
	if (old[0] == '\0')
		n = snprintf(errmsg, sizeof(errmsg), "%s", ctx);
	else
		n = snprintf(errmsg, sizeof(errmsg), "%s: %s", ctx, old);
	if (n >= (int)sizeof(errmsg))
		memcpy(errmsg + sizeof(errmsg) - 4, "...", 4);
}

const char *
ras_error_last(void)
{
	return errmsg;
}

void
ras_error_clear(void)
{
	errmsg[0] = '\0';
}

const char *
ras_error_name(int code)
{
	switch (code) {
	case RAS_OK: return "ok";
	case RAS_ENOTFOUND: return "not found";
	case RAS_ETIMEDOUT: return "timed out";
	case RAS_ERATELIMITED: return "rate limited";
	case RAS_EINVALID: return "invalid";
	case RAS_ECONFLICT: return "conflict";
	case RAS_ETOOBIG: return "too big";
	case RAS_ENOMEM: return "out of memory";
	case RAS_EIO: return "i/o error";
	default: return "error";
	}
}
