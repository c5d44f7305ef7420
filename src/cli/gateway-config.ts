/**
 * Renders the gateway's nginx.conf into var/gateway/ from the current settings.
 * scripts/up.sh runs it before supervisord starts (or reloads) the gateway program.
 */
import { loadConfig } from '../config.js';
import { writeGatewayConfig } from '../gateway/render.js';

writeGatewayConfig(loadConfig())
  .then((f) => console.log(f.configFile))
  .catch((e: Error) => {
    console.error(`gateway-config: ${e.message}`);
    process.exit(2);
  });
