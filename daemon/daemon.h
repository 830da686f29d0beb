/*
 * daemon: the state of one rasd process, shared by its parts (main, the
 * stages, the HTTP listener, the spool, metrics).  Everything runs on the
 * loop's thread.
 */
#ifndef RAS_DAEMON_DAEMON_H
#define RAS_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

struct ras_config;
struct ras_db;
struct ras_httpd;
struct ras_loop;
struct ras_spool;
struct ras_ui;
struct ras_units;

#define RAS_STATS_UNITS_MAX 64

/* Counters for /metrics; they survive reloads (keyed by unit name). */
struct ras_unit_stats {
	char name[96];           /* "normalise", "ers-poll ers:21012" */
	uint64_t runs, rows, errors;
	int64_t last_run, last_ok;
};

struct ras_stats {
	struct ras_unit_stats units[RAS_STATS_UNITS_MAX];
	size_t nunits;
	uint64_t http[6];        /* responses by class: 1xx..5xx, [0] unused */
	uint64_t http_bytes;
	uint64_t spool_done, spool_rejected, spool_failed;
	uint64_t reload_ok, reload_failed;
	int64_t reload_last_ok;
	uint64_t received;       /* payloads accepted into the inbox */
	uint64_t epr_recorded;
};

struct ras_daemon {
	struct ras_loop *loop;
	struct ras_db *db;          /* the loop's: intake, health, heartbeat, metrics */
	struct ras_db *stage_db;    /* the stages': may be mid-batch while the loop serves */
	const char *config_path;
	struct ras_config *cfg;     /* current configuration */
	struct ras_units *units;    /* current units (built from cfg) */
	struct ras_httpd *httpd;
	struct ras_ui *ui;           /* the clinicians' pages ([ui]) */
	struct ras_spool *spool;
	char instance[64];
	char host[64];
	int64_t started_at;
	bool ready, stopping;
	struct ras_stats stats;
	struct ras_loop_timer *watchdog, *heartbeat;
};

/* Stats slot for a unit name (created on first use; a shared overflow
 * slot when full). */
struct ras_unit_stats *ras_daemon_unit_stats(struct ras_daemon *d, const char *name);

/* The database connection, reconnected if it was lost; NULL (with the
 * error set) when the database is unreachable. */
struct ras_db *ras_daemon_db(struct ras_daemon *d);

/* The stages' connection (opened on first use, reconnected if lost); NULL
 * (with the error set) when the database is unreachable.  A stage waiting
 * for its HTTP transfers may hold it in a transaction while the loop
 * serves intake on the other one. */
struct ras_db *ras_daemon_stage_db(struct ras_daemon *d);

/* [database] batch_size of the current configuration. */
size_t ras_daemon_batch(const struct ras_daemon *d);

#endif
