// From a trained float graph to a model package the agent and the server run
// unchanged: int8 quantization, segments cut at the exits, every exit's
// probabilities on the validation images (operating points are calibrated on
// them), and int8 vs float accuracy per exit.
import fs from 'node:fs';
import path from 'node:path';
import { checkSameClasses } from '../../agent/datasets/image-folder.js';
import { dequantizeSoftmax } from '../../agent/exit-policy/probabilities.js';
import { argmax } from '../../agent/inference/top-k.js';
import { IMAGE_BOUNDARY } from '../../agent/model-package/image-segments.js';
import type { Manifest } from '../../agent/model-package/manifest.js';
import { sha256Hex } from '../../agent/model-package/sha256.js';
import { chainSeams, writePackage, type PackageProgress, type PlannedHead } from '../model-package/write-package.js';
import { areaDownsample } from '../../agent/preprocess/area-downsample.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { cutModel } from '../segmenter/segment.js';
import type { TfliteModel } from '../../agent/tflite/model.js';
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

/**
 * Every exit's probabilities on every image, running the int8 segments and heads
 * as the engine does: `imageFactors[i]` is set for a segment that reads the image
 * (shrunk by that factor), unset for one that reads the previous segment.
 */
export function int8ExitProbabilities(
  segments: Uint8Array[],
  imageFactors: (number | undefined)[],
  heads: { bytes: Uint8Array; afterSegment: number }[],
  images: DecodedImages,
  imageSide: number,
  onProgress?: (done: number, total: number) => void,
): Float32Array[][] {
  const segmentRunners = segments.map((bytes, i) => TfliteInterpreter.fromBytes(bytes, `segment ${i}`, { backend: 'xnnpack', threads: 1 }));
  const headRunners = heads.map((head, i) => TfliteInterpreter.fromBytes(head.bytes, `head ${i}`, { backend: 'xnnpack', threads: 1 }));
  const frame = imageSide * imageSide * 3;
  const count = images.labels.length;
  const out: Float32Array[][] = [];
  for (let n = 0; n < count; n++) {
    const image = images.pixels.subarray(n * frame, (n + 1) * frame);
    segmentRunners.forEach((runner, s) => {
      const factor = imageFactors[s];
      if (factor === undefined) runner.input().data.set(segmentRunners[s - 1]!.output().data);
      else areaDownsample(image, imageSide, imageSide, 3, factor, runner.input().data as Uint8Array);
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

/** One trained network, quantized and cut: its segments and exit heads, numbered from `firstSegment` on. */
interface PlannedNetwork {
  segments: TfliteModel[];
  seams: { from: string; to: string }[];
  heads: PlannedHead[];
  inputSide: number;
}

function planNetwork(graph: FloatGraph, cuts: string[], taskName: string, options: { firstSegment: number; headName: (exit: number) => string; end: string }): PlannedNetwork {
  const quantized = quantizeMultiExitGraph(graph);
  const cut = cutModel(quantized.backbone, cuts);
  // A network without cuts keeps only its final exit.
  const headModels = cuts.length === 0 ? [cut.head] : [...quantized.heads.map((h) => h.model), cut.head];
  const heads = headModels.map((model, i) => ({
    name: options.headName(i),
    file: `head-${options.headName(i)}.tflite`,
    model,
    bytes: writeTfliteModel(model),
    afterSegment: options.firstSegment + i,
    task: taskName,
    extra: {},
  }));
  return { segments: cut.segments, seams: chainSeams([IMAGE_BOUNDARY, ...cuts, options.end]), heads, inputSide: graph.spec.input.width };
}

export interface TrainedNetwork {
  config: ResolvedTrainConfig;
  graph: FloatGraph;
  floatValidationAccuracy?: number[];
}

/**
 * Writes the package of a trained network, with a glance network ahead of it
 * when one is given: the glance reads the frame shrunk to its own input size,
 * and its final exit becomes exit 0.
 */
export function writeFineTunedPackage(
  main: TrainedNetwork,
  data: { validation: DecodedImages; test?: DecodedImages; trainImages: number },
  options: { outDir: string; name?: string; baseSha256: string; glance?: TrainedNetwork; onProgress?: (progress: PackageProgress) => void },
): FineTunedPackageResult {
  const { config, graph } = main;
  const progress = options.onProgress;
  const taskName = config.task.name;
  const classes = graph.spec.classes ?? [];
  progress?.({ stage: 'quantize to int8', done: 0, total: 1 });
  const networks: PlannedNetwork[] = [];
  if (options.glance) {
    const glanceClasses = options.glance.graph.spec.classes ?? [];
    checkSameClasses(classes, glanceClasses, `The glance network ${options.glance.config.name}`);
    networks.push(planNetwork(options.glance.graph, [], taskName, { firstSegment: 0, headName: () => `${taskName}-glance`, end: 'glance' }));
  }
  networks.push(planNetwork(graph, config.cuts, taskName, { firstSegment: networks.length, headName: (i) => `${taskName}-exit-${i}`, end: 'pooled' }));
  const segments = networks.flatMap((n) => n.segments);
  const seams = networks.flatMap((n) => n.seams);
  const heads = networks.flatMap((n) => n.heads);
  // loadCascadeConfig has checked that each side divides the package's.
  // Each network's first segment reads the frame, shrunk to its own input size.
  const imageFactors = networks.flatMap((n) => n.segments.map((_, i) => (i === 0 ? config.inputSize / n.inputSide : undefined)));
  const segmentBytes = segments.map((s) => writeTfliteModel(s));
  progress?.({ stage: 'quantize to int8', done: 1, total: 1 });

  const run = (images: DecodedImages, stage: string) =>
    int8ExitProbabilities(segmentBytes, imageFactors, heads, images, config.inputSize, (done, total) => progress?.({ stage, done, total }));
  const validationProbabilities = run(data.validation, 'int8 exits on validation images');
  const validationAccuracy = perExitAccuracy(validationProbabilities, data.validation.labels);
  const testAccuracy = data.test ? perExitAccuracy(run(data.test, 'int8 exits on test images'), data.test.labels) : undefined;
  const floatAccuracy = [...(options.glance ? [options.glance.floatValidationAccuracy?.at(-1)] : []), ...(main.floatValidationAccuracy ?? [])];
  heads.forEach((head, i) => {
    const float = floatAccuracy[i];
    head.extra = { int8ValidationAccuracy: validationAccuracy[i]! / 100, ...(float !== undefined ? { floatValidationAccuracy: float / 100 } : {}) };
  });

  const weightsSha = (g: FloatGraph) => sha256Hex(new Uint8Array(g.weights.buffer, g.weights.byteOffset, g.weights.byteLength));
  const shaped = (g: FloatGraph, cuts: string[]) => ({ trained: weightsSha(g), spec: sha256Hex(JSON.stringify(g.spec)), cuts });
  const keyed = options.glance ? { ...shaped(graph, config.cuts), glance: shaped(options.glance.graph, []) } : shaped(graph, config.cuts);
  const result = writePackage({
    dir: path.resolve(options.outDir),
    name: options.name ?? config.name,
    buildKey: sha256Hex(JSON.stringify(keyed)),
    source: { file: path.basename(config.baseModelPath), sha256: options.baseSha256 },
    labels: classes,
    taskName,
    target: { width: config.inputSize, height: config.inputSize, resize: config.resize },
    segments,
    seams,
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
