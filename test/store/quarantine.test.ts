import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listQuarantine, quarantineCount, quarantineFiles, readQuarantineFile } from '../../src/store/quarantine.js';

const dir = mkdtempSync(join(tmpdir(), 'flume-svc-quarantine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const line = (body: string) => JSON.stringify({ at: '2026-12-05T00:00:00Z', error: 'RecordTooLargeException: too large', headers: { username: 'u' }, body });

describe('a quarantine on disk', () => {
  it('counts from the names, lists oldest first a page at a time, and leaves files that do not parse alone', async () => {
    writeFileSync(join(dir, 'q-2000-7-1-2.jsonl'), `${line('c')}\n${line('d')}\n`);
    writeFileSync(join(dir, 'q-1000-7-9-2.jsonl'), `${line('a')}\n${line('b')}\n`);
    writeFileSync(join(dir, 'q-3000-7-2-2.jsonl'), `${line('e')}\n`); // says 2, holds 1: not as the sink wrote it
    writeFileSync(join(dir, '.q-4000-7-3-1.jsonl.tmp'), line('x')); // being written
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    expect((await quarantineFiles(dir)).map((f) => f.name)).toEqual(['q-1000-7-9-2.jsonl', 'q-2000-7-1-2.jsonl', 'q-3000-7-2-2.jsonl']);
    expect(await quarantineCount(dir)).toBe(6);
    expect((await listQuarantine(dir, 0, 3)).map((e) => e.body)).toEqual(['a', 'b', 'c']);
    expect((await listQuarantine(dir, 3, 10)).map((e) => e.body)).toEqual(['d']);
    expect(await readQuarantineFile(dir, { name: 'q-3000-7-2-2.jsonl', count: 2 })).toBeNull();
    expect(await quarantineCount(join(dir, 'missing'))).toBe(0);
  });
});
