import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './config-kinds.js';

/** templates/: the agents' files and the gateway's config are filled from it. */
export const TEMPLATES_DIR = join(PROJECT_ROOT, 'templates');

const cache = new Map<string, string>();

/** A template's text (read once), by its path under templates/. */
export function template(rel: string): string {
  let t = cache.get(rel);
  if (t === undefined) {
    t = readFileSync(join(TEMPLATES_DIR, rel), 'utf8');
    cache.set(rel, t);
  }
  return t;
}

/** Fills {{name}} placeholders; a placeholder without a value is a bug, so it throws. */
export function fill(text: string, values: Record<string, string | number>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`template placeholder {{${k}}} has no value`);
    return String(v);
  });
}
