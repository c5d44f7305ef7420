import { readFileSync } from 'node:fs';
import { chmod, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { z } from 'zod';

/**
 * A JSON file the service keeps, read at start and checked against `schema`: its value, or null
 * when there is none; one that does not parse is logged (as `what`) and read as none.
 */
export function readJsonFileSync<T>(file: string, schema: z.ZodType<T>, log: Logger, what: string): T | null {
  try {
    return schema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.error({ err, file }, `could not read ${what}`);
    return null;
  }
}

/**
 * Replaces `file` with `text` atomically: a reader (supervisord, nginx, a restarting API) sees
 * the old content or the new, never half of it. The text goes to a dot-prefixed temp file beside
 * it (a dot name never matches supervisor.conf's conf.d/*.conf include), then is renamed over it.
 * With `mode`, the file has exactly that mode (a temp file left by a crash keeps none of its own).
 */
export async function writeAtomic(file: string, text: string, mode?: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  await writeFile(tmp, text, mode === undefined ? undefined : { mode });
  if (mode !== undefined) await chmod(tmp, mode);
  await rename(tmp, file);
}
