import { controllerSchema, plannerSchema } from '../../agent/config/agent-config.js';
import { EnergyController, fanDutyFor, ladderWithin, type ControllerDecision } from '../../agent/controller/energy-controller.js';
import { LifetimePlanner, plannerSettings, type Plan } from '../../agent/controller/lifetime-planner.js';
import { deviceProfile, type DeviceProfile } from '../../agent/energy/device-profiles.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import { SimulatedBridge } from '../../firmware-bridge/simulated.js';
import { scenarioEvents, type LifetimeScenario, type ScenarioEvent } from './lifetime-scenarios.js';

export const LIFETIME_VARIANTS = ['static full', 'static balanced', 'controller', 'planner', 'oracle'] as const;
export type LifetimeVariant = (typeof LIFETIME_VARIANTS)[number];

export interface LifetimeSample {
  h: number;
  soc: number;
  temperatureC: number;
  /** Share of the time since the last sample spent awake (booting excluded). */
  awake: number;
  /** Events that started since the last sample. */
  events: number;
  point: string;
  frameRate: number;
}

export interface LifetimeResult {
  scenario: string;
  variant: LifetimeVariant;
  /** Hours until the battery was empty, or the scenario's length when it never was. */
  hours: number;
  emptied: boolean;
  targetHours: number | undefined;
  targetMet: boolean;
  /** State of charge when the target was reached (the lowest before it, for an until-charging target). */
  reserveAtTarget: number | undefined;
  events: number;
  seen: number;
  /** Events longer than the wake latency (the board's boot), and how many of those were seen. */
  longEvents: number;
  longSeen: number;
  accuracy: number;
  classifiedFrames: number;
  /** The model's compute above idle per classified frame, J. */
  computeJPerFrame: number;
  /** Decoding and gating every frame, above idle, in all, J. */
  gateJ: number;
  peakC: number;
  secondsOverLimit: number;
  sleeps: number;
  warnings: string[];
  timeline: LifetimeSample[];
}

export interface LifetimeOptions {
  points: readonly OperatingPoint[];
  /** Device compute time over this machine's: the manifest's latencies are this machine's. */
  computeTimeScale: number;
  /** Decode and motion gate per frame, this machine's ms. */
  gateMs: number;
  seed: number;
  /** Start of every scenario (local time): the solar curve and the time-of-day targets follow it. */
  startAt: number;
  sampleEveryS: number;
}

const CONTROL_EVERY_S = 10;
const REPLAN_EVERY_S = 600;
/** With the motion gate, a still scene is classified once per this long (the gate's maxReuseS default). */
const MAX_REUSE_S = 10;
const SHUTDOWN_GRACE_S = 5;

function frameJ(point: OperatingPoint, profile: DeviceProfile, scale: number): number {
  return ((point.expectedLatencyMs * scale) / 1000) * (profile.activePowerW - profile.idlePowerW);
}

/** Runs one variant through one scenario on the real controller and planner, second by second while awake. */
export async function simulateLifetime(scenario: LifetimeScenario, variant: LifetimeVariant, options: LifetimeOptions): Promise<LifetimeResult> {
  const profile = deviceProfile(scenario.profile);
  const events = scenarioEvents(scenario, options.seed);
  const bounds = controllerSchema.parse({});
  const ladder = ladderWithin(options.points, bounds);
  const byName = new Map(options.points.map((p) => [p.name, p]));
  const bridge = new SimulatedBridge({
    clock: 'manual',
    capacityWh: scenario.batteryWh,
    idlePowerW: profile.idlePowerW,
    offPowerW: profile.offPowerW,
    bootS: profile.bootS,
    bootPowerW: profile.bootPowerW,
    ambientC: scenario.ambientC(new Date(options.startAt).getHours()),
    thermalResistanceCPerW: scenario.thermalResistanceCPerW,
    solar: scenario.solar,
    startAt: options.startAt,
    motionAtS: scenario.pir ? events.map((e) => e.startS) : [],
  });
  const thermalLimitC = Math.min(bounds.maxTemperatureC, 70);
  const controller = variant === 'controller' || variant === 'planner' ? new EnergyController(options.points, bounds, scenario.maxFrameRate) : undefined;
  const planner =
    variant === 'planner'
      ? new LifetimePlanner(
          plannerSettings(
            plannerSchema.parse({
              enabled: true,
              target: scenario.target,
              minAccuracy: scenario.minAccuracy,
              minEventRecall: scenario.minEventRecall,
              batteryWh: scenario.batteryWh,
              sleep: true,
              wakeOnMotion: scenario.pir,
              expectedEventsPerHour: scenario.expectedEventsPerHour,
              expectedEventS: scenario.expectedEventS,
            }),
            profile,
          ),
          { profile, ladder, maxFrameRate: scenario.maxFrameRate, computeTimeScale: options.computeTimeScale, gateMsPerFrame: options.gateMs * options.computeTimeScale, maxReuseS: MAX_REUSE_S },
          options.startAt,
        )
      : undefined;
  const staticPoint = variant === 'static balanced' ? 'balanced' : 'full';
  const totalS = scenario.days * 86_400;
  const targetHours = scenario.target.kind === 'hours' ? scenario.target.hours : undefined;
  const seen = new Set<ScenarioEvent>();
  const result = {
    classified: 0,
    workJ: 0,
    modelJ: 0,
    eventFrames: 0,
    eventCorrect: 0,
    peakC: -Infinity,
    overS: 0,
    sleeps: 0,
    warnings: [] as string[],
    timeline: [] as LifetimeSample[],
    reserveAtTarget: undefined as number | undefined,
    lowestSoc: 1,
  };
  let decision: ControllerDecision | undefined;
  let plan: Plan | undefined;
  let nextEvent = 0;
  let lastMotionS = -Infinity;
  let wokeAtS = 0;
  let nextControlS = 0;
  let nextReplanS = 0;
  let nextSampleS = 0;
  let awake = true;
  let warned: number | undefined;
  let emptied = false;

  const hourAt = (s: number) => {
    const at = new Date(options.startAt + s * 1000);
    return at.getHours() + at.getMinutes() / 60;
  };
  const activeEvent = (s: number): ScenarioEvent | undefined => {
    while (nextEvent < events.length && events[nextEvent]!.startS + events[nextEvent]!.durationS < s) {
      const ended = events[nextEvent]!;
      if (seen.has(ended)) planner?.observeEvent(ended.durationS);
      nextEvent++;
    }
    const candidate = events[nextEvent];
    return candidate && candidate.startS <= s ? candidate : undefined;
  };
  let awakeSinceSample = 0;
  let lastSampleS = 0;
  let eventsCounted = 0;
  const sample = async (s: number) => {
    if (s < nextSampleS) return;
    nextSampleS = s + options.sampleEveryS;
    const reading = await bridge.read();
    let started = 0;
    while (eventsCounted < events.length && events[eventsCounted]!.startS <= s) {
      eventsCounted++;
      started++;
    }
    const awakeShare = s > lastSampleS ? Math.min(1, awakeSinceSample / (s - lastSampleS)) : 1;
    awakeSinceSample = 0;
    lastSampleS = s;
    result.timeline.push({
      h: s / 3600,
      soc: reading.stateOfCharge ?? 0,
      temperatureC: reading.temperaturesC['cpu-thermal'] ?? 0,
      awake: awakeShare,
      events: started,
      point: decision?.operatingPoint ?? (variant === 'oracle' ? 'full' : staticPoint),
      frameRate: awake ? (decision?.frameRate ?? scenario.maxFrameRate) : 0,
    });
  };
  const checkTarget = (s: number, soc: number) => {
    result.lowestSoc = Math.min(result.lowestSoc, soc);
    if (targetHours !== undefined && result.reserveAtTarget === undefined && s >= targetHours * 3600) result.reserveAtTarget = soc;
  };
  /** A second awake at this point and rate. */
  const awakeSecond = async (s: number, pointName: string, frameRate: number) => {
    if (Math.floor(s) % 60 === 0) bridge.setAmbient(scenario.ambientC(hourAt(s)));
    const event = activeEvent(s);
    const point = byName.get(pointName)!;
    const classified = event ? frameRate : Math.min(frameRate, 1 / MAX_REUSE_S);
    const modelJ = classified * frameJ(point, profile, options.computeTimeScale);
    const workJ = modelJ + frameRate * ((options.gateMs * options.computeTimeScale) / 1000) * (profile.activePowerW - profile.idlePowerW);
    bridge.consume(workJ);
    awakeSinceSample += 1;
    result.modelJ += modelJ;
    bridge.advance(1);
    result.classified += classified;
    result.workJ += workJ;
    if (event) {
      lastMotionS = s;
      seen.add(event);
      result.eventFrames += classified;
      result.eventCorrect += classified * point.validationAccuracy;
    }
    const reading = await bridge.read();
    const temperatureC = reading.temperaturesC['cpu-thermal'] ?? 0;
    result.peakC = Math.max(result.peakC, temperatureC);
    if (temperatureC > thermalLimitC) result.overS += 1;
    checkTarget(s, reading.stateOfCharge ?? 0);
    return reading;
  };

  while (bridge.elapsedS < totalS) {
    const s = bridge.elapsedS;
    if (variant === 'oracle') {
      // Knows every event: powered down until a boot before the next one ends just as it starts, awake through it at the top point.
      const event = events[nextEvent];
      if (!event) break;
      const offS = event.startS - profile.bootS - s;
      if (offS >= 1) {
        awake = false;
        await sample(s);
        await bridge.armWake({ seconds: offS, wakeOnMotion: false, graceSeconds: 0 });
        bridge.setAmbient(scenario.ambientC(hourAt(s)));
        bridge.powerCycle();
        result.sleeps++;
        awake = true;
      }
      while (bridge.elapsedS < event.startS + event.durationS && bridge.stateOfCharge > 0) {
        await awakeSecond(bridge.elapsedS, 'full', scenario.maxFrameRate);
        await sample(bridge.elapsedS);
      }
      if (bridge.stateOfCharge <= 0) {
        emptied = true;
        break;
      }
      activeEvent(bridge.elapsedS + 1);
      continue;
    }
    if (controller && s >= nextControlS) {
      nextControlS = s + CONTROL_EVERY_S;
      const reading = await bridge.read();
      if (planner && s >= nextReplanS) {
        nextReplanS = s + REPLAN_EVERY_S;
        plan = planner.replan({ nowMs: options.startAt + s * 1000, stateOfCharge: reading.stateOfCharge, charging: reading.charging });
        if (plan.warning && (warned ?? -Infinity) < s - REPLAN_EVERY_S) result.warnings.push(`${(s / 3600).toFixed(1)} h: ${plan.warning}`);
        if (plan.warning) warned = s;
      }
      const temperatureC = reading.temperaturesC['cpu-thermal'];
      decision = controller.decide({
        nowS: s,
        stateOfCharge: reading.stateOfCharge,
        charging: reading.charging,
        temperatureC,
        tripPointC: 70,
        offloadAvailable: false,
        plan: plan ? { operatingPoint: plan.operatingPoint, frameRate: plan.frameRate, reason: plan.reason } : undefined,
      });
      await bridge.setFan(fanDutyFor(decision));
    }
    const duty = plan?.duty;
    const event = activeEvent(s);
    if (duty && duty.sleepS > 0 && !event && s - lastMotionS >= duty.awakeS && s - wokeAtS >= duty.awakeS) {
      awake = false;
      await sample(s);
      await bridge.armWake({ seconds: duty.sleepS, wakeOnMotion: duty.wakeOnMotion, graceSeconds: SHUTDOWN_GRACE_S });
      planner?.observeAwake(s - wokeAtS);
      bridge.setAmbient(scenario.ambientC(hourAt(s)));
      bridge.powerCycle();
      result.sleeps++;
      awake = true;
      wokeAtS = bridge.elapsedS;
      // A board that wakes re-plans at once, as the agent does on start.
      nextReplanS = wokeAtS;
      nextControlS = wokeAtS;
      checkTarget(wokeAtS, bridge.stateOfCharge);
      if (bridge.stateOfCharge <= 0) {
        emptied = true;
        break;
      }
      continue;
    }
    const reading = await awakeSecond(s, decision?.operatingPoint ?? staticPoint, decision?.frameRate ?? scenario.maxFrameRate);
    await sample(s);
    if ((reading.stateOfCharge ?? 0) <= 0) {
      emptied = true;
      break;
    }
  }
  const hours = bridge.elapsedS / 3600;
  const long = events.filter((e) => e.startS < bridge.elapsedS && e.durationS > profile.bootS);
  const reached = events.filter((e) => e.startS < bridge.elapsedS);
  return {
    scenario: scenario.name,
    variant,
    hours,
    emptied,
    targetHours,
    targetMet: targetHours !== undefined ? hours >= targetHours : !emptied,
    reserveAtTarget: targetHours !== undefined ? result.reserveAtTarget : result.lowestSoc,
    events: reached.length,
    seen: reached.filter((e) => seen.has(e)).length,
    longEvents: long.length,
    longSeen: long.filter((e) => seen.has(e)).length,
    accuracy: result.eventFrames > 0 ? result.eventCorrect / result.eventFrames : Number.NaN,
    classifiedFrames: result.classified,
    computeJPerFrame: result.classified > 0 ? result.modelJ / result.classified : Number.NaN,
    gateJ: result.workJ - result.modelJ,
    peakC: result.peakC,
    secondsOverLimit: result.overS,
    sleeps: result.sleeps,
    warnings: result.warnings,
    timeline: result.timeline,
  };
}
