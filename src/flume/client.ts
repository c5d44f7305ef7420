/**
 * Flume's own HTTP endpoints, as the control plane reads them: the agent's HTTP source (probed,
 * never fed) and its metrics server (-Dflume.monitoring.type=http). Every call is bounded by
 * one deadline that covers connecting, headers and body: a half-answering agent cannot hang it.
 */

/** Flume's counters for one agent (source r1, channel c1, sink k1 of our template). */
export interface FlumeCounters {
  eventsReceived: number;
  eventsAccepted: number;
  eventsDrained: number;
  channelSize: number;
  channelCapacity: number;
  channelFillPercent: number;
  sinkConnectionFailures: number;
}

/**
 * What answers on an agent's source port:
 * - 'flume': Flume's HTTP source (Jetty answers OPTIONS with 403; unlike GET or an empty POST,
 *   that reaches neither the handler nor the channel, so polling it costs the agent nothing);
 * - 'foreign': something else holds the port (the agent could not bind it);
 * - 'closed': nothing accepts connections.
 */
export type SourceProbe = 'flume' | 'foreign' | 'closed';

const errCode = (e: unknown): string | undefined => {
  const cause = (e as { cause?: { code?: string } } | null)?.cause;
  return cause?.code;
};

export async function probeSource(port: number, timeoutMs = 500, retried = false): Promise<SourceProbe> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'OPTIONS', signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    const jetty = /jetty/i.test(res.headers.get('server') ?? '');
    return res.status === 403 && jetty ? 'flume' : 'foreign';
  } catch (e) {
    // Refused: nothing listens. Anything else (a reset, a hang-up, silence) came from a listener,
    // except a kept-alive connection that the agent's old JVM left behind: one fresh try.
    const code = errCode(e);
    if (code === 'ECONNREFUSED') return 'closed';
    const timedOut = e instanceof DOMException && (e.name === 'TimeoutError' || e.name === 'AbortError');
    if (!retried && !timedOut) return probeSource(port, timeoutMs, true);
    return 'foreign';
  }
}

/** GET /metrics on the agent's metrics port; null if it does not answer in time or not as Flume. */
export async function readFlumeMetrics(port: number, timeoutMs = 500): Promise<FlumeCounters | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      return null;
    }
    const m = (await res.json()) as Record<string, Record<string, string> | undefined>;
    const src = m['SOURCE.r1'] ?? {};
    const ch = m['CHANNEL.c1'] ?? {};
    const sink = m['SINK.k1'] ?? {};
    const n = (v: string | undefined) => Number(v ?? 0) || 0;
    return {
      eventsReceived: n(src.EventReceivedCount),
      eventsAccepted: n(src.EventAcceptedCount),
      eventsDrained: n(sink.EventDrainSuccessCount),
      channelSize: n(ch.ChannelSize),
      channelCapacity: n(ch.ChannelCapacity),
      channelFillPercent: n(ch.ChannelFillPercentage),
      sinkConnectionFailures: n(sink.ConnectionFailedCount),
    };
  } catch {
    return null;
  }
}
