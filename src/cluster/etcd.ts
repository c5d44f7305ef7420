import { createHmac, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import type { Logger } from 'pino';

/**
 * The one door to etcd (etcd3 1.1.2, pinned): a client with deadlines, a lease with our own
 * deadline, a mirror of a prefix that resyncs in full, and the transactions we use.
 *
 * Guarantees:
 * - every unary call has a deadline (CALL_DEADLINE_MS): none hangs while etcd has no quorum;
 *   every call requires a leader (a partitioned member answers "no leader" instead of stale data);
 * - `OwnLease` says `fenced` once no keepalive succeeded for FENCE_SHARE of its TTL, by this
 *   process's monotonic clock, before etcd can have let it lapse; it re-grants itself after a
 *   loss and puts its keys again; `lost`/`fenced` fire once per episode;
 * - `Mirror` holds every key under a prefix as etcd has it at some revision: after a start, a
 *   compaction, or any watch error, it reads the whole prefix again and replaces its view, then
 *   watches from that revision on, so no change is missed or applied twice.
 */

export const CALL_DEADLINE_MS = 3000;
/** A lease is fenced once this share of its TTL passed without a successful keepalive. */
export const FENCE_SHARE = 2 / 3;

// = Go's clientv3.WithRequireLeader: a member without a leader refuses instead of answering stale.
const requireLeader: grpc.Interceptor = (options, next) =>
  new grpc.InterceptingCall(next(options), {
    start(metadata, listener, nxt) {
      metadata.set('hasleader', 'true');
      nxt(metadata, listener);
    },
  });

/** How this process reaches etcd: its endpoints, TLS and user (src/config.ts, ETCD_*). */
export interface EtcdAccess {
  endpoints: string[];
  /** PEM: the CA that signed etcd's certificates, and this host's client certificate and key. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  user?: { username: string; password: string };
  /** The records' seal (RecordSeal): every value under its prefix is sealed and checked. */
  seal?: RecordSeal;
}

export function createEtcd(access: EtcdAccess): Etcd3 {
  const interceptors = [requireLeader, ...(access.seal ? [access.seal.interceptor()] : [])];
  return new Etcd3({
    hosts: access.endpoints,
    ...(access.ca ? { credentials: { rootCertificate: access.ca, ...(access.cert && access.key ? { certChain: access.cert, privateKey: access.key } : {}) } } : {}),
    ...(access.user ? { auth: { ...access.user, callOptions: { deadline: Date.now() + CALL_DEADLINE_MS } } } : {}),
    // etcd refuses pings more often than its --grpc-keepalive-min-time (5 s).
    grpcOptions: { 'grpc.keepalive_time_ms': 5000, 'grpc.keepalive_timeout_ms': 2000, interceptors } as grpc.ChannelOptions,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
  });
}

/**
 * The cluster's records are sealed with a key every host holds and etcd never sees (derived from
 * the control-token signing key the hosts share): HMAC-SHA256 over the record's etcd key and its
 * value, stored as `fs1.<mac>.<value>`. Whoever can only write etcd cannot make a record a host
 * believes: a value without a valid seal reads as absent (a range leaves it out, a watch event
 * putting it is dropped, so the last sealed value stands), and a compare on a value compares the
 * sealed form. What such a writer can still do: delete records, or put back one a host wrote
 * earlier under the same key (docs/security.md).
 *
 * It works below etcd3's builders, as a gRPC interceptor on the KV and Watch calls, so every
 * write and read of this process goes through it.
 */
export class RecordSeal {
  static readonly TAG = 'fs1.';
  /** Records without a valid seal seen since start (forged, or written by a version before seals). */
  refused = 0;
  private readonly prefix: Buffer;

  constructor(
    private readonly key: Buffer,
    prefix: string,
    private readonly onRefused: (key: string) => void = () => undefined,
  ) {
    this.prefix = Buffer.from(prefix);
  }

  private mac(k: Buffer, value: Buffer): string {
    return createHmac('sha256', this.key).update(`${k.length}:`).update(k).update(value).digest('base64url');
  }

  private ours(k: unknown): k is Buffer {
    return Buffer.isBuffer(k) && k.subarray(0, this.prefix.length).equals(this.prefix);
  }

  seal(k: Buffer, value: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${RecordSeal.TAG}${this.mac(k, value)}.`), value]);
  }

  /** The value inside a sealed record, or null when its seal is missing or wrong. */
  open(k: Buffer, stored: Buffer): Buffer | null {
    const head = RecordSeal.TAG.length + 43 + 1;
    if (stored.length < head || stored.subarray(0, RecordSeal.TAG.length).toString() !== RecordSeal.TAG || stored[head - 1] !== 0x2e) return null;
    const value = stored.subarray(head);
    const given = stored.subarray(RecordSeal.TAG.length, head - 1);
    const want = Buffer.from(this.mac(k, value));
    return given.length === want.length && timingSafeEqual(given, want) ? value : null;
  }

  /** A key-value as etcd sent it, opened in place; false when it is not to be believed. */
  private openKv(kv: { key?: unknown; value?: unknown } | null | undefined, deleted = false): boolean {
    // A delete event's kv carries no value: deletes cannot be sealed (and need not be believed less).
    if (!kv || !this.ours(kv.key) || deleted) return true;
    const v = Buffer.isBuffer(kv.value) ? this.open(kv.key, kv.value) : null;
    if (v === null) {
      this.refused++;
      this.onRefused(kv.key.toString());
      return false;
    }
    kv.value = v;
    return true;
  }

  // The request and response shapes of etcd's rpc.proto as etcd3 loads them (keepCase, oneofs).
  /* eslint-disable @typescript-eslint/no-explicit-any -- protobuf messages, checked field by field */
  // Requests are copied, never changed in place: etcd3 sends the same request object again when it
  // retries a call, and a value sealed twice would read as another value.
  private sealPut(put: any): any {
    return this.ours(put?.key) && Buffer.isBuffer(put.value) ? { ...put, value: this.seal(put.key, put.value) } : put;
  }

  private sealOps(ops: any[] | undefined): any[] | undefined {
    return ops?.map((op) => (op?.request_put ? { ...op, request_put: this.sealPut(op.request_put) } : op?.request_txn ? { ...op, request_txn: this.sealTxn(op.request_txn) } : op));
  }

  private sealTxn(txn: any): any {
    const compare = txn.compare?.map((c: any) =>
      // CompareTarget.Value: 3 (etcd3 sends the number).
      (c.target === 3 || String(c.target).toUpperCase() === 'VALUE') && this.ours(c.key) && Buffer.isBuffer(c.value) ? { ...c, value: this.seal(c.key, c.value) } : c,
    );
    return { ...txn, compare, success: this.sealOps(txn.success), failure: this.sealOps(txn.failure) };
  }

  private openRange(r: any): void {
    if (!Array.isArray(r?.kvs)) return;
    const kept = r.kvs.filter((kv: any) => this.openKv(kv));
    if (r.count !== undefined) r.count = String(Number(r.count) - (r.kvs.length - kept.length));
    r.kvs = kept;
  }

  private openTxnResponse(r: any): void {
    for (const op of r?.responses ?? []) {
      if (op?.response_range) this.openRange(op.response_range);
      if (op?.response_put?.prev_kv && !this.openKv(op.response_put.prev_kv)) op.response_put.prev_kv = null;
      if (op?.response_txn) this.openTxnResponse(op.response_txn);
    }
  }

  private onRequest(path: string, m: any): any {
    if (path.endsWith('.KV/Put')) return this.sealPut(m);
    if (path.endsWith('.KV/Txn')) return this.sealTxn(m);
    return m;
  }

  private onResponse(path: string, m: any): void {
    if (path.endsWith('.KV/Range')) this.openRange(m);
    else if (path.endsWith('.KV/Txn')) this.openTxnResponse(m);
    else if (path.endsWith('.KV/Put') && m?.prev_kv && !this.openKv(m.prev_kv)) m.prev_kv = null;
    else if (path.endsWith('.KV/DeleteRange') && Array.isArray(m?.prev_kvs)) m.prev_kvs = m.prev_kvs.filter((kv: any) => this.openKv(kv));
    else if (path.endsWith('.Watch/Watch') && Array.isArray(m?.events)) {
      m.events = m.events.filter((e: any) => this.openKv(e.kv, String(e.type).toUpperCase() === 'DELETE'));
      for (const e of m.events) if (e.prev_kv && !this.openKv(e.prev_kv)) e.prev_kv = null;
    }
  }
  /* eslint-enable @typescript-eslint/no-explicit-any */

  interceptor(): grpc.Interceptor {
    return (options, next) => {
      const path = String(options.method_definition.path);
      if (!/\/etcdserverpb\.(KV|Watch)\//.test(path)) return new grpc.InterceptingCall(next(options));
      return new grpc.InterceptingCall(next(options), {
        start: (metadata, listener, nxt) => {
          nxt(metadata, {
            onReceiveMessage: (message, deliver) => {
              this.onResponse(path, message);
              deliver(message);
            },
          });
        },
        sendMessage: (message, nxt) => nxt(this.onRequest(path, message)),
      });
    };
  }
}

/** The seal's key: from the control-token signing key every host of a cluster shares (never written to etcd). */
export const sealKey = (jwtSecret: string) => createHmac('sha256', jwtSecret).update('flume-service etcd record seal v1').digest();

/** Creates `key` with `value` only if it does not exist; true if this call created it. */
export async function createIfAbsent(etcd: Etcd3, key: string, value: string, lease?: Lease): Promise<boolean> {
  const put = etcd.put(key).value(value);
  if (lease) put.lease(await lease.grant());
  const r = await etcd.if(key, 'Create', '==', 0).then(put).commit();
  return r.succeeded;
}

/**
 * A lease this process holds, with keys bound to it. Events: 'renewed' (a keepalive
 * succeeded), 'fenced' (none for FENCE_SHARE x TTL: act as if the keys were gone), 'unfenced'
 * (renewed again after that), 'regranted' (a new lease after a loss; the keys are put again).
 */
export class OwnLease extends EventEmitter {
  private lease: Lease;
  private lastSuccess = performance.now();
  private fencedNow = false;
  private readonly keys = new Map<string, string>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly etcd: Etcd3,
    readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    super();
    this.lease = this.open();
    this.timer = setInterval(() => this.check(), 250);
    this.timer.unref();
  }

  /** Whether this process may act on what its lease stands for. */
  get fenced(): boolean {
    return this.fencedNow;
  }

  /** Seconds since the last successful keepalive (or grant). */
  get ageSeconds(): number {
    return (performance.now() - this.lastSuccess) / 1000;
  }

  /** Puts `key` bound to the lease; it is put again after a re-grant. */
  async put(key: string, value: string): Promise<void> {
    this.keys.set(key, value);
    await this.lease.put(key).value(value).exec();
  }

  /** Creates `key` bound to the lease only if it does not exist; not put again after a re-grant. */
  async claim(key: string, value: string): Promise<boolean> {
    const id = await this.lease.grant();
    const r = await this.etcd.if(key, 'Create', '==', 0).then(this.etcd.put(key).value(value).lease(id)).commit();
    return r.succeeded;
  }

  /** The lease's id (hex, as etcd3 gives it). */
  id(): Promise<string> {
    return this.lease.grant();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.lease.revoke().catch(() => undefined);
  }

  private open(): Lease {
    const lease = this.etcd.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on('keepaliveSucceeded', () => this.renewed());
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return; // etcd3 may emit 'lost' twice
      this.log.warn({ err: err.message }, 'the etcd lease was lost: granting a new one');
      this.fence();
      this.lease = this.open();
      void this.reput();
    });
    void lease.grant().then(
      () => this.renewed(),
      () => undefined, // 'lost' follows
    );
    return lease;
  }

  private async reput(): Promise<void> {
    try {
      await this.lease.grant();
      for (const [k, v] of this.keys) await this.lease.put(k).value(v).exec();
      this.emit('regranted');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not put the lease keys again; retrying with the next grant');
    }
  }

  private renewed(): void {
    this.lastSuccess = performance.now();
    if (this.fencedNow) {
      this.fencedNow = false;
      this.log.info('the etcd lease is renewed again');
      this.emit('unfenced');
    }
    this.emit('renewed');
  }

  private check(): void {
    if (!this.fencedNow && this.ageSeconds > this.ttlSeconds * FENCE_SHARE) this.fence();
  }

  private fence(): void {
    if (this.fencedNow) return;
    this.fencedNow = true;
    this.log.warn({ sinceRenewalSeconds: Math.round(this.ageSeconds * 10) / 10, ttlSeconds: this.ttlSeconds }, 'the etcd lease is not being renewed: fenced');
    this.emit('fenced');
  }
}

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

/**
 * Every key under `prefix`, kept current by a watch. Events: 'synced' (after each full read),
 * 'error' is never emitted: failures are logged and retried every second.
 */
const entryOf = (kv: IKeyValue): MirrorEntry => ({ value: kv.value.toString(), createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision) });

export class Mirror extends EventEmitter {
  private watcher: Watcher | null = null;
  private stopped = false;
  /** The revision the view is at (0 until the first read). */
  revision = 0;
  /** Full reads so far (tests wait on it). */
  syncs = 0;

  constructor(
    private readonly etcd: Etcd3,
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
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
  }

  /**
   * Reads the whole prefix again now and watches on from there (after this host was cut off:
   * its watch may have missed what happened meanwhile and not know it yet).
   */
  async reread(): Promise<void> {
    if (this.stopped) return;
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => undefined);
    await this.resync();
  }

  private async resync(): Promise<void> {
    while (!this.stopped) {
      try {
        const res = await this.etcd.getAll().prefix(this.prefix).exec();
        const revision = Number(res.header.revision);
        const entries = new Map(res.kvs.map((kv) => [kv.key.toString(), entryOf(kv)]));
        this.revision = revision;
        this.handlers.reset(entries, revision);
        this.syncs++;
        this.emit('synced', revision);
        await this.watchFrom(revision + 1);
        return;
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ err: (err as Error).message, prefix: this.prefix }, 'could not read from etcd; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async watchFrom(revision: number): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    const w = await this.etcd.watch().prefix(this.prefix).startRevision(String(revision)).create();
    this.watcher = w;
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
    // A compaction past our revision, or a cancelled watch: read it all again.
    w.on('error', (err) => {
      if (this.stopped || this.watcher !== w) return;
      this.log.warn({ err: err.message, prefix: this.prefix }, 'the etcd watch ended: reading the prefix again');
      this.watcher = null;
      void w.cancel().catch(() => undefined);
      void this.resync();
    });
  }
}
