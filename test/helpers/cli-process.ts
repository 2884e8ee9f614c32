import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../agent/config/paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin', 'edge-exit.js');

/**
 * An `edge-exit` command in its own process, as an operator or a service manager
 * runs it, with its output collected and event-driven waits on it.
 */
export class CliProcess {
  readonly exited: Promise<number | null>;
  private text = '';
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => {
      this.text += chunk.toString();
      for (const listener of this.listeners) listener();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Everything it printed (logs and status lines), stdout and stderr together. */
  get output(): string {
    return this.text;
  }

  /** The process id, for reading its RSS, threads and descriptors under /proc. */
  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the match as soon as the output shows it; fails if the process exits or the time runs out first. */
  waitForOutput(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`the process did not print ${pattern} within ${timeoutMs} ms; it printed:\n${this.text}`)), timeoutMs);
      const check = () => {
        const match = this.text.match(pattern);
        if (match) finish(undefined, match);
      };
      const finish = (error?: Error, match?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) reject(error);
        else resolve(match!);
      };
      this.listeners.add(check);
      void this.exited.then((code) => finish(new Error(`the process exited (${code}) without printing ${pattern}; it printed:\n${this.text}`)));
      check();
    });
  }

  /** SIGTERM, as a service manager stops it. */
  async stop(): Promise<number | null> {
    return this.kill('SIGTERM');
  }

  /** Sends a signal and returns at once (kill() waits for the exit). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Any signal; SIGKILL stands for a crash or a power cut: nothing of the process runs after it. */
  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}
