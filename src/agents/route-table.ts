import type { Redis } from 'ioredis';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { AgentMeta } from '../store/agent-store.js';
import type { TableRef } from '../resources/table.js';
import { ONE_HOST, type TablePlacement } from './placement.js';

const entry = ({ db, table }: TableRef) => `${db}:${table}`;
/** The header that carries a route's intake key to the agent (flumeservice.IntakeKeyHandler, the gateway's nginx.conf). */
export const INTAKE_KEY_HEADER = 'X-Flume-Intake-Key';
/** An intake key as the store writes it (32 random bytes, base64url): nothing else enters a route. */
const INTAKE_KEY = /^[\w-]{32,128}$/;

/**
 * The route value's format, shared with the gateway: rendered into var/gateway/lua/flume_routes.lua
 * (src/gateway/render.ts), so the Lua reads exactly what `RouteTable.valueOf` writes. Lua patterns.
 */
export const ROUTE_VALUE = {
  /** Intake paused by an operator: 503 AGENT_PAUSED. */
  paused: 'paused',
  /** host:port, then the rest (empty for a route written before the capacity was added). */
  address: '^([^:]+):(%d+)(.*)$',
  /** The rest: the most events one group commit may carry (the channel's transactionCapacity). */
  capacity: '^ tx=(%d+)',
  /** Then, where the sink can never take a larger event: its bytes at most (body and headers). */
  maxEvent: ' max=(%d+)',
  /** Then, for a table whose senders are answered on the sink unless they say otherwise (spec `ack`). */
  ackSink: ' ack=sink ',
  /**
   * Then the agent's intake key (services/<program>/control.key, base64url), which the gateway
   * sends as X-Flume-Intake-Key: the agent's source takes events only with it.
   */
  intakeKey: ' k=([%w_%-]+)',
  /** Then the agent's metrics port, where its channel's counts are read (a sender's `Prefer: ack=sink`). */
  metricsPort: ' m=(%d+)$',
  /**
   * Then, for a table with an event contract (its spec's `schema`): a newline and the contract as
   * JSON, which the gateway compiles once per worker (flume_gateway/schema.lua).
   */
  schemaAfter: '\n',
  /** Many hosts: this host is fenced (its lease is not renewed): intake stopped (503 NODE_FENCED). */
  fenced: 'fenced',
  /** Many hosts: the host that runs the table is not alive (503 NODE_DOWN). */
  nodeDown: 'nodedown',
  /** Many hosts: the table runs on another host; its gateway (host:port) takes the request once. */
  via: '^via ([^:]+):(%d+)$',
} as const;

/**
 * The largest event (body and header bytes) a table's sink can ever deliver, or null for no limit.
 * Kafka: the producer refuses a record over max.request.size (1 MiB by default, which the
 * template keeps), and a record carries its key, headers and about a hundred bytes of framing
 * besides; 1 KiB is left for those.
 */
export function maxEventBytes(spec: Pick<AgentMeta['spec'], 'sink'>): number | null {
  return spec.sink === 'kafka' ? 1_048_576 - 1024 : null;
}

/**
 * The keys the gateway reads to find an agent: `route:<db>:<table>` (where to proxy) and the
 * `tables` set (404 unknown table vs 503 agent down). This class is their only writer.
 *
 * Guarantees: each change is one MULTI (route and set change together) and publishes the table
 * on the invalidate channel, so every gateway worker drops its cached entry at once.
 * Idempotent. Redis failures surface as REDIS_UNAVAILABLE.
 */
export class RouteTable {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** The agent's intake key (AgentStore.controlKey: its file, null while there is none). */
    private readonly intakeKeyOf: (program: string) => Promise<string | null>,
    /** Which tables other hosts take (many hosts); ONE_HOST on one. */
    readonly placement: TablePlacement = ONE_HOST,
  ) {}

  /**
   * Where the gateway sends the table's events, `127.0.0.1:<port> tx=<transactionCapacity>[
   * max=<bytes>][ ack=sink][ k=<intake key>] m=<metricsPort>` (the most events one group commit
   * may carry, the largest event the sink takes, whether senders are answered on the sink by
   * default, the key the agent's source asks for, where the channel's counts are read), then the
   * event contract where the table has one (`\n{...}`), or `paused` (503 AGENT_PAUSED).
   */
  static valueOf(meta: Pick<AgentMeta, 'port' | 'metricsPort' | 'paused' | 'spec'>, intakeKey: string | null): string {
    if (meta.paused) return ROUTE_VALUE.paused;
    const max = maxEventBytes(meta.spec);
    const ack = meta.spec.ack === 'sink' ? ROUTE_VALUE.ackSink.trimEnd() : '';
    const key = intakeKey && INTAKE_KEY.test(intakeKey) ? ` k=${intakeKey}` : '';
    const contract = meta.spec.schema ? `${ROUTE_VALUE.schemaAfter}${JSON.stringify(meta.spec.schema)}` : '';
    return `127.0.0.1:${meta.port} tx=${meta.spec.channel.transactionCapacity}${max === null ? '' : ` max=${max}`}${ack}${key} m=${meta.metricsPort}${contract}`;
  }

  /** The route the agent should have now (its intake key read from its file). */
  async valueFor(meta: Pick<AgentMeta, 'program' | 'port' | 'metricsPort' | 'paused' | 'spec'>): Promise<string> {
    return RouteTable.valueOf(meta, meta.paused ? null : await this.intakeKeyOf(meta.program));
  }

  /** Where a route value sends events (host and port) and the key the agent asks for, or null for paused, fenced, via, and the rest. */
  static addressOf(value: string | null | undefined): { host: string; port: number; intakeKey: string | null } | null {
    const line = value?.split(ROUTE_VALUE.schemaAfter, 1)[0];
    const m = line ? /^([^:\s]+):(\d+)( tx=\d+( max=\d+)?( ack=sink)?( k=([\w-]+))?( m=\d+)?)?$/.exec(line) : null;
    return m ? { host: m[1]!, port: Number(m[2]), intakeKey: m[7] ?? null } : null;
  }

  /** The route of a table another host runs: through that host's gateway (`via host:port`). */
  static viaValue(gateway: { host: string; port: number }): string {
    return `via ${gateway.host}:${gateway.port}`;
  }

  /**
   * Many hosts: whether another host takes this table's events now (a move handed it on, and
   * the agent here drains the channel it left). Such a route is the remote routes' alone:
   * publish, withdraw and fence leave it be; publishValue and withdrawRemote write it.
   */
  elsewhere(ref: TableRef): boolean {
    return this.placement.elsewhere(ref);
  }

  /** Sets a table's route to `value` as it is (a remote table's `via`), the table in the set. */
  async publishValue(ref: TableRef, value: string): Promise<void> {
    await redisCall(() =>
      this.redis
        .multi()
        .set(this.keys.route(ref.db, ref.table), value)
        .sadd(this.keys.tables(), entry(ref))
        .publish(this.keys.invalidateChannel(), `route:${entry(ref)}`)
        .exec(),
    );
  }

  /** Many hosts: while set, this host's own tables take no events (their routes say `fenced`). */
  get fenced(): boolean {
    return this.#fenced;
  }
  #fenced = false;

  /**
   * Stops intake of these tables (this host's own) at once: every route they have becomes
   * `fenced`, and publishing keeps it so until `unfence` (the caller then publishes them again).
   */
  async fence(refs: TableRef[]): Promise<void> {
    this.#fenced = true;
    const have = await this.values(refs);
    const tx = this.redis.multi();
    for (const [i, ref] of refs.entries()) {
      if (!have[i] || have[i] === ROUTE_VALUE.fenced || this.elsewhere(ref)) continue;
      tx.set(this.keys.route(ref.db, ref.table), ROUTE_VALUE.fenced).publish(this.keys.invalidateChannel(), `route:${entry(ref)}`);
    }
    await redisCall(() => tx.exec());
  }

  unfence(): void {
    this.#fenced = false;
  }

  async publish(meta: AgentMeta): Promise<void> {
    const ref = meta;
    if (this.elsewhere(ref)) return;
    const value = await this.valueFor(meta);
    await redisCall(() =>
      this.redis
        .multi()
        .set(this.keys.route(ref.db, ref.table), this.fenced ? ROUTE_VALUE.fenced : value)
        .sadd(this.keys.tables(), entry(ref))
        .publish(this.keys.invalidateChannel(), `route:${entry(ref)}`)
        .exec(),
    );
  }

  /** Withdraws the route; `forget` also drops the table from the set (the agent is gone). */
  async withdraw(ref: TableRef, forget = false): Promise<void> {
    if (!this.elsewhere(ref)) await this.withdrawRemote(ref, forget);
  }

  /** Withdraws a remote table's route (the remote routes' own). */
  async withdrawRemote(ref: TableRef, forget = false): Promise<void> {
    const tx = this.redis.multi().del(this.keys.route(ref.db, ref.table));
    if (forget) tx.srem(this.keys.tables(), entry(ref));
    await redisCall(() => tx.publish(this.keys.invalidateChannel(), `route:${entry(ref)}`).exec());
  }

  /** The route of each table now (null: none), in one round trip. */
  async values(refs: TableRef[]): Promise<Array<string | null>> {
    if (!refs.length) return [];
    return redisCall(() => this.redis.mget(...refs.map((r) => this.keys.route(r.db, r.table))));
  }

  /** Adds tables to the set (restoring it from disk). */
  async remember(refs: TableRef[]): Promise<void> {
    if (refs.length) await redisCall(() => this.redis.sadd(this.keys.tables(), ...refs.map(entry)));
  }

  /** Every table in the set. */
  async tables(): Promise<TableRef[]> {
    return (await redisCall(() => this.redis.smembers(this.keys.tables()))).map((e) => {
      const [db = '', table = ''] = e.split(':');
      return { db, table };
    });
  }
}
