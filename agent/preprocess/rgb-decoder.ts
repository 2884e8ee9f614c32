import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { encodedImageToRgb, type RgbTarget } from './image-to-rgb.js';

/** An image file read and decoded to the model input; `pixels` is absent when it did not decode (`error` says why). */
export interface DecodedFile {
  bytes: Buffer;
  pixels?: Buffer;
  error?: string;
}

interface Job {
  file: string;
  resolve: (decoded: DecodedFile) => void;
  reject: (error: Error) => void;
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Reads image files and decodes them to the model input on a thread of its own. sharp does much
 * of a small image's work on the calling thread (building its pipeline costs more than decoding a
 * 32x32 JPEG), so a source that decodes ahead here leaves the loop's thread to the model.
 * The same function gives the same pixels as `encodedImageToRgb`; without the thread it works in place.
 */
export class RgbDecoder {
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;

  constructor(private readonly target: RgbTarget) {
    try {
      this.worker = new Worker(new URL('./decode-worker.mjs', import.meta.url));
    } catch {
      return;
    }
    this.worker.unref();
    this.worker.on('message', (message: { id: number; bytes?: Uint8Array; pixels?: Uint8Array; error?: string; readError?: string }) => {
      const job = this.jobs.get(message.id);
      if (!job) return;
      this.jobs.delete(message.id);
      // A file that cannot be read is read again here, so that the error is the file system's own.
      if (message.readError !== undefined || !message.bytes) this.inPlace(job);
      else job.resolve({ bytes: asBuffer(message.bytes), ...(message.pixels ? { pixels: asBuffer(message.pixels) } : { error: message.error }) });
    });
    // A thread that dies takes nothing with it: what it held is done here.
    this.worker.on('error', () => this.fallBack());
    this.worker.on('exit', () => this.fallBack());
  }

  private fallBack(): void {
    this.worker = undefined;
    for (const [id, job] of this.jobs) {
      this.jobs.delete(id);
      this.inPlace(job);
    }
  }

  private inPlace(job: Job): void {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(job.file);
    } catch (error) {
      job.reject(error as Error);
      return;
    }
    encodedImageToRgb(bytes, this.target, job.file).then(
      (pixels) => job.resolve({ bytes, pixels }),
      (error: Error) => job.resolve({ bytes, error: error.message }),
    );
  }

  /** Reads and decodes `file`; rejects only when it cannot be read. */
  decodeFile(file: string): Promise<DecodedFile> {
    return new Promise((resolve, reject) => {
      const job = { file, resolve, reject };
      if (!this.worker) return this.inPlace(job);
      const id = this.nextId++;
      this.jobs.set(id, job);
      this.worker.postMessage({ id, file, target: this.target, label: file });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
