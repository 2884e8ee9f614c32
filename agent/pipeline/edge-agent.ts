import { fanDutyFor, type EnergyController, type ControllerDecision } from '../controller/energy-controller.js';
import type { DeviceProfile } from '../energy/device-profiles.js';
import { frameEnergy } from '../energy/energy-model.js';
import { createExitPolicy, type ExitPolicy } from '../exit-policy/policy.js';
import type { MultiExitEngine } from '../inference/multi-exit-engine.js';
import { logger } from '../../common/log/logger.js';
import type { OperatingPoint } from '../model-package/manifest.js';
import type { ResultPublisher } from '../events/result-publisher.js';
import type { MotionGate } from '../gate/motion-gate.js';
import { reusedEarlierExit, withTemporalReuse, type PreviousAnswer, type TemporalReuseSettings } from '../exit-policy/temporal-reuse.js';
import { cropToRegion } from '../preprocess/crop.js';
import { encodedImageToRgb, ImageDecodeError, type RgbTarget } from '../preprocess/image-to-rgb.js';
import type { BridgeReading, Clock, EnergySink, FirmwareBridge, WakeReason } from '../../firmware-bridge/types.js';
import type { FrameSource } from '../sources/frame-source.js';
import { FramePacer } from '../sources/frame-source.js';
import { LiveStats } from './live-stats.js';
import type { DutyCycle, LifetimePlanner, Plan } from '../controller/lifetime-planner.js';
import type { Offloader } from '../offload/offloader.js';
import type { LogStore } from '../store/log-store.js';

/** What the agent writes to its local log: the SQLite store, or anything with the same calls. */
export type AgentLog = Pick<LogStore, 'logInference' | 'logControllerDecision' | 'logTelemetry'>;

export interface AgentParts {
  engine: MultiExitEngine;
  source: FrameSource;
  bridge: FirmwareBridge;
  clock: Clock;
  energy: EnergySink;
  /** Device compute time over this machine's: energy accounting scales measured times by it (1 on the device itself). */
  computeTimeScale: number;
  controller: EnergyController | undefined;
  /** Why the controller is not deciding, when it is not (shown in status and telemetry). */
  controllerOffReason?: string;
  /** The static choice when the controller is off. */
  staticPoint: OperatingPoint;
  points: readonly OperatingPoint[];
  profile: DeviceProfile;
  log: AgentLog;
  target: RgbTarget;
  maxFrameRate: number;
  /** How often (agent clock ms) the bridge is read and the controller decides. */
  controlIntervalMs?: number;
  onStatus?: (status: AgentStatus) => void;
  /** Sends frames the deepest allowed exit was unsure of to the offload server. */
  offloader?: Offloader;
  statusIntervalMs?: number;
  /** The motion gate, when on: frames where nothing moved keep the previous result, up to maxReuseMs. */
  gate?: PipelineGate;
  /** Where each frame's conclusion goes: the state, events and snapshots. */
  results?: Pick<ResultPublisher, 'classified' | 'still'>;
  /** Each classified frame's segment times (ms) and exit: /metrics keeps its histograms from them. */
  onSegments?: (segmentMs: readonly number[], exit: number) => void;
  /** The lifetime planner: it sets the controller's point and frame rate, and the duty cycle, to meet a battery-life target. */
  planner?: LifetimePlanner;
  /** How often (agent clock ms) the planner plans again; it also does on every wake. */
  replanEveryMs?: number;
  /** A sleep the plan calls for is due (quiet for its awake time): the app decides whether and how the board goes down. */
  onSleepDue?: (duty: DutyCycle) => Promise<SleepOutcome>;
}

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

export interface PipelineGate {
  detector: MotionGate;
  maxReuseMs: number;
  /** Classify the square around what moved, not the whole frame. */
  cropToMotion: boolean;
  /** Trust an earlier exit that agrees with a confident previous answer after a small change. */
  temporal: TemporalReuseSettings;
}

export interface AgentStatus {
  atMs: number;
  frames: number;
  framesPerSecond: number;
  exitHistogram: number[];
  accuracy: number | undefined;
  stateOfCharge: number | undefined;
  temperatureC: number | undefined;
  operatingPoint: string;
  /** "on", or why the controller is not moving the operating point. */
  controller: string;
  /** What the device concluded last, as "label confidence%" (and who decided, when the server did). */
  state?: string;
  /** The event going on, as "label confidence%"; absent between events. */
  event?: string;
  /** What the MQTT link lacks (a refused login, a topic the broker's ACL denies), with the fix; absent while it works. */
  mqtt?: string;
  frameRate: number;
  skipped: number;
  /** Frames the motion gate let pass without inference: nothing moved, the previous result stood. */
  gated: number;
  /** Frames settled at an earlier exit by temporal exit reuse. */
  reused: number;
  /** Frames the source replaced with newer ones before the agent took them (a stream faster than the agent). */
  dropped: number;
  /** Capture to result (ms) over the latest frames classified. */
  latencyMs?: { p50: number; p95: number };
  offloaded: number;
  /** Offload servers that say they are up; undefined when offload is not configured. */
  offloadServers?: number;
  missingReadings: string[];
  /** Why the board last powered up, when the bridge can tell (a power-management microcontroller). */
  wokeBy?: WakeReason;
  /** The lifetime planner's plan and why. */
  plan?: string;
  /** The target is out of reach above the floors: said early, with the hours now expected. */
  planWarning?: string;
  /** A sleep the plan wants that is held off or cannot be taken, and why. */
  sleep?: string;
  /** What the segments run on: edgetpu, xnnpack or stock (the exit heads always run on the CPU). */
  backend: string;
  /** Why a package with Edge TPU segments runs on the CPU (none found, or it failed mid-run) and when it is looked for again. */
  backendNote?: string;
}

/** The value of the hottest sensor, the one thermal limits are about. */
function hottest(reading: BridgeReading): number | undefined {
  const values = Object.values(reading.temperaturesC);
  return values.length > 0 ? Math.max(...values) : undefined;
}

function lowestPassiveTrip(reading: BridgeReading): number | undefined {
  const trips = Object.values(reading.tripPointsC)
    .flat()
    .filter((t) => t.type === 'passive' || t.type === 'hot')
    .map((t) => t.temperatureC);
  return trips.length > 0 ? Math.min(...trips) : undefined;
}

/**
 * The gateway's main loop: frame, preprocess, multi-exit inference under the
 * controller's operating point, energy accounting, log; the bridge is read and
 * the controller consulted every control interval.
 */
export class EdgeAgent {
  readonly stats: LiveStats;
  private readonly clock: Clock;
  /** Keyed by the point itself, not its name: a remote change makes a new "custom" point under the same name. */
  private readonly policies = new WeakMap<OperatingPoint, ExitPolicy>();
  private readonly pacer: FramePacer;
  private decision: ControllerDecision | undefined;
  private reading: BridgeReading | undefined;
  private lastControlMs = -Infinity;
  private lastStatusMs = -Infinity;
  private stopping = false;
  private warnedMissing = new Set<string>();
  /** Wall-clock time of the last frame taken from the source, classified or let stand (health: is the loop alive?). */
  lastFrameAtMs = -Infinity;
  /** The last frame's answer, for temporal exit reuse. */
  private previousAnswer: PreviousAnswer | undefined;
  /** The motion sensor's edge already acted on. */
  private lastPirEdge: number | undefined;
  /** Agent-clock time of the last frame the model ran on: a gated frame reuses its result only so long. */
  private lastInferenceMs: number | undefined;
  /** Agent-clock times of the last motion (the gate or the PIR), the last wake (or start) and the last plan. */
  private lastMotionMs = -Infinity;
  private awakeSinceMs: number | undefined;
  private lastReplanMs = -Infinity;
  private sleepNote: string | undefined;

  constructor(private readonly parts: AgentParts) {
    this.clock = parts.clock;
    this.stats = new LiveStats(parts.engine.exitCount);
    this.pacer = new FramePacer(() => this.clock.nowMs());
  }

  private policyFor(name: string): { point: OperatingPoint; policy: ExitPolicy } {
    // The static point wins over a listed one of the same name: it carries hand-set thresholds or a maxExit cap, possibly changed live.
    const point = name === this.parts.staticPoint.name ? this.parts.staticPoint : (this.parts.points.find((p) => p.name === name) ?? this.parts.staticPoint);
    let policy = this.policies.get(point);
    if (!policy) {
      policy = createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, this.parts.engine.exitCount);
      this.policies.set(point, policy);
    }
    return { point, policy };
  }

  /** A new static operating point (hand-set thresholds, a pinned point or a depth cap), from the next frame. */
  setStaticPoint(point: OperatingPoint): void {
    this.parts.staticPoint = point;
  }

  /** Turns the motion gate on, off, or to new settings, from the next frame. */
  setGate(gate: PipelineGate | undefined): void {
    this.parts.gate = gate;
  }

  setMaxFrameRate(frameRate: number): void {
    this.parts.maxFrameRate = frameRate;
  }

  /**
   * Hands the operating point to a controller, or takes it away with the reason. The
   * controller keeps its own state (dwell, hysteresis); its next decision is made at once.
   */
  setController(controller: EnergyController | undefined, offReason?: string): void {
    if (controller === this.parts.controller && offReason === this.parts.controllerOffReason) return;
    this.parts.controller = controller;
    this.parts.controllerOffReason = controller ? undefined : offReason;
    this.decision = undefined;
    this.lastControlMs = -Infinity;
  }

  /** Hands the battery-life target to a planner, or takes it away; the next control step plans at once. */
  setPlanner(planner: LifetimePlanner | undefined, replanEveryMs: number): void {
    this.parts.planner = planner;
    this.parts.replanEveryMs = replanEveryMs;
    this.lastReplanMs = -Infinity;
    this.sleepNote = undefined;
  }

  get plan(): Plan | undefined {
    return this.parts.planner?.plan;
  }

  /** Whether a controller is moving the operating point now. */
  get controllerActive(): boolean {
    return this.parts.controller !== undefined;
  }

  /** The firmware bridge's latest reading (battery, power, temperatures). */
  get lastReading(): BridgeReading | undefined {
    return this.reading;
  }

  get currentDecision(): ControllerDecision | undefined {
    return this.decision;
  }

  private async control(nowMs: number): Promise<void> {
    const reading = await this.parts.bridge.read();
    this.reading = reading;
    for (const missing of reading.missing) {
      if (this.warnedMissing.has(missing.reading)) continue;
      this.warnedMissing.add(missing.reading);
      logger.warn(`firmware bridge: no ${missing.reading} (${missing.reason}); the controller goes on without it`);
    }
    const temperatureC = hottest(reading);
    this.parts.log.logTelemetry({
      ...this.timestamps(nowMs),
      batterySoc: reading.stateOfCharge,
      voltageV: reading.voltageV,
      currentA: reading.currentA,
      powerW: reading.powerW,
      charging: reading.charging,
      temperatureC,
      framesPerS: this.stats.framesPerSecond(nowMs),
      // Frames the gate let stand are counted here, not logged one row each.
      extra: { exitHistogram: this.stats.exitHistogram, operatingPoint: this.decision?.operatingPoint ?? this.parts.staticPoint.name, gatedFrames: this.stats.gated, reusedFrames: this.stats.reused },
    });
    if (!this.parts.controller) return;
    const plan = this.replan(nowMs, reading);
    const inputs = {
      nowS: nowMs / 1000,
      stateOfCharge: reading.stateOfCharge,
      charging: reading.charging,
      temperatureC,
      tripPointC: lowestPassiveTrip(reading),
      offloadAvailable: this.parts.offloader?.available ?? false,
      plan: plan && { operatingPoint: plan.operatingPoint, frameRate: plan.frameRate, reason: plan.reason },
    };
    const decision = this.parts.controller.decide(inputs);
    await this.actuate(decision);
    if (decision.changed) {
      this.parts.log.logControllerDecision({ ...this.timestamps(nowMs), ...decision, inputs });
      logger.info({ operatingPoint: decision.operatingPoint, frameRate: decision.frameRate, pressure: decision.level }, `controller: ${decision.reason}`);
    }
    this.decision = decision;
    if (plan) await this.considerSleep(nowMs, plan);
  }

  /** Plans again when the interval has passed (at once after a wake or a new target), from the bridge's reading. */
  private replan(nowMs: number, reading: BridgeReading): Plan | undefined {
    const planner = this.parts.planner;
    if (!planner) return undefined;
    this.awakeSinceMs ??= nowMs;
    if (nowMs - this.lastReplanMs < (this.parts.replanEveryMs ?? 600_000)) return planner.plan;
    if (Number.isFinite(this.lastReplanMs)) planner.observeAwake((nowMs - this.lastReplanMs) / 1000);
    this.lastReplanMs = nowMs;
    const before = planner.plan;
    const plan = planner.replan({
      nowMs,
      stateOfCharge: reading.stateOfCharge,
      charging: reading.charging,
      measuredPowerW: this.parts.energy.measuresBoardPower ? reading.powerW : undefined,
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
    if (duty.sleepS === 0 || !this.parts.onSleepDue || nowMs - quietSince < duty.awakeS * 1000) return;
    const outcome = await this.parts.onSleepDue(duty);
    if (outcome.kind === 'postponed') {
      if (this.sleepNote !== `postponed: ${outcome.why}`) logger.info(`sleep postponed: ${outcome.why}`);
      this.sleepNote = `postponed: ${outcome.why}`;
      return;
    }
    this.sleepNote = undefined;
    if (outcome.kind === 'refused') {
      logger.warn(`planner: the board cannot sleep (${outcome.why}); planning to stay awake`);
      this.parts.planner?.refuseSleep(outcome.why);
      this.lastReplanMs = -Infinity;
    } else if (outcome.kind === 'slept') {
      logger.info(`slept ${outcome.offS.toFixed(0)} s, woken by ${outcome.wokeBy}`);
      this.awakeSinceMs = this.clock.nowMs();
      this.lastReplanMs = -Infinity;
      this.lastControlMs = -Infinity;
    } else {
      this.stop();
    }
  }

  /** The fan follows thermal pressure and the alert line the battery reserve; the LED shows the agent is alive. */
  private async actuate(decision: ControllerDecision): Promise<void> {
    const bridge = this.parts.bridge;
    const fanDuty = fanDutyFor(decision);
    try {
      await bridge.setFan?.(fanDuty);
      await bridge.setLowBatteryAlert?.(decision.batteryLevel === 'critical');
      await bridge.setLed?.(true);
    } catch (error) {
      logger.warn(`firmware bridge actuator failed: ${(error as Error).message}`);
    }
  }

  /** Log rows carry the wall-clock time, and a simulation's own time beside it. */
  private timestamps(clockMs: number): { ts: number; simTs?: number } {
    return this.clock.kind === 'simulated' ? { ts: Date.now(), simTs: clockMs } : { ts: clockMs };
  }

  /** Classifies one frame; false when the source has ended or the agent is stopping. */
  async step(): Promise<boolean> {
    if (this.stopping) return false;
    const now = this.clock.nowMs();
    if (now - this.lastControlMs >= (this.parts.controlIntervalMs ?? 1000)) {
      this.lastControlMs = now;
      await this.control(now);
    }
    const frameRate = this.decision?.frameRate ?? this.parts.maxFrameRate;
    await this.clock.wait(this.pacer.delayFor(frameRate));
    const frame = await this.parts.source.next();
    if (!frame) return false;
    this.lastFrameAtMs = Date.now();
    let rgb: Uint8Array;
    try {
      rgb = frame.pixels ?? (await encodedImageToRgb(frame.bytes, this.parts.target, frame.origin));
      this.parts.engine.input.data.set(rgb);
    } catch (error) {
      if (!(error instanceof ImageDecodeError)) throw error;
      this.stats.skipped++;
      logger.warn(`${error.message} Skipped; the agent goes on with the next frame.`);
      return true;
    }
    let moved = true;
    let changedShare = 1;
    if (this.parts.gate) {
      // Every frame is looked at, so the background keeps up with the scene.
      const reading = this.parts.gate.detector.observe(rgb);
      // A PIR edge since the last frame is motion too: warm bodies can move where the picture barely changes (at night, far off).
      const pirEdge = this.parts.bridge.lastMotionAt?.();
      const pirFired = pirEdge !== undefined && pirEdge !== this.lastPirEdge;
      this.lastPirEdge = pirEdge;
      moved = reading.motion || pirFired;
      if (moved) this.lastMotionMs = this.clock.nowMs();
      changedShare = reading.changedShare;
      if (reading.region && this.parts.gate.cropToMotion) {
        rgb = cropToRegion(rgb, this.parts.target.width, this.parts.target.height, reading.region);
        this.parts.engine.input.data.set(rgb);
      }
      const now = this.clock.nowMs();
      if (!moved && this.lastInferenceMs !== undefined && now - this.lastInferenceMs < this.parts.gate.maxReuseMs) {
        this.stats.gated++;
        this.parts.results?.still(Date.now());
        this.reportStatus(now);
        return true;
      }
    }
    const chosen = this.policyFor(this.decision?.operatingPoint ?? this.parts.staticPoint.name);
    const point = chosen.point;
    const policy = this.parts.gate ? withTemporalReuse(chosen.policy, this.parts.gate.temporal, changedShare, this.previousAnswer) : chosen.policy;
    const maxExit = Math.min(this.decision?.maxExit ?? point.maxExit, point.maxExit);
    const result = this.parts.engine.classify(policy, maxExit);
    if (reusedEarlierExit(policy)) this.stats.reused++;
    this.previousAnswer = { label: result.label, confidence: result.confidence };
    const computeMs = result.segmentMs.reduce((a, b) => a + b, 0) + result.headMs.reduce((a, b) => a + b, 0);
    this.parts.onSegments?.(result.segmentMs, result.exit);
    const sent = this.parts.offloader?.consider(frame, result, this.parts.engine.chain.segments[result.exit]!.output(), maxExit, this.decision?.offloadAllowed ?? true);
    if (sent) this.stats.offloaded++;
    const deviceComputeMs = computeMs * this.parts.computeTimeScale;
    const energy = frameEnergy(this.parts.profile, {
      computeMs: deviceComputeMs,
      frameIntervalMs: 1000 / frameRate,
      offloadBytes: sent?.bytes ?? 0,
      // A simulator's power figure is made from the agent's own reports, so it is not a measurement.
      measuredBoardPowerW: this.parts.energy.measuresBoardPower ? this.reading?.powerW : undefined,
    });
    // A simulated battery draws idle power by itself; it is told only what the work added.
    this.parts.energy.consume(energy.aboveIdleJ);
    const at = this.clock.nowMs();
    this.lastInferenceMs = at;
    // One representation in the log, names: the offload server answers with names too.
    const label = this.parts.engine.labels[result.label] ?? String(result.label);
    const correct = frame.trueLabel === undefined ? undefined : label === frame.trueLabel;
    this.stats.record(result.exit, correct, at);
    this.parts.log.logInference({
      ...this.timestamps(at),
      source: this.parts.source.name,
      frameId: frame.id,
      trueLabel: frame.trueLabel,
      exit: result.exit,
      label,
      confidence: result.confidence,
      policy: policy.name,
      operatingPoint: point.name,
      segmentMs: result.segmentMs,
      totalMs: computeMs,
      energyJ: energy.totalJ,
      batterySoc: this.reading?.stateOfCharge,
      temperatureC: this.reading ? hottest(this.reading) : undefined,
      offloaded: sent !== undefined,
      requestId: sent?.requestId,
    });
    this.stats.recordLatency(Date.now() - frame.capturedAt);
    this.parts.results?.classified({ at: Date.now(), label, confidence: result.confidence, exit: result.exit, motion: moved, rgb, requestId: sent?.requestId });
    this.reportStatus(at);
    return true;
  }

  /** Status goes out on the wall clock: a simulated clock's second can be a few milliseconds, and status is for people and files. */
  private reportStatus(at: number): void {
    const now = performance.now();
    if (this.parts.onStatus && now - this.lastStatusMs >= (this.parts.statusIntervalMs ?? 1000)) {
      this.lastStatusMs = now;
      this.parts.onStatus(this.status(at));
    }
  }

  status(atMs = this.clock.nowMs()): AgentStatus {
    const wokeBy = this.parts.bridge.wakeReason?.();
    return {
      atMs,
      frames: this.stats.frames,
      framesPerSecond: this.stats.framesPerSecond(atMs),
      exitHistogram: [...this.stats.exitHistogram],
      accuracy: this.stats.accuracy(),
      stateOfCharge: this.reading?.stateOfCharge,
      temperatureC: this.reading ? hottest(this.reading) : undefined,
      operatingPoint: this.decision?.operatingPoint ?? this.parts.staticPoint.name,
      controller: this.parts.controller ? 'on' : (this.parts.controllerOffReason ?? 'off'),
      frameRate: this.decision?.frameRate ?? this.parts.maxFrameRate,
      skipped: this.stats.skipped,
      gated: this.stats.gated,
      reused: this.stats.reused,
      dropped: this.parts.source.droppedFrames ?? 0,
      latencyMs: this.stats.latency(),
      offloaded: this.stats.offloaded,
      offloadServers: this.parts.offloader?.serversUp,
      missingReadings: this.reading?.missing.map((m) => m.reading) ?? [],
      ...(wokeBy === undefined ? {} : { wokeBy }),
      ...this.planStatus(),
      backend: this.parts.engine.backend,
      ...(this.parts.engine.backendNote === undefined ? {} : { backendNote: this.parts.engine.backendNote }),
    };
  }

  private planStatus(): Pick<AgentStatus, 'plan' | 'planWarning' | 'sleep'> {
    const plan = this.parts.planner?.plan;
    if (!plan) return {};
    const refusal = this.parts.planner?.sleepRefusal;
    const sleep = this.sleepNote ?? (refusal === undefined ? undefined : `cannot sleep: ${refusal}`);
    return { plan: plan.reason, ...(plan.warning ? { planWarning: plan.warning } : {}), ...(sleep ? { sleep } : {}) };
  }

  /** Runs until the source ends, `stop()` is called, or `until` says so. */
  async run(until: () => boolean = () => false): Promise<void> {
    while (!until() && (await this.step()));
  }

  stop(): void {
    this.stopping = true;
  }
}
