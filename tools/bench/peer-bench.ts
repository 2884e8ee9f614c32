/**
 * edge-exit's int8 XNNPACK path against onnxruntime-node on the same network (the package to its
 * final exit, exported from PyTorch: tools/bench/peer-network.ts), on the same decoded images,
 * taking turns image by image: ms per image and top-1, and how often each agrees with edge-exit.
 */
import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { createExitPolicy } from '../../agent/exit-policy/policy.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import { summarizeTimings, type TimingSummary } from '../stats/summary.js';

export interface PeerRow extends TimingSummary {
  variant: string;
  threads: number;
  accuracy: number;
  /** Share of images whose top-1 is edge-exit's at the same thread count. */
  agreement: number;
}

interface Variant {
  name: string;
  threads: number;
  classify(frame: Buffer): Promise<number>;
  times: number[];
  labels: number[];
}

type Ort = typeof import('onnxruntime-node');

async function loadOrt(): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (error) {
    throw new Error(`the peers bench needs onnxruntime-node, a devDependency: run npm ci without --omit=dev (${(error as Error).message})`);
  }
}

const argmax = (values: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
};

export async function runPeerBench(options: {
  engineFor: (threads: number) => MultiExitEngine;
  /** The point that runs every image to the final exit. */
  full: OperatingPoint;
  onnx: Array<{ name: string; file: string }>;
  images: readonly LabelledImage[];
  target: RgbTarget;
  threads: number[];
  onProgress?: (done: number, total: number) => void;
}): Promise<PeerRow[]> {
  const ort = await loadOrt();
  const frames = await Promise.all(options.images.map((image) => imageFileToRgb(image.file, options.target)));
  const shape = [1, options.target.height, options.target.width, 3];
  const variants: Variant[] = [];
  for (const threads of options.threads) {
    const engine = options.engineFor(threads);
    const policy = createExitPolicy({ policy: options.full.policy, thresholds: options.full.thresholds, patience: options.full.patience }, engine.exitCount);
    variants.push({
      name: 'edge-exit int8, XNNPACK (segment chain to the final exit)',
      threads,
      classify: async (frame) => {
        engine.input.data.set(frame);
        return engine.classify(policy, options.full.maxExit).label;
      },
      times: [],
      labels: [],
    });
    for (const model of options.onnx) {
      // No spinning: idle onnxruntime threads would spin between its turns and take the cores from edge-exit's (all run in one process, in turn).
      const session = await ort.InferenceSession.create(model.file, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      const input = session.inputNames[0]!;
      const output = session.outputNames[0]!;
      variants.push({
        name: `onnxruntime-node ${model.name}`,
        threads,
        classify: async (frame) => {
          const result = await session.run({ [input]: new ort.Tensor('uint8', frame, shape) });
          return argmax(result[output]!.data as Float32Array);
        },
        times: [],
        labels: [],
      });
    }
  }
  // Warm-up: first runs allocate and tune.
  for (const variant of variants) for (let i = 0; i < 5; i++) await variant.classify(frames[i % frames.length]!);
  for (const [n, frame] of frames.entries()) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(n + k) % variants.length]!;
      const start = process.hrtime.bigint();
      const label = await variant.classify(frame);
      variant.times.push(Number(process.hrtime.bigint() - start) / 1e6);
      variant.labels.push(label);
    }
    if (n % 20 === 0) options.onProgress?.(n, frames.length);
  }
  options.onProgress?.(frames.length, frames.length);
  return variants.map((variant) => {
    const reference = variants.find((v) => v.threads === variant.threads)!;
    const agreeing = variant.labels.filter((label, i) => label === reference.labels[i]).length;
    const correct = variant.labels.filter((label, i) => label === options.images[i]!.label).length;
    return { variant: variant.name, threads: variant.threads, ...summarizeTimings(variant.times), accuracy: correct / frames.length, agreement: agreeing / frames.length };
  });
}
