import net from 'node:net';

/**
 * A loopback port in front of a broker that the test opens and shuts: shut, it
 * accepts each connection and closes it at once (a broker that is down, seen from
 * the client); open, it pipes connections through to the broker. Every connection
 * attempt is timed, so a test can see when a client retries.
 */
export class TcpGate {
  /** performance.now() of every connection accepted, in order. */
  readonly attempts: number[] = [];
  private target: number | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  static async listen(): Promise<TcpGate> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new TcpGate(server, (server.address() as net.AddressInfo).port);
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket): void {
    this.attempts.push(performance.now());
    for (const listener of this.listeners) listener();
    if (this.target === undefined) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        other.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  /** Connections go through to the broker on this port from now on. */
  open(brokerPort: number): void {
    this.target = brokerPort;
  }

  /** Cuts every connection through the gate, as a broker crash would, and refuses new ones. */
  shut(): void {
    this.target = undefined;
    for (const socket of this.sockets) socket.destroy();
  }

  /** Resolves once `count` connection attempts in all have been made. */
  waitForAttempts(count: number, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`${this.attempts.length} connection attempts within ${timeoutMs} ms, waiting for ${count}`));
      }, timeoutMs);
      const check = () => {
        if (this.attempts.length < count) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
      check();
    });
  }

  async close(): Promise<void> {
    this.shut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
