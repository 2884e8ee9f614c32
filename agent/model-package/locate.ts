import fs from 'node:fs';
import path from 'node:path';
import { readConfigObject } from '../config/json-file.js';
import { configFileFor, modelsDir } from '../config/paths.js';
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

/** A value that names something to open but matches nothing there; the message says what was looked at and what to pass. */
export class PackageNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PackageNotFoundError';
  }
}

export type PackageLocation =
  /** A package directory: named by path, a release (models/releases/<name>/) or a build (models/<name>/). */
  | { kind: 'package'; dir: string; source: 'path' | 'release' | 'build' }
  /** A plain model file named by path (a single-exit classifier, not a package). */
  | { kind: 'model'; file: string }
  /** A package name (or a config's) with no package yet; `configFile` is the config that makes it, when there is one. */
  | { kind: 'missing'; name: string; looked: string[]; configFile: string | undefined };

export type MissingPackage = Extract<PackageLocation, { kind: 'missing' }>;

/** A value with a path separator, an existing file or directory, or a .tflite suffix is a path; anything else is a name. */
export function isPathValue(value: string): boolean {
  return value.includes('/') || value.includes(path.sep) || value.endsWith('.tflite') || fs.existsSync(value);
}

const hasManifest = (dir: string) => fs.existsSync(path.join(dir, MANIFEST_FILE));

/**
 * Where what a command names is, found the same way by every command that opens a
 * package: a build or training config (.json) stands for the package it names; a path
 * is a package directory or a .tflite file; a name is a release first, then a build.
 * Throws PackageNotFoundError for a path that holds neither.
 */
export function locatePackage(value: string, env: NodeJS.ProcessEnv = process.env): PackageLocation {
  if (value.endsWith('.json')) return locateByConfig(configFileFor(value, env), env);
  if (isPathValue(value)) return locatePath(value, env);
  const configFile = configFileFor(value, env);
  return locateName(value, fs.existsSync(configFile) ? configFile : undefined, env);
}

function locateName(name: string, configFile: string | undefined, env: NodeJS.ProcessEnv): PackageLocation {
  const looked = [path.join(releasesDir(env), name), path.join(modelsDir(env), name)];
  const dir = looked.find(hasManifest);
  if (dir) return { kind: 'package', dir, source: dir === looked[0] ? 'release' : 'build' };
  return { kind: 'missing', name, looked, configFile };
}

function locatePath(value: string, env: NodeJS.ProcessEnv): PackageLocation {
  const resolved = path.resolve(value);
  const stat = fs.statSync(resolved, { throwIfNoEntry: false });
  if (stat?.isFile()) return { kind: 'model', file: resolved };
  if (stat?.isDirectory() && hasManifest(resolved)) return { kind: 'package', dir: resolved, source: 'path' };
  const what = stat ? `${resolved} is a directory without ${MANIFEST_FILE}, so not a model package` : `${resolved} does not exist`;
  throw new PackageNotFoundError(
    `${what}. Give a package directory (one holding ${MANIFEST_FILE}) or a package name such as ${defaultPackage(env)}; \`edge-exit classify\` also takes a .tflite model file.`,
  );
}

/** A config stands for the package of its "name"; an unreadable config is reported as missing, with no config to build from. */
function locateByConfig(configFile: string, env: NodeJS.ProcessEnv): PackageLocation {
  let name: unknown;
  try {
    name = (readConfigObject(configFile) as { name?: unknown }).name;
  } catch {
    return { kind: 'missing', name: path.basename(configFile, '.json'), looked: [configFile], configFile: undefined };
  }
  // A config without a usable name is the builder's to report.
  if (typeof name !== 'string') return { kind: 'missing', name: path.basename(configFile, '.json'), looked: [configFile], configFile };
  return locateName(name, configFile, env);
}

/** Training and cascade configs are made by `edge-exit train`; build configs by `edge-exit build-model`. */
export function isTrainingConfig(configFile: string): boolean {
  try {
    const json = readConfigObject(configFile);
    return typeof json === 'object' && json !== null && ('training' in json || ('glance' in json && 'main' in json));
  } catch {
    return false; // the loaders report unreadable files
  }
}

/** The command that makes a missing package, for the message that reports it. */
export function makeCommandFor(missing: MissingPackage, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!missing.configFile) return undefined;
  // A config found by the package's own name is given by that name, as a user would type it.
  const config = configFileFor(missing.name, env) === missing.configFile ? missing.name : missing.configFile;
  return `edge-exit ${isTrainingConfig(missing.configFile) ? 'train' : 'build-model'} -c ${config}`;
}
