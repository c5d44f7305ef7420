// Writes the TypeScript client types generated (openapi-typescript) from the OpenAPI document
// the API serves (/docs/json) into clients/typescript/flume-service.d.ts. `npm run client`;
// test/scenarios/api/contract.test.ts fails when they differ from what the server says now.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { openApiDocument, clientTypes } from '../test/helpers/openapi.js';

const dir = join(PROJECT_ROOT, 'clients', 'typescript');
const doc = await openApiDocument(pino({ level: 'silent' }));
writeFileSync(join(dir, 'flume-service.d.ts'), await clientTypes(doc));
console.log(`wrote ${dir}/flume-service.d.ts`);
process.exit(0);
