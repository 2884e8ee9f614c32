import fs from 'node:fs';
import path from 'node:path';
import { configFileFor, modelsDir } from '../../agent/config/paths.js';
import { defaultPackage, isTrainingConfig, locatePackage } from '../../agent/model-package/locate.js';
import { openPackage } from '../../cli/open-package.js';
import { loadBuildConfig } from '../model-package/build-config.js';
import { buildModelPackage, type BuildResult } from '../model-package/build.js';
import { loadModelPackage, type ModelPackage } from '../../agent/model-package/load.js';
import type { Manifest } from '../../agent/model-package/manifest.js';
import { compileEdgeTpuVariants, formatEdgeTpuSummary, hasCurrentEdgeTpuVariants, requireEdgeTpuCompiler } from '../model-package/edgetpu-compile.js';
import { isCascadeConfigFile, loadCascadeConfig } from '../training/cascade-config.js';
import { loadTrainConfig } from '../training/train-config.js';
import { progressBar } from './progress.js';

/** The multi-exit package the agent runs by default. */
export const DEFAULT_TASK_CONFIG = defaultPackage();

export function buildConfigPath(nameOrPath: string): string {
  return configFileFor(nameOrPath);
}

/** A fine-tuned package is never trained implicitly: training takes an hour, not a start-up. */
function trainedPackage(file: string, outDir: string | undefined): BuildResult {
  const name = isCascadeConfigFile(file) ? loadCascadeConfig(file).name : loadTrainConfig(file).name;
  const dir = path.resolve(outDir ?? path.join(modelsDir(), name));
  if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
    throw new Error(`The fine-tuned package ${dir} does not exist yet: run \`edge-exit train -c ${file}\` first (it trains with PyTorch and resumes if interrupted).`);
  }
  return { dir, cached: true, manifest: loadModelPackage(dir).manifest };
}

/**
 * Builds (or finds cached) the package a config describes; shared by
 * build-model, bench, eval, server and run. A training config names a package
 * that `edge-exit train` wrote.
 */
export async function ensureModelPackage(configNameOrPath: string, options: { force?: boolean; outDir?: string } = {}): Promise<BuildResult> {
  const file = buildConfigPath(configNameOrPath);
  if (isTrainingConfig(file)) return trainedPackage(file, options.outDir);
  const config = loadBuildConfig(file);
  const bar = progressBar(`building ${config.name}`);
  try {
    return await buildModelPackage(config, {
      outDir: options.outDir ?? path.join(modelsDir(), config.name),
      force: options.force ?? false,
      onProgress: ({ stage, done, total }) => bar.update(done, total, stage),
    });
  } finally {
    bar.stop();
  }
}

/**
 * With --edgetpu, the package's segments gain Edge TPU variants (once: a package
 * whose variants were compiled from its current segments is left as it is).
 */
export function addEdgeTpuVariants(dir: string, manifest: Manifest, force = false): Manifest {
  if (!force && hasCurrentEdgeTpuVariants(manifest)) return manifest;
  return compileEdgeTpuVariants(dir, { onProgress: (stage) => console.log(stage) });
}

export async function buildModelCommand(options: { config: string; force?: boolean; out?: string; edgetpu?: boolean }): Promise<void> {
  if (options.edgetpu) requireEdgeTpuCompiler();
  const result = await ensureModelPackage(options.config, { force: options.force, outDir: options.out });
  const m = options.edgetpu ? addEdgeTpuVariants(result.dir, result.manifest, options.force) : result.manifest;
  console.log(`${result.cached ? 'Up to date' : 'Built'}: ${result.dir}`);
  for (const part of [...m.segments.map((s) => ({ label: `segment ${s.index} ${s.from} -> ${s.to}`, ...s })), ...m.heads.map((h) => ({ label: `head ${h.name}`, ...h }))]) {
    const lat = Object.entries(part.latencyMs).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ');
    console.log(`  ${part.label.padEnd(34)} ${(part.macs / 1e6).toFixed(1).padStart(7)} MMAC  ${part.output.shape.join('x').padEnd(12)} ${lat}`);
  }
  if (options.edgetpu) console.log(formatEdgeTpuSummary(m).join('\n'));
}

export interface TaskPackage {
  pkg: ModelPackage;
  taskName: string;
  /** The task's labelled test split, an ImageFolder. */
  testDir: string;
}

/** The multi-exit package of a task config (build or training), with where its test images are. */
export async function openTaskPackage(configNameOrPath: string): Promise<TaskPackage> {
  const file = buildConfigPath(configNameOrPath);
  let task: { name: string; testSplit: string } | undefined;
  let datasetPath: string | undefined;
  if (isTrainingConfig(file)) {
    const config = isCascadeConfigFile(file) ? loadCascadeConfig(file).main : loadTrainConfig(file);
    ({ task, datasetPath } = config);
  } else {
    const config = loadBuildConfig(file);
    ({ task, datasetPath } = config);
  }
  if (!task || !datasetPath) throw new Error(`Config ${file} has no task, so its package has no exits; use a config with a "task".`);
  return { pkg: await openOrBuildPackage(configNameOrPath), taskName: task.name, testDir: path.join(datasetPath, task.testSplit) };
}

/**
 * The package a workstation command names, found as the gateway finds it (a release
 * or a directory is used as it is), else built, or found up to date, from its config:
 * a build under models/<name>/ goes through the builder so a changed config rebuilds it.
 */
export async function openOrBuildPackage(nameOrPath: string): Promise<ModelPackage> {
  const found = locatePackage(nameOrPath);
  const build = (found.kind === 'package' && found.source === 'build') || (found.kind === 'missing' && found.configFile !== undefined);
  return build ? loadModelPackage((await ensureModelPackage(nameOrPath)).dir) : openPackage(nameOrPath);
}
