/*
 * listen: a listener's address from its configuration ("HOST:PORT",
 * "[IPv6]:PORT"; "localhost" is 127.0.0.1), shared by the HTTP intake
 * listener (daemon/httpd.c) and the clinicians' pages (daemon/ui/ui.c).
 */
#ifndef RAS_DAEMON_LISTEN_H
#define RAS_DAEMON_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

struct ras_listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6;
	bool loopback;          /* 127.0.0.0/8 or ::1 */
};

/* Parse v for the section named in errors ("http", "ui"). */
int ras_listen_parse(const char *section, const char *v, struct ras_listen_addr *out);

#endif
