import { connect, createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { listeningPorts } from '../../src/fleet/samples.js';

const listen = (host: string) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => resolve(s));
  });
const portOf = (s: Server) => (s.address() as { port: number }).port;
const close = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));

describe('listeningPorts', () => {
  it("lists a port while something listens on it (IPv4 and IPv6), and not once it is closed or only connected", async () => {
    const v4 = await listen('127.0.0.1');
    const v6 = await listen('::1').catch(() => null); // a host without IPv6 loopback
    const open = await listeningPorts();
    expect(open).not.toBeNull();
    expect(open!.has(portOf(v4))).toBe(true);
    if (v6) expect(open!.has(portOf(v6))).toBe(true);
    // A connection's own (ephemeral) port is not a listener.
    const client = connect({ host: '127.0.0.1', port: portOf(v4) });
    await new Promise((resolve) => client.once('connect', resolve));
    expect((await listeningPorts())!.has(client.localPort!)).toBe(false);
    client.destroy();
    const port = portOf(v4);
    await close(v4);
    if (v6) await close(v6);
    expect((await listeningPorts())!.has(port)).toBe(false);
  });
});
