import { Agent, request } from 'node:http';
import { supervisorUnavailable } from '../errors.js';
import {
  PROCESS_STATES,
  SupervisorFaultError,
  settleEach,
  faultName,
  type ProcessInfo,
  type ProcessState,
  type SupervisorDriver,
  type UpdateResult,
} from './driver.js';
import { XmlRpcFault, decodeResponse, encodeCall, type XmlRpcValue } from './xmlrpc-codec.js';

type Struct = Record<string, XmlRpcValue>;
/** Groups added, changed and removed in the files since supervisord last applied them. */
type Diff = [added: string[], changed: string[], removed: string[]];

export function toProcessInfo(s: Struct): ProcessInfo {
  return {
    name: String(s.name),
    state: (PROCESS_STATES as Record<number, ProcessState>)[Number(s.state)] ?? 'UNKNOWN',
    pid: Number(s.pid ?? 0),
    start: Number(s.start ?? 0),
    now: Number(s.now ?? 0),
    exitStatus: Number(s.exitstatus ?? 0),
    spawnErr: String(s.spawnerr ?? ''),
    description: String(s.description ?? ''),
  };
}

/** SupervisorDriver over supervisord's XML-RPC interface on its unix socket (the default). */
export class XmlRpcSupervisorDriver implements SupervisorDriver {
  // Bulk operations stop many groups at once, each call waiting for its process to exit.
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly socketPath: string,
    /** Longest a single call may take: a stop waits up to the program's stopwaitsecs. */
    private readonly timeoutMs = 120_000,
  ) {}

  call(method: string, ...params: XmlRpcValue[]): Promise<XmlRpcValue> {
    return this.callWithin(this.timeoutMs, method, ...params);
  }

  callWithin(timeoutMs: number, method: string, ...params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const body = encodeCall(method, params);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path: '/RPC2',
          method: 'POST',
          agent: this.agent,
          headers: { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(body) },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(supervisorUnavailable(`supervisord: ${e.message}`)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              reject(supervisorUnavailable(`supervisord answered HTTP ${res.statusCode}`));
              return;
            }
            try {
              resolve(decodeResponse(text));
            } catch (e) {
              if (e instanceof XmlRpcFault) reject(new SupervisorFaultError(faultName(e.faultCode), e.faultString));
              else reject(supervisorUnavailable(`supervisord sent an unreadable answer: ${(e as Error).message}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) =>
        reject(supervisorUnavailable(`supervisord is not reachable at ${this.socketPath}: ${e.message}`)),
      );
      req.end(body);
    });
  }

  private async tolerate(fault: string, p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (!(e instanceof SupervisorFaultError && e.fault === fault)) throw e;
    }
  }

  async ping(timeoutMs = 5000): Promise<void> {
    await this.callWithin(timeoutMs, 'supervisor.getState');
  }

  async update(name: string): Promise<UpdateResult> {
    return (await this.stage(name))();
  }

  async stage(name: string): Promise<() => Promise<UpdateResult>> {
    // addProcessGroup takes the group from the last re-read's parse, which a later re-read by
    // another caller keeps (this name's file is the same): the diff stays true until applied.
    const [added, changed, removed] = await this.reread();
    return () => this.apply(name, added, changed, removed);
  }

  async updateMany(names: string[], concurrency: number): Promise<Map<string, UpdateResult | Error>> {
    const [added, changed, removed] = await this.reread();
    return settleEach(names, concurrency, (n) => this.apply(n, added, changed, removed));
  }

  /** The re-read under way, and the one that will follow it, shared by all who asked meanwhile. */
  private rereading: Promise<Diff> | null = null;
  private rereadNext: Promise<Diff> | null = null;

  /**
   * supervisord's reloadConfig: it parses every program file (~1 ms each) and names the groups
   * added, changed and removed since it last applied them. Callers who ask while one is under
   * way share the next one, which begins after it ends, so each caller's answer comes from a
   * re-read that began after it asked (its own file written before is in it), and N creates
   * at once cost about two re-reads rather than N.
   */
  private reread(): Promise<Diff> {
    if (this.rereadNext) return this.rereadNext;
    if (!this.rereading) return this.beginReread();
    this.rereadNext = this.rereading
      .catch(() => undefined)
      .then(() => {
        this.rereadNext = null;
        return this.beginReread();
      });
    return this.rereadNext;
  }

  private beginReread(): Promise<Diff> {
    const p: Promise<Diff> = this.call('supervisor.reloadConfig')
      .then((result) => {
        const [added = [], changed = [], removed = []] = (result as string[][][])[0] ?? [];
        return [added, changed, removed] as Diff;
      })
      .finally(() => {
        if (this.rereading === p) this.rereading = null;
      });
    this.rereading = p;
    return p;
  }

  private async apply(name: string, added: string[], changed: string[], removed: string[]): Promise<UpdateResult> {
    if (added.includes(name)) {
      await this.tolerate('ALREADY_ADDED', this.call('supervisor.addProcessGroup', name));
      return 'added';
    }
    if (changed.includes(name) || removed.includes(name)) {
      await this.tolerate('BAD_NAME', this.call('supervisor.stopProcessGroup', name, true));
      await this.tolerate('BAD_NAME', this.call('supervisor.removeProcessGroup', name));
      if (removed.includes(name)) return 'removed';
      await this.call('supervisor.addProcessGroup', name);
      return 'changed';
    }
    return 'unchanged';
  }

  async start(name: string): Promise<void> {
    await this.tolerate('ALREADY_STARTED', this.call('supervisor.startProcess', name, true));
  }

  async stop(name: string): Promise<void> {
    await this.tolerate('NOT_RUNNING', this.call('supervisor.stopProcess', name, true));
  }

  async info(name: string): Promise<ProcessInfo> {
    return toProcessInfo((await this.call('supervisor.getProcessInfo', name)) as Struct);
  }

  async infoAll(): Promise<ProcessInfo[]> {
    return ((await this.call('supervisor.getAllProcessInfo')) as Struct[]).map(toProcessInfo);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
