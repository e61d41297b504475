// A minimal, versioned schema migrator for Durable Object SQLite: each entry runs once, in order,
// inside blockConcurrencyWhile at construction (the partyserver habit).

export function migrate(sql: SqlStorage, migrations: readonly string[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _schema_version (version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema_version").toArray()[0];
  let version = row?.version ?? 0;
  if (!row) sql.exec("INSERT INTO _schema_version (version) VALUES (0)");
  for (; version < migrations.length; version++) {
    sql.exec(migrations[version]!);
    sql.exec("UPDATE _schema_version SET version = ?", version + 1);
  }
}

/** SQLite rows hold at most 2 MB in a Durable Object; larger byte strings are split. */
export const SQL_CHUNK_BYTES = 1024 * 1024;

export function splitChunks(bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.byteLength; at += SQL_CHUNK_BYTES) {
    chunks.push(bytes.subarray(at, Math.min(at + SQL_CHUNK_BYTES, bytes.byteLength)));
  }
  return chunks;
}

export function joinChunks(chunks: ArrayBuffer[], totalLength?: number): Uint8Array {
  const length = totalLength ?? chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(new Uint8Array(chunk), at);
    at += chunk.byteLength;
  }
  return out;
}
