import path from 'node:path';
import { modelsDir } from '../../config/paths.js';
import { loadBuildConfig } from '../../model-package/build-config.js';
import { buildModelPackage, type BuildResult } from '../../model-package/build.js';
import { progressBar } from '../progress.js';

export const DEFAULT_BUILD_CONFIG = 'mobilenet_v2_imagenet';
/** The multi-exit package the agent runs by default. */
export const DEFAULT_TASK_CONFIG = 'mobilenet_v2_cifar10';

export function buildConfigPath(nameOrPath: string): string {
  return nameOrPath.endsWith('.json') ? path.resolve(nameOrPath) : path.join(modelsDir(), 'configs', `${nameOrPath}.json`);
}

/** Builds (or finds cached) the package a config describes; shared by build-model, bench and run. */
export async function ensureModelPackage(configNameOrPath: string, options: { force?: boolean; outDir?: string } = {}): Promise<BuildResult> {
  const config = loadBuildConfig(buildConfigPath(configNameOrPath));
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

export async function buildModelCommand(options: { config: string; force?: boolean; out?: string }): Promise<void> {
  const result = await ensureModelPackage(options.config, { force: options.force, outDir: options.out });
  const m = result.manifest;
  console.log(`${result.cached ? 'Up to date' : 'Built'}: ${result.dir}`);
  for (const part of [...m.segments.map((s) => ({ label: `segment ${s.index} ${s.from} -> ${s.to}`, ...s })), ...m.heads.map((h) => ({ label: `head ${h.name}`, ...h }))]) {
    const lat = Object.entries(part.latencyMs).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ');
    console.log(`  ${part.label.padEnd(34)} ${(part.macs / 1e6).toFixed(1).padStart(7)} MMAC  ${part.output.shape.join('x').padEnd(12)} ${lat}`);
  }
}
