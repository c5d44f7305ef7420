import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { CliError, EXIT, call, type Connection } from './client.js';
import { follow, summary, type OperationView } from './operation.js';
import { table } from './format.js';

interface PlanEntry {
  db: string;
  table: string;
  action: string;
  revision: number | null;
  diff: string | null;
}
interface Plan {
  entries: PlanEntry[];
  counts: Record<string, number>;
}

export interface ApplyFlags {
  db?: string;
  'dry-run'?: boolean;
  prune?: boolean;
  canary?: string;
  concurrency?: string;
  'drain-seconds'?: string;
  json?: boolean;
}

/** A fleet document from a YAML or JSON file (JSON is YAML); `-` reads stdin. */
export function readFleet(file: string | undefined): unknown {
  if (!file) throw new CliError(EXIT.USAGE, 'apply needs -f FLEET.yaml (flumectl fleet export writes one)');
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(EXIT.USAGE, `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    // Plain data only: no custom tags, no aliases blown up into huge documents.
    return parse(text, { schema: 'core', maxAliasCount: 100, uniqueKeys: true }) as unknown;
  } catch (err) {
    throw new CliError(EXIT.USAGE, `${file} is not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The fleet as a document to keep in version control (YAML; JSON with --json). */
export async function exportFleet(c: Connection, db: string | undefined, json: boolean): Promise<string> {
  const { body } = await call(c, 'GET', `/v1/api/fleet${db ? `?db=${encodeURIComponent(db)}` : ''}`);
  return json ? JSON.stringify(body.fleet, null, 2) : stringify(body.fleet, { sortMapEntries: false });
}

const query = (f: ApplyFlags): string => {
  const q = new URLSearchParams();
  const whole = (name: keyof ApplyFlags) => {
    const v = f[name];
    if (v === undefined) return;
    if (typeof v !== 'string' || !/^\d{1,4}$/.test(v)) throw new CliError(EXIT.USAGE, `--${name} is a whole number`);
    q.set(name === 'drain-seconds' ? 'drainSeconds' : name, v);
  };
  if (f.db) q.set('db', f.db);
  if (f['dry-run']) q.set('dryRun', 'true');
  if (f.prune) q.set('prune', 'true');
  whole('canary');
  whole('concurrency');
  whole('drain-seconds');
  const s = q.toString();
  return s ? `?${s}` : '';
};

const showPlan = (plan: Plan, withDiffs: boolean): string => {
  const c = plan.counts;
  const moving = plan.entries.filter((e) => e.action !== 'unchanged');
  const lines = [`${c.create ?? 0} to create, ${c.change ?? 0} to change, ${c.delete ?? 0} to delete, ${c.absent ?? 0} absent (kept), ${c.unchanged ?? 0} unchanged`];
  if (moving.length) lines.push(table([['TABLE', 'ACTION', 'REVISION'], ...moving.map((e) => [`${e.db}.${e.table}`, e.action, e.revision === null ? '-' : String(e.revision)])]));
  if (withDiffs) for (const e of moving.filter((x) => x.diff)) lines.push(`--- ${e.db}.${e.table}`, e.diff!.trimEnd());
  return lines.join('\n');
};

/** flumectl apply: the plan (a dry run), or the apply followed to its end. Exit 4 when a table failed. */
export async function applyFleet(c: Connection, doc: unknown, f: ApplyFlags, out: (s: string) => void): Promise<number> {
  const { body } = await call(c, 'PUT', `/v1/api/fleet${query(f)}`, { body: doc });
  const plan = body.plan as Plan;
  if (f['dry-run']) {
    out(f.json ? JSON.stringify(body, null, 2) : showPlan(plan, true));
    return EXIT.OK;
  }
  if (!f.json) process.stderr.write(`${showPlan(plan, false)}\n`);
  const o = await follow(c, body.operation as OperationView, 'apply', Boolean(f.json));
  out(f.json ? JSON.stringify({ code: 0, plan, operation: o }, null, 2) : summary('apply', o, o.state === 'halted'));
  return o.counts.failed || o.state === 'halted' ? EXIT.PARTIAL : EXIT.OK;
}
