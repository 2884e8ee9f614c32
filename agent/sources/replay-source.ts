import fs from 'node:fs';
import { readImageFolder, type LabelledImage } from '../datasets/image-folder.js';
import { seededRandom, shuffled } from '../datasets/split.js';
import { RgbDecoder } from '../preprocess/rgb-decoder.js';
import type { RgbTarget } from '../preprocess/image-to-rgb.js';
import type { Frame, FrameSource } from './frame-source.js';

/** Frames decoding ahead: the next one is ready when the agent asks, even after a slow decode. */
const AHEAD = 2;

/**
 * Replays a labelled ImageFolder in a seeded random order, so the agent can report live accuracy.
 * Given the model input (`target`), it decodes ahead on a thread of its own (RgbDecoder), so that
 * decoding costs the loop's thread nothing while it classifies the frames before.
 */
export class ReplaySource implements FrameSource {
  readonly name: string;
  /** Each image is a scene of its own. */
  readonly continuousScene = false;
  readonly classes: string[];
  private readonly order: LabelledImage[];
  private position = 0;
  private pass = 0;
  private readonly ahead: Promise<Frame>[] = [];
  private readonly decoder: RgbDecoder | undefined;
  private closed = false;

  constructor(
    root: string,
    private readonly options: { loop: boolean; seed: number; target?: RgbTarget },
  ) {
    const folder = readImageFolder(root);
    this.classes = folder.classes;
    this.order = shuffled(folder.samples, seededRandom(options.seed));
    this.name = `replay:${root}`;
    this.decoder = options.target ? new RgbDecoder(options.target) : undefined;
  }

  async next(): Promise<Frame | undefined> {
    // Closed (the agent stopping): the frames decoded ahead were dropped, so none may follow them out of order.
    if (this.closed) return undefined;
    const frame = this.ahead.shift() ?? this.take();
    if (frame && this.decoder) {
      while (this.ahead.length < AHEAD) {
        const more = this.take();
        if (!more) break;
        // Its failure is a later call's to report, not an unhandled rejection now.
        more.catch(() => {});
        this.ahead.push(more);
      }
    }
    return frame;
  }

  /** The next file's frame (decoded, with a target), or undefined at the end of a replay that does not loop. */
  private take(): Promise<Frame> | undefined {
    if (this.position >= this.order.length) {
      if (!this.options.loop) return undefined;
      this.position = 0;
      this.pass++;
    }
    const sample = this.order[this.position++]!;
    const frame = { id: `${this.pass}:${this.position - 1}`, origin: sample.file, trueLabel: this.classes[sample.label], capturedAt: Date.now() };
    // An image that does not decode goes to the agent as bytes alone: it tries, says why and skips it, as for any source.
    if (this.decoder) return this.decoder.decodeFile(sample.file).then(({ bytes, pixels }) => ({ ...frame, bytes, ...(pixels ? { pixels } : {}) }));
    return fs.promises.readFile(sample.file).then((bytes) => ({ ...frame, bytes }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ahead.length = 0;
    await this.decoder?.close();
  }
}
