// After a run (scripts/test.sh): the counts, the run's wall time, the ten slowest files; a run of
// the whole suite (no file arguments) also replaces test/timings.json, which the sequencer reads.
// Usage: tsx test/tiers/report.ts <vitest json report> <wall seconds> <whole: 0|1>
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { TIMINGS_FILE, type Timings } from './sequencer.js';

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; startTime: number; endTime: number; status: string }[];
}

const [reportFile, wall, whole] = process.argv.slice(2);
const r = JSON.parse(readFileSync(reportFile!, 'utf8')) as Report;
const root = process.cwd();
const files = Object.fromEntries(
  r.testResults.map((t) => [relative(root, t.name), Math.round((t.endTime - t.startTime) / 100) / 10] as const).sort((a, b) => b[1] - a[1]),
);
const wallSeconds = Math.round(Number(wall));
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped, in ${wallSeconds} s`);
console.log('slowest files:');
for (const [name, s] of Object.entries(files).slice(0, 10)) console.log(`  ${s.toFixed(1).padStart(7)} s  ${name}`);
if (whole === '1' && r.numFailedTests === 0) {
  const timings: Timings = { updated: new Date().toISOString(), wallSeconds, files };
  writeFileSync(TIMINGS_FILE, JSON.stringify(timings, null, 2) + '\n');
  console.log(`timings kept in ${relative(root, TIMINGS_FILE)}`);
}
