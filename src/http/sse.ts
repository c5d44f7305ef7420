import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface EventStream {
  send(event: string, data: unknown): void;
}

/**
 * Server-sent events for one plugin's routes: `open(req, reply, onEnd)` takes the reply over,
 * writes the stream's headers, a comment every 15 s (so proxies keep an idle stream open), and
 * calls onEnd once when the client leaves. Open streams never end by themselves: the app's
 * shutdown ends them, or it would wait for the clients.
 */
export function eventStreams(app: FastifyInstance) {
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });
  return (req: FastifyRequest, reply: FastifyReply, onEnd: () => void): EventStream => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': flume-service events\n\n');
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const end = () => {
      if (!streams.delete(end)) return;
      clearInterval(beat);
      onEnd();
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
    return { send: (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) };
  };
}
