import path from 'node:path';
import { z } from 'zod';
import { readJsonFile } from '../../agent/config/json-file.js';
import { expandPath } from '../../agent/config/paths.js';

const headTrainingSchema = z.object({
  epochs: z.number().int().min(1).max(500).default(30),
  batchSize: z.number().int().min(8).max(4096).default(128),
  learningRate: z.number().positive().max(1).default(0.001),
  l2: z.number().min(0).max(1).default(0.0001),
  dropout: z.number().min(0).max(0.9).default(0.3),
  seed: z.number().int().default(1),
});

export const taskSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
  /** An ImageFolder root holding <trainSplit>/<class>/* (and <testSplit>/ for `edge-exit eval`). */
  dataset: z.string(),
  trainSplit: z.string().default('train'),
  testSplit: z.string().default('test'),
  validationFraction: z.number().gt(0).lt(1).default(0.1),
  /** Caps for quicker builds (tests); default: everything. */
  trainPerClass: z.number().int().positive().optional(),
  validationPerClass: z.number().int().positive().optional(),
  /** One per segment, in order: average-pool grid, and hidden width (0 = linear head). */
  heads: z.array(z.object({ grid: z.number().int().min(1).max(8), hidden: z.number().int().min(0).max(4096) })).min(1),
  training: headTrainingSchema.default(headTrainingSchema.parse({})),
  /** Target accuracies in points relative to the final exit, for the calibrated operating points. */
  calibrationDeltas: z.array(z.number().max(0).min(-50)).min(1).default([-0.5, -1, -2, -5]),
  /** Standard errors of the validation estimate "balanced" keeps in reserve within its 1-point tolerance. */
  balancedConfidenceZ: z.number().min(0).max(10).default(1.96),
});
export type TaskConfig = z.infer<typeof taskSchema>;

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
  /** The base model's own classes: packages without a `task` keep its classifier as their head. */
  labels: z.object({ task: z.string(), path: z.string() }).optional(),
  /** Square input side the backbone runs at (its convolutions accept any size); default: the base model's. */
  inputSize: z.number().int().min(32).max(1024).optional(),
  /** Block boundaries to cut at, in order; see `edge-exit inspect` for the names. */
  cuts: z.array(z.string()).min(1),
  /** Where the last segment ends: "pooled" (the whole backbone) or an earlier cut point. */
  end: z.string().default('pooled'),
  /** A classification task of the user's: one trained int8 exit head after every segment. */
  task: taskSchema.optional(),
  resize: z.enum(['stretch', 'center-crop']).default('stretch'),
  /** Runs per segment when measuring latency for the manifest. */
  latencyRuns: z.number().int().min(1).max(1000).default(30),
});
export type BuildConfig = z.infer<typeof buildConfigSchema>;

export interface ResolvedBuildConfig extends BuildConfig {
  configFile: string;
  baseModelPath: string;
  labelsPath: string | undefined;
  datasetPath: string | undefined;
}

export class BuildConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildConfigError';
  }
}

export function loadBuildConfig(configFile: string, env: NodeJS.ProcessEnv = process.env): ResolvedBuildConfig {
  const data = readJsonFile(configFile, buildConfigSchema, 'build config', (message) => new BuildConfigError(message));
  const { task, labels, cuts } = data;
  if (!task && !labels) throw new BuildConfigError(`Build config ${configFile} is invalid:\n  - give either labels (keep the base classifier) or task (train exit heads)`);
  if (task && task.heads.length !== cuts.length + 1) {
    throw new BuildConfigError(`Build config ${configFile} is invalid:\n  - task.heads: ${cuts.length} cuts make ${cuts.length + 1} segments, so give ${cuts.length + 1} heads (one per segment), not ${task.heads.length}`);
  }
  const baseDir = path.dirname(path.resolve(configFile));
  return {
    ...data,
    configFile: path.resolve(configFile),
    baseModelPath: expandPath(data.baseModel.path, baseDir, env),
    labelsPath: data.labels ? expandPath(data.labels.path, baseDir, env) : undefined,
    datasetPath: data.task ? expandPath(data.task.dataset, baseDir, env) : undefined,
  };
}
