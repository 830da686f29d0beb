/*
 * ctl_store: `rasctl migrate`, `rasctl ingest` and `rasctl show`.
 *
 * ingest reads the named files (or "-" for standard input), keeps each one
 * verbatim in the inbox, then normalises them, in batches of INGEST_BATCH
 * files: one transaction stores the raw payloads, the next stores what
 * they contain.  One line per file goes to standard output:
 *
 *   FILE: stored fhir-bundle (payload #12): referral 000000070000 v1 #7 created
 *   FILE: rejected (payload #13): malformed JSON at line 3 column 1: …
 *
 * Then it triages what it stored (referrals in state "new" that these
 * payloads created or completed) and adds the decision to the file's line,
 * without patient data:
 *
 *   FILE: stored …: referral 100000000301 v1 #7 created; triage: midnotts:
 *         accept (recommendation) midnotts.accept [004 §3.4]; triage 2026-04-08, …
 *
 * XML and XHTML referral forms (a form for --ubrn) are read through the
 * XPath field maps of mappings/form-maps.
 *
 * Exit status: 0 when every file was stored (or already was), 65 when any
 * was rejected, 66 when a file could not be read, 69 when the database is
 * unavailable, 78 when the mappings (rule sets, form maps) do not load, in
 * which case the referrals stay in state "new" for the daemon to triage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/pds_store.h"
#include "ras/limits.h"
#include "ras/migrate.h"
#include "ras/store.h"
#include "ras/intake.h"
#include "ras/triage.h"
#include "ras/xmlform.h"

#define INGEST_BATCH 500

int
ras_ctl_migrate(struct ras_ctl *ctl, int argc, char **argv)
{
	struct ras_db *db;
	int from = 0, to = 0, rc, err;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: rasctl migrate\n");
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_migrate_apply(db, &from, &to)) < 0) {
		ras_ctl_fail(ctl, "cannot migrate");
		return err == RAS_ECONFLICT ? CTL_CONFIG : ras_ctl_exit_for(err);
	}
	if (from == to)
		printf("schema is up to date (version %d)\n", to);
	else
		printf("schema migrated from version %d to %d\n", from, to);
	return CTL_OK;
}

struct file_in {
	const char *name;
	struct ras_buf data;
	uint64_t size;
	char sha[RAS_SHA256_HEX_LEN];
	int read_err;              /* 0, or an exit code */
	char read_msg[256];
};

/* Read a file keeping at most RAS_PAYLOAD_KEEP_MAX bytes but hashing and
 * counting all of it, so an oversized payload is still kept and known. */
static void
read_input(struct file_in *f)
{
	int fd = STDIN_FILENO;

	if (strcmp(f->name, "-") != 0) {
		struct stat st;

		fd = open(f->name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			f->read_err = CTL_NOINPUT;
			snprintf(f->read_msg, sizeof(f->read_msg), "cannot open: %s", strerror(errno));
			ras_buf_init(&f->data, 0);
			return;
		}
		if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
			f->read_err = CTL_NOINPUT;
			snprintf(f->read_msg, sizeof(f->read_msg), "not a regular file");
			ras_buf_init(&f->data, 0);
			close(fd);
			return;
		}
	}
	if (ras_store_read_payload(fd, &f->data, &f->size, f->sha) < 0) {
		f->read_err = CTL_IOERR;
		snprintf(f->read_msg, sizeof(f->read_msg), "%s", ras_error_last());
	}
	if (fd != STDIN_FILENO)
		close(fd);
}

/* Triage what the fresh payloads stored (what normalise handed over in h
 * from memory); reports in *out (caller frees). */
static int
triage_fresh(struct ras_db *db, const struct ras_triage *t, const int64_t *fresh, size_t nfresh,
    const struct ras_store_handover *h, struct ras_triage_report **out, size_t *nout)
{
	struct ras_triage_report *all = NULL;
	size_t n = 0;
	int err = 0;

	*out = NULL;
	*nout = 0;
	for (;;) {
		struct ras_triage_report *reps = NULL, *grown;
		size_t got = 0;

		if ((err = ras_triage_pending_handed(db, t, ras_time_now(), 500, fresh, nfresh, h, &reps,
		    &got)) < 0)
			break;
		if (got == 0)
			break;
		grown = realloc(all, (n + got) * sizeof(*all));
		if (grown == NULL) {
			free(reps);
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			break;
		}
		all = grown;
		memcpy(all + n, reps, got * sizeof(*reps));
		n += got;
		free(reps);
		if (got < 500)
			break;
	}
	if (err < 0) {
		free(all);
		return err;
	}
	*out = all;
	*nout = n;
	return 0;
}

/* "; triage: …" for every referral of payload `id`. */
static void
triage_suffix(const struct ras_triage_report *tr, size_t ntr, int64_t id, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ntr && used < size; i++) {
		int w;

		if (tr[i].payload_id != id)
			continue;
		if (tr[i].outcome)
			w = snprintf(buf + used, size - used, "; triage: %s", tr[i].message);
		else
			w = snprintf(buf + used, size - used, "; triage: referral %s %s: %s", tr[i].referral,
			    tr[i].state, tr[i].message);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int
ingest_batch(struct ras_ctl *ctl, struct ras_db *db, const struct ras_xmlform_maps *maps,
    struct file_in *files, size_t n, const char *service, const char *ubrn,
    const struct ras_triage *triage, int *worst)
{
	struct ras_inbox_item *items = calloc(n, sizeof(*items));
	struct ras_inbox_put_result *put = calloc(n, sizeof(*put));
	size_t *map = calloc(n, sizeof(*map));
	int64_t *fresh = calloc(n, sizeof(*fresh));
	struct ras_inbox_item *freshitems = calloc(n, sizeof(*freshitems));
	struct ras_inbox_put_result *freshput = calloc(n, sizeof(*freshput));
	size_t nitems = 0, nfresh = 0;
	struct ras_normalise_report *reports = NULL;
	struct ras_triage_report *treps = NULL;
	struct ras_store_handover *h = NULL;
	size_t nreports = 0, ntreps = 0;
	char suffix[2048];
	int err = 0;

	if (!items || !put || !map || !fresh || !freshitems || !freshput || ras_store_handover_new(&h) < 0) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct file_in *f = &files[i];
		const char *base;

		if (f->read_err) {
			printf("%s: error: %s\n", f->name, f->read_msg);
			if (*worst == 0 || f->read_err > *worst)
				*worst = f->read_err;
			continue;
		}
		base = strrchr(f->name, '/');
		items[nitems] = (struct ras_inbox_item){
			.data = f->data.data ? f->data.data : "",
			.len = f->data.len,
			.full_size = f->size,
			.sha256 = f->sha,
			.source = strcmp(f->name, "-") == 0 ? "stdin" : "file",
			.source_ref = base ? base + 1 : f->name,
			.content_type = NULL,
			.service_hint = service,
			.ubrn_hint = ubrn,
		};
		map[nitems++] = i;
	}
	if (nitems == 0)
		goto done;
	/* Kept, normalised and triaged in one transaction, each step in a
	 * savepoint of its own (ras_db_hold), as the daemon receives: normalise
	 * hands the referrals it created to triage in memory (store.h), which is
	 * exact only while nobody else can change them in between.  A step that
	 * fails in the database leaves what the steps before it did, kept by
	 * the commit, and the daemon's stages take the rest. */
	if ((err = ras_db_hold(db)) < 0)
		goto done;
	if ((err = ras_store_inbox_put(db, items, nitems, put)) < 0) {
		ras_db_hold_abandon(db);
		goto done;
	}
	for (size_t k = 0; k < nitems; k++)
		if (!put[k].duplicate) {
			freshitems[nfresh] = items[k];   /* their bytes: not read back */
			freshput[nfresh] = put[k];       /* their rows: not claimed */
			fresh[nfresh++] = put[k].id;
		}
	if (nfresh)
		err = ras_store_normalise_handed(db, maps, fresh, freshitems, freshput, nfresh, nfresh, h,
		    &reports, &nreports);
	if (err == 0 && nfresh && triage)
		err = triage_fresh(db, triage, fresh, nfresh, h, &treps, &ntreps);
	if (err < 0) {
		/* keep what is kept; the step's error is the one to report (a
		 * commit that fails says why instead) */
		(void)ras_db_hold_commit(db);
		goto done;
	}
	if ((err = ras_db_hold_commit(db)) < 0)
		goto done;
	for (size_t k = 0; k < nitems; k++) {
		const char *name = files[map[k]].name;
		const struct ras_normalise_report *rep = NULL;

		if (put[k].duplicate) {
			char state[32], error[512];

			if (ras_store_inbox_state(db, put[k].id, state, sizeof(state), error, sizeof(error)) < 0) {
				err = RAS_EIO;
				goto done;
			}
			if (strcmp(state, "rejected") == 0) {
				printf("%s: rejected (payload #%lld, received before): %s\n", name,
				    (long long)put[k].id, error);
				*worst = *worst ? *worst : CTL_DATAERR;
			} else {
				printf("%s: duplicate: identical to payload #%lld (%s)\n", name,
				    (long long)put[k].id, state);
			}
			continue;
		}
		for (size_t r = 0; r < nreports; r++)
			if (reports[r].payload_id == put[k].id)
				rep = &reports[r];
		if (rep == NULL) {
			printf("%s: received (payload #%lld): left for the daemon to process\n", name,
			    (long long)put[k].id);
			continue;
		}
		if (strcmp(rep->state, "rejected") == 0) {
			printf("%s: rejected (payload #%lld kept): %s\n", name, (long long)rep->payload_id,
			    rep->message);
			*worst = *worst ? *worst : CTL_DATAERR;
		} else {
			triage_suffix(treps, ntreps, rep->payload_id, suffix, sizeof(suffix));
			printf("%s: %s %s (payload #%lld): %s%s\n", name, rep->state, rep->kind,
			    (long long)rep->payload_id, rep->message, suffix);
			if (strcmp(rep->state, "partial") == 0)
				*worst = *worst ? *worst : CTL_DATAERR;
		}
	}
done:
	if (err < 0)
		ras_ctl_fail(ctl, "cannot ingest");
	ras_store_handover_free(h);
	free(reports);
	free(treps);
	free(items);
	free(put);
	free(map);
	free(fresh);
	free(freshitems);
	free(freshput);
	return err;
}

int
ras_ctl_ingest(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "ubrn", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *ubrn = NULL;
	struct file_in *files = NULL;
	struct ras_triage *triage = NULL;
	struct ras_xmlform_maps *maps = NULL;
	struct ras_config *cfg = NULL;
	struct ras_db *db;
	int c, rc, worst = 0, triage_rc = 0;

	while ((c = getopt_long(argc, argv, "+s:u:", opts, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'u': ubrn = optarg; break;
		default:
			fprintf(stderr, "usage: rasctl ingest [--service ID] [--ubrn UBRN] FILE...\n");
			return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: rasctl ingest [--service ID] [--ubrn UBRN] FILE...\n");
		return CTL_USAGE;
	}
	if (argc - optind > RAS_INGEST_FILES_MAX) {
		fprintf(stderr, "rasctl: at most %d files per call\n", RAS_INGEST_FILES_MAX);
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	/* Triage what is stored; if the rule sets do not load, say so once and
	 * store anyway: the referrals wait in state "new" for the daemon. */
	if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
		return rc;
	if (ras_triage_new(cfg, ras_ctl_mappings(ctl, NULL), &triage) < 0) {
		ras_ctl_fail(ctl, "cannot triage (referrals are stored in state \"new\")");
		triage_rc = CTL_CONFIG;
	}
	/* XML and XHTML referral forms are read through the XPath field maps
	 * (mappings/form-maps), as the daemon and the e-RS client read them. */
	{
		struct ras_buf problems = RAS_BUF_INIT(64 * 1024);
		char dir[4096];

		snprintf(dir, sizeof(dir), "%s/form-maps", ras_ctl_mappings(ctl, NULL));
		if (ras_xmlform_maps_load(dir, &maps, &problems) < 0) {
			if (problems.data)
				fputs(problems.data, stderr);
			fprintf(stderr, "%s: some form maps do not load: XML forms they read are rejected\n",
			    ctl->prog);
			triage_rc = CTL_CONFIG;
		}
		ras_buf_free(&problems);
	}
	files = calloc(INGEST_BATCH, sizeof(*files));
	if (files == NULL) {
		rc = CTL_SOFTWARE;
		goto done;
	}
	for (int i = optind; i < argc; i += INGEST_BATCH) {
		size_t n = (size_t)(argc - i) < INGEST_BATCH ? (size_t)(argc - i) : INGEST_BATCH;
		int err;

		for (size_t k = 0; k < n; k++) {
			memset(&files[k], 0, sizeof(files[k]));
			files[k].name = argv[i + (int)k];
			read_input(&files[k]);
		}
		err = ingest_batch(ctl, db, maps, files, n, service, ubrn, triage, &worst);
		for (size_t k = 0; k < n; k++)
			ras_buf_free(&files[k].data);
		fflush(stdout);
		if (err < 0) {
			rc = err == RAS_EIO ? CTL_UNAVAILABLE : CTL_SOFTWARE;
			goto done;
		}
	}
	rc = worst ? worst : triage_rc;
done:
	free(files);
	ras_xmlform_maps_free(maps);
	ras_triage_free(triage);
	return rc;
}

int
ras_ctl_show(struct ras_ctl *ctl, int argc, char **argv)
{
	struct ras_buf out = RAS_BUF_INIT(0);
	struct ras_db *db;
	json_t *j = NULL;
	int rc, err;

	if (argc != 2) {
		fprintf(stderr, "usage: rasctl show UBRN|ID\n");
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_store_show(db, argv[1], &j)) < 0) {
		ras_ctl_fail(ctl, "cannot show referral");
		return err == RAS_ENOTFOUND ? CTL_DATAERR : ras_ctl_exit_for(err);
	}
	{
		/* the demographics with their source (referral or pds) and PDS version */
		json_t *d = NULL;

		if (ras_pds_store_show(db, argv[1], &d) == 0)
			(void)ras_json_set_new(j, "demographics", d);
	}
	if ((err = ras_json_dump(j, RAS_JSON_PRETTY | RAS_JSON_SORTED, &out)) < 0) {
		json_decref(j);
		return CTL_SOFTWARE;
	}
	json_decref(j);
	printf("%s\n", out.data);
	ras_buf_free(&out);
	return CTL_OK;
}

int
ras_ctl_list(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *state = NULL;
	long limit = 100;
	bool as_json = false;
	struct ras_db *db;
	json_t *arr = NULL, *x;
	size_t i;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "+s:n:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'n': {
			char *end;

			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 100000) {
				fprintf(stderr, "rasctl: --limit must be 1..100000\n");
				return CTL_USAGE;
			}
			break;
		}
		case 'j': as_json = true; break;
		default:
			fprintf(stderr, "usage: rasctl list [--state STATE] [--limit N] [--json]\n");
			return CTL_USAGE;
		}
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_store_list(db, state, (int)limit, &arr)) < 0) {
		ras_ctl_fail(ctl, "cannot list referrals");
		return ras_ctl_exit_for(err);
	}
	if (as_json) {
		struct ras_buf out = RAS_BUF_INIT(0);

		(void)ras_json_dump(arr, RAS_JSON_PRETTY, &out);
		printf("%s\n", out.data ? out.data : "[]");
		ras_buf_free(&out);
	} else {
		printf("%-6s %-44s %3s %-17s %-14s %-13s %-7s %s\n", "ID", "REFERRAL", "VER", "STATE",
		    "SERVICE", "PRIORITY", "PRACTICE", "RECEIVED");
		json_array_foreach(arr, i, x) {
			printf("%-6lld %-44.44s %3lld %-17s %-14s %-13s %-7s %s\n",
			    (long long)json_integer_value(json_object_get(x, "id")),
			    ras_json_str(x, "referral_key"),
			    (long long)json_integer_value(json_object_get(x, "version")),
			    ras_json_str(x, "state"),
			    ras_json_str(x, "service") ? ras_json_str(x, "service") : "-",
			    ras_json_str(x, "priority"),
			    ras_json_str(x, "practice") ? ras_json_str(x, "practice") : "-",
			    ras_json_str(x, "received_at"));
		}
	}
	json_decref(arr);
	return CTL_OK;
}
