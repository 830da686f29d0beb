/*
 * xmlform: referral forms that arrive as XML, turned into an R4
 * QuestionnaireResponse (JSON) that the ordinary form parser reads.
 *
 * Two kinds of XML are forms:
 * - a FHIR XML QuestionnaireResponse (root element QuestionnaireResponse in
 *   the http://hl7.org/fhir namespace): converted element by element;
 * - any other XML or XHTML document that one of the field maps in
 *   mappings/form-maps/ (one .json file per map) recognises: each map names the document it
 *   applies to (root element, namespace, an XPath test) and gives, per
 *   Questionnaire linkId, the XPath that finds the answer and its type.
 *
 * The map format (one JSON object per file):
 *
 *   {"name": "community-pain-referral-xhtml",
 *    "questionnaire": "urn:rasd:questionnaire:community-pain-referral|2",
 *    "namespaces": {"h": "http://www.w3.org/1999/xhtml"},
 *    "match": {"root": "html", "namespace": "http://www.w3.org/1999/xhtml",
 *              "xpath": "//h:meta[@name='rasd-form']"},
 *    "authored": "string(//h:meta[@name='authored']/@content)",
 *    "fields": [
 *      {"linkId": "pain-duration-weeks", "xpath": "...", "type": "integer"},
 *      {"linkId": "pain-daily", "xpath": "...", "type": "boolean",
 *       "true": ["yes"], "false": ["no"]},
 *      {"linkId": "cognitive-impairment", "xpath": "...", "type": "coding",
 *       "system": "...", "codes": {"None": "none"}}]}
 *
 *   "cells": "//h:td/@id",          every answer cell's id: a cell no field
 *                                   places makes the response in-progress and
 *                                   is named in an extension (unmapped-cell)
 *   "not_carried": [linkId, ...]    items of the Questionnaire this layout
 *                                   does not have
 *
 * At load every map is checked against its Questionnaire in ../forms: each
 * item is a field or listed in not_carried, each field is an item, and
 * "cells" is given; any gap refuses the map (and rasd --check-config).
 *
 * Types: boolean, integer, decimal, string, date, coding.  Each node the
 * XPath selects gives one answer (whitespace trimmed; empty = unanswered).
 * A value that does not fit its type fails the whole form (RAS_EINVALID)
 * with a message naming the linkId, never quoting the value.
 *
 * Pure: maps are loaded once (ras_xmlform_maps_load does the file I/O) and
 * then only read.
 */
#ifndef RAS_XMLFORM_H
#define RAS_XMLFORM_H

#include <stddef.h>

#include "ras/json.h"

struct ras_arena;
struct ras_buf;
struct ras_xmlform_maps;

/* Load every *.json map in `dir` (a missing directory is an empty set).
 * Each bad file is one line in `problems` and RAS_EINVALID is returned
 * (with the good maps still in *out). */
int ras_xmlform_maps_load(const char *dir, struct ras_xmlform_maps **out,
    struct ras_buf *problems);

/* An empty set, and adding one map from its JSON text (`origin` names it in
 * messages). */
int ras_xmlform_maps_new(struct ras_xmlform_maps **out);
int ras_xmlform_maps_add(struct ras_xmlform_maps *m, const char *origin, const char *json,
    size_t len);
size_t ras_xmlform_maps_count(const struct ras_xmlform_maps *m);

/* Check the maps that read into Questionnaire `q` (a parsed R4
 * Questionnaire; maps of other URLs or versions are skipped): one line in
 * `problems` per gap, RAS_EINVALID when there is any. */
int ras_xmlform_maps_check_questionnaire(const struct ras_xmlform_maps *m, const json_t *q,
    struct ras_buf *problems);
void ras_xmlform_maps_free(struct ras_xmlform_maps *m);

/*
 * Read XML as a referral form.  On success *qr is an R4
 * QuestionnaireResponse owned by the arena and *how says what read it
 * ("fhir-xml" or the map's name).  RAS_EINVALID when the XML is not a form
 * (not a FHIR QuestionnaireResponse and no map matches) or a mapped value
 * does not fit; RAS_ETOOBIG past RAS_PAYLOAD_MAX.  maps may be NULL.
 */
int ras_xmlform_read(struct ras_arena *a, const struct ras_xmlform_maps *maps, const char *data,
    size_t len, json_t **qr, const char **how);

#endif
