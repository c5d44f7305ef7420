import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { ROUTE_VALUE, RouteTable } from '../agents/route-table.js';
import { periodic, type Periodic } from '../periodic.js';
import type { NodeView } from '../resources/node.js';
import type { TablesView } from './tables-view.js';

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
  private readonly onChange = () => {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.job?.runNow();
    }, 50);
  };

  constructor(
    private readonly view: TablesView,
    private readonly routes: RouteTable,
    private readonly nodes: () => Promise<NodeView[]>,
    private readonly self: string,
    private readonly log: Logger,
  ) {}

  /** `db:table` of every table another host runs. */
  foreign(): Set<string> {
    return new Set(this.view.all().filter((e) => e.owner && e.owner !== this.self).map((e) => `${e.db}:${e.table}`));
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
    const gateways = new Map<string, string>();
    const down = new Set<string>();
    for (const n of await this.nodes()) {
      if (!n.alive) down.add(n.id);
      if (!n.alive || !n.gatewayUrl) continue;
      const u = new URL(n.gatewayUrl);
      const host = isIP(u.hostname) ? u.hostname : await lookup(u.hostname, { family: 4 }).then((a) => a.address, () => null);
      if (host) gateways.set(n.id, RouteTable.viaValue({ host, port: Number(u.port) }));
    }
    const remote = this.view.all().filter((e) => e.owner && e.owner !== this.self);
    const want = remote.map((e) => {
      const s = e.status?.status;
      if (down.has(e.owner!)) return ROUTE_VALUE.nodeDown;
      if (!s) return null;
      if (s.paused) return 'paused';
      return s.desired === 'running' && s.accepting ? (gateways.get(e.owner!) ?? null) : null;
    });
    const have = await this.routes.values(remote);
    const now = new Set<string>();
    for (const [i, e] of remote.entries()) {
      now.add(`${e.db}:${e.table}`);
      if (have[i] === want[i]) continue;
      if (want[i]) await this.routes.publishValue(e, want[i]!);
      else await this.routes.withdraw(e);
    }
    // In the set (404 vs 503): each of these tables exists, on another host.
    await this.routes.remember(remote);
    for (const t of this.routed) {
      if (now.has(t)) continue;
      const [db, table] = t.split(':') as [string, string];
      // Gone, or run here now (its own route is the reconciler's): only a remote route is ours to drop.
      if (this.view.get(db, table)?.owner === this.self) continue;
      await this.routes.withdraw({ db, table }, true);
    }
    this.routed = now;
  }
}
