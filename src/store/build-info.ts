import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config.js';

/** What is running: this service's version (package.json), the Flume its agents run, Node. */
export interface BuildInfo {
  version: string;
  flume: string;
  node: string;
}

/** Read once at start-up: the Flume version is the flume-ng-core jar's in FLUME_LIB_DIR ("unknown" without one). */
export function readBuildInfo(flumeLibDir: string): BuildInfo {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  let flume = 'unknown';
  try {
    const jar = readdirSync(flumeLibDir).find((f) => /^flume-ng-core-[\w.-]+\.jar$/.test(f));
    if (jar) flume = jar.slice('flume-ng-core-'.length, -'.jar'.length);
  } catch {
    // no Flume installed here yet
  }
  return { version: pkg.version, flume, node: process.version };
}
