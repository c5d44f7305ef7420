import { describe, expect, it } from 'vitest';
import { ConfigError, hostPort, loadConfig } from '../src/config.js';

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
