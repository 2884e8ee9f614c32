import { emptyReading } from './reading.js';
import { SCALAR_READINGS, type BridgeReading, type FirmwareBridge, type MissingReading } from './types.js';

/**
 * One reading from several, in order of preference: for each value (and each temperature or
 * trip-point entry) the first reading that has it wins; `missing` keeps only what none had.
 */
export function mergeReadings(readings: BridgeReading[], at = Math.max(0, ...readings.map((r) => r.at))): BridgeReading {
  const merged = emptyReading(at);
  for (const reading of readings) {
    for (const field of SCALAR_READINGS) {
      if (merged[field] === undefined && reading[field] !== undefined) (merged as unknown as Record<string, unknown>)[field] = reading[field];
    }
    for (const [sensor, value] of Object.entries(reading.temperaturesC)) merged.temperaturesC[sensor] ??= value;
    for (const [zone, trips] of Object.entries(reading.tripPointsC)) merged.tripPointsC[zone] ??= trips;
  }
  const seen = new Set<string>();
  for (const entry of readings.flatMap((r) => r.missing)) {
    const key = `${entry.reading}\n${entry.reason}`;
    if (seen.has(key) || isPresent(merged, entry)) continue;
    seen.add(key);
    merged.missing.push(entry);
  }
  return merged;
}

function isPresent(reading: BridgeReading, entry: MissingReading): boolean {
  const dot = entry.reading.indexOf('.');
  const field = dot < 0 ? entry.reading : entry.reading.slice(0, dot);
  const key = dot < 0 ? undefined : entry.reading.slice(dot + 1);
  if (field === 'temperaturesC' || field === 'tripPointsC') {
    const record = reading[field];
    return key === undefined ? Object.keys(record).length > 0 : record[key] !== undefined;
  }
  return (reading as unknown as Record<string, unknown>)[field] !== undefined;
}

/**
 * Several sources as one bridge, e.g. thermal zones from sysfs plus an I2C fuel gauge plus GPIO
 * actuators. Order sets preference. A source whose read() fails does not fail the others.
 * Actuator calls go to every source that has that actuator.
 */
export function combineBridges(bridges: FirmwareBridge[]): FirmwareBridge {
  if (bridges.length === 0) throw new RangeError('combineBridges needs at least one bridge');
  const combined: FirmwareBridge = {
    name: `combined(${bridges.map((b) => b.name).join(' + ')})`,
    async read() {
      const results = await Promise.allSettled(bridges.map((bridge) => bridge.read()));
      const readings = results.map((result, i): BridgeReading => {
        if (result.status === 'fulfilled') return result.value;
        const reason = result.reason instanceof Error ? result.reason.message : String(result.reason);
        // at 0: a failed source must not make the merged reading look fresh.
        const failed = emptyReading(0);
        failed.missing.push({ reading: bridges[i]!.name, reason: `read() failed: ${reason}` });
        return failed;
      });
      const merged = mergeReadings(readings);
      if (merged.at === 0) merged.at = Date.now();
      return merged;
    },
    async close() {
      await Promise.allSettled(bridges.map((bridge) => bridge.close()));
    },
  };
  const fans = bridges.filter((bridge) => bridge.setFan);
  const leds = bridges.filter((bridge) => bridge.setLed);
  const alerts = bridges.filter((bridge) => bridge.setLowBatteryAlert);
  if (fans.length > 0) combined.setFan = async (duty) => void (await Promise.all(fans.map((b) => b.setFan!(duty))));
  if (leds.length > 0) combined.setLed = async (on) => void (await Promise.all(leds.map((b) => b.setLed!(on))));
  if (alerts.length > 0) combined.setLowBatteryAlert = async (on) => void (await Promise.all(alerts.map((b) => b.setLowBatteryAlert!(on))));
  // One wake-up mechanism powers the board down: the first that has one (two would race to cut power).
  const waker = bridges.find((bridge) => bridge.armWake);
  if (waker) combined.armWake = (request) => waker.armWake!(request);
  const sensors = bridges.filter((bridge) => bridge.lastMotionAt);
  if (sensors.length > 0) {
    combined.lastMotionAt = () => {
      const edges = sensors.map((b) => b.lastMotionAt!()).filter((at): at is number => at !== undefined);
      return edges.length === 0 ? undefined : Math.max(...edges);
    };
  }
  const reasons = bridges.filter((bridge) => bridge.wakeReason);
  if (reasons.length > 0) combined.wakeReason = () => reasons.map((b) => b.wakeReason!()).find((reason) => reason !== undefined);
  return combined;
}
