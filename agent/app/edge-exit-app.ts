import fs from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '../config/agent-config.js';
import { agentVersion, PROJECT_ROOT } from '../config/paths.js';
import { chooseOperatingPoint } from '../controller/choose-operating-point.js';
import { EnergyController, ladderWithin } from '../controller/energy-controller.js';
import { DECODE_AND_GATE_MS, LifetimePlanner, plannerSettings } from '../controller/lifetime-planner.js';
import { deviceProfile } from '../energy/device-profiles.js';
import { MultiExitEngine } from '../inference/multi-exit-engine.js';
import { logger } from '../../common/log/logger.js';
import { endStatusLine } from '../../common/log/terminal.js';
import type { ModelPackage } from '../model-package/load.js';
import { AgentLink } from '../mqtt/agent-link.js';
import { startEmbeddedBroker } from '../mqtt/embedded-broker.js';
import { Outbox } from '../mqtt/outbox.js';
import { configPatchJsonSchema, type ConfigPatch } from '../config/config-patch.js';
import { ConfigOwners, type ConfigChange, type ConfigOwner } from '../config/config-owners.js';
import { RemoteConfig } from '../mqtt/remote-config.js';
import { Offloader } from '../offload/offloader.js';
import { ResultPublisher } from '../events/result-publisher.js';
import { MotionGate } from '../gate/motion-gate.js';
import { FramePipeline, type AgentStatus, type PipelineGate } from '../pipeline/frame-pipeline.js';
import { pipelineGate } from '../pipeline/stages/gate-stage.js';
import { formatStatusLine, statusFilePath } from '../pipeline/status-file.js';
import { createFrameSource } from '../sources/create-source.js';
import type { FrameSource } from '../sources/frame-source.js';
import { LogStore } from '../store/log-store.js';
import { createPlatform, monotonicMs } from '../../firmware-bridge/index.js';
import type { Platform } from '../../firmware-bridge/types.js';
import { DashboardRoutes, type LiveView } from '../dashboard/dashboard-routes.js';
import { AgentMetrics } from './agent-metrics.js';
import { healthReport, type HealthReport } from './health.js';
import { SystemdNotifier } from './systemd-notify.js';
import { sendJson, WebServer, type RouteHandler } from '../../common/web-server.js';
import { StatusReporter } from './status-reporter.js';
import { TelemetryPublisher } from './telemetry-publisher.js';
import { UnitStack } from './unit.js';
import { writeFileAtomically } from '../../common/atomic-write.js';
import { PowerManager } from './power-manager.js';

/** An offload server run beside the embedded broker; the server side is handed in, so the agent never imports it. */
export type EmbeddedServerFactory = (options: { pkg: ModelPackage; brokerUrl: string; prefix: string }) => Promise<{ close(): Promise<void> }>;

export interface AppOptions {
  /** From the config file and the environment; changes made over MQTT are laid over it. */
  config: AgentConfig;
  /** Where the config came from, for the start-up line. */
  configFile?: string;
  pkg: ModelPackage;
  embeddedServer?: EmbeddedServerFactory;
}

/** The longest a stopping agent waits for answers in flight: a service manager's grace period (docker's is 10 s) must cover the whole stop. */
const STOP_SETTLE_MAX_MS = 5000;

export function logPath(config: AgentConfig): string {
  return path.resolve(PROJECT_ROOT, config.logs.path);
}

/** Why the controller is not moving the operating point under this config; undefined when it is. */
export function controllerOffReason(config: AgentConfig, custom: boolean): string | undefined {
  if (!config.controller.enabled) return 'off (controller.enabled is false)';
  if (custom) return 'suspended: hand-set policy.thresholds are in force; set policy.operatingPoint (e.g. "balanced") to hand the choice back to it';
  return undefined;
}

/** Time the host needs between arming a wake-up and the power being cut: the stop of every part and the halt. */
const SHUTDOWN_GRACE_S = 30;

/** The answer to a health request: its id when it gave a usable one. */
function healthAnswer(payload: Buffer, report: HealthReport): Buffer {
  let id: string | undefined;
  try {
    const request: unknown = JSON.parse(payload.toString('utf8'));
    const given = (request as { id?: unknown } | null)?.id;
    if (typeof given === 'string' && given.length > 0 && given.length <= 64) id = given;
  } catch {
    // A request that is not JSON still gets the report, without an id.
  }
  return Buffer.from(JSON.stringify({ ...(id === undefined ? {} : { id }), ...report, at: Date.now() }));
}

/**
 * The gateway: it owns every part (store, remote config, engine, platform, source,
 * embedded broker and server, MQTT link, offload, pipeline, telemetry, status), starts
 * them in order, routes live config changes to the part they name, and stops them in
 * reverse order.
 */
export class EdgeExitApp {
  private readonly units = new UnitStack();
  private readonly dbFile: string;
  private store!: LogStore;
  private remote!: RemoteConfig;
  private engine!: MultiExitEngine;
  private platform!: Platform;
  private controller: EnergyController | undefined;
  private offloader!: Offloader;
  private pipeline!: FramePipeline;
  private source: FrameSource | undefined;
  private motionGate: MotionGate | undefined;
  private results!: ResultPublisher;
  private telemetry!: TelemetryPublisher;
  private link: AgentLink | undefined;
  private status!: StatusReporter;
  private dashboard: DashboardRoutes | undefined;
  private metrics: AgentMetrics | undefined;
  private planner: LifetimePlanner | undefined;
  private power!: PowerManager;
  /** Who applies each section of config/set: the parts register here as they start. */
  private readonly owners = new ConfigOwners();
  /** The point chosen when the last change was judged, so that applying it does not choose again. */
  private judged: { config: AgentConfig; chosen: ReturnType<typeof chooseOperatingPoint> } | undefined;
  /** When the pipeline began to run (a slow model load is not a stall), on the monotonic clock as the last frame is. */
  private runningSinceMs = monotonicMs();
  private stopped = false;

  constructor(private readonly options: AppOptions) {
    this.dbFile = logPath(options.config);
  }

  get config(): AgentConfig {
    return this.remote.config;
  }

  /** The units started, in order (for tests and the architecture docs). */
  get startedUnits(): string[] {
    return this.units.names;
  }

  /** Which part owns each section of config/set (for tests and the architecture docs). */
  get configOwners(): ReadonlyMap<string, string> {
    return this.owners.owners;
  }

  /** Starts every part; on a failure the parts already started are stopped and the error is thrown. */
  async start(): Promise<void> {
    try {
      await this.startUnits();
    } catch (error) {
      await this.units.stopAll();
      throw error;
    }
  }

  private async startUnits(): Promise<void> {
    const { pkg } = this.options;
    const base = this.options.config;
    fs.mkdirSync(path.dirname(this.dbFile), { recursive: true });
    this.store = await this.units.start(
      'store',
      () => LogStore.open(this.dbFile, { maxAgeDays: base.logs.maxAgeDays, maxBytes: base.logs.maxBytes }),
      (store) => store.close(),
    );
    this.status = new StatusReporter(statusFilePath(this.dbFile), base.deviceId, () => this.logHealth());
    this.engine = await this.units.start(
      'engine',
      () => MultiExitEngine.fromPackage(pkg, { backend: base.model.backend, threads: base.model.threads, edgetpuDevice: base.model.edgetpuDevice }),
      (engine) => engine.stop(),
    );
    // Changes made over MQTT persist beside the log and are laid over the file's config on every start.
    this.remote = RemoteConfig.open({
      base,
      overridesFile: path.join(path.dirname(this.dbFile), 'remote-config.json'),
      log: this.store,
      owners: this.owners,
    });
    const config = this.remote.config;
    logger.info(`edge-exit agent ${config.deviceId} starting (config: ${this.options.configFile ?? 'defaults'}${this.remote.version > 0 ? `, with ${this.remote.version} change(s) made over MQTT` : ''}; package ${pkg.manifest.name})`);
    const chosen = chooseOperatingPoint(config, pkg.manifest.operatingPoints, this.engine.exitCount);
    this.controller = pkg.manifest.operatingPoints.length > 0 ? new EnergyController(chosen.points, config.controller, config.maxFrameRate) : undefined;
    const offReason = controllerOffReason(config, chosen.custom);
    if (offReason?.startsWith('suspended')) logger.warn(`controller ${offReason}`);

    this.platform = await this.units.start('bridge', () => createPlatform(config.bridge, config.simulation), (platform) => platform.bridge.close());
    const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
    const source = await this.units.start('source', () => createFrameSource(config.source, target), (s) => s.close());
    this.source = source;
    const link = await this.startMqtt(config);
    this.link = link;
    const profile = deviceProfile(config.deviceProfile);
    this.offloader = new Offloader(link, pkg, config.offload, profile);
    this.results = await this.units.start(
      'results',
      () =>
        new ResultPublisher({
          link,
          log: this.store,
          events: this.eventsFor(config),
          exitCount: this.engine.exitCount,
          frameSize: target,
          onEventEnd: (durationS) => this.planner?.observeEvent(durationS),
        }),
      (results) => results.stop(),
    );
    if (config.web.enabled) {
      this.metrics = new AgentMetrics({
        status: () => this.pipeline.status(),
        logHealth: () => this.logHealth(),
        mqttConnected: () => link.connected,
        offload: () => ({ counters: link.offloadClient.counters, unanswered: link.offloadClient.unansweredCount }),
      });
    }
    this.power = new PowerManager({
      bridge: this.platform.bridge,
      graceSeconds: SHUTDOWN_GRACE_S,
      flush: () => this.store.flush(),
      blockers: {
        // An answer that cannot arrive (the link is down) waits in the outbox, which survives the sleep.
        offloadAnswersPending: () => (link.connected ? link.offloadClient.unansweredCount : 0),
        configChangesPending: () => link.config?.waiting ?? 0,
        eventPending: () => (this.results.eventOpen ? 'an event is going on' : this.results.busy ? "an event's snapshot is being written" : undefined),
      },
    });
    this.planner = this.plannerFor(config, chosen.points);
    if (config.planner.enabled && offReason) logger.warn(`planner: on, but it acts through the controller, which is ${offReason}`);
    const pipeline = new FramePipeline({
      engine: this.engine,
      source,
      bridge: this.platform.bridge,
      clock: this.platform.clock,
      energy: this.platform.energy,
      computeTimeScale: this.platform.computeTimeScale,
      controller: offReason ? undefined : this.controller,
      controllerOffReason: offReason,
      staticPoint: chosen.staticPoint,
      points: chosen.points,
      profile,
      log: this.store,
      target,
      maxFrameRate: config.maxFrameRate,
      statusIntervalMs: config.statusIntervalMs,
      offloader: this.offloader,
      gate: this.gateFor(config, target),
      results: this.results,
      onSegments: this.metrics ? (segmentMs, exit) => this.metrics!.observeSegments(segmentMs, exit) : undefined,
      onStatus: (status) => this.status.report(this.withLinkAndResults(status)),
      planner: this.planner,
      replanEveryMs: config.planner.replanEveryS * 1000,
      onSleepDue: (duty) => this.power.powerDown(duty),
    });
    this.pipeline = await this.units.start(
      'pipeline',
      async () => {
        await pipeline.start();
        return pipeline;
      },
      (started) => started.stop(),
    );
    this.registerOwners(link);
    // config/set is taken from here on: every part a change can reach exists.
    for (const unit of link.units.filter((u) => u.name === 'mqtt config')) await this.units.start(unit.name, () => unit.start(), () => unit.stop());
    this.telemetry = await this.units.start(
      'telemetry',
      () => {
        const telemetry = new TelemetryPublisher(link.transport, () => this.withLinkAndResults(this.pipeline.status()), config.telemetryIntervalMs);
        telemetry.start();
        return telemetry;
      },
      (telemetry) => telemetry.stop(),
    );
    this.owners.register(this.telemetry);
    this.owners.checkComplete();
    if (this.metrics) await this.startWeb(config, link, this.metrics);
    // Under systemd (Type=notify): ready now, and the watchdog fed while frames flow.
    await this.units.start(
      'systemd watchdog',
      () => SystemdNotifier.start(process.env, () => this.health().status !== 'stalled'),
      (notifier) => notifier.stop(),
    );
  }

  /** How each part is: /health, the MQTT health request and the watchdog read it. */
  health(): HealthReport {
    const config = this.remote.config;
    return healthReport(
      {
        // Before the first frame the clock runs from the start: a camera that never sends one is a stall too.
        // Monotonic: a wall clock stepped back would make the time since negative and hide a stall.
        sinceLastFrameMs: () => monotonicMs() - Math.max(this.pipeline.lastFrameAtMs, this.runningSinceMs),
        anyFrameYet: () => Number.isFinite(this.pipeline.lastFrameAtMs),
        engineBackend: () => (this.engine.backendNote === undefined ? this.engine.backend : `${this.engine.backend}: ${this.engine.backendNote}`),
        missingReadings: () => this.pipeline.status().missingReadings,
        logHealth: () => this.logHealth(),
        mqttProblem: () => this.link?.problem,
        mqttConnected: () => this.link?.connected ?? false,
        offloadServers: () => (config.offload.enabled ? this.offloader.serversUp : undefined),
        notes: () => (this.pipeline.clockStepNote === undefined ? [] : [this.pipeline.clockStepNote]),
      },
      config.health.stalledAfterS * 1000,
    );
  }

  /** The one HTTP port: /metrics, /health (/healthz), and the dashboard unless it is off. */
  private async startWeb(config: AgentConfig, link: AgentLink, metrics: AgentMetrics): Promise<void> {
    const monitoring: RouteHandler = async (request, response, url) => {
      if (url.pathname === '/metrics') {
        response.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.text());
        return true;
      }
      if (url.pathname === '/health' || url.pathname === '/healthz') {
        const report = this.health();
        return sendJson(response, report.status === 'stalled' ? 503 : 200, report);
      }
      return false;
    };
    const dashboard = config.web.dashboard
      ? new DashboardRoutes({
          live: () => this.liveView(),
          log: this.store,
          latestSnapshot: () => this.results.latestSnapshot?.jpeg,
          config: () => ({ ...(JSON.parse(this.remote.stateMessage().toString()) as { version: number; config: unknown }), schema: configPatchJsonSchema() }),
          applyConfig: (body) => link.config?.setFrom(body) ?? Buffer.from(JSON.stringify({ status: 'error', reason: 'config: changes are not taken here' })),
        })
      : undefined;
    const web = await this.units.start(
      'web',
      () =>
        WebServer.start({
          ...config.web,
          handlers: dashboard ? [monitoring, dashboard.handler] : [monitoring],
          paths: [...(dashboard ? ['/ (the dashboard)'] : []), '/metrics', '/health'],
        }),
      async (server) => {
        dashboard?.close();
        await server.close();
      },
    );
    this.dashboard = dashboard;
    const where = `http://${config.web.host}:${web.port}`;
    logger.info(dashboard ? `dashboard on ${where}/, metrics on ${where}/metrics, health on /health` : `metrics on ${where}/metrics, health on /health`);
  }

  /** What an open dashboard shows, once a second. */
  private liveView(): LiveView {
    const status = this.withLinkAndResults(this.pipeline.status());
    const reading = this.pipeline.lastReading;
    const config = this.remote.config;
    const seen = status.frames + status.gated;
    return {
      deviceId: config.deviceId,
      status,
      power: { watts: reading?.powerW, volts: reading?.voltageV, amps: reading?.currentA, charging: reading?.charging },
      decisions: this.store.controllerTimeline({}, 8).map((d) => ({ ts: d.ts, operatingPoint: d.operatingPoint, frameRate: d.frameRate, reason: d.reason })),
      offload: {
        enabled: config.offload.enabled,
        serversUp: status.offloadServers,
        sharePercent: status.frames > 0 ? (100 * status.offloaded) / status.frames : 0,
        roundTripMs: this.store.offloadRoundTripMs(Date.now() - 300_000),
      },
      gate: { skippedPercent: seen > 0 ? (100 * status.gated) / seen : 0 },
      snapshotAt: this.results.latestSnapshot?.at,
      health: this.health(),
    };
  }

  /** Open dashboard pages (for the overhead benchmark). */
  get dashboardViewers(): number {
    return this.dashboard?.openStreams ?? 0;
  }

  private logHealth(): string {
    const health = this.store.health();
    return health.ok ? 'ok' : (health.reason ?? 'failing');
  }

  /** The embedded broker and offload server when no broker is configured, then the link with its outbox. */
  private async startMqtt(config: AgentConfig): Promise<AgentLink> {
    let url = config.mqtt.url;
    if (!url) {
      const broker = await this.units.start('embedded broker', () => startEmbeddedBroker(config.mqtt.embeddedPort), (b) => b.close());
      url = broker.url;
      const factory = this.options.embeddedServer;
      if (factory) await this.units.start('embedded offload server', () => factory({ pkg: this.options.pkg, brokerUrl: broker.url, prefix: config.mqtt.prefix }), (s) => s.close());
    }
    const outbox = await this.units.start('outbox', () => new Outbox(path.join(path.dirname(this.dbFile), 'outbox.db')), (o) => o.close());
    const { manifest } = this.options.pkg;
    const link = new AgentLink({
      outbox,
      url,
      deviceId: config.deviceId,
      config,
      protocolVersion: config.mqtt.protocolVersion ?? (config.mqtt.url ? 5 : 4),
      // An answer naming a class the package does not have is forged or from another model: refused.
      labels: this.engine.labels,
      handlers: {
        // The answer re-enters the pipeline with its frame's context: the log, temporal reuse and the state all see it.
        // Before the pipeline exists (answers replayed on the first connect) it is only logged, as a late one.
        onAnswer: (requestId, answer, late) =>
          this.pipeline
            ? this.pipeline.serverAnswer(requestId, answer, late)
            : this.store.recordServerAnswer(requestId, { label: answer.label, confidence: answer.confidence, serverMs: answer.serverMs, decidedLocally: true }),
        // Straight to the remote config: a config/set does not pass through the app on its way in.
        onConfigSet: this.remote.handleSet.bind(this.remote),
        configState: this.remote.stateMessage.bind(this.remote),
        onHealthRequest: (payload) => healthAnswer(payload, this.health()),
      },
      homeAssistant: { model: manifest.name, softwareVersion: agentVersion(), operatingPoints: manifest.operatingPoints.map((point) => point.name) },
    });
    // Each extension is a unit of its own; the transport comes last, so the first subscribe carries every route.
    // The config channel starts once the parts a change reaches exist (startUnits).
    for (const unit of link.units) {
      if (unit.name === 'mqtt config') continue;
      const settles = unit.name === 'mqtt transport';
      await this.units.start(
        unit.name,
        () => unit.start(),
        async () => {
          // Answers already on their way are logged; what is still unanswered waits in the outbox for the next start.
          if (settles) await link.offloadClient.settle(Math.min(this.remote.config.offload.deadlineMs, STOP_SETTLE_MAX_MS));
          await unit.stop();
        },
      );
    }
    return link;
  }

  /** The parts that apply config/set, one owner per section: the app's own, and the link's extensions. */
  private registerOwners(link: AgentLink): void {
    this.owners.register({
      name: 'operating point, controller and planner',
      sections: ['policy', 'controller', 'maxFrameRate', 'planner'],
      judge: (next, patch) => this.judge(next, patch),
      apply: (next, change) => this.applyControl(next, change),
    });
    this.owners.register({ name: 'offloader', sections: ['offload'], apply: (next) => this.offloader.update(next.offload) });
    this.owners.register({
      name: 'motion gate and events',
      sections: ['gate', 'events'],
      apply: (next, change) => {
        if (change.sections.has('gate')) this.pipeline.setGate(this.gateFor(next, this.options.pkg.manifest.input));
        this.results.setEvents(this.eventsFor(next));
      },
    });
    for (const owner of link.configOwners) this.owners.register(owner);
  }

  /**
   * Judges a change by what the schema cannot know (the package's exits and points, the
   * controller's accuracy bound), before anything is saved; throws with the reason.
   */
  private judge(next: AgentConfig, patch: ConfigPatch): void {
    const chosen = chooseOperatingPoint(next, this.options.pkg.manifest.operatingPoints, this.engine.exitCount);
    this.judged = { config: next, chosen };
    if (this.controller) ladderWithin(chosen.points, next.controller);
    if (next.planner.enabled && (patch.planner || patch.controller || patch.policy) && controllerOffReason(next, chosen.custom) !== undefined) {
      throw new Error(`planner.enabled: the planner acts through the controller, which is ${controllerOffReason(next, chosen.custom)}; turn it on with {"controller":{"enabled":true}}`);
    }
    // Naming a point hands the choice back from hand-set thresholds; otherwise, with the controller on, it would change nothing.
    const handSet = this.remote.config.policy.thresholds !== undefined;
    if (patch.policy?.operatingPoint !== undefined && next.controller.enabled && !chosen.custom && !handSet) {
      throw new Error(
        `policy.operatingPoint: the controller is on and picks the operating point itself; to pin "${patch.policy.operatingPoint}", send it with {"controller":{"enabled":false}}`,
      );
    }
  }

  /** A policy, controller, frame-rate or planner change, with the point its judging chose: a new deadline never gets here. */
  private applyControl(next: AgentConfig, change: ConfigChange): string | undefined {
    const changed = (section: 'policy' | 'controller' | 'maxFrameRate' | 'planner') => change.sections.has(section);
    const chosen = this.judged?.config === next ? this.judged.chosen : chooseOperatingPoint(next, this.options.pkg.manifest.operatingPoints, this.engine.exitCount);
    this.judged = undefined;
    let note: string | undefined;
    if (changed('policy') || changed('controller') || changed('maxFrameRate')) {
      if (changed('policy')) this.pipeline.setStaticPoint(chosen.staticPoint);
      if (changed('maxFrameRate')) this.pipeline.setMaxFrameRate(next.maxFrameRate);
      if (changed('controller') || changed('maxFrameRate')) this.controller?.updateBounds(next.controller, next.maxFrameRate);
      const offReason = controllerOffReason(next, chosen.custom);
      const wasOn = this.pipeline.controllerActive;
      this.pipeline.setController(offReason ? undefined : this.controller, offReason);
      if (wasOn && offReason) logger.warn(`controller ${offReason}`);
      if (!wasOn && !offReason) logger.info('controller: on again, it picks the operating point');
      note = offReason === undefined ? undefined : `applied; the controller is ${offReason}`;
    }
    // A new target or floors keep what the planner has learnt; a new frame rate or ladder plans afresh.
    if (changed('planner') || changed('controller') || changed('maxFrameRate')) this.updatePlanner(next, changed('planner') && !changed('maxFrameRate'), chosen.points);
    return note;
  }

  /** The lifetime planner the config asks for, on the controller's ladder; undefined when it is off. */
  private plannerFor(config: AgentConfig, points: ReturnType<typeof chooseOperatingPoint>['points']): LifetimePlanner | undefined {
    if (!config.planner.enabled || !this.controller) return undefined;
    const profile = deviceProfile(config.deviceProfile);
    const scale = this.platform.computeTimeScale;
    return new LifetimePlanner(
      plannerSettings(config.planner, profile),
      { profile, ladder: ladderWithin(points, config.controller), maxFrameRate: config.maxFrameRate, computeTimeScale: scale, gateMsPerFrame: DECODE_AND_GATE_MS * scale, maxReuseS: config.gate.maxReuseS },
      this.targetStartedAt(config.planner.target),
    );
  }

  /**
   * When the target in force was first set: an "hours" target counts from then, not from this boot, so
   * a board that sleeps and reboots keeps its deadline. Kept beside the log; a new target starts afresh.
   */
  private targetStartedAt(target: AgentConfig['planner']['target']): number {
    const file = path.join(path.dirname(this.dbFile), 'planner-target.json');
    const key = JSON.stringify(target);
    // Kept across boots: calendar time, not the monotonic clock.
    const now = this.platform.clock.wallMs();
    try {
      const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { target?: string; startedAt?: unknown };
      // A simulated clock starts anew each run: only a wall clock's start carries over.
      if (this.platform.clock.kind === 'wall' && saved.target === key && typeof saved.startedAt === 'number' && saved.startedAt <= now) return saved.startedAt;
    } catch {
      // None yet, or unreadable: the target starts now.
    }
    try {
      writeFileAtomically(file, JSON.stringify({ target: key, startedAt: now }));
    } catch (error) {
      logger.warn(`planner: cannot keep the target's start in ${file} (${(error as Error).message}); after a reboot it counts from the boot`);
    }
    return now;
  }

  /** A new target or floors keep what the planner has learnt (drain, activity); turning it on or off starts or drops it. */
  private updatePlanner(next: AgentConfig, settingsOnly: boolean, points: ReturnType<typeof chooseOperatingPoint>['points']): void {
    if (this.planner && next.planner.enabled && settingsOnly) {
      this.planner.updateSettings(plannerSettings(next.planner, deviceProfile(next.deviceProfile)));
    } else {
      this.planner = this.plannerFor(next, points);
    }
    this.pipeline.setPlanner(this.planner, next.planner.replanEveryS * 1000);
  }

  /** The wake-up armed when the plan took a real board down: the run command halts after stopping every part. */
  get haltRequested(): boolean {
    return this.power?.haltArmed !== undefined;
  }

  /**
   * The motion gate the config asks for, over the source the app made (created before the
   * pipeline and the results). Only a source that says its frames are one continuing scene
   * (cameras, streams, the demo when it streams video) is gated, whatever its config kind: on
   * a replay or a folder every image is a scene of its own, and a whole-frame change would read as light.
   */
  private gateFor(config: AgentConfig, target: { width: number; height: number }, source: FrameSource | undefined = this.source): PipelineGate | undefined {
    const { on, warning } = MotionGate.decide(config.gate.mode, source);
    if (warning) logger.warn(warning);
    if (!on) return undefined;
    // The background is kept across setting changes: a new threshold should not make every frame motion.
    this.motionGate ??= new MotionGate(config.gate, target.width, target.height);
    this.motionGate.update(config.gate);
    return pipelineGate(this.motionGate, config.gate);
  }

  /**
   * Events follow the motion gate: without it, every frame would be motion, and one event would never end.
   * So a source without a scene (a replay, a folder) has none: its images are unrelated, and one "event"
   * would run the whole replay. Decided as gateFor does, without its warning (gateFor gives it).
   */
  private eventsFor(config: AgentConfig, source: FrameSource | undefined = this.source): AgentConfig['events'] | undefined {
    return MotionGate.decide(config.gate.mode, source).on ? config.events : undefined;
  }

  /** The pipeline's status with the MQTT link's problem, if it has one, what the device sees, and the event going on. */
  private withLinkAndResults(status: AgentStatus): AgentStatus {
    const problem = this.link?.problem;
    const event = this.results?.activeEvent;
    const state = this.results?.currentState;
    return {
      ...status,
      ...(state === undefined ? {} : { state: `${state.label} ${Math.round(state.confidence * 100)}%${state.decidedBy === 'server' ? ' (server)' : ''}` }),
      ...(problem === undefined ? {} : { mqtt: problem }),
      ...(event === undefined ? {} : { event: `${event.label} ${Math.round(event.confidence * 100)}%` }),
    };
  }

  /** Runs the pipeline until the source ends, `stop()` is called, `frames` have been classified, or the platform is exhausted. */
  async run(frames = Infinity): Promise<AgentStatus> {
    this.runningSinceMs = monotonicMs();
    await this.pipeline.run(() => this.pipeline.stats.frames >= frames || this.platform.exhausted());
    if (this.platform.exhausted()) logger.info('the simulated battery is empty');
    return this.pipeline.status();
  }

  /** Asks the pipeline to stop after the frame in hand; the source is closed too, so a wait for the next frame (an empty watched folder, a camera) ends. */
  requestStop(): void {
    this.pipeline?.stop();
    void this.source?.close();
  }

  /** Stops every part in reverse order, flushing the log; safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    endStatusLine();
    const final = this.pipeline?.status();
    await this.units.stopAll();
    if (final) {
      this.status.report(final, true);
      logger.info(`stopped: ${formatStatusLine(final)}; logs in ${this.dbFile}`);
    }
  }
}
