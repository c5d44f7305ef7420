/**
 * Seals the cluster's records in etcd that no host sealed: what hosts of a version before seals
 * wrote (src/cluster/etcd.ts RecordSeal). Run once, on one host, after every host of the cluster
 * runs this version; until then the hosts do not believe those records (they neither take nor
 * drop a table for them).
 *   node dist/cli/seal-records.js            lists what it would seal
 *   node dist/cli/seal-records.js --write    seals them (each kept on its lease)
 * Anything under ETCD_PREFIX that is not sealed is taken as the cluster's: check the list first
 * (a record somebody else forged would be sealed too).
 */
import { parseArgs } from 'node:util';
import { loadOrCreateSecret } from '../auth/secret.js';
import { etcdAccess } from '../cluster/cluster.js';
import { createEtcd, RecordSeal, sealKey } from '../cluster/etcd.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { write: { type: 'boolean', default: false } } });
  actAsStateOwner(PROJECT_ROOT);
  const cfg = loadConfig();
  if (!cfg.ETCD_ENDPOINTS.length) {
    console.error('seal-records: ETCD_ENDPOINTS is empty: a single host keeps nothing in etcd');
    return 2;
  }
  const raw = createEtcd(etcdAccess(cfg));
  const sealed = createEtcd(etcdAccess(cfg, new RecordSeal(sealKey(loadOrCreateSecret(cfg)), cfg.ETCD_PREFIX)));
  try {
    const all = await raw.getAll().prefix(cfg.ETCD_PREFIX).exec();
    const open = all.kvs.filter((kv) => !kv.value.toString().startsWith(RecordSeal.TAG));
    for (const kv of open) {
      console.log(`${values.write ? 'sealing' : 'would seal'} ${kv.key.toString()} = ${kv.value.toString().slice(0, 80)}`);
      if (!values.write) continue;
      const put = sealed.put(kv.key.toString()).value(kv.value);
      if (kv.lease !== '0') put.lease(kv.lease);
      // Only if nobody changed it meanwhile.
      await sealed.if(kv.key.toString(), 'Mod', '==', kv.mod_revision).then(put).commit();
    }
    console.log(`${open.length} of ${all.kvs.length} record(s) under ${cfg.ETCD_PREFIX} ${values.write ? 'sealed' : 'not sealed (--write seals them)'}`);
    return 0;
  } finally {
    raw.close();
    sealed.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`seal-records: ${e.message}`);
    process.exit(1);
  },
);
