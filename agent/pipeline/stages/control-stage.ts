import { fanDutyFor, type ControllerDecision, type EnergyController } from '../../controller/energy-controller.js';
import type { DutyCycle, LifetimePlanner, Plan } from '../../controller/lifetime-planner.js';
import type { EnergySink, FirmwareBridge, BridgeReading, Clock, WakeReason } from '../../../firmware-bridge/types.js';
import { logger } from '../../../common/log/logger.js';
import { ClockStepWatcher, describeStep } from '../../../firmware-bridge/clock.js';
import type { FrameContext, FrameStage, StageOutcome } from '../frame-context.js';
import type { AgentLog, PipelineStats } from './shared.js';
import { hottest, logTimestamps } from './shared.js';

/** What came of a sleep the plan called for. */
export type SleepOutcome =
  /** Something must finish first (an offload answer, a config change, a snapshot): asked again at the next control step. */
  | { kind: 'postponed'; why: string }
  /** The board cannot power down here: the planner plans awake from now on. */
  | { kind: 'refused'; why: string }
  /** A simulated board slept and woke in simulated time; the loop goes on. */
  | { kind: 'slept'; offS: number; wokeBy: WakeReason }
  /** A real board is going down: the loop ends, the app stops every part and halts. */
  | { kind: 'halting' };

export interface ControlStageOptions {
  bridge: FirmwareBridge;
  clock: Clock;
  energy: EnergySink;
  log: AgentLog;
  stats: PipelineStats;
  controller: EnergyController | undefined;
  controllerOffReason?: string;
  /** The frame rate when no controller decides. */
  maxFrameRate: number;
  /** How often (agent clock ms) the bridge is read and the controller decides. */
  controlIntervalMs?: number;
  planner?: LifetimePlanner;
  replanEveryMs?: number;
  /** Offload servers up now: the controller offloads only when one is. */
  offloadAvailable: () => boolean;
  /** The operating point's name when no controller decides (telemetry). */
  staticPointName: () => string;
  onSleepDue?: (duty: DutyCycle) => Promise<SleepOutcome>;
}

/** The lowest passive or hot trip point: where the controller must have backed off. */
function lowestPassiveTrip(reading: BridgeReading): number | undefined {
  const trips = Object.values(reading.tripPointsC)
    .flat()
    .filter((t) => t.type === 'passive' || t.type === 'hot')
    .map((t) => t.temperatureC);
  return trips.length > 0 ? Math.min(...trips) : undefined;
}

/**
 * The first stage: every control interval it reads the firmware bridge, logs telemetry,
 * lets the controller (and the lifetime planner through it) pick the operating point and
 * frame rate, drives the fan, LED and alert line, and takes the sleeps the plan calls for.
 * Each frame leaves it with the decision in force.
 */
export class ControlStage implements FrameStage {
  readonly name = 'control';
  private decision: ControllerDecision | undefined;
  private reading: BridgeReading | undefined;
  private lastControlMs = -Infinity;
  private readonly warnedMissing = new Set<string>();
  private lastMotionMs = -Infinity;
  private awakeSinceMs: number | undefined;
  private lastReplanMs = -Infinity;
  private sleepNote: string | undefined;
  private halting = false;
  /** Steps of the wall clock, looked for every control interval: logged, and shown in status and health. */
  private readonly clockSteps = new ClockStepWatcher();

  constructor(private readonly options: ControlStageOptions) {}

  async process(context: FrameContext): Promise<StageOutcome> {
    const now = this.options.clock.nowMs();
    if (now - this.lastControlMs >= (this.options.controlIntervalMs ?? 1000)) {
      this.lastControlMs = now;
      await this.control(now);
    }
    if (this.halting) return 'end';
    context.decision = this.decision;
    context.frameRate = this.frameRate;
    return 'next';
  }

  /** The gate or the PIR saw motion: a sleep waits for a quiet awake time. */
  noteMotion(atMs: number): void {
    this.lastMotionMs = atMs;
  }

  get frameRate(): number {
    return this.decision?.frameRate ?? this.options.maxFrameRate;
  }

  reconfigureFrameRate(maxFrameRate: number): void {
    this.options.maxFrameRate = maxFrameRate;
  }

  /** Hands the operating point to a controller, or takes it away with the reason; the next frame decides at once. */
  reconfigureController(controller: EnergyController | undefined, offReason?: string): void {
    if (controller === this.options.controller && offReason === this.options.controllerOffReason) return;
    this.options.controller = controller;
    this.options.controllerOffReason = controller ? undefined : offReason;
    this.decision = undefined;
    this.lastControlMs = -Infinity;
  }

  /** Hands the battery-life target to a planner, or takes it away; the next control step plans at once. */
  reconfigurePlanner(planner: LifetimePlanner | undefined, replanEveryMs: number): void {
    this.options.planner = planner;
    this.options.replanEveryMs = replanEveryMs;
    this.lastReplanMs = -Infinity;
    this.sleepNote = undefined;
  }

  get controllerActive(): boolean {
    return this.options.controller !== undefined;
  }

  /** "on", or why the controller is not moving the operating point. */
  get controllerState(): string {
    return this.options.controller ? 'on' : (this.options.controllerOffReason ?? 'off');
  }

  get currentDecision(): ControllerDecision | undefined {
    return this.decision;
  }

  get lastReading(): BridgeReading | undefined {
    return this.reading;
  }

  get plan(): Plan | undefined {
    return this.options.planner?.plan;
  }

  planStatus(): { plan?: string; planWarning?: string; sleep?: string } {
    const plan = this.options.planner?.plan;
    if (!plan) return {};
    const refusal = this.options.planner?.sleepRefusal;
    const sleep = this.sleepNote ?? (refusal === undefined ? undefined : `cannot sleep: ${refusal}`);
    return { plan: plan.reason, ...(plan.warning ? { planWarning: plan.warning } : {}), ...(sleep ? { sleep } : {}) };
  }

  /** The latest wall-clock step and how many there were; undefined before the first. */
  get clockStepNote(): string | undefined {
    return this.clockSteps.note;
  }

  private async control(nowMs: number): Promise<void> {
    const { bridge, log, stats, clock } = this.options;
    const step = this.clockSteps.check();
    if (step !== undefined) logger.warn(`${describeStep(step)}: stamps follow it, timing does not (it runs on the monotonic clock)`);
    const reading = await bridge.read();
    this.reading = reading;
    for (const missing of reading.missing) {
      if (this.warnedMissing.has(missing.reading)) continue;
      this.warnedMissing.add(missing.reading);
      logger.warn(`firmware bridge: no ${missing.reading} (${missing.reason}); the controller goes on without it`);
    }
    const temperatureC = hottest(reading);
    log.logTelemetry({
      ...logTimestamps(clock, nowMs),
      batterySoc: reading.stateOfCharge,
      voltageV: reading.voltageV,
      currentA: reading.currentA,
      powerW: reading.powerW,
      charging: reading.charging,
      temperatureC,
      framesPerS: stats.framesPerSecond(nowMs),
      // Frames the gate let stand are counted here, not logged one row each.
      extra: { exitHistogram: stats.exitHistogram, operatingPoint: this.decision?.operatingPoint ?? this.options.staticPointName(), gatedFrames: stats.gated, reusedFrames: stats.reused },
    });
    const controller = this.options.controller;
    if (!controller) return;
    const plan = this.replan(nowMs, reading);
    const inputs = {
      nowS: nowMs / 1000,
      stateOfCharge: reading.stateOfCharge,
      charging: reading.charging,
      temperatureC,
      tripPointC: lowestPassiveTrip(reading),
      offloadAvailable: this.options.offloadAvailable(),
      plan: plan && { operatingPoint: plan.operatingPoint, frameRate: plan.frameRate, reason: plan.reason },
    };
    const decision = controller.decide(inputs);
    await this.actuate(decision);
    if (decision.changed) {
      log.logControllerDecision({ ...logTimestamps(clock, nowMs), ...decision, inputs });
      logger.info({ operatingPoint: decision.operatingPoint, frameRate: decision.frameRate, pressure: decision.level }, `controller: ${decision.reason}`);
    }
    this.decision = decision;
    if (plan) await this.considerSleep(nowMs, plan);
  }

  /** Plans again when the interval has passed (at once after a wake or a new target), from the bridge's reading. */
  private replan(nowMs: number, reading: BridgeReading): Plan | undefined {
    const planner = this.options.planner;
    if (!planner) return undefined;
    this.awakeSinceMs ??= nowMs;
    if (nowMs - this.lastReplanMs < (this.options.replanEveryMs ?? 600_000)) return planner.plan;
    if (Number.isFinite(this.lastReplanMs)) planner.observeAwake((nowMs - this.lastReplanMs) / 1000);
    this.lastReplanMs = nowMs;
    const before = planner.plan;
    const plan = planner.replan({
      // Times of day and the target's start are on the calendar.
      nowMs: this.options.clock.wallMs(),
      stateOfCharge: reading.stateOfCharge,
      charging: reading.charging,
      measuredPowerW: this.options.energy.measuresBoardPower ? reading.powerW : undefined,
    });
    const summary = (p: Plan | undefined) => p && `${p.operatingPoint} ${p.frameRate} ${p.duty.sleepS} ${p.duty.awakeS} ${p.duty.wakeOnMotion}`;
    if (summary(plan) !== summary(before)) logger.info(`planner: ${plan.reason}`);
    if (plan.warning && !before?.warning) logger.warn(`planner: ${plan.warning}`);
    if (!plan.warning && before?.warning) logger.info('planner: the target is within reach again');
    return plan;
  }

  /** Powers down when the plan sleeps and nothing has moved for its awake time. */
  private async considerSleep(nowMs: number, plan: Plan): Promise<void> {
    const duty = plan.duty;
    const quietSince = Math.max(this.lastMotionMs, this.awakeSinceMs ?? nowMs);
    if (duty.sleepS === 0 || !this.options.onSleepDue || nowMs - quietSince < duty.awakeS * 1000) return;
    const outcome = await this.options.onSleepDue(duty);
    if (outcome.kind === 'postponed') {
      if (this.sleepNote !== `postponed: ${outcome.why}`) logger.info(`sleep postponed: ${outcome.why}`);
      this.sleepNote = `postponed: ${outcome.why}`;
      return;
    }
    this.sleepNote = undefined;
    if (outcome.kind === 'refused') {
      logger.warn(`planner: the board cannot sleep (${outcome.why}); planning to stay awake`);
      this.options.planner?.refuseSleep(outcome.why);
      this.lastReplanMs = -Infinity;
    } else if (outcome.kind === 'slept') {
      logger.info(`slept ${outcome.offS.toFixed(0)} s, woken by ${outcome.wokeBy}`);
      this.awakeSinceMs = this.options.clock.nowMs();
      this.lastReplanMs = -Infinity;
      this.lastControlMs = -Infinity;
    } else {
      this.halting = true;
    }
  }

  /** The fan follows thermal pressure and the alert line the battery reserve; the LED shows the agent is alive. */
  private async actuate(decision: ControllerDecision): Promise<void> {
    const bridge = this.options.bridge;
    try {
      await bridge.setFan?.(fanDutyFor(decision));
      await bridge.setLowBatteryAlert?.(decision.batteryLevel === 'critical');
      await bridge.setLed?.(true);
    } catch (error) {
      logger.warn(`firmware bridge actuator failed: ${(error as Error).message}`);
    }
  }
}
