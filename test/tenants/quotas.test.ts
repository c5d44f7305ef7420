import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { makeKeys } from '../../src/redis/keys.js';
import { quotaValue } from '../../src/resources/quota.js';
import { Quotas } from '../../src/tenants/quotas.js';

// var/quotas.json is read at start, checked whole: a crafted file holds no quota at all.
const dir = mkdtempSync(join(tmpdir(), 'flume-quotas-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const logged: string[] = [];
const log = pino({ level: 'error' }, { write: (s: string) => void logged.push(s) });
const read = (text: string) => {
  const file = join(dir, `q-${logged.length}-${Math.random()}.json`);
  writeFileSync(file, text);
  return new Quotas({} as Redis, makeKeys('t:'), file, log);
};

describe('the quotas file', () => {
  it('holds what it says when every entry is a db and a quota', () => {
    const q = read('{"shop":{"eventsPerSecond":5000,"bytesPerDay":1000000}}');
    expect(q.get('shop')).toEqual({ eventsPerSecond: 5000, bytesPerDay: 1_000_000 });
    expect(q.get('other')).toBeNull();
  });

  it('holds nothing from a file with an entry that is not one, and says so', () => {
    for (const bad of ['{"../etc":{"eventsPerSecond":1}}', '{"shop":{"eventsPerSecond":-1}}', '{"shop":{"rate":1}}', '[1]', 'not json', '{"shop":{}}']) {
      const before = logged.length;
      const q = read(bad);
      expect(q.get('shop'), bad).toBeNull();
      expect([...q.all().keys()], bad).toEqual([]);
      expect(logged.length, bad).toBe(before + 1);
    }
  });

  it('gives the gateway only the limits set, in the form it parses', () => {
    expect(quotaValue({ eventsPerSecond: 5, bytesPerDay: 7 })).toBe('eps=5 bpd=7');
    expect(quotaValue({ bytesPerSecond: 1, eventsPerDay: 2 })).toBe('bps=1 epd=2');
  });
});
