import { letProgressDraw } from '../cli/progress.js';
import path from 'node:path';
import { balancedSubset, readImageFolder } from '../../agent/datasets/image-folder.js';
import { SegmentChain } from '../../agent/inference/segment-chain.js';
import { argmax } from '../../agent/inference/top-k.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter, type TensorView } from '../../agent/runtime/interpreter.js';
import { summarizeTimings, type TimingSummary } from '../stats/summary.js';

export interface ModelBenchOptions {
  pkg: ModelPackage;
  baseModelPath: string;
  sharedDir: string;
  imagesPerClass: number;
  threads: number[];
  onProgress?: (done: number, total: number) => void;
}

export interface VariantResult extends TimingSummary {
  variant: string;
  threads: number;
  catTop1: number;
}

export interface ModelBenchResult {
  images: number;
  results: VariantResult[];
  /** Share of images where the stock and XNNPACK top-1 agree, per thread count. */
  top1AgreementStockVsXnnpack: Record<string, number>;
  /** Images whose chain output equals the monolithic output byte for byte, per thread count. */
  chainIdentical: Record<string, number>;
  ratios: Record<string, number>;
}

interface Variant {
  name: string;
  threads: number;
  /** Writes the image, runs, and returns the final output. */
  run(rgb: Buffer): TensorView;
  times: number[];
  top1: number[];
  outputs: Uint8Array[];
}

function monolithic(name: string, interpreter: TfliteInterpreter): Variant {
  return {
    name,
    threads: interpreter.threads,
    run(rgb) {
      interpreter.input().data.set(rgb);
      interpreter.invoke();
      return interpreter.output();
    },
    times: [],
    top1: [],
    outputs: [],
  };
}

function chained(chain: SegmentChain, head: string, threads: number): Variant {
  return {
    name: 'xnnpack-segment-chain',
    threads,
    run(rgb) {
      chain.input.data.set(rgb);
      return chain.runToEnd(head);
    },
    times: [],
    top1: [],
    outputs: [],
  };
}

/**
 * Stock vs XNNPACK on the monolithic model, and monolithic vs the segment chain,
 * on the same images in one run. Variants take turns image by image (in a
 * rotating order) so that machine noise falls on all of them alike.
 */
export async function runModelBench(options: ModelBenchOptions): Promise<ModelBenchResult> {
  const { pkg } = options;
  const size = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
  const folder = readImageFolder(path.join(options.sharedDir, 'data', 'cifar10', 'test'));
  const files = [path.join(options.sharedDir, 'images', 'cat.bmp'), ...balancedSubset(folder, options.imagesPerClass).map((s) => s.file)];
  const images = await Promise.all(files.map((file) => imageFileToRgb(file, size)));
  const head = pkg.manifest.heads.find((h) => h.afterSegment === pkg.manifest.segments.length - 1)!.name;

  const variants: Variant[] = [];
  for (const threads of options.threads) {
    variants.push(monolithic('stock-monolithic', TfliteInterpreter.fromFile(options.baseModelPath, { backend: 'stock', threads })));
    variants.push(monolithic('xnnpack-monolithic', TfliteInterpreter.fromFile(options.baseModelPath, { backend: 'xnnpack', threads })));
    variants.push(chained(SegmentChain.fromPackage(pkg, { backend: 'xnnpack', threads }), head, threads));
  }
  for (const variant of variants) for (let i = 0; i < 3; i++) variant.run(images[i % images.length]!);

  for (const [imageIndex, rgb] of images.entries()) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(imageIndex + k) % variants.length]!;
      const start = process.hrtime.bigint();
      const output = variant.run(rgb);
      variant.times.push(Number(process.hrtime.bigint() - start) / 1e6);
      variant.top1.push(argmax(output.data));
      variant.outputs.push(Uint8Array.from(output.data as Uint8Array));
    }
    options.onProgress?.(imageIndex + 1, images.length);
    await letProgressDraw();
  }

  const find = (name: string, threads: number) => variants.find((v) => v.name === name && v.threads === threads)!;
  const top1AgreementStockVsXnnpack: Record<string, number> = {};
  const chainIdentical: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  for (const threads of options.threads) {
    const stock = find('stock-monolithic', threads);
    const xnn = find('xnnpack-monolithic', threads);
    const chain = find('xnnpack-segment-chain', threads);
    top1AgreementStockVsXnnpack[`${threads}t`] = stock.top1.filter((label, i) => label === xnn.top1[i]).length / images.length;
    chainIdentical[`${threads}t`] = chain.outputs.filter((out, i) => Buffer.compare(out, xnn.outputs[i]!) === 0).length;
    const stockMs = summarizeTimings(stock.times);
    const xnnMs = summarizeTimings(xnn.times);
    const chainMs = summarizeTimings(chain.times);
    ratios[`xnnpack speed-up over stock, ${threads}t (median)`] = stockMs.medianMs / xnnMs.medianMs;
    ratios[`chain cost over monolithic, ${threads}t (median)`] = chainMs.medianMs / xnnMs.medianMs - 1;
    ratios[`chain cost over monolithic, ${threads}t (mean)`] = chainMs.meanMs / xnnMs.meanMs - 1;
  }
  return {
    images: images.length,
    results: variants.map((v) => ({ variant: v.name, threads: v.threads, catTop1: v.top1[0]!, ...summarizeTimings(v.times) })),
    top1AgreementStockVsXnnpack,
    chainIdentical,
    ratios,
  };
}

export function formatModelBench(result: ModelBenchResult, labels: string[]): string {
  const lines = [
    `Images: ${result.images} (cat.bmp + CIFAR-10 test images resized to the model input), variants interleaved image by image.`,
    '',
    '| variant | threads | median ms | p95 ms | images/s | top-1 on cat.bmp |',
    '| --- | --- | --- | --- | --- | --- |',
    ...result.results.map(
      (r) => `| ${r.variant} | ${r.threads} | ${r.medianMs.toFixed(2)} | ${r.p95Ms.toFixed(2)} | ${r.imagesPerSecond.toFixed(1)} | ${r.catTop1} "${labels[r.catTop1] ?? '?'}" |`,
    ),
    '',
    '| ratio | value |',
    '| --- | --- |',
    ...Object.entries(result.ratios).map(([name, value]) => `| ${name} | ${name.includes('cost') ? `${(value * 100).toFixed(1)}%` : `${value.toFixed(2)}x`} |`),
    ...Object.entries(result.top1AgreementStockVsXnnpack).map(([t, v]) => `| top-1 agreement stock vs XNNPACK, ${t} | ${(v * 100).toFixed(1)}% |`),
    ...Object.entries(result.chainIdentical).map(([t, v]) => `| chain output byte-identical to monolithic, ${t} | ${v}/${result.images} |`),
  ];
  return lines.join('\n');
}
