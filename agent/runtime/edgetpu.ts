import fs from 'node:fs';
import path from 'node:path';

/**
 * Finding a Coral Edge TPU from what the kernel exposes. Every path is taken
 * relative to roots that tests point at a fake tree.
 */
export interface SystemRoots {
  sys: string;
  dev: string;
  /** Directories searched for libedgetpu.so.1, in the loader's usual order. */
  libraryDirs: string[];
}

export const EDGETPU_LIBRARY = 'libedgetpu.so.1';

/** The USB accelerator enumerates as Global Unichip before its firmware loads, as Google after. */
const CORAL_USB_IDS = [
  { vendor: '1a6e', product: '089a' },
  { vendor: '18d1', product: '9302' },
];

export function defaultSystemRoots(env: NodeJS.ProcessEnv = process.env): SystemRoots {
  const fromEnv = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return {
    sys: '/sys',
    dev: '/dev',
    libraryDirs: [
      ...fromEnv,
      '/usr/lib/x86_64-linux-gnu',
      '/usr/lib/aarch64-linux-gnu',
      '/usr/lib',
      '/usr/local/lib',
      '/lib/x86_64-linux-gnu',
      '/lib/aarch64-linux-gnu',
    ],
  };
}

export interface EdgeTpuDevice {
  /** The value for coral-tflite-delegate's `device` option. */
  device: string;
  kind: 'usb' | 'pci';
  where: string;
}

export interface EdgeTpuStatus {
  devices: EdgeTpuDevice[];
  libraryPath: string | undefined;
}

function readTrimmed(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim().toLowerCase();
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export function detectEdgeTpu(roots: SystemRoots = defaultSystemRoots()): EdgeTpuStatus {
  const devices: EdgeTpuDevice[] = [];
  const usbRoot = path.join(roots.sys, 'bus', 'usb', 'devices');
  let usbIndex = 0;
  for (const entry of listDir(usbRoot)) {
    const vendor = readTrimmed(path.join(usbRoot, entry, 'idVendor'));
    const product = readTrimmed(path.join(usbRoot, entry, 'idProduct'));
    if (CORAL_USB_IDS.some((id) => id.vendor === vendor && id.product === product)) {
      devices.push({ device: `usb:${usbIndex}`, kind: 'usb', where: path.join(usbRoot, entry) });
      usbIndex += 1;
    }
  }
  // The gasket/apex driver creates /dev/apex_N for M.2 and Mini PCIe cards.
  const apexDevices = listDir(roots.dev).filter((name) => /^apex_\d+$/.test(name));
  apexDevices.forEach((name, index) => {
    devices.push({ device: `pci:${index}`, kind: 'pci', where: path.join(roots.dev, name) });
  });
  const libraryPath = roots.libraryDirs.map((dir) => path.join(dir, EDGETPU_LIBRARY)).find((file) => fs.existsSync(file));
  return { devices, libraryPath };
}

/** Accepts coral-tflite-delegate's device names: usb, usb:N, pci, pci:N. */
export function parseEdgeTpuDevice(text: string): string {
  if (!/^(usb|pci)(:\d+)?$/.test(text)) {
    throw new Error(`Edge TPU device "${text}" is not valid: use usb, usb:N, pci or pci:N`);
  }
  return text;
}
