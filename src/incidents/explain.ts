import { logSince } from '../store/agent-store.js';

/** How a process ended, from supervisord's own log line ("exited: NAME (exit status 1; ...)"). */
export interface ExitCause {
  exitCode: number | null;
  signal: string | null;
}

/** The last exit of `program` that supervisord logged (its log's last 256 KiB), or nulls. */
export async function lastExit(supervisordLog: string, program: string): Promise<ExitCause> {
  const text = await logSince(supervisordLog, 0, 262_144);
  const re = new RegExp(`exited: ${program} \\((?:exit status (\\d+)|terminated by (SIG[A-Z0-9]+))`, 'g');
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) last = m;
  return { exitCode: last?.[1] !== undefined ? Number(last[1]) : null, signal: last?.[2] ?? null };
}

/**
 * What an operator should do about an agent's exit, from how it ended and its last log lines.
 * The first matching cause wins; the last line is the generic advice.
 */
export function suggestAction(cause: ExitCause, logTail: string[], kind: 'exit' | 'loop' | 'fatal'): string {
  const log = logTail.join('\n');
  if (cause.signal === 'SIGKILL') return 'Killed by SIGKILL: the kernel OOM killer (check dmesg) or an operator. supervisord restarts it; if memory is short, lower AGENT_HEAP or run fewer agents.';
  if (cause.signal) return `Killed by ${cause.signal} from outside flume-service. supervisord restarts it; find who sent the signal.`;
  if (/OutOfMemoryError/.test(log)) return 'The JVM ran out of heap: raise AGENT_HEAP (or send smaller batches), then restart the agent.';
  if (/Usable space exhausted|No space left on device/.test(log)) return "The channel's disk is (nearly) full: free space or lower channel.minimumRequiredSpace (PATCH .../config), then restart.";
  if (/Address already in use|Failed to bind/.test(log)) return "Another process holds the agent's port: find it (ss -ltnp) and stop it; the agent is retried by supervisord.";
  // (Flume logs a harmless ClassNotFoundException for sun.misc.VM at every start: not a cause.)
  if (/NoClassDefFoundError|Could not find or load main class/.test(log)) return "A class is missing from the agent's class path: check FLUME_LIB_DIR / FLUME_HDFS_LIB_DIR (scripts/setup.sh installs them).";
  if (kind === 'fatal') return 'supervisord gave up after its start retries: read the log tail, fix the cause (GET .../config, .../logs), then POST .../start.';
  if (kind === 'loop') return 'The agent keeps exiting: read the log tail (GET .../logs), compare the config with the last good revision (GET .../config/revisions) and roll back if it changed.';
  return 'supervisord restarts the agent by itself. If it happens again, read the log tail (GET .../logs).';
}
