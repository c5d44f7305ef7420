import type { FastifyInstance } from 'fastify';
import { AppError, appError } from '../errors.js';
import type { Preview, TableCalls } from '../operations/table-calls.js';
import type { TableOutcome } from '../resources/operation.js';
import type { TableRef } from '../resources/table.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

const errorOf = (a: Answer): AppError =>
  new AppError(Number(a.body.code ?? 10000), String(a.body.error ?? 'INTERNAL'), a.status, String(a.body.message ?? `answered ${a.status}`), (a.body.details as Record<string, unknown> | undefined) ?? undefined);

const failed = (a: Answer): TableOutcome => ({ outcome: 'failed', code: String(a.body.error ?? 'INTERNAL'), message: String(a.body.message ?? `answered ${a.status}`) });

/** TableCalls through the app itself (app.inject), as the holder of `authorization`. */
export function tableCallsAs(app: FastifyInstance, authorization: string, requestId: string): TableCalls {
  const call = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<Answer> => {
    const r = await app.inject({ method, url, headers: { authorization, 'x-request-id': requestId, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}) });
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(r.body) as Record<string, unknown>;
    } catch {
      body = { message: r.body.slice(0, 200) };
    }
    return { status: r.statusCode, body };
  };
  const path = (ref: TableRef) => `/v1/api/${ref.db}/${ref.table}`;
  return {
    async spec(ref) {
      const a = await call('GET', `${path(ref)}/config`);
      if (a.status !== 200) throw errorOf(a);
      return a.body.spec as Record<string, unknown>;
    },

    async preview(ref, body) {
      const a = await call('PUT', `${path(ref)}/config?dryRun=true`, body);
      if (a.status === 404 && a.body.error === 'AGENT_NOT_FOUND') return null;
      if (a.status !== 200) throw errorOf(a);
      return { outcome: a.body.outcome as Preview['outcome'], revision: Number(a.body.revision), previousRevision: Number(a.body.previousRevision), diff: String(a.body.diff ?? '') };
    },

    async upsert(ref, body) {
      const a = await call('PUT', path(ref), body);
      if (a.status === 202) return { outcome: 'applied', code: null, message: String(a.body.message ?? 'under way on its host') };
      if (a.status !== 200 && a.status !== 201) return failed(a);
      return { outcome: 'applied', code: null, message: String(a.body.message) };
    },

    async drainAndDelete(ref, drainMs) {
      const before = await call('GET', `${path(ref)}/status`);
      if (before.status === 404) return { outcome: 'skipped', code: null, message: 'already gone' };
      if (before.status !== 200) return failed(before);
      // A table an operator had paused stays paused if the delete does not happen.
      const resume = async () => (before.body.paused ? undefined : void (await call('POST', `${path(ref)}/resume`)));
      const paused = await call('POST', `${path(ref)}/pause`);
      if (paused.status !== 200) return failed(paused);
      const until = Date.now() + drainMs;
      for (;;) {
        const s = await call('GET', `${path(ref)}/status?fresh=true`);
        if (s.status !== 200) return failed(s);
        // Empty, or not running (nothing can drain it now: the delete keeps a channel that holds events).
        if (s.body.drained === true || s.body.drained === null) break;
        if (Date.now() > until) {
          await resume();
          const e = appError('NOT_DRAINED', `its channel still held events after ${Math.round(drainMs / 1000)} s; nothing deleted, intake as it was`);
          return { outcome: 'failed', code: e.error, message: e.message };
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const d = await call('DELETE', path(ref));
      if (d.status !== 200) {
        await resume();
        return failed(d);
      }
      return { outcome: 'applied', code: null, message: String(d.body.message ?? 'deleted') };
    },
  };
}
