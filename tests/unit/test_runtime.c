/*
 * The runtime: everything rasd loads from its configuration and mappings,
 * checked as one (what `rasd --check-config` prints): a good configuration
 * loads, and a broken one is reported problem by problem, every one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/ers.h"
#include "ras/error.h"
#include "ras/outbox.h"
#include "ras/runtime.h"
#include "ras/triage.h"
#include "ras_config.h"

/* Replace the contents of a file of a mappings copy. */
static void
put(const char *dir, const char *rel, const char *text)
{
	char name[4096];

	snprintf(name, sizeof(name), "%s/%s", strrchr(dir, '/') + 1, rel);
	free(ras_test_write_tmp(name, text, strlen(text)));
}

static void
good_configuration_loads(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_runtime *rt = NULL;
	struct ras_config *cfg;
	char text[4096];

	snprintf(text, sizeof(text), "[general]\nmappings = %s/mappings\n[service midnotts]\n"
	    "automation = none\n[triage]\ndefault_service = midnotts\n", RAS_SOURCE_ROOT);
	cfg = ras_test_config(text);
	CU_ASSERT_EQUAL(ras_runtime_check(cfg, &problems), 0);
	CU_ASSERT_PTR_NULL(problems.data && *problems.data ? problems.data : NULL);
	CU_ASSERT_EQUAL_FATAL(ras_runtime_new(cfg, &rt, &problems), 0);
	CU_ASSERT_PTR_NOT_NULL(ras_runtime_triage(rt));
	CU_ASSERT_PTR_NOT_NULL(ras_runtime_outbox(rt));
	CU_ASSERT_PTR_NOT_NULL(ras_runtime_calendar(rt));
	CU_ASSERT_PTR_NOT_NULL(ras_runtime_form_maps(rt));
	CU_ASSERT_PTR_NULL(ras_runtime_ers(rt));            /* no [ers] base_url */
	CU_ASSERT_PTR_EQUAL(ras_runtime_epr(rt).triage, ras_runtime_triage(rt));
	CU_ASSERT_PTR_EQUAL(ras_runtime_epr(rt).outbox, ras_runtime_outbox(rt));
	CU_ASSERT_TRUE(ras_outbox_has_document(ras_runtime_outbox(rt), "midnotts", "gp-2ww-notice"));
	CU_ASSERT_FALSE(ras_outbox_has_document(ras_runtime_outbox(rt), "dorset-2019", "gp-2ww-notice"));
	CU_ASSERT_STRING_EQUAL(ras_runtime_mappings(rt), RAS_SOURCE_ROOT "/mappings");
	ras_runtime_free(rt);
	ras_config_free(cfg);
	ras_buf_free(&problems);
}

static void
every_problem_is_reported(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_runtime *rt = NULL;
	struct ras_config *cfg;
	char *dir = ras_test_mappings_copy("broken-mappings"), text[8192];
	int n;

	/* Five broken files of five kinds, and three configuration mistakes. */
	put(dir, "services/dorset-2013.json", "{\"service\": \"dorset-2013\", \"rules\": [");
	put(dir, "practices/bassetlaw-2022.json", "[]");
	put(dir, "documents/dorset-2019.json", "{\"service\": \"dorset-2019\", \"documents\": {\"fax\": {}}}");
	put(dir, "form-maps/broken.json", "{\"name\": \"broken\"}");
	put(dir, "forms/community-pain-referral-v1.json", "{\"resourceType\": \"Patient\"}");
	snprintf(text, sizeof(text), "[general]\nmappings = %s\n[service midnotts]\nautomation = sometimes\n"
	    "[service atlantis]\nautomation = all\n[routing]\ntable = /nonexistent/routes.json\n", dir);
	cfg = ras_test_config(text);
	n = ras_runtime_check(cfg, &problems);
	CU_ASSERT_PTR_NOT_NULL_FATAL(problems.data);
	CU_ASSERT_TRUE(n >= 8);
	CU_ASSERT_EQUAL((size_t)n, ras_test_count(problems.data, "\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "services/dorset-2013.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "practices/bassetlaw-2022.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "document profile of service \"dorset-2019\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "broken.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "forms/community-pain-referral-v1.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "[service midnotts] automation must be"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "[service atlantis]: no rule set"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "/nonexistent/routes.json"));
	/* and nothing is handed out */
	CU_ASSERT_EQUAL(ras_runtime_new(cfg, &rt, &problems), RAS_EINVALID);
	CU_ASSERT_PTR_NULL(rt);
	ras_config_free(cfg);
	ras_buf_free(&problems);

	/* Files fixed, the rule sets with the configuration: a rule set of a
	 * known service, but an e-RS service id claimed twice. */
	free(dir);
	dir = ras_test_mappings_copy("broken-mappings");
	snprintf(text, sizeof(text), "[general]\nmappings = %s\n[service midnotts]\ners_service_ids = 11012\n"
	    "[service dorset-2019]\ners_service_ids = 11012\n", dir);
	cfg = ras_test_config(text);
	CU_ASSERT_EQUAL(ras_runtime_check(cfg, &problems), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "11012 is listed for both"));
	ras_config_free(cfg);
	ras_buf_free(&problems);
	free(dir);
}

/* The outbox and the MESH inbox share one MESH client, made once from
 * [mesh]: a bad [mesh] is one problem line, not one per user of it. */
static void
a_bad_mesh_section_is_one_problem(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_config *cfg;
	char text[4096];

	snprintf(text, sizeof(text), "[general]\nmappings = %s/mappings\n[mesh]\nenabled = yes\n"
	    "mailbox = X26ABC1\n", RAS_SOURCE_ROOT);
	cfg = ras_test_config(text);
	CU_ASSERT_EQUAL(ras_runtime_check(cfg, &problems), 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(problems.data);
	CU_ASSERT_EQUAL(ras_test_count(problems.data, "\n"), 1);
	CU_ASSERT_EQUAL(ras_test_count(problems.data, "MESH needs url"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "MESH configuration ([mesh])"));
	ras_config_free(cfg);
	ras_buf_free(&problems);
}

static void
ers_gets_the_triage_and_its_calendar(void)
{
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_runtime *rt = NULL;
	struct ras_config *cfg;
	struct ras_date good_friday = { 2026, 4, 3 }, thursday = { 2026, 4, 2 };
	char text[4096];

	snprintf(text, sizeof(text), "[general]\nmappings = %s/mappings\n[ers]\n"
	    "base_url = http://127.0.0.1:9/referrals/FHIR\nmode = sandbox\nservice_ids = 11012=midnotts\n",
	    RAS_SOURCE_ROOT);
	cfg = ras_test_config(text);
	CU_ASSERT_EQUAL_FATAL(ras_runtime_new(cfg, &rt, &problems), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ras_runtime_ers(rt));
	CU_ASSERT_PTR_EQUAL(ras_ers_triage(ras_runtime_ers(rt)), ras_runtime_triage(rt));
	CU_ASSERT_FALSE(ras_ers_working_day(ras_runtime_ers(rt), &good_friday));
	CU_ASSERT_TRUE(ras_ers_working_day(ras_runtime_ers(rt), &thursday));
	ras_runtime_free(rt);
	ras_config_free(cfg);
	ras_buf_free(&problems);
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "a good configuration loads", good_configuration_loads },
		{ "every problem is reported, file by file", every_problem_is_reported },
		{ "the e-RS client gets the triage and its calendar", ers_gets_the_triage_and_its_calendar },
		{ "a bad [mesh] is one problem (one shared MESH client)", a_bad_mesh_section_is_one_problem },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "runtime", cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
