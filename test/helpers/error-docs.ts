import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../../src/errors/codes.js';

/** docs/errors.md as the catalogue of src/errors/codes.ts says it (`npm run docs:errors` writes it). */
export function renderErrorDocs(): string {
  const rows = Object.entries(ERROR_CODES).map(
    ([code, e]) => `| \`${code}\` | ${e.status} | \`${e.type}\` | ${e.meaning} | ${e.action} |`,
  );
  return `# Error codes

Every error the gateway sends is OpenAI's error body, \`{"error":{"message","type","param","code"}}\`, with
a message written for people. On a stream that has already started (status 200), the error comes as the
last event, \`data: {"error":{…}}\`, with no \`[DONE]\` after it; the codes marked "stream" are those.
This page is generated from \`src/errors/codes.ts\` (\`npm run docs:errors\`); a test fails when they differ.

Clients retry 408, 409, 429 and 5xx by themselves (the OpenAI SDKs twice, with backoff); a permanent
problem is always a 4xx, so that it is not sent again.

| code | status | type | meaning | what the client should do |
|:--|--:|:--|:--|:--|
${rows.join('\n')}
`;
}

if (process.argv[1]?.endsWith('error-docs.ts')) {
  writeFileSync(new URL('../../docs/errors.md', import.meta.url), renderErrorDocs());
  console.log('docs/errors.md written');
}
