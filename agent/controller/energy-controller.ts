import type { OperatingPoint } from '../model-package/manifest.js';
import { operatingLadder } from './operating-ladder.js';

export interface ControllerBounds {
  maxAccuracyDropPoints: number;
  maxTemperatureC: number;
  minBatteryReserve: number;
  minDwellS: number;
}

/** What the controller knows at one moment; any reading may be missing. */
export interface ControllerInputs {
  /** Seconds on the clock the agent runs by (simulated in the simulator). */
  nowS: number;
  stateOfCharge?: number;
  charging?: boolean;
  temperatureC?: number;
  /** The lowest passive trip point of the thermal zones, when the kernel gives one. */
  tripPointC?: number;
  /** Whether an offload server can take frames now (the agent's MQTT link is up). */
  offloadAvailable?: boolean;
  /** The lifetime planner's choice: it replaces the battery side's point and frame rate; heat may still make both cheaper. */
  plan?: { operatingPoint: string; frameRate: number; reason: string };
}

/** Pressure levels, from plenty of energy and headroom to an emergency. */
export const LEVELS = ['relaxed', 'normal', 'saving', 'critical'] as const;
export type Level = (typeof LEVELS)[number];

export interface ControllerDecision {
  level: Level;
  /** The level each side asked for, before the dwell time: the fan follows the thermal one, the alert line the battery one. */
  batteryLevel?: Level;
  thermalLevel?: Level;
  operatingPoint: string;
  maxExit: number;
  frameRate: number;
  offloadAllowed: boolean;
  reason: string;
  /** Whether this decision differs from the one before. */
  changed: boolean;
}

/**
 * State-of-charge and headroom limits of each level, and how far past them a level must recover.
 * On battery the most accurate point is never "relaxed": accuracy beyond balanced is bought with
 * battery life, so it is spent only while charging, when energy is free.
 */
const BATTERY_LEVEL_ABOVE_RESERVE = { saving: 0.3, critical: 0.05 } as const;
const HEADROOM_C = { normal: 10, saving: 5, critical: 1 } as const;
const BATTERY_HYSTERESIS = 0.05;
const THERMAL_HYSTERESIS_C = 3;
/**
 * The board's idle power is most of a frame's energy, so fewer frames per
 * second means fewer frames per charge. Both kinds of pressure therefore move
 * to cheaper operating points first, which also cut the heat of the duty
 * cycle; only a critical temperature lowers the frame rate. At the battery
 * reserve offload stops.
 */
const THERMAL_FRAME_RATE_SHARE: Record<Level, number> = { relaxed: 1, normal: 1, saving: 1, critical: 0.5 };

/** The package's points the accuracy bound allows, cheapest last; throws when none is. */
export function ladderWithin(points: readonly OperatingPoint[], bounds: Pick<ControllerBounds, 'maxAccuracyDropPoints'>): OperatingPoint[] {
  const ladder = operatingLadder(points, bounds.maxAccuracyDropPoints);
  if (ladder.length === 0) throw new RangeError(`controller.maxAccuracyDropPoints ${bounds.maxAccuracyDropPoints}: no operating point of the package is within it`);
  return ladder;
}

/** The fan draws power too: it runs only once the headroom gets small. */
export function fanDutyFor(decision: ControllerDecision): number {
  return { relaxed: 0, normal: 0, saving: 0.5, critical: 1 }[decision.thermalLevel ?? decision.level];
}

function levelIndex(level: Level): number {
  return LEVELS.indexOf(level);
}

/**
 * Maps battery, charging and temperature to an operating point of the
 * package's ladder, the deepest exit, the frame rate and whether offload is
 * allowed. Levels rise as soon as a limit is crossed (at once when it is an
 * emergency, else after the dwell time) and fall back only past a margin and
 * after the dwell time, so the agent does not flap around a threshold.
 */
export class EnergyController {
  private ladder: OperatingPoint[];
  private current: ControllerDecision | undefined;
  private readonly sideChangedAtS = { battery: -Infinity, thermal: -Infinity };

  constructor(
    private readonly points: readonly OperatingPoint[],
    private bounds: ControllerBounds,
    private maxFrameRate: number,
  ) {
    this.ladder = ladderWithin(points, bounds);
  }

  /**
   * Operator bounds changed (over MQTT): they apply from the next decision, and the
   * levels, dwell times and hysteresis reached so far are kept.
   */
  updateBounds(bounds: ControllerBounds, maxFrameRate: number): void {
    this.ladder = ladderWithin(this.points, bounds);
    this.bounds = bounds;
    this.maxFrameRate = maxFrameRate;
  }

  get decision(): ControllerDecision | undefined {
    return this.current;
  }

  private thermalLimitC(inputs: ControllerInputs): number {
    return inputs.tripPointC === undefined ? this.bounds.maxTemperatureC : Math.min(this.bounds.maxTemperatureC, inputs.tripPointC);
  }

  /** The level each reading asks for on its own, with the margin applied when it would mean easing off. */
  private batteryLevel(inputs: ControllerInputs, previous: Level | undefined): { level: Level; why: string } {
    if (inputs.charging) return { level: 'relaxed', why: 'charging' };
    if (inputs.stateOfCharge === undefined) return { level: 'normal', why: 'battery level unknown' };
    const soc = inputs.stateOfCharge;
    const above = soc - this.bounds.minBatteryReserve;
    const margin = (level: Level) => (previous !== undefined && levelIndex(level) < levelIndex(previous) ? BATTERY_HYSTERESIS : 0);
    const pct = `${(soc * 100).toFixed(0)}%`;
    if (above <= BATTERY_LEVEL_ABOVE_RESERVE.critical + margin('saving')) return { level: 'critical', why: `battery ${pct}, at the reserve` };
    if (above <= BATTERY_LEVEL_ABOVE_RESERVE.saving + margin('normal')) return { level: 'saving', why: `battery ${pct}, low` };
    return { level: 'normal', why: `battery ${pct}, discharging` };
  }

  private thermalLevel(inputs: ControllerInputs, previous: Level | undefined): { level: Level; why: string } {
    if (inputs.temperatureC === undefined) return { level: 'normal', why: 'temperature unknown' };
    const limit = this.thermalLimitC(inputs);
    const headroom = limit - inputs.temperatureC;
    const margin = (level: Level) => (previous !== undefined && levelIndex(level) < levelIndex(previous) ? THERMAL_HYSTERESIS_C : 0);
    const where = `${inputs.temperatureC.toFixed(1)} °C, ${headroom.toFixed(1)} °C below the ${limit} °C limit`;
    if (headroom <= HEADROOM_C.critical + margin('saving')) return { level: 'critical', why: `hot: ${where}` };
    if (headroom <= HEADROOM_C.saving + margin('normal')) return { level: 'saving', why: `warm: ${where}` };
    if (headroom <= HEADROOM_C.normal + margin('relaxed')) return { level: 'normal', why: where };
    return { level: 'relaxed', why: where };
  }

  private pointFor(level: Level): OperatingPoint {
    const ladder = this.ladder;
    if (level === 'relaxed') return ladder[0]!;
    if (level === 'normal') return ladder.find((p) => p.name === 'balanced') ?? ladder[Math.floor(ladder.length / 2)]!;
    if (level === 'saving') return ladder[Math.max(0, ladder.length - 2)]!;
    return ladder[ladder.length - 1]!;
  }

  /**
   * A side (battery or thermal) keeps its level for the dwell time after it
   * last changed, unless it escalates to critical, which acts at once.
   */
  private hold(side: 'battery' | 'thermal', wanted: { level: Level; why: string }, nowS: number): { level: Level; why: string } {
    const previous = side === 'battery' ? this.current?.batteryLevel : this.current?.thermalLevel;
    if (previous === wanted.level) return wanted;
    if (previous !== undefined && wanted.level !== 'critical' && nowS - this.sideChangedAtS[side] < this.bounds.minDwellS) {
      return { level: previous, why: `holding ${side} at ${previous} for the ${this.bounds.minDwellS} s dwell time (${wanted.why})` };
    }
    this.sideChangedAtS[side] = nowS;
    return wanted;
  }

  decide(inputs: ControllerInputs): ControllerDecision {
    const battery = this.hold('battery', this.batteryLevel(inputs, this.current?.batteryLevel), inputs.nowS);
    const thermal = this.hold('thermal', this.thermalLevel(inputs, this.current?.thermalLevel), inputs.nowS);
    const wanted = levelIndex(battery.level) >= levelIndex(thermal.level) ? battery : thermal;
    const level = wanted.level;
    // The side that decided first, then the other one, each said once.
    const other = wanted === battery ? thermal : battery;
    const reason = inputs.plan ? `${inputs.plan.reason}; ${thermal.why}` : `${wanted.why}; ${other.why}`;
    const plannedAt = inputs.plan ? this.ladder.findIndex((p) => p.name === inputs.plan!.operatingPoint) : -1;
    // Thermal limits win over the plan: the cheaper of the two points runs.
    const thermalAt = thermal.level === 'saving' || thermal.level === 'critical' ? this.ladder.indexOf(this.pointFor(thermal.level)) : 0;
    const point = plannedAt >= 0 ? this.ladder[Math.max(plannedAt, thermalAt)]! : this.pointFor(level);
    // The radio costs energy the battery cannot spare at its reserve.
    const offloadAllowed = battery.level !== 'critical';
    // Under heat the deepest segments are left to the offload server. Without one, a cut depth
    // would be an uncalibrated point outside the operator's accuracy bound, so the ladder alone cools.
    const depthCut = offloadAllowed && inputs.offloadAvailable ? { relaxed: 0, normal: 0, saving: 1, critical: 2 }[thermal.level] : 0;
    const maxExit = Math.max(0, point.maxExit - depthCut);
    const overheated = inputs.temperatureC !== undefined && inputs.temperatureC >= this.thermalLimitC(inputs);
    const frameRate = Math.min(inputs.plan?.frameRate ?? Infinity, this.maxFrameRate) * THERMAL_FRAME_RATE_SHARE[thermal.level] * (overheated ? 0.5 : 1);
    const decision: ControllerDecision = {
      level,
      batteryLevel: battery.level,
      thermalLevel: thermal.level,
      operatingPoint: point.name,
      maxExit,
      frameRate,
      offloadAllowed,
      reason,
      changed: false,
    };
    const previous = this.current;
    decision.changed =
      !previous ||
      previous.operatingPoint !== decision.operatingPoint ||
      previous.frameRate !== decision.frameRate ||
      previous.offloadAllowed !== decision.offloadAllowed ||
      previous.maxExit !== decision.maxExit;
    this.current = decision;
    return decision;
  }
}
