import type { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import type { Offloader } from '../../offload/offloader.js';
import type { FrameContext, FrameStage, StageOutcome } from '../frame-context.js';
import type { PipelineStats } from './shared.js';

/** Sends the frames the deepest allowed exit was unsure of to the offload server: the seam or the image. */
export class OffloadStage implements FrameStage {
  readonly name = 'offload';

  constructor(
    private readonly offloader: Offloader,
    private readonly engine: MultiExitEngine,
    private readonly stats: PipelineStats,
  ) {}

  get serversUp(): number {
    return this.offloader.serversUp;
  }

  get available(): boolean {
    return this.offloader.available;
  }

  process(context: FrameContext): StageOutcome {
    const { result, maxExit } = context;
    context.sent = this.offloader.consider(context.frame, result, this.engine.seamAt(result.exit), maxExit, context.decision?.offloadAllowed ?? true);
    if (context.sent) this.stats.offloaded++;
    return 'next';
  }
}
