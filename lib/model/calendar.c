/* calendar: working days over England and Wales bank holidays (see include/ras/calendar.h). */
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"

/* Years over which working days are counted from an index (the covered
 * span, when it is no longer): a clock is then a lookup, not a walk. */
#define CALENDAR_INDEX_YEARS 200

struct ras_calendar {
	int64_t *days;       /* bank holidays, days since the epoch, sorted, unique */
	size_t n;
	int first_year, last_year;
	int64_t first_day, last_day;   /* 1 January of first_year, 31 December of last_year */
	/* over first_day..last_day (NULL when the span is too long): cum[i] the
	 * working days from first_day to first_day + i inclusive, nth[k] the
	 * offset of the (k+1)th of them */
	int32_t *cum, *nth;
	int32_t n_working;
	char sha256[RAS_SHA256_HEX_LEN];
};

static bool working_day(const struct ras_calendar *cal, int64_t day);

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int
ras_calendar_parse(const char *data, size_t len, struct ras_calendar **out)
{
	struct ras_calendar *cal = NULL;
	json_t *root = NULL, *div, *events, *ev;
	size_t i, n = 0;
	int err;

	if ((err = ras_json_parse(data, len, RAS_MAPPING_FILE_MAX, &root)) < 0) {
		ras_error_context("bank-holiday file");
		return err;
	}
	div = ras_json_obj(root, "england-and-wales");
	events = ras_json_arr(div, "events");
	if (events == NULL) {
		err = ras_error_code(RAS_EINVALID,
		    "bank-holiday file has no \"england-and-wales\" division with \"events\" (GOV.UK format)");
		goto done;
	}
	if (json_array_size(events) == 0) {
		err = ras_error_code(RAS_EINVALID, "bank-holiday file lists no england-and-wales events");
		goto done;
	}
	if (json_array_size(events) > RAS_CALENDAR_EVENTS_MAX) {
		err = ras_error_code(RAS_ETOOBIG, "bank-holiday file has more than %d events",
		    RAS_CALENDAR_EVENTS_MAX);
		goto done;
	}
	cal = calloc(1, sizeof(*cal));
	if (cal == NULL || (cal->days = calloc(json_array_size(events), sizeof(int64_t))) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	cal->first_year = 9999;
	cal->last_year = 0;
	json_array_foreach(events, i, ev) {
		const char *ds = ras_json_str(ev, "date");
		struct ras_date d;

		if (ds == NULL || ras_date_parse(ds, &d) < 0) {
			err = ras_error_code(RAS_EINVALID,
			    "bank-holiday file: event %zu has no valid \"date\" (YYYY-MM-DD)", i + 1);
			goto done;
		}
		cal->days[n++] = ras_date_to_days(&d);
		if (d.year < cal->first_year)
			cal->first_year = d.year;
		if (d.year > cal->last_year)
			cal->last_year = d.year;
	}
	qsort(cal->days, n, sizeof(int64_t), cmp_i64);
	/* GOV.UK never repeats a date, but a hand-edited file might. */
	cal->n = 0;
	for (i = 0; i < n; i++)
		if (cal->n == 0 || cal->days[cal->n - 1] != cal->days[i])
			cal->days[cal->n++] = cal->days[i];
	cal->first_day = ras_date_to_days(&(struct ras_date){ cal->first_year, 1, 1 });
	cal->last_day = ras_date_to_days(&(struct ras_date){ cal->last_year, 12, 31 });
	if (cal->last_year - cal->first_year < CALENDAR_INDEX_YEARS) {
		size_t span = (size_t)(cal->last_day - cal->first_day + 1);

		cal->cum = calloc(span, sizeof(*cal->cum));
		cal->nth = calloc(span, sizeof(*cal->nth));
		if (cal->cum == NULL || cal->nth == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		for (size_t k = 0; k < span; k++) {
			if (working_day(cal, cal->first_day + (int64_t)k))
				cal->nth[cal->n_working++] = (int32_t)k;
			cal->cum[k] = cal->n_working;
		}
	}
	ras_crypto_sha256_hex(data, len, cal->sha256);
	*out = cal;
	cal = NULL;
	err = 0;
done:
	ras_calendar_free(cal);
	json_decref(root);
	return err;
}

int
ras_calendar_load(const char *path, struct ras_calendar **out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	int err;

	if ((err = ras_buf_read_file(&b, path)) < 0) {
		ras_error_context("%s", path);
		goto done;
	}
	if ((err = ras_calendar_parse(b.data ? b.data : "", b.len, out)) < 0)
		ras_error_context("%s", path);
done:
	ras_buf_free(&b);
	return err;
}

void
ras_calendar_free(struct ras_calendar *cal)
{
	if (cal == NULL)
		return;
	free(cal->days);
	free(cal->cum);
	free(cal->nth);
	free(cal);
}

void
ras_calendar_span(const struct ras_calendar *cal, int *first_year, int *last_year)
{
	*first_year = cal->first_year;
	*last_year = cal->last_year;
}

const char *
ras_calendar_sha256(const struct ras_calendar *cal)
{
	return cal->sha256;
}

static bool
holiday_day(const struct ras_calendar *cal, int64_t day)
{
	if (cal == NULL)
		return false;
	return bsearch(&day, cal->days, cal->n, sizeof(int64_t), cmp_i64) != NULL;
}

/* 1970-01-01 was a Thursday (ISO 4). */
static bool
weekend_day(int64_t day)
{
	int64_t wd = ((day % 7) + 7 + 3) % 7;   /* 0 = Monday … 6 = Sunday */

	return wd >= 5;
}

static bool
working_day(const struct ras_calendar *cal, int64_t day)
{
	return !weekend_day(day) && !holiday_day(cal, day);
}

static bool
year_covered(const struct ras_calendar *cal, int64_t day)
{
	if (cal == NULL)
		return false;
	return day >= cal->first_day && day <= cal->last_day;
}

bool
ras_calendar_is_bank_holiday(const struct ras_calendar *cal, const struct ras_date *d)
{
	return holiday_day(cal, ras_date_to_days(d));
}

bool
ras_calendar_is_working_day(const struct ras_calendar *cal, const struct ras_date *d)
{
	return working_day(cal, ras_date_to_days(d));
}

bool
ras_calendar_workday(const struct ras_date *d, void *cal)
{
	return working_day(cal, ras_date_to_days(d));
}

int
ras_calendar_add_working_days_n(const struct ras_calendar *cal, int64_t from_day, int n,
    int64_t *out_day, bool *covered)
{
	int64_t day = from_day;
	bool cov = year_covered(cal, day);

	if (n < 0 || n > RAS_CLOCK_DAYS_MAX)
		return ras_error_code(RAS_EINVALID, "a clock of %d working days is out of range (0..%d)",
		    n, RAS_CLOCK_DAYS_MAX);
	if (cal && cal->cum && day >= cal->first_day && day <= cal->last_day) {
		/* From the index: the working day of rank `want` (the nth after
		 * `day`; n = 0, the first on or after it).  Every day up to it is
		 * covered, as the walk below would find. */
		int64_t i = day - cal->first_day;
		bool working = cal->cum[i] - (i > 0 ? cal->cum[i - 1] : 0) == 1;
		int64_t want = n == 0 ? (working ? cal->cum[i] : cal->cum[i] + 1) : cal->cum[i] + n;

		if (want <= cal->n_working) {
			*out_day = cal->first_day + cal->nth[want - 1];
			if (covered)
				*covered = true;
			return 0;
		}
	}
	if (n == 0) {
		/* "The same day": the first working day on or after receipt. */
		while (!working_day(cal, day)) {
			day++;
			cov = cov && year_covered(cal, day);
		}
	} else {
		for (int k = 0; k < n;) {
			day++;
			cov = cov && year_covered(cal, day);
			if (working_day(cal, day))
				k++;
		}
	}
	*out_day = day;
	if (covered)
		*covered = cov;
	return 0;
}

int
ras_calendar_add_working_days(const struct ras_calendar *cal, const struct ras_date *from,
    int n, struct ras_date *out, bool *covered)
{
	int64_t day;
	int err = ras_calendar_add_working_days_n(cal, ras_date_to_days(from), n, &day, covered);

	if (err == 0)
		ras_date_from_days(day, out);
	return err;
}

int64_t
ras_calendar_working_days_between(const struct ras_calendar *cal, const struct ras_date *from,
    const struct ras_date *to)
{
	int64_t a = ras_date_to_days(from), b = ras_date_to_days(to), n = 0;

	for (int64_t d = a + 1; d <= b; d++)
		if (working_day(cal, d))
			n++;
	return n;
}
