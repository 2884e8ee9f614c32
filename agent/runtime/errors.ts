/** Raised when a model cannot be loaded or run; the message names the file and the fix. */
export class ModelLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelLoadError';
  }
}

/** Raised when an Edge-TPU-compiled model is loaded where no usable Coral device is. */
export class EdgeTpuUnavailableError extends ModelLoadError {
  constructor(message: string) {
    super(message);
    this.name = 'EdgeTpuUnavailableError';
  }
}

/** Raised when input data does not fit the tensor it is written to. */
export class TensorShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TensorShapeError';
  }
}
