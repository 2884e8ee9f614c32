// Reads a .tflite file into the plain in-memory model of model.ts, refusing
// anything malformed or outside the supported subset with a TfliteFormatError.
import { corrupt, TfliteFormatError } from './errors.js';
import { FlatFile, type FlatTable } from './flat-table.js';
import {
  BuiltinOperator,
  builtinOperatorName,
  type Metadata,
  type Operator,
  type OperatorCode,
  type Quantization,
  type SignatureDef,
  type Subgraph,
  type Tensor,
  type TensorMap,
  type TfliteModel,
} from './model.js';
import {
  builtinOptions2Name,
  builtinOptionsName,
  makeOptions,
  optionFields,
  optionsTypeForCode,
  type BuiltinOptions,
  type OptionsTypeName,
} from './options.js';
import {
  BufferField,
  FILE_IDENTIFIER,
  MetadataField,
  ModelField,
  OperatorCodeField,
  OperatorField,
  QuantizationField,
  SignatureDefField,
  SubGraphField,
  TensorField,
  TensorMapField,
} from './schema.js';
import { findModelProblems } from './validate.js';

export { TfliteFormatError } from './errors.js';

/** Smallest possible flatbuffer with an identifier: root offset + identifier. */
const MIN_FILE_SIZE = 8;

export function readTfliteModel(bytes: Uint8Array): TfliteModel {
  checkHeader(bytes);
  const file = new FlatFile(bytes);
  let model: TfliteModel;
  try {
    model = readModel(file);
  } catch (error) {
    if (error instanceof TfliteFormatError) throw error;
    // Anything else (a RangeError from a huge allocation, say) still means a bad file.
    throw corrupt('model', `could not be decoded (${(error as Error).message})`);
  }
  const problems = findModelProblems(model);
  if (problems.length > 0) throw corrupt('model', problems.join('; '));
  return model;
}

function checkHeader(bytes: Uint8Array): void {
  if (bytes.length === 0) {
    throw new TfliteFormatError('TFLite model: the file is empty; rebuild or re-download it.');
  }
  if (bytes.length < MIN_FILE_SIZE) {
    throw new TfliteFormatError(
      `TFLite model: the file is only ${bytes.length} bytes, too short to be a model; it is truncated or corrupt, rebuild or re-download it.`,
    );
  }
  const ident = String.fromCharCode(...bytes.subarray(4, 8));
  if (ident !== FILE_IDENTIFIER) {
    const looksLike = guessFileKind(bytes);
    throw new TfliteFormatError(
      `not a TFLite model: the file identifier is ${JSON.stringify(ident)}, expected "${FILE_IDENTIFIER}"` +
        (looksLike ? ` (the file looks like ${looksLike})` : '') +
        '; pass a .tflite model file.',
    );
  }
}

function guessFileKind(bytes: Uint8Array): string | undefined {
  const starts = (...sig: number[]) => sig.every((b, i) => bytes[i] === b);
  if (starts(0xff, 0xd8, 0xff)) return 'a JPEG image';
  if (starts(0x89, 0x50, 0x4e, 0x47)) return 'a PNG image';
  if (starts(0x42, 0x4d)) return 'a BMP image';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive';
  if (starts(0x1f, 0x8b)) return 'a gzip file';
  if (starts(0x7b) || starts(0x3c)) return 'text (JSON or HTML)';
  return undefined;
}

function readModel(file: FlatFile): TfliteModel {
  const root = file.root('model');
  const F = ModelField;
  const model: TfliteModel = {
    version: root.uint32(F.version, 'version'),
    operatorCodes: (root.tableVector(F.operatorCodes, 'operator_codes') ?? []).map(readOperatorCode),
    subgraphs: [],
    buffers: (root.tableVector(F.buffers, 'buffers') ?? []).map((t) => readBuffer(file, t)),
    metadata: (root.tableVector(F.metadata, 'metadata') ?? []).map(readMetadata),
  };
  const description = root.string(F.description, 'description');
  if (description !== undefined) model.description = description;
  const metadataBuffer = root.int32Vector(F.metadataBuffer, 'metadata_buffer');
  if (metadataBuffer !== undefined) model.metadataBuffer = metadataBuffer;
  const signatureDefs = root.tableVector(F.signatureDefs, 'signature_defs');
  if (signatureDefs !== undefined) model.signatureDefs = signatureDefs.map(readSignatureDef);
  model.subgraphs = (root.tableVector(F.subgraphs, 'subgraphs') ?? []).map((t) => readSubgraph(file, t, model.operatorCodes));
  return model;
}

function readOperatorCode(t: FlatTable): OperatorCode {
  const F = OperatorCodeField;
  // Old writers fill only the byte-wide deprecated field, new ones both; the
  // schema says the larger of the two is the real code.
  const deprecated = t.int8(F.deprecatedBuiltinCode, 'deprecated_builtin_code');
  const extended = t.int32(F.builtinCode, 'builtin_code');
  const code: OperatorCode = { builtinCode: Math.max(deprecated, extended), version: t.int32(F.version, 'version', 1) };
  const custom = t.string(F.customCode, 'custom_code');
  if (custom !== undefined) code.customCode = custom;
  return code;
}

/** Converts a 64-bit file offset or size to a number, refusing ones no file here could have. */
function safeNumber(value: bigint, where: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(where, `value ${value} is out of range`);
  return Number(value);
}

/** Reads data kept after the flatbuffer (the >2 GB extension): offsets are from the file start, valid if > 1. */
function readExternal(file: FlatFile, offset: bigint, size: bigint, where: string): Uint8Array {
  const start = safeNumber(offset, `${where}.offset`);
  const length = safeNumber(size, `${where}.size`);
  file.need(start, length, where);
  return file.bytes.slice(start, start + length);
}

function readBuffer(file: FlatFile, t: FlatTable): Uint8Array {
  const offset = t.uint64(BufferField.offset, 'offset');
  if (offset > 1n) return readExternal(file, offset, t.uint64(BufferField.size, 'size'), t.where);
  // Copied so the model does not pin or alias the caller's file bytes.
  return t.byteView(BufferField.data, 'data')?.slice() ?? new Uint8Array(0);
}

function readMetadata(t: FlatTable): Metadata {
  return { name: t.string(MetadataField.name, 'name') ?? '', buffer: t.uint32(MetadataField.buffer, 'buffer') };
}

function readTensorMaps(list: FlatTable[] | undefined): TensorMap[] {
  return (list ?? []).map((m) => ({
    name: m.string(TensorMapField.name, 'name') ?? '',
    tensorIndex: m.uint32(TensorMapField.tensorIndex, 'tensor_index'),
  }));
}

function readSignatureDef(t: FlatTable): SignatureDef {
  const F = SignatureDefField;
  return {
    signatureKey: t.string(F.signatureKey, 'signature_key') ?? '',
    subgraphIndex: t.uint32(F.subgraphIndex, 'subgraph_index'),
    inputs: readTensorMaps(t.tableVector(F.inputs, 'inputs')),
    outputs: readTensorMaps(t.tableVector(F.outputs, 'outputs')),
  };
}

function unsupported(where: string, what: string): TfliteFormatError {
  return new TfliteFormatError(
    `TFLite model: ${where} uses ${what}, which edge-exit's reader does not support; ` +
      'convert the model without it, or extend agent/tflite to handle it.',
  );
}

function readSubgraph(file: FlatFile, t: FlatTable, codes: OperatorCode[]): Subgraph {
  const F = SubGraphField;
  const sg: Subgraph = {
    tensors: (t.tableVector(F.tensors, 'tensors') ?? []).map(readTensor),
    inputs: t.int32Vector(F.inputs, 'inputs') ?? [],
    outputs: t.int32Vector(F.outputs, 'outputs') ?? [],
    operators: (t.tableVector(F.operators, 'operators') ?? []).map((op) => readOperator(file, op, codes)),
  };
  const name = t.string(F.name, 'name');
  if (name !== undefined) sg.name = name;
  return sg;
}

function readTensor(t: FlatTable): Tensor {
  const F = TensorField;
  if (t.has(F.sparsity)) throw unsupported(t.where, 'sparse tensor storage');
  if ((t.tableVector(F.variantTensors, 'variant_tensors') ?? []).length > 0) throw unsupported(t.where, 'variant tensor subtypes');
  const tensor: Tensor = {
    name: t.string(F.name, 'name') ?? '',
    shape: t.int32Vector(F.shape, 'shape') ?? [],
    type: t.int8(F.type, 'type'),
    buffer: t.uint32(F.buffer, 'buffer'),
  };
  const signature = t.int32Vector(F.shapeSignature, 'shape_signature');
  if (signature !== undefined) tensor.shapeSignature = signature;
  const q = t.table(F.quantization, 'quantization');
  if (q) tensor.quantization = readQuantization(q);
  if (t.bool(F.isVariable, 'is_variable')) tensor.isVariable = true;
  if (t.bool(F.hasRank, 'has_rank')) tensor.hasRank = true;
  return tensor;
}

function readQuantization(t: FlatTable): Quantization {
  const F = QuantizationField;
  if (t.uint8(F.detailsType, 'details_type') !== 0) throw unsupported(t.where, 'custom quantization details');
  const zeroPoint = (t.int64Vector(F.zeroPoint, 'zero_point') ?? []).map((z) => {
    if (z > BigInt(Number.MAX_SAFE_INTEGER) || z < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw corrupt(`${t.where}.zero_point`, `value ${z} is out of range`);
    }
    return Number(z);
  });
  const q: Quantization = {
    scale: t.float32Vector(F.scale, 'scale') ?? [],
    zeroPoint,
    quantizedDimension: t.int32(F.quantizedDimension, 'quantized_dimension'),
  };
  const min = t.float32Vector(F.min, 'min');
  if (min !== undefined) q.min = min;
  const max = t.float32Vector(F.max, 'max');
  if (max !== undefined) q.max = max;
  return q;
}

function readOperator(file: FlatFile, t: FlatTable, codes: OperatorCode[]): Operator {
  const F = OperatorField;
  const op: Operator = {
    opcodeIndex: t.uint32(F.opcodeIndex, 'opcode_index'),
    inputs: t.int32Vector(F.inputs, 'inputs') ?? [],
    outputs: t.int32Vector(F.outputs, 'outputs') ?? [],
  };
  const code = codes[op.opcodeIndex];
  const label = `${t.where} (${code ? describeCode(code) : `operator code ${op.opcodeIndex}`})`;

  const optionsType = t.uint8(F.builtinOptionsType, 'builtin_options_type');
  if (optionsType !== 0) {
    const name = optionsTypeForCode(optionsType);
    if (!name) throw unsupported(label, `the options table ${builtinOptionsName(optionsType)} (union type ${optionsType})`);
    op.builtinOptions = readOptions(name, t.table(F.builtinOptions, 'builtin_options'));
  }
  const options2Type = t.uint8(F.builtinOptions2Type, 'builtin_options_2_type');
  if (options2Type !== 0) throw unsupported(label, `the options table ${builtinOptions2Name(options2Type)} (builtin_options_2 type ${options2Type})`);

  const largeOffset = t.uint64(F.largeCustomOptionsOffset, 'large_custom_options_offset');
  if (largeOffset > 1n) {
    op.customOptions = readExternal(file, largeOffset, t.uint64(F.largeCustomOptionsSize, 'large_custom_options_size'), `${t.where}.custom_options`);
  } else {
    const custom = t.byteView(F.customOptions, 'custom_options');
    if (custom !== undefined) op.customOptions = custom.slice();
  }
  if (t.int8(F.customOptionsFormat, 'custom_options_format') !== 0) throw unsupported(label, 'a custom options format other than FlexBuffers');
  const mutating = t.byteView(F.mutatingVariableInputs, 'mutating_variable_inputs');
  if (mutating?.some((b) => b !== 0)) throw unsupported(label, 'mutating variable inputs');
  const intermediates = t.int32Vector(F.intermediates, 'intermediates');
  if (intermediates !== undefined) op.intermediates = intermediates;
  return op;
}

function describeCode(code: OperatorCode): string {
  return code.builtinCode === BuiltinOperator.CUSTOM ? `custom op ${code.customCode ?? '?'}` : builtinOperatorName(code.builtinCode);
}

/** Decodes a supported options table field by field; a missing table means all defaults. */
function readOptions(name: OptionsTypeName, t: FlatTable | undefined): BuiltinOptions {
  const options = makeOptions(name) as Record<string, unknown>;
  if (!t) return options as BuiltinOptions;
  for (const [field, spec] of optionFields(name)) {
    switch (spec.kind) {
      case 'i8':
        options[field] = t.int8(spec.slot, field, spec.default as number);
        break;
      case 'i32':
        options[field] = t.int32(spec.slot, field, spec.default as number);
        break;
      case 'u32':
        options[field] = t.uint32(spec.slot, field, spec.default as number);
        break;
      case 'f32':
        options[field] = t.float32(spec.slot, field, spec.default as number);
        break;
      case 'bool':
        options[field] = t.bool(spec.slot, field, spec.default as boolean);
        break;
      case 'i32[]': {
        const v = t.int32Vector(spec.slot, field);
        if (v !== undefined) options[field] = v;
        break;
      }
    }
  }
  return options as BuiltinOptions;
}
