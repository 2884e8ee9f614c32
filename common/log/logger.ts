import pino from 'pino';
import { onTerminal, terminalLogStream } from './terminal.js';

/**
 * One structured logger for the whole process, on stderr so that command output on
 * stdout (tables, JSON, CSV) stays clean for pipes. Text on a terminal, JSON lines
 * elsewhere (EDGE_EXIT_LOG_FORMAT=json or text forces one); the level is
 * EDGE_EXIT_LOG_LEVEL (trace, debug, info, warn, error; default info).
 */
const format = process.env.EDGE_EXIT_LOG_FORMAT ?? (onTerminal ? 'text' : 'json');

export const logger = pino(
  {
    level: process.env.EDGE_EXIT_LOG_LEVEL ?? 'info',
    base: undefined,
    redact: { paths: ['*.password', '*.key', '*.cert', 'password'], censor: '[redacted]' },
  },
  format === 'text' ? terminalLogStream : pino.destination(2),
);
