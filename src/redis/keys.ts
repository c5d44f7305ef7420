/**
 * Every Redis key the service and the gateway use, built from one configurable prefix.
 * This is the schema the README documents; the gateway reads `route`.
 *
 *   <p>ports               HASH  port -> program that holds it (the reservation table)
 *   <p>route:<db>:<table>  STRING "127.0.0.1:<port>", set while the agent should run
 *   <p>lock:<program>      STRING owner token, PX ttl: one operation per table at a time
 */
export interface Keys {
  readonly prefix: string;
  ports(): string;
  route(db: string, table: string): string;
  lock(program: string): string;
}

export function makeKeys(prefix: string): Keys {
  return {
    prefix,
    ports: () => `${prefix}ports`,
    route: (db, table) => `${prefix}route:${db}:${table}`,
    lock: (program) => `${prefix}lock:${program}`,
  };
}
