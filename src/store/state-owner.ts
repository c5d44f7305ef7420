import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';

/** A user the state belongs to, by number. */
export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Who owns this installation's state, judged only by what that owner cannot change:
 * - STATE_DIR from the caller's own environment (never from the settings file, which lives in
 *   the state and so belongs to the owner), else the one link the set-up made in the checkout
 *   (`<checkout>/var -> <state>/var`: read one hop, not resolved through links inside the state),
 *   else the checkout itself;
 * - the owner of that directory (lstat), and when root owns it (the state is the checkout), the
 *   owner of its var/ (a real directory inside a root-owned one).
 * null when root owns both: nothing to drop to.
 */
export function stateOwner(checkout: string, env: Record<string, string | undefined> = process.env): Owner | null {
  let state: string;
  if (env.STATE_DIR) {
    try {
      state = realpathSync(resolve(env.STATE_DIR));
    } catch {
      state = resolve(env.STATE_DIR); // not made yet: root's to make
    }
  } else {
    const link = join(checkout, 'var');
    const l = lstatSync(link, { throwIfNoEntry: false });
    if (l?.isSymbolicLink()) {
      const target = readlinkSync(link);
      state = dirname(isAbsolute(target) ? target : resolve(checkout, target));
    } else {
      state = checkout;
    }
  }
  const top = lstatSync(state, { throwIfNoEntry: false });
  if (top && top.uid !== 0) return { uid: top.uid, gid: top.gid };
  const v = lstatSync(join(state, 'var'), { throwIfNoEntry: false });
  if (top && v?.isDirectory() && v.uid !== 0) return { uid: v.uid, gid: v.gid };
  return null;
}

/**
 * Root runs the command-line tools (npm run token, backup, restore; up.sh and upgrade.sh run the
 * others), but the state they read and write belongs to the service's user, who can change
 * anything in it (settings.env, links in var/). So, run as root, a tool becomes that user before
 * it reads a setting or touches a file: it then has exactly the rights the service has, and a
 * link or a setting planted in the state cannot make root read, write or chmod anything else.
 * Returns who it acts as now. Call it before loadConfig().
 */
export function actAsStateOwner(checkout: string, env: Record<string, string | undefined> = process.env): Owner | null {
  if (process.getuid?.() !== 0) return null;
  const owner = stateOwner(checkout, env);
  if (!owner) return null;
  process.setgroups?.([owner.gid]);
  process.setgid?.(owner.gid);
  process.setuid?.(owner.uid);
  return owner;
}
