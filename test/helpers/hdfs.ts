import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { acceptsConnections } from '../../src/agents/port-allocator.js';
import { stopChild } from './process.js';
import { freePort, until } from './wait.js';

const HOME = join(PROJECT_ROOT, 'test', 'servers', 'hadoop');
const run = promisify(execFile);

const site = (props: Record<string, string | number | boolean>) =>
  `<?xml version="1.0"?>\n<configuration>\n${Object.entries(props)
    .map(([k, v]) => `  <property><name>${k}</name><value>${v}</value></property>`)
    .join('\n')}\n</configuration>\n`;

/**
 * A real single-node HDFS 3.3: a NameNode and a DataNode process from Maven Central's jars
 * (test/servers/hadoop/pom.xml), in a temp dir, every port on loopback and free. stop() and
 * start() again keep its data: an HDFS that went away and came back.
 */
export class TestHdfs {
  readonly dir = mkdtempSync(join(tmpdir(), 'flume-svc-hdfs-'));
  private readonly conf = join(this.dir, 'conf');
  private ports: Record<string, number> = {};
  private nameNode: ChildProcess | null = null;
  private dataNode: ChildProcess | null = null;
  private log = '';

  get uri(): string {
    return `hdfs://127.0.0.1:${this.ports.rpc}`;
  }

  private java(main: string, args: string[] = [], heap = '256m'): string[] {
    return [`-Xmx${heap}`, `-Dlog4j.configuration=file:${join(HOME, 'log4j.properties')}`, `-Djava.io.tmpdir=${join(this.dir, 'tmp')}`, '-cp', `${this.conf}:${join(HOME, 'lib', '*')}`, main, ...args];
  }

  async start(): Promise<void> {
    if (!this.ports.rpc) {
      for (const p of ['rpc', 'nnHttp', 'secondaryHttp', 'dnData', 'dnHttp', 'dnIpc']) this.ports[p] = await freePort();
      // The Maven jars carry no webapps/: empty directories on the class path are enough.
      for (const d of ['webapps/hdfs', 'webapps/datanode', 'webapps/static', 'webapps/secondary']) mkdirSync(join(this.conf, d), { recursive: true });
      mkdirSync(join(this.dir, 'tmp'), { recursive: true });
      writeFileSync(join(this.conf, 'core-site.xml'), site({ 'fs.defaultFS': this.uri, 'hadoop.tmp.dir': join(this.dir, 'data', 'tmp') }));
      writeFileSync(
        join(this.conf, 'hdfs-site.xml'),
        site({
          'dfs.replication': 1,
          'dfs.permissions.enabled': false,
          'dfs.namenode.safemode.extension': 0,
          'dfs.namenode.name.dir': `file://${join(this.dir, 'data', 'name')}`,
          'dfs.datanode.data.dir': `file://${join(this.dir, 'data', 'data')}`,
          'dfs.namenode.rpc-address': `127.0.0.1:${this.ports.rpc}`,
          'dfs.namenode.http-address': `127.0.0.1:${this.ports.nnHttp}`,
          'dfs.namenode.secondary.http-address': `127.0.0.1:${this.ports.secondaryHttp}`,
          'dfs.datanode.address': `127.0.0.1:${this.ports.dnData}`,
          'dfs.datanode.http.address': `127.0.0.1:${this.ports.dnHttp}`,
          'dfs.datanode.ipc.address': `127.0.0.1:${this.ports.dnIpc}`,
        }),
      );
      await run('java', this.java('org.apache.hadoop.hdfs.server.namenode.NameNode', ['-format', '-nonInteractive']), { cwd: this.dir });
    }
    this.log = '';
    const spawnJava = (main: string) => {
      const child = spawn('java', this.java(main, [], '384m'), { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
      return child;
    };
    this.nameNode = spawnJava('org.apache.hadoop.hdfs.server.namenode.NameNode');
    if (!(await until(() => acceptsConnections(this.ports.rpc!, '127.0.0.1', 200), (ok) => ok, 60_000))) {
      throw new Error(`the NameNode did not start: ${this.log}`);
    }
    this.dataNode = spawnJava('org.apache.hadoop.hdfs.server.datanode.DataNode');
    const live = await until(
      async () => {
        try {
          const r = await fetch(`http://127.0.0.1:${this.ports.nnHttp}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState`);
          const j = (await r.json()) as { beans: Array<{ NumLiveDataNodes: number; FSState: string }> };
          return j.beans[0]?.NumLiveDataNodes === 1 && j.beans[0]?.FSState === 'Operational';
        } catch {
          return false;
        }
      },
      (ok) => ok,
      60_000,
      250,
    );
    if (!live) throw new Error(`the DataNode did not register: ${this.log}`);
  }

  async stop(): Promise<void> {
    const [dn, nn] = [this.dataNode, this.nameNode];
    this.dataNode = this.nameNode = null;
    await stopChild(dn, 'SIGTERM', 20_000);
    await stopChild(nn, 'SIGTERM', 20_000);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Hadoop's FsShell (`hadoop fs ...`) against this HDFS: its output. */
  async fs(...args: string[]): Promise<string> {
    const { stdout } = await run('java', this.java('org.apache.hadoop.fs.FsShell', args), { cwd: this.dir, maxBuffer: 64 * 1024 * 1024 }).catch(
      (e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }),
    );
    return stdout;
  }

  /** Files under `dir`, recursively (paths only). */
  async files(dir: string): Promise<string[]> {
    return (await this.fs('-ls', '-R', dir))
      .split('\n')
      .filter((l) => l.startsWith('-'))
      .map((l) => l.split(/\s+/).pop()!)
      .filter(Boolean);
  }
}
