import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { revisionOf, type AgentMeta } from './agent-store.js';
import { writeAtomic } from './files.js';
import type { RevisionPair } from '../resources/agent-status.js';
import type { Revision } from '../resources/revision.js';

export const revisionPair = (meta: AgentMeta, up: boolean): RevisionPair => ({
  desired: revisionOf(meta),
  running: up ? (meta.runningRevision ?? revisionOf(meta)) : null,
});

const FILE = /^(\d{6,})\.json$/;
const fileName = (n: number) => `${String(n).padStart(6, '0')}.json`;

/**
 * services/<program>/revisions/<n>.json: an agent's config history, on disk like the rest of it
 * (deleting the agent deletes its history). Numbers only grow; the oldest files beyond `keep`
 * are pruned, never the desired revision.
 */
export class RevisionStore {
  constructor(
    private readonly dir: string,
    private readonly keep: number,
  ) {}

  async list(): Promise<Revision[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => FILE.test(n)).sort();
    const revs = await Promise.all(names.map((n) => this.readFile(join(this.dir, n))));
    return revs.filter((r): r is Revision => r !== null);
  }

  async get(n: number): Promise<Revision | null> {
    return this.readFile(join(this.dir, fileName(n)));
  }

  async latestNumber(): Promise<number> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => FILE.test(n)).sort();
    const last = names.at(-1);
    return last ? Number(FILE.exec(last)![1]) : 0;
  }

  async write(rev: Revision): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeAtomic(join(this.dir, fileName(rev.revision)), `${JSON.stringify(rev, null, 2)}\n`);
  }

  /** Drops the oldest revisions beyond `keep`, sparing `desired`. */
  async prune(desired: number): Promise<void> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => FILE.test(n)).sort();
    const excess = names.slice(0, Math.max(0, names.length - this.keep)).filter((n) => n !== fileName(desired));
    await Promise.all(excess.map((n) => rm(join(this.dir, n), { force: true })));
  }

  private async readFile(file: string): Promise<Revision | null> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as Revision;
    } catch {
      return null;
    }
  }
}
