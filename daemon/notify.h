/*
 * notify: the systemd service notification protocol (sd_notify) and the
 * watchdog settings, implemented directly over the NOTIFY_SOCKET datagram.
 *
 * Why not libsystemd: the protocol is one datagram of "KEY=value" lines to
 * a Unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace); writing it here costs forty lines, keeps rasd's
 * dependencies to what lib/ already needs (log.c speaks the journal's
 * native protocol the same way), and lets the tests receive exactly what
 * systemd would on a socket of their own.  Outside systemd every call is a
 * no-op.
 */
#ifndef RAS_DAEMON_NOTIFY_H
#define RAS_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
 * Returns 0, or RAS_EINVALID when NOTIFY_SOCKET is malformed. */
int ras_notify_init(void);

/* True when a notification socket is configured. */
bool ras_notify_enabled(void);

/* Send one datagram: the lines given by fmt ("READY=1\nSTATUS=…").
 * Returns 0 (also when notifications are off) or RAS_EIO. */
int ras_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval systemd asked for, in microseconds (0: none). */
uint64_t ras_notify_watchdog_usec(void);

/* CLOCK_MONOTONIC now in microseconds (for RELOADING=1 MONOTONIC_USEC=). */
uint64_t ras_notify_monotonic_usec(void);

#endif
