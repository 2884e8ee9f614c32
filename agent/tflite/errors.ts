/** A file that is not a TFLite model this project can read; the message says what is wrong and what to do. */
export class TfliteFormatError extends Error {
  override name = 'TfliteFormatError';
}

const TRUNCATED_HINT = 'the file is truncated or corrupt; rebuild or re-download it';

/** Error for data that points outside the file or breaks the format's rules. */
export function corrupt(where: string, problem: string): TfliteFormatError {
  return new TfliteFormatError(`TFLite model: ${where}: ${problem}; ${TRUNCATED_HINT}.`);
}
