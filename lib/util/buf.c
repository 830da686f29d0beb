/* buf: growable byte buffer with a ceiling (see include/ras/buf.h). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ras/buf.h"
#include "ras/error.h"

void
ras_buf_init(struct ras_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void
ras_buf_free(struct ras_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
ras_buf_reset(struct ras_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* The size the buffer needs for `extra` more bytes and the NUL, within its
 * ceiling. */
static int
needed(const struct ras_buf *b, size_t extra, size_t *need)
{
	if (extra > SIZE_MAX - b->len - 1)
		return ras_error_code(RAS_ETOOBIG, "buffer size overflow");
	*need = b->len + extra + 1;
	if (b->max != 0 && *need - 1 > b->max)
		return ras_error_code(RAS_ETOOBIG, "data exceeds limit of %zu bytes", b->max);
	return 0;
}

static int
resize(struct ras_buf *b, size_t cap)
{
	char *p = realloc(b->data, cap);

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (b->data == NULL)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

static int
grow(struct ras_buf *b, size_t extra)
{
	size_t need = 0, cap;
	int err;

	if ((err = needed(b, extra, &need)) < 0 || need <= b->cap)
		return err;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	return resize(b, cap);
}

int
ras_buf_reserve(struct ras_buf *b, size_t extra)
{
	size_t need = 0;
	int err;

	if ((err = needed(b, extra, &need)) < 0 || need <= b->cap)
		return err;
	return resize(b, need);
}

int
ras_buf_append(struct ras_buf *b, const void *data, size_t len)
{
	int err;

	if ((err = grow(b, len)) < 0)
		return err;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
ras_buf_puts(struct ras_buf *b, const char *s)
{
	return ras_buf_append(b, s, strlen(s));
}

int
ras_buf_putc(struct ras_buf *b, char c)
{
	return ras_buf_append(b, &c, 1);
}

int
ras_buf_vprintf(struct ras_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t room = b->data ? b->cap - b->len : 0;
	int n, err;

	/* Formatted straight into the room the buffer has: one pass when it
	 * fits (the usual case), a second only after growing. */
	va_copy(ap2, ap);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		if (room)
			b->data[b->len] = '\0';
		return ras_error_set("could not format text");
	}
	if ((size_t)n < room && (b->max == 0 || (size_t)n <= b->max - b->len)) {
		b->len += (size_t)n;
		return 0;
	}
	if (room)
		b->data[b->len] = '\0';   /* what did not fit is not there */
	if ((err = grow(b, (size_t)n)) < 0)
		return err;
	if (vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap) != n)
		return ras_error_set("could not format text");
	b->len += (size_t)n;
	return 0;
}

int
ras_buf_printf(struct ras_buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = ras_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

char *
ras_buf_detach(struct ras_buf *b, size_t *len)
{
	char *p = b->data;

	if (p == NULL) {
		p = calloc(1, 1);
		if (len)
			*len = 0;
		return p;
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int
ras_buf_read_file(struct ras_buf *b, const char *path)
{
	char chunk[65536];
	int fd, err = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ras_error_code(RAS_EIO, "could not open \"%s\": %s", path, strerror(errno));
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = ras_error_code(RAS_EIO, "could not read \"%s\": %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((err = ras_buf_append(b, chunk, (size_t)n)) < 0) {
			if (err == RAS_ETOOBIG)
				err = ras_error_code(RAS_ETOOBIG, "\"%s\" is larger than the limit of %zu bytes",
				    path, b->max);
			break;
		}
	}
	close(fd);
	if (err == 0 && b->data == NULL)
		err = ras_buf_append(b, "", 0);
	return err;
}

bool
ras_buf_format(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (size == 0)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(dst, size, fmt, ap);
	va_end(ap);
	if (n < 0) {
		dst[0] = '\0';
		return false;
	}
	if ((size_t)n < size)
		return true;
	if (size > 3)
		memcpy(dst + size - 4, "...", 4);
	return false;
}

int
ras_buf_pack(struct ras_buf *b, const void *fixed, size_t size, const char *const *str, size_t n)
{
	size_t was = b->len;
	int err = ras_buf_append(b, fixed, size);

	for (size_t i = 0; i < n && err == 0; i++) {
		size_t l = str[i] ? strlen(str[i]) : 0;
		uint16_t l16 = (uint16_t)(l > UINT16_MAX ? UINT16_MAX : l);

		if ((err = ras_buf_append(b, &l16, sizeof(l16))) == 0)
			err = ras_buf_append(b, str[i] ? str[i] : "", l16);
	}
	if (err < 0) {
		b->len = was;   /* no half record */
		if (b->data)
			b->data[was] = '\0';
	}
	return err;
}

bool
ras_buf_unpack(const struct ras_buf *b, size_t *off, void *fixed, size_t size, char *const *dst,
    const size_t *cap, size_t n)
{
	size_t o = *off;

	if (b->data == NULL || o + size > b->len)
		return false;
	memcpy(fixed, b->data + o, size);
	o += size;
	for (size_t i = 0; i < n; i++) {
		uint16_t l16;
		size_t l;

		if (o + sizeof(l16) > b->len)
			return false;
		memcpy(&l16, b->data + o, sizeof(l16));
		o += sizeof(l16);
		if (o + l16 > b->len)
			return false;
		l = cap[i] == 0 ? 0 : l16 < cap[i] ? l16 : cap[i] - 1;
		if (cap[i]) {
			memcpy(dst[i], b->data + o, l);
			dst[i][l] = '\0';
		}
		o += l16;
	}
	*off = o;
	return true;
}
