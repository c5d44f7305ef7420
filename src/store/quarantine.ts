import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * A table's quarantine on disk (var/<program>/quarantine/): the events its sink can never
 * deliver, kept aside by the sink (flume/launcher/flumeservice/KafkaTableSink.java). The sink
 * writes one file per batch, whole (temp file, fsync, rename), named
 * `q-<millis>-<pid>-<seq>-<count>.jsonl`, a JSON line per event. Nothing here writes into a
 * file: files are read, or removed whole, so the sink and the API never race on one.
 *
 * Guarantees: a file whose name or lines do not parse is left alone and counted as `unreadable`
 * (never replayed, never dropped by accident of parsing); listing reads at most what it shows.
 */

const FILE = /^q-(\d+)-(\d+)-(\d+)-(\d+)\.jsonl$/;

export const quarantinedEventSchema = z.object({
  at: z.string().describe('when the sink kept it aside'),
  error: z.string().describe("the sink's reason: why it can never be delivered"),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
});
export type QuarantinedEvent = z.infer<typeof quarantinedEventSchema>;

export interface QuarantineFile {
  name: string;
  count: number;
}

/** The files of a quarantine, oldest first; names that are not the sink's are left out. */
export async function quarantineFiles(dir: string): Promise<QuarantineFile[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .flatMap((name) => {
      const m = FILE.exec(name);
      return m ? [{ name, count: Number(m[4]), at: Number(m[1]), seq: Number(m[3]) }] : [];
    })
    .sort((a, b) => a.at - b.at || a.seq - b.seq || a.name.localeCompare(b.name))
    .map(({ name, count }) => ({ name, count }));
}

/** How many events a quarantine holds (from the file names: no file is read). */
export async function quarantineCount(dir: string): Promise<number> {
  return (await quarantineFiles(dir)).reduce((n, f) => n + f.count, 0);
}

/** One file's events; null if it does not parse as the sink wrote it. */
export async function readQuarantineFile(dir: string, file: QuarantineFile): Promise<QuarantinedEvent[] | null> {
  try {
    const lines = (await readFile(join(dir, file.name), 'utf8')).split('\n').filter(Boolean);
    const events = lines.map((l) => quarantinedEventSchema.parse(JSON.parse(l)));
    return events.length === file.count ? events : null;
  } catch {
    return null;
  }
}

/** Events from the oldest on, skipping `offset`, at most `limit`, each with its file. */
export async function listQuarantine(dir: string, offset: number, limit: number): Promise<Array<QuarantinedEvent & { file: string }>> {
  const out: Array<QuarantinedEvent & { file: string }> = [];
  let skip = offset;
  for (const f of await quarantineFiles(dir)) {
    if (out.length >= limit) break;
    if (skip >= f.count) {
      skip -= f.count;
      continue;
    }
    const events = (await readQuarantineFile(dir, f)) ?? [];
    for (const e of events.slice(skip)) {
      if (out.length >= limit) break;
      out.push({ ...e, file: f.name });
    }
    skip = 0;
  }
  return out;
}

export async function removeQuarantineFile(dir: string, file: QuarantineFile): Promise<void> {
  await rm(join(dir, file.name), { force: true });
}
