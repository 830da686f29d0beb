// Independent FHIR STU3 validation of rasd's ITK3 messages, for the test suite.
//
//   node validate-stu3.cjs --modules DIR FILE...
//
// FHIR.js (the `fhir` package) in STU3 mode: its engine with the STU3 core
// definitions (profiles-types.json, profiles-resources.json of FHIR 3.0.1)
// that the `fhir` package's 3.x releases ship (installed as `fhir-stu3`).
// Each XML message is read as STU3 and validated (cardinality, types,
// unexpected properties); elements STU3 does not know are dropped by the
// reader, so the message is also written back to XML and every element path
// of the input must survive the round trip (an R4-only element such as
// Binary.data fails here).  Then the ITK3 structure of the reference Send
// Document message is checked: MessageHeader first, the MessageHandling
// extension with its six keys, event, source endpoint, focus resolving to
// the document Bundle, a PDF Binary.  Any error fails the run (exit 1).
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const args = process.argv.slice(2);
let modules = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--modules') modules = args[++i];
  else files.push(args[i]);
}
if (!files.length) {
  console.error('usage: node validate-stu3.cjs [--modules DIR] FILE...');
  process.exit(2);
}
const req = modules ? createRequire(path.join(path.resolve(modules), 'package.json')) : require;
const { ParseConformance, Versions, Fhir } = req('fhir');
const convert = createRequire(req.resolve('fhir'))('xml-js');
const stu3 = path.join(path.dirname(req.resolve('fhir-stu3/package.json')), 'profiles', 'stu3');

const parser = new ParseConformance(false, Versions.STU3);
parser.parseBundle(JSON.parse(fs.readFileSync(path.join(stu3, 'profiles-types.json'), 'utf8')));
parser.parseBundle(JSON.parse(fs.readFileSync(path.join(stu3, 'profiles-resources.json'), 'utf8')));
const fhir = new Fhir(parser);

// Element paths of an XML document (FHIR elements only: the XHTML of a
// narrative is not FHIR's to check).
function paths(xml) {
  const out = new Set();
  const walk = (el, prefix) => {
    for (const c of el.elements ?? []) {
      if (c.type !== 'element') continue;
      const p = `${prefix}/${c.name}`;
      out.add(p);
      if (c.name !== 'div') walk(c, p);
    }
  };
  walk(convert.xml2js(xml, { compact: false }), '');
  return out;
}

const HANDLING = 'https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2';
function itk3Structure(msg) {
  const errs = [];
  const first = msg.entry?.[0]?.resource;
  if (msg.resourceType !== 'Bundle' || msg.type !== 'message') errs.push('not a message Bundle');
  if (first?.resourceType !== 'MessageHeader') errs.push('MessageHeader is not the first entry');
  const h = (first?.extension ?? []).find((e) => e.url === HANDLING);
  const keys = (h?.extension ?? []).map((e) => e.url).sort().join(',');
  if (keys !== 'BusAckRequested,InfAckRequested,LocalExtension,MessageDefinition,RecipientType,SenderReference')
    errs.push(`MessageHandling keys: ${keys || 'none'}`);
  for (const k of ['BusAckRequested', 'InfAckRequested'])
    if ((h?.extension ?? []).find((e) => e.url === k)?.valueBoolean !== true) errs.push(`${k} is not true`);
  if ((h?.extension ?? []).find((e) => e.url === 'RecipientType')?.valueCoding?.code !== 'FA')
    errs.push('RecipientType is not FA');
  if (!/^ITK0\d\d[A-Z]$/.test(first?.event?.code ?? '')) errs.push('no ITK event code');
  if (!first?.source?.endpoint) errs.push('no source endpoint (the sending mailbox)');
  const focus = [].concat(first?.focus ?? [])[0]?.reference;   // STU3: 0..*
  const doc = msg.entry.find((e) => e.fullUrl === focus)?.resource;
  if (doc?.resourceType !== 'Bundle' || doc?.type !== 'document') errs.push('focus is not the document Bundle');
  const bin = (doc?.entry ?? []).map((e) => e.resource).find((r) => r?.resourceType === 'Binary');
  if (bin?.contentType !== 'application/pdf' || !bin?.content) errs.push('no PDF Binary');
  return errs;
}

let failed = false;
for (const f of files) {
  const xml = fs.readFileSync(f, 'utf8');
  const obj = JSON.parse(fhir.xmlToJson(xml));
  const res = fhir.validate(obj, { errorOnUnexpected: true });
  const errors = res.messages.filter((m) => m.severity === 'error' || m.severity === 'fatal');
  const back = paths(fhir.objToXml(obj));
  for (const p of paths(xml))
    if (!back.has(p)) errors.push({ location: p, message: 'element not known to FHIR STU3' });
  for (const e of itk3Structure(obj)) errors.push({ location: 'ITK3', message: e });
  if (errors.length) failed = true;
  console.log(`${f} [fhir.js STU3]: ${errors.length ? 'INVALID' : 'VALID'}`);
  for (const e of errors) console.log(`  error\t${e.location}\t${e.message}`);
}
console.log(`${files.length} ITK3 message(s) checked as FHIR STU3`);
process.exit(failed ? 1 : 0);
