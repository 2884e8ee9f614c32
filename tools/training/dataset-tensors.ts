// Decodes an image list once, through the agent's own preprocessing (sharp,
// the package's resize mode), into one uint8 NHWC file the trainer maps into
// memory: training sees exactly the pixels the gateway will feed the model.
import fs from 'node:fs';
import path from 'node:path';
import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { areaDownsample } from '../../agent/preprocess/area-downsample.js';
import { imageFileToRgb, type RgbTarget } from '../../agent/preprocess/image-to-rgb.js';

export interface DatasetTensorFiles {
  /** N x height x width x 3 bytes. */
  pixels: string;
  /** N little-endian int32 labels. */
  labels: string;
  count: number;
}

const PARALLEL_DECODES = 8;

export async function writeDatasetTensors(
  images: readonly LabelledImage[],
  target: RgbTarget,
  stem: string,
  onProgress?: (done: number, total: number) => void,
  /** Decode at this many times the target size, then shrink by area averaging: a glance network's view of the frame. */
  shrinkBy = 1,
): Promise<DatasetTensorFiles> {
  const files = { pixels: `${stem}.u8`, labels: `${stem}.labels`, count: images.length };
  const frame = target.width * target.height * 3;
  const decoded = { ...target, width: target.width * shrinkBy, height: target.height * shrinkBy };
  if (fs.existsSync(files.labels) && fs.existsSync(files.pixels) && fs.statSync(files.pixels).size === frame * images.length) return files;
  fs.mkdirSync(path.dirname(stem), { recursive: true });
  const partial = `${files.pixels}.partial`;
  const out = fs.openSync(partial, 'w');
  try {
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < images.length) {
        const i = next++;
        let rgb = await imageFileToRgb(images[i]!.file, decoded);
        if (shrinkBy > 1) {
          const shrunk = Buffer.alloc(frame);
          areaDownsample(rgb, decoded.width, decoded.height, 3, shrinkBy, shrunk);
          rgb = shrunk;
        }
        fs.writeSync(out, rgb, 0, rgb.length, i * frame);
        onProgress?.(++done, images.length);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_DECODES }, worker));
  } finally {
    fs.closeSync(out);
  }
  const labels = Int32Array.from(images, (image) => image.label);
  fs.writeFileSync(files.labels, new Uint8Array(labels.buffer));
  fs.renameSync(partial, files.pixels);
  return files;
}
