/* pdf: documents as NHS letters in PDF (see include/ras/pdf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/pdf.h"
#include "ras/date.h"
#include "ras/time.h"
#include "ras/xml.h"

/* A4 in points, margins */
#define PAGE_W 595.276
#define PAGE_H 841.890
#define MARGIN 50.0
#define TEXT_W (PAGE_W - 2 * MARGIN)
#define FOOTER_Y (PAGE_H - 36.0)
#define BODY_BOTTOM (PAGE_H - 58.0)

/* NHS identity colours */
#define NHS_BLUE 0.0, 0.369, 0.722
#define TEXT_BLACK 0.129, 0.169, 0.196
#define TEXT_GREY 0.298, 0.384, 0.447
#define PALE_GREY 0.941, 0.957, 0.961
#define RULE_GREY 0.847, 0.867, 0.878
#define WARN_YELLOW 1.0, 0.976, 0.769
#define WARN_AMBER 1.0, 0.722, 0.110

enum blk_kind { BLK_HEADING, BLK_PARA, BLK_ITEM, BLK_ROW };

enum {
	ST_BOLD = 1,
	ST_ITALIC = 2,
	ST_GREY = 4,
	ST_HIGHLIGHT = 8,
	ST_HEADER_ROW = 16,
};

#define MAX_CELLS 6

struct blk {
	enum blk_kind kind;
	int style;
	const char *text;             /* heading, paragraph, list item */
	const char *bullet;           /* list item: "•" or "3." */
	const char *cells[MAX_CELLS]; /* table row */
	size_t ncells;
	bool key_value;               /* a two-column row whose first cell is a <th> */
};

struct letter {
	struct ras_arena *a;
	struct blk *v;
	size_t n, cap;
	int err;
	/* the frame */
	const char *service, *contact, *title, *date, *ref, *recipient;
	const char *banner_name, *banner_nhs, *banner_dob;
	bool patient_copy;
	const char *font;
	/* layout */
	cairo_t *cr;
	PangoContext *pc;
	bool draw;
	int page, pages;
	double y;
};

static void
add(struct letter *L, struct blk b)
{
	if (L->err)
		return;
	if (L->n == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 64;
		struct blk *nv = ras_arena_calloc(L->a, cap, sizeof(*nv));

		if (nv == NULL) {
			L->err = ras_error_code(RAS_ENOMEM, "out of memory");
			return;
		}
		if (L->n)
			memcpy(nv, L->v, L->n * sizeof(*nv));
		L->v = nv;
		L->cap = cap;
	}
	L->v[L->n++] = b;
}

/* Collapse runs of white space (the narrative's layout is not the letter's). */
static const char *
squash(struct ras_arena *a, const char *s)
{
	char *out, *o;
	bool space = false;

	if (s == NULL)
		return "";
	out = o = ras_arena_alloc(a, strlen(s) + 1);
	if (out == NULL)
		return "";
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') {
			space = true;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = false;
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

static bool
has_class(const char *cls, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = cls; p && (p = strstr(p, want)) != NULL; p += n)
		if ((p == cls || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

static int
class_style(const char *cls)
{
	int st = 0;

	if (has_class(cls, "opioid") || has_class(cls, "alert") || has_class(cls, "note"))
		st |= ST_HIGHLIGHT;
	if (has_class(cls, "none") || has_class(cls, "clause") || has_class(cls, "meta"))
		st |= ST_GREY | ST_ITALIC;
	if (has_class(cls, "outcome") || has_class(cls, "flag"))
		st |= ST_BOLD;
	return st;
}

static void
table_row(struct letter *L, const struct ras_xml_node *tr, bool in_head)
{
	struct blk b = { .kind = BLK_ROW };
	const char *cls = ras_xml_attr(L->a, tr, "class");
	bool first_th = false;

	b.style = class_style(cls) & ST_HIGHLIGHT;
	for (const struct ras_xml_node *c = ras_xml_first(tr); c && b.ncells < MAX_CELLS; c = ras_xml_next(c)) {
		if (b.ncells == 0)
			first_th = strcmp(ras_xml_name(c), "th") == 0;
		b.cells[b.ncells++] = squash(L->a, ras_xml_text(L->a, c));
	}
	if (in_head)
		b.style |= ST_HEADER_ROW;
	b.key_value = !in_head && first_th && b.ncells == 2;
	if (b.ncells)
		add(L, b);
}

/* The narrative's elements as blocks, in document order. */
static void
walk(struct letter *L, const struct ras_xml_node *n)
{
	const char *name = ras_xml_name(n), *cls = ras_xml_attr(L->a, n, "class");

	if (strcmp(name, "p") == 0 || strcmp(name, "span") == 0 || strcmp(name, "strong") == 0) {
		const char *t = squash(L->a, ras_xml_text(L->a, n));

		if (*t)
			add(L, (struct blk){ .kind = BLK_PARA, .text = t, .style = class_style(cls) });
	} else if (strcmp(name, "ul") == 0 || strcmp(name, "ol") == 0) {
		int k = 0;

		for (const struct ras_xml_node *li = ras_xml_first(n); li; li = ras_xml_next(li)) {
			const char *lc = ras_xml_attr(L->a, li, "class");

			k++;
			add(L, (struct blk){ .kind = BLK_ITEM, .text = squash(L->a, ras_xml_text(L->a, li)),
			    .style = class_style(lc), .bullet = strcmp(name, "ol") == 0 ?
			    ras_arena_printf(L->a, "%d.", k) : "\xe2\x80\xa2" });
		}
	} else if (strcmp(name, "table") == 0) {
		for (const struct ras_xml_node *c = ras_xml_first(n); c; c = ras_xml_next(c)) {
			if (strcmp(ras_xml_name(c), "tr") == 0) {
				table_row(L, c, false);
				continue;
			}
			for (const struct ras_xml_node *tr = ras_xml_first(c); tr; tr = ras_xml_next(tr))
				if (strcmp(ras_xml_name(tr), "tr") == 0)
					table_row(L, tr, strcmp(ras_xml_name(c), "thead") == 0);
		}
	} else if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && name[2] == '\0') {
		add(L, (struct blk){ .kind = BLK_PARA, .text = squash(L->a, ras_xml_text(L->a, n)),
		    .style = ST_BOLD });
	} else if (ras_xml_first(n) == NULL) {
		const char *t = squash(L->a, ras_xml_text(L->a, n));

		if (*t)
			add(L, (struct blk){ .kind = BLK_PARA, .text = t, .style = class_style(cls) });
	} else {
		for (const struct ras_xml_node *c = ras_xml_first(n); c; c = ras_xml_next(c))
			walk(L, c);
	}
}

/* --- the document's facts ----------------------------------------------- */

static const json_t *
resource_of(const json_t *bundle, const char *type)
{
	json_t *e;
	size_t i;

	json_array_foreach(ras_json_arr(bundle, "entry"), i, e) {
		json_t *r = ras_json_obj(e, "resource");

		if (r && ras_json_str(r, "resourceType") && strcmp(ras_json_str(r, "resourceType"), type) == 0)
			return r;
	}
	return NULL;
}

static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
	"Oct", "Nov", "Dec" };
static const char *const month[] = { "January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December" };

static void
patient_facts(struct letter *L, const json_t *patient)
{
	json_t *name = json_array_get(ras_json_arr(patient, "name"), 0), *id, *g;
	const char *family = ras_json_str(name, "family"), *birth = ras_json_str(patient, "birthDate");
	struct ras_buf given = RAS_BUF_INIT(RAS_STRING_MAX);
	struct ras_date d;
	size_t i;

	json_array_foreach(ras_json_arr(name, "given"), i, g) {
		if (!json_is_string(g))
			continue;
		if (given.len)
			(void)ras_buf_append(&given, " ", 1);
		(void)ras_buf_append(&given, json_string_value(g), strlen(json_string_value(g)));
	}
	if (family) {
		char *up = ras_arena_strdup(L->a, family);

		for (char *p = up; p && *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		L->banner_name = ras_arena_printf(L->a, "%s%s%s", up ? up : "", given.len ? ", " : "",
		    given.len ? given.data : "");
	} else {
		L->banner_name = given.len ? ras_arena_strdup(L->a, given.data) : "Name not given";
	}
	ras_buf_free(&given);
	L->banner_nhs = "not given";
	json_array_foreach(ras_json_arr(patient, "identifier"), i, id) {
		const char *sys = ras_json_str(id, "system"), *v = ras_json_str(id, "value");

		if (sys && v && strcmp(sys, "https://fhir.nhs.uk/Id/nhs-number") == 0 && strlen(v) == 10)
			L->banner_nhs = ras_arena_printf(L->a, "%.3s %.3s %.4s", v, v + 3, v + 6);
	}
	L->banner_dob = "not given";
	if (birth && ras_date_parse(birth, &d) == 0)
		L->banner_dob = ras_arena_printf(L->a, "%02d-%s-%04d", d.day, mon[d.month - 1], d.year);
}

/* --- layout ------------------------------------------------------------- */

static PangoLayout *
text_layout(struct letter *L, const char *text, double size, int style, double width)
{
	PangoLayout *l = pango_layout_new(L->pc);
	PangoFontDescription *fd = pango_font_description_new();

	pango_font_description_set_family(fd, L->font);
	pango_font_description_set_size(fd, (gint)(size * PANGO_SCALE));
	pango_font_description_set_weight(fd, style & ST_BOLD ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
	pango_font_description_set_style(fd, style & ST_ITALIC ? PANGO_STYLE_ITALIC : PANGO_STYLE_NORMAL);
	pango_layout_set_font_description(l, fd);
	pango_font_description_free(fd);
	pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
	pango_layout_set_width(l, (int)(width * PANGO_SCALE));
	pango_layout_set_text(l, text ? text : "", -1);
	return l;
}

static double
layout_h(PangoLayout *l)
{
	int w, h;

	pango_layout_get_size(l, &w, &h);
	return (double)h / PANGO_SCALE;
}

static void
show(struct letter *L, PangoLayout *l, double x, double y, double r, double g, double b)
{
	if (!L->draw)
		return;
	cairo_set_source_rgb(L->cr, r, g, b);
	cairo_move_to(L->cr, x, y);
	pango_cairo_show_layout(L->cr, l);
}

static void
rect(struct letter *L, double x, double y, double w, double h, double r, double g, double b)
{
	if (!L->draw)
		return;
	cairo_set_source_rgb(L->cr, r, g, b);
	cairo_rectangle(L->cr, x, y, w, h);
	cairo_fill(L->cr);
}

/* One line of text; returns its height. */
static double
line(struct letter *L, const char *text, double x, double y, double size, int style, double width,
    double r, double g, double b, PangoAlignment align)
{
	PangoLayout *l = text_layout(L, text, size, style, width);
	double h;

	pango_layout_set_alignment(l, align);
	h = layout_h(l);
	show(L, l, x, y, r, g, b);
	g_object_unref(l);
	return h;
}

/* The frame of every page: service and contact, patient banner, footer.
 * Leaves L->y below the banner. */
static void
page_frame(struct letter *L)
{
	double y = 36.0, h, right_h;
	char pg[64];

	if (L->draw)
		cairo_new_path(L->cr);
	h = line(L, L->service, MARGIN, y, 14, ST_BOLD, TEXT_W * 0.55, NHS_BLUE, PANGO_ALIGN_LEFT);
	right_h = line(L, L->contact, MARGIN + TEXT_W * 0.55, y + 2, 8.5, 0, TEXT_W * 0.45, TEXT_GREY,
	    PANGO_ALIGN_RIGHT);
	y += (h > right_h ? h : right_h) + 6;
	rect(L, MARGIN, y, TEXT_W, 2.5, NHS_BLUE);
	y += 8;
	/* the patient banner, on every page */
	{
		const char *t = ras_arena_printf(L->a, "%s     NHS number: %s     Date of birth: %s",
		    L->banner_name, L->banner_nhs, L->banner_dob);
		PangoLayout *l = text_layout(L, t, 10, ST_BOLD, TEXT_W - 16);

		h = layout_h(l);
		rect(L, MARGIN, y, TEXT_W, h + 10, PALE_GREY);
		rect(L, MARGIN, y, 4, h + 10, NHS_BLUE);
		show(L, l, MARGIN + 10, y + 5, TEXT_BLACK);
		g_object_unref(l);
		y += h + 10 + 14;
	}
	/* footer */
	rect(L, MARGIN, FOOTER_Y - 6, TEXT_W, 0.75, RULE_GREY);
	line(L, ras_arena_printf(L->a, "Document reference %s", L->ref ? L->ref : "-"), MARGIN, FOOTER_Y,
	    8, 0, TEXT_W * 0.7, TEXT_GREY, PANGO_ALIGN_LEFT);
	snprintf(pg, sizeof(pg), "Page %d of %d", L->page, L->pages);
	line(L, pg, MARGIN + TEXT_W * 0.7, FOOTER_Y, 8, 0, TEXT_W * 0.3, TEXT_GREY, PANGO_ALIGN_RIGHT);
	L->y = y;
}

static void
new_page(struct letter *L)
{
	if (L->draw)
		cairo_show_page(L->cr);
	L->page++;
	page_frame(L);
}

/* Height of a block at full width (without drawing). */
static double
block_height(struct letter *L, const struct blk *b);

static void
draw_heading(struct letter *L, const struct blk *b)
{
	L->y += 10;
	L->y += line(L, b->text, MARGIN, L->y, 12, ST_BOLD, TEXT_W, NHS_BLUE, PANGO_ALIGN_LEFT);
	rect(L, MARGIN, L->y + 1, TEXT_W, 0.75, RULE_GREY);
	L->y += 6;
}

/* A paragraph or list item; split over pages line by line. */
static void
draw_text(struct letter *L, const struct blk *b)
{
	double indent = b->kind == BLK_ITEM ? 16 : 0, pad = b->style & ST_HIGHLIGHT ? 6 : 0;
	double width = TEXT_W - indent - 2 * pad;
	PangoLayout *l = text_layout(L, b->text, 10, b->style, width);
	PangoLayoutIter *it = pango_layout_get_iter(l);
	double r = 0.129, g = 0.169, bl = 0.196;
	bool first = true;

	if (b->style & ST_GREY) {
		r = 0.298;
		g = 0.384;
		bl = 0.447;
	}
	do {
		PangoRectangle logical;
		PangoLayoutLine *ln = pango_layout_iter_get_line_readonly(it);
		double lh, base;

		pango_layout_iter_get_line_extents(it, NULL, &logical);
		lh = (double)logical.height / PANGO_SCALE;
		base = (double)pango_layout_iter_get_baseline(it) / PANGO_SCALE -
		    (double)logical.y / PANGO_SCALE;
		if (L->y + lh + 2 * pad > BODY_BOTTOM)
			new_page(L);
		if (b->style & ST_HIGHLIGHT) {
			rect(L, MARGIN + indent, L->y, TEXT_W - indent, lh + (first ? pad : 0) + pad / 2,
			    WARN_YELLOW);
			rect(L, MARGIN + indent, L->y, 3.5, lh + (first ? pad : 0) + pad / 2, WARN_AMBER);
		}
		if (first && pad)
			L->y += pad;
		if (first && b->bullet)
			line(L, b->bullet, MARGIN, L->y, 10, b->style & ~ST_HIGHLIGHT, 16, r, g, bl,
			    PANGO_ALIGN_LEFT);
		if (L->draw) {
			cairo_set_source_rgb(L->cr, r, g, bl);
			cairo_move_to(L->cr, MARGIN + indent + pad + (double)logical.x / PANGO_SCALE,
			    L->y + base);
			pango_cairo_show_layout_line(L->cr, ln);
		}
		L->y += lh;
		first = false;
	} while (pango_layout_iter_next_line(it));
	L->y += pad / 2 + 4;
	pango_layout_iter_free(it);
	g_object_unref(l);
}

static void
row_geometry(const struct blk *b, double *x, double *w)
{
	if (b->key_value) {
		x[0] = MARGIN;
		w[0] = TEXT_W * 0.32;
		x[1] = MARGIN + w[0];
		w[1] = TEXT_W - w[0];
		return;
	}
	for (size_t i = 0; i < b->ncells; i++) {
		w[i] = TEXT_W / (double)b->ncells;
		x[i] = MARGIN + w[i] * (double)i;
	}
}

static double
row_height(struct letter *L, const struct blk *b)
{
	double x[MAX_CELLS], w[MAX_CELLS], h = 0;

	row_geometry(b, x, w);
	for (size_t i = 0; i < b->ncells; i++) {
		int st = (b->style & ST_HEADER_ROW) || (b->key_value && i == 0) ? ST_BOLD : 0;
		PangoLayout *l = text_layout(L, b->cells[i], 9.5, st, w[i] - 8);
		double ch = layout_h(l);

		g_object_unref(l);
		if (ch > h)
			h = ch;
	}
	return h + 6;
}

static void
draw_row(struct letter *L, const struct blk *b)
{
	double x[MAX_CELLS], w[MAX_CELLS], h = row_height(L, b);

	if (L->y + h > BODY_BOTTOM)
		new_page(L);
	row_geometry(b, x, w);
	if (b->style & ST_HIGHLIGHT) {
		rect(L, MARGIN, L->y, TEXT_W, h, WARN_YELLOW);
		rect(L, MARGIN, L->y, 3.5, h, WARN_AMBER);
	} else if (b->style & ST_HEADER_ROW) {
		rect(L, MARGIN, L->y, TEXT_W, h, PALE_GREY);
	}
	for (size_t i = 0; i < b->ncells; i++) {
		int st = (b->style & ST_HEADER_ROW) || (b->key_value && i == 0) ? ST_BOLD : 0;

		line(L, b->cells[i], x[i] + 6, L->y + 3, 9.5, st, w[i] - 8, TEXT_BLACK, PANGO_ALIGN_LEFT);
	}
	rect(L, MARGIN, L->y + h - 0.5, TEXT_W, 0.5, RULE_GREY);
	L->y += h;
}

static double
block_height(struct letter *L, const struct blk *b)
{
	if (b->kind == BLK_ROW)
		return row_height(L, b);
	if (b->kind == BLK_HEADING) {
		PangoLayout *l = text_layout(L, b->text, 12, ST_BOLD, TEXT_W);
		double h = layout_h(l) + 16;

		g_object_unref(l);
		return h;
	}
	{
		PangoLayout *l = text_layout(L, b->text, 10, b->style, TEXT_W - 16);
		PangoLayoutIter *it = pango_layout_get_iter(l);
		PangoRectangle lg;
		double h;

		/* the first line is what must fit under a heading */
		pango_layout_iter_get_line_extents(it, NULL, &lg);
		h = (double)lg.height / PANGO_SCALE + 12;
		pango_layout_iter_free(it);
		g_object_unref(l);
		return h;
	}
}

/* Lay out (and, with L->draw, draw) the whole letter. */
static void
run(struct letter *L)
{
	L->page = 1;
	page_frame(L);
	/* first page: recipient, date, title */
	if (L->recipient)
		L->y += line(L, ras_arena_printf(L->a, "To: %s", L->recipient), MARGIN, L->y, 10, 0,
		    TEXT_W * 0.6, TEXT_BLACK, PANGO_ALIGN_LEFT);
	L->y += line(L, ras_arena_printf(L->a, "Date: %s", L->date), MARGIN, L->y + 2, 10, 0, TEXT_W,
	    TEXT_BLACK, PANGO_ALIGN_LEFT) + 10;
	L->y += line(L, L->title, MARGIN, L->y, 17, ST_BOLD, TEXT_W, TEXT_BLACK, PANGO_ALIGN_LEFT) + 6;
	if (L->patient_copy) {
		struct blk note = { .kind = BLK_PARA, .style = ST_HIGHLIGHT, .text = "This is your own copy "
		    "of the letter sent to your GP and to the person who referred you. Please keep it. If "
		    "anything in it is wrong or unclear, contact the service using the details at the top." };

		draw_text(L, &note);
	}
	for (size_t i = 0; i < L->n; i++) {
		const struct blk *b = &L->v[i];

		if (b->kind == BLK_HEADING) {
			/* never the last thing on a page */
			double need = block_height(L, b) + (i + 1 < L->n ? block_height(L, &L->v[i + 1]) : 0);

			if (L->y + need > BODY_BOTTOM)
				new_page(L);
			draw_heading(L, b);
		} else if (b->kind == BLK_ROW) {
			draw_row(L, b);
		} else {
			draw_text(L, b);
		}
	}
	if (L->draw)
		cairo_show_page(L->cr);
}

static cairo_status_t
to_buf(void *closure, const unsigned char *data, unsigned int len)
{
	return ras_buf_append(closure, data, len) < 0 ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

int
ras_pdf_document(struct ras_arena *a, const json_t *bundle, const struct ras_docprofile *p,
    const struct ras_pdf_opts *o, struct ras_buf *out)
{
	const json_t *comp = ras_json_obj(json_array_get(ras_json_arr(bundle, "entry"), 0), "resource");
	const json_t *patient = resource_of(bundle, "Patient");
	struct letter L = { .a = a };
	struct ras_pdf_opts none = { 0 };
	cairo_surface_t *s;
	cairo_font_options_t *fo;
	struct ras_date d;
	int64_t t = 0;
	json_t *sec;
	size_t i;
	char created[32];
	int err = 0;

	if (o == NULL)
		o = &none;
	if (comp == NULL || ras_json_str(comp, "title") == NULL || patient == NULL)
		return ras_error_code(RAS_EINVALID, "not a rasd document (no Composition or Patient)");
	L.font = o->font ? o->font : "DejaVu Sans";
	L.patient_copy = o->patient_copy;
	L.recipient = o->recipient;
	L.title = ras_json_str(comp, "title");
	L.ref = ras_json_str(ras_json_obj(bundle, "identifier"), "value");
	L.service = p->provider.name ? p->provider.name : p->name;
	L.contact = ras_arena_printf(a, "%s%s%s%s%s%s%s", p->provider.address ? p->provider.address : "",
	    p->provider.address ? "\n" : "", p->provider.telephone ? "Telephone " : "",
	    p->provider.telephone ? p->provider.telephone : "", p->provider.telephone ? "\n" : "",
	    p->provider.email ? "Email " : "", p->provider.email ? p->provider.email : "");
	if (ras_json_str(comp, "date"))
		(void)ras_time_parse(ras_json_str(comp, "date"), false, &t);
	ras_time_uk_date(t, &d, NULL);
	L.date = ras_arena_printf(a, "%d %s %d", d.day, month[d.month - 1], d.year);
	patient_facts(&L, patient);
	json_array_foreach(ras_json_arr(comp, "section"), i, sec) {
		const char *div = ras_json_str(ras_json_obj(sec, "text"), "div");
		struct ras_xml_doc *doc;

		add(&L, (struct blk){ .kind = BLK_HEADING, .text = ras_json_str(sec, "title") ?
		    ras_json_str(sec, "title") : "" });
		if (div == NULL)
			continue;
		if ((err = ras_xml_parse(a, div, strlen(div), RAS_PAYLOAD_MAX, &doc)) < 0)
			return err;
		walk(&L, ras_xml_root(doc));
	}
	if (L.err)
		return L.err;

	/* The PDF's creation date is the document's, never the clock's. */
	{
		char iso[RAS_TIME_STR_MAX];

		ras_time_format_utc(t, iso);   /* YYYY-MM-DDThh:mm:ssZ */
		snprintf(created, sizeof(created), "%.19s", iso);
	}
	s = cairo_pdf_surface_create_for_stream(to_buf, out, PAGE_W, PAGE_H);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, created);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, L.title);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_AUTHOR, L.service);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "rasd");
	L.cr = cairo_create(s);
	L.pc = pango_cairo_create_context(L.cr);
	/* points as the unit, and no hinting: the same layout everywhere */
	pango_cairo_context_set_resolution(L.pc, 72.0);
	fo = cairo_font_options_create();
	cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	pango_cairo_context_set_font_options(L.pc, fo);
	cairo_font_options_destroy(fo);
	/* pass 1 counts the pages ("Page N of M"), pass 2 draws */
	L.draw = false;
	L.pages = 0;
	run(&L);
	L.pages = L.page;
	L.draw = true;
	run(&L);
	g_object_unref(L.pc);
	cairo_destroy(L.cr);
	cairo_surface_finish(s);
	if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
		err = ras_error_code(RAS_EIO, "PDF: %s", cairo_status_to_string(cairo_surface_status(s)));
	cairo_surface_destroy(s);
	return err;
}
