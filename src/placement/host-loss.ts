import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { EtcdMembers } from '../cluster/members.js';
import type { Logger } from 'pino';
import { Mirror } from '../cluster/mirror.js';
import type { Coordinator } from '../cluster/coordinator.js';
import type { ClusterKeys } from '../cluster/keys.js';
import type { Membership } from '../cluster/membership.js';
import { incidentNotFound } from '../errors.js';
import type { WebhookOutbox } from '../incidents/webhook-outbox.js';
import { periodic, type Periodic } from '../periodic.js';
import { nodeIncidentSchema, type NodeIncident, type NodeView } from '../resources/node.js';
import type { MoveResult } from '../resources/move.js';
import type { TablesView } from './tables-view.js';

/** How often the coordinator compares the hosts with the incidents raised for them. */
export const HOST_LOSS_CHECK_MS = 250;
/** Incidents kept per host in etcd (the oldest go first). */
export const NODE_INCIDENTS_KEPT = 200;

interface Kept {
  incident: NodeIncident;
  key: string;
  modRevision: number;
}

/**
 * Crash told from deliberate removal, per host (the original design's persistent + ephemeral
 * pair, `003_*`, lifted to hosts): the coordinator raises `node_lost` for an `active` host whose
 * presence lapsed without its saying it leaves (no `left` key), with one `node_down` per table
 * it owned (the state and health it last reported, and when), and `node_back` once it is alive
 * again. A host that is draining or decommissioned, or that stopped cleanly, raises nothing.
 *
 * Guarantees: incidents live in etcd (`<e>incidents/<node>/<id>`), so a new coordinator knows
 * what its predecessor raised and raises each loss once; every host reads them from memory (a
 * mirror); a loss is raised within HOST_LOSS_CHECK_MS of the coordinator seeing the presence
 * go (itself within the lease TTL of the host's last renewal); webhooks (WEBHOOK_URLS) get each
 * incident as the coordinator raises it; a table with `failoverAfterSeconds` is moved off a lost
 * host once, when that long has passed.
 */
export class HostLoss {
  private readonly kept = new Map<string, Kept>();
  private readonly mirror: Mirror;
  private job: Periodic | null = null;

  constructor(
    private readonly etcd: Etcd3,
    members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly membership: Membership,
    private readonly coordinator: Coordinator,
    private readonly view: TablesView,
    private readonly webhooks: WebhookOutbox | null,
    private readonly ttlSeconds: number,
    /** Moves a table (ClusterLifecycle.move): the failover's way. */
    private readonly move: (ref: { db: string; table: string }, opts: { abandonChannel: boolean; by: string }) => Promise<MoveResult>,
    private readonly log: Logger,
  ) {
    this.mirror = new Mirror(members, keys.incidents(), {
      reset: (entries) => {
        this.kept.clear();
        for (const [key, e] of entries) this.keep(key, e.value, e.modRevision);
      },
      put: (key, e) => this.keep(key, e.value, e.modRevision),
      delete: (key) => void this.kept.delete(key),
    }, log);
  }

  async start(): Promise<void> {
    await this.mirror.start();
    this.job = periodic('host loss', HOST_LOSS_CHECK_MS, () => this.check(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
    await this.mirror.stop();
  }

  /** A host's incidents, newest first. */
  list(node: string): NodeIncident[] {
    return [...this.kept.values()]
      .map((k) => k.incident)
      .filter((i) => i.node === node)
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : b.id.localeCompare(a.id)));
  }

  /** Marks one acknowledged (compare-and-set); 404 INCIDENT_NOT_FOUND if the host has no such incident. */
  async acknowledge(node: string, id: string, by: string): Promise<NodeIncident> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const k = this.kept.get(this.keys.incidents(node) + id);
      if (!k) throw incidentNotFound(id);
      if (k.incident.acknowledged) return k.incident;
      const next = { ...k.incident, acknowledged: { by, at: new Date().toISOString() } };
      const r = await this.etcd.if(k.key, 'Mod', '==', k.modRevision).then(this.etcd.put(k.key).value(JSON.stringify(next))).commit();
      if (r.succeeded) {
        this.kept.set(k.key, { ...k, incident: next, modRevision: Number(r.header.revision) });
        return next;
      }
      // Changed since this copy was taken (or taken before its own put's revision was known): read it again.
      const now = (await this.etcd.get(k.key).exec()).kvs[0];
      if (!now) throw incidentNotFound(id);
      this.keep(k.key, now.value.toString(), Number(now.mod_revision));
    }
    throw incidentNotFound(id);
  }

  private keep(key: string, value: string, modRevision: number): void {
    try {
      const r = nodeIncidentSchema.safeParse(JSON.parse(value));
      if (r.success) this.kept.set(key, { incident: r.data, key, modRevision });
    } catch {
      this.log.warn({ key }, 'ignored a host incident in etcd that is not JSON');
    }
  }

  /** Whether the host's newest loss has not been followed by its return. */
  private lost(node: string): boolean {
    return this.list(node).find((i) => i.type === 'node_lost' || i.type === 'node_back')?.type === 'node_lost';
  }

  private async check(): Promise<void> {
    if (!this.coordinator.leading) return;
    for (const n of this.membership.nodes()) {
      const lost = this.lost(n.id);
      if (!n.alive && !lost && n.state === 'active' && !n.leftAt) await this.raiseLost(n);
      else if (n.alive && lost) await this.raise(n.id, 'node_back', 'info', `host ${n.id} is alive again`, {}, 'Nothing: it is back. Tables moved away while it was gone drain their old channels there now.');
      else if (!n.alive && lost) this.failOver(n.id);
    }
  }

  /**
   * Tables of a lost host that ask for it (`failoverAfterSeconds`, never less than the lease
   * TTL) move to another host once the host has been lost that long, each once per loss; their
   * old channels drain when the host returns.
   */
  private failOver(node: string): void {
    const since = this.list(node).find((i) => i.type === 'node_lost');
    if (!since) return;
    const lostFor = (Date.now() - Date.parse(since.at)) / 1000;
    for (const e of this.view.all()) {
      const after = e.spec?.spec.failoverAfterSeconds;
      const key = `${since.id}/${e.db}/${e.table}`;
      if (e.owner !== node || after === undefined || lostFor < Math.max(after, this.ttlSeconds) || this.failingOver.has(key)) continue;
      this.failingOver.add(key);
      const log = this.log.child({ table: `${e.db}.${e.table}`, from: node });
      log.warn({ lostForSeconds: Math.round(lostFor) }, 'failover: moving the table off its lost host');
      void this.move(e, { abandonChannel: true, by: `coordinator ${this.membership.id} (failover)` }).then(
        (r) => log.warn({ to: r.to }, 'failover: the table runs on its new host; the old channel drains when its host returns'),
        (err: unknown) => {
          log.error({ err }, 'failover: the move failed; retrying on the next check');
          this.failingOver.delete(key);
        },
      );
    }
  }

  private readonly failingOver = new Set<string>();

  private async raiseLost(n: NodeView): Promise<void> {
    const tables = this.view.all().filter((e) => e.owner === n.id);
    await this.raise(
      n.id,
      'node_lost',
      'critical',
      `host ${n.id} is lost: its presence lapsed while it was active (it crashed, froze or was cut off); ${tables.length} table(s) on it are down`,
      { tables: tables.length, lastSeenSecondsAgo: n.lastSeenSecondsAgo },
      `Find out why ${n.id} went (its API, its network). If it will not come back soon, move its tables: POST /v1/api/<db>/<table>/move {"abandonChannel": true}; each channel drains into its sink when the host returns.`,
    );
    for (const e of tables) {
      const s = e.status?.status ?? null;
      await this.raise(
        n.id,
        'node_down',
        'critical',
        `${e.db}.${e.table} is down: its host ${n.id} is lost (last reported ${s?.state ?? 'nothing'}, ${s?.health ?? 'unknown'}${e.status ? `, at ${e.status.at}` : ''})`,
        { lastState: s?.state ?? null, lastHealth: s?.health ?? null, since: e.status?.at ?? null, channelEvents: s?.metrics?.channelSize ?? null },
        `Senders get 503 NODE_DOWN. Wait for ${n.id}, or move the table: POST /v1/api/${e.db}/${e.table}/move {"abandonChannel": true}.`,
        { db: e.db, table: e.table },
      );
    }
  }

  private async raise(
    node: string,
    type: NodeIncident['type'],
    severity: NodeIncident['severity'],
    message: string,
    details: NodeIncident['details'],
    suggestedAction: string,
    ref: { db: string; table: string } | null = null,
  ): Promise<void> {
    const at = new Date().toISOString();
    const id = `${Date.now().toString(36).padStart(10, '0')}-${randomBytes(4).toString('hex')}`;
    const incident: NodeIncident = { id, at, node, type, severity, message, db: ref?.db ?? null, table: ref?.table ?? null, details, suggestedAction, raisedBy: this.membership.id, acknowledged: null };
    const key = this.keys.incidents(node) + id;
    const put = await this.etcd.put(key).value(JSON.stringify(incident)).exec();
    // The watch may have brought it already (with its revision): keep whichever is newer.
    const revision = Number(put.header.revision);
    if ((this.kept.get(key)?.modRevision ?? 0) < revision) this.kept.set(key, { incident, key, modRevision: revision });
    const log = this.log.child({ node, type });
    if (severity === 'info') log.info({ incident }, message);
    else log.warn({ incident }, message);
    await this.webhooks?.send(id, incident, null).catch((err: unknown) => log.error({ err }, 'could not keep the incident for its webhooks'));
    const all = this.list(node);
    for (const old of all.slice(NODE_INCIDENTS_KEPT)) await this.etcd.delete().key(this.keys.incidents(node) + old.id).exec();
  }
}
