import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHandover } from '../../src/adopt/handover.js';
import { freePort } from '../helpers/wait.js';

const root = mkdtempSync(join(tmpdir(), 'handover-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ours = { varDir: join(root, 'state', 'var'), servicesDir: join(root, 'state', 'services'), uid: process.getuid!() };
for (const d of [ours.varDir, ours.servicesDir, join(root, 'old', 'checkpoint'), join(root, 'old', 'data'), join(ours.varDir, 'flume-a-b', 'channel')]) mkdirSync(d, { recursive: true });
symlinkSync(join(root, 'old', 'data'), join(root, 'old', 'linked'));
const good = { checkpointDir: join(root, 'old', 'checkpoint'), dataDir: join(root, 'old', 'data') };
const refusal = (p: Promise<void>) => p.then(() => 'accepted', (e: Error) => e.message);

describe('a handover from another installation', () => {
  it('takes real directories of the service user on our file system, with the old agent stopped', async () => {
    expect(await refusal(checkHandover({ port: await freePort(), ...good }, ours))).toBe('accepted');
  });

  it('refuses a port still served, links, our own directories, relative or unnormalized paths, one directory twice', async () => {
    const server = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const busy = (server.address() as { port: number }).port;
    const port = await freePort();
    try {
      expect(await refusal(checkHandover({ port: busy, ...good }, ours))).toContain('still takes connections');
    } finally {
      server.close();
    }
    expect(await refusal(checkHandover({ port, ...good, dataDir: join(root, 'old', 'linked') }, ours))).toContain('is not a directory (a link)');
    expect(await refusal(checkHandover({ port, ...good, dataDir: join(ours.varDir, 'flume-a-b', 'channel') }, ours))).toContain("is this service's own");
    expect(await refusal(checkHandover({ port, ...good, checkpointDir: `${root}/old/../old/checkpoint` }, ours))).toContain('absolute, normalized');
    expect(await refusal(checkHandover({ port, ...good, checkpointDir: 'old/checkpoint' }, ours))).toContain('absolute, normalized');
    expect(await refusal(checkHandover({ port, ...good, dataDir: join(root, 'nothing') }, ours))).toContain('does not exist');
    expect(await refusal(checkHandover({ port, ...good, dataDir: good.checkpointDir }, ours))).toContain('must differ');
    expect(await refusal(checkHandover({ port, ...good }, { ...ours, uid: ours.uid + 1 }))).toContain('chown it first');
  });
});
