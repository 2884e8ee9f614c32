import fs from 'node:fs';
import path from 'node:path';
import { isEdgeTpuModel, type TfliteModel } from '../tflite/model.js';
import { readTfliteModel } from '../tflite/reader.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, manifestSchema, type Manifest, type ModelFileEntry, type SegmentEntry } from './manifest.js';
import { sha256Hex } from './sha256.js';
import { IMAGE_BOUNDARY, imageSegmentProblems, mainChainStart, readsImage } from './image-segments.js';
import { describeSpecMismatch, tensorSpecOf } from './tensor-spec.js';

/** A release (models/releases/<name>/) is shipped, not built here: it is restored, or another package is run. */
function fixHint(packageDir: string): string {
  const name = path.basename(path.resolve(packageDir));
  if (path.basename(path.dirname(path.resolve(packageDir))) === 'releases') {
    return `It is a released package: restore models/releases/${name}/ from the repository (git checkout -- models/releases/${name}), or point model.package at another package.`;
  }
  return 'Rebuild it with `edge-exit build-model --force` (or fix the listed files).';
}

export class ModelPackageError extends Error {
  constructor(
    readonly packageDir: string,
    readonly problems: string[],
  ) {
    super(
      `Model package ${packageDir} is not usable:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        fixHint(packageDir),
    );
    this.name = 'ModelPackageError';
  }
}

export interface ModelPackage {
  dir: string;
  manifest: Manifest;
  /** The verified bytes of each .tflite file, by file name, so nothing is read twice. */
  files: Map<string, Buffer>;
}

export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new ModelPackageError(dir, [`${MANIFEST_FILE} is missing: no package has been built here (run \`edge-exit build-model\`)`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelPackageError(dir, [`${MANIFEST_FILE} is not valid JSON: ${(error as Error).message}`]);
  }
  const version = (json as { formatVersion?: unknown })?.formatVersion;
  if (version !== MANIFEST_FORMAT_VERSION) {
    throw new ModelPackageError(dir, [`${MANIFEST_FILE} has formatVersion ${String(version)}; this edge-exit reads version ${MANIFEST_FORMAT_VERSION}`]);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new ModelPackageError(
      dir,
      parsed.error.issues.map((issue) => `${MANIFEST_FILE} field ${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  return parsed.data;
}

function checkModelFile(dir: string, entry: ModelFileEntry, what: string, files: Map<string, Buffer>, problems: string[]): void {
  const model = verifiedModel(dir, entry, what, files, problems);
  if (model) problems.push(...seamProblems(entry, model, `${what} file ${entry.file}`));
}

/** Where a model file's input or output differs from what the manifest says of them. */
function seamProblems(entry: Pick<ModelFileEntry, 'input' | 'output'>, model: TfliteModel, label: string): string[] {
  return (['input', 'output'] as const).flatMap((which) => {
    const mismatch = describeSpecMismatch(entry[which], tensorSpecOf(model, which));
    return mismatch.length > 0 ? [`${label}: its ${which} has ${mismatch.join(', ')}`] : [];
  });
}

/**
 * The Edge TPU variant keeps the CPU segment's inputs and outputs (the compiler
 * replaces only what lies between them), so the seams are checked against the
 * CPU entry's; it must hold the Edge TPU op and come from this very segment.
 */
function checkEdgeTpuVariant(dir: string, segment: SegmentEntry, what: string, files: Map<string, Buffer>, problems: string[]): void {
  const variant = segment.edgetpu!;
  const label = `${what}'s Edge TPU variant`;
  if (variant.compiledFrom !== segment.sha256) {
    problems.push(`${label} ${variant.file} was compiled from another ${segment.file} (sha256 ${variant.compiledFrom}): run \`edge-exit build-model --edgetpu\` again`);
    return;
  }
  const model = verifiedModel(dir, variant, label, files, problems);
  if (!model) return;
  if (!isEdgeTpuModel(model)) problems.push(`${label} ${variant.file} holds no edgetpu-custom-op: it was not compiled by edgetpu_compiler`);
  problems.push(...seamProblems(segment, model, `${label} ${variant.file} (against ${segment.file})`));
}

/** Reads a file the manifest lists, checks its hash and parses it; undefined (with the problem listed) otherwise. */
function verifiedModel(dir: string, entry: { file: string; sha256: string }, what: string, files: Map<string, Buffer>, problems: string[]) {
  const file = path.join(dir, entry.file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    problems.push(`${what} file ${entry.file} is missing`);
    return undefined;
  }
  const digest = sha256Hex(bytes);
  if (digest !== entry.sha256) {
    problems.push(`${what} file ${entry.file} has sha256 ${digest}, but the manifest says ${entry.sha256}: the file was changed or corrupted`);
    return undefined;
  }
  let model;
  try {
    model = readTfliteModel(bytes);
  } catch (error) {
    problems.push(`${what} file ${entry.file}: ${(error as Error).message}`);
    return undefined;
  }
  files.set(entry.file, bytes);
  return model;
}

/** Reads a package and checks everything a run relies on, listing every problem found at once. */
export function loadModelPackage(dir: string): ModelPackage {
  const manifest = readManifest(dir);
  const problems: string[] = [];
  const files = new Map<string, Buffer>();
  manifest.segments.forEach((segment, i) => {
    if (segment.index !== i) problems.push(`segment ${i} has index ${segment.index}; segments must be listed in order`);
    checkModelFile(dir, segment, `segment ${i}`, files, problems);
    if (segment.edgetpu) checkEdgeTpuVariant(dir, segment, `segment ${i}`, files, problems);
    if (readsImage(segment)) {
      problems.push(...imageSegmentProblems(manifest, i));
    } else if (i === 0) {
      problems.push(`segment 0 starts at ${segment.from}; the first segment reads the image ("${IMAGE_BOUNDARY}")`);
    } else if (manifest.segments[i - 1]!.to !== segment.from) {
      problems.push(`segment ${i} starts at ${segment.from}, which is neither "${IMAGE_BOUNDARY}" nor where segment ${i - 1} ends`);
    } else {
      const seam = describeSpecMismatch(manifest.segments[i - 1]!.output, segment.input);
      if (seam.length > 0) problems.push(`the seam between segments ${i - 1} and ${i} does not match: segment ${i}'s input has ${seam.join(', ')}`);
    }
  });
  const last = manifest.segments.at(-1)!;
  const mainStart = mainChainStart(manifest);
  const [, height, width] = manifest.segments[mainStart]?.input.shape ?? [];
  if (mainStart >= 0 && (height !== manifest.input.height || width !== manifest.input.width)) {
    problems.push(`segment ${mainStart} starts the chain to the final exit (${last.to}) from the image, so it must read it at the package input size ${manifest.input.width}x${manifest.input.height}, not ${width}x${height}`);
  }
  for (const head of manifest.heads) {
    checkModelFile(dir, head, `head ${head.name}`, files, problems);
    const segment = manifest.segments[head.afterSegment];
    if (!segment) {
      problems.push(`head ${head.name} reads segment ${head.afterSegment}, which does not exist`);
    } else {
      const seam = describeSpecMismatch(segment.output, head.input);
      if (seam.length > 0) problems.push(`head ${head.name}'s input does not match segment ${head.afterSegment}'s output: it has ${seam.join(', ')}`);
    }
    const labels = manifest.labels[head.task];
    const classes = head.output.shape[head.output.shape.length - 1];
    if (!labels) problems.push(`head ${head.name} names task ${head.task}, which has no labels in the manifest`);
    else if (labels.length !== classes) problems.push(`head ${head.name} outputs ${classes} classes but task ${head.task} has ${labels.length} labels`);
  }
  if (problems.length > 0) throw new ModelPackageError(dir, problems);
  return { dir, manifest, files };
}
