import { logger } from './logger.js';

/**
 * A warning that may repeat without limit (one per bad frame from the network) said at
 * most once per interval, with how many were held back since the last one.
 */
export function throttledWarning(intervalMs = 60_000, now: () => number = Date.now): (message: string) => void {
  let lastAt = -Infinity;
  let held = 0;
  return (message) => {
    const at = now();
    if (at - lastAt < intervalMs) {
      held++;
      return;
    }
    logger.warn(held > 0 ? `${message} (and ${held} more like it since the last warning)` : message);
    lastAt = at;
    held = 0;
  };
}
