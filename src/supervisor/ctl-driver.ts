import { execa } from 'execa';
import { supervisorUnavailable } from '../errors.js';
import {
  PROCESS_STATES,
  SupervisorFaultError,
  settleEach,
  type FaultName,
  type ProcessInfo,
  type ProcessState,
  type SupervisorDriver,
  type UpdateResult,
} from './driver.js';

const STATE_NAMES = new Set<string>(Object.values(PROCESS_STATES));

// supervisorctl prints "NAME: ERROR (reason)" for a fault; these are the reasons it uses.
const ERROR_FAULTS: Array<[RegExp, FaultName]> = [
  [/no such (process|group)/, 'BAD_NAME'],
  [/spawn error/, 'SPAWN_ERROR'],
  [/abnormal termination/, 'ABNORMAL_TERMINATION'],
  [/already started/, 'ALREADY_STARTED'],
  [/not running/, 'NOT_RUNNING'],
  [/no such file/, 'NO_FILE'],
  [/not executable/, 'NOT_EXECUTABLE'],
];

function uptimeSeconds(description: string): number {
  const m = /uptime (?:(\d+) days?, )?(\d+):(\d+):(\d+)/.exec(description);
  if (!m) return 0;
  return Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

/** Parses one line of `supervisorctl status`: "NAME  STATE  description". */
export function parseStatusLine(line: string, now: number): ProcessInfo | null {
  const m = /^(\S+)\s+([A-Z]+)\s*(.*)$/.exec(line.trim());
  if (!m || !STATE_NAMES.has(m[2]!)) return null;
  const [, fullName, state, description = ''] = m;
  const pid = Number(/pid (\d+)/.exec(description)?.[1] ?? 0);
  const up = uptimeSeconds(description);
  return {
    name: fullName!.includes(':') ? fullName!.split(':')[1]! : fullName!,
    state: state as ProcessState,
    pid,
    start: pid ? now - up : 0,
    now,
    exitStatus: 0,
    spawnErr: '',
    description,
  };
}

/**
 * SupervisorDriver that runs supervisorctl (optionally behind sudo), for hosts where only
 * `sudo supervisorctl` is allowed. Slower than XML-RPC (one process per call, ~200 ms) and it
 * has to read supervisorctl's text, so it is the fallback, not the default.
 */
export class CtlSupervisorDriver implements SupervisorDriver {
  private readonly bin: string;
  private readonly baseArgs: string[];

  constructor(command: string[], socketPath: string) {
    const [bin = 'supervisorctl', ...rest] = command;
    this.bin = bin;
    this.baseArgs = [...rest, '-s', `unix://${socketPath}`];
  }

  private async ctl(...args: string[]): Promise<{ out: string; code: number }> {
    return this.ctlWithin(120_000, ...args);
  }

  private async ctlWithin(timeoutMs: number, ...args: string[]): Promise<{ out: string; code: number }> {
    const r = await execa(this.bin, [...this.baseArgs, ...args], { reject: false, timeout: timeoutMs });
    if (r.timedOut) throw supervisorUnavailable(`supervisord did not answer within ${timeoutMs} ms`);
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
    if (r.failed && r.exitCode === undefined) throw supervisorUnavailable(`cannot run ${this.bin}: ${r.message}`);
    if (/refused connection|no such file|unix:\/\/.*(?:not|refused)/i.test(out) && !/ERROR \(/.test(out)) {
      throw supervisorUnavailable(`supervisord is not reachable: ${out.split('\n')[0]}`);
    }
    return { out, code: r.exitCode ?? 1 };
  }

  private raiseFault(out: string, tolerated: FaultName[] = []): void {
    const err = /ERROR \(([^)]*)\)|ERROR: ?(.*)/.exec(out);
    if (!err) return;
    const reason = err[1] ?? err[2] ?? '';
    const fault = ERROR_FAULTS.find(([re]) => re.test(reason))?.[1] ?? 'FAILED';
    if (tolerated.includes(fault)) return;
    throw new SupervisorFaultError(fault, reason);
  }

  async ping(timeoutMs = 5000): Promise<void> {
    const { out, code } = await this.ctlWithin(timeoutMs, 'pid');
    if (code !== 0 || !/^\d+$/.test(out)) throw supervisorUnavailable(`supervisord is not reachable: ${out}`);
  }

  async update(name: string): Promise<UpdateResult> {
    const { out } = await this.ctl('update', name);
    if (/CANT_REREAD/.test(out)) throw new SupervisorFaultError('CANT_REREAD', out);
    this.raiseFault(out);
    if (/removed process group/.test(out)) return 'removed';
    if (/updated process group/.test(out)) return 'changed';
    if (/added process group/.test(out)) return 'added';
    return 'unchanged';
  }

  /** `supervisorctl update NAME` re-reads and applies in one command: nothing to do before it. */
  async stage(name: string): Promise<() => Promise<UpdateResult>> {
    return () => this.update(name);
  }

  /** One `supervisorctl update` per name (supervisorctl applies the groups one after another anyway). */
  async updateMany(names: string[], concurrency: number): Promise<Map<string, UpdateResult | Error>> {
    return settleEach(names, concurrency, (n) => this.update(n));
  }

  async start(name: string): Promise<void> {
    const { out } = await this.ctl('start', name);
    this.raiseFault(out, ['ALREADY_STARTED']);
  }

  async stop(name: string): Promise<void> {
    const { out } = await this.ctl('stop', name);
    this.raiseFault(out, ['NOT_RUNNING']);
  }

  async info(name: string): Promise<ProcessInfo> {
    const { out } = await this.ctl('status', name);
    this.raiseFault(out);
    const info = parseStatusLine(out.split('\n')[0] ?? '', Math.floor(Date.now() / 1000));
    if (!info) throw new SupervisorFaultError('FAILED', `unreadable status: ${out}`);
    return info;
  }

  async infoAll(): Promise<ProcessInfo[]> {
    const { out } = await this.ctl('status');
    const now = Math.floor(Date.now() / 1000);
    return out
      .split('\n')
      .map((l) => parseStatusLine(l, now))
      .filter((x): x is ProcessInfo => x !== null);
  }

  async close(): Promise<void> {}
}
