import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { revisionOf, type AgentStore } from '../store/agent-store.js';
import { registerForwarding } from './forward.js';
import type { AgentService } from '../agents/agent-service.js';
import type { Lifecycle } from '../agents/lifecycle.js';
import type { EtcdCluster } from '../cluster/cluster.js';
import { makeClusterKeys } from '../cluster/keys.js';
import type { Config } from '../config.js';
import { ClusterLifecycle } from './cluster-lifecycle.js';
import { TableOwner } from './owner.js';
import { TablesView } from './tables-view.js';
import { RemoteRoutes } from './remote-routes.js';
import type { RouteTable } from '../agents/route-table.js';
import type { Reconciler } from '../recovery/reconciler.js';
import type { TokenService } from '../tokens/token-service.js';
import { TokenSync } from './token-sync.js';
import { RevocationSync } from './revocation-sync.js';
import type { ControlTokenRevocations } from '../auth/revocations.js';

/** Tables across hosts: the view of etcd's tables, this host's owner side, and the lifecycle the routes call. */
export function clusterLifecycle(
  cfg: Config,
  cluster: EtcdCluster,
  parts: { agents: AgentService; store: AgentStore; routes: RouteTable; reconciler: Reconciler; tokens: TokenService; revocations: ControlTokenRevocations },
  log: Logger,
): { lifecycle: Lifecycle; register(app: FastifyInstance): void } {
  const { agents } = parts;
  const keys = makeClusterKeys(cfg.ETCD_PREFIX);
  const view = new TablesView(cluster.etcd, keys, log);
  const specOf = async (program: string) => {
    const m = await parts.store.readMeta(program);
    return m ? { revision: revisionOf(m), spec: m.spec } : null;
  };
  const owner = new TableOwner(cluster.etcd, keys, view, cfg.NODE_ID, agents, specOf, log);
  const remote = new RemoteRoutes(view, parts.routes, () => cluster.list(), cfg.NODE_ID, log);
  parts.reconciler.foreign.push(() => remote.foreign());
  // Out of touch with etcd for 2/3 of the lease TTL: this host's own tables stop taking events
  // before another host could be given them; renewed, the routes follow readiness again.
  cluster.membership.fencing.push(async (fenced) => {
    if (fenced) {
      await parts.routes.fence(await parts.store.allMetas());
      log.warn('fenced: intake of this host\'s tables stopped (503 NODE_FENCED) until etcd renews its lease');
    } else {
      parts.routes.unfence();
      await parts.reconciler.syncRoutes(true);
      log.info('unfenced: intake open again');
    }
  });
  const tokens = new TokenSync(cluster.etcd, keys, parts.tokens, log);
  const revocations = new RevocationSync(cluster.etcd, keys, parts.revocations, log);
  cluster.onJoin.push(async () => {
    await revocations.start();
    await tokens.start();
    await view.start();
    await owner.register();
    owner.start();
    remote.start();
  });
  cluster.onLeave.push(async () => {
    await remote.stop();
    await owner.stop();
    await view.stop();
    await tokens.stop();
    await revocations.stop();
  });
  return {
    lifecycle: new ClusterLifecycle(cfg, cluster, keys, view, agents),
    register: (app) => registerForwarding(app, view, cluster, cfg.NODE_ID),
  };
}
