import type Database from 'better-sqlite3';
import { TIMED_TABLES, type TimedTable } from './schema.js';
import type { RetentionResult } from './types.js';

const DAY_MS = 86_400_000;

export interface RetentionLimits {
  /** Rows older than this are deleted. */
  maxAgeDays?: number;
  /** Live data (pages in use, not the free list) is kept under this. */
  maxBytes?: number;
  /** Rows deleted per statement: small enough that no single delete holds the file long. */
  chunkRows?: number;
}

/** Bytes of pages in use: what the file would shrink to once free pages are vacuumed away. */
export function usedBytes(db: Database.Database): number {
  const pageCount = db.pragma('page_count', { simple: true }) as number;
  const freePages = db.pragma('freelist_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  return (pageCount - freePages) * pageSize;
}

function deleteOldest(db: Database.Database, table: TimedTable, chunkRows: number, until?: number): number {
  // Through the ts index, oldest first; the id tiebreak keeps chunks deterministic.
  const sql =
    until === undefined
      ? `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} ORDER BY ts, id LIMIT ?)`
      : `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE ts < ? ORDER BY ts, id LIMIT ?)`;
  const statement = db.prepare(sql);
  return (until === undefined ? statement.run(chunkRows) : statement.run(until, chunkRows)).changes;
}

/**
 * The table holding the oldest row of all, and the oldest time in any other
 * table: a chunk from it stops there, so that a small table's few recent
 * rows are not swept away with its old ones. Undefined when all are empty.
 */
function oldestTable(db: Database.Database): { table: TimedTable; until: number | undefined } | undefined {
  const oldest = TIMED_TABLES.map((table) => ({ table, ts: (db.prepare(`SELECT min(ts) AS ts FROM ${table}`).get() as { ts: number | null }).ts }))
    .filter((entry): entry is { table: TimedTable; ts: number } => entry.ts !== null)
    .sort((a, b) => a.ts - b.ts);
  if (oldest.length === 0) return undefined;
  // + 1: rows at the same time as the next table's oldest go too, so each round makes progress.
  return { table: oldest[0]!.table, until: oldest[1] === undefined ? undefined : oldest[1].ts + 1 };
}

/**
 * Deletes rows past the age bound, then the oldest rows of any table until the
 * live size is under the byte bound, then hands the freed pages back to the
 * file system (auto_vacuum = INCREMENTAL is set when the file is created).
 * Meant to run every few minutes, never per write.
 */
export function applyRetention(db: Database.Database, limits: RetentionLimits, now = Date.now()): RetentionResult {
  const chunkRows = Math.max(1, Math.trunc(limits.chunkRows ?? 500));
  let deletedByAge = 0;
  let deletedBySize = 0;

  if (limits.maxAgeDays !== undefined && limits.maxAgeDays > 0) {
    const before = Math.trunc(now - limits.maxAgeDays * DAY_MS);
    for (const table of TIMED_TABLES) {
      let deleted: number;
      do {
        deleted = deleteOldest(db, table, chunkRows, before);
        deletedByAge += deleted;
      } while (deleted === chunkRows);
    }
  }

  if (limits.maxBytes !== undefined && limits.maxBytes > 0) {
    while (usedBytes(db) > limits.maxBytes) {
      const oldest = oldestTable(db);
      if (oldest === undefined) break;
      deletedBySize += deleteOldest(db, oldest.table, chunkRows, oldest.until);
    }
  }

  if (deletedByAge + deletedBySize > 0) {
    // Moves free pages to the end and truncates them off; in WAL mode the file
    // shrinks when the checkpoint copies that back. PASSIVE never waits for a
    // reader (a `logs` command), so it cannot stall the agent.
    db.pragma('incremental_vacuum');
    db.pragma('wal_checkpoint(PASSIVE)');
  }
  return { deletedByAge, deletedBySize, usedBytes: usedBytes(db) };
}
