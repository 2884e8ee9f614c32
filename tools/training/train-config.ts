// What `edge-exit train` reads: the pretrained model to start from, the
// ImageFolder task, where the exits go, and the joint training recipe.
import path from 'node:path';
import { z } from 'zod';
import { readJsonFile } from '../../agent/config/json-file.js';
import { expandPath } from '../../agent/config/paths.js';
import { BuildConfigError, taskSchema } from '../model-package/build-config.js';

const recipeSchema = z.object({
  epochs: z.number().int().min(1).max(500).default(10),
  /** Stop after this many optimizer steps (smoke tests); default: epochs x steps per epoch. */
  maxSteps: z.number().int().min(1).optional(),
  batchSize: z.number().int().min(2).max(1024).default(96),
  learningRate: z.number().positive().max(1).default(0.03),
  warmupFraction: z.number().min(0).max(0.5).default(0.03),
  /** Epochs (may be fractional) at the start that train only the heads, on the frozen pretrained backbone. */
  headWarmupEpochs: z.number().min(0).max(50).default(0),
  /**
   * Block boundary (e.g. "block_2") through which the pretrained layers stay as they are: no batch
   * norm, no gradients. The early high-resolution layers are about half of a training step's time,
   * so freezing them buys input resolution or epochs within the same budget.
   */
  freezeThrough: z.string().optional(),
  /** The backbone's learning rate relative to the heads'. */
  backboneLrScale: z.number().positive().max(1).default(1),
  weightDecay: z.number().min(0).max(0.1).default(4e-5),
  labelSmoothing: z.number().min(0).max(0.5).default(0.1),
  /** Loss weight of each exit, early to final, in the joint phase; default 1 each. An exit of weight 0 takes no part in it (nor in distillation). */
  exitWeights: z.array(z.number().min(0).max(10)).optional(),
  /**
   * Epochs (may be fractional) after the joint phase that train only the early exit heads, on the
   * fine-tuned backbone kept as it is (cross-entropy and distillation from the final exit). With
   * early exit weights of 0 the backbone serves the final exit alone, which the joint loss otherwise
   * holds back, and the heads learn at about the cost of inference.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  headEpochs: z.number().min(0).max(50).optional(),
  /** Self-distillation: early exits also match the final exit's softened output. */
  distillation: z.object({ weight: z.number().min(0).max(10).default(0.5), temperature: z.number().min(1).max(20).default(3) }).prefault({}),
  /** Width of the 1x1 convolution every early exit head starts with. */
  headWidth: z.number().int().min(8).max(2048).default(192),
  dropout: z.number().min(0).max(0.9).default(0.1),
  /** Random-crop padding, in pixels at the training input size. */
  augmentPad: z.number().int().min(0).max(64).default(8),
  /**
   * Cutout: one square per training image, its side this fraction of the input, set to the value
   * the model input maps to 0. A regularizer for when the final exit nearly fits the training set.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  cutout: z.number().gt(0).max(1).optional(),
  /**
   * CutMix in the joint phase: with this probability a batch pastes one box, its area drawn from
   * Beta(alpha, alpha), from a shuffled copy of itself into every image, and the loss weighs each
   * image's label and its partner's by the area each keeps. Unlike cutout, the box holds another
   * image's evidence rather than nothing.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  cutMix: z.object({ probability: z.number().gt(0).max(1), alpha: z.number().positive().max(10).default(1) }).optional(),
  /**
   * Progressive resizing: the first `epochs` joint epochs train on images shrunk to `inputSize`,
   * about (inputSize / model input)^2 of a full step's cost, and the rest at the model's input size,
   * so that the network ends on the resolution it runs at. Buys epochs within the same time budget.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  lowResolution: z.object({ inputSize: z.number().int().min(16).max(512), epochs: z.number().int().min(1).max(500) }).optional(),
  /**
   * Training steps run forward under bfloat16 autocast; weights, gradients, the optimizer, evaluation
   * and export stay float32. Where the processor has bfloat16 instructions (avx512_bf16, AMX) a step
   * is cheaper, which buys epochs; tools/experiments/bf16_step_time.py measures it on a work directory.
   * Elsewhere bfloat16 is emulated (13x slower than float32 on an AVX2 core), so the trainer runs
   * float32 steps, says so, and records `stepPrecision` in its report.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  bfloat16: z.boolean().optional(),
  /**
   * An exponential moving average of the weights (and batch-norm statistics) over the joint phase,
   * `decay` per step, replaces the last step's weights when the joint phase ends; validation also
   * reports it per epoch. Averaging about 1/(1 - decay) steps smooths the noise of the last ones.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  weightAverage: z.object({ decay: z.number().min(0).lt(1) }).optional(),
  /**
   * Validation images each epoch's report reads (all by default). The per-epoch figures only draw the
   * training curve; the package's figures and its calibration always use the whole split, so a sample
   * buys back the minutes a full pass costs every epoch (about 20 s at 128x128 here, twice with a
   * weight average).
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  epochValidationImages: z.number().int().min(1).optional(),
  threads: z.number().int().min(1).max(64).default(2),
  seed: z.number().int().default(1),
  checkpointMinutes: z.number().positive().default(5),
  /** Gradient norm clip, a guard against the odd exploding batch while the exits are young. */
  clipGradNorm: z.number().positive().default(5),
  /** Images that set the batch-norm statistics of the pretrained layers before step 0. */
  batchnormInitImages: z.number().int().min(1).default(1024),
  /** Images whose activation ranges calibrate the int8 export. */
  calibrationImages: z.number().int().min(1).default(1000),
});

export const trainConfigSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only (it names the package directory)'),
  baseModel: z.object({ path: z.string() }),
  /** Square input side the model is trained and run at. */
  inputSize: z.number().int().min(32).max(512),
  /**
   * Side the images are decoded at before being shrunk to inputSize by area
   * averaging, a whole factor: a cascade's glance network reads the frame the
   * main network reads, shrunk, and should train on exactly that.
   */
  // Optional rather than defaulted: a default would enter the work directory's key and orphan earlier runs.
  frameSize: z.number().int().min(32).max(2048).optional(),
  resize: z.enum(['stretch', 'center-crop']).default('stretch'),
  /** Block boundaries that get an early exit, in order; the final exit follows "pooled". */
  cuts: z.array(z.string()).min(1),
  /** The build config's task without its frozen-feature heads: here heads train with the backbone. */
  task: taskSchema.omit({ heads: true, training: true }).extend({
    /** Cap on test images per class for the float report (the whole split by default). */
    testPerClass: z.number().int().positive().optional(),
  }),
  training: recipeSchema.prefault({}),
  /** Python with PyTorch; default $EDGE_EXIT_PYTHON, else Debian's /usr/bin/python3, else python3. */
  python: z.string().optional(),
  latencyRuns: z.number().int().min(1).max(1000).default(30),
});
export type TrainConfig = z.infer<typeof trainConfigSchema>;

export interface ResolvedTrainConfig extends TrainConfig {
  configFile: string;
  baseModelPath: string;
  datasetPath: string;
}

export function loadTrainConfig(configFile: string, env: NodeJS.ProcessEnv = process.env): ResolvedTrainConfig {
  const data = readJsonFile(configFile, trainConfigSchema, 'training config', (message) => new BuildConfigError(message));
  const exitCount = data.cuts.length + 1;
  const weights = data.training.exitWeights;
  if (weights && weights.length !== exitCount) {
    throw new BuildConfigError(`Training config ${configFile} is invalid:\n  - training.exitWeights: ${data.cuts.length} cuts make ${exitCount} exits, so give ${exitCount} weights, not ${weights.length}`);
  }
  // The final exit is the full model the server runs and the early exits' distillation teacher.
  if (weights && weights[exitCount - 1] === 0) {
    throw new BuildConfigError(`Training config ${configFile} is invalid:\n  - training.exitWeights: the final exit's weight (the last) must be above 0; it is the full model and the early exits' teacher. To train early exits alone on a trained backbone, use training.headEpochs`);
  }
  if (data.frameSize !== undefined && data.frameSize % data.inputSize !== 0) {
    throw new BuildConfigError(`Training config ${configFile} is invalid:\n  - frameSize: ${data.frameSize} is not a whole multiple of inputSize ${data.inputSize}; the images are shrunk from it by a whole factor`);
  }
  const low = data.training.lowResolution;
  if (low && low.inputSize >= data.inputSize) {
    throw new BuildConfigError(`Training config ${configFile} is invalid:\n  - training.lowResolution.inputSize: ${low.inputSize} is not below inputSize ${data.inputSize}; the early epochs train on smaller images than the model runs at`);
  }
  if (low && low.epochs >= data.training.epochs) {
    throw new BuildConfigError(`Training config ${configFile} is invalid:\n  - training.lowResolution.epochs: ${low.epochs} leaves none of the ${data.training.epochs} epochs at inputSize ${data.inputSize}; the network must end on the resolution it runs at, so give fewer`);
  }
  const baseDir = path.dirname(path.resolve(configFile));
  return {
    ...data,
    configFile: path.resolve(configFile),
    baseModelPath: expandPath(data.baseModel.path, baseDir, env),
    datasetPath: expandPath(data.task.dataset, baseDir, env),
  };
}
