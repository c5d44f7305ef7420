import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A throwaway CA and a certificate it signs for 127.0.0.1 (CN and an IP SAN, no DNS SAN: the
 * gateway's Lua checks the name as a host, which falls back to the CN only without DNS SANs), in `dir`: ca.pem,
 * server.pem, server.key; and other.pem, a CA that signed nothing here.
 */
export function makeCertificates(dir: string): { ca: string; cert: string; key: string; otherCa: string } {
  const at = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  writeFileSync(at('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '1', '-subj', '/CN=flume-test-ca');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=127.0.0.1');
  ssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.pem'), '-days', '1', '-extfile', at('ext.cnf'));
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('other.key'), '-out', at('other.pem'), '-days', '1', '-subj', '/CN=another-ca');
  return { ca: at('ca.pem'), cert: at('server.pem'), key: at('server.key'), otherCa: at('other.pem') };
}
