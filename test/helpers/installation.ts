import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { findStrays, liveSupervisord, pidAlive, processesOf, reap } from '../../src/supervisor/strays.js';
import { randomBytes } from 'node:crypto';
import { REDIS_URL } from './harness.js';
import { portRange } from './ports.js';
import { freePort, until } from './wait.js';

/**
 * A whole installation in a temp dir, run by the README's own first command (scripts/up.sh) and
 * supervisor.conf: scripts, supervisor.conf and dist/ are copied (times kept, so the set-up sees
 * nothing to rebuild), node_modules, src, templates and flume/ are linked. Its state (conf.d/,
 * services/, var/) is its own. `env` holds its settings (ports, Redis, prefix).
 */
export class Installation {
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-install-'));
  /** `netns`: the host is that network namespace (test/helpers/netns.ts): its processes run there. */
  constructor(
    readonly env: Record<string, string>,
    readonly opts: { netns?: string } = {},
  ) {
    for (const f of ['scripts', 'supervisor.conf', 'package.json', 'package-lock.json', 'tsconfig.json', 'dist']) {
      cpSync(join(PROJECT_ROOT, f), join(this.dir, f), { recursive: true, preserveTimestamps: true });
    }
    for (const f of ['node_modules', 'src', 'templates', 'flume']) symlinkSync(join(PROJECT_ROOT, f), join(this.dir, f));
    // The set-up reinstalls when package-lock.json is newer than node_modules' stamp: never here
    // (node_modules is the checkout's own, shared).
    const stamp = statSync(join(PROJECT_ROOT, 'node_modules', '.package-lock.json')).mtime;
    const before = new Date(stamp.getTime() - 1000);
    utimesSync(join(this.dir, 'package-lock.json'), before, before);
  }

  /**
   * An installation of its own on this host: free API and gateway ports, its own range of agent
   * ports, the test Redis under a random key prefix, agents at -Xmx128m; `env` adds or replaces.
   */
  static async fresh(env: Record<string, string> = {}, opts: { netns?: string } = {}): Promise<Installation> {
    return new Installation(
      {
        API_PORT: String(await freePort()),
        GATEWAY_PORT: String(await freePort()),
        REDIS_URL,
        REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
        PORT_RANGE: await portRange(),
        AGENT_HEAP: '128m',
        ...env,
      },
      opts,
    );
  }

  /** One API call as `token` (JSON in and out); status 0 when no answer came (the API is down). */
  async call(token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, any> }> {
    const r = await fetch(`${this.api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    }).catch(() => null);
    return r ? { status: r.status, body: (await r.json().catch(() => ({}))) as Record<string, any> } : { status: 0, body: {} };
  }

  /** Where its state lives: STATE_DIR when the test gives one (the checkout then links to it), else the checkout. */
  get stateDir(): string {
    return this.env.STATE_DIR ?? this.dir;
  }

  get varDir(): string {
    return join(this.stateDir, 'var');
  }

  get api(): string {
    return `http://127.0.0.1:${this.env.API_PORT}`;
  }

  get gateway(): string {
    return `http://127.0.0.1:${this.env.GATEWAY_PORT}`;
  }

  get procEnv(): NodeJS.ProcessEnv {
    // Run as root, up.sh would keep the state in /var/lib/flume-service: each test's stays its own.
    return { ...process.env, SERVICE_USER: 'root', LOG_LEVEL: 'warn', STATE_DIR: this.dir, ...this.env };
  }

  /** The README's first command; resolves with its output once it exits (it fails the test if it fails). */
  async up(): Promise<string> {
    const [cmd, args] = this.opts.netns ? ['ip', ['netns', 'exec', this.opts.netns, 'bash', 'scripts/up.sh']] : ['bash', ['scripts/up.sh']];
    const child = spawn(cmd, args, { cwd: this.dir, env: this.procEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    if (code !== 0) throw new Error(`scripts/up.sh exited ${code}:\n${out}\n${this.log('api.log').slice(-3000)}`);
    return out;
  }

  supervisorctl(...args: string[]): string {
    const r = spawnSync('supervisorctl', ['-c', join(this.dir, 'supervisor.conf'), ...args], { encoding: 'utf8', timeout: 60_000 });
    return (r.stdout ?? '') + (r.stderr ?? '');
  }

  /** supervisord's view: program -> state. */
  states(): Record<string, string> {
    return Object.fromEntries(
      this.supervisorctl('status')
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((w) => w.length >= 2 && /^[A-Z]+$/.test(w[1]!))
        .map((w) => [w[0]!, w[1]!]),
    );
  }

  supervisordPid(): number | null {
    return liveSupervisord(this.varDir);
  }

  token(...args: string[]): string {
    const r = spawnSync(process.execPath, ['dist/cli/token.js', ...args], { cwd: this.dir, env: this.procEnv, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`token: ${r.stderr}`);
    return r.stdout.trim();
  }

  log(name: string): string {
    try {
      return readFileSync(join(this.varDir, 'log', name), 'utf8');
    } catch {
      return '';
    }
  }

  private get dirs() {
    return { STATE_DIR: this.stateDir, varDir: this.varDir, servicesDir: join(this.stateDir, 'services') };
  }

  /** Every process of the installation (src/supervisor/strays.ts tells them by its paths), supervisord aside. */
  processes(): Array<{ pid: number; kind: string; program: string | null; command: string }> {
    return processesOf(this.dirs);
  }

  /** JVMs running the table's program (whoever started them). */
  jvmsOf(program: string): number[] {
    return this.processes()
      .filter((p) => p.kind === 'agent' && p.program === program)
      .map((p) => p.pid);
  }

  /** Every line the table's file_roll sink wrote. */
  delivered(program: string): string[] {
    const out = join(this.varDir, program, 'out');
    try {
      return readdirSync(out).flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean));
    } catch {
      return [];
    }
  }

  /** supervisorctl shutdown, then waits until every process of the installation is gone. Returns what was still left (and is then killed). */
  async shutdown(): Promise<Array<{ pid: number; kind: string }>> {
    const sv = this.supervisordPid();
    if (sv) {
      this.supervisorctl('shutdown');
      await until(() => pidAlive(sv), (alive) => !alive, 60_000, 200);
    }
    const left = await until(() => this.processes(), (p) => p.length === 0, 5000, 200);
    return left.map(({ pid, kind }) => ({ pid, kind }));
  }

  /** Whatever is left, gone: for afterAll, whatever the test did. */
  async destroy(): Promise<void> {
    await this.shutdown().catch(() => undefined);
    await reap(findStrays(this.dirs), { agentGraceMs: 10_000, otherGraceMs: 5000 });
    for (const p of this.processes()) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (this.stateDir !== this.dir) rmSync(this.stateDir, { recursive: true, force: true });
  }
}

