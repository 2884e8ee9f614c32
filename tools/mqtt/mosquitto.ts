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

/** A real Mosquitto 2 (MQTT 5, shared subscriptions) on a free loopback port; `restart` keeps the port. */
export async function startMosquitto(): Promise<{ url: string; stop(): Promise<void>; start(): Promise<void> }> {
  if (!MOSQUITTO) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edge-exit-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  // Without TCP_NODELAY small MQTT packets wait on Nagle and delayed ACKs (about 40 ms each way).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`);
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, stop, start };
}
