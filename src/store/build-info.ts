import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config-kinds.js';

/** What is running: this service's version (package.json), the Flume its agents run, Node. */
export interface BuildInfo {
  version: string;
  flume: string;
  node: string;
}

/** The Flume version in `flumeLibDir`: its flume-ng-core jar's ("unknown" without one). */
export function flumeVersionIn(flumeLibDir: string): string {
  try {
    const jar = readdirSync(flumeLibDir).find((f) => /^flume-ng-core-[\w.-]+\.jar$/.test(f));
    if (jar) return jar.slice('flume-ng-core-'.length, -'.jar'.length);
  } catch {
    // no Flume installed here yet
  }
  return 'unknown';
}

/** Read once at start-up. */
export function readBuildInfo(flumeLibDir: string): BuildInfo {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, flume: flumeVersionIn(flumeLibDir), node: process.version };
}
