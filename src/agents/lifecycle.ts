import type { AgentStatus, DeleteResult } from '../resources/agent-status.js';
import type { MoveResult } from '../resources/move.js';
import type { Pending } from '../resources/operation.js';
import type { TableRef } from '../resources/table.js';

/** Thrown by a lifecycle call whose operation goes on past the wait (many hosts): the route answers 202. */
export class StillRunning extends Error {
  constructor(readonly pending: Pending) {
    super(`${pending.op} is under way on ${pending.node}`);
  }
}

/**
 * What the lifecycle routes call: on one host the AgentService itself; with many hosts the
 * cluster's, which places a table, hands each operation to its owner through etcd and answers
 * with what the owner did (src/placement/).
 */
/** A create's answer: `created` false when the table already had an agent of this same spec (a retried create). */
export interface Created {
  status: AgentStatus;
  created: boolean;
}

export interface Lifecycle {
  /**
   * Creates the table's agent. The same spec again (a client retrying after a timeout) is not an
   * error: the existing agent, `created: false` (waiting for a create of it still under way);
   * another spec is 409 AGENT_EXISTS naming each field that differs.
   */
  create(ref: TableRef, body: unknown, opts?: { start?: boolean; by?: string; node?: string }): Promise<Created>;
  start(ref: TableRef): Promise<AgentStatus>;
  stop(ref: TableRef): Promise<AgentStatus>;
  restart(ref: TableRef): Promise<AgentStatus>;
  pause(ref: TableRef, by: string): Promise<AgentStatus>;
  resume(ref: TableRef): Promise<AgentStatus>;
  status(ref: TableRef, fresh?: boolean): Promise<AgentStatus>;
  list(filter?: { db?: string; state?: string }): AgentStatus[];
  delete(ref: TableRef, force: boolean): Promise<DeleteResult>;
  /** Many hosts: re-creates the table on another host; one host: 409 NOT_CLUSTERED. */
  move(ref: TableRef, opts: { to?: string; abandonChannel: boolean; by: string }): Promise<MoveResult>;
  /** Changes whenever `list` may answer differently (the key of the listing's cache). */
  listVersion(): string;
}
