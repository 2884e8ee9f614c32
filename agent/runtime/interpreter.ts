import fs from 'node:fs';
import { CoralDelegate, type CoralDevice } from 'coral-tflite-delegate';
import { readTfliteModel } from '../tflite/reader.js';
import { EDGETPU_CUSTOM_OP, isEdgeTpuModel, type TfliteModel } from '../tflite/model.js';
import { detectEdgeTpu, defaultSystemRoots, type SystemRoots } from './edgetpu.js';
import { EdgeTpuUnavailableError, ModelLoadError, TensorShapeError } from './errors.js';
import { nativeInterpreterClass, type NativeInterpreterOptions, type NativeTensor } from './native-binding.js';
import { checkSharedLibrary } from './shared-library.js';
import {
  autoThreadCount,
  canShareDelegate,
  checkXnnpackPlugin,
  warnQu8Refused,
  warnXnnpackFallback,
  xnnpackFlagNames,
  xnnpackFlagsFor,
  XNNPACK_FLAG_QU8,
  DEFAULT_XNNPACK_PLUGIN_PATH,
  type XnnpackFlagName,
} from './xnnpack-delegate.js';

export { isEdgeTpuModel };

export type { Backend } from './backends.js';
import type { Backend } from './backends.js';
export type TensorDtype = 'int8' | 'uint8' | 'float32' | 'int32';
export type TensorData = Int8Array | Uint8Array | Float32Array | Int32Array;

export interface Quantization {
  scale: number;
  zeroPoint: number;
}

/** A model input or output: the binding's own typed array, written and read in place. */
export interface TensorView {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: TensorDtype;
  readonly data: TensorData;
  readonly quantization: Quantization | undefined;
}

export interface InterpreterOptions {
  /** 'auto' picks the Edge TPU for *_edgetpu models and XNNPACK otherwise. */
  backend?: Backend | 'auto';
  /** 'auto': all cores but one, at most 4 (see autoThreadCount). */
  threads?: number | 'auto';
  /** coral-tflite-delegate device: usb, usb:N, pci, pci:N. */
  edgetpuDevice?: string;
  systemRoots?: SystemRoots;
  xnnpackPluginPath?: string;
  /**
   * Share one XNNPACK delegate, and so one thread pool, with the other interpreters
   * of the same threads (default true, where the model allows it). False gives this
   * interpreter a pool of its own, as before; the cpu-path bench measures both.
   */
  shareXnnpackPool?: boolean;
}

/** What the XNNPACK delegate of an interpreter was made with, as the plugin reports it. */
export interface XnnpackUse {
  threads: number;
  flags: XnnpackFlagName[];
  /** Whether XNNPACK runs its own thread pool (more than one thread). */
  threadpool: boolean;
  /** Whether that pool is the one every interpreter of the process with the same options runs on. */
  sharedPool: boolean;
  /** Why QU8 was asked for this uint8 model but left off: the delegate could not be prepared with it. */
  qu8Refused?: string;
}

function parseModel(bytes: Uint8Array, label: string): TfliteModel {
  try {
    return readTfliteModel(bytes);
  } catch (error) {
    throw new ModelLoadError(`Cannot load model ${label}: ${(error as Error).message}`, { cause: error });
  }
}

function edgeTpuDelegate(label: string, options: InterpreterOptions) {
  const status = detectEdgeTpu(options.systemRoots ?? defaultSystemRoots());
  const install =
    'Plug in a Coral USB Accelerator (or an M.2/PCIe Coral with the gasket-dkms driver) and install the Edge TPU runtime ' +
    '(Debian package libedgetpu1-std from Coral\'s apt repository), or run the CPU version of the model (the same file without "_edgetpu").';
  if (status.devices.length === 0) {
    throw new EdgeTpuUnavailableError(
      `Model ${label} was compiled for the Edge TPU (it contains ${EDGETPU_CUSTOM_OP}) but no Coral Edge TPU was found ` +
        `(no USB device 1a6e:089a or 18d1:9302, no /dev/apex_N). ${install}`,
    );
  }
  if (!status.libraryPath) {
    throw new EdgeTpuUnavailableError(
      `Model ${label} needs the Edge TPU runtime: a Coral device is present (${status.devices.map((d) => d.device).join(', ')}) ` +
        `but libedgetpu.so.1 was not found. ${install}`,
    );
  }
  const loadable = checkSharedLibrary(status.libraryPath);
  if (!loadable.ok) {
    throw new EdgeTpuUnavailableError(`Model ${label} needs the Edge TPU runtime, but ${loadable.reason}. Reinstall libedgetpu1-std (or libedgetpu1-max) for this architecture.`);
  }
  const device = options.edgetpuDevice ?? status.devices[0]!.device;
  const wanted = status.devices.find((d) => d.device === device || d.kind === device);
  if (!wanted) {
    throw new EdgeTpuUnavailableError(
      `Edge TPU device "${device}" was asked for, but only ${status.devices.map((d) => d.device).join(', ')} ${status.devices.length === 1 ? 'is' : 'are'} present.`,
    );
  }
  const delegate = new CoralDelegate({ device: device as CoralDevice }, status.libraryPath);
  return { path: delegate.node!.path, options: [...delegate.options] as Array<[string, string]> };
}

function dtypeOf(native: NativeTensor, label: string): TensorDtype {
  const dtype = native.dataType;
  if (dtype === 'int8' || dtype === 'uint8' || dtype === 'float32' || dtype === 'int32') return dtype;
  throw new ModelLoadError(`Model ${label}: tensor ${native.name} has type ${dtype}, which edge-exit does not handle (int8, uint8, float32, int32)`);
}

/**
 * One TFLite interpreter for one model, created once and reused: inputs and
 * outputs are the binding's own typed arrays, so callers write and read them
 * in place.
 */
export class TfliteInterpreter {
  readonly inputs: readonly TensorView[];
  readonly outputs: readonly TensorView[];
  readonly model: TfliteModel;

  private constructor(
    readonly label: string,
    readonly backend: Backend,
    readonly threads: number,
    private readonly native: { infer(): boolean },
    model: TfliteModel,
    inputs: TensorView[],
    outputs: TensorView[],
    /** Set on the xnnpack backend. */
    readonly xnnpack: XnnpackUse | undefined,
  ) {
    this.model = model;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  static fromFile(file: string, options: InterpreterOptions = {}): TfliteInterpreter {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'the file does not exist' : (error as Error).message;
      throw new ModelLoadError(`Cannot load model ${file}: ${why}. Check the path, or build the package with \`edge-exit build-model\`.`, { cause: error });
    }
    return TfliteInterpreter.fromBytes(bytes, file, options);
  }

  static fromBytes(bytes: Uint8Array, label: string, options: InterpreterOptions = {}): TfliteInterpreter {
    const model = parseModel(bytes, label);
    const threads = options.threads === 'auto' ? autoThreadCount() : (options.threads ?? 1);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new RangeError(`threads must be an integer in [1, 64], got ${threads}`);
    }
    const needsTpu = isEdgeTpuModel(model);
    let backend: Backend = options.backend === undefined || options.backend === 'auto' ? (needsTpu ? 'edgetpu' : 'xnnpack') : options.backend;
    if (needsTpu && backend !== 'edgetpu') {
      throw new ModelLoadError(`Model ${label} was compiled for the Edge TPU and cannot run on the ${backend} backend; use backend "edgetpu" or "auto", or the CPU version of the model.`);
    }
    if (!needsTpu && backend === 'edgetpu') {
      throw new ModelLoadError(`Model ${label} is not compiled for the Edge TPU (no ${EDGETPU_CUSTOM_OP}): compile it with edgetpu_compiler, or use backend "xnnpack".`);
    }

    const Interpreter = nativeInterpreterClass();
    // The binding copies the model into its own storage, so a view is enough.
    const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const create = (nativeOptions: NativeInterpreterOptions) => {
      try {
        return { native: new Interpreter(arrayBuffer, nativeOptions) };
      } catch (error) {
        return { error: error as Error };
      }
    };
    let created: ReturnType<typeof create> | undefined;
    let xnnpack: XnnpackUse | undefined;
    if (backend === 'edgetpu') {
      created = create({ threads, delegate: edgeTpuDelegate(label, options) });
    } else if (backend === 'xnnpack') {
      const check = checkXnnpackPlugin(options.xnnpackPluginPath ?? DEFAULT_XNNPACK_PLUGIN_PATH);
      if (check.ok) {
        const flags = xnnpackFlagsFor(model);
        const share = (options.shareXnnpackPool ?? true) && canShareDelegate(model);
        created = create({ threads, delegate: check.plugin.delegateFor(threads, flags, share) });
        let qu8Refused: string | undefined;
        if (created.error && flags & XNNPACK_FLAG_QU8) {
          // Some TFLite builds have no QU8 kernels; the model still gets XNNPACK for whatever QS8 covers.
          qu8Refused = created.error.message.trim();
          warnQu8Refused(label, qu8Refused);
          created = create({ threads, delegate: check.plugin.delegateFor(threads, flags & ~XNNPACK_FLAG_QU8, share) });
        }
        const made = check.plugin.lastDelegate();
        if (created.native && made) {
          xnnpack = { threads: made.threads, flags: xnnpackFlagNames(made.flags), threadpool: made.threadpool, sharedPool: made.shared, ...(qu8Refused ? { qu8Refused } : {}) };
        }
      } else {
        warnXnnpackFallback(check.reason);
        backend = 'stock';
      }
    }
    created ??= create({ threads });
    if (!created.native) {
      throw new ModelLoadError(`TFLite could not prepare model ${label} on the ${backend} backend: ${created.error!.message.trim()}`, { cause: created.error });
    }
    const native = created.native;
    const subgraph = model.subgraphs[0]!;
    const view = (tensors: NativeTensor[], indices: number[]): TensorView[] =>
      tensors.map((t, i) => {
        const described = subgraph.tensors[indices[i]!];
        const q = described?.quantization;
        return {
          name: t.name,
          shape: t.shape.split(',').map(Number),
          dtype: dtypeOf(t, label),
          data: t.data(),
          quantization: q && q.scale.length > 0 ? { scale: q.scale[0]!, zeroPoint: q.zeroPoint[0] ?? 0 } : undefined,
        };
      });
    return new TfliteInterpreter(label, backend, threads, native, model, view(native.getInputs(), subgraph.inputs), view(native.getOutputs(), subgraph.outputs), xnnpack);
  }

  input(index = 0): TensorView {
    const tensor = this.inputs[index];
    if (!tensor) throw new RangeError(`Model ${this.label} has ${this.inputs.length} input(s), not ${index + 1}`);
    return tensor;
  }

  output(index = 0): TensorView {
    const tensor = this.outputs[index];
    if (!tensor) throw new RangeError(`Model ${this.label} has ${this.outputs.length} output(s), not ${index + 1}`);
    return tensor;
  }

  /** Copies data into an input; prefer writing input(i).data in place. */
  setInput(data: ArrayLike<number>, index = 0): void {
    const tensor = this.input(index);
    if (data.length !== tensor.data.length) {
      throw new TensorShapeError(
        `Input ${index} of model ${this.label} takes ${tensor.data.length} values (shape ${tensor.shape.join('x')}, ${tensor.dtype}), got ${data.length}. ` +
          'Resize the image to the model input size first.',
      );
    }
    tensor.data.set(data);
  }

  /** Runs the model once; returns the wall time in milliseconds. */
  invoke(): number {
    const start = process.hrtime.bigint();
    this.native.infer();
    return Number(process.hrtime.bigint() - start) / 1e6;
  }
}
