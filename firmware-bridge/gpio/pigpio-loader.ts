import fs from 'node:fs/promises';
import path from 'node:path';

/** The part of one pigpio Gpio object the actuators use. */
export interface PigpioPin {
  digitalWrite(level: number): unknown;
  pwmWrite(dutyCycle: number): unknown;
  pwmFrequency(frequency: number): unknown;
  hardwarePwmWrite(frequency: number, dutyCycle: number): unknown;
}

/** The part of the pigpio module the actuators use. */
export interface Pigpio {
  Gpio: { new (pin: number, options: { mode: number }): PigpioPin; OUTPUT: number };
  initialize(): void;
  terminate(): void;
}

export type PigpioLoad = { ok: true; pigpio: Pigpio } | { ok: false; reason: string };

export interface PigpioLoadOptions {
  /** Where /proc is looked for (tests point it at a fake tree). */
  root?: string;
  /** Package to import; tests name one that is not installed. */
  moduleName?: string;
}

/**
 * Loads pigpio only when GPIO is asked for, and says why when it cannot work: it drives the
 * Broadcom GPIO of a Raspberry Pi 1-4 through /dev/mem, so it needs such a Pi, root, the pigpio
 * C library and no pigpiod daemon holding the hardware. On a Pi 5, a Jetson or x86 it cannot.
 */
export async function loadPigpio(options: PigpioLoadOptions = {}): Promise<PigpioLoad> {
  const modelFile = path.join(options.root ?? '/', 'proc', 'device-tree', 'model');
  let model: string | undefined;
  try {
    // The device tree ends strings with a NUL byte.
    model = (await fs.readFile(modelFile, 'utf8')).replace(/\0/g, '').trim();
  } catch {
    model = undefined;
  }
  if (!model || !/Raspberry Pi/i.test(model)) {
    return { ok: false, reason: `not a Raspberry Pi (${model ? `model: ${model}` : `no ${modelFile}`}); pigpio drives the GPIO of a Raspberry Pi 1-4 only` };
  }
  if (/Raspberry Pi 5/i.test(model)) {
    return { ok: false, reason: `${model}: pigpio does not support the Pi 5, whose GPIO sits on the RP1 chip; use the kernel's pwm-fan and gpio-leds drivers instead` };
  }
  if (process.getuid && process.getuid() !== 0) {
    return { ok: false, reason: 'pigpio needs root (it maps /dev/mem); run the agent as root' };
  }

  const moduleName = options.moduleName ?? 'pigpio';
  let imported: { default?: Pigpio } & Partial<Pigpio>;
  try {
    imported = (await import(moduleName)) as typeof imported;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      return { ok: false, reason: `${moduleName} is not installed: apt install pigpio (the C library), then npm install ${moduleName}` };
    }
    return { ok: false, reason: `${moduleName} could not be loaded: ${(error as Error).message}` };
  }
  const pigpio = (imported.default ?? imported) as Pigpio;
  try {
    pigpio.initialize();
  } catch (error) {
    return {
      ok: false,
      reason: `${moduleName} is installed but its C library cannot start here (${(error as Error).message}); it needs the pigpio C library, root, and no pigpiod daemon running`,
    };
  }
  return { ok: true, pigpio };
}
