/** A reading that a bridge should have had but could not get, and why (file path, register, frame...). */
export interface MissingReading {
  /**
   * A field of BridgeReading (`stateOfCharge`, `powerW`, ...), or `temperaturesC.<sensor>` /
   * `tripPointsC.<zone>/trip_point_<K>` for one entry of those records.
   */
  reading: string;
  reason: string;
}

export interface TripPoint {
  /** passive, active, hot or critical, as the kernel's thermal zones name them. */
  type: string;
  temperatureC: number;
}

/** One snapshot of the gateway's power and thermal state; every bridge returns this same shape. */
export interface BridgeReading {
  /** When the values were measured (ms since epoch); older than now when a source repeats its last good reading. */
  at: number;
  /** 0..1. */
  stateOfCharge?: number;
  /** Battery voltage when a battery gauge gives it, else the voltage of the measured supply rail. */
  voltageV?: number;
  /** Current at that point: positive while the gateway draws (battery discharging), negative while the battery charges. */
  currentA?: number;
  /** Power drawn by the gateway where it is measured (same sign rule as currentA). */
  powerW?: number;
  /** External power is feeding the gateway and the battery is not being drained (charging or full). */
  charging?: boolean;
  temperaturesC: Record<string, number>;
  tripPointsC: Record<string, TripPoint[]>;
  /** readings the bridge should have but could not get, each with why */
  missing: MissingReading[];
}

/** Why the board last powered up, as the power-management side saw it. */
export const WAKE_REASONS = ['timer', 'motion', 'button', 'power'] as const;
export type WakeReason = (typeof WAKE_REASONS)[number];

/** A power-down the bridge arms: the board is woken after `seconds`, or earlier by motion when asked. */
export interface PowerDownRequest {
  seconds: number;
  wakeOnMotion: boolean;
  /** Time the host needs to shut down cleanly before power may be cut (a microcontroller waits this long). */
  graceSeconds: number;
}

export interface FirmwareBridge {
  readonly name: string;
  /** Never rejects for a bad or absent sensor: such readings are left out and listed in `missing`. */
  read(): Promise<BridgeReading>;
  /** Fan PWM duty, 0..1. */
  setFan?(duty: number): Promise<void>;
  setLed?(on: boolean): Promise<void>;
  setLowBatteryAlert?(on: boolean): Promise<void>;
  /**
   * Arms the wake-up for a power-down (an RTC alarm, a microcontroller's timer); resolves once
   * the mechanism has taken it, and the host then shuts down. Rejects, with the reason, when it
   * could not be armed: the host must then stay up.
   */
  armWake?(request: PowerDownRequest): Promise<void>;
  /** Why the board last powered up, when the bridge can tell. */
  wakeReason?(): WakeReason | undefined;
  /** A motion sensor's (PIR) latest edge, in ms on the agent's clock; undefined before the first. */
  lastMotionAt?(): number | undefined;
  close(): Promise<void>;
}

/** The scalar fields of BridgeReading, which merging and `missing` bookkeeping treat alike. */
export const SCALAR_READINGS = ['stateOfCharge', 'voltageV', 'currentA', 'powerW', 'charging'] as const;
export type ScalarReading = (typeof SCALAR_READINGS)[number];

/**
 * The time the agent runs by: on a gateway the monotonic clock (the wall clock steps: NTP on a board
 * without an RTC, an operator), with the wall clock for stamps; in the simulator, simulated seconds
 * that advance by each frame's interval, so a day passes in minutes.
 */
export interface Clock {
  /** wall: real time (monotonic for timing, the wall clock for stamps); simulated: a simulator's own time, which the log keeps beside the real one. */
  readonly kind: 'wall' | 'simulated';
  /** For intervals, pacing and durations: monotonic on a gateway (never steps), simulated time in the simulator. */
  nowMs(): number;
  /** The calendar time (ms since epoch), for stamps and times of day: the wall clock on a gateway, simulated time in the simulator. */
  wallMs(): number;
  /** Waits out a frame slot (really sleeps on a gateway; advances simulated time in the simulator). */
  wait(ms: number): Promise<void>;
}

/** Where the energy of the agent's work goes: nowhere on a gateway (the battery is real); into a simulated battery and heatsink otherwise. */
export interface EnergySink {
  /** Energy the agent's work added above idle, J. */
  consume(joules: number): void;
  /** Whether the bridge's power reading is a measurement; a simulator's is made from consume(). */
  readonly measuresBoardPower: boolean;
}

/**
 * What the agent runs on, seen through the same interfaces whether it is real or
 * simulated: the bridge, the clock, the energy sink and how much slower the device
 * computes than this machine.
 */
export interface Platform {
  bridge: FirmwareBridge;
  clock: Clock;
  energy: EnergySink;
  /** Device compute time over this machine's (1 on the device itself). */
  computeTimeScale: number;
  /** True once the platform cannot go on: a simulated battery that has run flat ends the demo. */
  exhausted(): boolean;
}
