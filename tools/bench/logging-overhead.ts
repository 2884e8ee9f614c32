import type { EnergyController } from '../../agent/controller/energy-controller.js';
import type { DeviceProfile } from '../../agent/energy/device-profiles.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { FramePipeline, type AgentLog } from '../../agent/pipeline/frame-pipeline.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import type { RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import type { FrameSource } from '../../agent/sources/frame-source.js';
import { summarizeTimings } from '../stats/summary.js';
import type { LogStore } from '../../agent/store/log-store.js';
import { SimulatedBridge } from '../../firmware-bridge/simulated.js';
import { simulatedPlatform } from '../../firmware-bridge/index.js';

export interface LoggingOverheadOptions {
  engine: MultiExitEngine;
  staticPoint: OperatingPoint;
  points: readonly OperatingPoint[];
  makeSource: () => FrameSource;
  profile: DeviceProfile;
  target: RgbTarget;
  store: LogStore;
  frames: number;
  controller?: () => EnergyController;
}

const discard: AgentLog = { logInference() {}, logControllerDecision() {}, logTelemetry() {} };

/**
 * The agent's real loop (decode, multi-exit inference, energy, controller)
 * with the SQLite log and without it, taking turns frame by frame on the same
 * engine and the same replay, so the difference is what logging costs a frame.
 * The store's batched flushes run between frames on the same thread, as in
 * the agent, and are inside the measured time.
 */
export async function runLoggingOverhead(options: LoggingOverheadOptions) {
  const lane = (log: AgentLog) => {
    const bridge = new SimulatedBridge({ clock: 'manual', capacityWh: 1000 });
    return new FramePipeline({
      engine: options.engine,
      source: options.makeSource(),
      ...simulatedPlatform(bridge, 1),
      controller: options.controller?.(),
      staticPoint: options.staticPoint,
      points: options.points,
      profile: options.profile,
      log,
      target: options.target,
      maxFrameRate: 1000,
    });
  };
  const withLog = lane(options.store);
  const without = lane(discard);
  const times = { withLog: [] as number[], without: [] as number[] };
  for (let i = 0; i < options.frames; i++) {
    // Alternate who goes first, so neither always runs on a warmer cache.
    const order = i % 2 === 0 ? (['withLog', 'without'] as const) : (['without', 'withLog'] as const);
    for (const which of order) {
      const agent = which === 'withLog' ? withLog : without;
      const start = process.hrtime.bigint();
      await agent.step();
      // Timers (the store's flush) get their turn inside the measured time.
      await new Promise((resolve) => setImmediate(resolve));
      times[which].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  const a = summarizeTimings(times.withLog);
  const b = summarizeTimings(times.without);
  return { withLog: a, without: b, overheadMean: a.meanMs / b.meanMs - 1, overheadMedian: a.medianMs / b.medianMs - 1, frames: options.frames };
}
