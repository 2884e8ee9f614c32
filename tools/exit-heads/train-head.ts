import type * as TF from '@tensorflow/tfjs';
import { seededRandom, shuffled } from '../../agent/datasets/split.js';
import type { DenseLayer } from './int8-head.js';
import { tensorflow } from './tf-backend.js';

/** Features of n samples, row-major [n][dim], with their labels. */
export interface FeatureSet {
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

export interface HeadTrainingOptions {
  /** Width of the hidden ReLU layer; 0 trains a linear (softmax regression) head. */
  hidden: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  l2: number;
  dropout: number;
  seed: number;
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface TrainedHead {
  /** Float layers in TFLite's FULLY_CONNECTED layout, with the input standardization folded into the first. */
  layers: DenseLayer[];
  validationAccuracy: number;
}

export function sampleCount(set: FeatureSet): number {
  return set.labels.length;
}

/** Per-feature mean and standard deviation, so training sees standardized inputs. */
function standardization(set: FeatureSet): { mean: Float32Array; std: Float32Array } {
  const n = sampleCount(set);
  const mean = new Float64Array(set.dim);
  const square = new Float64Array(set.dim);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < set.dim; i++) {
      const v = set.features[s * set.dim + i]!;
      mean[i]! += v;
      square[i]! += v * v;
    }
  }
  const std = new Float32Array(set.dim);
  for (let i = 0; i < set.dim; i++) {
    mean[i]! /= n;
    std[i] = Math.sqrt(Math.max(square[i]! / n - mean[i]! * mean[i]!, 0)) + 1e-3;
  }
  return { mean: Float32Array.from(mean), std };
}

/** Glorot-uniform weights from our own seeded generator, so that a build is reproducible. */
function glorot(random: () => number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = (random() * 2 - 1) * limit;
  return out;
}

/** tfjs kernels are [in][out]; TFLite FULLY_CONNECTED weights are [out][in]. */
function transpose(kernel: Float32Array, inSize: number, outSize: number): Float32Array {
  const out = new Float32Array(inSize * outSize);
  for (let i = 0; i < inSize; i++) for (let o = 0; o < outSize; o++) out[o * inSize + i] = kernel[i * outSize + o]!;
  return out;
}

/** Folds x' = (x - mean) / std into the first layer: W' = W / std, b' = b - W' · mean. */
function foldStandardization(layer: DenseLayer, mean: Float32Array, std: Float32Array): DenseLayer {
  const weights = new Float32Array(layer.weights.length);
  const bias = Float32Array.from(layer.bias);
  for (let o = 0; o < layer.outSize; o++) {
    let shift = 0;
    for (let i = 0; i < layer.inSize; i++) {
      const w = layer.weights[o * layer.inSize + i]! / std[i]!;
      weights[o * layer.inSize + i] = w;
      shift += w * mean[i]!;
    }
    bias[o] = bias[o]! - shift;
  }
  return { ...layer, weights, bias };
}

function accuracyOf(tf: typeof TF, forward: (x: TF.Tensor2D, training: boolean) => TF.Tensor2D, set: FeatureSet, mean: Float32Array, std: Float32Array): number {
  const n = sampleCount(set);
  if (n === 0) return Number.NaN;
  return tf.tidy(() => {
    const x = tf.tensor2d(set.features, [n, set.dim]).sub(tf.tensor1d(mean)).div(tf.tensor1d(std)) as TF.Tensor2D;
    const predicted = forward(x, false).argMax(-1).dataSync();
    let correct = 0;
    predicted.forEach((p, i) => {
      if (p === set.labels[i]) correct++;
    });
    return correct / n;
  });
}

/**
 * Trains one exit head (linear or one hidden layer) with Adam, a cosine
 * learning-rate decay, L2 and dropout, deterministically from `seed`.
 */
export async function trainHead(train: FeatureSet, validation: FeatureSet, classes: number, options: HeadTrainingOptions): Promise<TrainedHead> {
  const tf = await tensorflow();
  const random = seededRandom(options.seed);
  const { mean, std } = standardization(train);
  const sizes = options.hidden > 0 ? [train.dim, options.hidden, classes] : [train.dim, classes];
  const kernels = sizes.slice(1).map((out, i) => tf.variable(tf.tensor2d(glorot(random, sizes[i]!, out), [sizes[i]!, out])));
  const biases = sizes.slice(1).map((out) => tf.variable(tf.zeros([out])));
  let dropoutSeed = options.seed;

  const forward = (x: TF.Tensor2D, training: boolean): TF.Tensor2D => {
    let h: TF.Tensor2D = x;
    kernels.forEach((kernel, i) => {
      h = tf.add(tf.matMul(h, kernel), biases[i]!);
      if (i < kernels.length - 1) {
        h = tf.relu(h);
        if (training && options.dropout > 0) h = tf.dropout(h, options.dropout, undefined, dropoutSeed++) as TF.Tensor2D;
      }
    });
    return h;
  };

  const optimizer = tf.train.adam(options.learningRate);
  const n = sampleCount(train);
  const all = tf.tensor2d(train.features, [n, train.dim]).sub(tf.tensor1d(mean)).div(tf.tensor1d(std)) as TF.Tensor2D;
  const labels = tf.tensor1d(train.labels, 'int32');
  const order = Array.from({ length: n }, (_, i) => i);
  const steps = Math.ceil(n / options.batchSize) * options.epochs;
  let step = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const batchOrder = shuffled(order, random);
    let lossSum = 0;
    let batches = 0;
    for (let start = 0; start < n; start += options.batchSize) {
      // Adam keeps its rate in a field it reads every step; cosine decay sets it there.
      (optimizer as unknown as { learningRate: number }).learningRate = (options.learningRate * (1 + Math.cos((Math.PI * step) / steps))) / 2;
      step++;
      const indices = tf.tensor1d(batchOrder.slice(start, start + options.batchSize), 'int32');
      const loss = optimizer.minimize(
        () =>
          tf.tidy(() => {
            const x = tf.gather(all, indices) as TF.Tensor2D;
            const y = tf.oneHot(tf.gather(labels, indices), classes);
            const data = tf.losses.softmaxCrossEntropy(y, forward(x, true));
            const penalty = kernels.reduce((sum, k) => sum.add(tf.sum(tf.square(k))), tf.scalar(0));
            return data.add(penalty.mul(options.l2)) as TF.Scalar;
          }),
        true,
      )!;
      lossSum += (await loss.data())[0]!;
      batches++;
      tf.dispose([loss, indices]);
    }
    options.onEpoch?.(epoch + 1, lossSum / batches);
    // Training never waits on I/O; yielding lets timers (the progress bar) run between epochs.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const validationAccuracy = accuracyOf(tf, forward, validation, mean, std);
  const layers: DenseLayer[] = await Promise.all(
    kernels.map(async (kernel, i) => ({
      inSize: sizes[i]!,
      outSize: sizes[i + 1]!,
      weights: transpose((await kernel.data()) as Float32Array, sizes[i]!, sizes[i + 1]!),
      bias: Float32Array.from(await biases[i]!.data()),
      activation: i < kernels.length - 1 ? ('relu' as const) : ('none' as const),
    })),
  );
  layers[0] = foldStandardization(layers[0]!, mean, std);
  tf.dispose([all, labels, ...kernels, ...biases]);
  optimizer.dispose();
  return { layers, validationAccuracy };
}
