/** Rows as an aligned text table, the first row the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** `db.table` into its parts; null when it is not that shape. */
export function tableRef(arg: string | undefined): { db: string; table: string } | null {
  const m = /^([a-z0-9][a-z0-9_]{0,47})\.([a-z0-9][a-z0-9_]{0,47})$/.exec(arg ?? '');
  return m ? { db: m[1]!, table: m[2]! } : null;
}
