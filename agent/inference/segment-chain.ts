import { logger } from '../../common/log/logger.js';
import { imageScaleFactor, isBranchSegment, mainChainStart, readsImage } from '../model-package/image-segments.js';
import type { ModelPackage } from '../model-package/load.js';
import { areaDownsample } from '../preprocess/area-downsample.js';
import { BackoffSchedule, type BackoffBounds } from '../../common/retry/backoff-schedule.js';
import { ModelLoadError } from '../runtime/errors.js';
import { TfliteInterpreter, type Backend, type InterpreterOptions, type TensorView } from '../runtime/interpreter.js';
import { cpuOptions, loadCpuSegments, loadEdgeTpuSegments, mayUseEdgeTpu } from './edgetpu-segments.js';

export interface ChainOptions extends InterpreterOptions {
  /** How soon a lost (or absent) Edge TPU is looked for again, doubling up to the max. */
  edgetpuProbe?: BackoffBounds;
  now?: () => number;
}

/** A minute after the Edge TPU is lost, then less and less often, up to every 10 minutes. */
export const EDGETPU_PROBE_BACKOFF: BackoffBounds = { minMs: 60_000, maxMs: 600_000 };
/** Frames the Edge TPU must run without failing before the probe schedule starts again from its shortest delay. */
const STEADY_TPU_FRAMES = 1000;

/** Copies every input of one set of segment interpreters into the other's (the frame and the seams). */
function copyInputs(from: readonly TfliteInterpreter[], to: readonly TfliteInterpreter[]): void {
  from.forEach((segment, i) => segment.inputs.forEach((tensor, j) => to[i]!.inputs[j]!.data.set(tensor.data)));
}

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
  /** The segments that run: the Edge TPU variants while they work, else the CPU ones. */
  private active: TfliteInterpreter[];
  private cpu: TfliteInterpreter[] | undefined;
  private onTpu: boolean;
  /** Why the segments run on the CPU although the package has Edge TPU variants; undefined on the TPU or without variants. */
  private why: string | undefined;
  private readonly probe: BackoffSchedule | undefined;
  private nextProbeAt = Infinity;
  private tpuFrames = 0;
  private readonly now: () => number;

  private constructor(
    readonly pkg: ModelPackage,
    segments: { tpu: TfliteInterpreter[] } | { cpu: TfliteInterpreter[]; why: string | undefined },
    readonly heads: Map<string, TfliteInterpreter>,
    private readonly options: ChainOptions,
  ) {
    const entries = pkg.manifest.segments;
    this.imageSegment = mainChainStart(pkg.manifest);
    this.scaleFactors = entries.map((entry) => (readsImage(entry) ? imageScaleFactor(pkg.manifest.input, entry) : undefined));
    this.now = options.now ?? Date.now;
    this.onTpu = 'tpu' in segments;
    this.active = 'tpu' in segments ? segments.tpu : segments.cpu;
    this.cpu = 'cpu' in segments ? segments.cpu : undefined;
    this.why = 'why' in segments ? segments.why : undefined;
    if (mayUseEdgeTpu(pkg, options)) {
      this.probe = new BackoffSchedule(options.edgetpuProbe ?? EDGETPU_PROBE_BACKOFF);
      if (!this.onTpu) this.scheduleProbe();
    }
  }

  /**
   * The package's interpreters. Segments run on the Edge TPU variants when the
   * package has them, the backend allows it (auto or edgetpu) and a usable Coral
   * device is here; otherwise on the CPU variants, and with `backend: edgetpu`
   * the reason is an error.
   */
  static fromPackage(pkg: ModelPackage, options: ChainOptions = {}): SegmentChain {
    const heads = new Map(pkg.manifest.heads.map((head) => [head.name, TfliteInterpreter.fromBytes(pkg.files.get(head.file)!, `${pkg.dir}/${head.file}`, cpuOptions(options))]));
    if (!mayUseEdgeTpu(pkg, options)) {
      if (options.backend === 'edgetpu') {
        throw new ModelLoadError(`Package ${pkg.dir} has no Edge TPU variants: build it with \`edge-exit build-model --edgetpu\` on a host with edgetpu_compiler, or use backend "auto".`);
      }
      return new SegmentChain(pkg, { cpu: loadCpuSegments(pkg, options), why: undefined }, heads, options);
    }
    const tpu = loadEdgeTpuSegments(pkg, options);
    if (tpu.segments) return new SegmentChain(pkg, { tpu: tpu.segments }, heads, options);
    if (options.backend === 'edgetpu') throw new ModelLoadError(`Backend "edgetpu" was asked for, but ${tpu.reason}.`);
    logger.info(`package ${pkg.manifest.name} has Edge TPU segments, but ${tpu.reason}: its CPU segments run`);
    return new SegmentChain(pkg, { cpu: loadCpuSegments(pkg, options), why: tpu.reason }, heads, options);
  }

  get segments(): readonly TfliteInterpreter[] {
    return this.active;
  }

  /** What the segments run on: edgetpu, or the CPU backend (xnnpack, stock). */
  get backend(): Backend {
    return this.onTpu ? 'edgetpu' : (this.active[0]?.backend ?? 'xnnpack');
  }

  /** Why a package with Edge TPU variants runs on the CPU, and when the TPU is looked for again. */
  get backendNote(): string | undefined {
    if (this.onTpu || this.why === undefined) return undefined;
    const inS = Math.max(0, Math.round((this.nextProbeAt - this.now()) / 1000));
    return `${this.why}; looked for again in ${inS} s`;
  }

  /** Before a frame: at the probe's time, the Edge TPU is tried again and, if it loads, runs from this frame on. */
  beforeFrame(): void {
    if (this.onTpu) {
      this.tpuFrames += 1;
      if (this.tpuFrames === STEADY_TPU_FRAMES) this.probe?.reset();
      return;
    }
    if (!this.probe || this.now() < this.nextProbeAt) return;
    const tpu = loadEdgeTpuSegments(this.pkg, this.options);
    if (!tpu.segments) {
      this.why = tpu.reason;
      this.scheduleProbe();
      return;
    }
    // The frame may already be written to the CPU segment's input.
    copyInputs(this.active, tpu.segments);
    this.active = tpu.segments;
    this.onTpu = true;
    this.why = undefined;
    this.tpuFrames = 0;
    logger.info(`Edge TPU found: package ${this.pkg.manifest.name}'s segments run on it again`);
  }

  /** The next look waits the schedule's delay, and the one after it longer, until the TPU has run steadily again. */
  private scheduleProbe(): void {
    this.nextProbeAt = this.now() + this.probe!.current();
    this.probe!.lengthen();
  }

  /**
   * The Edge TPU failed mid-frame (an invoke error, a USB accelerator pulled
   * out): the CPU variants take over with the same inputs, so the frame and the
   * ones after it go on, and the TPU is looked for again after a backoff.
   */
  private fallBack(error: unknown): void {
    this.cpu ??= loadCpuSegments(this.pkg, this.options);
    copyInputs(this.active, this.cpu);
    this.active = this.cpu;
    this.onTpu = false;
    this.why = `the Edge TPU failed: ${(error as Error).message.split('\n')[0]}`;
    this.scheduleProbe();
    logger.warn(`${this.why}. Segments run on the CPU (${this.active[0]!.backend}) from this frame on; the Edge TPU is looked for again in ${Math.round((this.nextProbeAt - this.now()) / 1000)} s`);
  }

  /** Invokes segment i as its input stands; on the Edge TPU, a failure moves the chain to the CPU and runs it there. */
  invokeSegment(index: number): number {
    if (!this.onTpu) return this.active[index]!.invoke();
    try {
      return this.active[index]!.invoke();
    } catch (error) {
      this.fallBack(error);
      return this.active[index]!.invoke();
    }
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
      return performance.now() - started + this.invokeSegment(index);
    }
    return this.invokeSegment(index);
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
