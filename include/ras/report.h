/*
 * report: renders a computed KPI report (kpi.h) for people and
 * spreadsheets.  Pure: data in, bytes out, deterministic.
 *
 * CSV (RFC 4180): one row per measure with the whole period ("month"
 * empty), then one row per measure and month.  HTML: one self-contained
 * page (inline CSS and SVG charts, no scripts, no external assets) that
 * states, for every figure, how many referrals (attendances, discharges)
 * it is based on.
 */
#ifndef RAS_REPORT_H
#define RAS_REPORT_H

struct ras_buf;
struct ras_kpi_report;

int ras_report_kpi_csv(const struct ras_kpi_report *r, struct ras_buf *out);
int ras_report_kpi_html(const struct ras_kpi_report *r, struct ras_buf *out);

#endif
