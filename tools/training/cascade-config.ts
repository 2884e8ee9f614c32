// A cascade: a small glance network trained at a lower input size runs first on
// the frame shrunk to its size; frames it is unsure of go on to the full
// multi-exit network. Each network is a plain training config, trained and
// cached on its own, so adding a glance never retrains the full network.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readConfigObject, readJsonFile } from '../../agent/config/json-file.js';
import { configFileFor } from '../../agent/config/paths.js';
import { BuildConfigError } from '../model-package/build-config.js';
import { loadTrainConfig, type ResolvedTrainConfig } from './train-config.js';

export const cascadeConfigSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only (it names the package directory)'),
  /** Training config (a name beside this file, or a .json path) of the full network: it sets the package's input, exits and task. */
  main: z.string(),
  /** Training config of the glance network, whose input side must divide the main one's; only its final exit is kept. */
  glance: z.string(),
  /**
   * Replaces the main config's task.balancedConfidenceZ for the cascade's
   * calibration. A glance whose validation accuracy overstates its test
   * accuracy more than the main network's does needs more in reserve.
   */
  balancedConfidenceZ: z.number().min(0).max(10).optional(),
});

export interface ResolvedCascadeConfig {
  name: string;
  configFile: string;
  main: ResolvedTrainConfig;
  glance: ResolvedTrainConfig;
}

/** Cascade configs name a glance and a main training config; unreadable files are left to the loaders to report. */
export function isCascadeConfigFile(file: string): boolean {
  try {
    const json = readConfigObject(file);
    return typeof json === 'object' && json !== null && 'glance' in json && 'main' in json;
  } catch {
    return false;
  }
}

/** A config a cascade names: beside it, else in the config folders. */
function referencedFile(reference: string, baseDir: string): string {
  const beside = path.resolve(baseDir, reference.endsWith('.json') ? reference : `${reference}.json`);
  return fs.existsSync(beside) ? beside : configFileFor(reference);
}

export function loadCascadeConfig(configFile: string, env: NodeJS.ProcessEnv = process.env): ResolvedCascadeConfig {
  const data = readJsonFile(configFile, cascadeConfigSchema, 'cascade config', (message) => new BuildConfigError(message));
  const baseDir = path.dirname(path.resolve(configFile));
  const main = loadTrainConfig(referencedFile(data.main, baseDir), env);
  const glance = loadTrainConfig(referencedFile(data.glance, baseDir), env);
  const problems: string[] = [];
  if (glance.inputSize >= main.inputSize || main.inputSize % glance.inputSize !== 0) {
    problems.push(`the glance's inputSize ${glance.inputSize} must divide the main network's ${main.inputSize} and be smaller: the glance reads the frame shrunk by a whole factor`);
  }
  if ((glance.frameSize ?? glance.inputSize) !== main.inputSize) {
    problems.push(`the glance reads the ${main.inputSize}x${main.inputSize} frame shrunk, so it must train on that: set "frameSize": ${main.inputSize} in its config`);
  }
  // The glance must not have trained on the images the cascade is calibrated on.
  if (glance.datasetPath !== main.datasetPath) problems.push(`the glance trains on ${glance.datasetPath} but the main network on ${main.datasetPath}`);
  for (const field of ['name', 'trainSplit', 'validationFraction', 'trainPerClass', 'validationPerClass'] as const) {
    if (glance.task[field] !== main.task[field]) problems.push(`task.${field} differs: ${String(glance.task[field])} in the glance, ${String(main.task[field])} in the main network`);
  }
  if (glance.training.seed !== main.training.seed) problems.push(`training.seed differs (${glance.training.seed} and ${main.training.seed}), so would the validation split`);
  if (problems.length > 0) {
    throw new BuildConfigError(`Cascade config ${configFile} is invalid: ${data.glance} cannot run ahead of ${data.main}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
  const calibrated = data.balancedConfidenceZ === undefined ? main : { ...main, task: { ...main.task, balancedConfidenceZ: data.balancedConfidenceZ } };
  return { name: data.name, configFile: path.resolve(configFile), main: calibrated, glance };
}
