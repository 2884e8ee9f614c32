import { imageScaleFactor, isBranchSegment, mainChainStart, readsImage } from '../model-package/image-segments.js';
import type { ModelPackage } from '../model-package/load.js';
import { areaDownsample } from '../preprocess/area-downsample.js';
import { TfliteInterpreter, type InterpreterOptions, type TensorView } from '../runtime/interpreter.js';

/**
 * The interpreters of one model package, one per segment and head, created
 * once. Running segment i copies segment i-1's output (the int8 seam) into its
 * input; the binding gives each interpreter its own buffers, so that copy of a
 * few kilobytes is the only one between segments. A segment that reads the
 * image (a glance network ahead of the chain) gets the frame shrunk to its size.
 */
export class SegmentChain {
  /** The segment whose input is the frame at the package's input size. */
  private readonly imageSegment: number;
  private readonly scaleFactors: (number | undefined)[];

  private constructor(
    readonly pkg: ModelPackage,
    readonly segments: TfliteInterpreter[],
    readonly heads: Map<string, TfliteInterpreter>,
  ) {
    const entries = pkg.manifest.segments;
    this.imageSegment = mainChainStart(pkg.manifest);
    this.scaleFactors = entries.map((entry) => (readsImage(entry) ? imageScaleFactor(pkg.manifest.input, entry) : undefined));
  }

  static fromPackage(pkg: ModelPackage, options: InterpreterOptions = {}): SegmentChain {
    const load = (file: string) => TfliteInterpreter.fromBytes(pkg.files.get(file)!, `${pkg.dir}/${file}`, options);
    const segments = pkg.manifest.segments.map((segment) => load(segment.file));
    const heads = new Map(pkg.manifest.heads.map((head) => [head.name, load(head.file)]));
    return new SegmentChain(pkg, segments, heads);
  }

  /** The frame at the package's input size, written in place before a run. */
  get input(): TensorView {
    return this.segments[this.imageSegment]!.input();
  }

  /** Whether only segment i's own exit reads its output (a glance network's end). */
  isBranch(index: number): boolean {
    return isBranchSegment(this.pkg.manifest, index);
  }

  /** Whether segment i reads the previous segment's output, so that a server can resume there from a seam. */
  continuesFrom(index: number): boolean {
    return index > 0 && !readsImage(this.pkg.manifest.segments[index]!);
  }

  /** Runs segment i on the output of segment i-1, or on the frame; returns its ms. */
  runSegment(index: number): number {
    const segment = this.segments[index]!;
    const factor = this.scaleFactors[index];
    if (factor === undefined) {
      segment.input().data.set(this.segments[index - 1]!.output().data);
    } else if (index !== this.imageSegment) {
      // The shrinking is part of what this segment costs.
      const started = performance.now();
      const { width, height } = this.pkg.manifest.input;
      areaDownsample(this.input.data as Uint8Array, width, height, 3, factor, segment.input().data as Uint8Array);
      return performance.now() - started + segment.invoke();
    }
    return segment.invoke();
  }

  /** Runs a head on the output of the segment it reads; returns its ms. */
  runHead(name: string): number {
    const head = this.heads.get(name);
    if (!head) throw new RangeError(`No head named ${name}; the package has ${[...this.heads.keys()].join(', ')}`);
    const entry = this.pkg.manifest.heads.find((h) => h.name === name)!;
    head.input().data.set(this.segments[entry.afterSegment]!.output().data);
    return head.invoke();
  }

  /** The segments on the way to the final exit, then the named head: the monolithic model's computation, in pieces. */
  runToEnd(headName: string): TensorView {
    for (let i = this.imageSegment; i < this.segments.length; i++) this.runSegment(i);
    this.runHead(headName);
    return this.heads.get(headName)!.output();
  }
}
