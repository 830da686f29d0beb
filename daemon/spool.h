/*
 * spool: a directory rasd watches for payload files (the contingency
 * route when e-RS is down, and the drop point for other systems).
 *
 * New files are picked up at once (inotify: a file closed after writing,
 * or renamed into the directory) and by a periodic scan as a safety net
 * (files older than one second only, so a file still being written is
 * left alone; writers should write "name.tmp" or ".name" and rename).
 * Each file is kept in the inbox (verbatim, hashed) and normalised, and
 * only then moved: to done/ when stored (or already known), to rejected/
 * with a "<file>.reason" beside it when it cannot be used.  Moved files
 * are named "<payload id>-<original name>".  A crash before the move
 * leaves the file in place; the next pass finds its bytes already in the
 * inbox and moves it without storing anything twice.  Log lines name the
 * payload id, never the file name (names can carry patient details).
 */
#ifndef RAS_DAEMON_SPOOL_H
#define RAS_DAEMON_SPOOL_H

struct ras_config;
struct ras_daemon;
struct ras_spool;

/* Watch [spool] directory (no-op with *out = NULL when it is unset). */
int ras_spool_open(struct ras_daemon *d, const struct ras_config *cfg, struct ras_spool **out);
void ras_spool_close(struct ras_daemon *d, struct ras_spool *s);

/* Take the reloadable settings (rescan, service) from cfg. */
void ras_spool_reconfigure(struct ras_spool *s, const struct ras_config *cfg);

/* Scan now (start-up, after a reload). */
void ras_spool_kick(struct ras_spool *s);

#endif
