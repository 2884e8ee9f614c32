// Bounds-checked access to flatbuffer tables. The flatbuffers runtime reads
// out-of-range offsets as zeros instead of failing, so every offset and length
// taken from the file is checked here before use; a bad one becomes a
// TfliteFormatError naming the field.
import { ByteBuffer } from 'flatbuffers';
import { corrupt } from './errors.js';

const utf8 = new TextDecoder('utf-8');

export class FlatFile {
  readonly bb: ByteBuffer;
  readonly size: number;

  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    // A plain view, because a Node Buffer's slice() shares memory instead of copying.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bb = new ByteBuffer(this.bytes);
    this.size = bytes.length;
  }

  /** Throws unless [pos, pos+len) lies inside the file. */
  need(pos: number, len: number, where: string): void {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(len) || pos < 0 || len < 0 || pos + len > this.size) {
      throw corrupt(where, `data at offset ${pos} (${len} bytes) lies outside the ${this.size}-byte file`);
    }
  }

  u32(pos: number, where: string): number {
    this.need(pos, 4, where);
    return this.bb.readUint32(pos);
  }

  /** The root table, whose offset is the file's first 32 bits. */
  root(where: string): FlatTable {
    return this.tableAt(this.u32(0, where), where);
  }

  tableAt(pos: number, where: string): FlatTable {
    this.need(pos, 4, where);
    const vtable = pos - this.bb.readInt32(pos);
    this.need(vtable, 4, `${where} (vtable)`);
    const vtableSize = this.bb.readUint16(vtable);
    const objectSize = this.bb.readUint16(vtable + 2);
    if (vtableSize < 4 || vtableSize % 2 !== 0 || objectSize < 4) {
      throw corrupt(where, `malformed table header (vtable ${vtableSize} bytes, object ${objectSize} bytes)`);
    }
    this.need(vtable, vtableSize, `${where} (vtable)`);
    this.need(pos, objectSize, where);
    return new FlatTable(this, pos, vtable, vtableSize, objectSize, where);
  }

  /** Position and length of the vector that the offset stored at `ref` points to. */
  vectorAt(ref: number, elemSize: number, where: string): { start: number; length: number } {
    const pos = ref + this.u32(ref, where);
    const length = this.u32(pos, where);
    this.need(pos + 4, length * elemSize, where);
    return { start: pos + 4, length };
  }
}

/** One table: reads fields by vtable slot (the field's index in the schema). */
export class FlatTable {
  constructor(
    readonly file: FlatFile,
    readonly pos: number,
    private readonly vtable: number,
    private readonly vtableSize: number,
    private readonly objectSize: number,
    readonly where: string,
  ) {}

  /** Absolute position of a field, or 0 when the field is absent. */
  private field(slot: number, size: number, name: string): number {
    const entry = 4 + 2 * slot;
    if (entry + 2 > this.vtableSize) return 0;
    const offset = this.file.bb.readUint16(this.vtable + entry);
    if (offset === 0) return 0;
    if (offset + size > this.objectSize) {
      throw corrupt(`${this.where}.${name}`, `field lies outside its table`);
    }
    return this.pos + offset;
  }

  has(slot: number): boolean {
    const entry = 4 + 2 * slot;
    return entry + 2 <= this.vtableSize && this.file.bb.readUint16(this.vtable + entry) !== 0;
  }

  int8(slot: number, name: string, def = 0): number {
    const p = this.field(slot, 1, name);
    return p ? this.file.bb.readInt8(p) : def;
  }

  uint8(slot: number, name: string, def = 0): number {
    const p = this.field(slot, 1, name);
    return p ? this.file.bb.readUint8(p) : def;
  }

  bool(slot: number, name: string, def = false): boolean {
    const p = this.field(slot, 1, name);
    return p ? this.file.bb.readUint8(p) !== 0 : def;
  }

  int32(slot: number, name: string, def = 0): number {
    const p = this.field(slot, 4, name);
    return p ? this.file.bb.readInt32(p) : def;
  }

  uint32(slot: number, name: string, def = 0): number {
    const p = this.field(slot, 4, name);
    return p ? this.file.bb.readUint32(p) : def;
  }

  float32(slot: number, name: string, def = 0): number {
    const p = this.field(slot, 4, name);
    return p ? this.file.bb.readFloat32(p) : def;
  }

  uint64(slot: number, name: string, def = 0n): bigint {
    const p = this.field(slot, 8, name);
    return p ? this.file.bb.readUint64(p) : def;
  }

  table(slot: number, name: string): FlatTable | undefined {
    const p = this.field(slot, 4, name);
    if (!p) return undefined;
    return this.file.tableAt(p + this.file.u32(p, `${this.where}.${name}`), `${this.where}.${name}`);
  }

  string(slot: number, name: string): string | undefined {
    const bytes = this.byteView(slot, name);
    return bytes === undefined ? undefined : utf8.decode(bytes);
  }

  private vector(slot: number, elemSize: number, name: string): { start: number; length: number } | undefined {
    const p = this.field(slot, 4, name);
    return p ? this.file.vectorAt(p, elemSize, `${this.where}.${name}`) : undefined;
  }

  /** A view into the file (not a copy) of a byte vector or string. */
  byteView(slot: number, name: string): Uint8Array | undefined {
    const v = this.vector(slot, 1, name);
    return v && this.file.bytes.subarray(v.start, v.start + v.length);
  }

  int32Vector(slot: number, name: string): number[] | undefined {
    const v = this.vector(slot, 4, name);
    if (!v) return undefined;
    const out = new Array<number>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = this.file.bb.readInt32(v.start + 4 * i);
    return out;
  }

  float32Vector(slot: number, name: string): number[] | undefined {
    const v = this.vector(slot, 4, name);
    if (!v) return undefined;
    const out = new Array<number>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = this.file.bb.readFloat32(v.start + 4 * i);
    return out;
  }

  int64Vector(slot: number, name: string): bigint[] | undefined {
    const v = this.vector(slot, 8, name);
    if (!v) return undefined;
    const out = new Array<bigint>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = this.file.bb.readInt64(v.start + 8 * i);
    return out;
  }

  tableVector(slot: number, name: string): FlatTable[] | undefined {
    const v = this.vector(slot, 4, name);
    if (!v) return undefined;
    const out: FlatTable[] = [];
    for (let i = 0; i < v.length; i++) {
      const ref = v.start + 4 * i;
      out.push(this.file.tableAt(ref + this.file.bb.readUint32(ref), `${this.where}.${name}[${i}]`));
    }
    return out;
  }
}
