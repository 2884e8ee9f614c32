import { logger } from '../../common/log/logger.js';

/** Collects logger.warn messages for the length of one test (serial tests only: the logger is shared). */
export function captureWarnings(t: { teardown(fn: () => void): void }): string[] {
  const messages: string[] = [];
  const original = logger.warn;
  logger.warn = ((...args: unknown[]) => void messages.push(args.find((a): a is string => typeof a === 'string') ?? '')) as typeof logger.warn;
  t.teardown(() => (logger.warn = original));
  return messages;
}
