// Cursors of the management API's lists (`?limit=&cursor=` → `next_cursor`): the sort key of the
// last row returned, base64url-encoded JSON. Opaque to clients; checked when decoded, because a
// cursor arrives from outside and is spliced into a query as values.
import { invalid } from "./errors.ts";

export interface PageRequest {
  limit: number;
  /** The sort key of the last row of the previous page, null for the first page. */
  after: string[] | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 100;

export function encodeCursor(key: string[]): string {
  const bytes = new TextEncoder().encode(JSON.stringify(key));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decodes a cursor made by `encodeCursor` with `arity` key parts; anything else is a 400. */
export function decodeCursor(raw: string, arity: number): string[] {
  const bad = () => invalid("cursor is not one this API returned");
  if (raw.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad();
  let parsed: unknown;
  try {
    const binary = atob(raw.replaceAll("-", "+").replaceAll("_", "/"));
    parsed = JSON.parse(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
        Uint8Array.from(binary, (ch) => ch.charCodeAt(0)),
      ),
    );
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== arity ||
    !parsed.every((part) => typeof part === "string")
  ) {
    throw bad();
  }
  return parsed;
}

/** Parses `limit` and `cursor` query values. */
export function pageRequest(
  limit: string | undefined,
  cursor: string | undefined,
  arity: number,
): PageRequest {
  let size = DEFAULT_PAGE_SIZE;
  if (limit !== undefined) {
    if (!/^\d{1,6}$/.test(limit) || Number(limit) < 1) {
      throw invalid(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    }
    size = Math.min(Number(limit), MAX_PAGE_SIZE);
  }
  return { limit: size, after: cursor ? decodeCursor(cursor, arity) : null };
}

/** Cuts the `limit + 1` rows a query fetched into a page and the cursor of the next one. */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  keyOf: (row: Row) => string[],
  view: (row: Row) => Item,
): Page<Item> {
  const shown = rows.slice(0, limit);
  const last = shown.at(-1);
  return {
    items: shown.map(view),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}
