import type { DeviceProfile } from './device-profiles.js';

export interface FrameEnergyInput {
  /** Measured milliseconds of every segment and head that ran. */
  computeMs: number;
  /** Wall time the frame occupied, compute included (1 / frame rate, or more if compute took longer). */
  frameIntervalMs: number;
  /** Bytes sent for an offload, 0 when the frame stayed local. */
  offloadBytes: number;
  /** Whole-board power from a power monitor (INA219, INA3221...), averaged over the frame, when one is fitted. */
  measuredBoardPowerW?: number;
}

export interface FrameEnergy {
  computeJ: number;
  idleJ: number;
  radioJ: number;
  totalJ: number;
  /** What the frame cost beyond the board idling through it: what a simulated battery is drained by on top of its idle draw. */
  aboveIdleJ: number;
}

/**
 * Joules of one frame. From the device profile: compute time at active power,
 * the rest of the frame interval at idle power, and the radio for offloaded
 * bytes. With a power monitor, its measured board power over the interval
 * replaces the profile's figures (the radio is then already in it).
 */
export function frameEnergy(profile: DeviceProfile, input: FrameEnergyInput): FrameEnergy {
  const intervalS = Math.max(input.frameIntervalMs, input.computeMs) / 1000;
  const computeS = input.computeMs / 1000;
  if (input.measuredBoardPowerW !== undefined) {
    const totalJ = input.measuredBoardPowerW * intervalS;
    const idleJ = Math.min(totalJ, profile.idlePowerW * intervalS);
    return { computeJ: totalJ - idleJ, idleJ, radioJ: 0, totalJ, aboveIdleJ: totalJ - idleJ };
  }
  const computeJ = computeS * profile.activePowerW;
  const idleJ = (intervalS - computeS) * profile.idlePowerW;
  const radioJ = input.offloadBytes > 0 ? radioEnergy(profile, input.offloadBytes) : 0;
  const aboveIdleJ = computeS * Math.max(0, profile.activePowerW - profile.idlePowerW) + radioJ;
  return { computeJ, idleJ, radioJ, totalJ: computeJ + idleJ + radioJ, aboveIdleJ };
}

/** Energy to send `bytes` over the radio, per-message overhead included. */
export function radioEnergy(profile: DeviceProfile, bytes: number): number {
  return profile.radioPerMessageJ + (bytes / profile.radioBytesPerSecond) * profile.radioTxPowerW;
}
