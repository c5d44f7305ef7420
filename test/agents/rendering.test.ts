import { describe, expect, it } from 'vitest';
import { agentPaths } from '../../src/store/paths.js';
import { renderAgentConfig } from '../../src/agents/flume-config.js';
import { renderProgram } from '../../src/agents/launch.js';
import { resolveSpec } from '../../src/resources/agent-spec.js';
import { AppError } from '../../src/errors.js';

const ref = { db: 'shop', table: 'orders' };
const paths = agentPaths({ confDir: '/s/conf.d', servicesDir: '/s/services', varDir: '/s/var' }, 'flume-shop-orders');
const limits = { defaultHeap: '256m', maxHeap: '1g' };

function rejects(body: unknown): AppError {
  try {
    resolveSpec(body, ref, limits);
  } catch (e) {
    return e as AppError;
  }
  throw new Error('expected a rejection');
}

// The agent's files: flume.conf (agents/flume-config), its program (agents/launch), from a checked spec (resources/agent-spec).
describe('agent templates', () => {
  it('defaults to a file_roll agent bound to 127.0.0.1 with per-table channel directories', () => {
    const spec = resolveSpec(undefined, ref, limits);
    expect(spec.sink).toBe('file_roll');
    const text = renderAgentConfig(ref, spec, 12345, paths, { launcher: true, intakeKey: true });
    expect(text).toContain('a1.sources.r1.bind = 127.0.0.1');
    expect(text).toContain('a1.sources.r1.port = 12345');
    expect(text).toContain('a1.channels.c1.checkpointDir = /s/var/flume-shop-orders/channel/checkpoint');
    expect(text).toContain('a1.channels.c1.dataDirs = /s/var/flume-shop-orders/channel/data');
    expect(text).toContain('a1.sinks.k1.sink.directory = /s/var/flume-shop-orders/out');
    expect(text).not.toMatch(/\{\{/);
    // The source takes events only with the agent's intake key (the gateway's); open without it.
    expect(text).toContain(`a1.sources.r1.handler = flumeservice.IntakeKeyHandler\na1.sources.r1.handler.keyFile = ${paths.controlKeyFile}\n`);
    const open = renderAgentConfig(ref, spec, 12345, paths, { launcher: true, intakeKey: false });
    expect(open).toContain('a1.sources.r1.handler = org.apache.flume.source.http.JSONHandler\n');
    expect(open).not.toContain('keyFile');
  });

  it('fills per-table defaults of the kafka and hdfs sinks', () => {
    const kafkaSpec = resolveSpec({ sink: 'kafka', options: { bootstrapServers: 'k1:9092,k2:9092' } }, ref, limits);
    const kafka = renderAgentConfig(ref, kafkaSpec, 1, paths, { launcher: true, intakeKey: true });
    expect(kafka).toContain('a1.sinks.k1.kafka.topic = shop.orders');
    expect(kafka).toContain('a1.sinks.k1.kafka.bootstrap.servers = k1:9092,k2:9092');
    // The sink that keeps poison aside, in the table's own quarantine; Flume's own without the launcher's jar.
    expect(kafka).toContain('a1.sinks.k1.type = flumeservice.KafkaTableSink');
    expect(kafka).toContain('a1.sinks.k1.quarantine.directory = /s/var/flume-shop-orders/quarantine');
    expect(renderAgentConfig(ref, kafkaSpec, 1, paths, { launcher: false, intakeKey: false })).toContain('a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink');
    const hdfs = renderAgentConfig(ref, resolveSpec({ sink: 'hdfs', options: { nameNode: 'hdfs://nn1:8020' } }, ref, limits), 1, paths, { launcher: true, intakeKey: true });
    expect(hdfs).toContain('a1.sinks.k1.hdfs.path = hdfs://nn1:8020/ingestion/shop/orders/%Y-%m-%d/%H');
    expect(hdfs).toContain('a1.sinks.k1.hdfs.minBlockReplicas = 1');
    // Without a NameNode, Hadoop's client would write to the local disk: refused.
    expect(() => resolveSpec({ sink: 'hdfs' }, ref, limits)).toThrow(/options.nameNode/);
    expect(() => resolveSpec({ sink: 'hdfs', options: { nameNode: 'hdfs://nn1:8020', path: 'relative/x' } }, ref, limits)).toThrow(/absolute path/);
  });

  it('rejects what Flume would silently mangle (422)', () => {
    const e = rejects({ options: { batchSize: 500 }, channel: { transactionCapacity: 100 } });
    expect([e.statusCode, e.error]).toEqual([422, 'CONFIG_REJECTED']);
    expect(e.message).toMatch(/options.batchSize: 500 exceeds channel.transactionCapacity \(100\)/);
    expect(e.details?.fields).toEqual([{ field: 'options.batchSize', message: expect.stringContaining('exceeds') }]);
    const f = rejects({ channel: { capacity: 10, transactionCapacity: 100 } });
    expect(f.error).toBe('CONFIG_REJECTED');
  });

  it('rejects unknown sinks, unknown options and values that would inject config (400)', () => {
    expect(rejects({ sink: 'jdbc' }).error).toBe('INVALID_REQUEST');
    const unknown = rejects({ options: { rollIntervall: 5 } });
    expect(unknown.error).toBe('INVALID_REQUEST');
    expect(unknown.message).toContain('rollIntervall');
    const inject = rejects({ sink: 'kafka', options: { bootstrapServers: 'k:9092', topic: 'x\na1.sinks.k1.type = exec' } });
    expect(inject.error).toBe('INVALID_REQUEST');
    expect(rejects({ extra: 1 }).error).toBe('INVALID_REQUEST');
    expect(rejects({ sink: 'kafka' }).message).toContain('bootstrapServers');
    // JVM options: only named flags (src/resources/jvm-options.ts), nothing that reaches the class path, a port or a shell.
    for (const bad of ['-cp', '-Dflume.monitoring.port=1', '-XX:+UseSerialGC -cp /x', '-jar', '-XX:OnError="sh -c id"', '-Xss1m;id', '-XX:+Foo "x"']) {
      expect(rejects({ jvm: { options: [bad] } }).error, bad).toBe('INVALID_REQUEST');
    }
    expect(rejects({ jvm: { heap: '1 g' } }).error).toBe('INVALID_REQUEST');
    expect(resolveSpec({ jvm: { heap: '64m', options: ['-XX:+UseSerialGC', '-Xss256k', '-XX:MaxMetaspaceSize=64m'] } }, ref, limits).jvm).toEqual({ heap: '64m', options: ['-XX:+UseSerialGC', '-Xss256k', '-XX:MaxMetaspaceSize=64m'] });
  });

  it('renders a supervisor program that execs the JVM and doubles % signs', () => {
    const text = renderProgram(ref, { program: 'flume-shop-orders', javaBin: 'java', heap: '256m', jvmOptions: ['-XX:+UseSerialGC', '-Xss512k'], classpath: '/x/100%/lib/*', autostart: false, metricsPort: 23456, mainClass: 'flumeservice.Agent', monitoringType: 'flumeservice.LoopbackMetricsServer', flumeVersion: '1.11.0' }, paths);
    // env -i: the JVM gets no environment of the service's (it execs java, so supervisord still supervises the JVM).
    expect(text).toMatch(/^command=\/usr\/bin\/env -i PATH=\S+ LANG=C\.UTF-8 "java" -Xmx256m .* flumeservice\.Agent -n a1 -f "\/s\/services\/flume-shop-orders\/flume\.conf" --no-reload-conf$/m);
    expect(text).toContain('/x/100%%/lib/*');
    expect(text).toMatch(/ "java" -Xmx256m "-XX:\+UseSerialGC" "-Xss512k" -XX:\+ExitOnOutOfMemoryError -XX:-UsePerfData /m);
    expect(text).toContain('umask=027');
    expect(text).toContain(' -Dflume-service.flume=1.11.0 ');
    expect(text).toContain('autostart=false');
    expect(text).toContain('stopasgroup=true');
    expect(text).toContain('-Dflume.monitoring.type=flumeservice.LoopbackMetricsServer -Dflume.monitoring.port=23456');
  });
});
