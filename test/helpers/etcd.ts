import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enableEtcdAuth, etcdTlsArgs, makeEtcdCertificates, type EtcdCertificates } from './certs.js';
import { freePort, until } from './wait.js';

/**
 * One etcd member on loopback, in a temp dir of its own (a fresh cluster token each time),
 * protected as docs/cluster.md deploys it: TLS with client certificates, authentication on,
 * the service's user with a role on `prefix` (its password in `passwordFile`). `open: true`: the
 * plain, unprotected member (for the tests of what is refused then).
 */
export class TestEtcd {
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-etcd-'));
  private child: ChildProcess | null = null;
  clientPort = 0;
  private peerPort = 0;
  readonly certs: EtcdCertificates | null;
  readonly password = 'etcd-password-of-the-service';
  readonly passwordFile = join(this.dir, 'etcd-password');
  private authed = false;

  constructor(readonly opts: { open?: boolean; prefix?: string } = {}) {
    this.certs = opts.open ? null : makeEtcdCertificates(this.dir, []);
    writeFileSync(this.passwordFile, `${this.password}\n`, { mode: 0o600 });
  }

  get endpoint(): string {
    return `${this.certs ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  /** The service's settings to reach it: TLS and the service's client certificate. */
  get settings(): Record<string, string> {
    if (!this.certs) return { ETCD_ENDPOINTS: this.endpoint, ETCD_ALLOW_UNPROTECTED: 'true' };
    return { ETCD_ENDPOINTS: this.endpoint, ETCD_CA_FILE: this.certs.ca, ETCD_CERT_FILE: this.certs.service.cert, ETCD_KEY_FILE: this.certs.service.key };
  }

  async start(): Promise<void> {
    if (!this.clientPort) {
      this.clientPort = await freePort();
      this.peerPort = await freePort();
    }
    const scheme = this.certs ? 'https' : 'http';
    const log = openSync(join(this.dir, 'etcd.log'), 'a');
    this.child = spawn('etcd', [
      '--name', 'm1', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', `${scheme}://127.0.0.1:${this.peerPort}`, '--initial-advertise-peer-urls', `${scheme}://127.0.0.1:${this.peerPort}`,
      '--initial-cluster', `m1=${scheme}://127.0.0.1:${this.peerPort}`, '--initial-cluster-token', `t-${this.clientPort}-${process.pid}`,
      ...(this.certs ? etcdTlsArgs(this.certs) : []),
      '--logger', 'zap', '--log-outputs', 'stderr',
    ], { stdio: ['ignore', log, log] });
    const ok = await until(() => this.ctl('endpoint', 'health').status, (s) => s === 0, 20_000, 100);
    if (ok !== 0) throw new Error(`etcd did not come up: see ${this.dir}/etcd.log`);
    if (this.certs && !this.authed) {
      enableEtcdAuth((...a) => this.ctl(...a), this.opts.prefix ?? '/', this.password);
      this.authed = true;
    }
  }

  /** etcdctl as etcd's root (its client certificate), or as `as` (a certificate of the same CA). */
  ctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    return this.ctlAs(this.certs?.root ?? null, ...args);
  }

  ctlAs(cert: { cert: string; key: string } | null, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const tls = this.certs && cert ? ['--cacert', this.certs.ca, '--cert', cert.cert, '--key', cert.key] : this.certs ? ['--cacert', this.certs.ca] : [];
    const r = spawnSync('etcdctl', ['--endpoints', this.endpoint, '--command-timeout=2s', ...tls, ...args], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
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
