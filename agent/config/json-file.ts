// Reads a JSON file against a zod schema; every problem is reported with its
// field path, in one error of the caller's type.
import fs from 'node:fs';
import type { z } from 'zod';

export function readJsonFile<S extends z.ZodType>(
  file: string,
  schema: S,
  what: string,
  makeError: (message: string) => Error,
): z.infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw makeError(`Cannot read ${what} ${file}: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 20).map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw makeError(`${what[0]!.toUpperCase()}${what.slice(1)} ${file} is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data as z.infer<S>;
}
