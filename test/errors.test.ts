import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { ERRORS, ErrorCodes, GATEWAY_ERRORS, type ErrorName } from '../src/errors.js';
import { gatewayErrorsLua } from '../src/gateway/render.js';

const read = (...p: string[]) => readFileSync(join(PROJECT_ROOT, ...p), 'utf8');
// The gateway's Lua: the entry and every module of flume_gateway/.
const lua = [
  read('templates', 'gateway', 'lua', 'flume_gateway.lua'),
  ...readdirSync(join(PROJECT_ROOT, 'templates', 'gateway', 'lua', 'flume_gateway')).map((f) => read('templates', 'gateway', 'lua', 'flume_gateway', f)),
].join('\n');
const nginx = read('templates', 'gateway', 'nginx.conf');

describe('the error catalogue', () => {
  it('gives every error its own code', () => {
    const codes = Object.values(ErrorCodes);
    const shared = codes.filter((c, i) => codes.indexOf(c) !== i);
    expect(shared).toEqual([]);
  });

  it('is the only place the gateway gets its codes from: no code typed into the Lua or nginx.conf', () => {
    expect(lua.match(/\b10\d{3}\b/g) ?? []).toEqual([]);
    expect(nginx.match(/\b10\d{3}\b/g) ?? []).toEqual([]);
    // Every error the Lua answers with is in the catalogue it is rendered from.
    const used = new Set([...lua.matchAll(/\{ "([A-Z_]+)", "|(?:fail|error)\("([A-Z_]+)"|return nil, "([A-Z_]+)"/g)].map((m) => m[1] ?? m[2] ?? m[3]));
    expect([...used].filter((n) => !(n! in GATEWAY_ERRORS))).toEqual([]);
    expect(used.size).toBeGreaterThan(10);
  });

  it('renders each gateway error with its status, code and Retry-After', () => {
    const text = gatewayErrorsLua();
    for (const [name, e] of Object.entries(GATEWAY_ERRORS)) {
      const retry = 'retryAfter' in e ? `, retry_after = ${e.retryAfter}` : '';
      expect(text).toContain(`  ${name} = { status = ${e.status}, code = ${ErrorCodes[name as keyof typeof ErrorCodes]}${retry} },`);
    }
  });

  it('is documented as it is: each code with its name and its one status in docs/api.md or docs/gateway.md', () => {
    const api = read('docs', 'api.md');
    const gateway = read('docs', 'gateway.md');
    const wrong = (Object.keys(ERRORS) as ErrorName[]).filter((name) => {
      const { code, status, at } = ERRORS[name];
      const inApi = api.includes(`| ${code} | ${name} | ${status} |`);
      const inGateway = gateway.includes(`| ${status} | ${name} (${code}) |`);
      return at === 'gateway' ? !inGateway : at === 'api' ? !inApi : !(inApi || inGateway);
    });
    expect(wrong).toEqual([]);
    // And no row says another status for a name.
    const rows = [...api.matchAll(/^\| (\d{5}) \| ([A-Z_]+) \| ([^|]+) \|/gm)].map((m) => [m[2], m[3]!.trim(), m[1]]);
    expect(rows.filter(([name, status, code]) => ERRORS[name as ErrorName]?.status !== Number(status) || ErrorCodes[name as ErrorName] !== Number(code))).toEqual([]);
  });
});
