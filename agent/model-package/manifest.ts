import { z } from 'zod';
import { EXIT_POLICY_NAMES } from '../exit-policy/policy.js';

/** Bumped whenever a field changes meaning; loaders refuse other versions. */
export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export const tensorSpecSchema = z.object({
  shape: z.array(z.number().int().positive()),
  dtype: z.enum(['int8', 'uint8', 'float32', 'int32']),
  scale: z.number().positive().optional(),
  zeroPoint: z.number().int().optional(),
});
export type TensorSpec = z.infer<typeof tensorSpecSchema>;

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

/** Median milliseconds per run, keyed by "<backend>-<threads>t", e.g. "xnnpack-1t". */
const latencySchema = z.record(z.string(), z.number().nonnegative());

const modelFileSchema = z.object({
  file: z.string().regex(/^[\w.-]+\.tflite$/, 'a .tflite file name inside the package directory'),
  sha256: sha256Schema,
  input: tensorSpecSchema,
  output: tensorSpecSchema,
  macs: z.number().int().nonnegative(),
  latencyMs: latencySchema,
});
export type ModelFileEntry = z.infer<typeof modelFileSchema>;

/** One line of edgetpu_compiler's operation table: an operator type in a file, how many, and where they run. */
export const edgeTpuOperationSchema = z.object({
  op: z.string(),
  count: z.number().int().nonnegative(),
  /** The compiler's own words: "Mapped to Edge TPU", or why not. */
  status: z.string(),
  onTpu: z.boolean(),
});
export type EdgeTpuOperation = z.infer<typeof edgeTpuOperationSchema>;

/** A segment compiled by edgetpu_compiler: it holds edgetpu-custom-op and runs only with a Coral device. */
export const edgeTpuVariantSchema = z.object({
  file: modelFileSchema.shape.file,
  sha256: sha256Schema,
  /** The sha256 of the CPU segment it was compiled from: a rebuilt segment leaves this variant stale. */
  compiledFrom: sha256Schema,
  opsOnTpu: z.number().int().nonnegative(),
  opsOnCpu: z.number().int().nonnegative(),
  operations: z.array(edgeTpuOperationSchema),
});
export type EdgeTpuVariant = z.infer<typeof edgeTpuVariantSchema>;

export const segmentSchema = modelFileSchema.extend({
  index: z.number().int().nonnegative(),
  /**
   * Cut point names. A segment reads the previous segment's output (`from` is
   * its `to`), or the image (`from` is "input"). An image segment smaller than
   * the package input reads it area-averaged by a whole factor: a low-resolution
   * glance network ahead of the chain, whose output only its own exit reads.
   */
  from: z.string(),
  to: z.string(),
  /** The Edge TPU variant of this segment (`build-model --edgetpu`); `file` is always the CPU one. */
  edgetpu: edgeTpuVariantSchema.optional(),
});
export type SegmentEntry = z.infer<typeof segmentSchema>;

export const headSchema = modelFileSchema.extend({
  name: z.string(),
  /** The index of the segment whose output this head reads. */
  afterSegment: z.number().int().nonnegative(),
  /** Key into manifest.labels. */
  task: z.string(),
  /** Trained exit heads: how they pool and how wide they are, and what they scored on validation. */
  grid: z.number().int().positive().optional(),
  hidden: z.number().int().nonnegative().optional(),
  floatValidationAccuracy: z.number().min(0).max(1).optional(),
  int8ValidationAccuracy: z.number().min(0).max(1).optional(),
});
export type HeadEntry = z.infer<typeof headSchema>;

/** Filled by calibration: a named set of exit thresholds with its cost and accuracy measured on the validation split. */
export const operatingPointSchema = z.object({
  name: z.string(),
  policy: z.enum(EXIT_POLICY_NAMES),
  thresholds: z.array(z.number().min(0).max(1)),
  patience: z.number().int().min(1).optional(),
  maxExit: z.number().int().nonnegative(),
  targetAccuracy: z.number().min(0).max(1).optional(),
  validationAccuracy: z.number().min(0).max(1),
  expectedMacs: z.number().nonnegative(),
  expectedLatencyMs: z.number().nonnegative(),
  exitHistogram: z.array(z.number().int().nonnegative()),
});
export type OperatingPoint = z.infer<typeof operatingPointSchema>;

export const manifestSchema = z.object({
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
  createdAt: z.string(),
  /** Hash of everything the build read; the build is skipped when it is unchanged. */
  buildKey: sha256Schema,
  source: z.object({ file: z.string(), sha256: sha256Schema }),
  input: z.object({
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    channels: z.literal(3),
    dtype: z.literal('uint8'),
    colorOrder: z.literal('RGB'),
    resize: z.enum(['stretch', 'center-crop']),
  }),
  labels: z.record(z.string(), z.array(z.string()).min(1)),
  segments: z.array(segmentSchema).min(1),
  heads: z.array(headSchema).min(1),
  operatingPoints: z.array(operatingPointSchema),
  /** Present when the segments have Edge TPU variants: who compiled them and what they need to run. */
  edgetpu: z
    .object({
      /** As `edgetpu_compiler --version` says it, e.g. 16.0.384591198. */
      compilerVersion: z.string(),
      /** The lowest Edge TPU runtime (libedgetpu) version the compiled segments run on. */
      runtimeVersion: z.number().int().positive(),
      compiledAt: z.string(),
    })
    .optional(),
  /** How the exit heads were trained, for packages built for a task. */
  training: z
    .object({
      dataset: z.string(),
      trainImages: z.number().int().nonnegative(),
      validationImages: z.number().int().nonnegative(),
      seed: z.number().int(),
      /** Latency figures the operating points' expected costs use. */
      latencyKey: z.string(),
    })
    .optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;
