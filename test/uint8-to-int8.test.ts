import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { SegmentChain } from '../agent/inference/segment-chain.js';
import { argmax } from '../agent/inference/top-k.js';
import { loadModelPackage } from '../agent/model-package/load.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter } from '../agent/runtime/interpreter.js';
import { isUint8Quantized } from '../agent/runtime/xnnpack-delegate.js';
import { BuiltinOperator, TensorType } from '../agent/tflite/model.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { loadBuildConfig } from '../tools/model-package/build-config.js';
import { buildModelPackage } from '../tools/model-package/build.js';
import { convertUint8ToInt8 } from '../tools/tflite/uint8-to-int8.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { CAT_PHOTO, EGYPTIAN_CAT, IMAGENET_LABELS, MOBILENET_V2_UINT8, cifarSamples, temporaryDir } from './helpers/shared.js';

const size = { width: 224, height: 224, resize: 'stretch' as const };
const original = readTfliteModel(fs.readFileSync(MOBILENET_V2_UINT8));
const { model: converted, report } = convertUint8ToInt8(original);
const convertedBytes = writeTfliteModel(converted);

test('weights become symmetric per-channel int8, activations int8 shifted by 128, and the model keeps its uint8 input and output', (t) => {
  t.false(isUint8Quantized(converted));
  const graph = converted.subgraphs[0]!;
  const before = original.subgraphs[0]!;
  const conv = graph.operators.find((op) => converted.operatorCodes[op.opcodeIndex]!.builtinCode === BuiltinOperator.CONV_2D)!;
  const weights = graph.tensors[conv.inputs[1]!]!;
  t.is(weights.type, TensorType.INT8);
  t.is(weights.quantization!.scale.length, weights.shape[0]!);
  t.true(weights.quantization!.zeroPoint.every((z) => z === 0));
  const activation = graph.tensors[conv.outputs[0]!]!;
  t.is(activation.type, TensorType.INT8);
  t.is(activation.quantization!.zeroPoint[0], before.tensors[conv.outputs[0]!]!.quantization!.zeroPoint[0]! - 128);
  t.is(activation.quantization!.scale[0], before.tensors[conv.outputs[0]!]!.quantization!.scale[0]);
  for (const index of [...graph.inputs, ...graph.outputs]) t.is(graph.tensors[index]!.type, TensorType.UINT8);
  const ends = [graph.operators[0]!, graph.operators.at(-1)!].map((op) => converted.operatorCodes[op.opcodeIndex]!.builtinCode);
  t.deepEqual(ends, [BuiltinOperator.QUANTIZE, BuiltinOperator.QUANTIZE]);
  // Most channels fit int8 as they are; the few wider ones are rounded by at most half a step.
  t.true(report.rescaledChannels > 0 && report.rescaledChannels < report.channels / 100, JSON.stringify(report));
  t.true(report.maxRoundingSteps <= 0.5);
  t.is(report.weightTensors, 53);
});

test('the int8 form gives the uint8 model\'s top-1 on the cat photo, on the stock kernels and on XNNPACK, and mostly elsewhere', async (t) => {
  const reference = TfliteInterpreter.fromFile(MOBILENET_V2_UINT8, { backend: 'stock', threads: 2 });
  const xnnpack = TfliteInterpreter.fromBytes(convertedBytes, 'converted', { backend: 'xnnpack', threads: 2 });
  const stock = TfliteInterpreter.fromBytes(convertedBytes, 'converted', { backend: 'stock', threads: 2 });
  t.deepEqual(xnnpack.xnnpack!.flags, ['QS8']);
  t.is(xnnpack.xnnpack!.qu8Refused, undefined);
  const files = [CAT_PHOTO, ...cifarSamples(10)];
  const agree = { xnnpack: 0, stock: 0 };
  for (const file of files) {
    const rgb = await imageFileToRgb(file, size);
    const top1 = (interpreter: TfliteInterpreter) => {
      interpreter.input().data.set(rgb);
      interpreter.invoke();
      return argmax(interpreter.output().data);
    };
    const expected = top1(reference);
    const got = { xnnpack: top1(xnnpack), stock: top1(stock) };
    if (file === CAT_PHOTO) {
      t.is(expected, EGYPTIAN_CAT);
      t.deepEqual(got, { xnnpack: EGYPTIAN_CAT, stock: EGYPTIAN_CAT });
    }
    if (got.xnnpack === expected) agree.xnnpack += 1;
    if (got.stock === expected) agree.stock += 1;
  }
  // CIFAR-10 photos blown up to 224x224 are hard ImageNet cases whose top-1 shifts with rounding.
  t.true(agree.xnnpack >= files.length - 3 && agree.stock >= files.length - 3, JSON.stringify(agree));
});

test('build-model cuts a uint8 base model as its int8 form, and the chain classifies the cat photo', async (t) => {
  const dir = temporaryDir('edge-exit-uint8-pkg-');
  const config = path.join(dir, 'uint8.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ name: 'uint8_pkg', baseModel: { path: MOBILENET_V2_UINT8 }, labels: { task: 'imagenet', path: IMAGENET_LABELS }, cuts: ['block_6', 'block_10', 'block_13'], latencyRuns: 2 }),
  );
  const out = path.join(dir, 'pkg');
  await buildModelPackage(loadBuildConfig(config), { outDir: out });
  const pkg = loadModelPackage(out);
  t.is(pkg.manifest.segments[0]!.input.dtype, 'uint8');
  for (const s of pkg.manifest.segments.slice(1)) t.is(s.input.dtype, 'int8');
  const chain = SegmentChain.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  chain.input.data.set(await imageFileToRgb(CAT_PHOTO, size));
  t.is(argmax(chain.runToEnd('imagenet').data), EGYPTIAN_CAT);
});
