/*
 * fuzz_ers_stu3: libFuzzer target for what e-RS sends (FHIR STU3): A008
 * worklists, A005 ReferralRequests, DocumentReferences, and the error
 * bodies (OperationOutcome, or a gateway's plain text).  The first byte
 * picks the route: even, the payload parser (ras_intake_parse, then each
 * referral through the stored form and back); odd, the error-body parser
 * (ras_ers_parse_outcome).
 *
 * Corpus: tests/fuzz/corpus-ers_stu3 (seeded from tests/fixtures/ers).
 * Run: scripts/fuzz ers_stu3 [SECONDS].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/ers.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/referral_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	struct ras_arena *a;

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		char code[64], diag[256];

		ras_ers_parse_outcome(p, n, code, sizeof(code), diag, sizeof(diag));
		if (strlen(code) >= sizeof(code) || strlen(diag) >= sizeof(diag))
			abort();
		return 0;
	}
	if ((a = ras_arena_new()) == NULL)
		return 0;
	{
		struct ras_intake in;

		if (ras_intake_parse(a, NULL, p, n, &in) == 0) {
			for (size_t i = 0; i < in.n_referrals; i++) {
				json_t *doc = NULL;
				struct ras_referral back;

				if (ras_referral_json_dump(&in.referrals[i], "fuzz", &doc) == 0) {
					(void)ras_referral_json_load(a, doc, &back);
					json_decref(doc);
				}
			}
		}
	}
	ras_error_clear();
	ras_arena_free(a);
	return 0;
}
