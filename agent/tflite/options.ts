// Builtin option tables this project reads and writes, described once as data
// (union code, field slots, wire kinds, schema defaults) so the reader, the
// writer and the TypeScript types cannot drift apart.

/** Schema enum Padding. */
export const Padding = { SAME: 0, VALID: 1 } as const;

/** Schema enum ActivationFunctionType. */
export const ActivationFunctionType = {
  NONE: 0,
  RELU: 1,
  RELU_N1_TO_1: 2,
  RELU6: 3,
  TANH: 4,
  SIGN_BIT: 5,
} as const;

/** Wire kinds of option fields: scalar widths, bool, and vector of int32. */
export type FieldKind = 'i8' | 'i32' | 'u32' | 'f32' | 'bool' | 'i32[]';

interface FieldSpec {
  readonly slot: number;
  readonly kind: FieldKind;
  readonly default: number | boolean;
}

const f = (slot: number, kind: Exclude<FieldKind, 'i32[]'>, def: number | boolean = kind === 'bool' ? false : 0) =>
  ({ slot, kind, default: def }) as const;
const vec = (slot: number) => ({ slot, kind: 'i32[]', default: 0 }) as const;

/** Field layouts from tensorflow/lite/schema/schema.fbs; `code` is the BuiltinOptions union index. */
export const OPTION_TABLES = {
  Conv2DOptions: {
    code: 1,
    fields: {
      padding: f(0, 'i8'),
      strideW: f(1, 'i32'),
      strideH: f(2, 'i32'),
      fusedActivationFunction: f(3, 'i8'),
      dilationWFactor: f(4, 'i32', 1),
      dilationHFactor: f(5, 'i32', 1),
      quantizedBiasType: f(6, 'i8'),
    },
  },
  DepthwiseConv2DOptions: {
    code: 2,
    fields: {
      padding: f(0, 'i8'),
      strideW: f(1, 'i32'),
      strideH: f(2, 'i32'),
      depthMultiplier: f(3, 'i32'),
      fusedActivationFunction: f(4, 'i8'),
      dilationWFactor: f(5, 'i32', 1),
      dilationHFactor: f(6, 'i32', 1),
    },
  },
  Pool2DOptions: {
    code: 5,
    fields: {
      padding: f(0, 'i8'),
      strideW: f(1, 'i32'),
      strideH: f(2, 'i32'),
      filterWidth: f(3, 'i32'),
      filterHeight: f(4, 'i32'),
      fusedActivationFunction: f(5, 'i8'),
    },
  },
  FullyConnectedOptions: {
    code: 8,
    fields: {
      fusedActivationFunction: f(0, 'i8'),
      weightsFormat: f(1, 'i8'),
      keepNumDims: f(2, 'bool'),
      asymmetricQuantizeInputs: f(3, 'bool'),
      quantizedBiasType: f(4, 'i8'),
    },
  },
  SoftmaxOptions: { code: 9, fields: { beta: f(0, 'f32') } },
  ConcatenationOptions: {
    code: 10,
    fields: { axis: f(0, 'i32'), fusedActivationFunction: f(1, 'i8') },
  },
  AddOptions: {
    code: 11,
    fields: { fusedActivationFunction: f(0, 'i8'), potScaleInt16: f(1, 'bool', true) },
  },
  ReshapeOptions: { code: 17, fields: { newShape: vec(0) } },
  MulOptions: { code: 21, fields: { fusedActivationFunction: f(0, 'i8') } },
  PadOptions: { code: 22, fields: {} },
  ReducerOptions: { code: 27, fields: { keepDims: f(0, 'bool') } },
  SubOptions: {
    code: 28,
    fields: { fusedActivationFunction: f(0, 'i8'), potScaleInt16: f(1, 'bool', true) },
  },
  DivOptions: { code: 29, fields: { fusedActivationFunction: f(0, 'i8') } },
  SqueezeOptions: { code: 30, fields: { squeezeDims: vec(0) } },
  DequantizeOptions: { code: 38, fields: {} },
  PadV2Options: { code: 43, fields: {} },
  QuantizeOptions: { code: 89, fields: {} },
  HardSwishOptions: { code: 91, fields: {} },
} as const satisfies Record<string, { code: number; fields: Record<string, FieldSpec> }>;

type Tables = typeof OPTION_TABLES;
export type OptionsTypeName = keyof Tables;

type ValueOf<K extends FieldKind> = K extends 'bool' ? boolean : K extends 'i32[]' ? number[] : number;
type Fields<N extends OptionsTypeName> = Tables[N]['fields'];
// Vector fields are optional: absent and empty are kept apart on a round trip.
type VectorKeys<N extends OptionsTypeName> = {
  [F in keyof Fields<N>]: Fields<N>[F] extends { kind: 'i32[]' } ? F : never;
}[keyof Fields<N>];
type OptionsOf<N extends OptionsTypeName> = { type: N } & {
  [F in Exclude<keyof Fields<N>, VectorKeys<N>>]: Fields<N>[F] extends { kind: infer K extends FieldKind } ? ValueOf<K> : never;
} & {
  [F in VectorKeys<N>]?: number[];
};

/** Decoded builtin options, discriminated by `type` (the schema table name). */
export type BuiltinOptions = { [N in OptionsTypeName]: OptionsOf<N> }[OptionsTypeName];
export type BuiltinOptionsOf<N extends OptionsTypeName> = OptionsOf<N>;

/** Every member of the BuiltinOptions union, indexed by union code, for naming unsupported ones. */
const BUILTIN_OPTIONS_NAMES: readonly string[] = (
  'NONE Conv2DOptions DepthwiseConv2DOptions ConcatEmbeddingsOptions LSHProjectionOptions ' +
  'Pool2DOptions SVDFOptions RNNOptions FullyConnectedOptions SoftmaxOptions ' +
  'ConcatenationOptions AddOptions L2NormOptions LocalResponseNormalizationOptions LSTMOptions ' +
  'ResizeBilinearOptions CallOptions ReshapeOptions SkipGramOptions SpaceToDepthOptions ' +
  'EmbeddingLookupSparseOptions MulOptions PadOptions GatherOptions BatchToSpaceNDOptions ' +
  'SpaceToBatchNDOptions TransposeOptions ReducerOptions SubOptions DivOptions SqueezeOptions ' +
  'SequenceRNNOptions StridedSliceOptions ExpOptions TopKV2Options SplitOptions ' +
  'LogSoftmaxOptions CastOptions DequantizeOptions MaximumMinimumOptions ArgMaxOptions ' +
  'LessOptions NegOptions PadV2Options GreaterOptions GreaterEqualOptions LessEqualOptions ' +
  'SelectOptions SliceOptions TransposeConvOptions SparseToDenseOptions TileOptions ' +
  'ExpandDimsOptions EqualOptions NotEqualOptions ShapeOptions PowOptions ArgMinOptions ' +
  'FakeQuantOptions PackOptions LogicalOrOptions OneHotOptions LogicalAndOptions ' +
  'LogicalNotOptions UnpackOptions FloorDivOptions SquareOptions ZerosLikeOptions FillOptions ' +
  'BidirectionalSequenceLSTMOptions BidirectionalSequenceRNNOptions ' +
  'UnidirectionalSequenceLSTMOptions FloorModOptions RangeOptions ' +
  'ResizeNearestNeighborOptions LeakyReluOptions SquaredDifferenceOptions MirrorPadOptions ' +
  'AbsOptions SplitVOptions UniqueOptions ReverseV2Options AddNOptions GatherNdOptions ' +
  'CosOptions WhereOptions RankOptions ReverseSequenceOptions MatrixDiagOptions ' +
  'QuantizeOptions MatrixSetDiagOptions HardSwishOptions IfOptions WhileOptions ' +
  'DepthToSpaceOptions NonMaxSuppressionV4Options NonMaxSuppressionV5Options ScatterNdOptions ' +
  'SelectV2Options DensifyOptions SegmentSumOptions BatchMatMulOptions CumsumOptions ' +
  'CallOnceOptions BroadcastToOptions Rfft2dOptions Conv3DOptions HashtableOptions ' +
  'HashtableFindOptions HashtableImportOptions HashtableSizeOptions VarHandleOptions ' +
  'ReadVariableOptions AssignVariableOptions RandomOptions BucketizeOptions GeluOptions ' +
  'DynamicUpdateSliceOptions UnsortedSegmentProdOptions UnsortedSegmentMaxOptions ' +
  'UnsortedSegmentMinOptions UnsortedSegmentSumOptions ATan2Options SignOptions ' +
  'BitcastOptions BitwiseXorOptions RightShiftOptions'
).split(' ');

/** Members of the second options union (StableHLO ops), only for error messages. */
const BUILTIN_OPTIONS2_NAMES: readonly string[] = (
  'NONE StablehloConcatenateOptions StablehloBroadcastInDimOptions StablehloSliceOptions ' +
  'StablehloConvolutionOptions StablehloCustomCallOptions StablehloReduceOptions ' +
  'StablehloScatterOptions StablehloCompareOptions StablehloDynamicSliceOptions ' +
  'StablehloPadOptions StablehloIotaOptions StablehloDotGeneralOptions ' +
  'StablehloReduceWindowOptions StablehloSortOptions StablehloWhileOptions ' +
  'StablehloGatherOptions StablehloTransposeOptions DilateOptions ' +
  'StablehloRngBitGeneratorOptions ReduceWindowOptions StableHLOCompositeOptions'
).split(' ');

export function builtinOptionsName(code: number): string {
  return BUILTIN_OPTIONS_NAMES[code] ?? `unknown options type ${code}`;
}

export function builtinOptions2Name(code: number): string {
  return BUILTIN_OPTIONS2_NAMES[code] ?? `unknown options type ${code}`;
}

const BY_CODE = new Map<number, OptionsTypeName>(
  (Object.keys(OPTION_TABLES) as OptionsTypeName[]).map((name) => [OPTION_TABLES[name].code, name]),
);

/** The supported table name for a union code, or undefined if this project does not handle it. */
export function optionsTypeForCode(code: number): OptionsTypeName | undefined {
  return BY_CODE.get(code);
}

/** Field specs of a supported table, as a loop-friendly list. */
export function optionFields(name: OptionsTypeName): Array<[string, FieldSpec]> {
  return Object.entries(OPTION_TABLES[name].fields as Record<string, FieldSpec>);
}

/**
 * Builds a complete options object from the schema defaults plus the given
 * fields, so code that makes new operators names only what differs.
 */
export function makeOptions<N extends OptionsTypeName>(
  type: N,
  fields: Partial<Omit<BuiltinOptionsOf<N>, 'type'>> = {},
): BuiltinOptionsOf<N> {
  const out: Record<string, unknown> = { type };
  for (const [name, spec] of optionFields(type)) {
    if (spec.kind !== 'i32[]') out[name] = spec.default;
  }
  Object.assign(out, fields);
  return out as BuiltinOptionsOf<N>;
}
