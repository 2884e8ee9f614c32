// The thread behind RgbDecoder (rgb-decoder.ts): the agent's own decoding (image-to-rgb.ts), off the loop's thread.
// Plain JavaScript, so that it starts under any loader; it loads the TypeScript through tsx as bin/edge-exit.js does.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { encodedImageToRgb } = await import('./image-to-rgb.ts');

parentPort.on('message', async ({ id, bytes, target, label }) => {
  try {
    const pixels = await encodedImageToRgb(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), target, label);
    parentPort.postMessage({ id, pixels });
  } catch (error) {
    parentPort.postMessage({ id, error: error.message });
  }
});
parentPort.postMessage({ ready: true });
