/* db: libpq adapter (see include/ras/db.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ras/arena.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/log.h"

#define DB_PARAMS_MAX 64
/* Deferred transaction control: at most this many statements (a release,
 * a savepoint and a begin are the most one group of calls makes), each
 * this long at most ("RELEASE SAVEPOINT ras_sp" and a number). */
#define DB_DEFERRED_MAX 4
#define DB_DEFERRED_LEN 40

struct ras_db {
	PGconn *conn;
	char sqlstate[6];
	int pending;     /* results still to read in pipeline mode */
	/* a transaction held by ras_db_hold: begins inside it are savepoints */
	bool held;
	bool hold_failed; /* rolled back whole inside the hold: it cannot commit */
	int depth;        /* savepoints open inside the hold (ras_sp1, ras_sp2, ...) */
	/* Transaction control not sent yet (BEGIN, SAVEPOINT, RELEASE): it goes
	 * with the next statement, in the same round trip (see "deferred"). */
	char deferred[DB_DEFERRED_MAX][DB_DEFERRED_LEN];
	int ndeferred;
};

struct ras_db_res {
	PGresult *res;
};

static void
trim_newline(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* What every session starts with; again after a reconnection (a reset
 * opens a new session, possibly on another server after a failover). */
static void
session_setup(struct ras_db *db)
{
	PQclear(PQexec(db->conn, "SET client_min_messages = warning; SET TIME ZONE 'UTC'"));
}

/* PostgreSQL's notices and warnings (client_min_messages = warning: a
 * RAISE WARNING, a deprecation) go through rasd's logger as one line, with
 * the SQLSTATE, instead of libpq's default of raw text on stderr. */
static void
on_notice(void *arg, const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *where = PQresultErrorField(r, PG_DIAG_CONTEXT);
	enum ras_log_prio prio = RAS_LOG_NOTICE;
	char text[RAS_DB_NOTICE_MAX], ctx[160];

	(void)arg;
	if (sev && (strcmp(sev, "WARNING") == 0))
		prio = RAS_LOG_WARNING;
	else if (sev && (strcmp(sev, "DEBUG") == 0 || strcmp(sev, "LOG") == 0))
		prio = RAS_LOG_DEBUG;
	else if (sev && strcmp(sev, "INFO") == 0)
		prio = RAS_LOG_INFO;
	snprintf(text, sizeof(text), "%s", msg ? msg : "(no message)");
	snprintf(ctx, sizeof(ctx), "%s", where ? where : "");
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	for (char *p = ctx; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	ras_log(prio, "PostgreSQL %s %s: %s%s%s%s", sev ? sev : "NOTICE", state ? state : "-", text,
	    ctx[0] ? " (context: " : "", ctx, ctx[0] ? ")" : "");
}

int
ras_db_connect(const char *conninfo, struct ras_db **out)
{
	struct ras_db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	db->conn = PQconnectdb(conninfo ? conninfo : "");
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", db->conn ? PQerrorMessage(db->conn) : "out of memory");
		trim_newline(msg);
		for (char *p = msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
		PQfinish(db->conn);
		free(db);
		return ras_error_code(RAS_EIO, "could not connect to the database: %s", msg);
	}
	PQsetErrorVerbosity(db->conn, PQERRORS_DEFAULT);
	(void)PQsetNoticeReceiver(db->conn, on_notice, NULL);
	session_setup(db);
	*out = db;
	return 0;
}

void
ras_db_close(struct ras_db *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db);
}

static int
fail_from_result(struct ras_db *db, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int code = RAS_ERROR;

	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	if (msg == NULL) {
		char buf[512];

		snprintf(buf, sizeof(buf), "%s", PQerrorMessage(db->conn));
		trim_newline(buf);
		if (PQstatus(db->conn) != CONNECTION_OK)
			return ras_error_code(RAS_EIO, "database connection lost: %s", buf);
		return ras_error_code(RAS_ERROR, "database error: %s", buf);
	}
	if (state && (strcmp(state, "23505") == 0 || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0))
		code = RAS_ECONFLICT;
	else if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
		code = RAS_EIO;   /* connection failures; the server shutting down or starting */
	else if (state && strncmp(state, "22", 2) == 0)
		code = RAS_EINVALID;
	return ras_error_code(code, "database error: %s (SQLSTATE %s)", msg, state ? state : "?");
}

static int
result_ok(struct ras_db *db, PGresult *r, struct ras_db_res **out)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_SYNC &&
	    st != PGRES_EMPTY_QUERY) {
		int err = fail_from_result(db, r);

		PQclear(r);
		return err;
	}
	db->sqlstate[0] = '\0';
	if (out) {
		struct ras_db_res *res = malloc(sizeof(*res));

		if (res == NULL) {
			PQclear(r);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		res->res = r;
		*out = res;
	} else {
		PQclear(r);
	}
	return 0;
}

static int
unpack(int nparams, const struct ras_db_param *params, const char **vals, int *lens, int *fmts)
{
	if (nparams > DB_PARAMS_MAX)
		return ras_error_set("too many statement parameters (%d)", nparams);
	for (int i = 0; i < nparams; i++) {
		vals[i] = params[i].value;
		if (params[i].binary && params[i].len > INT32_MAX)
			return ras_error_code(RAS_ETOOBIG, "statement parameter too large");
		lens[i] = params[i].binary ? (int)params[i].len : 0;
		fmts[i] = params[i].binary ? 1 : 0;
	}
	return 0;
}

/*
 * Deferred transaction control.  BEGIN, a hold's savepoints and their
 * releases are not sent when asked for: each would be a round trip of its
 * own to the server (~0.1 ms on a local socket, the server idle meanwhile)
 * for a statement that does almost nothing.  They are kept here and sent
 * in front of the next statement, in one round trip with it: a plain
 * statement as one simple query ("RELEASE SAVEPOINT ras_sp1; SAVEPOINT
 * ras_sp1; ..."), a statement with parameters in a pipeline (each its own
 * statement, one sync), a commit as "RELEASE ...; COMMIT".  An HTTP group
 * made 13 round trips and makes 8.  What the server does is unchanged, in
 * the same order; only when it hears of it moves, and nothing is done
 * between a deferred statement and the one it goes with.  Errors:
 *   * A deferred statement that fails makes the statement it went with
 *     fail with its error, and that statement is not run.  (A savepoint or
 *     release fails only in a transaction already failed or on a lost
 *     connection; what the caller then does, a rollback, is what it did
 *     when the release itself failed.)
 *   * A savepoint begun and rolled back before anything was sent is
 *     dropped: the server never had it.
 *   * A commit checks that the server committed: COMMIT in a failed
 *     transaction answers ROLLBACK, which is an error here.
 */
static void
deferred_clear(struct ras_db *db)
{
	db->ndeferred = 0;
}

/* The deferred statements and `sql` as one simple-query string (in buf, of
 * `size` bytes); `sql` itself when nothing is deferred. */
static const char *
with_deferred(struct ras_db *db, const char *sql, char *buf, size_t size, char **heap)
{
	size_t need = strlen(sql) + 1;
	char *p;

	*heap = NULL;
	if (db->ndeferred == 0)
		return sql;
	for (int i = 0; i < db->ndeferred; i++)
		need += strlen(db->deferred[i]) + 2;
	if (need > size) {
		if ((*heap = malloc(need)) == NULL)
			return NULL;
		buf = *heap;
	}
	p = buf;
	for (int i = 0; i < db->ndeferred; i++) {
		size_t len = strlen(db->deferred[i]);

		memcpy(p, db->deferred[i], len);
		memcpy(p + len, "; ", 2);
		p += len + 2;
	}
	memcpy(p, sql, strlen(sql) + 1);
	deferred_clear(db);
	return buf;
}

/* Send what is deferred now, on its own (before a pipeline the caller
 * drives, or when the list is full). */
static int
deferred_flush(struct ras_db *db)
{
	char buf[DB_DEFERRED_MAX * (DB_DEFERRED_LEN + 2) + 8], *heap;
	const char *sql;
	int err;

	if (db->ndeferred == 0)
		return 0;
	/* (the last one is the statement: no "; " after it) */
	db->ndeferred--;
	sql = with_deferred(db, db->deferred[db->ndeferred], buf, sizeof(buf), &heap);
	if (sql == NULL) {
		db->ndeferred++;   /* (nothing sent: all of it still deferred) */
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	err = result_ok(db, PQexec(db->conn, sql), NULL);
	free(heap);
	return err;
}

static int
defer(struct ras_db *db, const char *sql)
{
	int err;

	if (db->ndeferred == DB_DEFERRED_MAX && (err = deferred_flush(db)) < 0)
		return err;
	snprintf(db->deferred[db->ndeferred++], DB_DEFERRED_LEN, "%s", sql);
	return 0;
}

/* Out of the pipeline query_deferred entered: whatever is still to read is
 * read (nothing, unless the connection failed half way). */
static void
pipeline_leave(struct ras_db *db)
{
	for (int i = 0; i < 4 && PQexitPipelineMode(db->conn) != 1; i++) {
		PGresult *r;

		while ((r = PQgetResult(db->conn)) != NULL)
			PQclear(r);
		if (PQstatus(db->conn) != CONNECTION_OK)
			break;
	}
}

/* A statement with parameters and the deferred statements before it, in
 * one pipeline: the deferred ones' results are read and checked, then the
 * statement's. */
static int
query_deferred(struct ras_db *db, struct ras_db_res **out, const char *sql, int nparams,
    const char **vals, const int *lens, const int *fmts, int result_format)
{
	PGresult *r, *mine = NULL, *failed = NULL;
	int n = db->ndeferred, err;

	deferred_clear(db);
	if (PQenterPipelineMode(db->conn) != 1)
		return ras_error_code(RAS_EIO, "could not enter pipeline mode: %s", PQerrorMessage(db->conn));
	for (int i = 0; i < n; i++)
		if (PQsendQueryParams(db->conn, db->deferred[i], 0, NULL, NULL, NULL, NULL, 0) != 1)
			goto lost;
	if (PQsendQueryParams(db->conn, sql, nparams, NULL, vals, lens, fmts, result_format) != 1 ||
	    PQpipelineSync(db->conn) != 1)
		goto lost;
	/* n + 1 results, each followed by a NULL, then the sync */
	for (int i = 0; i <= n; i++) {
		if ((r = PQgetResult(db->conn)) == NULL)
			goto lost;
		if (i == n && PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
			mine = r;
		} else if (failed == NULL && PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
			failed = r;
		} else {
			PQclear(r);
		}
		while ((r = PQgetResult(db->conn)) != NULL)
			PQclear(r);
	}
	while ((r = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		PQclear(r);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	pipeline_leave(db);
	if (failed) {
		PQclear(mine);
		err = fail_from_result(db, failed);
		PQclear(failed);
		return err;
	}
	if (mine == NULL)
		return ras_error_code(RAS_ERROR, "statement skipped: the transaction control before it failed");
	return result_ok(db, mine, out);
lost:
	PQclear(mine);
	PQclear(failed);
	err = ras_error_code(RAS_EIO, "database connection lost: %s", PQerrorMessage(db->conn));
	/* nothing more will come: leave pipeline mode however the connection is */
	pipeline_leave(db);
	if (db->held)
		db->hold_failed = true;
	return err;
}

static int
query(struct ras_db *db, struct ras_db_res **out, const char *sql, int nparams,
    const struct ras_db_param *params, int result_format)
{
	const char *vals[DB_PARAMS_MAX];
	int lens[DB_PARAMS_MAX], fmts[DB_PARAMS_MAX];
	int err;

	if ((err = unpack(nparams, params, vals, lens, fmts)) < 0)
		return err;
	if (db->ndeferred)
		return query_deferred(db, out, sql, nparams, vals, lens, fmts, result_format);
	return result_ok(db, PQexecParams(db->conn, sql, nparams, NULL, vals, lens, fmts,
	    result_format), out);
}

int
ras_db_query(struct ras_db *db, struct ras_db_res **out, const char *sql, int nparams,
    const struct ras_db_param *params)
{
	return query(db, out, sql, nparams, params, 0);
}

int
ras_db_query_binary(struct ras_db *db, struct ras_db_res **out, const char *sql, int nparams,
    const struct ras_db_param *params)
{
	return query(db, out, sql, nparams, params, 1);
}

int
ras_db_exec(struct ras_db *db, const char *sql)
{
	char buf[512], *heap;
	const char *all = with_deferred(db, sql, buf, sizeof(buf), &heap);
	int err;

	if (all == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	err = result_ok(db, PQexec(db->conn, all), NULL);
	free(heap);
	return err;
}

/* COMMIT (after whatever is deferred), checked: a transaction that failed
 * answers COMMIT with ROLLBACK, and one that failed before it (a deferred
 * release that failed) is left open; either way it is rolled back and the
 * commit fails. */
static int
commit_now(struct ras_db *db)
{
	char buf[DB_DEFERRED_MAX * (DB_DEFERRED_LEN + 2) + 16], *heap;
	const char *sql = with_deferred(db, "COMMIT", buf, sizeof(buf), &heap);
	PGresult *r;
	int err;

	if (sql == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	r = PQexec(db->conn, sql);
	free(heap);
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		PQclear(r);
		err = ras_error_code(RAS_ERROR, "the transaction was rolled back, not committed: a statement in it failed");
	} else {
		err = result_ok(db, r, NULL);
	}
	if (err < 0 && PQtransactionStatus(db->conn) != PQTRANS_IDLE &&
	    PQtransactionStatus(db->conn) != PQTRANS_UNKNOWN)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return err;
}

/*
 * A held transaction (ras_db_hold): a caller keeps one transaction around
 * functions that make their own (ras_receive keeps a group of payloads,
 * normalises and triages them with one commit).  Inside it each begin is a
 * savepoint, its commit releases it and its rollback returns to it, so
 * each part can still fail alone; only ras_db_hold_commit makes it
 * durable.  Outside a hold, begin, commit and rollback are plain.
 */
int
ras_db_begin(struct ras_db *db)
{
	char sql[32];
	int err;

	if (!db->held)
		return defer(db, "BEGIN");
	snprintf(sql, sizeof(sql), "SAVEPOINT ras_sp%d", db->depth + 1);
	if ((err = defer(db, sql)) == 0)
		db->depth++;
	return err;
}

int
ras_db_commit(struct ras_db *db)
{
	char sql[40];
	int err;

	if (!db->held)
		return commit_now(db);
	if (db->depth == 0) {
		db->hold_failed = true;
		return ras_error_code(RAS_EIO, "a commit without a begin inside a held transaction");
	}
	/* Released with the next statement (deferred, above).  A release
	 * fails only when the transaction already failed, and then that next
	 * statement fails too, and the hold cannot commit. */
	snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT ras_sp%d", db->depth);
	if ((err = defer(db, sql)) < 0)
		return err;
	db->depth--;
	return 0;
}

/* Whether the last deferred statement is `sql`: begun, not yet sent. */
static bool
deferred_last_is(const struct ras_db *db, const char *sql)
{
	return db->ndeferred > 0 && strcmp(db->deferred[db->ndeferred - 1], sql) == 0;
}

void
ras_db_rollback(struct ras_db *db)
{
	char sql[80];

	if (!db->held || db->depth == 0) {
		/* (a rollback without a begin inside a hold ends it: it cannot
		 * be committed any more) */
		if (db->held)
			db->hold_failed = true;
		if (!db->held && deferred_last_is(db, "BEGIN")) {
			db->ndeferred--;   /* never sent: nothing to roll back */
			if (db->ndeferred == 0)
				return;
		}
		deferred_clear(db);
		if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
			PQclear(PQexec(db->conn, "ROLLBACK"));
		return;
	}
	snprintf(sql, sizeof(sql), "SAVEPOINT ras_sp%d", db->depth);
	if (deferred_last_is(db, sql)) {
		db->ndeferred--;       /* never sent: the server has nothing to undo */
		db->depth--;
		return;
	}
	snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT ras_sp%d; RELEASE SAVEPOINT ras_sp%d", db->depth,
	    db->depth);
	{
		/* (errors ignored, as they always were here: the error the caller
		 * is handling stays the last one) */
		char buf[DB_DEFERRED_MAX * (DB_DEFERRED_LEN + 2) + 96], *heap;
		const char *all = with_deferred(db, sql, buf, sizeof(buf), &heap);

		PQclear(PQexec(db->conn, all ? all : sql));
		free(heap);
	}
	db->depth--;
}

int
ras_db_hold(struct ras_db *db)
{
	int err;

	if (db->held)
		return ras_error_code(RAS_EINVALID, "a transaction is already held");
	if ((err = defer(db, "BEGIN")) < 0)
		return err;
	db->held = true;
	db->hold_failed = false;
	db->depth = 0;
	return 0;
}

int
ras_db_hold_commit(struct ras_db *db)
{
	bool ok = db->held && !db->hold_failed && db->depth == 0;
	int depth = db->depth;

	if (!ok) {
		ras_db_hold_abandon(db);
		return ras_error_code(RAS_EIO, depth ? "the held transaction has %d savepoint(s) still open" :
		    "the held transaction was rolled back", depth);
	}
	db->held = false;
	return commit_now(db);
}

void
ras_db_hold_abandon(struct ras_db *db)
{
	db->held = false;
	db->hold_failed = false;
	db->depth = 0;
	deferred_clear(db);
	/* (a hold whose BEGIN was never sent has nothing on the server) */
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

bool
ras_db_holding(const struct ras_db *db)
{
	return db->held;
}

int
ras_db_res_rows(const struct ras_db_res *res)
{
	return res ? PQntuples(res->res) : 0;
}

int
ras_db_res_cols(const struct ras_db_res *res)
{
	return res ? PQnfields(res->res) : 0;
}

const char *
ras_db_res_get(const struct ras_db_res *res, int row, int col)
{
	if (res == NULL || row >= PQntuples(res->res) || col < 0 || col >= PQnfields(res->res) ||
	    PQgetisnull(res->res, row, col))
		return NULL;
	return PQgetvalue(res->res, row, col);
}

size_t
ras_db_res_len(const struct ras_db_res *res, int row, int col)
{
	if (ras_db_res_get(res, row, col) == NULL)
		return 0;
	return (size_t)PQgetlength(res->res, row, col);
}

bool
ras_db_res_isnull(const struct ras_db_res *res, int row, int col)
{
	return ras_db_res_get(res, row, col) == NULL;
}

int
ras_db_res_col(const struct ras_db_res *res, const char *name)
{
	return res ? PQfnumber(res->res, name) : -1;
}

bool
ras_db_res_int(const struct ras_db_res *res, int row, int col, int64_t *out)
{
	const char *v = ras_db_res_get(res, row, col);
	char *end;
	long long n;

	if (v == NULL || *v == '\0')
		return false;
	n = strtoll(v, &end, 10);
	if (*end != '\0')
		return false;
	*out = n;
	return true;
}

int64_t
ras_db_res_affected(const struct ras_db_res *res)
{
	const char *s = res ? PQcmdTuples(res->res) : "";

	return *s ? strtoll(s, NULL, 10) : 0;
}

void
ras_db_res_free(struct ras_db_res *res)
{
	if (res == NULL)
		return;
	PQclear(res->res);
	free(res);
}

int
ras_db_pipeline_enter(struct ras_db *db)
{
	int err;

	/* (a pipeline the caller drives: what is deferred goes first, alone) */
	if ((err = deferred_flush(db)) < 0)
		return err;
	if (PQenterPipelineMode(db->conn) != 1)
		return ras_error_set("could not enter pipeline mode: %s", PQerrorMessage(db->conn));
	db->pending = 0;
	return 0;
}

int
ras_db_pipeline_send(struct ras_db *db, const char *sql, int nparams,
    const struct ras_db_param *params)
{
	const char *vals[DB_PARAMS_MAX];
	int lens[DB_PARAMS_MAX], fmts[DB_PARAMS_MAX];
	int err;

	if ((err = unpack(nparams, params, vals, lens, fmts)) < 0)
		return err;
	if (PQsendQueryParams(db->conn, sql, nparams, NULL, vals, lens, fmts, 0) != 1)
		return ras_error_code(RAS_EIO, "could not send statement: %s", PQerrorMessage(db->conn));
	db->pending++;
	return 0;
}

int
ras_db_pipeline_sync(struct ras_db *db)
{
	if (PQpipelineSync(db->conn) != 1)
		return ras_error_code(RAS_EIO, "could not sync pipeline: %s", PQerrorMessage(db->conn));
	return 0;
}

int
ras_db_pipeline_flush(struct ras_db *db)
{
	if (PQsendFlushRequest(db->conn) != 1 || PQflush(db->conn) < 0)
		return ras_error_code(RAS_EIO, "could not flush pipeline: %s", PQerrorMessage(db->conn));
	return 0;
}

int
ras_db_pipeline_result(struct ras_db *db, struct ras_db_res **out)
{
	PGresult *r, *extra;
	int err;

	if (db->pending <= 0)
		return ras_error_set("no pipeline result pending");
	r = PQgetResult(db->conn);
	if (r == NULL) {
		/* No result will come for this statement: on a lost connection
		 * none will come for any (ras_db_pipeline_exit must not wait for
		 * them: it looped for ever when the server went away). */
		if (PQstatus(db->conn) != CONNECTION_OK)
			db->pending = 0;
		else
			db->pending--;
		return ras_error_code(RAS_EIO, "pipeline ended early: %s", PQerrorMessage(db->conn));
	}
	/* Each statement's result is followed by a NULL. */
	while ((extra = PQgetResult(db->conn)) != NULL)
		PQclear(extra);
	db->pending--;
	if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
		PQclear(r);
		return ras_error_code(RAS_ERROR, "statement skipped: an earlier statement in the batch failed");
	}
	err = result_ok(db, r, out);
	return err;
}

int
ras_db_pipeline_exit(struct ras_db *db)
{
	PGresult *r;

	/* Skip unread statement results, then consume the sync marker(s). */
	while (db->pending > 0) {
		struct ras_db_res *res = NULL;

		(void)ras_db_pipeline_result(db, &res);
		ras_db_res_free(res);
	}
	for (int idle = 0;;) {
		r = PQgetResult(db->conn);
		if (r == NULL) {
			if (PQpipelineStatus(db->conn) == PQ_PIPELINE_OFF || PQexitPipelineMode(db->conn) == 1)
				break;
			if (PQstatus(db->conn) != CONNECTION_OK || PQconsumeInput(db->conn) == 0)
				return ras_error_code(RAS_EIO, "database connection lost in pipeline");
			/* Nothing to read yet the pipeline cannot end: a batch that
			 * failed before its sync was sent.  Send one, so the server
			 * answers; if even that brings nothing, the session is not
			 * usable: start a new one rather than wait (this loop must
			 * never spin with the event loop stopped). */
			if (++idle == 1) {
				(void)PQpipelineSync(db->conn);
				continue;
			}
			if (idle > RAS_DB_PIPELINE_IDLE_MAX) {
				PQreset(db->conn);
				db->pending = 0;
				deferred_clear(db);
				if (db->held)
					db->hold_failed = true;   /* a new session: the hold is gone */
				if (PQstatus(db->conn) == CONNECTION_OK)
					session_setup(db);
				return ras_error_code(RAS_EIO, "database pipeline could not end: session restarted");
			}
			continue;
		}
		idle = 0;
		PQclear(r);
	}
	return 0;
}

void
ras_db_writes_add(struct ras_db_writes *w, const char *sql, int n, ...)
{
	va_list ap;
	struct ras_db_writes_stmt *s;

	if (w->err)
		return;
	if (n > RAS_DB_WRITES_PARAMS) {
		w->err = ras_error_code(RAS_EINVALID, "a batched write takes at most %d parameters",
		    RAS_DB_WRITES_PARAMS);
		return;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct ras_db_writes_stmt *nv = ras_arena_calloc(w->a, cap, sizeof(*nv));

		if (nv == NULL) {
			w->err = ras_error_code(RAS_ENOMEM, "out of memory");
			return;
		}
		if (w->n)
			memcpy(nv, w->v, w->n * sizeof(*nv));
		w->v = nv;
		w->cap = cap;
	}
	s = &w->v[w->n++];
	s->sql = sql;
	s->n = n;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		s->p[i] = RAS_DB_TEXT(va_arg(ap, const char *));
	va_end(ap);
}

int
ras_db_writes_run(struct ras_db *db, struct ras_db_writes *w)
{
	int err, e2;

	if (w->err)
		return w->err;
	if (w->n == 0)
		return 0;
	if ((err = ras_db_pipeline_enter(db)) < 0)
		return err;
	for (size_t i = 0; i < w->n; i++)
		if ((err = ras_db_pipeline_send(db, w->v[i].sql, w->v[i].n, w->v[i].p)) < 0)
			goto done;
	if ((err = ras_db_pipeline_sync(db)) < 0)
		goto done;
	for (size_t i = 0; i < w->n; i++) {
		struct ras_db_res *res = NULL;

		err = ras_db_pipeline_result(db, &res);
		ras_db_res_free(res);
		if (err < 0)
			goto done;
	}
done:
	e2 = ras_db_pipeline_exit(db);
	return err ? err : e2;
}

int
ras_db_try_advisory_lock(struct ras_db *db, int64_t key)
{
	char k[32];
	struct ras_db_res *res;
	int err;

	snprintf(k, sizeof(k), "%lld", (long long)key);
	if ((err = ras_db_query(db, &res, "SELECT pg_try_advisory_lock($1::bigint)", 1,
	    &RAS_DB_TEXT(k))) < 0)
		return err;
	err = ras_db_res_get(res, 0, 0) && strcmp(ras_db_res_get(res, 0, 0), "t") == 0;
	ras_db_res_free(res);
	return err;
}

int
ras_db_advisory_unlock(struct ras_db *db, int64_t key)
{
	char k[32];

	snprintf(k, sizeof(k), "%lld", (long long)key);
	return ras_db_query(db, NULL, "SELECT pg_advisory_unlock($1::bigint)", 1, &RAS_DB_TEXT(k));
}

const char *
ras_db_last_sqlstate(const struct ras_db *db)
{
	return db->sqlstate;
}

bool
ras_db_ok(struct ras_db *db)
{
	if (PQstatus(db->conn) == CONNECTION_OK)
		return true;
	/* The same connection string: with several hosts and
	 * target_session_attrs=read-write, whichever server is the primary
	 * now (after a failover, the promoted standby). */
	PQreset(db->conn);
	/* a new session: nothing of the old one's transaction is left */
	deferred_clear(db);
	if (db->held)
		db->hold_failed = true;
	if (PQstatus(db->conn) != CONNECTION_OK)
		return false;
	db->pending = 0;
	session_setup(db);
	return true;
}

/* --- binary array parameters ------------------------------------------------ */

/* The array header: dimensions, has-nulls flag, element type, then the one
 * dimension's length and lower bound (int32 each, network byte order). */
#define ARRAY_HEADER 20

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void
ras_db_array_init(struct ras_db_array *a, enum ras_db_elem type)
{
	memset(a, 0, sizeof(*a));
	ras_buf_init(&a->b, 0);
	a->type = type;
	ras_db_array_reset(a);
}

void
ras_db_array_reset(struct ras_db_array *a)
{
	static const unsigned char zero[ARRAY_HEADER];

	ras_buf_reset(&a->b);
	a->n = 0;
	a->nulls = false;
	a->err = 0;
	if (ras_buf_append(&a->b, zero, sizeof(zero)) < 0)
		a->err = ras_error_code(RAS_ENOMEM, "out of memory");
}

void
ras_db_array_add(struct ras_db_array *a, const void *data, size_t len)
{
	unsigned char n[4];

	if (a->err)
		return;
	if (a->n == INT32_MAX || len > INT32_MAX) {
		a->err = ras_error_code(RAS_ETOOBIG, "an array parameter past 2 GiB");
		return;
	}
	put32(n, data ? (uint32_t)len : UINT32_MAX);   /* -1: NULL */
	if (ras_buf_append(&a->b, n, sizeof(n)) < 0 || (data && ras_buf_append(&a->b, data, len) < 0)) {
		a->err = ras_error_code(RAS_ENOMEM, "out of memory");
		return;
	}
	a->nulls |= data == NULL;
	a->n++;
}

void
ras_db_array_add_str(struct ras_db_array *a, const char *s)
{
	ras_db_array_add(a, s, s ? strlen(s) : 0);
}

void
ras_db_array_add_int(struct ras_db_array *a, int64_t v)
{
	unsigned char b[8];

	put32(b, (uint32_t)((uint64_t)v >> 32));
	put32(b + 4, (uint32_t)v);
	ras_db_array_add(a, b, sizeof(b));
}

struct ras_db_param
ras_db_array_param(struct ras_db_array *a)
{
	unsigned char *h = (unsigned char *)a->b.data;

	if (h == NULL || a->b.len < ARRAY_HEADER)
		return RAS_DB_TEXT(NULL);   /* a->err says why */
	put32(h + 4, a->nulls ? 1 : 0);
	put32(h + 8, (uint32_t)a->type);
	if (a->n == 0) {
		/* an empty array has no dimensions */
		put32(h, 0);
		return RAS_DB_BYTES(a->b.data, 12);
	}
	put32(h, 1);
	put32(h + 12, (uint32_t)a->n);
	put32(h + 16, 1);
	return RAS_DB_BYTES(a->b.data, a->b.len);
}

void
ras_db_array_free(struct ras_db_array *a)
{
	ras_buf_free(&a->b);
}
