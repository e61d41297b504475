// The grace period of garbage collection, from GC_GRACE_SECONDS (wrangler.toml [vars]).

/** One hour unless GC_GRACE_SECONDS says otherwise. */
export const DEFAULT_GC_GRACE_SECONDS = 3600;

/**
 * The grace period, in ms, during which something recently pushed, linked or referenced is kept
 * even though nothing keeps it: a manifest pushed untagged (its index or tag comes next), a blob
 * link no manifest references yet (its manifest comes next), a blob whose count fell to zero.
 */
export function gcGraceMs(env: { GC_GRACE_SECONDS?: string }): number {
  const raw = env.GC_GRACE_SECONDS;
  const seconds = raw === undefined || raw === "" ? DEFAULT_GC_GRACE_SECONDS : Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`GC_GRACE_SECONDS must be a number of seconds ≥ 0, not ${JSON.stringify(raw)}`);
  }
  return seconds * 1000;
}
