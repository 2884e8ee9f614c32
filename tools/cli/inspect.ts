import fs from 'node:fs';
import path from 'node:path';
import { readManifest } from '../../agent/model-package/load.js';
import { MANIFEST_FILE } from '../../agent/model-package/manifest.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { checkEdgeTpu, formatEdgeTpuReport } from '../tflite/edgetpu-check.js';
import { describeModel, formatModelDescription } from '../tflite/inspect.js';

function readModel(file: string) {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Error(`Cannot read model ${file}: ${(error as Error).message}`);
  }
  return readTfliteModel(bytes);
}

/** Every .tflite file a package's manifest lists: segments, their Edge TPU variants, heads. */
function packageFiles(dir: string): string[] {
  const manifest = readManifest(dir);
  return [...manifest.segments.flatMap((s) => [s.file, ...(s.edgetpu ? [s.edgetpu.file] : [])]), ...manifest.heads.map((h) => h.file)];
}

/**
 * `inspect --edgetpu` checks a model, or every file of a package directory,
 * against the Edge TPU's requirements; it exits 1 when one would not run
 * entirely on the TPU.
 */
function inspectEdgeTpu(target: string, json: boolean): void {
  const isPackage = fs.existsSync(path.join(target, MANIFEST_FILE));
  const files = isPackage ? packageFiles(target).map((f) => path.join(target, f)) : [target];
  const reports = files.map((file) => ({ file: isPackage ? path.basename(file) : file, ...checkEdgeTpu(readModel(file)) }));
  process.stdout.write(json ? `${JSON.stringify(reports, null, 2)}\n` : `${reports.map((r) => formatEdgeTpuReport(r.file, r)).join('\n')}\n`);
  if (reports.some((r) => !r.passes)) process.exitCode = 1;
}

export function inspectCommand(file: string, options: { json?: boolean; edgetpu?: boolean }): void {
  if (options.edgetpu) return inspectEdgeTpu(file, options.json ?? false);
  const description = describeModel(readModel(file));
  process.stdout.write(options.json ? `${JSON.stringify(description, null, 2)}\n` : `${formatModelDescription(description)}\n`);
}
