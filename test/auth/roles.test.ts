import { describe, expect, it } from 'vitest';
import { dbAllowed, scopeAllowed, type Principal } from '../../src/auth/roles.js';

const p = (dbs?: string[]) => ({ sub: 'ops', role: 'operator', jti: 'jti-12345', exp: 0, ...(dbs ? { dbs } : {}) }) as unknown as Principal;

describe('an ingestion-token scope within a principal', () => {
  it('is anything for a principal with every database', () => {
    expect(scopeAllowed(p(), '*')).toBe(true);
    expect(scopeAllowed(p(), ['any.table'])).toBe(true);
  });

  it('is only its databases and their tables for one limited to some', () => {
    expect(scopeAllowed(p(['shop']), ['shop', 'shop.orders'])).toBe(true);
    expect(scopeAllowed(p(['shop']), ['shop.orders', 'crm'])).toBe(false);
    expect(scopeAllowed(p(['shop']), '*')).toBe(false);
    expect(scopeAllowed(p(['shop']), ['shopping.orders'])).toBe(false);
    expect(dbAllowed(p(['shop']), 'crm')).toBe(false);
  });
});
