import { z } from 'zod';

/**
 * The small config interface that every side shares (agent, firmware bridge, server):
 * strict objects whose unknown keys name the nearest valid one, and validation issues
 * in the words an operator needs, with secrets never shown.
 */

/** Fields whose values are secrets: error messages name them but never show what was given. */
const SECRET_FIELDS = new Set(['password', 'token']);

/** Keys that were renamed: a config written for an earlier version is told the new name. */
const RENAMED_KEYS: Record<string, string> = { metrics: 'web' };

/** Query parameters whose values are secrets (case-insensitive, also as part of a name: api_key, access_token). */
const SECRET_PARAMETER = /pass|pwd|token|key|auth|secret/i;

/**
 * Text as it may leave the process (logs, status, MQTT, the API, SQLite): in every URL in it the
 * user:password@ part becomes user:***@ (up to the LAST @ before the host: passwords may hold @), and
 * secret query parameters (?token=, &password=, ...) become ***. Works on a bare URL and on messages
 * that quote one (ffmpeg's errors).
 */
export function redactUrl(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s/?#'"]*)@/gi, (_, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      // No colon: the whole userinfo may be a token.
      return `${scheme}${colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`}@`;
    })
    .replace(/\?[^\s#'"]+/g, (query) => query.replace(/([?&;])([^=&;]+)=([^&;]*)/g, (whole, separator: string, name: string) => (SECRET_PARAMETER.test(name) ? `${separator}${name}=***` : whole)));
}

/** A value (a config) as it may be shown or published: secret fields replaced, credentials taken out of every string's URLs. */
export function redactSecrets<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (key, v: unknown) => (SECRET_FIELDS.has(key) && v !== undefined ? '[redacted]' : typeof v === 'string' ? redactUrl(v) : v))) as T;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The valid key a mistyped one most likely meant, if any is close (case is ignored: maxFramerate → maxFrameRate). */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(key.length / 3)) ? best.key : undefined;
}

export function unknownKeysMessage(keys: readonly string[], known: readonly string[]): string {
  return keys
    .map((key) => {
      const renamed = RENAMED_KEYS[key];
      if (renamed !== undefined && known.includes(renamed)) return `unknown key "${key}": it is now "${renamed}" (same fields)`;
      const near = nearestKey(key, known);
      return `unknown key "${key}"${near ? `: did you mean "${near}"?` : ''} (valid: ${known.join(', ')})`;
    })
    .join('; ');
}

/** An object that refuses keys it does not know, and says which one was probably meant. */
export function strictSection<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known) : undefined),
  });
}

/** A value as an error message may show it: secrets hidden, credentials taken out of URLs, non-finite numbers as they are. */
function shownValue(key: PropertyKey | undefined, value: unknown): string {
  if (typeof key === 'string' && SECRET_FIELDS.has(key)) return '[redacted]';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'string') return JSON.stringify(redactUrl(value));
  if (value !== null && typeof value === 'object') {
    // Secrets inside a section are hidden by key and URL credentials taken out; a long value is summarised.
    const summary = Array.isArray(value) ? `an array of ${value.length}` : 'an object';
    try {
      const json = JSON.stringify(value, (k, v: unknown) => (SECRET_FIELDS.has(k) ? '[redacted]' : typeof v === 'string' ? redactUrl(v) : v));
      return json.length <= 120 ? json : summary;
    } catch {
      // Nested too deep to write out (a crafted value): the summary says enough.
      return summary;
    }
  }
  return JSON.stringify(value);
}

/** zod's issues in the words an operator needs: the field, the rule, the value given. */
export function describeIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.map((issue) => {
    const field = issue.path.join('.') || '(root)';
    let value: unknown = input;
    for (const key of issue.path) value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined;
    const given = value === undefined || issue.code === 'unrecognized_keys' ? '' : ` (got ${shownValue(issue.path.at(-1), value)})`;
    return `${field}: ${issue.message}${given}`;
  });
}
