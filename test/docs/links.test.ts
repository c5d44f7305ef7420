import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/config-kinds.js';

// Every relative link and image in the docs a newcomer reads points at a file that exists (and,
// with #anchor into a Markdown file, at one of its headings).
const pages = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(PROJECT_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
const anchor = (heading: string) =>
  heading.trim().toLowerCase().replace(/[`*_]/g, '').replace(/[^\p{L}\p{N} -]/gu, '').replace(/ /g, '-');
const anchorsOf = (file: string) =>
  new Set([...readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => anchor(m[1]!)));

/** The links of a page, outside code blocks and inline code: [text](target) and ![alt](target). */
export function linksOf(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

describe('the docs', () => {
  it('find every link in a page', () => {
    expect(linksOf('see [a](b.md#c), ![x](images/y.svg "t") and `[no](z)`\n```\n[no](w)\n```')).toEqual(['b.md#c', 'images/y.svg']);
    expect(anchor('When one etcd member (or host) is cut off')).toBe('when-one-etcd-member-or-host-is-cut-off');
  });

  it('link only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const page of pages) {
      const file = join(PROJECT_ROOT, page);
      for (const link of linksOf(readFileSync(file, 'utf8'))) {
        if (/^[a-z]+:/i.test(link)) continue; // http(s):, mailto:
        const [path, hash] = link.split('#') as [string, string | undefined];
        const target = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
        if (!existsSync(target)) broken.push(`${page}: ${link} (no ${relative(PROJECT_ROOT, target)})`);
        else if (hash && target.endsWith('.md') && !anchorsOf(target).has(hash)) broken.push(`${page}: ${link} (no heading #${hash})`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the bench results', () => {
  it('each have their picture, shown in bench/README.md', () => {
    const dir = join(PROJECT_ROOT, 'bench', 'results');
    const readme = readFileSync(join(PROJECT_ROOT, 'bench', 'README.md'), 'utf8');
    const results = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(results.filter((r) => !existsSync(join(dir, `${r}.svg`)) || !linksOf(readme).includes(`results/${r}.svg`))).toEqual([]);
  });
});
