import fs from 'node:fs/promises';

/**
 * The part of an SMBus/I2C bus the chip drivers use. The `i2c-bus` package's promisified bus
 * (openPromisified) satisfies it; tests give a fake with register maps.
 */
export interface I2cBus {
  /** SMBus read word: the first byte on the wire is the low byte of the result. */
  readWord(address: number, command: number): Promise<number>;
  close(): Promise<void>;
}

/** Raised when the I2C bus cannot be opened; the message says what to install or enable. */
export class I2cUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'I2cUnavailableError';
  }
}

export function swapBytes(word: number): number {
  return ((word & 0xff) << 8) | ((word >> 8) & 0xff);
}

export function toSigned16(word: number): number {
  return word & 0x8000 ? word - 0x10000 : word;
}

/**
 * A 16-bit register of a chip that sends its most significant byte first (MAX17048, INA219).
 * SMBus readWord assumes the opposite order, so the bytes are swapped back.
 */
export async function readRegister(bus: I2cBus, address: number, register: number): Promise<number> {
  return swapBytes(await bus.readWord(address, register));
}

export function hex(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

/**
 * Opens /dev/i2c-<busNumber> through `i2c-bus`, loaded only now: its native addon is built at
 * npm install and is of no use on a machine without I2C.
 */
export async function openI2cBus(busNumber: number): Promise<I2cBus> {
  let i2c: typeof import('i2c-bus');
  try {
    i2c = await import('i2c-bus');
  } catch (error) {
    throw new I2cUnavailableError(
      `The i2c-bus package could not be loaded (${(error as Error).message}). It is a native addon built by node-gyp ` +
        'at npm install: install g++, make and python3, then run `npm rebuild i2c-bus`.',
      { cause: error },
    );
  }
  const device = `/dev/i2c-${busNumber}`;
  try {
    // i2c-bus opens the device node only at the first transfer; check it now for a clear error.
    await fs.access(device, fs.constants.R_OK | fs.constants.W_OK);
    return await i2c.openPromisified(busNumber);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const fix =
      code === 'ENOENT'
        ? 'enable I2C (Raspberry Pi: dtparam=i2c_arm=on in config.txt, or raspi-config; `i2cdetect -l` lists the buses)'
        : code === 'EACCES'
          ? 'add the agent user to the i2c group'
          : 'check the bus number with `i2cdetect -l`';
    throw new I2cUnavailableError(`Cannot open ${device}: ${(error as Error).message}; ${fix}.`, { cause: error });
  }
}
