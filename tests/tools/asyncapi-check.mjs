// Validates an AsyncAPI document with the AsyncAPI initiative's own parser; exit 0 when it has no error.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';
const parser = new Parser();
const file = process.argv[2];
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
const errors = diagnostics.filter(d => d.severity === 0);
for (const d of diagnostics) console.log(`${['error','warning','info','hint'][d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
process.exit(document && errors.length === 0 ? 0 : 1);
