import { logger } from '../../common/log/logger.js';
import { showStatusLine } from '../../common/log/terminal.js';
import { formatStatusLine, writeStatusFile, type StatusFile } from '../pipeline/status-file.js';
import type { AgentStatus } from '../pipeline/frame-pipeline.js';

/**
 * The agent's status for people: a line on the terminal, and the status file that
 * `edge-exit status` reads. A status file that cannot be written (a full disk) costs a
 * warning, never the agent.
 */
export class StatusReporter {
  private failing: string | undefined;

  constructor(
    private readonly file: string,
    private readonly deviceId: string,
    private readonly logHealth: () => string,
  ) {}

  /** Before the agent runs: what it is doing (building its model, starting). */
  phase(phase: NonNullable<StatusFile['phase']>, detail: string): void {
    this.write({ phase, detail, pid: process.pid, deviceId: this.deviceId, writtenAt: Date.now() } as StatusFile);
  }

  report(status: AgentStatus, stopped = false): void {
    const health = stopped ? 'stopped' : this.logHealth();
    const line = formatStatusLine(status) + (health === 'ok' || stopped ? '' : `  LOGGING FAILING: ${health}`);
    if (!stopped) showStatusLine(line);
    this.write({ ...status, phase: stopped ? 'stopped' : 'running', pid: process.pid, deviceId: this.deviceId, writtenAt: Date.now(), logHealth: health });
  }

  private write(status: StatusFile): void {
    try {
      writeStatusFile(this.file, status);
      if (this.failing !== undefined) logger.info(`status file ${this.file} is written again`);
      this.failing = undefined;
    } catch (error) {
      const reason = (error as Error).message;
      if (this.failing === undefined) logger.warn(`cannot write the status file ${this.file} (${reason}); the agent goes on, and \`edge-exit status\` shows older figures until it can`);
      this.failing = reason;
    }
  }
}
