import type { FastifyInstance } from 'fastify';
import { flagSchema, isSet } from '../flag.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ConfigService } from '../agents/config-service.js';
import { tableParamsSchema } from '../resources/table.js';
import { createBodySchema } from '../resources/agent-spec.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, notModified, ok } from '../resources/envelope.js';
import { configChangeSchema, configViewSchema, revisionSchema } from '../resources/revision.js';
import { etagOf, preconditionOf } from '../http/conditional.js';
import { acceptedBody, answering } from '../http/prefer.js';
import type { OperationService } from '../operations/operation-service.js';
import { preconditionRequired } from '../errors.js';
import { programName } from '../resources/table.js';

const changeQuery = z.strictObject({
  dryRun: flagSchema.optional().describe('true: validate and diff only, nothing is written or restarted'),
});
// A merge patch (RFC 7396) over the desired spec: objects merge, null restores a default.
const patchBodySchema = z
  .strictObject({
    sink: z.string().optional(),
    options: z.record(z.string(), z.unknown()).optional(),
    channel: z.record(z.string(), z.unknown()).optional(),
    idleMinutes: z.number().nullable().optional(),
    ack: z.enum(['channel', 'sink']).nullable().optional(),
    jvm: z.record(z.string(), z.unknown()).nullable().optional(),
    failoverAfterSeconds: z.number().nullable().optional(),
    schema: z.record(z.string(), z.unknown()).nullable().optional().describe("the event contract: merged as any object (e.g. {\"policy\":\"flag\"}); null removes it"),
  })
  .describe('JSON Merge Patch over the desired spec: e.g. {"channel":{"capacity":2000000}}; null restores an option\'s default');

/** An agent's config as a resource: read, preview, apply, history, roll back. */
export async function configRoutes(fastify: FastifyInstance, opts: { config: ConfigService; authorize: Authorize; operations: OperationService; requireIfMatch: boolean }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { config, authorize } = opts;
  const tags = ['config'];
  const by = (req: { principal?: { sub: string } }) => req.principal?.sub ?? 'unknown';
  /** If-Match / If-None-Match of a change: checked against the desired revision under the table's lock (412); If-Match required by CONFIG_REQUIRE_IF_MATCH (428). */
  const preconditionOfChange = (req: { headers: Record<string, string | string[] | undefined>; params: { db: string; table: string } }, dryRun = false) => {
    const p = preconditionOf(req.headers);
    if (p.ifMatch === undefined && p.ifNoneMatch === undefined && opts.requireIfMatch && !dryRun) throw preconditionRequired(programName(req.params));
    return p;
  };
  const changed = (c: { outcome: string; program: string; revision: number }) =>
    c.outcome === 'dry_run'
      ? `${c.program}: dry run, would be revision ${c.revision}`
      : c.outcome === 'unchanged'
        ? `${c.program}: unchanged, revision ${c.revision} stays`
        : `${c.program}: revision ${c.revision} ${c.outcome}`;

  app.get('/v1/api/:db/:table/config', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'The desired config: its spec, the rendered flume.conf, and the revision desired and running',
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: ok(configViewSchema.shape), 304: notModified, ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req, reply) => {
      const v = await config.get(req.params);
      void reply.header('etag', etagOf(v.revision.desired));
      return { code: 0 as const, message: `${v.program}: revision ${v.revision.desired}`, ...v };
    },
  });

  const answer = answering(opts.operations);
  const changeResponses = { 200: ok(configChangeSchema.shape), 202: acceptedBody, ...errors(400, 401, 403, 404, 409, 412, 422, 428, 502, 503) };
  const changeDescription =
    'Applies as a new revision and restarts a running agent on the same port and channel; answers once it accepts events. If it does not, the previous revision runs again: 422 CONFIG_REVERTED (and an incident). ?dryRun=true only validates and diffs. If-Match: the ETag of GET .../config; another revision is desired now: 412 PRECONDITION_FAILED with the current one (without If-Match the change applies whatever the revision, unless CONFIG_REQUIRE_IF_MATCH: 428). Prefer: respond-async answers 202 at once with the operation that applies it.';
  const modes = [
    { mode: 'put', summary: 'Replace the config (a whole create body)', body: createBodySchema },
    { mode: 'patch', summary: 'Change part of the config (JSON Merge Patch)', body: patchBodySchema },
  ] as const;
  for (const { mode, summary, body } of modes) {
    app.route({
      method: mode === 'put' ? 'PUT' : 'PATCH',
      url: '/v1/api/:db/:table/config',
      onRequest: authorize('operate'),
      schema: {
        tags,
        summary,
        description: `${changeDescription} ${access('operate').description}`,
        params: tableParamsSchema,
        querystring: changeQuery,
        body,
        response: changeResponses,
      },
      config: { idempotent: true },
      handler: async (req, reply) => {
        const dryRun = isSet(req.query.dryRun);
        const precondition = preconditionOfChange(req, dryRun);
        return answer(req, reply, dryRun ? null : 'config', req.params, async () => {
          const c = await config.change(req.params, req.body, { mode, dryRun, by: by(req), precondition });
          return { status: 200, headers: { etag: etagOf(c.outcome === 'dry_run' ? c.previousRevision : c.revision) }, body: { code: 0 as const, message: changed(c), ...c } };
        });
      },
    });
  }

  app.get('/v1/api/:db/:table/config/revisions', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'The kept revisions, oldest first (CONFIG_REVISIONS_KEPT)',
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: ok({ revisions: z.array(revisionSchema) }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const revisions = await config.history(req.params);
      return { code: 0 as const, message: `${revisions.length} revision(s)`, revisions };
    },
  });

  app.post('/v1/api/:db/:table/config/rollback', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: "Go back to a revision's spec (as a new revision); no revision: the last good one before the desired",
      ...access('operate'),
      params: tableParamsSchema,
      body: z.strictObject({ revision: z.number().int().min(1).optional() }),
      response: changeResponses,
    },
    config: { idempotent: true },
    handler: async (req, reply) => {
      const precondition = preconditionOfChange(req);
      return answer(req, reply, 'rollback', req.params, async () => {
        const c = await config.rollback(req.params, req.body.revision, by(req), precondition);
        return { status: 200, headers: { etag: etagOf(c.revision) }, body: { code: 0 as const, message: changed(c), ...c } };
      });
    },
  });
}
