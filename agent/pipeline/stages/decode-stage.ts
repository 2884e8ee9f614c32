import { logger } from '../../../common/log/logger.js';
import { encodedImageToRgb, ImageDecodeError, type RgbTarget } from '../../preprocess/image-to-rgb.js';
import type { FrameContext, FrameStage, StageOutcome } from '../frame-context.js';
import type { PipelineStats } from './shared.js';

/** Encoded images to RGB at the package's input size; a stream's frames come decoded. A bad image is skipped, never fatal. */
export class DecodeStage implements FrameStage {
  readonly name = 'decode';

  constructor(
    private readonly target: RgbTarget,
    private readonly stats: PipelineStats,
  ) {}

  async process(context: FrameContext): Promise<StageOutcome> {
    const frame = context.frame;
    try {
      context.rgb = frame.pixels ?? (await encodedImageToRgb(frame.bytes, this.target, frame.origin));
    } catch (error) {
      if (!(error instanceof ImageDecodeError)) throw error;
      this.stats.skipped++;
      logger.warn(`${error.message} Skipped; the agent goes on with the next frame.`);
      return 'done';
    }
    context.input = context.rgb;
    return 'next';
  }
}
