/*
 * fuzz_http_intake: libFuzzer target for the bodies rasd's HTTP intake
 * takes from senders (daemon/httpd.c, daemon/receive.c), without the
 * database: byte 0 even, POST /fhir/Bundle (the intake parser, and each
 * referral through the stored form); odd, POST /fhir/$process-message (the
 * EPR event message parser, ras_epr_parse).  The HTTP framing itself is
 * libmicrohttpd's; what rasd then does with headers (bearer token, content
 * type, correlation id, ?service=) is covered by tests/e2e/test_daemon.c.
 *
 * Corpus: tests/fuzz/corpus-http_intake (seeded from tests/fixtures/r4,
 * epr, bad).  Run: scripts/fuzz http_intake [SECONDS].
 */
#include <stdint.h>
#include <stdlib.h>

#include "ras/arena.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/referral_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	struct ras_arena *a;

	if (size == 0 || (a = ras_arena_new()) == NULL)
		return 0;
	if (data[0] & 1) {
		json_t *bundle = NULL;
		struct ras_epr_event ev;

		if (ras_json_parse_arena(a, p, n, RAS_PAYLOAD_MAX, &bundle) == 0)
			(void)ras_epr_parse(a, bundle, &ev);
	} else {
		struct ras_intake in;

		if (ras_intake_parse(a, NULL, p, n, &in) == 0)
			for (size_t i = 0; i < in.n_referrals; i++) {
				json_t *doc = NULL;

				if (ras_referral_json_dump(&in.referrals[i], "fuzz", &doc) == 0)
					json_decref(doc);
			}
	}
	ras_error_clear();
	ras_arena_free(a);
	return 0;
}
