/*
 * db: the libpq adapter; the only file that includes libpq-fe.h.
 *
 * Statements are always parameterised (PQexecParams); SQL text is never
 * built from data.  Errors map to RAS codes: unique violations and
 * serialisation failures are RAS_ECONFLICT, a lost connection RAS_EIO,
 * everything else RAS_ERROR, with the server's message.
 *
 * Batches: ras_db_pipeline_*() send many statements in libpq pipeline mode
 * and read their results in order, so a batch of N referrals costs one
 * round trip instead of N.
 */
#ifndef RAS_DB_H
#define RAS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/buf.h"

struct ras_arena;
struct ras_db;
struct ras_db_res;

/* A statement parameter: NULL value = SQL NULL.  len is used only for
 * binary parameters (bytea); text parameters are NUL-terminated. */
struct ras_db_param {
	const char *value;
	size_t len;
	bool binary;
};

#define RAS_DB_TEXT(s)       ((struct ras_db_param){ (s), 0, false })
#define RAS_DB_BYTES(p, n)   ((struct ras_db_param){ (const char *)(p), (n), true })

int ras_db_connect(const char *conninfo, struct ras_db **out);
void ras_db_close(struct ras_db *db);

/* Run one statement; *out may be NULL when the caller wants no rows.
 * Results come back in text format unless `binary_result`. */
int ras_db_query(struct ras_db *db, struct ras_db_res **out, const char *sql, int nparams,
    const struct ras_db_param *params);
int ras_db_query_binary(struct ras_db *db, struct ras_db_res **out, const char *sql,
    int nparams, const struct ras_db_param *params);

/* Plain statements without parameters (BEGIN, COMMIT, SET …). */
int ras_db_exec(struct ras_db *db, const char *sql);

int ras_db_begin(struct ras_db *db);
int ras_db_commit(struct ras_db *db);
/* Never fails loudly; used on error paths. */
void ras_db_rollback(struct ras_db *db);

/*
 * A held transaction: one transaction around functions that make their
 * own.  Inside it ras_db_begin is a savepoint, ras_db_commit releases it
 * and ras_db_rollback returns to it; a rollback or commit without a begin
 * ends the hold, which then cannot commit.  ras_db_hold_commit makes it
 * durable: it fails (and rolls everything back) if anything inside was
 * rolled back whole or a savepoint is still open, or if the server did not
 * commit.  abandon rolls it all back.  Outside a hold, begin, commit and
 * rollback are plain; a commit fails when the server rolled back instead.
 *
 * BEGIN, a hold's savepoints and their releases are sent with the next
 * statement, in the same round trip (db.c, "deferred"): a release, or a
 * savepoint, that fails (only in a transaction already failed, or on a
 * lost connection) makes that next statement fail.
 */
int ras_db_hold(struct ras_db *db);
int ras_db_hold_commit(struct ras_db *db);
void ras_db_hold_abandon(struct ras_db *db);
bool ras_db_holding(const struct ras_db *db);

int ras_db_res_rows(const struct ras_db_res *res);
int ras_db_res_cols(const struct ras_db_res *res);
/* NULL for SQL NULL. */
const char *ras_db_res_get(const struct ras_db_res *res, int row, int col);
size_t ras_db_res_len(const struct ras_db_res *res, int row, int col);
bool ras_db_res_isnull(const struct ras_db_res *res, int row, int col);
/* Column by name (-1 when absent). */
int ras_db_res_col(const struct ras_db_res *res, const char *name);
/* Integer value of a cell; false when NULL or not an integer. */
bool ras_db_res_int(const struct ras_db_res *res, int row, int col, int64_t *out);
/* Rows affected by INSERT/UPDATE/DELETE. */
int64_t ras_db_res_affected(const struct ras_db_res *res);
void ras_db_res_free(struct ras_db_res *res);

/* Pipeline mode.  enter; send N statements; sync; then read N results in
 * order with ras_db_pipeline_result (each may fail on its own: a failed
 * statement aborts the rest of that transaction, as in PostgreSQL); exit. */
int ras_db_pipeline_enter(struct ras_db *db);
int ras_db_pipeline_send(struct ras_db *db, const char *sql, int nparams,
    const struct ras_db_param *params);
int ras_db_pipeline_sync(struct ras_db *db);
/* Ask the server to send the results of what was sent so far, without a
 * sync (a Flush message), and send what libpq holds: results can then be
 * read while later statements are still running. */
int ras_db_pipeline_flush(struct ras_db *db);
int ras_db_pipeline_result(struct ras_db *db, struct ras_db_res **out);
/* Drain anything left and leave pipeline mode. */
int ras_db_pipeline_exit(struct ras_db *db);

/*
 * A batch of writes for one transaction, sent as one pipeline: add
 * statements (text parameters, at most RAS_DB_WRITES_PARAMS each; the
 * strings must outlive the run), then run them in the caller's open
 * transaction.  The first failure to add (out of memory) is kept and
 * returned by run.  Statements and their array live in the arena.
 */
#define RAS_DB_WRITES_PARAMS 12

struct ras_db_writes {
	struct ras_arena *a;
	struct ras_db_writes_stmt {
		const char *sql;
		int n;
		struct ras_db_param p[RAS_DB_WRITES_PARAMS];
	} *v;
	size_t n, cap;
	int err;
};

void ras_db_writes_add(struct ras_db_writes *w, const char *sql, int n, ...);
int ras_db_writes_run(struct ras_db *db, struct ras_db_writes *w);

/*
 * An array parameter in PostgreSQL's binary format, for writing a batch in
 * one statement (UPDATE … FROM unnest($1::bigint[], $2::text[], …)): the
 * elements go as they are, with no quoting or escaping to make or undo.
 * Append the elements, then pass ras_db_array_param() (a binary
 * parameter; the array must outlive the statement).  The first failure to
 * grow (out of memory) is kept in err.  reset empties it and keeps its
 * memory for the next batch.
 */
enum ras_db_elem {
	RAS_DB_ELEM_INT8 = 20,    /* bigint (the element's type oid) */
	RAS_DB_ELEM_TEXT = 25,
	RAS_DB_ELEM_BYTEA = 17,
};
struct ras_db_array {
	struct ras_buf b;
	enum ras_db_elem type;
	int32_t n;
	bool nulls;
	int err;
};
void ras_db_array_init(struct ras_db_array *a, enum ras_db_elem type);
/* An element of data[0..len) (text: UTF-8, no NUL); NULL data is SQL NULL. */
void ras_db_array_add(struct ras_db_array *a, const void *data, size_t len);
void ras_db_array_add_str(struct ras_db_array *a, const char *s);   /* NULL: SQL NULL */
void ras_db_array_add_int(struct ras_db_array *a, int64_t v);
struct ras_db_param ras_db_array_param(struct ras_db_array *a);
void ras_db_array_reset(struct ras_db_array *a);
void ras_db_array_free(struct ras_db_array *a);

/* Session advisory lock (poller per source). Returns 1 taken, 0 busy. */
int ras_db_try_advisory_lock(struct ras_db *db, int64_t key);
int ras_db_advisory_unlock(struct ras_db *db, int64_t key);

/* Server-side SQLSTATE of the last failure ("" when none). */
const char *ras_db_last_sqlstate(const struct ras_db *db);

/* True when the connection is usable; tries one reset if it is not. */
bool ras_db_ok(struct ras_db *db);

#endif
