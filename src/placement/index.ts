import type { WebhookOutbox } from '../incidents/webhook-outbox.js';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { revisionOf, type AgentStore } from '../store/agent-store.js';
import { programName } from '../resources/table.js';
import { registerForwarding } from './forward.js';
import type { AgentService } from '../agents/agent-service.js';
import type { Lifecycle } from '../agents/lifecycle.js';
import type { EtcdCluster, MemberParts } from '../cluster/cluster.js';
import type { TablePlacement } from '../agents/placement.js';
import { makeClusterKeys } from '../cluster/keys.js';
import type { Config } from '../config.js';
import { ClusterLifecycle } from './cluster-lifecycle.js';
import { TableOwner } from './owner.js';
import { Drainer } from './drainer.js';
import { IntakeFence } from './intake-fence.js';
import { intakeHeld, TablesView, type TableEntry } from './tables-view.js';
import { RemoteRoutes } from './remote-routes.js';
import type { RouteTable } from '../agents/route-table.js';
import type { Reconciler } from '../recovery/reconciler.js';
import type { TokenService } from '../tokens/token-service.js';
import { TokenSync } from './token-sync.js';
import { RevocationSync } from './revocation-sync.js';
import type { ControlTokenRevocations } from '../auth/revocations.js';
import type { Quotas } from '../tenants/quotas.js';
import { QuotaSync } from './quota-sync.js';
import type { DrainResult } from '../resources/move.js';
import type { NodeIncident } from '../resources/node.js';
import { Coordinator } from '../cluster/coordinator.js';
import { etcdCall } from '../cluster/cluster.js';
import { HostLoss } from './host-loss.js';

/** On every answer while this host is out of touch with etcd: since when its view may be stale (ISO time). */
export const STALE_HEADER = 'x-flume-stale-since';

/** What the nodes' routes do with many hosts (none on a single host). */
export interface NodeActions {
  /** 404 NODE_NOT_FOUND, 503 CLUSTER_UNAVAILABLE; each table's outcome otherwise. */
  drain(node: string, opts: { abandonChannel: boolean; concurrency: number; by: string }): Promise<DrainResult>;
  /** The host's incidents (node_lost, node_down, node_back), newest first; memory only. */
  incidents(node: string): NodeIncident[];
  /** 404 INCIDENT_NOT_FOUND, 503 CLUSTER_UNAVAILABLE. */
  acknowledge(node: string, id: string, by: string): Promise<NodeIncident>;
}

/** Tables across hosts: the view of etcd's tables, this host's owner side, and the lifecycle the routes call. */
export function clusterLifecycle(
  cfg: Config,
  cluster: EtcdCluster,
  parts: {
    agents: AgentService; store: AgentStore; routes: RouteTable; reconciler: Reconciler; tokens: TokenService; revocations: ControlTokenRevocations; quotas: Quotas;
    /** Where node incidents go besides etcd (WEBHOOK_URLS), or null. */
    webhooks: WebhookOutbox | null;
  },
  log: Logger,
): {
  lifecycle: Lifecycle;
  /** For the route table (app.ts binds its seam to it). */
  placement: TablePlacement;
  /** What joins with this host and leaves with it: EtcdCluster.start(member). */
  member: MemberParts;
  actions: NodeActions;
  register(app: FastifyInstance): void;
} {
  const { agents } = parts;
  const keys = makeClusterKeys(cfg.ETCD_PREFIX);
  const view = new TablesView(cluster.etcd, cluster.members, keys, log);
  const specOf = async (program: string) => {
    const m = await parts.store.readMeta(program);
    return m ? { revision: revisionOf(m), spec: m.spec } : null;
  };
  const owner = new TableOwner(cluster.etcd, keys, view, cfg.NODE_ID, agents, specOf, log);
  const remote = new RemoteRoutes(view, parts.routes, () => cluster.list(), cfg.NODE_ID, (ref) => parts.store.hasMeta(programName(ref)), log);
  const drainer = new Drainer(cluster.etcd, keys, view, cfg.NODE_ID, agents, (program) => parts.store.hasMeta(program), () => remote.kick(), log);
  // A table another host took over is routed there; this host's agent of it only drains. A
  // table moved here off a host that is away stays shut until that host has surely fenced.
  const placement: TablePlacement = {
    elsewhere: (ref) => {
      const e = view.get(ref.db, ref.table);
      return drainer.drainOnly(e) || (e !== undefined && e.owner === cfg.NODE_ID && intakeHeld(e));
    },
    foreign: () => remote.foreign(),
  };
  const opening = new Map<string, NodeJS.Timeout>();
  view.on('change', (e: TableEntry) => {
    const id = `${e.db}/${e.table}`;
    if (e.owner !== cfg.NODE_ID || !intakeHeld(e) || opening.has(id)) return;
    const t = setTimeout(() => {
      opening.delete(id);
      void parts.reconciler.syncRoutes(true).catch((err: unknown) => log.warn({ err }, 'could not open intake of a moved table'));
    }, Date.parse(e.desired!.openAt!) - Date.now() + 50);
    t.unref();
    opening.set(id, t);
    log.warn({ table: `${e.db}.${e.table}`, openAt: e.desired!.openAt }, 'moved here off a host that is away: intake opens once it has surely stopped');
  });
  // Out of touch with etcd, intake goes on for FENCE_AFTER_SECONDS (default 2/3 of the TTL, when
  // the lease fences): then this host's own tables stop taking events, before another host could
  // be given them (a move off an away host waits that out); renewed, the routes follow readiness.
  const fence = new IntakeFence(cluster.membership, parts.routes, parts.store, view, parts.reconciler, cfg.FENCE_AFTER_SECONDS ?? (cfg.NODE_LEASE_TTL_SECONDS * 2) / 3, log);
  const coordinator = new Coordinator(cluster.etcd, keys, cluster.membership, cfg.NODE_LEASE_TTL_SECONDS, log);
  const lifecycle = new ClusterLifecycle(cfg, cluster, keys, view, agents, () => remote.settle());
  const hostLoss = new HostLoss(cluster.etcd, cluster.members, keys, cluster.membership, coordinator, view, parts.webhooks, cfg.NODE_LEASE_TTL_SECONDS, (ref, opts) => lifecycle.move(ref, opts), log);
  const tokens = new TokenSync(cluster.etcd, cluster.members, keys, parts.tokens, log);
  const revocations = new RevocationSync(cluster.etcd, cluster.members, keys, parts.revocations, log);
  const quotas = new QuotaSync(cluster.etcd, cluster.members, keys, parts.quotas, log);
  const member: MemberParts = {
    join: async () => {
    await revocations.start();
    await quotas.start();
    await tokens.start();
    await view.start();
    await owner.register();
    owner.start();
    remote.start();
    drainer.start();
    fence.start();
    await hostLoss.start();
    coordinator.start();
    },
    leave: async () => {
    await coordinator.stop();
    await hostLoss.stop();
    await fence.stop();
    await drainer.stop();
    await remote.stop();
    await owner.stop();
    await view.stop();
    await tokens.stop();
    await revocations.stop();
    await quotas.stop();
    },
  };
  return {
    lifecycle,
    placement,
    member,
    actions: {
      drain: (node, opts) => lifecycle.drain(node, opts),
      incidents: (node) => hostLoss.list(node),
      acknowledge: (node, id, by) => etcdCall(() => hostLoss.acknowledge(node, id, by)),
    },
    register: (app) => {
      registerForwarding(app, view, cluster, cfg.NODE_ID);
      // Out of touch with etcd: every answer says what it reads of the cluster may be stale, and since when.
      app.addHook('onSend', async (_req, reply, payload) => {
        const since = cluster.membership.staleSince;
        if (since) void reply.header(STALE_HEADER, since);
        return payload;
      });
    },
  };
}
