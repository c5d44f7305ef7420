import type { Logger } from 'pino';
import type { RouteTable } from '../agents/route-table.js';
import type { Membership } from '../cluster/membership.js';
import { periodic, type Periodic } from '../periodic.js';
import type { Reconciler } from '../recovery/reconciler.js';
import type { AgentStore } from '../store/agent-store.js';
import type { TablesView } from './tables-view.js';

/**
 * The fence closes this much before FENCE_AFTER_SECONDS (a renewal handled late by a busy event
 * loop looks later than it was); a host taking over opens that much after (Membership.intakeStopsBy).
 */
export const FENCE_EARLY_SECONDS = 1;

/** How often the fence compares the lease's age with FENCE_AFTER_SECONDS. */
export const INTAKE_FENCE_CHECK_MS = 250;

/**
 * This host's intake while it is out of touch with etcd: its own tables take events for at most
 * `fenceAfterSeconds` (less FENCE_EARLY_SECONDS; at least until the lease fences, 2/3 of the TTL)
 * after its last successful lease renewal (its monotonic clock), then their
 * routes become `fenced` (503 NODE_FENCED). Once the lease is renewed, every table is read from
 * etcd again, then the routes follow readiness.
 *
 * Guarantees: judged by the lease's age at each check, not by fence/unfence events, so a lease
 * that flaps while out of touch cannot keep intake open; intake reopens only after a full read
 * of the tables that finished while the lease is renewed (a table moved away meanwhile is not
 * reopened here); a read that hangs holds intake shut, never the fence.
 */
export class IntakeFence {
  private job: Periodic | null = null;

  constructor(
    private readonly membership: Membership,
    private readonly routes: RouteTable,
    private readonly store: AgentStore,
    private readonly view: TablesView,
    private readonly reconciler: Reconciler,
    private readonly fenceAfterSeconds: number,
    private readonly log: Logger,
  ) {
    // A fence or a renewal is looked at at once (the check never waits on the fencing chain).
    membership.onFencing(async () => void this.job?.runNow());
  }

  start(): void {
    this.job = periodic('intake fence', INTAKE_FENCE_CHECK_MS, () => this.check(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
    this.job = null;
  }

  private async check(): Promise<void> {
    if (!this.routes.fenced) {
      if (this.membership.fenced && this.membership.leaseAgeSeconds > this.fenceAfterSeconds - FENCE_EARLY_SECONDS) {
        await this.routes.fence(await this.store.allMetas());
        this.log.warn({ sinceRenewalSeconds: Math.round(this.membership.leaseAgeSeconds * 10) / 10 }, "fenced: intake of this host's tables stopped (503 NODE_FENCED) until etcd renews its lease");
      }
      return;
    }
    if (this.membership.fenced) return;
    // What happened while this host was cut off (a table moved away) is read before intake
    // opens again: a stale view would reopen a table another host now takes.
    await this.view.reread();
    if (this.membership.fenced) return;
    this.routes.unfence();
    await this.reconciler.syncRoutes(true);
    this.log.info('unfenced: intake open again');
  }
}
