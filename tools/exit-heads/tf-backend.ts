import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

let ready: Promise<void> | undefined;

/**
 * Head training runs on tfjs's WebAssembly backend: about 3x the pure-JS CPU
 * backend here, and tfjs-node's native build cannot be fetched offline.
 */
export function tensorflow(): Promise<typeof tf> {
  ready ??= (async () => {
    // The "install tfjs-node" banner is noise on a gateway's log.
    tf.env().set('IS_NODE', true);
    if (!(await tf.setBackend('wasm'))) await tf.setBackend('cpu');
    await tf.ready();
  })();
  return ready.then(() => tf);
}
