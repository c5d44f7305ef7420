import { connect, createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ChannelAges, listeningPorts } from '../../src/fleet/samples.js';

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

describe('ChannelAges', () => {
  it('dates the oldest waiting event by the first read that saw it in, first in first out', () => {
    const a = new ChannelAges();
    a.add(1000, 0, 0);
    expect(a.oldestAt(0)).toBeNull(); // nothing waits
    a.add(2000, 0, 5); // events 1-5 in by 2 s
    a.add(3000, 2, 8); // 2 drained; 6-10 in by 3 s
    expect(a.oldestAt(8)).toBe(2000);
    a.add(4000, 5, 5); // 1-5 gone: the oldest waiting (6) came by 3 s
    expect(a.oldestAt(5)).toBe(3000);
    a.add(5000, 5, 5); // the sink stalls: it stays dated
    expect(a.oldestAt(5)).toBe(3000);
    a.add(6000, 10, 0);
    expect(a.oldestAt(0)).toBeNull();
  });

  it('follows a new JVM, which counts from 0 and drains what the old one left first', () => {
    const a = new ChannelAges();
    a.add(1000, 100, 10); // 101-110 in by 1 s
    a.add(2000, 100, 15); // 111-115 by 2 s
    a.add(3000, 0, 15); // a new JVM: the 15 left are its first
    expect(a.oldestAt(15)).toBe(1000);
    a.add(4000, 12, 3); // 10 from the first second and 2 of the next gone
    expect(a.oldestAt(3)).toBe(2000);
  });
});
