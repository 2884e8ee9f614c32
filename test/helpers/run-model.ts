import { TfliteInterpreter, type TensorData } from '../../agent/runtime/interpreter.js';

/** Runs model bytes on the stock kernels (one thread, deterministic) and returns a copy of the first output. */
export class ModelRunner {
  private readonly interpreter: TfliteInterpreter;

  constructor(bytes: Uint8Array) {
    this.interpreter = TfliteInterpreter.fromBytes(bytes, 'model under test', { backend: 'stock', threads: 1 });
  }

  get inputType(): string {
    return this.interpreter.input().dtype;
  }

  get outputType(): string {
    return this.interpreter.output().dtype;
  }

  get outputShape(): number[] {
    return [...this.interpreter.output().shape];
  }

  run(input: ArrayLike<number>): TensorData {
    this.interpreter.setInput(input);
    this.interpreter.invoke();
    return this.interpreter.output().data.slice();
  }
}
