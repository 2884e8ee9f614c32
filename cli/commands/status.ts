import { loadAgentConfig } from '../../agent/config/agent-config.js';
import { describeOperatingPoint } from '../../agent/exit-policy/point-names.js';
import { formatStatusLine, readStatusFile, statusFilePath } from '../../agent/pipeline/status-file.js';
import { logPath } from './run.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Prints the running agent's latest status (it rewrites its status file every status interval). */
export function statusCommand(options: { config?: string; json?: boolean }): void {
  const { config } = loadAgentConfig(options.config);
  const file = statusFilePath(logPath(config));
  const status = readStatusFile(file);
  if (!status) throw new Error(`No status at ${file}: the agent has not run with this config yet (start it with \`edge-exit run\`).`);
  const running = alive(status.pid) && status.logHealth !== 'stopped' && status.phase !== 'stopped';
  if (options.json) {
    console.log(JSON.stringify({ running, ...status }, null, 2));
    return;
  }
  const age = ((Date.now() - status.writtenAt) / 1000).toFixed(0);
  if (status.phase === 'building' || status.phase === 'starting') {
    console.log(`${status.deviceId}: ${running ? `${status.phase} (pid ${status.pid})` : `not running (it stopped while ${status.phase})`}: ${status.detail ?? ''}, as of ${age} s ago`);
    return;
  }
  console.log(`${status.deviceId}: ${running ? `running (pid ${status.pid})` : 'not running'}, status from ${age} s ago; logging ${status.logHealth ?? 'unknown'}`);
  console.log(formatStatusLine(status));
  console.log(`point ${status.operatingPoint}: ${describeOperatingPoint(status.operatingPoint)}`);
  if (status.controller !== undefined && status.controller !== 'on') console.log(`controller ${status.controller}`);
  if (status.mqtt !== undefined) console.log(status.mqtt);
  if (status.backendNote !== undefined) console.log(`segments on ${status.backend}: ${status.backendNote}`);
  if (status.clockSteps !== undefined) console.log(status.clockSteps);
}
