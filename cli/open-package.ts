import path from 'node:path';
import { loadModelPackage, type ModelPackage } from '../agent/model-package/load.js';
import { locatePackage, makeCommandFor, PackageNotFoundError, type MissingPackage } from '../agent/model-package/locate.js';

/**
 * The package a gateway command names (run, server, classify), as it is: a release,
 * a build or a directory. A gateway never builds one (that pulls in tfjs and tools/),
 * so a missing package is an error that says where it looked and what builds it.
 */
export function openPackage(nameOrPath: string, setting = '-c'): ModelPackage {
  const found = locatePackage(nameOrPath);
  if (found.kind === 'package') return loadModelPackage(found.dir);
  if (found.kind === 'model') {
    throw new PackageNotFoundError(`${found.file} is a single model, not a model package: a package is a directory holding manifest.json (build one with \`edge-exit build-model\`).`);
  }
  throw new PackageNotFoundError(missingPackageMessage(found, setting));
}

/** What is missing, where it was looked for, and the command that makes it. */
export function missingPackageMessage(missing: MissingPackage, setting: string): string {
  const looked = `looked for ${missing.looked.map((dir) => (dir.endsWith('.json') ? dir : `${dir}${path.sep}`)).join(' and ')}`;
  const command = makeCommandFor(missing);
  const fix = command
    ? `Build it on a workstation (with ../shared beside the checkout) with \`${command}\`, then start again, or set ${setting} to a released package (under models/releases/).`
    : `There is no config to build it from either: set ${setting} to a package name (a release under models/releases/) or a package directory.`;
  return `No model package "${missing.name}": ${looked}. ${fix}`;
}
