import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { costsWithout } from '../calibration/calibrate.js';
import { createExitPolicy, simulateExits, skippedExits } from '../../agent/exit-policy/policy.js';
import { argmax } from '../../agent/exit-policy/probabilities.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';

export interface PointEvaluation {
  name: string;
  policy: string;
  accuracy: number;
  meanMacs: number;
  /** Mean of the measured milliseconds of the segments and heads each sample actually ran. */
  meanLatencyMs: number;
  exitHistogram: number[];
  validationAccuracy: number;
}

export interface EvaluationReport {
  package: string;
  images: number;
  exitAccuracy: number[];
  /** Macs of running to exit i (segments and heads 0..i). */
  cumulativeMacs: number[];
  points: PointEvaluation[];
  /**
   * What no exit policy can beat: every sample stops at the first exit that
   * answers it correctly (at the final exit if none does). Its cost bounds the
   * speed-up of any point as accurate as the final exit.
   */
  oracle: { accuracy: number; meanMacs: number; meanLatencyMs: number; exitHistogram: number[] };
}

/** Everything one test image produced at every exit, recorded once and replayed per operating point. */
interface Recorded {
  probabilities: Float32Array[][];
  /** Per sample, cumulative ms to reach each exit with every exit before it run. */
  cumulativeMs: number[][];
  labels: number[];
}

async function recordAllExits(engine: MultiExitEngine, images: readonly LabelledImage[], target: RgbTarget, onProgress?: (d: number, t: number) => void): Promise<Recorded> {
  const recorded: Recorded = { probabilities: [], cumulativeMs: [], labels: [] };
  for (let n = 0; n < images.length; n++) {
    engine.input.data.set(await imageFileToRgb(images[n]!.file, target));
    const result = engine.runAllExits();
    let ms = 0;
    recorded.cumulativeMs.push(result.segmentMs.map((segment, i) => (ms += segment + result.headMs[i]!)));
    recorded.probabilities.push(result.probabilities);
    recorded.labels.push(images[n]!.label);
    if (n % 50 === 49 || n === images.length - 1) onProgress?.(n + 1, images.length);
  }
  return recorded;
}

/**
 * Runs every test image through all exits once, then replays each operating
 * point's policy over the recorded outputs: accuracy, the MACs and the measured
 * time of what each sample would have run, and where it stopped.
 */
export async function evaluatePackage(
  engine: MultiExitEngine,
  points: readonly OperatingPoint[],
  images: readonly LabelledImage[],
  target: RgbTarget,
  onProgress?: (done: number, total: number) => void,
): Promise<EvaluationReport> {
  const pkg = engine.chain.pkg;
  const recorded = await recordAllExits(engine, images, target, onProgress);
  const exits = engine.exitCount;
  let macs = 0;
  const cumulativeMacs = engine.exits.map((head, i) => (macs += pkg.manifest.segments[i]!.macs + head.macs));
  const exitAccuracy = Array.from({ length: exits }, (_, e) => recorded.probabilities.filter((row, n) => argmax(row[e]!) === recorded.labels[n]).length / images.length);
  const evaluations = points.map((point): PointEvaluation => {
    const policy = createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, exits);
    const { exitTaken, predictions } = simulateExits(policy, recorded.probabilities, point.maxExit);
    const skipped = skippedExits(policy, engine.branchExits, point.maxExit);
    const pointMacs = costsWithout(cumulativeMacs, skipped);
    const histogram = new Array<number>(exits).fill(0);
    let correct = 0;
    let macsSum = 0;
    let msSum = 0;
    exitTaken.forEach((exit, n) => {
      histogram[exit]!++;
      if (predictions[n] === recorded.labels[n]) correct++;
      macsSum += pointMacs[exit]!;
      msSum += costsWithout(recorded.cumulativeMs[n]!, skipped)[exit]!;
    });
    return {
      name: point.name,
      policy: point.policy,
      accuracy: correct / images.length,
      meanMacs: macsSum / images.length,
      meanLatencyMs: msSum / images.length,
      exitHistogram: histogram,
      validationAccuracy: point.validationAccuracy,
    };
  });
  const oracle = { accuracy: 0, meanMacs: 0, meanLatencyMs: 0, exitHistogram: new Array<number>(exits).fill(0) };
  recorded.probabilities.forEach((row, n) => {
    const firstRight = row.findIndex((probabilities) => argmax(probabilities) === recorded.labels[n]);
    const exit = firstRight === -1 ? exits - 1 : firstRight;
    oracle.exitHistogram[exit]!++;
    if (firstRight !== -1) oracle.accuracy += 1 / images.length;
    oracle.meanMacs += cumulativeMacs[exit]! / images.length;
    oracle.meanLatencyMs += recorded.cumulativeMs[n]![exit]! / images.length;
  });
  return { package: pkg.manifest.name, images: images.length, exitAccuracy, cumulativeMacs, points: evaluations, oracle };
}
