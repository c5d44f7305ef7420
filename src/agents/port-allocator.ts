import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { Redis } from 'ioredis';
import { noFreePort } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

// KEYS[1] ports hash; ARGV[1] port; ARGV[2] owner.
// Releases the port only if ARGV[2] still holds it. Returns 1 if released, 0 otherwise.
const RELEASE_IF_OWNER = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`;

/**
 * The kernel's ephemeral port range (net.ipv4.ip_local_port_range): the source ports it hands to
 * outgoing connections at any moment. A listening port inside it can be taken by any connection
 * between our bind probe and the agent's own bind, so agent ports are never taken from it.
 */
export function ephemeralPortRange(file = '/proc/sys/net/ipv4/ip_local_port_range'): [number, number] | null {
  try {
    const [lo, hi] = readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);
    return lo && hi ? [lo, hi] : null;
  } catch {
    return null;
  }
}

/** True if nothing on this host holds `port` on `host`: we bind it and let it go at once. */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * Hands out agent ports from a range.
 *
 * Guarantees:
 * - allocate() is atomic across every process sharing the Redis: a port is reserved with HSETNX,
 *   so two concurrent callers never get the same port.
 * - it skips ports reserved in Redis, ports that an agent on disk owns (disk is the truth: a
 *   stopped agent keeps its ports even while Redis has lost every reservation) and ports
 *   already bound on this host (probed by binding), and the kernel's ephemeral range (see
 *   ephemeralPortRange), where an outgoing connection could take the port before the agent binds.
 * - release() frees a port only for the owner that holds it, so a stale release cannot free a
 *   port another table has since taken. Both are idempotent.
 */
export class PortAllocator {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly range: [number, number],
    /** Ports owned by agents on disk, whatever Redis says. */
    private readonly ownedOnDisk: () => Promise<Map<number, string>> = async () => new Map(),
    private readonly ephemeral: [number, number] | null = ephemeralPortRange(),
  ) {}

  /** The part of the range agents get ports from: PORT_RANGE less the ephemeral range. */
  usable(): { count: number; skipped: [number, number] | null } {
    const [lo, hi] = this.range;
    const e = this.ephemeral;
    if (!e || e[1] < lo || e[0] > hi) return { count: hi - lo + 1, skipped: null };
    const skipped: [number, number] = [Math.max(lo, e[0]), Math.min(hi, e[1])];
    return { count: hi - lo + 1 - (skipped[1] - skipped[0] + 1), skipped };
  }

  /** Usable ports no agent holds (a reservation in Redis, or one on disk). */
  async free(): Promise<number> {
    const reserved = new Set((await redisCall(() => this.redis.hkeys(this.keys.ports()))).map(Number));
    for (const port of (await this.ownedOnDisk()).keys()) reserved.add(port);
    return Math.max(0, this.usable().count - reserved.size);
  }

  async allocate(owner: string): Promise<number> {
    const [lo, hi] = this.range;
    const reserved = new Set(
      (await redisCall(() => this.redis.hkeys(this.keys.ports()))).map(Number),
    );
    const owned = await this.ownedOnDisk();
    const e = this.ephemeral;
    for (let port = lo; port <= hi; port++) {
      if (e && port >= e[0] && port <= e[1]) {
        port = e[1];
        continue;
      }
      if (reserved.has(port) || owned.has(port)) continue;
      if (!(await canBind(port))) continue;
      const won = await redisCall(() => this.redis.hsetnx(this.keys.ports(), String(port), owner));
      if (won === 1) return port;
    }
    throw noFreePort(this.range, this.usable().skipped);
  }

  /** Records `port` for `owner` (used to restore reservations from disk). True if now held by owner. */
  async reserve(port: number, owner: string): Promise<boolean> {
    await redisCall(() => this.redis.hsetnx(this.keys.ports(), String(port), owner));
    return (await this.holder(port)) === owner;
  }

  async release(port: number, owner: string): Promise<void> {
    await redisCall(() => this.redis.eval(RELEASE_IF_OWNER, 1, this.keys.ports(), String(port), owner));
  }

  async holder(port: number): Promise<string | null> {
    return redisCall(() => this.redis.hget(this.keys.ports(), String(port)));
  }
}

/** True if something accepts a TCP connection on host:port within timeoutMs. */
export function acceptsConnections(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
