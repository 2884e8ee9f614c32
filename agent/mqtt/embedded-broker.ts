import net from 'node:net';
import { Aedes } from 'aedes';

/**
 * The broker of the default run: aedes in this process on loopback, so the
 * demo needs nothing installed. It speaks MQTT 3.1.1 only (no shared
 * subscriptions, no MQTT 5 properties); real fleets use Mosquitto or similar.
 */
export async function startEmbeddedBroker(port: number): Promise<{ url: string; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(error.code === 'EADDRINUSE' ? `port ${port} is taken: set mqtt.embeddedPort, or mqtt.url to use that broker` : error.message)),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    // Outside clients (mosquitto_sub, Home Assistant) would hold server.close() open until they leave: they are cut off.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        broker.close();
      }),
  };
}
