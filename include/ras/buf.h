/*
 * buf: a growable byte buffer with a ceiling.
 *
 * The buffer is always NUL-terminated (data[len] == 0) so text can be used
 * directly.  Appends that would take it past `max` fail with RAS_ETOOBIG and
 * leave the buffer as it was, which is how every buffer fed from outside
 * enforces its limit from include/ras/limits.h.
 */
#ifndef RAS_BUF_H
#define RAS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct ras_buf {
	char *data;    /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;    /* 0 = no ceiling (only for rasd's own output) */
};

#define RAS_BUF_INIT(limit) { NULL, 0, 0, (limit) }

void ras_buf_init(struct ras_buf *b, size_t max);
void ras_buf_free(struct ras_buf *b);
void ras_buf_reset(struct ras_buf *b);

/* Room for `extra` more bytes (and the terminating NUL) in one allocation of
 * that size, not the doubling appends make: for data whose size is known
 * before it is read (a file), so it is held at its size.  Fails past the
 * ceiling as an append would. */
int ras_buf_reserve(struct ras_buf *b, size_t extra);
int ras_buf_append(struct ras_buf *b, const void *data, size_t len);
int ras_buf_puts(struct ras_buf *b, const char *s);
int ras_buf_putc(struct ras_buf *b, char c);
int ras_buf_printf(struct ras_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ras_buf_vprintf(struct ras_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Take ownership of the data (caller frees); the buffer becomes empty. */
char *ras_buf_detach(struct ras_buf *b, size_t *len);

/* A one-line message into a fixed array (a report field, a log detail),
 * where a cut is better than nothing: what does not fit is cut and the
 * text ends in "..." so a reader sees it was.  True when it all fitted.
 * Paths, keys and anything parsed later are never formatted this way:
 * check snprintf's result and fail instead. */
bool ras_buf_format(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records packed one after another at their length (a stage's reports
 * kept until its batch commits): a fixed part of `size` bytes, then n
 * strings, each cut at 65,535 bytes.  ras_buf_unpack() reads the record at
 * *off into fixed and dst[0..n) (each of cap[i] bytes, cut to fit and
 * NUL-terminated) and moves *off past it; false when none is left. */
int ras_buf_pack(struct ras_buf *b, const void *fixed, size_t size, const char *const *str, size_t n);
bool ras_buf_unpack(const struct ras_buf *b, size_t *off, void *fixed, size_t size, char *const *dst,
    const size_t *cap, size_t n);

/* Read a whole file into b, failing with RAS_ETOOBIG past b->max. */
int ras_buf_read_file(struct ras_buf *b, const char *path);

#endif
