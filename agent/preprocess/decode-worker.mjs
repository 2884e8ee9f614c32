// The thread behind RgbDecoder (rgb-decoder.ts): reading and the agent's own decoding (image-to-rgb.ts), off the loop's thread.
// Plain JavaScript, so that it starts under any loader; it loads the TypeScript through tsx as bin/edge-exit.js does.
import fs from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { encodedImageToRgb } = await import('./image-to-rgb.ts');

parentPort.on('message', async ({ id, file, target, label }) => {
  let bytes;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    parentPort.postMessage({ id, readError: error.message });
    return;
  }
  try {
    parentPort.postMessage({ id, bytes, pixels: await encodedImageToRgb(bytes, target, label) });
  } catch (error) {
    parentPort.postMessage({ id, bytes, error: error.message });
  }
});
