import fs from 'node:fs/promises';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { decode as decodeBmp } from 'bmp-ts';

/** How a frame is fitted to the model input: stretched to it, or center-cropped to its aspect first. */
export type ResizeMode = 'stretch' | 'center-crop';

export interface RgbTarget {
  width: number;
  height: number;
  resize: ResizeMode;
}

export class ImageDecodeError extends Error {
  constructor(file: string, cause: unknown) {
    super(`Cannot decode image ${file}: ${(cause as Error).message}. Is it a complete JPEG, PNG, WebP or BMP file?`, { cause });
    this.name = 'ImageDecodeError';
  }
}

/** sharp has no BMP decoder; BMP pixels are taken out as plain RGB (alpha dropped, never premultiplied). */
function bmpToRaw(bytes: Buffer): { data: Buffer; width: number; height: number } {
  const bmp = decodeBmp(bytes, { toRGBA: true });
  const pixels = bmp.width * bmp.height;
  const rgb = Buffer.allocUnsafe(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    rgb[i * 3] = bmp.data[i * 4]!;
    rgb[i * 3 + 1] = bmp.data[i * 4 + 1]!;
    rgb[i * 3 + 2] = bmp.data[i * 4 + 2]!;
  }
  return { data: rgb, width: bmp.width, height: bmp.height };
}

/** Decodes an encoded image (bytes) and returns width*height*3 RGB bytes for the model input. */
export async function encodedImageToRgb(bytes: Buffer, target: RgbTarget, label = 'image'): Promise<Buffer> {
  try {
    const isBmp = bytes.length > 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
    let pipeline: Sharp;
    if (isBmp) {
      const raw = bmpToRaw(bytes);
      pipeline = sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: 3 } });
    } else {
      pipeline = sharp(bytes, { failOn: 'error' });
    }
    return await pipeline
      .removeAlpha()
      .resize(target.width, target.height, { fit: target.resize === 'stretch' ? 'fill' : 'cover', kernel: 'linear' })
      .toColourspace('srgb')
      .raw()
      .toBuffer();
  } catch (error) {
    throw new ImageDecodeError(label, error);
  }
}

export async function imageFileToRgb(file: string, target: RgbTarget): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    throw new ImageDecodeError(file, error);
  }
  return encodedImageToRgb(bytes, target, path.resolve(file));
}
