// Post-training int8 quantization of a trained float graph into TFLite:
// per-channel symmetric int8 weights, int32 biases at input scale x weight
// scale, asymmetric int8 activations from the ranges measured on calibration
// images. Only CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, RESHAPE,
// SOFTMAX and QUANTIZE are emitted, all within what the Edge TPU compiler maps.
import { activationQuantization, clamp, roundHalfAway, SOFTMAX_SCALE, SOFTMAX_ZERO_POINT } from '../exit-heads/int8-head.js';
import { int32Bytes, ModelAssembler, perTensor } from '../tflite/assembler.js';
import { BuiltinOperator, TensorType, type Quantization, type TfliteModel } from '../../agent/tflite/model.js';
import { ActivationFunctionType, makeOptions, Padding } from '../../agent/tflite/options.js';
import { FloatGraphError, weightOf, type Conv2dNode, type FloatGraph, type FloatNode } from './float-graph.js';

const WEIGHT_QMAX = 127;

interface Int8Tensor {
  index: number;
  shape: [number, number, number, number];
  scale: number;
  zeroPoint: number;
}

/** Per-output-channel symmetric int8 codes of a PyTorch-layout conv weight, in TFLite's layout. */
export function quantizeConvWeight(weight: { shape: number[]; data: Float32Array }, depthwise: boolean) {
  const [out, inPerGroup, kh, kw] = weight.shape as [number, number, number, number];
  const perChannel = inPerGroup * kh * kw;
  const scales = new Array<number>(out);
  for (let o = 0; o < out; o++) {
    let maxAbs = 0;
    for (let i = 0; i < perChannel; i++) maxAbs = Math.max(maxAbs, Math.abs(weight.data[o * perChannel + i]!));
    scales[o] = Math.fround(maxAbs > 0 ? maxAbs / WEIGHT_QMAX : 1);
  }
  const codes = new Int8Array(weight.data.length);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inPerGroup; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          const v = weight.data[((o * inPerGroup + i) * kh + y) * kw + x]!;
          // Conv filters are [O, kh, kw, I]; depthwise filters are [1, kh, kw, C] with the channel last.
          const at = depthwise ? (y * kw + x) * out + o : ((o * kh + y) * kw + x) * inPerGroup + i;
          codes[at] = clamp(roundHalfAway(v / scales[o]!), -WEIGHT_QMAX, WEIGHT_QMAX);
        }
      }
    }
  }
  const shape = depthwise ? [1, kh, kw, out] : [out, kh, kw, inPerGroup];
  const quantization: Quantization = { scale: scales, zeroPoint: scales.map(() => 0), quantizedDimension: depthwise ? 3 : 0 };
  return { codes, shape, quantization };
}

function convOutputSide(size: number, kernel: number, stride: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

/** Emits the int8 ops of float graph nodes into one model under construction. */
class Int8Emitter {
  readonly m = new ModelAssembler();
  private readonly values = new Map<string, Int8Tensor>();

  constructor(private readonly graph: FloatGraph) {}

  bind(name: string, tensor: Int8Tensor): void {
    this.values.set(name, tensor);
  }

  value(name: string, where: string): Int8Tensor {
    const v = this.values.get(name);
    if (!v) throw new FloatGraphError(`float graph: ${where} reads "${name}", which no earlier node produces`);
    return v;
  }

  private quantOf(name: string, relu6: boolean) {
    const range = this.graph.spec.ranges?.[name];
    if (!range) throw new FloatGraphError(`float graph: no calibrated range for "${name}"; the trainer records one for every node output`);
    const [min, max] = relu6 ? [0, Math.min(range[1], 6)] : range;
    return activationQuantization({ min, max }, relu6);
  }

  private activationTensor(name: string, shape: Int8Tensor['shape'], q: { scale: number; zeroPoint: number }): Int8Tensor {
    const index = this.m.tensor({ name, shape: [...shape], type: TensorType.INT8, quantization: perTensor(q.scale, q.zeroPoint) });
    return { index, shape, scale: q.scale, zeroPoint: q.zeroPoint };
  }

  emit(node: FloatNode): Int8Tensor {
    const out = node.op === 'conv2d' ? this.conv(node) : node.op === 'add' ? this.add(node) : this.mean(node);
    this.values.set(node.output, out);
    return out;
  }

  private conv(node: Conv2dNode): Int8Tensor {
    const input = this.value(node.inputs[0], node.name);
    const weight = weightOf(this.graph, node.weight);
    const bias = weightOf(this.graph, node.bias).data;
    const depthwise = node.groups > 1;
    if (depthwise && node.groups !== input.shape[3]) throw new FloatGraphError(`float graph: ${node.name} has ${node.groups} groups; only full (1) and depthwise (= channels) convolutions are supported`);
    const q = quantizeConvWeight(weight, depthwise);
    const filter = this.m.tensor({ name: `${node.name}/weights`, shape: q.shape, type: TensorType.INT8, quantization: q.quantization }, new Uint8Array(q.codes.buffer));
    const biasScales = q.quantization.scale.map((s) => Math.fround(input.scale * s));
    const biasCodes = Int32Array.from(bias, (b, o) => clamp(roundHalfAway(b / biasScales[o]!), -0x7fffffff, 0x7fffffff));
    const biasTensor = this.m.tensor(
      { name: `${node.name}/bias`, shape: [bias.length], type: TensorType.INT32, quantization: { scale: biasScales, zeroPoint: biasScales.map(() => 0), quantizedDimension: 0 } },
      int32Bytes(biasCodes),
    );
    const [outChannels, , kh, kw] = weight.shape as [number, number, number, number];
    const shape: Int8Tensor['shape'] = [1, convOutputSide(input.shape[1], kh, node.stride, node.padding), convOutputSide(input.shape[2], kw, node.stride, node.padding), outChannels];
    const relu6 = node.activation === 'relu6';
    const out = this.activationTensor(node.output, shape, this.quantOf(node.output, relu6));
    const common = {
      padding: node.padding === 'same' ? Padding.SAME : Padding.VALID,
      strideH: node.stride,
      strideW: node.stride,
      fusedActivationFunction: relu6 ? ActivationFunctionType.RELU6 : ActivationFunctionType.NONE,
    };
    const inputs = [input.index, filter, biasTensor];
    if (depthwise) {
      this.m.operator(BuiltinOperator.DEPTHWISE_CONV_2D, 3, { inputs, outputs: [out.index], builtinOptions: makeOptions('DepthwiseConv2DOptions', { ...common, depthMultiplier: 1 }) });
    } else {
      this.m.operator(BuiltinOperator.CONV_2D, 3, { inputs, outputs: [out.index], builtinOptions: makeOptions('Conv2DOptions', common) });
    }
    return out;
  }

  private add(node: Extract<FloatNode, { op: 'add' }>): Int8Tensor {
    const [a, b] = node.inputs.map((name) => this.value(name, node.name)) as [Int8Tensor, Int8Tensor];
    const relu6 = node.activation === 'relu6';
    const out = this.activationTensor(node.output, a.shape, this.quantOf(node.output, relu6));
    this.m.operator(BuiltinOperator.ADD, 2, {
      inputs: [a.index, b.index],
      outputs: [out.index],
      builtinOptions: makeOptions('AddOptions', { fusedActivationFunction: relu6 ? ActivationFunctionType.RELU6 : ActivationFunctionType.NONE }),
    });
    return out;
  }

  /** A global average as AVERAGE_POOL_2D, which in int8 keeps its input's scale and zero point. */
  private mean(node: Extract<FloatNode, { op: 'mean' }>): Int8Tensor {
    const input = this.value(node.inputs[0], node.name);
    const [, h, w, c] = input.shape;
    const out = this.activationTensor(node.output, [1, 1, 1, c], input);
    this.m.operator(BuiltinOperator.AVERAGE_POOL_2D, 2, {
      inputs: [input.index],
      outputs: [out.index],
      builtinOptions: makeOptions('Pool2DOptions', { padding: Padding.VALID, strideH: 1, strideW: 1, filterHeight: h, filterWidth: w, fusedActivationFunction: ActivationFunctionType.NONE }),
    });
    return out;
  }

  /** [1, 1, 1, classes] logits to [1, classes] int8 probabilities. */
  softmax(logits: Int8Tensor, name: string): number {
    const classes = logits.shape[3];
    const shape = this.m.tensor({ name: `${name}/flatten/shape`, shape: [2], type: TensorType.INT32 }, int32Bytes([1, classes]));
    const flat = this.m.tensor({ name: `${name}/flatten`, shape: [1, classes], type: TensorType.INT8, quantization: perTensor(logits.scale, logits.zeroPoint) });
    this.m.operator(BuiltinOperator.RESHAPE, 1, { inputs: [logits.index, shape], outputs: [flat] });
    const probs = this.m.tensor({ name: `${name}/probabilities`, shape: [1, classes], type: TensorType.INT8, quantization: perTensor(SOFTMAX_SCALE, SOFTMAX_ZERO_POINT) });
    this.m.operator(BuiltinOperator.SOFTMAX, 2, { inputs: [flat], outputs: [probs], builtinOptions: makeOptions('SoftmaxOptions', { beta: 1 }) });
    return probs;
  }
}

export interface QuantizedMultiExit {
  /** uint8 pixels → every backbone node → the final exit's probabilities; cut it with cutModel(). */
  backbone: TfliteModel;
  /** One model per early exit, reading that cut's int8 tensor. */
  heads: { after: string; model: TfliteModel }[];
}

export function quantizeMultiExitGraph(graph: FloatGraph): QuantizedMultiExit {
  const spec = graph.spec;
  if (!spec.exits || spec.exits.length < 1 || !spec.ranges) throw new FloatGraphError('float graph: only a trained graph (with "exits" and "ranges") can be quantized');
  const byName = new Map(spec.nodes.map((n) => [n.name, n]));
  const headNodes = new Set(spec.exits.slice(0, -1).flatMap((e) => e.nodes));
  const final = spec.exits.at(-1)!;

  const main = new Int8Emitter(graph);
  const { input } = spec;
  const pixels = main.m.tensor({ name: 'pixels', shape: [1, input.height, input.width, input.channels], type: TensorType.UINT8, quantization: perTensor(Math.fround(input.pixelScale), input.pixelZeroPoint) });
  // Same scale, zero point moved by 128: an exact uint8 → int8 shift, as the pretrained model's first op.
  const inputShape: Int8Tensor['shape'] = [1, input.height, input.width, input.channels];
  const inputQ = { scale: Math.fround(input.pixelScale), zeroPoint: input.pixelZeroPoint - 128 };
  const int8Input = main.m.tensor({ name: input.tensor, shape: [...inputShape], type: TensorType.INT8, quantization: perTensor(inputQ.scale, inputQ.zeroPoint) });
  main.m.operator(BuiltinOperator.QUANTIZE, 2, { inputs: [pixels], outputs: [int8Input] });
  main.bind(input.tensor, { index: int8Input, shape: inputShape, ...inputQ });
  for (const node of spec.nodes) if (!headNodes.has(node.name)) main.emit(node);
  const probs = main.softmax(main.value(final.logits, 'the final exit'), 'final');
  const backbone = main.m.model('multi-exit', `edge-exit int8 multi-exit backbone (${spec.description ?? 'trained float graph'})`, [pixels], [probs]);

  const heads = spec.exits.slice(0, -1).map((exit, i) => {
    const boundary = spec.boundaries.find((b) => b.name === exit.after);
    if (!boundary) throw new FloatGraphError(`float graph: exit ${i} hangs after "${exit.after}", which is not a boundary`);
    const seam = main.value(boundary.tensor, `exit ${i}`);
    const head = new Int8Emitter(graph);
    const seamIndex = head.m.tensor({ name: `exit${i}/input`, shape: [...seam.shape], type: TensorType.INT8, quantization: perTensor(seam.scale, seam.zeroPoint) });
    head.bind(boundary.tensor, { ...seam, index: seamIndex });
    for (const name of exit.nodes) {
      const node = byName.get(name);
      if (!node) throw new FloatGraphError(`float graph: exit ${i} lists node "${name}", which is not in "nodes"`);
      head.emit(node);
    }
    const out = head.softmax(head.value(exit.logits, `exit ${i}`), `exit${i}`);
    return { after: exit.after, model: head.m.model(`exit${i}`, `edge-exit int8 exit head after ${exit.after}`, [seamIndex], [out]) };
  });
  return { backbone, heads };
}
