import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { INTAKE_KEY_HEADER } from '../../src/agents/route-table.js';
import type { Config } from '../../src/config.js';
import type { Keys } from '../../src/redis/keys.js';
import { until } from './wait.js';

/** The agent's port, as the gateway sees it: from the route in Redis. */
export async function routePort(redis: Redis, keys: Keys, db: string, table: string): Promise<number | null> {
  const route = await redis.get(keys.route(db, table));
  return route ? Number(route.split(':')[1]!.split(' ')[0]) : null;
}

/** An agent as the service's own processes reach it: its port and its intake key (null: none yet). */
export interface AgentAddress {
  port: number;
  key: string | null;
}

/** The agent of db.table as its files say (agent.json's port, control.key). */
export function agentOf(config: Pick<Config, 'servicesDir'>, db: string, table: string): AgentAddress {
  const dir = join(config.servicesDir, `flume-${db}-${table}`);
  const port = (JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as { port: number }).port;
  let key: string | null = null;
  try {
    key = readFileSync(join(dir, 'control.key'), 'utf8').trim();
  } catch {
    // not started yet
  }
  return { port, key };
}

/**
 * POSTs events in Flume's JSON format to an agent's HTTP source; returns the HTTP status. With
 * an AgentAddress the request carries the agent's intake key (as the gateway's do); with a bare
 * port it does not (as any other local process would).
 */
export async function postEvents(to: number | AgentAddress, bodies: string[], headers: Record<string, string> = {}): Promise<number> {
  const { port, key } = typeof to === 'number' ? { port: to, key: null } : to;
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { [INTAKE_KEY_HEADER]: key } : {}) },
    body: JSON.stringify(bodies.map((body) => ({ headers, body }))),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Lines the file_roll sink wrote into outDir. */
export function sinkLines(outDir: string): string[] {
  let files: string[];
  try {
    files = readdirSync(outDir).sort();
  } catch {
    return [];
  }
  return files.flatMap((f) => readFileSync(join(outDir, f), 'utf8').split('\n').filter(Boolean));
}

/** Waits until every expected line is in the sink's output (sinks poll with back-off). */
export async function waitForLines(outDir: string, expected: string[], timeoutMs = 30_000): Promise<string[]> {
  return until(() => sinkLines(outDir), (lines) => expected.every((e) => lines.includes(e)), timeoutMs, 250);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Java processes whose command line mentions `needle` (e.g. an agent's flume.conf path). */
export function javaProcessesMentioning(needle: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', needle], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('java') && !l.includes('pgrep'));
  } catch {
    return [];
  }
}
