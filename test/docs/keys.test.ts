import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/config-kinds.js';

// Every Redis key src/redis/keys.ts builds is in docs/architecture.md's table of keys.
describe('the Redis keys', () => {
  it('are each documented', () => {
    const source = readFileSync(join(PROJECT_ROOT, 'src', 'redis', 'keys.ts'), 'utf8');
    const built = [...source.matchAll(/`\$\{prefix\}([a-z-]+)/g)].map((m) => m[1]!);
    expect(built.length).toBeGreaterThan(15);
    const docs = readFileSync(join(PROJECT_ROOT, 'docs', 'architecture.md'), 'utf8');
    expect(built.filter((k) => !docs.includes(`\`<p>${k}`))).toEqual([]);
  });
});
