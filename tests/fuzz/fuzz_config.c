/*
 * fuzz_config: libFuzzer target for the configuration file (rasd.conf):
 * the bytes are written to a memory file and loaded as rasd --check-config
 * loads a file; a loaded configuration is read back through the getters.
 *
 * Corpus: tests/fuzz/corpus-config (seeded from systemd/rasd.conf.example
 * and test configurations).  Run: scripts/fuzz config [SECONDS].
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ras/buf.h"
#include "ras/config.h"
#include "ras/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ras_buf problems = RAS_BUF_INIT(1u << 20);
	struct ras_config *cfg = NULL;
	char path[64];
	int fd = memfd_create("rasd-fuzz-config", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* a configuration with problems is still returned (to be shown) */
	(void)ras_config_load(path, &cfg, &problems);
	if (cfg) {
		(void)ras_config_get(cfg, "database", NULL, "conninfo");
		(void)ras_config_int(cfg, "daemon", NULL, "heartbeat");
		(void)ras_config_get(cfg, "ers", NULL, "service_ids");
		(void)ras_config_get(cfg, "http", NULL, "listen");
		ras_config_free(cfg);
	}
	ras_buf_free(&problems);
	close(fd);
	ras_error_clear();
	return 0;
}
