import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { type AgentConfig, applyEnvironmentOverrides, parseMqttSettings } from '../../agent/config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { definedOnly } from '../../agent/mqtt/payloads.js';
import { serverIdProblem } from '../../agent/mqtt/topics.js';
import { OffloadServer } from '../../server/offload-server.js';
import { FleetPage } from '../../server/fleet/fleet-page.js';
import { openPackage } from '../open-package.js';

export interface ServerOptions {
  config: string;
  broker?: string;
  workers: string;
  shareGroup?: string;
  protocol: string;
  prefix?: string;
  threads: string;
  username?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverId?: string;
  webPort?: string;
  webHost: string;
}

export const DEFAULT_SERVER_BROKER = 'mqtt://127.0.0.1:1883';

/** The flags that carry connection settings, as the options object names them and as the command line spells them. */
const CONNECTION_FLAGS = { broker: '--broker', prefix: '--prefix', username: '--username', caFile: '--ca-file', certFile: '--cert-file', keyFile: '--key-file' } as const;

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'edge-exit.js');

/**
 * The server's broker settings, validated by the agent's own mqtt schema: the
 * EDGE_EXIT__MQTT__* environment (the password is read from there only, so it never
 * shows in a process list), with the command-line flags laid over it.
 */
export function serverMqttSettings(options: ServerOptions, env: NodeJS.ProcessEnv = process.env): AgentConfig['mqtt'] {
  const fromEnv = applyEnvironmentOverrides({}, env).mqtt;
  const flags = definedOnly({ url: options.broker, prefix: options.prefix, username: options.username, caFile: options.caFile, certFile: options.certFile, keyFile: options.keyFile });
  const merged = { url: DEFAULT_SERVER_BROKER, ...(typeof fromEnv === 'object' && fromEnv !== null ? fromEnv : {}), ...flags };
  return parseMqttSettings(merged, 'server broker settings (flags and EDGE_EXIT__MQTT__* environment)');
}

/**
 * The availability id of each worker: `--server-id` as given for one worker, `<id>-1`,
 * `<id>-2`... for several (each worker's retained `online` needs its own topic);
 * undefined leaves each worker its default (host name and process id).
 */
export function workerServerIds(serverId: string | undefined, workers: number): string[] | undefined {
  if (serverId === undefined) return undefined;
  const ids = workers === 1 ? [serverId] : Array.from({ length: workers }, (_, i) => `${serverId}-${i + 1}`);
  const problem = ids.map(serverIdProblem).find((p) => p !== undefined);
  if (problem) throw new RangeError(`--server-id: ${problem}${workers > 1 ? ` (with --workers ${workers} each worker adds -1 to -${workers})` : ''}`);
  return ids;
}

const LOOPBACK = ['127.0.0.1', '::1', 'localhost'];

/** The fleet page when --web-port is given; off localhost it needs EDGE_EXIT__WEB__TOKEN (never a flag: a process list would show it). */
async function startFleetPage(options: ServerOptions, mqtt: AgentConfig['mqtt']): Promise<FleetPage | undefined> {
  if (options.webPort === undefined) return undefined;
  const port = Number(options.webPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`--web-port must be a port number (0 picks a free one), got ${options.webPort}`);
  const token = process.env.EDGE_EXIT__WEB__TOKEN;
  if (token !== undefined && token.length < 16) throw new RangeError('EDGE_EXIT__WEB__TOKEN must be at least 16 characters');
  if (token === undefined && !LOOPBACK.includes(options.webHost)) {
    throw new RangeError(`--web-host ${options.webHost} is not a loopback address, so EDGE_EXIT__WEB__TOKEN is required (a long random string), or keep --web-host 127.0.0.1`);
  }
  const page = await FleetPage.start({ host: options.webHost, port, token, brokerUrl: mqtt.url!, prefix: mqtt.prefix, mqtt });
  logger.info(`fleet page on http://${options.webHost}:${page.port}/, metrics on /metrics`);
  return page;
}

/**
 * `edge-exit server`: N worker processes, each with its own interpreters and
 * MQTT client. With a share group (Mosquitto) they split the requests; without
 * one every worker would receive every request, so only one runs.
 */
export async function serverCommand(options: ServerOptions): Promise<void> {
  const workers = Number(options.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`--workers must be an integer in [1, 64], got ${options.workers}`);
  const protocolVersion = Number(options.protocol);
  if (protocolVersion !== 4 && protocolVersion !== 5) throw new RangeError(`--protocol must be 4 (MQTT 3.1.1) or 5, got ${options.protocol}`);
  // Before the package: a settings mistake is reported at once, not after a build.
  const mqtt = serverMqttSettings(options);
  const workerIds = workerServerIds(options.serverId, workers);
  if (workers > 1 && !options.shareGroup) {
    throw new Error('--workers above 1 needs --share-group: without a shared subscription every worker would answer every request (aedes has none; use Mosquitto)');
  }
  const fleet = await startFleetPage(options, mqtt);
  if (workers === 1) {
    const server = await OffloadServer.start({
      pkg: await openPackage(options.config),
      brokerUrl: mqtt.url!,
      mqtt,
      protocolVersion,
      shareGroup: options.shareGroup,
      prefix: mqtt.prefix,
      serverId: workerIds?.[0],
      interpreter: { backend: 'xnnpack', threads: Number(options.threads) },
      // Reached at last but refused: a service manager should see the failure, not a server that never answers.
      onRefused: () => process.exit(1),
    });
    const stop = async () => {
      await fleet?.close();
      await server.close();
      logger.info(`offload server stopped: ${JSON.stringify(server.stats)}`);
      process.exit(0);
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
    return;
  }
  // Each worker gets the flags it was given; the environment (and so the password) it inherits.
  const connection = Object.entries(CONNECTION_FLAGS).flatMap(([field, flag]) => {
    const value = options[field as keyof typeof CONNECTION_FLAGS];
    return value === undefined ? [] : [flag, value];
  });
  const args = ['server', '-c', options.config, '--workers', '1', '--share-group', options.shareGroup!, '--protocol', String(protocolVersion), '--threads', options.threads, ...connection];
  const children: ChildProcess[] = Array.from({ length: workers }, (_, i) => fork(CLI, [...args, ...(workerIds ? ['--server-id', workerIds[i]!] : [])], { stdio: 'inherit' }));
  const stop = () => {
    void fleet?.close();
    children.forEach((child) => child.kill('SIGTERM'));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.all(children.map((child) => new Promise((resolve) => child.once('exit', resolve))));
}
