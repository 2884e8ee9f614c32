import { monotonicMs } from '../../../firmware-bridge/clock.js';
import type { Clock } from '../../../firmware-bridge/types.js';
import { FramePacer, type FrameSource } from '../../sources/frame-source.js';
import type { FrameContext, FrameStage, StageOutcome } from '../frame-context.js';

/** Waits for the frame's slot at the rate in force, then takes the source's latest frame. */
export class SourceStage implements FrameStage {
  readonly name = 'source';
  private readonly pacer: FramePacer;
  /** Monotonic time of the last frame taken from the source, classified or let stand (health: is the loop alive?); a wall-clock step must not hide a stall. */
  lastFrameAtMs = -Infinity;

  constructor(
    readonly source: FrameSource,
    private readonly clock: Clock,
  ) {
    this.pacer = new FramePacer(() => this.clock.nowMs());
  }

  async process(context: FrameContext): Promise<StageOutcome> {
    await this.clock.wait(this.pacer.delayFor(context.frameRate));
    const frame = await this.source.next();
    if (!frame) return 'end';
    this.lastFrameAtMs = monotonicMs();
    context.frame = frame;
    return 'next';
  }
}
