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

export interface FirmwareBridge {
  readonly name: string;
  /** Never rejects for a bad or absent sensor: such readings are left out and listed in `missing`. */
  read(): Promise<BridgeReading>;
  /** Fan PWM duty, 0..1. */
  setFan?(duty: number): Promise<void>;
  setLed?(on: boolean): Promise<void>;
  setLowBatteryAlert?(on: boolean): Promise<void>;
  close(): Promise<void>;
}

/** The scalar fields of BridgeReading, which merging and `missing` bookkeeping treat alike. */
export const SCALAR_READINGS = ['stateOfCharge', 'voltageV', 'currentA', 'powerW', 'charging'] as const;
export type ScalarReading = (typeof SCALAR_READINGS)[number];
