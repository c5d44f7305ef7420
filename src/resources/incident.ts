import { z } from 'zod';

/** An incident: something happened to an agent that an operator should know (docs/operations.md, Incidents). */

export const INCIDENT_TYPES = ['unexpected_exit', 'backoff', 'fatal', 'crash_loop', 'not_running', 'recovered', 'config_reverted', 'idle', 'unresponsive', 'sink_failing', 'restarted', 'quarantined'] as const;
export type IncidentType = (typeof INCIDENT_TYPES)[number];

export const severitySchema = z.enum(['critical', 'warning', 'info']);
export type Severity = z.infer<typeof severitySchema>;

/** Each type's severity, fixed. */
export const SEVERITY: Record<IncidentType, Severity> = {
  unexpected_exit: 'critical',
  backoff: 'warning',
  fatal: 'critical',
  crash_loop: 'critical',
  not_running: 'critical',
  recovered: 'info',
  config_reverted: 'warning',
  idle: 'warning',
  unresponsive: 'critical',
  sink_failing: 'critical',
  restarted: 'warning',
  quarantined: 'warning',
};

/** One webhook URL's delivery of an incident. */
export const webhookDeliverySchema = z.object({
  host: z.string().describe("the webhook URL's host: the whole URL is never shown"),
  outcome: z.enum(['pending', 'delivered', 'refused', 'failed']).describe('delivered: a 2xx; refused: a 4xx other than 429 (not retried); failed: retries used up'),
  status: z.number().nullable().describe('the last HTTP status (null: no answer)'),
  attempts: z.number(),
  at: z.string().nullable(),
});
export type WebhookDelivery = z.infer<typeof webhookDeliverySchema>;

export const incidentSchema = z.object({
  id: z.string(),
  at: z.string(),
  db: z.string(),
  table: z.string(),
  program: z.string(),
  type: z.enum(INCIDENT_TYPES),
  severity: severitySchema,
  message: z.string(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  exitCode: z.number().nullable().describe("the JVM's exit code (null: killed by a signal, or not known)"),
  signal: z.string().nullable().describe('the signal that killed it, e.g. SIGKILL'),
  logTail: z.array(z.string()).describe("the agent's last log lines when it was raised; empty for callers whose role may not read logs (viewers) and in webhooks"),
  suggestedAction: z.string(),
  acknowledged: z.object({ by: z.string(), at: z.string() }).nullable(),
  webhooks: z.array(webhookDeliverySchema),
});
export type Incident = z.infer<typeof incidentSchema>;

/** Events the sink can never deliver were kept aside (the fleet model tells incidents): how many in all now. */
export interface QuarantineGrew {
  db: string;
  table: string;
  program: string;
  count: number;
  added: number;
}

/** An agent that received nothing for longer than its idle limit (the fleet model tells incidents). */
export interface IdleEvent {
  db: string;
  table: string;
  program: string;
  idleMinutes: number;
  lastEventAt: string | null;
}
