import path from 'node:path';
import { createExitPolicy, type ExitPolicy } from '../../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { SegmentChain } from '../../agent/inference/segment-chain.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import type { InterpreterOptions } from '../../agent/runtime/interpreter.js';
import { dequantizeSoftmax } from '../../agent/exit-policy/probabilities.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { defaultPackage, locatePackage } from '../../agent/model-package/locate.js';
import { readLabelsFile, SingleModelClassifier } from '../../agent/inference/single-model.js';
import { openPackage } from '../open-package.js';

export interface ClassifyOptions {
  config?: string;
  /** A plain classification .tflite instead of a package, with --labels for its class names. */
  model?: string;
  labels?: string;
  top: string;
  operatingPoint?: string;
  json?: boolean;
  threads: string;
}

interface ImageResult {
  image: string;
  exit: number;
  exitName: string;
  top: Array<{ index: number; label: string; score: number }>;
  /** Top-1 confidence at each exit that ran, in order. */
  confidenceByExit: number[];
  segmentMs: number[];
  totalMs: number;
}

/** Wraps a policy to remember the top-1 confidence it saw at each exit. */
function recording(policy: ExitPolicy, seen: number[]): ExitPolicy {
  return new Proxy(policy, {
    get(target, property, receiver) {
      if (property !== 'decide') return Reflect.get(target, property, receiver);
      return (state: Parameters<ExitPolicy['decide']>[0]) => {
        seen.push(Math.max(...state.probabilities));
        return target.decide(state);
      };
    },
  });
}

/**
 * `edge-exit classify <image...>`: like pycoral's classify example, for any package,
 * single-exit ones included: top-k labels, the exit taken, the confidence at every exit
 * that ran, and ms per segment.
 */
export async function classifyCommand(images: string[], options: ClassifyOptions): Promise<void> {
  const k = Number(options.top);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`--top must be a whole number >= 1, got ${options.top}`);
  const interpreter = { backend: 'xnnpack' as const, threads: Number(options.threads) };
  const named = options.model ?? options.config ?? defaultPackage();
  // --model is always a path, whatever it looks like.
  const found = options.model === undefined ? locatePackage(named) : { kind: 'model' as const, file: path.resolve(options.model) };
  if (found.kind === 'model') {
    // auto: an Edge TPU model is refused with what to plug in or install; any other runs on XNNPACK.
    const results = await classifyModel(found.file, options.labels, images, k, { ...interpreter, backend: 'auto' });
    report(options.json ? { model: found.file, results } : undefined, results);
    return;
  }
  if (options.labels !== undefined) throw new Error(`--labels is for a plain .tflite model (--model); the package ${named} carries its own labels: leave --labels out.`);
  const pkg = openPackage(named);
  const { manifest } = pkg;
  const task = Object.keys(manifest.labels)[0]!;
  const taskHeads = manifest.heads.filter((h) => h.task === task);
  // A package cut into segments with one head at the end (the ImageNet one) has no early exits: the chain runs through.
  const multiExit = taskHeads.every((head, i) => head.afterSegment === i);
  const results = multiExit
    ? await classifyMultiExit(pkg, task, images, options, k, interpreter)
    : await classifyThrough(pkg, images, k, interpreter, task, taskHeads.at(-1)!.name);
  report(options.json ? { package: manifest.name, results } : undefined, results);
}

/** Prints the results: as JSON (with what ran them) when asked, else one block per image. */
function report(json: Record<string, unknown> | undefined, results: ImageResult[]): void {
  if (json) {
    console.log(JSON.stringify(json, null, 2));
    return;
  }
  for (const r of results) {
    console.log(`\n${r.image}: exit ${r.exit} (${r.exitName}), ${r.totalMs.toFixed(2)} ms`);
    for (const entry of r.top) console.log(`  ${String(entry.index).padStart(5)}  ${entry.label.padEnd(28)} ${entry.score.toFixed(4)}`);
    console.log(`  confidence by exit: ${r.confidenceByExit.map((c) => c.toFixed(3)).join(' → ')}`);
    console.log(`  ms by segment (with its exit head): ${r.segmentMs.map((ms) => ms.toFixed(2)).join(' + ')}`);
  }
}

function topK(probabilities: ArrayLike<number>, labels: readonly string[], k: number): ImageResult['top'] {
  return Array.from(probabilities, (score, index) => ({ index, label: labels[index] ?? String(index), score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

async function rgbOf(image: string, pkg: ModelPackage): Promise<Buffer> {
  const { width, height, resize } = pkg.manifest.input;
  return imageFileToRgb(image, { width, height, resize });
}

/** A plain model, the whole of it at once: one "exit", one time. Without labels, classes are their indices. */
async function classifyModel(file: string, labelsFile: string | undefined, images: string[], k: number, interpreter: InterpreterOptions): Promise<ImageResult[]> {
  const model = SingleModelClassifier.fromFile(file, interpreter);
  const labels = labelsFile === undefined ? [] : readLabelsFile(labelsFile, model.classes);
  const results: ImageResult[] = [];
  for (const image of images) {
    // Resized whole, as pycoral's classify_image does.
    model.setRgb(await imageFileToRgb(image, { width: model.width, height: model.height, resize: 'stretch' }));
    const { probabilities, ms } = model.classify();
    const top = topK(probabilities, labels, k);
    results.push({ image, exit: 0, exitName: path.basename(file), top, confidenceByExit: [top[0]!.score], segmentMs: [ms], totalMs: ms });
  }
  return results;
}

/** Every segment, then the one head: the monolithic model's answer, timed by segment. */
async function classifyThrough(pkg: ModelPackage, images: string[], k: number, interpreter: InterpreterOptions, task: string, head: string): Promise<ImageResult[]> {
  const chain = SegmentChain.fromPackage(pkg, interpreter);
  const labels = pkg.manifest.labels[task]!;
  const results: ImageResult[] = [];
  for (const image of images) {
    chain.input.data.set(await rgbOf(image, pkg));
    const segmentMs = chain.segments.map((_, i) => chain.runSegment(i));
    segmentMs[segmentMs.length - 1]! += chain.runHead(head);
    const output = chain.heads.get(head)!.output();
    const q = output.quantization ?? { scale: 1 / 256, zeroPoint: 0 };
    const probabilities = dequantizeSoftmax(output.data as Uint8Array, q.scale, q.zeroPoint);
    const top = topK(probabilities, labels, k);
    results.push({ image, exit: 0, exitName: head, top, confidenceByExit: [top[0]!.score], segmentMs, totalMs: segmentMs.reduce((a, b) => a + b, 0) });
  }
  return results;
}

async function classifyMultiExit(pkg: ModelPackage, task: string, images: string[], options: ClassifyOptions, k: number, interpreter: InterpreterOptions): Promise<ImageResult[]> {
  const engine = MultiExitEngine.fromPackage(pkg, interpreter, task);
  const { manifest } = pkg;
  const pointName = options.operatingPoint ?? (manifest.operatingPoints.some((p) => p.name === 'balanced') ? 'balanced' : undefined);
  const point = pointName === undefined ? undefined : manifest.operatingPoints.find((p) => p.name === pointName);
  if (pointName !== undefined && !point) throw new Error(`--operating-point "${pointName}" is not in ${manifest.name}; it has ${manifest.operatingPoints.map((p) => p.name).join(', ') || 'none'}`);
  // Without a calibrated point every frame runs to the final exit.
  const policy = point
    ? createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, engine.exitCount)
    : createExitPolicy({ policy: 'max-probability', thresholds: Array.from({ length: engine.exitCount }, () => 1) }, engine.exitCount);
  const heads = manifest.heads.filter((h) => h.task === task).sort((a, b) => a.afterSegment - b.afterSegment);
  const results: ImageResult[] = [];
  for (const image of images) {
    engine.input.data.set(await rgbOf(image, pkg));
    const seen: number[] = [];
    const result = engine.classify(recording(policy, seen), point?.maxExit ?? engine.exitCount - 1);
    if (seen.length === result.exit) seen.push(result.confidence);
    const segmentMs = result.segmentMs.map((ms, i) => ms + (result.headMs[i] ?? 0));
    const exitName = `${heads[result.exit]?.name ?? `exit ${result.exit}`} of ${engine.exitCount - 1}, point ${point?.name ?? 'none'}`;
    results.push({ image, exit: result.exit, exitName, top: topK(result.probabilities, engine.labels, k), confidenceByExit: seen, segmentMs, totalMs: segmentMs.reduce((a, b) => a + b, 0) });
  }
  return results;
}
