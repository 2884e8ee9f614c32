import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import mqtt from 'mqtt';
import { startMosquitto, type MosquittoBroker } from '../../tools/mqtt/mosquitto.js';
import test from 'ava';
import type { AgentPackage } from './agent-process.js';
import { buildTinyAgentPackage } from './tiny-package.js';
import { CliProcess } from './cli-process.js';
import { makePasswordFile } from './pki.js';
import { temporaryDir } from './shared.js';

/*
 * What the resilience scenarios share: a Mosquitto with real logins whose passwords
 * the secret check then looks for everywhere, process readings from /proc, and the
 * figures each scenario records for tools/resilience/report.ts.
 */

/** Every password of the scenarios holds this marker, so one search finds a leak of any of them, whole or cut. */
export const SECRET_MARKER = 'XYZZY';
export const GATEWAY_USER = 'gate-r';
export const GATEWAY_PASSWORD = `${SECRET_MARKER}-gateway-7f3a`;
export const SERVER_USER = 'offload-server';
export const SERVER_PASSWORD = `${SECRET_MARKER}-server-9c1e`;
const ADMIN_USER = 'resilience-admin';
const ADMIN_PASSWORD = `${SECRET_MARKER}-admin-51d0`;

export interface SecuredBroker extends MosquittoBroker {
  /** The broker URL with the gateway's login in it, as an operator would write it in agent.json. */
  gatewayUrl: string;
  /** Env for `edge-exit server` logging in as the offload server. */
  serverEnv: Record<string, string>;
  adminLogin: { username: string; password: string };
}

/** A real Mosquitto that refuses anonymous clients; stopped when the test ends. */
export async function securedBroker(t: ExecutionContext): Promise<SecuredBroker> {
  const dir = temporaryDir('edge-exit-resilience-broker-');
  // Mosquitto drops to its own user before reading the password file.
  fs.chmodSync(dir, 0o755);
  const broker = await startMosquitto({
    passwordFile: makePasswordFile(dir, { [GATEWAY_USER]: GATEWAY_PASSWORD, [SERVER_USER]: SERVER_PASSWORD, [ADMIN_USER]: ADMIN_PASSWORD }),
  });
  t.teardown(() => broker.stop());
  const login = new URL(broker.url);
  login.username = GATEWAY_USER;
  login.password = GATEWAY_PASSWORD;
  return {
    ...broker,
    gatewayUrl: login.toString().replace(/\/$/, ''),
    serverEnv: { EDGE_EXIT__MQTT__PASSWORD: SERVER_PASSWORD },
    adminLogin: { username: ADMIN_USER, password: ADMIN_PASSWORD },
  };
}

/** Every retained message on the broker now, as a new subscriber to '#' receives them. */
export async function retainedMessages(broker: SecuredBroker): Promise<{ topic: string; payload: Buffer }[]> {
  const client = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5, reconnectPeriod: 0 });
  const retained: { topic: string; payload: Buffer }[] = [];
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) retained.push({ topic, payload });
  });
  try {
    await client.subscribeAsync('#', { qos: 1 });
    // Retained messages follow the SUBACK at once; a quiet half second means all have come.
    await new Promise((resolve) => setTimeout(resolve, 500));
  } finally {
    await client.endAsync();
  }
  return retained;
}

/** Every file under `dir` (recursively), bytes and all: SQLite files, WAL, outbox, status, remote config. */
function filesUnder(dir: string, exclude: ReadonlySet<string>): { name: string; bytes: Buffer }[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => path.join(dir, name))
    .filter((file) => !exclude.has(file) && fs.statSync(file).isFile())
    .map((file) => ({ name: file, bytes: fs.readFileSync(file) }));
}

export interface SecretSources {
  /** Process outputs by name: the agent's and the server's logs. */
  outputs: Record<string, string>;
  /** Directories whose every file is searched (the agent's state directory). */
  dirs: string[];
  /** The operator's own config files, which hold the login on purpose. */
  exclude?: string[];
  /** Messages a subscriber saw during the scenario, besides the retained ones read at the end. */
  messages?: { topic: string; payload: Buffer }[];
  broker: SecuredBroker;
}

/**
 * Where a password shows: process outputs, files, retained topics and messages.
 * Returns what was searched and where the marker was found (empty when nothing leaked).
 */
export async function findSecrets(sources: SecretSources): Promise<{ searched: number; leaks: string[] }> {
  const marker = Buffer.from(SECRET_MARKER);
  const places: { name: string; bytes: Buffer }[] = [
    ...Object.entries(sources.outputs).map(([name, text]) => ({ name: `output of ${name}`, bytes: Buffer.from(text) })),
    ...sources.dirs.flatMap((dir) => filesUnder(dir, new Set(sources.exclude ?? []))),
    ...(await retainedMessages(sources.broker)).map((m) => ({ name: `retained ${m.topic}`, bytes: Buffer.concat([Buffer.from(m.topic), m.payload]) })),
    ...(sources.messages ?? []).map((m) => ({ name: `message on ${m.topic}`, bytes: Buffer.concat([Buffer.from(m.topic), m.payload]) })),
  ];
  return { searched: places.length, leaks: [...new Set(places.filter((place) => place.bytes.includes(marker)).map((place) => place.name))] };
}

/** Fails the test naming every place a password showed. */
export async function assertNoSecrets(t: ExecutionContext, sources: SecretSources): Promise<number> {
  const { searched, leaks } = await findSecrets(sources);
  t.true(searched > 0, 'the secret check searched something');
  t.deepEqual(leaks, [], `a password showed in: ${leaks.join(', ')}`);
  return searched;
}

export interface ProcessReading {
  /** Seconds since the first reading. */
  t: number;
  rssMiB: number;
  threads: number;
  fds: number;
}

/** RSS, threads and open descriptors of a live process, from /proc. */
export function readProcess(pid: number): Omit<ProcessReading, 't'> {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN);
  return { rssMiB: field('VmRSS') / 1024, threads: field('Threads'), fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

export interface HeapReading {
  /** The V8 heap still in use after a full collection. */
  liveHeapMiB: number;
  heapTotalMiB: number;
  /** RSS less the V8 heap: native memory (TFLite, SQLite, buffers) and code. */
  outsideHeapMiB: number;
  rssMiB: number;
}

/** The environment that preloads test/helpers/heap-probe.mjs into a process under test. */
export const HEAP_PROBE_ENV = { NODE_OPTIONS: `--import ${path.join(path.dirname(fileURLToPath(import.meta.url)), 'heap-probe.mjs')}` };

/** The heap probe's readings in what a process printed, in order. */
export function heapReadings(output: string): HeapReading[] {
  return [...output.matchAll(/^heap-probe (\{.*\})$/gm)].map((match) => JSON.parse(match[1]!) as HeapReading);
}

/** Seeded, so a failing run can be replayed from the seed it printed. */
export { seededRandom } from '../../agent/datasets/split.js';

/** The seed of a run: EDGE_EXIT_RESILIENCE_SEED replays one, else the clock picks. */
export function runSeed(): number {
  const given = process.env.EDGE_EXIT_RESILIENCE_SEED;
  return given === undefined ? Date.now() % 1_000_000 : Number(given);
}

/** Where scenarios leave their figures for tools/resilience/report.ts. */
export function figuresDir(): string {
  return process.env.EDGE_EXIT_RESILIENCE_FIGURES ?? path.join(os.tmpdir(), 'edge-exit-resilience');
}

/** Logs a scenario's figures in the test output and keeps them for the report. */
export function recordFigures(t: ExecutionContext, scenario: string, figures: Record<string, unknown>): void {
  t.log(`${scenario}: ${JSON.stringify(figures)}`);
  fs.mkdirSync(figuresDir(), { recursive: true });
  fs.writeFileSync(path.join(figuresDir(), `${scenario}.json`), JSON.stringify({ scenario, recordedAt: new Date().toISOString(), ...figures }, null, 2));
}

/** Every frame stops at exit 1 unsure of itself (thresholds of 1 are never met), so nearly every frame is offloaded. */
export const OFFLOAD_EVERY_FRAME = {
  policy: { policy: 'max-probability', thresholds: [1, 1, 1, 1], maxExit: 1 },
  controller: { enabled: false },
  offload: { mode: 'features', minConfidence: 1, deadlineMs: 15_000 },
} as const;

/** `edge-exit server` logged in as the offload server, stopped when the test ends. */
export async function startServerProcess(
  t: ExecutionContext,
  broker: SecuredBroker,
  agentPackage: AgentPackage,
  serverId = 'resilience-rack',
  env: Record<string, string> = {},
): Promise<CliProcess> {
  const server = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', broker.url, '--username', SERVER_USER, '--server-id', serverId], {
    EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir,
    ...broker.serverEnv,
    ...env,
  });
  t.teardown(() => server.stop());
  await server.waitForOutput(/subscribed to/);
  return server;
}

/** Builds the small real package once for a test file (in its before hook); the getter hands it to the tests. */
export function tinyAgentPackageForFile(): () => AgentPackage {
  let built: AgentPackage | undefined;
  test.before(async () => {
    const { modelsDir, buildConfig } = await buildTinyAgentPackage();
    built = { modelsDir, buildConfig };
  });
  return () => built!;
}
