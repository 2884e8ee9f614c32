import type { Clock, FirmwareBridge } from '../../../firmware-bridge/types.js';
import type { AgentConfig } from '../../config/agent-config.js';
import type { ResultPublisher } from '../../events/result-publisher.js';
import type { TemporalReuseSettings } from '../../exit-policy/temporal-reuse.js';
import type { MotionGate } from '../../gate/motion-gate.js';
import { cropToRegion } from '../../preprocess/crop.js';
import type { RgbTarget } from '../../preprocess/image-to-rgb.js';
import type { FrameContext, FrameStage, StageOutcome } from '../frame-context.js';
import type { PipelineStats } from './shared.js';

type GateSettings = AgentConfig['gate'];

export interface PipelineGate {
  detector: MotionGate;
  maxReuseMs: number;
  /** Classify the square around what moved, not the whole frame. */
  cropToMotion: boolean;
  /** Trust an earlier exit that agrees with a confident previous answer after a small change. */
  temporal: TemporalReuseSettings;
}

/** The gate the pipeline runs from the gate's config section; the detector keeps its background across setting changes. */
export function pipelineGate(detector: MotionGate, settings: GateSettings): PipelineGate {
  return { detector, maxReuseMs: settings.maxReuseS * 1000, cropToMotion: settings.cropToMotion, temporal: settings };
}

export interface GateStageOptions {
  gate: PipelineGate | undefined;
  bridge: FirmwareBridge;
  clock: Clock;
  target: RgbTarget;
  stats: PipelineStats;
  results?: Pick<ResultPublisher, 'still'>;
  resultsClock: () => number;
  onMotion: (atMs: number) => void;
}

/**
 * The motion gate: a frame where nothing moved (picture or PIR) keeps the last result, up to
 * the reuse age; one where something did goes on, cropped to what moved when asked. Without
 * a gate every frame goes on.
 */
export class GateStage implements FrameStage {
  readonly name = 'gate';
  /** The motion sensor's edge already acted on. */
  private lastPirEdge: number | undefined;
  /** Agent-clock time of the last frame handed on to the model: a still frame reuses its result only so long. */
  private lastInferenceMs: number | undefined;

  constructor(private readonly options: GateStageOptions) {}

  get gate(): PipelineGate | undefined {
    return this.options.gate;
  }

  /** Turns the gate on, off, or to new settings, from the next frame. */
  reconfigure(gate: PipelineGate | undefined): void {
    this.options.gate = gate;
  }

  process(context: FrameContext): StageOutcome {
    const { gate, clock } = this.options;
    if (!gate) return 'next';
    // Every frame is looked at, so the background keeps up with the scene.
    const reading = gate.detector.observe(context.rgb);
    // A PIR edge since the last frame is motion too: warm bodies can move where the picture barely changes (at night, far off).
    const pirEdge = this.options.bridge.lastMotionAt?.();
    const pirFired = pirEdge !== undefined && pirEdge !== this.lastPirEdge;
    this.lastPirEdge = pirEdge;
    const now = clock.nowMs();
    // A whole-scene change (lights, IR cut, a knock, another image): while it settles nothing is
    // classified and the old label is not let stand as this picture's (counted as skipped, not gated);
    // its first settled frame is classified fresh, whatever the reuse age (sceneChanged: no temporal reuse).
    if (reading.settling) {
      this.options.stats.settling++;
      return 'done';
    }
    context.sceneChanged = reading.sceneChanged;
    context.moved = reading.motion || pirFired;
    context.changedShare = reading.changedShare;
    if (context.moved) this.options.onMotion(now);
    if (reading.region && gate.cropToMotion) context.input = cropToRegion(context.rgb, this.options.target.width, this.options.target.height, reading.region);
    if (!context.moved && !context.sceneChanged && this.lastInferenceMs !== undefined && now - this.lastInferenceMs < gate.maxReuseMs) {
      this.options.stats.gated++;
      this.options.results?.still(this.options.resultsClock());
      return 'done';
    }
    this.lastInferenceMs = now;
    return 'next';
  }
}
