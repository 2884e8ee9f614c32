import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (or installed package) root: two levels above agent/config/. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where datasets and base models are read from. On a developer machine and in
 * CI it is ../shared beside the checkout; a gateway points it elsewhere.
 */
export function sharedDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.EDGE_EXIT_SHARED_DIR ?? path.join(PROJECT_ROOT, '..', 'shared'));
}

/** Where built model packages live (models/<name>/), and their build configs (models/configs/). */
export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.EDGE_EXIT_MODELS_DIR ?? path.join(PROJECT_ROOT, 'models'));
}

/** Expands ${shared} and ${models} in a configured path, then resolves it against a base directory. */
export function expandPath(text: string, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const expanded = text.replaceAll('${shared}', sharedDir(env)).replaceAll('${models}', modelsDir(env));
  return path.resolve(baseDir, expanded);
}

/**
 * Where named build and training configs are found, in order: the ones a user should
 * pick (models/configs/), then the research recipes (tools/lab/configs/).
 */
export function configDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  return [path.join(modelsDir(env), 'configs'), path.join(PROJECT_ROOT, 'tools', 'lab', 'configs')];
}

/** A config named by file path, or by name in the config folders (the first folder when it is in none). */
export function configFileFor(nameOrPath: string, env: NodeJS.ProcessEnv = process.env): string {
  if (nameOrPath.endsWith('.json')) return path.resolve(nameOrPath);
  const candidates = configDirs(env).map((dir) => path.join(dir, `${nameOrPath}.json`));
  return candidates.find((file) => fs.existsSync(file)) ?? candidates[0]!;
}

/** The version in package.json: what --version prints and Home Assistant shows. */
export function agentVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}
