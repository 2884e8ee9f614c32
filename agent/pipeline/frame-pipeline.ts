import type { EnergyController, ControllerDecision } from '../controller/energy-controller.js';
import type { DutyCycle, LifetimePlanner, Plan } from '../controller/lifetime-planner.js';
import type { DeviceProfile } from '../energy/device-profiles.js';
import type { ResultPublisher } from '../events/result-publisher.js';
import type { MultiExitEngine } from '../inference/multi-exit-engine.js';
import type { OperatingPoint } from '../model-package/manifest.js';
import type { Offloader } from '../offload/offloader.js';
import type { RgbTarget } from '../preprocess/image-to-rgb.js';
import type { FrameSource } from '../sources/frame-source.js';
import { monotonicMs } from '../../firmware-bridge/clock.js';
import type { BridgeReading, Clock, EnergySink, FirmwareBridge, WakeReason } from '../../firmware-bridge/types.js';
import { FrameContext, type FrameStage, type ServerAnswer } from './frame-context.js';
import { LiveStats } from './live-stats.js';
import { AccountStage } from './stages/account-stage.js';
import { ClassifyStage } from './stages/classify-stage.js';
import { ControlStage, type SleepOutcome } from './stages/control-stage.js';
import { DecodeStage } from './stages/decode-stage.js';
import { GateStage, type PipelineGate } from './stages/gate-stage.js';
import { OffloadStage } from './stages/offload-stage.js';
import { PublishStage } from './stages/publish-stage.js';
import { hottest, type AgentLog } from './stages/shared.js';
import { SourceStage } from './stages/source-stage.js';

export type { AgentLog } from './stages/shared.js';
export type { SleepOutcome } from './stages/control-stage.js';
export type { PipelineGate } from './stages/gate-stage.js';

export interface PipelineParts {
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
  results?: Pick<ResultPublisher, 'classified' | 'still' | 'serverAnswer'>;
  /** Each classified frame's segment times (ms) and exit: /metrics keeps its histograms from them. */
  onSegments?: (segmentMs: readonly number[], exit: number) => void;
  /** The lifetime planner: it sets the controller's point and frame rate, and the duty cycle, to meet a battery-life target. */
  planner?: LifetimePlanner;
  /** How often (agent clock ms) the planner plans again; it also does on every wake. */
  replanEveryMs?: number;
  /** A sleep the plan calls for is due (quiet for its awake time): the app decides whether and how the board goes down. */
  onSleepDue?: (duty: DutyCycle) => Promise<SleepOutcome>;
  /**
   * The time results (state, events, snapshots) are timed by: the monotonic clock on a gateway (the
   * publisher stamps them with the wall clock). A benchmark replaying a recorded scene faster than real
   * time gives scene time, so events keep its timing.
   */
  resultsClock?: () => number;
  /** Each frame's context once the chain is done with it (benchmarks and tests watch frames go by). */
  onFrame?: (context: FrameContext) => void;
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
  /** Frames after a whole-scene change (lights, a knock, an IR-cut switch) while the picture settled. */
  settling: number;
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
  /** The latest step of the wall clock (NTP, an operator) and how many there were; absent before the first. */
  clockSteps?: string;
  /** What the segments run on: edgetpu, xnnpack or stock (the exit heads always run on the CPU). */
  backend: string;
  /** Why a package with Edge TPU segments runs on the CPU (none found, or it failed mid-run) and when it is looked for again. */
  backendNote?: string;
}

/** Offloaded frames whose answer may still come, kept so that it re-enters with its frame's context. */
const ANSWERS_AWAITED = 512;

/**
 * The gateway's frame pipeline: each frame's context flows once through a chain of stages,
 * control → source → decode → gate → classify → offload → account → publish, and any stage
 * may finish it (a still frame at the gate, a bad image at decode). A server's answer to an
 * offloaded frame re-enters the stages with its frame's context.
 */
export class FramePipeline {
  readonly stats: LiveStats;
  readonly stages: readonly FrameStage[];
  private readonly control: ControlStage;
  private readonly sourceStage: SourceStage;
  private readonly gateStage: GateStage;
  private readonly classifyStage: ClassifyStage;
  private readonly offloadStage: OffloadStage | undefined;
  private readonly awaited = new Map<string, FrameContext>();
  private lastStatusMs = -Infinity;
  private stopping = false;
  private seq = 0;

  constructor(private readonly parts: PipelineParts) {
    const { engine, clock, bridge } = parts;
    this.stats = new LiveStats(engine.exitCount);
    const stats = this.stats;
    const resultsClock = parts.resultsClock ?? monotonicMs;
    this.offloadStage = parts.offloader && new OffloadStage(parts.offloader, engine, stats);
    this.control = new ControlStage({
      bridge,
      clock,
      energy: parts.energy,
      log: parts.log,
      stats,
      controller: parts.controller,
      controllerOffReason: parts.controllerOffReason,
      maxFrameRate: parts.maxFrameRate,
      controlIntervalMs: parts.controlIntervalMs,
      planner: parts.planner,
      replanEveryMs: parts.replanEveryMs,
      offloadAvailable: () => this.offloadStage?.available ?? false,
      staticPointName: () => this.classifyStage.staticPoint.name,
      onSleepDue: parts.onSleepDue,
    });
    this.sourceStage = new SourceStage(parts.source, clock);
    this.gateStage = new GateStage({ gate: parts.gate, bridge, clock, target: parts.target, stats, results: parts.results, resultsClock, onMotion: (at) => this.control.noteMotion(at) });
    this.classifyStage = new ClassifyStage({ engine, staticPoint: parts.staticPoint, points: parts.points, stats, temporal: () => this.gateStage.gate?.temporal, onSegments: parts.onSegments });
    const account = new AccountStage({
      clock,
      energy: parts.energy,
      profile: parts.profile,
      computeTimeScale: parts.computeTimeScale,
      log: parts.log,
      stats,
      sourceName: parts.source.name,
      reading: () => this.control.lastReading,
    });
    this.stages = [
      this.control,
      this.sourceStage,
      new DecodeStage(parts.target, stats),
      this.gateStage,
      this.classifyStage,
      ...(this.offloadStage ? [this.offloadStage] : []),
      account,
      ...(parts.results ? [new PublishStage(parts.results, engine.exitCount - 1, resultsClock)] : []),
    ];
  }

  /** Takes one frame through the chain; false when the source has ended or the pipeline is stopping. */
  async step(): Promise<boolean> {
    if (this.stopping) return false;
    const context = new FrameContext(this.seq++);
    for (const stage of this.stages) {
      const outcome = await stage.process(context);
      if (outcome === 'end') return false;
      if (outcome === 'done') break;
    }
    if (context.sent) this.await(context);
    this.parts.onFrame?.(context);
    this.reportStatus();
    return true;
  }

  private await(context: FrameContext): void {
    this.awaited.set(context.sent!.requestId, context);
    // The oldest first: an answer that never came stops being awaited once the window has moved on.
    if (this.awaited.size > ANSWERS_AWAITED) this.awaited.delete(this.awaited.keys().next().value!);
  }

  /** A server's answer to an offloaded frame: every stage sees it with its frame's context (late: it came after the deadline). */
  serverAnswer(requestId: string, answer: ServerAnswer, late: boolean): void {
    const context = this.awaited.get(requestId);
    this.awaited.delete(requestId);
    for (const stage of this.stages) stage.answered?.(requestId, answer, late, context);
  }

  /** Runs until the source ends, `stop()` is called, or `until` says so. */
  async run(until: () => boolean = () => false): Promise<void> {
    while (!until() && (await this.step()));
  }

  async start(): Promise<void> {
    for (const stage of this.stages) await stage.start?.();
  }

  /** Ends the run after the frame in hand; the stages stop in reverse order. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const stage of [...this.stages].reverse()) await stage.stop?.();
  }

  // What the app's live config changes reach: each goes to the stage that owns it.

  setStaticPoint(point: OperatingPoint): void {
    this.classifyStage.reconfigure(point);
  }

  setGate(gate: PipelineGate | undefined): void {
    this.gateStage.reconfigure(gate);
  }

  setMaxFrameRate(frameRate: number): void {
    this.control.reconfigureFrameRate(frameRate);
  }

  setController(controller: EnergyController | undefined, offReason?: string): void {
    this.control.reconfigureController(controller, offReason);
  }

  setPlanner(planner: LifetimePlanner | undefined, replanEveryMs: number): void {
    this.control.reconfigurePlanner(planner, replanEveryMs);
  }

  get plan(): Plan | undefined {
    return this.control.plan;
  }

  get controllerActive(): boolean {
    return this.control.controllerActive;
  }

  get lastReading(): BridgeReading | undefined {
    return this.control.lastReading;
  }

  get currentDecision(): ControllerDecision | undefined {
    return this.control.currentDecision;
  }

  /** The latest step of the wall clock and how many there were (status, health); undefined before the first. */
  get clockStepNote(): string | undefined {
    return this.control.clockStepNote;
  }

  /** Monotonic time (monotonicMs) of the last frame taken from the source (health: is the loop alive?). */
  get lastFrameAtMs(): number {
    return this.sourceStage.lastFrameAtMs;
  }

  /** Status goes out on the wall clock: a simulated clock's second can be a few milliseconds, and status is for people and files. */
  private reportStatus(): void {
    const now = performance.now();
    if (this.parts.onStatus && now - this.lastStatusMs >= (this.parts.statusIntervalMs ?? 1000)) {
      this.lastStatusMs = now;
      this.parts.onStatus(this.status());
    }
  }

  status(atMs = this.parts.clock.nowMs()): AgentStatus {
    const reading = this.control.lastReading;
    const decision = this.control.currentDecision;
    const wokeBy = this.parts.bridge.wakeReason?.();
    const clockSteps = this.clockStepNote;
    const { engine } = this.parts;
    return {
      atMs,
      frames: this.stats.frames,
      framesPerSecond: this.stats.framesPerSecond(atMs),
      exitHistogram: [...this.stats.exitHistogram],
      accuracy: this.stats.accuracy(),
      stateOfCharge: reading?.stateOfCharge,
      temperatureC: reading ? hottest(reading) : undefined,
      operatingPoint: decision?.operatingPoint ?? this.classifyStage.staticPoint.name,
      controller: this.control.controllerState,
      frameRate: this.control.frameRate,
      skipped: this.stats.skipped,
      settling: this.stats.settling,
      gated: this.stats.gated,
      reused: this.stats.reused,
      dropped: this.parts.source.droppedFrames ?? 0,
      latencyMs: this.stats.latency(),
      offloaded: this.stats.offloaded,
      offloadServers: this.offloadStage?.serversUp,
      missingReadings: reading?.missing.map((m) => m.reading) ?? [],
      ...(wokeBy === undefined ? {} : { wokeBy }),
      ...(clockSteps === undefined ? {} : { clockSteps }),
      ...this.control.planStatus(),
      backend: engine.backend,
      ...(engine.backendNote === undefined ? {} : { backendNote: engine.backendNote }),
    };
  }
}
