// Applies D1 migrations the way `wrangler d1 migrations apply --local` does, through a D1 binding.
//
// Same files (`migrations_dir`, default pattern `*.sql`, wrangler's numeric-prefix order), same
// tracking table (`d1_migrations` unless `migrations_table` says otherwise, created with
// wrangler's exact DDL), same unit of work (one batch: the file's statements plus the INSERT that
// records it, so a failing migration leaves no trace). Either tool can run after the other.

import { globSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { unstable_splitSqlQuery } from "wrangler";

/** The slice of a D1 binding this needs (Miniflare's `getD1Database()` returns one). */
export interface D1Like {
  prepare(query: string): D1StatementLike;
  batch(statements: D1StatementLike[]): Promise<unknown>;
}
export interface D1StatementLike {
  bind(...values: unknown[]): D1StatementLike;
  run(): Promise<unknown>;
  all<T = Record<string, unknown>>(): Promise<{ results: T[] }>;
}

export interface D1MigrationSource {
  /** Absolute path of `migrations_dir`. */
  dir: string;
  /** `migrations_pattern` made relative to `dir`; defaults to `*.sql`. */
  dirRelativePattern?: string;
  /** `migrations_table`; defaults to `d1_migrations`. */
  table?: string;
}

const DEFAULT_TABLE = "d1_migrations";

/** Migration names (paths relative to the migrations dir, `/`-separated) in wrangler's order. */
export function listMigrations(dir: string, dirRelativePattern = "*.sql"): string[] {
  let names: string[];
  if (dirRelativePattern === "*.sql") {
    try {
      names = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isFile() && e.name.endsWith(".sql") && !e.name.startsWith("."))
        .map((e) => e.name);
    } catch {
      return []; // no migrations folder yet: nothing to apply
    }
  } else {
    names = globSync(dirRelativePattern, { cwd: dir }).map((n) => n.split(path.sep).join("/"));
  }
  return names.sort(compareMigrationPaths);
}

export interface AppliedMigrations {
  applied: string[];
  total: number;
}

export async function applyD1Migrations(
  db: D1Like,
  config: D1MigrationSource,
): Promise<AppliedMigrations> {
  const table = escapeIdentifier(config.table ?? DEFAULT_TABLE);
  // Byte-for-byte wrangler's DDL (src/d1/migrations/helpers.ts), so both see one table.
  await db
    .prepare(
      `CREATE TABLE IF NOT EXISTS ${table}(
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		name       TEXT UNIQUE,
		applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);`,
    )
    .run();
  const done = new Set(
    (await db.prepare(`SELECT name FROM ${table} ORDER BY id`).all<{ name: string }>()).results.map(
      (row) => row.name,
    ),
  );
  const all = listMigrations(config.dir, config.dirRelativePattern);
  const applied: string[] = [];
  for (const name of all) {
    if (done.has(name)) continue;
    const sql = readFileSync(path.join(config.dir, ...name.split("/")), "utf8");
    const statements = unstable_splitSqlQuery(
      `${sql}\nINSERT INTO ${table} (name)\nvalues ('${name.replace(/'/g, "''")}');`,
    );
    try {
      await db.batch(statements.map((statement) => db.prepare(statement)));
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause ?? error;
      throw new Error(`D1 migration ${name} failed: ${(cause as Error).message ?? cause}`);
    }
    applied.push(name);
  }
  return { applied, total: all.length };
}

function escapeIdentifier(id: string): string {
  return `"${id.replace(/"/g, '""')}"`;
}

// wrangler's compareMigrationPaths: by leading number of each segment, then by name.
function compareMigrationPaths(a: string, b: string): number {
  const as = a.split("/");
  const bs = b.split("/");
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const cmp = compareSegments(as[i]!, bs[i]!);
    if (cmp !== 0) return cmp;
  }
  return as.length - bs.length;
}

function compareSegments(a: string, b: string): number {
  const an = Number.parseInt(a.split("_")[0]!, 10);
  const bn = Number.parseInt(b.split("_")[0]!, 10);
  if (an !== bn) {
    if (Number.isFinite(an) && Number.isFinite(bn)) return an - bn;
    if (Number.isFinite(an)) return -1;
    if (Number.isFinite(bn)) return 1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}
