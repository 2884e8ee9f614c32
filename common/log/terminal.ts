/**
 * stderr shared by the log and the live status line. On a terminal the status line
 * is redrawn in place and each log line is printed above it as text; elsewhere
 * (systemd, a pipe) both are plain lines and the log stays JSON for machines.
 */
const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

export const onTerminal = Boolean(process.stderr.isTTY);
let statusLine = '';

export function showStatusLine(line: string): void {
  if (!onTerminal) {
    process.stderr.write(`${line}\n`);
    return;
  }
  statusLine = line;
  process.stderr.write(`\r\x1b[K${line}`);
}

/** Leaves the status line where it is, so what follows starts on a line of its own. */
export function endStatusLine(): void {
  if (onTerminal && statusLine) process.stderr.write('\n');
  statusLine = '';
}

function humanLine(json: string): string {
  try {
    const { level, time, msg, ...fields } = JSON.parse(json) as Record<string, unknown>;
    const at = new Date(Number(time)).toTimeString().slice(0, 8);
    const extra = Object.entries(fields)
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    return `${at} ${LEVEL_NAMES[Number(level)] ?? level} ${String(msg ?? '')}${extra ? `  ${extra}` : ''}`;
  } catch {
    return json.trimEnd();
  }
}

/** pino's destination on a terminal: a readable line above the status line, never glued to it. */
export const terminalLogStream = {
  write(chunk: string): void {
    process.stderr.write(onTerminal ? `\r\x1b[K${humanLine(chunk)}\n${statusLine}` : `${humanLine(chunk)}\n`);
  },
};
