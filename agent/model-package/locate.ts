import fs from 'node:fs';
import path from 'node:path';
import { modelsDir } from '../config/paths.js';
import { MANIFEST_FILE } from './manifest.js';

/**
 * The recommended package: the fine-tuned glance cascade (docs/exits.md), released under models/releases/.
 * Its 10-epoch recipe, not the 22-epoch one, because a release must be rebuildable from a clean checkout in one
 * sitting on a 2-core host (81 minutes measured, against 2.5 hours).
 */
export const RECOMMENDED_PACKAGE = 'mobilenet_v2_cifar10_cascade_64_10ep_seed3';
/** The post-hoc package a workstation builds from ../shared in minutes, when the recommended one is not released. */
export const BUILT_DEFAULT_PACKAGE = 'mobilenet_v2_cifar10';

/**
 * The package every command uses unless told otherwise (run, server, classify, eval, build-model):
 * the recommended one once its release is committed, so a gateway never builds or trains.
 */
export function defaultPackage(env: NodeJS.ProcessEnv = process.env): string {
  return fs.existsSync(path.join(releasesDir(env), RECOMMENDED_PACKAGE, MANIFEST_FILE)) ? RECOMMENDED_PACKAGE : BUILT_DEFAULT_PACKAGE;
}

/** Committed release artifacts: models/releases/<name>/ with a manifest, the .tflite files and a README. */
export function releasesDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(modelsDir(env), 'releases');
}

/**
 * Where a named package is: a directory holding a manifest, a release under
 * models/releases/<name>/, or a build under models/<name>/; undefined when none
 * exists yet (a workstation can then build it from models/configs/<name>.json).
 */
export function findPackageDir(nameOrDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [path.resolve(nameOrDir), path.join(releasesDir(env), nameOrDir), path.join(modelsDir(env), nameOrDir)];
  const looksLikePath = nameOrDir.includes('/') || nameOrDir.includes(path.sep);
  return (looksLikePath ? candidates.slice(0, 1) : candidates.slice(1)).find((dir) => fs.existsSync(path.join(dir, MANIFEST_FILE)));
}
