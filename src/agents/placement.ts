import type { TableRef } from '../resources/table.js';

/**
 * What many hosts tell this host about its tables (src/placement/ answers; one host: ONE_HOST).
 * The route table, the reconciler, the healer and stand-ins ask it; none of them knows etcd.
 */
export interface TablePlacement {
  /**
   * Another host takes this table's events now (a move handed it on, and the agent here only
   * drains the channel it left), or a table moved here waits until its old host surely stopped.
   */
  elsewhere(ref: TableRef): boolean;
  /** Tables (`db:table`) routed here that other hosts run: their routes are kept. */
  foreign(): Iterable<string>;
}

/** One host: every table is its own. */
export const ONE_HOST: TablePlacement = { elsewhere: () => false, foreign: () => [] };

/**
 * The placement the route table is built with, before what answers it can be (src/placement/
 * needs the route table it steers): app.ts binds it once, before anything starts.
 */
export class PlacementSeam implements TablePlacement {
  #to: TablePlacement = ONE_HOST;
  #bound = false;

  bind(to: TablePlacement): void {
    if (this.#bound) throw new Error('the placement is bound already');
    this.#bound = true;
    this.#to = to;
  }

  elsewhere(ref: TableRef): boolean {
    return this.#to.elsewhere(ref);
  }

  foreign(): Iterable<string> {
    return this.#to.foreign();
  }
}
