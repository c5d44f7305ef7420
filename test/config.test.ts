import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostPort } from '../src/config-kinds.js';
import { ConfigError, loadConfig } from '../src/config-load.js';
import { readinessWarnings } from '../src/routes/health.js';
import { tempDir } from './helpers/harness.js';

const load = (env: Record<string, string>) => () => loadConfig({ PATH: process.env.PATH, ...env });

describe('settings are data', () => {
  const code = "127.0.0.1'+require('child_process').execSync('id')+'";
  it.each([
    ['API_HOST', code, 'must be an IP address or a host name'],
    ['GATEWAY_HOST', '127.0.0.1:80; } server { listen 9', 'must be an IP address or a host name'],
    ['GATEWAY_HOST', '', null],
    ['STATE_DIR', '/srv/state dir', 'must be a path'],
    ['STATE_DIR', '/srv/$(id)', 'must be a path'],
    ['JAVA_BIN', 'java;id', 'must be a path'],
    ['FLUME_LIB_DIR', "/opt/flume'lib", 'must be a path'],
    ['REDIS_PASSWORD_FILE', '/etc/x\nAPI_HOST=1', 'must be a path'],
    ['SUPERVISOR_SOCKET', '/run/s.sock`id`', 'must be a path'],
    ['SUPERVISORCTL_COMMAND', 'sudo -n supervisorctl;id', 'must be words'],
    ['FLUME_EXTRA_CLASSPATH', '/opt/a/*:/opt/b c', "must be ':'-separated paths"],
  ])('%s=%j', (name, value, refused) => {
    if (refused === null) expect(load({ [name]: value })).not.toThrow();
    else expect(load({ [name]: value })).toThrow(new RegExp(`${name}: ${refused}`));
  });

  it('takes what operators really write', () => {
    const c = loadConfig({
      API_HOST: '::',
      GATEWAY_HOST: 'gw-1.example.internal',
      STATE_DIR: '/var/lib/flume-service',
      JAVA_BIN: '/usr/lib/jvm/java-17-openjdk-amd64/bin/java',
      SUPERVISORCTL_COMMAND: 'sudo -n supervisorctl',
      FLUME_EXTRA_CLASSPATH: '/opt/jars/*:/opt/conf',
    });
    expect(c).toMatchObject({ API_HOST: '::', GATEWAY_HOST: 'gw-1.example.internal', STATE_DIR: '/var/lib/flume-service' });
    expect(() => loadConfig({ GATEWAY_HOST: 'x y' })).toThrow(ConfigError);
  });

  it('puts an IPv6 address in brackets beside its port', () => {
    expect(hostPort('::1', 8080)).toBe('[::1]:8080');
    expect(hostPort('10.0.0.1', 8080)).toBe('10.0.0.1:8080');
    expect(hostPort('gw.example', 443)).toBe('gw.example:443');
  });
});

describe('many hosts on etcd', () => {
  const dir = tempDir('etcd-settings');
  const file = (name: string) => {
    const f = join(dir, name);
    writeFileSync(f, 'x\n');
    return f;
  };
  const https = 'https://10.0.0.1:2379,https://10.0.0.2:2379';

  it('refuses an unprotected etcd unless the operator says it accepts one, and /readyz then says so', () => {
    expect(load({ ETCD_ENDPOINTS: 'http://10.0.0.1:2379' })).toThrow(/ETCD_ENDPOINTS: etcd is not protected/);
    expect(load({ ETCD_ENDPOINTS: https })).toThrow(/etcd is not protected/); // TLS, but nobody to sign in as
    const open = loadConfig({ ETCD_ENDPOINTS: 'http://10.0.0.1:2379', ETCD_ALLOW_UNPROTECTED: 'true' });
    expect(readinessWarnings(open)).toEqual([expect.stringContaining('etcd is not protected')]);
    expect(readinessWarnings(loadConfig({}))).toEqual([]);
  });

  it('takes TLS with a client certificate, or a user, and checks each file and pair', () => {
    const c = loadConfig({ ETCD_ENDPOINTS: https, ETCD_CA_FILE: file('ca.pem'), ETCD_CERT_FILE: file('c.pem'), ETCD_KEY_FILE: file('c.key') });
    expect(readinessWarnings(c)).toEqual([]);
    expect(() => loadConfig({ ETCD_ENDPOINTS: https, ETCD_USERNAME: 'flume-service', ETCD_PASSWORD_FILE: file('pw') })).not.toThrow();
    expect(load({ ETCD_ENDPOINTS: https, ETCD_CERT_FILE: file('c.pem') })).toThrow(/ETCD_CERT_FILE, ETCD_KEY_FILE: set both/);
    expect(load({ ETCD_ENDPOINTS: https, ETCD_USERNAME: 'flume-service' })).toThrow(/ETCD_USERNAME, ETCD_PASSWORD_FILE: set both/);
    expect(load({ ETCD_ENDPOINTS: https, ETCD_USERNAME: 'f', ETCD_PASSWORD_FILE: join(dir, 'missing') })).toThrow(/ETCD_PASSWORD_FILE: cannot read/);
    expect(load({ ETCD_ENDPOINTS: 'http://10.0.0.1:2379', ETCD_CA_FILE: file('ca2.pem'), ETCD_ALLOW_UNPROTECTED: 'true' })).toThrow(/need https:\/\/ endpoints/);
    expect(load({ ETCD_ENDPOINTS: 'http://10.0.0.1:2379,https://10.0.0.2:2379', ETCD_ALLOW_UNPROTECTED: 'true' })).toThrow(/all https:\/\/ or all http:\/\//);
  });
});
