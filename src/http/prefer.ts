import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { StillRunning } from '../agents/lifecycle.js';
import type { OperationService } from '../operations/operation-service.js';
import { operationSchema, pendingSchema, type Operation, type TableOp } from '../resources/operation.js';
import { ok } from '../resources/envelope.js';
import type { TableRef } from '../resources/table.js';

/** A call's answer before it is sent: status, body, headers (Location, ETag). */
export interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** RFC 7240: `Prefer: respond-async` (among other preferences, any case). */
export function wantsAsync(prefer: string | string[] | undefined): boolean {
  const text = Array.isArray(prefer) ? prefer.join(',') : (prefer ?? '');
  return text.split(/[,;]/).some((p) => p.trim().toLowerCase() === 'respond-async');
}

/** The 202 of a long call: the table's operation with Prefer: respond-async, or (many hosts) the owner still working on it. */
export const acceptedBody = z
  .union([
    ok({ operation: operationSchema }).describe('Prefer: respond-async: the operation; GET its Location until state is done, its answer is the call\'s'),
    ok({ pending: pendingSchema }).describe('many hosts: under way on its owner past CLUSTER_WAIT_MS; GET .../status for the outcome'),
  ])
  .describe('accepted: under way');

export function sendOperation(reply: FastifyReply, o: Operation, extra: Record<string, string> = {}) {
  return reply
    .status(202)
    .header('location', `/v1/api/operations/${o.id}`)
    .header('x-operation-id', o.id)
    .header('retry-after', '2')
    .headers(extra)
    .send({ code: 0 as const, message: `${o.op} of ${o.results.map((r) => `${r.db}.${r.table}`).join(', ') || `${o.total} agent(s)`}: ${o.state}; GET /v1/api/operations/${o.id} for its outcome`, operation: o });
}

/**
 * Answers a long per-table call: with `Prefer: respond-async` at once, 202 + the operation that
 * carries it out (`Preference-Applied: respond-async`); else when it is done. Many hosts: an
 * owner still at work past the wait is a 202 too, with the table's pending operation.
 */
export function answering(operations: OperationService) {
  /** `op` null: a quick call, always answered when done (Prefer is not applied). */
  return async (req: FastifyRequest, reply: FastifyReply, op: TableOp | null, ref: TableRef, run: () => Promise<Answer>): Promise<FastifyReply> => {
    if (op && wantsAsync(req.headers.prefer)) {
      const o = await operations.track(op, ref, req.principal?.sub ?? 'unknown', async () => {
        const a = await run();
        return { status: a.status, body: a.body };
      });
      return sendOperation(reply, o, { 'preference-applied': 'respond-async' });
    }
    try {
      const a = await run();
      return reply.status(a.status).headers(a.headers ?? {}).send(a.body);
    } catch (err) {
      if (!(err instanceof StillRunning)) throw err;
      const p = err.pending;
      return reply.status(202).header('retry-after', '5').send({ code: 0 as const, message: `${p.op} under way on ${p.node} (operation ${p.generation}); GET .../status for its outcome`, pending: p });
    }
  };
}
