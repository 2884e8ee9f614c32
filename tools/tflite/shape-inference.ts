// Static shape inference for the operators this project's models use. TFLite
// re-infers shapes at run time, but MACs, `inspect`, cut points and package
// manifests read the shapes stored in the file, so a model whose input size is
// changed must have every other tensor's shape recomputed too.
import { BuiltinOperator, elementCount, operatorCodeName, TensorType, type Operator, type Subgraph, type TfliteModel } from '../../agent/tflite/model.js';
import { Padding } from '../../agent/tflite/options.js';

/** A model whose shapes cannot be inferred, or an input size it cannot run at; the message names the operator. */
export class ShapeInferenceError extends Error {
  override name = 'ShapeInferenceError';
}

type Shape = number[];

/** What a shape rule sees of one operator. */
interface OpContext {
  sg: Subgraph;
  op: Operator;
  /** Shape of input k (a tensor index < 0 is an absent optional input). */
  input(k: number): Shape;
  /** Integer data of a constant input, or an error saying the op needs it constant. */
  constantInts(k: number, what: string): number[];
  fail(problem: string): never;
}

function isConstant(model: TfliteModel, sg: Subgraph, tensor: number): boolean {
  return (model.buffers[sg.tensors[tensor]?.buffer ?? 0]?.length ?? 0) > 0;
}

// options.ts types scalar option fields as number | boolean; these are all integers.
const int = (v: number | boolean): number => Number(v);

const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

/** Converters join fused layer names with ';'; the first part is the op's own layer. */
const shortName = (name: string) => name.split(';')[0] ?? name;

function describeOp(model: TfliteModel, sg: Subgraph, op: Operator): string {
  const index = sg.operators.indexOf(op);
  const code = model.operatorCodes[op.opcodeIndex];
  const name = code ? operatorCodeName(code) : `operator code ${op.opcodeIndex}`;
  const out = sg.tensors[op.outputs[0] ?? -1];
  return `operator ${index} (${name}${out ? `, output "${shortName(out.name)}"` : ''})`;
}

function readInts(model: TfliteModel, sg: Subgraph, tensor: number): number[] | undefined {
  const t = sg.tensors[tensor]!;
  const data = model.buffers[t.buffer]!;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = elementCount(t.shape);
  if (t.type === TensorType.INT32 && data.byteLength === 4 * n) {
    return Array.from({ length: n }, (_, i) => view.getInt32(4 * i, true));
  }
  if (t.type === TensorType.INT64 && data.byteLength === 8 * n) {
    return Array.from({ length: n }, (_, i) => Number(view.getBigInt64(8 * i, true)));
  }
  return undefined;
}

/** One spatial output size, with TFLite's padding arithmetic. */
function windowOutput(ctx: OpContext, axis: 'height' | 'width', size: number, filter: number, stride: number, dilation: number, padding: number): number {
  if (!(stride >= 1) || !(dilation >= 1)) ctx.fail(`has stride ${stride} and dilation ${dilation} along the ${axis}; both must be at least 1`);
  const effective = (filter - 1) * dilation + 1;
  let out: number;
  if (padding === Padding.SAME) out = Math.ceil(size / stride);
  else if (padding === Padding.VALID) out = Math.floor((size - effective) / stride) + 1;
  else ctx.fail(`has unknown padding ${padding}`);
  if (out < 1) {
    ctx.fail(`would make the ${axis} ${out}: its input ${axis} ${size} is smaller than its ${effective}-wide VALID window (spatial dimension collapses)`);
  }
  return out;
}

function rank(ctx: OpContext, shape: Shape, expected: number, what: string): void {
  if (shape.length !== expected) ctx.fail(`needs a rank-${expected} ${what}, got ${fmt(shape)}`);
}

function normalizeAxis(ctx: OpContext, axis: number, r: number): number {
  const a = axis < 0 ? axis + r : axis;
  if (!Number.isInteger(a) || a < 0 || a >= r) ctx.fail(`has axis ${axis}, out of range for rank ${r}`);
  return a;
}

function broadcast(ctx: OpContext, a: Shape, b: Shape): Shape {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, k) => {
    const x = a[a.length - r + k] ?? 1;
    const y = b[b.length - r + k] ?? 1;
    if (x !== y && x !== 1 && y !== 1) ctx.fail(`cannot broadcast ${fmt(a)} with ${fmt(b)}`);
    return x === 1 ? y : x;
  });
}

const same = (ctx: OpContext): Shape => [...ctx.input(0)];

function conv2d(ctx: OpContext): Shape {
  const o = ctx.op.builtinOptions;
  if (o?.type !== 'Conv2DOptions') ctx.fail('has no Conv2DOptions');
  const input = ctx.input(0);
  const filter = ctx.input(1);
  rank(ctx, input, 4, 'NHWC input');
  rank(ctx, filter, 4, '[out, kH, kW, in] filter');
  const [n, h, w, c] = input as [number, number, number, number];
  const [outC, kH, kW, inC] = filter as [number, number, number, number];
  // Grouped convolutions have filters with a divisor of the input channels.
  if (inC < 1 || c % inC !== 0) ctx.fail(`has ${c} input channels but a filter for ${inC}`);
  return [
    n,
    windowOutput(ctx, 'height', h, kH, int(o.strideH), int(o.dilationHFactor), int(o.padding)),
    windowOutput(ctx, 'width', w, kW, int(o.strideW), int(o.dilationWFactor), int(o.padding)),
    outC,
  ];
}

function depthwiseConv2d(ctx: OpContext): Shape {
  const o = ctx.op.builtinOptions;
  if (o?.type !== 'DepthwiseConv2DOptions') ctx.fail('has no DepthwiseConv2DOptions');
  const input = ctx.input(0);
  const filter = ctx.input(1);
  rank(ctx, input, 4, 'NHWC input');
  rank(ctx, filter, 4, '[1, kH, kW, out] filter');
  const [n, h, w, c] = input as [number, number, number, number];
  const [, kH, kW, outC] = filter as [number, number, number, number];
  // The filter fixes the output channels; a nonzero depth_multiplier must agree with it.
  if (c < 1 || outC % c !== 0) ctx.fail(`has ${c} input channels but ${outC} output channels, not a multiple`);
  const multiplier = int(o.depthMultiplier);
  if (multiplier > 0 && c * multiplier !== outC) {
    ctx.fail(`has ${c} input channels and depth_multiplier ${multiplier}, but a filter with ${outC} output channels`);
  }
  return [
    n,
    windowOutput(ctx, 'height', h, kH, int(o.strideH), int(o.dilationHFactor), int(o.padding)),
    windowOutput(ctx, 'width', w, kW, int(o.strideW), int(o.dilationWFactor), int(o.padding)),
    outC,
  ];
}

function pool2d(ctx: OpContext): Shape {
  const o = ctx.op.builtinOptions;
  if (o?.type !== 'Pool2DOptions') ctx.fail('has no Pool2DOptions');
  const input = ctx.input(0);
  rank(ctx, input, 4, 'NHWC input');
  const [n, h, w, c] = input as [number, number, number, number];
  return [
    n,
    windowOutput(ctx, 'height', h, int(o.filterHeight), int(o.strideH), 1, int(o.padding)),
    windowOutput(ctx, 'width', w, int(o.filterWidth), int(o.strideW), 1, int(o.padding)),
    c,
  ];
}

function mean(ctx: OpContext): Shape {
  const input = ctx.input(0);
  const axes = new Set(ctx.constantInts(1, 'reduction axes').map((a) => normalizeAxis(ctx, a, input.length)));
  const o = ctx.op.builtinOptions;
  const keepDims = o?.type === 'ReducerOptions' && o.keepDims;
  return keepDims ? input.map((d, k) => (axes.has(k) ? 1 : d)) : input.filter((_, k) => !axes.has(k));
}

function reshape(ctx: OpContext): Shape {
  const input = ctx.input(0);
  const shapeInput = ctx.op.inputs[1] ?? -1;
  const o = ctx.op.builtinOptions;
  let requested: number[];
  let source: string;
  // Like the TFLite kernel, a 1-D shape tensor takes precedence over the options.
  if (shapeInput >= 0 && ctx.sg.tensors[shapeInput]!.shape.length === 1) {
    requested = ctx.constantInts(1, 'shape input');
    source = `shape input "${shortName(ctx.sg.tensors[shapeInput]!.name)}"`;
  } else if (o?.type === 'ReshapeOptions' && o.newShape) {
    requested = o.newShape;
    source = 'new_shape option';
  } else {
    ctx.fail('has neither a 1-D shape input nor a new_shape option');
  }
  const count = elementCount(input);
  const wildcards = requested.filter((d) => d === -1).length;
  if (wildcards > 1 || requested.some((d) => d < -1)) ctx.fail(`has an invalid new shape ${fmt(requested)} (from its ${source})`);
  if (wildcards === 1) {
    const known = elementCount(requested.filter((d) => d !== -1));
    if (known === 0 || count % known !== 0) {
      ctx.fail(`cannot reshape ${fmt(input)} (${count} elements) to ${fmt(requested)} (from its ${source}): ${count} is not a multiple of ${known}`);
    }
    return requested.map((d) => (d === -1 ? count / known : d));
  }
  if (elementCount(requested) !== count) {
    ctx.fail(
      `has a fixed new shape ${fmt(requested)} (${elementCount(requested)} elements, from its ${source}) ` +
        `but its input is ${fmt(input)} (${count} elements); the model's layout only fits its original input size`,
    );
  }
  return [...requested];
}

function fullyConnected(ctx: OpContext): Shape {
  const input = ctx.input(0);
  const weights = ctx.input(1);
  rank(ctx, weights, 2, '[units, depth] weights');
  const [units, depth] = weights as [number, number];
  const o = ctx.op.builtinOptions;
  if (o?.type === 'FullyConnectedOptions' && o.keepNumDims) {
    if (input.at(-1) !== depth) ctx.fail(`keeps its input dims but the input ${fmt(input)} does not end in the weights' depth ${depth}`);
    return [...input.slice(0, -1), units];
  }
  const count = elementCount(input);
  if (depth < 1 || count % depth !== 0) ctx.fail(`has an input ${fmt(input)} whose ${count} elements are not rows of the weights' depth ${depth}`);
  return [count / depth, units];
}

function concatenation(ctx: OpContext): Shape {
  const o = ctx.op.builtinOptions;
  if (o?.type !== 'ConcatenationOptions') ctx.fail('has no ConcatenationOptions');
  const shapes = ctx.op.inputs.map((t, k) => (t < 0 ? undefined : ctx.input(k))).filter((s): s is Shape => s !== undefined);
  const first = shapes[0];
  if (!first) ctx.fail('has no inputs');
  const axis = normalizeAxis(ctx, int(o.axis), first.length);
  const out = [...first];
  for (const s of shapes.slice(1)) {
    if (s.length !== first.length || s.some((d, k) => k !== axis && d !== first[k])) {
      ctx.fail(`cannot concatenate ${fmt(first)} and ${fmt(s)} along axis ${axis}`);
    }
    out[axis]! += s[axis]!;
  }
  return out;
}

function pad(ctx: OpContext): Shape {
  const input = ctx.input(0);
  const paddings = ctx.constantInts(1, 'paddings');
  if (paddings.length !== 2 * input.length) ctx.fail(`has ${paddings.length / 2} padding pairs for a rank-${input.length} input`);
  if (paddings.some((p) => p < 0)) ctx.fail(`has negative paddings ${fmt(paddings)}`);
  return input.map((d, k) => d + paddings[2 * k]! + paddings[2 * k + 1]!);
}

function squeeze(ctx: OpContext): Shape {
  const input = ctx.input(0);
  const o = ctx.op.builtinOptions;
  const dims = o?.type === 'SqueezeOptions' ? (o.squeezeDims ?? []) : [];
  if (dims.length === 0) return input.filter((d) => d !== 1);
  const drop = new Set(dims.map((a) => normalizeAxis(ctx, a, input.length)));
  for (const k of drop) if (input[k] !== 1) ctx.fail(`squeezes dim ${k} of ${fmt(input)}, which is not 1`);
  return input.filter((_, k) => !drop.has(k));
}

const binary = (ctx: OpContext): Shape => broadcast(ctx, ctx.input(0), ctx.input(1));

const RULES = new Map<number, (ctx: OpContext) => Shape>([
  [BuiltinOperator.QUANTIZE, same],
  [BuiltinOperator.DEQUANTIZE, same],
  [BuiltinOperator.SOFTMAX, same],
  [BuiltinOperator.LOGISTIC, same],
  [BuiltinOperator.RELU, same],
  [BuiltinOperator.RELU6, same],
  [BuiltinOperator.HARD_SWISH, same],
  [BuiltinOperator.CONV_2D, conv2d],
  [BuiltinOperator.DEPTHWISE_CONV_2D, depthwiseConv2d],
  [BuiltinOperator.AVERAGE_POOL_2D, pool2d],
  [BuiltinOperator.MAX_POOL_2D, pool2d],
  [BuiltinOperator.ADD, binary],
  [BuiltinOperator.MUL, binary],
  [BuiltinOperator.SUB, binary],
  [BuiltinOperator.DIV, binary],
  [BuiltinOperator.MEAN, mean],
  [BuiltinOperator.RESHAPE, reshape],
  [BuiltinOperator.FULLY_CONNECTED, fullyConnected],
  [BuiltinOperator.CONCATENATION, concatenation],
  [BuiltinOperator.PAD, pad],
  [BuiltinOperator.PADV2, pad],
  [BuiltinOperator.SQUEEZE, squeeze],
]);

/**
 * Computes the shape of every operator output from the subgraph's current
 * input and constant shapes, without changing the model.
 */
function computeShapes(model: TfliteModel, subgraphIndex: number): Map<number, Shape> {
  const sg = model.subgraphs[subgraphIndex];
  if (!sg) throw new RangeError(`the model has ${model.subgraphs.length} subgraph(s), not ${subgraphIndex + 1}`);
  const shapes = new Map<number, Shape>();
  const known = new Set<number>(sg.inputs);
  sg.tensors.forEach((t, i) => {
    // Constants keep their shapes; variables hold state whose shape no op decides.
    if (isConstant(model, sg, i) || t.isVariable) known.add(i);
  });

  for (const op of sg.operators) {
    // Typed explicitly so TypeScript narrows after calls to it.
    const fail: (problem: string) => never = (problem) => {
      throw new ShapeInferenceError(`${describeOp(model, sg, op)} ${problem}`);
    };
    const code = model.operatorCodes[op.opcodeIndex];
    const rule = code && code.builtinCode !== BuiltinOperator.CUSTOM ? RULES.get(code.builtinCode) : undefined;
    if (!rule) {
      fail(`is not an operator shape inference knows; it handles ${[...RULES.keys()].map((c) => operatorCodeName({ builtinCode: c, version: 1 })).join(', ')}`);
    }
    const tensorOf = (k: number): number => {
      const t = op.inputs[k] ?? -1;
      if (t < 0) fail(`has no input ${k}`);
      if (!known.has(t)) fail(`reads tensor ${t} ("${shortName(sg.tensors[t]!.name)}"), which no earlier operator produces`);
      return t;
    };
    const ctx: OpContext = {
      sg,
      op,
      input: (k) => {
        const t = tensorOf(k);
        return shapes.get(t) ?? sg.tensors[t]!.shape;
      },
      constantInts: (k, what) => {
        const t = tensorOf(k);
        if (!isConstant(model, sg, t)) fail(`takes its ${what} from a computed tensor, so its output shape is not static`);
        const values = readInts(model, sg, t);
        if (!values) fail(`has ${what} that are not int32 or int64 data matching their shape`);
        return values;
      },
      fail,
    };
    const shape = rule(ctx);
    if (op.outputs.length !== 1) fail(`has ${op.outputs.length} outputs, expected 1`);
    shapes.set(op.outputs[0]!, shape);
    known.add(op.outputs[0]!);
  }
  return shapes;
}

/**
 * A signature's -1 marks a dimension the converter left dynamic. When the rank
 * is unchanged those stay -1 and the rest follow the new static shape; when it
 * changed, the signature cannot be carried over, so it is dropped and TFLite
 * falls back to the static shape.
 */
function updateSignature(tensor: { shape: Shape; shapeSignature?: number[] }, shape: Shape): void {
  const old = tensor.shapeSignature;
  tensor.shape = shape;
  if (!old) return;
  if (old.length === shape.length) tensor.shapeSignature = shape.map((d, k) => (old[k] === -1 ? -1 : d));
  else delete tensor.shapeSignature;
}

/**
 * Recomputes the static shape of every operator output of a subgraph from its
 * inputs' shapes, op by op (constants, graph inputs and variables are left as
 * they are), and updates shape signatures to match. On an error the model is
 * left unchanged.
 */
export function inferShapes(model: TfliteModel, subgraphIndex = 0): void {
  const shapes = computeShapes(model, subgraphIndex);
  const sg = model.subgraphs[subgraphIndex]!;
  for (const [t, shape] of shapes) updateSignature(sg.tensors[t]!, shape);
}

const SPATIAL_OPS = new Set<number>([BuiltinOperator.CONV_2D, BuiltinOperator.DEPTHWISE_CONV_2D, BuiltinOperator.AVERAGE_POOL_2D, BuiltinOperator.MAX_POOL_2D]);

/**
 * The first strided spatial op that gets fewer pixels than its stride along an
 * axis. With SAME padding TFLite still makes a 1-pixel output there, but the
 * nominal size (input / stride) is below 1: the map has already collapsed and
 * the layer downsamples nothing.
 */
function findCollapse(model: TfliteModel, sg: Subgraph): string | undefined {
  for (const op of sg.operators) {
    if (!SPATIAL_OPS.has(model.operatorCodes[op.opcodeIndex]?.builtinCode ?? -1)) continue;
    const o = op.builtinOptions;
    if (o?.type !== 'Conv2DOptions' && o?.type !== 'DepthwiseConv2DOptions' && o?.type !== 'Pool2DOptions') continue;
    const input = sg.tensors[op.inputs[0]!]!.shape;
    for (const [axis, size, stride] of [['height', input[1]!, int(o.strideH)], ['width', input[2]!, int(o.strideW)]] as const) {
      if (size < stride) {
        return `${describeOp(model, sg, op)} has stride ${stride} but its input ${axis} is only ${size} (spatial dimension collapses: ${size}/${stride} < 1)`;
      }
    }
  }
  return undefined;
}

/** The one rank-4 (NHWC) graph input of the main subgraph. */
function imageInput(model: TfliteModel): number {
  const sg = model.subgraphs[0];
  const images = (sg?.inputs ?? []).filter((t) => sg!.tensors[t]!.shape.length === 4);
  if (images.length !== 1) {
    throw new ShapeInferenceError(`resizing needs exactly one NHWC (rank-4) image input, but the model has ${images.length}`);
  }
  return images[0]!;
}

/** Deep copy whose buffers are shared: they are constant data and nothing here writes to them. */
function copyModel(model: TfliteModel): TfliteModel {
  const { buffers, ...rest } = model;
  return { ...structuredClone(rest), buffers: [...buffers] };
}

/**
 * A copy of the model whose image input is height x width (batch and channels
 * unchanged) with every other tensor's static shape recomputed. Refuses sizes
 * at which a spatial dimension collapses or a fixed RESHAPE no longer fits.
 */
export function resizeModelInput(model: TfliteModel, height: number, width: number): TfliteModel {
  for (const [name, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`input ${name} must be a positive integer, got ${v}`);
  }
  const out = copyModel(model);
  const sg = out.subgraphs[0]!;
  const input = sg.tensors[imageInput(out)]!;
  const [n, , , c] = input.shape as [number, number, number, number];
  updateSignature(input, [n, height, width, c]);
  const at = `at ${height}x${width}`;
  try {
    inferShapes(out, 0);
  } catch (error) {
    if (error instanceof ShapeInferenceError) throw new ShapeInferenceError(`cannot run the model ${at}: ${error.message}`, { cause: error });
    throw error;
  }
  const collapse = findCollapse(out, sg);
  if (collapse) throw new ShapeInferenceError(`cannot run the model ${at}: ${collapse}; use a larger input`);
  return out;
}
