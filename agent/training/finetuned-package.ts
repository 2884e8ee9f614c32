// From a trained float graph to a model package the agent and the server run
// unchanged: int8 quantization, segments cut at the exits, every exit's
// probabilities on the validation images (operating points are calibrated on
// them), and int8 vs float accuracy per exit.
import fs from 'node:fs';
import path from 'node:path';
import { dequantizeSoftmax } from '../exit-policy/probabilities.js';
import { argmax } from '../inference/top-k.js';
import type { Manifest } from '../model-package/manifest.js';
import { sha256Hex } from '../model-package/sha256.js';
import { writePackage, type PackageProgress, type PlannedHead } from '../model-package/write-package.js';
import { TfliteInterpreter } from '../runtime/interpreter.js';
import { cutModel } from '../segmenter/segment.js';
import { writeTfliteModel } from '../tflite/writer.js';
import type { FloatGraph } from './float-graph.js';
import { quantizeMultiExitGraph } from './quantize-graph.js';
import type { ResolvedTrainConfig } from './train-config.js';

/** Images decoded at the model's input size, as the trainer reads them. */
export interface DecodedImages {
  pixels: Uint8Array;
  labels: Int32Array;
}

export function readDecodedImages(stem: string): DecodedImages {
  const labelBytes = fs.readFileSync(`${stem}.labels`);
  const labels = new Int32Array(labelBytes.length / 4);
  new Uint8Array(labels.buffer).set(labelBytes);
  return { pixels: fs.readFileSync(`${stem}.u8`), labels };
}

/** Every exit's probabilities on every image, running the int8 segments and heads as the engine does. */
export function int8ExitProbabilities(
  segments: Uint8Array[],
  heads: { bytes: Uint8Array; afterSegment: number }[],
  images: DecodedImages,
  onProgress?: (done: number, total: number) => void,
): Float32Array[][] {
  const segmentRunners = segments.map((bytes, i) => TfliteInterpreter.fromBytes(bytes, `segment ${i}`, { backend: 'xnnpack', threads: 1 }));
  const headRunners = heads.map((head, i) => TfliteInterpreter.fromBytes(head.bytes, `head ${i}`, { backend: 'xnnpack', threads: 1 }));
  const frame = segmentRunners[0]!.input().data.length;
  const count = images.labels.length;
  const out: Float32Array[][] = [];
  for (let n = 0; n < count; n++) {
    segmentRunners.forEach((runner, s) => {
      runner.input().data.set(s === 0 ? images.pixels.subarray(n * frame, (n + 1) * frame) : segmentRunners[s - 1]!.output().data);
      runner.invoke();
    });
    out.push(
      headRunners.map((runner, h) => {
        runner.input().data.set(segmentRunners[heads[h]!.afterSegment]!.output().data);
        runner.invoke();
        const o = runner.output();
        return dequantizeSoftmax(o.data as Int8Array, o.quantization!.scale, o.quantization!.zeroPoint);
      }),
    );
    if (n % 100 === 99 || n === count - 1) onProgress?.(n + 1, count);
  }
  return out;
}

/** Top-1 accuracy in percent of each exit. */
export function perExitAccuracy(probabilities: Float32Array[][], labels: ArrayLike<number>): number[] {
  const exits = probabilities[0]?.length ?? 0;
  return Array.from({ length: exits }, (_, e) => (100 * probabilities.filter((p, n) => argmax(p[e]!) === labels[n]).length) / Math.max(1, probabilities.length));
}

export interface FineTunedPackageResult {
  dir: string;
  manifest: Manifest;
  int8: { validationAccuracy: number[]; testAccuracy?: number[] };
}

export function writeFineTunedPackage(
  config: ResolvedTrainConfig,
  graph: FloatGraph,
  data: { validation: DecodedImages; test?: DecodedImages; trainImages: number },
  options: { outDir: string; baseSha256: string; floatValidationAccuracy?: number[]; onProgress?: (progress: PackageProgress) => void },
): FineTunedPackageResult {
  const progress = options.onProgress;
  const taskName = config.task.name;
  const classes = graph.spec.classes ?? [];
  progress?.({ stage: 'quantize to int8', done: 0, total: 1 });
  const quantized = quantizeMultiExitGraph(graph);
  const cut = cutModel(quantized.backbone, config.cuts);
  const segmentBytes = cut.segments.map((s) => writeTfliteModel(s));
  const headModels = [...quantized.heads.map((h) => h.model), cut.head];
  const heads: PlannedHead[] = headModels.map((model, i) => ({
    name: `${taskName}-exit-${i}`,
    file: `head-${taskName}-exit-${i}.tflite`,
    model,
    bytes: writeTfliteModel(model),
    afterSegment: i,
    task: taskName,
    extra: {},
  }));
  progress?.({ stage: 'quantize to int8', done: 1, total: 1 });

  const run = (images: DecodedImages, stage: string) => int8ExitProbabilities(segmentBytes, heads, images, (done, total) => progress?.({ stage, done, total }));
  const validationProbabilities = run(data.validation, 'int8 exits on validation images');
  const validationAccuracy = perExitAccuracy(validationProbabilities, data.validation.labels);
  const testAccuracy = data.test ? perExitAccuracy(run(data.test, 'int8 exits on test images'), data.test.labels) : undefined;
  heads.forEach((head, i) => {
    head.extra = {
      int8ValidationAccuracy: validationAccuracy[i]! / 100,
      ...(options.floatValidationAccuracy ? { floatValidationAccuracy: options.floatValidationAccuracy[i]! / 100 } : {}),
    };
  });

  const weightsSha = sha256Hex(new Uint8Array(graph.weights.buffer, graph.weights.byteOffset, graph.weights.byteLength));
  const result = writePackage({
    dir: path.resolve(options.outDir),
    name: config.name,
    buildKey: sha256Hex(JSON.stringify({ trained: weightsSha, spec: sha256Hex(JSON.stringify(graph.spec)), cuts: config.cuts })),
    source: { file: path.basename(config.baseModelPath), sha256: options.baseSha256 },
    labels: classes,
    taskName,
    target: { width: config.inputSize, height: config.inputSize, resize: config.resize },
    segments: cut.segments,
    boundaries: ['input', ...config.cuts, 'pooled'],
    heads,
    latencyRuns: config.latencyRuns,
    calibration: {
      perExitProbabilities: validationProbabilities,
      labels: data.validation.labels,
      deltas: config.task.calibrationDeltas,
      balancedConfidenceZ: config.task.balancedConfidenceZ,
    },
    training: {
      dataset: config.task.dataset,
      trainImages: data.trainImages,
      validationImages: data.validation.labels.length,
      seed: config.training.seed,
      latencyKey: 'xnnpack-1t',
    },
    onProgress: progress,
  });
  return { dir: result.dir, manifest: result.manifest, int8: { validationAccuracy, ...(testAccuracy ? { testAccuracy } : {}) } };
}
