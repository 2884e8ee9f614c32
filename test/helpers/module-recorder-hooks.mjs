// Module hooks that append every resolved URL to a file: what a command really loads.
import fs from 'node:fs';

let out;
export function initialize(data) {
  out = data.out;
}

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  fs.appendFileSync(out, `${resolved.url}\n`);
  return resolved;
}
