/**
 * An agent's log levels, as its JVM serves them (flumeservice.LoopbackMetricsServer, /loggers on
 * its metrics port, 127.0.0.1): GET every configured logger and its level, PUT one. Both present
 * the agent's control key (services/<program>/control.key), so no other local user can.
 */
import { z } from 'zod';

export type LoggerAnswer = { ok: true; levels: Record<string, string> } | { ok: false; why: 'down' | 'unsupported' | 'refused'; detail: string };

const levelsSchema = z.record(z.string(), z.string());

export async function agentLoggers(metricsPort: number, key: string, set?: { name: string; level: string }): Promise<LoggerAnswer> {
  const query = set ? `?${new URLSearchParams({ name: set.name, level: set.level }).toString()}` : '';
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${metricsPort}/loggers${query}`, {
      method: set ? 'PUT' : 'GET',
      headers: { 'x-flume-control-key': key },
      signal: AbortSignal.timeout(2000),
    });
  } catch (err) {
    return { ok: false, why: 'down', detail: (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message };
  }
  const text = await res.text();
  // Flume's own metrics server (no launcher), or a JVM started before it served /loggers.
  if (res.status === 404) return { ok: false, why: 'unsupported', detail: 'its JVM does not serve log levels' };
  if (res.status !== 200) return { ok: false, why: 'refused', detail: `${res.status} ${text.slice(0, 200)}` };
  const parsed = levelsSchema.safeParse(JSON.parse(text));
  return parsed.success ? { ok: true, levels: parsed.data } : { ok: false, why: 'refused', detail: 'not a map of levels' };
}
