import { logger } from '../../common/log/logger.js';

/** One part of the running gateway: started in order by the app, stopped in reverse. */
export interface Unit {
  readonly name: string;
  stop(): Promise<void>;
}

/**
 * Parts started so far, so that a failed start stops exactly what had started, and a
 * stop runs every part's stop even when one of them fails.
 */
export class UnitStack {
  private readonly units: Unit[] = [];

  /** Starts a part and remembers how to stop it. */
  async start<T>(name: string, start: () => T | Promise<T>, stop: (part: T) => void | Promise<void>): Promise<T> {
    const part = await start();
    this.units.push({ name, stop: async () => stop(part) });
    return part;
  }

  get names(): string[] {
    return this.units.map((unit) => unit.name);
  }

  async stopAll(): Promise<void> {
    while (this.units.length > 0) {
      const unit = this.units.pop()!;
      try {
        await unit.stop();
      } catch (error) {
        logger.warn(`stopping ${unit.name} failed: ${(error as Error).message}`);
      }
    }
  }
}
