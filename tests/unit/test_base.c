/* Unit tests: base and adapter modules (nhsno, date, time, json, buf, arena, crypto, config). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/nhsno.h"
#include "ras/store.h"
#include "ras/time.h"

/* --- nhsno ------------------------------------------------------------- */

static void
nhsno_valid(void)
{
	/* 943 476 5919 is the NHS Data Dictionary's worked example. */
	CU_ASSERT_EQUAL(ras_nhsno_check("9434765919"), RAS_NHSNO_OK);
	CU_ASSERT_EQUAL(ras_nhsno_check("9990000018"), RAS_NHSNO_OK);
	/* e-RS sandbox numbers */
	CU_ASSERT_EQUAL(ras_nhsno_check("9912003888"), RAS_NHSNO_OK);
	CU_ASSERT_EQUAL(ras_nhsno_check("9462979626"), RAS_NHSNO_OK);
	/* remainder 0 -> check 11 -> 0 */
	CU_ASSERT_EQUAL(ras_nhsno_check("9990000050"), RAS_NHSNO_OK);
}

static void
nhsno_invalid(void)
{
	CU_ASSERT_EQUAL(ras_nhsno_check("9434765918"), RAS_NHSNO_BAD_CHECK);
	CU_ASSERT_EQUAL(ras_nhsno_check("9990000019"), RAS_NHSNO_BAD_CHECK);
	/* 999000014x: the weighted sum leaves check digit 10, never issued */
	CU_ASSERT_EQUAL(ras_nhsno_check("9990000140"), RAS_NHSNO_CHECK_10);
	CU_ASSERT_EQUAL(ras_nhsno_check("943476591"), RAS_NHSNO_BAD_LENGTH);
	CU_ASSERT_EQUAL(ras_nhsno_check("94347659190"), RAS_NHSNO_BAD_LENGTH);
	CU_ASSERT_EQUAL(ras_nhsno_check("943 476 59"), RAS_NHSNO_NOT_DIGITS);
	CU_ASSERT_EQUAL(ras_nhsno_check("94347659A9"), RAS_NHSNO_NOT_DIGITS);
	CU_ASSERT_EQUAL(ras_nhsno_check(""), RAS_NHSNO_MISSING);
	CU_ASSERT_EQUAL(ras_nhsno_check(NULL), RAS_NHSNO_MISSING);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_nhsno_reason(RAS_NHSNO_CHECK_10), "10"));
}

/* --- date, time ---------------------------------------------------------- */

static void
dates(void)
{
	struct ras_date d, e;
	char buf[RAS_DATE_STR_MAX];

	CU_ASSERT_EQUAL(ras_date_parse("2026-04-06", &d), 0);
	CU_ASSERT_EQUAL(ras_date_weekday(&d), 1);      /* Monday */
	ras_date_add_days(&d, -3, &e);
	ras_date_format(&e, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2026-04-03");
	CU_ASSERT_EQUAL(ras_date_weekday(&e), 5);      /* Good Friday 2026 */
	CU_ASSERT_EQUAL(ras_date_parse("2026-02-29", &d), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_date_parse("2024-02-29", &d), 0);
	CU_ASSERT_EQUAL(ras_date_parse("2026-4-6", &d), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_date_parse("2026-04-06T00:00", &d), RAS_EINVALID);
	ras_date_from_days(0, &d);
	CU_ASSERT(d.year == 1970 && d.month == 1 && d.day == 1);
	ras_date_add_months(&(struct ras_date){ 2026, 1, 31 }, 1, &e);
	CU_ASSERT(e.month == 2 && e.day == 28);
}

static void
ages(void)
{
	struct ras_date b = { 2008, 4, 6 };

	CU_ASSERT_EQUAL(ras_date_age_years(&b, &(struct ras_date){ 2026, 4, 5 }), 17);
	CU_ASSERT_EQUAL(ras_date_age_years(&b, &(struct ras_date){ 2026, 4, 6 }), 18);
	/* 29 February birthdays: the birthday is 1 March in common years */
	b = (struct ras_date){ 2008, 2, 29 };
	CU_ASSERT_EQUAL(ras_date_age_years(&b, &(struct ras_date){ 2026, 2, 28 }), 17);
	CU_ASSERT_EQUAL(ras_date_age_years(&b, &(struct ras_date){ 2026, 3, 1 }), 18);
	CU_ASSERT_EQUAL(ras_date_age_years(&b, &(struct ras_date){ 2028, 2, 29 }), 20);
}

static void
instants(void)
{
	int64_t t;
	char buf[RAS_TIME_STR_MAX];
	struct ras_date d;
	int secs;

	CU_ASSERT_EQUAL(ras_time_parse("2026-04-06T10:15:00+01:00", false, &t), 0);
	ras_time_format_utc(t, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2026-04-06T09:15:00Z");
	CU_ASSERT_EQUAL(ras_time_parse("2021-09-03T14:09:15.297Z", false, &t), 0);
	ras_time_format_utc(t, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2021-09-03T14:09:15Z");
	CU_ASSERT_EQUAL(ras_time_parse("2026-04-06T10:15:00", false, &t), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_time_parse("2026-04-06T25:15:00Z", false, &t), RAS_EINVALID);
	/* Local time when allowed: 10:15 BST is 09:15 UTC. */
	CU_ASSERT_EQUAL(ras_time_parse("2026-04-06T10:15", true, &t), 0);
	ras_time_format_utc(t, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2026-04-06T09:15:00Z");
	/* A bare date is UK midnight. */
	CU_ASSERT_EQUAL(ras_time_parse("2026-07-01", true, &t), 0);
	ras_time_format_utc(t, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2026-06-30T23:00:00Z");
	/* 23:30 UTC in summer is the next UK day. */
	CU_ASSERT_EQUAL(ras_time_parse("2026-07-01T23:30:00Z", false, &t), 0);
	ras_time_uk_date(t, &d, &secs);
	CU_ASSERT(d.month == 7 && d.day == 2 && secs == 1800);
	ras_time_format_uk(t, buf);
	CU_ASSERT_STRING_EQUAL(buf, "2026-07-02T00:30:00+01:00");
	/* 23:30 UTC in winter stays on the same day. */
	CU_ASSERT_EQUAL(ras_time_parse("2026-12-01T23:30:00Z", false, &t), 0);
	ras_time_uk_date(t, &d, NULL);
	CU_ASSERT(d.month == 12 && d.day == 1);
}

static void
uk_dst_edges(void)
{
	int64_t t;

	/* 2026: BST starts 29 March 01:00 UTC, ends 25 October 01:00 UTC. */
	ras_time_parse("2026-03-29T00:59:59Z", false, &t);
	CU_ASSERT_EQUAL(ras_time_uk_offset(t), 0);
	ras_time_parse("2026-03-29T01:00:00Z", false, &t);
	CU_ASSERT_EQUAL(ras_time_uk_offset(t), 3600);
	ras_time_parse("2026-10-25T00:59:59Z", false, &t);
	CU_ASSERT_EQUAL(ras_time_uk_offset(t), 3600);
	ras_time_parse("2026-10-25T01:00:00Z", false, &t);
	CU_ASSERT_EQUAL(ras_time_uk_offset(t), 0);
}

/* --- json ------------------------------------------------------------ */

static void
json_policy(void)
{
	json_t *j = NULL;
	char deep[400];
	size_t n = 0;

	CU_ASSERT_EQUAL(ras_json_parse("{\"a\":1}", 7, 0, &j), 0);
	json_decref(j);
	CU_ASSERT_EQUAL(ras_json_parse("{\"a\":1,\"a\":2}", 13, 0, &j), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "duplicate"));
	CU_ASSERT_EQUAL(ras_json_parse("{\"a\":", 5, 0, &j), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "line 1"));
	/* the message never quotes the payload (it may be patient data) */
	CU_ASSERT_EQUAL(ras_json_parse("{\"name\": Smith}", 15, 0, &j), RAS_EINVALID);
	CU_ASSERT_PTR_NULL(strstr(ras_error_last(), "Smith"));
	{
		const char *dup = "{\"family\":\"Jones\",\"family\":\"Jones\"}";

		CU_ASSERT_EQUAL(ras_json_parse(dup, strlen(dup), 0, &j), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "duplicate"));
	}
	CU_ASSERT_PTR_NULL(strstr(ras_error_last(), "Jones"));
	CU_ASSERT_PTR_NULL(strstr(ras_error_last(), "family"));
	CU_ASSERT_EQUAL(ras_json_parse("{\"a\":1}", 7, 3, &j), RAS_ETOOBIG);
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	CU_ASSERT_EQUAL(ras_json_parse(deep, n, 0, &j), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "deeper"));
	/* NUL inside a string is refused */
	CU_ASSERT_EQUAL(ras_json_parse("{\"a\":\"x\\u0000y\"}", 16, 0, &j), RAS_EINVALID);
}

static void
json_deterministic(void)
{
	struct ras_buf a = RAS_BUF_INIT(0), b = RAS_BUF_INIT(0);
	json_t *x = json_pack("{s:s, s:i, s:[b,n]}", "z", "last", "a", 1, "m", 1);
	json_t *y = json_pack("{s:[b,n], s:i, s:s}", "m", 1, "a", 1, "z", "last");

	CU_ASSERT_EQUAL(ras_json_dump(x, RAS_JSON_SORTED, &a), 0);
	CU_ASSERT_EQUAL(ras_json_dump(y, RAS_JSON_SORTED, &b), 0);
	CU_ASSERT_STRING_EQUAL(a.data, b.data);
	CU_ASSERT_STRING_EQUAL(a.data, "{\"a\":1,\"m\":[true,null],\"z\":\"last\"}");
	json_decref(x);
	json_decref(y);
	ras_buf_free(&a);
	ras_buf_free(&b);
}

/* --- buf / arena ----------------------------------------------------- */

/* Packed records come back as they went in: in order, strings cut only
 * where the reader's array or the 65,535-byte field ends, NULL as "". */
static void
buf_pack_round_trip(void)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	struct fixed { long long id; int k; } in, out;
	char a[8], c[32], *const dst[2] = { a, c };
	static const size_t cap[2] = { sizeof(a), sizeof(c) };
	char *huge = malloc(70000);
	size_t off = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
	memset(huge, 'x', 69999);
	huge[69999] = '\0';
	for (int i = 0; i < 100; i++) {
		char s1[16], s2[40];
		const char *str[2] = { s1, i % 7 == 0 ? NULL : s2 };

		snprintf(s1, sizeof(s1), "r%d", i);
		snprintf(s2, sizeof(s2), "message %d of the batch", i);
		memset(&in, 0, sizeof(in));
		in.id = 1000 + i;
		in.k = i * 3;
		CU_ASSERT_EQUAL_FATAL(ras_buf_pack(&b, &in, sizeof(in), str, 2), 0);
	}
	CU_ASSERT_EQUAL_FATAL(ras_buf_pack(&b, &in, sizeof(in), (const char *const[]){ huge, "" }, 2), 0);
	for (int i = 0; i < 100; i++) {
		char s1[16], s2[40];

		snprintf(s1, sizeof(s1), "r%d", i);
		snprintf(s2, sizeof(s2), "message %d of the batch", i);
		CU_ASSERT_FATAL(ras_buf_unpack(&b, &off, &out, sizeof(out), dst, cap, 2));
		CU_ASSERT_EQUAL(out.id, 1000 + i);
		CU_ASSERT_EQUAL(out.k, i * 3);
		CU_ASSERT_STRING_EQUAL(a, s1);
		CU_ASSERT_STRING_EQUAL(c, i % 7 == 0 ? "" : s2);
	}
	{
		/* the huge string: cut at 65,535 in the record, at the array here */
		char big[70000], e[4], *const d2[2] = { big, e };
		const size_t c2[2] = { sizeof(big), sizeof(e) };

		CU_ASSERT_FATAL(ras_buf_unpack(&b, &off, &out, sizeof(out), d2, c2, 2));
		CU_ASSERT_EQUAL(strlen(big), 65535);
		CU_ASSERT_STRING_EQUAL(e, "");
	}
	CU_ASSERT_EQUAL(off, b.len);
	CU_ASSERT_FALSE(ras_buf_unpack(&b, &off, &out, sizeof(out), dst, cap, 2));
	/* a record cut short is not read */
	{
		size_t o2 = 0;
		struct ras_buf cut = b;

		cut.len = sizeof(out) + 1;
		CU_ASSERT_FALSE(ras_buf_unpack(&cut, &o2, &out, sizeof(out), dst, cap, 2));
	}
	ras_buf_free(&b);
	free(huge);
}

static void
buf_limit(void)
{
	struct ras_buf b = RAS_BUF_INIT(8);

	CU_ASSERT_EQUAL(ras_buf_puts(&b, "12345678"), 0);
	CU_ASSERT_EQUAL(ras_buf_puts(&b, "9"), RAS_ETOOBIG);
	CU_ASSERT_EQUAL(b.len, 8);
	CU_ASSERT_STRING_EQUAL(b.data, "12345678");
	ras_buf_reset(&b);
	CU_ASSERT_EQUAL(ras_buf_printf(&b, "%d-%s", 42, "x"), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "42-x");
	ras_buf_free(&b);
}

/* ras_buf_reserve takes room for exactly what is asked (a file read at
 * its size is held at its size, not the doubling appends make), keeps the
 * limit, and ras_store_read_payload uses it: a spool file's buffer is its
 * size plus the terminating NUL. */
static void
buf_reserve_exact(void)
{
	struct ras_buf b = RAS_BUF_INIT(6000), r = RAS_BUF_INIT(0);
	char text[5300], path[] = "/tmp/rasd-test-reserve.XXXXXX", sha[RAS_SHA256_HEX_LEN], want[RAS_SHA256_HEX_LEN];
	uint64_t size = 0;
	int fd;

	memset(text, 'r', sizeof(text));
	CU_ASSERT_EQUAL(ras_buf_reserve(&b, sizeof(text)), 0);
	CU_ASSERT_EQUAL(b.cap, sizeof(text) + 1);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_STRING_EQUAL(b.data, "");
	CU_ASSERT_EQUAL(ras_buf_append(&b, text, sizeof(text)), 0);
	CU_ASSERT_EQUAL(b.cap, sizeof(text) + 1);           /* no growth */
	CU_ASSERT_EQUAL(ras_buf_reserve(&b, 700), 0);       /* exactly the limit */
	CU_ASSERT_EQUAL(b.cap, 6001);
	CU_ASSERT_EQUAL(ras_buf_reserve(&b, 701), RAS_ETOOBIG);
	CU_ASSERT_EQUAL(b.len, sizeof(text));
	CU_ASSERT_EQUAL(ras_buf_puts(&b, "x"), 0);          /* appends still grow it */
	CU_ASSERT_EQUAL(b.data[b.len], '\0');
	ras_buf_free(&b);

	fd = mkstemp(path);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, text, sizeof(text)), (ssize_t)sizeof(text));
	CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_SET), 0);
	CU_ASSERT_EQUAL(ras_store_read_payload(fd, &r, &size, sha), 0);
	CU_ASSERT_EQUAL(size, sizeof(text));
	CU_ASSERT_EQUAL(r.len, sizeof(text));
	CU_ASSERT_EQUAL(r.cap, sizeof(text) + 1);
	CU_ASSERT_EQUAL(memcmp(r.data, text, sizeof(text)), 0);
	ras_crypto_sha256_hex(text, sizeof(text), want);
	CU_ASSERT_STRING_EQUAL(sha, want);
	ras_buf_free(&r);
	close(fd);
	unlink(path);
}

/* ras_buf_printf formats into the room a buffer has, and grows it only
 * for what does not fit: the text is whole either way, and a text past
 * the limit leaves the buffer as it was. */
static void
buf_printf_in_place(void)
{
	struct ras_buf b = RAS_BUF_INIT(0), lim = RAS_BUF_INIT(200);
	char big[1000];
	size_t cap;

	CU_ASSERT_EQUAL(ras_buf_puts(&b, "a"), 0);
	cap = b.cap;
	CU_ASSERT_TRUE(cap > 20);
	CU_ASSERT_EQUAL(ras_buf_printf(&b, "-%d-%s", 7, "fits"), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "a-7-fits");
	CU_ASSERT_EQUAL(b.len, 8);
	CU_ASSERT_EQUAL(b.cap, cap);                      /* no growth */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CU_ASSERT_EQUAL(ras_buf_printf(&b, "[%s]", big), 0); /* longer than the room */
	CU_ASSERT_EQUAL(b.len, 8 + 2 + sizeof(big) - 1);
	CU_ASSERT_EQUAL(strncmp(b.data, "a-7-fits[xxx", 12), 0);
	CU_ASSERT_EQUAL(b.data[b.len - 1], ']');
	CU_ASSERT_EQUAL(b.data[b.len], '\0');
	CU_ASSERT_EQUAL(strlen(b.data), b.len);
	ras_buf_free(&b);

	/* the limit: a text that fits the allocated room but not the limit,
	 * and one that fits neither, are refused and leave the buffer whole */
	CU_ASSERT_EQUAL(ras_buf_puts(&lim, "start"), 0);
	CU_ASSERT_TRUE(lim.cap > 200);
	CU_ASSERT_EQUAL(ras_buf_printf(&lim, "%.*s", 196, big), RAS_ETOOBIG);
	CU_ASSERT_EQUAL(lim.len, 5);
	CU_ASSERT_STRING_EQUAL(lim.data, "start");
	CU_ASSERT_EQUAL(ras_buf_printf(&lim, "%s", big), RAS_ETOOBIG);
	CU_ASSERT_STRING_EQUAL(lim.data, "start");
	CU_ASSERT_EQUAL(ras_buf_printf(&lim, "%.*s", 195, big), 0);   /* exactly the limit */
	CU_ASSERT_EQUAL(lim.len, 200);
	CU_ASSERT_EQUAL(strlen(lim.data), 200);
	ras_buf_free(&lim);
}

static int cleaned;
static void
count_cleanup(void *p)
{
	(void)p;
	cleaned++;
}

static void
arena_basic(void)
{
	struct ras_arena *a = ras_arena_new();
	char *s = ras_arena_printf(a, "%s-%d", "ubrn", 7);
	void *big = ras_arena_alloc(a, 100000);

	CU_ASSERT_STRING_EQUAL(s, "ubrn-7");
	CU_ASSERT_PTR_NOT_NULL(big);
	CU_ASSERT_PTR_NULL(ras_arena_calloc(a, SIZE_MAX / 2, 4));
	CU_ASSERT_PTR_NULL(ras_arena_array(a, SIZE_MAX / 2, 4));
	{
		/* an array is not zeroed, but is aligned as alloc's memory is, and
		 * what alloc gives after it is still zeroed */
		uint64_t *arr = ras_arena_array(a, 3, sizeof(uint64_t));
		unsigned char *z;

		CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
		CU_ASSERT_EQUAL((uintptr_t)arr % 16, 0);
		memset(arr, 0xA5, 3 * sizeof(uint64_t));
		z = ras_arena_alloc(a, 64);
		CU_ASSERT_PTR_NOT_NULL_FATAL(z);
		for (int i = 0; i < 64; i++)
			CU_ASSERT_EQUAL(z[i], 0);
	}
	cleaned = 0;
	ras_arena_defer(a, count_cleanup, NULL);
	ras_arena_defer(a, count_cleanup, NULL);
	ras_arena_free(a);
	CU_ASSERT_EQUAL(cleaned, 2);
	ras_arena_free(NULL);
}

/* --- crypto ---------------------------------------------------------- */

static void
crypto_basic(void)
{
	char hex[RAS_SHA256_HEX_LEN], u1[RAS_UUID_STR_LEN], u2[RAS_UUID_STR_LEN];
	struct ras_buf b = RAS_BUF_INIT(0), d = RAS_BUF_INIT(0);
	struct ras_sha256 *h;

	ras_crypto_sha256_hex("abc", 3, hex);
	CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	h = ras_crypto_sha256_new();
	ras_crypto_sha256_update(h, "a", 1);
	ras_crypto_sha256_update(h, "bc", 2);
	ras_crypto_sha256_final(h, hex);
	CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* RFC 4231 test case 2 */
	CU_ASSERT_EQUAL(ras_crypto_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex), 0);
	CU_ASSERT_STRING_EQUAL(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	CU_ASSERT_EQUAL(ras_crypto_uuid(u1), 0);
	CU_ASSERT_EQUAL(ras_crypto_uuid(u2), 0);
	CU_ASSERT_STRING_NOT_EQUAL(u1, u2);
	CU_ASSERT_EQUAL(u1[14], '4');
	ras_crypto_uuid_v5("referral:1", u1);
	ras_crypto_uuid_v5("referral:1", u2);
	CU_ASSERT_STRING_EQUAL(u1, u2);
	CU_ASSERT_EQUAL(u1[14], '5');
	CU_ASSERT_EQUAL(ras_crypto_base64("hello!?", 7, &b), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "aGVsbG8hPw==");
	ras_buf_reset(&b);
	CU_ASSERT_EQUAL(ras_crypto_base64url("hello!?", 7, &b), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "aGVsbG8hPw");
	CU_ASSERT_EQUAL(ras_crypto_base64_decode("aGVsbG8h\nPw==", 13, &d), 0);
	CU_ASSERT_STRING_EQUAL(d.data, "hello!?");
	ras_buf_reset(&d);
	CU_ASSERT_EQUAL(ras_crypto_base64_decode("aGV*", 4, &d), RAS_EINVALID);
	ras_buf_free(&b);
	ras_buf_free(&d);
}

/* --- config ---------------------------------------------------------- */

static void
config_problems(void)
{
	const char *text =
	    "# comment\n"
	    "[database]\n"
	    "conninfo = host=/tmp dbname=rasd password=secret\n"
	    "batch_size = 0\n"
	    "colour = blue\n"
	    "[nosuch]\n"
	    "x = 1\n"
	    "[general]\n"
	    "mappings = /opt/rasd/mappings   # where the rule sets live\n";
	char *path = ras_test_write_tmp("bad.conf", text, strlen(text));
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_config *cfg = NULL;

	CU_ASSERT_EQUAL(ras_config_load(path, &cfg, &problems), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, ":3: database.conninfo must not contain a password"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, ":4: database.batch_size must be between 1 and 10000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, ":5: unknown option \"colour\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, ":6: unknown section [nosuch]"));
	CU_ASSERT_STRING_EQUAL(ras_config_get(cfg, "general", NULL, "mappings"), "/opt/rasd/mappings");
	/* defaults apply to what was not set */
	CU_ASSERT_EQUAL(ras_config_int(cfg, "database", NULL, "batch_size"), 200);
	ras_config_free(cfg);
	ras_buf_free(&problems);
	free(path);
}

static void
config_secret(void)
{
	char *secret = ras_test_write_tmp("pw", "s3cret\n", 7);
	char *cred = ras_test_write_tmp("mesh-shared-key", "k3y", 3);
	char text[600];
	char *path;
	struct ras_config *cfg = NULL;
	struct ras_buf out = RAS_BUF_INIT(0);

	/* A secret option names a file by absolute path, or a systemd credential
	 * by bare name (read from $CREDENTIALS_DIRECTORY); the trailing newline
	 * is not part of the secret. */
	snprintf(text, sizeof(text), "[mesh]\npassword = %s\nshared_key = mesh-shared-key\n", secret);
	path = ras_test_write_tmp("ok.conf", text, strlen(text));
	CU_ASSERT_EQUAL_FATAL(ras_config_load(path, &cfg, NULL), 0);
	CU_ASSERT_EQUAL(ras_config_secret(cfg, "mesh", NULL, "password", &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "s3cret");
	ras_buf_free(&out);
	setenv("CREDENTIALS_DIRECTORY", ras_test_tmpdir(), 1);
	CU_ASSERT_EQUAL(ras_config_secret(cfg, "mesh", NULL, "shared_key", &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "k3y");
	ras_buf_free(&out);
	unsetenv("CREDENTIALS_DIRECTORY");
	/* without the credentials directory the bare name is not found */
	CU_ASSERT_NOT_EQUAL(ras_config_secret(cfg, "mesh", NULL, "shared_key", &out), 0);
	ras_buf_free(&out);
	/* an unset secret is reported, not read from somewhere else */
	CU_ASSERT_EQUAL(ras_config_secret(cfg, "mesh", NULL, "client_key", &out), RAS_ENOTFOUND);
	ras_buf_free(&out);
	ras_config_free(cfg);
	free(path);
	free(secret);
	free(cred);
}


/* A block an arena gives back is reused by the next one (not under
 * AddressSanitizer, which must see it freed), and what the next arena is
 * given is zeroed whatever the block held. */
static void
arena_reuse(void)
{
	enum { N = 2000 };
	struct ras_arena *a = ras_arena_new();
	struct ras_arena *b;
	unsigned char *p, *q;
	uintptr_t was;
	size_t i, nonzero = 0;

	RAS_REQUIRE(a != NULL);
	p = ras_arena_alloc(a, N);
	RAS_REQUIRE(p != NULL);
	memset(p, 0xA5, N);
	was = (uintptr_t)p;
	ras_arena_free(a);
	b = ras_arena_new();
	RAS_REQUIRE(b != NULL);
	q = ras_arena_alloc(b, N);
	RAS_REQUIRE(q != NULL);
	for (i = 0; i < N; i++)
		nonzero += q[i] != 0;
	CU_ASSERT_EQUAL(nonzero, 0);
#if !defined(__SANITIZE_ADDRESS__)
	CU_ASSERT_EQUAL((uintptr_t)q, was);
#else
	(void)was; /* AddressSanitizer sees every block freed: none is kept */
#endif
	ras_arena_free(b);
	/* kept for the next arena, until given back */
#if !defined(__SANITIZE_ADDRESS__)
	CU_ASSERT(ras_arena_cached() > 0);
#endif
	ras_arena_cache_release();
	CU_ASSERT_EQUAL(ras_arena_cached(), 0);
	b = ras_arena_new();
	RAS_REQUIRE(b != NULL);
	RAS_REQUIRE(ras_arena_alloc(b, N) != NULL);
	ras_arena_free(b);
	ras_arena_cache_release();
}

static const struct ras_test_case nhsno_cases[] = {
	{ "valid numbers", nhsno_valid },
	{ "invalid numbers", nhsno_invalid },
	{ NULL, NULL },
};
static const struct ras_test_case time_cases[] = {
	{ "calendar dates", dates },
	{ "ages on birthdays", ages },
	{ "instants and UK time", instants },
	{ "BST changeover", uk_dst_edges },
	{ NULL, NULL },
};
static const struct ras_test_case json_cases[] = {
	{ "parse policy", json_policy },
	{ "deterministic dump", json_deterministic },
	{ NULL, NULL },
};
static const struct ras_test_case mem_cases[] = {
	{ "buffer limit", buf_limit },
	{ "buffer printf formats into the room it has", buf_printf_in_place },
	{ "buffer reserve: exactly the room asked; a file held at its size", buf_reserve_exact },
	{ "packed records", buf_pack_round_trip },
	{ "arena", arena_basic },
	{ "arena blocks given back and reused, and released", arena_reuse },
	{ "crypto", crypto_basic },
	{ NULL, NULL },
};
static const struct ras_test_case config_cases[] = {
	{ "every problem reported", config_problems },
	{ "secret from a file", config_secret },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "nhsno", nhsno_cases, NULL, NULL },
		{ "date and time", time_cases, NULL, NULL },
		{ "json", json_cases, NULL, NULL },
		{ "buf-arena-crypto", mem_cases, NULL, NULL },
		{ "config", config_cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
