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
 * that long too. This processor answers the runner READY after a short sleep of its own instead:
 * 1 ms after the first empty look, doubling to IDLE_MAX_MS while the channel stays empty, back to
 * 1 ms once it had events. A sink that fails (an EventDeliveryException) still gets the runner's
 * own back-off. Selected with a1.sinkgroups.g1.processor.type = flumeservice.PromptSinkProcessor.
 */
public class PromptSinkProcessor extends AbstractSinkProcessor {
  static final long IDLE_MAX_MS = 20;

  private Sink sink;
  private long idleMs = 0;

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
    if (status == Sink.Status.READY) {
      idleMs = 0;
      return status;
    }
    idleMs = idleMs == 0 ? 1 : Math.min(IDLE_MAX_MS, idleMs * 2);
    try {
      Thread.sleep(idleMs);
    } catch (InterruptedException e) {
      // The runner is stopping: let it see the interruption and BACKOFF, as the sink said.
      Thread.currentThread().interrupt();
      return status;
    }
    return Sink.Status.READY;
  }
}
