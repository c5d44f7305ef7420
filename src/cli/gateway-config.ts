/**
 * Renders the gateway's nginx.conf into var/gateway/ from the current settings.
 * scripts/up.sh and scripts/apply-settings.sh run it before supervisord starts (or reloads) the
 * gateway program; a bad setting stops it (exit 2) with a message naming the setting.
 */
import { type Config } from '../config.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';
import { writeGatewayConfig } from '../gateway/render.js';

let config: Config;
try {
  actAsStateOwner(PROJECT_ROOT);
  config = loadConfig();
} catch (e) {
  console.error(`gateway-config: ${(e as Error).message}`);
  process.exit(2);
}
writeGatewayConfig(config)
  .then((f) => console.log(f.configFile))
  .catch((e: Error) => {
    console.error(`gateway-config: ${e.message}`);
    process.exit(2);
  });
