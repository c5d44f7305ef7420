import { existsSync } from 'node:fs';
import type { Desired } from '../resources/agent-status.js';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { revokedFileSchema } from '../auth/revocations.js';
import { configSchema, type Config } from '../config.js';
import { pickSettings, unknownSettings } from '../config-load.js';
import { checkSpec } from '../resources/agent-spec.js';
import { parseJsonBounded } from '../resources/json-depth.js';
import { revisionSchema, type Revision } from '../resources/revision.js';
import { NAME_PATTERN } from '../resources/table.js';
import type { AgentMeta } from '../store/agent-store.js';
import { SETTINGS_ENTRY, type Manifest } from '../store/backup-contents.js';
import { savedUserSchema } from '../tokens/token-files.js';

/**
 * What a restore may take from an archive, checked before anything is written. An archive is
 * data from elsewhere: nothing in it is run or copied as it is where it could be run.
 * - an agent is its metadata and spec (and revisions), each spec checked as a create checks it;
 *   its flume.conf and program are rendered again here, never taken from the archive;
 * - the settings file is checked as the service checks its own (known keys, each of its shape);
 * - secrets are one line each; token records, revocations and pending webhooks parse as the
 *   service reads them, and a pending webhook goes only to a URL this installation sends to.
 */
export interface RestorePlan {
  agents: Array<{ meta: AgentMeta; revisions: Revision[]; desired: Desired; channel: boolean }>;
  /** The pending webhook files to restore (names under var/webhooks/); the others are dropped. */
  webhooks: string[];
  webhooksDropped: number;
}

const port = z.number().int().min(1024).max(65535);
const metaSchema = z.object({
  program: z.string(),
  db: z.string().regex(NAME_PATTERN),
  table: z.string().regex(NAME_PATTERN),
  port,
  metricsPort: port,
  spec: z.unknown(),
  createdAt: z.string().max(64),
  revision: z.number().int().min(1).optional(),
  runningRevision: z.number().int().min(1).optional(),
  paused: z.object({ since: z.string().max(64), by: z.string().max(256) }).nullable().optional(),
});

const pendingWebhookSchema = z.object({
  id: z.string().max(128),
  url: z.string(),
  body: z.string(),
  attempts: z.number().int().min(0),
  nextAt: z.number(),
  program: z.string().nullable(),
  status: z.number().int().nullable(),
});

const SECRET = /^[\x21-\x7e]{32,1024}\n?$/;

const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ');

async function json(file: string): Promise<unknown> {
  return parseJsonBounded(await readFile(file, 'utf8'));
}

/** Problems with the archive's settings file, checked as the service checks its own: every key known, every value of its shape. */
export function settingsProblems(text: string): string[] {
  const values = parseEnv(text) as Record<string, string>;
  const unknown = unknownSettings(values);
  if (unknown.length) return [`${SETTINGS_ENTRY}: unknown setting(s) ${unknown.join(', ')}`];
  const parsed = configSchema.safeParse(pickSettings(values));
  return parsed.success ? [] : parsed.error.issues.map((i) => `${SETTINGS_ENTRY}: ${i.path.join('.')}: ${i.message}`);
}

/** Reads and checks what the archive unpacked into `stage` holds; `problems` non-empty: refuse it all. */
export async function planRestore(stage: string, manifest: Manifest, cfg: Config): Promise<{ plan: RestorePlan; problems: string[] }> {
  const problems: string[] = [];
  const plan: RestorePlan = { agents: [], webhooks: [], webhooksDropped: 0 };
  const limits = { defaultHeap: cfg.AGENT_HEAP, maxHeap: cfg.AGENT_MAX_HEAP };

  for (const a of manifest.agents) {
    const dir = join(stage, 'services', a.program);
    let raw: unknown;
    try {
      raw = await json(join(dir, 'agent.json'));
    } catch (e) {
      problems.push(`agent ${a.program}: services/${a.program}/agent.json cannot be read as JSON: ${(e as Error).message}`);
      continue;
    }
    const m = metaSchema.safeParse(raw);
    if (!m.success) {
      problems.push(`agent ${a.program}: agent.json: ${issues(m.error)}`);
      continue;
    }
    if (m.data.program !== a.program || m.data.db !== a.db || m.data.table !== a.table) {
      problems.push(`agent ${a.program}: agent.json names ${m.data.program} (${m.data.db}.${m.data.table})`);
      continue;
    }
    const ref = { db: a.db, table: a.table };
    const spec = checkSpec(m.data.spec, ref, limits);
    if (!spec.ok) {
      problems.push(`agent ${a.program}: its spec is not one a create takes here: ${spec.fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`);
      continue;
    }
    const revisions: Revision[] = [];
    const names = existsSync(join(dir, 'revisions')) ? (await readdir(join(dir, 'revisions'))).filter((n) => !n.startsWith('.')) : [];
    for (const name of names.sort()) {
      const n = /^(\d{6,})\.json$/.exec(name);
      if (!n) {
        problems.push(`agent ${a.program}: revisions/${name} is not a revision file`);
        continue;
      }
      let r;
      try {
        r = revisionSchema.safeParse(await json(join(dir, 'revisions', name)));
      } catch (e) {
        problems.push(`agent ${a.program}: revisions/${name} cannot be read as JSON: ${(e as Error).message}`);
        continue;
      }
      if (!r.success || r.data.revision !== Number(n[1])) {
        problems.push(`agent ${a.program}: revisions/${name}: ${r.success ? `it holds revision ${r.data.revision}` : issues(r.error)}`);
        continue;
      }
      const rs = checkSpec(r.data.spec, ref, limits);
      if (!rs.ok) {
        problems.push(`agent ${a.program}: revisions/${name}: its spec is not one a create takes here: ${rs.fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`);
        continue;
      }
      revisions.push({ ...r.data, spec: rs.spec });
    }
    const { spec: _raw, ...rest } = m.data;
    plan.agents.push({ meta: { ...rest, spec: spec.spec }, revisions, desired: a.desired, channel: a.channel });
  }

  if (manifest.settings) {
    const text = await readFile(join(stage, SETTINGS_ENTRY), 'utf8').catch(() => null);
    if (text === null) problems.push(`the manifest lists ${SETTINGS_ENTRY}, which the archive lacks`);
    else problems.push(...settingsProblems(text));
  }

  for (const f of ['var/jwt-secret', 'var/token-hash-key', 'var/webhook-secret']) {
    const text = await readFile(join(stage, f), 'utf8').catch(() => null);
    if (text !== null && !SECRET.test(text)) problems.push(`${f}: not a secret (one line of 32-1024 printable characters)`);
  }
  const revoked = join(stage, 'var/revoked-control-tokens.json');
  if (existsSync(revoked)) {
    try {
      const r = revokedFileSchema.safeParse(await json(revoked));
      if (!r.success) problems.push(`var/revoked-control-tokens.json: ${issues(r.error)}`);
    } catch (e) {
      problems.push(`var/revoked-control-tokens.json cannot be read as JSON: ${(e as Error).message}`);
    }
  }
  const tokensDir = join(stage, 'var/tokens');
  for (const name of existsSync(tokensDir) ? await readdir(tokensDir) : []) {
    try {
      const t = savedUserSchema.safeParse(await json(join(tokensDir, name)));
      if (!t.success) problems.push(`var/tokens/${name}: ${issues(t.error)}`);
      else if (`${t.data.username}.json` !== name) problems.push(`var/tokens/${name} holds user ${t.data.username}`);
    } catch (e) {
      problems.push(`var/tokens/${name} is not a token record (${(e as Error).message})`);
    }
  }
  const hooksDir = join(stage, 'var/webhooks');
  for (const name of existsSync(hooksDir) ? await readdir(hooksDir) : []) {
    try {
      const w = pendingWebhookSchema.safeParse(await json(join(hooksDir, name)));
      if (!w.success) problems.push(`var/webhooks/${name}: ${issues(w.error)}`);
      else if (cfg.WEBHOOK_URLS.includes(w.data.url)) plan.webhooks.push(name);
      else plan.webhooksDropped++;
    } catch (e) {
      problems.push(`var/webhooks/${name} is not a webhook delivery (${(e as Error).message})`);
    }
  }
  return { plan, problems };
}
