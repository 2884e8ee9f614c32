import type { ControllerDecision } from '../controller/energy-controller.js';
import type { ExitPolicy } from '../exit-policy/policy.js';
import type { ExitResult } from '../inference/multi-exit-engine.js';
import type { OperatingPoint } from '../model-package/manifest.js';
import type { OffloadSent } from '../offload/offloader.js';
import type { Frame } from '../sources/frame-source.js';

/** What a frame's stage decided: hand the frame on, it is finished (classified, let stand or skipped), or the source has ended. */
export type StageOutcome = 'next' | 'done' | 'end';

/** A server's answer to an offloaded frame, by class name (the server answers with names). */
export interface ServerAnswer {
  label: string;
  confidence: number;
  serverMs: number;
}

/**
 * One frame on its way through the stages. Each stage fills the fields it owns and
 * later stages read them; the stage that sets a field is named beside it, and a
 * stage never runs before the ones whose fields it reads.
 */
export class FrameContext {
  /** pacing: the frame rate this frame was paced at. */
  frameRate!: number;
  /** pacing: the controller's decision in force, if a controller decides. */
  decision: ControllerDecision | undefined;
  /** source */
  frame!: Frame;
  /** decode: RGB at the package's input size. */
  rgb!: Uint8Array;
  /** decode, gate: what the model is given (the RGB frame, or the square around what moved). */
  input!: Uint8Array;
  /** gate: whether anything moved (always true without a gate). */
  moved = true;
  /** gate: the share of the frame that changed (1 without a gate). */
  changedShare = 1;
  /** gate: the scene changed as a whole and settled: classify fresh, trust nothing from before. */
  sceneChanged = false;
  /** classify */
  point!: OperatingPoint;
  policy!: ExitPolicy;
  maxExit!: number;
  result!: ExitResult;
  /** classify: the class name (one representation in the log, MQTT and the server's answers). */
  label!: string;
  /** classify: segments and heads, ms on this machine. */
  computeMs!: number;
  /** classify: an earlier exit settled it by agreeing with the previous answer. */
  reused = false;
  /** offload */
  sent: OffloadSent | undefined;
  /** account: agent-clock time the result was reached. */
  at!: number;

  constructor(readonly seq: number) {}
}

/**
 * A step of the frame pipeline. It is given the frame's context and says whether the
 * frame goes on; a server's answer to an offloaded frame comes back to each stage with
 * the context of its frame (undefined when the frame was before this run, e.g. from the outbox).
 */
export interface FrameStage {
  readonly name: string;
  process(context: FrameContext): StageOutcome | Promise<StageOutcome>;
  answered?(requestId: string, answer: ServerAnswer, late: boolean, context: FrameContext | undefined): void;
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
}
