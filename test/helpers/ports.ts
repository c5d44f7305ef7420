import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canBind } from '../../src/agents/port-allocator.js';

const DIR = join(tmpdir(), 'flume-svc-test-ports');
const claimed: string[] = [];
process.on('exit', () => {
  for (const f of claimed) rmSync(f, { force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * A PORT_RANGE for one test file's agents: a window of `size` ports below the kernel's
 * ephemeral range, every port of it free now, and claimed (a file under the temp dir holding
 * this process's pid) so test files running at once never share a window. A claim whose
 * process is gone is taken over.
 */
export async function portRange(size = 100): Promise<string> {
  mkdirSync(DIR, { recursive: true });
  const windows = Math.floor((32_000 - 10_000) / size);
  const start = Math.floor(Math.random() * windows);
  for (let i = 0; i < windows; i++) {
    const base = 10_000 + ((start + i) % windows) * size;
    const file = join(DIR, String(base));
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch {
      const owner = Number(readFileSync(file, 'utf8').trim() || '0');
      if (!owner || alive(owner)) continue;
      writeFileSync(file, String(process.pid));
    }
    let free = true;
    for (let p = base; p < base + size && free; p++) free = await canBind(p);
    if (!free) {
      rmSync(file, { force: true });
      continue;
    }
    claimed.push(file);
    return `${base}-${base + size - 1}`;
  }
  throw new Error('no free window of test ports');
}
