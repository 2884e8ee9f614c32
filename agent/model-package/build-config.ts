import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { expandPath } from '../config/paths.js';

/**
 * What `edge-exit build-model` reads: where the base model is, where to cut it,
 * how frames are fitted to its input. Paths may use ${shared} and ${models}.
 */
export const buildConfigSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only (it names the package directory)'),
  baseModel: z.object({
    path: z.string(),
    /** Where a real gateway may fetch the base model from when `path` is missing. */
    url: z.string().url().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  }),
  labels: z.object({ task: z.string(), path: z.string() }),
  /** Block boundaries to cut at, in order; see `edge-exit inspect` for the names. */
  cuts: z.array(z.string()).min(1),
  resize: z.enum(['stretch', 'center-crop']).default('stretch'),
  /** Runs per segment when measuring latency for the manifest. */
  latencyRuns: z.number().int().min(1).max(1000).default(30),
});
export type BuildConfig = z.infer<typeof buildConfigSchema>;

export interface ResolvedBuildConfig extends BuildConfig {
  configFile: string;
  baseModelPath: string;
  labelsPath: string;
}

export class BuildConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildConfigError';
  }
}

export function loadBuildConfig(configFile: string, env: NodeJS.ProcessEnv = process.env): ResolvedBuildConfig {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (error) {
    throw new BuildConfigError(`Cannot read build config ${configFile}: ${(error as Error).message}`);
  }
  const parsed = buildConfigSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new BuildConfigError(`Build config ${configFile} is invalid:\n${lines.join('\n')}`);
  }
  const baseDir = path.dirname(path.resolve(configFile));
  return {
    ...parsed.data,
    configFile: path.resolve(configFile),
    baseModelPath: expandPath(parsed.data.baseModel.path, baseDir, env),
    labelsPath: expandPath(parsed.data.labels.path, baseDir, env),
  };
}
