// Reads a JSON file against a zod schema; every problem is reported with its
// field path, in one error of the caller's type.
import fs from 'node:fs';
import path from 'node:path';
import { configDirs } from './paths.js';
import type { z } from 'zod';

export function readJsonFile<S extends z.ZodType>(
  file: string,
  schema: S,
  what: string,
  makeError: (message: string) => Error,
): z.infer<S> {
  let json: unknown;
  try {
    json = readConfigObject(file);
  } catch (error) {
    throw makeError(`Cannot read ${what} ${file}: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 20).map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw makeError(`${what[0]!.toUpperCase()}${what.slice(1)} ${file} is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data as z.infer<S>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The override laid over its base: objects merge key by key, anything else (arrays included) replaces. */
function overlay(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...base };
  for (const [key, value] of Object.entries(override)) merged[key] = isObject(value) && isObject(base[key]) ? overlay(base[key], value) : value;
  return merged;
}

/**
 * A JSON config file with its `extends` resolved: `"extends": "name"` names a config
 * beside it (or in `searchDirs`), whose keys this file's own are laid over, so a recipe
 * is a base plus what differs. Throws on a missing base or a cycle.
 */
export function readConfigObject(file: string, searchDirs: readonly string[] = configDirs(), seen: readonly string[] = []): Record<string, unknown> {
  const resolved = path.resolve(file);
  if (seen.includes(resolved)) throw new Error(`"extends" goes round in a circle: ${[...seen, resolved].join(' -> ')}`);
  const json: unknown = JSON.parse(fs.readFileSync(resolved, 'utf8'));
  if (!isObject(json)) throw new Error('is not a JSON object');
  const { extends: base, ...own } = json;
  if (base === undefined) return own;
  if (typeof base !== 'string') throw new Error('"extends" must be the name of another config');
  const candidates = [path.dirname(resolved), ...searchDirs].map((dir) => path.resolve(dir, base.endsWith('.json') ? base : `${base}.json`));
  const baseFile = candidates.find((candidate) => fs.existsSync(candidate));
  if (!baseFile) throw new Error(`"extends": no config "${base}" (looked for ${candidates.join(', ')})`);
  return overlay(readConfigObject(baseFile, searchDirs, [...seen, resolved]), own);
}
