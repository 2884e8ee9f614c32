import fs from 'node:fs';
import path from 'node:path';
import type { FeatureSet } from './train-head.js';

/**
 * Extracted features on disk: a JSON header line, then each set's labels
 * (int32) and features (float32). Written under a temporary name and renamed,
 * so an interrupted build never leaves a cache entry that looks complete.
 */
const MAGIC = 'edge-exit-features-v1';

export function writeFeatureCache(file: string, sets: FeatureSet[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header = Buffer.from(`${JSON.stringify({ magic: MAGIC, sets: sets.map((s) => ({ dim: s.dim, count: s.labels.length })) })}\n`);
  const parts: Buffer[] = [header];
  for (const set of sets) {
    parts.push(Buffer.from(set.labels.buffer, set.labels.byteOffset, set.labels.byteLength));
    parts.push(Buffer.from(set.features.buffer, set.features.byteOffset, set.features.byteLength));
  }
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, Buffer.concat(parts));
  fs.renameSync(temporary, file);
}

/** The cached sets, or undefined when the file is absent or not a complete cache entry. */
export function readFeatureCache(file: string): FeatureSet[] | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) return undefined;
  let header: { magic?: string; sets?: { dim: number; count: number }[] };
  try {
    header = JSON.parse(bytes.subarray(0, newline).toString('utf8'));
  } catch {
    return undefined;
  }
  if (header.magic !== MAGIC || !Array.isArray(header.sets)) return undefined;
  let offset = newline + 1;
  const sets: FeatureSet[] = [];
  for (const { dim, count } of header.sets) {
    const labelBytes = count * 4;
    const featureBytes = count * dim * 4;
    if (offset + labelBytes + featureBytes > bytes.length) return undefined;
    // Copied out so the typed arrays are aligned whatever the header length.
    const labels = new Int32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + labelBytes));
    offset += labelBytes;
    const features = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + featureBytes));
    offset += featureBytes;
    sets.push({ dim, labels, features });
  }
  return offset === bytes.length ? sets : undefined;
}
