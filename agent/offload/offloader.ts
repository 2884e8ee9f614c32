import { randomUUID } from 'node:crypto';
import type { AgentConfig } from '../config/agent-config.js';
import type { DeviceProfile } from '../energy/device-profiles.js';
import { radioEnergy } from '../energy/energy-model.js';
import type { ExitResult } from '../inference/multi-exit-engine.js';
import type { ModelPackage } from '../model-package/load.js';
import type { AgentLink } from '../mqtt/agent-link.js';
import { encodeOffload, type ImageFormat } from '../mqtt/offload-codec.js';
import type { TensorView } from '../runtime/interpreter.js';
import type { Frame } from '../sources/frame-source.js';

function imageFormat(bytes: Buffer): ImageFormat | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return 'png';
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  if (bytes.subarray(8, 12).toString('ascii') === 'WEBP') return 'webp';
  return undefined;
}

export interface OffloadSent {
  requestId: string;
  bytes: number;
  kind: 'features' | 'image';
}

/**
 * Sends a frame to the offload server when the deepest exit the controller
 * allowed was not confident enough and there are deeper segments left: the
 * int8 seam (the server resumes at the next segment) or the image, whichever
 * the config says, or in `auto` whichever costs the radio less. At a glance
 * exit, which is no seam of the full model, only the image will do.
 */
export class Offloader {
  constructor(
    private readonly link: AgentLink,
    private readonly pkg: ModelPackage,
    private config: AgentConfig['offload'],
    private readonly profile: DeviceProfile,
  ) {}

  /** Whether a server can finish frames now: the broker link is up and an offload server says it is online. */
  get available(): boolean {
    return this.serversUp > 0;
  }

  get serversUp(): number {
    return this.link.offloadServers;
  }

  /** Remote config changed the mode or the deadline (the link enforces deadlines). */
  update(config: AgentConfig['offload']): void {
    this.config = config;
    this.link.updateOffload(config);
  }

  consider(frame: Frame, result: ExitResult, seam: TensorView, maxExit: number, allowed: boolean): OffloadSent | undefined {
    const lastExit = this.pkg.manifest.segments.length - 1;
    // At the final exit the server's full model would give the very same answer.
    if (!allowed || !this.config.enabled || result.exit !== maxExit || maxExit >= lastExit || result.confidence >= this.config.minConfidence) return undefined;
    const requestId = randomUUID();
    const common = { requestId, packageName: this.pkg.manifest.name, modelHash: this.pkg.manifest.buildKey };
    const features = () =>
      encodeOffload({
        ...common,
        kind: 'features',
        segment: result.exit + 1,
        dtype: 'int8',
        shape: [...seam.shape],
        scale: seam.quantization!.scale,
        zeroPoint: seam.quantization!.zeroPoint,
        data: Int8Array.from(result.features),
      });
    const format = imageFormat(frame.bytes);
    const image = () => (format ? encodeOffload({ ...common, kind: 'image', format, data: frame.bytes }) : undefined);
    // A glance exit's output is no seam of the full model: only the image lets the server finish it.
    if (!result.resumable && !format) return undefined;
    let kind: 'features' | 'image' = (this.config.mode === 'image' || !result.resumable) && format ? 'image' : 'features';
    let payload = kind === 'image' ? image()! : features();
    if (this.config.mode === 'auto' && format && kind === 'features') {
      const alternative = image()!;
      if (radioEnergy(this.profile, alternative.length) < radioEnergy(this.profile, payload.length)) {
        kind = 'image';
        payload = alternative;
      }
    }
    this.link.offload(requestId, payload);
    return { requestId, bytes: payload.length, kind };
  }
}
