/*
 * limits: every ceiling on data that comes from outside rasd, in one place,
 * each with the reason for its value.  Parsers and clients check against
 * these and fail with RAS_ETOOBIG and a message naming the limit.
 */
#ifndef RAS_LIMITS_H
#define RAS_LIMITS_H

/* A referral Bundle or e-RS resource: real ones are tens of kB; forms with
 * inline base64 attachments can reach a few MB. */
#define RAS_PAYLOAD_MAX          (8u * 1024u * 1024u)

/* A payload over RAS_PAYLOAD_MAX is still kept (rejected) for inspection,
 * up to this many bytes; beyond it only the first RAS_PAYLOAD_KEEP_MAX bytes
 * are kept and the row says it was truncated. */
#define RAS_PAYLOAD_KEEP_MAX     (32u * 1024u * 1024u)

/* e-RS worklists are not paginated and APIM refuses responses over 10 MB
 * (reference/ers/NOTES.md §9); allow a little headroom over that. */
#define RAS_WORKLIST_MAX         (11u * 1024u * 1024u)

/* One stored attachment (A042/A006 download, A007 PDF). A006 caps at 5 MB;
 * A042 has no documented cap, so rasd keeps larger files out of the DB. */
#define RAS_ATTACHMENT_MAX       (20u * 1024u * 1024u)

/* JSON nesting: FHIR resources are rarely deeper than 15; deep nesting is
 * only ever an attack on recursive code. */
#define RAS_JSON_DEPTH_MAX       64

/* Entries in one Bundle: a referral has a handful of resources. */
#define RAS_BUNDLE_ENTRIES_MAX   1000

/* Items in one e-RS worklist (A008): a busy RAS has hundreds. */
#define RAS_WORKLIST_ITEMS_MAX   10000

/* Answers in one QuestionnaireResponse (after flattening groups). */
#define RAS_FORM_ANSWERS_MAX     2000

/* QuestionnaireResponses one referral carries (its form, questionnaires
 * such as a PHQ-9 attached beside it): a handful. */
#define RAS_FORMS_PER_REFERRAL_MAX 32

/* One string value kept from a payload (free text answers, names). */
#define RAS_STRING_MAX           (64u * 1024u)

/* Identifiers (UBRN, NHS number, ODS code, SDS id, ids): generous. */
#define RAS_ID_MAX               128

/* Files named on one rasctl ingest call. */
#define RAS_INGEST_FILES_MAX     100000

/* An HTTP response body held in memory when no other limit applies. */
#define RAS_HTTP_BODY_MAX        (16u * 1024u * 1024u)

/* An OAuth2 token response (a small JSON object; APIM's is ~200 bytes). */
#define RAS_TOKEN_RESPONSE_MAX   (64u * 1024u)

/* One HTTP response header line. */
#define RAS_HTTP_HEADER_MAX      8192

/* A PostgreSQL notice's message as logged (lib/adapters/db.c). */
#define RAS_DB_NOTICE_MAX        1024
#define RAS_DB_PIPELINE_IDLE_MAX 8     /* empty reads before a stuck pipeline restarts its session */

/* A line of the config file. */
#define RAS_CONFIG_LINE_MAX      4096

/* A secret read from a file (keys, passwords, tokens). */
#define RAS_SECRET_MAX           (64u * 1024u)

/* A mappings file (rule set, form, practice list, calendar). */
#define RAS_MAPPING_FILE_MAX     (4u * 1024u * 1024u)

/* Spool files read into memory for one pass (one inbox transaction): a
 * pass stops taking files past this many bytes, so a directory of large
 * files is worked through a few at a time instead of all at once. */
#define RAS_SPOOL_PASS_BYTES     (64u * 1024u * 1024u)

/* The least [spool] settle: a spool file the scan finds must have been
 * left alone (not modified) this long before it is taken, unless it was
 * closed after writing or renamed in.  0 would take a file another
 * process is still writing, half-written. */
#define RAS_SPOOL_SETTLE_MIN_S   1

/* Intake POSTs gathered into one commit ([http] commit_delay): a group is
 * committed at once when it reaches this many requests or body bytes. */
#define RAS_HTTP_GROUP_MAX       64
#define RAS_HTTP_GROUP_BYTES     (16u * 1024u * 1024u)
/* Groups committed side by side ([http] commit_workers): one thread and
 * one database connection each. */
#define RAS_WORKERS_MAX          8

/* The triage stage decides and writes a claimed batch a chunk at a time:
 * at most this many bytes of stored referral documents (pg_column_size,
 * i.e. as compressed on disk; at least one referral), so that a batch's
 * working memory has a ceiling whatever [database] batch_size is. */
#define RAS_TRIAGE_CHUNK_BYTES   (256u * 1024u)
/* ... and at most this many referrals, so that a chunk's reports and plans
 * have a ceiling too, however small the documents. */
#define RAS_TRIAGE_CHUNK_ROWS    256u

/* The inbox keeps a batch one statement per chunk: at most this many bytes
 * of payloads (at least one payload), so the arrays sent hold a bounded
 * copy of the batch, not all of a spool pass or HTTP group at once.  The
 * payloads go as hex text, and libpq's output buffer grows to hold the
 * statement: at 1 MiB it was 2 MiB of the spool path's peak (massif). */
#define RAS_INBOX_PUT_CHUNK_BYTES (256u * 1024u)

/* The normalise stage reads, plans and writes a claimed batch a chunk at a
 * time: at most this many bytes of payloads (at least one payload).  A
 * chunk's parsed trees take ~9 times its bytes (jansson); at 512 KiB they
 * were ~4 MiB of the spool path's peak. */
#define RAS_NORMALISE_CHUNK_BYTES (256u * 1024u)
/* ... and at most this many payloads (a chunk's reports and plans). */
#define RAS_NORMALISE_CHUNK_ROWS 256u
/* The inbox marks of a batch whose chunks are written overlapped (states,
 * kinds and reasons, gathered for one statement at the end): at most this
 * many bytes of JSON, and of ids.  A batch past it fails as a whole and is
 * taken one payload at a time, so nothing is lost; the callers' batches (an
 * HTTP group, a spool pass, 500 files of rasctl ingest) stay far below. */
#define RAS_NORMALISE_MARKS_BYTES (1024u * 1024u)

/* Normalise hands the referrals it created to triage in memory (store.h,
 * struct ras_store_handover) up to this many bytes of their documents as
 * stored text; the rest are read back from the database as before.  Their
 * parsed trees take several times the text and are held while the rest of
 * the batch is parsed, and the intake paths' peak was already within 1 MiB
 * of item 7's 32 MiB: at 1 MiB of text rasd peaked at 35.5 MiB, at 64 KiB
 * at 31.6 MiB, at 32 KiB at 31.3 MiB (without: 30.8-31.1 MiB; the HTTP and
 * spool paths of scripts/bench --n 1000).  This covers an HTTP group of
 * some ten referrals (the benchmark's eight clients: all of it) and the
 * start of a spool pass. */
#define RAS_HANDOVER_DOC_BYTES   (32u * 1024u)

/* The render stage reads and renders a claimed batch of letters a chunk at
 * a time: at most this many bytes of the stored documents they are made
 * from (referral and episode, pg_column_size; at least one letter); and it
 * writes what it rendered whenever the payloads held reach
 * RAS_RENDER_WRITE_BYTES, and at the end of each chunk. */
#define RAS_RENDER_CHUNK_BYTES   (64u * 1024u)
#define RAS_RENDER_WRITE_BYTES   (1024u * 1024u)

/* --- triage (issue 3) ------------------------------------------------- */

/* Events in a bank-holiday file: GOV.UK publishes ~8 a year per division
 * for about a decade; 2000 is a century of them. */
#define RAS_CALENDAR_EVENTS_MAX  2000

/* A working-day or week clock in a rule set: the longest spec clock is
 * 26 weeks (002 §3.2); a year of working days is a generous ceiling. */
#define RAS_CLOCK_DAYS_MAX       400

/* Rules in one rule set, and nesting of a rule's condition: a service has
 * a few dozen rules of depth 2 or 3. */
#define RAS_RULES_MAX            500
#define RAS_RULE_DEPTH_MAX       16

/* Distinct facts one rule set's conditions and advice may name: the
 * engine's own (24) and its form's items.  The rules engine keeps a
 * decision's facts typed in fixed slots; a rule set naming more does not
 * load (the shipped ones name 40-50). */
#define RAS_RULE_FACTS_MAX       256

/* Clocks in one rule set. */
#define RAS_CLOCKS_MAX           64

/* Items in one Questionnaire (the referral form has 28). */
#define RAS_QUESTIONNAIRE_ITEMS_MAX 500

/* GP practices in one practice list: England has about 6,500. */
#define RAS_PRACTICES_MAX        20000

/* Advice text of one rule after placeholders are filled in: e-RS
 * reviewComments and letters take a paragraph, not an essay. */
#define RAS_ADVICE_MAX           4000

/* Services (rule sets) in one mappings directory. */
#define RAS_SERVICES_MAX         64

/* [clinician] sections: a service has tens of clinicians. */
#define RAS_CLINICIANS_MAX       2000

/* --- clinicians' pages (issue 13) ---------------------------------- */

/* A form posted to the clinicians' pages: the decision form's advice is
 * the largest field (RAS_STRING_MAX, as rasctl decide takes). */
#define RAS_UI_FORM_MAX          (RAS_STRING_MAX + 4096u)

/* A page rendered for a clinician (a long audit trail included). */
#define RAS_UI_PAGE_MAX          (4u * 1024u * 1024u)

/* A delivery round holds the payloads it sends in memory, twice (as read
 * and as sent), and a transfer's handle and buffers per letter: it claims
 * at most [outbox] batch_size letters and at most this many bytes of
 * payloads (at least one letter), the rest left due for the next round,
 * which runs at once.  Letters are 5-60 KB: a round of 20-200. */
#define RAS_DELIVER_BATCH_BYTES  (1024u * 1024u)

/* FHIR endpoints refusing connections whose letters the deliver stage
 * holds back, one letter probing each (docs/design/delivery.md "An endpoint
 * that refuses connections"): at most this many endpoints, each address at
 * most RAS_DELIVER_HELD_URL_MAX bytes.  An endpoint past either is simply
 * not held: each of its letters is tried on its own back-off, as always. */
#define RAS_DELIVER_HELD_ROUTES_MAX 64
#define RAS_DELIVER_HELD_URL_MAX    512

#endif
