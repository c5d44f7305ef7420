import pLimit from 'p-limit';
import { AppError, ErrorCodes } from '../errors.js';
import type { AgentState } from '../resources/agent-status.js';

/** supervisord's process states (supervisor/states.py), a closed set. */
export const PROCESS_STATES = {
  0: 'STOPPED',
  10: 'STARTING',
  20: 'RUNNING',
  30: 'BACKOFF',
  40: 'STOPPING',
  100: 'EXITED',
  200: 'FATAL',
  1000: 'UNKNOWN',
} as const;
export type ProcessState = (typeof PROCESS_STATES)[keyof typeof PROCESS_STATES];
/** The states in which supervisord's process is up (STARTING lasts until startsecs have passed). */
export const UP_STATES: readonly ProcessState[] = ['STARTING', 'RUNNING'];
// The states an agent's status names are these and NOT_LOADED (resources/agent-status.ts): kept equal.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const sameStates: Same<ProcessState | 'NOT_LOADED', AgentState> = true;
void sameStates;
export const RUNNING_STATES: readonly ProcessState[] = ['STARTING', 'RUNNING', 'BACKOFF'];

/** supervisord's XML-RPC fault codes (supervisor/xmlrpc.py Faults) that the driver reports. */
export const FAULTS = {
  1: 'UNKNOWN_METHOD',
  2: 'INCORRECT_PARAMETERS',
  3: 'BAD_ARGUMENTS',
  4: 'SIGNATURE_UNSUPPORTED',
  6: 'SHUTDOWN_STATE',
  10: 'BAD_NAME',
  11: 'BAD_SIGNAL',
  20: 'NO_FILE',
  21: 'NOT_EXECUTABLE',
  30: 'FAILED',
  40: 'ABNORMAL_TERMINATION',
  50: 'SPAWN_ERROR',
  60: 'ALREADY_STARTED',
  70: 'NOT_RUNNING',
  80: 'SUCCESS',
  90: 'ALREADY_ADDED',
  91: 'STILL_RUNNING',
  92: 'CANT_REREAD',
} as const;
export type FaultName = (typeof FAULTS)[keyof typeof FAULTS] | 'UNKNOWN_FAULT';

/** A supervisord fault, translated at the transport boundary. 404 for BAD_NAME, else 502. */
export class SupervisorFaultError extends AppError {
  constructor(
    readonly fault: FaultName,
    detail: string,
  ) {
    super(
      fault === 'BAD_NAME' ? ErrorCodes.AGENT_NOT_FOUND : ErrorCodes.SUPERVISOR_FAULT,
      fault === 'BAD_NAME' ? 'AGENT_NOT_FOUND' : 'SUPERVISOR_FAULT',
      fault === 'BAD_NAME' ? 404 : 502,
      `supervisord: ${fault}${detail ? `: ${detail}` : ''}`,
      { fault },
    );
  }
}

export function faultName(code: number): FaultName {
  return (FAULTS as Record<number, FaultName>)[code] ?? 'UNKNOWN_FAULT';
}

export interface ProcessInfo {
  name: string;
  state: ProcessState;
  pid: number;
  /** Unix seconds the process was last started (0 if never). */
  start: number;
  /** supervisord's clock, unix seconds, when this was read. */
  now: number;
  exitStatus: number;
  spawnErr: string;
  description: string;
}

export type UpdateResult = 'added' | 'changed' | 'removed' | 'unchanged';

/**
 * What the service needs from supervisord. Two transports implement it (XML-RPC over the unix
 * socket, and supervisorctl) and both pass test/supervisor/driver-contract.test.ts.
 *
 * Names are supervisor group names; every agent is a group holding one process of that name.
 * Errors: SupervisorFaultError for a fault (fault 'BAD_NAME' when the name is unknown);
 * AppError SUPERVISOR_UNAVAILABLE (503) when supervisord does not answer.
 */
export interface SupervisorDriver {
  /** supervisord answers within timeoutMs (default 5 s); else SUPERVISOR_UNAVAILABLE. */
  ping(timeoutMs?: number): Promise<void>;
  /**
   * Re-reads the config files and applies the difference for `name` only, like
   * `supervisorctl update NAME`: added -> add (autostart decides if it starts); changed -> stop,
   * remove, add; removed -> stop, remove. Idempotent: a second call returns 'unchanged'.
   */
  update(name: string): Promise<UpdateResult>;
  /**
   * update(name) in two halves: the re-read now, and the returned apply, which does for `name`
   * what that re-read found (added -> add, changed -> stop, remove, add, removed -> stop,
   * remove). A start re-reads before it waits its turn in the start queue and spawns its JVM
   * (the apply) only once its turn comes. The name's file must not change in between (the
   * caller holds the table's lock). supervisorctl cannot split its update: there the apply does
   * all of it.
   */
  stage(name: string): Promise<() => Promise<UpdateResult>>;
  /**
   * update() for many names with one re-read: the groups are applied `concurrency` at a time
   * (a changed group is stopped, waiting for its exit, then added again). Returns each name's
   * result or the error it met.
   */
  updateMany(names: string[], concurrency: number): Promise<Map<string, UpdateResult | Error>>;
  /** Starts and waits past startsecs. Idempotent: an already started process is fine. */
  start(name: string): Promise<void>;
  /** Stops and waits until the process is gone (stopwaitsecs, then SIGKILL). Idempotent. */
  stop(name: string): Promise<void>;
  info(name: string): Promise<ProcessInfo>;
  /** All processes in one call, with no process spawned per program. */
  infoAll(): Promise<ProcessInfo[]>;
  close(): Promise<void>;
}

/** Runs fn for each name, `concurrency` at a time; each name gets its result or its error. */
export async function settleEach<T>(names: string[], concurrency: number, fn: (name: string) => Promise<T>): Promise<Map<string, T | Error>> {
  const limit = pLimit(Math.max(1, concurrency));
  const out = new Map<string, T | Error>();
  await Promise.all(names.map((n) => limit(async () => out.set(n, await fn(n).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))))))));
  return out;
}

/** The process's info, or null if supervisord does not know the name (BAD_NAME). */
export async function infoOrNull(driver: SupervisorDriver, name: string): Promise<ProcessInfo | null> {
  try {
    return await driver.info(name);
  } catch (err) {
    if (err instanceof SupervisorFaultError && err.fault === 'BAD_NAME') return null;
    throw err;
  }
}
