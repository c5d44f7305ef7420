import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { acceptsConnections } from '../../src/agents/port-allocator.js';
import { stopChild } from './process.js';
import { freePort, until } from './wait.js';

const HOME = join(PROJECT_ROOT, 'test', 'servers', 'kafka');
const CLASSPATH = join(HOME, 'lib', '*');
const LOG4J = `-Dlog4j.configuration=file:${join(HOME, 'log4j.properties')}`;
const run = promisify(execFile);

export interface ConsumedRecord {
  headers: Record<string, string>;
  key: string | null;
  value: string;
}

/** A record as the broker stored it: the id of the producer whose batch carried it. */
export interface StoredRecord {
  offset: number;
  producerId: number;
  value: string;
}

/**
 * A real single-node Kafka 3.7 broker in KRaft mode (combined broker + controller), from Maven
 * Central's jars (test/servers/kafka/pom.xml), in a temp dir, on free loopback ports. stop()
 * and start() again keep its data: a broker that went away and came back.
 */
export class TestKafka {
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-kafka-'));
  port = 0;
  private controllerPort = 0;
  private child: ChildProcess | null = null;
  private stderr = '';

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const config = join(this.dir, 'server.properties');
    if (!this.port) {
      this.port = await freePort();
      this.controllerPort = await freePort();
      writeFileSync(
        config,
        [
          'process.roles=broker,controller',
          'node.id=1',
          `controller.quorum.voters=1@127.0.0.1:${this.controllerPort}`,
          'controller.listener.names=CONTROLLER',
          `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
          `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
          'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
          `log.dirs=${join(this.dir, 'data')}`,
          'num.partitions=1',
          'offsets.topic.replication.factor=1',
          'offsets.topic.num.partitions=1',
          'transaction.state.log.replication.factor=1',
          'transaction.state.log.min.isr=1',
          'group.initial.rebalance.delay.ms=0',
          '',
        ].join('\n'),
      );
      // A fixed cluster id: formatting is then idempotent.
      await run('java', ['-cp', CLASSPATH, LOG4J, 'kafka.tools.StorageTool', 'format', '-t', 'flumeServiceTest0000A', '-c', config, '--ignore-formatted']);
    }
    this.stderr = '';
    this.child = spawn('java', ['-Xms128m', '-Xmx384m', LOG4J, '-cp', CLASSPATH, 'kafka.Kafka', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    const up = await until(() => this.child?.exitCode === null && acceptsConnections(this.port, '127.0.0.1', 200), (ok) => ok === true, 60_000, 100);
    if (!up) throw new Error(`the Kafka broker did not start: ${this.stderr}`);
  }

  /** SIGTERM: the broker shuts down cleanly (its data stays for the next start). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, 'SIGTERM', 30_000);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Sets a topic's config (kafka-configs --alter): e.g. max.message.bytes. The topic must exist. */
  async setTopicConfig(topic: string, key: string, value: string): Promise<void> {
    await run('java', [LOG4J, '-cp', CLASSPATH, 'kafka.admin.ConfigCommand', '--bootstrap-server', this.bootstrap, '--alter', '--entity-type', 'topics', '--entity-name', topic, '--add-config', `${key}=${value}`]);
  }

  /**
   * Every record of `topic`'s partition 0 as the broker's log holds it, with the producer id of
   * its batch (Kafka's DumpLogSegments over the segment files): an idempotent producer gets a new
   * id each time its JVM starts, so two copies of an event with one producer id are that
   * producer's retry, two with different ids a replay by a later JVM. -1: not idempotent.
   */
  async stored(topic: string): Promise<StoredRecord[]> {
    const dir = join(this.dir, 'data', `${topic}-0`);
    if (!existsSync(dir)) return [];
    const files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort().map((f) => join(dir, f));
    if (!files.length) return [];
    const { stdout } = await run('java', [LOG4J, '-cp', CLASSPATH, 'kafka.tools.DumpLogSegments', '--deep-iteration', '--print-data-log', '--files', files.join(',')], { maxBuffer: 256 * 1024 * 1024 });
    const out: StoredRecord[] = [];
    let producerId = -1;
    for (const line of stdout.split('\n')) {
      const batch = /^baseOffset: \d+ .*\bproducerId: (-?\d+)/.exec(line);
      if (batch) producerId = Number(batch[1]);
      const rec = /^\| offset: (\d+) .* payload: (.*)$/.exec(line);
      if (rec) out.push({ offset: Number(rec[1]), producerId, value: rec[2]! });
    }
    return out;
  }

  /**
   * Every record of `topic` from the beginning, read by a real consumer (ConsoleConsumer),
   * which gives up once no record came for `idleMs`.
   */
  async consume(topic: string, idleMs = 4000): Promise<ConsumedRecord[]> {
    const { stdout } = await run(
      'java',
      [
        LOG4J,
        '-cp',
        CLASSPATH,
        'kafka.tools.ConsoleConsumer',
        '--bootstrap-server',
        this.bootstrap,
        '--topic',
        topic,
        '--from-beginning',
        '--timeout-ms',
        String(idleMs),
        '--property',
        'print.headers=true',
        '--property',
        'print.key=true',
        '--property',
        'headers.separator=;',
        '--property',
        'key.separator=\t',
      ],
      { maxBuffer: 256 * 1024 * 1024 },
    ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [h = '', key = '', ...value] = line.split('\t');
        const headers: Record<string, string> = {};
        if (h !== 'NO_HEADERS') {
          for (const kv of h.split(';')) {
            const i = kv.indexOf(':');
            if (i > 0) headers[kv.slice(0, i)] = kv.slice(i + 1);
          }
        }
        return { headers, key: key === 'null' ? null : key, value: value.join('\t') };
      });
  }
}
