import { createExitPolicy, type ExitPolicy } from '../../exit-policy/policy.js';
import { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import { imageFileToRgb } from '../../preprocess/image-to-rgb.js';
import { defaultPackage } from '../../model-package/locate.js';
import { openPackage } from '../open-package.js';

export interface ClassifyOptions {
  config?: string;
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
  const pkg = await openPackage(options.config ?? defaultPackage());
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: Number(options.threads) });
  const { manifest } = pkg;
  const pointName = options.operatingPoint ?? (manifest.operatingPoints.some((p) => p.name === 'balanced') ? 'balanced' : undefined);
  const point = pointName === undefined ? undefined : manifest.operatingPoints.find((p) => p.name === pointName);
  if (pointName !== undefined && !point) throw new Error(`--operating-point "${pointName}" is not in ${manifest.name}; it has ${manifest.operatingPoints.map((p) => p.name).join(', ') || 'none'}`);
  // Without a calibrated point (a single-exit package) every frame runs to the final exit.
  const policy = point
    ? createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, engine.exitCount)
    : createExitPolicy({ policy: 'max-probability', thresholds: Array.from({ length: engine.exitCount }, () => 1) }, engine.exitCount);
  const heads = manifest.heads.filter((h) => manifest.labels[h.task] === engine.labels).sort((a, b) => a.afterSegment - b.afterSegment);
  const results: ImageResult[] = [];
  for (const image of images) {
    engine.input.data.set(await imageFileToRgb(image, { width: manifest.input.width, height: manifest.input.height, resize: manifest.input.resize }));
    const seen: number[] = [];
    const result = engine.classify(recording(policy, seen), point?.maxExit ?? engine.exitCount - 1);
    if (seen.length === result.exit) seen.push(result.confidence);
    const top = [...result.probabilities]
      .map((score, index) => ({ index, label: engine.labels[index] ?? String(index), score }))
      .sort((a, b) => b.score - a.score)
      .slice(0, k);
    const segmentMs = result.segmentMs.map((ms, i) => ms + (result.headMs[i] ?? 0));
    results.push({ image, exit: result.exit, exitName: heads[result.exit]?.name ?? `exit ${result.exit}`, top, confidenceByExit: seen, segmentMs, totalMs: segmentMs.reduce((a, b) => a + b, 0) });
  }
  if (options.json) {
    console.log(JSON.stringify({ package: manifest.name, operatingPoint: point?.name ?? null, results }, null, 2));
    return;
  }
  console.log(`package ${manifest.name}, ${engine.exitCount} exit(s), operating point ${point?.name ?? 'none (runs to the final exit)'}`);
  for (const r of results) {
    console.log(`\n${r.image}: exit ${r.exit} (${r.exitName}) of ${engine.exitCount - 1}, ${r.totalMs.toFixed(2)} ms`);
    for (const entry of r.top) console.log(`  ${String(entry.index).padStart(5)}  ${entry.label.padEnd(28)} ${entry.score.toFixed(4)}`);
    console.log(`  confidence by exit: ${r.confidenceByExit.map((c) => c.toFixed(3)).join(' → ')}`);
    console.log(`  ms by segment (with its exit head): ${r.segmentMs.map((ms) => ms.toFixed(2)).join(' + ')}`);
  }
}
