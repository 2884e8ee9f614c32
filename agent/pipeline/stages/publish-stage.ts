import type { ResultPublisher } from '../../events/result-publisher.js';
import type { FrameContext, FrameStage, ServerAnswer, StageOutcome } from '../frame-context.js';

/** The frame's conclusion to the state, events and snapshots; a server's answer in time overrules the device's. */
export class PublishStage implements FrameStage {
  readonly name = 'publish';

  constructor(
    private readonly results: Pick<ResultPublisher, 'classified' | 'serverAnswer'>,
    private readonly finalExit: number,
    private readonly resultsClock: () => number,
  ) {}

  process(context: FrameContext): StageOutcome {
    const { result } = context;
    this.results.classified({ at: this.resultsClock(), label: context.label, confidence: result.confidence, exit: result.exit, motion: context.moved, rgb: context.input, requestId: context.sent?.requestId });
    return 'done';
  }

  answered(requestId: string, answer: ServerAnswer, late: boolean): void {
    if (!late) this.results.serverAnswer(requestId, answer.label, answer.confidence, this.finalExit);
  }
}
