import { spawn } from 'node:child_process';
import type { DutyCycle } from '../controller/lifetime-planner.js';
import type { SleepOutcome } from '../pipeline/frame-pipeline.js';
import type { FirmwareBridge, PowerDownRequest } from '../../firmware-bridge/types.js';
import type { PowerCycle } from '../../firmware-bridge/simulated.js';

/** What must be finished before the board may power down; each says what it is waiting for, or nothing. */
export interface SleepBlockers {
  /** Offload requests whose answer can still arrive (the link is up). */
  offloadAnswersPending(): number;
  /** config/set messages received and not yet applied and saved. */
  configChangesPending(): number;
  /** An event going on, or its row and snapshot not yet written. */
  eventPending(): string | undefined;
}

export interface PowerManagerOptions {
  bridge: FirmwareBridge;
  blockers: SleepBlockers;
  /** Time the host needs to shut down cleanly before a microcontroller may cut the power. */
  graceSeconds: number;
  /** Writes what is queued for the log before a simulated power cycle (a real one stops every part). */
  flush: () => void;
}

/** A simulator's board, which sleeps in simulated time instead of halting the machine. */
interface SimulatedPowerCycle {
  powerCycle(): PowerCycle;
}

function simulatesPowerCycles(bridge: FirmwareBridge): bridge is FirmwareBridge & SimulatedPowerCycle {
  return typeof (bridge as Partial<SimulatedPowerCycle>).powerCycle === 'function';
}

/**
 * Takes the board down when the plan says to sleep, and only then: never while an offload
 * answer that can still arrive, a config change or an event's snapshot is pending. The wake-up
 * is armed first (an RTC alarm, a microcontroller's timer or its PIR); if it cannot be, the
 * board stays up. A simulator's board sleeps in simulated time; a real one halts after every
 * part has stopped.
 */
export class PowerManager {
  /** The wake-up armed for a real halt, once the loop has been told to end. */
  haltArmed: PowerDownRequest | undefined;

  constructor(private readonly options: PowerManagerOptions) {}

  /** What keeps the board up now, in words; undefined when nothing does. */
  blocker(): string | undefined {
    const { blockers } = this.options;
    const answers = blockers.offloadAnswersPending();
    if (answers > 0) return `${answers} offload answer${answers === 1 ? '' : 's'} pending`;
    const changes = blockers.configChangesPending();
    if (changes > 0) return `${changes} config change${changes === 1 ? '' : 's'} pending`;
    return blockers.eventPending();
  }

  async powerDown(duty: DutyCycle): Promise<SleepOutcome> {
    const blocked = this.blocker();
    if (blocked) return { kind: 'postponed', why: blocked };
    const { bridge } = this.options;
    if (!bridge.armWake) {
      return { kind: 'refused', why: `the ${bridge.name} bridge cannot wake the board: use a sysfs bridge with rtc (a Pi 5), a serial power-management microcontroller, or the simulator` };
    }
    const request: PowerDownRequest = { seconds: Math.round(duty.sleepS), wakeOnMotion: duty.wakeOnMotion, graceSeconds: this.options.graceSeconds };
    try {
      await bridge.armWake(request);
    } catch (error) {
      return { kind: 'refused', why: `the wake-up could not be armed: ${(error as Error).message}` };
    }
    if (simulatesPowerCycles(bridge)) {
      this.options.flush();
      try {
        const cycle = bridge.powerCycle();
        return { kind: 'slept', offS: cycle.offS, wokeBy: cycle.reason };
      } catch (error) {
        return { kind: 'refused', why: (error as Error).message };
      }
    }
    this.haltArmed = request;
    return { kind: 'halting' };
  }
}

/** Runs the halt command once every part has stopped; rejects naming the command and the fix. */
export function runHaltCommand(command: readonly string[]): Promise<void> {
  const [program, ...args] = command;
  return new Promise((resolve, reject) => {
    const child = spawn(program!, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', (error) => reject(new Error(`planner.haltCommand ${command.join(' ')}: ${error.message}; set it to a command that powers the board off (systemctl poweroff)`)));
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`planner.haltCommand ${command.join(' ')} exited ${code}${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}; the service user may need permission to power off (see deploy/README.md)`));
    });
  });
}
