import { request } from 'node:http';
import { connect } from 'node:net';

/** True if something accepts a TCP connection on host:port within timeoutMs. */
export function acceptsConnections(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * What answers on an agent's source port:
 * - 'flume': Flume's HTTP source (Jetty answers OPTIONS with 403; unlike GET or an empty POST,
 *   that reaches neither the handler nor the channel, so polling it costs the agent nothing);
 * - 'foreign': something else holds the port (the agent could not bind it);
 * - 'closed': nothing accepts connections.
 */
export type SourceProbe = 'flume' | 'foreign' | 'closed';

export function probeSource(port: number, timeoutMs = 500): Promise<SourceProbe> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'OPTIONS', path: '/', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      const jetty = /jetty/i.test(String(res.headers.server ?? ''));
      resolve(res.statusCode === 403 && jetty ? 'flume' : 'foreign');
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    // Refused: nothing listens. Anything else (a reset, a hang-up, silence) came from a listener.
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? 'closed' : 'foreign'));
    req.end();
  });
}
