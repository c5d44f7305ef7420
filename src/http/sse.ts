import type { FastifyReply, FastifyRequest } from 'fastify';
import { tooManyStreams } from '../errors.js';

export interface EventStream {
  /** One event; with `id`, the SSE `id:` a reconnecting client sends back as Last-Event-ID. */
  send(event: string, data: unknown, id?: string | null): void;
}

/**
 * Server-sent events for the whole app (the event stream, log follows).
 *
 * Guarantees: `open(req, reply, onEnd)` either throws 429 TOO_MANY_STREAMS (before anything is
 * written) when the caller's token already holds `perToken` open streams, or takes the reply
 * over, writes the stream's headers and a comment every 15 s (so proxies keep an idle stream
 * open), and calls onEnd once when the stream ends. A stream ends when the client leaves, when
 * `closeAll()` runs (the app's shutdown), or when the client stops reading and more than
 * `maxBufferBytes` wait unsent: such a client is dropped, so it never holds the server's memory.
 */
export class EventStreams {
  private readonly streams = new Set<() => void>();
  private readonly perToken = new Map<string, number>();

  constructor(private readonly limits: { perToken: number; maxBufferBytes: number }) {}

  /** Ends every open stream (the app's preClose: it would otherwise wait for the clients). */
  closeAll(): void {
    for (const end of this.streams) end();
  }

  open(req: FastifyRequest, reply: FastifyReply, onEnd: () => void): EventStream {
    // Streams are counted per control token (its jti): one leaked token cannot hold them all.
    const holder = req.principal?.jti ?? `ip:${req.ip}`;
    const held = this.perToken.get(holder) ?? 0;
    if (held >= this.limits.perToken) throw tooManyStreams(this.limits.perToken);
    this.perToken.set(holder, held + 1);
    reply.hijack();
    const res = reply.raw;
    // A stream's request was received whole; the socket may now stay quiet for as long as it lasts.
    req.raw.socket.setTimeout(0);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', 'x-request-id': req.id });
    const end = () => {
      if (!this.streams.delete(end)) return;
      clearInterval(beat);
      const left = (this.perToken.get(holder) ?? 1) - 1;
      if (left > 0) this.perToken.set(holder, left);
      else this.perToken.delete(holder);
      onEnd();
      res.end();
    };
    const write = (text: string) => {
      if (!this.streams.has(end)) return;
      res.write(text);
      if (res.writableLength > this.limits.maxBufferBytes) {
        // The client does not read: drop it rather than buffer without bound.
        end();
        res.destroy();
      }
    };
    const beat = setInterval(() => write(': keep-alive\n\n'), 15_000);
    this.streams.add(end);
    req.raw.on('close', end);
    write(': flume-service events\n\n');
    return { send: (event, data, id) => write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) };
  }
}
