// The CPU path: 1 vs 2 threads (in a C harness on the same library and in the
// runtime, before and after the thread fix) and the int8 vs the uint8 MobileNetV2.
// Everything is measured in one run: the runtime's variants take turns invoke by
// invoke in a rotating order, and chunks of the C harness's own interleaved rounds
// alternate with chunks of the runtime's, so that load from the machine's other
// users falls on all of them alike.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SegmentChain } from '../../agent/inference/segment-chain.js';
import { argmax } from '../../agent/inference/top-k.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter, type TensorData } from '../../agent/runtime/interpreter.js';
import { nativeInterpreterClass } from '../../agent/runtime/native-binding.js';
import { checkXnnpackPlugin, xnnpackFlagNames, DEFAULT_XNNPACK_PLUGIN_PATH, XNNPACK_FLAG_QS8 } from '../../agent/runtime/xnnpack-delegate.js';
import { medianOf, quantileOf } from '../stats/summary.js';
import { letProgressDraw } from '../cli/progress.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const HARNESS_SOURCES = [path.join(here, 'native', 'cpu_harness.c'), path.join(here, '..', '..', 'agent', 'runtime', 'xnnpack-shim', 'xnnpack_options.h')];
const HARNESS_BINARY = path.join(here, 'native', 'build', 'cpu_harness');

/** The runtime variants' names, which the tables and the at-a-glance summary look them up by. */
export const CPU_PATH_VARIANTS = {
  int8: 'runtime, int8 model',
  int8Chain: 'runtime, int8 model cut by build-model (segment chain)',
  uint8QU8: 'runtime, uint8 model (QU8 asked)',
  uint8AsInt8: 'runtime, uint8 model cut by build-model (as int8)',
  uint8Stock: 'runtime, uint8 model on the stock kernels',
  keyValueOptions: 'runtime, options as key/value pairs (before the fix)',
  chainShared: 'runtime, CIFAR-10 package at 128x128 (4 segments, 4 heads), one shared thread pool',
  chainOwnPools: 'runtime, CIFAR-10 package at 128x128 (4 segments, 4 heads), a thread pool each (before)',
} as const;

/** Builds the C harness (tools/bench/native/build.sh) when it is missing or older than its sources. */
export function ensureCpuHarness(): string {
  const stale = !fs.existsSync(HARNESS_BINARY) || HARNESS_SOURCES.some((file) => fs.statSync(HARNESS_BINARY).mtimeMs < fs.statSync(file).mtimeMs);
  if (stale) execFileSync(path.join(here, 'native', 'build.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });
  return HARNESS_BINARY;
}

export interface CpuPathOptions {
  int8Model: string;
  uint8Model: string;
  /** The int8 model and the uint8 model cut by build-model (the uint8 one as its int8 form). */
  int8Package: ModelPackage;
  uint8Package: ModelPackage;
  /** A package with many small interpreters (the CIFAR-10 one: 4 segments, 4 heads), run with pools of their own and with one shared pool. */
  chainPackage: ModelPackage;
  catPhoto: string;
  /** Chunks of harness rounds and runtime rounds, taken in turn. */
  chunks: number;
  roundsPerChunk: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Timed {
  name: string;
  threads: number;
  times: number[];
  /** What the XNNPACK delegate was made with, as the plugin reports it. */
  delegate?: string;
  top1?: number;
}

export interface CpuPathResult {
  harness: Timed[];
  runtime: Timed[];
  loadBefore: number[];
  loadAfter: number[];
  cores: number;
}

interface RuntimeVariant extends Timed {
  run(rgb: Uint8Array): TensorData;
  /** Its own input, when it is not the 224x224 cat. */
  input?: Uint8Array;
}

function describe(interpreter: TfliteInterpreter): string {
  const x = interpreter.xnnpack;
  if (!x) return `${interpreter.backend} kernels`;
  return `${x.threads} thread(s), ${x.flags.join('+')}, thread pool ${x.threadpool ? (x.sharedPool ? 'yes, shared' : 'yes') : 'no'}${x.qu8Refused ? ', QU8 asked and refused' : ''}`;
}

function whole(name: string, file: string, backend: 'xnnpack' | 'stock', threads: number): RuntimeVariant {
  const interpreter = TfliteInterpreter.fromFile(file, { backend, threads });
  return {
    name,
    threads,
    times: [],
    delegate: describe(interpreter),
    run(rgb) {
      interpreter.input().data.set(rgb);
      interpreter.invoke();
      return interpreter.output().data;
    },
  };
}

function chain(name: string, pkg: ModelPackage, threads: number, shareXnnpackPool = true): RuntimeVariant {
  const segments = SegmentChain.fromPackage(pkg, { backend: 'xnnpack', threads, shareXnnpackPool });
  const head = pkg.manifest.heads.find((h) => h.afterSegment === pkg.manifest.segments.length - 1)!.name;
  return {
    name,
    threads,
    times: [],
    delegate: describe(segments.segments[0]!),
    run(rgb) {
      segments.input.data.set(rgb);
      return segments.runToEnd(head).data;
    },
  };
}

/**
 * The runtime as it was before the fix: the delegate's options as key/value
 * pairs through the binding, which hands the plugin the last pair under every key.
 */
function keyValueOptions(file: string, threads: number): RuntimeVariant {
  const check = checkXnnpackPlugin(DEFAULT_XNNPACK_PLUGIN_PATH);
  if (!check.ok) throw new Error(check.reason);
  const bytes = fs.readFileSync(file);
  const Native = nativeInterpreterClass();
  const native = new Native(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, {
    threads,
    delegate: { path: DEFAULT_XNNPACK_PLUGIN_PATH, options: [['num_threads', String(threads)], ['flags', String(XNNPACK_FLAG_QS8)]] },
  });
  const made = check.plugin.lastDelegate()!;
  const input = native.getInputs()[0]!.data();
  const output = native.getOutputs()[0]!.data();
  return {
    name: CPU_PATH_VARIANTS.keyValueOptions,
    threads,
    times: [],
    delegate: `${made.threads} thread(s), ${xnnpackFlagNames(made.flags).join('+')}, thread pool ${made.threadpool ? 'yes' : 'no'}`,
    run(rgb) {
      input.set(rgb);
      native.infer();
      return output;
    },
  };
}


export async function runCpuPathBench(options: CpuPathOptions): Promise<CpuPathResult> {
  const loadBefore = os.loadavg();
  const harness = ensureCpuHarness();
  const rgb = await imageFileToRgb(options.catPhoto, { width: 224, height: 224, resize: 'stretch' });

  const runtime: RuntimeVariant[] = [];
  for (const threads of [1, 2]) {
    runtime.push(whole(CPU_PATH_VARIANTS.int8, options.int8Model, 'xnnpack', threads));
    runtime.push(chain(CPU_PATH_VARIANTS.int8Chain, options.int8Package, threads));
    runtime.push(whole(CPU_PATH_VARIANTS.uint8QU8, options.uint8Model, 'xnnpack', threads));
    runtime.push(chain(CPU_PATH_VARIANTS.uint8AsInt8, options.uint8Package, threads));
  }
  const chainInput = options.chainPackage.manifest.input;
  const chainRgb = await imageFileToRgb(options.catPhoto, { width: chainInput.width, height: chainInput.height, resize: 'stretch' });
  for (const variant of [chain(CPU_PATH_VARIANTS.chainShared, options.chainPackage, 1), chain(CPU_PATH_VARIANTS.chainShared, options.chainPackage, 2), chain(CPU_PATH_VARIANTS.chainOwnPools, options.chainPackage, 2, false)]) {
    runtime.push({ ...variant, input: chainRgb });
  }
  runtime.push(keyValueOptions(options.int8Model, 2));
  runtime.push(whole(CPU_PATH_VARIANTS.uint8Stock, options.uint8Model, 'stock', 1));
  for (const variant of runtime) {
    for (let i = 0; i < 3; i++) variant.run(variant.input ?? rgb);
    variant.top1 = argmax(variant.run(variant.input ?? rgb));
  }

  const specs: Array<{ name: string; spec: string }> = [];
  for (const threads of [1, 2]) {
    specs.push({ name: 'C harness, XNNPACK delegate made directly', spec: `xnnpack,${threads},${XNNPACK_FLAG_QS8},${options.int8Model}` });
    specs.push({ name: 'C harness, through the plugin with key/value options', spec: `external,${threads},${XNNPACK_FLAG_QS8},${options.int8Model}` });
    specs.push({ name: 'C harness, stock kernels', spec: `stock,${threads},0,${options.int8Model}` });
  }
  const harnessTimed: Timed[] = specs.map((s) => ({ name: s.name, threads: Number(s.spec.split(',')[1]), times: [] }));

  let round = 0;
  const total = options.chunks * options.roundsPerChunk;
  for (let chunk = 0; chunk < options.chunks; chunk++) {
    const out = execFileSync(
      harness,
      ['--rounds', String(options.roundsPerChunk), '--invokes', '1', '--times', '--plugin', DEFAULT_XNNPACK_PLUGIN_PATH, ...specs.map((s) => s.spec)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    out
      .trim()
      .split('\n')
      .forEach((line, i) => {
        const parsed = JSON.parse(line) as { times: number[]; threadsStarted: number; xnnpackThreadpool: boolean | null };
        const timed = harnessTimed[i]!;
        timed.times.push(...parsed.times);
        const pool = parsed.xnnpackThreadpool === null ? '' : `, XNNPACK thread pool ${parsed.xnnpackThreadpool ? 'yes' : 'no'}`;
        timed.delegate = `${parsed.threadsStarted} OS thread(s) started at creation${pool}`;
      });
    for (let r = 0; r < options.roundsPerChunk; r++, round++) {
      for (let k = 0; k < runtime.length; k++) {
        const variant = runtime[(round + k) % runtime.length]!;
        const start = process.hrtime.bigint();
        variant.run(variant.input ?? rgb);
        variant.times.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      options.onProgress?.(round + 1, total);
      await letProgressDraw();
    }
  }
  return { harness: harnessTimed, runtime, loadBefore, loadAfter: os.loadavg(), cores: os.availableParallelism() };
}

const ms = (times: number[]) => medianOf(times).toFixed(2);
const p10 = (times: number[]) => quantileOf(times, 0.1);
const fastest = (times: number[]) => Math.min(...times);
const cell = (times: number[]) => `${ms(times)} / ${p10(times).toFixed(2)} / ${fastest(times).toFixed(2)}`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

export function formatCpuPathBench(result: CpuPathResult, labels: string[]): { threads: string; uint8: string; load: string } {
  const find = (list: Timed[], name: string, threads: number) => list.find((v) => v.name === name && v.threads === threads);
  const threadRow = (list: Timed[], name: string, oneName = name) => {
    const one = find(list, oneName, 1);
    const two = find(list, name, 2)!;
    const speedUp = one
      ? `${ratio(medianOf(one.times), medianOf(two.times))} / ${ratio(p10(one.times), p10(two.times))} / ${ratio(fastest(one.times), fastest(two.times))}`
      : '–';
    return `| ${name} | ${one ? cell(one.times) : '–'} | ${cell(two.times)} | ${speedUp} | ${two.delegate ?? 'n/a'} |`;
  };
  const threads = [
    '| path, int8 MobileNetV2 224x224 | 1 thread, ms: median / p10 / fastest | 2 threads, ms: median / p10 / fastest | 2-thread speed-up: medians / p10s / fastest | at 2 threads, as reported |',
    '| --- | --- | --- | --- | --- |',
    threadRow(result.harness, 'C harness, XNNPACK delegate made directly'),
    threadRow(result.harness, 'C harness, through the plugin with key/value options'),
    threadRow(result.harness, 'C harness, stock kernels'),
    threadRow(result.runtime, CPU_PATH_VARIANTS.keyValueOptions, CPU_PATH_VARIANTS.int8),
    threadRow(result.runtime, CPU_PATH_VARIANTS.int8),
    threadRow(result.runtime, CPU_PATH_VARIANTS.int8Chain),
    threadRow(result.runtime, CPU_PATH_VARIANTS.chainOwnPools, CPU_PATH_VARIANTS.chainShared),
    threadRow(result.runtime, CPU_PATH_VARIANTS.chainShared),
  ].join('\n');
  const uint8Row = (name: string, threadCount: number) => {
    const v = find(result.runtime, name, threadCount)!;
    const base = find(result.runtime, CPU_PATH_VARIANTS.int8, threadCount)!.times;
    return `| ${name.replace('runtime, ', '')} | ${threadCount} | ${v.delegate} | ${cell(v.times)} | ${ratio(medianOf(v.times), medianOf(base))} / ${ratio(p10(v.times), p10(base))} | ${v.top1} "${labels[v.top1!] ?? '?'}" |`;
  };
  const uint8 = [
    '| model | threads | delegate, as reported | ms: median / p10 / fastest | x the int8 model: medians / p10s | top-1 on cat.bmp |',
    '| --- | --- | --- | --- | --- | --- |',
    ...[1, 2].flatMap((t) => [
      uint8Row(CPU_PATH_VARIANTS.int8, t),
      uint8Row(CPU_PATH_VARIANTS.int8Chain, t),
      uint8Row(CPU_PATH_VARIANTS.uint8QU8, t),
      uint8Row(CPU_PATH_VARIANTS.uint8AsInt8, t),
    ]),
    uint8Row(CPU_PATH_VARIANTS.uint8Stock, 1),
  ].join('\n');
  const load =
    `Load average (1, 5, 15 min) ${result.loadBefore.map((l) => l.toFixed(2)).join(', ')} before and ${result.loadAfter.map((l) => l.toFixed(2)).join(', ')} after, ` +
    `on ${result.cores} cores; ${result.runtime[0]!.times.length} invokes per runtime variant and ${result.harness[0]!.times.length} per harness variant.`;
  return { threads, uint8, load };
}
