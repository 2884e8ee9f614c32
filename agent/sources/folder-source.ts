import fs from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../../common/log/logger.js';
import type { Frame, FrameSource } from './frame-source.js';

const IMAGE = /\.(jpe?g|png|webp|bmp)$/i;

/**
 * Watches a folder for new images (polling: fs.watch misses events on network
 * and some overlay filesystems). Files are taken oldest first; a file is taken
 * once it has stopped growing. Handled files move to `doneDir` when one is set.
 */
export class FolderSource implements FrameSource {
  readonly name: string;
  /** Files dropped in a folder are unrelated images, not frames of one view. */
  readonly continuousScene = false;
  private readonly seen = new Set<string>();
  private readonly sizes = new Map<string, number>();
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly dir: string,
    private readonly options: { pollMs: number; doneDir?: string },
  ) {
    this.name = `folder:${dir}`;
  }

  private async candidates(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (error) {
      logger.warn(`watched folder ${this.dir} cannot be read (${(error as Error).message}); retrying`);
      return [];
    }
    const files: { file: string; mtime: number }[] = [];
    for (const name of names.filter((n) => IMAGE.test(n))) {
      const file = path.join(this.dir, name);
      if (this.seen.has(file)) continue;
      try {
        const stat = await fs.stat(file);
        // Still being written if its size changed since the last poll.
        const previous = this.sizes.get(file);
        this.sizes.set(file, stat.size);
        if (previous === stat.size && stat.size > 0) files.push({ file, mtime: stat.mtimeMs });
      } catch {
        // Gone between readdir and stat.
      }
    }
    return files.sort((a, b) => a.mtime - b.mtime || a.file.localeCompare(b.file)).map((f) => f.file);
  }

  async next(): Promise<Frame | undefined> {
    while (!this.closed) {
      for (const file of await this.candidates()) {
        this.seen.add(file);
        this.sizes.delete(file);
        let bytes: Buffer;
        try {
          bytes = await fs.readFile(file);
        } catch (error) {
          logger.warn(`cannot read ${file} from the watched folder: ${(error as Error).message}; skipped`);
          continue;
        }
        if (this.options.doneDir) await this.moveDone(file);
        return { id: path.basename(file), origin: file, bytes, capturedAt: Date.now() };
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return undefined;
  }

  private async moveDone(file: string): Promise<void> {
    try {
      await fs.mkdir(this.options.doneDir!, { recursive: true });
      await fs.rename(file, path.join(this.options.doneDir!, path.basename(file)));
    } catch (error) {
      logger.warn(`cannot move ${file} to ${this.options.doneDir}: ${(error as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
  }
}
