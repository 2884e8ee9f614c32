// Turns the pretrained int8 MobileNetV2 into the float graph the trainer
// starts from: every int8 weight and int32 bias is dequantized with its own
// (per-channel) scale, and the graph runs from the pixel input to "pooled".
// The ImageNet classifier after "pooled" is left out: each task brings its own.
import { labelBoundaries } from '../segmenter/cut-points.js';
import { POOLED } from '../segmenter/cut-points.js';
import { BuiltinOperator, TensorType, type Operator, type Tensor, type TfliteModel } from '../../agent/tflite/model.js';
import { ActivationFunctionType, Padding } from '../../agent/tflite/options.js';
import { FLOAT_GRAPH_FORMAT, FLOAT_GRAPH_VERSION, FloatGraphError, WeightPacker, type FloatGraph, type FloatNode } from './float-graph.js';

const tensorName = (index: number) => `t${index}`;

/** A quantized constant (int8 weights, int32 biases) as float32, per-channel scales applied. */
export function constantValues(model: TfliteModel, tensor: Tensor, what: string): Float32Array {
  const bytes = model.buffers[tensor.buffer];
  const q = tensor.quantization;
  if (!bytes || bytes.length === 0 || !q || q.scale.length === 0) throw new FloatGraphError(`${what} (tensor "${tensor.name}") is not a quantized constant`);
  const count = tensor.shape.reduce((n, d) => n * d, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read =
    tensor.type === TensorType.INT8 ? (i: number) => view.getInt8(i)
    : tensor.type === TensorType.INT32 ? (i: number) => view.getInt32(i * 4, true)
    : undefined;
  if (!read) throw new FloatGraphError(`${what} (tensor "${tensor.name}") has type ${tensor.type}; only int8 weights and int32 biases are dequantized`);
  // Per-channel values repeat their scale every `inner` elements along the quantized axis.
  const axis = q.scale.length > 1 ? q.quantizedDimension : 0;
  const inner = tensor.shape.slice(axis + 1).reduce((n, d) => n * d, 1);
  const channels = q.scale.length > 1 ? tensor.shape[axis]! : 1;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const c = channels > 1 ? Math.floor(i / inner) % channels : 0;
    out[i] = q.scale[c]! * (read(i) - (q.zeroPoint[c] ?? 0));
  }
  return out;
}

/** TFLite [O, kh, kw, I] (or depthwise [1, kh, kw, C]) to PyTorch [O, I/groups, kh, kw]. */
function toTorchLayout(values: Float32Array, shape: number[], depthwise: boolean): { shape: number[]; data: Float32Array } {
  const [a, kh, kw, b] = shape as [number, number, number, number];
  const out = depthwise ? b : a;
  const inPerGroup = depthwise ? 1 : b;
  const data = new Float32Array(values.length);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inPerGroup; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          const from = depthwise ? (y * kw + x) * b + o : ((o * kh + y) * kw + x) * b + i;
          data[((o * inPerGroup + i) * kh + y) * kw + x] = values[from]!;
        }
      }
    }
  }
  return { shape: [out, inPerGroup, kh, kw], data };
}

function activationOf(code: number, where: string): 'none' | 'relu6' {
  if (code === ActivationFunctionType.NONE) return 'none';
  if (code === ActivationFunctionType.RELU6) return 'relu6';
  throw new FloatGraphError(`${where}: fused activation ${code} is not supported (only NONE and RELU6)`);
}

export function dequantizeBackbone(model: TfliteModel): FloatGraph {
  const sg = model.subgraphs[0];
  if (!sg) throw new FloatGraphError('the model has no subgraph');
  const labels = labelBoundaries(model);
  const pooledTensor = [...labels].find(([, name]) => name === POOLED)?.[0];
  if (pooledTensor === undefined) throw new FloatGraphError('the model has no "pooled" boundary; only MobileNetV2-style classifiers can be fine-tuned');
  const codeOf = (op: Operator) => model.operatorCodes[op.opcodeIndex]!.builtinCode;
  const packer = new WeightPacker();
  const nodes: FloatNode[] = [];

  const inputTensor = sg.tensors[sg.inputs[0]!]!;
  const inputQ = inputTensor.quantization;
  if (!inputQ || inputQ.scale.length !== 1) throw new FloatGraphError('the model input is not a quantized image tensor');
  const [, height, width, channels] = inputTensor.shape as [number, number, number, number];
  // A uint8 input is quantized to int8 by the first op; the float graph reads pixels directly.
  const pixelZeroPoint = inputTensor.type === TensorType.UINT8 ? inputQ.zeroPoint[0]! : inputQ.zeroPoint[0]! + 128;
  const alias = new Map<number, number>();
  const nameOf = (t: number) => tensorName(alias.get(t) ?? t);

  for (const [index, op] of sg.operators.entries()) {
    const code = codeOf(op);
    const where = `operator ${index}`;
    const name = `op${index}`;
    if (code === BuiltinOperator.QUANTIZE && index === 0) {
      alias.set(op.outputs[0]!, sg.inputs[0]!);
      continue;
    }
    if (code === BuiltinOperator.CONV_2D || code === BuiltinOperator.DEPTHWISE_CONV_2D) {
      const depthwise = code === BuiltinOperator.DEPTHWISE_CONV_2D;
      const options = op.builtinOptions as { padding: number; strideH: number; strideW: number; fusedActivationFunction: number };
      if (options.strideH !== options.strideW) throw new FloatGraphError(`${where}: unequal strides are not supported`);
      const filter = sg.tensors[op.inputs[1]!]!;
      const weight = toTorchLayout(constantValues(model, filter, `${where} filter`), filter.shape, depthwise);
      const bias = constantValues(model, sg.tensors[op.inputs[2]!]!, `${where} bias`);
      nodes.push({
        op: 'conv2d',
        name,
        inputs: [nameOf(op.inputs[0]!)],
        output: nameOf(op.outputs[0]!),
        weight: packer.add(`${name}.weight`, weight.shape, weight.data),
        bias: packer.add(`${name}.bias`, [bias.length], bias),
        stride: options.strideH,
        padding: options.padding === Padding.SAME ? 'same' : 'valid',
        groups: depthwise ? weight.shape[0]! : 1,
        activation: activationOf(options.fusedActivationFunction, where),
      });
    } else if (code === BuiltinOperator.ADD) {
      const options = op.builtinOptions as { fusedActivationFunction: number } | undefined;
      nodes.push({
        op: 'add',
        name,
        inputs: [nameOf(op.inputs[0]!), nameOf(op.inputs[1]!)],
        output: nameOf(op.outputs[0]!),
        activation: activationOf(options?.fusedActivationFunction ?? 0, where),
      });
    } else if (code === BuiltinOperator.MEAN || code === BuiltinOperator.AVERAGE_POOL_2D) {
      nodes.push({ op: 'mean', name, inputs: [nameOf(op.inputs[0]!)], output: nameOf(op.outputs[0]!) });
    } else {
      throw new FloatGraphError(`${where}: ${code} is not a backbone op the float graph knows (CONV_2D, DEPTHWISE_CONV_2D, ADD, MEAN)`);
    }
    if (op.outputs[0] === pooledTensor) break;
  }

  return {
    spec: {
      format: FLOAT_GRAPH_FORMAT,
      version: FLOAT_GRAPH_VERSION,
      description: `dequantized from ${model.description ?? 'an int8 TFLite model'}`,
      input: { tensor: nameOf(sg.inputs[0]!), height, width, channels, pixelScale: inputQ.scale[0]!, pixelZeroPoint },
      nodes,
      weights: packer.entries,
      boundaries: [...labels].map(([tensor, name]) => ({ name, tensor: nameOf(tensor) })),
    },
    weights: packer.pack(),
  };
}
