package flumeservice;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.reflect.Method;
import java.util.List;
import org.apache.flume.Channel;
import org.apache.flume.Context;
import org.apache.flume.EventDeliveryException;
import org.apache.flume.Sink;
import org.apache.flume.channel.file.FileChannel;
import org.apache.flume.sink.AbstractSinkProcessor;

/**
 * A table's one sink, run without Flume's idle back-off. Flume's sink runner sleeps 1 s after a
 * sink found its channel empty, 2 s after the next, up to 5 s (constants in SinkRunner): an event
 * that arrives on a quiet table then waits seconds before the sink even looks at it. A sender that
 * asks to be answered once the sink has its events (the gateway's "Prefer: ack=sink") would wait
 * that long too. This processor answers the runner READY after IDLE_MS of its own instead.
 * Not less: each take the sink commits is a write and an fsync of the channel's log, and a sink
 * that looked again at once would commit a handful of events at a time under load, taking the
 * disk from the puts (with 1 ms, doubling to 20, the gateway's group commit measured 7,092
 * req/s against 8,251 before; with 10 ms it measures as before). A sink that fails (an EventDeliveryException) still gets the
 * runner's own back-off. Selected with a1.sinkgroups.g1.processor.type =
 * flumeservice.PromptSinkProcessor.
 *
 * While the channel is empty the sink is not asked at all. For BUSY_MS after the source last took
 * events (SinkWakeup, an interceptor, tells it) the processor reads the file channel's depth (its
 * committed, untaken events: an int, no transaction) every IDLE_MS and asks the sink once there
 * is something to take; after that it sleeps until the source takes events again, and asks the
 * sink at least every ASK_EVERY_MS anyway (events a restart replayed, a sink without the
 * interceptor). Looking every 10 ms, each look a take transaction and a timer's wake-up, cost an
 * idle agent ~1 % of a core: 100 idle agents, a whole core.
 */
public class PromptSinkProcessor extends AbstractSinkProcessor {
  static final long IDLE_MS = 10;
  /** The sink is asked at least this often even when the channel looks empty. */
  static final long ASK_EVERY_MS = 1000;
  /** How long after the source last took events the channel is looked at every IDLE_MS. */
  static final long BUSY_MS = 1000;

  /** FileChannel.getDepth (protected): its queue's size. Null where it cannot be read. */
  private static final MethodHandle DEPTH = depthReader();

  private Sink sink;
  private boolean idle;
  private long askedAt;

  private static MethodHandle depthReader() {
    try {
      Method m = FileChannel.class.getDeclaredMethod("getDepth");
      m.setAccessible(true);
      return MethodHandles.lookup().unreflect(m);
    } catch (ReflectiveOperationException | RuntimeException e) {
      return null;
    }
  }

  /** The channel's committed, untaken events; -1 when they cannot be read (then the sink is asked). */
  private int depth() {
    Channel channel = sink.getChannel();
    if (DEPTH == null || !(channel instanceof FileChannel)) return -1;
    try {
      return (int) DEPTH.invoke((FileChannel) channel);
    } catch (Throwable t) {
      return -1; // closed (stopping, starting): asked as before
    }
  }

  @Override
  public void configure(Context context) {
    // Nothing to set: the sleeps are the point of the class, not a tunable.
  }

  @Override
  public void setSinks(List<Sink> sinks) {
    if (sinks.size() != 1) throw new IllegalArgumentException("PromptSinkProcessor runs exactly one sink, got " + sinks.size());
    super.setSinks(sinks);
    sink = sinks.get(0);
  }

  @Override
  public Sink.Status process() throws EventDeliveryException {
    long now = System.nanoTime();
    long poked = SinkWakeup.lastPokeNs();
    Sink.Status status;
    if (idle && depth() == 0 && now - askedAt < ASK_EVERY_MS * 1_000_000) {
      status = Sink.Status.BACKOFF; // nothing to take: the sink is not asked
    } else {
      askedAt = now;
      status = sink.process();
      idle = status != Sink.Status.READY;
      if (!idle) return status;
    }
    try {
      // The source took events lately (their commit may still come): look again soon. Else
      // sleep until it takes some, or until the sink is due to be asked anyway.
      // (Without the interceptor, an agent's flume.conf from before it: every IDLE_MS, as then.)
      if (!SinkWakeup.installed() || now - poked < BUSY_MS * 1_000_000) Thread.sleep(IDLE_MS);
      else SinkWakeup.awaitPoke(poked, ASK_EVERY_MS);
    } catch (InterruptedException e) {
      // The runner is stopping: let it see the interruption and BACKOFF, as the sink said.
      Thread.currentThread().interrupt();
      return status;
    }
    return Sink.Status.READY;
  }
}
