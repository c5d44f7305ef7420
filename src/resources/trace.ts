import { z } from 'zod';
import { tableParamsSchema } from './table.js';

/** A request id as the gateway takes it (X-Request-Id) or makes it: 1-128 of letters, digits and ._:@/+=- */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export const traceParamsSchema = tableParamsSchema.extend({
  requestId: z.string().regex(REQUEST_ID_PATTERN, 'a request id: 1-128 letters, digits and ._:@/+=- (the X-Request-Id the gateway answered)'),
});

/** GET .../trace/:requestId: one request's way from the gateway to the sink. */
export const traceSchema = z.object({
  requestId: z.string(),
  db: z.string(),
  table: z.string(),
  events: z.number().describe('events in the request'),
  ack: z.enum(['channel', 'sink']).describe('what the sender asked to be answered on: the channel (the default) or the sink (Prefer: ack=sink)'),
  acceptedAt: z.string().describe('t0: when the gateway had the request'),
  committedAt: z.string().describe("t1: when the agent's answer said its channel had committed the events"),
  takenBy: z
    .string()
    .nullable()
    .describe('t2: the events were taken by the sink (committed to Kafka, HDFS, the file) by this time; exact for a sender that waited for the sink, else the first sample of the channel that showed it (the gateway samples every 0.2 s). null: not yet, or not known'),
  stage: z.enum(['channel', 'sink']).describe('the furthest the events are known to have come'),
});
export type Trace = z.infer<typeof traceSchema>;
