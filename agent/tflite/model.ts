// In-memory form of a TFLite model: plain data that can be read from a file,
// edited, or built from scratch, then written back with writeTfliteModel.
import type { BuiltinOptions } from './options.js';

export type { BuiltinOptions } from './options.js';

/** Element types of tensors (schema enum TensorType). */
export const TensorType = {
  FLOAT32: 0,
  FLOAT16: 1,
  INT32: 2,
  UINT8: 3,
  INT64: 4,
  STRING: 5,
  BOOL: 6,
  INT16: 7,
  COMPLEX64: 8,
  INT8: 9,
  FLOAT64: 10,
  COMPLEX128: 11,
  UINT64: 12,
  RESOURCE: 13,
  VARIANT: 14,
  UINT32: 15,
  UINT16: 16,
  INT4: 17,
  BFLOAT16: 18,
} as const;
export type TensorType = number;

const TENSOR_TYPE_NAMES = Object.fromEntries(
  Object.entries(TensorType).map(([name, code]) => [code, name]),
) as Record<number, string>;

export function tensorTypeName(type: number): string {
  return TENSOR_TYPE_NAMES[type] ?? `TYPE_${type}`;
}

/** Bytes per element, for the fixed-width types this project deals with. */
export function tensorTypeSize(type: number): number | undefined {
  switch (type) {
    case TensorType.FLOAT64:
    case TensorType.INT64:
    case TensorType.UINT64:
    case TensorType.COMPLEX64:
      return 8;
    case TensorType.FLOAT32:
    case TensorType.INT32:
    case TensorType.UINT32:
      return 4;
    case TensorType.FLOAT16:
    case TensorType.INT16:
    case TensorType.UINT16:
    case TensorType.BFLOAT16:
      return 2;
    case TensorType.UINT8:
    case TensorType.INT8:
    case TensorType.BOOL:
      return 1;
    default:
      return undefined;
  }
}

/** Builtin operator codes the project uses by name (schema enum BuiltinOperator). */
export const BuiltinOperator = {
  ADD: 0,
  AVERAGE_POOL_2D: 1,
  CONCATENATION: 2,
  CONV_2D: 3,
  DEPTHWISE_CONV_2D: 4,
  DEQUANTIZE: 6,
  FULLY_CONNECTED: 9,
  LOGISTIC: 14,
  MAX_POOL_2D: 17,
  MUL: 18,
  RELU: 19,
  RELU6: 21,
  RESHAPE: 22,
  SOFTMAX: 25,
  CUSTOM: 32,
  PAD: 34,
  MEAN: 40,
  SUB: 41,
  DIV: 42,
  SQUEEZE: 43,
  PADV2: 60,
  QUANTIZE: 114,
  HARD_SWISH: 117,
  DENSIFY: 124,
} as const;
export type BuiltinOperator = number;

// Every builtin up to RIGHT_SHIFT, indexed by code, so any model prints readably.
const BUILTIN_OPERATOR_NAMES: readonly string[] = (
  'ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE ' +
  'EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D ' +
  'LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 ' +
  'RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS ' +
  'SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER ' +
  'BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE ' +
  'UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT ' +
  'LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS ' +
  'NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE ' +
  'TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT ' +
  'REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN ' +
  'FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR ' +
  'LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND ' +
  'COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH ' +
  'IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY ' +
  'SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO ' +
  'RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT ' +
  'HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE ' +
  'BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU ' +
  'DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX ' +
  'UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT'
).split(' ');

export function builtinOperatorName(code: number): string {
  return BUILTIN_OPERATOR_NAMES[code] ?? `BUILTIN_${code}`;
}

/** Name to print for an operator code: the custom code for custom ops. */
export function operatorCodeName(code: OperatorCode): string {
  if (code.builtinCode === BuiltinOperator.CUSTOM) return code.customCode ?? 'CUSTOM';
  return builtinOperatorName(code.builtinCode);
}

export interface OperatorCode {
  builtinCode: number;
  customCode?: string;
  version: number;
}

export interface Quantization {
  scale: number[];
  zeroPoint: number[];
  min?: number[];
  max?: number[];
  quantizedDimension: number;
}

export interface Tensor {
  name: string;
  shape: number[];
  /** Shape with -1 for unknown dimensions, when the converter recorded one. */
  shapeSignature?: number[];
  type: TensorType;
  /** Index into TfliteModel.buffers; 0 is the empty sentinel (no constant data). */
  buffer: number;
  quantization?: Quantization;
  isVariable?: boolean;
  hasRank?: boolean;
}

export interface Operator {
  /** Index into TfliteModel.operatorCodes. */
  opcodeIndex: number;
  /** Tensor indices; -1 marks an absent optional input. */
  inputs: number[];
  outputs: number[];
  builtinOptions?: BuiltinOptions;
  customOptions?: Uint8Array;
  intermediates?: number[];
}

export interface Subgraph {
  name?: string;
  tensors: Tensor[];
  inputs: number[];
  outputs: number[];
  /** In execution order. */
  operators: Operator[];
}

export interface Metadata {
  name: string;
  /** Index into TfliteModel.buffers. */
  buffer: number;
}

export interface TensorMap {
  name: string;
  tensorIndex: number;
}

export interface SignatureDef {
  signatureKey: string;
  subgraphIndex: number;
  inputs: TensorMap[];
  outputs: TensorMap[];
}

export interface TfliteModel {
  version: number;
  description?: string;
  operatorCodes: OperatorCode[];
  /** The first subgraph is the main graph. */
  subgraphs: Subgraph[];
  /** Data of each buffer; buffers[0] must be the empty sentinel. */
  buffers: Uint8Array[];
  metadata: Metadata[];
  /** Deprecated list of metadata buffer indices, kept only if the file had one. */
  metadataBuffer?: number[];
  signatureDefs?: SignatureDef[];
}

/** The custom op edgetpu_compiler puts in place of what it maps to the Edge TPU. */
export const EDGETPU_CUSTOM_OP = 'edgetpu-custom-op';

export function isEdgeTpuModel(model: Pick<TfliteModel, 'operatorCodes'>): boolean {
  return model.operatorCodes.some((code) => code.customCode === EDGETPU_CUSTOM_OP);
}

/** Number of elements of a tensor shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}
