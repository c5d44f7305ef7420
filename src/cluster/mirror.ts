import { EventEmitter } from 'node:events';
import type { IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { CALL_DEADLINE_MS } from './etcd.js';
import type { EtcdMembers, Member } from './members.js';

/** A key's value with its create and last-modification revisions. */
export interface MirrorEntry {
  value: string;
  createRevision: number;
  modRevision: number;
}

export interface MirrorHandlers {
  /** The whole prefix as of `revision` (after a start or a resync): replace what you hold. */
  reset(entries: Map<string, MirrorEntry>, revision: number): void;
  put(key: string, entry: MirrorEntry): void;
  delete(key: string, revision: number): void;
}

const entryOf = (kv: IKeyValue): MirrorEntry => ({ value: kv.value.toString(), createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision) });

/**
 * Every key under `prefix`, kept current by a watch on one member (src/cluster/members.ts).
 *
 * Guarantees: it holds every key as etcd has it at some revision: after a start, a compaction, a
 * watch that ends or loses its member, or `switchMember`, it reads the whole prefix again (from
 * the member that answers) and replaces its view, then watches from that revision on that
 * member, so no change is missed or applied twice. A member whose watch went away is passed
 * over for a while. Failures are retried every second and logged when they begin and end.
 * Events: 'synced' (after each full read).
 */
export class Mirror extends EventEmitter {
  private watcher: Watcher | null = null;
  private member: Member | null = null;
  private stopped = false;
  private resyncing: Promise<void> | null = null;
  /** The revision the view is at (0 until the first read). */
  revision = 0;
  /** Full reads so far (tests wait on it). */
  syncs = 0;

  constructor(
    private readonly members: EtcdMembers,
    private readonly prefix: string,
    private readonly handlers: MirrorHandlers,
    private readonly log: Logger,
  ) {
    super();
  }

  async start(): Promise<void> {
    await this.resync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.abandon();
  }

  /** The member the watch runs on (null between watches). */
  get endpoint(): string | null {
    return this.member?.endpoint ?? null;
  }

  /**
   * Reads the whole prefix again now and watches on from there (after this host was cut off:
   * its watch may have missed what happened meanwhile and not know it yet).
   */
  async reread(): Promise<void> {
    if (this.stopped) return;
    await this.abandon();
    await this.resync();
  }

  /**
   * The watch's member is judged silent (what it should have delivered did not come): pass it
   * over, read everything again from another member and watch there.
   */
  switchMember(): void {
    if (this.stopped || this.resyncing) return;
    if (this.member) this.members.failed(this.member);
    void this.abandon().then(() => this.resync());
  }

  /** Drops the watch without waiting on its member (a cancel on a silent member never completes). */
  private async abandon(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    this.member = null;
    if (w) void w.cancel().catch(() => undefined);
  }

  private resync(): Promise<void> {
    this.resyncing ??= this.readAll().finally(() => (this.resyncing = null));
    return this.resyncing;
  }

  private async readAll(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const { res, member } = await this.members.first(CALL_DEADLINE_MS, async (c, deadline, m) => ({ res: await c.getAll().prefix(this.prefix).options({ deadline }).exec(), member: m }));
        const revision = Number(res.header.revision);
        const entries = new Map(res.kvs.map((kv) => [kv.key.toString(), entryOf(kv)]));
        this.revision = revision;
        this.handlers.reset(entries, revision);
        this.syncs++;
        this.emit('synced', revision);
        await this.watchFrom(member, revision + 1);
        if (failures > 0) this.log.info({ prefix: this.prefix, failedAttempts: failures }, 'read from etcd again');
        return;
      } catch (err) {
        if (this.stopped) return;
        if (failures++ === 0) this.log.warn({ err: (err as Error).message, prefix: this.prefix }, 'could not read from etcd; retrying every second (logged again when it works)');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async watchFrom(member: Member, revision: number): Promise<void> {
    const w = await member.client.watch().prefix(this.prefix).startRevision(String(revision)).create();
    if (this.stopped) return void w.cancel().catch(() => undefined);
    this.watcher = w;
    this.member = member;
    w.on('put', (kv) => {
      if (this.watcher !== w) return; // a watch replaced by a full read
      const entry = entryOf(kv);
      this.revision = entry.modRevision;
      this.handlers.put(kv.key.toString(), entry);
    });
    w.on('delete', (kv) => {
      if (this.watcher !== w) return;
      this.revision = Number(kv.mod_revision);
      this.handlers.delete(kv.key.toString(), this.revision);
    });
    // Its member went away: go on from another one (a full read, then a watch there).
    w.on('disconnected', () => {
      if (this.stopped || this.watcher !== w) return;
      this.switchMember();
    });
    // A compaction past our revision, or a cancelled watch: read it all again.
    w.on('error', (err) => {
      if (this.stopped || this.watcher !== w) return;
      this.log.warn({ err: err.message, prefix: this.prefix }, 'the etcd watch ended: reading the prefix again');
      void this.abandon().then(() => this.resync());
    });
  }
}
