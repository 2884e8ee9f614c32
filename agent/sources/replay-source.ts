import fs from 'node:fs/promises';
import { readImageFolder, type LabelledImage } from '../datasets/image-folder.js';
import { seededRandom, shuffled } from '../datasets/split.js';
import type { Frame, FrameSource } from './frame-source.js';

/** Replays a labelled ImageFolder in a seeded random order, so the agent can report live accuracy. */
export class ReplaySource implements FrameSource {
  readonly name: string;
  readonly classes: string[];
  private readonly order: LabelledImage[];
  private position = 0;
  private pass = 0;

  constructor(
    root: string,
    private readonly options: { loop: boolean; seed: number },
  ) {
    const folder = readImageFolder(root);
    this.classes = folder.classes;
    this.order = shuffled(folder.samples, seededRandom(options.seed));
    this.name = `replay:${root}`;
  }

  async next(): Promise<Frame | undefined> {
    if (this.position >= this.order.length) {
      if (!this.options.loop) return undefined;
      this.position = 0;
      this.pass++;
    }
    const sample = this.order[this.position++]!;
    return {
      id: `${this.pass}:${this.position - 1}`,
      origin: sample.file,
      bytes: await fs.readFile(sample.file),
      trueLabel: this.classes[sample.label],
      capturedAt: Date.now(),
    };
  }

  async close(): Promise<void> {}
}
