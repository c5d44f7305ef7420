import { describe, expect, it } from 'vitest';
import { StartQueue } from '../../src/agents/start-queue.js';

/** Lets every pending promise callback run (the queue hands slots over in callbacks). */
const tick = () => new Promise((r) => setImmediate(r));

describe('the start queue', () => {
  it('runs at most `concurrency` starts at once, the rest in arrival order, and tells each its place', async () => {
    const q = new StartQueue(2);
    let running = 0;
    let most = 0;
    const order: string[] = [];
    const gates = new Map<string, () => void>();
    const start = (p: string) =>
      q.run(p, async () => {
        running++;
        most = Math.max(most, running);
        order.push(p);
        await new Promise<void>((r) => gates.set(p, r));
        running--;
        return p;
      });
    const all = ['a', 'b', 'c', 'd', 'e'].map(start);
    await tick();
    expect(order).toEqual(['a', 'b']);
    expect(q.place('a')).toBeNull();
    expect(q.place('c')).toEqual({ position: 1, waiting: 3, concurrency: 2 });
    expect(q.place('e')).toEqual({ position: 3, waiting: 3, concurrency: 2 });
    gates.get('b')!();
    await tick();
    // A newcomer does not overtake those waiting.
    const late = start('f');
    await tick();
    expect(order).toEqual(['a', 'b', 'c']);
    expect(q.place('f')).toEqual({ position: 3, waiting: 3, concurrency: 2 });
    for (const p of ['a', 'c', 'd', 'e']) {
      gates.get(p)!();
      await tick();
    }
    gates.get('f')!();
    expect(await Promise.all([...all, late])).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(order).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(most).toBe(2);
    expect(q.stats).toEqual({ starting: 0, waiting: 0, concurrency: 2 });
  });

  it('frees the slot of a start that fails', async () => {
    const q = new StartQueue(1);
    await expect(q.run('x', async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(await q.run('y', async () => 'ok')).toBe('ok');
    expect(q.stats.starting).toBe(0);
  });
});
