// Validates an AsyncAPI document with the official parser; exit 1 on any error diagnostic.
import { Parser, fromFile } from '@asyncapi/parser';

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, process.argv[2]).parse();
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of errors) {
  console.log(`${d.code}: ${d.message} at ${d.path.join('.')}`);
}
if (document) {
  console.log(`asyncapi ${document.version()}: ${document.channels().length} channels, ` +
              `${document.operations().length} operations, ${errors.length} errors`);
}
process.exit(errors.length || !document ? 1 : 0);
