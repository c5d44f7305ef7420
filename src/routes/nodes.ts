import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Nodes } from '../cluster/cluster.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';
import { nodeIncidentSchema, nodeSchema, nodeStateSchema, type NodeIncident } from '../resources/node.js';
import { drainBodySchema, drainResultSchema } from '../resources/move.js';
import { forbidden, incidentNotFound, notClustered } from '../errors.js';
import { dbAllowed, type Principal } from '../auth/roles.js';
import type { NodeActions } from '../placement/index.js';

/**
 * What of a host's incidents a token sees: the host's own (node_lost, node_back: a fact of the
 * cluster, like GET /v1/api/nodes) and node_down only for the tables of its dbs.
 */
const visibleTo = (p: Principal | undefined, i: NodeIncident) => i.db === null || !p || dbAllowed(p, i.db);

const nodeParams = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'id must be a host id (letters, digits, _ . -)') });

/** The hosts: who is there, alive or not, their membership state and capacity. */
export async function nodeRoutes(fastify: FastifyInstance, opts: { nodes: Nodes; actions: NodeActions | null; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['nodes'];
  app.get('/v1/api/nodes', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: 'Every host: membership state, alive (its lease-bound presence), when last seen, capacity. A single host lists itself',
      ...access('read'),
      response: { 200: ok({ clustered: z.boolean(), nodes: z.array(nodeSchema) }), ...errors(401, 403, 503) },
    },
    handler: async () => {
      const nodes = await opts.nodes.list();
      const alive = nodes.filter((n) => n.alive).length;
      return { code: 0 as const, message: `${nodes.length} host(s), ${alive} alive`, clustered: opts.nodes.clustered, nodes };
    },
  });
  app.put('/v1/api/nodes/:id/state', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags,
      summary: "Set a host's membership state: active (takes new tables), draining (keeps its tables, takes no new ones), decommissioned",
      ...access('admin'),
      params: nodeParams,
      body: z.strictObject({ state: nodeStateSchema }),
      response: { 200: ok({ node: nodeSchema }), ...errors(400, 401, 403, 404, 409, 503) },
    },
    handler: async (req) => {
      const node = await opts.nodes.setState(req.params.id, req.body.state);
      return { code: 0 as const, message: `${node.id}: ${node.state}`, node };
    },
  });
  app.post('/v1/api/nodes/:id/drain', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags,
      summary: "A planned drain: the host becomes draining (no new tables, no alarm when it goes), then each of its tables moves to another host with no gap in intake; each old agent drains its channel into its sink, then goes",
      ...access('admin'),
      params: nodeParams,
      body: drainBodySchema,
      response: { 200: ok(drainResultSchema.shape), ...errors(400, 401, 403, 404, 409, 503) },
    },
    handler: async (req) => {
      if (!opts.actions) throw notClustered('this host runs alone (ETCD_ENDPOINTS is empty): there is no other host to drain it to');
      const r = await opts.actions.drain(req.params.id, { ...req.body, by: req.principal?.sub ?? 'unknown' });
      const moved = r.moved.filter((m) => m.ok).length;
      return { code: 0 as const, message: `${r.node}: draining; ${moved} of ${r.moved.length} table(s) moved`, ...r };
    },
  });
  app.get('/v1/api/nodes/:id/incidents', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: "A host's incidents, newest first: node_lost (an active host went without a word), node_down (one per table it owned), node_back. A single host has none. A token limited to some dbs sees node_down of their tables only",
      ...access('read'),
      params: nodeParams,
      response: { 200: ok({ incidents: z.array(nodeIncidentSchema) }), ...errors(400, 401, 403) },
    },
    handler: async (req) => {
      const incidents = (opts.actions?.incidents(req.params.id) ?? []).filter((i) => visibleTo(req.principal, i));
      return { code: 0 as const, message: `${incidents.length} incident(s) of ${req.params.id}`, incidents };
    },
  });
  app.post('/v1/api/nodes/:id/incidents/:incident/ack', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags,
      summary: "Acknowledge one of a host's incidents (a token limited to some dbs: node_down of their tables only)",
      ...access('operate'),
      params: nodeParams.extend({ incident: z.string().regex(/^[0-9a-z]{10}-[0-9a-f]{8}$/, 'incident must be a host incident id') }),
      response: { 200: ok({ incident: nodeIncidentSchema }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      if (!opts.actions) throw incidentNotFound(req.params.incident);
      const found = opts.actions.incidents(req.params.id).find((i) => i.id === req.params.incident);
      // Another db's table: as if it were not there. A host's own incident concerns every db: only a token for all of them acknowledges it.
      if (found && !visibleTo(req.principal, found)) throw incidentNotFound(req.params.incident);
      if (found && found.db === null && req.principal?.dbs) throw forbidden("a host's own incident concerns every db: acknowledging it needs a token not limited to some dbs");
      const incident = await opts.actions.acknowledge(req.params.id, req.params.incident, req.principal?.sub ?? 'unknown');
      return { code: 0 as const, message: `acknowledged by ${incident.acknowledged?.by}`, incident };
    },
  });
}
