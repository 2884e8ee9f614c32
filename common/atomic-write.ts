import fs from 'node:fs';
import path from 'node:path';

/**
 * Temp file, fsync, rename: a crash or a full disk leaves the old file or the new one,
 * never half of one, and no temp file behind (its name is unique to the process, so two
 * writers never share one).
 */
export function writeFileAtomically(file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(temp, 'w');
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}
