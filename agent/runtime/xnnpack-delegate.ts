import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { logger } from '../log/logger.js';
import { checkSharedLibrary, type LoadCheck } from './shared-library.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where `npm ci` (node-gyp, see xnnpack-shim/binding.gyp) puts the plugin. */
export const DEFAULT_XNNPACK_PLUGIN_PATH = path.join(here, 'xnnpack-shim', 'build', 'Release', 'libedge_exit_xnnpack.so');

/** TFLITE_XNNPACK_DELEGATE_FLAG_QS8: signed int8 kernels, the ones this model family needs. */
export const XNNPACK_FLAG_QS8 = 1;

/** Whether the plugin built at install can be loaded, with the fix when it cannot. */
export function checkXnnpackPlugin(pluginPath = DEFAULT_XNNPACK_PLUGIN_PATH): LoadCheck {
  const check = checkSharedLibrary(pluginPath);
  if (check.ok) return check;
  return {
    ok: false,
    reason: `${check.reason}. It is built by \`npm ci\`: run \`npx node-gyp rebuild --directory agent/runtime/xnnpack-shim\` and look for compiler errors (it needs g++ and make).`,
  };
}

let warned = false;

/** Says once per process that the fast path is off and why. */
export function warnXnnpackFallback(reason: string): void {
  if (warned) return;
  warned = true;
  logger.warn(`XNNPACK int8 path unavailable, falling back to the stock TFLite kernels (about 10x slower): ${reason}`);
}

export function xnnpackDelegateOptions(threads: number, pluginPath = DEFAULT_XNNPACK_PLUGIN_PATH) {
  return {
    path: pluginPath,
    options: [
      ['num_threads', String(threads)],
      ['flags', String(XNNPACK_FLAG_QS8)],
    ] as Array<[string, string]>,
  };
}
