import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { argmax } from '../agent/inference/top-k.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { detectEdgeTpu, type SystemRoots } from '../agent/runtime/edgetpu.js';
import { EdgeTpuUnavailableError, ModelLoadError, TensorShapeError } from '../agent/runtime/errors.js';
import { TfliteInterpreter } from '../agent/runtime/interpreter.js';
import {
  autoThreadCount,
  canShareDelegate,
  checkXnnpackPlugin,
  isUint8Quantized,
  xnnpackFlagsFor,
  DEFAULT_XNNPACK_PLUGIN_PATH,
  XNNPACK_FLAG_QS8,
  XNNPACK_FLAG_QU8,
} from '../agent/runtime/xnnpack-delegate.js';
import { BuiltinOperator, TensorType } from '../agent/tflite/model.js';
import { makeOptions } from '../agent/tflite/options.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { ModelAssembler } from '../tools/tflite/assembler.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { CAT_PHOTO, EDGETPU_MODEL, EGYPTIAN_CAT, IMAGENET_LABELS, MOBILENET_V2, MOBILENET_V2_UINT8, cifarSamples, temporaryDir } from './helpers/shared.js';

const size = { width: 224, height: 224, resize: 'stretch' as const };

/** A fake /sys, /dev and library tree, as a gateway's kernel and packages would lay them out. */
function fakeSystem(options: { usb?: [string, string]; apex?: boolean; library?: 'real' | 'garbage' }): SystemRoots {
  const root = temporaryDir('edge-exit-sys-');
  const sys = path.join(root, 'sys');
  const dev = path.join(root, 'dev');
  const lib = path.join(root, 'lib');
  for (const dir of [sys, dev, lib, path.join(sys, 'bus', 'usb', 'devices', 'usb1')]) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(sys, 'bus', 'usb', 'devices', 'usb1', 'idVendor'), '1d6b\n');
  fs.writeFileSync(path.join(sys, 'bus', 'usb', 'devices', 'usb1', 'idProduct'), '0002\n');
  if (options.usb) {
    const dir = path.join(sys, 'bus', 'usb', 'devices', '2-1');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'idVendor'), `${options.usb[0]}\n`);
    fs.writeFileSync(path.join(dir, 'idProduct'), `${options.usb[1]}\n`);
  }
  if (options.apex) fs.writeFileSync(path.join(dev, 'apex_0'), '');
  if (options.library === 'garbage') fs.writeFileSync(path.join(lib, 'libedgetpu.so.1'), 'not an ELF file');
  return { sys, dev, libraryDirs: [lib] };
}

test('XNNPACK and stock runtimes both classify the real cat photo as Egyptian cat', async (t) => {
  const rgb = await imageFileToRgb(CAT_PHOTO, size);
  for (const backend of ['xnnpack', 'stock'] as const) {
    const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2, { backend, threads: 2 });
    t.is(interpreter.backend, backend);
    t.deepEqual(interpreter.input().shape, [1, 224, 224, 3]);
    t.is(interpreter.input().dtype, 'uint8');
    t.is(interpreter.output().data.length, 1001);
    interpreter.input().data.set(rgb);
    const ms = interpreter.invoke();
    t.true(ms > 0);
    t.is(argmax(interpreter.output().data), EGYPTIAN_CAT, backend);
  }
});

test('inputs and outputs carry the quantization read from the model file', (t) => {
  const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2);
  const q = interpreter.input().quantization;
  t.truthy(q);
  t.true(q!.scale > 0 && q!.scale < 1);
  t.true(q!.zeroPoint >= 0 && q!.zeroPoint <= 255);
  t.truthy(interpreter.output().quantization);
});

test('XNNPACK and stock agree on top-1 for real CIFAR-10 images', async (t) => {
  const xnn = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads: 1 });
  const stock = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'stock', threads: 1 });
  let agree = 0;
  const files = cifarSamples(6);
  for (const file of files) {
    const rgb = await imageFileToRgb(file, size);
    xnn.setInput(rgb);
    stock.setInput(rgb);
    xnn.invoke();
    stock.invoke();
    if (argmax(xnn.output().data) === argmax(stock.output().data)) agree += 1;
  }
  t.true(agree >= files.length - 1, `agreed on ${agree} of ${files.length}`);
});

test('a missing XNNPACK plugin falls back to the stock path and still classifies', async (t) => {
  const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', xnnpackPluginPath: '/nonexistent/libplugin.so' });
  t.is(interpreter.backend, 'stock');
  interpreter.setInput(await imageFileToRgb(CAT_PHOTO, size));
  interpreter.invoke();
  t.is(argmax(interpreter.output().data), EGYPTIAN_CAT);
});

test('a missing model file names the path and the fix', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile('/nonexistent/model.tflite'), { instanceOf: ModelLoadError });
  t.regex(error!.message, /\/nonexistent\/model\.tflite/);
  t.regex(error!.message, /does not exist/);
});

test('a truncated model file is refused before it reaches the native runtime', (t) => {
  const dir = temporaryDir();
  const file = path.join(dir, 'truncated.tflite');
  const bytes = fs.readFileSync(MOBILENET_V2);
  fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const error = t.throws(() => TfliteInterpreter.fromFile(file), { instanceOf: ModelLoadError });
  t.regex(error!.message, /truncated\.tflite/);
  t.regex(error!.message, /truncated|corrupt/i);
});

test('a file that is not TFLite says so', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile(cifarSamples(1)[0]!), { instanceOf: ModelLoadError });
  t.regex(error!.message, /not a TFLite/i);
});

test('an Edge TPU model without a TPU says so and what to install', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile(EDGETPU_MODEL, { systemRoots: fakeSystem({}) }), { instanceOf: EdgeTpuUnavailableError });
  t.regex(error!.message, /compiled for the Edge TPU/);
  t.regex(error!.message, /no Coral Edge TPU was found/);
  t.regex(error!.message, /libedgetpu1-std/);
});

test('an Edge TPU model on the CPU backend is refused with the alternatives', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile(EDGETPU_MODEL, { backend: 'xnnpack' }), { instanceOf: ModelLoadError });
  t.regex(error!.message, /compiled for the Edge TPU/);
});

test('a Coral device without libedgetpu asks for the runtime package', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile(EDGETPU_MODEL, { systemRoots: fakeSystem({ usb: ['18d1', '9302'] }) }), {
    instanceOf: EdgeTpuUnavailableError,
  });
  t.regex(error!.message, /usb:0/);
  t.regex(error!.message, /libedgetpu\.so\.1 was not found/);
});

test('a broken libedgetpu is reported instead of crashing the process', (t) => {
  const error = t.throws(() => TfliteInterpreter.fromFile(EDGETPU_MODEL, { systemRoots: fakeSystem({ usb: ['1a6e', '089a'], library: 'garbage' }) }), {
    instanceOf: EdgeTpuUnavailableError,
  });
  t.regex(error!.message, /cannot be loaded/);
});

test('Edge TPU detection reads USB ids and apex nodes from sysfs and /dev', (t) => {
  t.deepEqual(detectEdgeTpu(fakeSystem({})).devices, []);
  const usb = detectEdgeTpu(fakeSystem({ usb: ['1a6e', '089a'] }));
  t.deepEqual(usb.devices.map((d) => d.device), ['usb:0']);
  const both = detectEdgeTpu(fakeSystem({ usb: ['18d1', '9302'], apex: true, library: 'garbage' }));
  t.deepEqual(both.devices.map((d) => d.device), ['usb:0', 'pci:0']);
  t.truthy(both.libraryPath);
  t.deepEqual(detectEdgeTpu(fakeSystem({ usb: ['18d1', '0001'] })).devices, []);
});

test('an input of the wrong size is refused with the expected size', (t) => {
  const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2);
  const error = t.throws(() => interpreter.setInput(new Uint8Array(32 * 32 * 3)), { instanceOf: TensorShapeError });
  t.regex(error!.message, /takes 150528 values/);
  t.regex(error!.message, /1x224x224x3/);
});

test('threads out of range are refused', (t) => {
  t.throws(() => TfliteInterpreter.fromFile(MOBILENET_V2, { threads: 0 }), { instanceOf: RangeError });
});

test('the thread count reaches the XNNPACK delegate: 2 threads get a thread pool, 1 thread none', (t) => {
  const one = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads: 1 });
  const two = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads: 2 });
  t.deepEqual(one.xnnpack, { threads: 1, flags: ['QS8'], threadpool: false, sharedPool: false });
  t.deepEqual(two.xnnpack, { threads: 2, flags: ['QS8'], threadpool: true, sharedPool: true });
  t.is(two.threads, 2);
});

test('interpreters with the same threads share one XNNPACK pool, and give the 1-thread answer', async (t) => {
  const check = checkXnnpackPlugin(DEFAULT_XNNPACK_PLUGIN_PATH);
  if (!check.ok) return t.fail(check.reason);
  const rgb = await imageFileToRgb(CAT_PHOTO, size);
  const outputs = [1, 2, 2].map((threads) => {
    const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads });
    interpreter.input().data.set(rgb);
    return interpreter;
  });
  // Other tests of this file make interpreters at the same time, so the count is a floor.
  t.deepEqual(outputs.map((i) => i.xnnpack!.sharedPool), [false, true, true], 'the 1-thread interpreter has no pool to share');
  t.true(check.plugin.sharedUsers() >= 2);
  // Each invoke after the other's, on the one pool: same logits as the private 1-thread delegate.
  for (const interpreter of [outputs[1]!, outputs[2]!, outputs[0]!]) interpreter.invoke();
  t.deepEqual([...outputs[1]!.output().data], [...outputs[0]!.output().data]);
  t.deepEqual([...outputs[2]!.output().data], [...outputs[0]!.output().data]);
  t.is(argmax(outputs[2]!.output().data), EGYPTIAN_CAT);
});

/** A float model whose weights are fp16 constants behind a DEQUANTIZE: XNNPACK unpacks them into the delegate itself. */
function fp16WeightsModel(): Uint8Array {
  const a = new ModelAssembler();
  const weights = new Uint16Array(16);
  for (let i = 0; i < 16; i++) weights[i] = i % 5 === 0 ? 0x3c00 : 0; // 1.0 on the diagonal
  const input = a.tensor({ name: 'x', shape: [1, 4], type: TensorType.FLOAT32 });
  const packed = a.tensor({ name: 'w16', shape: [4, 4], type: TensorType.FLOAT16 }, new Uint8Array(weights.buffer));
  const unpacked = a.tensor({ name: 'w', shape: [4, 4], type: TensorType.FLOAT32 });
  const output = a.tensor({ name: 'y', shape: [1, 4], type: TensorType.FLOAT32 });
  a.operator(BuiltinOperator.DEQUANTIZE, 2, { inputs: [packed], outputs: [unpacked] });
  a.operator(BuiltinOperator.FULLY_CONNECTED, 1, { inputs: [input, unpacked, -1], outputs: [output], builtinOptions: makeOptions('FullyConnectedOptions', { fusedActivationFunction: 0 }) });
  return writeTfliteModel(a.model('main', 'fp16 weights, for the delegate-sharing rule', [input], [output]));
}

test('a model with constants XNNPACK unpacks into its delegate keeps a delegate of its own', (t) => {
  const bytes = fp16WeightsModel();
  t.false(canShareDelegate(readTfliteModel(bytes)));
  t.true(canShareDelegate(TfliteInterpreter.fromFile(MOBILENET_V2).model));
  const [first, second] = [0, 1].map(() => TfliteInterpreter.fromBytes(bytes, 'fp16-weights', { backend: 'xnnpack', threads: 2 }));
  for (const interpreter of [first!, second!]) {
    t.false(interpreter.xnnpack!.sharedPool);
    interpreter.input().data.set([1, 2, 3, 4]);
  }
  // The first one's weights are still its own after the second was prepared.
  first!.invoke();
  t.deepEqual([...first!.output().data], [1, 2, 3, 4]);
});

test('threads "auto" leaves a core to the rest of the loop, up to 4 threads', (t) => {
  t.deepEqual([1, 2, 4, 8, 64].map((cores) => autoThreadCount(cores)), [1, 1, 3, 4, 4]);
  const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads: 'auto' });
  t.is(interpreter.threads, autoThreadCount());
  t.is(interpreter.xnnpack!.threads, autoThreadCount());
});

test('QU8 is asked for per model: the uint8 model, not the int8 one', (t) => {
  const int8 = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack' });
  const uint8 = TfliteInterpreter.fromFile(MOBILENET_V2_UINT8, { backend: 'xnnpack' });
  t.false(isUint8Quantized(int8.model));
  t.true(isUint8Quantized(uint8.model));
  t.is(xnnpackFlagsFor(int8.model), XNNPACK_FLAG_QS8);
  t.is(xnnpackFlagsFor(uint8.model), XNNPACK_FLAG_QS8 | XNNPACK_FLAG_QU8);
  t.deepEqual(int8.xnnpack!.flags, ['QS8']);
  t.is(int8.xnnpack!.qu8Refused, undefined);
  // The uint8 model either runs with QU8 or says why the delegate could not take it (the bundled TFLite 2.9 cannot).
  const use = uint8.xnnpack!;
  t.true(use.flags.includes('QU8') !== (use.qu8Refused !== undefined), JSON.stringify(use));
  if (use.qu8Refused) t.regex(use.qu8Refused, /failed to delegate CONV_2D/);
});

test('the uint8 model on the XNNPACK path gives the stock kernels\' top-1 on the cat photo: 286, "Egyptian cat"', async (t) => {
  const labels = fs.readFileSync(IMAGENET_LABELS, 'utf8').split('\n');
  t.is(labels[EGYPTIAN_CAT], 'Egyptian cat', 'index 0 of the 1001 outputs is "background"');
  const rgb = await imageFileToRgb(CAT_PHOTO, size);
  const top1 = (backend: 'xnnpack' | 'stock') => {
    const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2_UINT8, { backend, threads: 2 });
    t.is(interpreter.input().dtype, 'uint8');
    interpreter.input().data.set(rgb);
    interpreter.invoke();
    return argmax(interpreter.output().data);
  };
  t.is(top1('xnnpack'), EGYPTIAN_CAT);
  t.is(top1('stock'), EGYPTIAN_CAT);
});

test('a plugin without its config addon (a half-finished build) falls back to the stock path, naming the addon', async (t) => {
  const dir = temporaryDir('edge-exit-plugin-');
  const plugin = path.join(dir, 'libedge_exit_xnnpack.so');
  fs.copyFileSync(DEFAULT_XNNPACK_PLUGIN_PATH, plugin);
  const check = checkXnnpackPlugin(plugin);
  t.false(check.ok);
  t.regex((check as { reason: string }).reason, /edge_exit_xnnpack_config\.node cannot be loaded/);
  t.regex((check as { reason: string }).reason, /node-gyp rebuild --directory agent\/runtime\/xnnpack-shim/);
  const interpreter = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', xnnpackPluginPath: plugin });
  t.is(interpreter.backend, 'stock');
  t.is(interpreter.xnnpack, undefined);
  interpreter.setInput(await imageFileToRgb(CAT_PHOTO, size));
  interpreter.invoke();
  t.is(argmax(interpreter.output().data), EGYPTIAN_CAT);
});
