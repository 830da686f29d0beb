/*
 * ctl_docs: `rasctl render` (one document, no database).
 *
 *   rasctl render --kind KIND --service ID --referral FILE [--episode FILE]
 *                 [--decision FILE] [--at DATETIME] [--version N]
 *                 [--format json|xml|html]
 *
 * The referral is an R4 referral Bundle (as `rasctl ingest` takes); the
 * episode an episode-summary QuestionnaireResponse.  A triage letter or 2WW
 * notice is built from the decision the rules engine makes for the
 * referral (render_decide(): as `rasctl triage` would, --at being the
 * receipt time); --decision FILE (the JSON `rasctl triage` prints, say a
 * clinician's) replaces it.  Exit 0 printed; 65 refused (missing items are
 * listed on stderr); 66 a file unreadable; 64 bad usage; 78 the mappings
 * do not load.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/decision.h"
#include "ras/docprofile.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/mesh_inbox.h"
#include "ras/outbox.h"
#include "ras/pdf.h"
#include "ras/itk3.h"
#include "ras/rules.h"
#include "ras/triage.h"
#include "ras/xml.h"

static const char render_usage[] =
	"usage: rasctl render --kind triage-outcome|gp-2ww-notice|notification-letter|"
	"discharge-summary|patient-copy\n"
	"                     --service ID --referral FILE [--episode FILE] [--decision FILE]\n"
	"                     [--at DATETIME] [--version N]\n"
	"                     [--format json|xml|html|pdf|gp-connect-send-document|toc-outpatient-letter]\n";

static int
read_file(struct ras_ctl *ctl, const char *path, size_t max, struct ras_buf *out)
{
	int err;

	ras_buf_init(out, max);
	if ((err = ras_buf_read_file(out, path)) < 0) {
		ras_ctl_fail(ctl, "cannot read input");
		return err == RAS_ETOOBIG ? CTL_DATAERR : CTL_NOINPUT;
	}
	return 0;
}

/*
 * The decision for a triage letter when none was given: the rules engine
 * decides the referral as triage would (the service's rule set with the
 * configuration applied, received at `at`, clocks on the triage calendar).
 * Returns 0, or an exit code (the problem printed).  A triage letter for a
 * recommendation (not final) is rendered too, with a note on stderr: it is
 * the letter a clinician's confirmation would send (the 2WW notice goes
 * whether or not the decision is final).
 */
static int
render_decide(struct ras_ctl *ctl, struct ras_arena *a, const char *mappings,
    const struct ras_referral *r, const char *service, int64_t at, enum ras_doc_kind kind,
    struct ras_decision *out)
{
	const struct ras_ruleset *rs;
	struct ras_triage *t;
	int rc;

	if ((rc = ras_ctl_triage_load(ctl, mappings, &t)) != 0)
		return rc;
	rs = ras_mappings_ruleset(ras_triage_mappings(t), service);
	if (rs == NULL) {
		fprintf(stderr, "%s: cannot render: service \"%s\" has no rule set to decide with "
		    "(or give --decision FILE)\n", ctl->prog, service);
		return CTL_DATAERR;
	}
	if (ras_rules_decide(a, rs, r, at, ras_mappings_calendar(ras_triage_mappings(t)), at, out) < 0) {
		ras_ctl_fail(ctl, "cannot render: cannot decide");
		return CTL_DATAERR;
	}
	if (!out->final && kind == RAS_DOC_TRIAGE_OUTCOME)
		fprintf(stderr, "%s: note: the rules' decision (%s) is a recommendation awaiting a clinician;"
		    " this is the letter a clinician's confirmation would send\n", ctl->prog,
		    ras_decision_outcome_name(out->outcome));
	return 0;
}

int
ras_ctl_render(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "service", required_argument, NULL, 's' },
		{ "referral", required_argument, NULL, 'r' },
		{ "episode", required_argument, NULL, 'e' },
		{ "decision", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 't' },
		{ "version", required_argument, NULL, 'v' },
		{ "format", required_argument, NULL, 'f' },
		{ "mappings", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *kind_s = NULL, *service = NULL, *referral_path = NULL, *episode_path = NULL;
	const char *decision_path = NULL, *at_s = NULL, *format = "json", *mappings_opt = NULL;
	struct ras_arena *a = ras_arena_new();
	struct ras_buf rb = { 0 }, eb = { 0 }, db = { 0 }, out = RAS_BUF_INIT(0);
	struct ras_docprofile prof;
	struct ras_intake in, ein;
	struct ras_episode ep;
	struct ras_decision dec;
	struct ras_doc_input di = { 0 };
	struct ras_doc_missing missing;
	json_t *bundle = NULL;
	long version = 1;
	int c, rc = CTL_OK, err;

	if (a == NULL)
		return CTL_SOFTWARE;
	while ((c = getopt_long(argc, argv, "+k:s:r:e:d:t:v:f:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kind_s = optarg; break;
		case 's': service = optarg; break;
		case 'r': referral_path = optarg; break;
		case 'e': episode_path = optarg; break;
		case 'd': decision_path = optarg; break;
		case 't': at_s = optarg; break;
		case 'f': format = optarg; break;
		case 'm': mappings_opt = optarg; break;
		case 'v': {
			char *end;

			version = strtol(optarg, &end, 10);
			if (*end || version < 1 || version > 1000000) {
				fprintf(stderr, "rasctl: --version must be 1..1000000\n");
				rc = CTL_USAGE;
				goto done;
			}
			break;
		}
		default:
			fputs(render_usage, stderr);
			rc = CTL_USAGE;
			goto done;
		}
	}
	di.kind = ras_document_kind_parse(kind_s);
	if (optind != argc || di.kind == 0 || service == NULL || referral_path == NULL ||
	    (strcmp(format, "json") && strcmp(format, "xml") && strcmp(format, "html") &&
	    strcmp(format, "pdf") && ras_itk3_kind_parse(format) == RAS_ITK3_NONE)) {
		fputs(render_usage, stderr);
		rc = CTL_USAGE;
		goto done;
	}
	di.at = ras_time_now();
	if (at_s && ras_time_parse(at_s, true, &di.at) < 0) {
		fprintf(stderr, "rasctl: --at must be an ISO date or date-time\n");
		rc = CTL_USAGE;
		goto done;
	}
	if ((err = ras_docprofile_load(a, ras_ctl_mappings(ctl, mappings_opt), service, &prof)) < 0) {
		ras_ctl_fail(ctl, "cannot render");
		rc = err == RAS_ENOTFOUND ? CTL_DATAERR : CTL_CONFIG;
		goto done;
	}
	if ((rc = read_file(ctl, referral_path, RAS_PAYLOAD_MAX, &rb)) != 0)
		goto done;
	if ((err = ras_intake_parse(a, NULL, rb.data ? rb.data : "", rb.len, &in)) < 0 ||
	    in.n_referrals != 1 || in.kind == RAS_PAYLOAD_ERS_WORKLIST) {
		if (err == 0)
			ras_error_code(RAS_EINVALID, "%s is not one referral", referral_path);
		ras_ctl_fail(ctl, "cannot render");
		rc = CTL_DATAERR;
		goto done;
	}
	di.referral = &in.referrals[0];
	di.profile = &prof;
	di.version = (int)version;
	if (episode_path) {
		if ((rc = read_file(ctl, episode_path, RAS_PAYLOAD_MAX, &eb)) != 0)
			goto done;
		if ((err = ras_intake_parse(a, NULL, eb.data ? eb.data : "", eb.len, &ein)) < 0 ||
		    ein.kind != RAS_PAYLOAD_FORM || (err = ras_episode_from_form(a, ein.form, &ep)) < 0) {
			if (err == 0)
				ras_error_code(RAS_EINVALID, "%s is not a QuestionnaireResponse", episode_path);
			ras_ctl_fail(ctl, "cannot render: episode summary");
			rc = CTL_DATAERR;
			goto done;
		}
		di.episode = &ep;
	}
	if (decision_path) {
		json_t *dj;

		if ((rc = read_file(ctl, decision_path, RAS_PAYLOAD_MAX, &db)) != 0)
			goto done;
		if ((err = ras_json_parse_arena(a, db.data ? db.data : "", db.len, RAS_PAYLOAD_MAX, &dj)) < 0 ||
		    (err = ras_decision_from_json(a, dj, &dec)) < 0) {
			ras_ctl_fail(ctl, "cannot render: decision");
			rc = CTL_DATAERR;
			goto done;
		}
		di.decision = &dec;
	} else if (di.kind == RAS_DOC_TRIAGE_OUTCOME || di.kind == RAS_DOC_GP_2WW_NOTICE) {
		if ((rc = render_decide(ctl, a, mappings_opt, di.referral, service, di.at, di.kind,
		    &dec)) != 0)
			goto done;
		di.decision = &dec;
	}
	if (di.decision && di.decision->outcome == RAS_OUTCOME_ACCEPT && di.decision->decided_at) {
		di.has_accepted_date = true;
		ras_time_uk_date(di.decision->decided_at, &di.accepted_date, NULL);
	}
	if ((err = ras_document_build(a, &di, &bundle, &missing)) < 0) {
		ras_ctl_fail(ctl, ras_arena_printf(a, "cannot render %s for %s", kind_s, service));
		rc = err == RAS_EINVALID || err == RAS_ETOOBIG ? CTL_DATAERR : CTL_SOFTWARE;
		goto done;
	}
	if (ras_itk3_kind_parse(format) != RAS_ITK3_NONE) {
		/* the ITK3 message as a GP practice would get it by GPPROVIDER
		 * routing; the message id and sender reference are derived from
		 * the document, the source mailbox is a placeholder */
		struct ras_buf pdf = RAS_BUF_INIT(0);
		struct ras_itk3_msg m = { .kind = ras_itk3_kind_parse(format), .at = di.at,
			.sender_ods = prof.provider.ods, .sender_name = prof.provider.name,
			.source_mailbox = "RASCTL-RENDER" };
		char mid[37];

		ras_document_uuid(mid, "rasctl:itk3|%s", ras_document_identifier(bundle));
		m.message_id = mid;
		m.sender_reference = ras_document_identifier(bundle);
		if ((err = ras_pdf_document(a, bundle, &prof, NULL, &pdf)) == 0) {
			m.pdf = pdf.data;
			m.pdf_len = pdf.len;
			err = ras_itk3_message(a, bundle, &m, &out);
		}
		ras_buf_free(&pdf);
	} else if (strcmp(format, "pdf") == 0) {
		/* the letter as the GP practice gets it (the patient's copy: as the patient does) */
		const struct ras_patient *pt = &di.referral->patient;
		struct ras_pdf_opts po = { .patient_copy = di.kind == RAS_DOC_PATIENT_COPY };

		if (!po.patient_copy && (pt->practice_name || pt->practice_ods))
			po.recipient = ras_arena_printf(a, "%s%s%s%s", pt->practice_name ? pt->practice_name :
			    "GP practice", pt->practice_ods ? " (" : "", pt->practice_ods ? pt->practice_ods : "",
			    pt->practice_ods ? ")" : "");
		err = ras_pdf_document(a, bundle, &prof, &po, &out);
	} else if (strcmp(format, "html") == 0 || di.kind == RAS_DOC_PATIENT_COPY)
		err = ras_document_html(a, bundle, &prof, di.kind == RAS_DOC_PATIENT_COPY, &out);
	else if (strcmp(format, "xml") == 0)
		err = ras_xml_fhir_from_json(bundle, &out);
	else if ((err = ras_json_dump(bundle, RAS_JSON_PRETTY, &out)) == 0)
		err = ras_buf_putc(&out, '\n');
	if (err < 0) {
		ras_ctl_fail(ctl, "cannot serialise the document");
		rc = CTL_SOFTWARE;
		goto done;
	}
	fwrite(out.data, 1, out.len, stdout);
done:
	ras_buf_free(&rb);
	ras_buf_free(&eb);
	ras_buf_free(&db);
	ras_buf_free(&out);
	ras_arena_free(a);
	return rc;
}


/*
 * rasctl outbox list [--state S] [--limit N] [--json]
 * rasctl outbox dead [--limit N] [--json]
 * rasctl outbox retry ID...
 * rasctl outbox run [--at DATETIME]   one pass: render, deliver, poll the MESH inbox
 */
static void
print_rows(json_t *arr, bool as_json)
{
	json_t *x;
	size_t i;

	if (as_json) {
		struct ras_buf out = RAS_BUF_INIT(0);

		(void)ras_json_dump(arr, RAS_JSON_PRETTY, &out);
		printf("%s\n", out.data ? out.data : "[]");
		ras_buf_free(&out);
		return;
	}
	printf("%-6s %-22s %-20s %-3s %-8s %-8s %-9s %-3s %-24s %s\n", "ID", "REFERRAL", "KIND", "VER",
	    "TO", "ODS", "STATE", "TRY", "ACK (INF/BUS)", "ROUTE | LAST ERROR");
	json_array_foreach(arr, i, x) {
		const char *err = ras_json_str(x, "last_error");
		const char *addr = ras_json_str(x, "address"), *tr = ras_json_str(x, "transport");
		const char *ack = ras_json_str(x, "ack");
		char acks[64];

		/* ITK3 letters: awaiting, acknowledged, negative or missing, with the codes */
		if (ack)
			snprintf(acks, sizeof(acks), "%s %s/%s", ack, ras_json_str(x, "inf_ack") ?
			    ras_json_str(x, "inf_ack") : "-", ras_json_str(x, "bus_ack") ?
			    ras_json_str(x, "bus_ack") : "-");
		else
			snprintf(acks, sizeof(acks), "-");
		printf("%-6lld %-22.22s %-20s %-3lld %-8s %-8s %-9s %-3lld %-24s %s%s%s%s%s\n",
		    (long long)json_integer_value(json_object_get(x, "id")), ras_json_str(x, "referral_key"),
		    ras_json_str(x, "kind"), (long long)json_integer_value(json_object_get(x, "version")),
		    ras_json_str(x, "recipient"), ras_json_str(x, "ods") ? ras_json_str(x, "ods") : "-",
		    ras_json_str(x, "state"), (long long)json_integer_value(json_object_get(x, "attempts")),
		    acks, tr ? tr : "-", tr ? ":" : "", addr ? addr : "", err ? " | " : "", err ? err : "");
	}
}

static int
outbox_new(struct ras_ctl *ctl, const char *mappings, struct ras_outbox **o)
{
	struct ras_config *cfg;
	int rc;

	if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
		return rc;
	if (ras_outbox_new(cfg, ras_ctl_mappings(ctl, mappings), o) < 0) {
		ras_ctl_fail(ctl, "cannot set up delivery");
		return CTL_CONFIG;
	}
	return 0;
}

static void
print_stats(const char *stage, const struct ras_outbox_stats *s)
{
	printf("%s: claimed %d, rendered %d, delivered %d, retry %d, unknown %d, dead %d, cancelled %d\n",
	    stage, s->claimed, s->rendered, s->delivered, s->retried, s->unknown, s->dead, s->cancelled);
}

int
ras_ctl_outbox(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "at", required_argument, NULL, 't' },
		{ "mappings", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] = "usage: rasctl outbox list [--state S] [--limit N] [--json]\n"
	    "       rasctl outbox dead [--limit N] [--json]\n"
	    "       rasctl outbox retry ID...\n"
	    "       rasctl outbox run [--at DATETIME]\n";
	const char *sub, *state = NULL, *mappings = NULL;
	long limit = 100;
	bool as_json = false;
	int64_t now = ras_time_now();
	struct ras_db *db;
	int c, rc, err;

	if (argc < 2) {
		fputs(usage, stderr);
		return CTL_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+s:n:jt:m:", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'j': as_json = true; break;
		case 'm': mappings = optarg; break;
		case 't':
			if (ras_time_parse(optarg, true, &now) < 0) {
				fprintf(stderr, "rasctl: --at must be an ISO date or date-time\n");
				return CTL_USAGE;
			}
			break;
		case 'n': {
			char *end;

			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 100000) {
				fprintf(stderr, "rasctl: --limit must be 1..100000\n");
				return CTL_USAGE;
			}
			break;
		}
		default:
			fputs(usage, stderr);
			return CTL_USAGE;
		}
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if (strcmp(sub, "list") == 0 || strcmp(sub, "dead") == 0) {
		json_t *arr = NULL;

		if (optind != argc) {
			fputs(usage, stderr);
			return CTL_USAGE;
		}
		if ((err = ras_outbox_list(db, strcmp(sub, "dead") == 0 ? "dead" : state, (int)limit,
		    &arr)) < 0) {
			ras_ctl_fail(ctl, "cannot list the outbox");
			return ras_ctl_exit_for(err);
		}
		print_rows(arr, as_json);
		json_decref(arr);
		return CTL_OK;
	}
	if (strcmp(sub, "retry") == 0) {
		int worst = CTL_OK;

		if (optind >= argc) {
			fputs(usage, stderr);
			return CTL_USAGE;
		}
		for (int i = optind; i < argc; i++) {
			char *end;
			long long id = strtoll(argv[i], &end, 10);

			if (*end || id < 1) {
				fprintf(stderr, "rasctl: \"%s\" is not an outbox id\n", argv[i]);
				worst = CTL_USAGE;
				continue;
			}
			if ((err = ras_outbox_retry(db, id, now)) < 0) {
				ras_ctl_fail(ctl, "cannot retry");
				worst = err == RAS_ENOTFOUND || err == RAS_ECONFLICT ? CTL_DATAERR :
				    ras_ctl_exit_for(err);
				continue;
			}
			printf("outbox %lld requeued\n", id);
		}
		return worst;
	}
	if (strcmp(sub, "run") == 0) {
		struct ras_outbox *o = NULL;
		struct ras_mesh_inbox *in = NULL;
		struct ras_outbox_stats s1 = { 0 }, s2 = { 0 };
		struct ras_mesh_inbox_stats s3 = { 0 };
		struct ras_outbox_ack_stats s4 = { 0 };
		struct ras_config *cfg;
		struct ras_mesh *mesh;
		struct ras_http *mesh_http;

		if ((rc = outbox_new(ctl, mappings, &o)) != 0)
			return rc;
		/* the outbox's MESH client polls too: one handshake for the pass */
		ras_outbox_mesh_client(o, &mesh, &mesh_http);
		if ((rc = ras_ctl_config(ctl, &cfg)) != 0 || ras_mesh_inbox_new_shared(cfg, mesh, mesh_http, &in) < 0) {
			if (rc == 0) {
				ras_ctl_fail(ctl, "cannot set up the MESH inbox");
				rc = CTL_CONFIG;
			}
			ras_outbox_free(o);
			return rc;
		}
		if ((err = ras_outbox_render_pending(o, db, now, &s1)) < 0 ||
		    (err = ras_outbox_deliver_pending(o, db, now, &s2)) < 0 ||
		    (err = ras_mesh_inbox_poll(in, db, now, &s3)) < 0 ||
		    (err = ras_outbox_acks(o, db, now, &s4)) < 0) {
			ras_ctl_fail(ctl, "outbox pass failed");
			ras_mesh_inbox_free(in);
			ras_outbox_free(o);
			return ras_ctl_exit_for(err);
		}
		print_stats("render", &s1);
		print_stats("deliver", &s2);
		printf("mesh-poll: reports %d, received %d, acknowledged %d, dead %d\n", s3.reports,
		    s3.received, s3.acknowledged, s3.dead);
		printf("itk3-acks: responses %d, matched %d, negative %d, unmatched %d, missing %d\n",
		    s4.responses, s4.matched, s4.negative, s4.unmatched, s4.missing);
		ras_mesh_inbox_free(in);
		ras_outbox_free(o);
		return CTL_OK;
	}
	fputs(usage, stderr);
	return CTL_USAGE;
}

/*
 * rasctl episode --kind contact|discharge [--at DATETIME] UBRN|ID FILE
 *
 * Stores an episode summary from the EPR for a referral and enqueues its
 * document (the daemon's EPR route calls ras_outbox_episode_put too).
 */
int
ras_ctl_episode(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "at", required_argument, NULL, 't' },
		{ "mappings", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] =
	    "usage: rasctl episode --kind contact|discharge [--at DATETIME] UBRN|ID FILE\n";
	const char *kind = NULL, *mappings = NULL;
	int64_t now = ras_time_now(), id = 0;
	struct ras_buf b = { 0 };
	struct ras_outbox *o = NULL;
	struct ras_db *db;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "+k:t:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kind = optarg; break;
		case 'm': mappings = optarg; break;
		case 't':
			if (ras_time_parse(optarg, true, &now) < 0) {
				fprintf(stderr, "rasctl: --at must be an ISO date or date-time\n");
				return CTL_USAGE;
			}
			break;
		default:
			fputs(usage, stderr);
			return CTL_USAGE;
		}
	}
	if (kind == NULL || argc - optind != 2) {
		fputs(usage, stderr);
		return CTL_USAGE;
	}
	if ((rc = read_file(ctl, argv[optind + 1], RAS_PAYLOAD_MAX, &b)) != 0)
		return rc;
	if ((rc = ras_ctl_db(ctl, &db)) != 0 || (rc = outbox_new(ctl, mappings, &o)) != 0)
		goto done;
	if ((err = ras_outbox_episode_put(o, db, argv[optind], kind, b.data ? b.data : "", b.len,
	    "rasctl", now, &id)) < 0) {
		ras_ctl_fail(ctl, "cannot store the episode summary");
		rc = err == RAS_EINVALID || err == RAS_ENOTFOUND || err == RAS_ETOOBIG ? CTL_DATAERR :
		    ras_ctl_exit_for(err);
		goto done;
	}
	printf("episode %lld stored for %s; its %s is queued\n", (long long)id, argv[optind],
	    strcmp(kind, "contact") == 0 ? "notification letter" : "discharge summary");
done:
	ras_outbox_free(o);
	ras_buf_free(&b);
	return rc;
}
