import type { ModelPackage } from '../model-package/load.js';
import { TfliteInterpreter, type InterpreterOptions, type TensorView } from '../runtime/interpreter.js';

/**
 * The interpreters of one model package, one per segment and head, created
 * once. Running segment i copies segment i-1's output (the int8 seam) into its
 * input; the binding gives each interpreter its own buffers, so that copy of a
 * few kilobytes is the only one between segments.
 */
export class SegmentChain {
  private constructor(
    readonly pkg: ModelPackage,
    readonly segments: TfliteInterpreter[],
    readonly heads: Map<string, TfliteInterpreter>,
  ) {}

  static fromPackage(pkg: ModelPackage, options: InterpreterOptions = {}): SegmentChain {
    const load = (file: string) => TfliteInterpreter.fromBytes(pkg.files.get(file)!, `${pkg.dir}/${file}`, options);
    const segments = pkg.manifest.segments.map((segment) => load(segment.file));
    const heads = new Map(pkg.manifest.heads.map((head) => [head.name, load(head.file)]));
    return new SegmentChain(pkg, segments, heads);
  }

  get input(): TensorView {
    return this.segments[0]!.input();
  }

  /** Runs segment i on the output of segment i-1 (or on the input for i = 0); returns its ms. */
  runSegment(index: number): number {
    const segment = this.segments[index]!;
    if (index > 0) segment.input().data.set(this.segments[index - 1]!.output().data);
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

  /** Every segment, then the named head: the monolithic model's computation, in pieces. */
  runToEnd(headName: string): TensorView {
    for (let i = 0; i < this.segments.length; i++) this.runSegment(i);
    this.runHead(headName);
    return this.heads.get(headName)!.output();
  }
}
