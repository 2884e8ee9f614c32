// A Coral Edge TPU where there is none, faked at the OS boundary only: a
// compiler first on PATH (test/fixtures/fake-edgetpu-compiler.ts), a sysfs and
// /dev tree with the USB accelerator in it, a dpkg status file, and a
// libedgetpu.so.1 built here from test/fixtures/fake-libedgetpu.c.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROJECT_ROOT } from '../../agent/config/paths.js';
import type { SystemRoots } from '../../agent/runtime/edgetpu.js';
import { temporaryDir } from './shared.js';

const TFLITE_HEADERS = path.join(PROJECT_ROOT, 'node_modules', 'tfjs-tflite-node', 'cc_deps', 'include');

/** A directory to put first on PATH, holding an `edgetpu_compiler` that is the fake one. */
export function fakeCompilerDir(): string {
  const dir = temporaryDir('edge-exit-fake-compiler-');
  const tsx = fileURLToPath(import.meta.resolve('tsx'));
  const script = path.join(PROJECT_ROOT, 'test', 'fixtures', 'fake-edgetpu-compiler.ts');
  fs.writeFileSync(path.join(dir, 'edgetpu_compiler'), `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${script}" "$@"\n`, { mode: 0o755 });
  return dir;
}

let library: string | undefined;

/** The fake libedgetpu.so.1, compiled once per test process with the system's C compiler. */
export function fakeLibedgetpu(): string {
  if (library) return library;
  const dir = temporaryDir('edge-exit-fake-libedgetpu-');
  const file = path.join(dir, 'libedgetpu.so.1');
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-I', TFLITE_HEADERS, path.join(PROJECT_ROOT, 'test', 'fixtures', 'fake-libedgetpu.c'), '-o', file], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc could not build the fake libedgetpu: ${cc.stderr || cc.error?.message}`);
  library = file;
  return file;
}

export interface FakeEdgeTpuSystem {
  /** For EDGE_EXIT_SYSROOT. */
  root: string;
  /** For LD_LIBRARY_PATH: the directory that holds libedgetpu.so.1, when installed. */
  libDir: string;
  roots: SystemRoots;
  /** Takes the USB accelerator out of the tree (as unplugging it does) or puts it back. */
  plug(present: boolean): void;
}

/**
 * A gateway's tree: a root hub, optionally a Coral USB Accelerator (as it
 * enumerates after its firmware loads, 18d1:9302), the runtime library, and a
 * dpkg status naming the runtime package and its version.
 */
export function fakeEdgeTpuSystem(options: { device?: boolean; library?: boolean; runtimePackage?: string } = {}): FakeEdgeTpuSystem {
  const root = temporaryDir('edge-exit-sysroot-');
  const devices = path.join(root, 'sys', 'bus', 'usb', 'devices');
  const hub = path.join(devices, 'usb1');
  fs.mkdirSync(hub, { recursive: true });
  fs.writeFileSync(path.join(hub, 'idVendor'), '1d6b\n');
  fs.writeFileSync(path.join(hub, 'idProduct'), '0003\n');
  fs.mkdirSync(path.join(root, 'dev'));
  const libDir = path.join(root, 'usr', 'lib');
  fs.mkdirSync(libDir, { recursive: true });
  if (options.library ?? true) fs.copyFileSync(fakeLibedgetpu(), path.join(libDir, 'libedgetpu.so.1'));
  if (options.runtimePackage) {
    fs.mkdirSync(path.join(root, 'var', 'lib', 'dpkg'), { recursive: true });
    const [name, version] = options.runtimePackage.split(' ');
    fs.writeFileSync(
      path.join(root, 'var', 'lib', 'dpkg', 'status'),
      `Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\nPackage: ${name}\nStatus: install ok installed\nArchitecture: arm64\nVersion: ${version}\n`,
    );
  }
  const coral = path.join(devices, '2-1');
  const plug = (present: boolean) => {
    if (!present) return fs.rmSync(coral, { recursive: true, force: true });
    fs.mkdirSync(coral, { recursive: true });
    fs.writeFileSync(path.join(coral, 'idVendor'), '18d1\n');
    fs.writeFileSync(path.join(coral, 'idProduct'), '9302\n');
  };
  plug(options.device ?? true);
  return {
    root,
    libDir,
    roots: { sys: path.join(root, 'sys'), dev: path.join(root, 'dev'), libraryDirs: [libDir], dpkgStatus: path.join(root, 'var', 'lib', 'dpkg', 'status') },
    plug,
  };
}
