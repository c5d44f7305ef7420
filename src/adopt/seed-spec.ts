import { checkSpec, type JvmLimits } from '../resources/agent-spec.js';
import type { SeedTable } from './seed-install.js';

/** What our create body for an old table is, what of its config is not carried over, and why it cannot be (if so). */
export interface SeedSpec {
  spec: Record<string, unknown> | null;
  /** Settings of the old config ours does not take or does otherwise, each said. */
  notes: string[];
  /** Why no spec (a field our checks refuse, a sink we cannot take over). */
  problems: string[];
}

const int = (v: string | undefined) => (v !== undefined && /^\d{1,12}$/.test(v) ? Number(v) : undefined);

/**
 * The old table's Flume properties as our spec: the HDFS sink (the original design's only one),
 * with its path, names and roll settings; logger and file_roll too. `nameNode` is needed for
 * HDFS: the old agents took it from the host's Hadoop configuration (core-site.xml), which
 * ours never read, so it is asked for rather than guessed.
 */
export function seedSpec(t: SeedTable, opts: { nameNode?: string; limits: JvmLimits }): SeedSpec {
  const p = t.properties;
  const notes: string[] = [];
  const problems: string[] = [];
  const type = p['sinks.k1.type'];
  let body: Record<string, unknown>;
  if (type === 'hdfs') {
    const options: Record<string, unknown> = {
      path: p['sinks.k1.hdfs.path'],
      filePrefix: p['sinks.k1.hdfs.filePrefix'],
      fileSuffix: p['sinks.k1.hdfs.fileSuffix'],
      rollInterval: int(p['sinks.k1.hdfs.rollInterval']),
      rollCount: int(p['sinks.k1.hdfs.rollCount']),
      rollSize: int(p['sinks.k1.hdfs.rollSize']),
    };
    if (opts.nameNode) options.nameNode = opts.nameNode;
    else problems.push('hdfs: the old agents found their NameNode in the host\'s Hadoop configuration; say it with --name-node hdfs://host:port');
    if (p['sinks.k1.hdfs.round'] === 'true' && !/%M|%S/.test(String(options.path))) notes.push('hdfs.round* not carried over: its path has no minutes, so rounding changed nothing');
    if (p['sinks.k1.hdfs.fileType'] && p['sinks.k1.hdfs.fileType'] !== 'DataStream') problems.push(`hdfs.fileType ${p['sinks.k1.hdfs.fileType']}: ours writes DataStream only`);
    if (p['sinks.k1.hdfs.idleTimeout']) notes.push(`hdfs.idleTimeout ${p['sinks.k1.hdfs.idleTimeout']} not carried over: ours closes files by rollInterval`);
    body = { sink: 'hdfs', options: Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  } else if (type === 'logger') {
    body = { sink: 'logger' };
  } else if (type === 'file_roll') {
    body = { sink: 'file_roll' };
    notes.push(`file_roll: files go to var/${t.program}/out/ from now on, not ${p['sinks.k1.sink.directory'] ?? 'its old directory'}`);
  } else {
    return { spec: null, notes, problems: [`sink ${type ?? 'none'}: not one adopt takes over (hdfs, logger, file_roll)`] };
  }
  body.channel = Object.fromEntries(
    Object.entries({ capacity: int(p['channels.c1.capacity']), transactionCapacity: int(p['channels.c1.transactionCapacity']) }).filter(([, v]) => v !== undefined),
  );
  const known = /^(sources\.r1\.(type|port|channels|interceptors|interceptors\.i1\.type)|sinks\.k1\.(type|channel|hdfs\.\w+|sink\.directory)|channels\.c1\.(type|capacity|transactionCapacity|checkpointDir|dataDirs)|sources|sinks|channels)$/;
  const dropped = Object.keys(p).filter((k) => !known.test(k));
  if (dropped.length) notes.push(`not carried over: ${dropped.slice(0, 10).join(', ')}${dropped.length > 10 ? ` and ${dropped.length - 10} more` : ''}`);
  if (problems.length) return { spec: null, notes, problems };
  const checked = checkSpec(body, t, opts.limits);
  if (!checked.ok) return { spec: null, notes, problems: checked.fields.map((f) => `${f.field}: ${f.message}`) };
  return { spec: body, notes, problems };
}
