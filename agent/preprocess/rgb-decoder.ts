import { Worker } from 'node:worker_threads';
import { encodedImageToRgb, type RgbTarget } from './image-to-rgb.js';

interface Pending {
  resolve: (pixels: Buffer) => void;
  reject: (error: Error) => void;
  bytes: Buffer;
  label: string;
}

/**
 * Decodes encoded frames to the model input on a thread of its own. sharp does much of a small
 * image's work on the calling thread (building the pipeline costs more than decoding a 32x32 JPEG),
 * so a source that decodes ahead on this thread leaves the loop's thread to the model.
 * Same function, same pixels as `encodedImageToRgb`; without a thread it decodes in place.
 */
export class RgbDecoder {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(private readonly target: RgbTarget) {
    try {
      this.worker = new Worker(new URL('./decode-worker.mjs', import.meta.url));
    } catch {
      return;
    }
    this.worker.unref();
    this.worker.on('message', (message: { id?: number; pixels?: Uint8Array; error?: string }) => {
      if (message.id === undefined) return;
      const job = this.pending.get(message.id);
      if (!job) return;
      this.pending.delete(message.id);
      if (message.pixels) job.resolve(Buffer.from(message.pixels.buffer, message.pixels.byteOffset, message.pixels.byteLength));
      else job.reject(new Error(message.error ?? `cannot decode ${job.label}`));
    });
    // A thread that dies takes nothing with it: what it held is decoded here.
    this.worker.on('error', () => this.fallBack());
    this.worker.on('exit', () => this.fallBack());
  }

  private fallBack(): void {
    this.worker = undefined;
    for (const [id, job] of this.pending) {
      this.pending.delete(id);
      encodedImageToRgb(job.bytes, this.target, job.label).then(job.resolve, job.reject);
    }
  }

  decode(bytes: Buffer, label: string): Promise<Buffer> {
    if (!this.worker) return encodedImageToRgb(bytes, this.target, label);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, bytes, label });
      this.worker!.postMessage({ id, bytes, target: this.target, label });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
