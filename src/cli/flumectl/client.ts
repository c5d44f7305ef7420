import { readFileSync } from 'node:fs';
import type { EventSourceMessage } from 'eventsource-parser';
import { EventSourceParserStream } from 'eventsource-parser/stream';

/** What the process exits with: each means one thing, for scripts. */
export const EXIT = {
  OK: 0,
  /** The API answered with an error (its code and message are printed). */
  API_ERROR: 1,
  /** The command line is wrong (usage printed). */
  USAGE: 2,
  /** The API could not be reached (URL, network, or it is down). */
  UNREACHABLE: 3,
  /** The call was done, but some of it failed (a bulk operation with failed tables). */
  PARTIAL: 4,
} as const;

/** An error that ends the command with its exit code and message. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export interface Connection {
  url: string;
  token: string;
}

/** The API's URL and token: flags first, then FLUME_API_URL / FLUME_TOKEN (or FLUME_TOKEN_FILE). */
export function connection(flags: { url?: string; token?: string; 'token-file'?: string }): Connection {
  const url = (flags.url ?? process.env.FLUME_API_URL ?? 'http://127.0.0.1:8001').replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new CliError(EXIT.USAGE, `--url must be http(s)://host[:port], not ${url}`);
  const file = flags['token-file'] ?? process.env.FLUME_TOKEN_FILE;
  let token = flags.token ?? process.env.FLUME_TOKEN ?? '';
  if (!token && file) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new CliError(EXIT.USAGE, `cannot read the token file ${file}: ${(err as Error).message}`);
    }
  }
  if (!token) throw new CliError(EXIT.USAGE, 'no control token: pass --token, or set FLUME_TOKEN (mint one with: npm run -s token -- --role operator)');
  return { url, token };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** One API call; an error answer becomes CliError(API_ERROR) with the API's own message. */
export async function call(c: Connection, method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; ok?: number[] } = {}): Promise<Answer> {
  let res: Response;
  try {
    res = await fetch(`${c.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${c.token}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: AbortSignal.timeout(180_000),
    });
  } catch (err) {
    throw new CliError(EXIT.UNREACHABLE, `cannot reach the API at ${c.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { message: text.slice(0, 500) };
  }
  if (res.status >= 400 && !(opts.ok ?? []).includes(res.status)) {
    throw new CliError(EXIT.API_ERROR, `${res.status} ${String(body.error ?? '')}: ${String(body.message ?? '')}`.trim(), body);
  }
  return { status: res.status, headers: res.headers, body };
}

/** A streamed call (text/event-stream): each event's name and data, until the stream ends. */
export async function* events(c: Connection, path: string): AsyncGenerator<{ event: string; data: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${c.url}${path}`, { headers: { authorization: `Bearer ${c.token}` } });
  } catch (err) {
    throw new CliError(EXIT.UNREACHABLE, `cannot reach the API at ${c.url}: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    throw new CliError(EXIT.API_ERROR, `${res.status} ${String(body.error ?? '')}: ${String(body.message ?? '')}`, body);
  }
  const stream = (res.body as ReadableStream<BufferSource>).pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  for await (const m of stream as unknown as AsyncIterable<EventSourceMessage>) {
    if (m.event) yield { event: m.event, data: JSON.parse(m.data) as unknown };
  }
}
