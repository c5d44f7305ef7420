import { z } from 'zod';
import { createBodySchema } from './agent-spec.js';

const dir = z.string().min(2).max(4096).regex(/^\/[^\0\n]*$/, 'an absolute path').describe('a directory of the old agent\'s file channel: moved into ours');

/** POST /v1/api/:db/:table/adopt: a table of another installation, taken over with its port and its channel. */
export const handoverBodySchema = z.strictObject({
  spec: createBodySchema.describe('our spec for it (flumectl adopt makes it from the old config)'),
  port: z.number().int().min(1024).max(65535).describe('the port its senders reach, kept'),
  checkpointDir: dir,
  dataDir: dir,
});
