import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { readJsonFileSync, writeAtomic } from '../store/files.js';
import { periodic, type Periodic } from '../periodic.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

/** var/revoked-control-tokens.json: jti -> unix time its JWT expires. */
export const revokedFileSchema = z.record(z.string().min(8).max(128), z.number().int());
const fileSchema = revokedFileSchema;

/**
 * Revoked control tokens, by `jti`, each kept until the token would have expired anyway.
 *
 * Guarantees: `isRevoked` is a memory lookup (every API request asks). A revocation made by
 * this process holds at once; one made by another API process sharing the Redis holds here
 * within REFRESH_MS. The file (var/revoked-control-tokens.json, 0600) is the truth: it is
 * read at start and copied back into Redis, so neither a restart nor a Redis loss un-revokes a
 * token.
 */
export class ControlTokenRevocations {
  static readonly REFRESH_MS = 2000;
  private readonly revoked = new Map<string, number>();
  private job: Periodic | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly file: string,
    private readonly log: Logger,
  ) {
    for (const [jti, until] of Object.entries(readJsonFileSync(file, fileSchema, log, 'the revoked control tokens') ?? {})) this.revoked.set(jti, until);
  }

  isRevoked(jti: string): boolean {
    const until = this.revoked.get(jti);
    return until !== undefined && until > Date.now() / 1000;
  }

  private readonly changed: Array<(jti: string, until: number) => Promise<void>> = [];

  /** `f` is told of every revocation made through this host, once it holds here (with many hosts: how the others learn it). */
  onChange(f: (jti: string, until: number) => Promise<void>): void {
    this.changed.push(f);
  }

  /** Revokes `jti` until `until` (unix seconds: the token's own exp). */
  async revoke(jti: string, until: number): Promise<void> {
    await this.learn(jti, until);
    this.log.info({ jti, until: new Date(until * 1000).toISOString() }, 'control token revoked');
    for (const f of this.changed) await f(jti, until);
  }

  /** Holds a revocation made elsewhere (another host): in memory, on disk and in Redis. */
  async learn(jti: string, until: number): Promise<void> {
    if (this.revoked.get(jti) === until) return;
    this.revoked.set(jti, until);
    await this.save();
    await redisCall(() => this.redis.hset(this.keys.revokedControlTokens(), jti, until));
  }

  /** Every revocation still in force: jti -> until. */
  all(): Map<string, number> {
    const now = Date.now() / 1000;
    return new Map([...this.revoked].filter(([, until]) => until > now));
  }

  readonly part = 'revoked control tokens';

  /** Restorable: the file's revocations back into Redis (what sync does every REFRESH_MS anyway). */
  async restore(): Promise<string[]> {
    return this.sync();
  }

  /** Merges Redis and memory both ways, dropping entries whose tokens have expired. Returns the jtis written back to Redis. */
  async sync(): Promise<string[]> {
    const now = Date.now() / 1000;
    const remote = await this.redis.hgetall(this.keys.revokedControlTokens());
    let learned = false;
    for (const [jti, until] of Object.entries(remote)) {
      if (!this.revoked.has(jti) && Number(until) > now) {
        this.revoked.set(jti, Number(until));
        learned = true;
      }
    }
    const expired = [...this.revoked].filter(([, until]) => until <= now).map(([jti]) => jti);
    for (const jti of expired) this.revoked.delete(jti);
    const missing = [...this.revoked].filter(([jti]) => remote[jti] === undefined);
    const tx = this.redis.multi();
    if (missing.length) tx.hset(this.keys.revokedControlTokens(), Object.fromEntries(missing));
    if (expired.length) tx.hdel(this.keys.revokedControlTokens(), ...expired);
    if (missing.length || expired.length) await tx.exec();
    if (learned || expired.length) await this.save();
    return missing.map(([jti]) => jti);
  }

  start(): void {
    this.job ??= periodic('control token revocations', ControlTokenRevocations.REFRESH_MS, async () => void (await this.sync()), this.log);
    void this.job.runNow();
  }

  async stop(): Promise<void> {
    await this.job?.stop();
    this.job = null;
  }

  private async save(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    await writeAtomic(this.file, JSON.stringify(Object.fromEntries(this.revoked)), 0o600);
  }
}
