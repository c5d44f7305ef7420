import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `fn` until `ok(value)` holds or the deadline passes, and returns the last value: the
 * caller asserts on it, so a timeout fails with what was last seen, not with "timed out".
 */
export async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await fn();
  while (!ok(v) && Date.now() < deadline) {
    await sleep(everyMs);
    v = await fn();
  }
  return v;
}

/** A TCP port the OS says is free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Waits until `ms` have passed since `since` (epoch ms): for tests whose subject is time passing (an outage held, a deadline outlived). */
export async function elapsed(since: number, ms: number): Promise<void> {
  await until(() => Date.now() - since, (d) => d >= ms, ms + 5000, Math.min(50, Math.max(1, ms / 10)));
}

/** Runs `sample` every `everyMs` until the epoch time `end` (a watch over a period, e.g. three TTLs). */
export async function sampleUntil(end: number, everyMs: number, sample: () => Promise<void> | void): Promise<void> {
  await until(
    async () => {
      await sample();
      return Date.now();
    },
    (t) => t >= end,
    Math.max(0, end - Date.now()) + 60_000,
    everyMs,
  );
}

/** Runs `step` every `everyMs` while `going()` holds (a prober or a sender that runs until told to stop). */
export async function repeatWhile(going: () => boolean, everyMs: number, step: () => Promise<void>): Promise<void> {
  await until(
    async () => {
      if (going()) await step();
      return going();
    },
    (g) => !g,
    24 * 3600_000,
    everyMs,
  );
}
