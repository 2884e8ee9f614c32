import { skippedExits, type ExitPolicy } from '../exit-policy/policy.js';
import { argmax, dequantizeSoftmax } from '../exit-policy/probabilities.js';
import type { HeadEntry } from '../model-package/manifest.js';
import type { ModelPackage } from '../model-package/load.js';
import type { TensorView, TfliteInterpreter } from '../runtime/interpreter.js';
import { SegmentChain, type ChainOptions } from './segment-chain.js';

export interface ExitResult {
  label: number;
  confidence: number;
  /** 0-based exit that answered. */
  exit: number;
  /** Milliseconds of each segment, and of each exit head, up to the exit that answered; 0 for one left out. */
  segmentMs: number[];
  headMs: number[];
  probabilities: Float32Array;
  /**
   * The int8 tensor at the last cut that ran (the output of segment `exit`),
   * which a server resumes from. A view of the interpreter's buffer: valid
   * until the next classify call.
   */
  features: Int8Array;
  /** Whether a server can resume from `features`: false at a glance exit, whose output only it reads. */
  resumable: boolean;
}

export interface AllExitsResult {
  probabilities: Float32Array[];
  segmentMs: number[];
  headMs: number[];
}

/**
 * Runs a multi-exit package frame by frame: segment, exit head, policy, and on
 * to the next segment only when the policy says the exit is not sure enough.
 */
export class MultiExitEngine {
  readonly exits: readonly HeadEntry[];
  /** Exits whose segment only they read (a glance network's): left out when the policy switches them off. */
  readonly branchExits: readonly number[];
  private readonly headInterpreters: TfliteInterpreter[];
  private readonly probabilityBuffers: Float32Array[];

  /** The task's class names, by class index (what the log, MQTT and people see). */
  readonly labels: readonly string[];

  private constructor(readonly chain: SegmentChain, task: string) {
    this.labels = chain.pkg.manifest.labels[task] ?? [];
    const heads = chain.pkg.manifest.heads.filter((h) => h.task === task).sort((a, b) => a.afterSegment - b.afterSegment);
    if (heads.length === 0) throw new RangeError(`Package ${chain.pkg.manifest.name} has no heads for task ${task}`);
    heads.forEach((head, i) => {
      if (head.afterSegment !== i) {
        throw new RangeError(`Package ${chain.pkg.manifest.name}: exit ${i} of task ${task} reads segment ${head.afterSegment}; a multi-exit package has one exit after each segment`);
      }
    });
    this.exits = heads;
    this.branchExits = heads.map((_, i) => i).filter((i) => chain.isBranch(i));
    this.headInterpreters = heads.map((h) => chain.heads.get(h.name)!);
    this.probabilityBuffers = heads.map((h) => new Float32Array(h.output.shape.at(-1)!));
  }

  static fromPackage(pkg: ModelPackage, options: ChainOptions = {}, task?: string): MultiExitEngine {
    const chosenTask = task ?? Object.keys(pkg.manifest.labels)[0]!;
    return new MultiExitEngine(SegmentChain.fromPackage(pkg, options), chosenTask);
  }

  /**
   * Lets the interpreters go. The binding has no delete: its finalizer frees a TFLite
   * interpreter once nothing holds it. The heads are dropped here; the segments go with the
   * chain when the engine itself is dropped (SegmentChain keeps them privately). A classify
   * afterwards throws. Safe to call twice.
   */
  stop(): void {
    this.headInterpreters.length = 0;
    this.chain.heads.clear();
    this.stopped = true;
  }

  private stopped = false;

  get exitCount(): number {
    return this.exits.length;
  }

  /** The backend the segments run on (edgetpu, xnnpack, stock); the heads run on the CPU. */
  get backend(): string {
    return this.chain.backend;
  }

  /** Why a package with Edge TPU segments runs on the CPU here, when it does. */
  get backendNote(): string | undefined {
    return this.chain.backendNote;
  }

  /** The model input, to be written in place before classify(). */
  get input() {
    return this.chain.input;
  }

  private runExit(index: number): { ms: number; probabilities: Float32Array } {
    const ms = this.chain.runHead(this.exits[index]!.name);
    const output = this.headInterpreters[index]!.output();
    const q = output.quantization ?? { scale: 1 / 256, zeroPoint: -128 };
    return { ms, probabilities: dequantizeSoftmax(output.data as Int8Array, q.scale, q.zeroPoint, this.probabilityBuffers[index]) };
  }

  /** Classifies `pixels` (the model input's bytes, e.g. RGB at the package's size), stopping at `maxExit` at the latest. */
  classifyPixels(pixels: Uint8Array, policy: ExitPolicy, maxExit = this.exitCount - 1): ExitResult {
    this.chain.input.data.set(pixels);
    return this.classify(policy, maxExit);
  }

  /** The int8 tensor at the cut after segment `exit`, as the last classify left it: what an offload of the seam sends. */
  seamAt(exit: number): TensorView {
    return this.chain.segments[exit]!.output();
  }

  /** Classifies the frame already written to `input`, stopping at `maxExit` at the latest. */
  classify(policy: ExitPolicy, maxExit = this.exitCount - 1): ExitResult {
    if (this.stopped) throw new Error('the engine is stopped: its interpreters are released');
    if (!Number.isInteger(maxExit) || maxExit < 0 || maxExit >= this.exitCount) {
      throw new RangeError(`maxExit = ${maxExit} is outside [0, ${this.exitCount - 1}]`);
    }
    this.chain.beforeFrame();
    const segmentMs: number[] = [];
    const headMs: number[] = [];
    const history: number[] = [];
    const skipped = this.branchExits.length > 0 ? skippedExits(policy, this.branchExits, maxExit) : [];
    for (let exitIndex = 0; ; exitIndex++) {
      if (skipped.includes(exitIndex)) {
        segmentMs.push(0);
        headMs.push(0);
        continue;
      }
      segmentMs.push(this.chain.runSegment(exitIndex));
      const { ms, probabilities } = this.runExit(exitIndex);
      headMs.push(ms);
      if (exitIndex === maxExit || policy.decide({ exitIndex, probabilities, history })) {
        const label = argmax(probabilities);
        return {
          label,
          confidence: probabilities[label]!,
          exit: exitIndex,
          segmentMs,
          headMs,
          probabilities,
          features: this.chain.segments[exitIndex]!.output().data as Int8Array,
          resumable: exitIndex < this.exitCount - 1 && this.chain.continuesFrom(exitIndex + 1),
        };
      }
      history.push(argmax(probabilities));
    }
  }

  /**
   * Finishes the model from an offloaded seam: `features` is the output of
   * segment `afterSegment` (the int8 tensor at that cut); the rest of the
   * segments and the final exit head run, as the full model would have.
   */
  finishFrom(afterSegment: number, features: Int8Array): { label: number; confidence: number; probabilities: Float32Array; ms: number } {
    const last = this.exitCount - 1;
    if (!Number.isInteger(afterSegment) || afterSegment < 0 || afterSegment > last) {
      throw new RangeError(`afterSegment = ${afterSegment} is outside [0, ${last}]`);
    }
    if (afterSegment < last && !this.chain.continuesFrom(afterSegment + 1)) {
      throw new RangeError(`segment ${afterSegment + 1} reads the image, not segment ${afterSegment}'s output: send the image instead of features`);
    }
    // A seam of the wrong size would leave the previous request's values in the buffer, and answer with them.
    const seam = afterSegment === last ? this.chain.segments[last]!.output() : this.chain.segments[afterSegment + 1]!.input();
    if (seam.data.length !== features.length) {
      throw new RangeError(`the tensor after segment ${afterSegment} has ${seam.data.length} values (shape ${seam.shape.join('x')}); got ${features.length}`);
    }
    let ms = 0;
    if (afterSegment === last) {
      seam.data.set(features);
    } else {
      const next = seam;
      next.data.set(features);
      for (let i = afterSegment + 1; i <= last; i++) {
        // runSegment copies segment i-1's output into segment i; the first resumed one already has its input.
        ms += i === afterSegment + 1 ? this.chain.invokeSegment(i) : this.chain.runSegment(i);
      }
    }
    const exit = this.runExit(last);
    const label = argmax(exit.probabilities);
    return { label, confidence: exit.probabilities[label]!, probabilities: exit.probabilities, ms: ms + exit.ms };
  }

  /** Every segment and every exit head, for evaluation and calibration; probabilities are fresh copies. */
  runAllExits(): AllExitsResult {
    this.chain.beforeFrame();
    const segmentMs: number[] = [];
    const headMs: number[] = [];
    const probabilities: Float32Array[] = [];
    for (let i = 0; i < this.exitCount; i++) {
      segmentMs.push(this.chain.runSegment(i));
      const exit = this.runExit(i);
      headMs.push(exit.ms);
      probabilities.push(Float32Array.from(exit.probabilities));
    }
    return { probabilities, segmentMs, headMs };
  }
}
