/*
 * fake-ers: the test suite's fake e-RS as a program, for the demo, the
 * daemon's end-to-end tests and trying `rasctl ers poll --once` by hand.
 *
 *   build/tests/fake-ers [--port N] [--store-port M] [--fixtures DIR]
 *                        [--stateful] [--require-auth] [--public-key PEM]
 *                        [--port-file FILE] [--exit-with PID]
 *
 * It prints the base URL, token URL and object-store URL, writes the e-RS
 * port to --port-file when given (handy with --port 0), and serves until
 * SIGINT or SIGTERM, or until process PID (--exit-with, e.g. the demo
 * script) has gone, so it is never left behind.  When it stops it prints every request it
 * received on standard error (method and path), never bodies.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_ers.h"

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

static void
usage(void)
{
	fprintf(stderr, "usage: fake-ers [--port N] [--store-port M] [--fixtures DIR] [--stateful]\n"
	    "                [--require-auth] [--public-key PEM] [--port-file FILE] [--exit-with PID]\n");
}

static unsigned
port_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0 || v > 65535) {
		fprintf(stderr, "fake-ers: bad port \"%s\"\n", s);
		exit(64);
	}
	return (unsigned)v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "store-port", required_argument, NULL, 's' },
		{ "fixtures", required_argument, NULL, 'f' },
		{ "stateful", no_argument, NULL, 'S' },
		{ "require-auth", no_argument, NULL, 'a' },
		{ "public-key", required_argument, NULL, 'k' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "exit-with", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fake_ers_opts o = { 0 };
	const char *port_file = NULL;
	long watch = 0;
	char *key = NULL;
	struct fake_ers *f;
	sigset_t set;
	int c, sig = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o.port = port_arg(optarg); break;
		case 's': o.store_port = port_arg(optarg); break;
		case 'f': o.fixtures = optarg; break;
		case 'S': o.stateful = true; break;
		case 'a': o.require_auth = true; break;
		case 'k':
			if ((key = slurp(optarg)) == NULL) {
				fprintf(stderr, "fake-ers: cannot read %s\n", optarg);
				return 66;
			}
			o.public_key_pem = key;
			break;
		case 'P': port_file = optarg; break;
		case 'x': {
			char *end;

			watch = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || watch < 1) {
				fprintf(stderr, "fake-ers: bad pid \"%s\"\n", optarg);
				return 64;
			}
			break;
		}
		case 'h': usage(); return 0;
		default: usage(); return 64;
		}
	}
	if (optind != argc) {
		usage();
		return 64;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* block before the server threads start so they inherit the mask */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((f = fake_ers_start(&o)) == NULL)
		return 1;
	printf("fake-ers: e-RS %s\nfake-ers: token %s\nfake-ers: object store %s\n",
	    fake_ers_base_url(f), fake_ers_token_url(f), fake_ers_store_url(f));
	fflush(stdout);
	if (port_file) {
		FILE *pf = fopen(port_file, "w");

		if (pf == NULL || fprintf(pf, "%u\n", fake_http_port(fake_ers_http(f))) < 0 ||
		    fclose(pf) != 0) {
			fprintf(stderr, "fake-ers: cannot write %s\n", port_file);
			fake_ers_stop(f);
			return 73;
		}
	}
	for (;;) {
		struct timespec one = { 1, 0 };

		sig = sigtimedwait(&set, NULL, &one);
		if (sig > 0)
			break;
		if (watch > 0 && kill((pid_t)watch, 0) < 0 && errno == ESRCH)
			break;
	}
	{
		struct fake_http *h = fake_ers_http(f);
		size_t n = fake_http_count(h);

		/* What rasd sent, for the scripts that run this program (the
		 * clinicians' pages' test looks for its A028): method and path. */
		for (size_t i = 0; i < n; i++) {
			const struct fake_req *r = fake_http_req(h, i);

			fprintf(stderr, "fake-ers: request %s %s\n", r->method, r->path);
		}
		fprintf(stderr, "fake-ers: %zu e-RS request(s), %zu object-store request(s); stopping\n", n,
		    fake_http_count(fake_ers_store(f)));
	}
	fake_ers_stop(f);
	free(key);
	return 0;
}
