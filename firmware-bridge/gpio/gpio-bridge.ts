import { logger } from '../../common/log/logger.js';
import { emptyReading } from '../reading.js';
import type { BridgeReading, FirmwareBridge } from '../types.js';
import { loadPigpio, type Pigpio, type PigpioLoad, type PigpioPin } from './pigpio-loader.js';

export interface GpioBridgeOptions {
  /** BCM number of the fan's PWM line; 12, 13, 18 and 19 have hardware PWM (needed for 25 kHz fans). */
  fanPin?: number;
  fanPwmHz?: number;
  /** BCM number of the status LED. */
  ledPin?: number;
  /** BCM number of the low-battery alert line. */
  alertPin?: number;
  /** The alert line is asserted low (e.g. an open-drain input on a UPS HAT). */
  alertActiveLow?: boolean;
  /** Loads pigpio; tests hand in a loader for a machine without it. */
  load?: () => Promise<PigpioLoad>;
}

const HARDWARE_PWM_PINS = new Set([12, 13, 18, 19]);
const HARDWARE_PWM_FULL = 1_000_000;
const SOFTWARE_PWM_RANGE = 255;

export interface GpioStatus {
  /** undefined until the first actuator call loads pigpio. */
  available: boolean | undefined;
  reason?: string;
}

/**
 * Fan PWM, status LED and low-battery alert line on a Raspberry Pi's GPIO through pigpio.
 * Reads nothing. pigpio is loaded at the first actuator call; when it cannot work, that is
 * logged once with the reason and the actuators do nothing.
 */
export class GpioBridge implements FirmwareBridge {
  readonly name: string;
  readonly setFan?: (duty: number) => Promise<void>;
  readonly setLed?: (on: boolean) => Promise<void>;
  readonly setLowBatteryAlert?: (on: boolean) => Promise<void>;
  private loading: Promise<Pigpio | undefined> | undefined;
  private readonly pins = new Map<number, PigpioPin>();
  private state: GpioStatus = { available: undefined };

  constructor(private readonly options: GpioBridgeOptions) {
    const { fanPin, ledPin, alertPin } = options;
    this.name = `gpio(${[fanPin !== undefined && `fan ${fanPin}`, ledPin !== undefined && `led ${ledPin}`, alertPin !== undefined && `alert ${alertPin}`].filter(Boolean).join(', ')})`;
    if (fanPin !== undefined) {
      this.setFan = async (duty) => {
        if (!(duty >= 0 && duty <= 1)) throw new RangeError(`fan duty must be 0..1, got ${duty}`);
        await this.drive(fanPin, (pin) => this.writeFan(fanPin, pin, duty));
      };
    }
    if (ledPin !== undefined) this.setLed = (on) => this.drive(ledPin, (pin) => pin.digitalWrite(on ? 1 : 0));
    if (alertPin !== undefined) {
      this.setLowBatteryAlert = (on) => this.drive(alertPin, (pin) => pin.digitalWrite(on !== (options.alertActiveLow ?? false) ? 1 : 0));
    }
  }

  get status(): GpioStatus {
    return { ...this.state };
  }

  async read(): Promise<BridgeReading> {
    return emptyReading(Date.now());
  }

  async close(): Promise<void> {
    const pigpio = this.loading ? await this.loading : undefined;
    if (!pigpio) return;
    if (this.options.ledPin !== undefined) this.pins.get(this.options.ledPin)?.digitalWrite(0);
    pigpio.terminate();
    this.pins.clear();
    this.loading = undefined;
  }

  private async drive(pinNumber: number, write: (pin: PigpioPin) => unknown): Promise<void> {
    const pigpio = await (this.loading ??= this.load());
    if (!pigpio) return;
    let pin = this.pins.get(pinNumber);
    if (!pin) {
      pin = new pigpio.Gpio(pinNumber, { mode: pigpio.Gpio.OUTPUT });
      this.pins.set(pinNumber, pin);
    }
    write(pin);
  }

  private writeFan(pinNumber: number, pin: PigpioPin, duty: number): void {
    const hz = this.options.fanPwmHz ?? 25_000;
    if (HARDWARE_PWM_PINS.has(pinNumber)) {
      pin.hardwarePwmWrite(hz, Math.round(duty * HARDWARE_PWM_FULL));
    } else {
      // pigpio rounds software PWM to its nearest supported frequency (at most 8 kHz at the default sample rate).
      pin.pwmFrequency(hz);
      pin.pwmWrite(Math.round(duty * SOFTWARE_PWM_RANGE));
    }
  }

  private async load(): Promise<Pigpio | undefined> {
    const result = await (this.options.load ?? loadPigpio)();
    if (result.ok) {
      this.state = { available: true };
      return result.pigpio;
    }
    this.state = { available: false, reason: result.reason };
    logger.warn({ bridge: this.name, reason: result.reason }, 'GPIO unavailable: the fan, LED and alert line do nothing');
    return undefined;
  }
}
