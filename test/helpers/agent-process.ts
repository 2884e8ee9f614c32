import fs from 'node:fs';
import path from 'node:path';
import { Outbox } from '../../agent/mqtt/outbox.js';
import { LogReader } from '../../agent/store/log-store.js';
import { SchemaVersionError } from '../../agent/store/schema.js';
import type { ConfigChangeRecord, InferenceRecord } from '../../agent/store/types.js';
import { CliProcess } from './cli-process.js';
import { CIFAR_TEST, temporaryDir } from './shared.js';

/** Where the tiny package was built (buildTinyAgentPackage), so the agent finds it instead of building one. */
export interface AgentPackage {
  modelsDir: string;
  buildConfig: string;
}

export interface AgentProcessOptions {
  frames?: number;
  env?: Record<string, string>;
  /** Leaves what an earlier boot would have (an outbox, remote changes) in the agent's directory before it starts. */
  beforeStart?: (dir: string) => void;
}

/** The replay seed of every test agent, so a test can tell which image each frame id was. */
export const AGENT_REPLAY_SEED = 5;

/**
 * `edge-exit run` as a gateway runs it, in its own process with its own config
 * file, SQLite log, outbox and remote-config file in a fresh directory: the
 * end-to-end tests drive the real command, not a hand-assembled loop.
 */
export class AgentProcess {
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  private readonly process: CliProcess;

  private constructor(
    private readonly pkg: AgentPackage,
    private readonly config: Record<string, unknown>,
    private readonly options: AgentProcessOptions,
    dir?: string,
  ) {
    this.dir = dir ?? temporaryDir('edge-exit-agent-');
    this.configFile = path.join(this.dir, 'agent.json');
    this.logFile = path.join(this.dir, 'edge-exit.db');
    const defaults: Record<string, unknown> = {
      deviceId: 'test-gw',
      model: { package: pkg.buildConfig, backend: 'xnnpack', threads: 1 },
      source: { kind: 'replay', dataset: CIFAR_TEST, loop: true, seed: AGENT_REPLAY_SEED },
      maxFrameRate: 10,
      // The wall clock paces frames, and the battery outlasts any test.
      bridge: { kind: 'simulated', clock: 'real', capacityWh: 1000 },
      logs: { path: this.logFile },
      // Test agents run side by side: each embedded broker (used when no mqtt.url is given) on a port of its own.
      mqtt: { embeddedPort: 20_000 + Math.floor(Math.random() * 20_000) },
      // Any free port: the agent says which ("dashboard on http://...").
      web: { port: 0 },
    };
    fs.writeFileSync(this.configFile, JSON.stringify(mergeSections(defaults, config), null, 2));
    if (dir === undefined) options.beforeStart?.(this.dir);
    const args = ['run', '-c', this.configFile, ...(options.frames === undefined ? [] : ['--frames', String(options.frames)])];
    this.process = new CliProcess(args, { EDGE_EXIT_MODELS_DIR: pkg.modelsDir, ...options.env });
  }

  /** Starts the agent; `config` is laid over test defaults section by section. */
  static start(pkg: AgentPackage, config: Record<string, unknown>, options: AgentProcessOptions = {}): AgentProcess {
    return new AgentProcess(pkg, config, options);
  }

  /**
   * The same gateway started again once this run has exited: same config file, and the
   * same directory, so its SQLite log, outbox and remote-config overrides carry over.
   */
  restart(): AgentProcess {
    if (this.process.running) throw new Error('restart() needs the agent stopped first');
    return new AgentProcess(this.pkg, this.config, this.options, this.dir);
  }

  get exited(): Promise<number | null> {
    return this.process.exited;
  }

  /** Everything the agent printed (its logs and status lines), stdout and stderr together. */
  get output(): string {
    return this.process.output;
  }

  /** Resolves with the match as soon as the output shows it; fails if the agent exits or the time runs out first. */
  waitForOutput(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return this.process.waitForOutput(pattern, timeoutMs);
  }

  /** SIGTERM, as a service manager stops it: the agent finishes its frame, flushes its log and exits. */
  stop(): Promise<number | null> {
    return this.process.stop();
  }

  get pid(): number {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** SIGKILL stands for a crash or a power cut; waits for the exit. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    return this.process.kill(signal);
  }

  /** Sends a signal (SIGINT is Ctrl-C) without waiting for the exit. */
  signal(signal: NodeJS.Signals): void {
    this.process.signal(signal);
  }

  /** Reads the agent's SQLite log (another process writes it; WAL lets both work at once). */
  private read<T>(query: (reader: LogReader) => T, empty: T): T {
    if (!fs.existsSync(this.logFile)) return empty;
    let reader: LogReader;
    try {
      reader = LogReader.open(this.logFile);
    } catch (error) {
      // Created a moment ago, its tables not made yet: nothing logged so far.
      if (error instanceof SchemaVersionError && error.found === 0) return empty;
      throw error;
    }
    try {
      return query(reader);
    } finally {
      reader.close();
    }
  }

  /** Every frame logged so far, oldest first. */
  inferences(): InferenceRecord[] {
    return this.read((reader) => reader.queryInferences(), []);
  }

  configChanges(): ConfigChangeRecord[] {
    return this.read((reader) => reader.configChanges(), []);
  }

  /** Request ids still waiting in the agent's SQLite outbox for an answer. */
  outboxRequestIds(): string[] {
    const outbox = new Outbox(path.join(this.dir, 'outbox.db'));
    try {
      return outbox.all().map((item) => item.requestId);
    } finally {
      outbox.close();
    }
  }
}

/** Overrides replace top-level fields, except that object sections (mqtt, offload, ...) merge one level deep; a section of another kind (source, bridge) replaces. */
function mergeSections(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const isSection = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
  const merged = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const sameKind = isSection(value) && isSection(base[key]) && (value.kind === undefined || value.kind === base[key].kind);
    merged[key] = sameKind ? { ...(base[key] as Record<string, unknown>), ...value } : value;
  }
  return merged;
}
