/**
 * Waits until `probe` returns something other than undefined or false, looking
 * every `everyMs`; throws naming `what` after `timeoutMs`. Only for state that
 * can only be looked at, such as a SQLite file another process writes: MQTT
 * messages and process output have their own event-driven waits.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
