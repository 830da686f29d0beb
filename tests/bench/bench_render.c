/*
 * bench_render: the render stage alone, over the letters of a benchmark
 * database.  A benchmark, not a test: it prints numbers.
 *
 *   build-release/tests/bench_render CONFIG --requeue
 *
 * CONFIG is a rasd configuration with delivery routes ([database]
 * conninfo, [general] mappings, [routing], [outbox]); scripts/bench runs
 * it over its own private cluster after its render line, so that the
 * stage is measured without the deliveries the daemon interleaves with
 * it.  --requeue (required: it rewrites the outbox of the database it is
 * pointed at, so never point it at one that matters) puts every letter
 * that was rendered but not delivered back to 'pending', then renders
 * them all with ras_outbox_render_pending in [outbox] batch_size batches,
 * as the daemon's stage does, and prints one line:
 *
 *   LETTERS SECONDS CPU_SECONDS LSN|XID LSN|XID
 *
 * (the wall-clock time of the stage and the CPU time rasd itself used, the
 * rest being PostgreSQL's and the commits'; then the WAL position and a new
 * transaction id before and after, as scripts/bench's snap() gives them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/outbox.h"

static double
wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* "LSN|XID" (the XID a transaction of its own), malloc'd. */
static char *
snap(struct ras_db *db)
{
	struct ras_db_res *res = NULL;
	char *out = NULL;

	if (ras_db_query(db, &res, "SELECT pg_current_wal_lsn()::text || '|' || pg_current_xact_id()::text",
	    0, NULL) == 0)
		out = strdup(ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	return out;
}

static double
cpu(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6 +
	    (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	struct ras_buf problems = RAS_BUF_INIT(8192);
	struct ras_config *cfg = NULL;
	struct ras_db *db = NULL;
	struct ras_outbox *o = NULL;
	struct ras_outbox_stats st = { 0 };
	double w0, c0, w1, c1;
	char *s0, *s1;
	int claimed;

	if (argc != 3 || strcmp(argv[2], "--requeue") != 0) {
		fputs("usage: bench_render CONFIG --requeue   (rewrites the outbox: a scratch database only)\n",
		    stderr);
		return 64;
	}
	if (ras_config_load(argv[1], &cfg, &problems) < 0) {
		fprintf(stderr, "bench_render: %s%s\n", problems.data ? problems.data : "", ras_error_last());
		return 78;
	}
	ras_buf_free(&problems);
	if (ras_db_connect(ras_config_get(cfg, "database", NULL, "conninfo"), &db) < 0 ||
	    ras_outbox_new(cfg, ras_config_get(cfg, "general", NULL, "mappings"), &o) < 0) {
		fprintf(stderr, "bench_render: %s\n", ras_error_last());
		return 69;
	}
	if (ras_db_exec(db, "UPDATE outbox SET state = 'pending', transport = NULL, address = NULL,"
	    " workflow = NULL, fhir_mode = NULL, document_id = NULL, message_id = NULL, content_type = NULL,"
	    " payload = NULL, doc = NULL, rendered_at = NULL, last_error = NULL, attempts = 0,"
	    " message_format = NULL, mex_subject = NULL, mex_local_id = NULL, itk3_header_id = NULL"
	    " WHERE state IN ('ready', 'unknown')") < 0 ||
	    ras_db_exec(db, "VACUUM ANALYZE outbox") < 0 || ras_db_exec(db, "CHECKPOINT") < 0) {
		fprintf(stderr, "bench_render: %s\n", ras_error_last());
		return 69;
	}
	s0 = snap(db);
	w0 = wall();
	c0 = cpu();
	do {
		claimed = st.claimed;
		if (ras_outbox_render_pending(o, db, ras_time_now(), &st) < 0) {
			fprintf(stderr, "bench_render: %s\n", ras_error_last());
			return 69;
		}
	} while (st.claimed > claimed);
	w1 = wall();
	c1 = cpu();
	s1 = snap(db);
	if (s0 == NULL || s1 == NULL) {
		fprintf(stderr, "bench_render: %s\n", ras_error_last());
		return 69;
	}
	printf("%d %.3f %.3f %s %s\n", st.claimed, w1 - w0, c1 - c0, s0, s1);
	free(s0);
	free(s1);
	ras_outbox_free(o);
	ras_db_close(db);
	ras_config_free(cfg);
	return 0;
}
