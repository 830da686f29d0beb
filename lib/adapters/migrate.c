/* migrate: schema versions and migrations (see include/ras/migrate.h). */
#include <stdio.h>
#include <string.h>

#include "ras/db.h"
#include "ras/error.h"
#include "ras/migrate.h"

/* Advisory lock key for migrations: "rasdmigr" as a number. */
#define MIGRATE_LOCK_KEY 0x726173646d696772LL

int
ras_migrate_latest(void)
{
	return ras_migrations_count > 0 ? ras_migrations[ras_migrations_count - 1].version : 0;
}

int
ras_migrate_current(struct ras_db *db, int *version)
{
	struct ras_db_res *res = NULL;
	int64_t v = 0;
	int err;

	if ((err = ras_db_query(db, &res,
	    "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL)) < 0)
		return err;
	if (strcmp(ras_db_res_get(res, 0, 0), "t") != 0) {
		ras_db_res_free(res);
		*version = 0;
		return 0;
	}
	ras_db_res_free(res);
	if ((err = ras_db_query(db, &res, "SELECT coalesce(max(version), 0) FROM schema_version",
	    0, NULL)) < 0)
		return err;
	(void)ras_db_res_int(res, 0, 0, &v);
	ras_db_res_free(res);
	*version = (int)v;
	return 0;
}

int
ras_migrate_apply(struct ras_db *db, int *from, int *to)
{
	char lock[64];
	int cur = 0, err;

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%lld)", (long long)MIGRATE_LOCK_KEY);
	if ((err = ras_db_begin(db)) < 0)
		return err;
	if ((err = ras_db_exec(db, lock)) < 0 ||
	    (err = ras_db_exec(db,
	    "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version int PRIMARY KEY,"
	    " name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())")) < 0 ||
	    (err = ras_migrate_current(db, &cur)) < 0)
		goto fail;
	if (from)
		*from = cur;
	if (cur > ras_migrate_latest()) {
		err = ras_error_code(RAS_ECONFLICT,
		    "database schema version %d is newer than this rasd knows (%d)", cur,
		    ras_migrate_latest());
		goto fail;
	}
	for (int i = 0; i < ras_migrations_count; i++) {
		const struct ras_migration *m = &ras_migrations[i];
		char v[16];

		if (m->version <= cur)
			continue;
		if ((err = ras_db_exec(db, m->sql)) < 0) {
			ras_error_context("migration %s", m->name);
			goto fail;
		}
		snprintf(v, sizeof(v), "%d", m->version);
		if ((err = ras_db_query(db, NULL,
		    "INSERT INTO schema_version (version, name) VALUES ($1::int, $2)", 2,
		    (struct ras_db_param[]){ RAS_DB_TEXT(v), RAS_DB_TEXT(m->name) })) < 0)
			goto fail;
	}
	if ((err = ras_db_commit(db)) < 0)
		return err;
	if (to)
		*to = ras_migrate_latest() > cur ? ras_migrate_latest() : cur;
	return 0;
fail:
	ras_db_rollback(db);
	return err;
}

int
ras_migrate_check(struct ras_db *db)
{
	int cur, err;

	if ((err = ras_migrate_current(db, &cur)) < 0)
		return err;
	if (cur > ras_migrate_latest())
		return ras_error_code(RAS_ECONFLICT,
		    "database schema version %d is newer than this rasd knows (%d): upgrade rasd",
		    cur, ras_migrate_latest());
	if (cur < ras_migrate_latest())
		return ras_error_code(RAS_EINVALID,
		    "database schema version %d is older than this rasd needs (%d): run rasctl migrate",
		    cur, ras_migrate_latest());
	return 0;
}
