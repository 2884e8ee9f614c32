import type { Duplex } from 'node:stream';
import { SerialBridge, type SerialBridgeOptions } from './serial-bridge.js';

export interface SerialPortOptions extends Omit<SerialBridgeOptions, 'name'> {
  /** The tty, e.g. /dev/ttyAMA0 (Pi GPIO UART), /dev/ttyACM0 (RP2040 over USB), /dev/ttyTHS1 (Jetson). */
  path: string;
  baudRate?: number;
  /** After the port fails to open or goes away (USB unplugged), try again this often (ms). */
  reopenAfterMs?: number;
}

/**
 * A SerialBridge on a real tty through the `serialport` package, loaded only here. A port that
 * cannot be opened does not fail the agent: its readings are listed as missing with the reason,
 * and opening is retried.
 */
export async function openSerialBridge(options: SerialPortOptions): Promise<SerialBridge> {
  const bridge = new SerialBridge({ ...options, name: options.path });
  const reopenAfterMs = options.reopenAfterMs ?? 10_000;
  let closed = false;
  let port: Duplex | undefined;
  let retry: NodeJS.Timeout | undefined;

  const scheduleReopen = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void open();
    }, reopenAfterMs);
    // A pending retry must not keep the process alive on its own.
    retry.unref();
  };

  const open = async () => {
    try {
      const opened = await openPort(options.path, options.baudRate ?? 115_200);
      if (closed) {
        opened.destroy();
        return;
      }
      port = opened;
      bridge.attach(opened, opened);
      opened.once('close', scheduleReopen);
    } catch (error) {
      bridge.reportProblem((error as Error).message);
      scheduleReopen();
    }
  };

  bridge.onClose(async () => {
    closed = true;
    clearTimeout(retry);
    port?.destroy();
  });
  await open();
  return bridge;
}

async function openPort(path: string, baudRate: number): Promise<Duplex> {
  let serialport: typeof import('serialport');
  try {
    serialport = await import('serialport');
  } catch (error) {
    throw new Error(
      `The serialport package could not be loaded (${(error as Error).message}); run npm install on the gateway (its native part ships prebuilt for Linux arm/arm64/x64).`,
      { cause: error },
    );
  }
  const port = new serialport.SerialPort({ path, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) =>
    port.open((error) => {
      if (!error) return resolve();
      const text = error.message;
      const fix = /ENOENT|No such file/i.test(text)
        ? 'check the path; on a Pi enable the UART (enable_uart=1 in config.txt) or plug in the USB serial device'
        : /EACCES|Permission denied/i.test(text)
          ? 'add the agent user to the dialout group'
          : /EBUSY|Resource busy|lock/i.test(text)
            ? 'another program holds the port (a serial console on it? remove console=serial0 from cmdline.txt)'
            : 'check the wiring and the path';
      reject(new Error(`Cannot open serial port ${path} at ${baudRate} baud: ${text}; ${fix}.`));
    }),
  );
  return port;
}
