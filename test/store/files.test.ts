import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAtomic } from '../../src/store/files.js';

const dir = mkdtempSync(join(tmpdir(), 'files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeAtomic', () => {
  it('replaces a file whole, leaving no temp file behind', async () => {
    const f = join(dir, 'flume-shop-orders.conf');
    writeFileSync(f, 'old');
    await writeAtomic(f, 'new');
    expect(readFileSync(f, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['flume-shop-orders.conf']);
  });

  it('gives the file exactly the mode asked for, even over a temp file a crash left with another', async () => {
    const f = join(dir, 'secret.json');
    writeFileSync(join(dir, '.secret.json.tmp'), 'half', { mode: 0o644 });
    await writeAtomic(f, '{"k":1}', 0o600);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, 'utf8')).toBe('{"k":1}');
  });
});
