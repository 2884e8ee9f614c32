import fs from 'node:fs';
import path from 'node:path';
import { loadAgentConfig, type AgentConfig } from '../../config/agent-config.js';
import { PROJECT_ROOT } from '../../config/paths.js';
import { EnergyController } from '../../controller/energy-controller.js';
import { deviceProfile } from '../../energy/device-profiles.js';
import { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import { logger } from '../../log/logger.js';
import { EdgeAgent } from '../../loop/edge-agent.js';
import { formatStatusLine, statusFilePath, writeStatusFile } from '../../loop/status-file.js';
import { loadModelPackage } from '../../model-package/load.js';
import type { OperatingPoint } from '../../model-package/manifest.js';
import { createExitPolicy } from '../../exit-policy/policy.js';
import { createFrameSource } from '../../sources/create-source.js';
import { LogStore } from '../../store/log-store.js';
import { createBridge, SimulatedBridge } from '../../../firmware-bridge/index.js';
import { ensureModelPackage } from './build-model.js';

/** The package's calibrated point named in the config, or a custom one when thresholds are given by hand. */
export function chooseOperatingPoint(config: AgentConfig, calibrated: readonly OperatingPoint[], exitCount: number) {
  const { policy, thresholds, patience, maxExit, operatingPoint } = config.policy;
  if (thresholds) {
    if (!policy) throw new Error('policy.thresholds needs policy.policy (max-probability, entropy or patience)');
    const point: OperatingPoint = {
      name: 'custom',
      policy,
      thresholds,
      patience,
      maxExit: maxExit ?? exitCount - 1,
      validationAccuracy: 0,
      expectedMacs: 0,
      expectedLatencyMs: 0,
      exitHistogram: [],
    };
    // Validates the count and the range against this package's exits.
    createExitPolicy({ policy, thresholds, patience }, exitCount);
    return { points: [...calibrated, point], staticPoint: point, custom: true };
  }
  const staticPoint = calibrated.find((p) => p.name === operatingPoint);
  if (!staticPoint) throw new Error(`policy.operatingPoint "${operatingPoint}" is not in the package; it has ${calibrated.map((p) => p.name).join(', ')}`);
  return { points: calibrated, staticPoint: maxExit === undefined ? staticPoint : { ...staticPoint, maxExit: Math.min(maxExit, staticPoint.maxExit) }, custom: false };
}

export function logPath(config: AgentConfig): string {
  return path.resolve(PROJECT_ROOT, config.logs.path);
}

/** Builds the model if needed, then runs the agent until the source ends or SIGINT/SIGTERM. */
export async function runCommand(options: { config?: string; frames?: string }): Promise<void> {
  const { config, file } = loadAgentConfig(options.config);
  logger.info(`edge-exit agent ${config.deviceId} starting (config: ${file ?? 'defaults'})`);
  const built = await ensureModelPackage(config.model.buildConfig);
  const pkg = loadModelPackage(built.dir);
  const task = Object.keys(pkg.manifest.labels)[0]!;
  const engine = MultiExitEngine.fromPackage(pkg, { backend: config.model.backend, threads: config.model.threads, edgetpuDevice: config.model.edgetpuDevice }, task);
  const { points, staticPoint, custom } = chooseOperatingPoint(config, pkg.manifest.operatingPoints, engine.exitCount);
  const source = createFrameSource(config.source);
  const bridge = await createBridge(config.bridge);
  const dbFile = logPath(config);
  fs.mkdirSync(path.dirname(dbFile), { recursive: true });
  const store = LogStore.open(dbFile, { maxAgeDays: config.logs.maxAgeDays, maxBytes: config.logs.maxBytes });
  // Thresholds set by hand are the operator's choice: the controller then leaves the operating point alone.
  const controller = config.controller.enabled && !custom ? new EnergyController(points, config.controller, config.maxFrameRate) : undefined;
  const statusFile = statusFilePath(dbFile);
  const tty = process.stderr.isTTY;
  const agent = new EdgeAgent({
    engine,
    source,
    bridge,
    controller,
    staticPoint,
    points,
    profile: deviceProfile(config.deviceProfile),
    log: store,
    target: { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize },
    maxFrameRate: config.maxFrameRate,
    clock: bridge instanceof SimulatedBridge ? bridge.clock : undefined,
    computeTimeScale: bridge instanceof SimulatedBridge ? config.simulation.computeTimeScale : undefined,
    statusIntervalMs: config.statusIntervalMs,
    onStatus: (status) => {
      const health = store.health();
      const line = formatStatusLine(status) + (health.ok ? '' : `  LOGGING FAILING: ${health.reason}`);
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      writeStatusFile(statusFile, { ...status, pid: process.pid, deviceId: config.deviceId, writtenAt: Date.now(), logHealth: health.ok ? 'ok' : health.reason });
    },
  });

  let signalled = false;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info(`${signal}: stopping after the current frame, flushing the logs`);
    agent.stop();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  const limit = options.frames ? Number(options.frames) : Infinity;
  // A simulated battery that runs flat ends the demo; a real one ends the device.
  const flat = () => bridge instanceof SimulatedBridge && (agent.status().stateOfCharge ?? 1) <= 0;
  try {
    await agent.run(() => agent.stats.frames >= limit || flat());
    if (flat()) logger.info('the simulated battery is empty');
  } finally {
    if (tty) process.stderr.write('\n');
    await source.close();
    await bridge.close();
    store.close();
    const final = agent.status();
    writeStatusFile(statusFile, { ...final, pid: process.pid, deviceId: config.deviceId, writtenAt: Date.now(), logHealth: 'stopped' });
    logger.info(`stopped: ${formatStatusLine(final)}; logs in ${dbFile}`);
  }
}
