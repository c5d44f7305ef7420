import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Nodes } from '../cluster/cluster.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';
import { nodeSchema, nodeStateSchema } from '../resources/node.js';

const nodeParams = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'id must be a host id (letters, digits, _ . -)') });

/** The hosts: who is there, alive or not, their membership state and capacity. */
export async function nodeRoutes(fastify: FastifyInstance, opts: { nodes: Nodes; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['nodes'];
  app.get('/v1/api/nodes', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: 'Every host: membership state, alive (its lease-bound presence), when last seen, capacity. A single host lists itself',
      ...access('read'),
      response: { 200: ok({ clustered: z.boolean(), nodes: z.array(nodeSchema) }), ...errors(401, 403) },
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
}
