package flumeservice;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How many events each channel held when this JVM started it (what its file channel replayed),
 * served as "StartBacklog" beside the channel's own counters in GET /metrics.
 *
 * Why: a channel counts puts and takes from 0 in each JVM, and what it replayed comes out first.
 * Its events are first in, first out, so the events ahead of and including a request's are at
 * most StartBacklog + EventPutSuccessCount read once the request's transaction committed; once
 * EventTakeSuccessCount reaches that, the sink has committed every one of them. The gateway's
 * sink acknowledgement (templates/gateway/lua/flume_gateway/sink_ack.lua) waits for exactly that.
 * ChannelSize cannot stand in for it: a take leaves it at once, but is counted only when the
 * sink commits.
 */
final class StartBacklog {
  private static final Map<String, String> BACKLOG = new ConcurrentHashMap<>();

  private StartBacklog() {}

  /** Called once every channel has started and before any source or sink has. */
  static void record() {
    for (Map.Entry<String, Map<String, String>> e : FlumeCounters.all().entrySet()) {
      if (!e.getKey().startsWith("CHANNEL.")) continue;
      String size = e.getValue().get("ChannelSize");
      if (size != null) BACKLOG.put(e.getKey(), size);
    }
  }

  /** The metrics with each channel's StartBacklog added. */
  static Map<String, Map<String, String>> into(Map<String, Map<String, String>> all) {
    for (Map.Entry<String, String> e : BACKLOG.entrySet()) {
      Map<String, String> channel = all.get(e.getKey());
      if (channel != null) channel.put("StartBacklog", e.getValue());
    }
    return all;
  }
}
