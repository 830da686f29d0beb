/*
 * fake-mesh / fake-fhir / fake-pds: the loopback fakes as standalone programs, for the
 * demo and the daemon's end-to-end tests.
 *
 *   fake-servers [--url-file FILE]
 *
 * Starts a fake MESH server, a fake FHIR endpoint and a fake PDS on
 * 127.0.0.1 (ephemeral ports), prints "mesh URL", "fhir URL" and "pds URL"
 * (and writes them to
 * FILE when asked), then serves until SIGTERM or SIGINT.  GET
 * /admin/messages (MESH) and /admin/stored (FHIR) show what arrived.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_fhir.h"
#include "fake_mesh.h"
#include "fake_pds.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *url_file = NULL;
	struct fake_mesh *m;
	struct fake_fhir *f;
	struct fake_pds *p;
	struct sigaction sa;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url-file") == 0 && i + 1 < argc) {
			url_file = argv[++i];
		} else {
			fprintf(stderr, "usage: fake-servers [--url-file FILE]\n");
			return 64;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	m = fake_mesh_start(NULL);
	f = fake_fhir_start();
	p = fake_pds_start();
	printf("mesh %s\nfhir %s\npds %s\n", fake_mesh_url(m), fake_fhir_base(f), fake_pds_base(p));
	fflush(stdout);
	if (url_file) {
		FILE *o = fopen(url_file, "w");

		if (o == NULL) {
			perror(url_file);
			return 74;
		}
		fprintf(o, "mesh %s\nfhir %s\npds %s\n", fake_mesh_url(m), fake_fhir_base(f), fake_pds_base(p));
		fclose(o);
	}
	while (!stop)
		pause();
	fake_pds_stop(p);
	fake_fhir_stop(f);
	fake_mesh_stop(m);
	return 0;
}
