/**
 * How deep a document may nest (objects and arrays inside each other). Every document the service
 * reads from outside (request bodies, fleet files, backup archives) is bounded before anything
 * walks it recursively: a body of 60,000 nested `{"items":` is 600 KB, well within the body limit,
 * and would otherwise overflow the stack of whatever checks it (a 500 instead of a 400). The
 * deepest document the service takes is far shallower: a spec whose event contract nests the
 * most it may (10 schemas) is about 25 levels.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `value` nests deeper than `limit` levels; walked without recursion, stopping at the first too deep. */
export function nestsDeeperThan(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** JSON.parse, refusing (with a message that says so) a document nested deeper than `limit`. */
export function parseJsonBounded(text: string, limit = MAX_JSON_DEPTH): unknown {
  const value = JSON.parse(text) as unknown;
  if (nestsDeeperThan(value, limit)) throw new Error(`nested more than ${limit} levels deep`);
  return value;
}
