import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve, sep } from 'node:path';

/**
 * Processes of this installation that no live supervisord of it owns: what a supervisord killed
 * with SIGKILL (or the OOM killer) leaves behind, and an nginx master's workers after the master
 * died. Read from /proc, nothing else.
 *
 * Guarantees:
 * - A process belongs to this installation only by this installation's own paths: an agent's
 *   JVM runs a flume.conf under its services/; the API and the event listener are node running
 *   server.js / event-listener.js whose STATE_DIR (environment, else the checkout it runs from)
 *   is this one; the gateway's master was started with `-p <var>/gateway` and its workers hold
 *   its marker log under var/log/ open (nginx.conf); the embedded Redis
 *   runs in var/redis. Another installation on the same host has other paths: its processes
 *   are never listed.
 * - A process is owned while the supervisord in `var/run/supervisord.pid` lives and is among its
 *   ancestors; supervisord itself, the calling process and its own ancestors are never listed.
 * - `reap` stops each one as its program is stopped under supervisord: agents with SIGTERM
 *   (Flume's shutdown hook checkpoints the channel), nginx with SIGQUIT (workers finish their
 *   requests), the others with SIGTERM; SIGKILL after the grace period. It returns once every
 *   one has exited (or the kill has been sent).
 */

export type StrayKind = 'agent' | 'api' | 'event-listener' | 'gateway' | 'redis' | 'other';

export interface Stray {
  pid: number;
  kind: StrayKind;
  /** The agent's program (flume-<db>-<table>) for agents. */
  program: string | null;
  command: string;
}


interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  argv: string[];
  /** Exited, not yet waited for by its parent. */
  zombie: boolean;
}

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may hold spaces: the fields after the last ')' are fixed.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { pid, ppid: Number(ppid), comm, argv, zombie: state === 'Z' };
  } catch {
    return null; // gone, or not ours to read
  }
}

/** Where each of a process's open files points (empty when they cannot be read). */
function openFiles(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => link(`/proc/${pid}/fd/${fd}`));
  } catch {
    return [];
  }
}

function link(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return ''; // closed, gone, or not ours to read
  }
}

/** The STATE_DIR a node process of the stack runs with: its environment's, else its checkout. */
function stateDirOf(pid: number, script: string): string {
  let env = '';
  try {
    env = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return '';
  }
  const set = env.split('\0').find((kv) => kv.startsWith('STATE_DIR='))?.slice('STATE_DIR='.length);
  const cwd = link(`/proc/${pid}/cwd`);
  if (set) return resolve(cwd || '/', set);
  // dist/server.js, dist/cli/event-listener.js, src/server.ts, src/cli/event-listener.ts
  const checkout = resolve(cwd || '/', script, '..', script.includes(`${sep}cli${sep}`) ? '../..' : '..');
  return checkout;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The supervisord of this installation, if it lives: the pid in var/run/supervisord.pid, checked to be a supervisord. */
export function liveSupervisord(varDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(varDir, 'run', 'supervisord.pid'), 'utf8').trim());
    if (!pid || !pidAlive(pid)) return null;
    const p = readProc(pid);
    return p && (p.comm.startsWith('supervisord') || p.argv.some((a) => a.endsWith('supervisord'))) ? pid : null;
  } catch {
    return null;
  }
}

export interface InstallationDirs {
  STATE_DIR: string;
  varDir: string;
  servicesDir: string;
}

/** Which of the stack's programs `p` is for this installation, or null when it is not one of them. */
function belongs(p: Proc, dirs: InstallationDirs): { kind: StrayKind; program: string | null } | null {
  if (p.comm === 'java') {
    const conf = p.argv.find((a) => a.startsWith(dirs.servicesDir + sep) && a.endsWith(`${sep}flume.conf`));
    return conf ? { kind: 'agent', program: conf.slice(dirs.servicesDir.length + 1).split(sep)[0] ?? null } : null;
  }
  if (p.comm.startsWith('nginx')) {
    const mine = p.argv.join(' ').includes(`${join(dirs.varDir, 'gateway')}`) || openFiles(p.pid).some((f) => f.startsWith(dirs.varDir + sep));
    return mine ? { kind: 'gateway', program: null } : null;
  }
  if (p.comm.startsWith('redis')) return link(`/proc/${p.pid}/cwd`) === join(dirs.varDir, 'redis') ? { kind: 'redis', program: null } : null;
  if (p.comm === 'node') {
    const script = p.argv.find((a) => /(^|\/)(server|event-listener)\.(js|ts)$/.test(a));
    if (!script || stateDirOf(p.pid, script) !== dirs.STATE_DIR) return null;
    return { kind: script.includes('event-listener') ? 'event-listener' : 'api', program: null };
  }
  return null;
}

/** Every process of this installation, owned or not (supervisord itself aside). */
export function processesOf(dirs: InstallationDirs): Array<{ pid: number; kind: StrayKind; program: string | null; command: string }> {
  const out: Array<{ pid: number; kind: StrayKind; program: string | null; command: string }> = [];
  for (const p of allProcs().values()) {
    const b = belongs(p, dirs);
    if (b) out.push({ pid: p.pid, ...b, command: p.argv.join(' ').slice(0, 300) });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

function allProcs(): Map<number, Proc> {
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    const p = readProc(pid);
    if (p && !p.zombie) procs.set(pid, p);
  }
  return procs;
}

/** Every process of this installation that no live supervisord of it owns. */
export function findStrays(dirs: InstallationDirs): Stray[] {
  const owner = liveSupervisord(dirs.varDir);
  const procs = allProcs();
  const ownedBy = (p: Proc): boolean => {
    for (let cur: Proc | undefined = p, hops = 0; cur && hops < 64; cur = procs.get(cur.ppid), hops++) {
      if (cur.ppid === owner) return true;
    }
    return false;
  };
  // This process's own ancestors (a wrapper such as tsx, whatever started it) are never strays.
  const mine = new Set<number>();
  for (let pid: number | undefined = process.ppid, hops = 0; pid && hops < 64; pid = procs.get(pid)?.ppid, hops++) mine.add(pid);
  const strays: Stray[] = [];
  for (const p of procs.values()) {
    const b = belongs(p, dirs);
    if (!b || mine.has(p.pid) || (owner !== null && ownedBy(p))) continue;
    strays.push({ pid: p.pid, ...b, command: p.argv.join(' ').slice(0, 300) });
  }
  return strays.sort((a, b) => a.pid - b.pid);
}

/** Processes other than `exceptPid` that hold the agent's channel or run its config: a second JVM for the table. */
export function tableHolders(dirs: { servicesDir: string }, program: string, exceptPid: number | null): number[] {
  const conf = join(dirs.servicesDir, program, 'flume.conf');
  return [...allProcs().values()].filter((p) => p.pid !== exceptPid && p.comm === 'java' && p.argv.includes(conf)).map((p) => p.pid);
}

export interface ReapResult extends Stray {
  signal: 'SIGTERM' | 'SIGQUIT';
  /** Exited by itself within the grace period; false: SIGKILL was sent. */
  graceful: boolean;
  ms: number;
}

/** Stops the strays, all at once, each as supervisord would stop its program. */
export async function reap(strays: Stray[], opts: { agentGraceMs?: number; otherGraceMs?: number } = {}): Promise<ReapResult[]> {
  return Promise.all(
    strays.map(async (s): Promise<ReapResult> => {
      const signal = s.kind === 'gateway' ? 'SIGQUIT' : 'SIGTERM';
      const grace = s.kind === 'agent' ? (opts.agentGraceMs ?? 30_000) : (opts.otherGraceMs ?? 10_000);
      const started = Date.now();
      try {
        process.kill(s.pid, signal);
      } catch {
        return { ...s, signal, graceful: true, ms: 0 };
      }
      while (Date.now() - started < grace) {
        if (!pidAlive(s.pid) || (readProc(s.pid)?.zombie ?? true)) return { ...s, signal, graceful: true, ms: Date.now() - started };
        await sleep(50);
      }
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      return { ...s, signal, graceful: false, ms: Date.now() - started };
    }),
  );
}
