/*
 * migrate: the database schema version and its migrations.
 *
 * The numbered files in the schema directory are compiled into every binary
 * (ras_migrations[]), so a binary knows the newest schema it understands.
 * ras_migrate_apply() applies the missing ones in order inside one
 * transaction, under an advisory lock so two migrators cannot interleave,
 * recording each in schema_version.  ras_migrate_check() is what the daemon
 * runs at start-up: it refuses a database whose schema is newer than the
 * binary (RAS_ECONFLICT) or not yet migrated (RAS_EINVALID).
 */
#ifndef RAS_MIGRATE_H
#define RAS_MIGRATE_H

struct ras_db;

struct ras_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct ras_migration ras_migrations[];
extern const int ras_migrations_count;

/* Newest schema version this binary knows. */
int ras_migrate_latest(void);

/* Current version of the database (0 when no schema is installed). */
int ras_migrate_current(struct ras_db *db, int *version);

/* Apply what is missing; from and to receive the versions (may be NULL). */
int ras_migrate_apply(struct ras_db *db, int *from, int *to);

/* 0 when the database is exactly at ras_migrate_latest(). */
int ras_migrate_check(struct ras_db *db);

#endif
