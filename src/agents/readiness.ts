import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentStartFailed } from '../errors.js';
import { portListening, probeSource, readFlumeMetrics } from '../flume/client.js';
import { logSince, logTail, type AgentMeta } from '../store/agent-store.js';
import { UP_STATES, infoOrNull, type ProcessInfo, type ProcessState, type SupervisorDriver } from '../supervisor/driver.js';
import { pidAlive } from '../supervisor/strays.js';

const FAILED_STATES: readonly ProcessState[] = ['FATAL', 'EXITED', 'BACKOFF'];

/** Where the next log line of a start will begin (the log's size now; 0 when it has none). */
export async function logSize(logFile: string): Promise<number> {
  return (await stat(logFile).catch(() => null))?.size ?? 0;
}

/**
 * Waits until the process is up in supervisord and its HTTP source accepts events (the source
 * answers and the channel is open), within `timeoutMs`; else throws AGENT_START_FAILED with
 * the reason and the log's tail. Flume that cannot bind its port, or open its file channel,
 * keeps running and says so in its log: reading the log since `logFrom` fails the wait at once
 * instead of at the deadline.
 */
export async function waitReady(driver: SupervisorDriver, meta: AgentMeta, logFile: string, timeoutMs: number, logFrom?: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  logFrom ??= await logSize(logFile);
  const bindFailure = `Failed to bind to /127.0.0.1:${meta.port}`;
  const channelFailure = 'Failed to start the file channel';
  // A sink (or source) Flume could not configure is dropped while the agent runs on: events
  // would be accepted and never delivered. Not a start.
  const componentRemoved = 'has been removed due to an error during configuration';
  let last: ProcessInfo | null = null;
  // Every 25 ms the port is tried (a bare connect; Flume's answer is asked for once something
  // listens). supervisord is asked every 5th round until it names the JVM's pid; after that
  // only when the source accepts or the pid is gone (a JVM that exits is seen in /proc at
  // once), so many starts at once barely cost it: each of its answers takes ~1.5 ms of its
  // CPU with a hundred programs loaded.
  for (let round = 0; Date.now() < deadline; round++) {
    const accepting = (await portListening(meta.port)) && (await probeSource(meta.port)) === 'flume';
    const pid = last && UP_STATES.includes(last.state) ? last.pid : 0;
    if (accepting || (pid ? !pidAlive(pid) : round % 5 === 0)) {
      last = await infoOrNull(driver, meta.program);
      if (last && FAILED_STATES.includes(last.state)) break;
    }
    const ready = accepting && last !== null && UP_STATES.includes(last.state);
    if (round % 20 === 19 || ready) {
      const since = await logSince(logFile, logFrom);
      const failure = since.includes(bindFailure)
        ? `its port ${meta.port} is held by another process`
        : since.includes(channelFailure)
          ? `Flume could not open its file channel: ${/Failed to start the file channel[^\n]*\n([^\n]+)/.exec(since)?.[1]?.trim() ?? 'see the log'}`
          : since.includes(componentRemoved)
            ? `Flume left out a component it could not configure, and runs without it: ${/has been removed due to an error during configuration[^\n]*\n([^\n]+)/.exec(since)?.[1]?.trim() ?? 'see the log'}`
            : null;
      if (failure) throw agentStartFailed(`${meta.program} did not start: ${failure}`, { state: last?.state ?? 'NOT_LOADED', logTail: await logTail(logFile) });
    }
    // Accepting is the readiness that matters: the source answers and the channel is open
    // (Flume keeps the source up when its channel failed, refusing every event).
    // supervisord's RUNNING only follows startsecs (3 s) later, so STARTING counts as started.
    if (ready && (await readFlumeMetrics(meta.metricsPort))?.channelOpen) return;
    await sleep(25);
  }
  const state = last?.state ?? 'NOT_LOADED';
  const why = FAILED_STATES.includes(state as ProcessState)
    ? `the agent went ${state}${last?.description ? ` (${last.description})` : ''}`
    : `the agent did not accept events within ${timeoutMs} ms (state ${state})`;
  throw agentStartFailed(`${meta.program} did not start: ${why}`, { state, logTail: await logTail(logFile) });
}
