import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The last whole run's seconds per file (scripts/test.sh keeps them in test/timings.json). */
export interface Timings {
  updated: string;
  wallSeconds: number;
  files: Record<string, number>;
}

export const TIMINGS_FILE = join(import.meta.dirname, '..', 'timings.json');

export function readTimings(file = TIMINGS_FILE): Timings | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Timings;
  } catch {
    return null;
  }
}

/**
 * The slowest files start first, by the last whole run's timings, so the two workers finish
 * together instead of one starting a three-minute story at the end. A file the timings do not
 * know (new) starts before all of them.
 */
export default class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const seconds = readTimings()?.files ?? {};
    const root = this.ctx.config.root;
    const of = (f: TestSpecification) => seconds[relative(root, f.moduleId)] ?? Number.POSITIVE_INFINITY;
    return [...files].sort((a, b) => of(b) - of(a));
  }
}
