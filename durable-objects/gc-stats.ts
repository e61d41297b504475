// SQL that counts the rows it reads and writes: how garbage collection's cost is explained and
// measured (gcStats() of RepositoryObject and BlobRefObject, schema/rpc.ts).

export class MeteredSql {
  rowsRead = 0;
  rowsWritten = 0;

  constructor(private readonly sql: SqlStorage) {}

  /** A query's rows, counted. */
  all<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): T[] {
    const cursor = this.sql.exec<T>(query, ...bindings);
    const rows = cursor.toArray();
    this.count(cursor);
    return rows;
  }

  /** A statement; returns the rows it wrote. */
  run(query: string, ...bindings: unknown[]): number {
    const cursor = this.sql.exec(query, ...bindings);
    cursor.toArray();
    this.count(cursor);
    return cursor.rowsWritten;
  }

  exists(query: string, ...bindings: unknown[]): boolean {
    return this.all(query, ...bindings).length > 0;
  }

  private count(cursor: SqlStorageCursor<Record<string, SqlStorageValue>>): void {
    this.rowsRead += cursor.rowsRead;
    this.rowsWritten += cursor.rowsWritten;
  }
}
