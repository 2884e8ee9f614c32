import { createExitPolicy, type ExitPolicy } from '../../exit-policy/policy.js';
import { reusedEarlierExit, withTemporalReuse, type PreviousAnswer, type TemporalReuseSettings } from '../../exit-policy/temporal-reuse.js';
import type { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import type { OperatingPoint } from '../../model-package/manifest.js';
import type { FrameContext, FrameStage, ServerAnswer, StageOutcome } from '../frame-context.js';
import type { PipelineStats } from './shared.js';

export interface ClassifyStageOptions {
  engine: MultiExitEngine;
  /** The static choice when the controller is off. */
  staticPoint: OperatingPoint;
  points: readonly OperatingPoint[];
  stats: PipelineStats;
  /** Temporal exit reuse's settings while the gate is on (it needs the gate's changed share). */
  temporal: () => TemporalReuseSettings | undefined;
  /** Each classified frame's segment times (ms) and exit: /metrics keeps its histograms from them. */
  onSegments?: (segmentMs: readonly number[], exit: number) => void;
}

/** The multi-exit chain at the operating point in force, stopping at the first exit its policy trusts. */
export class ClassifyStage implements FrameStage {
  readonly name = 'classify';
  /** Keyed by the point itself, not its name: a remote change makes a new "custom" point under the same name. */
  private readonly policies = new WeakMap<OperatingPoint, ExitPolicy>();
  /** The latest answer (the device's, or the server's once it came), for temporal exit reuse. */
  private previousAnswer: PreviousAnswer | undefined;
  private latestSeq = -1;

  constructor(private readonly options: ClassifyStageOptions) {}

  get staticPoint(): OperatingPoint {
    return this.options.staticPoint;
  }

  /** A new static operating point (hand-set thresholds, a pinned point or a depth cap), from the next frame. */
  reconfigure(staticPoint: OperatingPoint): void {
    this.options.staticPoint = staticPoint;
  }

  private policyFor(name: string): { point: OperatingPoint; policy: ExitPolicy } {
    const { staticPoint, points, engine } = this.options;
    // The static point wins over a listed one of the same name: it carries hand-set thresholds or a maxExit cap, possibly changed live.
    const point = name === staticPoint.name ? staticPoint : (points.find((p) => p.name === name) ?? staticPoint);
    let policy = this.policies.get(point);
    if (!policy) {
      policy = createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, engine.exitCount);
      this.policies.set(point, policy);
    }
    return { point, policy };
  }

  process(context: FrameContext): StageOutcome {
    const { engine, stats } = this.options;
    const chosen = this.policyFor(context.decision?.operatingPoint ?? this.options.staticPoint.name);
    const temporal = this.options.temporal();
    // After a whole-scene change nothing from before is trusted.
    const previous = context.sceneChanged ? undefined : this.previousAnswer;
    const policy = temporal ? withTemporalReuse(chosen.policy, temporal, context.changedShare, previous) : chosen.policy;
    const maxExit = Math.min(context.decision?.maxExit ?? chosen.point.maxExit, chosen.point.maxExit);
    const result = engine.classifyPixels(context.input, policy, maxExit);
    context.reused = reusedEarlierExit(policy);
    if (context.reused) stats.reused++;
    this.previousAnswer = { label: result.label, confidence: result.confidence };
    this.latestSeq = context.seq;
    context.point = chosen.point;
    context.policy = policy;
    context.maxExit = maxExit;
    context.result = result;
    context.label = engine.labels[result.label] ?? String(result.label);
    context.computeMs = result.segmentMs.reduce((a, b) => a + b, 0) + result.headMs.reduce((a, b) => a + b, 0);
    this.options.onSegments?.(result.segmentMs, result.exit);
    return 'next';
  }

  /** The server's label for the latest frame is what the next frame's temporal reuse agrees with. */
  answered(_requestId: string, answer: ServerAnswer, late: boolean, context: FrameContext | undefined): void {
    if (late || context?.seq !== this.latestSeq) return;
    const label = this.options.engine.labels.indexOf(answer.label);
    if (label >= 0) this.previousAnswer = { label, confidence: answer.confidence };
  }
}
