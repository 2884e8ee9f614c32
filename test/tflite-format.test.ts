import fs from 'node:fs';
import test from 'ava';
import { Builder } from 'flatbuffers';
import { FlatFile } from '../agent/tflite/flat-table.js';
import { modelMacs, operatorMacsList } from '../tools/tflite/macs.js';
import { describeModel, formatModelDescription } from '../tools/tflite/inspect.js';
import { BuiltinOperator, builtinOperatorName, TensorType, tensorTypeName, type TfliteModel } from '../agent/tflite/model.js';
import { makeOptions } from '../agent/tflite/options.js';
import { readTfliteModel, TfliteFormatError } from '../agent/tflite/reader.js';
import { findModelProblems } from '../agent/tflite/validate.js';
import { BufferField, ModelField, OperatorCodeField, OperatorField, SubGraphField } from '../agent/tflite/schema.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { imageToRgb } from './helpers/images.js';
import { ModelRunner } from './helpers/run-model.js';
import { argmax } from '../agent/inference/top-k.js';
import { CAT_PHOTO, EDGETPU_MODEL, EGYPTIAN_CAT, MOBILENET_V2, cifarSamples } from './helpers/shared.js';

const original = new Uint8Array(fs.readFileSync(MOBILENET_V2));
const model = readTfliteModel(original);

async function realImages(): Promise<Uint8Array[]> {
  return [await imageToRgb(CAT_PHOTO), ...(await Promise.all(cifarSamples(5).map((f) => imageToRgb(f))))];
}

test('reads MobileNetV2: one subgraph, uint8 in and out, the expected ops and typed options', (t) => {
  t.is(model.version, 3);
  t.is(model.subgraphs.length, 1);
  const sg = model.subgraphs[0]!;
  const input = sg.tensors[sg.inputs[0]!]!;
  const output = sg.tensors[sg.outputs[0]!]!;
  t.deepEqual(input.shape, [1, 224, 224, 3]);
  t.is(input.type, TensorType.UINT8);
  t.deepEqual(output.shape, [1, 1001]);
  t.is(output.type, TensorType.UINT8);
  t.deepEqual(
    model.operatorCodes.map((c) => builtinOperatorName(c.builtinCode)).sort(),
    ['ADD', 'CONV_2D', 'DEPTHWISE_CONV_2D', 'MEAN', 'QUANTIZE', 'RESHAPE', 'SOFTMAX'],
  );
  const codeOf = (i: number) => model.operatorCodes[sg.operators[i]!.opcodeIndex]!.builtinCode;
  t.is(codeOf(0), BuiltinOperator.QUANTIZE);
  t.is(codeOf(sg.operators.length - 1), BuiltinOperator.QUANTIZE);

  const first = sg.operators[1]!.builtinOptions;
  t.deepEqual(first, makeOptions('Conv2DOptions', { strideW: 2, strideH: 2, fusedActivationFunction: 3 }));
  const kinds = new Set(sg.operators.map((op) => op.builtinOptions?.type));
  for (const kind of ['Conv2DOptions', 'DepthwiseConv2DOptions', 'AddOptions', 'ReducerOptions', 'SoftmaxOptions']) t.true(kinds.has(kind as never), kind);
  const mean = sg.operators.find((op) => op.builtinOptions?.type === 'ReducerOptions')!.builtinOptions;
  t.deepEqual(mean, { type: 'ReducerOptions', keepDims: true });
  const softmax = sg.operators.find((op) => op.builtinOptions?.type === 'SoftmaxOptions')!.builtinOptions;
  t.deepEqual(softmax, { type: 'SoftmaxOptions', beta: 1 });
  // Per-channel int8 weights of the first conv: one scale per output channel on axis 0.
  const weights = sg.tensors[sg.operators[1]!.inputs[1]!]!;
  t.is(weights.type, TensorType.INT8);
  t.is(weights.quantization!.scale.length, 32);
  t.is(weights.quantization!.quantizedDimension, 0);
});

test('write then read gives the same model, with metadata, the TFL3 identifier and 16-byte aligned buffers', (t) => {
  const written = writeTfliteModel(model);
  t.is(String.fromCharCode(...written.subarray(4, 8)), 'TFL3');
  const again = readTfliteModel(written);
  t.deepEqual(again, model);
  t.deepEqual(
    again.metadata.map((m) => m.name),
    ['min_runtime_version', 'TFLITE_METADATA'],
  );
  const version = again.buffers[again.metadata[0]!.buffer]!;
  t.is(new TextDecoder().decode(version).replace(/\0+$/, ''), '1.14.0');

  // Where each buffer's bytes start in the written file.
  const file = new FlatFile(written);
  const buffers = file.root('model').tableVector(ModelField.buffers, 'buffers')!;
  let checked = 0;
  for (const buffer of buffers) {
    const data = buffer.byteView(BufferField.data, 'data');
    if (!data || data.length === 0) continue;
    t.is(data.byteOffset % 16, 0);
    checked++;
  }
  t.true(checked > 100);
});

test('the rewritten model gives bit-identical outputs on real images', async (t) => {
  const before = new ModelRunner(original);
  const after = new ModelRunner(writeTfliteModel(model));
  const images = await realImages();
  images.forEach((image, i) => {
    const a = before.run(image);
    const b = after.run(image);
    t.deepEqual(b, a, `image ${i}`);
    if (i === 0) t.is(argmax(a), EGYPTIAN_CAT);
  });
});

test('a model built from scratch runs in the TFLite runtime', (t) => {
  const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
  const weights = [1, 0, 0, 0, 0, 1, 1, 0];
  const scratch: TfliteModel = {
    version: 3,
    operatorCodes: [
      { builtinCode: BuiltinOperator.FULLY_CONNECTED, version: 1 },
      { builtinCode: BuiltinOperator.SOFTMAX, version: 1 },
    ],
    subgraphs: [
      {
        name: 'main',
        tensors: [
          { name: 'x', shape: [1, 4], type: TensorType.FLOAT32, buffer: 0 },
          { name: 'w', shape: [2, 4], type: TensorType.FLOAT32, buffer: 1 },
          { name: 'b', shape: [2], type: TensorType.FLOAT32, buffer: 2 },
          { name: 'logits', shape: [1, 2], type: TensorType.FLOAT32, buffer: 0 },
          { name: 'probs', shape: [1, 2], type: TensorType.FLOAT32, buffer: 0 },
        ],
        inputs: [0],
        outputs: [4],
        operators: [
          { opcodeIndex: 0, inputs: [0, 1, 2], outputs: [3], builtinOptions: makeOptions('FullyConnectedOptions') },
          { opcodeIndex: 1, inputs: [3], outputs: [4], builtinOptions: makeOptions('SoftmaxOptions', { beta: 1 }) },
        ],
      },
    ],
    buffers: [new Uint8Array(0), f32(weights), f32([0.5, -0.5])],
    metadata: [],
  };
  const runner = new ModelRunner(writeTfliteModel(scratch));
  const out = runner.run(new Float32Array([1, 2, 3, 4]));
  // logits = [1 + 0.5, 2 + 3 - 0.5] = [1.5, 4.5]
  const e = [Math.exp(1.5), Math.exp(4.5)];
  t.true(Math.abs(out[0]! - e[0]! / (e[0]! + e[1]!)) < 1e-6);
  t.true(Math.abs(out[1]! - e[1]! / (e[0]! + e[1]!)) < 1e-6);
  t.deepEqual(readTfliteModel(writeTfliteModel(scratch)), scratch);
});

test('the writer refuses a model whose indices point nowhere', (t) => {
  const broken = structuredClone(model);
  broken.subgraphs[0]!.operators[3]!.inputs[0] = 9999;
  const error = t.throws(() => writeTfliteModel(broken));
  t.regex(error!.message, /operators\[3\]\.inputs\[0\] refers to tensor 9999/);
});

test('MACs follow the shape formulas and total about 300M for MobileNetV2', (t) => {
  const macs = operatorMacsList(model);
  t.is(macs[0], 0); // QUANTIZE
  t.is(macs[1], 112 * 112 * 32 * 3 * 3 * 3); // CONV_2D 3x3, 3 -> 32, stride 2
  t.is(macs[2], 112 * 112 * 32 * 3 * 3); // DEPTHWISE_CONV_2D 3x3
  t.is(macs[10], 56 * 56 * 24); // ADD
  t.is(macs[63], 7 * 7 * 1280); // MEAN
  t.is(modelMacs(model), 301_054_656);
});

test('describeModel and its terminal rendering', (t) => {
  const d = describeModel(model);
  t.is(d.ops.length, 68);
  t.is(d.totalMacs, 301_054_656);
  t.deepEqual(d.customOps, []);
  t.deepEqual(d.opHistogram[0], { op: 'CONV_2D', count: 36 });
  t.deepEqual(d.inputs[0]!.quantization!.zeroPoint, [127]);
  t.true(d.cutPoints.some((c) => c.name === 'block_6'));
  t.notThrows(() => JSON.stringify(d));
  const text = formatModelDescription(d);
  t.regex(text, /DEPTHWISE_CONV_2D x17/);
  t.regex(text, /block_16 +61 +1x7x7x320/);
  t.regex(text, /301\.05M MACs/);
});

test('the Edge TPU model reads, shows its custom op, and round-trips its custom options', (t) => {
  const bytes = new Uint8Array(fs.readFileSync(EDGETPU_MODEL));
  const tpu = readTfliteModel(bytes);
  t.deepEqual(tpu.operatorCodes, [{ builtinCode: BuiltinOperator.CUSTOM, customCode: 'edgetpu-custom-op', version: 1 }]);
  const op = tpu.subgraphs[0]!.operators[0]!;
  t.true(op.customOptions!.length > 100_000);
  t.deepEqual(describeModel(tpu).customOps, ['edgetpu-custom-op']);
  t.regex(formatModelDescription(describeModel(tpu)), /edgetpu-custom-op/);
  t.deepEqual(readTfliteModel(writeTfliteModel(tpu)), tpu);
});

test('operator and type names', (t) => {
  for (const [name, code] of Object.entries(BuiltinOperator)) t.is(builtinOperatorName(code), name);
  t.is(builtinOperatorName(161), 'RIGHT_SHIFT');
  t.is(builtinOperatorName(999), 'BUILTIN_999');
  t.is(tensorTypeName(TensorType.INT8), 'INT8');
});

// ---- malformed files ----

function expectFormatError(t: import('ava').ExecutionContext, bytes: Uint8Array, pattern: RegExp): void {
  const error = t.throws(() => readTfliteModel(bytes), { instanceOf: TfliteFormatError });
  t.regex(error!.message, pattern);
}

test('an empty file, a tiny file and a truncated model are refused with a fix', (t) => {
  expectFormatError(t, new Uint8Array(0), /empty.*re-download/);
  expectFormatError(t, original.subarray(0, 6), /too short/);
  expectFormatError(t, original.subarray(0, original.length >> 1), /truncated or corrupt; rebuild or re-download it/);
  // The original carries a zip of associated files after the flatbuffer, so cut a file this writer made.
  const written = writeTfliteModel(model);
  for (const fraction of [0.01, 0.1, 0.3, 0.6, 0.9, 0.999]) {
    t.throws(() => readTfliteModel(written.subarray(0, Math.floor(written.length * fraction))), { instanceOf: TfliteFormatError });
  }
});

test('a JPEG is refused as not a TFLite model', (t) => {
  const jpeg = new Uint8Array(fs.readFileSync(cifarSamples(1)[0]!));
  expectFormatError(t, jpeg, /not a TFLite model.*JPEG/);
});

test('offsets pointing outside the file are refused', (t) => {
  const bytes = original.slice();
  new DataView(bytes.buffer).setUint32(0, bytes.length + 100, true);
  expectFormatError(t, bytes, /outside the .*file.*truncated or corrupt/);
});

/** A minimal model whose one operator carries the given options union type. */
function modelWithOptionsType(optionsType: number, builtinCode: number): Uint8Array {
  const b = new Builder(256);
  b.startObject(1);
  const options = b.endObject();
  b.startVector(4, 0, 4);
  const empty = b.endVector();
  b.startObject(OperatorField.count);
  b.addFieldInt32(OperatorField.opcodeIndex, 0, null);
  b.addFieldOffset(OperatorField.inputs, empty, 0);
  b.addFieldOffset(OperatorField.outputs, empty, 0);
  b.addFieldInt8(OperatorField.builtinOptionsType, optionsType, 0);
  b.addFieldOffset(OperatorField.builtinOptions, options, 0);
  const op = b.endObject();
  b.startVector(4, 1, 4);
  b.addOffset(op);
  const ops = b.endVector();
  b.startObject(SubGraphField.count);
  b.addFieldOffset(SubGraphField.operators, ops, 0);
  const sg = b.endObject();
  b.startVector(4, 1, 4);
  b.addOffset(sg);
  const sgs = b.endVector();
  b.startObject(OperatorCodeField.count);
  // Only the old byte-wide field, as pre-2.4 converters wrote it.
  b.addFieldInt8(OperatorCodeField.deprecatedBuiltinCode, builtinCode, null);
  const code = b.endObject();
  b.startVector(4, 1, 4);
  b.addOffset(code);
  const codes = b.endVector();
  b.startObject(ModelField.count);
  b.addFieldInt32(ModelField.version, 3, null);
  b.addFieldOffset(ModelField.operatorCodes, codes, 0);
  b.addFieldOffset(ModelField.subgraphs, sgs, 0);
  b.finish(b.endObject(), 'TFL3');
  return b.asUint8Array().slice();
}

test('an options table the reader does not know is named in the error', (t) => {
  expectFormatError(t, modelWithOptionsType(14, BuiltinOperator.MUL /* any code */), /LSTMOptions \(union type 14\).*does not support/);
});

test('builtin codes: the larger of builtin_code and deprecated_builtin_code wins', (t) => {
  // Old files fill only the byte-wide field.
  const old = readTfliteModel(modelWithOptionsType(0, BuiltinOperator.CONV_2D));
  t.is(old.operatorCodes[0]!.builtinCode, BuiltinOperator.CONV_2D);
  // Codes past 127 live only in builtin_code; the writer puts the placeholder in the old field.
  const gelu = 150;
  const m: TfliteModel = { ...old, operatorCodes: [{ builtinCode: gelu, version: 1 }] };
  const file = new FlatFile(writeTfliteModel(m));
  const code = file.root('model').tableVector(ModelField.operatorCodes, 'operator_codes')![0]!;
  t.is(code.int8(OperatorCodeField.deprecatedBuiltinCode, 'deprecated'), 127);
  t.is(code.int32(OperatorCodeField.builtinCode, 'builtin'), gelu);
  t.is(readTfliteModel(writeTfliteModel(m)).operatorCodes[0]!.builtinCode, gelu);
});

test('randomly damaged models never crash the reader: they read or throw TfliteFormatError', (t) => {
  const written = writeTfliteModel(model);
  // The tables sit at the front of files this writer makes; the weights fill the rest.
  const tableBytes = written.length - model.buffers.reduce((n, b) => n + b.length, 0);
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  let refused = 0;
  for (let trial = 0; trial < 150; trial++) {
    const bytes = written.slice();
    const hits = 1 + Math.floor(random() * 4);
    for (let h = 0; h < hits; h++) bytes[Math.floor(random() * tableBytes)] = Math.floor(random() * 256);
    let read: TfliteModel | undefined;
    try {
      read = readTfliteModel(bytes);
    } catch (error) {
      t.true(error instanceof TfliteFormatError, `trial ${trial}: ${String(error)}`);
      t.regex((error as Error).message, /^(TFLite model: .+; the file is truncated or corrupt; rebuild or re-download it\.|not a TFLite model: .+; pass a \.tflite model file\.)$/s, `trial ${trial}`);
      refused++;
    }
    // What reads despite the damage must be whole: every index points at something that exists.
    if (read) t.deepEqual(findModelProblems(read), [], `trial ${trial}: a damaged file read as a half-valid model`);
  }
  t.log(`${refused} of 150 damaged files refused`);
  // The same seed every run: both paths are taken, so neither check above is idle.
  t.true(refused > 0 && refused < 150, `${refused} of 150 refused`);
});

test('buffers stored after the flatbuffer (offset/size extension) are read from the file', (t) => {
  const b = new Builder(256);
  const at = 4096;
  const payload = [1, 2, 3, 4, 5, 6, 7, 8];
  b.startObject(BufferField.count);
  const sentinel = b.endObject();
  b.startObject(BufferField.count);
  b.addFieldInt64(BufferField.offset, BigInt(at), 0n);
  b.addFieldInt64(BufferField.size, BigInt(payload.length), 0n);
  const external = b.endObject();
  b.startVector(4, 2, 4);
  b.addOffset(external);
  b.addOffset(sentinel);
  const buffers = b.endVector();
  b.startObject(SubGraphField.count);
  const sg = b.endObject();
  b.startVector(4, 1, 4);
  b.addOffset(sg);
  const sgs = b.endVector();
  b.startObject(ModelField.count);
  b.addFieldInt32(ModelField.version, 3, null);
  b.addFieldOffset(ModelField.subgraphs, sgs, 0);
  b.addFieldOffset(ModelField.buffers, buffers, 0);
  b.finish(b.endObject(), 'TFL3');
  const flat = b.asUint8Array();
  const file = new Uint8Array(at + payload.length);
  file.set(flat);
  file.set(payload, at);
  const read = readTfliteModel(file);
  t.deepEqual([...read.buffers[1]!], payload);
  // Written back, the data is stored inline.
  t.deepEqual([...readTfliteModel(writeTfliteModel(read)).buffers[1]!], payload);
  expectFormatError(t, file.subarray(0, at + 4), /outside the .*file/);
});
