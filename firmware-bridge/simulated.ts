import { emptyReading, round } from './reading.js';
import type { BridgeReading, FirmwareBridge, PowerDownRequest, TripPoint, WakeReason } from './types.js';

export interface SolarProfile {
  /** Panel output at solar noon, W. */
  peakW: number;
  /** Local hours of the day; output follows half a sine between them. */
  sunriseHour?: number;
  sunsetHour?: number;
}

export interface SimulatedBridgeOptions {
  capacityWh?: number;
  initialStateOfCharge?: number;
  /** Drawn all the time on top of the energy the agent reports (OS, camera, radio), W. */
  idlePowerW?: number;
  /** Drawn by the fan at full duty (a 30 mm 5 V fan: about 0.5 W), W; cooling is not free. */
  fanPowerW?: number;
  /** Li-ion cells in series, for the voltage shown. */
  cellsInSeries?: number;
  ambientC?: number;
  initialTemperatureC?: number;
  /** Junction-to-ambient with the fan off, °C/W. */
  thermalResistanceCPerW?: number;
  /** The same with the fan at full duty. */
  fanThermalResistanceCPerW?: number;
  /** Time constant with the fan off, s; the heat capacity it implies stays fixed when the fan runs. */
  thermalTimeConstantS?: number;
  tripPointsC?: TripPoint[];
  /** A charger plugged in from the start. */
  charging?: boolean;
  chargePowerW?: number;
  solar?: SolarProfile;
  /** Simulated epoch at start, ms; also sets the time of day for the solar profile. */
  startAt?: number;
  /** 'real': simulated time follows the wall clock × timeScale; 'manual': only advance() moves it. */
  clock?: 'real' | 'manual';
  /** Simulated seconds per real second (clock 'real'). */
  timeScale?: number;
  /** Drawn while powered down (a microcontroller or the PMIC keeping the wake-up), W. */
  offPowerW?: number;
  /** A boot, from power-up to the agent running: how long, and at what power. */
  bootS?: number;
  bootPowerW?: number;
  /** Simulated seconds at which a motion sensor fires (a scenario's events): they end a sleep that wakes on motion. */
  motionAtS?: number[];
}

/** What a simulated power cycle did. */
export interface PowerCycle {
  reason: WakeReason;
  /** Time powered down, and the energy the boot took. */
  offS: number;
  bootJ: number;
}

/** The thermal zone name the simulator reports, as on a Raspberry Pi. */
export const SIMULATED_ZONE = 'cpu-thermal';

const DEFAULTS = {
  capacityWh: 37, // two 18650 cells of 5 Ah at 3.7 V
  initialStateOfCharge: 1,
  idlePowerW: 2.7, // a Pi 4 idling with a camera attached
  fanPowerW: 0.5,
  cellsInSeries: 1,
  ambientC: 25,
  thermalResistanceCPerW: 8,
  fanThermalResistanceCPerW: 3,
  thermalTimeConstantS: 120,
  tripPointsC: [
    { type: 'passive', temperatureC: 70 },
    { type: 'critical', temperatureC: 85 },
  ],
  charging: false,
  chargePowerW: 10,
  clock: 'real',
  timeScale: 1,
  // A board off with its wake-up armed, and a Linux boot to a running agent: set them to your board's.
  offPowerW: 0.05,
  bootS: 30,
  bootPowerW: 3,
  motionAtS: [] as number[],
} as const;

/** Typical Li-ion open-circuit voltage by state of charge (load sag ignored). */
const CELL_OPEN_CIRCUIT_V: [soc: number, volts: number][] = [
  [0, 3.0],
  [0.05, 3.45],
  [0.1, 3.6],
  [0.2, 3.68],
  [0.4, 3.75],
  [0.6, 3.85],
  [0.8, 3.98],
  [0.9, 4.06],
  [1, 4.2],
];

/** Charge power is integrated in steps no longer than this, so a solar curve over a long advance() stays accurate. */
const MAX_CHARGE_STEP_S = 10;

/**
 * A battery and a heatsink for demos and benchmarks, read like any real bridge. The battery is
 * drained by the energy the agent reports (consume) plus idle power, and charged by a charger or
 * the sun; the temperature follows a first-order model heated by the power drawn, cooled by the fan.
 */
const SIMULATED_STEP_S = 1;

export class SimulatedBridge implements FirmwareBridge {
  readonly name = 'simulated';
  /** The agent loop's clock: simulated time, so a day can pass in minutes. */
  readonly clock: { readonly kind: 'simulated'; nowMs(): number; wallMs(): number; wait(ms: number): Promise<void> };

  private readonly o: Required<Omit<SimulatedBridgeOptions, 'solar' | 'initialTemperatureC' | 'startAt'>> & { solar?: SolarProfile };
  private readonly startAt: number;
  private readonly capacityJ: number;
  private readonly heatCapacityJPerC: number;
  private energyJ: number;
  private temperatureC: number;
  private simulatedS = 0;
  /** Reported energy whose heat is spread over the next time step. */
  private pendingHeatJ = 0;
  private lastLoadW: number;
  private fanDuty = 0;
  private led = false;
  private lowBatteryAlert = false;
  private chargerOn: boolean;
  private lastRealMs = Date.now();
  private armed: PowerDownRequest | undefined;
  private lastWake: WakeReason | undefined;

  constructor(options: SimulatedBridgeOptions = {}) {
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.o = { ...DEFAULTS, tripPointsC: [...DEFAULTS.tripPointsC], ...defined };
    this.startAt = options.startAt ?? Date.now();
    this.capacityJ = this.o.capacityWh * 3600;
    this.energyJ = this.capacityJ * this.o.initialStateOfCharge;
    this.temperatureC = options.initialTemperatureC ?? this.o.ambientC;
    this.heatCapacityJPerC = this.o.thermalTimeConstantS / this.o.thermalResistanceCPerW;
    this.lastLoadW = this.o.idlePowerW;
    this.chargerOn = this.o.charging;
    this.clock = {
      kind: 'simulated',
      nowMs: () => {
        this.sync();
        return this.simulatedNowMs();
      },
      // Simulated time is the calendar the simulation lives in (times of day, a target's start).
      wallMs: () => this.clock.nowMs(),
      wait: async (ms) => {
        if (ms <= 0) return;
        if (this.o.clock === 'manual') this.advance(ms / 1000);
        else await new Promise((resolve) => setTimeout(resolve, ms / this.o.timeScale));
      },
    };
  }

  /** The battery's state of charge now, 0..1. */
  get stateOfCharge(): number {
    this.sync();
    return this.energyJ / this.capacityJ;
  }

  /** Energy the agent spent on its own work (inference), J: taken from the battery now, heat over the next step. */
  consume(joules: number): void {
    if (!(joules >= 0) || !Number.isFinite(joules)) throw new RangeError(`consume() needs a finite energy >= 0 J, got ${joules}`);
    this.sync();
    this.energyJ = Math.max(0, this.energyJ - joules);
    this.pendingHeatJ += joules;
  }

  /** Moves simulated time on by `seconds` (with either clock); `boardW` replaces idle power (powered down, booting). */
  advance(seconds: number, boardW = this.o.idlePowerW): void {
    if (!(seconds >= 0) || !Number.isFinite(seconds)) throw new RangeError(`advance() needs a finite time >= 0 s, got ${seconds}`);
    if (seconds === 0) return;
    // The fan drains the battery but heats the air it moves, not the SoC.
    const baseW = boardW + this.o.fanPowerW * this.fanDuty;
    const loadW = boardW + this.pendingHeatJ / seconds;
    this.pendingHeatJ = 0;

    let chargedJ = 0;
    const steps = Math.ceil(seconds / MAX_CHARGE_STEP_S);
    for (let i = 0; i < steps; i++) {
      const dt = seconds / steps;
      chargedJ += this.chargePowerAt(this.simulatedS + (i + 0.5) * dt) * dt;
    }
    this.energyJ = Math.min(this.capacityJ, Math.max(0, this.energyJ - baseW * seconds + chargedJ));

    // First order: C dT/dt = P - (T - Ta) / R, solved exactly for constant P over the step.
    const resistance = this.thermalResistance();
    const steadyC = this.o.ambientC + loadW * resistance;
    const tau = resistance * this.heatCapacityJPerC;
    this.temperatureC = steadyC + (this.temperatureC - steadyC) * Math.exp(-seconds / tau);

    this.simulatedS += seconds;
    this.lastLoadW = loadW + this.o.fanPowerW * this.fanDuty;
  }

  async armWake(request: PowerDownRequest): Promise<void> {
    if (!(request.seconds >= 1) || !Number.isFinite(request.seconds)) throw new RangeError(`sleep seconds must be at least 1, got ${request.seconds}`);
    this.armed = { ...request };
  }

  wakeReason(): WakeReason | undefined {
    return this.lastWake;
  }

  /** The latest of `motionAtS` that simulated time has passed, as the simulated clock's ms. */
  lastMotionAt(): number | undefined {
    const now = (this.clock.nowMs() - this.startAt) / 1000;
    let latest: number | undefined;
    for (const at of this.o.motionAtS) if (at <= now && (latest === undefined || at > latest)) latest = at;
    return latest === undefined ? undefined : this.startAt + Math.round(latest * 1000);
  }

  /**
   * What a halt after armWake() does to a real board, in simulated time (manual clock): the grace
   * time at idle, powered down (off power, the fan stopped) until the timer or the first motion
   * the sleep may wake on, then a boot charged at boot power.
   */
  powerCycle(): PowerCycle {
    const request = this.armed;
    if (!request) throw new Error('powerCycle(): no wake-up was armed, so a real board would never wake (call armWake first)');
    if (this.o.clock !== 'manual') throw new Error('powerCycle() needs the manual clock: a real-clock simulation cannot skip hours');
    this.armed = undefined;
    this.advance(request.graceSeconds);
    const offAt = this.simulatedS;
    // Motion during the grace time counts too: the microcontroller watches the sensor from the moment it is armed.
    const armedAt = offAt - request.graceSeconds;
    const motion = request.wakeOnMotion ? this.o.motionAtS.find((at) => at > armedAt && at < offAt + request.seconds) : undefined;
    const offS = motion === undefined ? request.seconds : Math.max(0, motion - offAt);
    const fanDuty = this.fanDuty;
    this.fanDuty = 0;
    this.advance(offS, this.o.offPowerW);
    this.advance(this.o.bootS, this.o.bootPowerW);
    this.fanDuty = fanDuty;
    this.lastWake = motion === undefined ? 'timer' : 'motion';
    return { reason: this.lastWake, offS, bootJ: this.o.bootS * this.o.bootPowerW };
  }

  /** The air around the board now (a scenario's day and night); takes effect from the next step. */
  setAmbient(celsius: number): void {
    this.sync();
    this.o.ambientC = celsius;
  }

  setCharging(on: boolean): void {
    this.sync();
    this.chargerOn = on;
  }

  get actuators(): { fanDuty: number; led: boolean; lowBatteryAlert: boolean } {
    return { fanDuty: this.fanDuty, led: this.led, lowBatteryAlert: this.lowBatteryAlert };
  }

  /** Simulated seconds since start. */
  get elapsedS(): number {
    return this.simulatedS;
  }

  async read(): Promise<BridgeReading> {
    this.sync();
    const reading = emptyReading(this.simulatedNowMs());
    const stateOfCharge = this.energyJ / this.capacityJ;
    const volts = this.o.cellsInSeries * cellOpenCircuitVolts(stateOfCharge);
    reading.stateOfCharge = round(stateOfCharge, 9);
    reading.voltageV = round(volts, 4);
    reading.powerW = round(this.lastLoadW, 6);
    const chargeW = this.chargePowerAt(this.simulatedS);
    reading.currentA = round((this.lastLoadW - chargeW) / volts, 6);
    // As a real gauge would say: on external power and the battery not draining.
    reading.charging = chargeW > 0 && chargeW >= this.lastLoadW;
    reading.temperaturesC[SIMULATED_ZONE] = round(this.temperatureC, 4);
    reading.tripPointsC[SIMULATED_ZONE] = this.o.tripPointsC.map((trip) => ({ ...trip }));
    return reading;
  }

  async setFan(duty: number): Promise<void> {
    if (!(duty >= 0 && duty <= 1)) throw new RangeError(`fan duty must be 0..1, got ${duty}`);
    this.sync();
    this.fanDuty = duty;
  }

  async setLed(on: boolean): Promise<void> {
    this.led = on;
  }

  async setLowBatteryAlert(on: boolean): Promise<void> {
    this.lowBatteryAlert = on;
  }

  async close(): Promise<void> {
    // Nothing to release.
  }

  private thermalResistance(): number {
    const { thermalResistanceCPerW: still, fanThermalResistanceCPerW: cooled } = this.o;
    return still - (still - cooled) * this.fanDuty;
  }

  private chargePowerAt(simulatedS: number): number {
    let watts = this.chargerOn ? this.o.chargePowerW : 0;
    const solar = this.o.solar;
    if (solar) {
      const sunrise = solar.sunriseHour ?? 6;
      const sunset = solar.sunsetHour ?? 18;
      const at = new Date(this.startAt + simulatedS * 1000);
      const hour = at.getHours() + at.getMinutes() / 60 + at.getSeconds() / 3600;
      if (hour > sunrise && hour < sunset) watts += solar.peakW * Math.sin((Math.PI * (hour - sunrise)) / (sunset - sunrise));
    }
    return watts;
  }

  /** With the real clock, catches simulated time up with the wall clock. */
  private sync(): void {
    if (this.o.clock !== 'real') return;
    const now = Date.now();
    const realS = (now - this.lastRealMs) / 1000;
    // Steps of at least a simulated second, as a power monitor averages: a read a millisecond after a frame
    // would otherwise report that frame's energy over a millisecond (tens of watts on a Pi).
    if (realS * this.o.timeScale < SIMULATED_STEP_S) return;
    this.lastRealMs = now;
    this.advance(realS * this.o.timeScale);
  }

  /** With the real clock, the time since the last step counts too: steps are a second apart, the clock is not. */
  private simulatedNowMs(): number {
    const unsyncedS = this.o.clock === 'real' ? ((Date.now() - this.lastRealMs) / 1000) * this.o.timeScale : 0;
    return this.startAt + Math.round((this.simulatedS + unsyncedS) * 1000);
  }
}

function cellOpenCircuitVolts(stateOfCharge: number): number {
  const soc = Math.min(1, Math.max(0, stateOfCharge));
  for (let i = 1; i < CELL_OPEN_CIRCUIT_V.length; i++) {
    const [s1, v1] = CELL_OPEN_CIRCUIT_V[i]!;
    if (soc <= s1) {
      const [s0, v0] = CELL_OPEN_CIRCUIT_V[i - 1]!;
      return v0 + ((v1 - v0) * (soc - s0)) / (s1 - s0);
    }
  }
  return CELL_OPEN_CIRCUIT_V.at(-1)![1];
}
