import { nodeStateSchema, presenceSchema, type NodeState, type Presence } from '../resources/node.js';
import type { NodePart } from './keys.js';

/** What this process knows of one host, from its records under <e>nodes/<id>/. */
export interface Known {
  state: NodeState | null;
  presence: Presence | null;
  /** When it last stopped cleanly (null: it runs, or went without a word). */
  leftAt: string | null;
  /** When this process last saw the presence change (its own clock). */
  seenAt: number | null;
  /** When this process saw the presence go (its lease lapsed or was revoked); null while it is there. */
  goneAt: number | null;
  /** Its last presence, kept after it went. */
  last: Presence | null;
  /** The revision of the presence as last seen (a full read that finds it changed counts as a heartbeat). */
  presenceRevision: number;
}

const safeJson = (s: string): unknown => {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
};

/**
 * One record of host `id` (its presence, state or leaving time; value null: deleted) into `into`,
 * at `now` on this process's clock. An unreadable record counts as absent. Returns whether the
 * host's aliveness or state changed.
 */
export function applyRecord(into: Map<string, Known>, id: string, kind: NodePart, value: string | null, revision: number, now = Date.now()): boolean {
  const wasAlive = into.get(id)?.presence != null;
  const wasState = into.get(id)?.state ?? null;
  const cur = into.get(id) ?? { state: null, presence: null, leftAt: null, seenAt: null, goneAt: null, last: null, presenceRevision: 0 };
  if (kind === 'left') {
    cur.leftAt = value;
  } else if (kind === 'state') {
    const s = value === null ? null : nodeStateSchema.safeParse(value);
    cur.state = s?.success ? s.data : null;
  } else {
    const p = value === null ? null : safeJson(value);
    const parsed = p === null ? null : presenceSchema.safeParse(p);
    cur.presence = parsed?.success ? parsed.data : null;
    cur.seenAt = cur.presence ? now : null;
    cur.presenceRevision = revision;
    cur.goneAt = cur.presence ? null : (cur.goneAt ?? now);
    if (cur.presence) cur.last = cur.presence;
  }
  if (cur.state === null && cur.presence === null && cur.leftAt === null) into.delete(id);
  else into.set(id, cur);
  return wasAlive !== (cur.presence !== null) || wasState !== cur.state;
}
