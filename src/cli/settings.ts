/**
 * The settings as the service reads them (environment over the settings file), for the scripts:
 *   node dist/cli/settings.js check   exits 2 naming each bad setting; prints nothing when all pass
 *   node dist/cli/settings.js urls    prints the API's URL, then the gateway's, one per line
 * The scripts use these answers as data (arguments, never pasted into program text); root runs
 * it as the state's owner (src/store/state-owner.ts), so a planted setting reads nothing of root's.
 */
import { actAsStateOwner } from '../store/state-owner.js';
import { hostPort, PROJECT_ROOT, reachableHost } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';

const usage = 'usage: node dist/cli/settings.js check|urls';

function main(): number {
  const what = process.argv[2];
  if (what !== 'check' && what !== 'urls') {
    console.error(usage);
    return 2;
  }
  actAsStateOwner(PROJECT_ROOT);
  let c;
  try {
    c = loadConfig();
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (what === 'urls') {
    const tls = !!c.GATEWAY_TLS_CERT_FILE;
    const gateway = tls && c.GATEWAY_PLAIN_PORT ? `http://${hostPort('127.0.0.1', c.GATEWAY_PLAIN_PORT)}` : `${tls ? 'https' : 'http'}://${hostPort(reachableHost(c.GATEWAY_HOST), c.GATEWAY_PORT)}`;
    console.log(`http://${hostPort(reachableHost(c.API_HOST), c.API_PORT)}`);
    console.log(gateway);
  }
  return 0;
}

process.exit(main());
