import fs from 'node:fs';
import path from 'node:path';
import { loadAgentConfig, type AgentConfig } from '../../config/agent-config.js';
import { PROJECT_ROOT } from '../../config/paths.js';
import { chooseOperatingPoint } from '../../controller/choose-operating-point.js';
import { EnergyController } from '../../controller/energy-controller.js';
import { deviceProfile } from '../../energy/device-profiles.js';
import { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import { logger } from '../../log/logger.js';
import { EdgeAgent } from '../../pipeline/edge-agent.js';
import { formatStatusLine, statusFilePath, writeStatusFile } from '../../pipeline/status-file.js';
import { loadModelPackage } from '../../model-package/load.js';
import { createFrameSource } from '../../sources/create-source.js';
import { LogStore } from '../../store/log-store.js';
import { createBridge, SimulatedBridge } from '../../../firmware-bridge/index.js';
import { OffloadServer } from '../../../server/offload-server.js';
import { AgentLink } from '../../mqtt/agent-link.js';
import { startEmbeddedBroker } from '../../mqtt/embedded-broker.js';
import { Offloader } from '../../offload/offloader.js';
import { RemoteConfig } from '../../mqtt/remote-config.js';
import { Outbox } from '../../mqtt/outbox.js';
import { encodeJsonPayload, telemetrySchema } from '../../mqtt/payloads.js';
import type { ModelPackage } from '../../model-package/load.js';
import { ensureModelPackage } from '../../../tools/cli/build-model.js';

/**
 * The agent's MQTT side. Without a configured broker the run starts an
 * embedded aedes broker and an offload server in this process, so the default
 * needs nothing installed; either way the agent classifies whether or not the
 * broker is reachable.
 */
async function connectMqtt(config: AgentConfig, pkg: ModelPackage, store: LogStore, remote: RemoteConfig) {
  let broker: { url: string; close(): Promise<void> } | undefined;
  let server: OffloadServer | undefined;
  let url = config.mqtt.url;
  if (!url) {
    broker = await startEmbeddedBroker(config.mqtt.embeddedPort);
    url = broker.url;
    server = await OffloadServer.start({ pkg, brokerUrl: url, protocolVersion: 4, prefix: config.mqtt.prefix });
  }
  const protocolVersion = config.mqtt.protocolVersion ?? (broker ? 4 : 5);
  const outbox = new Outbox(path.join(path.dirname(logPath(config)), 'outbox.db'));
  const link = new AgentLink({
    outbox,
    url,
    deviceId: config.deviceId,
    config,
    protocolVersion,
    handlers: {
      onAnswer: (requestId, answer, late) =>
        store.recordServerAnswer(requestId, { label: answer.label, confidence: answer.confidence, serverMs: answer.serverMs, decidedLocally: late }),
      onConfigSet: (bytes) => remote.handleSet(bytes),
      configState: () => remote.stateMessage(),
    },
  });
  return { link, broker, server, outbox };
}

/** The longest a stopping agent waits for answers in flight. */
const STOP_SETTLE_MAX_MS = 5000;

export function logPath(config: AgentConfig): string {
  return path.resolve(PROJECT_ROOT, config.logs.path);
}

/** Builds the model if needed, then runs the agent until the source ends or SIGINT/SIGTERM. */
export async function runCommand(options: { config?: string; frames?: string }): Promise<void> {
  const { config: fileConfig, file } = loadAgentConfig(options.config);
  const dbFile = logPath(fileConfig);
  fs.mkdirSync(path.dirname(dbFile), { recursive: true });
  const store = LogStore.open(dbFile, { maxAgeDays: fileConfig.logs.maxAgeDays, maxBytes: fileConfig.logs.maxBytes });
  // Changes made over MQTT persist beside the log and are laid over the file's config on every start.
  let agentRef: EdgeAgent | undefined;
  let offloaderRef: Offloader | undefined;
  let restartTelemetry: ((intervalMs: number) => void) | undefined;
  const remote = RemoteConfig.open({
    base: fileConfig,
    overridesFile: path.join(path.dirname(dbFile), 'remote-config.json'),
    logChange: (row) => store.logConfigChange(row),
    // Called only once a config/set arrives, after the package below is loaded.
    validate: (next) => void chooseOperatingPoint(next, pkg.manifest.operatingPoints, engine.exitCount),
    onApply: (next) => {
      const chosen = chooseOperatingPoint(next, pkg.manifest.operatingPoints, engine.exitCount);
      agentRef?.reconfigure({
        staticPoint: chosen.staticPoint,
        controller: next.controller.enabled && !chosen.custom ? new EnergyController(chosen.points, next.controller, next.maxFrameRate) : undefined,
      });
      offloaderRef?.update(next.offload);
      restartTelemetry?.(next.telemetryIntervalMs);
    },
  });
  const config = remote.config;
  logger.info(`edge-exit agent ${config.deviceId} starting (config: ${file ?? 'defaults'})`);
  const built = await ensureModelPackage(config.model.buildConfig);
  const pkg = loadModelPackage(built.dir);
  const task = Object.keys(pkg.manifest.labels)[0]!;
  const engine = MultiExitEngine.fromPackage(pkg, { backend: config.model.backend, threads: config.model.threads, edgetpuDevice: config.model.edgetpuDevice }, task);
  const { points, staticPoint, custom } = chooseOperatingPoint(config, pkg.manifest.operatingPoints, engine.exitCount);
  const source = createFrameSource(config.source);
  const bridge = await createBridge(config.bridge);

  // Thresholds set by hand are the operator's choice: the controller then leaves the operating point alone.
  const controller = config.controller.enabled && !custom ? new EnergyController(points, config.controller, config.maxFrameRate) : undefined;
  const statusFile = statusFilePath(dbFile);
  const mqttParts = await connectMqtt(config, pkg, store, remote);
  const offloader = new Offloader(mqttParts.link, pkg, config.offload, deviceProfile(config.deviceProfile));
  offloaderRef = offloader;
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
    offloader,
    onStatus: (status) => {
      const health = store.health();
      const line = formatStatusLine(status) + (health.ok ? '' : `  LOGGING FAILING: ${health.reason}`);
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      writeStatusFile(statusFile, { ...status, pid: process.pid, deviceId: config.deviceId, writtenAt: Date.now(), logHealth: health.ok ? 'ok' : health.reason });
    },
  });

  agentRef = agent;
  let telemetryTimer: NodeJS.Timeout | undefined;
  let previousHistogram = [...agent.stats.exitHistogram];
  let previousOffloaded = 0;
  const startTelemetry = (intervalMs: number) => {
    clearInterval(telemetryTimer);
    telemetryTimer = setInterval(() => {
      const status = agent.status();
      const sinceLast = status.exitHistogram.map((n, i) => n - (previousHistogram[i] ?? 0));
      previousHistogram = status.exitHistogram;
      const payload = encodeJsonPayload(telemetrySchema, {
        ts: Date.now(),
        battery: status.stateOfCharge ?? null,
        temperatureC: status.temperatureC ?? null,
        framesPerSecond: Math.min(1000, status.framesPerSecond),
        exitHistogram: sinceLast,
        operatingPoint: status.operatingPoint,
        offloaded: status.offloaded - previousOffloaded,
      });
      previousOffloaded = status.offloaded;
      mqttParts.link.publishTelemetry(payload);
    }, intervalMs);
    telemetryTimer.unref();
  };
  startTelemetry(config.telemetryIntervalMs);
  restartTelemetry = startTelemetry;

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
    clearInterval(telemetryTimer);
    // Answers already on their way are logged; what is still unanswered after the deadline waits in the outbox for the next start.
    // Capped: with a long deadline and no server, a stop would otherwise outlast a service manager's grace period (docker's is 10 s) and lose the log's last batch.
    await mqttParts.link.settle(Math.min(remote.config.offload.deadlineMs, STOP_SETTLE_MAX_MS));
    await mqttParts.link.close();
    mqttParts.outbox.close();
    await mqttParts.server?.close();
    await mqttParts.broker?.close();
    store.close();
    const final = agent.status();
    writeStatusFile(statusFile, { ...final, pid: process.pid, deviceId: config.deviceId, writtenAt: Date.now(), logHealth: 'stopped' });
    logger.info(`stopped: ${formatStatusLine(final)}; logs in ${dbFile}`);
  }
}
