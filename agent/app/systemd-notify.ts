/**
 * systemd's notify protocol for `Type=notify` units: READY=1 once the agent runs, and
 * WATCHDOG=1 every half watchdog period while it is healthy. A stalled loop stops the
 * pings, and systemd restarts the service (WatchdogSec, Restart=on-failure).
 *
 * Node cannot send on a unix datagram socket, so the messages go through systemd's own
 * `systemd-notify` with --pid naming the agent (the unit needs NotifyAccess=all).
 */
import { execFile } from 'node:child_process';
import { logger } from '../../common/log/logger.js';
import { throttledWarning } from '../../common/log/throttled.js';
import { onPath } from '../sources/child-stream.js';

export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;
  private readonly warn = throttledWarning();

  private constructor(private readonly env: NodeJS.ProcessEnv) {}

  /** Does nothing unless systemd started the agent as a notify service (NOTIFY_SOCKET set). */
  static start(env: NodeJS.ProcessEnv, healthy: () => boolean): SystemdNotifier {
    const notifier = new SystemdNotifier(env);
    if (!env.NOTIFY_SOCKET) return notifier;
    if (!onPath('systemd-notify', env)) {
      logger.warn('systemd: NOTIFY_SOCKET is set but systemd-notify is not on PATH, so systemd never hears the agent is ready: install systemd, or use Type=simple');
      return notifier;
    }
    notifier.send('READY=1', 'STATUS=classifying');
    const watchdogUs = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    if (Number.isFinite(watchdogUs) && watchdogUs > 0 && forUs) {
      // Half the period, as sd_watchdog_enabled(3) advises: one late ping must not kill a healthy agent.
      const everyMs = Math.max(100, watchdogUs / 2000);
      notifier.timer = setInterval(() => {
        if (healthy()) notifier.send('WATCHDOG=1');
        else notifier.send('STATUS=stalled: no frame for too long; the watchdog is not fed');
      }, everyMs);
      notifier.timer.unref();
      logger.info(`systemd: watchdog every ${(everyMs / 1000).toFixed(1)} s while frames flow`);
    }
    return notifier;
  }

  private send(...assignments: string[]): void {
    execFile('systemd-notify', [`--pid=${process.pid}`, ...assignments], { env: this.env, timeout: 5000 }, (error) => {
      if (error) this.warn(`systemd: systemd-notify ${assignments.join(' ')} failed (${error.message.trim()}); does the unit have NotifyAccess=all?`);
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.env.NOTIFY_SOCKET && onPath('systemd-notify', this.env)) this.send('STOPPING=1');
  }
}
