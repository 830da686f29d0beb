/*
 * remote: rasd's outbound HTTP (e-RS, MESH, FHIR, PDS) on the daemon's
 * loop.
 *
 * The http adapter keeps every transfer of the process in one epoll set
 * (ras/http.h); remote watches that set and libcurl's deadline from the
 * loop and installs the driver through which a stage's
 * ras_http_perform() waits in ras_loop_wait(): while a remote service is
 * slow, HTTP intake, /healthz, the spool, signals, the heartbeat and the
 * watchdog ping go on.  The stage itself carries on when its transfers
 * end, as if the call had blocked; no other stage runs meanwhile, and the
 * stages use their own database connection, so the intake and the stage
 * never share a transaction.
 */
#ifndef RAS_DAEMON_REMOTE_H
#define RAS_DAEMON_REMOTE_H

struct ras_loop;

/* Drive this thread's transfers from `l` (before any client performs). */
int ras_remote_start(struct ras_loop *l);
void ras_remote_stop(struct ras_loop *l);

#endif
