/*
 * ctl_docs: `rasctl render` (one document, no database).
 *
 *   rasctl render --kind KIND --service ID --referral FILE [--episode FILE]
 *                 [--decision FILE] [--at DATETIME] [--version N]
 *                 [--format json|xml|html]
 *
 * The referral is an R4 referral Bundle (as `rasctl ingest` takes); the
 * episode an episode-summary QuestionnaireResponse; the decision the JSON
 * `rasctl triage` prints.  A triage letter without --decision asks the
 * rules engine (render_decide()).  Exit 0 printed; 65 refused (missing
 * items are listed on stderr); 66 a file unreadable; 64 bad usage.
 */
#include <getopt.h>
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
#include "ras/xml.h"

static const char render_usage[] =
	"usage: rasctl render --kind triage-outcome|gp-2ww-notice|notification-letter|"
	"discharge-summary|patient-copy\n"
	"                     --service ID --referral FILE [--episode FILE] [--decision FILE]\n"
	"                     [--at DATETIME] [--version N] [--format json|xml|html]\n";

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
 * The decision for a triage letter when none was given: the rules engine's
 * decide(referral, service, at).  The engine lives on the triage branch;
 * until it is merged this build has none and says so.
 */
static int
render_decide(struct ras_arena *a, const char *mappings, const struct ras_referral *r,
    const char *service, int64_t at, struct ras_decision *out)
{
	(void)a;
	(void)mappings;
	(void)r;
	(void)service;
	(void)at;
	(void)out;
	return ras_error_code(RAS_ENOTFOUND,
	    "this build has no rules engine: pass the decision with --decision FILE");
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
	di.kind = ras_doc_kind_parse(kind_s);
	if (optind != argc || di.kind == 0 || service == NULL || referral_path == NULL ||
	    (strcmp(format, "json") && strcmp(format, "xml") && strcmp(format, "html"))) {
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
	if ((err = ras_intake_parse(a, rb.data ? rb.data : "", rb.len, &in)) < 0 ||
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
		if ((err = ras_intake_parse(a, eb.data ? eb.data : "", eb.len, &ein)) < 0 ||
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
		if ((err = render_decide(a, ras_ctl_mappings(ctl, mappings_opt), di.referral, service,
		    di.at, &dec)) < 0) {
			ras_ctl_fail(ctl, "cannot render");
			rc = CTL_DATAERR;
			goto done;
		}
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
	if (strcmp(format, "html") == 0 || di.kind == RAS_DOC_PATIENT_COPY)
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
