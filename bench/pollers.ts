/**
 * Dashboards polling, as a command (for a host that is a network namespace: run it there with
 * `ip netns exec`): `tsx bench/pollers.ts URL TOKEN POLLERS EVERY_MS SECONDS` prints the Load as JSON.
 */
import { pacedPollers } from './lib.js';

const [url, token, pollers, everyMs, seconds] = process.argv.slice(2);
if (!url || !token) throw new Error('usage: tsx bench/pollers.ts URL TOKEN POLLERS EVERY_MS SECONDS');
console.log(JSON.stringify(await pacedPollers(url, token, Number(pollers ?? 10), Number(everyMs ?? 100), Number(seconds ?? 10))));
