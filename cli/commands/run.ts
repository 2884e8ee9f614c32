import { loadAgentConfig } from '../../agent/config/agent-config.js';
import { EdgeExitApp, logPath } from '../../agent/app/edge-exit-app.js';
import { StatusReporter } from '../../agent/app/status-reporter.js';
import { logger } from '../../common/log/logger.js';
import { runHaltCommand } from '../../agent/app/power-manager.js';
import { statusFilePath } from '../../agent/pipeline/status-file.js';
import { OffloadServer } from '../../server/offload-server.js';
import { openPackage } from '../open-package.js';

export { logPath };

/**
 * `edge-exit run`: opens the package (released or built; it never builds one), then runs
 * the app until the source ends or SIGINT/SIGTERM. A second signal exits at once.
 */
export async function runCommand(options: { config?: string; frames?: string }): Promise<void> {
  const { config, file } = loadAgentConfig(options.config);
  const frames = options.frames === undefined ? Infinity : Number(options.frames);
  if (!(frames > 0)) throw new RangeError(`--frames must be a positive number, got ${options.frames}`);
  const early = new StatusReporter(statusFilePath(logPath(config)), config.deviceId, () => 'not started');
  early.phase('starting', `opening model package ${config.model.package}`);
  const pkg = openPackage(config.model.package, 'model.package');
  const app = new EdgeExitApp({
    config,
    configFile: file,
    pkg,
    embeddedServer: ({ pkg: served, brokerUrl, prefix }) => OffloadServer.start({ pkg: served, brokerUrl, protocolVersion: 4, prefix }),
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info(`${signal}: stopping after the current frame, flushing the logs (${signal} again to exit at once)`);
      app.requestStop();
      return;
    }
    logger.warn(`${signal} again: exiting now; frames not yet flushed to the log are lost`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await app.start();
    await app.run(frames);
  } finally {
    await app.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // The plan took the board down: the wake-up is armed and every part has stopped and flushed.
  if (app.haltRequested) {
    logger.info(`halting for the planned sleep: ${app.config.planner.haltCommand.join(' ')}`);
    await runHaltCommand(app.config.planner.haltCommand);
  }
}
