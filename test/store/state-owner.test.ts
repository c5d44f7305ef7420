import { chownSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stateOwner } from '../../src/store/state-owner.js';
import { tempDir } from '../helpers/harness.js';

// Who a root-run tool acts as: judged only by what the state's owner cannot change. Run as root
// (the suite is), any uid can own a directory.
const SVC = { uid: 40123, gid: 40124 };
const root = process.getuid?.() === 0;

describe.runIf(root)('stateOwner', () => {
  it('is the owner of STATE_DIR, given by the caller', () => {
    const state = join(tempDir('owner'), 'state');
    mkdirSync(state);
    chownSync(state, SVC.uid, SVC.gid);
    expect(stateOwner('/nonexistent-checkout', { STATE_DIR: state })).toEqual(SVC);
  });

  it("follows the checkout's own link one hop, never a link inside the state", () => {
    const base = tempDir('owner');
    const checkout = join(base, 'checkout');
    const state = join(base, 'state');
    mkdirSync(checkout);
    mkdirSync(state);
    chownSync(state, SVC.uid, SVC.gid);
    // The service user replaced state/var with a link to a directory of root's.
    symlinkSync(join(base, 'roots'), join(state, 'var'));
    mkdirSync(join(base, 'roots'));
    symlinkSync(join(state, 'var'), join(checkout, 'var'));
    expect(stateOwner(checkout, {})).toEqual(SVC);
  });

  it("is the owner of var/ when the state is the checkout (root's), and nobody when root owns both", () => {
    const checkout = tempDir('owner');
    mkdirSync(join(checkout, 'var'));
    expect(stateOwner(checkout, {})).toBeNull();
    chownSync(join(checkout, 'var'), SVC.uid, SVC.gid);
    expect(stateOwner(checkout, {})).toEqual(SVC);
  });
});
