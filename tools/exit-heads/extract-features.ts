import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import type { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { poolFeaturesFloat, pooledSize } from './int8-head.js';
import type { FeatureSet } from './train-head.js';

/** Where an exit head reads: the output of one segment, average-pooled to grid x grid cells. */
export interface ExitTap {
  segment: number;
  grid: number;
}

/** Decodes ahead of the model so JPEG work (on libuv's threads) overlaps inference. */
const PREFETCH = 16;

/**
 * Runs the real int8 segments over a list of images and keeps, for every exit,
 * the pooled features its head will see (dequantized, exactly as the int8 head
 * pools them).
 */
export async function extractFeatures(
  segments: readonly TfliteInterpreter[],
  images: readonly LabelledImage[],
  taps: readonly ExitTap[],
  target: RgbTarget,
  onProgress?: (done: number, total: number) => void,
): Promise<FeatureSet[]> {
  const deepest = Math.max(...taps.map((t) => t.segment));
  const seams = taps.map((tap) => {
    const output = segments[tap.segment]!.output();
    const q = output.quantization;
    if (output.dtype !== 'int8' || !q) throw new Error(`segment ${tap.segment}'s output is ${output.dtype}, not a quantized int8 seam`);
    const shape = output.shape as [1, number, number, number];
    return { output, spec: { shape, scale: q.scale, zeroPoint: q.zeroPoint } };
  });
  const sets: FeatureSet[] = taps.map((tap, i) => {
    const dim = pooledSize(seams[i]!.spec, tap.grid);
    return { dim, labels: new Int32Array(images.length), features: new Float32Array(images.length * dim) };
  });
  const pending: Promise<Buffer>[] = [];
  const decode = (i: number) => {
    const decoded = imageFileToRgb(images[i]!.file, target);
    // Awaited in order below; until then a failure must not count as unhandled.
    decoded.catch(() => {});
    return decoded;
  };
  for (let i = 0; i < Math.min(PREFETCH, images.length); i++) pending.push(decode(i));
  for (let n = 0; n < images.length; n++) {
    const rgb = await pending[n]!;
    delete pending[n];
    if (n + PREFETCH < images.length) pending[n + PREFETCH] = decode(n + PREFETCH);
    segments[0]!.input().data.set(rgb);
    for (let s = 0; s <= deepest; s++) {
      if (s > 0) segments[s]!.input().data.set(segments[s - 1]!.output().data);
      segments[s]!.invoke();
    }
    taps.forEach((tap, i) => {
      const set = sets[i]!;
      set.labels[n] = images[n]!.label;
      set.features.set(poolFeaturesFloat(seams[i]!.output.data as Int8Array, seams[i]!.spec, tap.grid), n * set.dim);
    });
    if (n % 64 === 63 || n === images.length - 1) onProgress?.(n + 1, images.length);
  }
  return sets;
}
