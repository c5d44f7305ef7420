import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { REDIS_URL, tempDir } from '../helpers/harness.js';
import { TestSupervisord } from '../helpers/supervisord.js';
import { until } from '../helpers/wait.js';
import { openEventStream } from '../helpers/webhook.js';

const tsx = join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');
const server = join(PROJECT_ROOT, 'src', 'server.ts');

describe('server.ts, the process', () => {
  it('refuses to start on a bad setting and names the variable', async () => {
    const err = await promisify(execFile)(tsx, [server], { env: { ...process.env, API_PORT: 'eighty', PORT_RANGE: '5-1' } }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/API_PORT/);
    expect((err as { stderr: string }).stderr).toMatch(/PORT_RANGE/);
  });

  it('listens, reports ready, and exits cleanly on SIGTERM, even while a dashboard holds the event stream', async () => {
    const dir = tempDir('server');
    const sup = new TestSupervisord(dir);
    await sup.start();
    const port = 18000 + Math.floor(Math.random() * 1000);
    const child = spawn(tsx, [server], {
      env: { ...process.env, STATE_DIR: dir, API_PORT: String(port), REDIS_URL, REDIS_KEY_PREFIX: `test:server${port}:`, LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    try {
      const ready = await until(() => fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null), (r) => r?.ok === true, 10_000);
      expect(ready?.status).toBe(200);
      const env = { ...process.env, STATE_DIR: dir, API_PORT: String(port), REDIS_URL, REDIS_KEY_PREFIX: `test:server${port}:` };
      const { stdout: token } = await promisify(execFile)(tsx, [join(PROJECT_ROOT, 'src', 'cli', 'token.ts'), '--role', 'viewer'], { env });
      const stream = openEventStream(`http://127.0.0.1:${port}/v1/api/events`, token.trim());
      await until(() => stream.opened, (x) => x, 10_000);
      expect(stream.opened).toBe(true);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const t0 = Date.now();
      child.kill('SIGTERM');
      // Before the fix, the process waited for the stream until supervisord's SIGKILL (30 s).
      const code = await Promise.race([exited, sleep(20_000).then(() => 'still running')]);
      console.log(`SIGTERM with an open event stream: exited in ${Date.now() - t0} ms`);
      expect(code).toBe(0);
      await stream.close();
    } finally {
      child.kill('SIGKILL');
      await sup.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
