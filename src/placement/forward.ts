import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Nodes } from '../cluster/cluster.js';
import { clusterUnavailable } from '../errors.js';
import type { TablesView } from './tables-view.js';

/** The header a forwarded call carries: the host that gets it answers itself, never forwards again. */
export const FORWARDED_HEADER = 'x-flume-forwarded';

/**
 * Per-table calls that act on the owner's own files and processes (config, logs,
 * incidents, history, a fresh status, request traces), made through a host that does not run the table: handed
 * to the owner's API as they came (the same token: every host shares the signing key) and its
 * answer passed back, streams included. The lifecycle itself goes through etcd instead
 * (ClusterLifecycle). Authorization is checked here first, and again by the owner.
 */
const FORWARDED: ReadonlyArray<[method: string, url: string]> = [
  ['GET', '/v1/api/:db/:table'],
  ['PUT', '/v1/api/:db/:table'],
  ['GET', '/v1/api/:db/:table/config'],
  ['PUT', '/v1/api/:db/:table/config'],
  ['PATCH', '/v1/api/:db/:table/config'],
  ['GET', '/v1/api/:db/:table/config/revisions'],
  ['POST', '/v1/api/:db/:table/config/rollback'],
  ['GET', '/v1/api/:db/:table/incidents'],
  ['POST', '/v1/api/:db/:table/incidents/:id/ack'],
  ['GET', '/v1/api/:db/:table/history'],
  ['GET', '/v1/api/:db/:table/logs'],
  ['GET', '/v1/api/:db/:table/loggers'],
  ['PUT', '/v1/api/:db/:table/loggers/:logger'],
  ['DELETE', '/v1/api/:db/:table/loggers/:logger'],
  ['GET', '/v1/api/:db/:table/quarantine'],
  ['POST', '/v1/api/:db/:table/quarantine/replay'],
  ['DELETE', '/v1/api/:db/:table/quarantine'],
  // The gateway that committed a request wrote its trace in its own host's Redis.
  ['GET', '/v1/api/:db/:table/trace/:requestId'],
];
const PASSED_BACK = ['content-type', 'retry-after', 'etag', 'cache-control', 'allow', 'location', 'content-location', 'x-operation-id', 'preference-applied', 'idempotent-replayed'];
/** The caller's headers that change what the owner does (conditions, async, idempotency), passed on as they came. */
const PASSED_ON = ['if-match', 'if-none-match', 'prefer', 'idempotency-key', 'last-event-id'];

export function registerForwarding(app: FastifyInstance, view: TablesView, nodes: Nodes, self: string): void {
  const forwarded = new Set(FORWARDED.map(([m, u]) => `${m} ${u}`));
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const route = `${req.method} ${req.routeOptions.url}`;
    const fresh = route === 'GET /v1/api/:db/:table/status' && /[?&]fresh=(true|1)(&|$)/.test(req.url);
    if ((!forwarded.has(route) && !fresh) || req.headers[FORWARDED_HEADER]) return;
    const { db, table } = req.params as { db: string; table: string };
    const owner = view.get(db, table)?.owner;
    if (!owner || owner === self) return;
    const node = (await nodes.list()).find((n) => n.id === owner);
    if (!node?.alive || !node.apiUrl) throw clusterUnavailable(`${db}.${table} runs on host ${owner}, which is not alive now; retry`);
    // The caller leaving ends the forwarded call too (a followed log is a stream).
    const left = new AbortController();
    req.raw.once('close', () => left.abort());
    const signal = req.url.includes('follow=') ? left.signal : AbortSignal.any([left.signal, AbortSignal.timeout(120_000)]);
    let res: Response;
    try {
      res = await fetch(`${node.apiUrl}${req.url}`, {
        method: req.method,
        headers: {
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
          ...Object.fromEntries(PASSED_ON.flatMap((h) => (typeof req.headers[h] === 'string' ? [[h, req.headers[h] as string]] : []))),
          'x-request-id': req.id,
          ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
          [FORWARDED_HEADER]: self,
        },
        body: req.body !== undefined && req.method !== 'GET' ? JSON.stringify(req.body) : undefined,
        signal,
      });
    } catch (err) {
      throw clusterUnavailable(`host ${owner}, which runs ${db}.${table}, did not answer: ${(err as Error).message}`);
    }
    for (const h of PASSED_BACK) {
      const v = res.headers.get(h);
      if (v) void reply.header(h, v);
    }
    void reply.header('x-flume-node', owner);
    reply.status(res.status);
    // Passed back as it comes (an event stream too), not serialized again.
    return reply.send(res.body ? Readable.fromWeb(res.body as import('node:stream/web').ReadableStream) : null);
  });
}
