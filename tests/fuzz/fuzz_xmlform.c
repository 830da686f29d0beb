/*
 * fuzz_xmlform: libFuzzer target for referral forms that arrive as XML or
 * XHTML (e-RS attachments): read through the shipped form maps
 * (mappings/form-maps) or as FHIR XML, and the QuestionnaireResponse that
 * comes out parsed as a form.  With the first byte odd, the rest is a form
 * map itself (ras_xmlform_maps_add), which is then used on a fixed form.
 *
 * Corpus: tests/fuzz/corpus-xmlform (seeded from the e-RS object-store
 * fixtures and the shipped maps).  Run: scripts/fuzz xmlform [SECONDS].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/xmlform.h"
#include "ras_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct ras_xmlform_maps *maps;
static struct ras_buf fixed = RAS_BUF_INIT(1u << 20);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct ras_buf problems = RAS_BUF_INIT(64 * 1024);

	(void)argc;
	(void)argv;
	if (ras_xmlform_maps_load(RAS_SOURCE_ROOT "/mappings/form-maps", &maps, &problems) < 0)
		abort();
	ras_buf_free(&problems);
	if (ras_buf_read_file(&fixed, RAS_SOURCE_ROOT
	    "/tests/fixtures/ers/local/objectstore/8b3f4e5c-3d4e-4f60-8b12-2c3d4e5f6071.xhtml") < 0)
		abort();
	return 0;
}

static void
read_form(struct ras_arena *a, const struct ras_xmlform_maps *m, const char *p, size_t n)
{
	json_t *qr = NULL;
	const char *how = NULL;
	struct ras_form f;

	if (ras_xmlform_read(a, m, p, n, &qr, &how) == 0)
		(void)ras_intake_fhir_form(a, qr, &f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	struct ras_arena *a;

	if (size == 0 || (a = ras_arena_new()) == NULL)
		return 0;
	if (data[0] & 1) {
		struct ras_xmlform_maps *m = NULL;

		if (ras_xmlform_maps_new(&m) == 0) {
			if (ras_xmlform_maps_add(m, "fuzz", p, n) == 0)
				read_form(a, m, fixed.data, fixed.len);
			ras_xmlform_maps_free(m);
		}
	} else {
		read_form(a, maps, p, n);
	}
	ras_error_clear();
	ras_arena_free(a);
	return 0;
}
