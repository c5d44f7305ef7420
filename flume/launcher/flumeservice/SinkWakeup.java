package flumeservice;

import java.util.List;
import org.apache.flume.Context;
import org.apache.flume.Event;
import org.apache.flume.interceptor.Interceptor;

/**
 * Tells the table's sink that events are on their way: an interceptor on the source (so it runs
 * on every request the source takes, before the put) that records when it last saw events and
 * wakes a PromptSinkProcessor waiting for them. One agent per JVM, one sink: the state is the
 * JVM's. Selected with a1.sources.r1.interceptors.wake.type = flumeservice.SinkWakeup$Builder.
 */
public final class SinkWakeup implements Interceptor {
  private static final Object LOCK = new Object();
  /** System.nanoTime() of the last request with events; written under LOCK (waiters wait on it). */
  private static volatile long lastPokeNs = System.nanoTime() - Long.MAX_VALUE / 2;
  /** Whether the source has this interceptor (a flume.conf written before it has not). */
  private static volatile boolean installed;

  static boolean installed() {
    return installed;
  }

  static void poke() {
    synchronized (LOCK) {
      lastPokeNs = System.nanoTime();
      LOCK.notifyAll();
    }
  }

  static long lastPokeNs() {
    return lastPokeNs;
  }

  /** Waits until a poke after `sinceNs`, at most `ms`. */
  static void awaitPoke(long sinceNs, long ms) throws InterruptedException {
    long end = System.nanoTime() + ms * 1_000_000;
    synchronized (LOCK) {
      while (lastPokeNs == sinceNs) {
        long left = end - System.nanoTime();
        if (left <= 0) return;
        LOCK.wait(Math.max(1, left / 1_000_000));
      }
    }
  }

  @Override
  public void initialize() {}

  @Override
  public Event intercept(Event event) {
    poke();
    return event;
  }

  @Override
  public List<Event> intercept(List<Event> events) {
    if (!events.isEmpty()) poke();
    return events;
  }

  @Override
  public void close() {}

  /** Flume builds interceptors through a Builder named in the config. */
  public static final class Builder implements Interceptor.Builder {
    @Override
    public Interceptor build() {
      installed = true;
      return new SinkWakeup();
    }

    @Override
    public void configure(Context context) {}
  }
}
