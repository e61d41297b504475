// `quota <namespace>`: a namespace's storage usage, hard limit and warning threshold; with
// `--limit` or `--remove` a superuser changes them (GET/PUT/DELETE /namespaces/:ns/quota).
import type { Command } from "./context.ts";
import { UsageError } from "./errors.ts";
import { details } from "./output.ts";

/** What GET /api/v1/namespaces/:ns/quota returns (schema/rpc.ts QuotaView). */
export interface QuotaView {
  usageBytes: number;
  limitBytes: number | null;
  warningPercent: number;
  blobs: number;
}

const UNIT_BYTES: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `500`, `512MiB`, `1.5GB`, `10gib` → bytes (decimal and binary units; whole bytes). */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = UNIT_BYTES[(match?.[2] || "b").toLowerCase()];
  if (!match || unit === undefined) {
    throw new UsageError(`"${text}" is not a size: use bytes or a unit, like 500MiB or 10GB`);
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`"${text}" is too large`);
  return bytes;
}

/** Bytes for people: binary units with one decimal, exact bytes below 1 KiB. */
export function formatSize(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

export function quotaText(namespace: string, quota: QuotaView): string {
  const used =
    quota.limitBytes === null
      ? formatSize(quota.usageBytes)
      : `${formatSize(quota.usageBytes)} of ${formatSize(quota.limitBytes)}` +
        (quota.limitBytes > 0
          ? ` (${Math.floor((quota.usageBytes / quota.limitBytes) * 100)}%)`
          : "");
  return details([
    ["namespace", namespace],
    ["usage", used],
    ["blobs", quota.blobs],
    ["limit", quota.limitBytes === null ? "none" : `${quota.limitBytes} bytes`],
    ["warning at", `${quota.warningPercent}% of the limit`],
  ]);
}

export const quotaCommand: Command = {
  path: ["quota"],
  args: ["namespace"],
  summary: "show a namespace's storage usage and quota (superusers: --limit, --remove)",
  options: {
    limit: {
      type: "string",
      value: "size",
      description: "set the hard limit, e.g. 10GiB (superusers only)",
    },
    "warn-percent": {
      type: "string",
      value: "percent",
      description: "warn at this percent of the limit (1-100; with --limit)",
    },
    remove: { type: "boolean", description: "remove the limit (superusers only)" },
  },
  async run(ctx) {
    const namespace = ctx.arg("namespace");
    const path = `/namespaces/${encodeURIComponent(namespace)}/quota`;
    const limit = ctx.option("limit");
    const warn = ctx.option("warn-percent");
    if (ctx.flag("remove") && (limit !== undefined || warn !== undefined)) {
      throw new UsageError("--remove takes no --limit or --warn-percent");
    }
    if (warn !== undefined && limit === undefined) {
      throw new UsageError("--warn-percent goes with --limit");
    }
    const client = await ctx.client();
    if (ctx.flag("remove")) await client.delete(path);
    else if (limit !== undefined) {
      const warningPercent = warn === undefined ? undefined : percent(warn);
      await client.put(path, {
        limitBytes: parseSize(limit),
        ...(warningPercent !== undefined ? { warningPercent } : {}),
      });
    }
    const quota = await client.get<QuotaView>(path);
    ctx.print(quota, (q) => quotaText(namespace, q));
  },
};

function percent(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 100) {
    throw new UsageError("--warn-percent must be a whole number from 1 to 100");
  }
  return value;
}
