import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { stopChild } from './process.js';
import { freePort, until } from './wait.js';

/**
 * A real redis-server of the test's own, on a free port, keeping nothing on disk: restarting
 * it empties it, as a cache-only Redis does when it restarts.
 */
export class TestRedisServer {
  private child: ChildProcess | null = null;
  /** With a password, the server requires AUTH (requirepass), as the embedded Redis does. */
  constructor(private readonly password?: string) {}
  private readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-redis-'));
  port = 0;

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(this.port), '--save', '', '--appendonly', 'no', '--dir', this.dir, ...(this.password ? ['--requirepass', this.password] : [])], {
      stdio: 'ignore',
    });
    const probe = new Redis(this.url, { password: this.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    const up = await until(
      async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
      (ok) => ok,
      10_000,
      50,
    );
    probe.disconnect();
    if (!up) throw new Error(`redis-server did not answer on port ${this.port}`);
  }

  /** SIGKILL, as a crash: nothing is saved (nothing would be anyway). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGKILL', 5000);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGTERM', 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
