import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  /**
   * With a password, the server requires AUTH (requirepass), as the embedded Redis does. With
   * `user`, only that ACL user may connect (the default user is off); with `tls`, it speaks TLS
   * only (rediss://), with that certificate and key.
   */
  constructor(
    private readonly password?: string,
    private readonly opts: { user?: { name: string; password: string }; tls?: { cert: string; key: string; ca: string } } = {},
  ) {}
  private readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-redis-'));
  port = 0;

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get url(): string {
    const user = this.opts.user ? `${this.opts.user.name}:${encodeURIComponent(this.opts.user.password)}@` : '';
    return `${this.opts.tls ? 'rediss' : 'redis'}://${user}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const { user, tls } = this.opts;
    const listen = tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no']
      : ['--port', String(this.port)];
    // Each word its own argument: redis-server joins them into the config line `user ...`.
    const acl = user ? ['--user', 'default', 'off', '--user', user.name, 'on', `>${user.password}`, '~*', '&*', '+@all'] : [];
    this.child = spawn('redis-server', ['--bind', '127.0.0.1', ...listen, '--save', '', '--appendonly', 'no', '--dir', this.dir, ...(this.password ? ['--requirepass', this.password] : []), ...acl], {
      stdio: 'ignore',
    });
    const probe = new Redis(this.url, {
      ...(user ? {} : { password: this.password }),
      ...(tls ? { tls: { ca: readFileSync(tls.ca) } } : {}),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
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
