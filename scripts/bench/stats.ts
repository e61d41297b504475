// Median and spread of repeated measurements, and the plain-text table the benchmark prints.

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Half the range as a fraction of the median: ±spread. */
  spread: number;
  values: number[];
}

export function summarize(values: number[]): Summary | undefined {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return undefined;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const min = sorted[0]!;
  const max = sorted.at(-1)!;
  return { median, min, max, spread: median === 0 ? 0 : (max - min) / 2 / median, values };
}

/** A number with about three significant digits, no exponent. */
export function fmt(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "-";
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 10) return value.toFixed(2);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

export function fmtSummary(s: Summary | undefined): string {
  if (!s) return "-";
  return s.values.length > 1 ? `${fmt(s.median)} ±${(s.spread * 100).toFixed(0)}%` : fmt(s.median);
}

/** Left-aligns the first column, right-aligns the rest; a row of one cell is a section title. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r.length > 1).map((r) => (r[i] ?? "").length)),
  );
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map((r) => (r.length === 1 ? r[0]! : line(r)))].join("\n");
}
