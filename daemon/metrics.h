/*
 * metrics: /metrics in the Prometheus text exposition format (0.0.4).
 *
 * Two kinds of series: the process's own counters (stage runs and rows,
 * HTTP responses, spool files, reloads), and the state of the shared
 * database, read at scrape time, so every rasd instance reports the same
 * queue depths, decisions, deadlines and poll times.  Database families
 * are declared in one table in metrics.c (name, type, help, SQL returning
 * label values then the value), the queues in lib/ops.c (shared with
 * rasctl status); the later stages add their rows there (e-RS budget per
 * service, deliveries and failures per destination, outbox dead letters).
 * No series carries patient data.
 */
#ifndef RAS_DAEMON_METRICS_H
#define RAS_DAEMON_METRICS_H

struct ras_buf;
struct ras_daemon;

/* Append the exposition to out. Database families are skipped (and
 * rasd_database_up is 0) when the database is unreachable. */
int ras_metrics_render(struct ras_daemon *d, struct ras_buf *out);

#endif
