import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';

/** Real images as the model's input bytes, through the agent's own preprocessing. */
export function imageToRgb(file: string, size = 224): Promise<Buffer> {
  return imageFileToRgb(file, { width: size, height: size, resize: 'stretch' });
}
