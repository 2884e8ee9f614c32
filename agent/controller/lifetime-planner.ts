import type { DeviceProfile } from '../energy/device-profiles.js';
import type { OperatingPoint } from '../model-package/manifest.js';
import type { PlannerConfig } from '../config/agent-config.js';

/** How long the battery must last: a number of hours, until a clock time, or until charging resumes. */
export type LifetimeTarget = PlannerConfig['target'];

export interface PlannerSettings {
  target: LifetimeTarget;
  /** Lowest validation accuracy a plan may run at, 0..1. */
  minAccuracy: number;
  /** Lowest share of the events longer than the wake latency (a boot) a plan must expect to see, 0..1. */
  minEventRecall: number;
  /** Battery capacity as the planner assumes it; the measured drain corrects it. */
  batteryWh: number;
  /** State of charge kept back at the end of the target. */
  reserve: number;
  /** Power the board draws powered down with its wake-up armed, and its boot; from the device profile unless the operator knows better. */
  offPowerW: number;
  bootS: number;
  bootPowerW: number;
  /** Whether the board may be powered down between awake windows at all. */
  sleep: boolean;
  /** Whether a sleep can end on motion (a PIR through the bridge). Without it only a timer wakes the board. */
  wakeOnMotion: boolean;
  /** Awake this long after the last motion before powering down again. */
  lingerS: number;
  /** Longest sleep, so the device still reports in (telemetry, config changes). */
  maxSleepS: number;
  /** What the activity is expected to be until the agent has seen some. */
  expectedEventsPerHour: number;
  expectedEventS: number;
}

/** What the planner learns while it runs. */
export interface PlannerObservation {
  nowMs: number;
  stateOfCharge?: number;
  charging?: boolean;
  /** Power drawn, from a power monitor: a better drain measurement than the state-of-charge slope. */
  measuredPowerW?: number;
}

export interface DutyCycle {
  /** 0: always on. */
  sleepS: number;
  /** Awake after a timer wake, or after the last motion on a motion wake. */
  awakeS: number;
  wakeOnMotion: boolean;
}

export interface Plan {
  operatingPoint: string;
  frameRate: number;
  duty: DutyCycle;
  /** Hours the plan is expected to last from now, with the measured drain. */
  expectedHours: number;
  /** Hours the target asks for from now. */
  targetHours: number;
  expectedAccuracy: number;
  expectedRecall: number;
  /** Average power the plan draws, as predicted and after the drain correction. */
  expectedPowerW: number;
  /** The measured drain over the predicted one (1 until measured). */
  drainCorrection: number;
  feasible: boolean;
  /** Why this plan, in a sentence; the warning when the target cannot be met. */
  reason: string;
  warning?: string;
}

export interface PlannerInputs {
  profile: DeviceProfile;
  /** The package's operating points the controller may use, most accurate first. */
  ladder: readonly OperatingPoint[];
  maxFrameRate: number;
  /** Device compute time over this machine's (the manifest's latencies are this machine's). */
  computeTimeScale: number;
  /** Cost of looking at a frame the gate lets stand (decode and compare), device ms. */
  gateMsPerFrame: number;
  /** With the motion gate, a still scene is classified once per this long. */
  maxReuseS: number;
}

/** Decoding a frame and running the motion gate on it, on the development machine (the stream bench's figure). */
export const DECODE_AND_GATE_MS = 1.3;

const FRAME_RATE_SHARES = [1, 0.5, 0.25, 0.1];
/** Points this close in accuracy count as equal, and the cheaper one is kept: the difference is below what validation can tell. */
const ACCURACY_TIE = 0.003;
/** A target missed by less than this is met: the plan is re-made long before such a gap matters. */
const TARGET_SLACK_H = 0.25;
/** The target is said to be out of reach only when the best plan falls this much short of it. */
const WARNING_MARGIN = 0.05;
/** Sleep lengths a timer-only duty cycle tries, s. */
const TIMER_SLEEPS_S = [60, 300, 600, 900, 1800, 3600];
/** The drain correction follows the measurement at this weight per re-plan; both readings are noisy. */
const CORRECTION_WEIGHT = 0.3;
/** A state-of-charge slope is trusted over at least this long, and this much change: events come in bursts. */
const MIN_SLOPE_S = 3600;
const MIN_SLOPE_SOC = 0.01;

/** Awake all along sees short events too, and at once: it wins over sleeping whenever it is affordable. */
function wakeLatency(candidate: { duty: DutyCycle }): number {
  return candidate.duty.sleepS === 0 ? 0 : 1;
}

function parseClock(text: string): { h: number; m: number } | undefined {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text);
  if (!match) return undefined;
  const h = Number(match[1]);
  const m = Number(match[2]);
  return h < 24 && m < 60 ? { h, m } : undefined;
}

/** The next time of day "HH:MM" after `nowMs`, or the ISO instant; throws naming the text otherwise. */
export function nextTime(text: string, nowMs: number): number {
  const clock = parseClock(text);
  if (clock) {
    const at = new Date(nowMs);
    at.setHours(clock.h, clock.m, 0, 0);
    if (at.getTime() <= nowMs) at.setDate(at.getDate() + 1);
    return at.getTime();
  }
  const iso = Date.parse(text);
  if (Number.isNaN(iso)) throw new RangeError(`planner target "${text}": give a time of day as HH:MM or an ISO date-time such as 2026-12-24T08:00`);
  return iso;
}

/**
 * Plans how to spend the battery until the operator's target: which operating point, frame
 * rate and duty cycle (awake windows, sleeps, waking on motion) meet it at the best accuracy,
 * above the accuracy and recall floors. Predictions come from the device profile and the
 * package's measured latencies; the measured drain (state-of-charge slope, or a power monitor)
 * corrects them, so a wrong profile, a wrong capacity or a cold battery is planned around.
 */
export class LifetimePlanner {
  private correction = 1;
  private sleepRefused: string | undefined;
  private lastPlan: Plan | undefined;
  private slope: { atMs: number; soc: number; predictedJ: number; lastMs: number } | undefined;
  private chargingSeenAtMs: number | undefined;
  private wasCharging = false;
  private readonly startedMs: number;
  private eventsSeen = 0;
  private eventSecondsSeen = 0;
  private awakeSecondsObserved = 0;

  constructor(
    private settings: PlannerSettings,
    private readonly inputs: PlannerInputs,
    nowMs: number,
  ) {
    this.startedMs = nowMs;
  }

  updateSettings(settings: PlannerSettings): void {
    this.settings = { ...settings, sleep: settings.sleep && this.sleepRefused === undefined };
  }

  /** The board cannot be powered down here (no wake-up mechanism, or it refused): plans stay awake from now on. */
  refuseSleep(reason: string): void {
    this.sleepRefused = reason;
    this.settings = { ...this.settings, sleep: false };
  }

  /** Why the board cannot sleep, once a power-down was refused. */
  get sleepRefusal(): string | undefined {
    return this.sleepRefused;
  }

  get drainCorrection(): number {
    return this.correction;
  }

  get plan(): Plan | undefined {
    return this.lastPlan;
  }

  /** An event the agent saw end (its length), and time spent awake watching: the activity estimate follows them. */
  observeEvent(durationS: number): void {
    this.eventsSeen++;
    this.eventSecondsSeen += durationS;
  }

  observeAwake(seconds: number): void {
    this.awakeSecondsObserved += seconds;
  }

  /** Events an hour and their mean length: the operator's prior until a few hours awake have been watched. */
  activity(): { perHour: number; meanS: number } {
    const priorHours = 2;
    const hours = this.awakeSecondsObserved / 3600;
    const perHour = (this.settings.expectedEventsPerHour * priorHours + this.eventsSeen) / (priorHours + hours);
    const meanS = (this.settings.expectedEventS * 2 + this.eventSecondsSeen) / (2 + this.eventsSeen);
    return { perHour, meanS };
  }

  private targetHours(nowMs: number): number {
    const target = this.settings.target;
    if (target.kind === 'hours') return Math.max(0, target.hours - (nowMs - this.startedMs) / 3.6e6);
    if (target.kind === 'until') return Math.max(0, (nextTime(target.at, nowMs) - nowMs) / 3.6e6);
    if (target.schedule) return (nextTime(target.schedule, nowMs) - nowMs) / 3.6e6;
    // Without a schedule, charging is expected back at the time of day it last started, else in a day.
    if (this.chargingSeenAtMs !== undefined) {
      const seen = new Date(this.chargingSeenAtMs);
      return (nextTime(`${seen.getHours()}:${String(seen.getMinutes()).padStart(2, '0')}`, nowMs) - nowMs) / 3.6e6;
    }
    return 24;
  }

  /** Joules above idle to classify one frame at this point on the device. */
  private frameJ(point: OperatingPoint): number {
    const { profile, computeTimeScale } = this.inputs;
    return ((point.expectedLatencyMs * computeTimeScale) / 1000) * Math.max(0, profile.activePowerW - profile.idlePowerW);
  }

  /** Average board power while awake at this point and frame rate, with the gate letting still frames stand. */
  private awakePowerW(point: OperatingPoint, frameRate: number, motionShare: number): number {
    const { profile, gateMsPerFrame, maxReuseS } = this.inputs;
    const classifiedPerS = frameRate * motionShare + (maxReuseS > 0 ? 1 / maxReuseS : frameRate) * (1 - motionShare);
    const gateW = (frameRate * gateMsPerFrame) / 1000 * Math.max(0, profile.activePowerW - profile.idlePowerW);
    return profile.idlePowerW + classifiedPerS * this.frameJ(point) + gateW;
  }

  /** Average power, and the share of events seen, of one duty cycle. */
  private dutyFigures(duty: DutyCycle, awakeW: number, activity: { perHour: number; meanS: number }): { powerW: number; recall: number } {
    const s = this.settings;
    const bootJ = s.bootS * s.bootPowerW;
    if (duty.sleepS === 0) return { powerW: awakeW, recall: 1 };
    if (duty.wakeOnMotion) {
      // Each event costs a boot and its length plus the linger awake; the rest of the time the board is off,
      // but for a timer wake every maxSleepS so it still reports in.
      const perS = activity.perHour / 3600;
      const eventAwakeS = Math.min(1, perS * (activity.meanS + duty.awakeS));
      const reportsPerS = 1 / duty.sleepS;
      const wakeJPerS = (perS + reportsPerS) * bootJ + reportsPerS * duty.awakeS * awakeW;
      const powerW = eventAwakeS * awakeW + (1 - eventAwakeS) * s.offPowerW + wakeJPerS;
      // Every event that outlasts the boot is seen: the board wakes as it starts.
      return { powerW, recall: 1 };
    }
    const cycleS = duty.sleepS + s.bootS + duty.awakeS;
    const powerW = (duty.sleepS * s.offPowerW + bootJ + duty.awakeS * awakeW) / cycleS;
    // Lengths taken as exponential, an event that outlasts the boot lasts boot + mean on average;
    // it is seen when it overlaps an awake window.
    return { powerW, recall: Math.min(1, (duty.awakeS + s.bootS + activity.meanS) / cycleS) };
  }

  private candidates(): DutyCycle[] {
    const s = this.settings;
    const duties: DutyCycle[] = [{ sleepS: 0, awakeS: 0, wakeOnMotion: false }];
    if (!s.sleep) return duties;
    // Sleeping shorter than a boot's worth of idle energy never saves anything.
    const breakEvenS = (s.bootS * Math.max(0, s.bootPowerW - s.offPowerW)) / Math.max(1e-6, this.inputs.profile.idlePowerW - s.offPowerW);
    if (s.wakeOnMotion) duties.push({ sleepS: s.maxSleepS, awakeS: s.lingerS, wakeOnMotion: true });
    for (const sleepS of TIMER_SLEEPS_S) {
      if (sleepS > s.maxSleepS || sleepS < breakEvenS) continue;
      for (const awakeS of new Set([s.lingerS, 60, 300])) duties.push({ sleepS, awakeS, wakeOnMotion: false });
    }
    return duties;
  }

  /**
   * Moves the drain correction toward the measured drain over the predicted one: a power monitor's
   * reading while always on, else the state of charge's fall over at least MIN_SLOPE_S against the
   * energy the plans in force predicted for the same time.
   */
  private updateCorrection(observation: PlannerObservation): string | undefined {
    const s = this.settings;
    const previous = this.lastPlan;
    const soc = observation.stateOfCharge;
    if (observation.charging || !previous || soc === undefined) {
      this.slope = undefined;
      return undefined;
    }
    const predictedW = previous.expectedPowerW / previous.drainCorrection;
    if (observation.measuredPowerW !== undefined && previous.duty.sleepS === 0) {
      this.correction += CORRECTION_WEIGHT * (observation.measuredPowerW / predictedW - this.correction);
      return `power monitor ${observation.measuredPowerW.toFixed(2)} W against ${predictedW.toFixed(2)} W predicted`;
    }
    if (!this.slope) {
      this.slope = { atMs: observation.nowMs, soc, predictedJ: 0, lastMs: observation.nowMs };
      return undefined;
    }
    this.slope.predictedJ += (predictedW * (observation.nowMs - this.slope.lastMs)) / 1000;
    this.slope.lastMs = observation.nowMs;
    const elapsedS = (observation.nowMs - this.slope.atMs) / 1000;
    const used = this.slope.soc - soc;
    if (elapsedS < MIN_SLOPE_S || used < MIN_SLOPE_SOC || this.slope.predictedJ <= 0) return undefined;
    const measuredJ = used * s.batteryWh * 3600;
    const ratio = measuredJ / this.slope.predictedJ;
    this.correction += CORRECTION_WEIGHT * (ratio - this.correction);
    this.slope = { atMs: observation.nowMs, soc, predictedJ: 0, lastMs: observation.nowMs };
    return `battery fell ${(used * 100).toFixed(1)}% in ${(elapsedS / 60).toFixed(0)} min, ${ratio.toFixed(2)}× what was predicted`;
  }

  /** Plans again from what is known now. */
  replan(observation: PlannerObservation): Plan {
    const s = this.settings;
    if (observation.charging && !this.wasCharging) this.chargingSeenAtMs = observation.nowMs;
    this.wasCharging = observation.charging === true;
    const measured = this.updateCorrection(observation);
    const targetHours = this.targetHours(observation.nowMs);
    const activity = this.activity();
    const motionShare = Math.min(1, (activity.perHour * activity.meanS) / 3600);
    const energyWh = Math.max(0, ((observation.stateOfCharge ?? 1) - s.reserve) * s.batteryWh);
    const floorPoints = this.inputs.ladder.filter((p) => p.validationAccuracy >= s.minAccuracy - 1e-9);
    const points = floorPoints.length > 0 ? floorPoints : this.inputs.ladder.slice(-1);

    type Candidate = Omit<Plan, 'reason' | 'warning' | 'feasible' | 'targetHours' | 'drainCorrection'>;
    const all: Candidate[] = [];
    for (const point of points) {
      for (const share of FRAME_RATE_SHARES) {
        const frameRate = this.inputs.maxFrameRate * share;
        const awakeW = this.awakePowerW(point, frameRate, motionShare);
        for (const duty of this.candidates()) {
          const figures = this.dutyFigures(duty, awakeW, activity);
          const powerW = figures.powerW * this.correction;
          all.push({
            operatingPoint: point.name,
            frameRate,
            duty,
            expectedHours: energyWh / powerW,
            expectedAccuracy: point.validationAccuracy,
            expectedRecall: figures.recall,
            expectedPowerW: powerW,
          });
        }
      }
    }
    // While charging, energy is free: the most accurate point, always on, at the full rate.
    const charging = observation.charging === true;
    const meets = (c: Candidate) => charging || c.expectedHours >= targetHours - TARGET_SLACK_H;
    const withinFloors = all.filter((c) => c.expectedRecall >= s.minEventRecall - 1e-9);
    const affordable = withinFloors.filter(meets);
    const bestAccuracy = Math.max(...affordable.map((c) => c.expectedAccuracy));
    const feasible = affordable
      .filter((c) => c.expectedAccuracy >= bestAccuracy - ACCURACY_TIE)
      .sort((a, b) => b.expectedRecall - a.expectedRecall || wakeLatency(a) - wakeLatency(b) || b.frameRate - a.frameRate || a.expectedPowerW - b.expectedPowerW);
    let chosen: Candidate;
    let warning: string | undefined;
    if (feasible.length > 0) {
      chosen = feasible[0]!;
    } else {
      // Nothing meets the target within the floors: keep the floors and last as long as they allow, and say so now.
      const pool = withinFloors.length > 0 ? withinFloors : all;
      chosen = [...pool].sort((a, b) => b.expectedHours - a.expectedHours)[0]!;
      // A shortfall within the planning error is not worth an alarm: the cheapest plan runs and the next re-plan corrects it.
      if (chosen.expectedHours < targetHours * (1 - WARNING_MARGIN)) warning =
        `the target (${targetHours.toFixed(1)} h) cannot be met above the floors (accuracy ${(s.minAccuracy * 100).toFixed(1)}%, ` +
        `event recall ${(s.minEventRecall * 100).toFixed(0)}%): expect ${chosen.expectedHours.toFixed(1)} h; lower a floor or shorten the target`;
    }
    const duty = chosen.duty;
    const dutyText =
      duty.sleepS === 0 ? 'always on' : duty.wakeOnMotion ? `asleep until motion (reporting every ${duty.sleepS} s), awake ${duty.awakeS} s after it` : `${duty.awakeS} s awake, ${duty.sleepS} s asleep`;
    const why = charging
      ? 'charging, so energy is free'
      : `${chosen.expectedHours.toFixed(1)} h expected for a ${targetHours.toFixed(1)} h target at ${chosen.expectedPowerW.toFixed(2)} W`;
    const plan: Plan = {
      ...chosen,
      targetHours,
      drainCorrection: this.correction,
      feasible: feasible.length > 0,
      reason: `plan ${chosen.operatingPoint} at ${chosen.frameRate} frames/s, ${dutyText}: ${why}${this.correction !== 1 ? ` (drain ×${this.correction.toFixed(2)} as measured${measured ? `: ${measured}` : ''})` : ''}`,
      ...(warning ? { warning } : {}),
    };
    this.lastPlan = plan;
    return plan;
  }
}

/** The planner's settings from its config section and the device profile's sleep and boot figures. */
export function plannerSettings(config: PlannerConfig, profile: DeviceProfile): PlannerSettings {
  return {
    target: config.target,
    minAccuracy: config.minAccuracy,
    minEventRecall: config.minEventRecall,
    batteryWh: config.batteryWh,
    reserve: config.reserve,
    sleep: config.sleep,
    offPowerW: profile.offPowerW,
    bootS: profile.bootS,
    bootPowerW: profile.bootPowerW,
    wakeOnMotion: config.wakeOnMotion,
    lingerS: config.lingerS,
    maxSleepS: config.maxSleepS,
    expectedEventsPerHour: config.expectedEventsPerHour,
    expectedEventS: config.expectedEventS,
  };
}
