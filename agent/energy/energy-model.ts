import type { DeviceProfile } from './device-profiles.js';

export interface FrameEnergyInput {
  /** Measured milliseconds of every segment and head that ran. */
  computeMs: number;
  /** Wall time the frame occupied, compute included (1 / frame rate, or more if compute took longer). */
  frameIntervalMs: number;
  /** Bytes sent for an offload, 0 when the frame stayed local. */
  offloadBytes: number;
  /** Board power from a power monitor while computing, when one is fitted. */
  measuredActivePowerW?: number;
}

export interface FrameEnergy {
  computeJ: number;
  idleJ: number;
  radioJ: number;
  totalJ: number;
}

/**
 * Joules of one frame: compute time at active power, the rest of the frame
 * interval at idle power, and the radio for offloaded bytes.
 */
export function frameEnergy(profile: DeviceProfile, input: FrameEnergyInput): FrameEnergy {
  const activeW = input.measuredActivePowerW ?? profile.activePowerW;
  const computeS = input.computeMs / 1000;
  const idleS = Math.max(0, input.frameIntervalMs - input.computeMs) / 1000;
  const computeJ = computeS * activeW;
  const idleJ = idleS * profile.idlePowerW;
  const radioJ = input.offloadBytes > 0 ? radioEnergy(profile, input.offloadBytes) : 0;
  return { computeJ, idleJ, radioJ, totalJ: computeJ + idleJ + radioJ };
}

/** Energy to send `bytes` over the radio, per-message overhead included. */
export function radioEnergy(profile: DeviceProfile, bytes: number): number {
  return profile.radioPerMessageJ + (bytes / profile.radioBytesPerSecond) * profile.radioTxPowerW;
}
