/*
 * log: the one place rasd writes log lines.  Only daemon/ and rasctl call
 * it; lib/ reports failures through error.h and never logs.
 *
 * Output goes to the systemd journal with structured fields (UBRN=,
 * CORRELATION_ID=, STAGE=, …) when stderr is connected to the journal
 * (JOURNAL_STREAM) and the journal socket is reachable; otherwise to
 * stderr, with "<N>" priority prefixes under systemd and plain text on a
 * terminal.  Callers must never pass patient-identifiable data: no names,
 * dates of birth, addresses or free text.  NHS numbers only through
 * ras_log_mask_nhsno().
 */
#ifndef RAS_LOG_H
#define RAS_LOG_H

#include <stdarg.h>

enum ras_log_prio {
	RAS_LOG_ERR = 3,
	RAS_LOG_WARNING = 4,
	RAS_LOG_NOTICE = 5,
	RAS_LOG_INFO = 6,
	RAS_LOG_DEBUG = 7,
};

/* A structured field: key is upper-case ("UBRN"), value is plain text. */
struct ras_log_field {
	const char *key;
	const char *value;
};

/* Program name used as SYSLOG_IDENTIFIER and in terminal output. */
void ras_log_init(const char *ident);

/* Lines below this priority are dropped (default RAS_LOG_INFO). */
void ras_log_set_level(enum ras_log_prio level);

void ras_log(enum ras_log_prio prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fields are terminated by an entry with key == NULL; NULL values skipped. */
void ras_log_fields(enum ras_log_prio prio, const struct ras_log_field *fields,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void ras_log_vfields(enum ras_log_prio prio, const struct ras_log_field *fields,
    const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* "9434765919" -> "943***5919" into buf (>= 11 bytes); other input -> "***". */
const char *ras_log_mask_nhsno(const char *nhsno, char *buf, unsigned size);

#endif
