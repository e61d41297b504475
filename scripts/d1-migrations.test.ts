// d1-migrations.ts and `wrangler d1 migrations apply --local` must agree on one state folder.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, describe, expect, it } from "vitest";
import { applyD1Migrations, listMigrations } from "./d1-migrations.ts";

const project = mkdtempSync(path.join(os.tmpdir(), "d1-migrations-"));
const migrations = path.join(project, "migrations");
const persistTo = path.join(project, "state");
afterAll(() => rmSync(project, { recursive: true, force: true }));

mkdirSync(migrations);
writeFileSync(
  path.join(project, "wrangler.toml"),
  [
    'name = "d1-migrations-test"',
    'main = "index.js"',
    'compatibility_date = "2026-08-01"',
    "[[d1_databases]]",
    'binding = "DB"',
    'database_name = "test"',
    'migrations_dir = "migrations"',
  ].join("\n"),
);
writeFileSync(path.join(project, "index.js"), "export default { fetch: () => new Response() };");

const wranglerBin = path.resolve(import.meta.dirname, "../node_modules/wrangler/bin/wrangler.js");
async function wrangler(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [wranglerBin, ...args], {
    cwd: project,
    env: { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" },
  });
  return stdout;
}

// The D1 binding exactly as the runner gets it: the id wrangler uses locally is the binding name
// when there is no database_id, under `<persistTo>/v3/d1`.
async function withDb<T>(fn: (db: D1Database) => Promise<T>): Promise<T> {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: "export default {}",
      resourcePersistencePath: path.join(persistTo, "v3"),
      d1Databases: { DB: "DB" },
    }),
  );
  try {
    return await fn((await mf.getD1Database("DB")) as unknown as D1Database);
  } finally {
    await mf.dispose();
  }
}
type D1Database = Parameters<typeof applyD1Migrations>[0];

describe("applyD1Migrations", () => {
  it("orders by leading number, as wrangler does", () => {
    for (const name of ["10_ten.sql", "2_two.sql", "0001_one.sql", "notes.txt"]) {
      writeFileSync(path.join(migrations, name), "");
    }
    expect(listMigrations(migrations)).toEqual(["0001_one.sql", "2_two.sql", "10_ten.sql"]);
    for (const name of ["10_ten.sql", "2_two.sql", "0001_one.sql", "notes.txt"]) {
      rmSync(path.join(migrations, name));
    }
    expect(listMigrations(path.join(project, "missing"))).toEqual([]);
  });

  it("applies pending files once, and wrangler then has nothing to apply", async () => {
    writeFileSync(
      path.join(migrations, "0000_init.sql"),
      "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n-- a comment; with a semicolon\n" +
        "INSERT INTO users (name) VALUES ('it''s; me');",
    );
    writeFileSync(
      path.join(migrations, "0001_more.sql"),
      "ALTER TABLE users ADD COLUMN email TEXT;",
    );
    const first = await withDb((db) => applyD1Migrations(db, { dir: migrations }));
    expect(first).toEqual({ applied: ["0000_init.sql", "0001_more.sql"], total: 2 });
    const again = await withDb((db) => applyD1Migrations(db, { dir: migrations }));
    expect(again.applied).toEqual([]);

    const listed = await wrangler(
      "d1",
      "migrations",
      "list",
      "DB",
      "--local",
      "--persist-to",
      persistTo,
    );
    expect(listed).toContain("No migrations to apply");
  });

  it("skips what wrangler applied, and keeps a failing migration out entirely", async () => {
    writeFileSync(
      path.join(migrations, "0002_by_wrangler.sql"),
      "CREATE TABLE teams (id INTEGER);",
    );
    await wrangler("d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo);
    writeFileSync(
      path.join(migrations, "0003_broken.sql"),
      "CREATE TABLE half (id INTEGER);\nINSERT INTO no_such_table VALUES (1);",
    );
    await expect(withDb((db) => applyD1Migrations(db, { dir: migrations }))).rejects.toThrow(
      /0003_broken\.sql/,
    );
    const state = await withDb(async (db) => {
      const names = await db
        .prepare("SELECT name FROM d1_migrations ORDER BY id")
        .all<{ name: string }>();
      const half = await db
        .prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half'")
        .all<{ n: number }>();
      return { names: names.results.map((r) => r.name), half: half.results[0]!.n };
    });
    expect(state.names).toEqual(["0000_init.sql", "0001_more.sql", "0002_by_wrangler.sql"]);
    expect(state.half).toBe(0);
  });
});
