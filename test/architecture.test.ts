import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The tree's floors are the import graph's floors (docs/architecture.md): every import points
 * down or stays on its floor, and no files import each other in a circle.
 */
const FLOORS: Array<[number, string[]]> = [
  [0, ['errors.ts', 'config.ts', 'config-kinds.ts', 'config-load.ts', 'periodic.ts', 'flag.ts']],
  [1, ['resources/', 'templates.ts']],
  [2, ['supervisor/', 'redis/', 'flume/', 'store/', 'cluster/']],
  [3, ['fleet/', 'auth/', 'audit/', 'tokens/', 'traces/', 'tenants/']],
  [4, ['agents/']],
  [5, ['incidents/', 'operations/', 'recovery/', 'gateway/', 'placement/', 'adopt/']],
  [6, ['http/']],
  [7, ['routes/', 'cli/']],
  [8, ['app.ts']],
  [9, ['server.ts']],
];
const SRC = resolve(new URL('../src', import.meta.url).pathname);
const floorOf = (file: string): number => {
  const rel = relative(SRC, file);
  const hit = FLOORS.find(([, places]) => places.some((p) => (p.endsWith('/') ? rel.startsWith(p) : rel === p)));
  if (!hit) throw new Error(`src/${rel} is on no floor: add it to FLOORS (and to docs/architecture.md)`);
  return hit[0];
};
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
const importsOf = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));

describe('the tree', () => {
  const all = files(SRC);
  const graph = new Map(all.map((f) => [f, importsOf(f)]));

  it('puts every file on a floor, and every import points down or stays on its floor', () => {
    const upward = [...graph].flatMap(([f, deps]) =>
      deps.filter((d) => floorOf(d) > floorOf(f)).map((d) => `src/${relative(SRC, f)} (floor ${floorOf(f)}) imports src/${relative(SRC, d)} (floor ${floorOf(d)})`),
    );
    expect(upward).toEqual([]);
  });

  it('has no circle of imports', () => {
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') return void circles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' -> '));
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of all) visit(f, []);
    expect(circles).toEqual([]);
  });

  // Dependencies are passed in at construction (a late-bound seam is bound in app.ts, the one
  // place that builds): no file swaps a function into an object built elsewhere, adds callbacks
  // to its lists, or leaves a function field open for that.
  const FN = String.raw`(?:async\s*)?(?:\([^()]*\)|[A-Za-z_$][\w$]*)\s*(?::\s*[^=]+)?=>`;
  const OTHER = String.raw`\b(?!this\b)[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+`;
  const patches = (text: string): string[] => [
    ...text.matchAll(new RegExp(`^\\s*${OTHER}\\s*=\\s*${FN}`, 'gm')),
    ...text.matchAll(new RegExp(`${OTHER}\\.push\\(\\s*${FN}`, 'g')),
  ].map((m) => m[0].trim());
  const openFunctionFields = (text: string): string[] =>
    [...text.matchAll(new RegExp(`^  (?!private |protected |readonly |static |#|get |set )[A-Za-z_$][\\w$]*\\s*(?::\\s*\\([^)\\n]*\\)\\s*=>[^;=\\n]*)?=\\s*${FN}|^  (?!private |protected |readonly |static )[A-Za-z_$][\\w$]*\\s*:\\s*\\([^)\\n]*\\)\\s*=>[^;\\n]*;$`, 'gm'))]
      .map((m) => m[0].trim());

  it('builds objects whole: nothing patches a function into another object or its lists', () => {
    const found = all.flatMap((f) => patches(readFileSync(f, 'utf8')).map((p) => `src/${relative(SRC, f)}: ${p}`));
    expect(found).toEqual([]);
  });

  it('leaves no public function field another file could replace', () => {
    const found = all.flatMap((f) => openFunctionFields(readFileSync(f, 'utf8')).map((p) => `src/${relative(SRC, f)}: ${p}`));
    expect(found).toEqual([]);
  });

  it('would see the patches it forbids', () => {
    expect(patches('  parts.routes.elsewhere = (ref) => false;')).toHaveLength(1);
    expect(patches('  cluster.onJoin.push(async () => {')).toHaveLength(1);
    expect(patches('  parts.reconciler.foreign.push(() => remote.foreign());')).toHaveLength(1);
    expect(patches('  this.handlers.push((e) => e);\n  rows.push(() => 1);\n  this.x = () => 1;')).toEqual([]);
    expect(openFunctionFields('  elsewhere: (ref: TableRef) => boolean = () => false;')).toHaveLength(1);
    expect(openFunctionFields('  onTick = () => undefined;')).toHaveLength(1);
    expect(openFunctionFields('  private readonly f = () => 1;\n  readonly g: () => void;')).toEqual([]);
  });

  // Each noun once: the schema in its home is the definition, everything else imports it.
  const NOUNS: Array<[string, RegExp, string]> = [
    ['health', /'healthy'\s*,\s*'starting'|'healthy'\s*\|/, 'resources/agent-status.ts'],
    ['desired', /'running'\s*,\s*'stopped'|'running'\s*\|\s*'stopped'/, 'resources/agent-status.ts'],
    ['queue place', /interface QueuePlace|QueuePlace\s*=\s*z\.infer/, 'resources/agent-status.ts'],
    ['incident severity', /'critical'\s*,\s*'warning'/, 'resources/incident.ts'],
    ['yes/no flag', /'true'\s*,\s*'false'\s*,\s*'1'/, 'flag.ts'],
  ];

  it.each(NOUNS)('defines the %s once', (_noun, shape, home) => {
    const homes = all.filter((f) => shape.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    expect(homes).toEqual([home]);
  });

  it('keeps every file of src/ and of the gateway Lua within 350 lines', () => {
    const lua = resolve(SRC, '..', 'templates', 'gateway', 'lua');
    const luaFiles = [join(lua, 'flume_gateway.lua'), ...readdirSync(join(lua, 'flume_gateway')).map((f) => join(lua, 'flume_gateway', f))];
    const long = [...all, ...luaFiles]
      .map((f) => [relative(resolve(SRC, '..'), f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
      .filter(([, n]) => n > 350);
    expect(long).toEqual([]);
  });
});
