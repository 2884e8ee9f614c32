import { z } from 'zod';

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

export const segmentSchema = modelFileSchema.extend({
  index: z.number().int().nonnegative(),
  /** Cut point names: "input" for the first segment's start. */
  from: z.string(),
  to: z.string(),
});
export type SegmentEntry = z.infer<typeof segmentSchema>;

export const headSchema = modelFileSchema.extend({
  name: z.string(),
  /** The index of the segment whose output this head reads. */
  afterSegment: z.number().int().nonnegative(),
  /** Key into manifest.labels. */
  task: z.string(),
});
export type HeadEntry = z.infer<typeof headSchema>;

/** Filled by calibration (issue 3): a named set of exit thresholds with its measured cost and accuracy. */
export const operatingPointSchema = z.object({
  name: z.string(),
  policy: z.enum(['max-probability', 'entropy', 'patience']),
  thresholds: z.array(z.number().min(0).max(1)),
  maxExit: z.number().int().nonnegative(),
  validationAccuracy: z.number().min(0).max(1),
  expectedMacs: z.number().nonnegative(),
  expectedLatencyMs: z.number().nonnegative(),
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
});
export type Manifest = z.infer<typeof manifestSchema>;
