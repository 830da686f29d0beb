/*
 * fuzz_r4_bundle: libFuzzer target for FHIR R4 referral intake (HTTP
 * POST /fhir/Bundle and the spool): the bytes are parsed as rasd parses a
 * payload, and every referral found goes through the stored form and back
 * (ras_referral_json_dump / _load), as the store does with it.
 *
 * Corpus: tests/fuzz/corpus-r4_bundle (seeded from tests/fixtures/r4,
 * triage, bad).  Run: scripts/fuzz r4_bundle [SECONDS].
 */
#include <stdint.h>
#include <stdlib.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/referral_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_intake in;

	if (a == NULL)
		return 0;
	if (ras_intake_parse(a, NULL, (const char *)data, size, &in) == 0) {
		for (size_t i = 0; i < in.n_referrals; i++) {
			json_t *doc = NULL;
			struct ras_referral back;

			if (ras_referral_json_dump(&in.referrals[i], "fuzz", &doc) == 0) {
				(void)ras_referral_json_load(a, doc, &back);
				json_decref(doc);
			}
		}
	}
	ras_error_clear();
	ras_arena_free(a);
	return 0;
}
