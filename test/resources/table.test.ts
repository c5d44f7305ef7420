import { describe, expect, it } from 'vitest';
import { parseProgramName, programName } from '../../src/resources/table.js';

describe('program names', () => {
  it('read back the table they were made from', () => {
    expect(parseProgramName(programName({ db: 'shop', table: 'orders_2' }))).toEqual({ db: 'shop', table: 'orders_2' });
  });

  it.each(['api', 'gateway', 'flume-shop', 'flume-shop-orders-x', 'flume--orders', 'flume-Shop-orders', 'flume-shop-or.ders', 'xflume-shop-orders'])(
    'are not an agent: %s',
    (p) => expect(parseProgramName(p)).toBeNull(),
  );
});
