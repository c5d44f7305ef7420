import { execFileSync } from 'node:child_process';
import { readFile, statfs } from 'node:fs/promises';

let pageBytes = 0;
/** The kernel's page size (getconf, once): /proc/<pid>/stat counts resident memory in pages. */
function pageSize(): number {
  if (!pageBytes) {
    try {
      pageBytes = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
    } catch {
      pageBytes = 4096;
    }
  }
  return pageBytes;
}

/** A process's resident memory and CPU time so far, from /proc/<pid>/stat; null if it is gone. */
export async function processUsage(pid: number): Promise<{ rssBytes: number; cpuSeconds: number } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, inside parentheses): utime is the
    // 12th and stime the 13th of them, in clock ticks (100 per second on Linux); rss the 22nd,
    // in pages. One file read per agent and refresh, where /proc/<pid>/status was a second.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const rssPages = Number(fields[21]);
    if (!Number.isFinite(ticks) || !Number.isFinite(rssPages)) return null;
    return { rssBytes: rssPages * pageSize(), cpuSeconds: ticks / 100 };
  } catch {
    return null;
  }
}

/**
 * The TCP ports something listens on in this network namespace (where the agents are), from the
 * kernel's tables (/proc/net/tcp and tcp6): no process is asked, so no JVM spends a cycle on it.
 * null where /proc cannot say.
 */
export async function listeningPorts(): Promise<Set<number> | null> {
  const ports = new Set<number>();
  let known = false;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
      known = true;
    } catch {
      continue;
    }
    // "  sl  local_address rem_address   st ...": local is ADDR:PORT in hex, st 0A is LISTEN.
    for (const line of text.split('\n')) {
      const [, local, , st] = line.trim().split(/\s+/);
      if (st === '0A' && local) ports.add(parseInt(local.slice(local.lastIndexOf(':') + 1), 16));
    }
  }
  return known ? ports : null;
}

/** Bytes a non-root process may still write where `dir` lives (Java's File.getUsableSpace). */
export async function usableSpace(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** One point of an agent's history. */
export interface HistoryPoint {
  at: string;
  inPerSecond: number | null;
  outPerSecond: number | null;
  channelFillPercent: number | null;
  rssBytes: number | null;
  /** Seconds the oldest event still in the channel has waited (0: none waits; null: not known). */
  oldestEventAgeSeconds: number | null;
}

/** Counters over time, to turn them into rates over the last `windowMs`. */
export class RateWindow {
  private samples: Array<{ t: number; accepted: number; drained: number }> = [];
  constructor(private readonly windowMs = 60_000) {}

  /** Adds a sample; counters that went down (a new JVM) start the window over. */
  add(t: number, accepted: number, drained: number): { inPerSecond: number; outPerSecond: number } | null {
    const last = this.samples.at(-1);
    if (last && (accepted < last.accepted || drained < last.drained)) this.samples = [];
    this.samples.push({ t, accepted, drained });
    while (this.samples.length > 2 && t - this.samples[1]!.t >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (t - first.t) / 1000;
    if (dt < 1) return null;
    const round = (x: number) => Math.round(x * 10) / 10;
    return { inPerSecond: round((accepted - first.accepted) / dt), outPerSecond: round((drained - first.drained) / dt) };
  }
}

/** Marks kept at most (a mark per refresh that brought events): past it the middle ones thin out. */
const MAX_MARKS = 720;

/**
 * When the oldest event still in the channel came in, from counters over time: Flume's file
 * channel is first in, first out, so the oldest waiting event is the one after all drained so
 * far. A mark says "by time t, events 1..upTo (in drain order) were in"; the first mark past the
 * drained count dates the oldest waiting event (at the latest: it may be up to a refresh older).
 * A new JVM counts from 0 and drains what the old one left first: the marks follow it.
 */
export class ChannelAges {
  private marks: Array<{ t: number; upTo: number }> = [];
  private drained: number | null = null;

  add(t: number, drained: number, channelSize: number): void {
    if (this.drained !== null && drained < this.drained) {
      const gone = this.drained;
      this.marks = this.marks.filter((m) => m.upTo > gone).map((m) => ({ t: m.t, upTo: m.upTo - gone }));
    }
    const upTo = drained + channelSize;
    const top = this.marks.at(-1);
    if (!top || upTo > top.upTo) this.marks.push({ t, upTo });
    while (this.marks.length && this.marks[0]!.upTo <= drained) this.marks.shift();
    if (this.marks.length > MAX_MARKS) this.marks.splice(1, 1);
    this.drained = drained;
  }

  /** When the oldest waiting event was in, at the latest (ms); null when nothing waits or it is not known. */
  oldestAt(channelSize: number): number | null {
    return channelSize > 0 ? (this.marks[0]?.t ?? null) : null;
  }
}
