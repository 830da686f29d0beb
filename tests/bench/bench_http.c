/*
 * bench_http: the HTTP load generator of scripts/bench.  A benchmark tool,
 * not a test: it prints numbers.
 *
 *   build-release/tests/bench_http HOST:PORT TOKEN_FILE CLIENTS SERVICE DIR
 *
 * POSTs every *.json file of DIR (in name order, each once) to
 * http://HOST:PORT/fhir/Bundle?service=SERVICE from CLIENTS concurrent
 * keep-alive connections: each connection sends its next file as soon as
 * its previous one is answered, as CLIENTS independent senders would.  The
 * requests are those an intake client sends: Authorization: Bearer (the
 * token read from TOKEN_FILE, so that it is not on the command line),
 * Content-Type: application/fhir+json, the file as the body, HTTP/1.1.
 * An answer 2xx counts as ok; any other status, or a transfer that fails
 * (refused, dropped, timed out, an answer past BENCH_HTTP_ANSWER_MAX), as
 * failed.  It prints one line:
 *
 *   OK FAILED SECONDS
 *
 * SECONDS from the first request to the last answer (the files are read
 * before).  Plain HTTP to a loopback address only: the token goes in clear.
 *
 * One thread drives every connection through libcurl's multi interface,
 * so that the client spends as little of the machine as it can beside the
 * rasd and PostgreSQL it measures.  libcurl is used directly rather than
 * through ras/http.h: ras_http_perform() runs a batch until its last
 * transfer ends, which would make the senders move in step, and it adds
 * rasd's own headers (User-Agent, Accept-Encoding) to every request.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ras/buf.h"
#include "ras/error.h"
#include "ras/limits.h"

/* A file larger than rasd takes in one POST is refused before anything
 * is sent (rasd would answer 413 without reading it). */
#define BENCH_HTTP_FILE_MAX     RAS_PAYLOAD_MAX
/* Files of one run, and their bytes: all are read into memory first, so
 * that reading them is not timed. */
#define BENCH_HTTP_FILES_MAX    RAS_INGEST_FILES_MAX
#define BENCH_HTTP_BYTES_MAX    (1024u * 1024u * 1024u)
/* One answer, status line, headers and body (rasd's receipt or
 * OperationOutcome is under 2 KiB); a longer one fails its transfer. */
#define BENCH_HTTP_ANSWER_MAX   (64u * 1024u)
/* Concurrent connections (each one a descriptor). */
#define BENCH_HTTP_CLIENTS_MAX  1024
/* One request, from sending to the whole answer (a group commit under
 * load takes well under a second). */
#define BENCH_HTTP_TIMEOUT_MS   120000L
/* The service id in the URL, and the host and port. */
#define BENCH_HTTP_NAME_MAX     RAS_ID_MAX
/* Failures described on stderr (the rest are only counted). */
#define BENCH_HTTP_FAILURES_SHOWN 3

struct file {
	char *name;
	char *data;
	size_t len;
};

struct client {
	CURL *e;
	size_t file;             /* the file in flight */
	size_t answer;           /* bytes of its answer so far */
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
};

struct run {
	struct file *files;
	size_t nfiles;
	size_t next;             /* the next file to send */
	size_t ok, failed;
};

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every *.json file of dir, read whole, sorted by name. */
static int
read_files(const char *dir, struct run *run)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0, bytes = 0;
	int err = 0;

	if (d == NULL)
		return ras_error_code(RAS_EIO, "could not open directory \"%s\": %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct ras_buf b = RAS_BUF_INIT(BENCH_HTTP_FILE_MAX);
		struct file *f;
		char path[4096];
		int n;

		if (de->d_name[0] == '.' || !ends_with(de->d_name, ".json"))
			continue;
		if (run->nfiles == BENCH_HTTP_FILES_MAX) {
			err = ras_error_code(RAS_ETOOBIG, "more than %u files in \"%s\" (BENCH_HTTP_FILES_MAX)",
			    (unsigned)BENCH_HTTP_FILES_MAX, dir);
			break;
		}
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			err = ras_error_code(RAS_ETOOBIG, "path too long: \"%s\"", de->d_name);
			break;
		}
		if ((err = ras_buf_read_file(&b, path)) < 0) {
			ras_buf_free(&b);
			break;
		}
		if (b.len > BENCH_HTTP_BYTES_MAX - bytes) {
			ras_buf_free(&b);
			err = ras_error_code(RAS_ETOOBIG, "the files of \"%s\" are larger than %u bytes in all"
			    " (BENCH_HTTP_BYTES_MAX)", dir, (unsigned)BENCH_HTTP_BYTES_MAX);
			break;
		}
		bytes += b.len;
		if (run->nfiles == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct file *nf = realloc(run->files, ncap * sizeof(*nf));

			if (nf == NULL) {
				ras_buf_free(&b);
				err = ras_error_code(RAS_ENOMEM, "out of memory");
				break;
			}
			run->files = nf;
			cap = ncap;
		}
		f = &run->files[run->nfiles];
		f->name = strdup(de->d_name);
		if (f->name == NULL) {
			ras_buf_free(&b);
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			break;
		}
		f->data = ras_buf_detach(&b, &f->len);
		run->nfiles++;
	}
	closedir(d);
	if (err == 0 && run->nfiles > 1)
		qsort(run->files, run->nfiles, sizeof(*run->files), by_name);
	return err;
}

/* The token: the file's first line (a trailing newline is not part of it). */
static int
read_token(const char *path, struct ras_buf *out)
{
	int err;

	if ((err = ras_buf_read_file(out, path)) < 0)
		return err;
	while (out->len > 0 && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
		out->data[--out->len] = '\0';
	if (out->len == 0 || strpbrk(out->data, "\r\n") != NULL)
		return ras_error_code(RAS_EINVALID, "\"%s\" does not hold a token of one line", path);
	return 0;
}

/* Letters, digits, '-', '_' and '.': nothing that changes the URL. */
static bool
plain_name(const char *s)
{
	if (*s == '\0' || strlen(s) > BENCH_HTTP_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* A loopback address and a port. */
static bool
loopback(const char *addr)
{
	static const char *hosts[] = { "127.0.0.1:", "localhost:", "[::1]:" };

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (strncmp(addr, hosts[i], strlen(hosts[i])) == 0) {
			const char *port = addr + strlen(hosts[i]);

			return *port != '\0' && strlen(port) <= 5 && strspn(port, "0123456789") == strlen(port);
		}
	return false;
}

/* Append a header line to *list; false (the list kept, to be freed) when
 * there is no memory. */
static bool
header(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);

	if (n == NULL)
		return false;
	*list = n;
	return true;
}

static size_t
on_answer(char *p, size_t size, size_t n, void *ud)
{
	struct client *c = ud;
	size_t len = size * n;

	(void)p;
	if (len > BENCH_HTTP_ANSWER_MAX - c->answer) {
		c->too_big = true;
		return 0;   /* fails the transfer */
	}
	c->answer += len;
	return len;
}

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The next file on c's connection; false when every file is sent. */
static bool
send_next(CURLM *m, struct run *run, struct client *c)
{
	const struct file *f;

	if (run->next == run->nfiles)
		return false;
	c->file = run->next++;
	c->answer = 0;
	c->too_big = false;
	c->errbuf[0] = '\0';
	f = &run->files[c->file];
	curl_easy_setopt(c->e, CURLOPT_POSTFIELDS, f->data);
	curl_easy_setopt(c->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->len);
	return curl_multi_add_handle(m, c->e) == CURLM_OK;
}

static void
count(struct run *run, const struct client *c, CURLcode rc)
{
	long status = 0;
	const char *what;

	curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status >= 200 && status < 300) {
		run->ok++;
		return;
	}
	if (++run->failed > BENCH_HTTP_FAILURES_SHOWN)
		return;
	if (rc == CURLE_OK) {
		fprintf(stderr, "bench_http: HTTP %ld for %s\n", status, run->files[c->file].name);
		return;
	}
	what = c->too_big || rc == CURLE_FILESIZE_EXCEEDED ? "answer longer than BENCH_HTTP_ANSWER_MAX" :
	    c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	fprintf(stderr, "bench_http: %s: %s\n", run->files[c->file].name, what);
}

int
main(int argc, char **argv)
{
	struct ras_buf token = RAS_BUF_INIT(RAS_SECRET_MAX);
	struct ras_buf url = RAS_BUF_INIT(256);
	struct ras_buf auth = RAS_BUF_INIT(RAS_SECRET_MAX + 64);
	struct run run = { 0 };
	struct client *cs = NULL;
	struct curl_slist *hdrs = NULL;
	CURLM *m = NULL;
	long nclients;
	char *end;
	int active = 0, running = 0, status = 70;
	bool curl_ready = false;
	double t0, t1;

	if (argc != 6)
		goto usage;
	errno = 0;
	nclients = strtol(argv[3], &end, 10);
	if (errno || end == argv[3] || *end || nclients < 1 || nclients > BENCH_HTTP_CLIENTS_MAX)
		goto usage;
	if (!loopback(argv[1])) {
		fprintf(stderr, "bench_http: \"%s\" is not a loopback HOST:PORT (the token goes in clear)\n",
		    argv[1]);
		return 64;
	}
	if (!plain_name(argv[4]))
		goto usage;
	if (read_token(argv[2], &token) < 0 || read_files(argv[5], &run) < 0) {
		fprintf(stderr, "bench_http: %s\n", ras_error_last());
		status = 66;
		goto done;
	}
	if (ras_buf_printf(&url, "http://%s/fhir/Bundle?service=%s", argv[1], argv[4]) < 0 ||
	    ras_buf_printf(&auth, "Authorization: Bearer %s", token.data) < 0)
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	curl_ready = true;
	/* "Expect:" and "Accept:" take out what libcurl would add */
	if (!header(&hdrs, auth.data) || !header(&hdrs, "Content-Type: application/fhir+json") ||
	    !header(&hdrs, "Expect:") || !header(&hdrs, "Accept:"))
		goto fail;
	m = curl_multi_init();
	cs = calloc((size_t)nclients, sizeof(*cs));
	if (m == NULL || cs == NULL)
		goto fail;
	/* one connection per client, kept: no more, and none closed early */
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, nclients);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, nclients);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, nclients);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	for (long i = 0; i < nclients; i++) {
		struct client *c = &cs[i];

		if ((c->e = curl_easy_init()) == NULL)
			goto fail;
		curl_easy_setopt(c->e, CURLOPT_URL, url.data);
		curl_easy_setopt(c->e, CURLOPT_PROTOCOLS_STR, "http");
		curl_easy_setopt(c->e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(c->e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c->e, CURLOPT_POST, 1L);
		curl_easy_setopt(c->e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(c->e, CURLOPT_TIMEOUT_MS, BENCH_HTTP_TIMEOUT_MS);
		curl_easy_setopt(c->e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BENCH_HTTP_ANSWER_MAX);
		curl_easy_setopt(c->e, CURLOPT_WRITEFUNCTION, on_answer);
		curl_easy_setopt(c->e, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->e, CURLOPT_HEADERFUNCTION, on_answer);
		curl_easy_setopt(c->e, CURLOPT_HEADERDATA, c);
		curl_easy_setopt(c->e, CURLOPT_ERRORBUFFER, c->errbuf);
		curl_easy_setopt(c->e, CURLOPT_PRIVATE, (char *)c);
	}

	t0 = now();
	for (long i = 0; i < nclients; i++)
		if (send_next(m, &run, &cs[i]))
			active++;
	while (active > 0) {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(m, &running) != CURLM_OK)
			goto fail;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct client *c = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			count(&run, c, msg->data.result);
			curl_multi_remove_handle(m, c->e);
			active--;
			/* the connection went back to the multi handle's cache, so
			 * the next request takes it again */
			if (send_next(m, &run, c))
				active++;
		}
		if (active > 0 && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			goto fail;
	}
	t1 = now();
	if (run.ok + run.failed != run.nfiles)
		goto fail;
	printf("%zu %zu %.3f\n", run.ok, run.failed, t1 - t0);
	status = 0;
	goto done;

usage:
	fputs("usage: bench_http HOST:PORT TOKEN_FILE CLIENTS SERVICE DIR\n", stderr);
	return 64;
fail:
	fprintf(stderr, "bench_http: could not run the transfers (%zu of %zu files answered)\n",
	    run.ok + run.failed, run.nfiles);
done:
	if (cs) {
		for (long i = 0; i < nclients; i++)
			if (cs[i].e) {
				curl_multi_remove_handle(m, cs[i].e);
				curl_easy_cleanup(cs[i].e);
			}
		free(cs);
	}
	if (m)
		curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	for (size_t i = 0; i < run.nfiles; i++) {
		free(run.files[i].name);
		free(run.files[i].data);
	}
	free(run.files);
	ras_buf_free(&url);
	ras_buf_free(&auth);
	ras_buf_free(&token);
	if (curl_ready)
		curl_global_cleanup();
	return status;
}
