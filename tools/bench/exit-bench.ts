import { letProgressDraw } from '../cli/progress.js';
import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { createExitPolicy, type ExitPolicy } from '../../agent/exit-policy/policy.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import { summarizeTimings, type TimingSummary } from '../stats/summary.js';

export interface ExitBenchRow extends TimingSummary {
  point: string;
  accuracy: number;
  meanExit: number;
}

export interface ExitBenchResult {
  images: number;
  threads: number;
  rows: ExitBenchRow[];
  /** images/s of each point over the full model's, measured in the same run. */
  speedupOverFull: Record<string, number>;
}

interface Variant {
  point: OperatingPoint;
  policy: ExitPolicy;
  times: number[];
  correct: number;
  exits: number;
}

/**
 * Every operating point classifies the same decoded test images with real early
 * exits, taking turns image by image so that machine noise falls on all alike.
 * Times run from writing the input to having the answer.
 */
export async function runExitBench(
  engine: MultiExitEngine,
  points: readonly OperatingPoint[],
  images: readonly LabelledImage[],
  target: RgbTarget,
  threads: number,
  onProgress?: (done: number, total: number) => void,
): Promise<ExitBenchResult> {
  const frames = await Promise.all(images.map((image) => imageFileToRgb(image.file, target)));
  const variants: Variant[] = points.map((point) => ({
    point,
    policy: createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, engine.exitCount),
    times: [],
    correct: 0,
    exits: 0,
  }));
  for (const variant of variants) for (let i = 0; i < 3; i++) {
    engine.input.data.set(frames[i % frames.length]!);
    engine.classify(variant.policy, variant.point.maxExit);
  }
  for (const [n, frame] of frames.entries()) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(n + k) % variants.length]!;
      const start = process.hrtime.bigint();
      engine.input.data.set(frame);
      const result = engine.classify(variant.policy, variant.point.maxExit);
      variant.times.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (result.label === images[n]!.label) variant.correct++;
      variant.exits += result.exit;
    }
    if (n % 50 === 49 || n === frames.length - 1) {
      onProgress?.(n + 1, frames.length);
      await letProgressDraw();
    }
  }
  const rows = variants.map((v) => ({ point: v.point.name, accuracy: v.correct / frames.length, meanExit: v.exits / frames.length, ...summarizeTimings(v.times) }));
  const full = rows.find((r) => r.point === 'full');
  const speedupOverFull = Object.fromEntries(rows.map((r) => [r.point, full ? r.imagesPerSecond / full.imagesPerSecond : Number.NaN]));
  return { images: frames.length, threads, rows, speedupOverFull };
}

export function formatExitBench(result: ExitBenchResult): string {
  return [
    `Images: ${result.images} CIFAR-10 test images (decoded beforehand), ${result.threads} thread(s), operating points interleaved image by image.`,
    '',
    '| operating point | accuracy | mean exit | median ms | p95 ms | images/s | x full |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...result.rows.map(
      (r) =>
        `| ${r.point} | ${(r.accuracy * 100).toFixed(2)}% | ${r.meanExit.toFixed(2)} | ${r.medianMs.toFixed(2)} | ${r.p95Ms.toFixed(2)} | ${r.imagesPerSecond.toFixed(1)} | ${result.speedupOverFull[r.point]!.toFixed(2)} |`,
    ),
  ].join('\n');
}
