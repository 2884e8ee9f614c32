import { createExitPolicy } from '../../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { ReplaySource } from '../../agent/sources/replay-source.js';

/**
 * The full model's label for each image file, computed here (every segment,
 * final exit, one XNNPACK thread like the server), to check what the offload
 * server answered against.
 */
export async function fullModelLabels(pkg: ModelPackage, files: Iterable<string>): Promise<Map<string, string>> {
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const task = Object.keys(pkg.manifest.labels)[0]!;
  const labels = pkg.manifest.labels[task]!;
  const never = createExitPolicy({ policy: 'max-probability', thresholds: new Array<number>(engine.exitCount).fill(1) }, engine.exitCount);
  const { width, height, resize } = pkg.manifest.input;
  const out = new Map<string, string>();
  for (const file of files) {
    if (out.has(file)) continue;
    engine.input.data.set(await imageFileToRgb(file, { width, height, resize }));
    out.set(file, labels[engine.classify(never).label]!);
  }
  return out;
}

/** The image behind each frame id ("pass:index") of the first `count` frames a replay source serves. */
export async function replayedFiles(dataset: string, seed: number, count: number): Promise<Map<string, string>> {
  const source = new ReplaySource(dataset, { loop: true, seed });
  const files = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const frame = (await source.next())!;
    files.set(frame.id, frame.origin);
  }
  await source.close();
  return files;
}
