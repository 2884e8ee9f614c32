import fs from 'node:fs';
import os from 'node:os';

export type LoadCheck = { ok: true } | { ok: false; reason: string };

const checked = new Map<string, LoadCheck>();

/**
 * Whether a delegate library can be dlopen()ed. The binding hands TFLite a null
 * delegate when its library fails to load, which crashes the process, so this
 * must be known before an interpreter is created with it.
 */
export function checkSharedLibrary(file: string): LoadCheck {
  const cached = checked.get(file);
  if (cached) return cached;
  let result: LoadCheck;
  if (!fs.existsSync(file)) {
    result = { ok: false, reason: `${file} does not exist` };
  } else {
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, file, os.constants.dlopen.RTLD_NOW);
      result = { ok: true };
    } catch (error) {
      // A plain shared library is not a Node addon: dlopen() succeeds and Node
      // then says no module registered itself, which is the success case here.
      const message = (error as Error).message;
      result = /did not self-register/i.test(message) ? { ok: true } : { ok: false, reason: `${file} cannot be loaded: ${message}` };
    }
  }
  checked.set(file, result);
  return result;
}
