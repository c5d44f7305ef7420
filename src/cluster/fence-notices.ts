import type { Logger } from 'pino';

/**
 * Tells listeners when this host's lease becomes fenced (true) and renewed again (false): one
 * change at a time, each acting on the lease's state when its turn comes (`current`), so a fence
 * and an unfence in quick succession end in the state the lease is in, never in the other. A
 * listener's failure is logged and the others are told still.
 */
export class FenceNotices {
  private readonly listeners: Array<(fenced: boolean) => Promise<void>> = [];
  private chain: Promise<void> = Promise.resolve();
  private told: boolean | null = null;

  constructor(
    private readonly current: () => boolean,
    private readonly log: Logger,
  ) {}

  subscribe(f: (fenced: boolean) => Promise<void>): void {
    this.listeners.push(f);
  }

  /** The lease changed: the listeners hear the state it is in once their turn comes. */
  tell(): void {
    this.chain = this.chain.then(async () => {
      const fenced = this.current();
      if (fenced === this.told) return;
      this.told = fenced;
      for (const f of this.listeners) await f(fenced).catch((err: Error) => this.log.error({ err: err.message, fenced }, 'could not follow the fence'));
      // The lease may have moved on meanwhile: follow it.
      if (this.current() !== fenced) this.tell();
    });
  }
}
