import { z } from 'zod';

/**
 * The JVM settings a table may ask for: named flags with bounded values, nothing else.
 *
 * Guarantees: no accepted option reads or writes a file, runs a program, unlocks further flags,
 * loads code, opens a port or takes more memory than the heap ceiling (AGENT_MAX_HEAP); every
 * accepted option is made of characters that go into a supervisord command line as they are.
 * The list is closed: a flag not named here is refused, whatever its shape.
 */

const MB = 1024 * 1024;
const SIZE = /^(\d{1,12})([kKmMgG]?)$/;

/** "512k", "64m", "2g" or plain bytes, in bytes; null if it is not a size. */
export function sizeBytes(s: string): number | null {
  const m = SIZE.exec(s);
  if (!m) return null;
  const unit = { '': 1, k: 1024, m: MB, g: 1024 * MB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}

type Rule =
  | { kind: 'switch'; why: string }
  | { kind: 'int'; min: number; max: number; why: string }
  | { kind: 'size'; min: number; max: number; why: string };

/** -XX flags by name. Switches take -XX:+Name / -XX:-Name; the others -XX:Name=value. */
export const XX_FLAGS: Record<string, Rule> = {
  UseSerialGC: { kind: 'switch', why: 'garbage collector (one of Serial, Parallel, G1)' },
  UseParallelGC: { kind: 'switch', why: 'garbage collector (one of Serial, Parallel, G1)' },
  UseG1GC: { kind: 'switch', why: 'garbage collector (one of Serial, Parallel, G1)' },
  MaxGCPauseMillis: { kind: 'int', min: 1, max: 10_000, why: "G1's pause goal" },
  ParallelGCThreads: { kind: 'int', min: 1, max: 64, why: 'GC threads' },
  ConcGCThreads: { kind: 'int', min: 1, max: 64, why: 'concurrent GC threads' },
  MinHeapFreeRatio: { kind: 'int', min: 0, max: 100, why: 'heap growth' },
  MaxHeapFreeRatio: { kind: 'int', min: 0, max: 100, why: 'heap shrinking' },
  UseStringDeduplication: { kind: 'switch', why: 'G1 string deduplication' },
  TieredCompilation: { kind: 'switch', why: 'tiered JIT' },
  TieredStopAtLevel: { kind: 'int', min: 0, max: 4, why: 'JIT tier (1: C1 only)' },
  CICompilerCount: { kind: 'int', min: 1, max: 16, why: 'JIT threads' },
  ReservedCodeCacheSize: { kind: 'size', min: 2 * MB, max: 256 * MB, why: 'JIT code cache' },
  MaxMetaspaceSize: { kind: 'size', min: 16 * MB, max: 1024 * MB, why: 'class metadata' },
  MaxDirectMemorySize: { kind: 'size', min: 0, max: 1024 * MB, why: 'off-heap buffers' },
  ActiveProcessorCount: { kind: 'int', min: 1, max: 256, why: 'CPUs the JVM sizes itself for' },
  UseCompressedOops: { kind: 'switch', why: 'compressed pointers' },
};

/** -Xss (thread stacks), -Xms (initial heap), -Xmn (young generation): sizes, bounded by the heap. */
const X_SIZES = { ss: { min: 128 * 1024, max: 8 * MB }, ms: { min: MB, max: Infinity }, mn: { min: MB, max: Infinity } } as const;

const GCS = ['UseSerialGC', 'UseParallelGC', 'UseG1GC'];

/** Why one option is refused, or null when it is on the list (its value within bounds). */
export function jvmOptionProblem(o: string): string | null {
  const x = /^-X(ss|ms|mn)(.+)$/.exec(o);
  if (x) {
    const b = X_SIZES[x[1] as keyof typeof X_SIZES];
    const n = sizeBytes(x[2]!);
    if (n === null) return `${o}: the size must look like 512k, 64m or 1g`;
    if (n < b.min || n > b.max) return `${o}: must be within ${fmt(b.min)}-${b.max === Infinity ? 'the heap' : fmt(b.max)}`;
    return null;
  }
  const sw = /^-XX:([+-])([A-Za-z][A-Za-z0-9]{0,63})$/.exec(o);
  const kv = /^-XX:([A-Za-z][A-Za-z0-9]{0,63})=(.{1,32})$/.exec(o);
  const bare = /^-XX:([A-Za-z][A-Za-z0-9]{0,63})$/.exec(o);
  const name = sw?.[2] ?? kv?.[1] ?? bare?.[1];
  const rule = name ? XX_FLAGS[name] : undefined;
  if (!name || !rule) return `${o.slice(0, 80)}: not an accepted JVM option (the list: docs/security.md)`;
  if (rule.kind === 'switch') return sw ? null : `-XX:${name} is a switch: -XX:+${name} or -XX:-${name}`;
  if (!kv) return `-XX:${name} takes a value: -XX:${name}=<${rule.kind === 'int' ? 'number' : 'size'}>`;
  const v = kv[2]!;
  const n = rule.kind === 'int' ? (/^\d{1,9}$/.test(v) ? Number(v) : null) : sizeBytes(v);
  if (n === null) return `-XX:${name}: ${rule.kind === 'int' ? 'a whole number' : 'a size such as 64m'} is needed`;
  if (n < rule.min || n > rule.max) {
    const show = rule.kind === 'int' ? String : fmt;
    return `-XX:${name}=${v}: must be within ${show(rule.min)}-${show(rule.max)}`;
  }
  return null;
}

const fmt = (bytes: number) => (bytes >= MB && bytes % MB === 0 ? `${bytes / MB}m` : bytes % 1024 === 0 ? `${bytes / 1024}k` : String(bytes));

/** One option, checked against the list (the create body and config changes use it). */
export const jvmOption = z.string().max(100).superRefine((o, ctx) => {
  const problem = jvmOptionProblem(o);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * What only the whole set can tell: the heap within the ceiling, -Xms/-Xmn within the heap, one
 * garbage collector. Returns each problem with the field it belongs to.
 */
export function jvmSetProblems(jvm: { heap?: string; options?: string[] } | undefined, limits: { defaultHeap: string; maxHeap: string }): Array<{ field: string; message: string }> {
  if (!jvm) return [];
  const out: Array<{ field: string; message: string }> = [];
  const heap = sizeBytes(jvm.heap ?? limits.defaultHeap) ?? 0;
  const max = sizeBytes(limits.maxHeap) ?? 0;
  if (jvm.heap && heap > max) out.push({ field: 'jvm.heap', message: `${jvm.heap} is above the heap ceiling ${limits.maxHeap} (AGENT_MAX_HEAP)` });
  (jvm.options ?? []).forEach((o, i) => {
    const x = /^-X(ms|mn)(.+)$/.exec(o);
    const n = x ? sizeBytes(x[2]!) : null;
    if (x && n !== null && (x[1] === 'ms' ? n > heap : n >= heap)) {
      out.push({ field: `jvm.options.${i}`, message: `${o}: must be ${x[1] === 'ms' ? 'at most' : 'below'} the heap (${jvm.heap ?? limits.defaultHeap})` });
    }
  });
  const gcs = (jvm.options ?? []).filter((o) => GCS.some((g) => o === `-XX:+${g}`));
  if (gcs.length > 1) out.push({ field: 'jvm.options', message: `choose one garbage collector, not ${gcs.join(' and ')}` });
  return out;
}
