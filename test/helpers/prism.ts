import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { acceptsConnections } from '../../src/agents/port-allocator.js';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { getHttpOperationsFromSpec } from '@stoplight/prism-http';
import { validateOutput } from '@stoplight/prism-http/dist/validator/index.js';
import { stopChild } from './process.js';
import { freePort, until } from './wait.js';

/** One thing Prism found wrong with a request or an answer (its `sl-violations` header). */
export interface Violation {
  location: string[];
  severity: string;
  code: string | number;
  message: string;
}

/**
 * Stoplight Prism in proxy mode (a contract checker nobody here wrote): every request goes through
 * it to the API, and each answer comes back with what it broke of the OpenAPI document in an
 * `sl-violations` header. Run in the foreground, so the test reaps it.
 */
export class PrismProxy {
  private child: ChildProcess | null = null;
  private output = '';
  url = '';

  constructor(
    private readonly document: Record<string, unknown>,
    private readonly upstream: string,
    private readonly dir: string,
  ) {}

  async start(): Promise<void> {
    const file = join(this.dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(this.document));
    const port = await freePort();
    const bin = join(PROJECT_ROOT, 'node_modules', '.bin', 'prism');
    // --errors=false: Prism passes the API's answer on as it is and reports, never answers for it.
    this.child = spawn(bin, ['proxy', file, this.upstream, '--port', String(port), '--host', '127.0.0.1', '--errors=false', '--cors=false', '-v', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SCARF_ANALYTICS: 'false', DO_NOT_TRACK: '1' },
    });
    const child = this.child;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const up = await until(
      async () => child.exitCode === null && (await acceptsConnections(port, '127.0.0.1', 200)),
      (ok) => ok || child.exitCode !== null,
      30_000,
      100,
    );
    if (!up) throw new Error(`prism did not start: ${this.output.slice(-2000)}`);
    this.url = `http://127.0.0.1:${port}`;
  }

  log(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGTERM', 10_000);
  }
}

/** The violations Prism reported for one answer. */
export function violationsOf(headers: Headers): Violation[] {
  const raw = headers.get('sl-violations');
  return raw ? (JSON.parse(raw) as Violation[]) : [];
}

/**
 * Prism's own validator, for answers Prism cannot carry as a proxy (a body that is not JSON, a
 * request cut off for its headers): the violations of `answer` against the operation
 * `method path` (the document's path template).
 */
export async function checkAnswer(
  document: Record<string, unknown>,
  method: string,
  path: string,
  answer: { status: number; headers: Record<string, string>; body: unknown },
): Promise<Violation[]> {
  const operations = await getHttpOperationsFromSpec(structuredClone(document));
  const resource = operations.find((o) => o.method === method.toLowerCase() && o.path === path);
  if (!resource) throw new Error(`the document has no operation ${method} ${path}`);
  const result = validateOutput({ resource, element: { statusCode: answer.status, headers: answer.headers, body: answer.body } });
  return result._tag === 'Left'
    ? result.left.map((d) => ({ location: ['response', ...(d.path ?? []).map(String)], severity: String(d.severity), code: d.code ?? '', message: d.message }))
    : [];
}
