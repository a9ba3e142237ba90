// Validates a corpus of records against creditline's JSON Schemas with Ajv, the way a
// JavaScript integrator would: JSON Schema 2020-12, strict mode (every schema keyword known,
// types consistent), formats asserted (ajv-formats' full date-time).
//
//   node validate.mjs SCHEMA_DIR CASES_FILE
//
// CASES_FILE: one JSON object per line, {"schema": "LoanDecision", "value": "<base64>"}: the
// record's value bytes as they travel on Kafka. Each is decoded as UTF-8 (fatal) and parsed
// with JSON.parse first: bytes that are not UTF-8 JSON are invalid before any schema.
// Prints one JSON document: {"checked": N, "results": [{"valid": bool, "error": str}, ...]}.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [schemaDir, casesFile] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: false });
addFormats(ajv);

const validators = {};
for (const file of readdirSync(schemaDir).filter((f) => f.endsWith('.schema.json')).sort()) {
  const schema = JSON.parse(readFileSync(join(schemaDir, file), 'utf8'));
  validators[file.replace('.schema.json', '')] = ajv.compile(schema);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const results = [];
for (const line of readFileSync(casesFile, 'utf8').split('\n')) {
  if (!line) continue;
  const { schema, value } = JSON.parse(line);
  const validate = validators[schema];
  if (!validate) throw new Error(`no schema named ${schema}`);
  let doc;
  try {
    doc = JSON.parse(utf8.decode(Buffer.from(value, 'base64')));
  } catch (error) {
    results.push({ valid: false, error: `not UTF-8 JSON: ${error.message}` });
    continue;
  }
  const valid = validate(doc);
  const first = valid ? '' : `${validate.errors[0].instancePath} ${validate.errors[0].message}`;
  results.push({ valid, error: first });
}
console.log(JSON.stringify({ checked: results.length, schemas: Object.keys(validators), results }));
