// Writes the in-memory model of model.ts as a .tflite flatbuffer ("TFL3").
// Flatbuffers are built bottom-up: every child (vector, string, table) is
// finished before the table that refers to it is started.
import { Builder } from 'flatbuffers';
import type { Metadata, Operator, OperatorCode, Quantization, SignatureDef, Subgraph, Tensor, TensorMap, TfliteModel } from '../../agent/tflite/model.js';
import { OPTION_TABLES, optionFields, type BuiltinOptions } from '../../agent/tflite/options.js';
import {
  BUFFER_ALIGNMENT,
  BufferField,
  FILE_IDENTIFIER,
  MetadataField,
  ModelField,
  OperatorCodeField,
  OperatorField,
  PLACEHOLDER_FOR_GREATER_OP_CODES,
  QuantizationField,
  SignatureDefField,
  SubGraphField,
  TensorField,
  TensorMapField,
} from '../../agent/tflite/schema.js';
import { findModelProblems } from '../../agent/tflite/validate.js';

type Offset = number;

export function writeTfliteModel(model: TfliteModel): Uint8Array {
  const problems = findModelProblems(model);
  if (problems.length > 0) throw new Error(`Cannot write TFLite model: ${problems.join('; ')}`);

  const dataBytes = model.buffers.reduce((n, b) => n + b.length + BUFFER_ALIGNMENT, 0);
  const b = new Builder(dataBytes + 64 * 1024);

  // Constant data first, so it lands at the end of the file, after the small tables.
  const buffers = model.buffers.map((data) => writeBuffer(b, data));
  const operatorCodes = model.operatorCodes.map((c) => writeOperatorCode(b, c));
  const subgraphs = model.subgraphs.map((sg) => writeSubgraph(b, sg));
  const metadata = model.metadata.map((m) => writeMetadata(b, m));
  const signatureDefs = model.signatureDefs?.map((s) => writeSignatureDef(b, s));
  const description = model.description !== undefined ? b.createString(model.description) : 0;

  const buffersVec = offsetVector(b, buffers);
  const codesVec = offsetVector(b, operatorCodes);
  const subgraphsVec = offsetVector(b, subgraphs);
  const metadataVec = model.metadata.length > 0 ? offsetVector(b, metadata) : 0;
  const metadataBufferVec = model.metadataBuffer ? int32Vector(b, model.metadataBuffer) : 0;
  const signatureVec = signatureDefs ? offsetVector(b, signatureDefs) : 0;

  const F = ModelField;
  b.startObject(F.count);
  // The version is written even when 0 so readers that check it see it.
  b.addFieldInt32(F.version, model.version, null);
  b.addFieldOffset(F.operatorCodes, codesVec, 0);
  b.addFieldOffset(F.subgraphs, subgraphsVec, 0);
  b.addFieldOffset(F.description, description, 0);
  b.addFieldOffset(F.buffers, buffersVec, 0);
  b.addFieldOffset(F.metadataBuffer, metadataBufferVec, 0);
  b.addFieldOffset(F.metadata, metadataVec, 0);
  b.addFieldOffset(F.signatureDefs, signatureVec, 0);
  b.finish(b.endObject(), FILE_IDENTIFIER);
  // Copied out: the builder's storage is larger than the model and reused.
  return b.asUint8Array().slice();
}

function offsetVector(b: Builder, offsets: Offset[]): Offset {
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]!);
  return b.endVector();
}

function int32Vector(b: Builder, values: readonly number[]): Offset {
  b.startVector(4, values.length, 4);
  for (let i = values.length - 1; i >= 0; i--) b.addInt32(values[i]!);
  return b.endVector();
}

function float32Vector(b: Builder, values: readonly number[]): Offset {
  b.startVector(4, values.length, 4);
  for (let i = values.length - 1; i >= 0; i--) b.addFloat32(values[i]!);
  return b.endVector();
}

function int64Vector(b: Builder, values: readonly number[]): Offset {
  b.startVector(8, values.length, 8);
  for (let i = values.length - 1; i >= 0; i--) b.addInt64(BigInt(values[i]!));
  return b.endVector();
}

function writeBuffer(b: Builder, data: Uint8Array): Offset {
  let dataVec = 0;
  if (data.length > 0) {
    // Pads so the bytes (not the length word before them) start 16-aligned in the
    // finished file, which mmap-based runtimes and SIMD kernels expect.
    b.prep(BUFFER_ALIGNMENT, data.length);
    dataVec = b.createByteVector(data);
  }
  b.startObject(BufferField.count);
  b.addFieldOffset(BufferField.data, dataVec, 0);
  return b.endObject();
}

function writeOperatorCode(b: Builder, code: OperatorCode): Offset {
  const custom = code.customCode !== undefined ? b.createString(code.customCode) : 0;
  const F = OperatorCodeField;
  b.startObject(F.count);
  // Both fields are written, as current converters do: old runtimes read only the
  // byte-wide one, which holds the placeholder for codes that do not fit.
  b.addFieldInt8(F.deprecatedBuiltinCode, Math.min(code.builtinCode, PLACEHOLDER_FOR_GREATER_OP_CODES), 0);
  b.addFieldOffset(F.customCode, custom, 0);
  b.addFieldInt32(F.version, code.version, 1);
  b.addFieldInt32(F.builtinCode, code.builtinCode, 0);
  return b.endObject();
}

function writeQuantization(b: Builder, q: Quantization): Offset {
  const min = q.min ? float32Vector(b, q.min) : 0;
  const max = q.max ? float32Vector(b, q.max) : 0;
  const scale = float32Vector(b, q.scale);
  const zeroPoint = int64Vector(b, q.zeroPoint);
  const F = QuantizationField;
  b.startObject(F.count);
  b.addFieldOffset(F.min, min, 0);
  b.addFieldOffset(F.max, max, 0);
  b.addFieldOffset(F.scale, scale, 0);
  b.addFieldOffset(F.zeroPoint, zeroPoint, 0);
  b.addFieldInt32(F.quantizedDimension, q.quantizedDimension, 0);
  return b.endObject();
}

function writeTensor(b: Builder, t: Tensor): Offset {
  const shape = int32Vector(b, t.shape);
  const name = b.createString(t.name);
  const quantization = t.quantization ? writeQuantization(b, t.quantization) : 0;
  const signature = t.shapeSignature ? int32Vector(b, t.shapeSignature) : 0;
  const F = TensorField;
  b.startObject(F.count);
  b.addFieldOffset(F.shape, shape, 0);
  b.addFieldInt8(F.type, t.type, 0);
  b.addFieldInt32(F.buffer, t.buffer, 0);
  b.addFieldOffset(F.name, name, 0);
  b.addFieldOffset(F.quantization, quantization, 0);
  b.addFieldInt8(F.isVariable, t.isVariable ? 1 : 0, 0);
  b.addFieldOffset(F.shapeSignature, signature, 0);
  b.addFieldInt8(F.hasRank, t.hasRank ? 1 : 0, 0);
  return b.endObject();
}

function writeOptions(b: Builder, options: BuiltinOptions): Offset {
  const fields = optionFields(options.type);
  const values = options as unknown as Record<string, unknown>;
  // Vectors are children of the options table, so they are built first.
  const vectors = new Map<string, Offset>();
  for (const [name, spec] of fields) {
    const v = values[name];
    if (spec.kind === 'i32[]' && Array.isArray(v)) vectors.set(name, int32Vector(b, v as number[]));
  }
  b.startObject(fields.reduce((n, [, spec]) => Math.max(n, spec.slot + 1), 0));
  for (const [name, spec] of fields) {
    const v = values[name] ?? spec.default;
    switch (spec.kind) {
      case 'i8':
        b.addFieldInt8(spec.slot, v as number, spec.default as number);
        break;
      case 'i32':
      case 'u32':
        b.addFieldInt32(spec.slot, v as number, spec.default as number);
        break;
      case 'f32':
        b.addFieldFloat32(spec.slot, v as number, spec.default as number);
        break;
      case 'bool':
        b.addFieldInt8(spec.slot, v ? 1 : 0, spec.default ? 1 : 0);
        break;
      case 'i32[]':
        b.addFieldOffset(spec.slot, vectors.get(name) ?? 0, 0);
        break;
    }
  }
  return b.endObject();
}

function writeOperator(b: Builder, op: Operator): Offset {
  const inputs = int32Vector(b, op.inputs);
  const outputs = int32Vector(b, op.outputs);
  const options = op.builtinOptions ? writeOptions(b, op.builtinOptions) : 0;
  // Aligned like buffers: compiled custom ops (Edge TPU) carry large binary blobs.
  if (op.customOptions) b.prep(BUFFER_ALIGNMENT, op.customOptions.length);
  const custom = op.customOptions ? b.createByteVector(op.customOptions) : 0;
  const intermediates = op.intermediates ? int32Vector(b, op.intermediates) : 0;
  const F = OperatorField;
  b.startObject(F.count);
  b.addFieldInt32(F.opcodeIndex, op.opcodeIndex, 0);
  b.addFieldOffset(F.inputs, inputs, 0);
  b.addFieldOffset(F.outputs, outputs, 0);
  if (op.builtinOptions) {
    b.addFieldInt8(F.builtinOptionsType, OPTION_TABLES[op.builtinOptions.type].code, 0);
    b.addFieldOffset(F.builtinOptions, options, 0);
  }
  b.addFieldOffset(F.customOptions, custom, 0);
  b.addFieldOffset(F.intermediates, intermediates, 0);
  return b.endObject();
}

function writeSubgraph(b: Builder, sg: Subgraph): Offset {
  const tensors = offsetVector(b, sg.tensors.map((t) => writeTensor(b, t)));
  const inputs = int32Vector(b, sg.inputs);
  const outputs = int32Vector(b, sg.outputs);
  const operators = offsetVector(b, sg.operators.map((op) => writeOperator(b, op)));
  const name = sg.name !== undefined ? b.createString(sg.name) : 0;
  const F = SubGraphField;
  b.startObject(F.count);
  b.addFieldOffset(F.tensors, tensors, 0);
  b.addFieldOffset(F.inputs, inputs, 0);
  b.addFieldOffset(F.outputs, outputs, 0);
  b.addFieldOffset(F.operators, operators, 0);
  b.addFieldOffset(F.name, name, 0);
  return b.endObject();
}

function writeMetadata(b: Builder, m: Metadata): Offset {
  const name = b.createString(m.name);
  b.startObject(MetadataField.count);
  b.addFieldOffset(MetadataField.name, name, 0);
  b.addFieldInt32(MetadataField.buffer, m.buffer, 0);
  return b.endObject();
}

function writeTensorMaps(b: Builder, maps: TensorMap[]): Offset {
  const tables = maps.map((m) => {
    const name = b.createString(m.name);
    b.startObject(TensorMapField.count);
    b.addFieldOffset(TensorMapField.name, name, 0);
    b.addFieldInt32(TensorMapField.tensorIndex, m.tensorIndex, 0);
    return b.endObject();
  });
  return offsetVector(b, tables);
}

function writeSignatureDef(b: Builder, s: SignatureDef): Offset {
  const inputs = writeTensorMaps(b, s.inputs);
  const outputs = writeTensorMaps(b, s.outputs);
  const key = b.createString(s.signatureKey);
  const F = SignatureDefField;
  b.startObject(F.count);
  b.addFieldOffset(F.inputs, inputs, 0);
  b.addFieldOffset(F.outputs, outputs, 0);
  b.addFieldOffset(F.signatureKey, key, 0);
  b.addFieldInt32(F.subgraphIndex, s.subgraphIndex, 0);
  return b.endObject();
}
