import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeAtomic } from '../store/files.js';

/** var/tokens/<user>.json: what Redis holds for one user (hashes only). */
export const savedUserSchema = z.object({
  username: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/),
  user: z.record(z.string(), z.string()),
  tokens: z.record(z.string(), z.record(z.string(), z.string())),
});
export type SavedUser = z.infer<typeof savedUserSchema>;


/**
 * var/tokens/: one file per user (mode 0600, the directory 0700) with what Redis holds for it,
 * hashes only: the truth that Redis is restored from.
 * Guarantees: a file is replaced whole (writeAtomic); one unreadable file is logged and
 * skipped, never stops the others; a file is only taken for the user it names.
 */
export class TokenFiles {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  async write(saved: SavedUser): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeAtomic(join(this.dir, `${saved.username}.json`), JSON.stringify(saved), 0o600);
  }

  async remove(username: string): Promise<void> {
    await rm(join(this.dir, `${username}.json`), { force: true });
  }

  /** Every readable user record. */
  async all(): Promise<SavedUser[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    const out: SavedUser[] = [];
    for (const f of names) {
      const saved = await this.read(f);
      if (saved) out.push(saved);
    }
    return out;
  }

  private async read(f: string): Promise<SavedUser | null> {
    try {
      const saved = savedUserSchema.parse(JSON.parse(await readFile(join(this.dir, f), 'utf8')));
      if (`${saved.username}.json` !== f) throw new Error(`it holds user ${saved.username}`);
      return saved;
    } catch (err) {
      this.log.error({ file: join(this.dir, f), err: (err as Error).message }, 'skipped an unreadable ingestion token record');
      return null;
    }
  }
}
