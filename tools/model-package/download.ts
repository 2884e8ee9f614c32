import fs from 'node:fs';
import path from 'node:path';

/**
 * Fetches a base model for a gateway that has no local copy. Written to a
 * temporary name first so an interrupted download never looks complete.
 */
export async function downloadFile(url: string, destination: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`Cannot download ${url}: ${(error as Error).message}. Copy the file to ${destination} by hand if this machine is offline.`);
  }
  if (!response.ok || !response.body) throw new Error(`Cannot download ${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length') ?? 0);
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  const temporary = `${destination}.part`;
  const out = fs.createWriteStream(temporary);
  let done = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    out.write(chunk);
    done += chunk.length;
    onProgress?.(done, total);
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  fs.renameSync(temporary, destination);
}
