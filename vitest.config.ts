import { defineConfig } from 'vitest/config';
import SlowestFirst from './test/tiers/sequencer.js';

// Tiers. unit: pure logic (no Redis, supervisord, JVM, nginx, etcd), `npm run test:unit`.
// stories: the real parts, two files at a time (TEST_WORKERS): every story has its own
// supervisord, temp dirs, Redis key prefix and port window, and much of a story's time is
// waiting on a JVM or a deadline, which the other file fills. cluster: hosts in network
// namespaces on a real etcd cluster, whose leases and fences run on seconds: one file at a time,
// after the stories, so no neighbour's JVM starts starve a lease (seen: a host judged lost).
// `npm test` runs all three.
const CLUSTER = ['test/scenarios/cluster/**/*.test.ts', 'test/cluster/etcd.test.ts', 'test/cluster/members.test.ts'];
const STORIES = [
  'test/scenarios/**/*.test.ts',
  'test/supervisor/driver-contract.test.ts', // a real supervisord and agents
  'test/cli/flumectl.test.ts', // flumectl against a running service
];

export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: Number(process.env.TEST_WORKERS ?? 2),
    minWorkers: 1,
    sequence: { sequencer: SlowestFirst },
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...STORIES, ...CLUSTER], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'stories', include: STORIES, exclude: CLUSTER, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'cluster', include: CLUSTER, sequence: { groupOrder: 1 }, poolOptions: { forks: { singleFork: true } } } },
    ],
  },
});
