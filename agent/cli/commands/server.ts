import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { logger } from '../../log/logger.js';
import { loadModelPackage } from '../../model-package/load.js';
import { OffloadServer } from '../../../server/offload-server.js';
import { ensureModelPackage } from './build-model.js';

export interface ServerOptions {
  config: string;
  broker: string;
  workers: string;
  shareGroup?: string;
  protocol: string;
  prefix?: string;
  threads: string;
}

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'edge-exit.js');

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
  const built = await ensureModelPackage(options.config);
  if (workers > 1 && !options.shareGroup) {
    throw new Error('--workers above 1 needs --share-group: without a shared subscription every worker would answer every request (aedes has none; use Mosquitto)');
  }
  if (workers === 1) {
    const server = await OffloadServer.start({
      pkg: loadModelPackage(built.dir),
      brokerUrl: options.broker,
      protocolVersion,
      shareGroup: options.shareGroup,
      prefix: options.prefix,
      interpreter: { backend: 'xnnpack', threads: Number(options.threads) },
    });
    const stop = async () => {
      await server.close();
      logger.info(`offload server stopped: ${JSON.stringify(server.stats)}`);
      process.exit(0);
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
    return;
  }
  const args = ['server', '-c', options.config, '--broker', options.broker, '--workers', '1', '--share-group', options.shareGroup!, '--protocol', String(protocolVersion), '--threads', options.threads];
  if (options.prefix) args.push('--prefix', options.prefix);
  const children: ChildProcess[] = Array.from({ length: workers }, () => fork(CLI, args, { stdio: 'inherit' }));
  const stop = () => children.forEach((child) => child.kill('SIGTERM'));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.all(children.map((child) => new Promise((resolve) => child.once('exit', resolve))));
}

