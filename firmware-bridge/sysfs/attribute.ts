import fs from 'node:fs/promises';
import { implausible, type Range } from '../reading.js';

/** A sysfs attribute's value, or why there is none: `absent` when the file does not exist at all. */
export type AttributeResult<T> = { ok: true; value: T } | { ok: false; absent: boolean; reason: string };

const INTEGER_OR_DECIMAL = /^[+-]?\d+(\.\d+)?$/;

/** The trimmed text of one sysfs attribute. Never throws: drivers answer EIO/ENODATA for a faulty sensor. */
export async function readText(file: string): Promise<AttributeResult<string>> {
  try {
    return { ok: true, value: (await fs.readFile(file, 'utf8')).trim() };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') return { ok: false, absent: true, reason: `${file} does not exist` };
    return { ok: false, absent: false, reason: `${file}: read failed (${code})` };
  }
}

/**
 * A numeric attribute in the driver's unit, divided by `rawPerUnit` (1e6 for µV to V) and checked
 * against `range`. The reason quotes the raw text so a driver fault can be traced.
 */
export async function readScaled(file: string, rawPerUnit: number, range: Range): Promise<AttributeResult<number>> {
  const text = await readText(file);
  if (!text.ok) return text;
  const raw = text.value;
  if (raw === '') return { ok: false, absent: false, reason: `${file} is empty` };
  if (!INTEGER_OR_DECIMAL.test(raw)) return { ok: false, absent: false, reason: `${file} = '${clip(raw)}' is not a number` };
  // Dividing keeps results exact where they can be (62300 / 1000 is 62.3; 62300 * 1e-3 is not).
  const value = Number(raw) / rawPerUnit;
  const problem = implausible(value, range);
  if (problem) return { ok: false, absent: false, reason: `${file} = '${raw}': ${problem}` };
  return { ok: true, value };
}

/** Entries of a sysfs class directory, in natural order (thermal_zone2 before thermal_zone10); none when it does not exist. */
export async function listEntries(dir: string, pattern: RegExp = /./): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  return names.filter((name) => pattern.test(name)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
