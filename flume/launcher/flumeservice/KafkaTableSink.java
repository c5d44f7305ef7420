package flumeservice;

import com.google.gson.Gson;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flume.Channel;
import org.apache.flume.Context;
import org.apache.flume.Event;
import org.apache.flume.EventDeliveryException;
import org.apache.flume.Transaction;
import org.apache.flume.conf.BatchSizeSupported;
import org.apache.flume.conf.Configurable;
import org.apache.flume.conf.ConfigurationException;
import org.apache.flume.instrumentation.kafka.KafkaSinkCounter;
import org.apache.flume.sink.AbstractSink;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.errors.InvalidTimestampException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A table's Kafka sink: Flume's KafkaSink (same settings: kafka.bootstrap.servers, kafka.topic,
 * flumeBatchSize, kafka.producer.*, header.&lt;event header&gt; = &lt;record header&gt;, the "key" header)
 * that keeps poison aside instead of retrying it for ever. An event the broker or the producer
 * refuses as never deliverable (too large for the broker or the topic, an invalid record or
 * timestamp, a value it cannot serialize) is written to the table's quarantine directory, with
 * its headers, the error and when, and the rest of the batch is committed; any other failure
 * (the broker away, a timeout, not authorized) rolls the whole batch back to be tried again, as
 * Flume's sink does. A quarantine file is written whole (a temp file, fsync, rename, the
 * directory fsynced) before the channel's transaction commits: an event leaves the channel only
 * once it is in Kafka or on disk in the quarantine.
 */
public class KafkaTableSink extends AbstractSink implements Configurable, BatchSizeSupported {
  private static final Logger log = LoggerFactory.getLogger(KafkaTableSink.class);
  private static final Gson GSON = new Gson();
  private static final AtomicLong SEQ = new AtomicLong();
  /** Set by the gateway alone (senders may not): "<field path>: <problem>" (flume_gateway/events.lua). */
  static final String CONTRACT_HEADER = "quarantine";

  /** An event that does not meet its table's event contract, as the quarantine records it. */
  static final class ContractMismatch extends Exception {
    ContractMismatch(String problem) {
      super("the event does not meet the table's schema: " + problem, null, false, false);
    }
  }

  private final Properties props = new Properties();
  private String topic;
  private int batchSize;
  private Map<String, String> headerMap;
  private Path quarantine;
  private KafkaProducer<String, byte[]> producer;
  private KafkaSinkCounter counter;

  @Override
  public void configure(Context context) {
    topic = context.getString("kafka.topic");
    if (topic == null || topic.isEmpty()) throw new ConfigurationException("kafka.topic must be set");
    String servers = context.getString("kafka.bootstrap.servers");
    if (servers == null || servers.isEmpty()) throw new ConfigurationException("kafka.bootstrap.servers must be set");
    String dir = context.getString("quarantine.directory");
    if (dir == null || dir.isEmpty()) throw new ConfigurationException("quarantine.directory must be set");
    quarantine = new File(dir).toPath();
    batchSize = context.getInteger("flumeBatchSize", 100);
    headerMap = context.getSubProperties("header.");
    props.clear();
    props.put(ProducerConfig.ACKS_CONFIG, "1");
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, "org.apache.kafka.common.serialization.StringSerializer");
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, "org.apache.kafka.common.serialization.ByteArraySerializer");
    props.putAll(context.getSubProperties("kafka.producer."));
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, servers);
    if (counter == null) counter = new KafkaSinkCounter(getName());
  }

  @Override
  public long getBatchSize() {
    return batchSize;
  }

  @Override
  public synchronized void start() {
    producer = new KafkaProducer<>(props);
    counter.start();
    super.start();
  }

  @Override
  public synchronized void stop() {
    if (producer != null) producer.close();
    counter.stop();
    super.stop();
  }

  /** Failures that are the record's own: sending it again can never succeed. */
  static boolean neverDeliverable(Throwable t) {
    return t instanceof RecordTooLargeException
        || t instanceof InvalidRecordException
        || t instanceof InvalidTimestampException
        || t instanceof SerializationException;
  }

  @Override
  public Status process() throws EventDeliveryException {
    Channel channel = getChannel();
    Transaction tx = channel.getTransaction();
    tx.begin();
    try {
      List<Event> events = new ArrayList<>();
      List<Future<RecordMetadata>> sent = new ArrayList<>();
      long began = System.nanoTime();
      while (events.size() < batchSize) {
        Event e = channel.take();
        if (e == null) break;
        // The topic's partitions known before the batch's first send (the producer waits for
        // them up to max.block.ms, and a new topic is created meanwhile): a send that fails on
        // metadata while the ones after it go through would, rolled back, put those in twice.
        if (events.isEmpty()) producer.partitionsFor(topic);
        counter.incrementEventDrainAttemptCount();
        events.add(e);
        // The gateway marked it: it does not meet the table's event contract (schema policy
        // quarantine). Kept aside with the rest of the batch's poison, never sent.
        sent.add(e.getHeaders().containsKey(CONTRACT_HEADER) ? null : send(e));
      }
      if (events.isEmpty()) {
        counter.incrementBatchEmptyCount();
        tx.commit();
        return Status.BACKOFF;
      }
      if (events.size() < batchSize) counter.incrementBatchUnderflowCount();
      producer.flush();
      List<Event> poison = new ArrayList<>();
      List<Throwable> why = new ArrayList<>();
      for (int i = 0; i < events.size(); i++) {
        if (sent.get(i) == null) {
          poison.add(events.get(i));
          why.add(new ContractMismatch(events.get(i).getHeaders().get(CONTRACT_HEADER)));
          continue;
        }
        try {
          sent.get(i).get();
        } catch (ExecutionException ee) {
          Throwable cause = ee.getCause() == null ? ee : ee.getCause();
          if (!neverDeliverable(cause)) throw new EventDeliveryException("Failed to publish events", cause);
          poison.add(events.get(i));
          why.add(cause);
        }
      }
      if (!poison.isEmpty()) {
        keepAside(poison, why);
        log.warn("{} event(s) the broker can never take kept in the quarantine ({}): {}", poison.size(), quarantine, why.get(0).toString());
      }
      counter.addToKafkaEventSendTimer((System.nanoTime() - began) / 1_000_000);
      // Every event of the batch left the channel: into Kafka, or kept aside.
      counter.addToEventDrainSuccessCount(events.size());
      tx.commit();
      return Status.READY;
    } catch (Throwable ex) {
      log.error("Failed to publish events", ex);
      counter.incrementEventWriteOrChannelFail(ex);
      try {
        tx.rollback();
        counter.incrementRollbackCount();
      } catch (Exception e) {
        log.error("Transaction rollback failed", e);
      }
      if (ex instanceof EventDeliveryException) throw (EventDeliveryException) ex;
      throw new EventDeliveryException("Failed to publish events", ex);
    } finally {
      tx.close();
    }
  }

  private Future<RecordMetadata> send(Event e) {
    Map<String, String> headers = e.getHeaders();
    List<Header> kafkaHeaders = new ArrayList<>();
    for (Map.Entry<String, String> h : headerMap.entrySet()) {
      String v = headers.get(h.getKey());
      if (v != null) kafkaHeaders.add(new RecordHeader(h.getValue(), v.getBytes(StandardCharsets.UTF_8)));
    }
    ProducerRecord<String, byte[]> record =
        new ProducerRecord<>(topic, null, null, headers.get("key"), e.getBody(), kafkaHeaders.isEmpty() ? null : kafkaHeaders);
    try {
      return producer.send(record);
    } catch (RuntimeException ex) {
      // send() throws some failures (serialization) instead of failing its future: judged alike.
      CompletableFuture<RecordMetadata> failed = new CompletableFuture<>();
      failed.completeExceptionally(ex);
      return failed;
    }
  }

  /** One file per batch: q-<millis>-<pid>-<seq>-<count>.jsonl, a JSON line per event. */
  private void keepAside(List<Event> poison, List<Throwable> why) throws IOException {
    Files.createDirectories(quarantine);
    StringBuilder lines = new StringBuilder();
    String at = Instant.now().toString();
    for (int i = 0; i < poison.size(); i++) {
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("at", at);
      entry.put("error", why.get(i).getClass().getSimpleName() + ": " + why.get(i).getMessage());
      entry.put("headers", poison.get(i).getHeaders());
      entry.put("body", new String(poison.get(i).getBody(), StandardCharsets.UTF_8));
      lines.append(GSON.toJson(entry)).append('\n');
    }
    String name = "q-" + System.currentTimeMillis() + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet() + "-" + poison.size() + ".jsonl";
    Path tmp = quarantine.resolve("." + name + ".tmp");
    try (FileChannel f = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ByteBuffer buf = ByteBuffer.wrap(lines.toString().getBytes(StandardCharsets.UTF_8));
      while (buf.hasRemaining()) f.write(buf);
      f.force(true);
    }
    Files.move(tmp, quarantine.resolve(name), StandardCopyOption.ATOMIC_MOVE);
    try (FileChannel d = FileChannel.open(quarantine, StandardOpenOption.READ)) {
      d.force(true);
    }
  }
}
