/*
 * daemon: the state of one rasd process and the accessors its parts share
 * (see daemon.h).  Everything here is a leaf of daemon/'s include graph:
 * the stages, the HTTP listener, the spool and metrics call it, and it
 * calls none of them (scripts/check-layers).
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"

struct ras_unit_stats *
ras_daemon_unit_stats(struct ras_daemon *d, const char *name)
{
	for (size_t i = 0; i < d->stats.nunits; i++)
		if (strcmp(d->stats.units[i].name, name) == 0)
			return &d->stats.units[i];
	if (d->stats.nunits == RAS_STATS_UNITS_MAX)
		return &d->stats.units[RAS_STATS_UNITS_MAX - 1];
	snprintf(d->stats.units[d->stats.nunits].name, sizeof(d->stats.units[0].name), "%s", name);
	return &d->stats.units[d->stats.nunits++];
}

struct ras_db *
ras_daemon_db(struct ras_daemon *d)
{
	if (d->db && ras_db_ok(d->db))
		return d->db;
	if (d->db == NULL)
		ras_error_code(RAS_EIO, "not connected");
	else
		ras_error_code(RAS_EIO, "the database connection was lost and could not be re-established");
	return NULL;
}

struct ras_db *
ras_daemon_stage_db(struct ras_daemon *d)
{
	if (d->stage_db == NULL &&
	    ras_db_connect(ras_config_get(d->cfg, "database", NULL, "conninfo"), &d->stage_db) < 0)
		return NULL;
	if (ras_db_ok(d->stage_db))
		return d->stage_db;
	ras_error_code(RAS_EIO, "the database connection was lost and could not be re-established");
	return NULL;
}

size_t
ras_daemon_batch(const struct ras_daemon *d)
{
	int64_t n = ras_config_int(d->cfg, "database", NULL, "batch_size");

	return n > 0 ? (size_t)n : 200;
}
