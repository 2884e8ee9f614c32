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
  /** dpkg's status file, which says which libedgetpu package is installed (default /var/lib/dpkg/status). */
  dpkgStatus?: string;
}

export const EDGETPU_LIBRARY = 'libedgetpu.so.1';

/** The USB accelerator enumerates as Global Unichip before its firmware loads, as Google after. */
const CORAL_USB_IDS = [
  { vendor: '1a6e', product: '089a' },
  { vendor: '18d1', product: '9302' },
];

/**
 * The real system's roots. EDGE_EXIT_SYSROOT puts /sys, /dev and dpkg's status
 * under another directory (a test's fake tree, or a chroot being prepared).
 */
export function defaultSystemRoots(env: NodeJS.ProcessEnv = process.env): SystemRoots {
  const fromEnv = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const root = env.EDGE_EXIT_SYSROOT ?? '/';
  return {
    sys: path.join(root, 'sys'),
    dev: path.join(root, 'dev'),
    dpkgStatus: path.join(root, 'var', 'lib', 'dpkg', 'status'),
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

/**
 * The Edge TPU runtime version a compiler release's models need, from Coral's
 * table of compiler and runtime versions (compiler 16.0 needs runtime 14; 14.1
 * and 15.0 need 13; 2.1 needs 13, 2.0 needs 12; 1.0 needs 10). Coral's runtime
 * packages carry the same release numbers, so this also turns a libedgetpu
 * package version into the runtime version it provides.
 */
export function runtimeVersionForCompiler(version: string): number {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major >= 16) return 14;
  if (major >= 14) return 13;
  if (major === 2) return minor >= 1 ? 13 : 12;
  return 10;
}

export interface EdgeTpuRuntimeInfo {
  /** The Debian package and its version, e.g. libedgetpu1-std 16.0. */
  package: string;
  packageVersion: string;
  runtimeVersion: number;
}

/** Which libedgetpu package dpkg says is installed; undefined when none is (or the runtime was installed by hand). */
export function installedEdgeTpuRuntime(roots: SystemRoots = defaultSystemRoots()): EdgeTpuRuntimeInfo | undefined {
  let text: string;
  try {
    text = fs.readFileSync(roots.dpkgStatus ?? '/var/lib/dpkg/status', 'utf8');
  } catch {
    return undefined;
  }
  for (const stanza of text.split(/\n\s*\n/)) {
    const name = /^Package:\s*(libedgetpu1-\S+)\s*$/m.exec(stanza)?.[1];
    const installed = /^Status:.*\binstalled\s*$/m.test(stanza);
    const version = /^Version:\s*(\d+(?:\.\d+)*)/m.exec(stanza)?.[1];
    if (name && installed && version) return { package: name, packageVersion: version, runtimeVersion: runtimeVersionForCompiler(version) };
  }
  return undefined;
}
