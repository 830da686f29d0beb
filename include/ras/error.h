/*
 * error: return codes and the thread-local error message.
 *
 * Every function in lib/ returns an int: 0 on success, a negative RAS_E*
 * code on failure.  The few codes callers branch on have names; anything
 * else is RAS_ERROR.  The human-readable cause is set once, where the
 * failure is found, with ras_error_set(), and is read by the caller that
 * decides what to do (daemon/ or rasctl), which logs it exactly once.
 * Callers that want to add context use ras_error_context(), which prefixes
 * the existing message instead of replacing it.
 */
#ifndef RAS_ERROR_H
#define RAS_ERROR_H

#include <stddef.h>

enum {
	RAS_OK = 0,
	RAS_ERROR = -1,         /* anything without a more specific code */
	RAS_ENOTFOUND = -2,     /* the thing asked for does not exist */
	RAS_ETIMEDOUT = -3,     /* a remote did not answer in time: outcome unknown */
	RAS_ERATELIMITED = -4,  /* a remote or local budget says "not now" */
	RAS_EINVALID = -5,      /* input is malformed or breaks a rule: permanent */
	RAS_ECONFLICT = -6,     /* a concurrent change won (e.g. e-RS 409, unique key) */
	RAS_ETOOBIG = -7,       /* input is over a named limit (limits.h) */
	RAS_ENOMEM = -8,        /* allocation failed */
	RAS_EIO = -9,           /* local I/O or transport failure: may work later */
};

/* Set the message for the current failure (printf-style). Returns RAS_ERROR
 * for convenience in `return ras_error_set(...)` only when the caller wants
 * the generic code; use ras_error_code() to return a specific one. */
int ras_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set the message and return `code`. */
int ras_error_code(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current message with context: "context: message". */
void ras_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The current message ("" when none). Valid until the next set/clear. */
const char *ras_error_last(void);

void ras_error_clear(void);

/* Short name of a code, e.g. "invalid" for RAS_EINVALID. */
const char *ras_error_name(int code);

#endif
