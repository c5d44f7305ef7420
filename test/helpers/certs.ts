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

/** What a protected etcd needs (docs/cluster.md): its CA, one server certificate for every member, client certificates. */
export interface EtcdCertificates {
  ca: string;
  /** Every member's (SANs: each address given, 127.0.0.1, localhost); also its peer certificate. */
  server: { cert: string; key: string };
  /** CN=root: etcd's admin (auth enable, users and roles). */
  root: { cert: string; key: string };
  /** CN=flume-service: the user the hosts are (a role with read-write on the cluster's prefix). */
  service: { cert: string; key: string };
  /** CN=intruder: a certificate of the same CA for a user etcd does not know. */
  intruder: { cert: string; key: string };
}

export function makeEtcdCertificates(dir: string, addresses: string[]): EtcdCertificates {
  const at = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('etcd-ca.key'), '-out', at('etcd-ca.pem'), '-days', '2', '-subj', '/CN=flume-test-etcd-ca');
  const sign = (name: string, cn: string, ext: string) => {
    writeFileSync(at(`${name}.cnf`), ext);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at(`${name}.key`), '-out', at(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', at(`${name}.csr`), '-CA', at('etcd-ca.pem'), '-CAkey', at('etcd-ca.key'), '-CAcreateserial', '-out', at(`${name}.pem`), '-days', '2', '-extfile', at(`${name}.cnf`));
    return { cert: at(`${name}.pem`), key: at(`${name}.key`) };
  };
  const sans = ['IP:127.0.0.1', 'DNS:localhost', ...addresses.map((a) => `IP:${a}`)].join(',');
  return {
    ca: at('etcd-ca.pem'),
    server: sign('etcd-server', 'etcd', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`),
    root: sign('etcd-root', 'root', 'extendedKeyUsage=clientAuth\n'),
    service: sign('etcd-flume', 'flume-service', 'extendedKeyUsage=clientAuth\n'),
    intruder: sign('etcd-intruder', 'intruder', 'extendedKeyUsage=clientAuth\n'),
  };
}

/** etcd's arguments for TLS to clients and peers, client certificates required. */
export function etcdTlsArgs(c: EtcdCertificates): string[] {
  return [
    '--cert-file', c.server.cert, '--key-file', c.server.key, '--client-cert-auth', '--trusted-ca-file', c.ca,
    '--peer-cert-file', c.server.cert, '--peer-key-file', c.server.key, '--peer-client-cert-auth', '--peer-trusted-ca-file', c.ca,
  ];
}

/**
 * Turns on etcd's authentication as docs/cluster.md does: root (by its certificate), a role with
 * read-write on `prefix` for the service's user (by certificate, and with `password` if given).
 * `ctl` runs etcdctl as root.
 */
export function enableEtcdAuth(ctl: (...args: string[]) => { status: number | null; stdout: string; stderr?: string }, prefix: string, password?: string): void {
  const must = (...args: string[]) => {
    const r = ctl(...args);
    if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stdout} ${r.stderr ?? ''}`);
  };
  must('user', 'add', 'root', '--no-password');
  must('user', 'grant-role', 'root', 'root');
  must('role', 'add', 'flume-service');
  must('role', 'grant-permission', 'flume-service', '--prefix=true', 'readwrite', prefix);
  must('user', 'add', ...(password ? ['flume-service', `--new-user-password=${password}`] : ['flume-service', '--no-password']));
  must('user', 'grant-role', 'flume-service', 'flume-service');
  must('auth', 'enable');
}
