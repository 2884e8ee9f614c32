import fs from 'node:fs';
import path from 'node:path';
import { configFileFor, modelsDir } from '../agent/config/paths.js';
import { logger } from '../common/log/logger.js';
import { loadModelPackage, type ModelPackage } from '../agent/model-package/load.js';
import { findPackageDir, releasesDir } from '../agent/model-package/locate.js';

/**
 * The package a command names: a released or built package as it is, or, on a
 * workstation, one built from its config first. Only then is the builder loaded
 * (it pulls in tfjs and the segmenter), so a gateway with its package never loads it.
 */
export async function openPackage(nameOrPath: string, onBuild?: (configFile: string) => void): Promise<ModelPackage> {
  const found = nameOrPath.endsWith('.json') ? undefined : findPackageDir(nameOrPath);
  if (found) return loadModelPackage(found);
  const configFile = configFileFor(nameOrPath);
  if (!fs.existsSync(configFile)) {
    throw new Error(
      `No model package "${nameOrPath}": looked for ${path.join(releasesDir(), nameOrPath)}/ and ${path.join(modelsDir(), nameOrPath)}/, ` +
        `and there is no build config ${configFile} to build it from. Set model.package to a package name or directory.`,
    );
  }
  logger.info(`model package ${nameOrPath}: building it from ${configFile} unless the build there is up to date (once; later starts reuse it)`);
  onBuild?.(configFile);
  const { ensureModelPackage } = await import('../tools/cli/build-model.js');
  return loadModelPackage((await ensureModelPackage(configFile)).dir);
}
