// How the CLI prints: aligned tables and key/value blocks for people, JSON for automation.
// Pure functions of their input, so they are unit-tested without a terminal.

export interface Column<Row> {
  header: string;
  value(row: Row): unknown;
}

/** One cell as text: absent values are "-", dates and timestamps are UTC to the second. */
export function cell(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  if (value instanceof Date) return formatTime(value.getTime());
  if (Array.isArray(value)) return value.length === 0 ? "-" : value.map(cell).join(",");
  if (typeof value === "object") return JSON.stringify(value);
  // Control characters would let a server-chosen value rewrite the terminal.
  return [...String(value)].map((ch) => (isControl(ch) ? " " : ch)).join("");
}

function isControl(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

/** `2026-01-15 12:00:03Z`: sortable, unambiguous, and narrow enough for a table. */
export function formatTime(value: number | string | undefined | null): string {
  if (value === undefined || value === null || value === "") return "-";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** Columns padded to their widest cell, headers in capitals; the last column is not padded. */
export function table<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const lines = [columns.map((column) => column.header.toUpperCase())];
  for (const row of rows) lines.push(columns.map((column) => cell(column.value(row))));
  const widths = columns.map((_, i) => Math.max(...lines.map((line) => line[i]!.length)));
  return lines
    .map((line) =>
      line
        .map((text, i) => (i === line.length - 1 ? text : text.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `key: value` lines, keys aligned. */
export function details(entries: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(0, ...entries.map(([key]) => key.length + 1));
  return entries.map(([key, value]) => `${`${key}:`.padEnd(width)} ${cell(value)}`).join("\n");
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** Text under a heading, or a placeholder line when a list is empty. */
export function listOrEmpty<Row>(
  rows: readonly Row[],
  columns: readonly Column<Row>[],
  empty: string,
): string {
  return rows.length === 0 ? empty : table(rows, columns);
}
