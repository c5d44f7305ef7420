import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { ROUTE_VALUE, RouteTable } from '../agents/route-table.js';
import { periodic, type Periodic } from '../periodic.js';
import type { NodeView } from '../resources/node.js';
import { holder, type TablesView } from './tables-view.js';

/** How often every remote route is compared again (a Redis that lost its data is refilled by it). */
export const REMOTE_ROUTES_SYNC_MS = 2000;

/**
 * Routes, in this host's Redis, of the tables other hosts run: `via <owner's gateway>` while the
 * owner says its agent accepts events, `paused` while paused, `nodedown` (503 NODE_DOWN) while
 * the owner's presence has lapsed, none (the table still in the set: 503 AGENT_DOWN) otherwise. So any gateway takes events for any table and hands them on once.
 *
 * Guarantees: a change of an owner's published status reaches this Redis within about 50 ms of
 * this host seeing it, and every route is compared again every REMOTE_ROUTES_SYNC_MS (after a
 * Redis loss, within that); a table that left this host's view (deleted, or now run here) loses
 * its remote route; the owner's gateway is written as an IP address (resolved here).
 */
export class RemoteRoutes {
  private job: Periodic | null = null;
  private routed = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Changes seen, and the count the last finished sync started from: a sync under way when a change came does not count. */
  private changes = 0;
  private syncedUpTo = 0;
  private readonly onChange = () => {
    this.changes++;
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.catchUp();
    }, 50);
  };

  constructor(
    private readonly view: TablesView,
    private readonly routes: RouteTable,
    private readonly nodes: () => Promise<NodeView[]>,
    private readonly self: string,
    /** Whether this host has the table's agent on disk (a table it is being given has one from the start of its create). */
    private readonly hasLocal: (ref: { db: string; table: string }) => boolean,
    private readonly log: Logger,
  ) {}

  private async catchUp(): Promise<void> {
    for (let round = 0; round < 5 && this.job && this.syncedUpTo < this.changes; round++) await this.job.runNow();
  }

  /** `db:table` of every table another host takes events for (runs, or took over in a move). */
  foreign(): Set<string> {
    return new Set(this.remote().map((e) => `${e.db}:${e.table}`));
  }

  /**
   * The tables another host takes events for. A table this host is being given (a move) is
   * routed to the host it comes from only until its agent here exists: from then on its route is
   * this host's own (the create publishes it once the agent accepts).
   */
  private remote() {
    return this.view.all().filter((e) => {
      const h = holder(e);
      return h !== null && h !== this.self && !(e.owner === this.self && this.hasLocal(e));
    });
  }

  /** Resolves once every change seen so far is in this host's routes (an API answers after it: the caller can send at once). */
  settle(): Promise<void> {
    return this.catchUp();
  }

  /** Compares every route again soon (within about 50 ms). */
  kick(): void {
    this.onChange();
  }

  start(): void {
    this.view.on('change', this.onChange);
    this.view.on('reset', this.onChange);
    this.job = periodic('remote routes', REMOTE_ROUTES_SYNC_MS, () => this.sync(), this.log);
  }

  async stop(): Promise<void> {
    this.view.off('change', this.onChange);
    this.view.off('reset', this.onChange);
    if (this.timer) clearTimeout(this.timer);
    await this.job?.stop();
  }

  private async sync(): Promise<void> {
    const from = this.changes;
    await this.compare();
    this.syncedUpTo = Math.max(this.syncedUpTo, from);
  }

  private async compare(): Promise<void> {
    const gateways = new Map<string, string>();
    const down = new Set<string>();
    for (const n of await this.nodes()) {
      if (!n.alive) down.add(n.id);
      if (!n.alive || !n.gatewayUrl) continue;
      const u = new URL(n.gatewayUrl);
      const host = isIP(u.hostname) ? u.hostname : await lookup(u.hostname, { family: 4 }).then((a) => a.address, () => null);
      if (host) gateways.set(n.id, RouteTable.viaValue({ host, port: Number(u.port) }));
    }
    const remote = this.remote();
    const want = remote.map((e) => {
      const s = e.status?.status;
      const h = holder(e)!;
      if (down.has(h)) return ROUTE_VALUE.nodeDown;
      // A move's new owner that has not answered yet: the status is still the old host's.
      if (!s || e.status?.node !== h) return null;
      if (s.paused) return 'paused';
      return s.desired === 'running' && s.accepting ? (gateways.get(h) ?? null) : null;
    });
    const have = await this.routes.values(remote);
    const now = new Set<string>();
    for (const [i, e] of remote.entries()) {
      now.add(`${e.db}:${e.table}`);
      if (have[i] === want[i]) continue;
      if (want[i]) await this.routes.publishValue(e, want[i]!);
      else await this.routes.withdrawRemote(e);
    }
    // In the set (404 vs 503): each of these tables exists, on another host.
    await this.routes.remember(remote);
    for (const t of this.routed) {
      if (now.has(t)) continue;
      const [db, table] = t.split(':') as [string, string];
      // Gone, or run here now (its own route is the reconciler's): only a remote route is ours to drop.
      const e = this.view.get(db, table);
      if (e && (holder(e) === this.self || e.owner === this.self)) continue;
      await this.routes.withdrawRemote({ db, table }, true);
    }
    this.routed = now;
  }
}
