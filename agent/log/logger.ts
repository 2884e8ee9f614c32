import pino from 'pino';

/**
 * One structured logger for the whole process. It writes to stderr so that
 * command output on stdout (tables, JSON, CSV) stays clean for pipes.
 */
export const logger = pino(
  {
    level: process.env.EDGE_EXIT_LOG_LEVEL ?? 'info',
    base: undefined,
    redact: { paths: ['*.password', '*.key', '*.cert', 'password'], censor: '[redacted]' },
  },
  pino.destination(2),
);
