// Vtable slots (field ids) of the tables this project reads and writes, from
// tensorflow/lite/schema/schema.fbs. A union field takes two slots: its type
// tag, then its value. Shared by the reader and the writer so both agree.

export const FILE_IDENTIFIER = 'TFL3';

export const ModelField = {
  version: 0,
  operatorCodes: 1,
  subgraphs: 2,
  description: 3,
  buffers: 4,
  metadataBuffer: 5,
  metadata: 6,
  signatureDefs: 7,
  count: 8,
} as const;

export const OperatorCodeField = {
  deprecatedBuiltinCode: 0,
  customCode: 1,
  version: 2,
  builtinCode: 3,
  count: 4,
} as const;

export const SubGraphField = { tensors: 0, inputs: 1, outputs: 2, operators: 3, name: 4, count: 5 } as const;

export const TensorField = {
  shape: 0,
  type: 1,
  buffer: 2,
  name: 3,
  quantization: 4,
  isVariable: 5,
  sparsity: 6,
  shapeSignature: 7,
  hasRank: 8,
  variantTensors: 9,
  count: 10,
} as const;

export const QuantizationField = {
  min: 0,
  max: 1,
  scale: 2,
  zeroPoint: 3,
  detailsType: 4,
  details: 5,
  quantizedDimension: 6,
  count: 7,
} as const;

export const OperatorField = {
  opcodeIndex: 0,
  inputs: 1,
  outputs: 2,
  builtinOptionsType: 3,
  builtinOptions: 4,
  customOptions: 5,
  customOptionsFormat: 6,
  mutatingVariableInputs: 7,
  intermediates: 8,
  largeCustomOptionsOffset: 9,
  largeCustomOptionsSize: 10,
  builtinOptions2Type: 11,
  builtinOptions2: 12,
  count: 13,
} as const;

export const BufferField = { data: 0, offset: 1, size: 2, count: 3 } as const;

export const MetadataField = { name: 0, buffer: 1, count: 2 } as const;

export const TensorMapField = { name: 0, tensorIndex: 1, count: 2 } as const;

export const SignatureDefField = { inputs: 0, outputs: 1, signatureKey: 2, subgraphIndex: 4, count: 5 } as const;

/**
 * Builtin codes at or above this are only in OperatorCode.builtin_code; below
 * it, older writers fill only deprecated_builtin_code (schema comments).
 */
export const PLACEHOLDER_FOR_GREATER_OP_CODES = 127;

/** Byte alignment of constant data, as the schema's force_align asks for Buffer.data. */
export const BUFFER_ALIGNMENT = 16;
