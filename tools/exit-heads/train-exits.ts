import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { argmax, dequantizeSoftmax } from '../../agent/exit-policy/probabilities.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { writeTfliteModel } from '../tflite/writer.js';
import { extractFeatures, type ExitTap } from './extract-features.js';
import { readFeatureCache, writeFeatureCache } from './feature-cache.js';
import { buildInt8Head, denseOutputsFloat, type HeadSpec } from './int8-head.js';
import { trainHead, type FeatureSet, type HeadTrainingOptions } from './train-head.js';

export interface ExitHeadConfig {
  grid: number;
  hidden: number;
}

export interface TrainedExit {
  spec: HeadSpec;
  bytes: Uint8Array;
  floatValidationAccuracy: number;
  int8ValidationAccuracy: number;
}

export interface ExitTrainingResult {
  exits: TrainedExit[];
  /** The int8 heads' outputs on the validation split, [sample][exit], for calibration. */
  validationProbabilities: Float32Array[][];
  validationLabels: Int32Array;
}

export interface ExitTrainingInput {
  segments: readonly TfliteInterpreter[];
  train: readonly LabelledImage[];
  validation: readonly LabelledImage[];
  classes: number;
  heads: readonly ExitHeadConfig[];
  training: Omit<HeadTrainingOptions, 'hidden' | 'onEpoch'>;
  target: RgbTarget;
  /** Feature cache files; reused when present and complete. */
  cacheFiles: { train: string; validation: string };
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Samples used to find each layer's activation range for int8 quantization. */
const RANGE_SAMPLES = 5000;
/**
 * Hidden activations are clipped at this quantile: a handful of outliers would
 * otherwise stretch the int8 scale and blur every ordinary value. Logits keep
 * their full range, since the largest one is the answer.
 */
const HIDDEN_RANGE_QUANTILE = 0.9999;

function quantile(sorted: Float32Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]!;
}

function activationRanges(layers: HeadSpec['layers'], set: FeatureSet): { min: number; max: number }[] {
  const count = Math.min(RANGE_SAMPLES, set.labels.length);
  const values = layers.map((layer) => new Float32Array(count * layer.outSize));
  for (let s = 0; s < count; s++) {
    const outputs = denseOutputsFloat(layers, set.features.subarray(s * set.dim, (s + 1) * set.dim));
    outputs.forEach((out, i) => values[i]!.set(out, s * out.length));
  }
  return values.map((all, i) => {
    const sorted = all.sort();
    const clip = i < layers.length - 1 ? HIDDEN_RANGE_QUANTILE : 1;
    return { min: quantile(sorted, 1 - clip), max: quantile(sorted, clip) };
  });
}

async function cachedFeatures(
  file: string,
  segments: readonly TfliteInterpreter[],
  images: readonly LabelledImage[],
  taps: ExitTap[],
  target: RgbTarget,
  onProgress: (done: number, total: number) => void,
): Promise<FeatureSet[]> {
  const cached = readFeatureCache(file);
  if (cached && cached.length === taps.length && cached.every((set) => set.labels.length === images.length)) return cached;
  const sets = await extractFeatures(segments, images, taps, target, onProgress);
  writeFeatureCache(file, sets);
  return sets;
}

/** Runs the real int8 segments and int8 heads over the validation images. */
async function validateInt8(input: ExitTrainingInput, heads: TfliteInterpreter[]): Promise<{ probabilities: Float32Array[][]; labels: Int32Array }> {
  const probabilities: Float32Array[][] = [];
  const labels = new Int32Array(input.validation.length);
  for (let n = 0; n < input.validation.length; n++) {
    const image = input.validation[n]!;
    input.segments[0]!.input().data.set(await imageFileToRgb(image.file, input.target));
    const row: Float32Array[] = [];
    heads.forEach((head, s) => {
      if (s > 0) input.segments[s]!.input().data.set(input.segments[s - 1]!.output().data);
      input.segments[s]!.invoke();
      head.input().data.set(input.segments[s]!.output().data);
      head.invoke();
      const q = head.output().quantization!;
      row.push(dequantizeSoftmax(head.output().data as Int8Array, q.scale, q.zeroPoint));
    });
    probabilities.push(row);
    labels[n] = image.label;
    if (n % 64 === 63 || n === input.validation.length - 1) input.onProgress?.('int8 validation', n + 1, input.validation.length);
  }
  return { probabilities, labels };
}

/**
 * The int8 AVERAGE_POOL_2D keeps its input's quantization, so it rounds every
 * cell mean to the seam's int8 grid (half away from zero, as TFLite's integer
 * kernel does). Training on the same rounded values leaves the dense layers'
 * quantization as the only difference between a head's float and int8 forms.
 */
export function roundToSeamGrid(set: FeatureSet, scale: number, zeroPoint: number): FeatureSet {
  const features = new Float32Array(set.features.length);
  for (let i = 0; i < features.length; i++) {
    const mean = set.features[i]! / scale + zeroPoint;
    const rounded = Math.min(127, Math.max(-128, Math.sign(mean) * Math.round(Math.abs(mean))));
    features[i] = (rounded - zeroPoint) * scale;
  }
  return { ...set, features };
}

/**
 * Trains one exit head per segment on features of the real int8 segments,
 * quantizes each to an int8 TFLite model, and measures both on validation.
 */
export async function trainExitHeads(input: ExitTrainingInput): Promise<ExitTrainingResult> {
  if (input.heads.length !== input.segments.length) {
    throw new RangeError(`${input.heads.length} head configs for ${input.segments.length} segments: give one head per segment`);
  }
  const taps = input.heads.map((head, segment) => ({ segment, grid: head.grid }));
  const progress = input.onProgress ?? (() => {});
  const train = await cachedFeatures(input.cacheFiles.train, input.segments, input.train, taps, input.target, (d, t) => progress('features: train', d, t));
  const validation = await cachedFeatures(input.cacheFiles.validation, input.segments, input.validation, taps, input.target, (d, t) =>
    progress('features: validation', d, t),
  );

  const exits: TrainedExit[] = [];
  for (let i = 0; i < input.heads.length; i++) {
    const config = input.heads[i]!;
    const q = input.segments[i]!.output().quantization!;
    const trainSet = roundToSeamGrid(train[i]!, q.scale, q.zeroPoint);
    const validationSet = roundToSeamGrid(validation[i]!, q.scale, q.zeroPoint);
    const trained = await trainHead(trainSet, validationSet, input.classes, {
      ...input.training,
      hidden: config.hidden,
      seed: input.training.seed + i,
      onEpoch: (epoch) => progress(`train exit ${i}`, epoch, input.training.epochs),
    });
    const seam = input.segments[i]!.output();
    const spec: HeadSpec = {
      name: `exit-${i}`,
      input: { shape: seam.shape as [1, number, number, number], scale: seam.quantization!.scale, zeroPoint: seam.quantization!.zeroPoint },
      pool: { grid: config.grid },
      layers: trained.layers,
      activationRanges: activationRanges(trained.layers, trainSet),
    };
    exits.push({ spec, bytes: writeTfliteModel(buildInt8Head(spec)), floatValidationAccuracy: trained.validationAccuracy, int8ValidationAccuracy: Number.NaN });
  }

  const headInterpreters = exits.map((exit) => TfliteInterpreter.fromBytes(exit.bytes, exit.spec.name, { backend: 'xnnpack', threads: 1 }));
  const checked = await validateInt8(input, headInterpreters);
  exits.forEach((exit, i) => {
    let correct = 0;
    checked.probabilities.forEach((row, n) => {
      if (argmax(row[i]!) === checked.labels[n]) correct++;
    });
    exit.int8ValidationAccuracy = correct / checked.labels.length;
  });
  return { exits, validationProbabilities: checked.probabilities, validationLabels: checked.labels };
}
