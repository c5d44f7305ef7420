import { describe, expect, it } from 'vitest';
import { archiveProblems, entryCap, parseTarListing } from '../../src/store/backup-contents.js';

const listing = [
  'drwx------ root/root         0 2026-12-05 10:00 ./',
  '-rw------- root/root       812 2026-12-05 10:00 ./backup.json',
  '-rw------- root/root        65 2026-12-05 10:00 ./var/jwt-secret',
  '-rw-r----- root/root  67108864 2026-12-05 10:00 ./var/audit.log.1',
  'lrwxrwxrwx root/root         0 2026-12-05 10:00 ./var/tokens/a.json -> /etc/shadow',
  '-rw-r----- root/root      1024 2026-12-05 10:00 ./services/flume-a-b/agent.json',
].join('\n');

describe('archive entries', () => {
  it('are read from tar -tv with their type and size', () => {
    const e = parseTarListing(listing);
    expect(e.map((x) => [x.type, x.size, x.name])).toEqual([
      ['d', 0, ''],
      ['-', 812, 'backup.json'],
      ['-', 65, 'var/jwt-secret'],
      ['-', 67108864, 'var/audit.log.1'],
      ['l', 0, 'var/tokens/a.json -> /etc/shadow'],
      ['-', 1024, 'services/flume-a-b/agent.json'],
    ]);
    expect(parseTarListing('garbage line\n')[0]!.type).toBe('?');
  });

  it('are refused for a link, an entry over its cap, and a whole over the limit', () => {
    const problems = archiveProblems(parseTarListing(listing), { auditMaxBytes: 10 * 1024 * 1024, maxTotal: 1024 ** 3 });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('var/tokens/a.json');
    expect(problems[1]).toContain('var/audit.log.1 (67108864 bytes, at most 20971520)');
    expect(archiveProblems(parseTarListing(listing).slice(0, 3), { auditMaxBytes: 1, maxTotal: 100 })[0]).toContain('over the 100');
  });

  it('have caps by what they are', () => {
    expect(entryCap('var/jwt-secret', 0)).toBe(4096);
    expect(entryCap('var/audit.log', 50 * 1024 * 1024)).toBe(100 * 1024 * 1024);
    expect(entryCap('var/flume-a-b/channel/data/log-1', 0)).toBe(4 * 1024 ** 3);
    expect(entryCap('somewhere/else', 0)).toBe(0);
  });
});
