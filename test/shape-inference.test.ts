import fs from 'node:fs';
import test from 'ava';
import { argmax } from '../agent/inference/top-k.js';
import { TfliteInterpreter, type TensorData } from '../agent/runtime/interpreter.js';
import { findCutPoints } from '../tools/segmenter/cut-points.js';
import { cutModel } from '../tools/segmenter/segment.js';
import { describeModel } from '../tools/tflite/inspect.js';
import { modelMacs, operatorMacsList } from '../tools/tflite/macs.js';
import { BuiltinOperator, type TfliteModel } from '../agent/tflite/model.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { inferShapes, resizeModelInput, ShapeInferenceError } from '../tools/tflite/shape-inference.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { imageToRgb } from './helpers/images.js';
import { CAT_PHOTO, EGYPTIAN_CAT, MOBILENET_V2, cifarSamples } from './helpers/shared.js';

const model = readTfliteModel(new Uint8Array(fs.readFileSync(MOBILENET_V2)));
const sg = model.subgraphs[0]!;
const SIZES = [192, 160, 128, 96];
const CUTS = ['block_6', 'block_10', 'block_13'];

const isConstant = (m: TfliteModel, t: number) => m.buffers[m.subgraphs[0]!.tensors[t]!.buffer]!.length > 0;
const activations = (m: TfliteModel) => m.subgraphs[0]!.operators.flatMap((op) => op.outputs);

function run(interpreter: TfliteInterpreter, input: ArrayLike<number>): TensorData {
  interpreter.setInput(input);
  interpreter.invoke();
  return interpreter.output().data.slice();
}

/** The same model with every activation as a graph output, so the runtime reports the shape it computed for each. */
function exposeActivations(m: TfliteModel): TfliteModel {
  const copy = structuredClone(m);
  copy.subgraphs[0]!.outputs = activations(m);
  return copy;
}

function runtimeShapes(m: TfliteModel): number[][] {
  const interpreter = TfliteInterpreter.fromBytes(writeTfliteModel(exposeActivations(m)), 'all activations', { backend: 'stock', threads: 1 });
  return interpreter.outputs.map((o) => [...o.shape]);
}

test('inferShapes on the 224 model reproduces every shape stored in the file', (t) => {
  const copy = structuredClone(model);
  // Scramble every activation so nothing survives from the file by accident.
  const scrambled = activations(copy);
  t.is(scrambled.length, sg.operators.length);
  for (const i of scrambled) copy.subgraphs[0]!.tensors[i]!.shape = [0];
  inferShapes(copy);
  t.is(copy.subgraphs[0]!.tensors.length, sg.tensors.length);
  sg.tensors.forEach((tensor, i) => t.deepEqual(copy.subgraphs[0]!.tensors[i]!.shape, tensor.shape, `tensor ${i} ${tensor.name}`));
  t.deepEqual(copy, model);
});

test('resized models: static shapes match the runtime, MACs scale with the area', (t) => {
  const baseMacs = operatorMacsList(model);
  let previousTotal = modelMacs(model);
  for (const size of SIZES) {
    const resized = readTfliteModel(writeTfliteModel(resizeModelInput(model, size, size)));
    const rs = resized.subgraphs[0]!;
    t.deepEqual(rs.tensors[rs.inputs[0]!]!.shape, [1, size, size, 3]);
    // Constants are untouched; only activation shapes change.
    rs.tensors.forEach((tensor, i) => {
      if (isConstant(resized, i)) t.deepEqual(tensor.shape, sg.tensors[i]!.shape);
    });

    const fromRuntime = runtimeShapes(resized);
    const statics = activations(resized).map((i) => rs.tensors[i]!.shape);
    t.deepEqual(fromRuntime, statics, `${size}: every activation`);

    // The runtime re-infers shapes from the input alone: given a file where only
    // the input was changed, it reports the same shapes, not the stale ones.
    const stale = structuredClone(model);
    stale.subgraphs[0]!.tensors[stale.subgraphs[0]!.inputs[0]!]!.shape = [1, size, size, 3];
    t.deepEqual(runtimeShapes(stale), statics, `${size}: runtime on a file with only the input changed`);
    t.notDeepEqual(activations(stale).map((i) => stale.subgraphs[0]!.tensors[i]!.shape), statics);

    const interpreter = TfliteInterpreter.fromBytes(writeTfliteModel(resized), `${size}`, { backend: 'stock', threads: 1 });
    t.deepEqual([...interpreter.input().shape], [1, size, size, 3]);
    t.deepEqual([...interpreter.output().shape], rs.tensors[rs.outputs[0]!]!.shape);

    // Sizes are multiples of 32, so every feature map shrinks by exactly
    // (size/224)^2; only the ops after global pooling (1x1 maps) keep their cost.
    const macs = operatorMacsList(resized);
    macs.forEach((m, i) => {
      const out = sg.tensors[sg.operators[i]!.outputs[0]!]!.shape;
      const code = model.operatorCodes[sg.operators[i]!.opcodeIndex]!.builtinCode;
      const spatial = code === BuiltinOperator.MEAN || (out.length === 4 && out[1]! > 1);
      t.is(m, spatial ? (baseMacs[i]! * size * size) / (224 * 224) : baseMacs[i]!, `${size}: op ${i}`);
    });
    const total = modelMacs(resized);
    const ratio = total / modelMacs(model);
    t.true(Math.abs(ratio - (size / 224) ** 2) < 0.005, `${size}: MACs ratio ${ratio}`);
    t.true(total < previousTotal);
    previousTotal = total;
  }
});

test('resizing returns a new model and leaves the argument alone', (t) => {
  const before = structuredClone(model);
  const resized = resizeModelInput(model, 160, 160);
  t.deepEqual(model, before);
  t.not(resized.subgraphs, model.subgraphs);
  t.deepEqual(resized.operatorCodes, model.operatorCodes);
  // Non-square sizes work too.
  const wide = resizeModelInput(model, 96, 160);
  const ws = wide.subgraphs[0]!;
  t.deepEqual(ws.tensors[ws.inputs[0]!]!.shape, [1, 96, 160, 3]);
  t.deepEqual(findCutPoints(wide).find((p) => p.name === 'block_6')!.shape, [1, 6, 10, 64]);
});

test('shape signatures keep their dynamic dims and follow the new static ones', (t) => {
  const dynamic = structuredClone(model);
  // As a converter writes a dynamic batch: -1 first, the rest as the static shape.
  for (const tensor of dynamic.subgraphs[0]!.tensors) {
    if (tensor.shape.length > 1) tensor.shapeSignature = [-1, ...tensor.shape.slice(1)];
  }
  const resized = resizeModelInput(dynamic, 160, 160);
  const rs = resized.subgraphs[0]!;
  t.deepEqual(rs.tensors[rs.inputs[0]!]!.shapeSignature, [-1, 160, 160, 3]);
  t.deepEqual(rs.tensors[rs.outputs[0]!]!.shapeSignature, [-1, 1001]);
  rs.tensors.forEach((tensor, i) => {
    if (tensor.shapeSignature) t.deepEqual(tensor.shapeSignature, [-1, ...tensor.shape.slice(1)], `tensor ${i}`);
  });
  t.is(rs.tensors.filter((x) => x.shapeSignature).length, dynamic.subgraphs[0]!.tensors.filter((x) => x.shapeSignature).length);
});

test('cut points, inspect and segments at 160x160', (t) => {
  const resized = resizeModelInput(model, 160, 160);
  const points = findCutPoints(resized);
  const byName = new Map(points.map((p) => [p.name, p]));
  t.deepEqual(byName.get('block_6')!.shape, [1, 10, 10, 64]);
  t.deepEqual(byName.get('block_13')!.shape, [1, 5, 5, 160]);
  t.deepEqual(byName.get('block_16')!.shape, [1, 5, 5, 320]);
  t.deepEqual(byName.get('pooled')!.shape, [1, 1, 1, 1280]);
  // Same cut positions and labels as at 224.
  t.deepEqual(
    points.map((p) => [p.name, p.afterOp]),
    findCutPoints(model).map((p) => [p.name, p.afterOp]),
  );

  const described = describeModel(resized);
  t.deepEqual(described.inputs[0]!.shape, [1, 160, 160, 3]);
  t.deepEqual(described.ops[1]!.outputShape, [1, 80, 80, 32]);
  t.is(described.totalMacs, modelMacs(resized));

  const { segments, head } = cutModel(resized, CUTS);
  const chain = [...segments, head];
  const io = (m: TfliteModel, which: 'inputs' | 'outputs') => m.subgraphs[0]!.tensors[m.subgraphs[0]![which][0]!]!.shape;
  t.deepEqual(io(segments[0]!, 'inputs'), [1, 160, 160, 3]);
  chain.slice(0, -1).forEach((part, k) => {
    t.deepEqual(io(part, 'outputs'), byName.get(CUTS[k] ?? 'pooled')!.shape);
    t.deepEqual(io(chain[k + 1]!, 'inputs'), io(part, 'outputs'));
  });
  t.is(chain.reduce((n, m) => n + modelMacs(m), 0), modelMacs(resized));
});

test('the resized model runs on XNNPACK and still sees the cat', async (t) => {
  for (const size of SIZES) {
    const bytes = writeTfliteModel(resizeModelInput(model, size, size));
    const interpreter = TfliteInterpreter.fromBytes(bytes, `${size}`, { backend: 'xnnpack', threads: 2 });
    t.is(interpreter.backend, 'xnnpack');
    const out = run(interpreter, await imageToRgb(CAT_PHOTO, size));
    const best = argmax(out);
    if (size === 192) {
      t.is(best, EGYPTIAN_CAT);
    } else {
      // Measured at 160, 128 and 96: tiger cat (282), Persian (283) and Egyptian
      // cat (286) tie at the top of the uint8 output, so argmax picks 282; only
      // the tie, not the exact winner, is asserted.
      t.is(out[EGYPTIAN_CAT], out[best], `${size}: top-1 ${best}`);
      t.true(best >= 282 && best <= 286, `${size}: top-1 ${best} is a domestic cat`);
    }
  }
});

test('the segment chain of a resized model is bit-identical to the resized whole model', async (t) => {
  // 32 is CIFAR-10's own size, the reason for resizing.
  for (const size of [160, 96, 32]) {
    const resized = resizeModelInput(model, size, size);
    const images = [await imageToRgb(CAT_PHOTO, size), ...(await Promise.all(cifarSamples(6).map((f) => imageToRgb(f, size))))];
    const { segments, head } = cutModel(resized, CUTS);
    for (const backend of ['stock', 'xnnpack'] as const) {
      const whole = TfliteInterpreter.fromBytes(writeTfliteModel(resized), 'whole', { backend, threads: 1 });
      const chain = [...segments, head].map((m, k) => TfliteInterpreter.fromBytes(writeTfliteModel(m), `part ${k}`, { backend, threads: 1 }));
      t.is(whole.backend, backend);
      images.forEach((image, i) => {
        const expected = run(whole, image);
        let x: TensorData = image;
        for (const part of chain) x = run(part, x);
        t.deepEqual(x, expected, `${size}x${size} ${backend}, image ${i}`);
      });
    }
  }
});

test('a size at which a spatial dimension collapses is refused', (t) => {
  const error = t.throws(() => resizeModelInput(model, 4, 4), { instanceOf: ShapeInferenceError });
  t.regex(error!.message, /at 4x4: operator \d+ \(DEPTHWISE_CONV_2D, .*stride 2 but its input height is only 1.*collapses/);
  // 16 leaves a 1-pixel map for the last stride-2 layer; 17 is the smallest size that does not.
  t.throws(() => resizeModelInput(model, 16, 16), { instanceOf: ShapeInferenceError, message: /collapses/ });
  t.notThrows(() => resizeModelInput(model, 17, 17));
  t.throws(() => resizeModelInput(model, 224, 8), { instanceOf: ShapeInferenceError, message: /input width is only 1/ });
  t.throws(() => resizeModelInput(model, 0, 160), { instanceOf: RangeError });
  t.throws(() => resizeModelInput(model, 160.5, 160), { instanceOf: RangeError });
});

test('a fixed RESHAPE that no longer fits is refused, naming the op', (t) => {
  // Variant whose head depends on the width: MEAN over H only, then a fixed
  // reshape of the 7 remaining columns into [1, 7*1001].
  const variant = structuredClone(model);
  const vs = variant.subgraphs[0]!;
  const opOf = (code: number) => vs.operators.find((op) => variant.operatorCodes[op.opcodeIndex]!.builtinCode === code)!;
  const int32 = (values: number[]) => new Uint8Array(new Int32Array(values).buffer);
  variant.buffers[vs.tensors[opOf(BuiltinOperator.MEAN).inputs[1]!]!.buffer] = int32([1, 1]);
  const reshape = opOf(BuiltinOperator.RESHAPE);
  variant.buffers[vs.tensors[reshape.inputs[1]!]!.buffer] = int32([1, 7 * 1001]);
  inferShapes(variant);
  t.deepEqual(vs.tensors[reshape.outputs[0]!]!.shape, [1, 7007]);
  t.notThrows(() => resizeModelInput(variant, 224, 224));
  t.notThrows(() => resizeModelInput(variant, 160, 224));

  const error = t.throws(() => resizeModelInput(variant, 224, 160), { instanceOf: ShapeInferenceError });
  t.regex(error!.message, /operator 65 \(RESHAPE, .*fixed new shape \[1,7007\] \(7007 elements, from its shape input .*\[1,1,5,1001\] \(5005 elements\)/);

  // With -1 in the new shape it adapts instead.
  variant.buffers[vs.tensors[reshape.inputs[1]!]!.buffer] = int32([1, -1]);
  const adapted = resizeModelInput(variant, 224, 160);
  t.deepEqual(adapted.subgraphs[0]!.tensors[reshape.outputs[0]!]!.shape, [1, 5005]);

  // A new_shape option is used when there is no shape input.
  const fromOptions = structuredClone(model);
  const fr = fromOptions.subgraphs[0]!.operators[65]!;
  fr.inputs = [fr.inputs[0]!];
  fr.builtinOptions = { type: 'ReshapeOptions', newShape: [1, 1001] };
  t.deepEqual(resizeModelInput(fromOptions, 128, 128).subgraphs[0]!.tensors[fr.outputs[0]!]!.shape, [1, 1001]);
});

test('an operator shape inference does not know is refused by name', (t) => {
  const copy = structuredClone(model);
  // RESIZE_BILINEAR (23) in place of the final QUANTIZE: a real op with no shape rule here.
  copy.operatorCodes.push({ builtinCode: 23, version: 1 });
  copy.subgraphs[0]!.operators.at(-1)!.opcodeIndex = copy.operatorCodes.length - 1;
  const before = structuredClone(copy);
  const error = t.throws(() => inferShapes(copy), { instanceOf: ShapeInferenceError });
  t.regex(error!.message, /^operator 67 \(RESIZE_BILINEAR, output "Identity"\) is not an operator shape inference knows/);
  t.deepEqual(copy, before, 'a failed inference leaves the model unchanged');
  t.throws(() => resizeModelInput(copy, 160, 160), { instanceOf: ShapeInferenceError, message: /at 160x160: .*RESIZE_BILINEAR/ });

  const custom = structuredClone(model);
  custom.operatorCodes.push({ builtinCode: BuiltinOperator.CUSTOM, customCode: 'MyOp', version: 1 });
  custom.subgraphs[0]!.operators[0]!.opcodeIndex = custom.operatorCodes.length - 1;
  t.throws(() => inferShapes(custom), { instanceOf: ShapeInferenceError, message: /operator 0 \(MyOp, .*not an operator shape inference knows/ });
});
