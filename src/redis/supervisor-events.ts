import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { parseProgramName, type TableRef } from '../resources/table.js';
import { blockingReader } from './client.js';
import type { Keys } from './keys.js';

/**
 * supervisord's PROCESS_STATE_* events of agents, as the event listener (src/cli/event-listener.ts)
 * appends them to a Redis stream: the one reader of that stream.
 *
 * Two ways to read it:
 * - `follow`: a plain XREAD from now on: every API process sees every event (the fleet model).
 * - `consume`: through a consumer group: each event is handled by one API process and
 *   acknowledged once handled; a restarted process first handles what it had read and not
 *   acknowledged, and an entry left pending by a process that never came back is claimed after
 *   CLAIM_IDLE_MS (incidents).
 * Guarantees: handlers see only agents' state events, parsed once, in stream order, one at a
 * time; a handler's error is logged and never stops the reader; Redis going away (even losing
 * the stream and its group) is retried every second; `stop` ends the loop within ~2.5 s.
 */

export interface SupervisorEvent extends TableRef {
  program: string;
  /** The new state (RUNNING, EXITED, BACKOFF, FATAL, ...). */
  state: string;
  from: string;
  pid: number | null;
  /** For EXITED: whether the exit code was one of the program's expected exit codes. */
  expected: boolean | null;
  /** When the listener saw it (ms). */
  at: number;
}

export type EventHandler = (e: SupervisorEvent) => Promise<void>;

/** A running reader: stop it to end it. */
export interface Subscription {
  stop(): Promise<void>;
}

/** A stream entry's fields as an event; null for anything that is not an agent's state change. */
export function parseEvent(fields: string[]): SupervisorEvent | null {
  const e: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) e[fields[i]!] = fields[i + 1]!;
  const program = e.processname ?? '';
  const ref = parseProgramName(program);
  if (!ref || !e.event?.startsWith('PROCESS_STATE_')) return null;
  return {
    ...ref,
    program,
    state: e.event.slice('PROCESS_STATE_'.length),
    from: e.from_state ?? '',
    pid: Number(e.pid) || null,
    expected: e.expected === undefined ? null : e.expected === '1',
    at: Number(e.at) || Date.now(),
  };
}

const CLAIM_IDLE_MS = 30_000;
const STOP_WAIT_MS = 2500;

export class SupervisorEvents {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  /** Every event from now on. */
  follow(handler: EventHandler): Subscription {
    return this.loop(async (reader, state) => {
      const res = await reader.xread('BLOCK', 2000, 'STREAMS', this.keys.supervisorEvents(), state.last);
      const entries = res?.[0]?.[1] ?? [];
      if (entries.length) state.last = entries[entries.length - 1]![0];
      return entries.map(([, fields]) => ({ fields }));
    }, handler);
  }

  /** Each event once across the processes of `group`, acknowledged after `handler` ran. */
  consume(group: string, consumer: string, handler: EventHandler): Subscription {
    const stream = this.keys.supervisorEvents();
    return this.loop(async (reader, state) => {
      if (!state.grouped) {
        await reader.xgroup('CREATE', stream, group, '$', 'MKSTREAM').catch((err: Error) => {
          if (!String(err.message).includes('BUSYGROUP')) throw err;
        });
        state.grouped = true;
      }
      let entries: Array<[string, string[]]> = [];
      if (Date.now() - state.claimedAt > CLAIM_IDLE_MS / 2) {
        state.claimedAt = Date.now();
        const claimed = (await reader.xautoclaim(stream, group, consumer, CLAIM_IDLE_MS, '0-0', 'COUNT', 100)) as [string, Array<[string, string[]] | null>];
        entries = (claimed[1] ?? []).filter((e): e is [string, string[]] => Array.isArray(e) && Array.isArray(e[1]));
      }
      if (!entries.length) {
        // First what this consumer read before and did not acknowledge, then new entries.
        const res = (await reader.xreadgroup('GROUP', group, consumer, 'COUNT', 100, 'BLOCK', 2000, 'STREAMS', stream, state.backlog ? '0' : '>')) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        entries = res?.[0]?.[1] ?? [];
        if (state.backlog && !entries.length) state.backlog = false;
      }
      return entries.map(([id, fields]) => ({ fields, ack: () => reader.xack(stream, group, id).then(() => undefined) }));
    }, handler);
  }

  private loop(
    read: (reader: Redis, state: ReadState) => Promise<Array<{ fields: string[]; ack?: () => Promise<void> }>>,
    handler: EventHandler,
  ): Subscription {
    const reader = blockingReader(this.redis);
    const state: ReadState = { last: '$', grouped: false, backlog: true, claimedAt: 0 };
    let running = true;
    const done = (async () => {
      while (running) {
        try {
          for (const entry of await read(reader, state)) {
            const e = parseEvent(entry.fields ?? []);
            if (e) await handler(e).catch((err: unknown) => this.log.warn({ err, program: e.program }, 'handling a supervisor event failed'));
            await entry.ack?.();
          }
        } catch (err) {
          if (!running) return;
          // After a Redis loss the group is gone with the stream: create it again.
          if (String((err as Error).message).includes('NOGROUP')) state.grouped = false;
          this.log.warn({ err: (err as Error).message }, 'reading supervisor events failed; retrying');
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
    return {
      stop: async () => {
        running = false;
        reader.disconnect();
        // A read queued while Redis was away is never settled by disconnect() (ioredis keeps it
        // in its offline queue with no connection to close): wait for the loop a bounded time only.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([done, new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
        clearTimeout(timer);
      },
    };
  }
}

interface ReadState {
  last: string;
  grouped: boolean;
  backlog: boolean;
  claimedAt: number;
}
