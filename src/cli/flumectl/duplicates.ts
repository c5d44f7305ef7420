/**
 * `flumectl duplicates`: how many records of a topic repeat an event, by the `eventId` record
 * header the gateway gives every event (docs/gateway.md#delivery-a-sender-can-choose). It reads
 * what Kafka's own console consumer prints with headers on, one record a line:
 *   kafka-console-consumer.sh --bootstrap-server B --topic T --from-beginning --timeout-ms 10000 \
 *     --property print.headers=true | flumectl duplicates
 * (headers `k:v,k:v` or NO_HEADERS, a tab, the value; the separators are the consumer's defaults).
 */
export interface DuplicateCount {
  /** Records read. */
  records: number;
  /** Distinct eventIds among them. */
  events: number;
  /** Records that repeat an eventId seen before: what a consumer that dedupes drops. */
  duplicates: number;
  /** Records without an eventId (written before event ids, or not through the gateway). */
  withoutId: number;
  /** The eventIds seen most often, most first (at most 10). */
  top: Array<{ eventId: string; copies: number }>;
}

/** The eventId header of one printed record, or null. */
export function eventIdOf(line: string): string | null {
  const tab = line.indexOf('\t');
  const headers = tab < 0 ? line : line.slice(0, tab);
  if (headers === 'NO_HEADERS') return null;
  for (const kv of headers.split(',')) {
    if (kv.startsWith('eventId:')) return kv.slice('eventId:'.length) || null;
  }
  return null;
}

export function countDuplicates(lines: Iterable<string>): DuplicateCount {
  const copies = new Map<string, number>();
  let records = 0;
  let withoutId = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    records++;
    const id = eventIdOf(line);
    if (id === null) withoutId++;
    else copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  const top = [...copies.entries()]
    .filter(([, n]) => n > 1)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 10)
    .map(([eventId, n]) => ({ eventId, copies: n }));
  return { records, events: copies.size, duplicates: records - withoutId - copies.size, withoutId, top };
}
