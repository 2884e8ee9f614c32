/**
 * Shrinks an interleaved uint8 image by a whole factor, each output pixel the
 * rounded mean of its factor x factor block: what a glance network reads from
 * the frame the full model reads, without a second decode or resize.
 */
export function areaDownsample(source: Uint8Array, width: number, height: number, channels: number, factor: number, target: Uint8Array): void {
  if (!Number.isInteger(factor) || factor < 1 || width % factor !== 0 || height % factor !== 0) {
    throw new RangeError(`cannot shrink ${width}x${height} by ${factor}: the factor must be a whole number dividing both sides`);
  }
  const outWidth = width / factor;
  const outHeight = height / factor;
  if (source.length !== width * height * channels || target.length !== outWidth * outHeight * channels) {
    throw new RangeError(`areaDownsample: expected ${width * height * channels} source and ${outWidth * outHeight * channels} target values, got ${source.length} and ${target.length}`);
  }
  if (factor === 1) {
    target.set(source);
    return;
  }
  const area = factor * factor;
  const half = area >> 1;
  const sums = new Uint32Array(outWidth * channels);
  for (let oy = 0; oy < outHeight; oy++) {
    sums.fill(0);
    for (let dy = 0; dy < factor; dy++) {
      let at = (oy * factor + dy) * width * channels;
      for (let ox = 0; ox < outWidth; ox++) {
        for (let dx = 0; dx < factor; dx++) {
          for (let c = 0; c < channels; c++) sums[ox * channels + c]! += source[at++]!;
        }
      }
    }
    const row = oy * outWidth * channels;
    for (let i = 0; i < sums.length; i++) target[row + i] = Math.floor((sums[i]! + half) / area);
  }
}
