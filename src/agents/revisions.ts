import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { revisionOf, type AgentMeta } from './agent-store.js';
import { writeAtomic } from '../files.js';
import type { AgentSpec } from './sinks.js';

export interface RevisionPair {
  /** The revision the operator wants: its spec is what GET .../config shows. */
  desired: number;
  /** The revision the running agent started with; null while it is not running. */
  running: number | null;
}

export const revisionPair = (meta: AgentMeta, up: boolean): RevisionPair => ({
  desired: revisionOf(meta),
  running: up ? (meta.runningRevision ?? revisionOf(meta)) : null,
});

/**
 * What became of a revision:
 * - applied: the agent ran it and accepted events (or it is the creation spec);
 * - stored: written while the agent was stopped; it runs at the next start;
 * - reverted: the agent did not accept events with it; the previous revision runs again;
 * - superseded is not kept: the newest applied or stored revision is the desired one.
 */
export type RevisionOutcome = 'applied' | 'stored' | 'reverted';

export interface Revision {
  revision: number;
  spec: AgentSpec;
  createdAt: string;
  /** The control token's subject that made it ('service' for the creation of an older agent). */
  by: string;
  reason: 'create' | 'put' | 'patch' | 'rollback';
  /** For a rollback: the revision whose spec it copied. */
  from: number | null;
  outcome: RevisionOutcome;
  /** Why it was reverted (the start failure), else null. */
  error: string | null;
}

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
