import { z } from 'zod';

/**
 * A table's event contract (its spec's `schema`): a JSON Schema subset for each event's body (the
 * body string, read as JSON) and for its headers (an object of strings, as the sender sent them),
 * and what the gateway does with an event that does not meet it (`policy`). The gateway compiles
 * it once per worker (templates/gateway/lua/flume_gateway/schema.lua) and checks every event.
 *
 * The subset, every keyword as JSON Schema 2020-12 means it: type (one or a list), properties,
 * required, additionalProperties (a boolean), items (one schema for every element), enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers), minLength, maxLength (code
 * points), minItems, maxItems; title, description and $comment are kept and ignored. Any other
 * keyword is refused by name: a contract the gateway would check only in part is worse than none.
 * (No pattern: the gateway's regular expressions are not JavaScript's, and a backtracking one is
 * a sender's lever on the gateway's CPU.)
 */

const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
// (No null: a nullable field is type [..., "null"]; OpenAPI 3.0 has no null type to show it with.)
const scalar = z.union([z.string().max(1024), z.number(), z.boolean()]);
const count = z.number().int().min(0).max(1_000_000_000);
const KEYWORDS = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'minimum', 'maximum',
  'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'title', 'description', '$comment',
]);

export interface EventSchemaNode {
  type?: (typeof TYPES)[number] | Array<(typeof TYPES)[number]>;
  properties?: Record<string, EventSchemaNode>;
  required?: string[];
  additionalProperties?: boolean;
  items?: EventSchemaNode;
  enum?: Array<string | number | boolean>;
  const?: string | number | boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  title?: string;
  description?: string;
  $comment?: string;
}

/** Keys a property name may be: printable, no control characters (they end up in error messages). */
const propertyName = z.string().min(1).max(256).regex(/^[^\x00-\x1f\x7f]+$/, 'a property name may not hold control characters');

export const eventSchemaNode: z.ZodType<EventSchemaNode> = z
  .object({
    type: z.union([z.enum(TYPES), z.array(z.enum(TYPES)).min(1).max(TYPES.length)]).optional(),
    get properties() {
      return z.record(propertyName, eventSchemaNode).optional();
    },
    required: z.array(propertyName).max(256).optional(),
    additionalProperties: z.boolean({ error: 'additionalProperties: only true or false (a schema there is not in the subset)' }).optional(),
    get items() {
      return eventSchemaNode.optional();
    },
    enum: z.array(scalar).min(1).max(256).optional(),
    const: scalar.optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    exclusiveMinimum: z.number().optional(),
    exclusiveMaximum: z.number().optional(),
    minLength: count.optional(),
    maxLength: count.optional(),
    minItems: count.optional(),
    maxItems: count.optional(),
    title: z.string().max(1024).optional(),
    description: z.string().max(4096).optional(),
    $comment: z.string().max(4096).optional(),
  })
  .passthrough()
  .superRefine((node, ctx) => {
    for (const k of Object.keys(node)) {
      if (!KEYWORDS.has(k)) ctx.addIssue({ code: 'custom', path: [k], message: `keyword ${k} is not in the subset the gateway checks (${[...KEYWORDS].filter((w) => !w.startsWith('$') && w !== 'title' && w !== 'description').join(', ')})` });
    }
  })
  .meta({ id: 'EventSchemaNode', description: 'a JSON Schema subset (docs/gateway.md#a-contract-per-table)' });

/** What the gateway does with an event that does not meet the schema. */
export const DRIFT_POLICIES = ['reject', 'flag', 'quarantine'] as const;

/** The most a schema may be: it travels in every route value and is compiled by every worker. */
export const SCHEMA_LIMITS = { bytes: 16_384, depth: 10, nodes: 400 } as const;

export const tableSchemaSchema = z
  .strictObject({
    policy: z
      .enum(DRIFT_POLICIES)
      .default('reject')
      .describe('reject: 422 SCHEMA_MISMATCH naming each event and field path, nothing of the request accepted; flag: accepted with header schemaDrift "<path>: <problem>" and counted; quarantine (kafka tables): accepted into the channel and kept aside by the sink in the table\'s quarantine'),
    body: eventSchemaNode.optional().describe("each event's body, read as JSON (a body that is not JSON fails at path body)"),
    headers: eventSchemaNode.optional().describe("each event's headers as the sender sent them (an object of strings)"),
  })
  .superRefine((s, ctx) => {
    if (!s.body && !s.headers) ctx.addIssue({ code: 'custom', message: 'give body, headers or both' });
    const text = JSON.stringify(s);
    if (text.length > SCHEMA_LIMITS.bytes) ctx.addIssue({ code: 'custom', message: `${text.length} bytes as JSON; at most ${SCHEMA_LIMITS.bytes}` });
    for (const part of ['body', 'headers'] as const) {
      const node = s[part];
      if (!node) continue;
      const { depth, nodes } = measure(node);
      if (depth > SCHEMA_LIMITS.depth) ctx.addIssue({ code: 'custom', path: [part], message: `nested ${depth} deep; at most ${SCHEMA_LIMITS.depth}` });
      if (nodes > SCHEMA_LIMITS.nodes) ctx.addIssue({ code: 'custom', path: [part], message: `${nodes} schemas; at most ${SCHEMA_LIMITS.nodes}` });
      for (const problem of contradictions(node)) ctx.addIssue({ code: 'custom', path: [part, ...problem.path], message: problem.message });
    }
  })
  .describe("the table's event contract, checked at the gateway (docs/gateway.md#a-contract-per-table)");
export type TableSchema = z.infer<typeof tableSchemaSchema>;

function measure(node: EventSchemaNode, depth = 1): { depth: number; nodes: number } {
  const children = [...Object.values(node.properties ?? {}), ...(node.items ? [node.items] : [])];
  return children.reduce(
    (acc, c) => {
      const m = measure(c, depth + 1);
      return { depth: Math.max(acc.depth, m.depth), nodes: acc.nodes + m.nodes };
    },
    { depth, nodes: 1 },
  );
}

/** What no value could ever meet, or the headers part could never be (headers are strings). */
function contradictions(node: EventSchemaNode, path: string[] = []): Array<{ path: string[]; message: string }> {
  const out: Array<{ path: string[]; message: string }> = [];
  const pair = (lo: number | undefined, hi: number | undefined, what: string) => {
    if (lo !== undefined && hi !== undefined && lo > hi) out.push({ path, message: `${what}: the lower bound ${lo} is above the upper bound ${hi}` });
  };
  pair(node.minimum, node.maximum, 'minimum/maximum');
  pair(node.minLength, node.maxLength, 'minLength/maxLength');
  pair(node.minItems, node.maxItems, 'minItems/maxItems');
  for (const [k, child] of Object.entries(node.properties ?? {})) out.push(...contradictions(child, [...path, 'properties', k]));
  if (node.items) out.push(...contradictions(node.items, [...path, 'items']));
  return out;
}
