import type { BridgeReading, Clock, EnergySink } from '../../../firmware-bridge/types.js';
import type { DeviceProfile } from '../../energy/device-profiles.js';
import { frameEnergy } from '../../energy/energy-model.js';
import type { FrameContext, FrameStage, ServerAnswer, StageOutcome } from '../frame-context.js';
import { hottest, logTimestamps, type AgentLog, type PipelineStats } from './shared.js';

export interface AccountStageOptions {
  clock: Clock;
  energy: EnergySink;
  profile: DeviceProfile;
  /** Device compute time over this machine's: energy accounting scales measured times by it (1 on the device itself). */
  computeTimeScale: number;
  log: AgentLog;
  stats: PipelineStats;
  sourceName: string;
  /** The bridge's latest reading: the row's battery and temperature, and a measured board power. */
  reading: () => BridgeReading | undefined;
}

/** Energy for the frame's work, the live figures, and the frame's row in the SQLite log; the server's answer is logged beside it. */
export class AccountStage implements FrameStage {
  readonly name = 'account';

  constructor(private readonly options: AccountStageOptions) {}

  process(context: FrameContext): StageOutcome {
    const { clock, energy, profile, log, stats } = this.options;
    const { result, frame, sent } = context;
    const reading = this.options.reading();
    const frameEnergyUse = frameEnergy(profile, {
      computeMs: context.computeMs * this.options.computeTimeScale,
      frameIntervalMs: 1000 / context.frameRate,
      offloadBytes: sent?.bytes ?? 0,
      // A simulator's power figure is made from the agent's own reports, so it is not a measurement.
      measuredBoardPowerW: energy.measuresBoardPower ? reading?.powerW : undefined,
    });
    // A simulated battery draws idle power by itself; it is told only what the work added.
    energy.consume(frameEnergyUse.aboveIdleJ);
    const at = clock.nowMs();
    context.at = at;
    stats.record(result.exit, frame.trueLabel === undefined ? undefined : context.label === frame.trueLabel, at);
    log.logInference({
      ...logTimestamps(clock, at),
      source: this.options.sourceName,
      frameId: frame.id,
      trueLabel: frame.trueLabel,
      exit: result.exit,
      label: context.label,
      confidence: result.confidence,
      policy: context.policy.name,
      operatingPoint: context.point.name,
      segmentMs: result.segmentMs,
      totalMs: context.computeMs,
      energyJ: frameEnergyUse.totalJ,
      batterySoc: reading?.stateOfCharge,
      temperatureC: reading ? hottest(reading) : undefined,
      offloaded: sent !== undefined,
      requestId: sent?.requestId,
    });
    stats.recordLatency(Date.now() - frame.capturedAt);
    return 'next';
  }

  answered(requestId: string, answer: ServerAnswer, late: boolean): void {
    this.options.log.recordServerAnswer?.(requestId, { label: answer.label, confidence: answer.confidence, serverMs: answer.serverMs, decidedLocally: late });
  }
}
