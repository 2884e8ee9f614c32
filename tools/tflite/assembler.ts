// Builds a one-subgraph TFLite model from scratch: tensors, constant buffers,
// operator codes (each added once) and operators in execution order.
import type { Operator, OperatorCode, Quantization, Tensor, TfliteModel } from '../../agent/tflite/model.js';

export function perTensor(scale: number, zeroPoint: number): Quantization {
  return { scale: [scale], zeroPoint: [zeroPoint], quantizedDimension: 0 };
}

/** Little-endian int32 bytes, the flatbuffer layout whatever the host is. */
export function int32Bytes(values: Int32Array | readonly number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i]!, true);
  return bytes;
}

export class ModelAssembler {
  readonly tensors: Tensor[] = [];
  readonly buffers: Uint8Array[] = [new Uint8Array(0)];
  readonly operators: Operator[] = [];
  readonly operatorCodes: OperatorCode[] = [];
  private readonly codeIndex = new Map<number, number>();

  /** A tensor, with constant data when given; returns its index. */
  tensor(tensor: Omit<Tensor, 'buffer'>, data?: Uint8Array): number {
    let buffer = 0;
    if (data) {
      buffer = this.buffers.length;
      this.buffers.push(data);
    }
    this.tensors.push({ ...tensor, buffer });
    return this.tensors.length - 1;
  }

  /** Versions are the ones TFLite's converter gives these ops with int8 tensors. */
  operator(builtinCode: number, version: number, op: Omit<Operator, 'opcodeIndex'>): void {
    let index = this.codeIndex.get(builtinCode);
    if (index === undefined) {
      index = this.operatorCodes.length;
      this.operatorCodes.push({ builtinCode, version });
      this.codeIndex.set(builtinCode, index);
    }
    this.operators.push({ opcodeIndex: index, ...op });
  }

  model(name: string, description: string, inputs: number[], outputs: number[]): TfliteModel {
    return {
      version: 3,
      description,
      operatorCodes: this.operatorCodes,
      subgraphs: [{ name, tensors: this.tensors, inputs, outputs, operators: this.operators }],
      buffers: this.buffers,
      metadata: [],
    };
  }
}
