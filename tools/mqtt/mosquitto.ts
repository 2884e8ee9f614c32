/** A real Mosquitto 2 for tests and benchmarks: MQTT 5 and shared subscriptions, on a free loopback port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Where Debian puts the broker; CI installs the package. */
export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((file) => existsSync(file));

export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export interface MosquittoOptions {
  /**
   * A TLS listener that requires client certificates signed by `caFile`. Started as root,
   * Mosquitto drops to its own user before loading these, so they must be readable by it.
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** Only the accounts of this mosquitto_passwd file may connect; anonymous clients are refused. */
  passwordFile?: string;
  /** An ACL file (acl_file): what each account may read and write. */
  aclFile?: string;
}

/** A real Mosquitto 2 (MQTT 5, shared subscriptions) on a free loopback port; `stop` then `start` keeps the port. */
export interface MosquittoBroker {
  url: string;
  /** SIGTERM: a clean shutdown. */
  stop(): Promise<void>;
  /** SIGKILL: the broker crashes, or its host loses power; with persistence off, it forgets every session. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  if (!MOSQUITTO) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edge-exit-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  const lines = [`listener ${port} 127.0.0.1`, 'persistence false'];
  // Without TCP_NODELAY small MQTT packets wait on Nagle and delayed ACKs (about 40 ms each way).
  lines.push('set_tcp_nodelay true');
  lines.push(options.passwordFile ? `allow_anonymous false\npassword_file ${options.passwordFile}` : 'allow_anonymous true');
  if (options.aclFile) lines.push(`acl_file ${options.aclFile}`);
  if (options.tls) lines.push(`cafile ${options.tls.caFile}`, `certfile ${options.tls.certFile}`, `keyfile ${options.tls.keyFile}`, 'require_certificate true');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  let child: ChildProcess | undefined;
  const start = async () => {
    // Its log is read (and only the tail kept) so that a broker that will not start says why.
    const started = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    let log = '';
    started.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-2000)));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`mosquitto exited (${started.exitCode}) before listening on ${port}:\n${log}`);
      const ok = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const signal = async (name: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill(name);
    await exited;
  };
  await start();
  return { url: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`, stop: () => signal('SIGTERM'), kill: () => signal('SIGKILL'), start };
}
