import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PROJECT_ROOT } from '../config.js';
import { configRejected, invalidRequest } from '../errors.js';
import type { TableRef } from './names.js';
import type { AgentPaths } from './paths.js';
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

function zodMessage(err: z.ZodError, where: string): string {
  return err.issues
    .map((i) => {
      const path = [where, ...i.path].filter((p) => p !== '').join('.');
      const at = path ? `${path}: ` : '';
      return i.code === 'unrecognized_keys' ? `${at}unknown ${path ? 'option' : 'field'}(s) ${i.keys.join(', ')}` : `${at}${i.message}`;
    })
    .join('; ');
}

/**
 * Turns a create body into a complete, checked AgentSpec. Throws 400 INVALID_REQUEST for an
 * unknown sink, option or bad value, and 422 CONFIG_REJECTED for a combination Flume would
 * accept and then silently mangle (a sink dropped at start-up, a channel that cannot hold a
 * single transaction).
 */
export function resolveSpec(body: unknown, table: TableRef): AgentSpec {
  const parsed = createBodySchema.safeParse(body === undefined ? {} : body);
  if (!parsed.success) throw invalidRequest(zodMessage(parsed.error, ''));
  const { sink, channel } = parsed.data;
  const options = Object.fromEntries(
    Object.entries(parsed.data.options).map(([k, v]) => [
      k,
      typeof v === 'string' ? v.replaceAll('{{db}}', table.db).replaceAll('{{table}}', table.table) : v,
    ]),
  ) as Record<string, string | number>;

  const batch = Number(options.batchSize ?? 1);
  if (batch > channel.transactionCapacity) {
    throw configRejected(
      `options.batchSize (${batch}) exceeds channel.transactionCapacity (${channel.transactionCapacity}): Flume would drop the sink at start-up and keep running`,
    );
  }
  if (channel.transactionCapacity > channel.capacity) {
    throw configRejected(
      `channel.transactionCapacity (${channel.transactionCapacity}) exceeds channel.capacity (${channel.capacity})`,
    );
  }
  return { sink, options, channel };
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
  classpath: string;
  autostart: boolean;
  /** Flume's metrics server (JSON counters); it binds every interface and has no bind option. */
  metricsPort: number;
}

// supervisord interpolates %(name)s in values: a literal % must be doubled.
const supervisorValue = (v: string | number | boolean) => String(v).replace(/%/g, '%%');

export function renderProgram(table: TableRef, p: ProgramParams, paths: AgentPaths): string {
  const values = {
    ...table,
    program: p.program,
    java: p.javaBin,
    heap: p.heap,
    log4jConfig: LOG4J_CONFIG,
    classpath: p.classpath,
    flumeConf: paths.flumeConf,
    serviceDir: paths.serviceDir,
    logFile: paths.logFile,
    autostart: p.autostart,
    metricsPort: p.metricsPort,
  };
  return fill(template('program.conf'), Object.fromEntries(Object.entries(values).map(([k, v]) => [k, supervisorValue(v)])));
}
