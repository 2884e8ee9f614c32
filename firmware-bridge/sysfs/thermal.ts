import path from 'node:path';
import { PLAUSIBLE, emptyReading } from '../reading.js';
import type { BridgeReading, TripPoint } from '../types.js';
import { listEntries, readScaled, readText } from './attribute.js';

export interface ThermalOptions {
  /** sysfs mount point; tests point it at a fake tree. */
  root?: string;
}

const TRIP_TYPES = new Set(['passive', 'active', 'hot', 'critical']);

/**
 * Every /sys/class/thermal/thermal_zone<N>: `temp` (m°C) keyed by the zone's `type`
 * (cpu-thermal on a Pi, CPU-therm/GPU-therm/... on a Jetson), and its trip points
 * (trip_point_<K>_temp in m°C with trip_point_<K>_type).
 */
export async function readThermalZones(options: ThermalOptions = {}): Promise<BridgeReading> {
  const classDir = path.join(options.root ?? '/sys', 'class', 'thermal');
  const reading = emptyReading(Date.now());
  const zones = await listEntries(classDir, /^thermal_zone\d+$/);
  if (zones.length === 0) {
    reading.missing.push({ reading: 'temperaturesC', reason: `no thermal zones under ${classDir}` });
    return reading;
  }
  const used = new Set<string>();
  for (const zone of zones) {
    const dir = path.join(classDir, zone);
    const type = await readText(path.join(dir, 'type'));
    let key = type.ok && type.value ? type.value : zone;
    // Some boards repeat a type (several acpitz zones): keep each one apart.
    if (used.has(key)) key = `${key}/${zone}`;
    used.add(key);

    const temperature = await readScaled(path.join(dir, 'temp'), 1e3, PLAUSIBLE.temperatureC);
    if (temperature.ok) reading.temperaturesC[key] = temperature.value;
    else reading.missing.push({ reading: `temperaturesC.${key}`, reason: temperature.reason });

    const trips = await readTripPoints(dir, key, reading);
    if (trips.length > 0) reading.tripPointsC[key] = trips;
  }
  return reading;
}

async function readTripPoints(dir: string, key: string, reading: BridgeReading): Promise<TripPoint[]> {
  const trips: TripPoint[] = [];
  for (const file of await listEntries(dir, /^trip_point_\d+_temp$/)) {
    const index = /^trip_point_(\d+)_temp$/.exec(file)![1];
    const typeFile = path.join(dir, `trip_point_${index}_type`);
    const type = await readText(typeFile);
    const temperature = await readScaled(path.join(dir, file), 1e3, PLAUSIBLE.temperatureC);
    // Named per trip point, so one bad trip point stays listed even though the zone has others.
    const reportedAs = `tripPointsC.${key}/trip_point_${index}`;
    if (!type.ok || !TRIP_TYPES.has(type.value)) {
      const why = type.ok ? `${typeFile} = '${type.value}' is not passive, active, hot or critical` : type.reason;
      reading.missing.push({ reading: reportedAs, reason: why });
    } else if (!temperature.ok) {
      reading.missing.push({ reading: reportedAs, reason: temperature.reason });
    } else {
      trips.push({ type: type.value, temperatureC: temperature.value });
    }
  }
  return trips;
}
