/*
 * Minimal C timing harness on the libtensorflowlite_c.so that tfjs-tflite-node
 * bundles: the same library the runtime uses, without Node, so that a thread
 * count that does not scale can be pinned on the library, the delegate glue or
 * the runtime around it.
 *
 * Usage: cpu_harness [--rounds R] [--invokes N] [--plugin PATH] [--times] VARIANT...
 *   VARIANT is mode,threads,flags,model:
 *     stock     the interpreter's own kernels, TfLiteInterpreterOptionsSetNumThreads(threads)
 *     xnnpack   TfLiteXNNPackDelegateCreate({threads, flags}) called here
 *     external  the binding's own path: TfLiteExternalDelegateCreate on edge-exit's plugin
 *               (--plugin) with num_threads and flags as string options
 * Every variant gets its own interpreter, created up front. Rounds then take the
 * variants in turn (N invokes each, in a rotating order) so that machine noise
 * falls on all of them alike. One JSON line per variant on stdout; --times adds
 * every invoke's milliseconds, in the order they ran.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorflow/lite/c/c_api.h"
#include "xnnpack_options.h" /* agent/runtime/xnnpack-shim: the plugin's own declarations */

/* external_delegate.h is C++ only (it sizes an array with a const int); its layout in C: */
typedef struct ExternalDelegateOptions {
  const char* lib_path;
  int count;
  const char* keys[256];
  const char* values[256];
  TfLiteStatus (*insert)(struct ExternalDelegateOptions* options, const char* key, const char* value);
} ExternalDelegateOptions;
extern ExternalDelegateOptions TfLiteExternalDelegateOptionsDefault(const char* lib_path);
extern TfLiteDelegate* TfLiteExternalDelegateCreate(const ExternalDelegateOptions* options);


typedef struct {
  char mode[16];
  int threads;
  unsigned flags;
  const char* model_path;
  TfLiteModel* model;
  TfLiteInterpreter* interpreter;
  int threads_started; /* OS threads the process gained while this variant was created */
  int has_threadpool;  /* xnnpack mode: whether the delegate made a pthreadpool */
  double* times;
  int count;
} Variant;

static int process_threads(void) {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  int n = 0;
  struct dirent* entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.') n++;
  }
  closedir(dir);
  return n;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static void die(const char* what, const char* detail) {
  fprintf(stderr, "cpu_harness: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static void create(Variant* v, const char* plugin) {
  int before = process_threads();
  v->model = TfLiteModelCreateFromFile(v->model_path);
  if (!v->model) die("cannot load model", v->model_path);
  TfLiteInterpreterOptions* options = TfLiteInterpreterOptionsCreate();
  TfLiteInterpreterOptionsSetNumThreads(options, v->threads);
  TfLiteDelegate* delegate = NULL;
  if (strcmp(v->mode, "xnnpack") == 0) {
    XnnpackOptions xo;
    memset(&xo, 0, sizeof xo);
    xo.num_threads = v->threads;
    xo.flags = v->flags;
    delegate = TfLiteXNNPackDelegateCreate(&xo);
    v->has_threadpool = TfLiteXNNPackDelegateGetThreadPool(delegate) != NULL;
  } else if (strcmp(v->mode, "external") == 0) {
    if (!plugin) die("external mode needs --plugin", NULL);
    ExternalDelegateOptions eo = TfLiteExternalDelegateOptionsDefault(plugin);
    char threads[16], flags[16];
    snprintf(threads, sizeof threads, "%d", v->threads);
    snprintf(flags, sizeof flags, "%u", v->flags);
    eo.insert(&eo, "num_threads", threads);
    eo.insert(&eo, "flags", flags);
    delegate = TfLiteExternalDelegateCreate(&eo);
    if (!delegate) die("the plugin made no delegate", plugin);
  } else if (strcmp(v->mode, "stock") != 0) {
    die("unknown mode (stock, xnnpack, external)", v->mode);
  }
  if (delegate) TfLiteInterpreterOptionsAddDelegate(options, delegate);
  v->interpreter = TfLiteInterpreterCreate(v->model, options);
  TfLiteInterpreterOptionsDelete(options);
  if (!v->interpreter) die("TFLite could not prepare the model", v->model_path);
  if (TfLiteInterpreterAllocateTensors(v->interpreter) != kTfLiteOk) die("cannot allocate tensors", v->model_path);
  TfLiteTensor* input = TfLiteInterpreterGetInputTensor(v->interpreter, 0);
  unsigned char* data = TfLiteTensorData(input);
  for (size_t i = 0; i < TfLiteTensorByteSize(input); i++) data[i] = (unsigned char)(i * 7 + 3);
  v->threads_started = process_threads() - before;
}

int main(int argc, char** argv) {
  int rounds = 20, invokes = 10, print_times = 0;
  const char* plugin = NULL;
  Variant variants[32];
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--invokes") == 0 && i + 1 < argc) {
      invokes = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--times") == 0) {
      print_times = 1;
    } else if (strcmp(argv[i], "--plugin") == 0 && i + 1 < argc) {
      plugin = argv[++i];
    } else {
      if (n == 32) die("at most 32 variants", NULL);
      Variant* v = &variants[n++];
      memset(v, 0, sizeof *v);
      char* spec = argv[i];
      char* mode = strtok(spec, ",");
      char* threads = strtok(NULL, ",");
      char* flags = strtok(NULL, ",");
      char* model = strtok(NULL, "");
      if (!mode || !threads || !flags || !model) die("a variant is mode,threads,flags,model", argv[i]);
      snprintf(v->mode, sizeof v->mode, "%s", mode);
      v->threads = atoi(threads);
      v->flags = (unsigned)strtoul(flags, NULL, 0);
      v->model_path = model;
    }
  }
  if (n == 0 || rounds < 1 || invokes < 1) die("usage: cpu_harness [--rounds R] [--invokes N] [--plugin PATH] mode,threads,flags,model...", NULL);
  for (int i = 0; i < n; i++) {
    create(&variants[i], plugin);
    variants[i].times = calloc((size_t)rounds * invokes, sizeof(double));
    for (int k = 0; k < 3; k++) TfLiteInterpreterInvoke(variants[i].interpreter);
  }
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < n; k++) {
      Variant* v = &variants[(r + k) % n];
      for (int j = 0; j < invokes; j++) {
        double start = now_ms();
        if (TfLiteInterpreterInvoke(v->interpreter) != kTfLiteOk) die("invoke failed", v->model_path);
        v->times[v->count++] = now_ms() - start;
      }
    }
  }
  for (int i = 0; i < n; i++) {
    Variant* v = &variants[i];
    double sum = 0;
    for (int j = 0; j < v->count; j++) sum += v->times[j];
    printf("{\"mode\":\"%s\",\"threads\":%d,\"flags\":%u,\"model\":\"%s\",\"invokes\":%d,\"meanMs\":%.4f,\"threadsStarted\":%d,\"xnnpackThreadpool\":%s",
           v->mode, v->threads, v->flags, v->model_path, v->count, sum / v->count, v->threads_started,
           strcmp(v->mode, "xnnpack") == 0 ? (v->has_threadpool ? "true" : "false") : "null");
    if (print_times) {
      printf(",\"times\":[");
      for (int j = 0; j < v->count; j++) printf("%s%.4f", j ? "," : "", v->times[j]);
      printf("]");
    }
    qsort(v->times, v->count, sizeof(double), compare);
    printf(",\"medianMs\":%.4f,\"minMs\":%.4f}\n", v->times[v->count / 2], v->times[0]);
  }
  return 0;
}
