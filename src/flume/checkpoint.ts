import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Events left in a file channel, read from checkpoint.meta (Flume's V3 checkpoint: a
 * length-delimited protobuf whose field 3, fixed32, is the queue size). Only meaningful once
 * the agent has stopped cleanly (checkpointOnClose). Returns null when there is no readable
 * checkpoint, which callers must treat as "not known to be empty".
 */
export async function queuedEvents(checkpointDir: string): Promise<number | null> {
  let buf: Buffer;
  try {
    buf = await readFile(join(checkpointDir, 'checkpoint.meta'));
  } catch {
    return null;
  }
  let pos = 0;
  const varint = () => {
    let v = 0;
    for (let shift = 0; pos < buf.length && shift < 35; shift += 7) {
      const b = buf[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return v;
    }
    return -1;
  };
  const len = varint();
  if (len < 0) return null;
  const end = Math.min(buf.length, pos + len);
  while (pos < end) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 5) {
      if (pos + 4 > end) return null;
      if (field === 3) return buf.readInt32LE(pos);
      pos += 4;
    } else if (wire === 1) pos += 8;
    else if (wire === 0) varint();
    else if (wire === 2) pos += varint();
    else return null;
  }
  return null;
}
