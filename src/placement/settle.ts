import type { Etcd3 } from 'etcd3';
import { nothingApplied } from '../cluster/etcd.js';
import { AppError, clusterUnavailable } from '../errors.js';
import type { DesiredRecord } from './records.js';
import type { TableEntry } from './tables-view.js';

/** Whether `key` holds the record of request `requestId` now (false when etcd does not say). */
async function holds(etcd: Etcd3, key: string, requestId: string): Promise<boolean> {
  const now = await etcd.get(key).string().catch(() => null);
  try {
    return now !== null && (JSON.parse(now) as { requestId?: string }).requestId === requestId;
  } catch {
    return false;
  }
}

/** How long a write etcd may or may not have taken is retried to learn which. */
export const SETTLE_MS = 10_000;

/**
 * Runs `txn`, a write of `desired` compared against the table as read (`e`, with the desired
 * revision it is given; null: a create), and answers truly when etcd failed. Refused before
 * any member took it: 503, nothing changed. Otherwise etcd may have taken it, or may still:
 * while `desired` is at the revision compared, it is written again with the value it had (its
 * request already answered, so the owner does nothing): from then on the write can never
 * apply, and it is sent once more against that new revision (the member that failed is passed
 * over by then); failing again, a 503 that says nothing changed. If `desired` holds this
 * request, it applied: the call goes on. etcd is asked for SETTLE_MS at most; then a 503 that
 * says the operation may still be carried out, and which.
 */
export async function settleWrite(
  etcd: Etcd3,
  desiredKey: string,
  desired: DesiredRecord,
  node: string,
  e: TableEntry | null,
  txn: (desiredRevision: number) => Promise<{ succeeded: boolean }>,
): Promise<{ succeeded: boolean }> {
  const what = desired.movedFrom ? 'move' : desired.op;
  const pending = { pending: { node, op: desired.op, generation: desired.generation, since: desired.at, requestId: desired.requestId } };
  const restore = e?.desired ? JSON.stringify(e.desired) : null;
  let revision = e?.desiredRevision ?? 0;
  const until = Date.now() + SETTLE_MS;
  for (let attempt = 1; ; attempt++) {
    let failure: Error;
    try {
      const r = await txn(revision);
      // A compare that failed may have failed on this very write: etcd3 sends a call again on
      // another member when the first lost its connection, and the first may have applied.
      if (!r.succeeded && (await holds(etcd, desiredKey, desired.requestId))) return { succeeded: true };
      return r;
    } catch (err) {
      if (err instanceof AppError) throw err;
      failure = err as Error;
    }
    if (nothingApplied(failure)) throw clusterUnavailable(`etcd has no quorum or cannot be reached (${failure.message}): nothing changed`);
    let withdrawn = false;
    while (!withdrawn && Date.now() < until) {
      try {
        const r = restore
          ? await etcd.if(desiredKey, 'Mod', '==', revision).then(etcd.put(desiredKey).value(restore)).else(etcd.get(desiredKey)).commit()
          : await etcd.if(desiredKey, 'Create', '==', 0).then(etcd.get(desiredKey)).else(etcd.get(desiredKey)).commit();
        if (restore && r.succeeded) {
          withdrawn = true;
          revision = Number(r.header.revision);
          break;
        }
        const now = r.responses[0]?.response_range?.kvs[0]?.value.toString();
        const held = now ? (JSON.parse(now) as { requestId?: string }).requestId : undefined;
        if (held === desired.requestId) return { succeeded: true };
        // A create whose table another request created meanwhile, or a write another request overtook.
        if (!restore && !r.succeeded) return { succeeded: false };
        if (!restore) throw clusterUnavailable(`etcd did not confirm the ${what} (${failure.message}) and does not hold it now: the same create again is safe (it answers with this one if it is carried out after all)`, pending);
        throw clusterUnavailable(`etcd did not confirm the ${what} (${failure.message}), and another request was written since: this one did not apply`);
      } catch (err) {
        if (err instanceof AppError) throw err;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (!withdrawn) {
      throw clusterUnavailable(`etcd did not confirm the ${what} (${failure.message}) and could not be asked since: it may still be carried out; read the table's status before doing anything else`, pending);
    }
    if (attempt >= 2) throw clusterUnavailable(`etcd did not confirm the ${what} twice (${failure.message}); it was withdrawn: nothing changed`);
  }
}
