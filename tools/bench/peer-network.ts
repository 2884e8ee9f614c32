/**
 * The package's network in float32, for a peer runtime: the backbone dequantized from the
 * package's base model (tools/training/dequantize-backbone.ts) up to the final exit's boundary,
 * and the final exit's head dequantized from its int8 TFLite file (average pool, dense layers).
 * tools/bench/peer_onnx.py builds it in PyTorch and exports ONNX; nothing here is committed.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { BuiltinOperator, type TfliteModel } from '../../agent/tflite/model.js';
import { ActivationFunctionType, Padding } from '../../agent/tflite/options.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { constantValues, dequantizeBackbone } from '../training/dequantize-backbone.js';
import { FloatGraphError, writeFloatGraph } from '../training/float-graph.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXPORTER = path.join(HERE, 'peer_onnx.py');
const PYTHON = '/usr/bin/python3';

/** The final exit's head as the exporter reads it (peer-head.json); weights follow the backbone's in weights.bin. */
export interface PeerHead {
  /** The backbone tensor the head reads (the boundary it sits after). */
  input: string;
  /** VALID average pooling before the dense layers (TFLite's AVERAGE_POOL_2D), or none. */
  pool?: { filter: [number, number]; stride: [number, number] };
  /** FULLY_CONNECTED layers on the NHWC-flattened map: weight [out, in], bias [out]. */
  layers: Array<{ weight: { offset: number; shape: [number, number] }; bias: { offset: number; shape: [number] }; activation: 'relu' | 'none' }>;
  classes: string[];
}

function headOf(model: TfliteModel, file: string, offset: number): { head: Omit<PeerHead, 'input' | 'classes'>; weights: Float32Array[] } {
  const sg = model.subgraphs[0]!;
  const weights: Float32Array[] = [];
  let at = offset;
  const add = (values: Float32Array) => {
    weights.push(values);
    const entry = { offset: at };
    at += values.length;
    return entry;
  };
  const head: Omit<PeerHead, 'input' | 'classes'> = { layers: [] };
  for (const op of sg.operators) {
    const code = model.operatorCodes[op.opcodeIndex]!.builtinCode;
    if (code === BuiltinOperator.AVERAGE_POOL_2D) {
      const o = op.builtinOptions as { padding: number; strideH: number; strideW: number; filterHeight: number; filterWidth: number };
      if (o.padding !== Padding.VALID) throw new FloatGraphError(`${file}: only VALID average pooling is exported`);
      head.pool = { filter: [o.filterHeight, o.filterWidth], stride: [o.strideH, o.strideW] };
    } else if (code === BuiltinOperator.FULLY_CONNECTED) {
      const o = op.builtinOptions as { fusedActivationFunction: number };
      const filter = sg.tensors[op.inputs[1]!]!;
      const bias = sg.tensors[op.inputs[2]!]!;
      const activation = o.fusedActivationFunction === ActivationFunctionType.RELU ? 'relu' : o.fusedActivationFunction === ActivationFunctionType.NONE ? 'none' : undefined;
      if (!activation) throw new FloatGraphError(`${file}: fused activation ${o.fusedActivationFunction} is not exported (only NONE and RELU)`);
      head.layers.push({
        weight: { ...add(constantValues(model, filter, `${file} dense weights`)), shape: filter.shape as [number, number] },
        bias: { ...add(constantValues(model, bias, `${file} dense bias`)), shape: bias.shape as [number] },
        activation,
      });
    } else if (code !== BuiltinOperator.RESHAPE && code !== BuiltinOperator.SOFTMAX) {
      throw new FloatGraphError(`${file}: op ${code} is not one a head has (AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX)`);
    }
  }
  return { head, weights };
}

/** Writes the package's network to the final exit as a float graph plus peer-head.json into `dir`. */
export function writePeerNetwork(pkg: ModelPackage, baseModelPath: string, dir: string): void {
  const graph = dequantizeBackbone(readTfliteModel(fs.readFileSync(baseModelPath)));
  const finalHead = pkg.manifest.heads.at(-1)!;
  const boundary = pkg.manifest.segments[finalHead.afterSegment]!.to;
  const input = graph.spec.boundaries.find((b) => b.name === boundary)?.tensor;
  if (!input) throw new FloatGraphError(`the base model has no boundary "${boundary}", where the package's final exit sits`);
  const headFile = path.join(pkg.dir, finalHead.file);
  const { head, weights } = headOf(readTfliteModel(fs.readFileSync(headFile)), finalHead.file, graph.weights.length);
  const all = new Float32Array(graph.weights.length + weights.reduce((n, w) => n + w.length, 0));
  all.set(graph.weights);
  let at = graph.weights.length;
  for (const w of weights) {
    all.set(w, at);
    at += w.length;
  }
  writeFloatGraph(dir, { spec: { ...graph.spec, description: `${pkg.manifest.name} to its final exit (${finalHead.name}), dequantized` }, weights: all });
  const peer: PeerHead = { input, ...head, classes: pkg.manifest.labels[finalHead.task] ?? [] };
  fs.writeFileSync(path.join(dir, 'peer-head.json'), `${JSON.stringify(peer, null, 1)}\n`);
}

/** A key of everything the export depends on: the package's files and the exporter itself. */
function exportKey(pkg: ModelPackage, baseModelPath: string, calibration: readonly string[]): string {
  const hash = crypto.createHash('sha256');
  hash.update(calibration.join('\n'));
  hash.update(fs.readFileSync(path.join(pkg.dir, 'manifest.json')));
  hash.update(fs.readFileSync(baseModelPath));
  hash.update(fs.readFileSync(EXPORTER));
  return hash.digest('hex').slice(0, 16);
}

/**
 * The ONNX files of the package's network (float32, and int8 when the exporter could quantize it on the
 * `calibration` images), built under `cacheDir` when missing (a build artifact: models/.cache is not committed).
 */
export async function ensurePeerOnnx(pkg: ModelPackage, baseModelPath: string, cacheDir: string, calibration: readonly string[]): Promise<{ float32: string; int8?: string; notes: string[] }> {
  const dir = path.join(cacheDir, `${pkg.manifest.name}-${exportKey(pkg, baseModelPath, calibration)}`);
  const float32 = path.join(dir, 'model-float32.onnx');
  const int8 = path.join(dir, 'model-int8.onnx');
  const notesFile = path.join(dir, 'notes.json');
  if (!fs.existsSync(float32)) {
    const work = `${dir}.partial`;
    fs.rmSync(work, { recursive: true, force: true });
    writePeerNetwork(pkg, baseModelPath, work);
    // Calibration images for int8, decoded as the agent decodes its frames.
    const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
    fs.writeFileSync(path.join(work, 'calibration.u8'), Buffer.concat(await Promise.all(calibration.map((file) => imageFileToRgb(file, target)))));
    if (!fs.existsSync(PYTHON)) throw new Error(`the ONNX export runs PyTorch under ${PYTHON}: apt-get install python3-torch`);
    const size = ['--height', String(target.height), '--width', String(target.width)];
    const child = spawn(PYTHON, [EXPORTER, '--graph', work, '--out', work, ...size, '--calibration', path.join(work, 'calibration.u8')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`the ONNX export (${EXPORTER}) failed:\n${output.slice(-3000)}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(work, dir);
  }
  const notes = fs.existsSync(notesFile) ? (JSON.parse(fs.readFileSync(notesFile, 'utf8')) as string[]) : [];
  return { float32, ...(fs.existsSync(int8) ? { int8 } : {}), notes };
}
