// The float graph: the hand-over form between the TypeScript side (which owns
// the TFLite format) and the Python trainer. A JSON description of the nodes
// plus one little-endian float32 file of weights. FLOAT-GRAPH.md documents it.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readJsonFile } from '../../agent/config/json-file.js';

export const FLOAT_GRAPH_FORMAT = 'edge-exit/float-graph';
export const FLOAT_GRAPH_VERSION = 1;
export const GRAPH_FILE = 'graph.json';
export const WEIGHTS_FILE = 'weights.bin';

const activation = z.enum(['none', 'relu6']);

const conv2dNode = z.object({
  op: z.literal('conv2d'),
  name: z.string(),
  inputs: z.tuple([z.string()]),
  output: z.string(),
  /** PyTorch layout [out, in / groups, kh, kw]. */
  weight: z.string(),
  bias: z.string(),
  stride: z.number().int().min(1),
  /** TensorFlow's SAME: output = ceil(in / stride), any odd padding goes to the bottom and right. */
  padding: z.enum(['same', 'valid']),
  /** 1 for a full convolution, the channel count for a depthwise one. */
  groups: z.number().int().min(1),
  activation,
});

const addNode = z.object({ op: z.literal('add'), name: z.string(), inputs: z.tuple([z.string(), z.string()]), output: z.string(), activation });

/** Global average over height and width, keeping a 1x1 map. */
const meanNode = z.object({ op: z.literal('mean'), name: z.string(), inputs: z.tuple([z.string()]), output: z.string() });

export const floatNodeSchema = z.discriminatedUnion('op', [conv2dNode, addNode, meanNode]);
export type FloatNode = z.infer<typeof floatNodeSchema>;
export type Conv2dNode = z.infer<typeof conv2dNode>;

const weightEntry = z.object({
  /** In float32 elements from the start of weights.bin. */
  offset: z.number().int().min(0),
  shape: z.array(z.number().int().min(1)),
});

export const floatGraphSchema = z.object({
  format: z.literal(FLOAT_GRAPH_FORMAT),
  version: z.literal(FLOAT_GRAPH_VERSION),
  description: z.string().optional(),
  /** NHWC uint8 pixels p enter the graph as pixelScale * (p - pixelZeroPoint). */
  input: z.object({
    tensor: z.string(),
    height: z.number().int().min(1),
    width: z.number().int().min(1),
    channels: z.number().int().min(1),
    pixelScale: z.number().positive(),
    pixelZeroPoint: z.number(),
  }),
  nodes: z.array(floatNodeSchema).min(1),
  weights: z.record(z.string(), weightEntry),
  /** Structural boundaries (block_N, pooled) and the tensor that crosses each. */
  boundaries: z.array(z.object({ name: z.string(), tensor: z.string() })),
  /** Trained graphs only: the classifier of every exit, in depth order; the last is the final exit. */
  exits: z
    .array(z.object({ after: z.string(), logits: z.string(), nodes: z.array(z.string()) }))
    .optional(),
  classes: z.array(z.string()).optional(),
  /** Trained graphs only: float [min, max] of every node output on the calibration images. */
  ranges: z.record(z.string(), z.tuple([z.number(), z.number()])).optional(),
});
export type FloatGraphSpec = z.infer<typeof floatGraphSchema>;

export interface FloatGraph {
  spec: FloatGraphSpec;
  weights: Float32Array;
}

export class FloatGraphError extends Error {
  override name = 'FloatGraphError';
}

/** The float32 values of one named weight, checked against its declared shape. */
export function weightOf(graph: FloatGraph, name: string): { shape: number[]; data: Float32Array } {
  const entry = graph.spec.weights[name];
  if (!entry) throw new FloatGraphError(`float graph: weight "${name}" is used by a node but not listed in "weights"`);
  const count = entry.shape.reduce((n, d) => n * d, 1);
  if (entry.offset + count > graph.weights.length) {
    throw new FloatGraphError(`float graph: weight "${name}" runs past the end of ${WEIGHTS_FILE} (${graph.weights.length} floats); the file is truncated or the graph belongs to other weights`);
  }
  return { shape: entry.shape, data: graph.weights.subarray(entry.offset, entry.offset + count) };
}

/** Appends weights to a growing list and records them in the spec. */
export class WeightPacker {
  private readonly parts: Float32Array[] = [];
  private length = 0;
  readonly entries: FloatGraphSpec['weights'] = {};

  add(name: string, shape: number[], data: Float32Array): string {
    if (this.entries[name]) throw new FloatGraphError(`float graph: weight "${name}" added twice`);
    this.entries[name] = { offset: this.length, shape };
    this.parts.push(data);
    this.length += data.length;
    return name;
  }

  pack(): Float32Array {
    const out = new Float32Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

export function writeFloatGraph(dir: string, graph: FloatGraph): void {
  fs.mkdirSync(dir, { recursive: true });
  const weights = Buffer.from(graph.weights.buffer, graph.weights.byteOffset, graph.weights.byteLength);
  fs.writeFileSync(path.join(dir, WEIGHTS_FILE), weights);
  fs.writeFileSync(path.join(dir, GRAPH_FILE), `${JSON.stringify(graph.spec, null, 1)}\n`);
}

export function readFloatGraph(dir: string): FloatGraph {
  const graphFile = path.join(dir, GRAPH_FILE);
  const spec = readJsonFile(graphFile, floatGraphSchema, `float graph (${FLOAT_GRAPH_FORMAT} v${FLOAT_GRAPH_VERSION})`, (message) => new FloatGraphError(message));
  const bytes = fs.readFileSync(path.join(dir, WEIGHTS_FILE));
  if (bytes.length % 4 !== 0) throw new FloatGraphError(`${path.join(dir, WEIGHTS_FILE)} is ${bytes.length} bytes, not whole float32 values; it is truncated`);
  const weights = new Float32Array(bytes.length / 4);
  new Uint8Array(weights.buffer).set(bytes);
  const graph = { spec, weights };
  for (const node of spec.nodes) {
    if (node.op === 'conv2d') {
      weightOf(graph, node.weight);
      weightOf(graph, node.bias);
    }
  }
  return graph;
}
