import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PROJECT_ROOT } from '../config.js';
import { AppError, configRejected, invalidRequest } from '../errors.js';
import type { TableRef } from './names.js';
import type { AgentPaths } from './paths.js';
import { jvmSetProblems } from './jvm-options.js';
import { createBodySchema, type AgentSpec } from './sinks.js';

const TEMPLATES = join(PROJECT_ROOT, 'templates');
export const LOG4J_CONFIG = join(TEMPLATES, 'log4j2.xml');

const cache = new Map<string, string>();
function template(rel: string): string {
  let t = cache.get(rel);
  if (t === undefined) {
    t = readFileSync(join(TEMPLATES, rel), 'utf8');
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

/** One field's problem, as dry-runs and 400/422 answers list them (details.fields). */
export interface FieldIssue {
  field: string;
  message: string;
}

function zodIssues(err: z.ZodError): FieldIssue[] {
  return err.issues.map((i) => {
    const field = i.path.join('.') || 'body';
    return { field, message: i.code === 'unrecognized_keys' ? `unknown ${i.path.length ? 'option' : 'field'}(s) ${i.keys.join(', ')}` : i.message };
  });
}

const joined = (issues: FieldIssue[]) => issues.map((i) => (i.field === 'body' ? i.message : `${i.field}: ${i.message}`)).join('; ');

export type SpecCheck = { ok: true; spec: AgentSpec } | { ok: false; status: 400 | 422; fields: FieldIssue[] };

/** What a table's jvm is checked against: the heap it gets when it names none, and the ceiling. */
export interface JvmLimits {
  defaultHeap: string;
  maxHeap: string;
}

/**
 * Turns a create body into a complete, checked AgentSpec, or says what is wrong with each
 * field: 400 for an unknown sink, option or bad value; 422 for a combination Flume would accept
 * and then silently mangle (a sink dropped at start-up, a channel that cannot hold a single
 * transaction).
 */
export function checkSpec(body: unknown, table: TableRef, limits: JvmLimits): SpecCheck {
  const parsed = createBodySchema.safeParse(body === undefined ? {} : body);
  if (!parsed.success) return { ok: false, status: 400, fields: zodIssues(parsed.error) };
  const { sink, channel, idleMinutes, jvm } = parsed.data;
  const jvmProblems = jvmSetProblems(jvm, limits);
  if (jvmProblems.length) return { ok: false, status: 400, fields: jvmProblems };
  const options = Object.fromEntries(
    Object.entries(parsed.data.options).map(([k, v]) => [
      k,
      typeof v === 'string' ? v.replaceAll('{{db}}', table.db).replaceAll('{{table}}', table.table) : v,
    ]),
  ) as Record<string, string | number>;
  const fields: FieldIssue[] = [];
  const batch = Number(options.batchSize ?? 1);
  if (batch > channel.transactionCapacity) {
    fields.push({
      field: 'options.batchSize',
      message: `${batch} exceeds channel.transactionCapacity (${channel.transactionCapacity}): Flume would drop the sink at start-up and keep running`,
    });
  }
  if (channel.transactionCapacity > channel.capacity) {
    fields.push({ field: 'channel.transactionCapacity', message: `${channel.transactionCapacity} exceeds channel.capacity (${channel.capacity})` });
  }
  if (fields.length) return { ok: false, status: 422, fields };
  return { ok: true, spec: { sink, options, channel, ...(idleMinutes === undefined ? {} : { idleMinutes }), ...(jvm === undefined ? {} : { jvm }) } };
}

/** A failed check as an error: 400 INVALID_REQUEST or 422 CONFIG_REJECTED, each field in details.fields. */
export function specError(c: { status: 400 | 422; fields: FieldIssue[] }): AppError {
  const err = c.status === 400 ? invalidRequest(joined(c.fields)) : configRejected(joined(c.fields));
  return new AppError(err.code, err.error, err.statusCode, err.message, { fields: c.fields });
}

/** checkSpec that throws specError. */
export function resolveSpec(body: unknown, table: TableRef, limits: JvmLimits): AgentSpec {
  const c = checkSpec(body, table, limits);
  if (c.ok) return c.spec;
  throw specError(c);
}

export function renderAgentConfig(table: TableRef, spec: AgentSpec, port: number, paths: AgentPaths): string {
  const sinkBlock = fill(template(`sinks/${spec.sink}.properties`), { ...spec.options, outDir: paths.outDir });
  return fill(template('agent.properties'), {
    ...table,
    ...spec.channel,
    sinkType: spec.sink,
    port,
    checkpointDir: paths.checkpointDir,
    dataDir: paths.dataDir,
    sinkBlock,
  });
}

export interface ProgramParams {
  program: string;
  javaBin: string;
  heap: string;
  /** Options between -Xmx and the service's own -D flags (the host's, or a table's from the accepted list). */
  jvmOptions: string[];
  classpath: string;
  autostart: boolean;
  /** Flume's metrics server (JSON counters); it binds every interface and has no bind option. */
  metricsPort: number;
  /** Our launcher (flume/launcher/: the channel started before the source, no 500 ms poll) or Flume's Application. */
  mainClass: string;
}

/** The jar scripts/setup.sh builds from flume/launcher/ into flume/lib, and its main class. */
export const LAUNCHER = { jar: 'flume-service-launcher.jar', mainClass: 'flumeservice.Agent' };
export const FLUME_MAIN_CLASS = 'org.apache.flume.node.Application';

// supervisord interpolates %(name)s in values: a literal % must be doubled.
const supervisorValue = (v: string | number | boolean) => String(v).replace(/%/g, '%%');

export function renderProgram(table: TableRef, p: ProgramParams, paths: AgentPaths): string {
  const values = {
    ...table,
    program: p.program,
    java: p.javaBin,
    heap: p.heap,
    jvmOptions: p.jvmOptions.map((o) => `"${o}"`).join(' '),
    log4jConfig: LOG4J_CONFIG,
    classpath: p.classpath,
    flumeConf: paths.flumeConf,
    serviceDir: paths.serviceDir,
    logFile: paths.logFile,
    autostart: p.autostart,
    metricsPort: p.metricsPort,
    mainClass: p.mainClass,
  };
  return fill(template('program.conf'), Object.fromEntries(Object.entries(values).map(([k, v]) => [k, supervisorValue(v)])));
}
