import fs from 'node:fs';
import { dequantizeSoftmax, softmaxFromLogits } from '../exit-policy/probabilities.js';
import { EdgeTpuUnavailableError, ModelLoadError } from '../runtime/errors.js';
import { TfliteInterpreter, type InterpreterOptions, type TensorView } from '../runtime/interpreter.js';
import { BuiltinOperator, type TfliteModel } from '../tflite/model.js';

/** What a plain model must be, said by every refusal of one. */
const PLAIN_MODEL_FIX = 'A plain model must be an image classification .tflite (one [1,H,W,3] uint8 or int8 image input, one [1,N] class output); a model package goes to -c';

/**
 * The class names of a plain model, as pycoral's read_label_file reads them: one label
 * a line, or "N label" lines that give the class index. A plain list must have exactly
 * one label per output class, so a file off by one (the ImageNet background class) is caught.
 */
export function readLabelsFile(file: string, classes: number): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ModelLoadError(`Cannot read labels ${file}: ${(error as Error).message}. Pass a text file with one label a line (or "N label" lines).`);
  }
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  while (lines.at(-1) === '') lines.pop();
  const numbered = lines.length > 0 && lines.every((line) => /^\d+[:\s]+\S/.test(line));
  const labels = Array.from({ length: classes }, (_, i) => String(i));
  if (!numbered) {
    if (lines.length !== classes) throw new ModelLoadError(`Labels ${file} has ${lines.length} lines, but the model outputs ${classes} classes: pass the labels file made for this model.`);
    return lines;
  }
  for (const line of lines) {
    const [, index, label] = /^(\d+)[:\s]+(.*)$/.exec(line)!;
    if (Number(index) >= classes) throw new ModelLoadError(`Labels ${file} names class ${index}, but the model outputs ${classes} classes (0-${classes - 1}): pass the labels file made for this model.`);
    labels[Number(index)] = label!.trim();
  }
  return labels;
}

/** Whether the output is a softmax's, maybe through a final QUANTIZE, DEQUANTIZE or RESHAPE. */
function endsInSoftmax(model: TfliteModel): boolean {
  const graph = model.subgraphs[0]!;
  const passThrough = new Set<number>([BuiltinOperator.QUANTIZE, BuiltinOperator.DEQUANTIZE, BuiltinOperator.RESHAPE]);
  let tensor = graph.outputs[0];
  for (;;) {
    const producer = graph.operators.find((op) => op.outputs.includes(tensor!));
    const code = producer && model.operatorCodes[producer.opcodeIndex]!.builtinCode;
    if (code === BuiltinOperator.SOFTMAX) return true;
    if (code === undefined || !passThrough.has(code)) return false;
    tensor = producer!.inputs[0];
  }
}

/**
 * A plain classification model (not a package), as pycoral's classify_image runs one:
 * the frame in, class probabilities out, on the same interpreter and backends as a
 * package's segments.
 */
export class SingleModelClassifier {
  readonly width: number;
  readonly height: number;
  readonly classes: number;
  private readonly softmax: boolean;

  private constructor(
    readonly file: string,
    private readonly interpreter: TfliteInterpreter,
  ) {
    const [input, output] = [interpreter.inputs, interpreter.outputs];
    const [batch, height, width, channels] = input[0]?.shape ?? [];
    const problem =
      input.length !== 1 || output.length !== 1
        ? `it has ${input.length} inputs and ${output.length} outputs, not one of each`
        : batch !== 1 || channels !== 3 || height === undefined || width === undefined || input[0]!.shape.length !== 4
          ? `its input has shape [${input[0]!.shape.join(',')}], not [1,H,W,3]`
          : input[0]!.dtype !== 'uint8' && input[0]!.dtype !== 'int8'
            ? `its input is ${input[0]!.dtype}; edge-exit feeds quantized models (uint8 or int8)`
            : output[0]!.dtype === 'int32'
              ? 'its output is int32, not class scores'
              : undefined;
    if (problem) throw new ModelLoadError(`Model ${file} is not an image classifier edge-exit can run: ${problem}. ${PLAIN_MODEL_FIX}.`);
    this.width = width!;
    this.height = height!;
    this.classes = output[0]!.shape.at(-1)!;
    this.softmax = endsInSoftmax(interpreter.model);
  }

  /** Loads and prepares the model; every failure is a ModelLoadError that names the file. */
  static fromFile(file: string, options: InterpreterOptions = {}): SingleModelClassifier {
    let interpreter: TfliteInterpreter;
    try {
      interpreter = TfliteInterpreter.fromFile(file, options);
    } catch (error) {
      // An Edge TPU model's refusal already says what to plug in or install.
      if (!(error instanceof ModelLoadError) || error instanceof EdgeTpuUnavailableError) throw error;
      throw new ModelLoadError(`${error.message.replace(/[.\s]*$/, '')}. ${PLAIN_MODEL_FIX}.`, { cause: error });
    }
    return new SingleModelClassifier(file, interpreter);
  }

  /** The frame at the model's size, written in place before classify(). */
  get input(): TensorView {
    return this.interpreter.input();
  }

  /** Writes RGB bytes (uint8), shifted by 128 for an int8 input (the same pixels, as int8 quantization stores them). */
  setRgb(rgb: Uint8Array): void {
    const input = this.input;
    if (input.dtype === 'uint8') input.data.set(rgb);
    else for (let i = 0; i < rgb.length; i++) input.data[i] = rgb[i]! - 128;
  }

  /** Runs the model on the input as it stands: probabilities by class and the ms it took. */
  classify(): { probabilities: Float32Array; ms: number } {
    let ms: number;
    try {
      ms = this.interpreter.invoke();
    } catch (error) {
      throw new ModelLoadError(
        `Model ${this.file} failed to run: ${(error as Error).message.trim()}. It holds an op or shape this TFLite runtime cannot execute: see \`edge-exit inspect ${this.file}\`, or convert it again with the TFLite converter.`,
        { cause: error },
      );
    }
    const output = this.interpreter.output();
    const q = output.quantization ?? { scale: 1, zeroPoint: 0 };
    const data = output.data as Uint8Array | Int8Array | Float32Array;
    const probabilities =
      this.softmax && !(data instanceof Float32Array)
        ? dequantizeSoftmax(data, q.scale, q.zeroPoint)
        : this.softmax
          ? Float32Array.from(data)
          : softmaxFromLogits(data, q.scale, q.zeroPoint);
    return { probabilities, ms };
  }
}
