import { createHmac, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ExponentialBackoff, handleWhen, noop, retry, type IPolicy } from 'cockatiel';
import { Etcd3, type Lease } from 'etcd3';

/**
 * The door to etcd (etcd3 1.1.2, pinned): the client, the records' seal, and the transactions we
 * use. Beside it: one client per member for what must never wait on a lost member
 * (src/cluster/members.ts), our lease (lease.ts) and the mirror of a prefix (mirror.ts).
 *
 * Guarantees:
 * - every unary call has a deadline (CALL_DEADLINE_MS): none hangs while etcd has no quorum;
 *   every call requires a leader (a partitioned member answers "no leader" instead of stale data);
 * - a call is sent again (to another member) only when it surely changed nothing
 *   (`nothingApplied`), so what a caller is told of a failed write is true.
 */

export const CALL_DEADLINE_MS = 3000;

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

/**
 * Whether a failed etcd call surely changed nothing: refused before any member took it (a member
 * without a leader refuses at once under requireLeader; one that is too far behind refuses before
 * proposing; no connection was made; every member's breaker was open). Anything else (a deadline,
 * "request timed out", "leader changed", a dropped connection) may have been applied, or may
 * still be.
 */
export function nothingApplied(err: unknown): boolean {
  const m = err instanceof Error ? err.message : String(err);
  return /etcdserver: no leader|etcdserver: too many requests|No connection established|ECONNREFUSED|ENETUNREACH|EHOSTUNREACH|circuit breaker is open|Channel closed before call started|already closed/i.test(m);
}


/**
 * A client for `endpoints`. `pooled` (the default): calls go to a member at random (passing over
 * those `memberPolicy` shuts out: src/cluster/members.ts); a call is tried again on another
 * member only when it surely changed nothing (so a transaction is never applied twice and then
 * reported as refused). `single`: one member, no retries: the caller chooses.
 */
export function createEtcd(access: EtcdAccess, how: 'pooled' | 'single' = 'pooled', memberPolicy?: (endpoint: string) => IPolicy): Etcd3 {
  const interceptors = [requireLeader, ...(access.seal ? [access.seal.interceptor()] : [])];
  // A watch reconnects within 2 s (etcd3's default grows to 30 s). etcd3 declares a backoff and
  // calls next() on it, as on the factory it uses by default: the factory's first backoff does both.
  const watchBackoff = new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }).next();
  return new Etcd3({
    hosts: access.endpoints,
    ...(access.ca ? { credentials: { rootCertificate: access.ca, ...(access.cert && access.key ? { certChain: access.cert, privateKey: access.key } : {}) } } : {}),
    // A factory: each sign-in gets its own deadline (a fixed one would lapse 3 s after start, and
    // every sign-in after etcd restarts would then fail at once).
    ...(access.user ? { auth: { ...access.user, callOptions: () => ({ deadline: Date.now() + CALL_DEADLINE_MS }) } } : {}),
    // etcd refuses pings more often than its --grpc-keepalive-min-time (5 s).
    grpcOptions: { 'grpc.keepalive_time_ms': 5000, 'grpc.keepalive_timeout_ms': 2000, interceptors } as grpc.ChannelOptions,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    faultHandling:
      how === 'pooled'
        ? {
            // Not a circuit breaker: one half-open breaker deadlocks when etcd3 calls again from
            // inside the probing call (a sign-in after "invalid auth token").
            host: (endpoint) => memberPolicy?.(endpoint) ?? noop,
            global: retry(handleWhen(nothingApplied), { maxAttempts: access.endpoints.length }),
            watchBackoff,
          }
        : { host: () => noop, global: noop, watchBackoff },
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
