import fs from 'node:fs';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { describeModel, formatModelDescription } from '../tflite/inspect.js';

export function inspectCommand(file: string, options: { json?: boolean }): void {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Error(`Cannot read model ${file}: ${(error as Error).message}`);
  }
  const description = describeModel(readTfliteModel(bytes));
  process.stdout.write(options.json ? `${JSON.stringify(description, null, 2)}\n` : `${formatModelDescription(description)}\n`);
}
