// Durations as people and image labels write them: a whole number and one unit, `30s`, `15m`,
// `12h`, `2d`, `3w` (Quay's `quay.expires-after` format), parsed to and shown from milliseconds.

const UNIT_MS = {
  w: 7 * 24 * 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
  h: 60 * 60 * 1000,
  m: 60 * 1000,
  s: 1000,
} as const;

const DURATION = /^(\d{1,9})([smhdw])$/;

/** Milliseconds of `text` (`12h`, `2d`, `3w`, also `s` and `m`), or undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

/** The shortest exact form of a duration (`1209600000` → `2w`); whole seconds assumed. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  for (const [unit, size] of Object.entries(UNIT_MS)) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
