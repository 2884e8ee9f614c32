import { EnergyController, type ControllerBounds } from '../../agent/controller/energy-controller.js';
import type { DeviceProfile } from '../../agent/energy/device-profiles.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { FramePipeline, type AgentLog } from '../../agent/pipeline/frame-pipeline.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import type { RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import type { FrameSource } from '../../agent/sources/frame-source.js';
import { SimulatedBridge, type SimulatedBridgeOptions } from '../../firmware-bridge/simulated.js';
import { simulatedPlatform } from '../../firmware-bridge/index.js';
import type { BridgeReading } from '../../firmware-bridge/types.js';

export interface DayVariant {
  name: string;
  /** The controller decides; otherwise the static point runs at the full frame rate all day. */
  controlled: boolean;
  staticPoint: string;
}

export interface DayResult {
  name: string;
  frames: number;
  accuracy: number;
  peakTemperatureC: number;
  /** Simulated seconds spent above the thermal limit. */
  secondsOverLimit: number;
  lifetimeH: number;
  timeline: { tS: number; soc: number; temperatureC: number; point: string; frameRate: number }[];
}

export interface DayOptions {
  engine: MultiExitEngine;
  points: readonly OperatingPoint[];
  makeSource: () => FrameSource;
  target: RgbTarget;
  profile: DeviceProfile;
  bridge: SimulatedBridgeOptions;
  bounds: ControllerBounds;
  maxFrameRate: number;
  computeTimeScale: number;
  thermalLimitC: number;
  variants: DayVariant[];
  /** Simulated seconds between timeline samples. */
  sampleEveryS: number;
  onProgress?: (soc: number[]) => void;
}

/** A day's agent does not need the SQLite log for this comparison; nothing is written. */
const discard: AgentLog = { logInference() {}, logControllerDecision() {}, logTelemetry() {} };

function hottest(reading: BridgeReading): number {
  return Math.max(...Object.values(reading.temperaturesC));
}

/**
 * Several agents live through the same simulated day side by side: each has
 * its own simulated battery and heatsink and its own replay of the same
 * images, and they take turns frame by frame on the one real engine until
 * every battery is empty.
 */
export async function runSimulatedDay(options: DayOptions): Promise<DayResult[]> {
  const lanes = options.variants.map((variant) => {
    const bridge = new SimulatedBridge({ ...options.bridge, clock: 'manual' });
    const staticPoint = options.points.find((p) => p.name === variant.staticPoint)!;
    const agent = new FramePipeline({
      engine: options.engine,
      source: options.makeSource(),
      ...simulatedPlatform(bridge, options.computeTimeScale),
      controller: variant.controlled ? new EnergyController(options.points, options.bounds, options.maxFrameRate) : undefined,
      staticPoint,
      points: options.points,
      profile: options.profile,
      log: discard,
      target: options.target,
      maxFrameRate: options.maxFrameRate,
      controlIntervalMs: 1000,
    });
    return { variant, bridge, agent, done: false, peak: -Infinity, overS: 0, lastS: 0, nextSampleS: 0, timeline: [] as DayResult['timeline'] };
  });
  let turn = 0;
  while (lanes.some((lane) => !lane.done)) {
    for (const lane of lanes) {
      if (lane.done) continue;
      await lane.agent.step();
      const reading = await lane.bridge.read();
      const t = lane.bridge.elapsedS;
      const temperature = hottest(reading);
      lane.peak = Math.max(lane.peak, temperature);
      if (temperature > options.thermalLimitC) lane.overS += t - lane.lastS;
      lane.lastS = t;
      if (t >= lane.nextSampleS) {
        const status = lane.agent.status();
        lane.timeline.push({ tS: t, soc: reading.stateOfCharge ?? 0, temperatureC: temperature, point: status.operatingPoint, frameRate: status.frameRate });
        lane.nextSampleS += options.sampleEveryS;
      }
      if ((reading.stateOfCharge ?? 0) <= 0) lane.done = true;
    }
    if (++turn % 500 === 0) options.onProgress?.(lanes.map((l) => l.timeline.at(-1)?.soc ?? 1));
  }
  return lanes.map((lane) => ({
    name: lane.variant.name,
    frames: lane.agent.stats.frames,
    accuracy: lane.agent.stats.accuracy() ?? Number.NaN,
    peakTemperatureC: lane.peak,
    secondsOverLimit: lane.overS,
    lifetimeH: lane.bridge.elapsedS / 3600,
    timeline: lane.timeline,
  }));
}
