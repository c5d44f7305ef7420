import { spawn, type ChildProcess } from 'node:child_process';
import { acceptsConnections } from '../../src/agents/port-allocator.js';
import type { Config } from '../../src/config.js';
import { writeGatewayConfig } from '../../src/gateway/render.js';
import type { Harness } from './harness.js';
import { stopChild } from './process.js';
import { until } from './wait.js';

/**
 * Points the gateway's route for db.table at `value` (e.g. `127.0.0.1:<port> tx=<n>`, as
 * RouteTable writes it), or withdraws it (null); the table stays known either way.
 */
export async function setRoute(h: Pick<Harness, 'redis' | 'keys'>, db: string, table: string, value: string | null): Promise<void> {
  const tx = h.redis.multi().sadd(h.keys.tables(), `${db}:${table}`);
  await (value === null ? tx.del(h.keys.route(db, table)) : tx.set(h.keys.route(db, table), value)).exec();
}

/** Real nginx running the rendered gateway config, in the foreground so the test reaps it. */
export class TestGateway {
  private child: ChildProcess | null = null;
  constructor(readonly config: Config) {}

  get url(): string {
    return `http://${this.config.GATEWAY_HOST}:${this.config.GATEWAY_PORT}`;
  }

  async start(): Promise<void> {
    const { dir, configFile } = await writeGatewayConfig(this.config, { workers: 2 });
    this.child = spawn('nginx', ['-p', dir, '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    const child = this.child;
    const up = await until(
      async () => child.exitCode === null && (await acceptsConnections(this.config.GATEWAY_PORT, this.config.GATEWAY_HOST, 200)),
      (ok) => ok || child.exitCode !== null,
      25_000,
      50,
    );
    if (!up) throw new Error(`nginx did not start: ${this.errorLog()}`);
  }

  private stderr = '';
  /** nginx's error log (it logs to stderr; under supervisord that is var/log/gateway.log). */
  errorLog(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGQUIT', 10_000);
  }
}

/** One POST through the gateway; an answer that takes over 30 s (a hang) fails the test. */
export async function ingest(gw: TestGateway, db: string, table: string, token: string | null, body: unknown, raw?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${gw.url}/ingest/${db}/${table}`, {
    method: 'POST',
    signal: AbortSignal.timeout(30_000),
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    body: raw ?? JSON.stringify(body),
  });
  const text = await res.text();
  const answered = Object.fromEntries(res.headers);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json, headers: answered };
}

/** One answer a sender got: what it sent, the status (0: no answer), when it sent and when it heard. */
export interface SentAnswer {
  body: string;
  status: number;
  sentAt: number;
  at: number;
}

/**
 * A sender posting one event at a time (`<prefix>-<n>`) through the gateway until stopped, as a
 * script that retries at once would: the next request follows every answer. Every answer is recorded.
 */
export function startSender(gw: TestGateway, db: string, table: string, token: string, prefix = 'e'): { answers: SentAnswer[]; stop(): Promise<void> } {
  const answers: SentAnswer[] = [];
  let sending = true;
  const done = (async () => {
    for (let n = 0; sending; n++) {
      const body = `${prefix}-${n}`;
      const sentAt = Date.now();
      const r = await ingest(gw, db, table, token, [{ headers: {}, body }]).catch(() => ({ status: 0 }));
      answers.push({ body, status: r.status, sentAt, at: Date.now() });
    }
  })();
  return {
    answers,
    stop: async () => {
      sending = false;
      await done;
    },
  };
}
