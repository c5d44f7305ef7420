import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { EtcdMembers } from '../cluster/members.js';
import type { Logger } from 'pino';
import { Mirror, type MirrorEntry } from '../cluster/mirror.js';
import type { ClusterKeys } from '../cluster/keys.js';
import { desiredSchema, specRecordSchema, statusRecordSchema, strandedSchema, type DesiredRecord, type SpecRecord, type StatusRecord, type Stranded } from './records.js';

/** One table as etcd has it. */
export interface TableEntry {
  db: string;
  table: string;
  /** Its owner; null: no owner (not created, or deleted). */
  owner: string | null;
  /** The owner key's mod revision: the table's epoch (a new owner, or a move, is a new epoch). */
  epoch: number;
  desired: DesiredRecord | null;
  /** The desired key's mod revision: a write of desired compares it (one operation at a time). */
  desiredRevision: number;
  status: StatusRecord | null;
  /** Its desired config as its owner's disk has it. */
  spec: SpecRecord | null;
  /** Channels moves left on other hosts, by host, until drained. */
  stranded: Stranded;
  /** The stranded key's mod revision (0: none): its writes compare it. */
  strandedRevision: number;
}

/**
 * The host that takes the table's events now: its owner, except while a move is under way and
 * the new owner has not answered it yet: then the host it came from (its agent takes events
 * until the new one does, so a planned move has no gap).
 */
export function holder(e: TableEntry): string | null {
  const from = e.desired?.movedFrom;
  if (e.owner && from && e.desired?.op === 'create' && e.status?.node === from && e.status.requestId !== e.desired.requestId) return from;
  return e.owner;
}

/** Whether a move's new owner holds the table's intake shut still (until `openAt`). */
export function intakeHeld(e: TableEntry, now = Date.now()): boolean {
  const at = e.desired?.op === 'create' ? e.desired.openAt : undefined;
  return at !== undefined && Date.parse(at) > now;
}

/**
 * Every table in etcd (`<e>tables/`), kept by a Mirror. Events: 'change' (TableEntry) for each
 * key that changed, 'reset' after a full read. Reads are memory only.
 */
export class TablesView extends EventEmitter {
  private readonly tables = new Map<string, TableEntry>();
  private readonly mirror: Mirror;
  /** Bumped on every change: part of the listing's version. */
  version = 0;

  constructor(
    etcd: Etcd3,
    members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    this.mirror = new Mirror(members, keys.tables(), {
      reset: (entries) => {
        this.tables.clear();
        for (const [key, e] of entries) this.apply(key, e);
        this.version++;
        this.emit('reset');
      },
      put: (key, e) => {
        this.apply(key, e);
        this.version++;
      },
      delete: (key) => {
        this.apply(key, null);
        this.version++;
      },
    }, log);
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): Promise<void> {
    return this.mirror.stop();
  }

  /** Reads every table again now (see Mirror.reread). */
  reread(): Promise<void> {
    return this.mirror.reread();
  }

  get(db: string, table: string): TableEntry | undefined {
    return this.tables.get(`${db}/${table}`);
  }

  all(): TableEntry[] {
    return [...this.tables.values()];
  }

  private apply(key: string, entry: MirrorEntry | null): void {
    const value = entry?.value ?? null;
    const k = this.keys.parseTableKey(key);
    if (!k) return;
    const id = `${k.db}/${k.table}`;
    const e = this.tables.get(id) ?? { db: k.db, table: k.table, owner: null, epoch: 0, desired: null, desiredRevision: 0, status: null, spec: null, stranded: {}, strandedRevision: 0 };
    const parsed = (schema: typeof desiredSchema | typeof statusRecordSchema | typeof specRecordSchema | typeof strandedSchema) => {
      if (value === null) return null;
      try {
        const r = schema.safeParse(JSON.parse(value));
        if (r.success) return r.data;
        this.log.warn({ key, issues: r.error.issues.length }, 'ignored an unreadable table record in etcd');
      } catch {
        this.log.warn({ key }, 'ignored a table record in etcd that is not JSON');
      }
      return null;
    };
    if (k.part === 'owner') {
      e.owner = value;
      e.epoch = entry?.modRevision ?? 0;
    } else if (k.part === 'desired') {
      e.desired = parsed(desiredSchema) as DesiredRecord | null;
      e.desiredRevision = entry?.modRevision ?? 0;
    } else if (k.part === 'status') {
      e.status = parsed(statusRecordSchema) as StatusRecord | null;
    } else if (k.part === 'spec') {
      e.spec = parsed(specRecordSchema) as SpecRecord | null;
    } else {
      e.stranded = (parsed(strandedSchema) as Stranded | null) ?? {};
      e.strandedRevision = entry?.modRevision ?? 0;
    }
    if (!e.owner && !e.desired && !e.status && !e.spec && !Object.keys(e.stranded).length) this.tables.delete(id);
    else this.tables.set(id, e);
    this.emit('change', e, k.part);
  }
}
