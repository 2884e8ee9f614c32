import type { BridgeReading, Clock } from '../../../firmware-bridge/types.js';
import type { LogStore } from '../../store/log-store.js';
import type { LiveStats } from '../live-stats.js';

/** What the pipeline writes to its local log: the SQLite store, or anything with the same calls. */
export type AgentLog = Pick<LogStore, 'logInference' | 'logControllerDecision' | 'logTelemetry'> & Partial<Pick<LogStore, 'recordServerAnswer'>>;

/** The rolling figures every stage adds to. */
export type PipelineStats = LiveStats;

/** The value of the hottest sensor, the one thermal limits are about. */
export function hottest(reading: BridgeReading): number | undefined {
  const values = Object.values(reading.temperaturesC);
  return values.length > 0 ? Math.max(...values) : undefined;
}

/** Log rows carry the wall-clock time, and a simulation's own time beside it (a gateway's clockMs is monotonic, no stamp). */
export function logTimestamps(clock: Clock, clockMs: number): { ts: number; simTs?: number } {
  return clock.kind === 'simulated' ? { ts: Date.now(), simTs: clockMs } : { ts: clock.wallMs() };
}
