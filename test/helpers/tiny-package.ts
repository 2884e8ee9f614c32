import fs from 'node:fs';
import path from 'node:path';
import { loadBuildConfig } from '../../tools/model-package/build-config.js';
import { buildModelPackage } from '../../tools/model-package/build.js';
import { loadModelPackage, type ModelPackage } from '../../agent/model-package/load.js';
import { MOBILENET_V2, SHARED, temporaryDir } from './shared.js';

export const TINY_INPUT = 96;

/**
 * The build config of a small real multi-exit CIFAR-10 package (96x96 input, a
 * few images per class, a few epochs): seconds to build, with every part of a
 * real one. Overrides replace top-level fields; `task` fields merge into the task.
 */
export function writeTinyConfig(dir: string, overrides: Record<string, unknown> = {}, task: Record<string, unknown> = {}): string {
  const configFile = path.join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      name: 'tiny_cifar10',
      baseModel: { path: MOBILENET_V2 },
      inputSize: TINY_INPUT,
      cuts: ['block_6', 'block_10', 'block_13'],
      end: 'block_16',
      latencyRuns: 3,
      task: {
        name: 'cifar10',
        dataset: path.join(SHARED, 'data', 'cifar10'),
        trainPerClass: 40,
        validationPerClass: 15,
        heads: [
          { grid: 2, hidden: 0 },
          { grid: 2, hidden: 16 },
          { grid: 2, hidden: 16 },
          { grid: 2, hidden: 32 },
        ],
        training: { epochs: 4, seed: 7 },
        ...task,
      },
      ...overrides,
    }),
  );
  return configFile;
}

export async function buildTinyPackage(): Promise<ModelPackage> {
  return (await buildTinyAgentPackage()).pkg;
}

/**
 * The tiny package built where `edge-exit run` looks for it: with
 * EDGE_EXIT_MODELS_DIR=modelsDir and model.buildConfig=buildConfig the agent
 * finds it up to date instead of building it again.
 */
export async function buildTinyAgentPackage(): Promise<{ pkg: ModelPackage; modelsDir: string; buildConfig: string }> {
  const dir = temporaryDir('edge-exit-tiny-');
  const buildConfig = writeTinyConfig(dir);
  const modelsDir = path.join(dir, 'models');
  const out = path.join(modelsDir, 'tiny_cifar10');
  await buildModelPackage(loadBuildConfig(buildConfig), { outDir: out, cacheDir: path.join(dir, 'cache') });
  return { pkg: loadModelPackage(out), modelsDir, buildConfig };
}
