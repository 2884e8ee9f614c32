import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sharedDir } from '../../agent/config/paths.js';

/** Real data beside the checkout (../shared), never copied into the repo. */
export const SHARED = sharedDir();
export const MOBILENET_V2 = path.join(SHARED, 'models', 'tf2_mobilenet_v2_1.0_224_ptq.tflite');
/** Coral's TF1 quantization-aware MobileNetV2: uint8 (asymmetric) weights and activations throughout, same labels. */
export const MOBILENET_V2_UINT8 = path.join(SHARED, 'models', 'mobilenet_v2_1.0_224_quant.tflite');
export const EDGETPU_MODEL = path.join(SHARED, 'models', 'mobilenet_v1_0.25_128_quant_edgetpu.tflite');
export const IMAGENET_LABELS = path.join(SHARED, 'models', 'imagenet_labels.txt');
export const CAT_PHOTO = path.join(SHARED, 'images', 'cat.bmp');
export const CIFAR_TEST = path.join(SHARED, 'data', 'cifar10', 'test');
export const EGYPTIAN_CAT = 286;

export function temporaryDir(prefix = 'edge-exit-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A few real CIFAR-10 test images, one from each of the first `count` classes. */
export function cifarSamples(count: number): string[] {
  const classes = fs.readdirSync(CIFAR_TEST).sort().slice(0, count);
  return classes.map((name) => path.join(CIFAR_TEST, name, '0000.jpg'));
}
