import { z } from 'zod';
import { describeIssuesReason, shortenReason } from '../config/config-patch.js';
import { decodeJsonPayload } from './payloads.js';
import { MAX_REQUEST_ID_LENGTH, REQUEST_ID_PATTERN, requestIdProblem } from './topics.js';

/**
 * Offload request frame (agent → server), all integers big-endian:
 *
 *   "EXO"  magic, 3 bytes
 *   u8     format version (OFFLOAD_FORMAT_VERSION)
 *   u8     kind: 1 = int8/uint8 feature tensor at a cut, 2 = encoded image
 *   u8 n   request id length, then n ASCII bytes
 *   u8 m   package name length, then m ASCII bytes
 *   8      model hash prefix (first 8 bytes of the package's sha256)
 *   kind 1: u8 segment to resume from, u8 dtype, u8 rank, rank × u16 dims,
 *           f32 scale, i32 zero point, u32 byte length, tensor bytes
 *   kind 2: u8 image format, u32 byte length, image bytes
 *
 * Nothing may follow the payload bytes. Binary rather than JSON because a
 * [1,4,4,160] int8 tensor is 2.5 KiB raw and nearly twice that as base64.
 */

export const OFFLOAD_MAGIC = Buffer.from('EXO', 'ascii');
export const OFFLOAD_FORMAT_VERSION = 1;
/** Bounds what a broker, the server and the radio must carry for one frame. */
export const MAX_OFFLOAD_BYTES = 2 * 1024 * 1024;
export const MAX_TENSOR_RANK = 4;
export const MAX_TENSOR_DIM = 4096;
export const MAX_PACKAGE_NAME_LENGTH = 64;
export const MODEL_HASH_PREFIX_BYTES = 8;
/** Segments of a package; matches the config's maxExit bound. */
export const MAX_SEGMENT_INDEX = 31;

const KIND_FEATURES = 1;
const KIND_IMAGE = 2;

export const FEATURE_DTYPES = ['int8', 'uint8'] as const;
export type FeatureDtype = (typeof FEATURE_DTYPES)[number];
const DTYPE_CODES: Record<FeatureDtype, number> = { int8: 1, uint8: 2 };

export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'bmp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
const FORMAT_CODES: Record<ImageFormat, number> = { jpeg: 1, png: 2, webp: 3, bmp: 4 };

const PACKAGE_NAME_PATTERN = /^[\w.-]{1,64}$/;
const HASH_PREFIX_PATTERN = /^[0-9a-f]{16}$/;

interface OffloadCommon {
  requestId: string;
  /** Package (manifest) name the agent runs. */
  packageName: string;
  /** First 16 hex digits of the package's sha256, so the server resumes the very same model. */
  modelHashPrefix: string;
}

export interface FeatureOffload extends OffloadCommon {
  kind: 'features';
  /** Index of the first segment the server runs. */
  segment: number;
  dtype: FeatureDtype;
  shape: number[];
  scale: number;
  zeroPoint: number;
  data: Int8Array | Uint8Array;
}

export interface ImageOffload extends OffloadCommon {
  kind: 'image';
  format: ImageFormat;
  data: Uint8Array;
}

export type OffloadPayload = FeatureOffload | ImageOffload;
export type OffloadDecodeResult = { ok: true; payload: OffloadPayload } | { ok: false; reason: string };

/** Input to encodeOffload: the model hash may be the full sha256 or its 16-digit prefix. */
export type OffloadInput = (Omit<FeatureOffload, 'modelHashPrefix'> | Omit<ImageOffload, 'modelHashPrefix'>) & { modelHash: string };

export class OffloadEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OffloadEncodeError';
  }
}

function zeroPointRange(dtype: FeatureDtype): [number, number] {
  return dtype === 'int8' ? [-128, 127] : [0, 255];
}

/** The first rule a shape breaks, in words; undefined when it is fine. */
function shapeProblem(shape: readonly number[]): string | undefined {
  if (shape.length < 1 || shape.length > MAX_TENSOR_RANK) return `tensor rank is ${shape.length}, must be 1 to ${MAX_TENSOR_RANK}`;
  for (const [i, dim] of shape.entries()) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_TENSOR_DIM) return `tensor dim ${i} is ${dim}, must be an integer 1 to ${MAX_TENSOR_DIM}`;
  }
  return undefined;
}

/** Builds an offload frame. Throws OffloadEncodeError for input the decoder would refuse: that is a bug on this side. */
export function encodeOffload(input: OffloadInput): Buffer {
  const fail = (message: string): never => {
    throw new OffloadEncodeError(`offload: ${message}`);
  };
  const idProblem = requestIdProblem(input.requestId);
  if (idProblem) fail(idProblem);
  if (!PACKAGE_NAME_PATTERN.test(input.packageName)) fail(`package name ${JSON.stringify(input.packageName)} must be 1 to ${MAX_PACKAGE_NAME_LENGTH} of letters, digits, _ . -`);
  const hash = input.modelHash.toLowerCase();
  if (!/^[0-9a-f]{16,64}$/.test(hash)) fail(`model hash must be at least 16 hex digits of the package sha256, got ${JSON.stringify(input.modelHash)}`);

  const head = Buffer.alloc(3 + 1 + 1 + 1 + input.requestId.length + 1 + input.packageName.length + MODEL_HASH_PREFIX_BYTES);
  let at = OFFLOAD_MAGIC.copy(head, 0);
  at = head.writeUInt8(OFFLOAD_FORMAT_VERSION, at);
  at = head.writeUInt8(input.kind === 'features' ? KIND_FEATURES : KIND_IMAGE, at);
  at = head.writeUInt8(input.requestId.length, at);
  at += head.write(input.requestId, at, 'ascii');
  at = head.writeUInt8(input.packageName.length, at);
  at += head.write(input.packageName, at, 'ascii');
  Buffer.from(hash.slice(0, MODEL_HASH_PREFIX_BYTES * 2), 'hex').copy(head, at);

  let body: Buffer;
  if (input.kind === 'features') {
    const shapeIssue = shapeProblem(input.shape);
    if (shapeIssue) fail(shapeIssue);
    if (!Number.isInteger(input.segment) || input.segment < 0 || input.segment > MAX_SEGMENT_INDEX) fail(`segment ${input.segment} must be an integer 0 to ${MAX_SEGMENT_INDEX}`);
    if (!FEATURE_DTYPES.includes(input.dtype)) fail(`dtype ${String(input.dtype)} must be one of ${FEATURE_DTYPES.join(', ')}`);
    // Float32 is what the header stores; a scale that float32 cannot hold is refused rather than rounded to 0 or Infinity.
    const scale32 = Math.fround(input.scale);
    if (!Number.isFinite(scale32) || !(scale32 > 0)) fail(`scale ${input.scale} must be a finite positive float32`);
    const [zpMin, zpMax] = zeroPointRange(input.dtype);
    if (!Number.isInteger(input.zeroPoint) || input.zeroPoint < zpMin || input.zeroPoint > zpMax) fail(`zero point ${input.zeroPoint} must be an integer ${zpMin} to ${zpMax} for ${input.dtype}`);
    const elements = input.shape.reduce((a, b) => a * b, 1);
    if (input.data.byteLength !== elements) fail(`tensor has ${input.data.byteLength} bytes, shape [${input.shape.join(',')}] needs ${elements}`);
    body = Buffer.alloc(3 + 2 * input.shape.length + 4 + 4 + 4);
    let b = body.writeUInt8(input.segment, 0);
    b = body.writeUInt8(DTYPE_CODES[input.dtype], b);
    b = body.writeUInt8(input.shape.length, b);
    for (const dim of input.shape) b = body.writeUInt16BE(dim, b);
    b = body.writeFloatBE(scale32, b);
    b = body.writeInt32BE(input.zeroPoint, b);
    body.writeUInt32BE(input.data.byteLength, b);
  } else {
    if (!IMAGE_FORMATS.includes(input.format)) fail(`image format ${String(input.format)} must be one of ${IMAGE_FORMATS.join(', ')}`);
    if (input.data.byteLength === 0) fail('image is empty');
    body = Buffer.alloc(5);
    body.writeUInt8(FORMAT_CODES[input.format], 0);
    body.writeUInt32BE(input.data.byteLength, 1);
  }
  const data = Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength);
  const total = head.length + body.length + data.length;
  if (total > MAX_OFFLOAD_BYTES) fail(`frame would be ${total} bytes, at most ${MAX_OFFLOAD_BYTES} are allowed`);
  return Buffer.concat([head, body, data], total);
}

/** The model hash prefix of a frame this side encoded, read from its header alone (no copy of the data); undefined when it is not one. */
export function offloadModelHashPrefix(frame: Buffer): string | undefined {
  if (frame.length < 6 || !frame.subarray(0, 3).equals(OFFLOAD_MAGIC)) return undefined;
  const nameAt = 6 + frame[5]!;
  if (frame.length < nameAt + 1) return undefined;
  const hashAt = nameAt + 1 + frame[nameAt]!;
  if (frame.length < hashAt + MODEL_HASH_PREFIX_BYTES) return undefined;
  return frame.subarray(hashAt, hashAt + MODEL_HASH_PREFIX_BYTES).toString('hex');
}

/** A bounds-checked reader: every read names what it wanted when the frame ends early. */
class Reader {
  at = 0;
  constructor(private readonly buf: Buffer) {}
  need(bytes: number, what: string): string | undefined {
    return this.at + bytes <= this.buf.length ? undefined : `truncated: frame ends at byte ${this.buf.length} while reading ${what} (needs ${this.at + bytes})`;
  }
  u8(): number {
    return this.buf.readUInt8(this.at++);
  }
  u16(): number {
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  f32(): number {
    const v = this.buf.readFloatBE(this.at);
    this.at += 4;
    return v;
  }
  bytes(n: number): Buffer {
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  get remaining(): number {
    return this.buf.length - this.at;
  }
}

/** Reads an offload frame; never throws. Payload bytes are copied, so the frame buffer may be reused. */
export function decodeOffload(buf: unknown): OffloadDecodeResult {
  try {
    return decodeChecked(buf);
  } catch (error) {
    // Every read is bounds-checked first; this only guards against a mistake in that checking.
    return { ok: false, reason: shortenReason(`offload: could not be read (${String(error)})`) };
  }
}

function decodeChecked(input: unknown): OffloadDecodeResult {
  const fail = (reason: string): OffloadDecodeResult => ({ ok: false, reason: `offload: ${reason}` });
  if (!(input instanceof Uint8Array)) return fail(`payload must be bytes, got ${input === null ? 'null' : typeof input}`);
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length > MAX_OFFLOAD_BYTES) return fail(`payload is ${buf.length} bytes, at most ${MAX_OFFLOAD_BYTES} are allowed`);
  const r = new Reader(buf);
  let missing = r.need(5, 'the header');
  if (missing) return fail(missing);
  if (!r.bytes(3).equals(OFFLOAD_MAGIC)) return fail('wrong magic: not an EXO offload frame');
  const version = r.u8();
  if (version !== OFFLOAD_FORMAT_VERSION) return fail(`format version ${version} is not supported (expected ${OFFLOAD_FORMAT_VERSION})`);
  const kindCode = r.u8();
  if (kindCode !== KIND_FEATURES && kindCode !== KIND_IMAGE) return fail(`kind ${kindCode} is unknown (1 = features, 2 = image)`);

  if ((missing = r.need(1, 'the request id length'))) return fail(missing);
  const idLength = r.u8();
  if (idLength < 1 || idLength > MAX_REQUEST_ID_LENGTH) return fail(`request id length ${idLength} must be 1 to ${MAX_REQUEST_ID_LENGTH}`);
  if ((missing = r.need(idLength, 'the request id'))) return fail(missing);
  const requestId = r.bytes(idLength).toString('latin1');
  if (!REQUEST_ID_PATTERN.test(requestId)) return fail('request id must be letters, digits, _ . -');

  if ((missing = r.need(1, 'the package name length'))) return fail(missing);
  const nameLength = r.u8();
  if (nameLength < 1 || nameLength > MAX_PACKAGE_NAME_LENGTH) return fail(`package name length ${nameLength} must be 1 to ${MAX_PACKAGE_NAME_LENGTH}`);
  if ((missing = r.need(nameLength, 'the package name'))) return fail(missing);
  const packageName = r.bytes(nameLength).toString('latin1');
  if (!PACKAGE_NAME_PATTERN.test(packageName)) return fail('package name must be letters, digits, _ . -');
  if ((missing = r.need(MODEL_HASH_PREFIX_BYTES, 'the model hash prefix'))) return fail(missing);
  const modelHashPrefix = r.bytes(MODEL_HASH_PREFIX_BYTES).toString('hex');
  const common = { requestId, packageName, modelHashPrefix };

  if (kindCode === KIND_FEATURES) {
    if ((missing = r.need(3, 'segment, dtype and rank'))) return fail(missing);
    const segment = r.u8();
    if (segment > MAX_SEGMENT_INDEX) return fail(`segment ${segment} must be 0 to ${MAX_SEGMENT_INDEX}`);
    const dtypeCode = r.u8();
    const dtype = FEATURE_DTYPES.find((d) => DTYPE_CODES[d] === dtypeCode);
    if (!dtype) return fail(`dtype code ${dtypeCode} is unknown (1 = int8, 2 = uint8)`);
    const rank = r.u8();
    if (rank < 1 || rank > MAX_TENSOR_RANK) return fail(`tensor rank ${rank} must be 1 to ${MAX_TENSOR_RANK}`);
    if ((missing = r.need(2 * rank + 12, 'shape, scale, zero point and length'))) return fail(missing);
    const shape: number[] = [];
    for (let i = 0; i < rank; i++) shape.push(r.u16());
    const shapeIssue = shapeProblem(shape);
    if (shapeIssue) return fail(shapeIssue);
    const scale = r.f32();
    if (!Number.isFinite(scale) || !(scale > 0)) return fail(`scale ${scale} must be finite and positive`);
    const zeroPoint = r.i32();
    const [zpMin, zpMax] = zeroPointRange(dtype);
    if (zeroPoint < zpMin || zeroPoint > zpMax) return fail(`zero point ${zeroPoint} must be ${zpMin} to ${zpMax} for ${dtype}`);
    const length = r.u32();
    // Compared before any allocation: 4096^4 elements would not fit, and the length field must agree anyway.
    const elements = shape.reduce((a, b) => a * b, 1);
    if (length !== elements) return fail(`tensor length ${length} does not match shape [${shape.join(',')}] (${elements} elements)`);
    if (r.remaining !== length) return fail(r.remaining < length ? `truncated: tensor needs ${length} bytes, ${r.remaining} remain` : `${r.remaining - length} unexpected bytes after the tensor`);
    const bytes = new Uint8Array(r.bytes(length));
    const data = dtype === 'int8' ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
    return { ok: true, payload: { kind: 'features', ...common, segment, dtype, shape, scale, zeroPoint, data } };
  }

  if ((missing = r.need(5, 'image format and length'))) return fail(missing);
  const formatCode = r.u8();
  const format = IMAGE_FORMATS.find((f) => FORMAT_CODES[f] === formatCode);
  if (!format) return fail(`image format code ${formatCode} is unknown (1 = jpeg, 2 = png, 3 = webp, 4 = bmp)`);
  const length = r.u32();
  if (length === 0) return fail('image is empty');
  if (r.remaining !== length) return fail(r.remaining < length ? `truncated: image needs ${length} bytes, ${r.remaining} remain` : `${r.remaining - length} unexpected bytes after the image`);
  return { ok: true, payload: { kind: 'image', ...common, format, data: new Uint8Array(r.bytes(length)) } };
}

// ---------------------------------------------------------------- answer (server → agent)

export const MAX_OFFLOAD_ANSWER_BYTES = 4 * 1024;

/**
 * The MQTT 5 user property an offload server names itself with on its answers (its id on
 * `<prefix>/servers/<id>/availability`): a property rather than a payload field, so the
 * strict answer schema of older agents still reads the answer.
 */
export const SERVER_ID_PROPERTY = 'serverId';

export const offloadAnswerSchema = z.strictObject({
  requestId: z.string().regex(REQUEST_ID_PATTERN, `1 to ${MAX_REQUEST_ID_LENGTH} of letters, digits, _ . -`),
  label: z.string().min(1).max(128),
  confidence: z.number().min(0).max(1),
  serverMs: z.number().nonnegative().max(600_000),
  /** The package sha256 (or its 16-digit prefix) the server ran; the agent drops answers from another model. */
  modelHash: z.string().regex(/^[0-9a-f]{16,64}$/, '16 to 64 lowercase hex digits of the package sha256'),
});
export type OffloadAnswer = z.infer<typeof offloadAnswerSchema>;
export type OffloadAnswerResult = { ok: true; answer: OffloadAnswer } | { ok: false; reason: string };

export function encodeOffloadAnswer(answer: OffloadAnswer): Buffer {
  const parsed = offloadAnswerSchema.safeParse(answer);
  if (!parsed.success) throw new OffloadEncodeError(describeIssuesReason('offload answer', parsed.error, answer));
  return Buffer.from(JSON.stringify(parsed.data), 'utf8');
}

/** Reads a server answer; never throws. */
export function parseOffloadAnswer(bytes: unknown): OffloadAnswerResult {
  try {
    const decoded = decodeJsonPayload(bytes, MAX_OFFLOAD_ANSWER_BYTES, 'offload answer');
    if (!decoded.ok) return decoded;
    const parsed = offloadAnswerSchema.safeParse(decoded.value);
    return parsed.success ? { ok: true, answer: parsed.data } : { ok: false, reason: describeIssuesReason('offload answer', parsed.error, decoded.value) };
  } catch (error) {
    return { ok: false, reason: shortenReason(`offload answer: could not be read (${String(error)})`) };
  }
}

/** Whether an answer is for the model a frame was sent with (full hash or prefix on either side). */
export function answerMatchesModel(answer: OffloadAnswer, modelHashPrefix: string): boolean {
  return HASH_PREFIX_PATTERN.test(modelHashPrefix) && answer.modelHash.startsWith(modelHashPrefix);
}
