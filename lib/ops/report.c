/* report: KPI reports as CSV and as one HTML page with SVG charts (see include/ras/report.h). */
#include <stdio.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/error.h"
#include "ras/kpi.h"
#include "ras/report.h"
#include "ras/time.h"

static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	"Aug", "Sep", "Oct", "Nov", "Dec" };

/* ---- CSV ------------------------------------------------------------------- */

static void
csv_field(struct ras_buf *b, const char *s, bool last)
{
	bool quote = s && strpbrk(s, ",\"\r\n") != NULL;

	if (quote)
		(void)ras_buf_putc(b, '"');
	for (const char *p = s ? s : ""; *p; p++) {
		if (*p == '"')
			(void)ras_buf_putc(b, '"');
		(void)ras_buf_putc(b, *p);
	}
	if (quote)
		(void)ras_buf_putc(b, '"');
	(void)ras_buf_puts(b, last ? "\r\n" : ",");
}

static void
fmt_value(const struct ras_kpi_result *m, bool has, int64_t num, int64_t den, char *buf, size_t size)
{
	if (!m->percent)
		snprintf(buf, size, "%lld", (long long)num);
	else if (!has || den == 0)
		snprintf(buf, size, "%s", "");
	else
		snprintf(buf, size, "%.1f", 100.0 * (double)num / (double)den);
}

int
ras_report_kpi_csv(const struct ras_kpi_report *r, struct ras_buf *out)
{
	char from[RAS_DATE_STR_MAX], to[RAS_DATE_STR_MAX];

	ras_date_format(&r->from, from);
	ras_date_format(&r->to, to);
	(void)ras_buf_puts(out, "service,from,to,month,measure,description,clause,target,unit,value,met,"
	    "numerator,denominator,basis,pending,excluded\r\n");
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < r->n; i++) {
			const struct ras_kpi_result *m = &r->m[i];
			size_t nrows = pass == 0 ? 1 : (m->percent ? m->nmonths : 0);

			for (size_t k = 0; k < nrows; k++) {
				char month[16] = "", target[32], value[32], num[24], den[24], pend[24], excl[24];
				int64_t n = pass == 0 ? m->num : m->months[k].num;
				int64_t d = pass == 0 ? m->den : m->months[k].den;

				if (pass == 1)
					snprintf(month, sizeof(month), "%04d-%02d", m->months[k].year, m->months[k].month);
				snprintf(target, sizeof(target), m->percent ? "%.0f" : "%.0f", m->target);
				fmt_value(m, pass == 0 ? m->has_value : d > 0, n, d, value, sizeof(value));
				snprintf(num, sizeof(num), "%lld", (long long)n);
				snprintf(den, sizeof(den), "%lld", (long long)d);
				snprintf(pend, sizeof(pend), "%lld", pass == 0 ? (long long)m->pending : 0LL);
				snprintf(excl, sizeof(excl), "%lld", pass == 0 ? (long long)m->excluded : 0LL);
				csv_field(out, r->service, false);
				csv_field(out, from, false);
				csv_field(out, to, false);
				csv_field(out, month, false);
				csv_field(out, m->id, false);
				csv_field(out, m->label, false);
				csv_field(out, m->clause, false);
				csv_field(out, target, false);
				csv_field(out, m->percent ? "percent" : "count", false);
				csv_field(out, value, false);
				csv_field(out, pass == 1 || (m->percent && !m->has_value) ? "" : m->met ? "yes" : "no",
				    false);
				csv_field(out, num, false);
				csv_field(out, den, false);
				csv_field(out, m->basis, false);
				csv_field(out, pend, false);
				csv_field(out, excl, true);
			}
		}
	}
	/* ITK3 letters and their acknowledgements, beside the clocks: numerator
	 * acknowledged, denominator delivered, pending still awaited, excluded
	 * negative or never acknowledged (in front of a person) */
	{
		char v[24], num[24], den[24], pend[24], excl[24];
		const struct ras_kpi_acks *k = &r->acks;

		snprintf(v, sizeof(v), "%lld", (long long)k->acknowledged);
		snprintf(num, sizeof(num), "%lld", (long long)k->acknowledged);
		snprintf(den, sizeof(den), "%lld", (long long)k->delivered);
		snprintf(pend, sizeof(pend), "%lld", (long long)k->awaiting);
		snprintf(excl, sizeof(excl), "%lld", (long long)(k->negative + k->missing));
		csv_field(out, r->service, false);
		csv_field(out, from, false);
		csv_field(out, to, false);
		csv_field(out, "", false);
		csv_field(out, "itk3-acknowledged", false);
		csv_field(out, "ITK3 letters to GP practices acknowledged (infrastructure 20013 and business "
		    "30001)", false);
		csv_field(out, "GPCM-SD-094/095", false);
		csv_field(out, "", false);
		csv_field(out, "count", false);
		csv_field(out, v, false);
		csv_field(out, "", false);
		csv_field(out, num, false);
		csv_field(out, den, false);
		csv_field(out, "letters", false);
		csv_field(out, pend, false);
		csv_field(out, excl, true);
	}
	return out->data ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

/* ---- HTML ------------------------------------------------------------------ */

static void
esc(struct ras_buf *b, const char *s)
{
	for (const char *p = s ? s : ""; *p; p++) {
		switch (*p) {
		case '&': (void)ras_buf_puts(b, "&amp;"); break;
		case '<': (void)ras_buf_puts(b, "&lt;"); break;
		case '>': (void)ras_buf_puts(b, "&gt;"); break;
		case '"': (void)ras_buf_puts(b, "&quot;"); break;
		case '\'': (void)ras_buf_puts(b, "&#39;"); break;
		default: (void)ras_buf_putc(b, *p); break;
		}
	}
}

static const char STYLE[] =
    "body{font-family:Arial,Helvetica,sans-serif;color:#212b32;max-width:60em;margin:2em auto;"
    "padding:0 1em;line-height:1.4}"
    "h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-top:1px solid #d8dde0;padding-top:1em}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .5em;"
    "border-bottom:1px solid #d8dde0;vertical-align:top}td.n{text-align:right;white-space:nowrap}"
    ".met{color:#007f3b;font-weight:bold}.missed{color:#d5281b;font-weight:bold}.none{color:#4c6272}"
    ".figure{font-size:1.4em}.note{color:#4c6272;font-size:.9em}"
    "svg{max-width:100%;height:auto}";

static const char *
verdict(const struct ras_kpi_result *m)
{
	if (m->percent && !m->has_value)
		return "no data";
	return m->met ? "met" : "not met";
}

static const char *
verdict_class(const struct ras_kpi_result *m)
{
	if (m->percent && !m->has_value)
		return "none";
	return m->met ? "met" : "missed";
}

static void
figure_text(struct ras_buf *b, const struct ras_kpi_result *m)
{
	if (!m->percent)
		(void)ras_buf_printf(b, "%lld", (long long)m->num);
	else if (m->has_value)
		(void)ras_buf_printf(b, "%.1f%%", m->value);
	else
		(void)ras_buf_puts(b, "&#8211;");
}

static void
target_text(struct ras_buf *b, const struct ras_kpi_result *m)
{
	if (m->percent)
		(void)ras_buf_printf(b, "%s %.0f%%", m->higher_better ? "&#8805;" : "&#8804;", m->target);
	else
		(void)ras_buf_printf(b, "&#8804; %.0f", m->target);
}

/* "referrals", or its singular for one. */
static void
basis(struct ras_buf *b, const struct ras_kpi_result *m, int64_t n)
{
	static const char *const one[][2] = { { "referrals", "referral" }, { "attendances", "attendance" },
		{ "discharges", "discharge" }, { "completed pathways", "completed pathway" },
		{ "patients waiting", "patient waiting" } };

	for (size_t i = 0; n == 1 && i < sizeof(one) / sizeof(one[0]); i++)
		if (strcmp(m->basis, one[i][0]) == 0) {
			(void)ras_buf_printf(b, "%lld %s", (long long)n, one[i][1]);
			return;
		}
	(void)ras_buf_printf(b, "%lld %s", (long long)n, m->basis);
}

static void
based_on(struct ras_buf *b, const struct ras_kpi_result *m)
{
	(void)ras_buf_puts(b, "based on ");
	basis(b, m, m->den);
	if (m->pending)
		(void)ras_buf_printf(b, "; %lld pending (deadline not yet passed)", (long long)m->pending);
	if (m->excluded)
		(void)ras_buf_printf(b, "; %lld excluded (patient chose to wait longer)", (long long)m->excluded);
}

/* A bar per month: the percentage met, n under each bar, the target as a
 * dashed line.  Months without data have no bar. */
static void
chart(struct ras_buf *b, const struct ras_kpi_result *m)
{
	const int W = 640, H = 240, L = 44, R = 12, T = 16, B = 44;
	int plot_w = W - L - R, plot_h = H - T - B;
	int slot = m->nmonths ? plot_w / (int)m->nmonths : plot_w, bar = slot * 6 / 10;
	double ty = T + plot_h * (1.0 - m->target / 100.0);

	(void)ras_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
	    "width=\"%d\" height=\"%d\" role=\"img\" aria-labelledby=\"t-%s\">\n<title id=\"t-%s\">",
	    W, H, W, H, m->id, m->id);
	esc(b, m->label);
	(void)ras_buf_puts(b, " by month</title>\n");
	for (int g = 0; g <= 100; g += 25) {
		double y = T + plot_h * (1.0 - g / 100.0);

		(void)ras_buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#d8dde0\"/>"
		    "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" fill=\"#4c6272\">%d%%</text>\n",
		    L, y, W - R, y, L - 6, y + 4, g);
	}
	for (size_t k = 0; k < m->nmonths; k++) {
		const struct ras_kpi_month *mo = &m->months[k];
		int x = L + (int)k * slot + (slot - bar) / 2;

		(void)ras_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s %02d"
		    "</text>\n", x + bar / 2, H - B + 16, month_names[mo->month - 1], mo->year % 100);
		(void)ras_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\" "
		    "fill=\"#4c6272\">n=%lld</text>\n", x + bar / 2, H - B + 30, (long long)mo->den);
		if (mo->den > 0) {
			double pct = 100.0 * (double)mo->num / (double)mo->den;
			double h = plot_h * pct / 100.0;
			bool ok = m->higher_better ? pct + 1e-9 >= m->target : pct <= m->target + 1e-9;

			(void)ras_buf_printf(b, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\">"
			    "<title>%s %d: %.1f%% of %lld</title></rect>\n", x, T + plot_h - h, bar, h,
			    ok ? "#007f3b" : "#d5281b", month_names[mo->month - 1], mo->year, pct, (long long)mo->den);
			(void)ras_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">"
			    "%.0f%%</text>\n", x + bar / 2, T + plot_h - h - 4 < T + 10 ? T + 10.0 :
			    T + plot_h - h - 4, pct);
		}
	}
	(void)ras_buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#212b32\" "
	    "stroke-dasharray=\"6 4\"/><text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">"
	    "target %.0f%%</text>\n", L, ty, W - R, ty, W - R, ty - 4, m->target);
	(void)ras_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#212b32\"/>\n</svg>\n",
	    L, T + plot_h, W - R, T + plot_h);
}

int
ras_report_kpi_html(const struct ras_kpi_report *r, struct ras_buf *out)
{
	char from[RAS_DATE_STR_MAX], to[RAS_DATE_STR_MAX], made[RAS_TIME_STR_MAX];

	ras_date_format(&r->from, from);
	ras_date_format(&r->to, to);
	ras_time_format_uk(r->generated_at, made);
	(void)ras_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
	(void)ras_buf_printf(out, "Quality requirements: %s, %s to %s", r->service, from, to);
	(void)ras_buf_printf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Quality requirements: ", STYLE);
	esc(out, r->title);
	(void)ras_buf_puts(out, "</h1>\n<p>Service <code>");
	esc(out, r->service);
	(void)ras_buf_printf(out, "</code>, specification %s. Period %s to %s (UK dates). "
	    "<strong>%lld referral(s)</strong> received in the period.</p>\n", r->spec, from, to,
	    (long long)r->referrals);
	(void)ras_buf_printf(out, "<p class=\"note\">Made %s from the referrals, decisions, EPR events and "
	    "deadlines rasd has stored. Working days are Monday to Friday%s. \"Within N working days\" "
	    "means by the end of the Nth working day after the day of receipt. A referral whose event "
	    "has not happened yet is pending while its deadline has not passed, and counts as missed "
	    "after.</p>\n", made, r->holidays ? " except England and Wales bank holidays" :
	    " (bank holidays were not available, so they counted as working days)");
	(void)ras_buf_puts(out, "<table>\n<thead><tr><th>Requirement</th><th>Target</th><th>Result</th>"
	    "<th>Based on</th><th></th></tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct ras_kpi_result *m = &r->m[i];

		(void)ras_buf_printf(out, "<tr><td><a href=\"#%s\">", m->id);
		esc(out, m->label);
		(void)ras_buf_puts(out, "</a></td><td class=\"n\">");
		target_text(out, m);
		(void)ras_buf_puts(out, "</td><td class=\"n\">");
		figure_text(out, m);
		(void)ras_buf_puts(out, "</td><td class=\"n\">");
		basis(out, m, m->den);
		(void)ras_buf_printf(out, "</td><td class=\"%s\">%s</td></tr>\n", verdict_class(m), verdict(m));
	}
	(void)ras_buf_puts(out, "</tbody>\n</table>\n");
	(void)ras_buf_printf(out, "<h2 id=\"itk3-acknowledged\">Letters to GP practices: ITK3 "
	    "acknowledgements</h2>\n<p>%lld letter(s) delivered in the period as ITK3 messages: "
	    "<strong>%lld acknowledged</strong> (infrastructure 20013 and business 30001), %lld awaiting "
	    "acknowledgement, %lld negative, %lld not acknowledged in time.</p>\n<p class=\"note\">The "
	    "clocks above are met when a letter is delivered; a negative or missing acknowledgement puts "
	    "the letter in front of a person (rasctl outbox dead). Source: GP Connect Send Document "
	    "GPCM-SD-094/095.</p>\n", (long long)r->acks.delivered, (long long)r->acks.acknowledged,
	    (long long)r->acks.awaiting, (long long)r->acks.negative, (long long)r->acks.missing);
	for (size_t i = 0; i < r->n; i++) {
		const struct ras_kpi_result *m = &r->m[i];

		(void)ras_buf_printf(out, "<h2 id=\"%s\">", m->id);
		esc(out, m->label);
		(void)ras_buf_printf(out, "</h2>\n<p class=\"figure\"><span class=\"%s\">", verdict_class(m));
		figure_text(out, m);
		(void)ras_buf_puts(out, "</span> against a target of ");
		target_text(out, m);
		(void)ras_buf_printf(out, " (%s)</p>\n<p>", verdict(m));
		if (m->percent) {
			(void)ras_buf_printf(out, "%lld of ", (long long)m->num);
			basis(out, m, m->den);
			(void)ras_buf_puts(out, "; ");
		}
		based_on(out, m);
		(void)ras_buf_puts(out, ".</p>\n<p class=\"note\">Measured as: ");
		esc(out, m->method);
		(void)ras_buf_printf(out, ". Source: %s.</p>\n", m->clause);
		if (m->percent)
			chart(out, m);
	}
	(void)ras_buf_puts(out, "</body>\n</html>\n");
	return out->data ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}
