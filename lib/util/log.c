/*
 * log: journald native protocol or stderr (see include/ras/log.h).
 *
 * The journal's native protocol is a datagram of "KEY=value\n" lines sent
 * to /run/systemd/journal/socket; values here never contain newlines (they
 * are replaced), so the simple form suffices and libsystemd is not needed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ras/buf.h"
#include "ras/log.h"

#define LOG_LINE_MAX 4096

static const char *log_ident = "rasd";
static enum ras_log_prio log_level = RAS_LOG_INFO;
static int journal_fd = -1;
static enum { SINK_UNSET, SINK_JOURNAL, SINK_PREFIX, SINK_PLAIN } sink;

static bool
stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%lu:%lu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

static void
choose_sink(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (sink != SINK_UNSET)
		return;
	if (!stderr_is_journal()) {
		sink = getenv("INVOCATION_ID") ? SINK_PREFIX : SINK_PLAIN;
		return;
	}
	journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/run/systemd/journal/socket");
	if (journal_fd >= 0 && connect(journal_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		sink = SINK_JOURNAL;
		return;
	}
	if (journal_fd >= 0)
		close(journal_fd);
	journal_fd = -1;
	sink = SINK_PREFIX;
}

void
ras_log_init(const char *ident)
{
	const char *lvl = getenv("RAS_LOG_LEVEL");

	log_ident = ident;
	if (lvl && strcmp(lvl, "debug") == 0)
		log_level = RAS_LOG_DEBUG;
	sink = SINK_UNSET;
}

void
ras_log_set_level(enum ras_log_prio level)
{
	log_level = level;
}

static void
put_field(struct ras_buf *b, const char *key, const char *value)
{
	(void)ras_buf_printf(b, "%s=", key);
	for (const char *p = value; *p; p++)
		(void)ras_buf_putc(b, *p == '\n' ? ' ' : *p);
	(void)ras_buf_putc(b, '\n');
}

void
ras_log_vfields(enum ras_log_prio prio, const struct ras_log_field *fields,
    const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int n;

	if (prio > log_level)
		return;
	choose_sink();
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';

	if (sink == SINK_JOURNAL) {
		struct ras_buf b = RAS_BUF_INIT(64 * 1024);
		char pr[4];

		snprintf(pr, sizeof(pr), "%d", (int)prio);
		put_field(&b, "MESSAGE", msg);
		put_field(&b, "PRIORITY", pr);
		put_field(&b, "SYSLOG_IDENTIFIER", log_ident);
		for (const struct ras_log_field *f = fields; f && f->key; f++)
			if (f->value && *f->value)
				put_field(&b, f->key, f->value);
		if (b.data && send(journal_fd, b.data, b.len, MSG_NOSIGNAL) >= 0) {
			ras_buf_free(&b);
			return;
		}
		ras_buf_free(&b);
		/* fall back to stderr below */
	}

	{
		struct ras_buf line = RAS_BUF_INIT(LOG_LINE_MAX * 2);

		if (sink == SINK_PLAIN)
			(void)ras_buf_printf(&line, "%s: ", log_ident);
		else
			(void)ras_buf_printf(&line, "<%d>", (int)prio);
		(void)ras_buf_puts(&line, msg);
		for (const struct ras_log_field *f = fields; f && f->key; f++)
			if (f->value && *f->value)
				(void)ras_buf_printf(&line, " %s=%s", f->key, f->value);
		(void)ras_buf_putc(&line, '\n');
		if (line.data)
			(void)!write(STDERR_FILENO, line.data, line.len);
		ras_buf_free(&line);
	}
}

void
ras_log_fields(enum ras_log_prio prio, const struct ras_log_field *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ras_log_vfields(prio, fields, fmt, ap);
	va_end(ap);
}

void
ras_log(enum ras_log_prio prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ras_log_vfields(prio, NULL, fmt, ap);
	va_end(ap);
}

const char *
ras_log_mask_nhsno(const char *nhsno, char *buf, unsigned size)
{
	if (size < 11)
		return "";
	if (nhsno && strlen(nhsno) == 10) {
		snprintf(buf, size, "%.3s***%.4s", nhsno, nhsno + 6);
		return buf;
	}
	snprintf(buf, size, "***");
	return buf;
}
