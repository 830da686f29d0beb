/*
 * fake-mesh / fake-fhir / fake-pds: the loopback fakes as standalone programs, for the
 * demo and the daemon's end-to-end tests.
 *
 *   fake-servers [--url-file FILE] [--gp-acks]
 *
 * Starts a fake MESH server, a fake FHIR endpoint and a fake PDS on
 * 127.0.0.1 (ephemeral ports), prints "mesh URL", "fhir URL" and "pds URL"
 * (and writes them to
 * FILE when asked), then serves until SIGTERM or SIGINT.  GET
 * /admin/messages (MESH) and /admin/stored (FHIR) show what arrived.
 *
 * --gp-acks: the GP practice systems behind the mailboxes answer every
 * ITK3 message they are sent (tests/fakes/fake_gp.c): an infrastructure
 * acknowledgement 20013 and a business one 30001 (patient known), except
 * the first letter, whose patient is "not known here" (30002).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_fhir.h"
#include "fake_gp.h"
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
	bool gp_acks = false;
	size_t seen = 0, answered = 0;
	struct fake_mesh *m;
	struct fake_fhir *f;
	struct fake_pds *p;
	struct sigaction sa;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url-file") == 0 && i + 1 < argc) {
			url_file = argv[++i];
		} else if (strcmp(argv[i], "--gp-acks") == 0) {
			gp_acks = true;
		} else {
			fprintf(stderr, "usage: fake-servers [--url-file FILE] [--gp-acks]\n");
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
	while (!stop) {
		usleep(100 * 1000);
		/* the GP systems answer each ITK3 message once (answers are
		 * messages too: only DATA messages from rasd's mailbox count) */
		for (size_t n = fake_mesh_count(m); gp_acks && seen < n; seen++) {
			const struct fake_mesh_msg *x = fake_mesh_msg(m, seen);

			if (x->chunks_got < x->nchunks)
				break;   /* still uploading: look again later */
			if (strcmp(x->type, "DATA") != 0 || strcmp(x->from, "X26ABC1") != 0 ||
			    strstr(x->workflow, "_ACK") || x->body == NULL || strstr(x->body, "ITK-Message-Bundle") == NULL)
				continue;
			if (fake_gp_reply(m, seen, "20013") == 0 &&
			    fake_gp_reply(m, seen, answered == 0 ? "30002" : "30001") == 0) {
				printf("fake GP: answered %s with 20013 and %s\n", x->filename,
				    answered == 0 ? "30002 (patient not known here)" : "30001");
				fflush(stdout);
				answered++;
			}
		}
	}
	fake_pds_stop(p);
	fake_fhir_stop(f);
	fake_mesh_stop(m);
	return 0;
}
