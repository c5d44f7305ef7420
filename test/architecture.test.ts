import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The tree's floors are the import graph's floors (docs/architecture.md): every import points
 * down or stays on its floor, and no files import each other in a circle.
 */
const FLOORS: Array<[number, string[]]> = [
  [0, ['errors.ts', 'config.ts', 'periodic.ts']],
  [1, ['resources/', 'templates.ts']],
  [2, ['supervisor/', 'redis/', 'flume/', 'store/', 'cluster/']],
  [3, ['fleet/', 'auth/', 'audit/', 'tokens/']],
  [4, ['agents/']],
  [5, ['incidents/', 'operations/', 'recovery/', 'gateway/', 'placement/']],
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
});
