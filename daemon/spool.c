/* spool: the watched payload directory (see spool.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "loop.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "ras/store.h"
#include "ras/time.h"
#include "receive.h"
#include "spool.h"

/* Names remembered between inotify events and the scan they trigger. */
#define READY_MAX 1024
/* Files taken per pass (each pass is one inbox transaction). */
#define SPOOL_BATCH_MAX 200

struct ras_spool {
	struct ras_daemon *d;
	char *dir, *done, *rejected, *service;
	int dirfd, donefd, rejfd, ifd, wd;
	int rescan_s;
	int64_t settle_ms;           /* [spool] settle: a scan takes files left alone this long */
	struct ras_loop_timer *scan;
	char *ready[READY_MAX];
	size_t nready;
	int failures;
};

struct cand {
	char *name;
	int64_t mtime;
	int64_t size;
};

struct file_in {
	char *name;
	struct ras_buf data;
	uint64_t size;
	char sha[RAS_SHA256_HEX_LEN];
	char corr[RAS_UUID_STR_LEN];
	int err;                 /* errno of a failed read, 0 when read */
};

static bool
skipped_name(const char *n)
{
	size_t l = strlen(n);

	if (n[0] == '.')
		return true;
	if ((l > 4 && strcmp(n + l - 4, ".tmp") == 0) || (l > 5 && strcmp(n + l - 5, ".part") == 0) ||
	    (l > 7 && strcmp(n + l - 7, ".reason") == 0))
		return true;
	return false;
}

static bool
is_ready(struct ras_spool *s, const char *name)
{
	for (size_t i = 0; i < s->nready; i++)
		if (strcmp(s->ready[i], name) == 0)
			return true;
	return false;
}

static void
forget_ready(struct ras_spool *s)
{
	for (size_t i = 0; i < s->nready; i++)
		free(s->ready[i]);
	s->nready = 0;
}

static int
cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Read a file keeping at most RAS_PAYLOAD_KEEP_MAX bytes but hashing and
 * counting all of it (an oversized payload is still kept, and known). */
static void
read_file(struct ras_spool *s, struct file_in *f)
{
	struct stat st;
	int fd, err;

	f->err = 0;
	fd = openat(s->dirfd, f->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		f->err = fd < 0 ? errno : EINVAL;
		if (fd >= 0)
			close(fd);
		ras_buf_init(&f->data, 0);
		f->size = 0;
		return;
	}
	if ((err = ras_store_read_payload(fd, &f->data, &f->size, f->sha)) < 0)
		f->err = err == RAS_ENOMEM ? ENOMEM : EIO;
	close(fd);
	(void)ras_crypto_uuid(f->corr);
}

static int
move_to(struct ras_spool *s, int dstfd, const char *name, int64_t id, char *dst, size_t dstsize)
{
	snprintf(dst, dstsize, "%lld-%s", (long long)id, name);
	if (renameat(s->dirfd, name, dstfd, dst) < 0)
		return -errno;
	return 0;
}

static void
write_reason(struct ras_spool *s, const char *moved, const char *reason)
{
	char path[NAME_MAX + 32 + sizeof(".reason")];   /* moved: up to NAME_MAX + 31 */
	int fd;

	snprintf(path, sizeof(path), "%s.reason", moved);
	fd = openat(s->rejfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return;
	(void)!write(fd, reason, strlen(reason));
	(void)!write(fd, "\n", 1);
	close(fd);
}

/* Sift c[i] down the max-heap c[0..n) (the newest candidate, by cmp_cand,
 * at the top). */
static void
heap_down(struct cand *c, size_t n, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = l + 1;
		struct cand t;

		if (l < n && cmp_cand(&c[l], &c[big]) > 0)
			big = l;
		if (r < n && cmp_cand(&c[r], &c[big]) > 0)
			big = r;
		if (big == i)
			return;
		t = c[i];
		c[i] = c[big];
		c[big] = t;
		i = big;
	}
}

/* The oldest `keep` regular files of the spool that have settled, into
 * *out (names malloc'd, in no order), and how many settled files there are
 * in all (*total); *waiting when some are still being written.  What a scan
 * holds is `keep` names whatever the number of files in the directory (a
 * spool of 100,000 files once held every name, ~10 MB).  -1 when the
 * directory cannot be read. */
static int
list_settled(struct ras_spool *s, size_t keep, struct cand **out, size_t *nout, size_t *total,
    bool *waiting)
{
	struct cand *c = NULL;
	size_t nc = 0, capc = 0;
	struct dirent *de;
	DIR *dir;
	int dupfd;
	struct timespec ts;
	int64_t now_ms;

	/* the settle time is measured to the millisecond */
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if ((dupfd = dup(s->dirfd)) < 0 || (dir = fdopendir(dupfd)) == NULL) {
		if (dupfd >= 0)
			close(dupfd);
		ras_log(RAS_LOG_ERR, "could not read the spool directory: %s", strerror(errno));
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (skipped_name(de->d_name))
			continue;
		if (fstatat(s->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		/* Only a file closed after writing (or renamed in) is taken at
		 * once; one the scan finds must have been left alone for the
		 * settle time (to the millisecond: a file written 0.1 s ago is
		 * not a second old because the clock's second turned). */
		if ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 > now_ms - s->settle_ms &&
		    !is_ready(s, de->d_name)) {
			*waiting = true;
			continue;
		}
		{
			struct cand x = { .name = de->d_name, .mtime = (int64_t)st.st_mtime,
				.size = (int64_t)st.st_size };

			(*total)++;
			if (nc == keep) {
				/* full: it replaces the newest kept, if older */
				if (cmp_cand(&x, &c[0]) >= 0)
					continue;
				if ((x.name = strdup(de->d_name)) == NULL)
					continue;
				free(c[0].name);
				c[0] = x;
				heap_down(c, nc, 0);
				continue;
			}
			if (nc == capc) {
				size_t cap = capc ? capc * 2 : 64;
				struct cand *nv;

				if (cap > keep)
					cap = keep;
				if ((nv = realloc(c, cap * sizeof(*nv))) == NULL)
					break;
				c = nv;
				capc = cap;
			}
			if ((x.name = strdup(de->d_name)) == NULL)
				continue;
			/* push: up from the bottom of the heap */
			c[nc] = x;
			for (size_t i = nc++; i > 0 && cmp_cand(&c[i], &c[(i - 1) / 2]) > 0; i = (i - 1) / 2) {
				struct cand t = c[i];

				c[i] = c[(i - 1) / 2];
				c[(i - 1) / 2] = t;
			}
		}
	}
	closedir(dir);
	forget_ready(s);
	*out = c;
	*nout = nc;
	return 0;
}

/* How many of the (sorted) candidates one pass takes: at most `limit`, and
 * the memory of one pass bounded (RAS_SPOOL_PASS_BYTES), always taking at
 * least one file. */
static size_t
pass_size(const struct cand *c, size_t nc, size_t limit)
{
	size_t nf = nc < limit ? nc : limit;
	uint64_t bytes = 0;

	for (size_t i = 0; i < nf; i++) {
		bytes += (uint64_t)(c[i].size < RAS_PAYLOAD_KEEP_MAX ? c[i].size : RAS_PAYLOAD_KEEP_MAX);
		if (i > 0 && bytes > RAS_SPOOL_PASS_BYTES)
			return i;
	}
	return nf;
}

/* Keep the files that could be read (rec[i] answers items[i]); unreadable
 * files are not sent to the database.  -1 when nothing could be kept (the
 * files stay in place for the next pass). */
static int
keep_readable(struct ras_spool *s, const struct file_in *files, const struct ras_inbox_item *items,
    size_t nf, struct ras_receipt *rec)
{
	size_t k = 0;
	struct ras_inbox_item *ok = calloc(nf, sizeof(*ok));
	struct ras_receipt *okrec = calloc(nf, sizeof(*okrec));
	size_t *idx = calloc(nf, sizeof(*idx));
	int err = -1;

	if (ok == NULL || okrec == NULL || idx == NULL)
		goto done;
	for (size_t i = 0; i < nf; i++)
		if (files[i].err == 0) {
			idx[k] = i;
			ok[k++] = items[i];
		}
	err = k ? ras_receive(s->d, ok, k, okrec) : 0;
	for (size_t q = 0; err == 0 && q < k; q++)
		rec[idx[q]] = okrec[q];
	if (err < 0) {
		if (s->failures++ == 0)
			ras_log(RAS_LOG_ERR, "could not keep spool files (left in place): %s",
			    ras_error_last());
		goto done;
	}
	s->failures = 0;
done:
	free(ok);
	free(okrec);
	free(idx);
	return err < 0 ? -1 : 0;
}

/* Move one file of the pass where its receipt says (done/, rejected/ with
 * the reason), and log it.  Returns 1 when the file was taken, 0 when it
 * is left for the next pass (*waiting: another process is normalising it). */
static int
settle(struct ras_spool *s, const struct file_in *f, const struct ras_receipt *r, bool *waiting)
{
	struct ras_daemon *d = s->d;
	char moved[NAME_MAX + 32], pid[24];
	int e;

	if (f->err) {
		/* Not kept: a person must look.  Move it out of the way so
		 * it is not read again, without touching the database. */
		char reason[128];

		(void)ras_buf_format(reason, sizeof(reason), "could not read the file: %s",
		    strerror(f->err));
		if (move_to(s, s->rejfd, f->name, 0, moved, sizeof(moved)) == 0)
			write_reason(s, moved, reason);
		d->stats.spool_failed++;
		ras_log_fields(RAS_LOG_ERR, (struct ras_log_field[]){ { "STAGE", "spool" }, { NULL, NULL } },
		    "a spool file could not be read (moved to rejected/ as 0-…): %s", strerror(f->err));
		return 0;
	}
	snprintf(pid, sizeof(pid), "%lld", (long long)r->payload_id);
	if (r->state == NULL || strcmp(r->state, "queued") == 0) {
		/* Kept, but another process is normalising it: the next
		 * pass sees the outcome and moves the file. */
		*waiting = true;
		return 0;
	}
	if (strcmp(r->state, "rejected") == 0) {
		e = move_to(s, s->rejfd, f->name, r->payload_id, moved, sizeof(moved));
		if (e == 0)
			write_reason(s, moved, r->message);
		d->stats.spool_rejected++;
	} else {
		e = move_to(s, s->donefd, f->name, r->payload_id, moved, sizeof(moved));
		d->stats.spool_done++;
	}
	{
		struct ras_log_field fl[] = { { "STAGE", "spool" }, { "PAYLOAD_ID", pid },
			{ "UBRN", r->ubrn[0] ? r->ubrn : NULL }, { "CORRELATION_ID", f->corr },
			{ NULL, NULL } };

		if (e == -ENOENT)
			ras_log_fields(RAS_LOG_DEBUG, fl,
			    "spool file for payload #%s was moved by another process", pid);
		else if (e < 0)
			ras_log_fields(RAS_LOG_ERR, fl,
			    "spool file kept as payload #%s (%s) but could not be moved: %s", pid,
			    r->state, strerror(-e));
		else
			ras_log_fields(strcmp(r->state, "rejected") == 0 ? RAS_LOG_WARNING : RAS_LOG_INFO,
			    fl, "spool file kept as payload #%s: %s, moved to %s/", pid, r->state,
			    strcmp(r->state, "rejected") == 0 ? "rejected" : "done");
	}
	return 1;
}

/* One pass: up to SPOOL_BATCH_MAX files, oldest first.  Returns how many
 * were taken. */
static int
pass(struct ras_spool *s, bool *more, bool *waiting)
{
	struct cand *c = NULL;
	struct file_in *files = NULL;
	struct ras_inbox_item *items = NULL;
	struct ras_receipt *rec = NULL;
	size_t nc = 0, nf = 0, total = 0, limit = ras_daemon_batch(s->d);
	int taken = 0;

	*more = false;
	*waiting = false;
	if (limit > SPOOL_BATCH_MAX)
		limit = SPOOL_BATCH_MAX;
	if (limit == 0)
		limit = 1;
	if (list_settled(s, limit, &c, &nc, &total, waiting) < 0)
		return -1;
	if (nc == 0)
		goto done;
	qsort(c, nc, sizeof(*c), cmp_cand);
	nf = pass_size(c, nc, limit);
	if (total > nf)
		*more = true;
	files = calloc(nf, sizeof(*files));
	items = calloc(nf, sizeof(*items));
	rec = calloc(nf, sizeof(*rec));
	if (files == NULL || items == NULL || rec == NULL)
		goto done;
	for (size_t i = 0; i < nf; i++) {
		files[i].name = c[i].name;
		read_file(s, &files[i]);
		items[i] = (struct ras_inbox_item){
			.data = files[i].data.data ? files[i].data.data : "",
			.len = files[i].data.len, .full_size = files[i].size, .sha256 = files[i].sha,
			.source = "spool", .source_ref = files[i].name, .service_hint = s->service,
			.correlation_id = files[i].corr,
		};
	}
	if (keep_readable(s, files, items, nf, rec) < 0)
		goto done;
	for (size_t i = 0; i < nf; i++)
		taken += settle(s, &files[i], &rec[i], waiting);
done:
	for (size_t i = 0; i < nc; i++)
		free(c[i].name);
	for (size_t i = 0; files && i < nf; i++)
		ras_buf_free(&files[i].data);
	free(c);
	free(files);
	free(items);
	free(rec);
	return taken;
}

static void
on_scan(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_spool *s = ctx;
	bool more = false, waiting = false;

	(void)l;
	if (s->d->stopping)
		return;
	(void)pass(s, &more, &waiting);
	if (more)
		ras_loop_timer_after(t, 0);
	else if (s->failures)
		ras_loop_timer_after(t, 5000);
	else if (waiting)
		ras_loop_timer_after(t, s->settle_ms + 1000);
	else
		ras_loop_timer_after(t, (int64_t)s->rescan_s * 1000);
}

static void
on_inotify(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	struct ras_spool *s = ctx;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool kick = false;

	(void)l;
	(void)events;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				kick = true;
			if (ev->mask & IN_IGNORED)
				ras_log(RAS_LOG_ERR, "the spool directory was removed or unmounted");
			if (ev->len && !skipped_name(ev->name) && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))) {
				if (s->nready < READY_MAX && !is_ready(s, ev->name)) {
					char *dup = strdup(ev->name);

					if (dup)
						s->ready[s->nready++] = dup;
				}
				kick = true;
			}
			p += sizeof(struct inotify_event) + ev->len;
		}
	}
	if (kick)
		ras_loop_timer_within(s->scan, 0);
}

static int
open_dir(const char *path, bool create, int *fd)
{
	if (create && mkdir(path, 0750) < 0 && errno != EEXIST)
		return ras_error_code(RAS_EIO, "could not create \"%s\": %s", path, strerror(errno));
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return ras_error_code(RAS_EIO, "could not open directory \"%s\": %s", path, strerror(errno));
	return 0;
}

void
ras_spool_reconfigure(struct ras_spool *s, const struct ras_config *cfg)
{
	const char *svc;

	if (s == NULL)
		return;
	s->rescan_s = (int)ras_config_int(cfg, "spool", NULL, "rescan");
	s->settle_ms = ras_config_int(cfg, "spool", NULL, "settle") * 1000;
	if (s->settle_ms < RAS_SPOOL_SETTLE_MIN_S * 1000)
		s->settle_ms = RAS_SPOOL_SETTLE_MIN_S * 1000;
	svc = ras_config_get(cfg, "spool", NULL, "service");
	free(s->service);
	s->service = svc ? strdup(svc) : NULL;
}

int
ras_spool_open(struct ras_daemon *d, const struct ras_config *cfg, struct ras_spool **out)
{
	const char *dir = ras_config_get(cfg, "spool", NULL, "directory");
	const char *done = ras_config_get(cfg, "spool", NULL, "done");
	const char *rej = ras_config_get(cfg, "spool", NULL, "rejected");
	struct ras_spool *s;
	char path[PATH_MAX];
	int err;

	*out = NULL;
	if (dir == NULL)
		return 0;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	s->d = d;
	s->dirfd = s->donefd = s->rejfd = s->ifd = -1;
	s->dir = strdup(dir);
	snprintf(path, sizeof(path), "%s/done", dir);
	s->done = strdup(done ? done : path);
	snprintf(path, sizeof(path), "%s/rejected", dir);
	s->rejected = strdup(rej ? rej : path);
	if (!s->dir || !s->done || !s->rejected) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	if ((err = open_dir(s->dir, false, &s->dirfd)) < 0 ||
	    (err = open_dir(s->done, true, &s->donefd)) < 0 ||
	    (err = open_dir(s->rejected, true, &s->rejfd)) < 0)
		goto fail;
	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ifd < 0 || (s->wd = inotify_add_watch(s->ifd, s->dir,
	    IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)) < 0) {
		err = ras_error_code(RAS_EIO, "could not watch the spool directory \"%s\": %s", s->dir,
		    strerror(errno));
		goto fail;
	}
	if ((err = ras_loop_add_fd(d->loop, s->ifd, EPOLLIN, on_inotify, s)) < 0)
		goto fail;
	s->scan = ras_loop_timer_new(d->loop, "spool", on_scan, s);
	if (s->scan)
		ras_loop_timer_set_nested(s->scan, true);    /* taken while a stage waits */
	if (s->scan == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	ras_spool_reconfigure(s, cfg);
	*out = s;
	return 0;
fail:
	ras_spool_close(d, s);
	return err;
}

void
ras_spool_kick(struct ras_spool *s)
{
	if (s)
		ras_loop_timer_within(s->scan, 0);
}

void
ras_spool_close(struct ras_daemon *d, struct ras_spool *s)
{
	if (s == NULL)
		return;
	if (s->ifd >= 0) {
		ras_loop_del_fd(d->loop, s->ifd);
		close(s->ifd);
	}
	if (s->scan)
		ras_loop_timer_free(d->loop, s->scan);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->donefd >= 0)
		close(s->donefd);
	if (s->rejfd >= 0)
		close(s->rejfd);
	forget_ready(s);
	free(s->dir);
	free(s->done);
	free(s->rejected);
	free(s->service);
	free(s);
}
