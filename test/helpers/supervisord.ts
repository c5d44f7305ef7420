import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './wait.js';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { stopChild } from './process.js';
import { XmlRpcSupervisorDriver } from '../../src/supervisor/xmlrpc-driver.js';

/**
 * A real supervisord of the test's own, in `stateDir` (its conf.d/ is included, its socket is
 * var/run/supervisor.sock), run in the foreground (-n) so the test owns and reaps it.
 */
export class TestSupervisord {
  readonly socket: string;
  readonly configFile: string;
  private child: ChildProcess | null = null;

  /**
   * With `listener`, supervisord also runs the event listener, forwarding to that Redis.
   * With `api`, it also runs the API itself (program `api`, src/server.ts in one node process,
   * restarted when it dies) with these settings, as supervisor.conf does.
   */
  constructor(
    readonly stateDir: string,
    private readonly listener?: { redisUrl: string; prefix: string; tlsCaFile?: string },
    private readonly api?: Record<string, string>,
  ) {
    this.socket = join(stateDir, 'var', 'run', 'supervisor.sock');
    this.configFile = join(stateDir, 'supervisord.conf');
    for (const d of ['conf.d', 'services', 'var/run', 'var/log']) mkdirSync(join(stateDir, d), { recursive: true });
    writeFileSync(
      this.configFile,
      [
        '[unix_http_server]',
        `file=${this.socket}`,
        '[supervisord]',
        `logfile=${join(stateDir, 'var', 'log', 'supervisord.log')}`,
        `pidfile=${join(stateDir, 'var', 'run', 'supervisord.pid')}`,
        `childlogdir=${join(stateDir, 'var', 'log')}`,
        // As supervisor.conf: nothing it or its programs write is readable by other users.
        'umask=027',
        '[rpcinterface:supervisor]',
        'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface',
        '[supervisorctl]',
        `serverurl=unix://${this.socket}`,
        ...(this.listener
          ? [
              '[eventlistener:agent-events]',
              `command=${join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx')} ${join(PROJECT_ROOT, 'src', 'cli', 'event-listener.ts')}`,
              'events=PROCESS_STATE',
              'buffer_size=1024',
              `environment=REDIS_URL="${this.listener.redisUrl}",REDIS_KEY_PREFIX="${this.listener.prefix}",STATE_DIR="${stateDir}"${this.listener.tlsCaFile ? `,REDIS_TLS_CA_FILE="${this.listener.tlsCaFile}"` : ''}`,
              `stderr_logfile=${join(stateDir, 'var', 'log', 'agent-events.log')}`,
            ]
          : []),
        ...(this.api
          ? [
              '[program:api]',
              // One process (no tsx wrapper): a kill -9 of the pid supervisord reports is the API's death.
              `command=${process.execPath} --import tsx ${join(PROJECT_ROOT, 'src', 'server.ts')}`,
              `directory=${PROJECT_ROOT}`,
              'autorestart=true',
              'startsecs=1',
              'stopsignal=TERM',
              `environment=${Object.entries({ STATE_DIR: stateDir, ...this.api })
                .map(([k, v]) => `${k}="${v.replace(/%/g, '%%')}"`)
                .join(',')}`,
              'redirect_stderr=true',
              `stdout_logfile=${join(stateDir, 'var', 'log', 'api.log')}`,
            ]
          : []),
        '[include]',
        `files = ${join(stateDir, 'conf.d')}/*.conf`,
        '',
      ].join('\n'),
    );
  }

  /** supervisord's pid while it runs (to SIGSTOP it: a supervisord that hangs). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.child = spawn('supervisord', ['-n', '-c', this.configFile], { stdio: 'ignore' });
    const probe = new XmlRpcSupervisorDriver(this.socket, 2000);
    const child = this.child;
    try {
      const answered = await until(
        () => probe.ping().then(() => true, () => false),
        (ok) => ok || child.exitCode !== null,
        10_000,
        100,
      );
      if (child.exitCode !== null) throw new Error(`supervisord exited ${child.exitCode}`);
      if (!answered) throw new Error('supervisord did not answer in 10 s');
    } finally {
      await probe.close();
    }
  }

  /** SIGTERM: supervisord stops every program it runs, then exits; we wait for that. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGTERM', 60_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}
