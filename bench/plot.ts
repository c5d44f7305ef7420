/**
 * Draws every bench/results/<name>.json as bench/results/<name>.svg: one horizontal bar per row,
 * the baseline as a dashed line with its value, each bar labelled with its value and its ratio
 * to the baseline. Run: npm run bench:plot (the benches write the JSON; docs link the SVGs).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import type { Result } from './lib.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1));

export function plot(r: Result): string {
  const labelW = 330;
  const barW = 420;
  const rowH = 28;
  const top = 48;
  const width = labelW + barW + 150;
  const height = top + r.rows.length * rowH + 46;
  const max = Math.max(r.baseline.value, ...r.rows.map((x) => x.value)) * 1.05;
  const x = (v: number) => labelW + (v / max) * barW;
  const bars = r.rows.map((row, i) => {
    const y = top + i * rowH;
    return [
      `<text x="${labelW - 8}" y="${y + 17}" text-anchor="end">${esc(row.label)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${(x(row.value) - labelW).toFixed(1)}" height="${rowH - 10}" fill="#4a7fb5"/>`,
      `<text x="${(x(row.value) + 6).toFixed(1)}" y="${y + 17}">${num(row.value)} ${esc(r.unit)} (${(row.value / r.baseline.value).toFixed(2)}x)</text>`,
    ].join('');
  });
  const bx = x(r.baseline.value).toFixed(1);
  const bottom = top + r.rows.length * rowH;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${esc(r.title)}</text>`,
    ...bars,
    `<line x1="${bx}" y1="${top - 6}" x2="${bx}" y2="${bottom + 4}" stroke="#c0392b" stroke-dasharray="5,4" stroke-width="2"/>`,
    `<text x="${bx}" y="${bottom + 20}" text-anchor="middle" fill="#c0392b">${esc(r.baseline.label)}: ${num(r.baseline.value)} ${esc(r.unit)}</text>`,
    `<text x="10" y="${height - 8}" font-size="11" fill="#666">${esc(`${r.command} · ${r.machine} · ${r.at.slice(0, 10)}`)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

const dir = join(PROJECT_ROOT, 'bench', 'results');
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
  const svg = plot(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Result);
  writeFileSync(join(dir, f.replace(/\.json$/, '.svg')), svg);
  console.log(`bench/results/${f.replace(/\.json$/, '.svg')}`);
}
