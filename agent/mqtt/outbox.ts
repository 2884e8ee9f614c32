import Database from 'better-sqlite3';

export interface OutboxItem {
  requestId: string;
  frame: Buffer;
  queuedAt: number;
}

/**
 * Offload requests not yet answered, on disk, so that requests made while the
 * broker was away survive an agent restart too. Bounded by count; the link
 * removes an item once it is answered or expired.
 */
export class Outbox {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS outbox (request_id TEXT PRIMARY KEY, frame BLOB NOT NULL, queued_at INTEGER NOT NULL)');
    this.insert = this.db.prepare('INSERT OR REPLACE INTO outbox (request_id, frame, queued_at) VALUES (?, ?, ?)');
    this.remove = this.db.prepare('DELETE FROM outbox WHERE request_id = ?');
  }

  add(item: OutboxItem): void {
    this.insert.run(item.requestId, item.frame, item.queuedAt);
  }

  delete(requestId: string): void {
    this.remove.run(requestId);
  }

  /** Oldest first, as they were queued. */
  all(): OutboxItem[] {
    return (this.db.prepare('SELECT request_id, frame, queued_at FROM outbox ORDER BY queued_at, rowid').all() as { request_id: string; frame: Buffer; queued_at: number }[]).map(
      (row) => ({ requestId: row.request_id, frame: row.frame, queuedAt: row.queued_at }),
    );
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
