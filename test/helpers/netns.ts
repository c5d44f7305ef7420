import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enableEtcdAuth, etcdTlsArgs, makeEtcdCertificates, type EtcdCertificates } from './certs.js';
import { until } from './wait.js';

/**
 * Hosts on one machine: network namespaces this test creates, joined by a bridge in a namespace
 * of their own (nothing in the root namespace but a guard route), each host with its own
 * loopback and one address on the cluster subnet. Traffic goes only to loopback or to these
 * addresses: drivers run inside a host (`exec`, `curl`), and while the cluster exists the root
 * namespace routes the subnet nowhere (`unreachable`), so a call that forgot its namespace
 * fails here instead of leaving the machine. `destroy` kills every process in the namespaces
 * and deletes what was created.
 */
export class NetnsCluster {
  readonly tag = randomBytes(3).toString('hex');
  /** 10.77.<subnet>.0/24, random per run: two runs never share one. */
  readonly subnet = 10 + (randomBytes(1)[0]! % 240);
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-cluster-'));
  private readonly etcds = new Map<number, ChildProcess>();
  private created = false;

  constructor(readonly size = 3) {}

  get cidr(): string {
    return `10.77.${this.subnet}.0/24`;
  }

  ns(i: number): string {
    return `fs${this.tag}h${i}`;
  }

  private get fabric(): string {
    return `fs${this.tag}fab`;
  }

  address(i: number): string {
    return `10.77.${this.subnet}.${10 + i}`;
  }

  hosts(): number[] {
    return Array.from({ length: this.size }, (_, k) => k + 1);
  }

  async create(): Promise<void> {
    this.created = true;
    ip('route', 'add', 'unreachable', this.cidr);
    ip('netns', 'add', this.fabric);
    ip('-n', this.fabric, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.fabric, 'link', 'set', 'br0', 'up');
    ip('-n', this.fabric, 'link', 'set', 'lo', 'up');
    for (const i of this.hosts()) {
      ip('netns', 'add', this.ns(i));
      // Both ends are created away from the root namespace.
      ip('-n', this.fabric, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns(i));
      ip('-n', this.fabric, 'link', 'set', `p${i}`, 'master', 'br0', 'up');
      ip('-n', this.ns(i), 'link', 'set', 'lo', 'up');
      ip('-n', this.ns(i), 'addr', 'add', `${this.address(i)}/24`, 'dev', 'eth0');
      ip('-n', this.ns(i), 'link', 'set', 'eth0', 'up');
      // A reconnect to a host that is cut off gives up in seconds, not in two minutes.
      this.run(i, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_syn_retries=2']);
    }
  }

  /** Runs a command inside host i and waits for it. */
  run(i: number, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.ns(i), cmd, ...args], { encoding: 'utf8', env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000 });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Starts a command inside host i in the background (its own session); output to `log`. */
  spawn(i: number, cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const fd = openSync(log, 'a');
    const child = spawn('ip', ['netns', 'exec', this.ns(i), cmd, ...args], { env, detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    return child;
  }

  /** An HTTP call made from inside host `from` (curl): status, and the body as JSON when it is. */
  async http(
    from: number,
    method: string,
    url: string,
    opts: { body?: unknown; token?: string; timeoutS?: number; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
    const args = ['-sS', '-o', '-', '-w', '\n%{http_code}', '-X', method, '--max-time', String(opts.timeoutS ?? 60)];
    if (opts.token) args.push('-H', `authorization: Bearer ${opts.token}`);
    for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
    if (opts.body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(opts.body));
    args.push(url);
    const child = spawn('ip', ['netns', 'exec', this.ns(from), 'curl', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise((r) => child.on('close', r));
    const cut = out.lastIndexOf('\n');
    const status = Number(out.slice(cut + 1)) || 0;
    const text = out.slice(0, Math.max(0, cut));
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { raw: text, curl: err.trim() };
    }
    return { status, body, text };
  }

  get etcdEndpoints(): string {
    return this.hosts().map((i) => `https://${this.address(i)}:2379`).join(',');
  }

  private madeCerts: EtcdCertificates | null = null;
  /** The etcd members' certificates (TLS to clients and peers, client certificates required). */
  get certs(): EtcdCertificates {
    this.madeCerts ??= makeEtcdCertificates(this.dir, this.hosts().map((i) => this.address(i)));
    return this.madeCerts;
  }

  /** What each host's settings need to reach etcd: its endpoints, the CA, the service's client certificate. */
  get etcdSettings(): Record<string, string> {
    return { ETCD_ENDPOINTS: this.etcdEndpoints, ETCD_CA_FILE: this.certs.ca, ETCD_CERT_FILE: this.certs.service.cert, ETCD_KEY_FILE: this.certs.service.key };
  }

  /** etcdctl inside host i, as etcd's root (or `as`), against `endpoints` (default: its own member). */
  etcdctl(i: number, args: string[], opts: { as?: { cert: string; key: string }; endpoints?: string } = {}): { status: number | null; stdout: string; stderr: string } {
    const who = opts.as ?? this.certs.root;
    return this.run(i, 'etcdctl', ['--endpoints', opts.endpoints ?? `https://${this.address(i)}:2379`, '--cacert', this.certs.ca, '--cert', who.cert, '--key', who.key, '--command-timeout=2s', ...args]);
  }

  /** A record's value as the hosts read it (etcd holds it sealed: src/cluster/etcd.ts RecordSeal); '' when absent. */
  etcdValue(i: number, key: string): string {
    return this.etcdctl(i, ['get', '--print-value-only', key]).stdout.trim().replace(/^fs1\.[A-Za-z0-9_-]{43}\./, '');
  }

  /**
   * One etcd member per host, a cluster of its own (a token unique to this run), protected as
   * docs/cluster.md deploys it: TLS between members and to clients with client certificates,
   * authentication on, the hosts a user with read-write on the cluster's prefix only. Waits until
   * every member is healthy.
   */
  async startEtcd(prefix = '/flume-service/'): Promise<void> {
    const token = `flume-svc-${this.tag}`;
    const peers = this.hosts().map((i) => `h${i}=https://${this.address(i)}:2380`).join(',');
    this.etcdCluster = { token, peers };
    for (const i of this.hosts()) this.startEtcdMember(i, token, peers);
    for (const i of this.hosts()) {
      const healthy = await until(() => this.etcdctl(i, ['endpoint', 'health']).status, (s) => s === 0, 30_000, 200);
      if (healthy !== 0) throw new Error(`etcd member h${i} is not healthy: see ${this.dir}/etcd-h${i}.log`);
    }
    enableEtcdAuth((...args) => this.etcdctl(1, args), prefix);
  }

  /** The host whose etcd member leads now, as the members that answer say (null: none answers with a leader). */
  etcdLeader(): number | null {
    for (const i of this.hosts()) {
      const r = this.etcdctl(i, ['endpoint', 'status', '-w', 'json']);
      if (r.status !== 0) continue;
      const s = (JSON.parse(r.stdout) as Array<{ Status: { header: { member_id: number }; leader: number } }>)[0]?.Status;
      if (!s?.leader) continue;
      if (s.header.member_id === s.leader) return i;
    }
    return null;
  }

  /** Stops host i's etcd member (kill -9), nothing else of the host. */
  async stopEtcd(i: number): Promise<void> {
    const child = this.etcds.get(i);
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  /** Starts host i's etcd member again (after killHost or stopEtcd): it rejoins with its data. */
  async restartEtcd(i: number): Promise<void> {
    this.startEtcdMember(i, this.etcdCluster!.token, this.etcdCluster!.peers);
    const healthy = await until(() => this.etcdctl(i, ['endpoint', 'health']).status, (s) => s === 0, 30_000, 200);
    if (healthy !== 0) throw new Error(`etcd member h${i} is not healthy again: see ${this.dir}/etcd-h${i}.log`);
  }

  /** kill -9 of every process in host i (its etcd member too), as a host that dies; waits until none is left. */
  async killHost(i: number): Promise<void> {
    if (!(await killAll(() => this.pidsIn([this.ns(i)]), 50))) throw new Error(`processes are still left in ${this.ns(i)}`);
  }

  private etcdCluster: { token: string; peers: string } | null = null;

  private startEtcdMember(i: number, token: string, peers: string): void {
    const a = this.address(i);
    const data = join(this.dir, `etcd-h${i}`);
    mkdirSync(data, { recursive: true });
    const child = this.spawn(i, 'etcd', [
      '--name', `h${i}`, '--data-dir', data,
      '--listen-peer-urls', `https://${a}:2380`, '--initial-advertise-peer-urls', `https://${a}:2380`,
      '--listen-client-urls', `https://${a}:2379,https://127.0.0.1:2379`, '--advertise-client-urls', `https://${a}:2379`,
      '--initial-cluster', peers, '--initial-cluster-token', token, '--initial-cluster-state', 'new',
      // As docs/cluster.md deploys it: a member back from a cut asks before it campaigns, so it
      // does not depose a leader the others still follow (etcd 3.4 campaigns at once otherwise).
      '--pre-vote',
      ...etcdTlsArgs(this.certs),
      '--logger', 'zap', '--log-outputs', 'stderr',
    ], join(this.dir, `etcd-h${i}.log`));
    this.etcds.set(i, child);
  }

  /** Every process inside the namespaces, killed (-9), then the namespaces, the guard route and the temp dir gone. */
  async destroy(): Promise<void> {
    if (!this.created) return;
    await killAll(() => this.pids(), 20);
    for (const i of this.hosts()) spawnSync('ip', ['netns', 'del', this.ns(i)]);
    spawnSync('ip', ['netns', 'del', this.fabric]);
    spawnSync('ip', ['route', 'del', 'unreachable', this.cidr]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Processes whose network namespace is one of ours. */
  pids(): number[] {
    return this.pidsIn([this.fabric, ...this.hosts().map((i) => this.ns(i))]);
  }

  private pidsIn(namespaces: string[]): number[] {
    return namespaces.flatMap((n) => (spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout ?? '').split('\n').filter(Boolean).map(Number));
  }
}

/** kill -9 of what `pids` lists, again every 100 ms until it lists none (true) or `rounds` passed (false). */
async function killAll(pids: () => number[], rounds: number): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    const left = pids();
    if (!left.length) return true;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return pids().length === 0;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}
