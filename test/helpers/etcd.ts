import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, until } from './wait.js';

/** One etcd member on loopback, in a temp dir of its own (a fresh cluster token each time). */
export class TestEtcd {
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-etcd-'));
  private child: ChildProcess | null = null;
  clientPort = 0;
  private peerPort = 0;

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    if (!this.clientPort) {
      this.clientPort = await freePort();
      this.peerPort = await freePort();
    }
    const log = openSync(join(this.dir, 'etcd.log'), 'a');
    this.child = spawn('etcd', [
      '--name', 'm1', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-cluster', `m1=http://127.0.0.1:${this.peerPort}`, '--initial-cluster-token', `t-${this.clientPort}-${process.pid}`,
      '--logger', 'zap', '--log-outputs', 'stderr',
    ], { stdio: ['ignore', log, log] });
    const ok = await until(() => this.ctl('endpoint', 'health').status, (s) => s === 0, 20_000, 100);
    if (ok !== 0) throw new Error(`etcd did not come up: see ${this.dir}/etcd.log`);
  }

  ctl(...args: string[]): { status: number | null; stdout: string } {
    const r = spawnSync('etcdctl', ['--endpoints', this.endpoint, '--command-timeout=2s', ...args], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout ?? '' };
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Kills it (-9) and waits until it is gone; its data stays for a restart. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
    this.child = null;
  }

  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
