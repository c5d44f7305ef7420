import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lastExit, suggestAction } from '../../src/incidents/explain.js';

const dir = mkdtempSync(join(tmpdir(), 'explain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('explaining an exit', () => {
  it("reads the last exit of the program from supervisord's log, by exit status or signal", async () => {
    const log = join(dir, 'supervisord.log');
    writeFileSync(
      log,
      [
        '2026-12-01 10:00:00,000 INFO exited: flume-shop-orders (exit status 1; not expected)',
        '2026-12-01 10:00:01,000 INFO exited: flume-shop-orders-eu (terminated by SIGTERM; not expected)',
        '2026-12-01 10:00:02,000 INFO exited: flume-shop-orders (terminated by SIGKILL; not expected)',
        '',
      ].join('\n'),
    );
    expect(await lastExit(log, 'flume-shop-orders')).toEqual({ exitCode: null, signal: 'SIGKILL' });
    expect(await lastExit(log, 'flume-shop-orders-eu')).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(await lastExit(log, 'flume-crm-leads')).toEqual({ exitCode: null, signal: null });
  });

  it('suggests what to do from the cause, the first matching one winning', () => {
    const none = { exitCode: 1, signal: null };
    expect(suggestAction({ exitCode: null, signal: 'SIGKILL' }, ['java.lang.OutOfMemoryError'], 'exit')).toMatch(/OOM killer/);
    expect(suggestAction({ exitCode: null, signal: 'SIGHUP' }, [], 'exit')).toMatch(/Killed by SIGHUP from outside/);
    expect(suggestAction(none, ['Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'], 'exit')).toMatch(/AGENT_HEAP/);
    expect(suggestAction(none, ['java.io.IOException: Usable space exhausted'], 'loop')).toMatch(/minimumRequiredSpace/);
    expect(suggestAction(none, ['java.net.BindException: Address already in use'], 'exit')).toMatch(/ss -ltnp/);
    expect(suggestAction(none, ['Error: Could not find or load main class flumeservice.Agent'], 'exit')).toMatch(/class path/);
    expect(suggestAction(none, [], 'fatal')).toMatch(/POST \.\.\.\/start/);
    expect(suggestAction(none, [], 'loop')).toMatch(/roll back/);
    expect(suggestAction(none, ['all fine'], 'exit')).toMatch(/restarts the agent by itself/);
  });
});
