/* listen: a listener's address from its configuration (see listen.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listen.h"
#include "ras/error.h"

int
ras_listen_parse(const char *section, const char *v, struct ras_listen_addr *out)
{
	char host[64];
	const char *colon = strrchr(v, ':');
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
	long port;
	char *end;
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (colon == NULL)
		return ras_error_code(RAS_EINVALID, "[%s] listen must be HOST:PORT", section);
	hl = (size_t)(colon - v);
	if (v[0] == '[') {
		if (hl < 2 || v[hl - 1] != ']')
			return ras_error_code(RAS_EINVALID, "[%s] listen must be [IPv6]:PORT", section);
		v++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return ras_error_code(RAS_EINVALID, "[%s] listen has a bad host", section);
	memcpy(host, v, hl);
	host[hl] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		return ras_error_code(RAS_EINVALID, "[%s] listen has a bad port", section);
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		out->len = sizeof(*a4);
		out->loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*a6);
		out->v6 = true;
		out->loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
		return 0;
	}
	return ras_error_code(RAS_EINVALID, "[%s] listen host \"%s\" is not an IP address", section, host);
}
