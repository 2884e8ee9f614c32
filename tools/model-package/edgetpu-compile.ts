// Adds Edge TPU variants to a built package with Coral's edgetpu_compiler: every
// segment in one call, so that they share the Edge TPU's parameter cache, the
// exit heads left on the CPU (a few thousand MACs each: a trip to the
// accelerator would cost more than they do). The compiler's operation log says
// per file which ops run on the TPU and which stay on the CPU; it goes into the
// manifest.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModelPackage } from '../../agent/model-package/load.js';
import { MANIFEST_FILE, type EdgeTpuOperation, type EdgeTpuVariant, type Manifest } from '../../agent/model-package/manifest.js';
import { sha256Hex } from '../../agent/model-package/sha256.js';
import { runtimeVersionForCompiler } from '../../agent/runtime/edgetpu.js';
import { isEdgeTpuModel } from '../../agent/tflite/model.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { writeAtomically } from './write-package.js';

export const EDGETPU_COMPILER = 'edgetpu_compiler';

const INSTALL_HINT =
  'Install it on an x86-64 Debian or Ubuntu build host from Coral\'s apt repository (package edgetpu-compiler; steps in docs/edgetpu.md), ' +
  'or build without --edgetpu: the package then runs on the CPU everywhere.';

export class EdgeTpuCompilerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EdgeTpuCompilerError';
  }
}

/** The first executable `name` on PATH, as a shell would find it. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(compiler: string, args: string[], env: NodeJS.ProcessEnv) {
  const result = spawnSync(compiler, args, { env, encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 2 ** 20 });
  if (result.error) throw new EdgeTpuCompilerError(`${compiler} could not be run: ${result.error.message}. ${INSTALL_HINT}`);
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** "Edge TPU Compiler version 16.0.384591198" → 16.0.384591198 */
export function parseCompilerVersion(text: string): string | undefined {
  return /Edge TPU Compiler version\s+(\d+(?:\.\d+)*)/.exec(text)?.[1];
}

export interface CompilerLog {
  compilerVersion?: string;
  input?: string;
  output?: string;
  operations: EdgeTpuOperation[];
}

const MAPPED = 'Mapped to Edge TPU';

/**
 * Parses an operation log (<model>_edgetpu.log), or the table `-s` prints: a
 * header "Operator  Count  Status", then one line per operator type and status,
 * in columns separated by runs of spaces.
 */
export function parseCompilerLog(text: string): CompilerLog {
  const log: CompilerLog = { operations: [] };
  log.compilerVersion = parseCompilerVersion(text);
  log.input = /^Input(?: model)?:\s*(.+?)\s*$/m.exec(text)?.[1];
  log.output = /^Output(?: model)?:\s*(.+?)\s*$/m.exec(text)?.[1];
  let inTable = false;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*Operator\s+Count\s+Status\s*$/.test(line)) {
      inTable = true;
      continue;
    }
    if (!inTable || line.trim() === '') continue;
    const row = /^\s*([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$/.exec(line);
    if (!row) {
      inTable = false;
      continue;
    }
    const status = row[3]!;
    log.operations.push({ op: row[1]!, count: Number(row[2]), status, onTpu: status === MAPPED });
  }
  return log;
}

/** The compiler's path; checked before a long build or training run, not after it. */
export function requireEdgeTpuCompiler(env: NodeJS.ProcessEnv = process.env): string {
  const compiler = findOnPath(EDGETPU_COMPILER, env);
  if (!compiler) throw new EdgeTpuCompilerError(`--edgetpu needs Coral's Edge TPU Compiler, but ${EDGETPU_COMPILER} is not on PATH. ${INSTALL_HINT}`);
  return compiler;
}

/** Whether every segment already has a variant compiled from it. */
export function hasCurrentEdgeTpuVariants(manifest: Manifest): boolean {
  return manifest.edgetpu !== undefined && manifest.segments.every((s) => s.edgetpu?.compiledFrom === s.sha256);
}

/** Lines for people: per segment, how many ops the TPU runs and what stays on the CPU and why. */
export function formatEdgeTpuSummary(manifest: Manifest): string[] {
  if (!manifest.edgetpu) return ['  no Edge TPU variants'];
  const lines = [`  Edge TPU variants by edgetpu_compiler ${manifest.edgetpu.compilerVersion} (need Edge TPU runtime ${manifest.edgetpu.runtimeVersion} or later); heads stay on the CPU`];
  for (const segment of manifest.segments) {
    const v = segment.edgetpu;
    if (!v) continue;
    lines.push(`  ${v.file.padEnd(28)} ${v.opsOnTpu} ops on the Edge TPU, ${v.opsOnCpu} on the CPU`);
    for (const o of v.operations.filter((op) => !op.onTpu)) lines.push(`    ${o.op} x${o.count}: ${o.status}`);
  }
  return lines;
}

export interface EdgeTpuCompileOptions {
  env?: NodeJS.ProcessEnv;
  onProgress?: (stage: string) => void;
}

/** The file a compiled segment is kept under: the compiler's own naming. */
export function edgeTpuFileName(cpuFile: string): string {
  return cpuFile.replace(/\.tflite$/, '_edgetpu.tflite');
}

/**
 * Compiles the segments of the package in `dir` for the Edge TPU and records the
 * variants in its manifest; returns the new manifest. Nothing in the package
 * changes unless every segment compiled.
 */
export function compileEdgeTpuVariants(dir: string, options: EdgeTpuCompileOptions = {}): Manifest {
  const env = options.env ?? process.env;
  const compiler = requireEdgeTpuCompiler(env);
  const pkg = loadModelPackage(dir);
  const { manifest } = pkg;

  const versionRun = run(compiler, ['--version'], env);
  const compilerVersion = parseCompilerVersion(versionRun.output);
  if (versionRun.status !== 0 || !compilerVersion) {
    throw new EdgeTpuCompilerError(`${compiler} --version did not say which Edge TPU Compiler it is (exit ${versionRun.status}): ${versionRun.output.trim().slice(0, 500)}. ${INSTALL_HINT}`);
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-edgetpu-'));
  try {
    // Copies under their package names: the compiler names its outputs after its inputs.
    const inputs = manifest.segments.map((segment) => {
      const file = path.join(work, segment.file);
      fs.writeFileSync(file, pkg.files.get(segment.file)!);
      return file;
    });
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    options.onProgress?.(`edgetpu_compiler ${compilerVersion}: ${inputs.length} segments in one call`);
    // Segment order is run order: the compiler gives the parameter cache to the first models first.
    const compiled = run(compiler, ['--show_operations', '--out_dir', out, ...inputs], env);
    if (compiled.status !== 0) {
      throw new EdgeTpuCompilerError(
        `${EDGETPU_COMPILER} ${compilerVersion} failed (exit ${compiled.status}) on ${manifest.segments.map((s) => s.file).join(', ')}:\n` +
          `${compiled.output.trim().split('\n').slice(-15).join('\n')}\n` +
          `Check each segment with \`edge-exit inspect --edgetpu ${path.join(dir, manifest.segments[0]!.file)}\` (it lists what the compiler cannot map and why); the package is unchanged.`,
      );
    }

    const variants: { variant: EdgeTpuVariant; bytes: Buffer }[] = manifest.segments.map((segment) => {
      const compiledFile = path.join(out, edgeTpuFileName(segment.file));
      const logFile = compiledFile.replace(/\.tflite$/, '.log');
      if (!fs.existsSync(compiledFile)) {
        throw new EdgeTpuCompilerError(`${EDGETPU_COMPILER} exited 0 but wrote no ${path.basename(compiledFile)} for ${segment.file}; its output:\n${compiled.output.trim().slice(-2000)}`);
      }
      const bytes = fs.readFileSync(compiledFile);
      if (!isEdgeTpuModel(readTfliteModel(bytes))) {
        throw new EdgeTpuCompilerError(`${EDGETPU_COMPILER} mapped nothing of ${segment.file} to the Edge TPU (no edgetpu-custom-op in its output); see \`edge-exit inspect --edgetpu\` for why`);
      }
      const log = parseCompilerLog(fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
      if (log.operations.length === 0) {
        throw new EdgeTpuCompilerError(`cannot read the operation table of ${EDGETPU_COMPILER}'s log ${path.basename(logFile)} for ${segment.file}; the package is unchanged`);
      }
      const count = (onTpu: boolean) => log.operations.filter((o) => o.onTpu === onTpu).reduce((n, o) => n + o.count, 0);
      return {
        bytes,
        variant: { file: edgeTpuFileName(segment.file), sha256: sha256Hex(bytes), compiledFrom: segment.sha256, opsOnTpu: count(true), opsOnCpu: count(false), operations: log.operations },
      };
    });

    for (const { variant, bytes } of variants) writeAtomically(path.join(dir, variant.file), bytes);
    const next: Manifest = {
      ...manifest,
      segments: manifest.segments.map((segment, i) => ({ ...segment, edgetpu: variants[i]!.variant })),
      edgetpu: { compilerVersion, runtimeVersion: runtimeVersionForCompiler(compilerVersion), compiledAt: new Date().toISOString() },
    };
    writeAtomically(path.join(dir, MANIFEST_FILE), `${JSON.stringify(next, null, 2)}\n`);
    return loadModelPackage(dir).manifest;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
