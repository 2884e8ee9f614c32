import { crc8 } from './crc8.js';

/** Longest frame accepted, from `$` to `\n` inclusive (SERIAL-PROTOCOL.md). */
export const MAX_FRAME_BYTES = 96;

export interface DecoderCounts {
  /** Frames with a good checksum. */
  frames: number;
  /** Bytes outside any frame (line noise, a boot banner) other than CR/LF. */
  garbageBytes: number;
  /** Frames cut off by a new `$` or ending without `*CC`. */
  truncated: number;
  /** Frames that ran past MAX_FRAME_BYTES without a line end. */
  overlong: number;
  badChecksum: number;
  /** Frames with a control or non-ASCII byte, or a checksum that is not two hex digits. */
  malformed: number;
}

const DOLLAR = 0x24;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into checked frames `$<body>*<crc8 hex>\r\n` and resynchronizes after
 * anything else: bytes are dropped until the next `$`. Chunk boundaries do not matter.
 */
export class FrameDecoder {
  readonly counts: DecoderCounts = { frames: 0, garbageBytes: 0, truncated: 0, overlong: 0, badChecksum: 0, malformed: 0 };
  private state: 'hunt' | 'frame' | 'skip' = 'hunt';
  private frame: number[] = [];

  /** The comma-separated fields of each good frame completed by this chunk. */
  push(chunk: Uint8Array): string[][] {
    const frames: string[][] = [];
    for (const byte of chunk) {
      if (byte === DOLLAR) {
        if (this.state === 'frame') this.counts.truncated += 1;
        this.state = 'frame';
        this.frame = [];
        continue;
      }
      if (this.state === 'hunt') {
        if (byte !== CR && byte !== LF) this.counts.garbageBytes += 1;
        continue;
      }
      if (this.state === 'skip') {
        if (byte === LF) this.state = 'hunt';
        continue;
      }
      if (byte === LF) {
        this.state = 'hunt';
        const fields = this.check(this.frame);
        if (fields) frames.push(fields);
        continue;
      }
      this.frame.push(byte);
      // `$` and `\n` are not in this.frame: +2 for the full frame length.
      if (this.frame.length + 2 > MAX_FRAME_BYTES) {
        this.counts.overlong += 1;
        this.state = 'skip';
      }
    }
    return frames;
  }

  private check(bytes: number[]): string[] | undefined {
    if (bytes.at(-1) === CR) bytes = bytes.slice(0, -1);
    if (bytes.some((b) => b < 0x20 || b > 0x7e)) {
      this.counts.malformed += 1;
      return undefined;
    }
    const text = String.fromCharCode(...bytes);
    const star = text.lastIndexOf('*');
    if (star < 0) {
      this.counts.truncated += 1;
      return undefined;
    }
    const checksum = text.slice(star + 1);
    if (!/^[0-9A-Fa-f]{2}$/.test(checksum)) {
      this.counts.malformed += 1;
      return undefined;
    }
    const body = text.slice(0, star);
    if (crc8(body) !== parseInt(checksum, 16)) {
      this.counts.badChecksum += 1;
      return undefined;
    }
    this.counts.frames += 1;
    return body.split(',');
  }
}
