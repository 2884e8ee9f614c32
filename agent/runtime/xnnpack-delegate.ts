import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { logger } from '../../common/log/logger.js';
import { BuiltinOperator, TensorType, type TfliteModel } from '../tflite/model.js';
import { checkSharedLibrary, type LoadCheck } from './shared-library.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where `npm ci` (node-gyp, see xnnpack-shim/binding.gyp) puts the plugin. */
export const DEFAULT_XNNPACK_PLUGIN_PATH = path.join(here, 'xnnpack-shim', 'build', 'Release', 'libedge_exit_xnnpack.so');

/** TFLITE_XNNPACK_DELEGATE_FLAG_QS8: signed int8 kernels, the ones this model family needs. */
export const XNNPACK_FLAG_QS8 = 1;
/** TFLITE_XNNPACK_DELEGATE_FLAG_QU8: unsigned (asymmetric) uint8 kernels, for TF1 quantization-aware models. */
export const XNNPACK_FLAG_QU8 = 2;

export type XnnpackFlagName = 'QS8' | 'QU8';

export function xnnpackFlagNames(flags: number): XnnpackFlagName[] {
  return [...(flags & XNNPACK_FLAG_QS8 ? ['QS8' as const] : []), ...(flags & XNNPACK_FLAG_QU8 ? ['QU8' as const] : [])];
}

const WEIGHTED_OPS: ReadonlySet<number> = new Set([BuiltinOperator.CONV_2D, BuiltinOperator.DEPTHWISE_CONV_2D, BuiltinOperator.FULLY_CONNECTED]);

/**
 * A model is uint8-quantized when its convolutions or fully connected layers carry
 * quantized uint8 weights. Its tensors' types alone do not say it: the int8 models
 * take and give uint8 too, through QUANTIZE ops at both ends.
 */
export function isUint8Quantized(model: TfliteModel): boolean {
  const graph = model.subgraphs[0];
  if (!graph) return false;
  return graph.operators.some((op) => {
    if (!WEIGHTED_OPS.has(model.operatorCodes[op.opcodeIndex]?.builtinCode ?? -1)) return false;
    const weights = graph.tensors[op.inputs[1] ?? -1];
    return weights?.type === TensorType.UINT8 && (weights.quantization?.scale.length ?? 0) > 0;
  });
}

/** QS8 always; QU8 as well for a uint8-quantized model only (it is chosen per model, never globally). */
export function xnnpackFlagsFor(model: TfliteModel): number {
  return XNNPACK_FLAG_QS8 | (isUint8Quantized(model) ? XNNPACK_FLAG_QU8 : 0);
}

const UNPACKED_CONSTANT_OPS: ReadonlySet<number> = new Set([BuiltinOperator.DEQUANTIZE, BuiltinOperator.DENSIFY]);

/**
 * Whether the model may run on a delegate other interpreters share (one XNNPACK
 * thread pool for a whole segment chain). XNNPACK unpacks the constants these ops
 * produce into the delegate itself, and forgets them when it prepares the next
 * graph, so a model with any of them keeps a delegate of its own.
 */
export function canShareDelegate(model: TfliteModel): boolean {
  return model.subgraphs.every((graph) => graph.operators.every((op) => !UNPACKED_CONSTANT_OPS.has(model.operatorCodes[op.opcodeIndex]?.builtinCode ?? -1)));
}

/** What the plugin made the last delegate with, read back from it. */
export interface XnnpackDelegateReport {
  threads: number;
  flags: number;
  /** Whether XNNPACK created its own thread pool (it does for more than one thread). */
  threadpool: boolean;
  /** Whether the delegate, and so its thread pool, is shared with the other interpreters made with the same options. */
  shared: boolean;
}

interface ConfigAddon {
  stage(threads: number, flags: number, share: boolean): void;
  lastDelegate(): XnnpackDelegateReport | null;
  sharedUsers(): number;
}

/** The plugin and the addon that hands it its options, once both load. */
export interface XnnpackPlugin {
  path: string;
  /**
   * Hands the next delegate its options and returns what the binding's delegate
   * settings must be. Call it right before the interpreter is constructed. With
   * share, interpreters with the same threads and flags get one delegate and pool.
   */
  delegateFor(threads: number, flags: number, share: boolean): { path: string; options: Array<[string, string]> };
  lastDelegate(): XnnpackDelegateReport | null;
  /** Interpreters alive on a shared delegate. */
  sharedUsers(): number;
}

export type XnnpackPluginCheck = ({ ok: true } & { plugin: XnnpackPlugin }) | { ok: false; reason: string };

const plugins = new Map<string, XnnpackPluginCheck>();

function configAddonPath(pluginPath: string): string {
  return path.join(path.dirname(pluginPath), 'edge_exit_xnnpack_config.node');
}

/** Whether the plugin and its config addon, built at install, can be loaded, with the fix when they cannot. */
export function checkXnnpackPlugin(pluginPath = DEFAULT_XNNPACK_PLUGIN_PATH): XnnpackPluginCheck {
  const cached = plugins.get(pluginPath);
  if (cached) return cached;
  const fix = 'It is built by `npm ci`: run `npx node-gyp rebuild --directory agent/runtime/xnnpack-shim` and look for compiler errors (it needs gcc and make).';
  const failed = (check: LoadCheck & { ok: false }): XnnpackPluginCheck => ({ ok: false, reason: `${check.reason}. ${fix}` });
  let result: XnnpackPluginCheck;
  const pluginCheck = checkSharedLibrary(pluginPath);
  if (!pluginCheck.ok) {
    result = failed(pluginCheck);
  } else {
    const addonPath = configAddonPath(pluginPath);
    try {
      const module = { exports: {} } as NodeJS.Module;
      process.dlopen(module, addonPath, os.constants.dlopen.RTLD_NOW);
      const addon = module.exports as ConfigAddon;
      if (typeof addon.stage !== 'function' || typeof addon.lastDelegate !== 'function' || typeof addon.sharedUsers !== 'function') throw new Error('it does not export stage(), lastDelegate() and sharedUsers(): rebuild it');
      result = {
        ok: true,
        plugin: {
          path: pluginPath,
          delegateFor(threads, flags, share) {
            addon.stage(threads, flags, share);
            // No key/value options: the binding cannot pass them intact (see xnnpack-shim/xnnpack_plugin.c).
            return { path: pluginPath, options: [] };
          },
          lastDelegate: () => addon.lastDelegate(),
          sharedUsers: () => addon.sharedUsers(),
        },
      };
    } catch (error) {
      result = failed({ ok: false, reason: `${addonPath} cannot be loaded: ${(error as Error).message}` });
    }
  }
  plugins.set(pluginPath, result);
  return result;
}

let warned = false;

/** Says once per process that the fast path is off and why. */
export function warnXnnpackFallback(reason: string): void {
  if (warned) return;
  warned = true;
  logger.warn(`XNNPACK int8 path unavailable, falling back to the stock TFLite kernels (about 10x slower): ${reason}`);
}

let warnedQu8 = false;

/** Says once per process that XNNPACK refused QU8 kernels, so uint8 layers run on the stock kernels. */
export function warnQu8Refused(label: string, reason: string): void {
  if (warnedQu8) return;
  warnedQu8 = true;
  logger.warn(
    `XNNPACK could not prepare uint8-quantized model ${label} with its QU8 kernels (${reason.replace(/\s+/g, ' ')}); ` +
      'the uint8 layers of this and any other uint8 model run on the stock TFLite kernels, several times slower (the model\'s XNNPACK use reports qu8Refused). ' +
      'The libtensorflowlite_c.so bundled with tfjs-tflite-node 0.0.2 refuses every QU8 convolution: an int8 (full-integer) model runs fast.',
  );
}

/**
 * Interpreter threads when the config says "auto": one core is left to the rest of
 * the loop (decoding, logging, MQTT), up to 4 threads. XNNPACK's workers wait for each
 * other at every layer, so a thread that loses its core to other work stalls all of
 * them; hence not every core. A 4-core Pi gets 3.
 */
export function autoThreadCount(cores = os.availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}
