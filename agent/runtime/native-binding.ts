import { createRequire } from 'node:module';

/** The typed view the tfjs-tflite-node binding keeps for each input and output tensor. */
export interface NativeTensor {
  readonly dataType: string;
  readonly shape: string;
  readonly name: string;
  data(): Int8Array | Uint8Array | Float32Array | Int32Array;
}

export interface NativeInterpreter {
  getInputs(): NativeTensor[];
  getOutputs(): NativeTensor[];
  infer(): boolean;
}

export interface NativeInterpreterOptions {
  threads?: number;
  delegate?: { path: string; options: Array<[string, string]> };
}

type NativeInterpreterConstructor = new (model: ArrayBuffer, options: NativeInterpreterOptions) => NativeInterpreter;

let constructorCache: NativeInterpreterConstructor | undefined;

/**
 * The binding's Interpreter class, used without the package's tfjs-core
 * wrapper: that wrapper allocates tfjs tensors around every call, which the
 * hot path does not need.
 */
export function nativeInterpreterClass(): NativeInterpreterConstructor {
  if (!constructorCache) {
    const require = createRequire(import.meta.url);
    const addon = require('tfjs-tflite-node/build/Release/node_tflite_binding.node') as {
      Interpreter: NativeInterpreterConstructor;
    };
    constructorCache = addon.Interpreter;
  }
  return constructorCache;
}
