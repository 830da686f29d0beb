/*
 * pdf: a document as an NHS letter in PDF, laid out with Pango on a Cairo
 * PDF surface (Debian's libcairo2 and libpango; the font is a free one
 * Debian packages, DejaVu Sans by default).
 *
 * The letter, on A4:
 *   - every page: the service's name and contact block, the patient banner
 *     (SURNAME, Given | NHS number 3-3-4 | date of birth dd-Mmm-yyyy), and
 *     a footer with the document reference and "Page N of M";
 *   - page 1: the recipient, the date and the title;
 *   - then the Composition's sections in their order (the service profile
 *     puts the GP's actions first), each from its XHTML narrative:
 *     paragraphs, lists and tables; highlighted (opioid changes, alerts)
 *     where the narrative marks them (class "opioid" or "alert").
 * Pango shapes and wraps all text; a paragraph too long for the page goes
 * on over the break line by line, a section heading never ends a page.
 *
 * Deterministic: the PDF's creation date is the document's date
 * (Composition.date), no clock is read, so the same document gives the
 * same bytes on the same machine (fonts and library versions alike).
 */
#ifndef RAS_PDF_H
#define RAS_PDF_H

#include <stdbool.h>

#include "ras/docprofile.h"
#include "ras/json.h"

struct ras_arena;
struct ras_buf;

struct ras_pdf_opts {
	const char *recipient;   /* "To:" line(s), '\n' separated; NULL: none */
	bool patient_copy;       /* framed as the patient's own copy */
	const char *font;        /* Pango family; NULL: "DejaVu Sans" */
};

/* The PDF of a document Bundle (ras_document_build's). */
int ras_pdf_document(struct ras_arena *a, const json_t *bundle, const struct ras_docprofile *p,
    const struct ras_pdf_opts *o, struct ras_buf *out);

#endif
