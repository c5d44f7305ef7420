package flumeservice;

import java.util.List;
import org.apache.flume.Context;
import org.apache.flume.EventDeliveryException;
import org.apache.flume.Sink;
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
 */
public class PromptSinkProcessor extends AbstractSinkProcessor {
  static final long IDLE_MS = 10;

  private Sink sink;

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
    Sink.Status status = sink.process();
    if (status == Sink.Status.READY) return status;
    try {
      Thread.sleep(IDLE_MS);
    } catch (InterruptedException e) {
      // The runner is stopping: let it see the interruption and BACKOFF, as the sink said.
      Thread.currentThread().interrupt();
      return status;
    }
    return Sink.Status.READY;
  }
}
