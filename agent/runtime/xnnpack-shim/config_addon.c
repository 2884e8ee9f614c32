/*
 * Node addon beside the XNNPACK plugin: it links to libedge_exit_xnnpack.so,
 * the same loaded copy the binding later dlopen()s, so JavaScript can stage
 * the next delegate's options and read back what the delegate was made with.
 * This is how options reach the plugin (see xnnpack_plugin.c for why the
 * binding's own key/value options cannot carry them).
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

extern void edge_exit_xnnpack_stage(int32_t num_threads, uint32_t flags, int share);
extern int edge_exit_xnnpack_shared_users(void);
extern int edge_exit_xnnpack_last(int32_t* num_threads, uint32_t* flags, int* threadpool, int* shared);

#define CHECK(call)                                          \
  do {                                                       \
    if ((call) != napi_ok) {                                 \
      napi_throw_error(env, NULL, "edge-exit xnnpack config: " #call " failed"); \
      return NULL;                                           \
    }                                                        \
  } while (0)

static napi_value stage(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t threads = 0;
  uint32_t flags = 0;
  bool share = false;
  if (argc != 3 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || napi_get_value_uint32(env, argv[1], &flags) != napi_ok ||
      napi_get_value_bool(env, argv[2], &share) != napi_ok || threads < 1 || threads > 64) {
    napi_throw_range_error(env, NULL, "stage(threads, flags, share): threads must be an integer in [1, 64], flags a non-negative integer, share a boolean");
    return NULL;
  }
  edge_exit_xnnpack_stage(threads, flags, share ? 1 : 0);
  return NULL;
}

static napi_value last_delegate(napi_env env, napi_callback_info info) {
  (void)info;
  int32_t threads = 0;
  uint32_t flags = 0;
  int threadpool = 0;
  int shared = 0;
  napi_value result, value;
  if (!edge_exit_xnnpack_last(&threads, &flags, &threadpool, &shared)) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_int32(env, threads, &value));
  CHECK(napi_set_named_property(env, result, "threads", value));
  CHECK(napi_create_uint32(env, flags, &value));
  CHECK(napi_set_named_property(env, result, "flags", value));
  CHECK(napi_get_boolean(env, threadpool != 0, &value));
  CHECK(napi_set_named_property(env, result, "threadpool", value));
  CHECK(napi_get_boolean(env, shared != 0, &value));
  CHECK(napi_set_named_property(env, result, "shared", value));
  return result;
}

static napi_value shared_users(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(napi_create_int32(env, edge_exit_xnnpack_shared_users(), &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(napi_create_function(env, "stage", NAPI_AUTO_LENGTH, stage, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "stage", fn));
  CHECK(napi_create_function(env, "lastDelegate", NAPI_AUTO_LENGTH, last_delegate, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "lastDelegate", fn));
  CHECK(napi_create_function(env, "sharedUsers", NAPI_AUTO_LENGTH, shared_users, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "sharedUsers", fn));
  return exports;
}
