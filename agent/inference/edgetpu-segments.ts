// Which variant of a package's segments runs here: the Edge TPU ones when the
// package has them and a usable Coral device is present, the CPU ones otherwise.
// Heads always run on the CPU.
import type { ModelPackage } from '../model-package/load.js';
import { defaultSystemRoots, detectEdgeTpu, installedEdgeTpuRuntime } from '../runtime/edgetpu.js';
import { ModelLoadError } from '../runtime/errors.js';
import { TfliteInterpreter, type InterpreterOptions } from '../runtime/interpreter.js';

export type SegmentsChoice = { segments: TfliteInterpreter[] } | { segments: undefined; reason: string };

/** Whether this chain may ever put its segments on the Edge TPU. */
export function mayUseEdgeTpu(pkg: ModelPackage, options: InterpreterOptions): boolean {
  const wanted = options.backend === undefined || options.backend === 'auto' || options.backend === 'edgetpu';
  return wanted && pkg.manifest.segments.some((s) => s.edgetpu);
}

/** The CPU variant's interpreter options: a package's CPU files never take the edgetpu backend. */
export function cpuOptions(options: InterpreterOptions): InterpreterOptions {
  return options.backend === 'edgetpu' ? { ...options, backend: 'auto' } : options;
}

export function loadCpuSegments(pkg: ModelPackage, options: InterpreterOptions): TfliteInterpreter[] {
  return pkg.manifest.segments.map((s) => TfliteInterpreter.fromBytes(pkg.files.get(s.file)!, `${pkg.dir}/${s.file}`, cpuOptions(options)));
}

/**
 * Loads the Edge TPU variants, or says why not: no device, no runtime, a runtime
 * older than the compiler's output needs, or a load that failed. A segment the
 * compiler left no variant for runs on the CPU beside the others.
 */
export function loadEdgeTpuSegments(pkg: ModelPackage, options: InterpreterOptions): SegmentsChoice {
  const roots = options.systemRoots ?? defaultSystemRoots();
  const status = detectEdgeTpu(roots);
  if (status.devices.length === 0) return { segments: undefined, reason: 'no Coral Edge TPU is present (no USB 1a6e:089a or 18d1:9302, no /dev/apex_N)' };
  if (!status.libraryPath) return { segments: undefined, reason: 'a Coral device is present but libedgetpu.so.1 is not installed (Debian package libedgetpu1-std from Coral\'s apt repository)' };
  const needed = pkg.manifest.edgetpu;
  const installed = installedEdgeTpuRuntime(roots);
  if (needed && installed && installed.runtimeVersion < needed.runtimeVersion) {
    return {
      segments: undefined,
      reason:
        `the package's Edge TPU segments were compiled by edgetpu_compiler ${needed.compilerVersion} and need Edge TPU runtime ${needed.runtimeVersion} or later, ` +
        `but ${installed.package} ${installed.packageVersion} provides runtime ${installed.runtimeVersion}: upgrade ${installed.package} from Coral's apt repository, ` +
        `or compile the package with \`edgetpu_compiler -m ${installed.runtimeVersion}\``,
    };
  }
  const loaded: TfliteInterpreter[] = [];
  try {
    for (const segment of pkg.manifest.segments) {
      const file = segment.edgetpu?.file ?? segment.file;
      const backend = segment.edgetpu ? 'edgetpu' : cpuOptions(options).backend;
      loaded.push(TfliteInterpreter.fromBytes(pkg.files.get(file)!, `${pkg.dir}/${file}`, { ...options, backend }));
    }
  } catch (error) {
    if (!(error instanceof ModelLoadError)) throw error;
    return { segments: undefined, reason: error.message };
  }
  return { segments: loaded };
}
