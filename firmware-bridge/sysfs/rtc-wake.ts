import fs from 'node:fs/promises';
import path from 'node:path';
import type { PowerDownRequest } from '../types.js';

/**
 * The RTC wake alarm (the Raspberry Pi 5's rtc0, or an RTC HAT's): the kernel's `wakealarm`
 * attribute takes "+N" for N seconds from now. After a halt with POWER_OFF_ON_HALT=1 in the
 * Pi 5's EEPROM, the alarm powers the board up again (deploy/README.md).
 */
export async function armRtcWakeAlarm(root: string, rtc: string, request: PowerDownRequest): Promise<void> {
  const file = path.join(root, 'class', 'rtc', rtc, 'wakealarm');
  if (request.wakeOnMotion) throw new RangeError(`${rtc} wakes on time only: waking on motion needs a power-management microcontroller with a PIR input (bridge kind serial)`);
  if (!(Number.isInteger(request.seconds) && request.seconds >= 1)) throw new RangeError(`sleep seconds must be a positive integer, got ${request.seconds}`);
  try {
    // An armed alarm refuses a new one (EBUSY): cleared first.
    await fs.writeFile(file, '0');
    await fs.writeFile(file, `+${request.seconds}`);
    const armed = (await fs.readFile(file, 'utf8')).trim();
    if (armed === '' || armed === '0') throw new Error(`${file} reads "${armed}" after arming: the RTC did not take the alarm`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`no wake alarm at ${file}: the Raspberry Pi 5 has rtc0; other boards need an RTC module and its device-tree overlay`);
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`cannot write ${file}: run the agent with write access to it (deploy/README.md has a udev rule for the edge-exit group)`);
    throw error;
  }
}
